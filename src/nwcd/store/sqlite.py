"""The SQLite store: one file in the data dir, safe for several processes.

Theory of operation: every store method is one synchronous function run on a
single dedicated thread, so each is one transaction and they never interleave
inside this process; ``BEGIN IMMEDIATE`` plus ``busy_timeout`` serialize
writers across processes (``nwcd serve`` and ``nwcd connection ...``). WAL
mode keeps readers from blocking the writer. Commits survive a killed process
(``synchronous=NORMAL`` in WAL mode); after a power loss the last commits may
be lost, which crash recovery handles by asking the backend about every
payment that is not final.

Migrations are numbered ``.sql`` files applied in order, tracked by
``PRAGMA user_version``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from nwcd.nostr.event import Event, parse_event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.admission import Ask, admit, hashes_of
from nwcd.policy.authorize import Deny
from nwcd.policy.grants import BudgetPeriod, Connection
from nwcd.ports import (
    UNRESOLVED_STATES,
    InstanceRecord,
    PaymentIntent,
    PaymentRecord,
    PaymentState,
    RequestRecord,
    Reserved,
)

__all__ = ["SqliteStore"]

T = TypeVar("T")

# Column lists are constants; every value goes through "?" parameters.
_SELECT_PAYMENTS = (
    "SELECT id, request_id, wallet_pubkey, item_index, result_type, d_tag, payment_hash, invoice, "
    "amount_msat, fee_reserve_msat, state, preimage, fee_msat, error_code, error_message"
    " FROM payments "
)
_SELECT_REQUESTS = (
    "SELECT event_id, wallet_pubkey, app_pubkey, scheme, event_json, received_at, created_at"
    " FROM requests r "
)
_UNANSWERED = (
    "SELECT event_id, wallet_pubkey, app_pubkey, scheme, event_json, received_at, created_at"
    " FROM requests r WHERE NOT EXISTS (SELECT 1 FROM responses WHERE request_id = r.event_id)"
    " AND NOT EXISTS (SELECT 1 FROM payments WHERE request_id = r.event_id)"
)
_UNFINISHED = (
    "SELECT event_id, wallet_pubkey, app_pubkey, scheme, event_json, received_at, created_at"
    " FROM requests r WHERE done = 0"
    " AND (EXISTS (SELECT 1 FROM responses WHERE request_id = r.event_id)"
    " OR EXISTS (SELECT 1 FROM payments WHERE request_id = r.event_id))"
)
# What a payment counts against a budget (nwcd.policy.admission.budget_cost, summed):
# the real spend once settled, the reservation (amount + fee reserve) while open.
_BUDGET_SUM = (
    "SELECT COALESCE(SUM(CASE WHEN state = 'succeeded' THEN amount_msat + COALESCE(fee_msat, 0)"
    " ELSE amount_msat + fee_reserve_msat END), 0) FROM payments"
    " WHERE wallet_pubkey = ? AND created_at >= ? AND state != 'failed'"
)


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("nwcd.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit mid-transaction)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise ValueError("migration ends with an incomplete statement")
    return statements


def _enable_wal(db: sqlite3.Connection, *, timeout: float) -> None:
    """Switch a database to WAL mode, waiting for other openers of a fresh file.

    The switch needs an exclusive lock, and SQLite answers "database is locked"
    at once (without the busy handler) while another connection holds a lock,
    e.g. a second process migrating the same new file: retry until ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


class SqliteStore:
    """:class:`~nwcd.ports.Store` on a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwcd-sqlite")
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._pending_lock = threading.Lock()
        self._flush_queued = False

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating and migrating) the database at ``path``."""
        store = cls(path)
        await store._run(store._open)
        return store

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if fresh:
            # The file holds wallet keys: readable by the owner only.
            os.chmod(self.path, 0o600)
        db.execute("PRAGMA busy_timeout = 10000")
        _enable_wal(db, timeout=10.0)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        self._db = db
        with self._transaction() as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]
            for number, script in _migrations():
                if number > version:
                    for statement in _statements(script):
                        tx.execute(statement)
                    tx.execute(f"PRAGMA user_version = {number}")

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a write transaction shared with the writes queued beside it.

        Writes that arrive while the store thread is busy are committed together
        (one ``BEGIN IMMEDIATE`` ... ``COMMIT``), each in its own savepoint so one
        failing write never undoes the others. Order is kept: a read issued after
        a write runs after it, since the write's flush job was queued first.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, future))
            schedule = not self._flush_queued
            self._flush_queued = True
        if schedule:
            self._executor.submit(self._flush, loop)
        result: T = await future
        return result

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._flush_queued = False
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            with self._transaction() as tx:
                for fn, future in batch:
                    tx.execute("SAVEPOINT w")
                    try:
                        value = fn(tx)
                    except Exception as exc:  # reported to that write's caller only
                        tx.execute("ROLLBACK TO w")
                        tx.execute("RELEASE w")
                        outcomes.append((future, False, exc))
                    else:
                        tx.execute("RELEASE w")
                        outcomes.append((future, True, value))
        except Exception as exc:  # the commit itself failed: every write failed
            outcomes = [(future, False, exc) for _, future in batch]
        loop.call_soon_threadsafe(_resolve, outcomes)

    def _transaction(self) -> _Transaction:
        assert self._db is not None, "store is closed"
        return _Transaction(self._db)

    # -- connections ---------------------------------------------------------------------

    async def add_connection(self, connection: Connection) -> None:
        def add(tx: sqlite3.Connection) -> None:
            tx.execute(
                "INSERT INTO connections (wallet_pubkey, wallet_secret, name, app_pubkey,"
                " relays, methods, max_amount_msat, budget_msat, budget_period, expires_at,"
                " lud16, created_at, updated_at, revoked_at, last_used_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    connection.wallet_pubkey,
                    connection.wallet_key.reveal_hex(),
                    *_connection_fields(connection),
                    connection.created_at,
                    connection.created_at,
                    connection.revoked_at,
                    connection.last_used_at,
                ),
            )
            _bump_version(tx)

        try:
            await self._write(add)
        except sqlite3.IntegrityError:
            raise ValueError(f"a connection named {connection.name!r} exists already") from None

    async def save_connection(self, connection: Connection) -> None:
        def save(tx: sqlite3.Connection) -> None:
            tx.execute(
                "UPDATE connections SET name = ?, app_pubkey = ?, relays = ?, methods = ?,"
                " max_amount_msat = ?, budget_msat = ?, budget_period = ?, expires_at = ?,"
                " lud16 = ?, revoked_at = ?,"
                " updated_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE wallet_pubkey = ?",
                (
                    *_connection_fields(connection),
                    connection.revoked_at,
                    connection.wallet_pubkey,
                ),
            )
            _bump_version(tx)

        try:
            await self._write(save)
        except sqlite3.IntegrityError:
            raise ValueError(f"a connection named {connection.name!r} exists already") from None

    async def connections(self) -> list[Connection]:
        def load() -> list[Connection]:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT wallet_secret, name, app_pubkey, relays, methods, max_amount_msat,"
                " budget_msat, budget_period, expires_at, lud16, created_at, revoked_at,"
                " last_used_at FROM connections ORDER BY created_at, name"
            ).fetchall()
            return [_connection_from_row(row) for row in rows]

        return await self._run(load)

    async def connections_version(self) -> int:
        def version() -> int:
            assert self._db is not None
            row = self._db.execute(
                "SELECT value FROM meta WHERE key = 'connections_version'"
            ).fetchone()
            return int(row[0])

        return await self._run(version)

    async def touch_connection(self, wallet_pubkey: str, now: int) -> None:
        def touch(tx: sqlite3.Connection) -> None:
            tx.execute(
                "UPDATE connections SET last_used_at = ? WHERE wallet_pubkey = ?",
                (now, wallet_pubkey),
            )

        await self._write(touch)

    async def budget_used(self, wallet_pubkey: str, since: int) -> int:
        def used() -> int:
            assert self._db is not None
            return int(self._db.execute(_BUDGET_SUM, (wallet_pubkey, since)).fetchone()[0])

        return await self._run(used)

    # -- requests ------------------------------------------------------------------------

    async def claim(self, record: RequestRecord) -> bool:
        def claim(tx: sqlite3.Connection) -> bool:
            cursor = tx.execute(
                "INSERT OR IGNORE INTO requests (event_id, wallet_pubkey, app_pubkey, scheme,"
                " event_json, received_at, created_at) VALUES (?,?,?,?,?,?,?)",
                (
                    record.event_id,
                    record.wallet_pubkey,
                    record.app_pubkey,
                    record.scheme,
                    record.event_json,
                    record.received_at,
                    record.created_at,
                ),
            )
            return cursor.rowcount == 1

        return await self._write(claim)

    async def unanswered_requests(self) -> list[RequestRecord]:
        def load() -> list[RequestRecord]:
            assert self._db is not None
            rows = self._db.execute(_UNANSWERED).fetchall()
            return [RequestRecord(*row) for row in rows]

        return await self._run(load)

    async def mark_done(self, request_id: str) -> None:
        """Every item of this request is answered: recovery can leave it alone."""

        def mark(tx: sqlite3.Connection) -> None:
            tx.execute("UPDATE requests SET done = 1 WHERE event_id = ?", (request_id,))

        await self._write(mark)

    async def unfinished_requests(self) -> list[tuple[RequestRecord, set[int]]]:
        """Requests that started (a payment or a response exists) but were not marked done,
        with the item indexes already handled (a payment row or a response)."""

        def load() -> list[tuple[RequestRecord, set[int]]]:
            assert self._db is not None
            rows = self._db.execute(_UNFINISHED).fetchall()
            found = []
            for row in rows:
                handled = {
                    int(index)
                    for (index,) in self._db.execute(
                        "SELECT item_index FROM payments WHERE request_id = ?"
                        " UNION SELECT item_index FROM responses"
                        " WHERE request_id = ? AND item_index IS NOT NULL",
                        (row[0], row[0]),
                    )
                }
                found.append((RequestRecord(*row), handled))
            return found

        return await self._run(load)

    # -- payments ------------------------------------------------------------------------

    async def reserve(
        self,
        request_id: str,
        wallet_pubkey: str,
        intents: Sequence[PaymentIntent],
        *,
        budget_msat: int | None,
        window_start: int,
        now: int,
    ) -> list[Reserved | Deny]:
        def reserve() -> list[Reserved | Deny]:
            with self._transaction() as tx:
                used = (
                    int(tx.execute(_BUDGET_SUM, (wallet_pubkey, window_start)).fetchone()[0])
                    if budget_msat is not None
                    else 0
                )
                asks = [Ask(i.payment_hash, i.amount_msat, i.fee_reserve_msat) for i in intents]
                holders: dict[str, str] = {}
                for payment_hash in hashes_of(asks):
                    row = tx.execute(
                        "SELECT wallet_pubkey FROM payments WHERE payment_hash = ?"
                        " AND state != 'failed' LIMIT 1",
                        (payment_hash,),
                    ).fetchone()
                    if row is not None:
                        holders[payment_hash] = row[0]
                decisions = admit(
                    asks,
                    wallet_pubkey=wallet_pubkey,
                    budget_msat=budget_msat,
                    used_msat=used,
                    holders=holders,
                )
                results: list[Reserved | Deny] = []
                for intent, decision in zip(intents, decisions, strict=True):
                    if isinstance(decision, Deny):
                        results.append(decision)
                        continue
                    cursor = tx.execute(
                        "INSERT INTO payments (request_id, item_index, wallet_pubkey, result_type,"
                        " d_tag, payment_hash, invoice, amount_msat, fee_reserve_msat, state,"
                        " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            request_id,
                            intent.item_index,
                            wallet_pubkey,
                            intent.result_type,
                            intent.d_tag,
                            intent.payment_hash,
                            intent.invoice,
                            intent.amount_msat,
                            decision.fee_reserve_msat,
                            PaymentState.RESERVED.value,
                            now,
                            now,
                        ),
                    )
                    assert cursor.lastrowid is not None
                    results.append(Reserved(cursor.lastrowid, decision.fee_reserve_msat))
            return results

        return await self._run(reserve)

    async def mark_in_flight(self, payment_ids: Sequence[int], now: int) -> set[int]:
        """Move reservations to ``in_flight``; returns the ids that moved (a row another
        instance settled meanwhile does not, and must not be paid)."""

        def mark(tx: sqlite3.Connection) -> set[int]:
            moved: set[int] = set()
            for payment_id in payment_ids:
                cursor = tx.execute(
                    "UPDATE payments SET state = 'in_flight', updated_at = ?"
                    " WHERE id = ? AND state = 'reserved'",
                    (now, payment_id),
                )
                if cursor.rowcount == 1:
                    moved.add(payment_id)
            return moved

        return await self._write(mark)

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
    ) -> bool:
        """Record an outcome (and its response) if the payment is still open; returns
        False when it was settled already (by another instance's recovery, say)."""

        def settle(tx: sqlite3.Connection) -> bool:
            cursor = tx.execute(
                "UPDATE payments SET state = ?, preimage = ?, fee_msat = ?, error_code = ?,"
                " error_message = ?, updated_at = ?"
                " WHERE id = ? AND state IN ('reserved', 'in_flight', 'unknown')",
                (state.value, preimage, fee_msat, error_code, error_message, now, payment_id),
            )
            if cursor.rowcount != 1:
                return False
            if response is not None:
                _insert_responses(tx, response[0], [(response[1], response[2])], now)
            return True

        return await self._write(settle)

    async def payments_by_hashes(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, PaymentRecord]:
        """The best record (succeeded first, then newest) per hash, failed ones left out."""

        def find() -> dict[str, PaymentRecord]:
            assert self._db is not None
            found: dict[str, PaymentRecord] = {}
            unique = list(dict.fromkeys(payment_hashes))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    _SELECT_PAYMENTS + "WHERE wallet_pubkey = ? AND state != 'failed'"
                    " AND payment_hash IN (" + marks + ") ORDER BY id",
                    [wallet_pubkey, *chunk],
                ).fetchall()
                for row in rows:
                    record = _payment_from_row(row)
                    best = found.get(record.intent.payment_hash)
                    if best is None or best.state is not PaymentState.SUCCEEDED:
                        found[record.intent.payment_hash] = record
            return found

        return await self._run(find)

    async def payment(self, payment_id: int) -> PaymentRecord | None:
        """One payment by id."""

        def load() -> PaymentRecord | None:
            assert self._db is not None
            row = self._db.execute(_SELECT_PAYMENTS + "WHERE id = ?", (payment_id,)).fetchone()
            return _payment_from_row(row) if row else None

        return await self._run(load)

    async def add_invoice(self, payment_hash: str, wallet_pubkey: str, now: int) -> None:
        """Record that a connection made this invoice."""

        def add(tx: sqlite3.Connection) -> None:
            tx.execute(
                "INSERT OR IGNORE INTO invoices (payment_hash, wallet_pubkey, created_at)"
                " VALUES (?,?,?)",
                (payment_hash, wallet_pubkey, now),
            )

        await self._write(add)

    async def invoice_owner(self, payment_hash: str) -> str | None:
        """The wallet pubkey of the connection that made an invoice."""

        def load() -> str | None:
            assert self._db is not None
            row = self._db.execute(
                "SELECT wallet_pubkey FROM invoices WHERE payment_hash = ?", (payment_hash,)
            ).fetchone()
            return str(row[0]) if row else None

        return await self._run(load)

    async def owned_hashes(self, wallet_pubkey: str) -> set[str]:
        """Payment hashes a connection paid or invoiced: what it may see."""

        def load() -> set[str]:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT payment_hash FROM invoices WHERE wallet_pubkey = ?"
                " UNION SELECT payment_hash FROM payments WHERE wallet_pubkey = ?",
                (wallet_pubkey, wallet_pubkey),
            ).fetchall()
            return {row[0] for row in rows}

        return await self._run(load)

    async def unresolved_payments(self) -> list[PaymentRecord]:
        def load() -> list[PaymentRecord]:
            assert self._db is not None
            rows = self._db.execute(
                _SELECT_PAYMENTS + "WHERE state IN (?, ?, ?) ORDER BY id",
                [s.value for s in UNRESOLVED_STATES],
            ).fetchall()
            return [_payment_from_row(row) for row in rows]

        return await self._run(load)

    async def request(self, event_id: str) -> RequestRecord | None:
        """A claimed request by event id."""

        def load() -> RequestRecord | None:
            assert self._db is not None
            row = self._db.execute(
                _SELECT_REQUESTS + "WHERE event_id = ?",
                (event_id,),
            ).fetchone()
            return RequestRecord(*row) if row else None

        return await self._run(load)

    # -- responses -----------------------------------------------------------------------

    async def save_responses(
        self, request_id: str, responses: Sequence[tuple[int | None, Event]], *, now: int
    ) -> None:
        def save(tx: sqlite3.Connection) -> None:
            _insert_responses(tx, request_id, responses, now)

        await self._write(save)

    async def responses_for(self, request_id: str) -> list[Event]:
        def load() -> list[Event]:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT event_json FROM responses WHERE request_id = ? ORDER BY rowid",
                (request_id,),
            ).fetchall()
            return [parse_event(json.loads(row[0])) for row in rows]

        return await self._run(load)

    async def mark_published(self, response_ids: Sequence[str]) -> None:
        def mark(tx: sqlite3.Connection) -> None:
            tx.executemany(
                "UPDATE responses SET published = 1 WHERE event_id = ? AND published = 0",
                [(event_id,) for event_id in response_ids],
            )

        await self._write(mark)

    async def unpublished_responses(self) -> list[Event]:
        def load() -> list[Event]:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT event_json FROM responses WHERE published = 0 ORDER BY created_at, rowid"
            ).fetchall()
            return [parse_event(json.loads(row[0])) for row in rows]

        return await self._run(load)

    async def prune(self, *, before: int) -> int:
        def prune(tx: sqlite3.Connection) -> int:
            tx.execute(
                "DELETE FROM responses WHERE request_id IN (SELECT event_id FROM requests r"
                " WHERE received_at < ? AND COALESCE(created_at, 0) < ?"
                " AND NOT EXISTS (SELECT 1 FROM payments WHERE request_id = r.event_id))",
                (before, before),
            )
            return tx.execute(
                "DELETE FROM requests WHERE received_at < ? AND COALESCE(created_at, 0) < ?"
                " AND NOT EXISTS (SELECT 1 FROM payments WHERE request_id = requests.event_id)",
                (before, before),
            ).rowcount

        return await self._write(prune)

    # -- instances -----------------------------------------------------------------------

    async def heartbeat(self, instance: InstanceRecord) -> None:
        def beat(tx: sqlite3.Connection) -> None:
            tx.execute(
                "INSERT INTO instances (instance_id, started_at, heartbeat_at, lease_expires_at,"
                " listening_version) VALUES (?,?,?,?,?) ON CONFLICT (instance_id) DO UPDATE SET"
                " heartbeat_at = excluded.heartbeat_at,"
                " lease_expires_at = excluded.lease_expires_at,"
                " listening_version = excluded.listening_version",
                (
                    instance.instance_id,
                    instance.started_at,
                    instance.heartbeat_at,
                    instance.lease_expires_at,
                    instance.listening_version,
                ),
            )

        await self._write(beat)

    async def retire(self, instance_id: str) -> None:
        def retire(tx: sqlite3.Connection) -> None:
            tx.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))

        await self._write(retire)

    async def live_instances(self, now: int) -> list[InstanceRecord]:
        def load() -> list[InstanceRecord]:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT instance_id, started_at, heartbeat_at, lease_expires_at,"
                " listening_version FROM instances WHERE lease_expires_at > ?"
                " ORDER BY started_at, instance_id",
                (now,),
            ).fetchall()
            return [InstanceRecord(*row) for row in rows]

        return await self._run(load)


def _resolve(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _insert_responses(
    tx: sqlite3.Connection,
    request_id: str,
    responses: Sequence[tuple[int | None, Event]],
    now: int,
) -> None:
    tx.executemany(
        "INSERT OR IGNORE INTO responses (event_id, request_id, item_index, event_json,"
        " created_at, published) VALUES (?,?,?,?,?,0)",
        [
            (
                event.id,
                request_id,
                item_index,
                json.dumps(event.to_json(), separators=(",", ":")),
                now,
            )
            for item_index, event in responses
        ],
    )


def _bump_version(tx: sqlite3.Connection) -> None:
    tx.execute("UPDATE meta SET value = value + 1 WHERE key = 'connections_version'")


def _connection_fields(c: Connection) -> tuple[Any, ...]:
    return (
        c.name,
        c.app_pubkey,
        json.dumps(list(c.relays)),
        json.dumps(sorted(c.methods)) if c.methods is not None else None,
        c.max_amount_msat,
        c.budget_msat,
        c.budget_period.value,
        c.expires_at,
        c.lud16,
    )


def _connection_from_row(row: Sequence[Any]) -> Connection:
    (secret, name, app_pubkey, relays, methods, max_amount, budget, period, expires_at, lud16,
     created_at, revoked_at, last_used_at) = row  # fmt: skip
    return Connection(
        name=name,
        wallet_key=SecretKey.from_hex(secret),
        app_pubkey=app_pubkey,
        relays=tuple(json.loads(relays)),
        created_at=created_at,
        methods=frozenset(json.loads(methods)) if methods is not None else None,
        max_amount_msat=max_amount,
        budget_msat=budget,
        budget_period=BudgetPeriod(period),
        expires_at=expires_at,
        lud16=lud16,
        revoked_at=revoked_at,
        last_used_at=last_used_at,
    )


def _payment_from_row(row: Sequence[Any]) -> PaymentRecord:
    (payment_id, request_id, wallet_pubkey, item_index, result_type, d_tag, payment_hash, invoice,
     amount, fee_reserve, state, preimage, fee, error_code, error_message) = row  # fmt: skip
    return PaymentRecord(
        id=payment_id,
        request_id=request_id,
        wallet_pubkey=wallet_pubkey,
        intent=PaymentIntent(
            item_index, result_type, d_tag, payment_hash, invoice, amount, fee_reserve
        ),
        state=PaymentState(state),
        preimage=preimage,
        fee_msat=fee,
        error_code=error_code,
        error_message=error_message,
    )
