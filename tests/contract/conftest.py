"""The session-wide LNbits server and LND network, shared with tests/backends.

Re-exported from ``tests/backends/conftest.py``: the running instances live in the
session's ``config.stash``, so these definitions and the ones of tests/backends
give the same LNbits process and the same LND network.
"""

from __future__ import annotations

from tests.backends.conftest import lnbits, network

__all__ = ["lnbits", "network"]
