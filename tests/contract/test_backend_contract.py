"""The ``LightningBackend`` contract, one suite run against every adapter.

Architecture principle 11: the same cases, with the same assertions, for the
simulator, LNbits (a real LNbits 1.6.2 with FakeWallet), LND (a real regtest
network; node A is the backend) and NWC (nwcd itself on the simulator as the
upstream wallet, over nwcd's relay). Each parameter gives a :class:`Subject`: the
backend under test plus a small payee adapter (``payees.py``) that makes payable,
failing and (where the payee can) held invoices.

The real servers are the session fixtures of ``tests/backends/conftest.py``,
shared with ``tests/backends``; every test makes fresh wallets / invoices and
checks balances only as differences around its own payments.

A case a backend genuinely cannot take part in is a ``pytest.param`` whose id
says "n/a" and why, with a skip mark carrying the same reason (listed by ``-ra``).

The second group (at the end) drives the two HTTP adapters through
``httpx.MockTransport``, for the answers the real servers cannot be made to give.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from nwcd import bolt11
from nwcd.backends.lnbits import LnbitsBackend, LnbitsConfig
from nwcd.backends.lnd import LndBackend, LndConfig
from nwcd.errors import BackendError, BackendUnavailable, ErrorCode, RequestError
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
)
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.ports import (
    BACKEND_METHODS,
    NOT_FOUND,
    Failed,
    LightningBackend,
    PaymentOutcome,
    Pending,
    Succeeded,
)
from tests.backends.lnbits_server import LnbitsServer
from tests.backends.lnd_network import LndNetwork
from tests.contract.payees import (
    CORE_METHODS,
    NETWORKS,
    Subject,
    eventually,
    foreign_invoice,
    lnbits_subject,
    lnd_subject,
    nwc_subject,
    simulator_subject,
)

pytestmark = pytest.mark.timeout(180)

AMOUNT_MSAT: Final = 21_000  # whole satoshis: LNbits makes no others

BACKENDS: Final = ("simulator", "lnbits", "lnd", "nwc")


def not_applicable(kind: str, slug: str, reason: str) -> Any:
    """A parameter for a case the backend genuinely cannot take part in."""
    return pytest.param(kind, id=f"{kind}-n/a-{slug}", marks=pytest.mark.skip(reason=reason))


HOLD_BACKENDS: Final = (
    "simulator",
    not_applicable(
        "lnbits",
        "FakeWallet-settles-at-once",
        "not applicable to lnbits: FakeWallet settles internal payments at once and"
        " LNbits' wallet API has no hold invoices, so no payment can be kept in flight",
    ),
    "lnd",
    "nwc",
)


@pytest.fixture
async def subject(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path
) -> AsyncIterator[Subject]:
    """The backend under contract, with its payee (servers started only when needed)."""
    if kind == "simulator":
        opened = simulator_subject(tmp_path)
    elif kind == "nwc":
        opened = nwc_subject(tmp_path)
    elif kind == "lnbits":
        server: LnbitsServer = request.getfixturevalue("lnbits")
        opened = lnbits_subject(server)
    else:
        network: LndNetwork = request.getfixturevalue("network")
        opened = lnd_subject(network)
    async with opened as made:
        yield made


def hashes_to(preimage: str, payment_hash: str) -> bool:
    return hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash


async def balance_becomes(backend: LightningBackend, expected: int) -> None:
    """The balance reaches ``expected`` (LND updates its channel state just after the
    payment resolves; the others at once)."""

    async def reached() -> bool:
        return await backend.get_balance() == expected

    with contextlib.suppress(AssertionError):
        await eventually(f"balance {expected}", reached, timeout=10)
    assert await backend.get_balance() == expected


async def pay(subject: Subject, invoice: bolt11.Invoice) -> PaymentOutcome:
    amount = invoice.amount_msat
    assert amount is not None
    return await subject.backend.pay_invoice(
        invoice, amount_msat=amount, fee_limit_msat=subject.fee_limit_msat
    )


# --- methods ------------------------------------------------------------------------------


async def _hold_round(subject: Subject, *, settle: bool) -> None:
    """A hold invoice paid from outside: held (on the incoming stream, with its
    deadline), then settled (the stream says so) or canceled (lookups say failed)."""
    backend = subject.backend
    assert subject.pay_us is not None, "hold invoices need a payer of the backend's invoices"
    stream = backend.incoming_payments()

    async def next_about(payment_hash: str) -> Transaction:
        async with asyncio.timeout(30):
            async for tx in stream:
                if tx.payment_hash == payment_hash:
                    return tx
        raise AssertionError("the incoming stream ended")

    preimage = os.urandom(32).hex()
    payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    try:
        made = await backend.make_hold_invoice(MakeHoldInvoiceParams(AMOUNT_MSAT, payment_hash))
        assert made.invoice is not None
        with pytest.raises(RequestError):  # nothing is held yet
            await backend.settle_hold_invoice(preimage)
        await subject.pay_us(made.invoice)
        held = await next_about(payment_hash)
        assert (held.state, held.amount_msat) == ("accepted", AMOUNT_MSAT)
        assert held.settle_deadline is not None
        assert held.settle_deadline > (await backend.get_info()).block_height
        if settle:
            await backend.settle_hold_invoice(preimage)
            settled = await next_about(payment_hash)
            assert (settled.state, settled.preimage) == ("settled", preimage)
        else:
            await backend.cancel_hold_invoice(payment_hash)
            found = await backend.lookup_invoice(payment_hash=payment_hash, invoice=None)
            assert found is not None
            assert found.state == "failed"
        unknown = os.urandom(32).hex()
        for refused in (
            backend.settle_hold_invoice(unknown),
            backend.cancel_hold_invoice(hashlib.sha256(bytes.fromhex(unknown)).hexdigest()),
        ):
            with pytest.raises(RequestError) as missing:
                await refused
            assert missing.value.code is ErrorCode.NOT_FOUND
    finally:
        await stream.aclose()


async def _exercise(subject: Subject, method: str) -> None:
    """Use ``method`` once through the port and check what comes back."""
    backend = subject.backend
    payee = subject.payee
    if method == Method.PAY_INVOICE:
        invoice = await payee.payable(AMOUNT_MSAT)
        outcome = await pay(subject, invoice)
        assert isinstance(outcome, Succeeded), outcome
    elif method == Method.MULTI_PAY_INVOICE:  # the service pays a batch concurrently
        invoices = [await payee.payable(AMOUNT_MSAT) for _ in range(3)]
        outcomes = await asyncio.gather(*(pay(subject, invoice) for invoice in invoices))
        for invoice, outcome in zip(invoices, outcomes, strict=True):
            assert isinstance(outcome, Succeeded), outcome
            assert hashes_to(outcome.preimage, invoice.payment_hash)
    elif method in (Method.PAY_KEYSEND, Method.MULTI_PAY_KEYSEND):
        assert payee.keysend_pubkey is not None
        preimages = [os.urandom(32).hex() for _ in range(1 if method == Method.PAY_KEYSEND else 3)]
        outcomes = await asyncio.gather(
            *(
                backend.pay_keysend(
                    pubkey=payee.keysend_pubkey,
                    amount_msat=AMOUNT_MSAT,
                    preimage=preimage,
                    tlv_records=(),
                    fee_limit_msat=subject.fee_limit_msat,
                )
                for preimage in preimages
            )
        )
        for preimage, outcome in zip(preimages, outcomes, strict=True):
            assert isinstance(outcome, Succeeded), outcome
            assert outcome.preimage == preimage
            payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
            assert await backend.payment_status(payment_hash) == outcome
    elif method == Method.MAKE_INVOICE:
        tx = await backend.make_invoice(MakeInvoiceParams(AMOUNT_MSAT, description="m"))
        assert isinstance(tx, Transaction)
        assert tx.type == "incoming"
    elif method == Method.LOOKUP_INVOICE:
        tx = await backend.make_invoice(MakeInvoiceParams(AMOUNT_MSAT, description="l"))
        found = await backend.lookup_invoice(payment_hash=tx.payment_hash, invoice=None)
        assert found is not None
        assert found.payment_hash == tx.payment_hash
        missing = os.urandom(32).hex()
        assert await backend.lookup_invoice(payment_hash=missing, invoice=None) is None
    elif method == Method.LIST_TRANSACTIONS:
        tx = await backend.make_invoice(MakeInvoiceParams(AMOUNT_MSAT, description="t"))
        listed = await backend.list_transactions(ListTransactionsParams(unpaid=True))
        assert all(isinstance(item, Transaction) for item in listed)
        assert tx.payment_hash in {item.payment_hash for item in listed}
        times = [item.created_at for item in listed]
        assert times == sorted(times, reverse=True)  # newest first
        settled = await backend.list_transactions(ListTransactionsParams())
        assert all(item.state == "settled" for item in settled)
    elif method == Method.GET_BALANCE:
        balance = await backend.get_balance()
        assert isinstance(balance, int)
        assert balance > 0  # every subject's wallet is funded
    elif method == Method.GET_INFO:
        info = await backend.get_info()
        assert isinstance(info, NodeInfo)
        assert info.network in NETWORKS
        assert info.block_height >= 0
    elif method in (Method.SETTLE_HOLD_INVOICE, Method.CANCEL_HOLD_INVOICE):
        await _hold_round(subject, settle=method == Method.SETTLE_HOLD_INVOICE)
    elif method == Method.MAKE_HOLD_INVOICE:
        payment_hash = hashlib.sha256(os.urandom(32)).hexdigest()
        tx = await backend.make_hold_invoice(
            MakeHoldInvoiceParams(AMOUNT_MSAT, payment_hash, description="h", expiry=600)
        )
        assert (tx.type, tx.payment_hash, tx.state) == ("incoming", payment_hash, "pending")
        assert tx.invoice is not None
        assert bolt11.decode(tx.invoice).payment_hash == payment_hash
        with pytest.raises(RequestError) as taken:
            await backend.make_hold_invoice(MakeHoldInvoiceParams(AMOUNT_MSAT, payment_hash))
        assert taken.value.code is ErrorCode.OTHER
    elif method == Method.SIGN_MESSAGE:
        signature = await backend.sign_message("nwcd contract")
        assert isinstance(signature, str)
        assert signature
    else:  # a method the contract does not know yet: extend _exercise
        raise AssertionError(f"no contract case exercises {method!r}")


@pytest.mark.parametrize("kind", BACKENDS)
async def test_methods_are_the_claimed_ones_and_each_works(subject: Subject) -> None:
    methods = subject.backend.methods
    assert methods >= CORE_METHODS
    assert methods == subject.expected_methods
    assert methods <= BACKEND_METHODS  # get_budget is the service's, never a backend's
    for method in sorted(methods):
        await _exercise(subject, method)
    # What it does not claim, it refuses as a request error (never a crash or a payment).
    if Method.PAY_KEYSEND not in methods:
        with pytest.raises(RequestError) as refused:
            await subject.backend.pay_keysend(
                pubkey="02" + "11" * 32,
                amount_msat=AMOUNT_MSAT,
                preimage=os.urandom(32).hex(),
                tlv_records=(),
                fee_limit_msat=subject.fee_limit_msat,
            )
        assert refused.value.code is ErrorCode.NOT_IMPLEMENTED
    if Method.SIGN_MESSAGE not in methods:
        with pytest.raises(RequestError) as refused:
            await subject.backend.sign_message("nwcd contract")
        assert refused.value.code is ErrorCode.NOT_IMPLEMENTED


# --- paying -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
async def test_pay_succeeds_debits_amount_plus_fee_and_is_reported(subject: Subject) -> None:
    backend = subject.backend
    invoice = await subject.payee.payable(AMOUNT_MSAT)
    before = await backend.get_balance()
    outcome = await pay(subject, invoice)
    assert isinstance(outcome, Succeeded), outcome
    assert hashes_to(outcome.preimage, invoice.payment_hash)
    assert 0 <= outcome.fee_msat <= subject.fee_limit_msat
    await balance_becomes(backend, before - AMOUNT_MSAT - outcome.fee_msat)
    assert await backend.payment_status(invoice.payment_hash) == outcome
    # The same payment as an outgoing transaction.
    looked = await backend.lookup_invoice(payment_hash=invoice.payment_hash, invoice=None)
    assert looked is not None
    assert looked.type == "outgoing"
    assert looked.state == "settled"
    assert looked.preimage == outcome.preimage
    assert looked.amount_msat == AMOUNT_MSAT


@pytest.mark.parametrize("kind", BACKENDS)
async def test_paying_the_same_invoice_again_never_pays_twice(subject: Subject) -> None:
    backend = subject.backend
    invoice = await subject.payee.payable(AMOUNT_MSAT)
    first = await pay(subject, invoice)
    assert isinstance(first, Succeeded), first
    after_first = await backend.get_balance()
    await balance_becomes(backend, after_first)  # settled (LND: channel state updated)
    again = await pay(subject, invoice)
    assert again == first or isinstance(again, Failed), again
    await balance_becomes(backend, after_first)
    # The refusal of the second attempt does not hide the first one.
    assert await backend.payment_status(invoice.payment_hash) == first


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_invoice_that_cannot_be_paid_fails_and_keeps_the_balance(
    subject: Subject,
) -> None:
    backend = subject.backend
    invoice = await subject.payee.failing(AMOUNT_MSAT)
    before = await backend.get_balance()
    outcome = await pay(subject, invoice)
    assert isinstance(outcome, Failed), outcome
    assert outcome.reason
    await balance_becomes(backend, before)
    status = await backend.payment_status(invoice.payment_hash)
    assert isinstance(status, Failed), status  # never Pending or Succeeded afterwards


@pytest.mark.parametrize("kind", BACKENDS)
async def test_status_of_a_payment_never_made_is_not_found(subject: Subject) -> None:
    assert await subject.backend.payment_status(os.urandom(32).hex()) == Failed(NOT_FOUND)


@pytest.mark.parametrize("settle", [True, False], ids=["settled", "failed"])
@pytest.mark.parametrize("kind", HOLD_BACKENDS)
async def test_a_held_payment_is_pending_until_released(subject: Subject, settle: bool) -> None:
    backend = subject.backend
    held = await subject.payee.hold(AMOUNT_MSAT)
    payment_hash = held.invoice.payment_hash
    before = await backend.get_balance()
    paying = asyncio.create_task(pay(subject, held.invoice))
    try:
        await held.wait_held()

        async def pending() -> PaymentOutcome | None:
            status = await backend.payment_status(payment_hash)
            if status == Failed(NOT_FOUND):
                return None  # the payment has not reached the backend's books yet
            return status

        status = await eventually("the payment in flight", pending)
        assert isinstance(status, Pending), status
        await asyncio.sleep(0.3)
        assert isinstance(await backend.payment_status(payment_hash), Pending)
        if paying.done():  # gave up waiting: it must not claim an outcome
            assert isinstance(paying.result(), Pending), paying.result()
        # Paying again while it is in flight is no second payment and no failure.
        again = await pay(subject, held.invoice)
        assert isinstance(again, Pending), again

        await held.release(settle)
        async with asyncio.timeout(30):
            returned = await paying
    finally:
        if not paying.done():
            await held.release(settle)  # never leave an HTLC held in the shared network
            with contextlib.suppress(Exception):
                await asyncio.wait_for(paying, 30)

    async def final() -> PaymentOutcome | None:
        status = await backend.payment_status(payment_hash)
        return None if isinstance(status, Pending) else status

    outcome = await eventually("the final outcome", final, timeout=30)
    if settle:
        assert isinstance(outcome, Succeeded), outcome
        assert outcome.preimage == held.preimage
        assert hashes_to(outcome.preimage, payment_hash)
        assert returned == outcome or isinstance(returned, Pending), returned
        await balance_becomes(backend, before - AMOUNT_MSAT - outcome.fee_msat)
    else:
        assert isinstance(outcome, Failed), outcome
        assert outcome.reason != NOT_FOUND
        assert isinstance(returned, Failed | Pending), returned
        await balance_becomes(backend, before)


# --- invoices -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
async def test_make_invoice_decodes_to_itself_and_is_found(subject: Subject) -> None:
    backend = subject.backend
    tx = await backend.make_invoice(MakeInvoiceParams(AMOUNT_MSAT, description="contract"))
    assert tx.type == "incoming"
    assert tx.state == "pending"
    assert tx.amount_msat == AMOUNT_MSAT
    assert tx.invoice is not None
    invoice = bolt11.decode(tx.invoice)
    assert invoice.payment_hash == tx.payment_hash
    assert invoice.amount_msat == AMOUNT_MSAT
    assert invoice.description == "contract"
    info = await backend.get_info()
    assert invoice.payee == info.pubkey
    assert invoice.network == NETWORKS[info.network]

    by_hash = await backend.lookup_invoice(payment_hash=tx.payment_hash, invoice=None)
    by_invoice = await backend.lookup_invoice(payment_hash=None, invoice=tx.invoice)
    assert by_hash is not None
    assert by_hash.payment_hash == tx.payment_hash
    assert by_hash.type == "incoming"
    assert by_hash.state == "pending"
    assert by_hash.amount_msat == AMOUNT_MSAT
    assert by_hash.invoice == tx.invoice
    assert by_invoice == by_hash
    # An invoice made is no outgoing payment.
    assert await backend.payment_status(tx.payment_hash) == Failed(NOT_FOUND)


# --- unreachable --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_unreachable_backend_never_fails_a_payment(subject: Subject) -> None:
    down = await subject.unreachable()
    try:
        invoice = foreign_invoice(bolt11.Network.REGTEST, AMOUNT_MSAT)
        try:
            outcome = await down.pay_invoice(
                invoice, amount_msat=AMOUNT_MSAT, fee_limit_msat=subject.fee_limit_msat
            )
        except BackendUnavailable:
            pass  # refused before sending: the service knows nothing was paid
        else:
            assert isinstance(outcome, Pending), outcome
        # get_info is left out: the simulator answers it from memory even when closed.
        for call in (lambda: down.payment_status(invoice.payment_hash), down.get_balance):
            with pytest.raises(BackendError):
                await call()
    finally:
        await down.close()


# --- answers the real servers cannot be made to give: httpx.MockTransport -----------------
#
# For the HTTP adapters only: a 5xx, a body that is not JSON, a payment without the
# field that says what happened, and no answer in time, on pay and on status. None
# of them may ever read as an outcome: pay answers Pending, payment_status Pending
# or a BackendError.

HASH: Final = "cd" * 32
Handler = Callable[[httpx.Request], httpx.Response]


def _answer(status: int, body: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return handler


def _lnd_lines(*messages: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        text = "".join(json.dumps(message) + "\n" for message in messages)
        return httpx.Response(200, text=text)

    return handler


def _by_method(post: Handler, get: Handler) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return post(request) if request.method == "POST" else get(request)

    return handler


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


PROXY_PAGE: Final = b"<html><body><h1>404 Not Found</h1>nginx</body></html>"

MOCK_CASES: Final[dict[str, dict[str, Handler]]] = {
    "lnbits": {
        "http-500": _answer(500, {"detail": "Internal Server Error"}),
        "http-503-html": _answer(503, b"<html>Service Unavailable</html>"),
        "bad-json": _answer(200, b'{"status": "succ'),
        "missing-status": _by_method(
            _answer(201, {"payment_hash": HASH, "amount": -AMOUNT_MSAT, "fee": 0}),
            _answer(200, {"paid": False, "details": {"payment_hash": HASH, "fee": 0}}),
        ),
        "success-without-preimage": _by_method(
            _answer(201, {"payment_hash": HASH, "status": "success", "fee": 0}),
            _answer(
                200,
                {
                    "paid": True,
                    "details": {"amount": -AMOUNT_MSAT, "status": "success", "fee": 0},
                },
            ),
        ),
        "timeout": _timeout,
    },
    "lnd": {
        "http-500": _answer(500, {"code": 2, "message": "internal error", "details": []}),
        "http-503-html": _answer(503, b"<html>Service Unavailable</html>"),
        "bad-json": _answer(200, b'{"result": {"status": "SUCC'),
        "missing-status": _lnd_lines({"result": {"payment_hash": HASH}}),
        "success-without-preimage": _lnd_lines(
            {"result": {"payment_hash": HASH, "status": "SUCCEEDED", "fee_msat": "0"}}
        ),
        "timeout": _timeout,
    },
}


def _mock_params() -> list[Any]:
    params = []
    for adapter, cases in MOCK_CASES.items():
        for case, handler in cases.items():
            for operation in ("pay", "status"):
                params.append(
                    pytest.param(adapter, handler, operation, id=f"{adapter}-{case}-{operation}")
                )
        # A bare 404 (a proxy's page, not the backend's own "not found") must not read
        # as Failed(NOT_FOUND): recovery would treat an in-flight payment as never sent.
        params.append(
            pytest.param(
                adapter, _answer(404, PROXY_PAGE), "status", id=f"{adapter}-proxy-404-status"
            )
        )
    return params


async def _mock_backend(adapter: str, handler: Handler) -> LightningBackend:
    transport = httpx.MockTransport(handler)
    if adapter == "lnbits":
        lnbits = LnbitsConfig("http://lnbits.test", admin_key="a" * 32, timeout=1)
        return await LnbitsBackend.open(lnbits, transport=transport)
    lnd = LndConfig("https://lnd.test:8080", "0201036c6e64", None, timeout=1, payment_timeout=2)
    return await LndBackend.open(lnd, transport=transport)


@pytest.mark.parametrize(("adapter", "handler", "operation"), _mock_params())
async def test_an_unusable_answer_is_never_an_outcome(
    adapter: str, handler: Handler, operation: str
) -> None:
    backend = await _mock_backend(adapter, handler)
    try:
        if operation == "pay":
            invoice = foreign_invoice(bolt11.Network.REGTEST, AMOUNT_MSAT)
            outcome = await backend.pay_invoice(
                invoice, amount_msat=AMOUNT_MSAT, fee_limit_msat=1_000
            )
        else:
            try:
                outcome = await backend.payment_status(HASH)
            except BackendError:
                return  # "could not tell": the service keeps the payment unresolved
        assert isinstance(outcome, Pending), outcome
    finally:
        await backend.close()
