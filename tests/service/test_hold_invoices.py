"""Hold invoices through the service: who may settle them, who hears of them, what they need.

The wallet is the simulator; its outside payer (``SimulatedBackend.receive``, what
``nwcd sim pay`` runs) holds the payment until the app that made the invoice settles
or cancels it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nwcd.client.client import Notification, NWCClient, NWCError
from nwcd.policy.grants import expand_methods
from tests.service.harness import WalletHarness


@pytest.fixture
async def wallet(tmp_path: Path, relay_url: str) -> AsyncIterator[WalletHarness]:
    async with WalletHarness(tmp_path, [relay_url]) as harness:
        yield harness


def secret_and_hash() -> tuple[str, str]:
    preimage = os.urandom(32)
    return preimage.hex(), hashlib.sha256(preimage).hexdigest()


async def first_notification(client: NWCClient, subscribed: asyncio.Event) -> Notification:
    stream: AsyncIterator[Notification] = client.notifications(on_subscribed=subscribed.set)
    return await anext(stream)


async def test_only_the_app_that_made_a_hold_invoice_hears_of_it_and_settles_it(
    wallet: WalletHarness,
) -> None:
    maker_uri = await wallet.connect("maker")
    other_uri = await wallet.connect("other")
    await wallet.start()
    preimage, payment_hash = secret_and_hash()
    async with (
        NWCClient.from_uri(maker_uri, timeout=10) as maker,
        NWCClient.from_uri(other_uri, timeout=10) as other,
    ):
        made = await maker.make_hold_invoice(
            4_000, payment_hash, description="held", min_cltv_expiry_delta=36
        )
        assert (made.payment_hash, made.amount_msat, made.state) == (payment_hash, 4_000, "pending")

        subscribed = [asyncio.Event(), asyncio.Event()]
        heard = [
            asyncio.create_task(first_notification(client, ready))
            for client, ready in zip((maker, other), subscribed, strict=True)
        ]
        await asyncio.gather(*(ready.wait() for ready in subscribed))
        await wallet.backend.receive(payment_hash)
        accepted = await asyncio.wait_for(heard[0], 10)
        assert accepted.type == "hold_invoice_accepted"
        assert accepted.transaction.payment_hash == payment_hash
        height = (await wallet.backend.get_info()).block_height
        assert accepted.transaction.settle_deadline == height + 36

        # To another app the hold invoice does not exist.
        for attempt in (
            other.settle_hold_invoice(preimage),
            other.cancel_hold_invoice(payment_hash),
            other.lookup_invoice(payment_hash=payment_hash),
        ):
            with pytest.raises(NWCError) as refused:
                await attempt
            assert refused.value.wallet_code == "NOT_FOUND"
        found = await maker.lookup_invoice(payment_hash=payment_hash)
        assert found.state == "accepted"

        await maker.settle_hold_invoice(preimage)
        settled = await maker.lookup_invoice(payment_hash=payment_hash)
        assert (settled.state, settled.preimage) == ("settled", preimage)
        assert not heard[1].done()  # the other app was told nothing
        heard[1].cancel()


async def test_hold_invoices_need_their_grant(wallet: WalletHarness) -> None:
    receive_only = await wallet.connect("shop", methods=expand_methods(["receive", "read"]))
    holder = await wallet.connect("holder", methods=expand_methods(["hold", "read"]))
    await wallet.start()
    preimage, payment_hash = secret_and_hash()
    async with NWCClient.from_uri(receive_only, timeout=10) as shop:
        info = await shop.get_info()
        assert "make_hold_invoice" not in info["methods"]
        assert info["notifications"] == ["payment_received", "payment_sent"]
        with pytest.raises(NWCError) as refused:
            await shop.make_hold_invoice(1_000, payment_hash)
        assert refused.value.wallet_code == "RESTRICTED"
    async with NWCClient.from_uri(holder, timeout=10) as app:
        assert {"make_hold_invoice", "settle_hold_invoice", "cancel_hold_invoice"} <= (
            app.info.methods
        )
        info = await app.get_info()
        assert info["notifications"] == [
            "payment_received",
            "payment_sent",
            "hold_invoice_accepted",
        ]
        await app.make_hold_invoice(1_000, payment_hash)
        await app.cancel_hold_invoice(payment_hash)
        with pytest.raises(NWCError, match="canceled") as late:
            await app.settle_hold_invoice(preimage)
        assert late.value.wallet_code == "OTHER"
        assert (await app.lookup_invoice(payment_hash=payment_hash)).state == "failed"
