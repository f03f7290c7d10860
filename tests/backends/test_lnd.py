"""The LND REST adapter against a real regtest network (btcd + LND nodes A -> B -> C).

Node A is the wallet; B is one hop away, C two. The network comes up once per test
session (``lnd_network.py``; the session fixture ``network`` in ``conftest.py`` is
shared with tests/contract); the binaries come from ``scripts/setup-lnd.sh``
(skipped only when ``go`` is missing). The last tests run the whole service on node A: a mixed
``multi_pay_invoice``, a crash while a hold invoice keeps a payment in flight, and
the timing of 20 invoices paid concurrently vs one by one.

A few tests at the top need no network: they drive the adapter through
``httpx.MockTransport`` for the cases a healthy node never produces.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from nwcd import bolt11
from nwcd.backends.lnd import LndBackend, LndConfig, LndError
from nwcd.errors import BackendTimeout, BackendUnavailable, ErrorCode, RequestError
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    TlvRecord,
)
from nwcd.nip47.results import Response
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.ports import NOT_FOUND, Failed, Pending, Succeeded
from nwcd.relay.pool import RelayPool
from nwcd.service.daemon import DaemonOptions
from nwcd.service.pipeline import ServiceSettings
from tests.backends.lnd_network import LndHarness, LndNetwork, LndNode, connections_to
from tests.service.harness import RawApp

log = logging.getLogger(__name__)

T = TypeVar("T")
MACAROON = "0201036c6e64"


# --- helpers ---------------------------------------------------------------------------------


async def eventually(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 30) -> T:
    """Poll ``probe`` until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def on(node: LndNode, method: str, *args: Any) -> Awaitable[Any]:
    """Call a (blocking) node helper in a thread, so the service keeps running."""
    return asyncio.to_thread(getattr(node, method), *args)


def decoded(invoice: str) -> bolt11.Invoice:
    return bolt11.decode(invoice)


def foreign_invoice(*, amount_msat: int = 5_000) -> bolt11.Invoice:
    """A valid regtest invoice of a node nobody can route to."""
    text = bolt11.encode(
        secret=os.urandom(32),
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        timestamp=int(time.time()),
        network=bolt11.Network.REGTEST,
        amount_msat=amount_msat,
        description="nowhere",
    )
    return bolt11.decode(text)


def checks(preimage: str, payment_hash: str) -> bool:
    return hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """A measurement: logged, and printed past pytest's capture."""
    log.warning("%s", line)
    with capsys.disabled():
        print(f"\n[lnd] {line}")


# --- no network: the adapter's edge, through httpx.MockTransport ---------------------------


def mock_backend(handler: Callable[[httpx.Request], httpx.Response]) -> Awaitable[LndBackend]:
    config = LndConfig("https://lnd.invalid:8080", MACAROON, None, timeout=2, payment_timeout=2)
    return LndBackend.open(config, transport=httpx.MockTransport(handler))


def test_config_keeps_the_macaroon_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "admin.macaroon").write_bytes(bytes.fromhex(MACAROON))
    config = LndConfig.from_files("https://127.0.0.1:8080", tmp_path / "admin.macaroon", None)
    assert config.macaroon == MACAROON
    assert MACAROON not in repr(config)
    with pytest.raises(ValueError, match="hex"):
        LndConfig("https://x", "not hex\r\nX-Evil: 1")
    with pytest.raises(ValueError, match="https"):
        LndConfig("ftp://x", MACAROON)


async def test_transport_errors_become_backend_errors() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>not json")

    for handler, error in ((broken, BackendUnavailable), (slow, BackendTimeout)):
        backend = await mock_backend(handler)
        with pytest.raises(error) as caught:
            await backend.get_info()
        assert MACAROON not in str(caught.value)
        # A payment whose request may or may not have reached the node is never failed.
        outcome = await backend.pay_invoice(foreign_invoice(), amount_msat=5_000, fee_limit_msat=1)
        assert isinstance(outcome, Pending)
        await backend.close()
    backend = await mock_backend(garbage)
    with pytest.raises(BackendUnavailable, match="unexpected response"):
        await backend.get_balance()
    assert isinstance(
        await backend.pay_invoice(foreign_invoice(), amount_msat=1, fee_limit_msat=1), Pending
    )
    await backend.close()


async def test_a_stream_that_ends_in_flight_or_unrecognized_is_pending() -> None:
    lines = [
        {"result": {"status": "IN_FLIGHT", "payment_hash": "00" * 32}},
        {"result": {"status": "SOMETHING_NEW"}},
    ]

    def in_flight(request: httpx.Request) -> httpx.Response:
        assert request.headers["Grpc-Metadata-macaroon"] == MACAROON
        body = json.loads(request.content)
        assert int(body["fee_limit_msat"]) > 0  # zero would make multi-hop payments fail
        return httpx.Response(200, text="\n".join(json.dumps(line) for line in lines) + "\n")

    backend = await mock_backend(in_flight)
    outcome = await backend.pay_invoice(foreign_invoice(), amount_msat=5_000, fee_limit_msat=0)
    assert outcome == Pending("unrecognized payment status 'SOMETHING_NEW'")
    await backend.close()


async def test_send_errors_map_to_outcomes() -> None:
    def conflict(message: str) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(409, json={"code": 6, "message": message, "details": []})

        return handler

    backend = await mock_backend(conflict("invoice is already paid"))
    paid = await backend.pay_invoice(foreign_invoice(), amount_msat=5_000, fee_limit_msat=1)
    assert paid == Failed("invoice already paid")
    await backend.close()
    backend = await mock_backend(conflict("payment is in transition"))
    moving = await backend.pay_invoice(foreign_invoice(), amount_msat=5_000, fee_limit_msat=1)
    assert isinstance(moving, Pending)
    await backend.close()

    def refused_and_track_broken(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v2/router/track/"):
            return httpx.Response(503, text="down")
        return httpx.Response(500, json={"code": 2, "message": "something odd"})

    # A refusal is only a failure once LND confirms the payment does not exist.
    backend = await mock_backend(refused_and_track_broken)
    unsure = await backend.pay_invoice(foreign_invoice(), amount_msat=5_000, fee_limit_msat=1)
    assert isinstance(unsure, Pending)
    with pytest.raises(LndError):
        await backend.payment_status("11" * 32)
    assert await backend.payment_status("not a hash") == Failed(NOT_FOUND)
    await backend.close()


# --- the network -------------------------------------------------------------------------------


@pytest.fixture
async def backend(network: LndNetwork) -> AsyncIterator[LndBackend]:
    async with await LndBackend.open(network.a.config(timeout=10, payment_timeout=30)) as lnd:
        yield lnd


async def test_network_bring_up_time(
    network: LndNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    timings = ", ".join(f"{k} at {v:.1f} s" for k, v in network.timings.items())
    report(
        capsys,
        f"bring-up btcd + A, B, C with channels: {network.bringup_seconds:.1f} s ({timings})",
    )
    assert network.bringup_seconds < 120


async def test_get_info(backend: LndBackend, network: LndNetwork) -> None:
    info = await backend.get_info()
    assert info.alias == "A"
    assert info.pubkey == network.a.pubkey
    assert info.network == "regtest"
    assert info.block_height >= 117
    assert len(info.block_hash) == 64
    assert info.color.startswith("#")


async def test_get_balance_is_the_local_channel_balance(
    backend: LndBackend, network: LndNetwork
) -> None:
    balance = await backend.get_balance()
    channels = await on(network.a, "call", "GET", "/v1/balance/channels")
    assert balance == int(channels["local_balance"]["msat"])
    assert 0 < balance < 2_000_000_000


async def test_sign_message_verifies_on_another_node(
    backend: LndBackend, network: LndNetwork
) -> None:
    message = "nwcd says hello ✓"
    signature = await backend.sign_message(message)
    verified = await on(
        network.b,
        "call",
        "POST",
        "/v1/verifymessage",
        {"msg": base64.b64encode(message.encode()).decode(), "signature": signature},
    )
    assert verified["valid"] is True
    assert verified["pubkey"] == network.a.pubkey


async def test_make_invoice_and_lookup(backend: LndBackend, network: LndNetwork) -> None:
    tx = await backend.make_invoice(
        MakeInvoiceParams(amount_msat=123_000, description="coffee", expiry=600)
    )
    assert tx.type == "incoming"
    assert tx.state == "pending"
    assert tx.amount_msat == 123_000
    assert tx.description == "coffee"
    assert tx.invoice is not None
    assert tx.expires_at == tx.created_at + 600
    invoice = decoded(tx.invoice)
    assert invoice.payee == network.a.pubkey
    assert invoice.payment_hash == tx.payment_hash
    assert invoice.amount_msat == 123_000
    assert await backend.lookup_invoice(payment_hash=tx.payment_hash, invoice=None) == tx
    assert await backend.lookup_invoice(payment_hash=None, invoice=tx.invoice) == tx
    assert await backend.lookup_invoice(payment_hash="ab" * 32, invoice=None) is None

    hashed = await backend.make_invoice(
        MakeInvoiceParams(amount_msat=0, description_hash=hashlib.sha256(b"zap").hexdigest())
    )
    assert hashed.description_hash == hashlib.sha256(b"zap").hexdigest()
    assert hashed.invoice is not None
    assert decoded(hashed.invoice).amount_msat is None


async def test_incoming_payments_reports_settled_invoices(
    backend: LndBackend, network: LndNetwork
) -> None:
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def consume() -> None:
        async for tx in backend.incoming_payments():
            await received.put(tx)

    consumer = asyncio.create_task(consume())

    async def pay_until_seen() -> Any:
        # The subscription has no "ready" signal: pay fresh invoices until one shows up.
        tx = await backend.make_invoice(MakeInvoiceParams(amount_msat=21_000, description="tip"))
        paid = await on(network.b, "pay", tx.invoice)
        assert paid["status"] == "SUCCEEDED", paid
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while True:
                    got = await received.get()
                    if got.payment_hash == tx.payment_hash:
                        return got
        return None

    try:
        got = await eventually("a payment_received", pay_until_seen, 30)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    assert got.state == "settled"
    assert got.amount_msat == 21_000
    assert checks(got.preimage, got.payment_hash)
    looked = await backend.lookup_invoice(payment_hash=got.payment_hash, invoice=None)
    assert looked is not None
    assert looked.state == "settled"
    assert looked.preimage == got.preimage
    assert looked.settled_at is not None


async def test_pay_direct_and_two_hops(
    backend: LndBackend, network: LndNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    latencies: dict[str, list[float]] = {"direct (A->B)": [], "two hops (A->B->C)": []}
    for _ in range(3):
        for label, node in (("direct (A->B)", network.b), ("two hops (A->B->C)", network.c)):
            invoice = decoded((await on(node, "add_invoice", 50_000, "hop"))["payment_request"])
            start = time.perf_counter()
            outcome = await backend.pay_invoice(invoice, amount_msat=50_000, fee_limit_msat=10_000)
            latencies[label].append(time.perf_counter() - start)
            assert isinstance(outcome, Succeeded), outcome
            assert checks(outcome.preimage, invoice.payment_hash)
            if node is network.b:
                assert outcome.fee_msat == 0
            else:
                assert outcome.fee_msat > 0  # B's routing fee (base fee 1 sat)
            settled = await on(node, "invoice", invoice.payment_hash)
            assert settled["state"] == "SETTLED"
            assert await backend.payment_status(invoice.payment_hash) == outcome
    report(
        capsys,
        "payment latency over REST: "
        + "; ".join(
            f"{label} {min(v) * 1000:.0f}-{max(v) * 1000:.0f} ms" for label, v in latencies.items()
        ),
    )
    # The same invoice again is refused without paying twice.
    again = await backend.pay_invoice(invoice, amount_msat=50_000, fee_limit_msat=10_000)
    assert again == Failed("invoice already paid")
    assert len(await on(network.a, "payments_for", invoice.payment_hash)) == 1


async def test_payments_reuse_the_connections_to_lnd(
    backend: LndBackend, network: LndNetwork
) -> None:
    """A finished payment's stream is read to its end, so its connection goes back to
    the pool: payments one after another use one TLS connection, and a second batch
    of concurrent payments opens none beyond the first batch's."""
    port = int(network.a.config().url.rsplit(":", 1)[1])
    before = connections_to(port)
    opened: set[int] = set()

    async def pay_invoices(count: int, concurrently: bool) -> None:
        made = [await on(network.b, "add_invoice", 1_000, "reuse") for _ in range(count)]
        invoices = [decoded(m["payment_request"]) for m in made]
        payments = (
            backend.pay_invoice(i, amount_msat=1_000, fee_limit_msat=1_000) for i in invoices
        )
        if concurrently:
            outcomes = await asyncio.gather(*payments)
        else:
            outcomes = [await payment for payment in payments]
        assert all(isinstance(o, Succeeded) for o in outcomes), outcomes
        opened.update(connections_to(port) - before)

    await pay_invoices(4, concurrently=False)
    assert len(opened) == 1
    await pay_invoices(6, concurrently=True)
    first_batch = set(opened)
    await pay_invoices(6, concurrently=True)
    assert opened == first_batch
    assert len(opened) <= 6


async def test_pay_amountless_invoice(backend: LndBackend, network: LndNetwork) -> None:
    invoice = decoded((await on(network.c, "add_invoice", 0, "any amount"))["payment_request"])
    assert invoice.amount_msat is None
    outcome = await backend.pay_invoice(invoice, amount_msat=7_777_000, fee_limit_msat=100_000)
    assert isinstance(outcome, Succeeded), outcome
    settled = await on(network.c, "invoice", invoice.payment_hash)
    assert int(settled["amt_paid_msat"]) == 7_777_000


async def test_keysend_with_tlv_records(backend: LndBackend, network: LndNetwork) -> None:
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    outcome = await backend.pay_keysend(
        pubkey=network.c.pubkey,
        amount_msat=12_345_000,
        preimage=preimage.hex(),
        tlv_records=(TlvRecord(696969, "0102ff"),),
        fee_limit_msat=100_000,
    )
    assert outcome == Succeeded(
        preimage.hex(), outcome.fee_msat if isinstance(outcome, Succeeded) else -1
    )
    received = await on(network.c, "invoice", payment_hash)
    assert received["is_keysend"] is True
    assert received["state"] == "SETTLED"
    assert int(received["amt_paid_msat"]) == 12_345_000
    records = received["htlcs"][0]["custom_records"]
    assert base64.b64decode(records["696969"]) == bytes.fromhex("0102ff")
    assert await backend.payment_status(payment_hash) == outcome
    looked = await backend.lookup_invoice(payment_hash=payment_hash, invoice=None)
    assert looked is not None
    assert looked.type == "outgoing"
    assert looked.state == "settled"


async def test_failures_are_definite(backend: LndBackend, network: LndNetwork) -> None:
    nowhere = foreign_invoice()
    unknown = await backend.pay_invoice(nowhere, amount_msat=5_000, fee_limit_msat=10_000)
    assert unknown == Failed("no route")

    big = decoded(
        (await on(network.b, "add_invoice", 3_000_000_000, "too large"))["payment_request"]
    )
    too_large = await backend.pay_invoice(big, amount_msat=3_000_000_000, fee_limit_msat=30_000_000)
    assert isinstance(too_large, Failed), too_large
    assert too_large.reason in ("insufficient balance", "no route")

    expired = decoded(network.expired_invoice)
    assert expired.is_expired(int(time.time()))
    gone = await backend.pay_invoice(expired, amount_msat=10_000, fee_limit_msat=10_000)
    assert isinstance(gone, Failed), gone
    assert "expired" in gone.reason

    assert await backend.payment_status(os.urandom(32).hex()) == Failed(NOT_FOUND)
    assert await backend.payment_status(nowhere.payment_hash) == Failed("no route")


async def test_hold_invoice_is_pending_until_settled(network: LndNetwork) -> None:
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    hold = await on(network.c, "add_hold_invoice", bytes.fromhex(payment_hash), 30_000)
    invoice = decoded(hold["payment_request"])
    config = network.a.config(timeout=10, payment_timeout=1)
    async with await LndBackend.open(config) as impatient:
        outcome = await impatient.pay_invoice(invoice, amount_msat=30_000, fee_limit_msat=10_000)
        assert isinstance(outcome, Pending)  # waited its payment_timeout: unknown, not failed
        assert isinstance(await impatient.payment_status(payment_hash), Pending)
        again = await impatient.pay_invoice(invoice, amount_msat=30_000, fee_limit_msat=10_000)
        assert again == Pending("payment already in flight")
        await on(network.c, "settle_hold_invoice", preimage)

        async def final() -> Any:
            status = await impatient.payment_status(payment_hash)
            return None if isinstance(status, Pending) else status

        assert await eventually("the settled hold payment", final) == Succeeded(
            preimage.hex(), (await final()).fee_msat
        )


async def test_hold_invoices_made_held_settled_and_canceled(
    backend: LndBackend, network: LndNetwork
) -> None:
    """A's hold invoices paid by B: held (reported on the incoming stream with its
    deadline), then settled or canceled; B's payment ends accordingly."""
    stream = backend.incoming_payments()

    async def next_about(payment_hash: str) -> Any:
        async with asyncio.timeout(30):
            while True:
                tx = await anext(stream)
                if tx.payment_hash == payment_hash:
                    return tx

    kept = os.urandom(32)
    kept_hash = hashlib.sha256(kept).hexdigest()
    made = await backend.make_hold_invoice(
        MakeHoldInvoiceParams(
            45_000, kept_hash, description="held", expiry=600, min_cltv_expiry_delta=40
        )
    )
    assert (made.payment_hash, made.state, made.amount_msat) == (kept_hash, "pending", 45_000)
    assert made.invoice is not None
    invoice = decoded(made.invoice)
    assert (invoice.payment_hash, invoice.min_final_cltv_expiry) == (kept_hash, 40)
    with pytest.raises(RequestError) as early:
        await backend.settle_hold_invoice(kept.hex())  # nothing held yet
    assert early.value.code is ErrorCode.OTHER
    paying = asyncio.create_task(on(network.b, "pay", made.invoice))
    held = await next_about(kept_hash)
    assert (held.state, held.amount_msat) == ("accepted", 45_000)
    assert held.settle_deadline is not None
    assert held.settle_deadline >= await on(network.a, "height") + 40
    looked = await backend.lookup_invoice(payment_hash=kept_hash, invoice=None)
    assert looked is not None
    assert looked.state == "accepted"
    await backend.settle_hold_invoice(kept.hex())
    assert (await paying)["status"] == "SUCCEEDED"
    settled = await next_about(kept_hash)
    assert (settled.state, settled.preimage) == ("settled", kept.hex())
    with pytest.raises(RequestError) as late:
        await backend.cancel_hold_invoice(kept_hash)
    assert late.value.code is ErrorCode.OTHER

    given_back = hashlib.sha256(os.urandom(32)).hexdigest()
    made = await backend.make_hold_invoice(MakeHoldInvoiceParams(46_000, given_back))
    assert made.invoice is not None
    paying = asyncio.create_task(on(network.b, "pay", made.invoice))
    assert (await next_about(given_back)).state == "accepted"
    await backend.cancel_hold_invoice(given_back)
    await backend.cancel_hold_invoice(given_back)  # twice is fine
    assert (await paying)["status"] == "FAILED"
    looked = await backend.lookup_invoice(payment_hash=given_back, invoice=None)
    assert looked is not None
    assert looked.state == "failed"

    with pytest.raises(RequestError, match="cannot make the invoice"):
        await backend.make_hold_invoice(MakeHoldInvoiceParams(1_000, given_back))
    with pytest.raises(RequestError) as unknown:
        await backend.settle_hold_invoice(os.urandom(32).hex())
    assert unknown.value.code is ErrorCode.NOT_FOUND
    await stream.aclose()


async def test_a_payment_held_before_the_stream_started_is_reported(
    backend: LndBackend, network: LndNetwork
) -> None:
    """After a restart, hold invoices LND has open are watched: their held payment shows."""
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    async with await LndBackend.open(network.a.config(timeout=10)) as before_restart:
        made = await before_restart.make_hold_invoice(MakeHoldInvoiceParams(47_000, payment_hash))
    assert made.invoice is not None
    paying = asyncio.create_task(on(network.b, "pay", made.invoice))

    async def held() -> bool:
        return (await on(network.a, "invoice", payment_hash))["state"] == "ACCEPTED"

    await eventually("A holding the HTLC", held)
    stream = backend.incoming_payments()
    async with asyncio.timeout(30):
        tx = await anext(stream)
        while tx.payment_hash != payment_hash:
            tx = await anext(stream)
    assert tx.state == "accepted"
    await backend.settle_hold_invoice(preimage.hex())
    assert (await paying)["status"] == "SUCCEEDED"
    await stream.aclose()


async def test_list_transactions(backend: LndBackend, network: LndNetwork) -> None:
    invoice = decoded((await on(network.b, "add_invoice", 4_000, "listed"))["payment_request"])
    paid = await backend.pay_invoice(invoice, amount_msat=4_000, fee_limit_msat=10_000)
    assert isinstance(paid, Succeeded)
    unpaid = await backend.make_invoice(MakeInvoiceParams(amount_msat=1_000, description="unpaid"))

    everything = await backend.list_transactions(ListTransactionsParams(unpaid=True))
    assert [tx.created_at for tx in everything] == sorted(
        (tx.created_at for tx in everything), reverse=True
    )
    by_hash = {tx.payment_hash: tx for tx in everything}
    assert by_hash[invoice.payment_hash].type == "outgoing"
    assert by_hash[invoice.payment_hash].preimage == paid.preimage
    assert by_hash[invoice.payment_hash].description == "listed"
    assert by_hash[unpaid.payment_hash].state == "pending"

    settled = await backend.list_transactions(ListTransactionsParams())
    assert all(tx.state == "settled" for tx in settled)
    assert unpaid.payment_hash not in {tx.payment_hash for tx in settled}
    outgoing = await backend.list_transactions(ListTransactionsParams(type="outgoing", limit=2))
    assert len(outgoing) == 2
    assert all(tx.type == "outgoing" for tx in outgoing)
    incoming = await backend.list_transactions(
        ListTransactionsParams(type="incoming", unpaid=True, offset=1, limit=1)
    )
    assert len(incoming) == 1
    assert incoming[0].type == "incoming"
    future = await backend.list_transactions(
        ListTransactionsParams(from_time=int(time.time()) + 60)
    )
    assert future == []


async def test_bad_macaroon_is_a_backend_error_without_secrets(network: LndNetwork) -> None:
    config = LndConfig(network.a.url, "ab" * 40, network.a.tls_cert, timeout=5)
    async with await LndBackend.open(config) as wrong:
        with pytest.raises(LndError) as caught:
            await wrong.get_info()
    assert "ab" * 40 not in str(caught.value)
    unreachable = LndConfig("https://127.0.0.1:9", MACAROON, network.a.tls_cert, timeout=2)
    async with await LndBackend.open(unreachable) as nobody:
        with pytest.raises(BackendUnavailable):
            await nobody.get_balance()


# --- the whole service on node A ---------------------------------------------------------------


@pytest.fixture
async def service(
    network: LndNetwork, nwcd_relay: Any, tmp_path: Path
) -> AsyncIterator[tuple[LndHarness, RawApp, RelayPool]]:
    url = str(nwcd_relay.url)
    harness = LndHarness(
        tmp_path,
        [url],
        settings=ServiceSettings(resolve_interval=0.2),
        options=DaemonOptions(relays=(url,), connections_poll_interval=0.2, shutdown_grace=0.2),
        lnd=network.a.config(timeout=10, payment_timeout=30),
    )
    async with harness, RelayPool([url]) as pool:
        await pool.wait_connected(10)
        uri = await harness.connect()
        await harness.start()
        yield harness, RawApp(uri, pool), pool


def paid_preimage(response: Response, payment_hash: str) -> str:
    assert response.error is None, response.error
    assert response.result is not None
    preimage = str(response.result["preimage"])
    assert checks(preimage, payment_hash)
    return preimage


async def test_service_multi_pay_mixed_batch(
    service: tuple[LndHarness, RawApp, RelayPool], network: LndNetwork
) -> None:
    _, app, _ = service
    to_b = (await on(network.b, "add_invoice", 11_000, "b"))["payment_request"]
    to_c = (await on(network.c, "add_invoice", 22_000, "c"))["payment_request"]
    any_c = (await on(network.c, "add_invoice", 0, "c any"))["payment_request"]
    too_large = (await on(network.b, "add_invoice", 3_000_000_000, "big"))["payment_request"]
    items = [
        {"id": "b", "invoice": to_b},
        {"id": "c", "invoice": to_c},
        {"id": "any", "invoice": any_c, "amount": 33_000},
        {"id": "nowhere", "invoice": foreign_invoice().bolt11},
        {"id": "big", "invoice": too_large},
        {"id": "expired", "invoice": network.expired_invoice},
    ]
    request = app.request("multi_pay_invoice", {"invoices": items})
    responses = await app.send(request, expect=len(items), timeout=30, settle=0.3)
    by_d = {event.tag_value("d"): response for event, response in responses}
    assert sorted(by_d) == sorted(item["id"] for item in items)
    assert len(responses) == len(items)
    paid_preimage(by_d["b"], decoded(to_b).payment_hash)
    paid_preimage(by_d["c"], decoded(to_c).payment_hash)
    paid_preimage(by_d["any"], decoded(any_c).payment_hash)
    assert (
        int((await on(network.c, "invoice", decoded(any_c).payment_hash))["amt_paid_msat"])
        == 33_000
    )
    for failing in ("nowhere", "big", "expired"):
        error = by_d[failing].error
        assert error is not None, failing
        assert error.code == "PAYMENT_FAILED" or failing == "expired", error
    nowhere_error = by_d["nowhere"].error
    assert nowhere_error is not None
    assert nowhere_error.message == "payment failed: no route"


async def test_service_crash_with_a_hold_invoice_in_flight(
    service: tuple[LndHarness, RawApp, RelayPool], network: LndNetwork
) -> None:
    wallet, app, pool = service
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    hold = await on(network.c, "add_hold_invoice", bytes.fromhex(payment_hash), 40_000)
    request = app.request("pay_invoice", {"invoice": hold["payment_request"]})
    subscription = await pool.subscribe(
        [
            Filter(
                kinds=(Kind.NWC_RESPONSE,),
                authors=(app.uri.wallet_pubkey.hex,),
                tags={"e": (request.id,)},
            )
        ]
    )
    try:
        await pool.publish(request, timeout=5)

        async def held() -> bool:
            return (await on(network.c, "invoice", payment_hash))["state"] == "ACCEPTED"

        await eventually("C holding the HTLC", held)

        async def settle_while_down() -> None:
            await on(network.c, "settle_hold_invoice", preimage)

        await wallet.crash_and_reopen(settle_while_down)
        async with asyncio.timeout(30):
            event: Event = await subscription.get()
        _, response = app.open(event)
        assert paid_preimage(response, payment_hash) == preimage.hex()
        payments = await on(network.a, "payments_for", payment_hash)
        assert [p["status"] for p in payments] == ["SUCCEEDED"]
        assert len([h for h in payments[0]["htlcs"] if h["status"] == "SUCCEEDED"]) == 1
        wallet_pubkey = app.uri.wallet_pubkey.hex
        record = (await wallet.store.payments_by_hashes(wallet_pubkey, [payment_hash]))[
            payment_hash
        ]
        assert record.preimage == preimage.hex()
    finally:
        await subscription.close()


async def test_service_20_invoices_concurrent_vs_one_by_one(
    service: tuple[LndHarness, RawApp, RelayPool],
    network: LndNetwork,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, app, _ = service

    async def invoices(count: int) -> list[str]:
        made = [await on(network.c, "add_invoice", 1_000_000, f"batch {i}") for i in range(count)]
        return [m["payment_request"] for m in made]

    batch = await invoices(20)
    request = app.request(
        "multi_pay_invoice",
        {"invoices": [{"id": str(i), "invoice": inv} for i, inv in enumerate(batch)]},
    )
    start = time.perf_counter()
    responses = await app.send(request, expect=20, timeout=60)
    concurrent = time.perf_counter() - start
    assert len(responses) == 20
    for event, response in responses:
        paid_preimage(response, decoded(batch[int(event.tag_value("d") or -1)]).payment_hash)

    singles = await invoices(20)
    start = time.perf_counter()
    for invoice in singles:
        [(_, response)] = await app.send(
            app.request("pay_invoice", {"invoice": invoice}), timeout=30
        )
        paid_preimage(response, decoded(invoice).payment_hash)
    sequential = time.perf_counter() - start
    report(
        capsys,
        f"20 invoices of C (two hops) through the service: multi_pay_invoice {concurrent:.2f} s, "
        f"one by one {sequential:.2f} s ({sequential / concurrent:.1f}x)",
    )
