"""Interop fixtures: the Node scripts of ``interop/`` and nwcd's service on a real relay.

The relay is a third-party one (``relay_url``: PyPI ``nostr-relay`` and nostr-sdk's
LocalRelay); the service is :class:`~tests.service.harness.WalletHarness`, the same daemon code
``nwcd serve`` runs, in the test's event loop on the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nwcd.nip47.methods import MAX_AMOUNT_MSAT
from nwcd.nip47.uri import ConnectionUri
from nwcd.policy.grants import BudgetPeriod
from tests.interop.node import node_scripts
from tests.service.harness import WalletHarness
from tests.support.relays import NostrRelayProcess, PeerMissing, SdkLocalRelay


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


# Every bitcoin there is: a real budget for get_budget that no test's payment can reach
# (the nostr-sdk test's oversized payment must still fail for the balance, not the budget).
BUDGET_MSAT = MAX_AMOUNT_MSAT


@pytest.fixture(params=["nostr-relay", "sdk-relay"])
def relay_url(request: pytest.FixtureRequest) -> str:
    """Each interop test runs on two third-party relays: PyPI nostr-relay (a process;
    it stores and replays ephemeral events, which hides readiness races) and nostr-sdk's
    strict LocalRelay (forwards them only to live subscriptions)."""
    name = "nostr_relay" if request.param == "nostr-relay" else "sdk_relay"
    relay: NostrRelayProcess | SdkLocalRelay = request.getfixturevalue(name)
    return str(relay.url)


@pytest.fixture
async def served(tmp_path: Path, relay_url: str) -> AsyncIterator[Served]:
    """nwcd's wallet service on the simulator and a third-party relay, with one app.

    The connection exists before the service starts, so its info event is on the
    relay and its requests are subscribed to by the time this yields. Its monthly
    budget (:data:`BUDGET_MSAT`) is there for ``get_budget``.
    """
    async with WalletHarness(tmp_path, [relay_url]) as harness:
        uri = await harness.connect(
            "interop", budget_msat=BUDGET_MSAT, budget_period=BudgetPeriod.MONTHLY
        )
        await harness.start()
        yield Served(harness, uri)
