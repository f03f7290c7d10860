"""nwcd in front of the Alby JS SDK's wallet service: the NWC backend's upstream is
``NWCWalletService`` (@getalby/sdk 8.0.3, ``interop/alby_wallet_service.mjs``).

An nwcd client sends one 50-invoice ``multi_pay_invoice`` to an nwcd service whose
backend is :class:`~nwcd.backends.nwc.NwcBackend`; the SDK's service offers no batch
method, so nwcd pays the batch with one ``pay_invoice`` per item (concurrently, up to
the backend's cap). The SDK's service reports every request it decrypts: each invoice
must reach it exactly once, and every item must be answered.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nwcd.backends.nwc import MAX_CONCURRENT_PAYMENTS, NwcBackend, NwcConfig
from nwcd.client.client import NWCClient
from nwcd.nip47.uri import ConnectionUri
from tests.interop.alby import payee_invoice, requests_seen
from tests.interop.node import NodeProcess
from tests.service.harness import WalletHarness

pytestmark = [pytest.mark.relay, pytest.mark.timeout(180)]

BATCH = 50


@pytest.fixture
async def alby_wallet(scripts: Path, relay_url: str) -> AsyncIterator[NodeProcess]:
    async with NodeProcess(scripts, "alby_wallet_service.mjs", relay_url) as service:
        yield service


@pytest.fixture
async def front(
    tmp_path: Path, relay_url: str, alby_wallet: NodeProcess
) -> AsyncIterator[tuple[NwcBackend, ConnectionUri]]:
    """nwcd on the NWC backend in front of the SDK's service; the URI of one app."""
    config = NwcConfig(alby_wallet.ready["uri"], timeout=20, payment_timeout=30)
    async with (
        await NwcBackend.open(config) as backend,
        WalletHarness(tmp_path, [relay_url], serving=backend) as wallet,
    ):
        uri = await wallet.connect("app")
        await wallet.start()
        yield backend, uri


async def test_a_batch_through_nwcd_pays_each_invoice_once(
    alby_wallet: NodeProcess, front: tuple[NwcBackend, ConnectionUri]
) -> None:
    backend, uri = front
    assert backend.methods == {
        "get_info",
        "get_balance",
        "make_invoice",
        "pay_invoice",
        "multi_pay_invoice",  # served by nwcd, item by item
        "lookup_invoice",
        "list_transactions",
    }
    good = [await payee_invoice(alby_wallet, 1_000 + i) for i in range(BATCH - 2)]
    bad = [await payee_invoice(alby_wallet, 500, outcome="fail") for _ in range(2)]
    invoices = [invoice for invoice, _ in good + bad]
    before = len(requests_seen(alby_wallet))

    async with NWCClient(uri, timeout=60) as client:
        assert "multi_pay_invoice" in client.info.methods  # one request for the batch
        balance = await client.get_balance()
        results = await client.multi_pay_invoice(invoices)
        after = await client.get_balance()

    assert [r.invoice for r in results] == invoices  # every item answered, in order
    for result, (_, preimage) in zip(results, good, strict=False):
        assert result.ok, result
        assert result.preimage == preimage
    for result in results[len(good) :]:
        assert not result.ok
        assert result.error is not None
        assert result.error.code == "PAYMENT_FAILED"
    assert after == balance - sum(1_000 + i for i in range(len(good)))

    pays = [m for m in requests_seen(alby_wallet)[before:] if m["request"] == "pay_invoice"]
    per_invoice = collections.Counter(m["params"]["invoice"] for m in pays)
    assert per_invoice == dict.fromkeys(invoices, 1)  # each exactly once, nothing else
    assert MAX_CONCURRENT_PAYMENTS < BATCH  # the cap was in play
