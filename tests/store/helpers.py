"""Builders shared by the store tests: connections, requests, payment intents, responses.

Every helper talks to a store through the ports of :mod:`nwcd.ports` only, so the
contract suites run them unchanged on every adapter.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.authorize import Deny
from nwcd.policy.grants import Connection
from nwcd.ports import PaymentIntent, PaymentRecord, RequestRecord, Reserved, Store

__all__ = [
    "APP",
    "NOW",
    "OTHER_WALLET",
    "WALLET",
    "WALLET_KEY",
    "claimed",
    "connection",
    "hash_of",
    "intent",
    "request_record",
    "reserve",
    "reserve_one",
    "response_event",
    "stored",
]

WALLET_KEY = SecretKey.generate()
WALLET = WALLET_KEY.public_key.hex
OTHER_WALLET = SecretKey.generate().public_key.hex
APP = "ab" * 32
NOW = 1_700_000_000
_ids = itertools.count()


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
    store: Store, wallet: str = WALLET, *, received_at: int = NOW, created_at: int = NOW
) -> str:
    """A freshly claimed request id (payments and responses refer to one)."""
    record = request_record(wallet, received_at=received_at, created_at=created_at)
    assert await store.claim(record)
    return record.event_id


async def reserve(
    store: Store,
    intents: Sequence[PaymentIntent],
    *,
    budget: int | None = None,
    window_start: int = 0,
    now: int = NOW,
    wallet: str = WALLET,
) -> list[Reserved | Deny]:
    """Reserve ``intents`` as one freshly claimed request."""
    request_id = await claimed(store, wallet)
    return await store.reserve(
        request_id, wallet, intents, budget_msat=budget, window_start=window_start, now=now
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
