"""The Alby JS SDK's hold invoice calls against nwcd on a real LND node (regtest).

nwcd serves on node A of the session's regtest network (btcd + LND A -> B -> C, see
``tests/backends/lnd_network.py``); the SDK's ``NWCClient`` makes hold invoices on it
through a third-party relay, node B pays them, and the SDK settles or cancels what A
holds, hearing ``hold_invoice_accepted`` and ``payment_received`` on the way. Both
encryptions, both relays.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nwcd import bolt11
from nwcd.service.daemon import DaemonOptions
from nwcd.service.pipeline import ServiceSettings
from tests.backends.conftest import network
from tests.backends.lnd_network import LndHarness, LndNetwork
from tests.interop.node import NodeProcess, failed, notified, ok

__all__ = ["network"]

pytestmark = pytest.mark.relay


@pytest.fixture
async def on_lnd(network: LndNetwork, relay_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """nwcd's service on node A; yields the URI of a connection with every method."""
    harness = LndHarness(
        tmp_path,
        [relay_url],
        settings=ServiceSettings(resolve_interval=0.2),
        options=DaemonOptions(
            relays=(relay_url,), connections_poll_interval=0.2, shutdown_grace=0.2
        ),
        lnd=network.a.config(timeout=10, payment_timeout=30),
    )
    async with harness:
        uri = await harness.connect("alby-on-lnd")
        await harness.start()
        yield uri.format()


def fresh_hash() -> tuple[str, str]:
    preimage = os.urandom(32)
    return preimage.hex(), hashlib.sha256(preimage).hexdigest()


async def pay_from_b(network: LndNetwork, invoice: str) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.to_thread(network.b.pay, invoice)
    return result


@pytest.mark.parametrize("encryption", ["nip44_v2", "nip04"])
async def test_alby_hold_invoices_on_lnd(
    on_lnd: str, network: LndNetwork, scripts: Path, encryption: str
) -> None:
    async with NodeProcess(scripts, "alby_client.mjs", on_lnd) as alby:
        if encryption == "nip04":
            assert ok(await alby.call("setEncryption", {"type": "nip04"})) == "nip04"
        info = ok(await alby.call("getInfo"))
        assert {"make_hold_invoice", "settle_hold_invoice", "cancel_hold_invoice"} <= set(
            info["methods"]
        )
        assert "hold_invoice_accepted" in info["notifications"]
        assert ok(await alby.call("subscribeNotifications", {}))

        preimage, payment_hash = fresh_hash()
        made = ok(
            await alby.call(
                "makeHoldInvoice",
                {"amount": 31_000, "payment_hash": payment_hash, "description": "held on A"},
            )
        )
        decoded = bolt11.decode(made["invoice"])
        assert (decoded.payment_hash, decoded.amount_msat) == (payment_hash, 31_000)
        assert decoded.payee == network.a.pubkey
        paying = asyncio.create_task(pay_from_b(network, made["invoice"]))
        held = await notified(alby, "hold_invoice_accepted", payment_hash)
        assert (held["state"], held["amount"]) == ("accepted", 31_000)
        assert held["settle_deadline"] >= network.a.height() + decoded.min_final_cltv_expiry
        assert not paying.done()  # B's HTLC is held by A
        assert ok(await alby.call("settleHoldInvoice", {"preimage": preimage})) == {}
        assert (await paying)["status"] == "SUCCEEDED"
        received = await notified(alby, "payment_received", payment_hash)
        assert (received["state"], received["preimage"]) == ("settled", preimage)

        _, canceled_hash = fresh_hash()
        made = ok(
            await alby.call("makeHoldInvoice", {"amount": 32_000, "payment_hash": canceled_hash})
        )
        paying = asyncio.create_task(pay_from_b(network, made["invoice"]))
        await notified(alby, "hold_invoice_accepted", canceled_hash)
        assert ok(await alby.call("cancelHoldInvoice", {"payment_hash": canceled_hash})) == {}
        assert (await paying)["status"] == "FAILED"
        looked = ok(await alby.call("lookupInvoice", {"payment_hash": canceled_hash}))
        assert looked["state"] == "failed"
        error = failed(await alby.call("settleHoldInvoice", {"preimage": "55" * 32}))
        assert error["code"] == "NOT_FOUND"
