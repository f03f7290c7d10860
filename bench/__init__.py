"""Benchmarks: run them all with ``python -m bench all`` (see bench/__main__.py)."""
