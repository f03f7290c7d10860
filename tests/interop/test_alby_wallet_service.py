"""nwcd's ``NWCClient`` against a wallet service written with the Alby JS SDK.

``interop/alby_wallet_service.mjs`` runs the SDK's ``NWCWalletService`` (@getalby/sdk
8.0.3) on an in-memory fake wallet, on a real relay (PyPI nostr-relay, nostr-sdk's
LocalRelay), and reports every request it decrypts. Its info event lists
``nip04 nip44_v2`` and the methods it serves; ``multi_pay_invoice`` is not among them (the SDK's
service answers every multi_* request ``NOT_IMPLEMENTED``), so our client must pay a
batch with one ``pay_invoice`` per item and give the same result shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nwcd.client.client import InvoiceRequest, NWCClient, NWCError
from nwcd.nip47.encryption import Scheme
from tests.interop.alby import payee_invoice, requests_seen
from tests.interop.node import NodeProcess

pytestmark = pytest.mark.relay


@pytest.fixture
async def alby_wallet(scripts: Path, relay_url: str) -> AsyncIterator[NodeProcess]:
    async with NodeProcess(scripts, "alby_wallet_service.mjs", relay_url) as service:
        yield service


@pytest.mark.parametrize("scheme", [Scheme.NIP44_V2, Scheme.NIP04], ids=lambda s: s.value)
async def test_our_client_against_alby_wallet_service(
    alby_wallet: NodeProcess, scheme: Scheme, subtests: pytest.Subtests
) -> None:
    uri = alby_wallet.ready["uri"]
    async with NWCClient.from_uri(uri, timeout=10) as client:
        with subtests.test("reads the SDK's info event"):
            assert client.info.found
            assert set(client.info.schemes) == {Scheme.NIP44_V2, Scheme.NIP04}
            assert client.scheme is Scheme.NIP44_V2  # preferred when offered
            assert client.info.methods == set(alby_wallet.ready["methods"])
            assert "multi_pay_invoice" not in client.info.methods
        client.scheme = scheme  # NIP-04 forced for the second run

        with subtests.test("get_info"):
            info = await client.get_info()
            assert info["alias"] == "alby-js-fake"
            assert info["network"] == "regtest"

        balance = 0
        with subtests.test("get_balance"):
            balance = await client.get_balance()
            assert balance == 100_000_000

        with subtests.test("make_invoice"):
            tx = await client.make_invoice(9_000, description="from nwcd")
            assert tx.amount_msat == 9_000
            assert tx.type == "incoming"
            assert tx.preimage is not None
            assert hashlib.sha256(bytes.fromhex(tx.preimage)).hexdigest() == tx.payment_hash
            found = await client.lookup_invoice(payment_hash=tx.payment_hash)
            assert found.invoice == tx.invoice

        with subtests.test("pay_invoice"):
            invoice, preimage = await payee_invoice(alby_wallet, 25_000)
            result = await client.pay_invoice(invoice)
            assert result["preimage"] == preimage
            assert await client.get_balance() == balance - 25_000

        with subtests.test("pay_invoice failing -> PAYMENT_FAILED"):
            invoice, _ = await payee_invoice(alby_wallet, 1_000, outcome="fail")
            with pytest.raises(NWCError) as caught:
                await client.pay_invoice(invoice)
            assert caught.value.wallet_code == "PAYMENT_FAILED"

        with subtests.test("list_transactions"):
            txs = await client.list_transactions(limit=10)
            assert {tx.type for tx in txs} == {"incoming", "outgoing"}

        with subtests.test("multi_pay_invoice is NOT_IMPLEMENTED by the SDK's service"):
            with pytest.raises(NWCError) as caught:
                await client.call("multi_pay_invoice", {"invoices": []})
            assert caught.value.wallet_code == "NOT_IMPLEMENTED"

        with subtests.test("multi_pay_invoice falls back to pay_invoice"):
            before = len(requests_seen(alby_wallet))
            good = [await payee_invoice(alby_wallet, 1_000 * (i + 1)) for i in range(3)]
            bad, _ = await payee_invoice(alby_wallet, 500, outcome="fail")
            amountless, amountless_preimage = await payee_invoice(alby_wallet, None)
            items: list[str | InvoiceRequest] = [invoice for invoice, _ in good]
            items += [InvoiceRequest(bad, id="bad"), InvoiceRequest(amountless, 4_000, id="free")]
            results = await client.multi_pay_invoice(items)

            assert [r.invoice for r in results] == [invoice for invoice, _ in good] + [
                bad,
                amountless,
            ]
            assert [r.id for r in results] == ["0", "1", "2", "bad", "free"]
            for item, (_, preimage) in zip(results[:3], good, strict=True):
                assert item.ok
                assert item.preimage == preimage
            assert not results[3].ok
            assert results[3].error is not None
            assert results[3].error.code == "PAYMENT_FAILED"
            assert results[4].ok
            assert results[4].preimage == amountless_preimage

            sent = requests_seen(alby_wallet)[before:]
            assert [m["request"] for m in sent] == ["pay_invoice"] * 5
            assert {m["params"]["invoice"] for m in sent} == {r.invoice for r in results}
            assert (
                next(m for m in sent if m["params"]["invoice"] == amountless)["params"]["amount"]
                == 4_000
            )

        with subtests.test("every request in the chosen encryption"):
            seen = requests_seen(alby_wallet)
            assert len(seen) >= 10
            assert {m["encryption"] for m in seen} == {scheme.value}
