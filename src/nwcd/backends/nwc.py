"""Another NWC wallet as the Lightning backend: nwcd is one of its apps.

Theory of operation. nwcd holds one ``nostr+walletconnect://`` URI of an
*upstream* wallet (Alby Hub, another nwcd, ...) and talks to it with its own
:class:`~nwcd.client.client.NWCClient`: every backend call is one NIP-47
request. ``methods`` are the ones the upstream grants this connection (its
``get_info``, else its info event), those nwcd can pass on; a batch method is
served when its single method is, since the service pays a batch one
``pay_*`` per item (concurrently, up to :data:`MAX_CONCURRENT_PAYMENTS`).

Exactly once. A payment is one request, never sent again by this adapter (the
relays may deliver that one event twice, or once per relay of the URI: NIP-47
wallets act once per event id). What an answer means is decided by the pure
:func:`pay_outcome` (error codes, table below) and :func:`status_outcome` (the
upstream's ``lookup_invoice``); no answer in time, or an answer that does not
say, is :class:`~nwcd.ports.Pending`, which the service resolves with
:meth:`NwcBackend.payment_status`.

=======================  ===============  ==========================================
upstream answer to pay   outcome          why
=======================  ===============  ==========================================
result, right preimage   Succeeded        the preimage of the payment's hash
result, no such preimage Pending          proves nothing
PAYMENT_FAILED           Failed           NIP-47: "the payment failed"
INSUFFICIENT_BALANCE     RequestError     refused before paying (same code to the app)
QUOTA_EXCEEDED           RequestError     refused before paying (same code to the app)
RATE_LIMITED             RequestError     refused before paying (same code to the app)
NOT_IMPLEMENTED          RequestError     the method is not served: nothing was done
UNAUTHORIZED             Failed           nwcd's connection is unknown there: nothing
                                          was done (the operator must fix the URI)
RESTRICTED               Failed           nwcd's connection may not pay: nothing done
UNSUPPORTED_ENCRYPTION   Failed           the request was not even read
BAD_REQUEST              Failed           Alby Hub: unreadable or malformed request
INTERNAL                 Pending          Alby Hub answers every failure so, some
                                          wallets after an error mid-payment: unknown
OTHER, any other code    Pending          says nothing about the money: unknown
no answer (timeout)      Pending          it may have been received and paid
=======================  ===============  ==========================================

Every pay request carries a NIP-47 ``expiration`` tag (``payment_timeout``
from now): a wallet that honours it (nwcd, cln-nip47, the Electrum plugin)
never acts on a request later. Until then (plus :data:`CLOCK_SKEW`), the
upstream may still receive a request whose answer we have not seen and has
recorded nothing of it, so ``lookup_invoice``'s ``NOT_FOUND`` for a payment
this process sent reads as Pending, not ``Failed(NOT_FOUND)``; once the
window has passed (or the upstream answered), not found is final. This is
on top of the service's own grace (``not_found_grace``, 120 s after an
ambiguous send), so it also holds with a longer ``payment_timeout``. Wallets
that ignore ``expiration`` (Alby Hub acts on requests up to 6 h old) are
covered only by the service's grace. After a restart this memory is gone and
the service's recovery takes not found as final at once: the window left is a
request the upstream had received but not yet recorded when nwcd stopped and
was asked again within ``payment_timeout``.

Notifications. :meth:`NwcBackend.incoming_payments` is the upstream's
``payment_received`` (state ``settled``) and ``hold_invoice_accepted``
(state ``accepted``) notifications to this connection; the relay pool
reconnects and resubscribes on its own after a relay is lost, and a
notification seen twice (relays that replay) is yielded once. Notifications
are ephemeral events: one sent while no relay connection was up is missed
(the app can still look its invoice up).

The URI is a secret (its ``secret`` spends the upstream's money): it is never
logged, and neither :class:`NwcConfig`'s ``repr`` nor any exception shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from nwcd.bolt11 import Invoice
from nwcd.client.client import Notification, NWCClient, NWCError, RelayUnreachable
from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.errors import (
    BackendTimeout,
    BackendUnavailable,
    ErrorCode,
    InvalidMessage,
    NwcdError,
    RequestError,
)
from nwcd.lru import BoundedSet
from nwcd.nip47.info import HOLD_INVOICE_ACCEPTED, PAYMENT_RECEIVED
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
    TlvRecord,
)
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.nip47.uri import ConnectionUri
from nwcd.ports import BACKEND_METHODS, NOT_FOUND, Failed, PaymentOutcome, Pending, Succeeded

if TYPE_CHECKING:
    from nwcd.ports import LightningBackend

__all__ = [
    "CLOCK_SKEW",
    "MAX_CONCURRENT_PAYMENTS",
    "NwcBackend",
    "NwcConfig",
    "call_error",
    "incoming_transaction",
    "paid_outcome",
    "pay_outcome",
    "served_methods",
    "status_outcome",
]

log = logging.getLogger("nwcd.backends.nwc")

T = TypeVar("T")

MAX_CONCURRENT_PAYMENTS: Final = 16
"""Payments in flight at once. Each waits for its answer on its own subscription (one
REQ per relay, ``#e`` = its request), and public relays cap subscriptions per
connection (strfry: 20 by default): 16 leaves room for the notification subscription
and reads. A refused subscription would lose the answer of a payment that was still
sent (Pending, resolved only by lookups), so the cap is kept below the limit. It costs
little: a 50-invoice batch in front of the Alby JS SDK's wallet service
(bench/nwc_backend.py) took 0.98 s with 16 at once and 0.89 s with all 50 (nostr-sdk
relay; 1.37 s and 1.31 s on PyPI nostr-relay), against 0.69 s / 0.94 s for the same 50
``pay_invoice`` sent straight to it at once."""

CLOCK_SKEW: Final = 30
"""Seconds the upstream's clock may be behind ours when it checks ``expiration``."""

_MAX_MESSAGE: Final = 200  # characters of an upstream message passed on to the app
_PAGE: Final = 50  # transactions per list_transactions request (NIP-47: keep pages small)
_SEEN_CAPACITY: Final = 10_000
_RETRY_MIN: Final = 0.5
_RETRY_MAX: Final = 30.0

_BATCHES: Final = {
    Method.MULTI_PAY_INVOICE.value: Method.PAY_INVOICE.value,
    Method.MULTI_PAY_KEYSEND.value: Method.PAY_KEYSEND.value,
}

# --- decisions (pure) ----------------------------------------------------------------------

_REFUSED_FOR_THE_APP: Final = frozenset(
    {
        ErrorCode.INSUFFICIENT_BALANCE,
        ErrorCode.QUOTA_EXCEEDED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.NOT_IMPLEMENTED,
    }
)
_REFUSED_CONNECTION: Final = frozenset(
    {"UNAUTHORIZED", "RESTRICTED", "UNSUPPORTED_ENCRYPTION", "BAD_REQUEST", "EXPIRED"}
)
"""Codes by which the upstream refuses nwcd's connection or request itself (Alby Hub:
``BAD_REQUEST`` for one it cannot read, ``EXPIRED`` for an expired connection)."""
_UPSTREAM_FAULTS: Final = frozenset(
    {"INTERNAL", "UNAUTHORIZED", "RESTRICTED", "UNSUPPORTED_ENCRYPTION", "EXPIRED"}
)
"""Codes that are the upstream's failure or its refusal of nwcd's connection: nothing the
app did, so it is told ``INTERNAL`` (as for any backend failure), not the code."""


def served_methods(offered: Iterable[str]) -> frozenset[str]:
    """The upstream's methods nwcd can pass on: the singles it offers (its own batch
    methods are never used), and a batch method wherever its single one is offered."""
    singles = (frozenset(offered) & BACKEND_METHODS) - _BATCHES.keys()
    return singles | {batch for batch, single in _BATCHES.items() if single in singles}


def _message(code: str, message: str) -> str:
    return f"upstream wallet: {message[:_MAX_MESSAGE] or code}"


def pay_outcome(code: str, message: str) -> PaymentOutcome | RequestError:
    """What an error answer to ``pay_invoice`` / ``pay_keysend`` means (module table):
    Failed or a refusal only when nothing was paid, else Pending."""
    if code == ErrorCode.PAYMENT_FAILED:
        return Failed(_message(code, message))
    if code in _REFUSED_FOR_THE_APP:
        return RequestError(ErrorCode(code), _message(code, message))
    if code in _REFUSED_CONNECTION:
        return Failed(f"the upstream wallet refused nwcd's connection ({code})")
    return Pending(f"the upstream wallet answered {code[:40]}")


def call_error(code: str, message: str) -> NwcdError:
    """What an error answer to any other request is: the app's own problem as a
    :class:`RequestError` with the nearest code, the upstream's (or nwcd's connection
    to it) as :class:`BackendUnavailable`."""
    if code in _UPSTREAM_FAULTS:
        return BackendUnavailable(f"the upstream wallet answered {code[:40]}")
    try:
        nearest = ErrorCode(code)
    except ValueError:
        nearest = ErrorCode.OTHER
    if nearest is ErrorCode.BAD_REQUEST:
        nearest = ErrorCode.OTHER  # the app's params, as nwcd itself answers them
    return RequestError(nearest, _message(code, message))


def _proves(preimage: object, payment_hash: str) -> bool:
    """Only a preimage of the payment's hash proves it settled."""
    try:
        return isinstance(preimage, str) and (
            hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash.lower()
        )
    except ValueError:
        return False


def paid_outcome(result: Mapping[str, Any], payment_hash: str) -> PaymentOutcome:
    """A successful pay answer; one without the payment's preimage proves nothing."""
    preimage = result.get("preimage")
    if not _proves(preimage, payment_hash):
        return Pending("the upstream wallet answered without the payment's preimage")
    assert isinstance(preimage, str)
    fees = result.get("fees_paid")
    fee_msat = fees if isinstance(fees, int) and not isinstance(fees, bool) and fees >= 0 else 0
    return Succeeded(preimage.lower(), fee_msat)


def status_outcome(
    tx: Transaction | None, payment_hash: str, *, may_still_arrive: bool = False
) -> PaymentOutcome:
    """The outcome of an outgoing payment from the upstream's ``lookup_invoice``.

    ``may_still_arrive``: a request of ours for it may still reach the upstream (its
    expiration has not passed), so not found is not final yet.
    """
    if tx is None or tx.type != "outgoing":  # an incoming invoice is no payment of ours
        if may_still_arrive:
            return Pending("not recorded by the upstream wallet yet")
        return Failed(NOT_FOUND)
    settled = tx.state == "settled" or (tx.state is None and tx.settled_at is not None)
    if settled:
        if tx.preimage is None or not _proves(tx.preimage, payment_hash):
            return Pending("the upstream wallet reports it settled without its preimage")
        return Succeeded(tx.preimage.lower(), tx.fees_paid_msat)
    if tx.state == "failed":
        return Failed("the upstream wallet marked the payment failed")
    return Pending(f"upstream payment state {str(tx.state)[:40]!r}")


def incoming_transaction(notification: Notification) -> Transaction | None:
    """An upstream notification as an incoming payment for the service, if it is one."""
    state = {PAYMENT_RECEIVED: "settled", HOLD_INVOICE_ACCEPTED: "accepted"}.get(notification.type)
    tx = notification.transaction
    if state is None or tx.type != "incoming":
        return None
    return replace(tx, state=state)


def _without_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _invoice_params(params: MakeInvoiceParams | MakeHoldInvoiceParams) -> dict[str, Any]:
    return _without_none(
        {
            "amount": params.amount_msat,
            "description": params.description,
            "description_hash": params.description_hash,
            "expiry": params.expiry,
            "metadata": dict(params.metadata) if params.metadata is not None else None,
        }
    )


def _list_params(params: ListTransactionsParams, limit: int, offset: int) -> dict[str, Any]:
    return _without_none(
        {
            "from": params.from_time,
            "until": params.until,
            "limit": limit,
            "offset": offset,
            "unpaid": params.unpaid or None,
            "type": params.type,
        }
    )


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NwcConfig:
    """How to reach the upstream wallet.

    Args:
        uri: its ``nostr+walletconnect://`` URI. A secret: never shown by ``repr``.
        timeout: seconds to wait for the answer to anything but a payment.
        payment_timeout: seconds to wait for a payment's answer; also how long the
            upstream may act on the request (its ``expiration``).
        connect_timeout: seconds to wait for a relay at start.
    """

    uri: str
    timeout: float = 30.0
    payment_timeout: float = 60.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        ConnectionUri.parse(self.uri)  # InvalidUri (a ValueError) never quotes the URI
        for name in ("timeout", "payment_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")

    def __repr__(self) -> str:
        return (
            f"NwcConfig(uri='<redacted>', timeout={self.timeout!r},"
            f" payment_timeout={self.payment_timeout!r}, connect_timeout={self.connect_timeout!r})"
        )

    __str__ = __repr__


# --- the adapter ---------------------------------------------------------------------------


class NwcBackend:
    """A :class:`~nwcd.ports.LightningBackend` over another NWC wallet.

    Create with :meth:`open` (it connects and learns the upstream's methods), end
    with :meth:`close`. Safe for concurrent calls: each is its own request, answered
    on its own subscription.
    """

    kind = "nwc"
    max_concurrent_payments: int | None = MAX_CONCURRENT_PAYMENTS

    def __init__(
        self,
        config: NwcConfig,
        client: NWCClient,
        methods: frozenset[str],
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """Use :meth:`open`."""
        self.methods: frozenset[str] = methods
        self._config = config
        self._client = client
        self._clock = clock
        # Payment hash -> until when a pay request of ours may still reach the upstream.
        self._unanswered: dict[str, float] = {}
        self._closed = False
        self._closing = asyncio.Event()

    @classmethod
    async def open(cls, config: NwcConfig, *, clock: Clock = SYSTEM_CLOCK) -> NwcBackend:
        """Connect to the upstream's relays and learn what it offers this connection.

        Raises:
            BackendUnavailable: no relay can be reached, or the upstream neither
                publishes an info event nor answers ``get_info``.
        """
        client = NWCClient.from_uri(
            config.uri,
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            clock=clock,
        )
        try:
            await client.__aenter__()
        except RelayUnreachable as exc:
            reasons = "; ".join(sorted(set(exc.reasons.values())))
            raise BackendUnavailable(
                f"cannot reach the upstream wallet's relays: {reasons}"
            ) from None
        try:
            offered = await cls._offered(client, config.timeout)
        except BaseException:
            await client.__aexit__(None, None, None)
            raise
        methods = served_methods(offered)
        if not methods:
            await client.__aexit__(None, None, None)
            raise BackendUnavailable("the upstream wallet offers nwcd's connection no method")
        if Method.PAY_INVOICE in methods and Method.LOOKUP_INVOICE not in methods:
            log.warning(
                "the upstream wallet offers no lookup_invoice: a payment whose answer is"
                " lost stays unresolved"
            )
        log.info("upstream wallet: %d methods (%s)", len(methods), " ".join(sorted(methods)))
        return cls(config, client, methods, clock=clock)

    @staticmethod
    async def _offered(client: NWCClient, timeout: float) -> frozenset[str]:
        """This connection's methods from ``get_info``, else the wallet's info event."""
        try:
            info = await client.get_info(timeout=timeout)
        except (NWCError, InvalidMessage) as exc:
            log.info("upstream get_info refused (%s): using its info event", type(exc).__name__)
        except TimeoutError:
            if not client.info.found:
                raise BackendUnavailable("the upstream wallet does not answer") from None
        else:
            methods = info.get("methods")
            if isinstance(methods, list) and all(isinstance(m, str) for m in methods):
                return frozenset(methods)
        return client.info.methods

    async def close(self) -> None:
        """Close the relay connections; the incoming stream ends."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        await self._client.__aexit__(None, None, None)

    async def __aenter__(self) -> NwcBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"NwcBackend(wallet={self._client.uri.wallet_pubkey.hex})"

    # --- plumbing -----------------------------------------------------------------------

    def _can_send(self, method: str) -> None:
        """Refuse a method the upstream does not offer, or any once closed."""
        if method not in self.methods:
            raise RequestError(
                ErrorCode.NOT_IMPLEMENTED, f"the upstream wallet does not offer {method}"
            )
        if self._closed:
            raise BackendUnavailable("the upstream wallet's connection is closed")

    async def _call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """One request; its result. Errors are mapped here, at the edge.

        Raises:
            RequestError: the upstream refused it for a reason the app should see.
            BackendUnavailable / BackendTimeout: the upstream failed or did not answer.
        """
        self._can_send(method)
        try:
            return await self._client.call(method, params, timeout=self._config.timeout)
        except NWCError as exc:
            raise call_error(exc.wallet_code, exc.message) from None
        except TimeoutError:
            raise BackendTimeout(f"no answer to {method} from the upstream wallet") from None

    @staticmethod
    def _parsed(parse: Callable[[Any], T], value: Any) -> T:
        """``parse(value)``; a malformed answer is the upstream's failure."""
        try:
            return parse(value)
        except (InvalidMessage, KeyError, TypeError, ValueError):
            raise BackendUnavailable("the upstream wallet answered something malformed") from None

    # --- payments -----------------------------------------------------------------------

    async def pay_invoice(
        self, invoice: Invoice, *, amount_msat: int, fee_limit_msat: int
    ) -> PaymentOutcome:
        """Pay through the upstream; see the module table for what its answers mean.

        ``fee_limit_msat`` cannot be passed on (NIP-47's ``pay_invoice`` has no fee
        limit): the upstream's own policy bounds the routing fee.
        """
        params: dict[str, Any] = {"invoice": invoice.bolt11}
        if invoice.amount_msat is None:
            params["amount"] = amount_msat
        return await self._pay(Method.PAY_INVOICE, params, invoice.payment_hash)

    async def pay_keysend(
        self,
        *,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        tlv_records: tuple[TlvRecord, ...],
        fee_limit_msat: int,
    ) -> PaymentOutcome:
        """A keysend through the upstream, with our preimage (so its hash is known)."""
        params: dict[str, Any] = {"pubkey": pubkey, "amount": amount_msat, "preimage": preimage}
        if tlv_records:
            params["tlv_records"] = [{"type": r.type, "value": r.value} for r in tlv_records]
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        return await self._pay(Method.PAY_KEYSEND, params, payment_hash)

    async def _pay(
        self, method: str, params: Mapping[str, Any], payment_hash: str
    ) -> PaymentOutcome:
        """Send one pay request, once; never raises for what happened to the money.

        Raises:
            RequestError: the upstream refused before paying (or does not offer it).
        """
        self._can_send(method)
        now = self._clock.now()
        expiration = int(now + self._config.payment_timeout)
        self._forget_expired(now)
        self._unanswered[payment_hash] = expiration + CLOCK_SKEW
        try:
            result = await self._client.call(
                method, params, timeout=self._config.payment_timeout, expiration=expiration
            )
        except NWCError as exc:
            if exc.wallet_code in _REFUSED_CONNECTION:
                log.error(
                    "payment %s: the upstream wallet refused nwcd's connection (%s):"
                    " check [backend.nwc] uri",
                    payment_hash,
                    exc.wallet_code[:40],
                )
            outcome = pay_outcome(exc.wallet_code, exc.message)
        except TimeoutError:
            return Pending(
                f"no answer from the upstream wallet in {self._config.payment_timeout} s"
            )
        except Exception as exc:  # the request may be out: unknown, never failed
            log.warning(
                "payment %s: %s while paying; outcome unknown", payment_hash, type(exc).__name__
            )
            return Pending(f"cannot tell: {type(exc).__name__}")
        else:
            outcome = paid_outcome(result, payment_hash)
        if not isinstance(outcome, Pending):
            self._unanswered.pop(payment_hash, None)  # answered: its books are final
        if isinstance(outcome, RequestError):
            raise outcome
        return outcome

    def _forget_expired(self, now: float) -> None:
        for payment_hash in [h for h, until in self._unanswered.items() if until <= now]:
            del self._unanswered[payment_hash]

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        """The outcome of a payment, from the upstream's ``lookup_invoice``.

        Raises:
            BackendUnavailable / BackendTimeout: the upstream could not tell (never a
                RequestError: recovery must not read a refusal as an outcome).
        """
        payment_hash = payment_hash.lower()
        try:
            tx = await self.lookup_invoice(payment_hash=payment_hash, invoice=None)
        except RequestError as exc:
            raise BackendUnavailable(f"lookup_invoice refused: {exc.code.value}") from None
        now = self._clock.now()
        self._forget_expired(now)
        return status_outcome(tx, payment_hash, may_still_arrive=payment_hash in self._unanswered)

    # --- holds --------------------------------------------------------------------------

    async def make_hold_invoice(self, params: MakeHoldInvoiceParams) -> Transaction:
        """A hold invoice of the upstream for the app's payment hash."""
        body = _invoice_params(params) | {"payment_hash": params.payment_hash}
        if params.min_cltv_expiry_delta is not None:
            body["min_cltv_expiry_delta"] = params.min_cltv_expiry_delta
        result = await self._call(Method.MAKE_HOLD_INVOICE, body)
        return self._parsed(Transaction.from_json, result)

    async def settle_hold_invoice(self, preimage: str) -> None:
        """Settle through the upstream (its NOT_FOUND / OTHER reach the app as such)."""
        await self._call(Method.SETTLE_HOLD_INVOICE, {"preimage": preimage})

    async def cancel_hold_invoice(self, payment_hash: str) -> None:
        """Cancel through the upstream (its NOT_FOUND / OTHER reach the app as such)."""
        await self._call(Method.CANCEL_HOLD_INVOICE, {"payment_hash": payment_hash})

    # --- invoices and reads -------------------------------------------------------------

    async def make_invoice(self, params: MakeInvoiceParams) -> Transaction:
        result = await self._call(Method.MAKE_INVOICE, _invoice_params(params))
        return self._parsed(Transaction.from_json, result)

    async def lookup_invoice(
        self, *, payment_hash: str | None, invoice: str | None
    ) -> Transaction | None:
        """The upstream's transaction, or None for its NOT_FOUND."""
        params = {"payment_hash": payment_hash} if payment_hash else {"invoice": invoice}
        try:
            result = await self._call(Method.LOOKUP_INVOICE, params)
        except RequestError as exc:
            if exc.code is ErrorCode.NOT_FOUND:
                return None
            raise
        return self._parsed(Transaction.from_json, result)

    async def list_transactions(self, params: ListTransactionsParams) -> list[Transaction]:
        """Newest first, fetched in small pages (NIP-47 asks clients to) up to ``limit``."""
        wanted = params.limit
        offset = params.offset
        out: list[Transaction] = []
        while wanted is None or len(out) < wanted:
            page = _PAGE if wanted is None else min(_PAGE, wanted - len(out))
            result = await self._call(Method.LIST_TRANSACTIONS, _list_params(params, page, offset))
            listed = self._parsed(
                lambda r: [Transaction.from_json(tx) for tx in r.get("transactions", [])], result
            )
            out.extend(listed)
            if len(listed) < page:
                break
            offset += len(listed)
        return out

    async def get_balance(self) -> int:
        result = await self._call(Method.GET_BALANCE)
        return self._parsed(lambda r: int(r["balance"]), result)

    async def get_info(self) -> NodeInfo:
        """The upstream's node (``methods`` left empty: the service fills them in)."""
        result = await self._call(Method.GET_INFO)

        def node(r: Mapping[str, Any]) -> NodeInfo:
            return NodeInfo(
                alias=str(r.get("alias") or ""),
                color=str(r.get("color") or ""),
                pubkey=str(r.get("pubkey") or ""),
                network=str(r.get("network") or "mainnet"),
                block_height=int(r.get("block_height") or 0),
                block_hash=str(r.get("block_hash") or ""),
            )

        return self._parsed(node, result)

    async def sign_message(self, message: str) -> str:
        result = await self._call(Method.SIGN_MESSAGE, {"message": message})
        return self._parsed(lambda r: str(r["signature"]), result)

    # --- incoming payments --------------------------------------------------------------

    def incoming_payments(self) -> AsyncIterator[Transaction]:
        """The upstream's ``payment_received`` / ``hold_invoice_accepted`` notifications
        from now on, each once, until the backend is closed."""
        return self._incoming()

    async def _incoming(self) -> AsyncIterator[Transaction]:
        seen: BoundedSet[tuple[str, str]] = BoundedSet(_SEEN_CAPACITY)
        delay = _RETRY_MIN
        while not self._closed:
            stream = self._client.notifications()
            try:
                while (notification := await self._unless_closed(anext(stream, None))) is not None:
                    delay = _RETRY_MIN
                    tx = incoming_transaction(notification)
                    if tx is not None and seen.add((notification.type, tx.payment_hash)):
                        yield tx
            except (NwcdError, OSError) as exc:
                log.warning(
                    "upstream notifications: %s; again in %.1f s", type(exc).__name__, delay
                )
            finally:
                await stream.aclose()
            if self._closed or not await self._unless_closed(asyncio.sleep(delay, True)):
                return
            delay = min(delay * 2, _RETRY_MAX)

    async def _unless_closed(self, awaitable: Awaitable[T]) -> T | None:
        """``awaitable``'s result, or None as soon as the backend is closed."""
        task = asyncio.ensure_future(awaitable)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({task, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return task.result() if not task.cancelled() else None


if TYPE_CHECKING:  # mypy proves the adapter implements the port

    def _implements_port(backend: NwcBackend) -> LightningBackend:
        return backend
