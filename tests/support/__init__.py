"""Test support: third-party relay processes and the pytest fixtures around them."""
