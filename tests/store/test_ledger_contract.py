"""PaymentLedger contract: admission against budgets, payment states, lookups by hash.

Admission is :func:`nwcd.policy.admission.admit` run inside the store's transaction:
in request order a payment is admitted when its amount fits what is left, its fee
reserve capped to what is left after the amount; the budget is never exceeded.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nwcd.errors import ErrorCode
from nwcd.nostr.keys import SecretKey
from nwcd.policy.admission import budget_cost
from nwcd.policy.authorize import Deny
from nwcd.ports import PaymentIntent, PaymentState, Reserved, Store
from tests.store.conftest import SharedStores
from tests.store.helpers import (
    NOW,
    OTHER_WALLET,
    OWNER,
    WALLET,
    claimed,
    connection,
    hash_of,
    intent,
    open_work,
    reserve,
    reserve_one,
    response_event,
    stored,
)


def quota_denial(result: Reserved | Deny, amount: int, remaining: int) -> None:
    assert isinstance(result, Deny), result
    assert result.code is ErrorCode.QUOTA_EXCEEDED
    assert result.message == (
        f"payment of {amount} msat exceeds the remaining budget of {remaining} msat"
    )


# -- admission ----------------------------------------------------------------------------------


async def test_reserve_without_budget_grants_everything(store: Store) -> None:
    intents = [intent(i, amount=10**12, reserve=10**9) for i in range(3)]
    results = await reserve(store, intents)
    assert all(isinstance(r, Reserved) for r in results)
    granted = [r for r in results if isinstance(r, Reserved)]
    assert len({r.payment_id for r in granted}) == 3
    assert [r.fee_reserve_msat for r in granted] == [10**9] * 3  # never capped
    assert [(await stored(store, r.payment_id)).intent for r in granted] == intents
    assert await store.budget_used(WALLET, 0) == 3 * (10**12 + 10**9)


@pytest.mark.parametrize(
    ("ended", "message"),
    [("revoked_at", "this connection was revoked"), ("expires_at", "this connection has expired")],
)
async def test_a_connection_ended_in_the_store_reserves_nothing(
    store: Store, ended: str, message: str
) -> None:
    # Revoked by another process a moment ago: the service's copy in memory may not
    # know yet, the reservation reads the stored row.
    gone = connection("gone", **{ended: NOW})
    await store.add_connection(gone)
    results = await reserve(store, [intent(0), intent(1)], wallet=gone.wallet_pubkey)
    assert results == [Deny(ErrorCode.UNAUTHORIZED, message)] * 2
    assert await store.budget_used(gone.wallet_pubkey, 0) == 0
    # Until then it pays.
    later = connection("later", **{ended: NOW + 1})
    await store.add_connection(later)
    [granted] = await reserve(store, [intent(2)], wallet=later.wallet_pubkey)
    assert isinstance(granted, Reserved)


async def test_reserve_checks_each_item_in_order_against_the_running_total(
    store: Store,
) -> None:
    intents = [
        intent(0, 500, 100),  # fits; used 600
        intent(1, 450, 50),  # 450 > 400 left: denied
        intent(2, 350, 50),  # fits, reserve 50 fits exactly: used 1000
        intent(3, 1, 0),  # 1 > 0 left: denied
    ]
    request_id = await claimed(store)
    results = await store.reserve(
        request_id, WALLET, intents, owner=OWNER, budget_msat=1000, window_start=0, now=NOW
    )
    first, second = results[0], results[2]
    assert isinstance(first, Reserved)
    assert isinstance(second, Reserved)
    assert (first.fee_reserve_msat, second.fee_reserve_msat) == (100, 50)
    quota_denial(results[1], 450, 400)
    quota_denial(results[3], 1, 0)
    payments = [await stored(store, r.payment_id) for r in (first, second)]
    assert [p.intent for p in payments] == [intents[0], intents[2]]
    assert all(p.state is PaymentState.RESERVED for p in payments)
    assert all((p.request_id, p.wallet_pubkey) == (request_id, WALLET) for p in payments)
    # Denied items leave no payment behind.
    assert [p.id for p in (await open_work(store)).unresolved] == [
        first.payment_id,
        second.payment_id,
    ]
    assert await store.budget_used(WALLET, 0) == 1000


async def test_later_smaller_item_fits_after_a_denial(store: Store) -> None:
    await reserve_one(store, 700, 0, budget=1000)
    results = await reserve(store, [intent(0, 400, 0), intent(1, 300, 0)], budget=1000)
    quota_denial(results[0], 400, 300)
    assert isinstance(results[1], Reserved)
    assert await store.budget_used(WALLET, 0) == 1000


async def test_a_reserve_that_does_not_fit_is_capped_not_refused(store: Store) -> None:
    # 950 fits in 1000; its reserve of 100 is capped to the 50 left after the amount.
    results = await reserve(store, [intent(0, 950, 100), intent(1, 1, 0)], budget=1000)
    capped = results[0]
    assert isinstance(capped, Reserved)
    assert capped.fee_reserve_msat == 50
    quota_denial(results[1], 1, 0)
    record = await stored(store, capped.payment_id)
    assert (record.intent.amount_msat, record.intent.fee_reserve_msat) == (950, 50)
    assert await store.budget_used(WALLET, 0) == 1000
    # It may spend its whole (capped) reserve and the budget is still not exceeded.
    assert await store.settle(
        capped.payment_id, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32, fee_msat=50
    )
    assert await store.budget_used(WALLET, 0) == 1000


async def test_an_amount_that_fills_the_budget_gets_no_reserve(store: Store) -> None:
    budget = 500_000
    four = await reserve(store, [intent(i, 100_000, 10_000) for i in range(4)], budget=budget)
    assert [r.fee_reserve_msat for r in four if isinstance(r, Reserved)] == [10_000] * 4
    assert await store.budget_used(WALLET, 0) == 440_000
    # While they are open, 60_000 is left: a fifth 100_000 does not fit.
    [early] = await reserve(store, [intent(0, 100_000, 10_000)], budget=budget)
    quota_denial(early, 100_000, 60_000)

    for result in four:
        assert isinstance(result, Reserved)
        assert await store.settle(
            result.payment_id, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32, fee_msat=0
        )
    assert await store.budget_used(WALLET, 0) == 400_000
    # 100_000 left: the fifth fits, with no room left for a fee reserve.
    [fifth] = await reserve(store, [intent(0, 100_000, 10_000)], budget=budget)
    assert isinstance(fifth, Reserved)
    assert fifth.fee_reserve_msat == 0
    record = await stored(store, fifth.payment_id)
    assert (record.intent.amount_msat, record.intent.fee_reserve_msat) == (100_000, 0)
    assert await store.budget_used(WALLET, 0) == budget
    [sixth] = await reserve(store, [intent(0, 1, 0)], budget=budget)
    quota_denial(sixth, 1, 0)
    assert await store.settle(
        fifth.payment_id, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32, fee_msat=0
    )
    assert await store.budget_used(WALLET, 0) == budget


async def test_budget_used_is_the_sum_of_budget_costs(store: Store) -> None:
    budget = 100_000
    results = await reserve(
        store,
        [
            intent(0, 10_000, 1_000),  # succeeds, fee 400
            intent(1, 20_000, 2_000),  # succeeds, fee unknown (None)
            intent(2, 30_000, 3_000),  # fails
            intent(3, 5_000, 500),  # in flight
            intent(4, 6_000, 600),  # unknown
            intent(5, 7_000, 700),  # stays reserved
            intent(6, 14_000, 9_000),  # 14_200 left: reserve capped to 200, budget full
        ],
        budget=budget,
    )
    ids = [r.payment_id for r in results if isinstance(r, Reserved)]
    assert len(ids) == 7
    assert [r.fee_reserve_msat for r in results if isinstance(r, Reserved)][-1] == 200
    assert await store.budget_used(WALLET, 0) == budget
    assert await store.settle(
        ids[0], PaymentState.SUCCEEDED, now=NOW, preimage="01" * 32, fee_msat=400
    )
    assert await store.settle(ids[1], PaymentState.SUCCEEDED, now=NOW, preimage="02" * 32)
    assert await store.settle(
        ids[2], PaymentState.FAILED, now=NOW, error_code="PAYMENT_FAILED", error_message="no route"
    )
    assert await store.mark_in_flight([ids[3], ids[4]], NOW) == {ids[3], ids[4]}
    assert await store.settle(ids[4], PaymentState.UNKNOWN, now=NOW)
    # Another wallet's payment and an earlier window's one do not count.
    await reserve_one(store, 50_000, 5_000, wallet=OTHER_WALLET)
    old = await reserve_one(store, 40_000, 4_000, now=50)

    records = [await stored(store, payment_id) for payment_id in ids]
    assert [r.state for r in records] == [
        PaymentState.SUCCEEDED,
        PaymentState.SUCCEEDED,
        PaymentState.FAILED,
        PaymentState.IN_FLIGHT,
        PaymentState.UNKNOWN,
        PaymentState.RESERVED,
        PaymentState.RESERVED,
    ]
    expected = sum(
        budget_cost(
            state=r.state.value,
            amount_msat=r.intent.amount_msat,
            fee_reserve_msat=r.intent.fee_reserve_msat,
            fee_msat=r.fee_msat,
        )
        for r in records
    )
    assert expected == 10_400 + 20_000 + 0 + 5_500 + 6_600 + 7_700 + 14_200
    assert await store.budget_used(WALLET, 51) == expected
    assert await store.budget_used(WALLET, 0) == expected + 44_000
    assert (await stored(store, old.payment_id)).state is PaymentState.RESERVED


async def test_succeeded_counts_amount_plus_actual_fee(store: Store) -> None:
    payment = (await reserve_one(store, 1000, 100)).payment_id
    assert await store.budget_used(WALLET, 0) == 1100
    await store.settle(payment, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32, fee_msat=7)
    assert await store.budget_used(WALLET, 0) == 1007
    record = await stored(store, payment)
    assert (record.state, record.preimage, record.fee_msat) == (
        PaymentState.SUCCEEDED,
        "00" * 32,
        7,
    )


async def test_succeeded_without_fee_counts_the_amount(store: Store) -> None:
    payment = (await reserve_one(store, 1000, 100)).payment_id
    await store.settle(payment, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32)
    assert await store.budget_used(WALLET, 0) == 1000
    assert (await stored(store, payment)).fee_msat is None


async def test_failed_counts_nothing_and_frees_the_budget(store: Store) -> None:
    payment = (await reserve_one(store, 900, 100, budget=1000)).payment_id
    [denied] = await reserve(store, [intent(amount=1, reserve=0)], budget=1000)
    quota_denial(denied, 1, 0)
    await store.settle(
        payment, PaymentState.FAILED, now=NOW, error_code="PAYMENT_FAILED", error_message="x"
    )
    assert await store.budget_used(WALLET, 0) == 0
    again = await reserve_one(store, 900, 100, budget=1000)
    assert again.fee_reserve_msat == 100
    record = await stored(store, payment)
    assert (record.state, record.error_code, record.error_message) == (
        PaymentState.FAILED,
        "PAYMENT_FAILED",
        "x",
    )


@pytest.mark.parametrize("state", [PaymentState.IN_FLIGHT, PaymentState.UNKNOWN])
async def test_unresolved_counts_amount_plus_reserve(store: Store, state: PaymentState) -> None:
    payment = (await reserve_one(store, 1000, 100)).payment_id
    if state is PaymentState.IN_FLIGHT:
        assert await store.mark_in_flight([payment], NOW) == {payment}
    else:
        assert await store.settle(payment, state, now=NOW)
    assert (await stored(store, payment)).state is state
    assert await store.budget_used(WALLET, 0) == 1100


async def test_window_start_excludes_older_payments(store: Store) -> None:
    await reserve_one(store, 800, 0, budget=1000, now=100)
    assert await store.budget_used(WALLET, 0) == 800
    assert await store.budget_used(WALLET, 101) == 0
    assert await store.budget_used(WALLET, 100) == 800  # the window start is inclusive
    # Last window's spend does not count in this one.
    results = await reserve(store, [intent(amount=900, reserve=0)], budget=1000, window_start=200)
    assert isinstance(results[0], Reserved)
    results = await reserve(store, [intent(amount=900, reserve=0)], budget=1000, window_start=100)
    quota_denial(results[0], 900, 0)


async def test_budgets_are_per_wallet(store: Store) -> None:
    await reserve_one(store, 1000, 0, budget=1000)
    [other] = await reserve(
        store, [intent(amount=1000, reserve=0)], budget=1000, wallet=OTHER_WALLET
    )
    assert isinstance(other, Reserved)
    assert await store.budget_used(WALLET, 0) == 1000
    assert await store.budget_used(OTHER_WALLET, 0) == 1000


# -- payment states -----------------------------------------------------------------------------


async def test_mark_in_flight_only_moves_reserved_payments(store: Store) -> None:
    done = (await reserve_one(store)).payment_id
    waiting = (await reserve_one(store)).payment_id
    await store.settle(done, PaymentState.SUCCEEDED, now=NOW, preimage="aa" * 32, fee_msat=0)
    assert await store.mark_in_flight([done, waiting, 10**9], NOW + 1) == {waiting}
    states = {p: (await stored(store, p)).state for p in (done, waiting)}
    assert states == {done: PaymentState.SUCCEEDED, waiting: PaymentState.IN_FLIGHT}
    assert await store.mark_in_flight([waiting], NOW + 2) == set()  # already in flight
    assert await store.payment(10**9) is None


async def test_open_payments_are_unresolved(store: Store) -> None:
    reserved = (await reserve_one(store)).payment_id
    in_flight = (await reserve_one(store)).payment_id
    unknown = (await reserve_one(store)).payment_id
    succeeded = (await reserve_one(store)).payment_id
    failed = (await reserve_one(store)).payment_id
    await store.mark_in_flight([in_flight], NOW)
    await store.settle(unknown, PaymentState.UNKNOWN, now=NOW)
    await store.settle(succeeded, PaymentState.SUCCEEDED, now=NOW, preimage="aa" * 32, fee_msat=0)
    await store.settle(failed, PaymentState.FAILED, now=NOW)
    unresolved = (await open_work(store)).unresolved
    assert [p.id for p in unresolved] == [reserved, in_flight, unknown]
    assert [p.state for p in unresolved] == [
        PaymentState.RESERVED,
        PaymentState.IN_FLIGHT,
        PaymentState.UNKNOWN,
    ]


async def test_an_unknown_payment_can_still_settle(store: Store) -> None:
    payment = (await reserve_one(store)).payment_id
    assert await store.settle(payment, PaymentState.UNKNOWN, now=NOW)
    assert await store.settle(payment, PaymentState.SUCCEEDED, now=NOW, preimage="ab" * 32)
    assert (await stored(store, payment)).state is PaymentState.SUCCEEDED
    assert (await open_work(store)).unresolved == []


# -- settling with a response -------------------------------------------------------------------


async def test_settle_stores_the_response(store: Store) -> None:
    request_id = await claimed(store)
    [payment] = await store.reserve(
        request_id, WALLET, [intent(3)], owner=OWNER, budget_msat=None, window_start=0, now=NOW
    )
    assert isinstance(payment, Reserved)
    event = response_event(request_id)
    assert await store.settle(
        payment.payment_id,
        PaymentState.SUCCEEDED,
        now=NOW,
        preimage="bb" * 32,
        fee_msat=1,
        response=(request_id, 3, event),
    )
    assert await store.responses_for(request_id) == [event]
    work = await open_work(store)
    assert work.undelivered == [event]
    [(record, handled)] = work.unfinished
    assert record.event_id == request_id
    assert handled == {3}
    assert (await stored(store, payment.payment_id)).state is PaymentState.SUCCEEDED


async def test_settling_a_settled_payment_changes_nothing(store: Store) -> None:
    request_id = await claimed(store)
    [payment] = await store.reserve(
        request_id, WALLET, [intent(0)], owner=OWNER, budget_msat=None, window_start=0, now=NOW
    )
    assert isinstance(payment, Reserved)
    first = response_event(request_id, "paid")
    assert await store.settle(
        payment.payment_id,
        PaymentState.SUCCEEDED,
        now=NOW,
        preimage="bb" * 32,
        fee_msat=1,
        response=(request_id, 0, first),
    )
    before = await stored(store, payment.payment_id)
    # Another instance's recovery, late: neither the outcome nor its response is stored.
    assert not await store.settle(
        payment.payment_id,
        PaymentState.FAILED,
        now=NOW + 1,
        error_code="PAYMENT_FAILED",
        error_message="late",
        response=(request_id, 0, response_event(request_id, "failed")),
    )
    assert await stored(store, payment.payment_id) == before
    assert await store.responses_for(request_id) == [first]
    assert (await open_work(store)).undelivered == [first]


# -- lookups by payment hash --------------------------------------------------------------------


async def test_one_live_payment_per_hash(store: Store) -> None:
    h_paid, h_open, h_failed, h_missing = (hash_of(10**40 + i) for i in range(4))
    [paid] = await reserve(store, [intent(payment_hash=h_paid)])
    [first_open] = await reserve(store, [intent(payment_hash=h_open)])
    [failed] = await reserve(store, [intent(payment_hash=h_failed)])
    assert isinstance(paid, Reserved)
    assert isinstance(first_open, Reserved)
    assert isinstance(failed, Reserved)
    # A second live payment of a hash is refused: same connection (ask again) or another.
    [again] = await reserve(store, [intent(payment_hash=h_open)])
    assert isinstance(again, Deny)
    assert again.code is ErrorCode.OTHER
    assert "already being paid" in again.message
    [other] = await reserve(store, [intent(payment_hash=h_paid)], wallet=OTHER_WALLET)
    assert isinstance(other, Deny)
    assert other.code is ErrorCode.PAYMENT_FAILED
    assert await store.settle(
        paid.payment_id, PaymentState.SUCCEEDED, now=NOW, preimage="dd" * 32, fee_msat=2
    )
    assert await store.settle(failed.payment_id, PaymentState.FAILED, now=NOW)
    # Settling twice does nothing the second time.
    assert not await store.settle(
        failed.payment_id, PaymentState.SUCCEEDED, now=NOW, preimage="ee" * 32
    )
    # A settled payment still holds its hash; a failed one frees it for a new attempt.
    [paid_again] = await reserve(store, [intent(payment_hash=h_paid)])
    assert isinstance(paid_again, Deny)
    assert paid_again.code is ErrorCode.OTHER
    [retry] = await reserve(store, [intent(payment_hash=h_failed)])
    assert isinstance(retry, Reserved)
    assert retry.payment_id not in (paid.payment_id, failed.payment_id)
    await store.settle(retry.payment_id, PaymentState.FAILED, now=NOW)

    found = await store.payments_by_hashes(WALLET, [h_paid, h_open, h_failed, h_missing, h_paid])
    assert set(found) == {h_paid, h_open}
    assert found[h_paid].id == paid.payment_id
    assert found[h_paid].preimage == "dd" * 32
    assert found[h_paid].state is PaymentState.SUCCEEDED
    assert found[h_open].id == first_open.payment_id
    assert found[h_paid].wallet_pubkey == WALLET
    # One hash at a time, as a lookup_invoice does.
    assert (await store.payments_by_hashes(WALLET, [h_open]))[h_open].id == first_open.payment_id
    assert await store.payments_by_hashes(WALLET, [h_failed]) == {}
    assert await store.payments_by_hashes(WALLET, [h_missing]) == {}
    assert await store.payments_by_hashes(WALLET, []) == {}
    # Another connection never sees them.
    assert await store.payments_by_hashes(OTHER_WALLET, [h_paid, h_open]) == {}


async def test_a_hash_twice_in_one_request_is_paid_once(store: Store) -> None:
    same = hash_of(10**45)
    results = await reserve(
        store, [intent(0, payment_hash=same), intent(1, payment_hash=same)], budget=10_000
    )
    assert isinstance(results[0], Reserved)
    assert isinstance(results[1], Deny)
    assert results[1].code is ErrorCode.OTHER
    assert await store.budget_used(WALLET, 0) == 1100  # only the first counts


async def test_a_hash_held_elsewhere_is_refused_before_the_budget(store: Store) -> None:
    held = hash_of(10**46)
    await reserve(store, [intent(payment_hash=held)], wallet=OTHER_WALLET)
    [refused] = await reserve(store, [intent(amount=10**9, payment_hash=held)], budget=1)
    assert isinstance(refused, Deny)
    assert refused.code is ErrorCode.PAYMENT_FAILED
    assert await store.budget_used(WALLET, 0) == 0


async def test_payments_by_hashes_handles_many_hashes(store: Store) -> None:
    hashes = [hash_of(10**50 + i) for i in range(1200)]
    request_id = await claimed(store)
    await store.reserve(
        request_id,
        WALLET,
        [intent(i, payment_hash=h) for i, h in enumerate(hashes[::100])],
        owner=OWNER,
        budget_msat=None,
        window_start=0,
        now=NOW,
    )
    found = await store.payments_by_hashes(WALLET, hashes)
    assert set(found) == set(hashes[::100])
    assert all(found[h].intent.payment_hash == h for h in found)


# -- several stores on one database -------------------------------------------------------------


async def test_two_stores_never_overspend_together(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    # 51 payments fit in 50_950: fifty with their full 100 reserve, then one whose
    # reserve is capped to the 50 left after its amount; every later one is denied.
    budget = 50_950
    async with shared_stores(tmp_path, 2) as (a, b):

        async def one(s: Store) -> Reserved | Deny:
            [result] = await reserve(s, [intent(amount=900, reserve=100)], budget=budget)
            return result

        results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(120)))
        granted = [r for r in results if isinstance(r, Reserved)]
        assert len(granted) == 51
        assert len({r.payment_id for r in granted}) == 51
        assert sorted(r.fee_reserve_msat for r in granted) == [50] + [100] * 50
        for denied in results:
            if isinstance(denied, Deny):
                quota_denial(denied, 900, 0)
        assert await a.budget_used(WALLET, 0) == budget
        assert await b.budget_used(WALLET, 0) == budget


async def test_one_live_payment_per_hash_across_stores_and_wallets(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    wallets = [SecretKey.generate().public_key.hex for _ in range(4)]
    async with shared_stores(tmp_path, len(wallets)) as stores:
        for round_ in range(10):
            contested = hash_of(10**55 + round_)
            results = await asyncio.gather(
                *(
                    reserve(s, [intent(payment_hash=contested)], wallet=w, owner=f"instance{i}")
                    for i, (s, w) in enumerate(zip(stores, wallets, strict=True))
                )
            )
            outcomes = [r for [r] in results]
            winners = [i for i, r in enumerate(outcomes) if isinstance(r, Reserved)]
            assert len(winners) == 1, outcomes
            [winner] = winners
            for i, outcome in enumerate(outcomes):
                if i != winner:
                    assert isinstance(outcome, Deny), outcome
                    # Held by another connection: refused, not "ask again".
                    assert outcome.code is ErrorCode.PAYMENT_FAILED
            for i, wallet in enumerate(wallets):
                found = await stores[(i + 1) % len(stores)].payments_by_hashes(wallet, [contested])
                assert set(found) == ({contested} if i == winner else set())
        # Losers left no payment behind: only the winners' reservations count.
        used = [await stores[0].budget_used(w, 0) for w in wallets]
        assert sum(used) == 10 * 1100


async def test_many_stores_never_overspend_one_budget(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    amount, fee_reserve, budget = 1_000, 100, 300_000
    cost = amount + fee_reserve
    # 272 fit with their full reserve (299_200); the 800 left cannot carry another amount.
    full, left = divmod(budget, cost)
    fits = full + (1 if left >= amount else 0)
    assert (full, left, fits) == (272, 800, 272)
    async with shared_stores(tmp_path, 4) as stores:

        async def one(s: Store, owner: str) -> Reserved | Deny:
            [result] = await reserve(
                s, [intent(amount=amount, reserve=fee_reserve)], budget=budget, owner=owner
            )
            return result

        results = await asyncio.gather(
            *(one(s, f"instance{i}") for _ in range(250) for i, s in enumerate(stores))
        )
        assert len(results) == 1_000
        granted = [r for r in results if isinstance(r, Reserved)]
        admitted_cost = sum(amount + r.fee_reserve_msat for r in granted)
        used = await stores[0].budget_used(WALLET, 0)
        assert {await s.budget_used(WALLET, 0) for s in stores} == {used}
        assert used == admitted_cost
        assert used <= budget
        assert budget - used < amount + fee_reserve  # nothing that fitted was refused
        assert len(granted) == fits
        assert len({r.payment_id for r in granted}) == fits
        for denied in results:
            if isinstance(denied, Deny):
                assert denied.code is ErrorCode.QUOTA_EXCEEDED


@dataclass
class Open:
    """A payment the model still counts as ``amount + reserve`` (the reserve granted)."""

    amount: int
    reserve: int


amounts = st.integers(min_value=1, max_value=20_000)
reserves = st.integers(min_value=0, max_value=2_000)
burst = st.lists(
    st.tuples(st.integers(0, 1), st.lists(st.tuples(amounts, reserves), min_size=1, max_size=3)),
    min_size=1,
    max_size=8,
)
operations = st.lists(
    st.tuples(st.just("reserve"), burst)
    | st.tuples(
        st.sampled_from(["succeed", "fail", "unknown"]),
        st.tuples(st.integers(0, 1), st.integers(0, 10**6), st.integers(0, 10**6)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None)
@given(budget=st.integers(min_value=1_000, max_value=60_000), ops=operations)
def test_concurrent_stores_respect_the_budget(
    shared_stores: SharedStores, budget: int, ops: list[tuple[str, object]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run_budget_scenario(shared_stores, Path(folder), budget, ops))


async def _run_budget_scenario(
    shared_stores: SharedStores, folder: Path, budget: int, ops: list[tuple[str, object]]
) -> None:
    open_payments: dict[int, Open] = {}
    spent = 0  # succeeded: amount + actual fee

    def model() -> int:
        return spent + sum(p.amount + p.reserve for p in open_payments.values())

    async with shared_stores(folder, 2) as stores:

        async def used() -> int:
            views = {await s.budget_used(WALLET, 0) for s in stores}
            assert len(views) == 1  # both stores see the same committed state
            return views.pop()

        for kind, arg in ops:
            before = await used()
            if kind == "reserve":
                calls = cast(list[tuple[int, list[tuple[int, int]]]], arg)
                batches = [
                    [intent(i, a, r) for i, (a, r) in enumerate(items)] for _, items in calls
                ]
                results = await asyncio.gather(
                    *(
                        reserve(stores[which], batch, budget=budget)
                        for (which, _), batch in zip(calls, batches, strict=True)
                    )
                )
                after = await used()
                granted_cost = 0
                for batch, outcome in zip(batches, results, strict=True):
                    for item, result in zip(batch, outcome, strict=True):
                        if isinstance(result, Reserved):
                            await _check_granted(stores[0], result, item, after, budget)
                            granted_cost += item.amount_msat + result.fee_reserve_msat
                            open_payments[result.payment_id] = Open(
                                item.amount_msat, result.fee_reserve_msat
                            )
                        else:
                            assert result.code is ErrorCode.QUOTA_EXCEEDED
                            # Denied only when its amount really did not fit (what was
                            # used when it was decided is at most ``after``).
                            assert after + item.amount_msat > budget
                assert after == before + granted_cost
            else:
                which, pick, fee_draw = cast(tuple[int, int, int], arg)
                if not open_payments:
                    continue
                payment_id = sorted(open_payments)[pick % len(open_payments)]
                payment = open_payments[payment_id]
                settle = stores[which].settle
                if kind == "succeed":
                    fee = fee_draw % (payment.reserve + 1)
                    assert await settle(
                        payment_id,
                        PaymentState.SUCCEEDED,
                        now=NOW,
                        preimage="00" * 32,
                        fee_msat=fee,
                    )
                    del open_payments[payment_id]
                    spent += payment.amount + fee
                elif kind == "fail":
                    assert await settle(payment_id, PaymentState.FAILED, now=NOW)
                    del open_payments[payment_id]
                    # The released reservation is available again, in full, from either store.
                    [again] = await reserve(
                        stores[1 - which],
                        [intent(0, payment.amount, payment.reserve)],
                        budget=budget,
                    )
                    assert isinstance(again, Reserved), again
                    assert again.fee_reserve_msat == payment.reserve
                    open_payments[again.payment_id] = payment
                else:
                    assert await settle(payment_id, PaymentState.UNKNOWN, now=NOW)
            now_used = await used()
            assert now_used == model()
            assert now_used <= budget


async def _check_granted(
    store: Store, result: Reserved, item: PaymentIntent, after: int, budget: int
) -> None:
    """An admitted payment keeps its reserve unless the budget left could not carry it."""
    assert 0 <= result.fee_reserve_msat <= item.fee_reserve_msat
    if result.fee_reserve_msat < item.fee_reserve_msat:
        # Capped: the reservation filled the budget to the last msat.
        assert after == budget
    record = await stored(store, result.payment_id)
    assert record.intent == replace(item, fee_reserve_msat=result.fee_reserve_msat)
    assert record.state is PaymentState.RESERVED
