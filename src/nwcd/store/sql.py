"""The SQL both stores run, and the mapping between rows and records.

One copy of every query, written in the SQL that SQLite and PostgreSQL share
(``?`` placeholders; the PostgreSQL adapter numbers them with :func:`numbered`).
The rules behind them live in pure code (:mod:`nwcd.policy.admission`,
:func:`dead_owners`, :func:`sort_orphans`); each adapter only runs these
statements inside its own transactions.

Column lists are constants; every value goes through a placeholder.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from nwcd.nostr import jsontext
from nwcd.nostr.event import Event, parse_event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import BudgetPeriod, Connection
from nwcd.ports import (
    UNRESOLVED_STATES,
    InstanceRecord,
    Orphans,
    PaymentIntent,
    PaymentRecord,
    PaymentState,
    RequestOutcome,
    RequestRecord,
    RequestSummary,
)

__all__ = [
    "connection_fields",
    "connection_from_row",
    "dead_owners",
    "done_row",
    "event_json",
    "numbered",
    "payment_from_row",
    "recent_requests",
    "sort_orphans",
    "summary_from_row",
]

CHUNK = 500  # ids per IN (...) list: within both engines' limits on parameters

# -- connections -------------------------------------------------------------------------------

INSERT_CONNECTION = (
    "INSERT INTO connections (wallet_pubkey, wallet_secret, name, app_pubkey, relays, methods,"
    " max_amount_msat, budget_msat, budget_period, expires_at, lud16, created_at, updated_at,"
    " revoked_at, last_used_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
UPDATE_CONNECTION = (
    "UPDATE connections SET name = ?, app_pubkey = ?, relays = ?, methods = ?,"
    " max_amount_msat = ?, budget_msat = ?, budget_period = ?, expires_at = ?, lud16 = ?,"
    " revoked_at = ?, updated_at = ? WHERE wallet_pubkey = ?"
)
SELECT_CONNECTIONS = (
    "SELECT wallet_secret, wallet_pubkey, name, app_pubkey, relays, methods, max_amount_msat,"
    " budget_msat, budget_period, expires_at, lud16, created_at, revoked_at, last_used_at"
    " FROM connections"
    " ORDER BY created_at, name"
)
CONNECTIONS_VERSION = "SELECT value FROM meta WHERE key = 'connections_version'"
BUMP_CONNECTIONS_VERSION = (
    "UPDATE meta SET value = value + 1 WHERE key = 'connections_version' RETURNING value"
)
CONNECTION_LIFETIME = "SELECT revoked_at, expires_at FROM connections WHERE wallet_pubkey = ?"
TOUCH_CONNECTION = "UPDATE connections SET last_used_at = ? WHERE wallet_pubkey = ?"

# -- requests and responses --------------------------------------------------------------------

_REQUEST_COLUMNS = (
    "event_id, wallet_pubkey, app_pubkey, scheme, event_json, received_at, created_at"
)
CLAIM = (
    "INSERT INTO requests (event_id, wallet_pubkey, app_pubkey, scheme, event_json, received_at,"
    " created_at, owner) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)
CLAIM_HOLDER = "SELECT owner, received_at FROM requests WHERE event_id = ?"
SELECT_REQUEST = "SELECT " + _REQUEST_COLUMNS + " FROM requests WHERE event_id = ?"
# The first finish wins: a request done already keeps what it was recorded as.
MARK_DONE = (
    "UPDATE requests SET done = 1, method = ?, outcome = ?, amount_msat = ?, items = ?,"
    " latency_ms = ?, finished_at = ? WHERE event_id = ? AND done = 0"
)
# Done, with nothing known of what it finished as: an instance stopped between storing
# the request's answer and recording it done.
CLOSE_ANSWERED = "UPDATE requests SET done = 1, finished_at = ? WHERE event_id = ? AND done = 0"
INSERT_RESPONSE = (
    "INSERT INTO responses (event_id, request_id, item_index, event_json, created_at, published)"
    " VALUES (?,?,?,?,?,0) ON CONFLICT DO NOTHING"
)
MARK_PUBLISHED = "UPDATE responses SET published = 1 WHERE event_id = ? AND published = 0"
# Requests that moved no money, dated and received before a time, and their responses.
PRUNE_RESPONSES = (
    "DELETE FROM responses WHERE request_id IN (SELECT event_id FROM requests"
    " WHERE received_at < ? AND COALESCE(created_at, 0) < ?"
    " AND NOT EXISTS (SELECT 1 FROM payments WHERE payments.request_id = requests.event_id))"
)
PRUNE_REQUESTS = (
    "DELETE FROM requests WHERE received_at < ? AND COALESCE(created_at, 0) < ?"
    " AND NOT EXISTS (SELECT 1 FROM payments WHERE payments.request_id = requests.event_id)"
)

# -- payments ----------------------------------------------------------------------------------

_PAYMENT_COLUMNS = (
    "id, request_id, wallet_pubkey, item_index, result_type, d_tag, payment_hash, invoice,"
    " amount_msat, fee_reserve_msat, state, preimage, fee_msat, error_code, error_message,"
    " metadata"
)
# What a payment counts against a budget (nwcd.policy.admission.budget_cost, summed):
# the real spend once settled, the reservation (amount + fee reserve) while open.
BUDGET_USED = (
    "SELECT COALESCE(SUM(CASE WHEN state = 'succeeded' THEN amount_msat + COALESCE(fee_msat, 0)"
    " ELSE amount_msat + fee_reserve_msat END), 0) FROM payments"
    " WHERE wallet_pubkey = ? AND created_at >= ? AND state <> 'failed'"
)
# ON CONFLICT: another transaction took the hash meanwhile (the unique index on live
# hashes); then nothing is returned and the payment is refused.
INSERT_PAYMENT = (
    "INSERT INTO payments (request_id, item_index, wallet_pubkey, result_type, d_tag,"
    " payment_hash, invoice, amount_msat, fee_reserve_msat, state, created_at, updated_at,"
    " metadata) VALUES (?,?,?,?,?,?,?,?,?,'reserved',?,?,?) ON CONFLICT DO NOTHING RETURNING id"
)
REQUEST_OWNER = "SELECT owner FROM requests WHERE event_id = ?"
FENCE = "UPDATE payments SET state = 'unknown', updated_at = ? WHERE id = ? AND state = 'reserved'"
MARK_IN_FLIGHT = (
    "UPDATE payments SET state = 'in_flight', updated_at = ? WHERE id = ? AND state = 'reserved'"
)
SETTLE = (
    "UPDATE payments SET state = ?, preimage = ?, fee_msat = ?, error_code = ?,"
    " error_message = ?, updated_at = ?"
    " WHERE id = ? AND state IN ('reserved', 'in_flight', 'unknown')"
)
SELECT_PAYMENT = "SELECT " + _PAYMENT_COLUMNS + " FROM payments WHERE id = ?"
REQUEST_ITEMS = (
    "SELECT " + _PAYMENT_COLUMNS + " FROM payments WHERE request_id = ? ORDER BY item_index"
)


def hash_holders(count: int) -> str:
    """Who holds a live (not failed) payment of each of ``count`` hashes (a unique index:
    one row per hash at most)."""
    return (
        "SELECT payment_hash, wallet_pubkey FROM payments WHERE state <> 'failed'"
        " AND payment_hash IN (" + _marks(count) + ")"
    )


def payments_by_hashes(count: int) -> str:
    """Live payments of one connection among ``count`` hashes, oldest first."""
    return (
        "SELECT " + _PAYMENT_COLUMNS + " FROM payments WHERE wallet_pubkey = ?"
        " AND state <> 'failed' AND payment_hash IN (" + _marks(count) + ") ORDER BY id"
    )


# -- activity ----------------------------------------------------------------------------------

_SUMMARY_COLUMNS = (
    "requests.event_id, requests.wallet_pubkey, connections.name, requests.received_at,"
    " requests.owner, requests.done, requests.method, requests.outcome, requests.amount_msat,"
    " requests.items, requests.latency_ms, requests.finished_at"
)
REQUEST_SUMMARY = (
    "SELECT " + _SUMMARY_COLUMNS + " FROM requests LEFT JOIN connections"
    " ON connections.wallet_pubkey = requests.wallet_pubkey WHERE requests.event_id = ?"
)


def recent_requests(
    limit: int, wallet_pubkey: str | None, before: tuple[int, str] | None
) -> tuple[str, list[Any]]:
    """The statement and arguments of ``ActivityLog.recent_requests``: newest first, read
    through the (wallet_pubkey,) received_at, event_id indexes."""
    conditions: list[str] = []
    args: list[Any] = []
    if wallet_pubkey is not None:
        conditions.append("requests.wallet_pubkey = ?")
        args.append(wallet_pubkey)
    if before is not None:
        conditions.append("(requests.received_at, requests.event_id) < (?, ?)")
        args += before
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    query = (
        "SELECT " + _SUMMARY_COLUMNS + " FROM requests LEFT JOIN connections"
        " ON connections.wallet_pubkey = requests.wallet_pubkey" + where
        + " ORDER BY requests.received_at DESC, requests.event_id DESC LIMIT ?"
    )  # fmt: skip
    return query, [*args, limit]


# -- invoices ----------------------------------------------------------------------------------

INSERT_INVOICE = (
    "INSERT INTO invoices (payment_hash, wallet_pubkey, created_at, metadata) VALUES (?,?,?,?)"
    " ON CONFLICT DO NOTHING"
)


def metadata_of(count: int) -> str:
    """A connection's metadata of ``count`` hashes: its invoices' and its payments'
    (later rows win when read in order)."""
    marks = _marks(count)
    return (
        "SELECT payment_hash, metadata, 0 AS o, 0 AS id FROM invoices WHERE wallet_pubkey = ?"
        " AND metadata IS NOT NULL AND payment_hash IN (" + marks + ")"
        " UNION ALL SELECT payment_hash, metadata, 1, id FROM payments WHERE wallet_pubkey = ?"
        " AND metadata IS NOT NULL AND payment_hash IN (" + marks + ") ORDER BY 3, 4"
    )


INVOICE_OWNER = "SELECT wallet_pubkey FROM invoices WHERE payment_hash = ?"
OWNED_HASHES = (
    "SELECT payment_hash FROM invoices WHERE wallet_pubkey = ?"
    " UNION SELECT payment_hash FROM payments WHERE wallet_pubkey = ?"
)
# ``notified`` is a bit set: each notification of an invoice is claimed once.
NOTIFIED_BITS = {"payment_received": 1, "hold_invoice_accepted": 2}
CLAIM_NOTIFICATION = (
    "UPDATE invoices SET notified = notified | ? WHERE payment_hash = ? AND (notified & ?) = 0"
)


def notification_claim(payment_hash: str, notification_type: str) -> tuple[int, str, int]:
    """The parameters of :data:`CLAIM_NOTIFICATION`."""
    bit = NOTIFIED_BITS[notification_type]
    return bit, payment_hash, bit


# -- instances and their work ------------------------------------------------------------------

_INSTANCE_COLUMNS = "instance_id, started_at, heartbeat_at, lease_expires_at, listening_version"
REGISTER_INSTANCE = "INSERT INTO instances (" + _INSTANCE_COLUMNS + ") VALUES (?,?,?,?,?)"
HEARTBEAT = (
    "UPDATE instances SET heartbeat_at = ?, lease_expires_at = ?, listening_version = ?"
    " WHERE instance_id = ?"
)
RETIRE_INSTANCE = "DELETE FROM instances WHERE instance_id = ?"
# Only while still expired: one that renewed its lease meanwhile stays.
RETIRE_EXPIRED = "DELETE FROM instances WHERE instance_id = ? AND lease_expires_at <= ?"
LIVE_INSTANCES = (
    "SELECT " + _INSTANCE_COLUMNS + " FROM instances WHERE lease_expires_at > ?"
    " ORDER BY started_at, instance_id"
)
INSTANCE_LEASES = "SELECT instance_id, lease_expires_at FROM instances"
# Open work: requests not done yet, with a response no relay took yet, or with a payment
# whose outcome is not known. Each part is read through a partial index (requests not done
# by owner, unpublished responses, open payments), never by scanning every request.
_OPEN_WORK_IDS = (
    "SELECT event_id FROM requests WHERE done = 0 AND owner = ?"
    " UNION SELECT request_id FROM responses WHERE published = 0"
    " UNION SELECT request_id FROM payments"
    " WHERE state IN ('reserved', 'in_flight', 'unknown')"
)
OWNERS_OF_OPEN_WORK = (
    "SELECT owner FROM requests WHERE done = 0 AND owner <> ?"
    " UNION SELECT requests.owner FROM responses JOIN requests"
    " ON requests.event_id = responses.request_id"
    " WHERE responses.published = 0 AND requests.owner <> ?"
    " UNION SELECT requests.owner FROM payments JOIN requests"
    " ON requests.event_id = payments.request_id"
    " WHERE payments.state IN ('reserved', 'in_flight', 'unknown') AND requests.owner <> ?"
)
# Compare-and-set: a request moves only while it still belongs to the dead owner.
ADOPT = (
    "UPDATE requests SET owner = ? WHERE owner = ? AND event_id IN (" + _OPEN_WORK_IDS + ")"
    " RETURNING event_id"
)
HANDLED_ITEMS = (
    "SELECT item_index FROM payments WHERE request_id = ?"
    " UNION SELECT item_index FROM responses WHERE request_id = ? AND item_index IS NOT NULL"
)
HAS_RESPONSE = "SELECT 1 FROM responses WHERE request_id = ? LIMIT 1"
# An answer to the whole request (no item): the request is answered, whatever else it has.
WHOLE_ANSWER = "SELECT 1 FROM responses WHERE request_id = ? AND item_index IS NULL LIMIT 1"


def requests_by_ids(count: int) -> str:
    return (
        "SELECT " + _REQUEST_COLUMNS + ", done FROM requests WHERE event_id IN ("
        + _marks(count) + ")"
    )  # fmt: skip


def unresolved_by_requests(count: int) -> str:
    states = ",".join(f"'{state.value}'" for state in UNRESOLVED_STATES)
    return (
        "SELECT " + _PAYMENT_COLUMNS + " FROM payments WHERE state IN (" + states + ")"
        " AND request_id IN (" + _marks(count) + ") ORDER BY id"
    )


def undelivered_by_requests(count: int, order: str) -> str:
    """Unpublished responses of some requests, oldest first (``order``: the engine's
    insertion order column, to break ties)."""
    return (
        "SELECT event_json FROM responses WHERE published = 0 AND request_id IN ("
        + _marks(count) + ") ORDER BY created_at, " + order
    )  # fmt: skip


def _marks(count: int) -> str:
    return ",".join("?" * count)


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (no query here has a ``?``
    inside a string literal)."""
    counter = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


# -- rules on rows (pure) ----------------------------------------------------------------------


def dead_owners(
    owners: Iterable[str], live: Set[str], me: str, *, everyone_else: bool
) -> list[str]:
    """Owners whose work is to be taken over: not live (or, exclusively, anyone but me)."""
    return sorted(o for o in set(owners) if o != me and (everyone_else or o not in live))


def sort_orphans(
    requests: Sequence[tuple[RequestRecord, bool]],
    handled: Mapping[str, set[int]],
    answered: Set[str],
    unresolved: list[PaymentRecord],
    undelivered: list[Event],
) -> Orphans:
    """Adopted requests by what is left to do.

    ``requests`` are (record, done); ``handled`` the item indexes with a payment or
    a response; ``answered`` the ids with any response. Never started (no payment,
    no response): process it. Started, not done: finish the items not handled.
    """
    orphans = Orphans(unresolved=unresolved, undelivered=undelivered)
    for record, done in requests:
        if done:
            continue
        items = handled.get(record.event_id, set())
        if not items and record.event_id not in answered:
            orphans.unanswered.append(record)
        else:
            orphans.unfinished.append((record, items))
    return orphans


# -- rows <-> records --------------------------------------------------------------------------


def event_json(event: Event) -> str:
    return jsontext.dumps(event.to_json())


def event_from_json(text: str) -> Event:
    return parse_event(jsontext.loads(text))


def connection_fields(c: Connection) -> tuple[Any, ...]:
    """The editable columns of UPDATE_CONNECTION, in order."""
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


def connection_row(c: Connection) -> tuple[Any, ...]:
    """Every column of INSERT_CONNECTION, in order."""
    return (
        c.wallet_pubkey,
        c.wallet_key.reveal_hex(),
        *connection_fields(c),
        c.created_at,
        c.created_at,
        c.revoked_at,
        c.last_used_at,
    )


def connection_from_row(row: Sequence[Any]) -> Connection:
    (secret, wallet_pubkey, name, app_pubkey, relays, methods, max_amount, budget, period,
     expires_at, lud16, created_at, revoked_at, last_used_at) = row  # fmt: skip
    return Connection(
        name=name,
        # Nothing derived now (many connections load at start): checked on first use.
        wallet_key=SecretKey.stored(secret, wallet_pubkey),
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


def request_from_row(row: Sequence[Any]) -> RequestRecord:
    return RequestRecord(*row[:7])


def done_row(request_id: str, outcome: RequestOutcome) -> tuple[Any, ...]:
    """The values of MARK_DONE, in order (latency in whole milliseconds)."""
    latency = None if outcome.latency_ms is None else round(outcome.latency_ms)
    return (
        outcome.method,
        outcome.outcome,
        outcome.amount_msat,
        outcome.items,
        latency,
        outcome.finished_at,
        request_id,
    )


def summary_from_row(row: Sequence[Any]) -> RequestSummary:
    (request_id, wallet_pubkey, name, received_at, owner, done, method, outcome, amount, items,
     latency, finished_at) = row  # fmt: skip
    return RequestSummary(
        request_id=request_id,
        wallet_pubkey=wallet_pubkey,
        connection=name,
        received_at=received_at,
        instance=owner,
        done=bool(done),
        method=method,
        outcome=outcome,
        amount_msat=amount,
        items=items,
        latency_ms=latency,
        finished_at=finished_at,
    )


def response_row(
    request_id: str, item_index: int | None, event: Event, now: int
) -> tuple[Any, ...]:
    """The values of INSERT_RESPONSE, in order."""
    return (event.id, request_id, item_index, event_json(event), now)


def payment_row(
    request_id: str, wallet_pubkey: str, intent: PaymentIntent, fee_reserve_msat: int, now: int
) -> tuple[Any, ...]:
    """The values of INSERT_PAYMENT, in order."""
    return (
        request_id,
        intent.item_index,
        wallet_pubkey,
        intent.result_type,
        intent.d_tag,
        intent.payment_hash,
        intent.invoice,
        intent.amount_msat,
        fee_reserve_msat,
        now,
        now,
        intent.metadata,
    )


def payment_from_row(row: Sequence[Any]) -> PaymentRecord:
    (payment_id, request_id, wallet_pubkey, item_index, result_type, d_tag, payment_hash,
     invoice, amount, fee_reserve, state, preimage, fee, error_code, error_message,
     metadata) = row  # fmt: skip
    return PaymentRecord(
        id=payment_id,
        request_id=request_id,
        wallet_pubkey=wallet_pubkey,
        intent=PaymentIntent(
            item_index, result_type, d_tag, payment_hash, invoice, amount, fee_reserve, metadata
        ),
        state=PaymentState(state),
        preimage=preimage,
        fee_msat=fee,
        error_code=error_code,
        error_message=error_message,
    )


def instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(*row)


def best_by_hash(records: Iterable[PaymentRecord]) -> dict[str, PaymentRecord]:
    """Per hash, a succeeded payment if there is one, else the newest (rows oldest first)."""
    found: dict[str, PaymentRecord] = {}
    for record in records:
        best = found.get(record.intent.payment_hash)
        if best is None or best.state is not PaymentState.SUCCEEDED:
            found[record.intent.payment_hash] = record
    return found
