"""The LNbits backend against a real LNbits 1.6.2 (FakeWallet, SQLite) on 127.0.0.1.

One LNbits process serves the whole test session (startup costs 10-30 s; the
session fixture ``lnbits`` is in ``conftest.py``, shared with tests/contract);
each test makes its own wallets, so balances are exact per test. Internal payments
between two LNbits wallets are real payments there. Responses the real server cannot be
made to produce (timeouts, 5xx, malformed JSON, unknown statuses) are tested with
``httpx.MockTransport`` at the end of the module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from nwcd import bolt11
from nwcd.backends.lnbits import MAX_CONCURRENT_PAYMENTS, LnbitsBackend, LnbitsConfig
from nwcd.errors import BackendTimeout, BackendUnavailable, ErrorCode, RequestError
from nwcd.nip47.methods import ListTransactionsParams, MakeInvoiceParams
from nwcd.ports import NOT_FOUND, Failed, Pending, Succeeded
from nwcd.relay.pool import RelayPool
from nwcd.relay.server import LocalRelay
from tests.backends.lnbits_server import LnbitsServer, LnbitsWallet
from tests.service.harness import RawApp, WalletHarness

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def payer(lnbits: LnbitsServer) -> LnbitsWallet:
    return lnbits.new_wallet("payer", fund_sat=100_000)


@pytest.fixture
def payee(lnbits: LnbitsServer) -> LnbitsWallet:
    return lnbits.new_wallet("payee")


def config(lnbits: LnbitsServer, wallet: LnbitsWallet, **kwargs: Any) -> LnbitsConfig:
    return LnbitsConfig(
        url=lnbits.url,
        admin_key=wallet.admin_key,
        invoice_key=wallet.invoice_key,
        timeout=10,
        **kwargs,
    )


@pytest.fixture
async def backend(lnbits: LnbitsServer, payer: LnbitsWallet) -> AsyncIterator[LnbitsBackend]:
    async with await LnbitsBackend.open(config(lnbits, payer)) as opened:
        yield opened


def decoded(payment: dict[str, Any]) -> bolt11.Invoice:
    return bolt11.decode(payment["bolt11"])


def foreign_invoice(amount_msat: int = 5_000) -> str:
    """A valid mainnet invoice FakeWallet did not make: it cannot pay it."""
    return bolt11.encode(
        secret=os.urandom(32),
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        timestamp=int(time.time()),
        network=bolt11.Network.MAINNET,
        amount_msat=amount_msat,
        description="elsewhere",
    )


# --- config -------------------------------------------------------------------------------


def test_config_repr_never_shows_keys() -> None:
    cfg = LnbitsConfig("http://127.0.0.1:1", admin_key="adminsecret", invoice_key="invsecret")
    for text in (repr(cfg), str(cfg), f"{cfg}"):
        assert "adminsecret" not in text
        assert "invsecret" not in text
        assert "<redacted>" in text
    assert cfg.read_key == "invsecret"
    assert LnbitsConfig("http://h", admin_key="a").read_key == "a"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "127.0.0.1:5000"},
        {"admin_key": ""},
        {"invoice_key": ""},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"network": "bitcoin"},
        {"max_concurrent_payments": 0},
        {"max_concurrent_payments": 1001},
    ],
)
def test_config_rejects(kwargs: dict[str, Any]) -> None:
    values: dict[str, Any] = {"url": "http://127.0.0.1:5000", "admin_key": "k", **kwargs}
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        LnbitsConfig(**values)


# --- paying -------------------------------------------------------------------------------


async def test_pay_invoice_succeeds_and_moves_money(
    lnbits: LnbitsServer, payer: LnbitsWallet, payee: LnbitsWallet, backend: LnbitsBackend
) -> None:
    invoice = decoded(lnbits.invoice(payee, 1_000))
    started = time.perf_counter()
    outcome = await backend.pay_invoice(invoice, amount_msat=1_000_000, fee_limit_msat=10_000)
    latency = time.perf_counter() - started
    assert isinstance(outcome, Succeeded), outcome
    assert hashlib.sha256(bytes.fromhex(outcome.preimage)).hexdigest() == invoice.payment_hash
    assert outcome.fee_msat == 0  # internal payment; LNbits stores fees as negative msat
    assert lnbits.balance_msat(payer) == 99_000_000
    assert lnbits.balance_msat(payee) == 1_000_000
    assert await backend.get_balance() == 99_000_000
    print(f"\nLNbits pay_invoice latency: {latency * 1000:.0f} ms")

    # payment_status: the same outcome; an unknown hash is NOT_FOUND.
    assert await backend.payment_status(invoice.payment_hash) == outcome
    assert await backend.payment_status(os.urandom(32).hex()) == Failed(NOT_FOUND)
    # The payee's own (incoming) invoice is not an outgoing payment of the payee.
    async with await LnbitsBackend.open(config(lnbits, payee)) as payee_backend:
        assert await payee_backend.payment_status(invoice.payment_hash) == Failed(NOT_FOUND)


async def test_paying_again_after_success_is_the_same_success(
    lnbits: LnbitsServer, payee: LnbitsWallet, backend: LnbitsBackend
) -> None:
    """A retry after an unknown outcome must not turn a real payment into Failed."""
    invoice = decoded(lnbits.invoice(payee, 500))
    first = await backend.pay_invoice(invoice, amount_msat=500_000, fee_limit_msat=10_000)
    again = await backend.pay_invoice(invoice, amount_msat=500_000, fee_limit_msat=10_000)
    assert isinstance(first, Succeeded)
    assert again == first


async def test_invoice_paid_by_someone_else_fails(
    lnbits: LnbitsServer, payer: LnbitsWallet, payee: LnbitsWallet, backend: LnbitsBackend
) -> None:
    other = lnbits.new_wallet("other payer", fund_sat=1_000)
    invoice = lnbits.invoice(payee, 100)
    lnbits.pay(other, invoice["bolt11"])
    outcome = await backend.pay_invoice(
        decoded(invoice), amount_msat=100_000, fee_limit_msat=10_000
    )
    assert outcome == Failed("Internal invoice already paid.")
    assert lnbits.balance_msat(payer) == 100_000_000


async def test_more_than_the_balance_is_insufficient_balance(
    lnbits: LnbitsServer, payer: LnbitsWallet, payee: LnbitsWallet, backend: LnbitsBackend
) -> None:
    invoice = decoded(lnbits.invoice(payee, 200_000))
    with pytest.raises(RequestError) as caught:
        await backend.pay_invoice(invoice, amount_msat=200_000_000, fee_limit_msat=10_000)
    assert caught.value.code is ErrorCode.INSUFFICIENT_BALANCE
    assert lnbits.balance_msat(payer) == 100_000_000
    assert await backend.payment_status(invoice.payment_hash) == Failed(NOT_FOUND)


async def test_invoice_fakewallet_cannot_route_fails(
    lnbits: LnbitsServer, payer: LnbitsWallet, backend: LnbitsBackend
) -> None:
    invoice = bolt11.decode(foreign_invoice())
    outcome = await backend.pay_invoice(invoice, amount_msat=5_000, fee_limit_msat=10_000)
    assert isinstance(outcome, Failed)
    assert "Only internal invoices" in outcome.reason
    assert lnbits.balance_msat(payer) == 100_000_000  # the reserve came back
    # LNbits keeps the failed attempt: its status is a definite failure, not NOT_FOUND.
    status = await backend.payment_status(invoice.payment_hash)
    assert isinstance(status, Failed)
    assert status.reason != NOT_FOUND


async def test_amountless_invoice_is_refused_before_sending(backend: LnbitsBackend) -> None:
    text = bolt11.encode(
        secret=os.urandom(32),
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        timestamp=int(time.time()),
        network=bolt11.Network.MAINNET,
        amount_msat=None,
        description="any amount",
    )
    with pytest.raises(RequestError) as caught:
        await backend.pay_invoice(bolt11.decode(text), amount_msat=1_000, fee_limit_msat=1_000)
    assert caught.value.code is ErrorCode.OTHER


async def test_payments_one_by_one_and_concurrently(
    lnbits: LnbitsServer, payer: LnbitsWallet, payee: LnbitsWallet, backend: LnbitsBackend
) -> None:
    """The measurement behind MAX_CONCURRENT_PAYMENTS (printed with -s)."""
    count = 20
    one_by_one = [decoded(lnbits.invoice(payee, 10)) for _ in range(count)]
    together = [decoded(lnbits.invoice(payee, 10)) for _ in range(count)]
    unbounded = [decoded(lnbits.invoice(payee, 10)) for _ in range(count)]
    started = time.perf_counter()
    for invoice in one_by_one:
        outcome = await backend.pay_invoice(invoice, amount_msat=10_000, fee_limit_msat=10_000)
        assert isinstance(outcome, Succeeded)
    sequential = time.perf_counter() - started

    slots = asyncio.Semaphore(MAX_CONCURRENT_PAYMENTS)

    async def pay(invoice: bolt11.Invoice) -> object:
        async with slots:
            return await backend.pay_invoice(invoice, amount_msat=10_000, fee_limit_msat=10_000)

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(pay(invoice) for invoice in together))
    concurrent = time.perf_counter() - started
    assert all(isinstance(outcome, Succeeded) for outcome in outcomes)
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(
            backend.pay_invoice(invoice, amount_msat=10_000, fee_limit_msat=10_000)
            for invoice in unbounded
        )
    )
    all_at_once = time.perf_counter() - started
    assert all(isinstance(outcome, Succeeded) for outcome in outcomes)
    assert lnbits.balance_msat(payee) == 3 * count * 10_000
    print(
        f"\nLNbits: {count} payments one by one {sequential:.2f} s,"
        f" {MAX_CONCURRENT_PAYMENTS} at a time {concurrent:.2f} s, all at once {all_at_once:.2f} s"
    )


# --- invoices, lookups, lists, balance, info ----------------------------------------------


async def test_make_lookup_list_balance_info(
    lnbits: LnbitsServer, payer: LnbitsWallet, payee: LnbitsWallet
) -> None:
    async with await LnbitsBackend.open(config(lnbits, payee)) as receiver:
        before = int(time.time()) - 1
        tx = await receiver.make_invoice(
            MakeInvoiceParams(21_000, description="coffee", expiry=600, metadata={"order": "42"})
        )
        assert tx.type == "incoming"
        assert tx.state == "pending"
        assert tx.amount_msat == 21_000
        assert tx.description == "coffee"
        assert tx.preimage is None
        assert tx.metadata == {"order": "42"}
        assert tx.invoice is not None
        invoice = bolt11.decode(tx.invoice)
        assert invoice.payment_hash == tx.payment_hash
        assert invoice.amount_msat == 21_000
        assert tx.expires_at == invoice.timestamp + 600

        by_hash = await receiver.lookup_invoice(payment_hash=tx.payment_hash, invoice=None)
        by_invoice = await receiver.lookup_invoice(payment_hash=None, invoice=tx.invoice)
        assert by_hash is not None
        assert by_hash.state == "pending"
        assert by_invoice == by_hash
        assert (
            await receiver.lookup_invoice(payment_hash=os.urandom(32).hex(), invoice=None) is None
        )
        assert await receiver.lookup_invoice(payment_hash=None, invoice="lnbc1garbage") is None

        # Settled only by default; pending ones with unpaid.
        assert await receiver.list_transactions(ListTransactionsParams()) == []
        unpaid = await receiver.list_transactions(ListTransactionsParams(unpaid=True))
        assert [t.payment_hash for t in unpaid] == [tx.payment_hash]

        paid = lnbits.pay(payer, tx.invoice)
        settled = await receiver.lookup_invoice(payment_hash=tx.payment_hash, invoice=None)
        assert settled is not None
        assert settled.state == "settled"
        assert settled.preimage == paid["preimage"]
        assert settled.settled_at is not None
        assert settled.metadata == {"order": "42"}
        assert await receiver.get_balance() == 21_000

        second = await receiver.make_invoice(MakeInvoiceParams(2_000))
        lnbits.pay(payer, str(second.invoice))
        listed = await receiver.list_transactions(ListTransactionsParams())
        assert [t.payment_hash for t in listed] == [second.payment_hash, tx.payment_hash]
        assert all(t.type == "incoming" and t.state == "settled" for t in listed)
        page = await receiver.list_transactions(ListTransactionsParams(limit=1, offset=1))
        assert [t.payment_hash for t in page] == [tx.payment_hash]
        assert await receiver.list_transactions(ListTransactionsParams(limit=0)) == []
        assert await receiver.list_transactions(ListTransactionsParams(type="outgoing")) == []
        window = ListTransactionsParams(from_time=before, until=int(time.time()) + 1)
        assert len(await receiver.list_transactions(window)) == 2
        future = ListTransactionsParams(from_time=int(time.time()) + 3600)
        assert await receiver.list_transactions(future) == []

        info = await receiver.get_info()
        assert info.alias == "payee"
        assert info.network == "mainnet"  # FakeWallet makes lnbc invoices
        assert info.pubkey == invoice.payee

    # The payer's side: outgoing, settled, with the preimage.
    async with await LnbitsBackend.open(config(lnbits, payer)) as spender:
        out = await spender.list_transactions(ListTransactionsParams(type="outgoing"))
        assert {t.payment_hash for t in out} == {tx.payment_hash, second.payment_hash}
        assert all(t.type == "outgoing" and t.preimage for t in out)
        # LNbits 1.6 books the super user's credit as an incoming payment of the wallet.
        credits = await spender.list_transactions(ListTransactionsParams(type="incoming"))
        assert [t.amount_msat for t in credits] == [100_000_000]


async def test_make_invoice_refusals(backend: LnbitsBackend) -> None:
    for amount in (0, 1_500):  # amountless; not whole satoshis (LNbits would round)
        with pytest.raises(RequestError) as caught:
            await backend.make_invoice(MakeInvoiceParams(amount))
        assert caught.value.code is ErrorCode.OTHER


async def test_get_info_without_invoices_learns_the_network(
    lnbits: LnbitsServer,
) -> None:
    empty = lnbits.new_wallet("empty")
    async with await LnbitsBackend.open(config(lnbits, empty)) as fresh:
        info = await fresh.get_info()
        assert info.network == "mainnet"
        assert info.block_height == 0
    async with await LnbitsBackend.open(config(lnbits, empty, network="regtest")) as told:
        assert (await told.get_info()).network == "regtest"


# --- incoming payments ----------------------------------------------------------------------


async def test_incoming_payments_stream(
    lnbits: LnbitsServer, payer: LnbitsWallet, payee: LnbitsWallet
) -> None:
    async with await LnbitsBackend.open(config(lnbits, payee)) as receiver:
        old = await receiver.make_invoice(MakeInvoiceParams(1_000))
        lnbits.pay(payer, str(old.invoice))  # settled before the stream starts: not news
        stream = receiver.incoming_payments()
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.5)  # let it subscribe
        new = await receiver.make_invoice(MakeInvoiceParams(3_000, description="tip"))
        await asyncio.to_thread(lnbits.pay, payer, str(new.invoice))
        tx = await asyncio.wait_for(first, 10)
        assert tx.payment_hash == new.payment_hash
        assert tx.state == "settled"
        assert tx.amount_msat == 3_000
        assert tx.preimage is not None
        assert tx.description == "tip"
        # Paying from this wallet (outgoing) is not an incoming payment.
        out = decoded(lnbits.invoice(payer, 1))
        assert isinstance(
            await receiver.pay_invoice(out, amount_msat=1_000, fee_limit_msat=1_000), Succeeded
        )
        later = await receiver.make_invoice(MakeInvoiceParams(4_000))
        second = asyncio.create_task(anext(stream))
        await asyncio.to_thread(lnbits.pay, payer, str(later.invoice))
        assert (await asyncio.wait_for(second, 10)).payment_hash == later.payment_hash
    # Closing the backend ends the stream.
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 5)


# --- keys and reachability against the real server ------------------------------------------


async def test_wrong_keys_never_look_like_outcomes(
    lnbits: LnbitsServer, payee: LnbitsWallet, backend: LnbitsBackend
) -> None:
    invoice = decoded(lnbits.invoice(payee, 10))
    paid = await backend.pay_invoice(invoice, amount_msat=10_000, fee_limit_msat=1_000)
    assert isinstance(paid, Succeeded)
    wrong = LnbitsConfig(lnbits.url, admin_key="0" * 32, invoice_key="1" * 32, timeout=10)
    async with await LnbitsBackend.open(wrong) as bad:
        with pytest.raises(BackendUnavailable):
            await bad.get_balance()
        # LNbits answers "paid" for any wallet's payment without details to an unknown key.
        with pytest.raises(BackendUnavailable):
            await bad.payment_status(invoice.payment_hash)
        other = decoded(lnbits.invoice(payee, 10))
        outcome = await bad.pay_invoice(other, amount_msat=10_000, fee_limit_msat=1_000)
        assert isinstance(outcome, Failed)
        assert "0" * 32 not in outcome.reason


async def test_unreachable_lnbits() -> None:
    from tests.support.relays import free_port

    cfg = LnbitsConfig(f"http://127.0.0.1:{free_port()}", admin_key="k" * 32, timeout=2)
    async with await LnbitsBackend.open(cfg) as down:
        with pytest.raises(BackendUnavailable) as caught:
            await down.get_balance()
        assert "k" * 32 not in str(caught.value)
        outcome = await down.pay_invoice(
            bolt11.decode(foreign_invoice()), amount_msat=5_000, fee_limit_msat=1_000
        )
        assert isinstance(outcome, Pending)
        with pytest.raises(BackendUnavailable):
            await down.payment_status("00" * 32)


# --- end to end: the wallet service on LNbits -------------------------------------------------


class LnbitsHarness(WalletHarness):
    """The in-process wallet service of tests/service, on an LNbits wallet."""

    def __init__(self, data_dir: Path, relays: list[str], lnbits_config: LnbitsConfig) -> None:
        super().__init__(data_dir, relays)
        self.lnbits_config = lnbits_config

    async def __aenter__(self) -> LnbitsHarness:
        from nwcd.store.sqlite import SqliteStore

        self.store = await SqliteStore.open(self.data_dir / "nwcd.sqlite")
        self.backend = await LnbitsBackend.open(self.lnbits_config)  # type: ignore[assignment]
        return self


async def test_service_pays_a_batch_on_lnbits(
    tmp_path: Path,
    lnbits: LnbitsServer,
    payer: LnbitsWallet,
    payee: LnbitsWallet,
    nwcd_relay: LocalRelay,
) -> None:
    url = str(nwcd_relay.url)
    async with LnbitsHarness(tmp_path, [url], config(lnbits, payer)) as wallet:
        uri = await wallet.connect(budget_msat=None)
        await wallet.start()
        invoices = [lnbits.invoice(payee, sat) for sat in (1_000, 2_000, 3_000)]
        already = lnbits.invoice(payee, 400)
        lnbits.pay(lnbits.new_wallet("early bird", fund_sat=1_000), already["bolt11"])
        items = [{"id": f"ok{i}", "invoice": inv["bolt11"]} for i, inv in enumerate(invoices)]
        items += [
            {"id": "already-paid", "invoice": already["bolt11"]},
            {"id": "unroutable", "invoice": foreign_invoice()},
        ]
        async with RelayPool([url]) as pool:
            await pool.wait_connected(10)
            app = RawApp(uri, pool)
            started = time.perf_counter()
            responses = await app.send(
                app.request("multi_pay_invoice", {"invoices": items}), expect=len(items), timeout=30
            )
            elapsed = time.perf_counter() - started
        by_d = {event.tag_value("d"): response for event, response in responses}
        assert set(by_d) == {"ok0", "ok1", "ok2", "already-paid", "unroutable"}
        for i, invoice in enumerate(invoices):
            result = by_d[f"ok{i}"].raise_for_error()
            assert result["preimage"] == invoice["preimage"]
            assert result["fees_paid"] == 0
        for name in ("already-paid", "unroutable"):
            error = by_d[name].error
            assert error is not None
            assert error.code == "PAYMENT_FAILED", error
        assert lnbits.balance_msat(payee) == 6_400_000  # 400 sat from the early bird
        assert lnbits.balance_msat(payer) == 100_000_000 - 6_000_000
        print(f"\nLNbits: service batch of {len(items)} (3 paid, 2 failed) in {elapsed:.2f} s")

        # get_balance through the service reports LNbits' balance.
        balance = await app_balance(RawApp, uri, url)
        assert balance == 94_000_000


async def app_balance(app_type: Callable[..., RawApp], uri: Any, url: str) -> int:
    async with RelayPool([url]) as pool:
        await pool.wait_connected(10)
        app = app_type(uri, pool)
        ((_, response),) = await app.send(app.request("get_balance"), timeout=10)
        return int(response.raise_for_error()["balance"])


# --- responses the real server cannot be made to produce: httpx.MockTransport ----------------

ADMIN = "a" * 32
INVOICE_KEY = "b" * 32
HASH = "cd" * 32
PREIMAGE = "ef" * 32


def mock_backend(handler: Callable[[httpx.Request], httpx.Response]) -> LnbitsBackend:
    cfg = LnbitsConfig("http://lnbits.test", admin_key=ADMIN, invoice_key=INVOICE_KEY, timeout=1)
    return LnbitsBackend(
        cfg, httpx.AsyncClient(base_url=cfg.url, transport=httpx.MockTransport(handler))
    )


def mock_invoice() -> bolt11.Invoice:
    return bolt11.decode(foreign_invoice(1_000))


def respond(status: int, body: Any = None, *, raw: bytes | None = None) -> Callable[..., Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        if raw is not None:
            return httpx.Response(status, content=raw)
        return httpx.Response(status, json=body)

    return handler


def raising(exc: Exception) -> Callable[..., Any]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (
            respond(201, {"status": "success", "preimage": PREIMAGE, "fee": -1234}),
            Succeeded(PREIMAGE, 1234),
        ),
        (respond(201, {"status": "pending", "preimage": None, "fee": -2000}), Pending),
        (respond(201, {"status": "weird"}), Pending),
        (respond(201, {"status": "success", "preimage": None, "fee": 0}), Pending),
        (respond(201, {"no": "status"}), Pending),
        (respond(201, raw=b"<html>oops"), Pending),
        (respond(201, {"status": "failed", "fee": 0}), Failed),
        (
            respond(520, {"detail": "Payment failed: no route", "status": "failed"}),
            Failed("Payment failed: no route"),
        ),
        (respond(520, {"detail": "Payment is still pending.", "status": "pending"}), Pending),
        (respond(520, raw=b"not json"), Pending),
        (respond(400, {"detail": "Missing BOLT11 invoice"}), Failed("Missing BOLT11 invoice")),
        (respond(500, {"detail": "Unexpected error! ID: x"}), Pending),
        (respond(502, raw=b"bad gateway"), Pending),
        (raising(httpx.ReadTimeout("slow")), Pending),
        (raising(httpx.ConnectError("refused")), Pending),
        (raising(httpx.RemoteProtocolError("broken")), Pending),
    ],
)
async def test_pay_outcome_mapping(handler: Callable[..., Any], expected: object) -> None:
    async with mock_backend(handler) as backend:
        outcome = await backend.pay_invoice(mock_invoice(), amount_msat=1_000, fee_limit_msat=10)
    if isinstance(expected, type):
        assert isinstance(outcome, expected), outcome
    else:
        assert outcome == expected


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            520,
            {"detail": "Insufficient balance.", "status": "failed"},
            ErrorCode.INSUFFICIENT_BALANCE,
        ),
        (
            520,
            {
                "detail": "You must reserve at least (2  sat) to cover potential routing fees.",
                "status": "failed",
            },
            ErrorCode.INSUFFICIENT_BALANCE,
        ),
        (429, {"detail": "Rate limit exceeded"}, ErrorCode.RATE_LIMITED),
    ],
)
async def test_pay_refusals(status: int, body: Any, code: ErrorCode) -> None:
    async with mock_backend(respond(status, body)) as backend:
        with pytest.raises(RequestError) as caught:
            await backend.pay_invoice(mock_invoice(), amount_msat=1_000, fee_limit_msat=10)
    assert caught.value.code is code


async def test_pay_uses_the_admin_key_and_reads_use_the_invoice_key() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.headers["X-Api-Key"]))
        if request.method == "POST":
            return httpx.Response(201, json={"status": "success", "preimage": PREIMAGE, "fee": 0})
        return httpx.Response(200, json={"name": "w", "balance": 5})

    async with mock_backend(handler) as backend:
        await backend.pay_invoice(mock_invoice(), amount_msat=1_000, fee_limit_msat=10)
        assert await backend.get_balance() == 5
    assert seen == [("POST", ADMIN), ("GET", INVOICE_KEY)]


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (raising(httpx.ReadTimeout("slow")), BackendTimeout),
        (raising(httpx.ConnectTimeout("slow")), BackendTimeout),
        (raising(httpx.ConnectError("refused")), BackendUnavailable),
        (raising(httpx.TooManyRedirects("loop")), BackendUnavailable),
        (respond(200, raw=b"{not json"), BackendUnavailable),
        (respond(200, {"name": "w"}), BackendUnavailable),  # no balance
        (respond(200, {"name": "w", "balance": "5"}), BackendUnavailable),  # mistyped
        (respond(200, {"name": "w", "balance": True}), BackendUnavailable),
        (respond(200, [1, 2]), BackendUnavailable),
        (respond(500, {"detail": "boom"}), BackendUnavailable),
        (respond(403, {"detail": "Invoice (or Admin) key required."}), BackendUnavailable),
        (respond(404, {"detail": "Wallet not found."}), BackendUnavailable),
    ],
)
async def test_read_errors_are_backend_errors_without_keys(
    handler: Callable[..., Any], error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with mock_backend(handler) as backend:
        with pytest.raises(error) as caught:
            await backend.get_balance()
    text = f"{caught.value!s} {caught.value!r} {caplog.text}"
    assert ADMIN not in text
    assert INVOICE_KEY not in text
    assert caught.value.__cause__ is None or not isinstance(caught.value.__cause__, httpx.HTTPError)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (respond(404, {"detail": "Payment does not exist."}), Failed(NOT_FOUND)),
        (
            respond(
                200,
                {
                    "paid": True,
                    "preimage": PREIMAGE,
                    "details": {
                        "amount": -1000,
                        "status": "success",
                        "preimage": PREIMAGE,
                        "fee": -3,
                    },
                },
            ),
            Succeeded(PREIMAGE, 3),
        ),
        (
            respond(
                200,
                {
                    "paid": False,
                    "status": "failed",
                    "details": {"amount": -1000, "status": "failed", "fee": 0},
                },
            ),
            Failed,
        ),
        (
            respond(
                200,
                {
                    "paid": False,
                    "status": "pending",
                    "details": {"amount": -1000, "status": "pending", "fee": -2000},
                },
            ),
            Pending,
        ),
        (
            respond(
                200, {"paid": False, "details": {"amount": -1000, "status": "mystery", "fee": 0}}
            ),
            Pending,
        ),
        (
            respond(
                200,
                {
                    "paid": True,
                    "details": {
                        "amount": 1000,
                        "status": "success",
                        "preimage": PREIMAGE,
                        "fee": 0,
                    },
                },
            ),
            Failed(NOT_FOUND),
        ),
    ],
)
async def test_payment_status_mapping(handler: Callable[..., Any], expected: object) -> None:
    async with mock_backend(handler) as backend:
        outcome = await backend.payment_status(HASH)
    if isinstance(expected, type):
        assert isinstance(outcome, expected), outcome
    else:
        assert outcome == expected


@pytest.mark.parametrize(
    "handler",
    [
        respond(200, {"paid": True, "preimage": PREIMAGE}),  # no details: the key was not accepted
        respond(200, raw=b"nope"),
        respond(500, {"detail": "x"}),
        respond(418, {"detail": "teapot"}),
        raising(httpx.ConnectError("refused")),
    ],
)
async def test_payment_status_unknowns_raise(handler: Callable[..., Any]) -> None:
    async with mock_backend(handler) as backend:
        with pytest.raises(BackendUnavailable):
            await backend.payment_status(HASH)


async def test_make_invoice_refusal_detail_is_passed_on() -> None:
    body = {"detail": "Invoice amount 5 sats is too high. Max allowed: 1 sats.", "status": "failed"}
    async with mock_backend(respond(520, body)) as backend:
        with pytest.raises(RequestError) as caught:
            await backend.make_invoice(MakeInvoiceParams(5_000))
    assert "too high" in caught.value.message


async def test_closed_backend_is_unavailable() -> None:
    backend = mock_backend(respond(200, {"name": "w", "balance": 1}))
    await backend.close()
    await backend.close()  # idempotent
    with pytest.raises(BackendUnavailable):
        await backend.get_balance()


def test_websocket_hints() -> None:
    from nwcd.backends.lnbits import _hinted_hash

    message = {"wallet_balance": 1, "payment": {"amount": 1000, "payment_hash": HASH.upper()}}
    assert _hinted_hash(json.dumps(message)) == HASH
    assert _hinted_hash(json.dumps({"payment": {"amount": -1000, "payment_hash": HASH}})) is None
    assert _hinted_hash(json.dumps({"pending": False, "status": "success"})) is None
    assert _hinted_hash("not json") is None
    assert _hinted_hash(json.dumps({"payment": {"amount": 1, "payment_hash": "short"}})) is None
