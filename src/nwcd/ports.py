"""The seams between the service and the outside world, as ``typing.Protocol`` s.

The service talks only to these; each technology (the simulator, LNbits,
LND, SQLite, PostgreSQL, websockets) is one adapter behind one of them.
Adapters translate their library's exceptions at their edge: from a backend
only :class:`~nwcd.errors.BackendError` (or :class:`~nwcd.errors.RequestError`
for a refusal the app should see) comes out.

Expected payment outcomes are values, not exceptions:
:class:`Succeeded`, :class:`Failed` (definitely not paid, money released) or
:class:`Pending` (unknown: might still be paid; the money stays reserved).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from nwcd.bolt11 import Invoice
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
    TlvRecord,
)
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.nostr.event import Event
from nwcd.policy.authorize import Deny
from nwcd.policy.grants import SERVICE_METHODS, Connection

__all__ = [
    "BACKEND_METHODS",
    "HOLD_METHODS",
    "NOT_FOUND",
    "OK",
    "ActivityLog",
    "Claim",
    "ConnectionStore",
    "Failed",
    "InstanceRecord",
    "InstanceRegistry",
    "InvoiceBook",
    "LightningBackend",
    "NotOwner",
    "Orphans",
    "PaymentIntent",
    "PaymentLedger",
    "PaymentOutcome",
    "PaymentRecord",
    "PaymentState",
    "Pending",
    "RequestJournal",
    "RequestOutcome",
    "RequestRecord",
    "RequestSummary",
    "Reserved",
    "Store",
    "Succeeded",
]


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The payment settled."""

    preimage: str
    fee_msat: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The payment definitely did not happen (and never will)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Pending:
    """The outcome is not known yet (in flight, or the backend could not tell)."""

    reason: str = "payment in flight"


PaymentOutcome = Succeeded | Failed | Pending

NOT_FOUND = "not found"
"""The reason of ``payment_status`` for a payment the backend never saw."""


# Every method a backend can be asked to serve (the service answers the others itself).
BACKEND_METHODS: frozenset[str] = frozenset(m.value for m in Method) - SERVICE_METHODS
HOLD_METHODS: frozenset[str] = frozenset(
    {Method.MAKE_HOLD_INVOICE, Method.SETTLE_HOLD_INVOICE, Method.CANCEL_HOLD_INVOICE}
)


class LightningBackend(Protocol):
    """A Lightning wallet nwcd pays through.

    ``methods`` lists the NIP-47 methods the backend can serve; the service
    never calls a method outside it. ``max_concurrent_payments`` is a cap the
    adapter declares when the backend cannot take more payments at once
    (``None``: no cap of its own). ``kind`` names the adapter for the operator
    (``simulator``, ``lnbits``, ``lnd``, ``nwc``).
    """

    kind: str
    methods: frozenset[str]
    max_concurrent_payments: int | None

    async def pay_invoice(
        self, invoice: Invoice, *, amount_msat: int, fee_limit_msat: int
    ) -> PaymentOutcome:
        """Pay a decoded invoice; ``amount_msat`` is set for amountless invoices too."""
        ...

    async def pay_keysend(
        self,
        *,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        tlv_records: tuple[TlvRecord, ...],
        fee_limit_msat: int,
    ) -> PaymentOutcome:
        """Spontaneous payment to a node; ``preimage`` is chosen by the caller."""
        ...

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        """What became of an outgoing payment (crash recovery).

        A payment the backend never saw is ``Failed(NOT_FOUND)``.
        """
        ...

    async def make_invoice(self, params: MakeInvoiceParams) -> Transaction:
        """Create an incoming invoice."""
        ...

    async def lookup_invoice(
        self, *, payment_hash: str | None, invoice: str | None
    ) -> Transaction | None:
        """An incoming or outgoing transaction by hash or invoice, or None."""
        ...

    async def make_hold_invoice(self, params: MakeHoldInvoiceParams) -> Transaction:
        """Create an incoming invoice for the caller's payment hash whose payment is held
        (state ``accepted``) until settled or canceled."""
        ...

    async def settle_hold_invoice(self, preimage: str) -> None:
        """Take a held payment.

        Raises:
            RequestError: ``NOT_FOUND`` for no such hold invoice; ``OTHER`` when it
                holds no payment (not yet accepted, or already settled or canceled).
        """
        ...

    async def cancel_hold_invoice(self, payment_hash: str) -> None:
        """Give a held payment back, or make an unpaid hold invoice unpayable.

        Raises:
            RequestError: ``NOT_FOUND`` for no such hold invoice; ``OTHER`` when it is
                already settled.
        """
        ...

    async def list_transactions(self, params: ListTransactionsParams) -> list[Transaction]:
        """Transactions, newest first."""
        ...

    async def get_balance(self) -> int:
        """Spendable balance in msat."""
        ...

    async def get_info(self) -> NodeInfo:
        """The node's identity and chain position (``methods`` left empty)."""
        ...

    async def sign_message(self, message: str) -> str:
        """Sign with the node key (only if ``sign_message`` is in ``methods``)."""
        ...

    def incoming_payments(self) -> AsyncIterator[Transaction]:
        """Incoming payments as they happen (for notifications): state ``settled``, or
        ``accepted`` when the payment of a hold invoice is held (with ``settle_deadline``)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class PaymentState(StrEnum):
    """Where a payment is; each state is stored before the next step is taken."""

    RESERVED = "reserved"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


UNRESOLVED_STATES = (PaymentState.RESERVED, PaymentState.IN_FLIGHT, PaymentState.UNKNOWN)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """A claimed request event: enough to answer it again after a restart."""

    event_id: str
    wallet_pubkey: str
    app_pubkey: str
    scheme: str
    event_json: str
    received_at: int
    created_at: int


OK = "ok"
"""The outcome of a request answered with a result (a batch: handled, whatever its items)."""


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What a finished request is recorded as, for the operator (never its content).

    ``outcome``: :data:`OK`, or the NIP-47 error code the request was answered with; a
    ``multi_*`` batch that was handled is :data:`OK` (its items' outcomes are their
    payments'). None: the request was answered before a restart, and finishing it now
    answered nothing. ``amount_msat``: what the payments asked for (None: no payment);
    ``items``: the payment items answered; ``latency_ms``: from receipt to the last
    answer stored and sent off (None: the receipt time is not known).
    """

    method: str
    outcome: str | None
    finished_at: int
    amount_msat: int | None = None
    items: int = 0
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One request as the operator's activity page lists it; ``done`` False: still running
    (its payments, :meth:`ActivityLog.request_items`, tell how far it got). ``instance``
    is the instance that holds it; ``connection`` the connection's name (None if gone)."""

    request_id: str
    wallet_pubkey: str
    connection: str | None
    received_at: int
    instance: str
    done: bool
    method: str | None = None
    outcome: str | None = None
    amount_msat: int | None = None
    items: int | None = None
    latency_ms: int | None = None
    finished_at: int | None = None

    @property
    def cursor(self) -> tuple[int, str]:
        """Where the next page starts: ``recent_requests(before=last.cursor)``."""
        return self.received_at, self.request_id


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """A payment about to be reserved (one ``pay_*`` request or one batch item)."""

    item_index: int
    result_type: str
    d_tag: str | None
    payment_hash: str
    invoice: str | None
    amount_msat: int
    fee_reserve_msat: int
    metadata: str | None = None  # the app's metadata, as JSON text


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A stored payment and what is known of its outcome."""

    id: int
    request_id: str
    wallet_pubkey: str
    intent: PaymentIntent
    state: PaymentState
    preimage: str | None = None
    fee_msat: int | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class Reserved:
    """A payment admitted and stored as ``reserved``: it may spend at most
    ``fee_reserve_msat`` on routing fees (the fee limit passed to the backend)."""

    payment_id: int
    fee_reserve_msat: int


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """A running ``nwcd serve``: its lease, and the connections it listens for.

    ``listening_version`` is the connections version whose wallet keys the
    instance has subscribed to on its relays (the relays confirmed the REQ),
    so a new connection's URI is shown only once it will be answered.
    """

    instance_id: str
    started_at: int
    heartbeat_at: int
    lease_expires_at: int
    listening_version: int


class NotOwner(Exception):
    """The request belongs to another instance now: leave it to that one."""


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of claiming a request: ``won``, else who holds it and since when."""

    won: bool
    owner: str
    received_at: int


@dataclass(frozen=True, slots=True)
class Orphans:
    """Open work taken over from instances that stopped: requests never started, batches
    started but not finished (with the items already handled), payments whose outcome
    is not known, and responses stored but never delivered."""

    unanswered: list[RequestRecord] = field(default_factory=list)
    unfinished: list[tuple[RequestRecord, set[int]]] = field(default_factory=list)
    unresolved: list[PaymentRecord] = field(default_factory=list)
    undelivered: list[Event] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.unanswered or self.unfinished or self.unresolved or self.undelivered)


class ConnectionStore(Protocol):
    """Connections (one per app), and a version that changes with any of them."""

    def connection_changes(self, poll_interval: float) -> AsyncIterator[int]:
        """The connections version now, then each time it changes (from any process)."""
        ...

    async def add_connection(self, connection: Connection) -> None:
        """Store a new connection; ``ValueError`` if its name is taken."""
        ...

    async def save_connection(self, connection: Connection) -> None:
        """Update a connection (same wallet key); ``ValueError`` if its name is taken."""
        ...

    async def connections(self) -> list[Connection]: ...
    async def connections_version(self) -> int: ...
    async def touch_connection(self, wallet_pubkey: str, now: int) -> None: ...


class RequestJournal(Protocol):
    """Request claims (the idempotency key) and their signed responses (the outbox).

    A request belongs to the instance that claimed it (its *owner*), which
    answers it. A response is stored before it is published and marked
    published once a relay took it, so one stored but never published (the
    owner died in between) is found and sent by whoever takes the work over.
    """

    async def claim(self, record: RequestRecord, owner: str) -> Claim:
        """Claim a request event id for ``owner``; if it was claimed before, who holds it."""
        ...

    async def request(self, event_id: str) -> RequestRecord | None: ...
    async def mark_done(self, request_id: str, outcome: RequestOutcome) -> None:
        """Every item of the request is answered: record it done, with what it finished as
        (one write; a request already done keeps its first outcome)."""
        ...

    async def save_responses(
        self,
        request_id: str,
        responses: Sequence[tuple[int | None, Event]],
        *,
        owner: str,
        now: int,
        done: RequestOutcome | None = None,
    ) -> None:
        """Store responses to publish (the outbox) while the request is ``owner``'s;
        with ``done``, atomically mark the request done with it too (as :meth:`mark_done`),
        one write where its last answer would take two.

        Raises:
            NotOwner: another instance took the request over; it answers.
        """
        ...

    async def responses_for(self, request_id: str) -> list[Event]: ...
    async def mark_published(self, response_ids: Sequence[str]) -> None: ...
    async def prune(self, *, before: int) -> int:
        """Forget requests that moved no money, dated (and received) before ``before``,
        with their responses; returns how many requests were removed."""
        ...


class PaymentLedger(Protocol):
    """Payments and the budgets they count against.

    ``reserve`` runs :func:`nwcd.policy.admission.admit` and inserts the
    admitted payments in one transaction, so concurrent requests (also from
    other processes sharing the store) can never overspend.
    """

    async def budget_used(self, wallet_pubkey: str, since: int) -> int: ...
    async def reserve(
        self,
        request_id: str,
        wallet_pubkey: str,
        intents: Sequence[PaymentIntent],
        *,
        owner: str,
        budget_msat: int | None,
        window_start: int,
        now: int,
    ) -> list[Reserved | Deny]:
        """Admit and store a request's payments, in one transaction.

        Raises:
            NotOwner: the request belongs to another instance now (this one stalled
                and its work was taken over): nothing is reserved.
        """
        ...

    async def mark_in_flight(self, payment_ids: Sequence[int], now: int) -> set[int]: ...
    async def fence(self, payment_id: int, now: int) -> bool:
        """Move a ``reserved`` payment to ``unknown``, so that no instance sends it any
        more (``mark_in_flight`` only moves reserved ones); False if it was not reserved."""
        ...

    async def settle(
        self,
        payment_id: int,
        state: PaymentState,
        *,
        now: int,
        preimage: str | None = None,
        fee_msat: int | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        response: tuple[str, int | None, Event] | None = None,
    ) -> bool: ...
    async def payments_by_hashes(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, PaymentRecord]: ...
    async def payment(self, payment_id: int) -> PaymentRecord | None: ...


class InvoiceBook(Protocol):
    """Which connection made which invoice: only that app sees it."""

    async def add_invoice(
        self, payment_hash: str, wallet_pubkey: str, now: int, metadata: str | None = None
    ) -> None:
        """Record who made an invoice, with the app's metadata (JSON text)."""
        ...

    async def metadata_of(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, str]:
        """The app's metadata (JSON text) of its invoices and payments among the hashes
        (of several payments of one hash, the latest's)."""
        ...

    async def invoice_owner(self, payment_hash: str) -> str | None: ...
    async def owned_hashes(self, wallet_pubkey: str) -> set[str]: ...
    async def claim_notification(self, payment_hash: str, notification_type: str) -> bool:
        """Claim a notification about an invoice (``payment_received`` or
        ``hold_invoice_accepted``): True once per type, for one instance."""
        ...


class ActivityLog(Protocol):
    """Recent requests of every instance sharing the store, for the operator's console.

    Written by :meth:`RequestJournal.mark_done`; requests that moved no money are
    forgotten after the retention (:meth:`RequestJournal.prune`).
    """

    async def recent_requests(
        self,
        limit: int,
        *,
        wallet_pubkey: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[RequestSummary]:
        """The newest requests first (by receipt), of one connection if ``wallet_pubkey``;
        ``before``: only those after this :attr:`RequestSummary.cursor` (the next page)."""
        ...

    async def request_summary(self, request_id: str) -> RequestSummary | None:
        """One request as :meth:`recent_requests` lists it (None: unknown, or pruned)."""
        ...

    async def request_items(self, request_id: str) -> list[PaymentRecord]:
        """A request's payments in item order, in their current state (a running batch's
        progress); items answered without a payment (a bad invoice, a denial) have none."""
        ...


class InstanceRegistry(Protocol):
    """Running service instances: their leases, what they listen for, and the work of the
    ones that stopped."""

    async def register(self, instance: InstanceRecord) -> None:
        """A new instance starts."""
        ...

    async def heartbeat(self, instance: InstanceRecord) -> bool:
        """Renew an instance's lease and listening version; False if it is gone (another
        instance found its lease expired and took its work over: it must stop)."""
        ...

    async def retire(self, instance_id: str) -> None:
        """An instance stopped cleanly."""
        ...

    async def live_instances(self, now: int) -> list[InstanceRecord]:
        """Instances whose lease has not expired at ``now``."""
        ...

    async def take_over(self, owner: str, now: int, *, everyone_else: bool = False) -> Orphans:
        """Make ``owner`` the owner of the open work of instances whose lease has expired
        (with ``everyone_else``: of every other instance), retire them, and return it.

        One transaction, compare-and-set on each request's owner: of instances taking
        over at once, each request goes to exactly one.
        """
        ...


class Store(
    ConnectionStore,
    RequestJournal,
    PaymentLedger,
    InvoiceBook,
    InstanceRegistry,
    ActivityLog,
    Protocol,
):
    """Every concern in one durable store (one adapter implements them all, since some
    writes span two: a payment settles together with its stored response).

    ``shared``: several ``nwcd serve`` instances may use the store at once; if not,
    the one running takes over every other instance's work at start. ``kind``: which
    database it is (``sqlite``, ``postgresql``), for the operator.
    """

    shared: bool
    kind: str

    async def close(self) -> None: ...
