"""Rate limits through the service: a flooding app is answered RATE_LIMITED, the others
are served, and a rate-limited answer is the request's one answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nwcd.client.client import NWCClient, NWCError
from nwcd.policy.rate import RateLimit
from nwcd.relay.pool import RelayPool
from nwcd.service.pipeline import ServiceSettings
from tests.service.harness import RawApp, WalletHarness

SLOW = RateLimit(per_second=0.01, burst=2)  # two requests, then one per 100 s


@pytest.fixture
async def wallet(tmp_path: Path, relay_url: str) -> AsyncIterator[WalletHarness]:
    settings = ServiceSettings(app_rate=SLOW)
    async with WalletHarness(tmp_path, [relay_url], settings=settings) as harness:
        yield harness


async def test_a_flooding_app_is_answered_rate_limited(
    wallet: WalletHarness, relay_url: str
) -> None:
    greedy_uri = await wallet.connect("greedy")
    polite_uri = await wallet.connect("polite")
    await wallet.start()
    async with NWCClient.from_uri(greedy_uri, timeout=10) as greedy:
        assert await greedy.get_balance() > 0
        assert await greedy.get_balance() > 0
        with pytest.raises(NWCError) as limited:
            await greedy.get_balance()
        assert limited.value.wallet_code == "RATE_LIMITED"
        assert "requests a minute from this app; retry in" in str(limited.value)
    async with NWCClient.from_uri(polite_uri, timeout=10) as polite:
        assert await polite.get_balance() > 0  # its own bucket

    async with RelayPool([relay_url]) as pool:
        await pool.wait_connected(10)
        app = RawApp(greedy_uri, pool)
        request = app.request("get_info", {})
        [(_, first)] = await app.send(request, expect=1)
        assert first.result_type == "get_info"
        assert first.error is not None
        assert first.error.code == "RATE_LIMITED"
        # Stored like any answer: a re-send gets it again, never a second handling.
        [stored] = await wallet.store.responses_for(request.id)
        assert app.open(stored)[1] == first
