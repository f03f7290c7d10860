"""Builders shared by the store tests: connections, requests, payment intents, responses,
instances, and the open work a store hands over.

Every helper talks to a store through the ports of :mod:`nwcd.ports` only, so the
contract suites run them unchanged on every adapter.

Requests are claimed by :data:`OWNER` unless a test says otherwise: an instance id with
no ``instances`` row, i.e. an owner that is not live, whose open work any other owner's
``take_over`` adopts. :func:`open_work` is that: what a newly started instance would
find left to do (it replaces the old ``unanswered_requests`` & co.).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.authorize import Deny
from nwcd.policy.grants import Connection
from nwcd.ports import (
    OK,
    InstanceRecord,
    Orphans,
    PaymentIntent,
    PaymentRecord,
    RequestOutcome,
    RequestRecord,
    Reserved,
    Store,
)

__all__ = [
    "APP",
    "FINISHED",
    "NOW",
    "OTHER_WALLET",
    "OWNER",
    "WALLET",
    "WALLET_KEY",
    "claimed",
    "connection",
    "hash_of",
    "instance",
    "intent",
    "open_work",
    "owner_of",
    "request_record",
    "reserve",
    "reserve_one",
    "response_event",
    "stored",
    "unfinished_by_id",
]

WALLET_KEY = SecretKey.generate()
WALLET = WALLET_KEY.public_key.hex
OTHER_WALLET = SecretKey.generate().public_key.hex
APP = "ab" * 32
NOW = 1_700_000_000
OWNER = "instance-under-test"
"""The default owner of claimed requests: never registered, so never live."""
_ids = itertools.count()
FINISHED = RequestOutcome(method="get_balance", outcome=OK, finished_at=NOW + 1, latency_ms=3.0)
"""What a request finished as, where a test does not care."""


def connection(name: str = "app", created_at: int = NOW, **fields: object) -> Connection:
    base = Connection(
        name=name,
        wallet_key=SecretKey.generate(),
        app_pubkey=APP,
        relays=("ws://127.0.0.1:7000",),
        created_at=created_at,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def hash_of(n: int) -> str:
    return f"{n:064x}"


def intent(
    index: int = 0, amount: int = 1000, reserve: int = 100, payment_hash: str | None = None
) -> PaymentIntent:
    return PaymentIntent(
        item_index=index,
        result_type="multi_pay_invoice",
        d_tag=f"item{index}",
        payment_hash=payment_hash or hash_of(next(_ids)),
        invoice="lnbcrt1x",
        amount_msat=amount,
        fee_reserve_msat=reserve,
    )


def request_record(
    wallet: str = WALLET, *, received_at: int = NOW, created_at: int = NOW
) -> RequestRecord:
    """A request not claimed yet, with a fresh event id."""
    event_id = hash_of(10**30 + next(_ids))
    return RequestRecord(event_id, wallet, APP, "nip44_v2", "{}", received_at, created_at)


async def claimed(
    store: Store,
    wallet: str = WALLET,
    *,
    received_at: int = NOW,
    created_at: int = NOW,
    owner: str = OWNER,
) -> str:
    """A request id freshly claimed by ``owner`` (payments and responses refer to one)."""
    record = request_record(wallet, received_at=received_at, created_at=created_at)
    claim = await store.claim(record, owner)
    assert claim.won, claim
    assert (claim.owner, claim.received_at) == (owner, received_at)
    return record.event_id


async def reserve(
    store: Store,
    intents: Sequence[PaymentIntent],
    *,
    budget: int | None = None,
    window_start: int = 0,
    now: int = NOW,
    wallet: str = WALLET,
    owner: str = OWNER,
) -> list[Reserved | Deny]:
    """Reserve ``intents`` as one request freshly claimed by ``owner``."""
    request_id = await claimed(store, wallet, owner=owner)
    return await store.reserve(
        request_id,
        wallet,
        intents,
        owner=owner,
        budget_msat=budget,
        window_start=window_start,
        now=now,
    )


async def reserve_one(
    store: Store,
    amount: int = 1000,
    fee_reserve: int = 100,
    *,
    budget: int | None = None,
    now: int = NOW,
    wallet: str = WALLET,
) -> Reserved:
    """Reserve one payment that must be admitted."""
    [result] = await reserve(
        store, [intent(amount=amount, reserve=fee_reserve)], budget=budget, now=now, wallet=wallet
    )
    assert isinstance(result, Reserved), result
    return result


async def stored(store: Store, payment_id: int) -> PaymentRecord:
    record = await store.payment(payment_id)
    assert record is not None
    return record


def response_event(request_id: str, content: str = "sealed", created_at: int = NOW) -> Event:
    return sign_event(
        WALLET_KEY,
        kind=23195,
        content=content,
        tags=[["p", APP], ["e", request_id]],
        created_at=created_at,
    )


def instance(name: str, started_at: int, lease: int = 30, version: int = 0) -> InstanceRecord:
    """An instance that beat at ``started_at``, live until ``started_at + lease`` (excluded)."""
    return InstanceRecord(
        instance_id=name,
        started_at=started_at,
        heartbeat_at=started_at,
        lease_expires_at=started_at + lease,
        listening_version=version,
    )


async def open_work(store: Store, now: int = NOW) -> Orphans:
    """The open work of every request whose owner is not live, as a newly started instance
    (a fresh owner id, never registered) takes it over.

    The fresh owner is not live either, so the next call adopts the same work again:
    a test may look as often as it likes.
    """
    return await store.take_over(f"fresh-{next(_ids)}", now)


async def owner_of(store: Store, request_id: str) -> str:
    """The instance that holds the request now (a claim of it again reports it)."""
    record = await store.request(request_id)
    assert record is not None
    return (await store.claim(record, "just-asking")).owner


def unfinished_by_id(orphans: Orphans) -> dict[str, tuple[RequestRecord, set[int]]]:
    return {record.event_id: (record, handled) for record, handled in orphans.unfinished}
