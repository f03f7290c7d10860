"""The multi-statement store operations, written once for both stores (sans-I/O).

Each operation is a generator: it yields ``(statement, arguments)`` and is
sent back the rows the statement returned (an empty list when it returns
none), then returns its result. An adapter drives it inside its own
transaction: SQLite synchronously on its thread (:func:`drive`), PostgreSQL
with ``await`` (:func:`drive_async`). So the sequence of statements and the
decisions between them live here, once; the rules they apply live in pure
code (:mod:`nwcd.policy.admission`, :func:`nwcd.store.sql.dead_owners`,
:func:`nwcd.store.sql.sort_orphans`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar

from nwcd.nostr.event import Event
from nwcd.policy.admission import Ask, admit, hashes_of, held
from nwcd.policy.authorize import Deny, lifetime_denial
from nwcd.ports import (
    NotOwner,
    Orphans,
    PaymentIntent,
    PaymentRecord,
    RequestOutcome,
    RequestRecord,
    Reserved,
)
from nwcd.store import sql

__all__ = ["Steps", "drive", "drive_async", "reserve", "save_responses", "take_over"]

T = TypeVar("T")
Statement = tuple[str, Sequence[Any]]
Rows = list[Sequence[Any]]
Steps = Generator[Statement, Rows, T]


def drive(steps: Steps[T], run: Callable[[str, Sequence[Any]], Rows]) -> T:
    """Run ``steps`` with ``run(statement, arguments) -> rows`` (inside a transaction)."""
    try:
        statement = next(steps)
        while True:
            statement = steps.send(run(*statement))
    except StopIteration as done:
        result: T = done.value
        return result


async def drive_async(steps: Steps[T], run: Callable[[str, Sequence[Any]], Awaitable[Rows]]) -> T:
    """Run ``steps`` with ``await run(statement, arguments) -> rows``."""
    try:
        statement = next(steps)
        while True:
            statement = steps.send(await run(*statement))
    except StopIteration as done:
        result: T = done.value
        return result


def reserve(
    request_id: str,
    wallet_pubkey: str,
    intents: Sequence[PaymentIntent],
    *,
    owner: str,
    budget_msat: int | None,
    window_start: int,
    now: int,
    lock_row: str = "",
) -> Steps[list[Reserved | Deny]]:
    """Admit a request's payments against what is used and held, and insert the admitted.

    A connection revoked or expired by ``now`` (as stored: maybe by another process a
    moment ago) gets every payment denied.

    The caller's transaction must keep other reservations of this connection out
    between the first read and the last insert (SQLite: ``BEGIN IMMEDIATE``;
    PostgreSQL: an advisory lock per connection). The request must still be
    ``owner``'s: ``lock_row`` (`` FOR UPDATE`` on PostgreSQL) keeps a take-over from
    moving it until this transaction ends.

    Raises:
        NotOwner: another instance took the request over.
    """
    yield from _owned(request_id, owner, lock_row)
    for revoked_at, expires_at in (yield sql.CONNECTION_LIFETIME, (wallet_pubkey,)):
        ended = lifetime_denial(revoked_at, expires_at, now)
        if ended is not None:
            return [ended for _ in intents]
    used = 0
    if budget_msat is not None:
        [(total,)] = yield sql.BUDGET_USED, (wallet_pubkey, window_start)
        used = int(total)
    asks = [Ask(i.payment_hash, i.amount_msat, i.fee_reserve_msat) for i in intents]
    holders: dict[str, str] = {}
    for chunk in sql.chunks(hashes_of(asks)):
        for payment_hash, holder in (yield sql.hash_holders(len(chunk)), chunk):
            holders[payment_hash] = holder
    decisions = admit(
        asks, wallet_pubkey=wallet_pubkey, budget_msat=budget_msat, used_msat=used, holders=holders
    )
    results: list[Reserved | Deny] = []
    for intent, decision in zip(intents, decisions, strict=True):
        if isinstance(decision, Deny):
            results.append(decision)
            continue
        row = sql.payment_row(request_id, wallet_pubkey, intent, decision.fee_reserve_msat, now)
        inserted = yield sql.INSERT_PAYMENT, row
        if not inserted:
            # The unique index on live hashes: another connection's reservation of this
            # hash committed meanwhile (this connection's own are kept out by the caller).
            results.append(held(by_same_connection=False))
        else:
            results.append(Reserved(int(inserted[0][0]), decision.fee_reserve_msat))
    return results


def save_responses(
    request_id: str,
    responses: Sequence[tuple[int | None, Event]],
    *,
    owner: str,
    now: int,
    lock_row: str = "",
    done: RequestOutcome | None = None,
) -> Steps[None]:
    """Store responses of a request that is still ``owner``'s (the outbox); with
    ``done``, its last answers: the request is marked done with that, in the same step.

    An instance that stalled past its lease must not answer what the instance that
    took its work over answers too (two different answers for one item): its write
    fails here, and it publishes nothing.

    Raises:
        NotOwner: another instance took the request over.
    """
    yield from _owned(request_id, owner, lock_row)
    for item_index, event in responses:
        yield sql.INSERT_RESPONSE, sql.response_row(request_id, item_index, event, now)
    if done is not None:
        yield sql.MARK_DONE, sql.done_row(request_id, done)


def _owned(request_id: str, owner: str, lock_row: str) -> Steps[None]:
    """Check (and, with ``lock_row``, hold until the transaction ends) the request's owner."""
    rows = yield sql.REQUEST_OWNER + lock_row, (request_id,)
    if not rows or rows[0][0] != owner:
        raise NotOwner(request_id)


def take_over(owner: str, now: int, *, everyone_else: bool, order: str) -> Steps[Orphans]:
    """Move the open work of dead instances to ``owner``, retire them, return the work.

    ``order``: the engine's insertion-order column of responses (ties of time).
    """
    # Owners first, then the registry in ONE read: an instance registers before it claims
    # anything, so an owner seen here is in the registry read after it; and one snapshot of
    # the registry keeps an instance registering meanwhile from counting as dead.
    owners = [row[0] for row in (yield sql.OWNERS_OF_OPEN_WORK, (owner,) * 3)]
    leases = {row[0]: int(row[1]) for row in (yield sql.INSTANCE_LEASES, ())}
    live = {instance for instance, expires in leases.items() if expires > now}
    registered = list(leases)
    for dead in sql.dead_owners(registered, live, owner, everyone_else=everyone_else):
        if everyone_else:
            yield sql.RETIRE_INSTANCE, (dead,)
        else:
            yield sql.RETIRE_EXPIRED, (dead, now)
    adopted: list[str] = []
    for dead in sql.dead_owners(owners, live, owner, everyone_else=everyone_else):
        adopted += [row[0] for row in (yield sql.ADOPT, (owner, dead, dead))]
    return (yield from _work_of(adopted, order, now))


def _work_of(request_ids: Sequence[str], order: str, now: int) -> Steps[Orphans]:
    """What is left to do for some requests (those answered as a whole are done at ``now``)."""
    requests: list[tuple[RequestRecord, bool]] = []
    unresolved: list[PaymentRecord] = []
    undelivered: list[Event] = []
    for chunk in sql.chunks(list(request_ids)):
        for row in (yield sql.requests_by_ids(len(chunk)), chunk):
            requests.append((sql.request_from_row(row), bool(row[7])))
        for row in (yield sql.unresolved_by_requests(len(chunk)), chunk):
            unresolved.append(sql.payment_from_row(row))
        for row in (yield sql.undelivered_by_requests(len(chunk), order), chunk):
            undelivered.append(sql.event_from_json(row[0]))
    handled: dict[str, set[int]] = {}
    answered: set[str] = set()
    whole: set[str] = set()
    for record, done in requests:
        if done:
            continue
        rows = yield sql.HANDLED_ITEMS, (record.event_id, record.event_id)
        items = {int(row[0]) for row in rows}
        if not items and (yield sql.WHOLE_ANSWER, (record.event_id,)):
            # Answered as a whole (an error before any item): only "done" was missing.
            # Finishing it would answer its items a second time, differently.
            yield sql.CLOSE_ANSWERED, (now, record.event_id)
            whole.add(record.event_id)
            continue
        handled[record.event_id] = items
        if (yield sql.HAS_RESPONSE, (record.event_id,)):
            answered.add(record.event_id)
    left = [(record, done or record.event_id in whole) for record, done in requests]
    return sql.sort_orphans(left, handled, answered, unresolved, undelivered)
