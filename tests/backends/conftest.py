"""The real backends' servers, started once per test session and shared.

``lnbits`` (one LNbits 1.6.2 process, FakeWallet) and ``network`` (btcd + LND
A -> B -> C) cost 10-30 s each to start, so every test module that needs them
(``tests/backends/test_lnbits.py``, ``tests/backends/test_lnd.py`` and the
contract suite in ``tests/contract``, which imports these fixtures into its own
conftest) uses the same running instance.

pytest keeps one cache per fixture *definition*, and a definition is only seen
below the directory of its conftest. The contract suite re-exports these functions
from its own conftest, which makes a second definition; so the instance itself
lives in ``config.stash`` and is stopped once, when the session ends
(``config.add_cleanup``), whichever definition started it first.

Isolation between tests sharing them: each LNbits test makes its own wallets;
LND tests make fresh invoices and payment hashes for every payment and compare
node A's balance only as a difference around their own payment.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

import pytest

from tests.backends.lnbits_server import LnbitsServer
from tests.backends.lnd_network import LndNetwork, lnd_network
from tests.support.relays import PeerMissing

__all__ = ["lnbits", "network"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_LNBITS_KEY = pytest.StashKey["LnbitsServer | BaseException"]()
_LND_KEY = pytest.StashKey["LndNetwork | BaseException"]()


def _shared(
    config: pytest.Config, key: pytest.StashKey[T | BaseException], start: Callable[[], T]
) -> T:
    """The session's one instance under ``key``, started by ``start`` on first use.

    A failed start is remembered and raised again (not retried by the next user).
    """
    if key not in config.stash:
        try:
            config.stash[key] = start()
        except BaseException as exc:  # pytest.skip / pytest.fail outcomes included
            config.stash[key] = exc
            raise
    value = config.stash[key]
    if isinstance(value, BaseException):
        raise value
    return value


def _start_lnbits(config: pytest.Config, factory: pytest.TempPathFactory) -> LnbitsServer:
    try:
        server = LnbitsServer(factory.mktemp("lnbits"))
    except PeerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    server.start()
    config.add_cleanup(server.stop)
    log.warning("LNbits up in %.1f s", server.startup_seconds)
    return server


def _start_lnd(config: pytest.Config) -> LndNetwork:
    stack = contextlib.ExitStack()
    running = stack.enter_context(lnd_network())
    config.add_cleanup(stack.close)
    log.warning(
        "lnd network up in %.1f s (%s)",
        running.bringup_seconds,
        ", ".join(f"{k} {v:.1f}s" for k, v in running.timings.items()),
    )
    return running


@pytest.fixture(scope="session")
def lnbits(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> LnbitsServer:
    """LNbits 1.6.2 with FakeWallet; fails (not skips) when setup-peers.sh has not run."""
    config = request.config
    return _shared(config, _LNBITS_KEY, lambda: _start_lnbits(config, tmp_path_factory))


@pytest.fixture(scope="session")
def network(request: pytest.FixtureRequest) -> LndNetwork:
    """btcd + LND A -> B -> C on regtest; skips only when ``go`` is missing."""
    config = request.config
    return _shared(config, _LND_KEY, lambda: _start_lnd(config))
