"""The Alby JS SDK's ``NWCClient`` (@getalby/sdk 8.0.3, Node) against nwcd's service.

Every public method of the SDK's client goes through a real relay (PyPI nostr-relay,
nostr-sdk's LocalRelay) to nwcd's daemon on the simulator, once with the encryption the
SDK picks from our info event (NIP-44 v2) and once with NIP-04 forced through the SDK's
private setting (``client._encryptionType = 'nip04'``). Each method is a subtest, so a failure
names the method and the encryption.

Hold invoices go the whole way: made by the SDK, paid from outside (the simulator's
payer), announced with ``hold_invoice_accepted``, then settled or canceled by the SDK.
The one method nwcd does not implement (``create_connection``) must come back as a clean
``NOT_IMPLEMENTED`` wallet error. ``multiPayInvoice`` rejects the whole call on the first
error response (js-sdk ``executeMultiNip47Request``): the test checks that, and that nwcd
still pays and answers every other item.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import pytest

from nwcd import bolt11
from nwcd.backends.simulator import SimulatedBackend
from nwcd.policy.budget import window_end, window_start
from nwcd.policy.grants import BudgetPeriod
from nwcd.ports import Succeeded
from tests.interop.conftest import BUDGET_MSAT, Served
from tests.interop.node import NodeProcess, failed, notified, ok

pytestmark = pytest.mark.relay

ENCRYPTIONS = ["nip44_v2", "nip04"]
NOT_IMPLEMENTED_CALLS: list[tuple[str, dict[str, Any] | None]] = [
    ("createConnection", {"pubkey": "33" * 32, "name": "x", "request_methods": ["get_info"]}),
]


async def paid(sim: SimulatedBackend, payment_hash: str, timeout: float = 10.0) -> Succeeded:
    """Wait (polling, with a deadline) until the simulator says the payment succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = await sim.payment_status(payment_hash)
        if isinstance(outcome, Succeeded):
            return outcome
        assert time.monotonic() < deadline, f"{payment_hash} not paid: {outcome}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("encryption", ENCRYPTIONS)
async def test_every_alby_client_method(
    served: Served, scripts: Any, encryption: str, subtests: pytest.Subtests
) -> None:
    sim = served.wallet.backend
    payee = sim.payee_pubkeys[0]
    async with NodeProcess(scripts, "alby_client.mjs", served.uri.format()) as alby:
        if encryption == "nip04":
            assert ok(await alby.call("setEncryption", {"type": "nip04"})) == "nip04"

        with subtests.test("getWalletServiceInfo"):
            info = ok(await alby.call("getWalletServiceInfo"))
            assert set(info["encryptions"]) == {"nip44_v2", "nip04"}
            assert {"pay_invoice", "multi_pay_invoice", "get_info", "notifications"} <= set(
                info["capabilities"]
            )
            assert set(info["notifications"]) == {
                "payment_received",
                "payment_sent",
                "hold_invoice_accepted",
            }

        with subtests.test("subscribeNotifications"):
            assert ok(await alby.call("subscribeNotifications", {}))

        with subtests.test("getInfo"):
            got = ok(await alby.call("getInfo"))
            assert got["network"] == "regtest"
            assert {"pay_invoice", "make_invoice", "multi_pay_invoice"} <= set(got["methods"])
            # Our answer was read in the scheme the SDK chose.
            assert ok(await alby.call("encryptionType")) == encryption

        with subtests.test("getBalance"):
            balance = ok(await alby.call("getBalance"))["balance"]
            assert isinstance(balance, int)
            assert balance > 0

        paid_hash = ""
        with subtests.test("payInvoice"):
            invoice = await sim.create_invoice(21_000, fee_msat=3)
            result = ok(await alby.call("payInvoice", {"invoice": invoice.invoice}))
            assert result["preimage"] == invoice.preimage
            assert result["fees_paid"] == 3
            paid_hash = invoice.payment_hash
            after = ok(await alby.call("getBalance"))["balance"]
            assert after == balance - 21_003

        with subtests.test("payInvoice amountless with amount"):
            invoice = await sim.create_invoice(None)
            result = ok(await alby.call("payInvoice", {"invoice": invoice.invoice, "amount": 5000}))
            assert result["preimage"] == invoice.preimage

        with subtests.test("payInvoice failing"):
            invoice = await sim.create_invoice(1000, outcome="fail")
            error = failed(await alby.call("payInvoice", {"invoice": invoice.invoice}))
            assert error["name"] == "Nip47WalletError"
            assert error["code"] == "PAYMENT_FAILED"

        with subtests.test("payKeysend"):
            preimage = "ab" * 32
            result = ok(
                await alby.call(
                    "payKeysend",
                    {
                        "amount": 2000,
                        "pubkey": payee,
                        "preimage": preimage,
                        "tlv_records": [{"type": 696969, "value": "77616c"}],
                    },
                )
            )
            assert result["preimage"] == preimage

        with subtests.test("getBudget"):
            budget = ok(await alby.call("getBudget"))
            now = int(time.time())
            since = window_start(now, BudgetPeriod.MONTHLY)
            spent = await served.wallet.store.budget_used(served.uri.wallet_pubkey.hex, since)
            assert spent >= 21_003 + 5_000 + 2_000  # the payments above, with their fees
            assert budget == {
                "used_budget": spent,
                "total_budget": BUDGET_MSAT,
                "renewal_period": "monthly",
                "renews_at": window_end(now, BudgetPeriod.MONTHLY),
            }

        made: dict[str, Any] = {}
        with subtests.test("makeInvoice"):
            made = ok(
                await alby.call(
                    "makeInvoice", {"amount": 12_000, "description": "interop", "expiry": 600}
                )
            )
            decoded = bolt11.decode(made["invoice"])
            assert decoded.payment_hash == made["payment_hash"]
            assert decoded.amount_msat == made["amount"] == 12_000
            assert made["type"] == "incoming"

        with subtests.test("lookupInvoice"):
            by_hash = ok(await alby.call("lookupInvoice", {"payment_hash": made["payment_hash"]}))
            assert by_hash["invoice"] == made["invoice"]
            assert by_hash["state"] == "pending"
            by_invoice = ok(await alby.call("lookupInvoice", {"invoice": made["invoice"]}))
            assert by_invoice["payment_hash"] == made["payment_hash"]
            error = failed(await alby.call("lookupInvoice", {"payment_hash": "00" * 32}))
            assert error["code"] == "NOT_FOUND"

        with subtests.test("notifications payment_received + payment_sent"):
            await sim.receive(made["payment_hash"])
            received = await alby.wait_for(
                lambda m: (
                    m.get("notification", {}).get("notification", {}).get("payment_hash")
                    == made["payment_hash"]
                ),
                10,
            )
            assert received["notification"]["notification_type"] == "payment_received"
            assert received["notification"]["notification"]["state"] == "settled"
            sent = [
                m["notification"]
                for m in alby.seen("notification")
                if m["notification"]["notification"]["payment_hash"] == paid_hash
            ]
            assert [n["notification_type"] for n in sent] == ["payment_sent"]

        with subtests.test("makeHoldInvoice, held, settleHoldInvoice"):
            preimage = os.urandom(32).hex()
            payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
            hold = ok(
                await alby.call(
                    "makeHoldInvoice",
                    {"amount": 8_000, "payment_hash": payment_hash, "description": "held"},
                )
            )
            assert hold["payment_hash"] == payment_hash
            assert bolt11.decode(hold["invoice"]).payment_hash == payment_hash
            await sim.receive(payment_hash)  # a payer elsewhere pays: the HTLC is held
            accepted = await notified(alby, "hold_invoice_accepted", payment_hash)
            assert accepted["state"] == "accepted"
            assert accepted["amount"] == 8_000
            height = (await sim.get_info()).block_height
            assert accepted["settle_deadline"] == height + bolt11.DEFAULT_CLTV_EXPIRY
            looked = ok(await alby.call("lookupInvoice", {"payment_hash": payment_hash}))
            assert looked["state"] == "accepted"
            assert ok(await alby.call("settleHoldInvoice", {"preimage": preimage})) == {}
            received = await notified(alby, "payment_received", payment_hash)
            assert (received["state"], received["preimage"]) == ("settled", preimage)
            looked = ok(await alby.call("lookupInvoice", {"payment_hash": payment_hash}))
            assert (looked["state"], looked["preimage"]) == ("settled", preimage)

        with subtests.test("cancelHoldInvoice"):
            preimage = os.urandom(32).hex()
            payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
            ok(await alby.call("makeHoldInvoice", {"amount": 9_000, "payment_hash": payment_hash}))
            await sim.receive(payment_hash)
            await notified(alby, "hold_invoice_accepted", payment_hash)
            assert ok(await alby.call("cancelHoldInvoice", {"payment_hash": payment_hash})) == {}
            looked = ok(await alby.call("lookupInvoice", {"payment_hash": payment_hash}))
            assert looked["state"] == "failed"
            error = failed(await alby.call("settleHoldInvoice", {"preimage": preimage}))
            assert (error["code"], error["message"]) == ("OTHER", "the hold invoice was canceled")
            unknown = failed(await alby.call("cancelHoldInvoice", {"payment_hash": "44" * 32}))
            assert unknown["code"] == "NOT_FOUND"

        with subtests.test("listTransactions"):
            listed = ok(await alby.call("listTransactions", {"limit": 20}))["transactions"]
            hashes = [tx["payment_hash"] for tx in listed]
            assert made["payment_hash"] in hashes
            assert paid_hash in hashes
            created = [tx["created_at"] for tx in listed]
            assert created == sorted(created, reverse=True)
            incoming = ok(await alby.call("listTransactions", {"type": "incoming"}))
            assert {tx["type"] for tx in incoming["transactions"]} == {"incoming"}

        with subtests.test("signMessage"):
            signed = ok(await alby.call("signMessage", {"message": "hello interop"}))
            assert signed["message"] == "hello interop"
            assert signed["signature"]

        for method, params in NOT_IMPLEMENTED_CALLS:
            with subtests.test(f"{method} (not implemented by nwcd)"):
                error = failed(await alby.call(method, params))
                assert error["name"] == "Nip47WalletError"
                assert error["code"] == "NOT_IMPLEMENTED"

        with subtests.test("multiPayInvoice with ids"):
            invoices = [await sim.create_invoice(1000 * (i + 1), fee_msat=i) for i in range(3)]
            result = ok(
                await alby.call(
                    "multiPayInvoice",
                    {
                        "invoices": [
                            {"id": f"item-{i}", "invoice": inv.invoice}
                            for i, inv in enumerate(invoices)
                        ]
                    },
                )
            )
            by_d = {item["dTag"]: item for item in result["invoices"]}
            assert set(by_d) == {"item-0", "item-1", "item-2"}
            for i, inv in enumerate(invoices):
                assert by_d[f"item-{i}"]["preimage"] == inv.preimage
                assert by_d[f"item-{i}"]["fees_paid"] == i
                # js-sdk types promise an `invoice` field per item; it never fills it.
                assert "invoice" not in by_d[f"item-{i}"]
            assert result["errors"] == []

        with subtests.test("multiPayInvoice without ids (d = payment hash)"):
            invoices = [await sim.create_invoice(1500) for _ in range(3)]
            result = ok(
                await alby.call(
                    "multiPayInvoice", {"invoices": [{"invoice": inv.invoice} for inv in invoices]}
                )
            )
            by_d = {item["dTag"]: item["preimage"] for item in result["invoices"]}
            assert by_d == {inv.payment_hash: inv.preimage for inv in invoices}

        with subtests.test("multiPayInvoice with a failing item rejects the whole call"):
            # The two good items answer at once, the failing one 300 ms later.
            good = [await sim.create_invoice(1100) for _ in range(2)]
            bad = await sim.create_invoice(1200, latency_ms=300, outcome="fail")
            items = [{"id": "good-0", "invoice": good[0].invoice}]
            items += [{"id": "bad", "invoice": bad.invoice}]
            items += [{"id": "good-1", "invoice": good[1].invoice}]
            error = failed(await alby.call("multiPayInvoice", {"invoices": items}))
            # js-sdk: any error response rejects everything; the two preimages it had
            # already received are lost to the caller.
            assert error["name"] == "Nip47UnexpectedResponseError"
            assert error["code"] == "PAYMENT_FAILED"
            # nwcd paid the other items exactly once regardless.
            for invoice in good:
                assert (await paid(sim, invoice.payment_hash)).preimage == invoice.preimage

        with subtests.test("multiPayInvoice whole-request error (duplicate ids, no d tag)"):
            invoices = [await sim.create_invoice(1300) for _ in range(2)]
            items = [{"id": "same", "invoice": inv.invoice} for inv in invoices]
            error = failed(await alby.call("multiPayInvoice", {"invoices": items}))
            assert error["name"] == "Nip47UnexpectedResponseError"
            assert error["code"] == "OTHER"
            assert "same" in error["message"]

        with subtests.test("multiPayKeysend with and without ids"):
            keysends = [
                {"id": "k-0", "pubkey": payee, "amount": 1000, "preimage": "c0" * 32},
                {"id": "k-1", "pubkey": sim.payee_pubkeys[1], "amount": 1000},
                {"pubkey": sim.payee_pubkeys[2], "amount": 1000, "preimage": "c2" * 32},
            ]
            result = ok(await alby.call("multiPayKeysend", {"keysends": keysends}))
            by_d = {item["dTag"]: item["preimage"] for item in result["keysends"]}
            assert set(by_d) == {"k-0", "k-1", sim.payee_pubkeys[2]}
            assert by_d["k-0"] == "c0" * 32
            assert by_d[sim.payee_pubkeys[2]] == "c2" * 32
            assert len(bytes.fromhex(by_d["k-1"])) == 32  # nwcd made the preimage

        with subtests.test("every request in the chosen encryption"):
            assert ok(await alby.call("encryptionType")) == encryption
