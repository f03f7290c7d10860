"""multi_pay_invoice end to end: service + simulator + real relay + raw app / client SDK."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from nwcd import bolt11
from nwcd.client.client import InvoiceRequest, NWCClient
from nwcd.relay.pool import RelayPool
from tests.service.harness import RawApp, WalletHarness


@pytest.fixture
async def wallet(tmp_path: object, relay_url: str) -> AsyncIterator[WalletHarness]:
    async with WalletHarness(tmp_path, [relay_url]) as harness:  # type: ignore[arg-type]
        yield harness


@pytest.fixture
async def pool(relay_url: str) -> AsyncIterator[RelayPool]:
    async with RelayPool([relay_url]) as relays:
        await relays.wait_connected(10)
        yield relays


def foreign_invoice(network: bolt11.Network, *, timestamp: int | None = None) -> str:
    """A valid invoice the simulator cannot route to."""
    return bolt11.encode(
        secret=os.urandom(32),
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        timestamp=timestamp if timestamp is not None else int(time.time()),
        network=network,
        amount_msat=5_000,
        description="elsewhere",
    )


async def test_mixed_batch_answers_every_item_once(wallet: WalletHarness, pool: RelayPool) -> None:
    uri = await wallet.connect()
    await wallet.start()
    sim = wallet.backend
    fast = await sim.create_invoice(10_000, latency_ms=20, fee_msat=7)
    slow = await sim.create_invoice(20_000, latency_ms=300)
    failing = await sim.create_invoice(30_000, outcome="fail")
    amountless = await sim.create_invoice(None, latency_ms=10)
    mismatch = await sim.create_invoice(40_000)
    no_id = await sim.create_invoice(50_000, latency_ms=5)
    float_amount = await sim.create_invoice(None)
    expired = foreign_invoice(bolt11.Network.REGTEST, timestamp=int(time.time()) - 7200)
    items = [
        {"id": "fast", "invoice": fast.invoice},
        {"id": "slow", "invoice": slow.invoice},
        {"id": "failing", "invoice": failing.invoice},
        {"id": "amountless", "invoice": amountless.invoice, "amount": 12_345},
        {"id": "mismatch", "invoice": mismatch.invoice, "amount": 1},
        {"id": "unroutable", "invoice": foreign_invoice(bolt11.Network.REGTEST)},
        {"id": "mainnet", "invoice": foreign_invoice(bolt11.Network.MAINNET)},
        {"id": "expired", "invoice": expired},
        {"id": "garbage", "invoice": "lnbcrt1notaninvoice"},
        {"id": "float", "invoice": float_amount.invoice, "amount": 1.5},
        {"invoice": no_id.invoice},
        {"invoice": "lnbcrt1garbagewithoutid"},
    ]
    app = RawApp(uri, pool)
    request = app.request("multi_pay_invoice", {"invoices": items})
    responses = await app.send(request, expect=len(items), timeout=15, settle=0.5)

    by_d = {event.tag_value("d"): (event, response) for event, response in responses}
    assert len(responses) == len(items), "exactly one response per item"
    assert set(by_d) == {
        "fast",
        "slow",
        "failing",
        "amountless",
        "mismatch",
        "unroutable",
        "mainnet",
        "expired",
        "garbage",
        "float",
        no_id.payment_hash,
        "lnbcrt1garbagewithoutid",
    }
    for event, response in responses:
        assert event.tag_value("e") == request.id
        assert event.tag_value("p") == uri.client_pubkey.hex
        assert response.result_type == "multi_pay_invoice"

    def paid(d: str, payment_hash: str) -> int:
        event, response = by_d[d]
        assert response.error is None, response.error
        assert response.result is not None
        preimage = response.result["preimage"]
        assert hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash
        assert event.tag_value("payment_hash") == payment_hash
        return int(response.result["fees_paid"])

    assert paid("fast", fast.payment_hash) == 7
    assert paid("slow", slow.payment_hash) == 0
    assert paid("amountless", amountless.payment_hash) == 0
    assert paid(no_id.payment_hash, no_id.payment_hash) == 0

    def failed(d: str) -> tuple[str, str]:
        response = by_d[d][1]
        assert response.error is not None
        assert response.result is None
        return response.error.code, response.error.message

    assert failed("failing")[0] == "PAYMENT_FAILED"
    assert failed("unroutable") == ("PAYMENT_FAILED", "payment failed: no route")
    assert "does not match the invoice amount" in failed("mismatch")[1]
    assert "network" in failed("mainnet")[1]
    assert failed("expired")[1] == "invoice has expired"
    assert failed("garbage")[1].startswith("invalid invoice")
    assert "amount" in failed("float")[1]
    assert failed("lnbcrt1garbagewithoutid")[1].startswith("invalid invoice")
    # The undecodable items carry no payment_hash tag; the others do.
    assert by_d["garbage"][0].tag_value("payment_hash") is None

    balance = await sim.get_balance()
    spent = 10_000 + 7 + 20_000 + 12_345 + 50_000
    assert balance == 100_000_000_000 - spent


async def test_duplicate_ids_fail_the_whole_request(wallet: WalletHarness, pool: RelayPool) -> None:
    uri = await wallet.connect()
    await wallet.start()
    one = await wallet.backend.create_invoice(1_000)
    two = await wallet.backend.create_invoice(2_000)
    app = RawApp(uri, pool)
    request = app.request(
        "multi_pay_invoice",
        {"invoices": [{"id": "x", "invoice": one.invoice}, {"id": "x", "invoice": two.invoice}]},
    )
    [(event, response)] = await app.send(request, expect=1, settle=0.5)
    assert event.tag_value("d") is None
    assert response.error is not None
    assert "unique id" in response.error.message
    assert await wallet.backend.get_balance() == 100_000_000_000


async def test_same_invoice_paid_once_then_answered_from_the_store(
    wallet: WalletHarness, pool: RelayPool
) -> None:
    uri = await wallet.connect()
    await wallet.start()
    invoice = await wallet.backend.create_invoice(3_000, latency_ms=100, fee_msat=3)
    app = RawApp(uri, pool)
    # Twice in one batch (distinct ids): the second joins the first, never pays again.
    request = app.request(
        "multi_pay_invoice",
        {
            "invoices": [
                {"id": "a", "invoice": invoice.invoice},
                {"id": "b", "invoice": invoice.invoice},
            ]
        },
    )
    responses = await app.send(request, expect=2, settle=0.3)
    preimages = {response.result["preimage"] for _, response in responses if response.result}
    assert preimages == {invoice.preimage}
    # Later, as pay_invoice: the stored preimage, no new payment.
    [(_, again)] = await app.send(app.request("pay_invoice", {"invoice": invoice.invoice}))
    assert again.result == {"preimage": invoice.preimage, "fees_paid": 3}
    assert await wallet.backend.get_balance() == 100_000_000_000 - 3_003


async def test_client_sdk_results_in_input_order(wallet: WalletHarness) -> None:
    uri = await wallet.connect()
    await wallet.start()
    sim = wallet.backend
    made = [
        await sim.create_invoice(1_000 * (i + 1), latency_ms=(5 - i) * 40, outcome=outcome)
        for i, outcome in enumerate(["succeed", "fail", "succeed", "succeed", "fail"])
    ]
    async with NWCClient.from_uri(uri, timeout=10) as client:
        assert "multi_pay_invoice" in client.info.methods
        results = await client.multi_pay_invoice([InvoiceRequest(m.invoice) for m in made])
    assert [r.invoice for r in results] == [m.invoice for m in made]
    assert [r.ok for r in results] == [True, False, True, True, False]
    for result, m in zip(results, made, strict=True):
        if result.ok:
            assert result.preimage == m.preimage
        else:
            assert result.error is not None
            assert result.error.code == "PAYMENT_FAILED"


async def test_keysend_batch(wallet: WalletHarness, pool: RelayPool) -> None:
    uri = await wallet.connect()
    await wallet.start()
    payee = wallet.backend.payee_pubkeys[0]
    app = RawApp(uri, pool)
    request = app.request(
        "multi_pay_keysend",
        {
            "keysends": [
                {"id": "k1", "pubkey": payee, "amount": 1_000},
                {"pubkey": wallet.backend.payee_pubkeys[1], "amount": 2_000},
                {"id": "k3", "pubkey": "02" + "11" * 32, "amount": 3_000},
                {"id": "k4", "pubkey": payee, "amount": "lots"},
            ]
        },
    )
    responses = await app.send(request, expect=4, settle=0.3)
    by_d = {event.tag_value("d"): response for event, response in responses}
    assert set(by_d) == {"k1", wallet.backend.payee_pubkeys[1], "k3", "k4"}
    assert by_d["k1"].error is None
    assert by_d[wallet.backend.payee_pubkeys[1]].error is None
    assert by_d["k3"].error is not None
    assert by_d["k3"].error.code == "PAYMENT_FAILED"
    assert by_d["k4"].error is not None
    assert "amount" in by_d["k4"].error.message


async def test_other_methods(wallet: WalletHarness) -> None:
    uri = await wallet.connect()
    other_uri = await wallet.connect("other")
    await wallet.start()
    async with NWCClient.from_uri(uri, timeout=10) as client:
        info = await client.get_info()
        assert info["network"] == "regtest"
        assert "multi_pay_invoice" in info["methods"]
        assert await client.get_balance() == 100_000_000_000
        tx = await client.make_invoice(21_000, description="coffee")
        assert tx.amount_msat == 21_000
        found = await client.lookup_invoice(payment_hash=tx.payment_hash)
        assert found.payment_hash == tx.payment_hash
        signature = await client.sign_message("hello")
        assert signature
        payee = await wallet.backend.create_invoice(4_000)
        await client.pay_invoice(payee.invoice)
        listed = await client.list_transactions()
        assert [t.payment_hash for t in listed] == [payee.payment_hash]
    # Another app sees none of it.
    async with NWCClient.from_uri(other_uri, timeout=10) as other:
        assert await other.list_transactions() == []
        with pytest.raises(Exception, match="not found"):
            await other.lookup_invoice(payment_hash=tx.payment_hash)


async def test_same_hash_in_two_concurrent_requests_is_paid_once(
    wallet: WalletHarness, pool: RelayPool
) -> None:
    """A batch with many bad items before the shared hash must still join, not pay again."""
    import asyncio

    uri = await wallet.connect()
    await wallet.start()
    payee = wallet.backend.payee_pubkeys[0]
    preimage = "ab" * 32
    app = RawApp(uri, pool)
    single = app.request("pay_keysend", {"pubkey": payee, "amount": 7_000, "preimage": preimage})
    bad = [{"id": f"bad{i}", "pubkey": payee, "amount": "x"} for i in range(30)]
    batch = app.request(
        "multi_pay_keysend",
        {
            "keysends": [
                *bad,
                {"id": "shared", "pubkey": payee, "amount": 7_000, "preimage": preimage},
            ]
        },
    )
    first, second = await asyncio.gather(app.send(single), app.send(batch, expect=31, timeout=15))
    [(_, alone)] = first
    shared = next(response for event, response in second if event.tag_value("d") == "shared")
    assert alone.result is not None
    assert alone.result["preimage"] == preimage
    # The batch's copy joined the first payment or was told it is already being paid:
    # either way the wallet paid exactly once.
    assert shared.result == alone.result or (
        shared.error is not None and "already" in shared.error.message
    )
    assert await wallet.backend.get_balance() == 100_000_000_000 - 7_000


async def test_forged_copy_of_a_verified_request_is_dropped() -> None:
    """A relay re-sending a verified request with a field changed (expiration removed)
    under the same id and signature must not get it past the pool."""
    import json

    from websockets.asyncio.server import ServerConnection, serve

    from nwcd.nostr.event import sign_event
    from nwcd.nostr.filters import Filter
    from nwcd.nostr.keys import SecretKey
    from nwcd.relay.pool import PoolOptions

    secret = SecretKey.generate()
    genuine = sign_event(
        secret, kind=23194, content="c", tags=[["expiration", "1"]], created_at=int(time.time())
    )
    forged = {**genuine.to_json(), "tags": []}

    async def evil_relay(ws: ServerConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message[0] == "REQ":
                await ws.send(json.dumps(["EVENT", message[1], genuine.to_json()]))
                await ws.send(json.dumps(["EVENT", message[1], forged]))

    async with serve(evil_relay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        options = PoolOptions(copy_window=0.0)
        async with RelayPool([f"ws://127.0.0.1:{port}"], options=options) as relays:
            subscription = await relays.subscribe([Filter(kinds=(23194,))])
            first = await subscription.get()
            assert first.tags == genuine.tags
            await __import__("asyncio").sleep(0.2)
            assert subscription.get_nowait() is None


async def test_the_apps_metadata_comes_back_in_lookups_and_lists(wallet: WalletHarness) -> None:
    """Kept by the service for every backend: pay_invoice, pay_keysend, batch items and
    make_invoice metadata, in lookup_invoice and list_transactions of the app that sent
    it; metadata over 4096 characters is dropped, as NIP-47 says."""
    uri = await wallet.connect()
    await wallet.start()
    sim = wallet.backend
    single, batched, oversized = [await sim.create_invoice(1_000 + i) for i in range(3)]
    async with NWCClient.from_uri(uri, timeout=10) as client:
        await client.pay_invoice(single.invoice, metadata={"order": "A-1", "items": [1, 2]})
        keysend = await client.pay_keysend(
            sim.payee_pubkeys[0], 2_000, metadata={"comment": "zap ⚡"}
        )
        await client.call(
            "multi_pay_invoice",
            {
                "invoices": [
                    {"id": "b", "invoice": batched.invoice, "metadata": {"batch": 7}},
                    {"id": "o", "invoice": oversized.invoice, "metadata": {"x": "y" * 5000}},
                ]
            },
        )
        made = await client.make_invoice(3_000, metadata={"cart": 42})
        assert made.metadata == {"cart": 42}
        keysend_hash = hashlib.sha256(bytes.fromhex(keysend["preimage"])).hexdigest()
        expected = {
            single.payment_hash: {"order": "A-1", "items": [1, 2]},
            keysend_hash: {"comment": "zap ⚡"},
            batched.payment_hash: {"batch": 7},
            oversized.payment_hash: None,
            made.payment_hash: {"cart": 42},
        }
        for payment_hash, metadata in expected.items():
            found = await client.lookup_invoice(payment_hash=payment_hash)
            assert found.metadata == metadata, payment_hash
        listed = await client.list_transactions(unpaid=True)
        assert {tx.payment_hash: tx.metadata for tx in listed} == expected
