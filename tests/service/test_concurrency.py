"""Payment slots: a batch runs concurrently within bounds, in request order, and never
starves another app."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nwcd.backends.simulator import SimInvoice
from nwcd.ports import Pending
from nwcd.relay.pool import RelayPool
from nwcd.service.payments import PaymentLimits
from nwcd.service.pipeline import ServiceSettings
from tests.service.harness import RawApp, WalletHarness


async def in_flight(wallet: WalletHarness, invoices: list[SimInvoice]) -> list[int]:
    """Indexes of the invoices the backend is paying right now."""
    return [
        i
        for i, invoice in enumerate(invoices)
        if isinstance(await wallet.backend.payment_status(invoice.payment_hash), Pending)
    ]


async def wait_for_in_flight(
    wallet: WalletHarness, invoices: list[SimInvoice], expected: list[int]
) -> None:
    async with asyncio.timeout(10):
        while True:  # the simulator's payments are observed by polling its state
            if await in_flight(wallet, invoices) == expected:
                return
            await asyncio.sleep(0.02)


async def test_batch_items_start_in_order_as_slots_free_up(
    tmp_path: Path, nwcd_relay: object
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    settings = ServiceSettings(limits=PaymentLimits(in_flight=8, per_connection=3))
    async with (
        WalletHarness(tmp_path, [url], settings=settings) as wallet,
        RelayPool([url]) as pool,
    ):
        uri = await wallet.connect()
        await wallet.start()
        await pool.wait_connected(5)
        hanging = [await wallet.backend.create_invoice(1_000 + i, outcome="hang") for i in range(6)]
        app = RawApp(uri, pool)
        request = app.request(
            "multi_pay_invoice",
            {"invoices": [{"id": str(i), "invoice": m.invoice} for i, m in enumerate(hanging)]},
        )
        sending = asyncio.create_task(app.send(request, expect=6, timeout=20))
        await wait_for_in_flight(wallet, hanging, [0, 1, 2])
        await wallet.backend.release(hanging[1].payment_hash, "succeed")
        await wait_for_in_flight(wallet, hanging, [0, 2, 3])
        for invoice in hanging:
            await wallet.backend.release(invoice.payment_hash, "succeed")
        responses = await sending
        assert {event.tag_value("d") for event, _ in responses} == {str(i) for i in range(6)}
        assert all(response.error is None for _, response in responses)


async def test_a_big_batch_never_starves_another_app(tmp_path: Path, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    settings = ServiceSettings(limits=PaymentLimits(in_flight=4, per_connection=3))
    async with (
        WalletHarness(tmp_path, [url], settings=settings) as wallet,
        RelayPool([url]) as pool,
    ):
        big = await wallet.connect("big")
        small = await wallet.connect("small")
        await wallet.start()
        await pool.wait_connected(5)
        hanging = [
            await wallet.backend.create_invoice(1_000 + i, outcome="hang") for i in range(20)
        ]
        big_app = RawApp(big, pool)
        batch = big_app.request(
            "multi_pay_invoice",
            {"invoices": [{"id": str(i), "invoice": m.invoice} for i, m in enumerate(hanging)]},
        )
        sending = asyncio.create_task(big_app.send(batch, expect=20, timeout=20))
        await wait_for_in_flight(wallet, hanging, [0, 1, 2])
        # The other app's payment goes through while the batch still hangs.
        quick = await wallet.backend.create_invoice(5_000)
        small_app = RawApp(small, pool)
        [(_, response)] = await small_app.send(
            small_app.request("pay_invoice", {"invoice": quick.invoice})
        )
        assert response.result == {"preimage": quick.preimage, "fees_paid": 0}
        # And a read request is never queued behind payments at all.
        [(_, balance)] = await small_app.send(small_app.request("get_balance"))
        assert balance.error is None
        assert await in_flight(wallet, hanging) == [0, 1, 2]
        for invoice in hanging:
            await wallet.backend.release(invoice.payment_hash, "succeed")
        assert len(await sending) == 20
