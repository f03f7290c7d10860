"""The same request from several relays, and again later: paid once, answers re-sent."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from nwcd.relay.pool import PoolOptions, RelayPool
from nwcd.relay.server import LocalRelay
from nwcd.service.daemon import DaemonOptions
from nwcd.service.pipeline import STAND_BACK
from tests.service.harness import RawApp, WalletHarness


async def test_request_from_three_relays_is_paid_once(tmp_path: Path, relay_url: str) -> None:
    async with LocalRelay() as second, LocalRelay() as late:
        relays = [relay_url, second.url, late.url]
        options = DaemonOptions(relays=tuple(relays), pool=PoolOptions(copy_window=0.3))
        async with WalletHarness(tmp_path, relays, options=options) as wallet:
            uri = await wallet.connect(relays=tuple(relays))
            await wallet.start()
            invoices = [await wallet.backend.create_invoice(5_000, latency_ms=50) for _ in range(3)]
            items = [{"id": str(i), "invoice": m.invoice} for i, m in enumerate(invoices)]
            async with RelayPool(relays[:2]) as both, RelayPool([late.url]) as later:
                await both.wait_connected(10, count=2)
                await later.wait_connected(10)
                app = RawApp(uri, both)
                request = app.request("multi_pay_invoice", {"invoices": items})
                # Published to two relays at once: the service sees it twice.
                first = await app.send(request, expect=3, settle=0.5)
                # Three answers (a re-sent copy of them, should a relay be slow, has the same ids).
                assert len({e.id for e, _ in first}) == 3
                assert {e.tag_value("d") for e, _ in first} == {"0", "1", "2"}
                # Later, a third relay delivers it again: stored answers come back.
                await asyncio.sleep(0.4)  # past the pool's window for cross-relay copies
                replay = await RawApp(uri, later).send(request, expect=3, settle=0.5)
                assert {e.id for e, _ in replay} == {e.id for e, _ in first}
            assert await wallet.backend.get_balance() == 100_000_000_000 - 3 * 5_000


async def test_a_relay_replaying_stored_requests_to_a_restarted_service_costs_no_republish(
    tmp_path: Path, nostr_relay: object, caplog: pytest.LogCaptureFixture
) -> None:
    # PyPI nostr-relay keeps ephemeral events and replays them to every new subscription:
    # after a restart, the service sees its recent requests again. They were answered
    # through the outbox; a replay is not an app asking again, so nothing is re-published.
    url = nostr_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet, RelayPool([url]) as pool:
        uri = await wallet.connect()
        await wallet.start()
        await pool.wait_connected(10)
        app = RawApp(uri, pool)
        requests = [app.request("get_balance") for _ in range(5)]
        for request in requests:
            [(_, answer)] = await app.send(request)
            assert answer.error is None
        await wallet.stop()
        # Past the moment a fresh claim of another instance is left alone (STAND_BACK):
        # only the replay rule keeps the service quiet now.
        await asyncio.sleep(STAND_BACK + 0.5)
        caplog.set_level(logging.INFO, logger="nwcd.service")
        caplog.clear()
        await wallet.start()
        await asyncio.sleep(1.0)  # the replay arrives right after the subscription opens
        assert "re-publishing" not in caplog.text
        # (An app's live re-send is still answered again: test_delivery.py. This relay
        # refuses a stored event's second publication, so it never forwards one.)
