"""The SQLite store: one file in the data dir, for one ``nwcd serve`` at a time.

Theory of operation: every store method is one synchronous function, so each
is one transaction and they never interleave inside this process. It runs on
the event loop's thread when the connection's own thread is idle and no other
process holds the write lock (see :mod:`nwcd.sqlite_runner`: a thread round
trip costs more CPU than the statement), else on that single dedicated thread;
``BEGIN IMMEDIATE`` plus ``busy_timeout`` serialize writers across processes
(``nwcd serve`` and ``nwcd connection ...``). WAL mode keeps readers from
blocking the writer. Commits survive a killed process
(``synchronous=NORMAL`` in WAL mode); after a power loss the last commits may
be lost, which crash recovery handles by asking the backend about every
payment that is not final.

The statements are :mod:`nwcd.store.sql`'s, shared with the PostgreSQL store.
Migrations are numbered ``.sql`` files applied in order, tracked by
``PRAGMA user_version``. Several instances need PostgreSQL (``shared``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from nwcd.filewatch import file_changes
from nwcd.nostr.event import Event
from nwcd.policy.authorize import Deny
from nwcd.policy.grants import Connection
from nwcd.ports import (
    Claim,
    InstanceRecord,
    Orphans,
    PaymentIntent,
    PaymentRecord,
    PaymentState,
    RequestOutcome,
    RequestRecord,
    RequestSummary,
    Reserved,
)
from nwcd.sqlite_runner import NotNow, SqliteRunner
from nwcd.store import sql, steps

__all__ = ["SqliteStore"]

T = TypeVar("T")


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


_VERSION_BOUND = 5.0
"""Seconds between connection-version queries while nothing says the file changed."""

_BUSY_TIMEOUT_MS = 10_000


class SqliteStore:
    """:class:`~nwcd.ports.Store` on a SQLite file."""

    shared = False  # one nwcd serve at a time (several need PostgreSQL)
    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nwcd-sqlite")
        self._runner = SqliteRunner(self._executor, busy_timeout_ms=_BUSY_TIMEOUT_MS)
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._pending_lock = threading.Lock()
        self._flush_queued = False

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        """Open (creating and migrating) the database at ``path``."""
        store = cls(path)
        try:
            await store._run(store._open)
        except BaseException:
            await store.close()
            raise
        return store

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if fresh:
            # The file holds wallet keys: readable by the owner only.
            os.chmod(self.path, 0o600)
        db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        _enable_wal(db, timeout=10.0)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        self._db = db
        with self._transaction() as tx:
            version = tx.execute("PRAGMA user_version").fetchone()[0]
            known = max(number for number, _ in _migrations())
            if version > known:
                raise ValueError(
                    f"{self.path} was written by a newer nwcd (schema {version}; this one"
                    f" knows {known}): upgrade nwcd"
                )
            for number, script in _migrations():
                if number > version:
                    for statement in _statements(script):
                        tx.execute(statement)
                    tx.execute(f"PRAGMA user_version = {number}")
        self._runner.attach(db)

    async def close(self) -> None:
        def close() -> None:
            self._runner.db = None
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T], *, inline: bool = False, writes: bool = False) -> T:
        return await self._runner.run(fn, inline=inline, writes=writes)

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = True) -> T:
        """Run ``fn`` inside a write transaction.

        Inline (the store thread idle): its own ``BEGIN IMMEDIATE`` ... ``COMMIT`` on
        the loop's thread, unless another process holds the write lock.
        Else, on the thread: writes that arrive while it is busy are committed together
        (one ``BEGIN IMMEDIATE`` ... ``COMMIT``), each in its own savepoint so one
        failing write never undoes the others. Order is kept: a read issued after
        a write runs after it, since the write's flush job was queued first.
        """
        if inline:
            value = self._runner.try_inline(lambda: self._write_now(fn), writes=True)
            if not isinstance(value, NotNow):
                return value
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._pending_lock:
            self._pending.append((fn, future))
            schedule = not self._flush_queued
            self._flush_queued = True
        if schedule:
            self._runner.submit(lambda: self._flush(loop))
        result: T = await future
        return result

    def _write_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in its own transaction; ``SQLITE_BUSY`` leaves nothing done."""
        with self._transaction() as tx:
            return fn(tx)

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
            tx.execute(sql.INSERT_CONNECTION, sql.connection_row(connection))
            tx.execute(sql.BUMP_CONNECTIONS_VERSION).fetchall()

        try:
            await self._write(add)
        except sqlite3.IntegrityError:
            raise ValueError(f"a connection named {connection.name!r} exists already") from None

    async def save_connection(self, connection: Connection) -> None:
        def save(tx: sqlite3.Connection) -> None:
            tx.execute(
                sql.UPDATE_CONNECTION,
                (
                    *sql.connection_fields(connection),
                    connection.revoked_at,
                    int(time.time()),
                    connection.wallet_pubkey,
                ),
            )
            tx.execute(sql.BUMP_CONNECTIONS_VERSION).fetchall()

        try:
            await self._write(save)
        except sqlite3.IntegrityError:
            raise ValueError(f"a connection named {connection.name!r} exists already") from None

    async def connections(self) -> list[Connection]:
        def load() -> list[Connection]:
            assert self._db is not None
            rows = self._db.execute(sql.SELECT_CONNECTIONS).fetchall()
            # Built on the store's thread: 100,000 take ~2 s, which the event loop (and
            # the requests it is answering) must not wait out.
            return [sql.connection_from_row(row) for row in rows]

        return await self._run(load)

    async def connections_version(self) -> int:
        [(version,)] = await self._read(sql.CONNECTIONS_VERSION)
        return int(version)

    async def connection_changes(self, poll_interval: float) -> AsyncIterator[int]:
        """The version when the file changed (SQLite cannot push a change to another
        process: :func:`~nwcd.filewatch.file_changes` tells when to look, at most every
        ``poll_interval``), and at least every ``_VERSION_BOUND`` seconds."""
        wake = asyncio.Event()
        async with file_changes(self.path, wake, interval=poll_interval):
            last = None
            while True:
                wake.clear()  # before the query: a change during it wakes the next
                version = await self.connections_version()
                if version != last:
                    last = version
                    yield version
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_VERSION_BOUND):
                        await wake.wait()

    async def touch_connection(self, wallet_pubkey: str, now: int) -> None:
        await self._write(lambda tx: tx.execute(sql.TOUCH_CONNECTION, (now, wallet_pubkey)))

    # -- requests and responses ----------------------------------------------------------

    async def claim(self, record: RequestRecord, owner: str) -> Claim:
        def claim(tx: sqlite3.Connection) -> Claim:
            cursor = tx.execute(
                sql.CLAIM,
                (
                    record.event_id,
                    record.wallet_pubkey,
                    record.app_pubkey,
                    record.scheme,
                    record.event_json,
                    record.received_at,
                    record.created_at,
                    owner,
                ),
            )
            if cursor.rowcount == 1:
                return Claim(True, owner, record.received_at)
            holder, received_at = tx.execute(sql.CLAIM_HOLDER, (record.event_id,)).fetchone()
            return Claim(False, holder, received_at)

        return await self._write(claim)

    async def request(self, event_id: str) -> RequestRecord | None:
        rows = await self._read(sql.SELECT_REQUEST, (event_id,))
        return sql.request_from_row(rows[0]) if rows else None

    async def mark_done(self, request_id: str, outcome: RequestOutcome) -> None:
        row = sql.done_row(request_id, outcome)
        await self._write(lambda tx: tx.execute(sql.MARK_DONE, row))

    async def save_responses(
        self,
        request_id: str,
        responses: Sequence[tuple[int | None, Event]],
        *,
        owner: str,
        now: int,
        done: RequestOutcome | None = None,
    ) -> None:
        await self._write(
            lambda tx: steps.drive(
                steps.save_responses(request_id, responses, owner=owner, now=now, done=done),
                _runner(tx),
            )
        )

    async def responses_for(self, request_id: str) -> list[Event]:
        rows = await self._read(
            "SELECT event_json FROM responses WHERE request_id = ? ORDER BY rowid", (request_id,)
        )
        return [sql.event_from_json(row[0]) for row in rows]

    async def mark_published(self, response_ids: Sequence[str]) -> None:
        await self._write(
            lambda tx: tx.executemany(sql.MARK_PUBLISHED, [(i,) for i in response_ids])
        )

    async def prune(self, *, before: int) -> int:
        def prune(tx: sqlite3.Connection) -> int:
            tx.execute(sql.PRUNE_RESPONSES, (before, before))
            return int(tx.execute(sql.PRUNE_REQUESTS, (before, before)).rowcount)

        return await self._write(prune, inline=False)  # may delete many rows

    # -- payments ------------------------------------------------------------------------

    async def budget_used(self, wallet_pubkey: str, since: int) -> int:
        [(used,)] = await self._read(sql.BUDGET_USED, (wallet_pubkey, since))
        return int(used)

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
        def reserve() -> list[Reserved | Deny]:
            # BEGIN IMMEDIATE: no other writer (process) between reading what is used
            # and inserting what is admitted.
            with self._transaction() as tx:
                return steps.drive(
                    steps.reserve(
                        request_id,
                        wallet_pubkey,
                        intents,
                        owner=owner,
                        budget_msat=budget_msat,
                        window_start=window_start,
                        now=now,
                    ),
                    _runner(tx),
                )

        return await self._run(reserve, inline=True, writes=True)

    async def mark_in_flight(self, payment_ids: Sequence[int], now: int) -> set[int]:
        """Move reservations to ``in_flight``; returns the ids that moved (a row another
        instance settled meanwhile does not, and must not be paid)."""

        def mark(tx: sqlite3.Connection) -> set[int]:
            return {
                payment_id
                for payment_id in payment_ids
                if tx.execute(sql.MARK_IN_FLIGHT, (now, payment_id)).rowcount == 1
            }

        return await self._write(mark)

    async def fence(self, payment_id: int, now: int) -> bool:
        return await self._write(lambda tx: tx.execute(sql.FENCE, (now, payment_id)).rowcount == 1)

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
                sql.SETTLE,
                (state.value, preimage, fee_msat, error_code, error_message, now, payment_id),
            )
            if cursor.rowcount != 1:
                return False
            if response is not None:
                tx.execute(sql.INSERT_RESPONSE, sql.response_row(*response, now))
            return True

        return await self._write(settle)

    async def payments_by_hashes(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, PaymentRecord]:
        """The best record (succeeded first, then newest) per hash, failed ones left out."""

        def find() -> list[PaymentRecord]:
            assert self._db is not None
            unique = list(dict.fromkeys(payment_hashes))
            return [
                sql.payment_from_row(row)
                for chunk in sql.chunks(unique)
                for row in self._db.execute(
                    sql.payments_by_hashes(len(chunk)), [wallet_pubkey, *chunk]
                )
            ]

        return sql.best_by_hash(await self._run(find, inline=True))

    async def payment(self, payment_id: int) -> PaymentRecord | None:
        rows = await self._read(sql.SELECT_PAYMENT, (payment_id,))
        return sql.payment_from_row(rows[0]) if rows else None

    # -- invoices ------------------------------------------------------------------------

    async def add_invoice(
        self, payment_hash: str, wallet_pubkey: str, now: int, metadata: str | None = None
    ) -> None:
        """Record that a connection made this invoice."""
        row = (payment_hash, wallet_pubkey, now, metadata)
        await self._write(lambda tx: tx.execute(sql.INSERT_INVOICE, row))

    async def metadata_of(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in sql.chunks(list(dict.fromkeys(payment_hashes))):
            args = (wallet_pubkey, *chunk, wallet_pubkey, *chunk)
            found.update(
                (row[0], row[1]) for row in await self._read(sql.metadata_of(len(chunk)), args)
            )
        return found

    async def invoice_owner(self, payment_hash: str) -> str | None:
        """The wallet pubkey of the connection that made an invoice."""
        rows = await self._read(sql.INVOICE_OWNER, (payment_hash,))
        return str(rows[0][0]) if rows else None

    async def owned_hashes(self, wallet_pubkey: str) -> set[str]:
        """Payment hashes a connection paid or invoiced: what it may see."""
        rows = await self._read(sql.OWNED_HASHES, (wallet_pubkey, wallet_pubkey))
        return {row[0] for row in rows}

    async def claim_notification(self, payment_hash: str, notification_type: str) -> bool:
        claim = sql.notification_claim(payment_hash, notification_type)
        return await self._write(lambda tx: tx.execute(sql.CLAIM_NOTIFICATION, claim).rowcount == 1)

    # -- activity ------------------------------------------------------------------------

    async def recent_requests(
        self,
        limit: int,
        *,
        wallet_pubkey: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[RequestSummary]:
        query, args = sql.recent_requests(limit, wallet_pubkey, before)
        return [sql.summary_from_row(row) for row in await self._read(query, args)]

    async def request_summary(self, request_id: str) -> RequestSummary | None:
        rows = await self._read(sql.REQUEST_SUMMARY, (request_id,))
        return sql.summary_from_row(rows[0]) if rows else None

    async def request_items(self, request_id: str) -> list[PaymentRecord]:
        rows = await self._read(sql.REQUEST_ITEMS, (request_id,))
        return [sql.payment_from_row(row) for row in rows]

    # -- instances -----------------------------------------------------------------------

    async def register(self, instance: InstanceRecord) -> None:
        await self._write(
            lambda tx: tx.execute(
                sql.REGISTER_INSTANCE,
                (
                    instance.instance_id,
                    instance.started_at,
                    instance.heartbeat_at,
                    instance.lease_expires_at,
                    instance.listening_version,
                ),
            )
        )

    async def heartbeat(self, instance: InstanceRecord) -> bool:
        def beat(tx: sqlite3.Connection) -> bool:
            cursor = tx.execute(
                sql.HEARTBEAT,
                (
                    instance.heartbeat_at,
                    instance.lease_expires_at,
                    instance.listening_version,
                    instance.instance_id,
                ),
            )
            return cursor.rowcount == 1

        return await self._write(beat)

    async def retire(self, instance_id: str) -> None:
        await self._write(lambda tx: tx.execute(sql.RETIRE_INSTANCE, (instance_id,)))

    async def live_instances(self, now: int) -> list[InstanceRecord]:
        rows = await self._read(sql.LIVE_INSTANCES, (now,))
        return [sql.instance_from_row(row) for row in rows]

    async def take_over(self, owner: str, now: int, *, everyone_else: bool = False) -> Orphans:
        def take_over() -> Orphans:
            with self._transaction() as tx:
                return steps.drive(
                    steps.take_over(owner, now, everyone_else=everyone_else, order="rowid"),
                    _runner(tx),
                )

        return await self._run(take_over)

    # -- plumbing ------------------------------------------------------------------------

    async def _read(self, query: str, args: Sequence[Any] = ()) -> list[Any]:
        def read() -> list[Any]:
            assert self._db is not None
            return self._db.execute(query, args).fetchall()

        return await self._run(read, inline=True)


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
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT may leave it open
                    self._db.execute("ROLLBACK")
                raise
            return
        self._db.execute("ROLLBACK")


def _runner(tx: sqlite3.Connection) -> Callable[[str, Sequence[Any]], list[Any]]:
    """Run the statements of a :mod:`nwcd.store.steps` operation in ``tx``."""
    return lambda statement, args: tx.execute(statement, args).fetchall()
