"""rust-nostr's NWC client (PyPI ``nostr-sdk`` 0.45.1, in-process) against nwcd's service.

Every method its ``NostrWalletConnect`` has (get_info, get_balance, pay_invoice,
pay_keysend, make_invoice, lookup_invoice, list_transactions; no multi-pay, no
notifications) goes through a real relay (nostr-relay, LocalRelay) to nwcd's daemon on the
simulator. It reads our info event and so speaks NIP-44 v2. Wallet errors arrive as
``NostrSdkError.Generic('... [Code]')``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from nostr_sdk import (  # type: ignore[import-untyped]
    ListTransactionsRequest,
    LookupInvoiceRequest,
    MakeInvoiceRequest,
    NostrSdkError,
    NostrWalletConnect,
    NostrWalletConnectBuilder,
    NostrWalletConnectUri,
    PayInvoiceRequest,
    PayKeysendRequest,
    TransactionState,
    TransactionType,
)

from nwcd import bolt11
from tests.interop.conftest import Served

pytestmark = pytest.mark.relay


@pytest.fixture
async def nwc(served: Served) -> AsyncIterator[NostrWalletConnect]:
    uri = NostrWalletConnectUri.parse(served.uri.format())
    client = NostrWalletConnectBuilder(uri).timeout(timedelta(seconds=10)).build()
    yield client
    await client.client().shutdown()


async def test_every_nostr_sdk_method(
    served: Served, nwc: NostrWalletConnect, subtests: pytest.Subtests
) -> None:
    sim = served.wallet.backend

    with subtests.test("get_info"):
        info = await nwc.get_info()
        assert info.network == "regtest"
        assert info.pubkey == sim.node_pubkey
        names = {str(method) for method in info.methods}
        assert any("PAY_INVOICE" in name for name in names), names
        assert set(info.notifications) == {
            "payment_received",
            "payment_sent",
            "hold_invoice_accepted",  # the connection may make hold invoices
        }

    balance = 0
    with subtests.test("get_balance"):
        balance = (await nwc.get_balance()).balance
        assert balance > 0

    paid_hash = ""
    with subtests.test("pay_invoice"):
        invoice = await sim.create_invoice(21_000, fee_msat=5)
        paid = await nwc.pay_invoice(
            PayInvoiceRequest(id=None, invoice=invoice.invoice, amount=None)
        )
        assert paid.preimage == invoice.preimage
        assert paid.fees_paid == 5
        assert (await nwc.get_balance()).balance == balance - 21_005
        paid_hash = invoice.payment_hash

    with subtests.test("pay_invoice amountless with amount"):
        invoice = await sim.create_invoice(None)
        paid = await nwc.pay_invoice(
            PayInvoiceRequest(id=None, invoice=invoice.invoice, amount=7_000)
        )
        assert paid.preimage == invoice.preimage

    with subtests.test("pay_invoice failing -> PAYMENT_FAILED"):
        invoice = await sim.create_invoice(1_000, outcome="fail")
        with pytest.raises(NostrSdkError) as caught:
            await nwc.pay_invoice(PayInvoiceRequest(id=None, invoice=invoice.invoice, amount=None))
        assert "[PaymentFailed]" in str(caught.value)

    with subtests.test("pay_keysend"):
        preimage = "cd" * 32
        sent = await nwc.pay_keysend(
            PayKeysendRequest(
                id=None,
                amount=3_000,
                pubkey=sim.payee_pubkeys[0],
                preimage=preimage,
                tlv_records=[],
            )
        )
        assert sent.preimage == preimage

    made_hash = made_invoice = ""
    with subtests.test("make_invoice"):
        made = await nwc.make_invoice(
            MakeInvoiceRequest(amount=15_000, description="rust", description_hash=None, expiry=600)
        )
        decoded = bolt11.decode(made.invoice)
        assert decoded.amount_msat == 15_000
        assert made.payment_hash == decoded.payment_hash
        made_hash, made_invoice = decoded.payment_hash, made.invoice

    with subtests.test("lookup_invoice"):
        found = await nwc.lookup_invoice(LookupInvoiceRequest(payment_hash=made_hash, invoice=None))
        assert found.invoice == made_invoice
        assert found.amount == 15_000
        assert found.state == TransactionState.PENDING
        assert found.transaction_type == TransactionType.INCOMING
        by_invoice = await nwc.lookup_invoice(
            LookupInvoiceRequest(payment_hash=None, invoice=made_invoice)
        )
        assert by_invoice.payment_hash == made_hash
        outgoing = await nwc.lookup_invoice(
            LookupInvoiceRequest(payment_hash=paid_hash, invoice=None)
        )
        assert outgoing.transaction_type == TransactionType.OUTGOING
        assert outgoing.state == TransactionState.SETTLED

    with subtests.test("lookup_invoice unknown -> NOT_FOUND"):
        with pytest.raises(NostrSdkError) as caught:
            await nwc.lookup_invoice(LookupInvoiceRequest(payment_hash="00" * 32, invoice=None))
        assert "[NotFound]" in str(caught.value)

    with subtests.test("list_transactions"):
        await sim.receive(made_hash)
        listed = await nwc.list_transactions(
            ListTransactionsRequest(
                _from=None,
                until=None,
                limit=20,
                offset=None,
                unpaid=None,
                transaction_type=None,
            )
        )
        by_hash = {tx.payment_hash: tx for tx in listed}
        assert by_hash[made_hash].state == TransactionState.SETTLED
        assert by_hash[paid_hash].transaction_type == TransactionType.OUTGOING
        created = [tx.created_at.as_secs() for tx in listed]
        assert created == sorted(created, reverse=True)
        incoming = await nwc.list_transactions(
            ListTransactionsRequest(
                _from=None,
                until=None,
                limit=None,
                offset=None,
                unpaid=None,
                transaction_type=TransactionType.INCOMING,
            )
        )
        assert {tx.transaction_type for tx in incoming} == {TransactionType.INCOMING}

    with subtests.test("error codes parse in rust-nostr's closed ErrorCode enum"):
        # nwcd sends only spec codes; a non-spec code would fail to deserialize there.
        mainnet = bolt11.encode(
            secret=os.urandom(32),
            payment_hash=os.urandom(32),
            payment_secret=os.urandom(32),
            timestamp=int(time.time()),
            network=bolt11.Network.MAINNET,
            amount_msat=5_000,
            description="elsewhere",
        )
        too_big = await sim.create_invoice(10**15)
        for text, code in [(mainnet, "[Other]"), (too_big.invoice, "[InsufficientBalance]")]:
            with pytest.raises(NostrSdkError) as caught:
                await nwc.pay_invoice(PayInvoiceRequest(id=None, invoice=text, amount=None))
            assert code in str(caught.value)
        with pytest.raises(NostrSdkError) as caught:
            await nwc.pay_keysend(
                PayKeysendRequest(
                    id=None, amount=1_000, pubkey="02" + "11" * 32, preimage=None, tlv_records=[]
                )
            )
        assert "[PaymentFailed]" in str(caught.value)
