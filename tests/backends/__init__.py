"""Tests of the Lightning backend adapters."""
