"""The simulated Lightning backend: a real-looking wallet for demos and tests.

It owns a balance and a small simulated network: the wallet's own node and a few
payee nodes, all with keys derived from a random seed stored in the state file.
Invoices are real signed BOLT-11 invoices (``lnbcrt`` by default). The wallet pays
only invoices of its network's payees, whose preimages it knows; anything else
fails with "no route", as a real node would.

Each payee invoice carries how its payee behaves (latency, succeed / fail / hang,
fee), so tests and demos reach every path of the service.

State lives in ONE SQLite file (WAL, ``busy_timeout``), so ``nwcd serve`` paying
and ``nwcd sim invoice`` / ``nwcd sim release`` in other processes share it. The
outcome of a payment is a function of stored state and time (``settle_at =
started + latency``, the release of a hang), resolved lazily by whoever asks
next: a payment whose process died mid-flight still ends as it would have, which
is what crash recovery needs.

Balance: ``initial + received - (amount + fee) of every payment not failed``, so
payments in flight count as spent; :meth:`SimulatedBackend.get_balance` reports
this spendable amount. It is checked and the payment row written in one ``BEGIN
IMMEDIATE`` transaction, so concurrent payments (also across processes) can never
overdraw.

Threading: a plain ``sqlite3`` connection owned by one dedicated thread; every
operation is one synchronous function (its whole transaction) run there, so it
costs one thread round trip. ``pay_invoice`` starts queued while the thread is
busy share one transaction, one poller watches every payment in flight, and the
stored balance is cached until another process writes (``PRAGMA data_version``).

Outages (for chaos tests): :meth:`SimulatedBackend.set_outage`, from any process
sharing the file (``nwcd sim outage``), makes every port method but
``incoming_payments`` fail for a while. ``"error"`` is a 5xx from a proxy in
front of the node: the call raises ``BackendUnavailable``; a payment is started
first and only its answer is lost, the ambiguous case a wallet service must
handle. ``"hang"`` is a hung connection: the call waits until the outage ends,
then goes on. The outage is stored in the meta rows and checked by each
operation's thread function, from a cache re-read only when another process
wrote. The simulator's own commands are never affected.

Named nodes (for LNURL and keysend tests): :meth:`SimulatedBackend.add_node`
makes a payee node whose key is derived from the seed and its name, so it is
the same in every process. Keysends to it keep their TLV records, and
:meth:`SimulatedBackend.received` lists what it got, as a podcast host or an
LNURL user would see it (``nwcd sim received``).

Attempts log: every ``pay_invoice`` / ``pay_keysend`` that reaches the node
appends a row to ``attempts`` (in the transaction of the start) saying what
the node did with it: ``started``, ``already_paid``, ``in_transition`` or
``refused``; :meth:`SimulatedBackend.attempts` reads it, so a test can prove a
service never tried to pay a hash twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast, get_args

import coincurve

from nwcd import bolt11
from nwcd.bolt11 import Invoice, Network
from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.errors import BackendUnavailable, ErrorCode, NwcdError, RequestError
from nwcd.filewatch import file_changes
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    TlvRecord,
)
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.nostr.event import is_hex
from nwcd.nostr.keys import SecretKey
from nwcd.ports import (
    BACKEND_METHODS,
    NOT_FOUND,
    Failed,
    LightningBackend,
    PaymentOutcome,
    Pending,
    Succeeded,
)
from nwcd.sqlite_runner import SqliteRunner

__all__ = [
    "DEFAULT_INITIAL_BALANCE_MSAT",
    "PAYEE_COUNT",
    "SCHEMA_VERSION",
    "Attempt",
    "AttemptResult",
    "OutageMode",
    "Outcome",
    "ReceivedPayment",
    "ReceivedTlv",
    "ReleaseOutcome",
    "SimInvoice",
    "SimNode",
    "SimulatedBackend",
    "SimulatorConfig",
    "SimulatorError",
]

Outcome = Literal["succeed", "fail", "hang"]
ReleaseOutcome = Literal["succeed", "fail"]
OutageMode = Literal["error", "hang"]
AttemptResult = Literal["started", "already_paid", "in_transition", "refused"]

SCHEMA_VERSION: Final = 4
PAYEE_COUNT: Final = 3
DEFAULT_INITIAL_BALANCE_MSAT: Final = 100_000_000_000

NO_ROUTE: Final = "no route"
FEE_LIMIT_EXCEEDED: Final = "fee limit exceeded"
ALREADY_PAID: Final = "invoice already paid"
IN_TRANSITION: Final = "payment in transition"
INCORRECT_AMOUNT: Final = "incorrect payment amount"
INVOICE_EXPIRED: Final = "invoice expired"
FAILED_AT_PAYEE: Final = "rejected by the payee"
OUTAGE: Final = "simulated outage"

_NETWORKS: Final = {
    "mainnet": Network.MAINNET,
    "testnet": Network.TESTNET,
    "signet": Network.SIGNET,
    "regtest": Network.REGTEST,
    "simnet": Network.SIMNET,
}
_CURVE_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_LND_SIGN_PREFIX: Final = b"Lightning Signed Message:"
_ZBASE32: Final = "ybndrfg8ejkmcpqxot1uwisza345h769"
_GENESIS_HEIGHT: Final = 101  # regtest nodes start after mining 101 blocks
_BLOCK_SECONDS: Final = 600
_DEFAULT_DESCRIPTION: Final = "nwcd simulated payment"
_HANG_POLL: Final = 0.05  # seconds between looks at a hang outage (it may end early)
# A node name is the user part of a lightning address (LUD-16), so one rule fits both.
_NODE_NAME: Final = re.compile(r"[a-z0-9._-]{1,64}")

# Every payment attempt that reached the node and what it did with it (append-only).
_ATTEMPTS_TABLE: Final = """CREATE TABLE attempts (
    seq INTEGER PRIMARY KEY,
    payment_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    result TEXT NOT NULL
)"""


def _invoices_table(name: str) -> str:
    """Invoices of the wallet's own node (node = 'wallet') and of the simulated payees.

    A hold invoice (``hold``) has no preimage until the app settles it; the payer's
    payment is ``accepted_at`` (held) first. ``event_seq`` orders what an incoming
    payment stream reports: it moves when a payment is accepted and when it settles.
    """
    return f"""CREATE TABLE {name} (
        payment_hash TEXT PRIMARY KEY,
        invoice TEXT NOT NULL UNIQUE,
        node TEXT NOT NULL CHECK (node IN ('wallet', 'payee')),
        payee_index INTEGER,
        preimage TEXT,
        payment_secret TEXT NOT NULL,
        amount_msat INTEGER,
        description TEXT,
        description_hash TEXT,
        metadata TEXT,
        created_at REAL NOT NULL,
        expires_at INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL DEFAULT 'succeed' CHECK (outcome IN ('succeed', 'fail', 'hang')),
        fee_msat INTEGER NOT NULL DEFAULT 0,
        release_outcome TEXT CHECK (release_outcome IN ('succeed', 'fail')),
        released_at REAL,
        received_msat INTEGER,
        settled_at REAL,
        event_seq INTEGER UNIQUE,
        hold INTEGER NOT NULL DEFAULT 0,
        accepted_at REAL,
        canceled_at REAL,
        settle_deadline INTEGER
    )"""


# The wallet's transactions as NIP-47 sees them: its own invoices and its payments.
_TRANSACTIONS_VIEW: Final = """CREATE VIEW wallet_transactions AS
    SELECT 'incoming' AS type, payment_hash, invoice, description, description_hash,
           preimage, COALESCE(received_msat, amount_msat, 0) AS amount_msat,
           0 AS fee_msat, created_at, expires_at, settled_at, metadata,
           CASE WHEN settled_at IS NOT NULL THEN 'settled'
                WHEN canceled_at IS NOT NULL THEN 'canceled'
                WHEN accepted_at IS NOT NULL THEN 'accepted'
                ELSE 'pending' END AS status,
           event_seq, settle_deadline
    FROM invoices WHERE node = 'wallet'
    UNION ALL
    SELECT 'outgoing', p.payment_hash, p.invoice, i.description, i.description_hash,
           p.preimage, p.amount_msat, p.fee_msat, p.created_at, i.expires_at,
           p.settled_at, NULL, p.status, NULL, NULL
    FROM payments p LEFT JOIN invoices i ON i.payment_hash = p.payment_hash"""

# Version 4: named payee nodes, the node an invoice belongs to (NULL for the wallet's
# and for payee invoices made before), the TLV records a keysend carried (JSON).
_NODES: Final = (
    """CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        pubkey TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    )""",
    "ALTER TABLE invoices ADD COLUMN payee_pubkey TEXT",
    "ALTER TABLE payments ADD COLUMN tlv_records TEXT",
    "CREATE INDEX payments_destination ON payments (destination)",
)

# The current schema, for a new file (an older one is brought up by _UPGRADES).
_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _invoices_table("invoices"),
    # Outgoing payments; status is persisted once resolved (lazily, by whoever asks).
    """CREATE TABLE payments (
        payment_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('invoice', 'keysend')),
        invoice TEXT,
        destination TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        fee_msat INTEGER NOT NULL,
        preimage TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('in_flight', 'succeeded', 'failed')),
        reason TEXT,
        created_at REAL NOT NULL,
        settle_at REAL NOT NULL,
        settled_at REAL
    )""",
    "CREATE INDEX payments_status ON payments (status)",
    "CREATE INDEX payments_invoice ON payments (invoice)",
    _TRANSACTIONS_VIEW,
    _ATTEMPTS_TABLE,
    *_NODES,
)
_V2_INVOICE_COLUMNS: Final = (
    "payment_hash, invoice, node, payee_index, preimage, payment_secret, amount_msat,"
    " description, description_hash, metadata, created_at, expires_at, latency_ms, outcome,"
    " fee_msat, release_outcome, released_at, received_msat, settled_at"
)
# The statements that take a file from version ``v`` to ``v + 1``, by ``v``; the
# outage's meta rows need none (absent: no outage). SQLite cannot drop a NOT NULL
# constraint in place: version 3 (hold invoices) rebuilds the invoices table.
_UPGRADES: Final[dict[int, tuple[str, ...]]] = {
    1: (_ATTEMPTS_TABLE,),
    2: (
        "DROP VIEW wallet_transactions",
        _invoices_table("invoices_v3"),
        f"INSERT INTO invoices_v3 ({_V2_INVOICE_COLUMNS}, event_seq)"  # noqa: S608 - constants
        f" SELECT {_V2_INVOICE_COLUMNS}, settle_seq FROM invoices",
        "DROP TABLE invoices",
        "ALTER TABLE invoices_v3 RENAME TO invoices",
        _TRANSACTIONS_VIEW,
    ),
    3: _NODES,
}

_PAYMENT_SQL: Final = """
    SELECT p.*, i.outcome, i.release_outcome, i.released_at
    FROM payments p LEFT JOIN invoices i ON i.payment_hash = p.payment_hash
"""
_DUE_SQL: Final = (
    _PAYMENT_SQL + " WHERE p.status = 'in_flight' AND p.settle_at <= ?"
    " AND (i.outcome != 'hang' OR i.released_at IS NOT NULL)"
)
_RESOLVE_SQL: Final = (
    "UPDATE payments SET status = ?, settled_at = ?, reason = ?"
    " WHERE payment_hash = ? AND status = 'in_flight'"
)
_BALANCE_SQL: Final = """SELECT
    (SELECT COALESCE(SUM(received_msat), 0) FROM invoices
     WHERE node = 'wallet' AND settled_at IS NOT NULL)
  - (SELECT COALESCE(SUM(amount_msat + fee_msat), 0) FROM payments WHERE status != 'failed')"""
_PAYEE_INVOICE_SQL: Final = (
    "SELECT i.payment_hash, i.invoice, i.payee_index, i.payee_pubkey, i.preimage, i.amount_msat,"
    " i.expires_at, i.latency_ms, i.outcome, i.fee_msat, i.release_outcome,"
    " p.status AS payment_status"
    " FROM invoices i LEFT JOIN payments p ON p.payment_hash = i.payment_hash"
    " WHERE i.payment_hash IN ({marks}) AND i.node = 'payee'"
)
_INSERT_PAYMENT_SQL: Final = """INSERT OR REPLACE INTO payments (payment_hash, kind, invoice,
    destination, amount_msat, fee_msat, preimage, status, reason, created_at, settle_at,
    settled_at)
VALUES (?, 'invoice', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_ATTEMPT_SQL: Final = (
    "INSERT INTO attempts (payment_hash, kind, at, result) VALUES (?, ?, ?, ?)"
)
_OUTAGE_SQL: Final = "SELECT key, value FROM meta WHERE key IN ('outage_mode', 'outage_until')"
_LOOK_CHUNK: Final = 500  # payment hashes per query (SQLite limits bound parameters)

T = TypeVar("T")


class SimulatorError(NwcdError, ValueError):
    """A simulator command cannot be done (unknown invoice, already released, ...)."""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Where the simulator keeps its state, and what a new state file starts with.

    ``initial_balance_msat`` is written at the first open; afterwards the file owns
    the balance, so every process sharing the file agrees on it.
    """

    path: Path
    initial_balance_msat: int = DEFAULT_INITIAL_BALANCE_MSAT
    network: str = "regtest"
    poll_interval: float = 0.025  # seconds between checks of the file for other processes
    busy_timeout: float = 5.0  # seconds to wait for another process's write lock

    def __post_init__(self) -> None:
        if self.network not in _NETWORKS:
            raise ValueError(f"network must be one of {sorted(_NETWORKS)}")
        if self.initial_balance_msat < 0:
            raise ValueError("initial_balance_msat must not be negative")
        if self.poll_interval <= 0 or self.busy_timeout < 0:
            raise ValueError("poll_interval must be positive and busy_timeout not negative")


@dataclass(frozen=True, slots=True)
class SimInvoice:
    """A payee invoice of the simulated network, as ``nwcd sim invoice`` prints it."""

    invoice: str
    payment_hash: str
    preimage: str
    amount_msat: int | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One payment attempt that reached the node, from the append-only log.

    ``result``: ``started`` (a payment row was written, whatever its immediate
    outcome), ``already_paid`` (the hash had succeeded before), ``in_transition``
    (the hash was in flight) or ``refused`` (nothing started: no route, expired,
    wrong amount, fee limit, insufficient balance, ...). ``payment_hash`` is empty
    for a keysend whose preimage is not 32 bytes of hex.
    """

    payment_hash: str
    kind: Literal["invoice", "keysend"]
    at: float
    result: AttemptResult


@dataclass(frozen=True, slots=True)
class SimNode:
    """A named payee node of the simulated network (a keysend payee, an LNURL user)."""

    name: str
    pubkey: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ReceivedTlv:
    """A TLV record a node got with a keysend, with what it reads as where it can.

    ``text``: the value as UTF-8, if it is; ``json``: that text parsed, if it is a
    JSON object or array (a podcast's boostagram, 7629169, is one).
    """

    type: int
    value: str
    text: str | None = None
    json: Any = None


@dataclass(frozen=True, slots=True)
class ReceivedPayment:
    """A payment a simulated node received: a keysend, or the payment of its invoice.

    ``description`` and ``metadata`` are the invoice's (for an LNURL invoice: the text
    its description hash commits to, and the payer's comment or zap request).
    """

    kind: Literal["keysend", "invoice"]
    amount_msat: int
    payment_hash: str
    at: float
    tlv_records: tuple[ReceivedTlv, ...] = ()
    description: str | None = None
    metadata: Mapping[str, Any] | None = None


class _Hang(Exception):
    """A port operation met a ``hang`` outage before doing anything: retry from ``until``."""

    def __init__(self, until: float) -> None:
        super().__init__(until)
        self.until = until


@contextlib.contextmanager
def _edge() -> Iterator[None]:
    """Translate the SQLite layer's exceptions: the service sees only ours."""
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"simulator state file: {exc}") from exc


def _derive_key(seed: bytes, label: bytes) -> bytes:
    """A node secret key, deterministic from the file's seed."""
    counter = 0
    while True:
        key = hmac.digest(seed, label + counter.to_bytes(4, "big"), "sha256")
        if 0 < int.from_bytes(key, "big") < _CURVE_ORDER:
            return key
        counter += 1  # pragma: no cover - probability ~2^-128


def _node_pubkey(secret: bytes) -> str:
    return str(coincurve.PrivateKey(secret).public_key.format(compressed=True).hex())


def _node_label(name: str) -> bytes:
    """The key label of a named node (never one of the fixed labels: they have no colon).

    Raises:
        SimulatorError: not a lowercase lightning address user name.
    """
    if not _NODE_NAME.fullmatch(name):
        raise SimulatorError(
            f"node name {name!r}: 1-64 of a-z, 0-9, '.', '_' and '-' (a lightning address user)"
        )
    return b"node:" + name.encode()


def _received_tlv(type_: int, value: str) -> ReceivedTlv:
    """A TLV record with its UTF-8 text and JSON, where the value is either."""
    try:
        text: str | None = bytes.fromhex(value).decode("utf-8")
    except ValueError:  # not hex, or not UTF-8
        return ReceivedTlv(type_, value)
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return ReceivedTlv(type_, value, text, parsed if isinstance(parsed, dict | list) else None)


def _received(row: sqlite3.Row) -> ReceivedPayment:
    """A payment row (joined with its invoice) as its payee sees it."""
    records = json.loads(row["tlv_records"] or "[]")
    metadata = row["metadata"]
    return ReceivedPayment(
        kind=row["kind"],
        amount_msat=row["amount_msat"],
        payment_hash=row["payment_hash"],
        at=row["settled_at"],
        tlv_records=tuple(_received_tlv(r["type"], r["value"]) for r in records),
        description=row["description"],
        metadata=json.loads(metadata) if metadata else None,
    )


def zbase32(data: bytes) -> str:
    """z-base-32 (as LND's ``signmessage`` uses), most significant bits first."""
    bits = len(data) * 8
    value = int.from_bytes(data, "big") << (-bits % 5)
    count = (bits + 4) // 5
    return "".join(_ZBASE32[value >> 5 * (count - 1 - i) & 31] for i in range(count))


def _resolve(row: sqlite3.Row, now: float) -> tuple[str, float | None, str | None]:
    """``(status, settled_at, reason)`` of a payment row, from stored state and time.

    Deterministic, so two processes resolving the same row write the same result.
    """
    status: str = row["status"]
    if status != "in_flight":
        return status, row["settled_at"], row["reason"]
    outcome: str | None = row["outcome"]
    due: float = row["settle_at"]
    if outcome == "hang":
        outcome = row["release_outcome"]
        if outcome is not None:
            due = max(due, row["released_at"])
    if outcome is None or now < due:
        return "in_flight", None, None
    if outcome == "succeed":
        return "succeeded", due, None
    return "failed", due, FAILED_AT_PAYEE


def _outcome(status: str, row: sqlite3.Row, reason: str | None) -> PaymentOutcome:
    if status == "succeeded":
        return Succeeded(row["preimage"], row["fee_msat"])
    if status == "failed":
        return Failed(reason or FAILED_AT_PAYEE)
    return Pending()


# NIP-47 has no "canceled": a canceled hold invoice failed (as Alby Hub reports it).
_INCOMING_STATES: Final = {"settled": "settled", "accepted": "accepted", "canceled": "failed"}


def _payable(row: sqlite3.Row, amount_msat: int | None, now: float) -> int:
    """The amount an outside payer pays a wallet invoice, if it can be paid at all.

    Raises:
        SimulatorError: paid (or held) already, canceled, expired, or the wrong amount.
    """
    payment_hash = row["payment_hash"]
    if row["settled_at"] is not None or row["accepted_at"] is not None:
        raise SimulatorError(f"invoice {payment_hash} is already paid")
    if row["canceled_at"] is not None:
        raise SimulatorError(f"invoice {payment_hash} was canceled")
    if now >= row["expires_at"]:
        raise SimulatorError(f"invoice {payment_hash} has expired")
    expected = row["amount_msat"]
    amount = expected if amount_msat is None else amount_msat
    if amount is None or amount <= 0 or (expected is not None and amount != expected):
        raise SimulatorError(f"invoice {payment_hash} cannot be paid {amount} msat")
    return int(amount)


def _transaction(row: sqlite3.Row, now: float) -> Transaction:
    """A ``wallet_transactions`` row as a NIP-47 transaction."""
    status: str = row["status"]
    if row["type"] == "incoming":
        state = _INCOMING_STATES.get(status) or (
            "pending" if now < row["expires_at"] else "expired"
        )
    else:
        state = {"in_flight": "pending", "succeeded": "settled", "failed": "failed"}[status]
    settled = state == "settled"
    metadata = row["metadata"]
    return Transaction(
        type=row["type"],
        payment_hash=row["payment_hash"],
        amount_msat=row["amount_msat"],
        created_at=int(row["created_at"]),
        state=state,
        invoice=row["invoice"],
        description=row["description"],
        description_hash=row["description_hash"],
        preimage=row["preimage"] if settled else None,
        fees_paid_msat=row["fee_msat"] if settled else 0,
        expires_at=row["expires_at"],
        settled_at=int(row["settled_at"]) if settled else None,
        metadata=json.loads(metadata) if metadata else None,
        settle_deadline=row["settle_deadline"] if state == "accepted" else None,
    )


def _rows(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    return list(db.execute(sql, params).fetchall())


def _one(db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(sql, params).fetchone()
    return row


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the file's write lock
    is held from the first statement, so a check and the write it allows are atomic
    across processes."""

    def __init__(self, db: sqlite3.Connection, ledger: _Ledger | None = None) -> None:
        self._db = db
        self._ledger = ledger

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return
        self._rollback()

    def _rollback(self) -> None:
        if self._ledger is not None:
            self._ledger.forget()  # it may count writes that are now undone
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


class _Ledger:
    """The stored part of the balance (received minus spent, msat), cached between reads.

    The cache is right while no other connection has committed (``PRAGMA
    data_version`` unchanged) and every write of this connection that moves money
    moves it too (:meth:`move`); a rollback forgets it. So the balance costs one
    ``SUM`` over every payment only after another process wrote to the file.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._value: int | None = None
        self._version: int | None = None

    def value(self) -> int:
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if self._value is None or version != self._version:
            row = _one(self._db, _BALANCE_SQL)
            assert row is not None
            self._value, self._version = int(row[0]), version
        return self._value

    def move(self, msat: int) -> None:
        """This connection wrote a change of ``msat`` (negative: spent)."""
        if self._value is not None:
            self._value += msat

    def forget(self) -> None:
        self._value = None


class _OutageWatch:
    """The simulated outage stored in the meta rows, cached between reads.

    Like :class:`_Ledger`: the cache is right while no other connection has
    committed (``PRAGMA data_version`` unchanged) and :meth:`set` follows every
    change this connection writes; so checking costs one pragma per operation.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._version: int | None = None
        self._mode: OutageMode | None = None
        self._until = 0.0

    def current(self, now: float) -> OutageMode | None:
        """The mode of the outage going on at ``now``, if any."""
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            rows = {str(key): str(value) for key, value in _rows(self._db, _OUTAGE_SQL)}
            mode = rows.get("outage_mode")
            self._mode = cast("OutageMode", mode) if mode in get_args(OutageMode) else None
            self._until = float(rows.get("outage_until", "0"))
            self._version = version
        return self._mode if now < self._until else None

    @property
    def until(self) -> float:
        return self._until

    def set(self, mode: OutageMode | None, until: float) -> None:
        """This connection stored the outage ``mode`` until ``until`` (None: none)."""
        self._mode, self._until = mode, until


_Resolution = tuple[str, float | None, str | None, str, int]


def _resolution(row: sqlite3.Row, now: float) -> _Resolution | None:
    """What to store for a payment row whose outcome became known, if any.

    ``(status, settled_at, reason, payment_hash, refund)``: a failure gives the
    reserved amount and fee back.
    """
    status, settled_at, reason = _resolve(row, now)
    if status == row["status"]:
        return None
    refund = row["amount_msat"] + row["fee_msat"] if status == "failed" else 0
    return status, settled_at, reason, row["payment_hash"], refund


def _store_resolutions(
    db: sqlite3.Connection, ledger: _Ledger, resolutions: Sequence[_Resolution]
) -> None:
    """Persist the outcome of payments that were in flight.

    Idempotent (only rows still in flight change, with deterministic values), so two
    processes resolving the same payment agree.
    """
    if len(resolutions) > 1 and not db.in_transaction:
        with _Transaction(db, ledger):
            _store_resolutions(db, ledger, resolutions)
        return
    for *values, refund in resolutions:
        if db.execute(_RESOLVE_SQL, values).rowcount and refund:
            ledger.move(refund)


def _settle_due(
    db: sqlite3.Connection, ledger: _Ledger, now: float, payment_hash: str | None = None
) -> None:
    """Persist the outcome of payments in flight whose outcome is now known."""
    # Only rows that may be due; _resolve decides.
    sql = _DUE_SQL
    params: tuple[float | str, ...] = (now,)
    if payment_hash is not None:
        sql += " AND p.payment_hash = ?"
        params = (now, payment_hash)
    resolutions = [r for row in _rows(db, sql, params) if (r := _resolution(row, now))]
    _store_resolutions(db, ledger, resolutions)


def _insufficient(amount_msat: int, fee_msat: int) -> RequestError:
    return RequestError(
        ErrorCode.INSUFFICIENT_BALANCE,
        f"insufficient balance to pay {amount_msat} msat plus {fee_msat} msat fee",
    )


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A payment start that stored the payment in flight: its outcome is due at ``settle_at``."""

    settle_at: float


_Started = PaymentOutcome | _InFlight


@dataclass(slots=True)
class _Start:
    """A queued ``pay_invoice`` start, done with the others queued in one transaction."""

    invoice: Invoice
    amount_msat: int
    fee_limit_msat: int
    future: asyncio.Future[_Started]


@dataclass(slots=True)
class _Waiting:
    """Callers waiting for the outcome of one payment in flight (see ``_poll``)."""

    settle_at: float
    due: float  # when to look next
    futures: list[asyncio.Future[PaymentOutcome]]
    kicked: bool = False  # released in this process while a look was running


@dataclass(slots=True)
class _StartBatch:
    """What one transaction of payment starts knows and has done so far."""

    now: float
    invoices: dict[str, sqlite3.Row]  # the payee invoices paid, with their payment's status
    statuses: dict[str, str] = field(default_factory=dict)  # payments stored by the batch
    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # their rows, in order
    attempts: list[tuple[str, str, float, str]] = field(default_factory=list)  # log rows
    spendable: int | None = None  # the balance left, once read


def _attempt_result(result: _Started | RequestError, *, started: bool) -> AttemptResult:
    """What the attempts log says of a payment start with this result."""
    if started:
        return "started"
    if result == Failed(ALREADY_PAID):
        return "already_paid"
    if result == Pending(IN_TRANSITION):
        return "in_transition"
    return "refused"


def _payee_invoices(
    db: sqlite3.Connection, payment_hashes: Sequence[str]
) -> dict[str, sqlite3.Row]:
    """The payee invoices with these hashes, and the status of their payment if any."""
    unique = list(dict.fromkeys(payment_hashes))
    found: dict[str, sqlite3.Row] = {}
    for offset in range(0, len(unique), _LOOK_CHUNK):
        chunk = unique[offset : offset + _LOOK_CHUNK]
        sql = _PAYEE_INVOICE_SQL.format(marks=",".join("?" * len(chunk)))
        for row in db.execute(sql, chunk):
            found[row["payment_hash"]] = row
    return found


class SimulatedBackend:
    """A :class:`~nwcd.ports.LightningBackend` over a simulated network in a SQLite file.

    Create with :meth:`open`, end with :meth:`close`. Besides the port, it offers
    the simulator's own commands: :meth:`create_invoice` (a payee invoice with its
    behaviour), :meth:`release` (end a hanging payment), :meth:`receive` (an
    outside payer pays one of the wallet's invoices), :meth:`set_outage` (make the
    port fail for a while), :meth:`attempts` (the log of payment attempts), and
    :meth:`add_node` / :meth:`received` (named payees and what they got).

    Every operation is one synchronous function (one transaction where it writes)
    run on a dedicated thread that owns the connection, so each costs one thread
    round trip and they never interleave in this process. ``pay_invoice`` starts
    that arrive while the thread is busy queue up and are done together in one
    ``BEGIN IMMEDIATE`` transaction (each still checked against the balance left by
    the ones before it). Payments in flight are watched by one poller for the whole
    backend: one query per look for all payments whose outcome may be due.

    Every port method's thread function goes through :meth:`_call`, which applies
    a simulated outage; the simulator's own commands use :meth:`_run` directly.
    """

    kind = "simulator"
    methods: frozenset[str] = BACKEND_METHODS
    max_concurrent_payments: int | None = None

    def __init__(
        self,
        db: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        config: SimulatorConfig,
        clock: Clock,
        meta: dict[str, str],
    ) -> None:
        """Use :meth:`open`."""
        self._db = db
        self._ledger = _Ledger(db)
        self._outage = _OutageWatch(db)
        self._executor = executor
        self._runner = SqliteRunner(executor, busy_timeout_ms=int(config.busy_timeout * 1000))
        self._runner.attach(db)
        self._config = config
        self._clock = clock
        self._network = _NETWORKS[config.network]
        self._seed = bytes.fromhex(meta["seed"])
        self._initial_balance = int(meta["initial_balance_msat"])
        self._created_at = float(meta["created_at"])
        self._node_secret = _derive_key(self._seed, b"wallet")
        self._payee_secrets = tuple(
            _derive_key(self._seed, b"payee %d" % index) for index in range(PAYEE_COUNT)
        )
        self.node_pubkey = _node_pubkey(self._node_secret)
        self.payee_pubkeys = tuple(_node_pubkey(secret) for secret in self._payee_secrets)
        self._zapper = SecretKey(_derive_key(self._seed, b"lnurl nostr"))
        self._closed = False
        self._starts: list[_Start] = []  # pay_invoice starts waiting for the thread
        self._flusher: asyncio.Task[None] | None = None
        self._waiting: dict[str, _Waiting] = {}  # payments in flight, by payment hash
        self._poller: asyncio.Task[None] | None = None
        self._poll_wake = asyncio.Event()
        self._incoming_wakeups: set[asyncio.Event] = set()

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, config: SimulatorConfig, *, clock: Clock = SYSTEM_CLOCK
    ) -> SimulatedBackend:
        """Open (creating if needed) the state file.

        Raises:
            BackendUnavailable: the file cannot be opened, or is of a newer schema.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwcd-simulator")
        try:
            with _edge():
                db, meta = await asyncio.get_running_loop().run_in_executor(
                    executor, _connect, config, clock
                )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(db, executor, config, clock, meta)

    async def close(self) -> None:
        """Close the file; waiting payments and incoming streams stop."""
        if self._closed:
            return
        self._closed = True
        for waiting in self._waiting.values():
            for future in waiting.futures:
                if not future.done():
                    future.set_exception(BackendUnavailable("the simulator is closed"))
        self._waiting.clear()
        self._poll_wake.set()
        for event in self._incoming_wakeups:
            event.set()
        try:
            with _edge():  # after every operation already handed to the thread
                await self._runner.close()
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> SimulatedBackend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- database helpers -----------------------------------------------------------------

    async def _run(self, fn: Callable[[], T], *, inline: bool = False) -> T:
        """Run ``fn`` on the connection's thread, with SQLite errors translated.

        ``inline``: on the loop's thread when that is safe (see :mod:`nwcd.sqlite_runner`;
        ``fn``'s ``SQLITE_BUSY`` must leave nothing done).
        """
        if self._closed:
            raise BackendUnavailable("the simulator is closed")
        with _edge():
            # Every inline call counts as a write: the next checkpoint is due after 1000.
            return await self._runner.run(fn, inline=inline, writes=inline)

    async def _call(
        self, fn: Callable[[], T], *, answer_lost: bool = False, inline: bool = False
    ) -> T:
        """Run a port method's ``fn`` on the thread as a simulated outage lets it.

        ``error``: raise at once, or (``answer_lost``: a payment start) after ``fn``
        did its work. ``hang``: wait until the outage ends (looking every
        ``_HANG_POLL`` s, as another process may end it early), then run ``fn``.
        """
        gated = functools.partial(self._gated, fn, answer_lost)
        while True:
            try:
                return await self._run(gated, inline=inline)
            except _Hang as hang:
                await self._sit_out(hang)

    async def _sit_out(self, hang: _Hang) -> None:
        """Sleep until the outage is due to end, at most ``_HANG_POLL`` (it may end early)."""
        await asyncio.sleep(min(_HANG_POLL, max(0.0, hang.until - self._clock.now())))

    def _gated(self, fn: Callable[[], T], answer_lost: bool) -> T:
        """``fn`` through the outage going on, if any (on the thread; see :meth:`_call`)."""
        mode = self._outage.current(self._clock.now())
        if mode == "hang":
            raise _Hang(self._outage.until)
        if mode == "error" and not answer_lost:
            raise BackendUnavailable(OUTAGE)
        result = fn()
        if mode == "error":
            raise BackendUnavailable(OUTAGE)
        return result

    def _settled_balance(self) -> int:
        """Spendable msat after persisting what is due (on the thread)."""
        _settle_due(self._db, self._ledger, self._clock.now())
        return self._initial_balance + self._ledger.value()

    # --- the simulator's own commands -----------------------------------------------------

    async def create_invoice(
        self,
        amount_msat: int | None,
        *,
        latency_ms: int = 0,
        outcome: Outcome = "succeed",
        fee_msat: int = 0,
        description: str | None = None,
        description_hash: str | None = None,
        expiry: int = bolt11.DEFAULT_EXPIRY,
        payee_index: int | None = None,
        node: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> SimInvoice:
        """A signed invoice of a simulated payee that behaves as told when paid.

        The payee is ``node`` (a name from :meth:`add_node`) or fixed payee
        ``payee_index`` (default 0). With ``description_hash`` the invoice commits to
        it (BOLT-11 ``h``, as LNURL-pay needs) and ``description`` is only stored, as
        the text it hashes; ``metadata`` is stored for :meth:`received`.

        Raises:
            ValueError: an argument is out of range.
            SimulatorError: no node has this name.
            BackendUnavailable: the state file cannot be written.
        """
        if amount_msat is not None and amount_msat <= 0:
            raise ValueError("amount_msat must be positive (or None for an amountless invoice)")
        if latency_ms < 0 or fee_msat < 0 or expiry <= 0:
            raise ValueError("latency_ms and fee_msat must not be negative, expiry positive")
        if outcome not in get_args(Outcome):
            raise ValueError(f"outcome must be one of {get_args(Outcome)}")
        if node is not None and payee_index is not None:
            raise ValueError("give a node or a payee_index, not both")
        if not 0 <= (payee_index or 0) < PAYEE_COUNT:
            raise ValueError(f"payee_index must be in [0, {PAYEE_COUNT})")
        if description_hash is not None and not is_hex(description_hash.lower(), 64):
            raise ValueError("description_hash must be 64 hex characters")
        if node is None:
            secret = self._payee_secrets[payee_index or 0]
        else:
            secret = _derive_key(self._seed, _node_label(node))
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        payment_secret = os.urandom(32).hex()
        now = self._clock.now()
        if description is None and description_hash is None:
            description = _DEFAULT_DESCRIPTION
        text = bolt11.encode(
            secret=secret,
            payment_hash=payment_hash,
            payment_secret=payment_secret,
            timestamp=int(now),
            network=self._network,
            amount_msat=amount_msat,
            description=None if description_hash is not None else description,
            description_hash=description_hash,
            expiry=expiry,
        )
        values = (
            payment_hash,
            text,
            None if node is not None else payee_index or 0,
            _node_pubkey(secret),
            preimage.hex(),
            payment_secret,
            amount_msat,
            description,
            None if description_hash is None else description_hash.lower(),
            None if metadata is None else json.dumps(metadata),
            now,
            int(now) + expiry,
            latency_ms,
            outcome,
            fee_msat,
        )

        def insert() -> None:
            with _Transaction(self._db):
                if node is not None:
                    self._node_row(node)
                self._db.execute(
                    """INSERT INTO invoices (payment_hash, invoice, node, payee_index,
                        payee_pubkey, preimage, payment_secret, amount_msat, description,
                        description_hash, metadata, created_at, expires_at, latency_ms,
                        outcome, fee_msat)
                    VALUES (?, ?, 'payee', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    values,
                )

        await self._run(insert)
        return SimInvoice(text, payment_hash, preimage.hex(), amount_msat)

    async def add_node(self, name: str, *, existing_ok: bool = False) -> str:
        """Add a named payee node (keysend payee, LNURL user); return its pubkey (hex).

        Its key comes from the seed and the name, so adding it again (``existing_ok``)
        in any process gives the same pubkey.

        Raises:
            SimulatorError: a bad name, or the node exists and not ``existing_ok``.
        """
        pubkey = _node_pubkey(_derive_key(self._seed, _node_label(name)))

        def insert() -> None:
            inserted = self._db.execute(
                "INSERT OR IGNORE INTO nodes (name, pubkey, created_at) VALUES (?, ?, ?)",
                (name, pubkey, self._clock.now()),
            ).rowcount
            if not inserted and not existing_ok:
                raise SimulatorError(f"a node named {name!r} exists already")

        await self._run(insert)
        return pubkey

    async def nodes(self) -> list[SimNode]:
        """The named nodes, oldest first."""
        rows = await self._run(
            functools.partial(
                _rows, self._db, "SELECT name, pubkey, created_at FROM nodes ORDER BY created_at"
            )
        )
        return [SimNode(row[0], row[1], row[2]) for row in rows]

    async def received(self, name_or_pubkey: str) -> list[ReceivedPayment]:
        """What a named node (or a fixed payee, by pubkey) received: its keysends with
        their TLV records and its paid invoices, in the order they settled.

        Raises:
            SimulatorError: no node has this name or pubkey.
        """
        key = name_or_pubkey.strip().lower()

        def select() -> list[sqlite3.Row]:
            _settle_due(self._db, self._ledger, self._clock.now())
            pubkey = key if key in self.payee_pubkeys else self._node_row(key)["pubkey"]
            return _rows(
                self._db,
                "SELECT p.kind, p.payment_hash, p.amount_msat, p.settled_at, p.tlv_records,"
                " i.description, i.metadata"
                " FROM payments p LEFT JOIN invoices i ON i.payment_hash = p.payment_hash"
                " WHERE p.destination = ? AND p.status = 'succeeded'"
                " ORDER BY p.settled_at, p.payment_hash",
                (pubkey,),
            )

        return [_received(row) for row in await self._run(select)]

    def zapper_secret(self) -> SecretKey:
        """The nostr key the LNURL server signs zap receipts with (``nostrPubkey``):
        from the seed, so the same for every process sharing the file."""
        return self._zapper

    def _node_row(self, name_or_pubkey: str) -> sqlite3.Row:
        row = _one(
            self._db,
            "SELECT * FROM nodes WHERE name = ? OR pubkey = ?",
            (name_or_pubkey, name_or_pubkey),
        )
        if row is None:
            raise SimulatorError(f"no simulated node is named {name_or_pubkey!r} (nwcd sim node)")
        return row

    async def release(self, payment_hash: str, outcome: ReleaseOutcome) -> None:
        """End a hanging payment with ``outcome``; before any payment, preset it.

        Works across processes: a waiting ``pay_invoice`` elsewhere sees it at its
        next poll, and a payment whose process is gone resolves at the next
        ``payment_status``. Releasing again with the same outcome does nothing.

        Raises:
            SimulatorError: no hanging payee invoice has this payment hash, or it was
                already released with the other outcome.
        """
        if outcome not in get_args(ReleaseOutcome):
            raise ValueError(f"outcome must be one of {get_args(ReleaseOutcome)}")
        payment_hash = payment_hash.lower()

        def release() -> bool:
            db = self._db
            with _Transaction(db, self._ledger):
                row = _one(
                    db,
                    "SELECT outcome, release_outcome FROM invoices"
                    " WHERE payment_hash = ? AND node = 'payee'",
                    (payment_hash,),
                )
                if row is None:
                    raise SimulatorError(f"no simulated invoice has payment hash {payment_hash}")
                if row["outcome"] != "hang":
                    raise SimulatorError(f"invoice {payment_hash} does not hang (it will {row[0]})")
                if row["release_outcome"] is not None:
                    if row["release_outcome"] == outcome:
                        return False
                    raise SimulatorError(
                        f"invoice {payment_hash} was already released with {row['release_outcome']}"
                    )
                now = self._clock.now()
                db.execute(
                    "UPDATE invoices SET release_outcome = ?, released_at = ?"
                    " WHERE payment_hash = ?",
                    (outcome, now, payment_hash),
                )
                _settle_due(db, self._ledger, now, payment_hash)
            return True

        if await self._run(release):
            waiting = self._waiting.get(payment_hash)
            if waiting is not None:  # a payment of this process waits: look at once
                waiting.due = -math.inf
                waiting.kicked = True
                self._poll_wake.set()

    async def receive(self, payment_hash: str, amount_msat: int | None = None) -> Transaction:
        """Pay one of the wallet's own invoices as an outside payer would: an ordinary
        invoice settles at once, a hold invoice's payment is held (``accepted``) until
        the app settles or cancels it.

        ``amount_msat`` is needed for an amountless invoice (else it must match).

        Raises:
            SimulatorError: not an unpaid, unexpired invoice of the wallet, or a bad amount.
        """
        payment_hash = payment_hash.lower()

        def receive() -> sqlite3.Row:
            db = self._db
            with _Transaction(db, self._ledger):
                now = self._clock.now()
                row = self._own_invoice(payment_hash)
                if row is None:
                    raise SimulatorError(
                        f"the wallet has no invoice with payment hash {payment_hash}"
                    )
                amount = _payable(row, amount_msat, now)
                if row["hold"]:
                    deadline = (
                        self._info().block_height
                        + bolt11.decode(row["invoice"]).min_final_cltv_expiry
                    )
                    self._record_event(
                        payment_hash,
                        "received_msat = ?, accepted_at = ?, settle_deadline = ?",
                        (amount, now, deadline),
                    )
                else:
                    self._record_event(
                        payment_hash, "received_msat = ?, settled_at = ?", (amount, now)
                    )
                    self._ledger.move(amount)
                return self._incoming_row(payment_hash)

        return await self._incoming_change(receive)

    async def make_hold_invoice(self, params: MakeHoldInvoiceParams) -> Transaction:
        """An invoice of the wallet's own node for the app's payment hash; paying it
        (``nwcd sim pay``) holds the payment until it is settled or canceled.

        Raises:
            RequestError: ``OTHER`` when the hash is taken or the invoice cannot be encoded.
        """
        return await self._new_invoice(
            MakeInvoiceParams(
                params.amount_msat,
                params.description,
                params.description_hash,
                params.expiry,
                params.metadata,
            ),
            payment_hash=params.payment_hash,
            preimage=None,
            min_final_cltv_expiry=params.min_cltv_expiry_delta or bolt11.DEFAULT_CLTV_EXPIRY,
        )

    async def settle_hold_invoice(self, preimage: str) -> None:
        """Take the held payment: the invoice is settled with the app's preimage."""
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()

        def settle() -> sqlite3.Row:
            with _Transaction(self._db, self._ledger):
                row = self._hold_invoice(payment_hash)
                if row["settled_at"] is not None:
                    raise RequestError(ErrorCode.OTHER, "the hold invoice is already settled")
                if row["canceled_at"] is not None:
                    raise RequestError(ErrorCode.OTHER, "the hold invoice was canceled")
                if row["accepted_at"] is None:
                    raise RequestError(ErrorCode.OTHER, "the hold invoice holds no payment yet")
                self._record_event(
                    payment_hash,
                    "preimage = ?, settled_at = ?",
                    (preimage.lower(), self._clock.now()),
                )
                self._ledger.move(row["received_msat"])
                return self._incoming_row(payment_hash)

        await self._incoming_change(settle, answer_lost=True)

    async def cancel_hold_invoice(self, payment_hash: str) -> None:
        """Give a held payment back to its payer (or make an unpaid hold invoice
        unpayable); canceling twice is no error."""
        payment_hash = payment_hash.lower()

        def cancel() -> None:
            with _Transaction(self._db):
                row = self._hold_invoice(payment_hash)
                if row["settled_at"] is not None:
                    raise RequestError(ErrorCode.OTHER, "the hold invoice is already settled")
                self._db.execute(
                    "UPDATE invoices SET canceled_at = COALESCE(canceled_at, ?)"
                    " WHERE payment_hash = ?",
                    (self._clock.now(), payment_hash),
                )

        await self._call(cancel, answer_lost=True)

    def _own_invoice(self, payment_hash: str) -> sqlite3.Row | None:
        return _one(
            self._db,
            "SELECT * FROM invoices WHERE payment_hash = ? AND node = 'wallet'",
            (payment_hash,),
        )

    def _hold_invoice(self, payment_hash: str) -> sqlite3.Row:
        row = self._own_invoice(payment_hash)
        if row is None or not row["hold"]:
            raise RequestError(ErrorCode.NOT_FOUND, "no such hold invoice")
        return row

    def _record_event(self, payment_hash: str, assignments: str, values: Sequence[Any]) -> None:
        """Update an invoice of the wallet and move it to the end of the incoming stream."""
        self._db.execute(
            f"UPDATE invoices SET {assignments},"  # noqa: S608 - fixed assignments, bound values
            " event_seq = (SELECT COALESCE(MAX(event_seq), 0) + 1 FROM invoices)"
            " WHERE payment_hash = ?",
            (*values, payment_hash),
        )

    def _incoming_row(self, payment_hash: str) -> sqlite3.Row:
        row = _one(
            self._db,
            "SELECT * FROM wallet_transactions WHERE type = 'incoming' AND payment_hash = ?",
            (payment_hash,),
        )
        assert row is not None
        return row

    async def _incoming_change(
        self, change: Callable[[], sqlite3.Row], *, answer_lost: bool = False
    ) -> Transaction:
        """Run a change of an incoming payment and wake the streams that report them."""
        if answer_lost:
            row = await self._call(change, answer_lost=True)
        else:
            row = await self._run(change)
        for event in self._incoming_wakeups:
            event.set()
        return _transaction(row, self._clock.now())

    async def set_outage(self, mode: OutageMode | None, seconds: float = 0) -> None:
        """Make the port fail as ``mode`` says for ``seconds``; None ends any outage at once.

        Stored in the file, so every process sharing it (a running ``nwcd serve``)
        sees it at its next operation. A new outage replaces the one going on.

        Raises:
            ValueError: an unknown mode, or ``seconds`` not positive.
        """
        if mode is not None and mode not in get_args(OutageMode):
            raise ValueError(f"mode must be one of {get_args(OutageMode)} or None")
        if mode is not None and not 0 < seconds < math.inf:
            raise ValueError("seconds must be positive")

        def store() -> None:
            db = self._db
            until = self._clock.now() + seconds if mode is not None else 0.0
            with _Transaction(db):
                if mode is None:
                    db.execute("DELETE FROM meta WHERE key IN ('outage_mode', 'outage_until')")
                else:
                    db.executemany(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (("outage_mode", mode), ("outage_until", repr(until))),
                    )
            self._outage.set(mode, until)

        await self._run(store)

    async def attempts(self) -> list[Attempt]:
        """The log of payment attempts that reached the node (every process), in order."""
        rows = await self._run(
            functools.partial(
                _rows, self._db, "SELECT payment_hash, kind, at, result FROM attempts ORDER BY seq"
            )
        )
        return [Attempt(row[0], row[1], row[2], row[3]) for row in rows]

    # --- paying ---------------------------------------------------------------------------

    async def pay_invoice(
        self, invoice: Invoice, *, amount_msat: int, fee_limit_msat: int
    ) -> PaymentOutcome:
        """Pay a payee invoice of the simulated network, as its payee was told to behave.

        Raises:
            RequestError: ``INSUFFICIENT_BALANCE``, before anything is paid.
            BackendUnavailable: the state file cannot be used, or an ``error``
                outage (the payment was started; also while waiting for its outcome).
        """
        if self._closed:
            raise BackendUnavailable("the simulator is closed")
        future: asyncio.Future[_Started] = asyncio.get_running_loop().create_future()
        self._starts.append(_Start(invoice, amount_msat, fee_limit_msat, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_starts())
        started = await future
        if isinstance(started, _InFlight):
            return await self._wait(invoice.payment_hash, started.settle_at)
        return started

    async def _flush_starts(self) -> None:
        """Hand the queued starts to the thread, all in one transaction, until none is left.

        A ``hang`` outage keeps them queued (with the ones that arrive meanwhile) until
        it ends; like :meth:`_call`, but starts that were given up are dropped.
        """
        try:
            while self._starts:
                batch = [start for start in self._starts if not start.future.done()]
                self._starts = []
                if not batch:
                    continue
                start_all = functools.partial(self._start_payments, batch)
                try:
                    results = await self._run(
                        functools.partial(self._gated, start_all, True), inline=True
                    )
                except _Hang as hang:  # nothing started: callers that give up meanwhile never pay
                    self._starts[:0] = batch
                    await self._sit_out(hang)
                    continue
                except asyncio.CancelledError:
                    for start in batch:
                        start.future.cancel()
                    raise
                except Exception as exc:
                    for start in batch:
                        if not start.future.done():
                            start.future.set_exception(exc)
                    continue
                for start, result in zip(batch, results, strict=True):
                    if start.future.done():
                        continue  # the caller gave up; the payment stands, as on a real node
                    if isinstance(result, RequestError):
                        start.future.set_exception(result)
                    else:
                        start.future.set_result(result)
        finally:
            self._flusher = None
            for start in self._starts:  # only when cancelled
                start.future.cancel()
            self._starts = []

    def _start_payments(self, batch: list[_Start]) -> list[_Started | RequestError]:
        """Start payments in one write transaction (on the thread).

        Each start is checked as if alone, in queue order: against the balance the
        ones before it left, and seeing the payments they stored. Each is logged
        in ``attempts``.
        """
        db = self._db
        with _Transaction(db, self._ledger):
            now = self._clock.now()
            _settle_due(db, self._ledger, now)
            state = _StartBatch(now, _payee_invoices(db, [s.invoice.payment_hash for s in batch]))
            results: list[_Started | RequestError] = []
            for start in batch:
                stored = len(state.inserts)
                result: _Started | RequestError
                try:
                    result = self._start_payment(state, start)
                except RequestError as exc:
                    result = exc
                results.append(result)
                logged = _attempt_result(result, started=len(state.inserts) > stored)
                state.attempts.append((start.invoice.payment_hash, "invoice", now, logged))
            db.executemany(_INSERT_PAYMENT_SQL, state.inserts)
            db.executemany(_INSERT_ATTEMPT_SQL, state.attempts)
        return results

    def _start_payment(self, state: _StartBatch, start: _Start) -> _Started:
        """One payment start of a batch: its checks, reservation and payment row."""
        invoice, amount_msat, now = start.invoice, start.amount_msat, state.now
        payment_hash = invoice.payment_hash
        row = state.invoices.get(payment_hash)
        if row is None or invoice.payee != (
            row["payee_pubkey"] or self.payee_pubkeys[row["payee_index"]]
        ):
            # Unknown hash, another node's invoice, or our own (no self-payments).
            return Failed(NO_ROUTE)
        payment_status = state.statuses.get(payment_hash, row["payment_status"])
        if payment_status == "succeeded":
            return Failed(ALREADY_PAID)
        if payment_status == "in_flight":
            return Pending(IN_TRANSITION)
        if now >= row["expires_at"]:
            return Failed(INVOICE_EXPIRED)
        expected = row["amount_msat"]
        if amount_msat <= 0 or (expected is not None and amount_msat != expected):
            return Failed(INCORRECT_AMOUNT)
        fee_msat: int = row["fee_msat"]
        if fee_msat > start.fee_limit_msat:
            return Failed(FEE_LIMIT_EXCEEDED)
        if state.spendable is None:
            state.spendable = self._initial_balance + self._ledger.value()
        if amount_msat + fee_msat > state.spendable:
            raise _insufficient(amount_msat, fee_msat)
        outcome = row["outcome"]
        if outcome == "hang" and row["release_outcome"] is not None:
            outcome = row["release_outcome"]
        settle_at = now + row["latency_ms"] / 1000
        # No latency and a known outcome: final at once (the common fast path).
        immediate = settle_at <= now and outcome != "hang"
        status = "in_flight"
        if immediate:
            status = "succeeded" if outcome == "succeed" else "failed"
        state.statuses[payment_hash] = status
        state.inserts.append(
            (
                payment_hash,
                row["invoice"],
                invoice.payee,
                amount_msat,
                fee_msat,
                row["preimage"],
                status,
                FAILED_AT_PAYEE if status == "failed" else None,
                now,
                settle_at,
                now if immediate else None,
            )
        )
        if status == "failed":
            return Failed(FAILED_AT_PAYEE)
        state.spendable -= amount_msat + fee_msat
        self._ledger.move(-(amount_msat + fee_msat))
        if status == "succeeded":
            return Succeeded(row["preimage"], fee_msat)
        return _InFlight(settle_at)

    async def _wait(self, payment_hash: str, settle_at: float) -> PaymentOutcome:
        """The outcome of a payment in flight, once the poller finds it final."""
        future: asyncio.Future[PaymentOutcome] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(payment_hash)
        if waiting is None:
            self._waiting[payment_hash] = _Waiting(settle_at, settle_at, [future])
        else:
            waiting.futures.append(future)
            waiting.due = min(waiting.due, settle_at)
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        self._poll_wake.set()
        return await future

    async def _poll(self) -> None:
        """Resolve the payments this backend waits for: one query per look for all of them.

        A payment is looked at when its outcome is due (``settle_at``), then every
        ``poll_interval`` while it hangs (a release in another process shows up at
        the next look; one in this process makes the look happen at once).
        """
        try:
            while not self._closed:
                for payment_hash, waiting in list(self._waiting.items()):
                    waiting.futures = [f for f in waiting.futures if not f.done()]
                    if not waiting.futures:
                        del self._waiting[payment_hash]
                if not self._waiting:
                    return
                now = self._clock.now()
                next_due = min(waiting.due for waiting in self._waiting.values())
                if next_due > now:
                    self._poll_wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(next_due - now):
                            await self._poll_wake.wait()
                    continue
                due = [h for h, waiting in self._waiting.items() if waiting.due <= now]
                for payment_hash in due:
                    self._waiting[payment_hash].kicked = False
                try:
                    outcomes = await self._call(functools.partial(self._look, due), inline=True)
                except BackendUnavailable as exc:
                    for payment_hash in due:
                        gone = self._waiting.pop(payment_hash, None)
                        for future in gone.futures if gone is not None else ():
                            if not future.done():
                                future.set_exception(exc)
                    continue
                now = self._clock.now()
                for payment_hash in due:
                    waiting_now = self._waiting.get(payment_hash)
                    if waiting_now is None:
                        continue
                    outcome = outcomes[payment_hash]
                    if isinstance(outcome, Pending):
                        if not waiting_now.kicked:
                            waiting_now.due = max(
                                waiting_now.settle_at, now + self._config.poll_interval
                            )
                        continue
                    del self._waiting[payment_hash]
                    for future in waiting_now.futures:
                        if not future.done():
                            future.set_result(outcome)
        except BaseException as exc:
            for waiting in self._waiting.values():
                for future in waiting.futures:
                    if future.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            self._waiting.clear()
            raise
        finally:
            self._poller = None

    def _look(self, payment_hashes: Sequence[str]) -> dict[str, PaymentOutcome]:
        """The outcomes of payments, resolved from stored state and time (on the thread)."""
        db = self._db
        now = self._clock.now()
        rows: dict[str, sqlite3.Row] = {}
        for offset in range(0, len(payment_hashes), _LOOK_CHUNK):
            chunk = payment_hashes[offset : offset + _LOOK_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in db.execute(_PAYMENT_SQL + f" WHERE p.payment_hash IN ({marks})", chunk):
                rows[row["payment_hash"]] = row
        outcomes: dict[str, PaymentOutcome] = {}
        resolutions: list[_Resolution] = []
        for payment_hash in payment_hashes:
            found = rows.get(payment_hash)
            if found is None:
                outcomes[payment_hash] = Failed(NOT_FOUND)
                continue
            status, _, reason = _resolve(found, now)
            resolution = _resolution(found, now)
            if resolution is not None:
                resolutions.append(resolution)
            outcomes[payment_hash] = _outcome(status, found, reason)
        _store_resolutions(db, self._ledger, resolutions)
        return outcomes

    async def pay_keysend(
        self,
        *,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        tlv_records: tuple[TlvRecord, ...],
        fee_limit_msat: int,
    ) -> PaymentOutcome:
        """Spontaneous payment to a simulated payee node (fixed or named): succeeds at
        once, without fee. Its TLV records are kept for :meth:`received`.

        Raises:
            RequestError: ``INSUFFICIENT_BALANCE``, before anything is paid.
            BackendUnavailable: the state file cannot be used, or an ``error``
                outage (the keysend was done all the same).
        """
        try:
            raw = bytes.fromhex(preimage)
        except ValueError:
            raw = b""
        payment_hash = hashlib.sha256(raw).hexdigest() if len(raw) == 32 else ""
        records = json.dumps([{"type": r.type, "value": r.value.lower()} for r in tlv_records])
        keysend = functools.partial(
            self._keysend, pubkey.lower(), amount_msat, raw.hex(), payment_hash, records
        )
        result = await self._call(keysend, answer_lost=True)
        if isinstance(result, RequestError):
            raise result
        return result

    def _keysend(
        self, pubkey: str, amount_msat: int, preimage: str, payment_hash: str, records: str
    ) -> PaymentOutcome | RequestError:
        """A keysend start and its attempt, in one transaction (on the thread).

        ``payment_hash`` is empty for an invalid preimage.
        """
        db = self._db
        with _Transaction(db, self._ledger):
            now = self._clock.now()
            _settle_due(db, self._ledger, now)
            result = self._start_keysend(now, pubkey, amount_msat, preimage, payment_hash, records)
            logged = _attempt_result(result, started=isinstance(result, Succeeded))
            db.execute(_INSERT_ATTEMPT_SQL, (payment_hash, "keysend", now, logged))
        return result

    def _start_keysend(
        self,
        now: float,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        payment_hash: str,
        records: str,
    ) -> PaymentOutcome | RequestError:
        """A keysend's checks and payment row (in :meth:`_keysend`'s transaction)."""
        db = self._db
        if pubkey not in self.payee_pubkeys and not _one(
            db, "SELECT 1 FROM nodes WHERE pubkey = ?", (pubkey,)
        ):
            return Failed(NO_ROUTE)
        if not payment_hash:
            return Failed("invalid preimage")
        if amount_msat <= 0:
            return Failed(INCORRECT_AMOUNT)
        if _one(db, "SELECT 1 FROM payments WHERE payment_hash = ?", (payment_hash,)):
            return Failed(ALREADY_PAID)  # keysends never stay in flight nor fail once stored
        if amount_msat > self._initial_balance + self._ledger.value():
            return _insufficient(amount_msat, 0)
        db.execute(
            """INSERT INTO payments (payment_hash, kind, destination, amount_msat,
                fee_msat, preimage, status, created_at, settle_at, settled_at, tlv_records)
            VALUES (?, 'keysend', ?, ?, 0, ?, 'succeeded', ?, ?, ?, ?)""",
            (payment_hash, pubkey, amount_msat, preimage, now, now, now, records),
        )
        self._ledger.move(-amount_msat)
        return Succeeded(preimage, 0)

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        """The outcome of an outgoing payment, resolved from stored state and time."""
        payment_hash = payment_hash.lower()
        outcomes = await self._call(functools.partial(self._look, (payment_hash,)))
        return outcomes[payment_hash]

    # --- invoices and transactions ----------------------------------------------------------

    async def make_invoice(self, params: MakeInvoiceParams) -> Transaction:
        """An invoice of the wallet's own node (amount 0: amountless).

        Raises:
            RequestError: ``OTHER`` when the invoice cannot be encoded (e.g. too long).
        """
        preimage = os.urandom(32)
        return await self._new_invoice(
            params,
            payment_hash=hashlib.sha256(preimage).hexdigest(),
            preimage=preimage.hex(),
            min_final_cltv_expiry=bolt11.DEFAULT_CLTV_EXPIRY,
        )

    async def _new_invoice(
        self,
        params: MakeInvoiceParams,
        *,
        payment_hash: str,
        preimage: str | None,
        min_final_cltv_expiry: int,
    ) -> Transaction:
        """Store and return a new invoice of the wallet; without a preimage it is a hold
        invoice (the app keeps the preimage until it settles)."""
        payment_secret = os.urandom(32).hex()
        expiry = params.expiry or bolt11.DEFAULT_EXPIRY
        now = self._clock.now()
        description = params.description
        try:
            text = bolt11.encode(
                secret=self._node_secret,
                payment_hash=payment_hash,
                payment_secret=payment_secret,
                timestamp=int(now),
                network=self._network,
                amount_msat=params.amount_msat or None,
                description=None if params.description_hash else (description or ""),
                description_hash=params.description_hash,
                expiry=expiry,
                min_final_cltv_expiry=min_final_cltv_expiry,
            )
        except ValueError as exc:
            raise RequestError(ErrorCode.OTHER, f"cannot make the invoice: {exc}") from None
        metadata = json.dumps(params.metadata) if params.metadata is not None else None
        values = (
            payment_hash,
            text,
            preimage,
            payment_secret,
            params.amount_msat or None,
            description,
            params.description_hash,
            metadata,
            now,
            int(now) + expiry,
            int(preimage is None),
        )

        def insert() -> sqlite3.Row:
            try:
                self._db.execute(
                    """INSERT INTO invoices (payment_hash, invoice, node, preimage,
                        payment_secret, amount_msat, description, description_hash, metadata,
                        created_at, expires_at, hold)
                    VALUES (?, ?, 'wallet', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    values,
                )
            except sqlite3.IntegrityError:
                raise RequestError(
                    ErrorCode.OTHER, "an invoice with this payment hash already exists"
                ) from None
            return self._incoming_row(payment_hash)

        return _transaction(await self._call(insert), now)

    async def lookup_invoice(
        self, *, payment_hash: str | None, invoice: str | None
    ) -> Transaction | None:
        """The wallet's own invoice or outgoing payment by hash (preferred) or invoice."""
        if payment_hash is not None:
            where, key = "payment_hash = ?", payment_hash.lower()
        elif invoice is not None:
            where, key = "invoice = ?", invoice.lower()
        else:
            return None

        def lookup() -> tuple[sqlite3.Row | None, float]:
            now = self._clock.now()
            _settle_due(self._db, self._ledger, now)
            sql = f"SELECT * FROM wallet_transactions WHERE {where}"  # noqa: S608 - fixed column names
            return _one(self._db, sql, (key,)), now

        row, now = await self._call(lookup)
        return None if row is None else _transaction(row, now)

    async def list_transactions(self, params: ListTransactionsParams) -> list[Transaction]:
        """Incoming and outgoing transactions, newest first; settled only unless ``unpaid``."""
        clauses: list[str] = []
        args: list[Any] = []
        if params.from_time is not None:
            clauses.append("created_at >= ?")
            args.append(params.from_time)
        if params.until is not None:
            clauses.append("created_at < ?")  # until is inclusive in whole seconds
            args.append(params.until + 1)
        if not params.unpaid:
            clauses.append("status IN ('settled', 'succeeded')")
        if params.type is not None:
            clauses.append("type = ?")
            args.append(params.type)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = -1 if params.limit is None else params.limit
        sql = (
            f"SELECT * FROM wallet_transactions {where}"  # noqa: S608 - fixed clauses, bound values
            " ORDER BY created_at DESC, payment_hash LIMIT ? OFFSET ?"
        )

        def select() -> tuple[list[sqlite3.Row], float]:
            now = self._clock.now()
            _settle_due(self._db, self._ledger, now)
            return _rows(self._db, sql, (*args, limit, params.offset)), now

        rows, now = await self._call(select)
        return [_transaction(row, now) for row in rows]

    async def get_balance(self) -> int:
        """Spendable msat: payments in flight count as spent until they fail."""
        return await self._call(self._settled_balance, inline=True)

    async def get_info(self) -> NodeInfo:
        """The wallet node; the block height is a clock-driven counter (one per 10 min)."""
        return await self._call(self._info, inline=True)

    def _info(self) -> NodeInfo:
        height = _GENESIS_HEIGHT + max(
            0, int((self._clock.now() - self._created_at) // _BLOCK_SECONDS)
        )
        block_hash = hmac.digest(self._seed, b"block %d" % height, "sha256")
        return NodeInfo(
            alias="nwcd simulator",
            color="#f7931a",
            pubkey=self.node_pubkey,
            network=self._config.network,
            block_height=height,
            block_hash=block_hash[::-1].hex(),
        )

    async def sign_message(self, message: str) -> str:
        """LND-style: recoverable ECDSA over double-SHA256 of the prefixed message, zbase32."""
        return await self._call(functools.partial(self._sign, message))

    def _sign(self, message: str) -> str:
        digest = hashlib.sha256(
            hashlib.sha256(_LND_SIGN_PREFIX + message.encode("utf-8")).digest()
        ).digest()
        signature = coincurve.PrivateKey(self._node_secret).sign_recoverable(digest, hasher=None)
        # Header byte 27 + 4 (compressed key) + recovery id, then r and s.
        return zbase32(bytes((31 + signature[64],)) + signature[:64])

    def incoming_payments(self) -> AsyncIterator[Transaction]:
        """Incoming payments settled (or held, for hold invoices) from now on, in any
        process sharing the file.

        Ends when the backend is closed.
        """
        return self._incoming(self._clock.now())

    async def _incoming(self, since: float) -> AsyncIterator[Transaction]:
        """Changes of this process wake the loop; another process's show as a change of
        the file (:func:`~nwcd.filewatch.file_changes`: the kernel's word on Linux, a
        stat elsewhere), and the file is queried at least every ``_FULL_CHECK`` seconds,
        a bound for what a sign could miss."""
        wake = asyncio.Event()
        self._incoming_wakeups.add(wake)
        try:
            async with file_changes(self._config.path, wake, interval=self._config.poll_interval):
                cursor: int | None = None
                while not self._closed:
                    wake.clear()  # before the query: a change during it wakes the next
                    try:
                        now, cursor, rows = await self._run(
                            functools.partial(self._incoming_events, since, cursor)
                        )
                    except BackendUnavailable:
                        if self._closed:
                            return
                        raise
                    for row in rows:
                        cursor = int(row["event_seq"])
                        yield _transaction(row, now)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_FULL_CHECK):
                            await wake.wait()
        finally:
            self._incoming_wakeups.discard(wake)

    def _incoming_events(
        self, since: float, cursor: int | None
    ) -> tuple[float, int, list[sqlite3.Row]]:
        """Incoming payments settled or held after ``cursor`` (first: after ``since``), on
        the thread."""
        now = self._clock.now()
        if cursor is None:
            first = _one(
                self._db,
                "SELECT COALESCE(MAX(event_seq), 0) FROM invoices"
                " WHERE COALESCE(settled_at, accepted_at) < ?",
                (since,),
            )
            assert first is not None
            cursor = int(first[0])
        rows = _rows(
            self._db,
            "SELECT * FROM wallet_transactions"
            " WHERE type = 'incoming' AND event_seq > ? ORDER BY event_seq",
            (cursor,),
        )
        return now, cursor, rows


if TYPE_CHECKING:  # mypy proves the simulator implements the port

    def _implements_port(backend: SimulatedBackend) -> LightningBackend:
        return backend


_FULL_CHECK = 5.0
"""Seconds between queries for incoming payments while nothing says the file changed."""


def _connect(config: SimulatorConfig, clock: Clock) -> tuple[sqlite3.Connection, dict[str, str]]:
    """Open the file for the backend's thread; return the connection and the meta rows."""
    db = sqlite3.connect(
        config.path, isolation_level=None, timeout=config.busy_timeout, check_same_thread=False
    )
    try:
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        meta = _migrate(db, config, clock)
    except BaseException:
        db.close()
        raise
    return db, meta


def _migrate(db: sqlite3.Connection, config: SimulatorConfig, clock: Clock) -> dict[str, str]:
    """Create or check the schema (versioned by ``user_version``); return the meta rows."""
    with _Transaction(db):
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"simulator file {config.path} has schema {version}, newer than {SCHEMA_VERSION}"
            )
        if version == 0:
            for statement in _SCHEMA:
                db.execute(statement)
            for key, value in (
                ("seed", os.urandom(32).hex()),
                ("initial_balance_msat", str(config.initial_balance_msat)),
                ("created_at", repr(clock.now())),
            ):
                db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        else:
            for old in range(version, SCHEMA_VERSION):
                for statement in _UPGRADES[old]:
                    db.execute(statement)
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        rows = _rows(db, "SELECT key, value FROM meta")
    return {str(row[0]): str(row[1]) for row in rows}
