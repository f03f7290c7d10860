"""RequestJournal contract: exactly-once claims, stored responses (the outbox) and pruning."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from nwcd.nostr.event import Event
from nwcd.ports import Claim, NotOwner, Orphans, PaymentState, Reserved, Store
from tests.store.conftest import SharedStores
from tests.store.helpers import (
    APP,
    FINISHED,
    NOW,
    OWNER,
    WALLET,
    claimed,
    intent,
    open_work,
    owner_of,
    request_record,
    response_event,
    unfinished_by_id,
)

# -- claims -------------------------------------------------------------------------------------


async def test_claim_is_idempotent(store: Store) -> None:
    record = request_record(received_at=NOW, created_at=NOW - 30)
    record = replace(record, scheme="nip04", event_json='{"id": "x"}')
    held = Claim(False, OWNER, NOW)
    assert await store.claim(record, OWNER) == Claim(True, OWNER, NOW)
    assert await store.claim(record, OWNER) == held
    assert await store.claim(replace(record, received_at=NOW + 1), OWNER) == held
    assert await store.claim(replace(record, created_at=NOW + 1), OWNER) == held
    assert await store.request(record.event_id) == record  # the first claim is kept
    assert await store.request("ff" * 32) is None


async def test_a_second_claim_reports_the_first_owner_and_when(store: Store) -> None:
    record = request_record(received_at=NOW + 3)
    assert await store.claim(record, "first") == Claim(True, "first", NOW + 3)
    later = replace(record, received_at=NOW + 9)
    assert await store.claim(later, "second") == Claim(False, "first", NOW + 3)
    assert await store.claim(later, "first") == Claim(False, "first", NOW + 3)
    assert await store.request(record.event_id) == record
    # Another request is claimed on its own.
    other = request_record(received_at=NOW + 4)
    assert await store.claim(other, "second") == Claim(True, "second", NOW + 4)


async def test_concurrent_claims_from_several_stores_have_one_winner(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    async with shared_stores(tmp_path, 4) as stores:
        for _ in range(10):
            record = request_record()
            owners = [f"instance{i}" for i in range(len(stores))]
            claims = await asyncio.gather(
                *(
                    store.claim(replace(record, received_at=NOW + i), owner)
                    for i, (store, owner) in enumerate(zip(stores, owners, strict=True))
                )
            )
            winners = [c for c in claims if c.won]
            assert len(winners) == 1, claims
            [winner] = winners
            assert winner.owner in owners
            # Everyone is told who holds it, and since when (the winner's own received_at).
            assert {(c.owner, c.received_at) for c in claims} == {
                (winner.owner, winner.received_at)
            }
            assert winner.received_at == NOW + owners.index(winner.owner)
            loaded = await stores[0].request(record.event_id)
            assert loaded == replace(record, received_at=winner.received_at)


async def test_request_keeps_the_events_own_created_at(store: Store) -> None:
    record = request_record(received_at=NOW, created_at=NOW - 3600)
    assert (await store.claim(record, OWNER)).won
    loaded = await store.request(record.event_id)
    assert loaded is not None
    assert (loaded.received_at, loaded.created_at) == (NOW, NOW - 3600)
    assert (loaded.wallet_pubkey, loaded.app_pubkey) == (WALLET, APP)


async def test_a_request_never_started_is_unanswered(store: Store) -> None:
    bare = await claimed(store)
    answered = await claimed(store)
    await store.save_responses(answered, [(None, response_event(answered))], owner=OWNER, now=NOW)
    with_payment = await claimed(store)
    await store.reserve(
        with_payment, WALLET, [intent()], owner=OWNER, budget_msat=None, window_start=0, now=NOW
    )
    unanswered = (await open_work(store)).unanswered
    assert [r.event_id for r in unanswered] == [bare]
    assert unanswered == [await store.request(bare)]


async def test_started_requests_are_unfinished_with_handled_items_until_done(store: Store) -> None:
    bare = await claimed(store)
    started = await claimed(store)
    reserved = await store.reserve(
        started,
        WALLET,
        [intent(0), intent(2)],
        owner=OWNER,
        budget_msat=None,
        window_start=0,
        now=NOW,
    )
    assert all(isinstance(r, Reserved) for r in reserved)
    await store.save_responses(
        started,
        [(1, response_event(started, "one")), (None, response_event(started, "all"))],
        owner=OWNER,
        now=NOW,
    )
    answered = await claimed(store)
    await store.save_responses(answered, [(None, response_event(answered))], owner=OWNER, now=NOW)

    work = await open_work(store)
    unfinished = unfinished_by_id(work)
    # Never started: unanswered. Answered as a whole (no item): done, nothing to finish.
    assert set(unfinished) == {started}
    assert unfinished[started] == (await store.request(started), {0, 1, 2})
    assert [r.event_id for r in work.unanswered] == [bare]

    await store.mark_done(started, FINISHED)
    assert (await open_work(store)).unfinished == []
    await store.mark_done("ff" * 32, FINISHED)  # unknown: harmless
    assert (await open_work(store)).unfinished == []


# -- responses ----------------------------------------------------------------------------------


async def test_save_responses_keeps_order_and_ignores_duplicates(store: Store) -> None:
    request_id = await claimed(store)
    first, second = response_event(request_id, "one"), response_event(request_id, "two")
    await store.save_responses(request_id, [(0, first), (1, second)], owner=OWNER, now=NOW)
    await store.save_responses(request_id, [(0, first)], owner=OWNER, now=NOW + 1)
    assert await store.responses_for(request_id) == [first, second]
    work = await open_work(store)
    assert work.undelivered == [first, second]  # the duplicate is ignored
    [(_, handled)] = work.unfinished
    assert handled == {0, 1}
    assert await store.responses_for(await claimed(store)) == []


async def test_whole_request_response_has_no_item(store: Store) -> None:
    request_id = await claimed(store)
    event = response_event(request_id)
    await store.save_responses(request_id, [(None, event)], owner=OWNER, now=NOW)
    assert await store.responses_for(request_id) == [event]
    # Answered as a whole and not marked done (the process died in between): taking it
    # over marks it done instead of answering its items again.
    work = await open_work(store)
    assert work.unfinished == []
    assert work.unanswered == []
    assert work.undelivered == [event]  # its answer still goes out
    await store.mark_published([event.id])
    assert await open_work(store) == Orphans()  # done: nothing left at all


async def test_undelivered_responses_oldest_first_until_marked_published(store: Store) -> None:
    a, b, c = [await claimed(store) for _ in range(3)]
    a_one, a_two = response_event(a, "a1"), response_event(a, "a2")
    c_one = response_event(c, "c1")
    await store.save_responses(a, [(0, a_one), (1, a_two)], owner=OWNER, now=NOW + 2)
    # A payment settled together with its response: stored unpublished too, and earlier.
    [payment] = await store.reserve(
        b, WALLET, [intent(0)], owner=OWNER, budget_msat=None, window_start=0, now=NOW
    )
    assert isinstance(payment, Reserved)
    b_one = response_event(b, "b1")
    assert await store.settle(
        payment.payment_id,
        PaymentState.SUCCEEDED,
        now=NOW + 1,
        preimage="aa" * 32,
        fee_msat=0,
        response=(b, 0, b_one),
    )
    await store.save_responses(c, [(None, c_one)], owner=OWNER, now=NOW + 3)
    assert (await open_work(store)).undelivered == [b_one, a_one, a_two, c_one]

    await store.mark_published([a_one.id, b_one.id])
    assert (await open_work(store)).undelivered == [a_two, c_one]
    # Published responses stay stored (a duplicate request is answered from them).
    assert await store.responses_for(a) == [a_one, a_two]
    assert await store.responses_for(b) == [b_one]

    # Saving a published response again (as its owner now: the last look took it over)
    # does not queue it again.
    await store.save_responses(a, [(0, a_one)], owner=await owner_of(store, a), now=NOW + 4)
    assert (await open_work(store)).undelivered == [a_two, c_one]

    await store.mark_published([a_two.id, c_one.id, a_one.id])
    assert (await open_work(store)).undelivered == []


async def test_mark_published_of_unknown_ids_is_harmless(store: Store) -> None:
    request_id = await claimed(store)
    event = response_event(request_id)
    await store.save_responses(request_id, [(None, event)], owner=OWNER, now=NOW)
    await store.mark_published([])
    await store.mark_published(["ff" * 32, "00" * 32])
    assert (await open_work(store)).undelivered == [event]
    await store.mark_published([event.id, "ff" * 32])
    assert (await open_work(store)).undelivered == []
    await store.mark_published([event.id])  # twice: harmless
    assert (await open_work(store)).undelivered == []
    assert await store.responses_for(request_id) == [event]


# -- pruning ------------------------------------------------------------------------------------


async def test_prune_forgets_old_requests_that_moved_no_money(store: Store) -> None:
    cut = NOW
    old = cut - 100

    responses: dict[str, Event] = {}

    async def with_response(*, received_at: int, created_at: int) -> str:
        request_id = await claimed(store, received_at=received_at, created_at=created_at)
        responses[request_id] = response_event(request_id)
        await store.save_responses(
            request_id, [(None, responses[request_id])], owner=OWNER, now=old
        )
        return request_id

    old_answered = await with_response(received_at=old, created_at=old)
    old_bare = await claimed(store, received_at=old, created_at=old)
    just_before = await with_response(received_at=cut - 1, created_at=cut - 1)
    # Kept: not old on both clocks (strictly before the cut).
    received_late = await with_response(received_at=cut, created_at=old)
    created_late = await with_response(received_at=old, created_at=cut)
    new = await with_response(received_at=cut + 5, created_at=cut + 5)
    # Kept: requests that have payments, whatever their state.
    with_open_payment = await claimed(store, received_at=old, created_at=old)
    with_failed_payment = await claimed(store, received_at=old, created_at=old)
    payments = []
    for request_id in (with_open_payment, with_failed_payment):
        [reserved] = await store.reserve(
            request_id, WALLET, [intent(0)], owner=OWNER, budget_msat=None, window_start=0, now=old
        )
        assert isinstance(reserved, Reserved)
        payments.append(reserved.payment_id)
    responses[with_failed_payment] = response_event(with_failed_payment, "failed")
    assert await store.settle(
        payments[1],
        PaymentState.FAILED,
        now=old,
        response=(with_failed_payment, 0, responses[with_failed_payment]),
    )
    kept = [received_late, created_late, new, with_open_payment, with_failed_payment]
    pruned = [old_answered, old_bare, just_before]

    assert await store.prune(before=cut) == len(pruned)

    for request_id in pruned:
        assert await store.request(request_id) is None
        assert await store.responses_for(request_id) == []
    for request_id in kept:
        assert await store.request(request_id) is not None
        expected = [responses[request_id]] if request_id in responses else []
        assert await store.responses_for(request_id) == expected
    work = await open_work(store)
    assert work.undelivered == [
        responses[r] for r in (received_late, created_late, new, with_failed_payment)
    ]
    assert work.unanswered == []
    assert await store.payment(payments[0]) is not None
    assert await store.payment(payments[1]) is not None

    assert await store.prune(before=cut) == 0  # nothing left to prune


async def test_a_pruned_request_can_be_claimed_again(store: Store) -> None:
    record = request_record(received_at=NOW - 10, created_at=NOW - 10)
    assert (await store.claim(record, "before")).won
    await store.save_responses(
        record.event_id, [(None, response_event(record.event_id))], owner="before", now=NOW
    )
    assert await store.prune(before=NOW) == 1
    again = replace(record, received_at=NOW + 1)
    assert await store.claim(again, "after") == Claim(True, "after", NOW + 1)
    assert await store.request(record.event_id) == again
    assert await store.responses_for(record.event_id) == []
    assert (await open_work(store)).unanswered == [again]


async def test_prune_of_an_empty_store_removes_nothing(store: Store) -> None:
    assert await store.prune(before=NOW) == 0


async def test_saving_the_last_answer_with_done_marks_the_request_done_in_the_same_write(
    store: Store,
) -> None:
    request_id = await claimed(store)
    answer = response_event(request_id)
    await store.save_responses(request_id, [(None, answer)], owner=OWNER, now=NOW, done=FINISHED)
    summary = await store.request_summary(request_id)
    assert summary is not None
    assert summary.done
    assert (summary.method, summary.outcome, summary.finished_at) == (
        FINISHED.method,
        FINISHED.outcome,
        FINISHED.finished_at,
    )
    assert await store.responses_for(request_id) == [answer]
    # Not the owner's any more: neither the answer nor "done" is written.
    taken = await claimed(store)
    with pytest.raises(NotOwner):
        await store.save_responses(
            taken, [(None, response_event(taken))], owner="stalled", now=NOW, done=FINISHED
        )
    summary = await store.request_summary(taken)
    assert summary is not None
    assert not summary.done
    assert await store.responses_for(taken) == []
