"""Interop fixtures: the Node scripts of ``interop/`` and nwcd's service on a real relay.

The relay is the third-party PyPI ``nostr-relay`` process (``nostr_relay`` fixture);
the service is :class:`~tests.service.harness.WalletHarness`, the same daemon code
``nwcd serve`` runs, in the test's event loop on the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nwcd.nip47.uri import ConnectionUri
from tests.interop.node import node_scripts
from tests.service.harness import WalletHarness
from tests.support.relays import NostrRelayProcess, PeerMissing


@pytest.fixture(scope="session")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interop scripts next to the cached ``node_modules``; fails (never skips) if absent."""
    try:
        return node_scripts(tmp_path_factory.mktemp("node-interop"))
    except PeerMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


@dataclass
class Served:
    """nwcd's service, running, and the URI of one app connection to it."""

    wallet: WalletHarness
    uri: ConnectionUri


@pytest.fixture
async def served(tmp_path: Path, nostr_relay: NostrRelayProcess) -> AsyncIterator[Served]:
    """nwcd's wallet service on the simulator and a nostr-relay process, with one app.

    The connection exists before the service starts, so its info event is on the
    relay and its requests are subscribed to by the time this yields.
    """
    async with WalletHarness(tmp_path, [nostr_relay.url]) as harness:
        uri = await harness.connect("interop")
        await harness.start()
        yield Served(harness, uri)
