"""The PostgreSQL store: one database shared by several ``nwcd serve`` instances.

Theory of operation: a pool of connections (asyncpg); every port method is one
transaction (READ COMMITTED) running the statements of :mod:`nwcd.store.sql`,
the same ones the SQLite store runs, with the rules in pure code. What keeps
several instances correct:

* a request is claimed by a unique insert; the loser sees who holds it;
* budget admission runs under a transaction-scoped advisory lock per
  connection, so reservations of one connection are serialized across
  instances, and the used amount is read and the admitted payments inserted
  in the same transaction;
* one live payment per payment hash is a unique (partial) index: a payment
  that loses that race is refused, never paid;
* state changes are compare-and-set (``WHERE state = ...``, ``WHERE owner = ...``);
* connection changes are announced with ``NOTIFY``, so every instance follows
  at once;
* migrations run at open under a session advisory lock: instances starting
  together migrate once.

The URL may hold a password: it is never logged (:func:`redact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

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
from nwcd.store import sql, steps

__all__ = ["PostgresStore", "describe", "redact"]

CHANNEL = "nwcd_connections"
_MIGRATION_LOCK = 0x6E776364  # "nwcd": one migrating instance at a time
_BUDGET_LOCK = 0x6E776362  # advisory locks (this, hashtext(wallet)) serialize admission
_q = sql.numbered


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def describe(exc: BaseException, url: str) -> str:
    """An error of the driver in one line, without the URL's password."""
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("nwcd.store") / "migrations" / "postgres"
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def _count(status: str) -> int:
    """Rows a statement touched, from asyncpg's status string (``UPDATE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStore:
    """:class:`~nwcd.ports.Store` on a PostgreSQL database."""

    shared = True
    kind = "postgresql"

    def __init__(self, pool: Any, url: str) -> None:
        self._pool = pool
        self._url = url

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        """Connect, and migrate the schema (once, whoever starts first).

        Raises:
            OSError, asyncpg.PostgresError: the database cannot be reached or used.
        """
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        store = cls(pool, url)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._pool.acquire() as db:
            await db.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
                version = await db.fetchval("SELECT MAX(version) FROM schema_version") or 0
                known = max(number for number, _ in _migrations())
                if version > known:
                    raise ValueError(
                        f"the database was written by a newer nwcd (schema {version}; this"
                        f" one knows {known}): upgrade nwcd"
                    )
                for number, script in _migrations():
                    if number > version:
                        async with db.transaction():
                            await db.execute(script)
                            await db.execute("INSERT INTO schema_version VALUES ($1)", number)
            finally:
                await db.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    async def close(self) -> None:
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as db, db.transaction():
            yield db

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        async with self._pool.acquire() as db:
            return list(await db.fetch(_q(query), *args))

    async def _execute(self, query: str, *args: Any) -> int:
        async with self._pool.acquire() as db:
            return _count(await db.execute(_q(query), *args))

    # -- connections ---------------------------------------------------------------------

    async def add_connection(self, connection: Connection) -> None:
        try:
            async with self._transaction() as db:
                await db.execute(_q(sql.INSERT_CONNECTION), *sql.connection_row(connection))
                await self._bump(db)
        except asyncpg.UniqueViolationError:
            raise ValueError(f"a connection named {connection.name!r} exists already") from None

    async def save_connection(self, connection: Connection) -> None:
        try:
            async with self._transaction() as db:
                await db.execute(
                    _q(sql.UPDATE_CONNECTION),
                    *sql.connection_fields(connection),
                    connection.revoked_at,
                    int(time.time()),
                    connection.wallet_pubkey,
                )
                await self._bump(db)
        except asyncpg.UniqueViolationError:
            raise ValueError(f"a connection named {connection.name!r} exists already") from None

    @staticmethod
    async def _bump(db: Any) -> None:
        """A new connections version, announced to every instance at commit."""
        version = await db.fetchval(_q(sql.BUMP_CONNECTIONS_VERSION))
        await db.execute("SELECT pg_notify($1, $2)", CHANNEL, str(version))

    async def connections(self) -> list[Connection]:
        return [sql.connection_from_row(row) for row in await self._fetch(sql.SELECT_CONNECTIONS)]

    async def connections_version(self) -> int:
        [row] = await self._fetch(sql.CONNECTIONS_VERSION)
        return int(row[0])

    async def connection_changes(self, poll_interval: float) -> AsyncIterator[int]:
        """LISTENs on its own connection; also looks every few seconds, in case a
        notification was lost with a connection."""
        wake = asyncio.Event()
        listener = await asyncpg.connect(self._url)
        await listener.add_listener(CHANNEL, lambda *_: wake.set())
        try:
            last = None
            while True:
                wake.clear()
                version = await self.connections_version()
                if version != last:
                    last = version
                    yield version
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(poll_interval, 5.0)):
                        await wake.wait()
        finally:
            await listener.close()

    async def touch_connection(self, wallet_pubkey: str, now: int) -> None:
        await self._execute(sql.TOUCH_CONNECTION, now, wallet_pubkey)

    # -- requests and responses ----------------------------------------------------------

    async def claim(self, record: RequestRecord, owner: str) -> Claim:
        async with self._transaction() as db:
            status = await db.execute(
                _q(sql.CLAIM),
                record.event_id,
                record.wallet_pubkey,
                record.app_pubkey,
                record.scheme,
                record.event_json,
                record.received_at,
                record.created_at,
                owner,
            )
            if _count(status) == 1:
                return Claim(True, owner, record.received_at)
            holder = await db.fetchrow(_q(sql.CLAIM_HOLDER), record.event_id)
            return Claim(False, holder[0], holder[1])

    async def request(self, event_id: str) -> RequestRecord | None:
        rows = await self._fetch(sql.SELECT_REQUEST, event_id)
        return sql.request_from_row(tuple(rows[0])) if rows else None

    async def mark_done(self, request_id: str, outcome: RequestOutcome) -> None:
        await self._execute(sql.MARK_DONE, *sql.done_row(request_id, outcome))

    async def save_responses(
        self,
        request_id: str,
        responses: Sequence[tuple[int | None, Event]],
        *,
        owner: str,
        now: int,
        done: RequestOutcome | None = None,
    ) -> None:
        async with self._transaction() as db:
            await steps.drive_async(
                steps.save_responses(
                    request_id, responses, owner=owner, now=now, lock_row=" FOR UPDATE", done=done
                ),
                _runner(db),
            )

    async def responses_for(self, request_id: str) -> list[Event]:
        rows = await self._fetch(
            "SELECT event_json FROM responses WHERE request_id = ? ORDER BY seq", request_id
        )
        return [sql.event_from_json(row[0]) for row in rows]

    async def mark_published(self, response_ids: Sequence[str]) -> None:
        async with self._pool.acquire() as db:
            await db.executemany(_q(sql.MARK_PUBLISHED), [(i,) for i in response_ids])

    async def prune(self, *, before: int) -> int:
        async with self._transaction() as db:
            await db.execute(_q(sql.PRUNE_RESPONSES), before, before)
            return _count(await db.execute(_q(sql.PRUNE_REQUESTS), before, before))

    # -- payments ------------------------------------------------------------------------

    async def budget_used(self, wallet_pubkey: str, since: int) -> int:
        [row] = await self._fetch(sql.BUDGET_USED, wallet_pubkey, since)
        return int(row[0])

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
        async with self._transaction() as db:
            # Serialize admission per connection across instances: what is used is read,
            # decided on and inserted before another reservation of it can read.
            await db.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _BUDGET_LOCK, wallet_pubkey
            )
            return await steps.drive_async(
                steps.reserve(
                    request_id,
                    wallet_pubkey,
                    intents,
                    owner=owner,
                    budget_msat=budget_msat,
                    window_start=window_start,
                    now=now,
                    lock_row=" FOR UPDATE",
                ),
                _runner(db),
            )

    async def mark_in_flight(self, payment_ids: Sequence[int], now: int) -> set[int]:
        async with self._transaction() as db:
            return {
                payment_id
                for payment_id in payment_ids
                if _count(await db.execute(_q(sql.MARK_IN_FLIGHT), now, payment_id)) == 1
            }

    async def fence(self, payment_id: int, now: int) -> bool:
        return await self._execute(sql.FENCE, now, payment_id) == 1

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
        async with self._transaction() as db:
            status = await db.execute(
                _q(sql.SETTLE),
                state.value,
                preimage,
                fee_msat,
                error_code,
                error_message,
                now,
                payment_id,
            )
            if _count(status) != 1:
                return False
            if response is not None:
                await db.execute(_q(sql.INSERT_RESPONSE), *sql.response_row(*response, now))
            return True

    async def payments_by_hashes(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, PaymentRecord]:
        unique = list(dict.fromkeys(payment_hashes))
        records: list[PaymentRecord] = []
        for chunk in sql.chunks(unique):
            rows = await self._fetch(sql.payments_by_hashes(len(chunk)), wallet_pubkey, *chunk)
            records += [sql.payment_from_row(tuple(row)) for row in rows]
        return sql.best_by_hash(records)

    async def payment(self, payment_id: int) -> PaymentRecord | None:
        rows = await self._fetch(sql.SELECT_PAYMENT, payment_id)
        return sql.payment_from_row(tuple(rows[0])) if rows else None

    # -- invoices ------------------------------------------------------------------------

    async def add_invoice(
        self, payment_hash: str, wallet_pubkey: str, now: int, metadata: str | None = None
    ) -> None:
        await self._execute(sql.INSERT_INVOICE, payment_hash, wallet_pubkey, now, metadata)

    async def metadata_of(
        self, wallet_pubkey: str, payment_hashes: Sequence[str]
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in sql.chunks(list(dict.fromkeys(payment_hashes))):
            query = sql.metadata_of(len(chunk))
            rows = await self._fetch(query, wallet_pubkey, *chunk, wallet_pubkey, *chunk)
            found.update((row[0], row[1]) for row in rows)
        return found

    async def invoice_owner(self, payment_hash: str) -> str | None:
        rows = await self._fetch(sql.INVOICE_OWNER, payment_hash)
        return str(rows[0][0]) if rows else None

    async def owned_hashes(self, wallet_pubkey: str) -> set[str]:
        return {row[0] for row in await self._fetch(sql.OWNED_HASHES, wallet_pubkey, wallet_pubkey)}

    async def claim_notification(self, payment_hash: str, notification_type: str) -> bool:
        claim = sql.notification_claim(payment_hash, notification_type)
        return await self._execute(sql.CLAIM_NOTIFICATION, *claim) == 1

    # -- activity ------------------------------------------------------------------------

    async def recent_requests(
        self,
        limit: int,
        *,
        wallet_pubkey: str | None = None,
        before: tuple[int, str] | None = None,
    ) -> list[RequestSummary]:
        query, args = sql.recent_requests(limit, wallet_pubkey, before)
        return [sql.summary_from_row(tuple(row)) for row in await self._fetch(query, *args)]

    async def request_summary(self, request_id: str) -> RequestSummary | None:
        rows = await self._fetch(sql.REQUEST_SUMMARY, request_id)
        return sql.summary_from_row(tuple(rows[0])) if rows else None

    async def request_items(self, request_id: str) -> list[PaymentRecord]:
        rows = await self._fetch(sql.REQUEST_ITEMS, request_id)
        return [sql.payment_from_row(tuple(row)) for row in rows]

    # -- instances -----------------------------------------------------------------------

    async def register(self, instance: InstanceRecord) -> None:
        await self._execute(
            sql.REGISTER_INSTANCE,
            instance.instance_id,
            instance.started_at,
            instance.heartbeat_at,
            instance.lease_expires_at,
            instance.listening_version,
        )

    async def heartbeat(self, instance: InstanceRecord) -> bool:
        touched = await self._execute(
            sql.HEARTBEAT,
            instance.heartbeat_at,
            instance.lease_expires_at,
            instance.listening_version,
            instance.instance_id,
        )
        return touched == 1

    async def retire(self, instance_id: str) -> None:
        await self._execute(sql.RETIRE_INSTANCE, instance_id)

    async def live_instances(self, now: int) -> list[InstanceRecord]:
        return [sql.instance_from_row(tuple(r)) for r in await self._fetch(sql.LIVE_INSTANCES, now)]

    async def take_over(self, owner: str, now: int, *, everyone_else: bool = False) -> Orphans:
        async with self._transaction() as db:
            return await steps.drive_async(
                steps.take_over(owner, now, everyone_else=everyone_else, order="seq"),
                _runner(db),
            )


def _runner(db: Any) -> Callable[[str, Sequence[Any]], Awaitable[list[Sequence[Any]]]]:
    """Run one statement of :mod:`nwcd.store.steps` on a connection; its rows as tuples."""

    async def run(statement: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        return [tuple(row) for row in await db.fetch(_q(statement), *args)]

    return run
