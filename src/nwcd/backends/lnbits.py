"""LNbits as the Lightning backend: one LNbits wallet, through its REST API.

Theory of operation. nwcd holds the keys of ONE LNbits wallet: the admin key
(``X-Api-Key``) pays; the invoice key, if given, is used for everything else
(reads, invoices, the websocket), so the admin key travels only with payments.

=====================  ==========================================================
NIP-47                 LNbits (verified against LNbits 1.6.2)
=====================  ==========================================================
pay_invoice            ``POST /api/v1/payments {"out": true, "bolt11"}`` (admin key)
payment status         ``GET /api/v1/payments/{hash}`` -> ``paid``/``status``/``details``
make_invoice           ``POST /api/v1/payments {"out": false, "amount": sat, ...}``
lookup_invoice         ``GET /api/v1/payments/{hash}``
list_transactions      ``GET /api/v1/payments?status=success&amount[gt]=0&time[ge]=...``
get_balance            ``GET /api/v1/wallet`` -> ``balance`` in **msat**
get_info               ``GET /api/v1/wallet`` (name) + the network of the wallet's invoices
incoming payments      websocket ``/api/v1/ws/{key}`` as a hint, each confirmed by GET
=====================  ==========================================================

Outcomes of ``POST /api/v1/payments``: LNbits answers 201 with the payment
(``status`` success / pending / failed), or HTTP 520 ``{"detail", "status"}``
where ``status`` says what LNbits knows ("failed": nothing was paid; "pending"
or "success": an earlier payment of the same hash exists). Anything else (5xx,
no answer, a status we do not know) is :class:`~nwcd.ports.Pending`: unknown is
never failed; the service then asks :meth:`LnbitsBackend.payment_status`.

Quirks handled here:

* ``fee`` of an outgoing payment is **negative** msat (and while pending it is the
  negated fee *reserve*); nwcd reports ``abs(fee)`` once settled.
* LNbits takes no per-payment fee limit: its own reserve (``LNBITS_RESERVE_FEE_MIN``
  2 sat, ``LNBITS_RESERVE_FEE_PERCENT`` 1% by default) bounds the routing fee.
* LNbits pays only invoices with an amount, and makes invoices of whole satoshis
  (a fractional amount is silently rounded by LNbits, so we refuse it).
* ``GET /api/v1/payments/{hash}`` with an unknown key still answers for any
  wallet's payment, only without ``details``: a missing ``details`` means the
  key is wrong, never "paid". The same hash also finds our own *incoming*
  invoice, which is not an outgoing payment (``amount > 0``).
* LNbits rate-limits every client IP (200 requests/minute by default): a 429 is a
  refusal before anything happened.
* The websocket is unauthenticated (anyone knowing the key in the path may post
  to it), so a message is only a hint that is confirmed with an authenticated GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

from nwcd import bolt11
from nwcd.backends._http import BadResponse, create_client, field, json_body, map_exceptions
from nwcd.bolt11 import Invoice
from nwcd.errors import (
    BackendError,
    BackendUnavailable,
    ErrorCode,
    InvalidInvoice,
    RequestError,
)
from nwcd.lru import BoundedSet
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
    TlvRecord,
)
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.ports import NOT_FOUND, Failed, PaymentOutcome, Pending, Succeeded

if TYPE_CHECKING:
    from nwcd.ports import LightningBackend

__all__ = ["MAX_CONCURRENT_PAYMENTS", "LnbitsBackend", "LnbitsConfig"]

log = logging.getLogger("nwcd.backends.lnbits")
# The websocket URL holds the wallet key and websockets logs request lines at DEBUG:
# its logger never goes below INFO, whatever the root level.
_WS_LOG = logging.getLogger("nwcd.backends.lnbits.ws")
_WS_LOG.setLevel(logging.INFO)

_NAME: Final = "LNbits"
_PAGE: Final = 1000  # LNbits returns at most 1000 payments per request
_MAX_REASON: Final = 200  # characters of an LNbits failure detail passed on to the app
_MAX_CAP: Final = 1_000  # max_concurrent_payments at most (the most items of a batch)
_METADATA_KEY: Final = "nwcd_metadata"  # where make_invoice keeps NIP-47 metadata in ``extra``
_SEEN_CAPACITY: Final = 10_000
_CATCH_UP: Final = 100  # settled incoming payments looked at after each (re)connect
_RECONNECT_MIN: Final = 0.5
_RECONNECT_MAX: Final = 30.0
_NETWORK_PREFIXES: Final = (  # longest first: "lnbcrt" before "lnbc"
    ("lnbcrt", "regtest"),
    ("lntbs", "signet"),
    ("lntb", "testnet"),
    ("lnsb", "simnet"),
    ("lnbc", "mainnet"),
)

MAX_CONCURRENT_PAYMENTS: Final = 8
"""Payments in flight at once by default (``[backend.lnbits] max_concurrent_payments``).

LNbits 1.6.2 pays one wallet's payments one at a time (a lock per wallet, and one lock
around every database access), yet it spends less CPU per payment the more requests
wait, so internal payments (wallet to wallet in one LNbits) finish sooner with more in
flight while the first answer comes later. Measured by ``bench/lnbits_service.py``
(2 busy cores, 100 internal payments, medians of two runs): 1 at a time 5.3-7.6 s,
4 to 32 at a time 4.0-6.3 s (8: 4.4-5.5 s, first answer 0.19 s), all 100 at once
2.7-3.2 s (first answer 1.2-1.4 s). A payment that
leaves LNbits holds the wallet's lock while LNbits waits up to 5 s for its funding
source, so for those more in flight only lengthen each request's wait (towards the
request timeout) and an unbounded batch would also pile requests onto LNbits' per-IP
limit (200 a minute by default). 8 keeps the first answer fast and the wait bounded;
an LNbits whose payments are mostly internal may be given more."""


@dataclass(frozen=True, slots=True)
class LnbitsConfig:
    """How to reach one LNbits wallet.

    Args:
        url: LNbits' root URL, e.g. ``https://lnbits.example.com`` (no key in it).
        admin_key: the wallet's admin key (pays). Never shown by ``repr``.
        invoice_key: the wallet's invoice key (reads, invoices, websocket); the
            admin key is used for these when it is not given.
        timeout: seconds to wait for LNbits on each request.
        network: ``mainnet`` / ``testnet`` / ``signet`` / ``regtest``, or None to
            learn it from the network of the wallet's invoices.
        max_concurrent_payments: payments sent to LNbits at once (1 to 1000; see
            :data:`MAX_CONCURRENT_PAYMENTS`).
    """

    url: str
    admin_key: str
    invoice_key: str | None = None
    timeout: float = 30.0
    network: str | None = None
    max_concurrent_payments: int = MAX_CONCURRENT_PAYMENTS

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if not self.admin_key:
            raise ValueError("admin_key is required")
        if self.invoice_key is not None and not self.invoice_key:
            raise ValueError("invoice_key must not be empty")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        if self.network is not None and self.network not in {n for _, n in _NETWORK_PREFIXES}:
            raise ValueError("network must be mainnet, testnet, signet or regtest")
        if not 1 <= self.max_concurrent_payments <= _MAX_CAP:
            raise ValueError(f"max_concurrent_payments must be from 1 to {_MAX_CAP}")

    def __repr__(self) -> str:
        invoice_key = "None" if self.invoice_key is None else "'<redacted>'"
        return (
            f"LnbitsConfig(url={self.url!r}, admin_key='<redacted>', invoice_key={invoice_key},"
            f" timeout={self.timeout!r}, network={self.network!r},"
            f" max_concurrent_payments={self.max_concurrent_payments!r})"
        )

    __str__ = __repr__

    @property
    def read_key(self) -> str:
        """The key for everything but paying."""
        return self.invoice_key or self.admin_key


# --- parsing LNbits payments -------------------------------------------------------------


def _timestamp(value: object) -> int | None:
    """An LNbits time (ISO 8601, naive means UTC; or unix seconds) as unix seconds."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadResponse("a time field is not ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp())
    raise BadResponse("a time field is neither a string nor a number")


def _hex_or_none(value: object) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _transaction(payment: object, now: float) -> Transaction:
    """An LNbits payment object as a NIP-47 transaction.

    Raises:
        BadResponse: a field the mapping needs is missing or mistyped.
    """
    amount = field(payment, "amount", int)
    status = field(payment, "status", str)
    payment_hash = field(payment, "payment_hash", str).lower()
    assert isinstance(payment, dict)
    incoming = amount > 0
    state = {"success": "settled", "failed": "failed"}.get(status, "pending")
    expires_at = _timestamp(payment.get("expiry"))
    if state == "pending" and incoming and expires_at is not None and now >= expires_at:
        state = "expired"
    settled = state == "settled"
    fee = payment.get("fee")
    extra = payment.get("extra")
    metadata = extra.get(_METADATA_KEY) if isinstance(extra, dict) else None
    memo = payment.get("memo")
    created_at = _timestamp(payment.get("time")) or _timestamp(payment.get("created_at")) or 0
    return Transaction(
        type="incoming" if incoming else "outgoing",
        payment_hash=payment_hash,
        amount_msat=abs(amount),
        created_at=created_at,
        state=state,
        invoice=payment.get("bolt11") or None,
        description=memo if isinstance(memo, str) and memo else None,
        preimage=_hex_or_none(payment.get("preimage")) if settled else None,
        fees_paid_msat=abs(fee) if settled and isinstance(fee, int) else 0,
        expires_at=expires_at,
        settled_at=_timestamp(payment.get("updated_at")) if settled else None,
        metadata=metadata if isinstance(metadata, dict) else None,
    )


def _detail(body: object) -> str:
    """LNbits' error ``detail`` (a string, or FastAPI's list of validation errors)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail[:_MAX_REASON]
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, dict) and isinstance(first.get("msg"), str):
            return str(first["msg"])[:_MAX_REASON]
    return "no detail given"


def _is_insufficient(detail: str) -> bool:
    return detail.startswith(("Insufficient balance", "You must reserve at least"))


def _network_of(text: str) -> str | None:
    lowered = text.lower()
    for prefix, network in _NETWORK_PREFIXES:
        if lowered.startswith(prefix):
            return network
    return None


def _no_hold_invoices() -> RequestError:
    return RequestError(ErrorCode.NOT_IMPLEMENTED, "LNbits does not support hold invoices")


class LnbitsBackend:
    """A :class:`~nwcd.ports.LightningBackend` over one LNbits wallet.

    Create with :meth:`open`, end with :meth:`close`. All requests share one
    ``httpx.AsyncClient``; each is mapped at this edge (see :mod:`nwcd.backends._http`).
    """

    kind = "lnbits"
    methods: frozenset[str] = frozenset(
        {
            Method.PAY_INVOICE,
            Method.MULTI_PAY_INVOICE,
            Method.MAKE_INVOICE,
            Method.LOOKUP_INVOICE,
            Method.LIST_TRANSACTIONS,
            Method.GET_BALANCE,
            Method.GET_INFO,
        }
    )
    max_concurrent_payments: int | None = MAX_CONCURRENT_PAYMENTS

    def __init__(self, config: LnbitsConfig, client: httpx.AsyncClient) -> None:
        """Use :meth:`open`."""
        self._config = config
        self._client = client
        self.max_concurrent_payments = config.max_concurrent_payments
        self._admin = {"X-Api-Key": config.admin_key}
        self._read = {"X-Api-Key": config.read_key}
        self._network: str | None = config.network
        self._pubkey = ""
        self._closed = False
        self._closing = asyncio.Event()
        self._sockets: set[ClientConnection] = set()

    @classmethod
    async def open(
        cls, config: LnbitsConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> LnbitsBackend:
        """Make the client; nothing is sent until the first call.

        Args:
            config: where the wallet is and its keys.
            transport: an ``httpx`` transport for tests (``httpx.MockTransport``).
        """
        client = create_client(config.url, timeout=config.timeout, transport=transport)
        return cls(config, client)

    async def close(self) -> None:
        """Close the client; the incoming stream ends."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        for socket in list(self._sockets):
            with contextlib.suppress(Exception):
                await socket.close()
        await self._client.aclose()

    async def __aenter__(self) -> LnbitsBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- plumbing ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        if self._closed:
            raise BackendUnavailable(f"{_NAME}: the backend is closed")
        with map_exceptions(_NAME):
            return await self._client.request(
                method, path, headers=headers, json=json, params=params
            )

    async def _get_json(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> httpx.Response:
        """A read with the read key; 401/403 (a wrong key) and 5xx are BackendUnavailable."""
        response = await self._request("GET", path, headers=self._read, params=params)
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise BackendUnavailable(f"{_NAME}: HTTP {response.status_code}")
        return response

    # --- payments -----------------------------------------------------------------------

    async def pay_invoice(
        self, invoice: Invoice, *, amount_msat: int, fee_limit_msat: int
    ) -> PaymentOutcome:
        """Pay with the admin key; see the module docstring for the outcome mapping.

        ``fee_limit_msat`` cannot be passed on: LNbits bounds the fee by its own reserve.

        Raises:
            RequestError: ``INSUFFICIENT_BALANCE`` / ``RATE_LIMITED`` / ``OTHER`` (no
                amount in the invoice): refused before anything was paid.
        """
        if invoice.amount_msat is None:
            raise RequestError(ErrorCode.OTHER, "LNbits can only pay invoices with an amount")
        try:
            response = await self._request(
                "POST",
                "/api/v1/payments",
                headers=self._admin,
                json={"out": True, "bolt11": invoice.bolt11},
            )
        except BackendError as exc:  # sent or not, we cannot tell
            return Pending(f"{_NAME} did not answer: {type(exc).__name__}")
        return await self._pay_outcome(invoice.payment_hash, response)

    async def _pay_outcome(self, payment_hash: str, response: httpx.Response) -> PaymentOutcome:
        status_code = response.status_code
        try:
            body = json_body(response)
        except BadResponse:
            body = None
        if status_code in (200, 201):
            try:
                return self._payment_outcome(body)
            except BadResponse as exc:
                return Pending(f"{_NAME} answered an unexpected payment: {exc}")
        detail = _detail(body)
        if status_code == 520 and isinstance(body, dict):
            lnbits_status = body.get("status")
            if lnbits_status == "failed":
                if _is_insufficient(detail):
                    raise RequestError(ErrorCode.INSUFFICIENT_BALANCE, f"{_NAME}: {detail}")
                if "already paid" in detail:
                    # Maybe by this very wallet (a retry after an unknown outcome): look.
                    return await self._already_paid(payment_hash, detail)
                return Failed(detail)
            if lnbits_status == "success":  # "Payment already paid." by this wallet
                return await self._already_paid(payment_hash, detail)
            return Pending(f"{_NAME}: {detail}")
        if status_code == 400:  # rejected by validation before any payment was made
            return Failed(detail)
        if status_code == 429:
            raise RequestError(ErrorCode.RATE_LIMITED, f"{_NAME} rate limit reached; try later")
        if status_code in (401, 403, 404):  # the key was refused: nothing happened
            log.error("LNbits refused the admin key (HTTP %d): check [backend.lnbits]", status_code)
            return Failed(f"{_NAME} refused the wallet's admin key (HTTP {status_code})")
        return Pending(f"{_NAME} answered HTTP {status_code}")

    async def _already_paid(self, payment_hash: str, detail: str) -> PaymentOutcome:
        try:
            outcome = await self.payment_status(payment_hash)
        except BackendError:
            return Pending(f"{_NAME}: {detail}")
        if isinstance(outcome, Failed) and outcome.reason == NOT_FOUND:
            return Failed(detail)  # paid, but not by this wallet
        return outcome

    @staticmethod
    def _payment_outcome(payment: object) -> PaymentOutcome:
        """The outcome of an outgoing LNbits payment object."""
        status = field(payment, "status", str)
        if status == "success":
            preimage = _hex_or_none(field(payment, "preimage", str))
            if preimage is None:
                return Pending(f"{_NAME} reported success without a preimage")
            fee = field(payment, "fee", int)
            return Succeeded(preimage, abs(fee))
        if status == "failed":
            return Failed(f"{_NAME} marked the payment failed")
        return Pending(f"{_NAME} payment status {status[:40]!r}")

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        """The outcome of this wallet's outgoing payment (``Failed(NOT_FOUND)`` if none).

        Raises:
            BackendUnavailable: LNbits is unreachable, refused the key, or answered
                something malformed.
            BackendTimeout: no answer in time.
        """
        response = await self._get_json(f"/api/v1/payments/{payment_hash.lower()}")
        if _not_found(response):
            return Failed(NOT_FOUND)
        with map_exceptions(_NAME):
            if response.status_code != 200:
                raise BadResponse(f"HTTP {response.status_code}")
            details = self._details(json_body(response))
            if field(details, "amount", int) > 0:  # our own incoming invoice
                return Failed(NOT_FOUND)
            return self._payment_outcome(details)

    @staticmethod
    def _details(body: object) -> Any:
        if not isinstance(body, dict):
            raise BadResponse("expected an object")
        if "details" not in body:
            # LNbits answers for any wallet's payment without details when the key is unknown.
            raise BadResponse("no details: the wallet key was not accepted")
        return body["details"]

    async def pay_keysend(
        self,
        *,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        tlv_records: tuple[TlvRecord, ...],
        fee_limit_msat: int,
    ) -> PaymentOutcome:
        """Not served: LNbits' wallet API has no keysend (not in :attr:`methods`)."""
        raise RequestError(ErrorCode.NOT_IMPLEMENTED, "LNbits does not support keysend")

    async def sign_message(self, message: str) -> str:
        """Not served: LNbits' wallet API cannot sign (not in :attr:`methods`)."""
        raise RequestError(ErrorCode.NOT_IMPLEMENTED, "LNbits does not support sign_message")

    async def make_hold_invoice(self, params: MakeHoldInvoiceParams) -> Transaction:
        """Not served: LNbits' wallet API has no hold invoices (not in :attr:`methods`)."""
        raise _no_hold_invoices()

    async def settle_hold_invoice(self, preimage: str) -> None:
        """Not served (see :meth:`make_hold_invoice`)."""
        raise _no_hold_invoices()

    async def cancel_hold_invoice(self, payment_hash: str) -> None:
        """Not served (see :meth:`make_hold_invoice`)."""
        raise _no_hold_invoices()

    # --- invoices and transactions --------------------------------------------------------

    async def make_invoice(self, params: MakeInvoiceParams) -> Transaction:
        """An invoice of the wallet, in whole satoshis.

        Raises:
            RequestError: ``OTHER`` for an amount LNbits cannot make or LNbits' refusal.
            BackendUnavailable / BackendTimeout: LNbits failed.
        """
        if params.amount_msat <= 0 or params.amount_msat % 1000:
            raise RequestError(
                ErrorCode.OTHER, "LNbits makes invoices of a positive whole number of satoshis"
            )
        body: dict[str, Any] = {
            "out": False,
            "unit": "sat",
            "amount": params.amount_msat // 1000,
            "memo": params.description or "",
        }
        if params.description_hash:
            body["description_hash"] = params.description_hash
        if params.expiry:
            body["expiry"] = params.expiry
        if params.metadata is not None:
            body["extra"] = {_METADATA_KEY: dict(params.metadata)}
        response = await self._request("POST", "/api/v1/payments", headers=self._read, json=body)
        if response.status_code in (400, 520):
            with map_exceptions(_NAME):
                detail = _detail(json_body(response))
            raise RequestError(ErrorCode.OTHER, f"{_NAME} cannot make the invoice: {detail}")
        with map_exceptions(_NAME):
            if response.status_code not in (200, 201):
                raise BadResponse(f"HTTP {response.status_code}")
            tx = _transaction(json_body(response), time.time())
        self._learn(tx.invoice)
        if params.description_hash:
            tx = _replace_description_hash(tx, params.description_hash)
        return tx

    async def lookup_invoice(
        self, *, payment_hash: str | None, invoice: str | None
    ) -> Transaction | None:
        """A payment or invoice of this wallet by hash (or by invoice), or None."""
        if payment_hash is None and invoice is not None:
            try:
                payment_hash = bolt11.decode(invoice).payment_hash
            except InvalidInvoice:
                return None
        if payment_hash is None:
            return None
        response = await self._get_json(f"/api/v1/payments/{payment_hash.lower()}")
        if _not_found(response):
            return None
        with map_exceptions(_NAME):
            if response.status_code != 200:
                raise BadResponse(f"HTTP {response.status_code}")
            return _transaction(self._details(json_body(response)), time.time())

    async def list_transactions(self, params: ListTransactionsParams) -> list[Transaction]:
        """Newest first; settled only unless ``unpaid`` (LNbits never lists failed ones)."""
        query: dict[str, str | int] = {"sortby": "time", "direction": "desc"}
        if not params.unpaid:
            query["status"] = "success"
        if params.type == "incoming":
            query["amount[gt]"] = 0
        elif params.type == "outgoing":
            query["amount[lt]"] = 0
        if params.from_time is not None:
            query["time[ge]"] = params.from_time
        if params.until is not None:
            query["time[lt]"] = params.until + 1  # until is inclusive in whole seconds
        wanted = params.limit
        if wanted == 0:
            return []
        offset = params.offset
        out: list[Transaction] = []
        while wanted is None or len(out) < wanted:
            page = _PAGE if wanted is None else min(_PAGE, wanted - len(out))
            response = await self._get_json(
                "/api/v1/payments", {**query, "limit": page, "offset": offset}
            )
            now = time.time()
            with map_exceptions(_NAME):
                if response.status_code != 200:
                    raise BadResponse(f"HTTP {response.status_code}")
                payments = json_body(response)
                if not isinstance(payments, list):
                    raise BadResponse("expected a list of payments")
                out.extend(_transaction(payment, now) for payment in payments)
            if len(payments) < page:
                break
            offset += len(payments)
        return out

    async def get_balance(self) -> int:
        """The wallet's balance in msat (LNbits counts payments in flight as spent)."""
        with map_exceptions(_NAME):
            wallet = await self._wallet()
            return int(field(wallet, "balance", int))

    async def _wallet(self) -> Any:
        response = await self._get_json("/api/v1/wallet")
        if response.status_code != 200:
            raise BadResponse(f"HTTP {response.status_code}")
        return json_body(response)

    async def get_info(self) -> NodeInfo:
        """The wallet's name as alias; the network of its invoices.

        LNbits' wallet API shows no node: ``pubkey`` is the payee of the wallet's
        invoices once one is seen, and the block height and hash are unknown (0, "").
        Without ``network`` in the config and with no invoice in the wallet yet,
        this makes a 1 sat invoice to learn the network.
        """
        with map_exceptions(_NAME):
            wallet = await self._wallet()
            alias = str(field(wallet, "name", str))
        if self._network is None:
            await self._detect_network()
        return NodeInfo(
            alias=alias,
            color="",
            pubkey=self._pubkey,
            network=self._network or "mainnet",
            block_height=0,
            block_hash="",
        )

    async def _detect_network(self) -> None:
        response = await self._get_json("/api/v1/payments", {"limit": 1, "amount[gt]": 0})
        with map_exceptions(_NAME):
            payments = json_body(response) if response.status_code == 200 else []
            if isinstance(payments, list) and payments:
                self._learn(field(payments[0], "bolt11", str))
        if self._network is None:
            await self.make_invoice(
                MakeInvoiceParams(1000, description="nwcd: network check", expiry=600)
            )

    def _learn(self, invoice: str | None) -> None:
        """Remember the network (and node key) of an invoice the wallet made."""
        if not invoice:
            return
        if self._network is None:
            self._network = _network_of(invoice)
        if not self._pubkey:
            with contextlib.suppress(InvalidInvoice):
                self._pubkey = bolt11.decode(invoice).payee

    # --- incoming payments ----------------------------------------------------------------

    def incoming_payments(self) -> AsyncIterator[Transaction]:
        """Incoming payments settled from now on, until the backend is closed.

        LNbits' websocket pushes each payment of the wallet; a message is only a
        hint, confirmed by an authenticated ``GET``. After every (re)connect the
        newest settled incoming payments are listed, so none is lost while the
        socket was down. Errors never end the stream: it reconnects with backoff.
        """
        return self._incoming()

    async def _incoming(self) -> AsyncIterator[Transaction]:
        seen: BoundedSet[str] = BoundedSet(_SEEN_CAPACITY)
        baseline = False
        delay = _RECONNECT_MIN
        while not self._closed:
            try:
                if not baseline:  # what was settled before now is not news
                    for tx in await self._settled_incoming():
                        seen.add(tx.payment_hash)
                    baseline = True
                async with self._connect() as socket:
                    for tx in reversed(await self._settled_incoming()):
                        if seen.add(tx.payment_hash):
                            yield tx
                    delay = _RECONNECT_MIN
                    async for message in socket:
                        payment_hash = _hinted_hash(message)
                        if payment_hash is None or payment_hash in seen:
                            continue
                        found = await self.lookup_invoice(payment_hash=payment_hash, invoice=None)
                        if (
                            found is not None
                            and found.type == "incoming"
                            and found.state == "settled"
                            and seen.add(found.payment_hash)
                        ):
                            yield found
            except (BackendError, OSError, TimeoutError, WebSocketException) as exc:
                if self._closed:
                    return
                log.warning(
                    "LNbits incoming stream: %s; reconnecting in %.1f s", type(exc).__name__, delay
                )
            if self._closed:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closing.wait()
            delay = min(delay * 2, _RECONNECT_MAX)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[ClientConnection]:
        base = self._config.url.rstrip("/")
        url = "ws" + base[4:] + f"/api/v1/ws/{self._config.read_key}"
        async with websockets.connect(
            url,
            open_timeout=self._config.timeout,
            compression=None,
            max_size=2**20,
            logger=_WS_LOG,
        ) as socket:
            self._sockets.add(socket)
            try:
                yield socket
            finally:
                self._sockets.discard(socket)

    async def _settled_incoming(self) -> list[Transaction]:
        return await self.list_transactions(
            ListTransactionsParams(limit=_CATCH_UP, type="incoming")
        )


def _hinted_hash(message: str | bytes) -> str | None:
    """The payment hash of an incoming payment in a websocket message, if any."""
    try:
        data = json.loads(message)
        payment = data["payment"]
        amount = payment["amount"]
        payment_hash = payment["payment_hash"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(amount, int) or amount <= 0 or not isinstance(payment_hash, str):
        return None
    if len(payment_hash) != 64:
        return None
    return payment_hash.lower()


def _replace_description_hash(tx: Transaction, description_hash: str) -> Transaction:
    return replace(tx, description_hash=description_hash, description=None)


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(backend: LnbitsBackend) -> LightningBackend:
        return backend


def _not_found(response: httpx.Response) -> bool:
    """LNbits' own "payment does not exist" answer, not any 404 (a proxy's page, say):
    taking an in-flight payment for one never sent would release its money."""
    if response.status_code != 404:
        return False
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, str) and "does not exist" in detail.lower()
