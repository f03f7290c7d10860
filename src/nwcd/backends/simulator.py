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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import aiosqlite
import coincurve

from nwcd import bolt11
from nwcd.bolt11 import Invoice, Network
from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.errors import BackendUnavailable, ErrorCode, NwcdError, RequestError
from nwcd.nip47.methods import ListTransactionsParams, MakeInvoiceParams, Method, TlvRecord
from nwcd.nip47.results import NodeInfo, Transaction
from nwcd.ports import NOT_FOUND, Failed, LightningBackend, PaymentOutcome, Pending, Succeeded

__all__ = [
    "DEFAULT_INITIAL_BALANCE_MSAT",
    "PAYEE_COUNT",
    "SCHEMA_VERSION",
    "Outcome",
    "ReleaseOutcome",
    "SimInvoice",
    "SimulatedBackend",
    "SimulatorConfig",
    "SimulatorError",
]

Outcome = Literal["succeed", "fail", "hang"]
ReleaseOutcome = Literal["succeed", "fail"]

SCHEMA_VERSION: Final = 1
PAYEE_COUNT: Final = 3
DEFAULT_INITIAL_BALANCE_MSAT: Final = 100_000_000_000

NO_ROUTE: Final = "no route"
FEE_LIMIT_EXCEEDED: Final = "fee limit exceeded"
ALREADY_PAID: Final = "invoice already paid"
IN_TRANSITION: Final = "payment in transition"
INCORRECT_AMOUNT: Final = "incorrect payment amount"
INVOICE_EXPIRED: Final = "invoice expired"
FAILED_AT_PAYEE: Final = "rejected by the payee"

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

_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Invoices of the wallet's own node (node = 'wallet') and of the simulated payees.
    """CREATE TABLE invoices (
        payment_hash TEXT PRIMARY KEY,
        invoice TEXT NOT NULL UNIQUE,
        node TEXT NOT NULL CHECK (node IN ('wallet', 'payee')),
        payee_index INTEGER,
        preimage TEXT NOT NULL,
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
        settle_seq INTEGER UNIQUE
    )""",
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
    # The wallet's transactions as NIP-47 sees them: its own invoices and its payments.
    """CREATE VIEW wallet_transactions AS
        SELECT 'incoming' AS type, payment_hash, invoice, description, description_hash,
               preimage, COALESCE(received_msat, amount_msat, 0) AS amount_msat,
               0 AS fee_msat, created_at, expires_at, settled_at, metadata,
               CASE WHEN settled_at IS NULL THEN 'pending' ELSE 'settled' END AS status,
               settle_seq
        FROM invoices WHERE node = 'wallet'
        UNION ALL
        SELECT 'outgoing', p.payment_hash, p.invoice, i.description, i.description_hash,
               p.preimage, p.amount_msat, p.fee_msat, p.created_at, i.expires_at,
               p.settled_at, NULL, p.status, NULL
        FROM payments p LEFT JOIN invoices i ON i.payment_hash = p.payment_hash""",
)

_PAYMENT_SQL: Final = """
    SELECT p.*, i.outcome, i.release_outcome, i.released_at
    FROM payments p LEFT JOIN invoices i ON i.payment_hash = p.payment_hash
"""


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


def _transaction(row: sqlite3.Row, now: float) -> Transaction:
    """A ``wallet_transactions`` row as a NIP-47 transaction."""
    status: str = row["status"]
    if row["type"] == "incoming":
        state = status if status == "settled" or now < row["expires_at"] else "expired"
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
    )


class SimulatedBackend:
    """A :class:`~nwcd.ports.LightningBackend` over a simulated network in a SQLite file.

    Create with :meth:`open`, end with :meth:`close`. Besides the port, it offers
    the simulator's own commands: :meth:`create_invoice` (a payee invoice with its
    behaviour), :meth:`release` (end a hanging payment) and :meth:`receive` (an
    outside payer pays one of the wallet's invoices).
    """

    methods: frozenset[str] = frozenset(method.value for method in Method)
    max_concurrent_payments: int | None = None

    def __init__(
        self,
        db: aiosqlite.Connection,
        config: SimulatorConfig,
        clock: Clock,
        meta: dict[str, str],
    ) -> None:
        """Use :meth:`open`."""
        self._db = db
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
        self._lock = asyncio.Lock()  # one aiosqlite connection: one transaction at a time
        self._closed = False
        self._wakeups: dict[str, asyncio.Event] = {}  # hanging payments, woken by release()
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
        with _edge():
            db = await aiosqlite.connect(
                config.path, isolation_level=None, timeout=config.busy_timeout
            )
        try:
            with _edge():
                db.row_factory = sqlite3.Row
                await db.execute_fetchall(
                    f"PRAGMA busy_timeout = {int(config.busy_timeout * 1000)}"
                )
                await db.execute_fetchall("PRAGMA journal_mode = WAL")
                await db.execute_fetchall("PRAGMA synchronous = NORMAL")
                meta = await _migrate(db, config, clock)
        except BaseException:
            await db.close()
            raise
        return cls(db, config, clock, meta)

    async def close(self) -> None:
        """Close the file; waiting payments and incoming streams stop."""
        if self._closed:
            return
        self._closed = True
        for event in (*self._wakeups.values(), *self._incoming_wakeups):
            event.set()
        async with self._lock:
            with _edge():
                await self._db.close()

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

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[None]:
        """Exclusive use of the connection, with SQLite errors translated."""
        async with self._lock:
            if self._closed:
                raise BackendUnavailable("the simulator is closed")
            with _edge():
                yield

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """A write transaction that holds the file's write lock from its first statement."""
        async with self._session():
            await self._exec("BEGIN IMMEDIATE")
            committed = False
            try:
                yield
                await self._exec("COMMIT")
                committed = True
            finally:
                if not committed:
                    with contextlib.suppress(sqlite3.Error):
                        await self._exec("ROLLBACK")

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._db.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._exec(sql, params)
        return rows[0] if rows else None

    async def _settle_due(self, now: float, payment_hash: str | None = None) -> None:
        """Persist the outcome of payments in flight whose outcome is now known."""
        # Only rows that may be due; _resolve decides.
        sql = (
            _PAYMENT_SQL + " WHERE p.status = 'in_flight' AND p.settle_at <= ?"
            " AND (i.outcome != 'hang' OR i.released_at IS NOT NULL)"
        )
        params: tuple[float | str, ...] = (now,)
        if payment_hash is not None:
            sql += " AND p.payment_hash = ?"
            params = (now, payment_hash)
        for row in await self._exec(sql, params):
            status, settled_at, reason = _resolve(row, now)
            if status != "in_flight":
                await self._store_resolution(row["payment_hash"], status, settled_at, reason)

    async def _store_resolution(
        self, payment_hash: str, status: str, settled_at: float | None, reason: str | None
    ) -> None:
        await self._exec(
            "UPDATE payments SET status = ?, settled_at = ?, reason = ?"
            " WHERE payment_hash = ? AND status = 'in_flight'",
            (status, settled_at, reason, payment_hash),
        )

    async def _balance(self) -> int:
        row = await self._one(
            """SELECT
                (SELECT COALESCE(SUM(received_msat), 0) FROM invoices
                 WHERE node = 'wallet' AND settled_at IS NOT NULL)
              - (SELECT COALESCE(SUM(amount_msat + fee_msat), 0) FROM payments
                 WHERE status != 'failed')"""
        )
        assert row is not None
        return self._initial_balance + int(row[0])

    async def _reserve(self, amount_msat: int, fee_msat: int) -> None:
        """Refuse a payment the spendable balance cannot cover (inside a write transaction)."""
        if amount_msat + fee_msat > await self._balance():
            raise RequestError(
                ErrorCode.INSUFFICIENT_BALANCE,
                f"insufficient balance to pay {amount_msat} msat plus {fee_msat} msat fee",
            )

    # --- the simulator's own commands -----------------------------------------------------

    async def create_invoice(
        self,
        amount_msat: int | None,
        *,
        latency_ms: int = 0,
        outcome: Outcome = "succeed",
        fee_msat: int = 0,
        description: str = _DEFAULT_DESCRIPTION,
        expiry: int = bolt11.DEFAULT_EXPIRY,
        payee_index: int = 0,
    ) -> SimInvoice:
        """A signed invoice of simulated payee ``payee_index`` that behaves as told when paid.

        Raises:
            ValueError: an argument is out of range.
            BackendUnavailable: the state file cannot be written.
        """
        if amount_msat is not None and amount_msat <= 0:
            raise ValueError("amount_msat must be positive (or None for an amountless invoice)")
        if latency_ms < 0 or fee_msat < 0 or expiry <= 0:
            raise ValueError("latency_ms and fee_msat must not be negative, expiry positive")
        if outcome not in get_args(Outcome):
            raise ValueError(f"outcome must be one of {get_args(Outcome)}")
        if not 0 <= payee_index < PAYEE_COUNT:
            raise ValueError(f"payee_index must be in [0, {PAYEE_COUNT})")
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        payment_secret = os.urandom(32).hex()
        now = self._clock.now()
        text = bolt11.encode(
            secret=self._payee_secrets[payee_index],
            payment_hash=payment_hash,
            payment_secret=payment_secret,
            timestamp=int(now),
            network=self._network,
            amount_msat=amount_msat,
            description=description,
            expiry=expiry,
        )
        async with self._session():
            await self._exec(
                """INSERT INTO invoices (payment_hash, invoice, node, payee_index, preimage,
                    payment_secret, amount_msat, description, created_at, expires_at,
                    latency_ms, outcome, fee_msat)
                VALUES (?, ?, 'payee', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    payment_hash,
                    text,
                    payee_index,
                    preimage.hex(),
                    payment_secret,
                    amount_msat,
                    description,
                    now,
                    int(now) + expiry,
                    latency_ms,
                    outcome,
                    fee_msat,
                ),
            )
        return SimInvoice(text, payment_hash, preimage.hex(), amount_msat)

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
        async with self._transaction():
            row = await self._one(
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
                    return
                raise SimulatorError(
                    f"invoice {payment_hash} was already released with {row['release_outcome']}"
                )
            now = self._clock.now()
            await self._exec(
                "UPDATE invoices SET release_outcome = ?, released_at = ? WHERE payment_hash = ?",
                (outcome, now, payment_hash),
            )
            await self._settle_due(now, payment_hash)
        wake = self._wakeups.get(payment_hash)
        if wake is not None:
            wake.set()

    async def receive(self, payment_hash: str, amount_msat: int | None = None) -> Transaction:
        """Settle one of the wallet's own invoices as if an outside payer paid it.

        ``amount_msat`` is needed for an amountless invoice (else it must match).

        Raises:
            SimulatorError: not an unpaid, unexpired invoice of the wallet, or a bad amount.
        """
        payment_hash = payment_hash.lower()
        async with self._transaction():
            now = self._clock.now()
            row = await self._one(
                "SELECT * FROM invoices WHERE payment_hash = ? AND node = 'wallet'",
                (payment_hash,),
            )
            if row is None:
                raise SimulatorError(f"the wallet has no invoice with payment hash {payment_hash}")
            if row["settled_at"] is not None:
                raise SimulatorError(f"invoice {payment_hash} is already paid")
            if now >= row["expires_at"]:
                raise SimulatorError(f"invoice {payment_hash} has expired")
            expected = row["amount_msat"]
            amount = expected if amount_msat is None else amount_msat
            if amount is None or amount <= 0 or (expected is not None and amount != expected):
                raise SimulatorError(f"invoice {payment_hash} cannot be paid {amount} msat")
            seq = await self._one("SELECT COALESCE(MAX(settle_seq), 0) + 1 FROM invoices")
            assert seq is not None
            await self._exec(
                "UPDATE invoices SET received_msat = ?, settled_at = ?, settle_seq = ?"
                " WHERE payment_hash = ?",
                (amount, now, seq[0], payment_hash),
            )
            settled = await self._one(
                "SELECT * FROM wallet_transactions WHERE type = 'incoming' AND payment_hash = ?",
                (payment_hash,),
            )
            assert settled is not None
        for event in self._incoming_wakeups:
            event.set()
        return _transaction(settled, now)

    # --- paying ---------------------------------------------------------------------------

    async def pay_invoice(
        self, invoice: Invoice, *, amount_msat: int, fee_limit_msat: int
    ) -> PaymentOutcome:
        """Pay a payee invoice of the simulated network, as its payee was told to behave.

        Raises:
            RequestError: ``INSUFFICIENT_BALANCE``, before anything is paid.
            BackendUnavailable: the state file cannot be used.
        """
        payment_hash = invoice.payment_hash
        async with self._transaction():
            now = self._clock.now()
            await self._settle_due(now)
            row = await self._one(
                "SELECT i.*, p.status AS payment_status FROM invoices i"
                " LEFT JOIN payments p ON p.payment_hash = i.payment_hash"
                " WHERE i.payment_hash = ? AND i.node = 'payee'",
                (payment_hash,),
            )
            if row is None or invoice.payee != self.payee_pubkeys[row["payee_index"]]:
                # Unknown hash, another node's invoice, or our own (no self-payments).
                return Failed(NO_ROUTE)
            if row["payment_status"] == "succeeded":
                return Failed(ALREADY_PAID)
            if row["payment_status"] == "in_flight":
                return Pending(IN_TRANSITION)
            if now >= row["expires_at"]:
                return Failed(INVOICE_EXPIRED)
            expected = row["amount_msat"]
            if amount_msat <= 0 or (expected is not None and amount_msat != expected):
                return Failed(INCORRECT_AMOUNT)
            fee_msat: int = row["fee_msat"]
            if fee_msat > fee_limit_msat:
                return Failed(FEE_LIMIT_EXCEEDED)
            await self._reserve(amount_msat, fee_msat)
            outcome = row["outcome"]
            if outcome == "hang" and row["release_outcome"] is not None:
                outcome = row["release_outcome"]
            settle_at = now + row["latency_ms"] / 1000
            # No latency and a known outcome: final at once (the common fast path).
            immediate = settle_at <= now and outcome != "hang"
            status = "in_flight"
            if immediate:
                status = "succeeded" if outcome == "succeed" else "failed"
            await self._exec(
                """INSERT OR REPLACE INTO payments (payment_hash, kind, invoice, destination,
                    amount_msat, fee_msat, preimage, status, reason, created_at, settle_at,
                    settled_at)
                VALUES (?, 'invoice', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
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
                ),
            )
        if status == "succeeded":
            return Succeeded(row["preimage"], fee_msat)
        if status == "failed":
            return Failed(FAILED_AT_PAYEE)
        return await self._wait(payment_hash, settle_at)

    async def _wait(self, payment_hash: str, settle_at: float) -> PaymentOutcome:
        """Sleep until the payment's outcome is due, then poll (or wake on a release)."""
        wake = asyncio.Event()
        self._wakeups[payment_hash] = wake
        try:
            delay = settle_at - self._clock.now()
            while True:
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await wake.wait()
                    wake.clear()
                outcome = await self.payment_status(payment_hash)
                if not isinstance(outcome, Pending):
                    return outcome
                delay = max(settle_at - self._clock.now(), self._config.poll_interval)
        finally:
            if self._wakeups.get(payment_hash) is wake:
                del self._wakeups[payment_hash]

    async def pay_keysend(
        self,
        *,
        pubkey: str,
        amount_msat: int,
        preimage: str,
        tlv_records: tuple[TlvRecord, ...],
        fee_limit_msat: int,
    ) -> PaymentOutcome:
        """Spontaneous payment to a simulated payee node: succeeds at once, without fee.

        The TLV records are accepted and not kept (no simulated payee reads them).

        Raises:
            RequestError: ``INSUFFICIENT_BALANCE``, before anything is paid.
            BackendUnavailable: the state file cannot be used.
        """
        pubkey = pubkey.lower()
        if pubkey not in self.payee_pubkeys:
            return Failed(NO_ROUTE)
        try:
            raw = bytes.fromhex(preimage)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            return Failed("invalid preimage")
        if amount_msat <= 0:
            return Failed(INCORRECT_AMOUNT)
        payment_hash = hashlib.sha256(raw).hexdigest()
        async with self._transaction():
            now = self._clock.now()
            await self._settle_due(now)
            existing = await self._one(
                "SELECT status FROM payments WHERE payment_hash = ?", (payment_hash,)
            )
            if existing is not None:  # keysends never stay in flight nor fail once stored
                return Failed(ALREADY_PAID)
            await self._reserve(amount_msat, 0)
            await self._exec(
                """INSERT INTO payments (payment_hash, kind, destination, amount_msat, fee_msat,
                    preimage, status, created_at, settle_at, settled_at)
                VALUES (?, 'keysend', ?, ?, 0, ?, 'succeeded', ?, ?, ?)""",
                (payment_hash, pubkey, amount_msat, raw.hex(), now, now, now),
            )
        return Succeeded(raw.hex(), 0)

    async def payment_status(self, payment_hash: str) -> PaymentOutcome:
        """The outcome of an outgoing payment, resolved from stored state and time."""
        payment_hash = payment_hash.lower()
        async with self._session():
            now = self._clock.now()
            row = await self._one(_PAYMENT_SQL + " WHERE p.payment_hash = ?", (payment_hash,))
            if row is None:
                return Failed(NOT_FOUND)
            status, settled_at, reason = _resolve(row, now)
            if status != row["status"]:
                await self._store_resolution(payment_hash, status, settled_at, reason)
            return _outcome(status, row, reason)

    # --- invoices and transactions ----------------------------------------------------------

    async def make_invoice(self, params: MakeInvoiceParams) -> Transaction:
        """An invoice of the wallet's own node (amount 0: amountless).

        Raises:
            RequestError: ``OTHER`` when the invoice cannot be encoded (e.g. too long).
        """
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
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
            )
        except ValueError as exc:
            raise RequestError(ErrorCode.OTHER, f"cannot make the invoice: {exc}") from None
        metadata = json.dumps(params.metadata) if params.metadata is not None else None
        async with self._session():
            await self._exec(
                """INSERT INTO invoices (payment_hash, invoice, node, preimage, payment_secret,
                    amount_msat, description, description_hash, metadata, created_at,
                    expires_at)
                VALUES (?, ?, 'wallet', ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    payment_hash,
                    text,
                    preimage.hex(),
                    payment_secret,
                    params.amount_msat or None,
                    description,
                    params.description_hash,
                    metadata,
                    now,
                    int(now) + expiry,
                ),
            )
            row = await self._one(
                "SELECT * FROM wallet_transactions WHERE type = 'incoming' AND payment_hash = ?",
                (payment_hash,),
            )
        assert row is not None
        return _transaction(row, now)

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
        async with self._session():
            now = self._clock.now()
            await self._settle_due(now)
            row = await self._one(f"SELECT * FROM wallet_transactions WHERE {where}", (key,))  # noqa: S608 - fixed column names
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
        async with self._session():
            now = self._clock.now()
            await self._settle_due(now)
            rows = await self._exec(sql, (*args, limit, params.offset))
        return [_transaction(row, now) for row in rows]

    async def get_balance(self) -> int:
        """Spendable msat: payments in flight count as spent until they fail."""
        async with self._session():
            await self._settle_due(self._clock.now())
            return await self._balance()

    async def get_info(self) -> NodeInfo:
        """The wallet node; the block height is a clock-driven counter (one per 10 min)."""
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
        digest = hashlib.sha256(
            hashlib.sha256(_LND_SIGN_PREFIX + message.encode("utf-8")).digest()
        ).digest()
        signature = coincurve.PrivateKey(self._node_secret).sign_recoverable(digest, hasher=None)
        # Header byte 27 + 4 (compressed key) + recovery id, then r and s.
        return zbase32(bytes((31 + signature[64],)) + signature[:64])

    def incoming_payments(self) -> AsyncIterator[Transaction]:
        """Incoming payments settled from now on, in any process sharing the file.

        Ends when the backend is closed.
        """
        return self._incoming(self._clock.now())

    async def _incoming(self, since: float) -> AsyncIterator[Transaction]:
        wake = asyncio.Event()
        self._incoming_wakeups.add(wake)
        try:
            cursor: int | None = None
            while not self._closed:
                wake.clear()
                try:
                    async with self._session():
                        now = self._clock.now()
                        if cursor is None:
                            first = await self._one(
                                "SELECT COALESCE(MAX(settle_seq), 0) FROM invoices"
                                " WHERE settled_at < ?",
                                (since,),
                            )
                            assert first is not None
                            cursor = int(first[0])
                        rows = await self._exec(
                            "SELECT * FROM wallet_transactions"
                            " WHERE type = 'incoming' AND settle_seq > ? ORDER BY settle_seq",
                            (cursor,),
                        )
                except BackendUnavailable:
                    if self._closed:
                        return
                    raise
                for row in rows:
                    cursor = int(row["settle_seq"])
                    yield _transaction(row, now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.poll_interval):
                        await wake.wait()
        finally:
            self._incoming_wakeups.discard(wake)


if TYPE_CHECKING:  # mypy proves the simulator implements the port

    def _implements_port(backend: SimulatedBackend) -> LightningBackend:
        return backend


async def _migrate(
    db: aiosqlite.Connection, config: SimulatorConfig, clock: Clock
) -> dict[str, str]:
    """Create or check the schema (versioned by ``user_version``); return the meta rows."""
    await db.execute_fetchall("BEGIN IMMEDIATE")
    try:
        (row,) = await db.execute_fetchall("PRAGMA user_version")
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"simulator file {config.path} has schema {version}, newer than {SCHEMA_VERSION}"
            )
        if version == 0:
            for statement in _SCHEMA:
                await db.execute_fetchall(statement)
            for key, value in (
                ("seed", os.urandom(32).hex()),
                ("initial_balance_msat", str(config.initial_balance_msat)),
                ("created_at", repr(clock.now())),
            ):
                await db.execute_fetchall(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", (key, value)
                )
            await db.execute_fetchall(f"PRAGMA user_version = {SCHEMA_VERSION}")
        rows: Iterable[sqlite3.Row] = await db.execute_fetchall("SELECT key, value FROM meta")
        await db.execute_fetchall("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            await db.execute_fetchall("ROLLBACK")
        raise
    return {str(row[0]): str(row[1]) for row in rows}
