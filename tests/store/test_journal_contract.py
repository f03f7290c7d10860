"""RequestJournal contract: exactly-once claims, stored responses (the outbox) and pruning."""

from __future__ import annotations

from dataclasses import replace

from nwcd.nostr.event import Event
from nwcd.ports import PaymentState, Reserved, Store
from tests.store.helpers import (
    APP,
    NOW,
    WALLET,
    claimed,
    intent,
    request_record,
    response_event,
)

# -- claims -------------------------------------------------------------------------------------


async def test_claim_is_idempotent(store: Store) -> None:
    record = request_record(received_at=NOW, created_at=NOW - 30)
    record = replace(record, scheme="nip04", event_json='{"id": "x"}')
    assert await store.claim(record) is True
    assert await store.claim(record) is False
    assert await store.claim(replace(record, received_at=NOW + 1)) is False
    assert await store.claim(replace(record, created_at=NOW + 1)) is False
    assert await store.request(record.event_id) == record  # the first claim is kept
    assert await store.request("ff" * 32) is None


async def test_request_keeps_the_events_own_created_at(store: Store) -> None:
    record = request_record(received_at=NOW, created_at=NOW - 3600)
    assert await store.claim(record)
    loaded = await store.request(record.event_id)
    assert loaded is not None
    assert (loaded.received_at, loaded.created_at) == (NOW, NOW - 3600)
    assert (loaded.wallet_pubkey, loaded.app_pubkey) == (WALLET, APP)


async def test_unanswered_requests(store: Store) -> None:
    bare = await claimed(store)
    answered = await claimed(store)
    await store.save_responses(answered, [(None, response_event(answered))], now=NOW)
    with_payment = await claimed(store)
    await store.reserve(with_payment, WALLET, [intent()], budget_msat=None, window_start=0, now=NOW)
    unanswered = await store.unanswered_requests()
    assert [r.event_id for r in unanswered] == [bare]
    assert unanswered == [await store.request(bare)]


async def test_unfinished_requests_list_handled_items_until_done(store: Store) -> None:
    bare = await claimed(store)
    started = await claimed(store)
    reserved = await store.reserve(
        started, WALLET, [intent(0), intent(2)], budget_msat=None, window_start=0, now=NOW
    )
    assert all(isinstance(r, Reserved) for r in reserved)
    await store.save_responses(
        started,
        [(1, response_event(started, "one")), (None, response_event(started, "all"))],
        now=NOW,
    )
    answered = await claimed(store)
    await store.save_responses(answered, [(None, response_event(answered))], now=NOW)

    unfinished = {
        record.event_id: (record, handled) for record, handled in await store.unfinished_requests()
    }
    assert set(unfinished) == {started, answered}  # never started: unanswered, not unfinished
    assert unfinished[started] == (await store.request(started), {0, 1, 2})
    assert unfinished[answered][1] == set()  # a whole-request response has no item
    assert [r.event_id for r in await store.unanswered_requests()] == [bare]

    await store.mark_done(started)
    assert [r.event_id for r, _ in await store.unfinished_requests()] == [answered]
    await store.mark_done(answered)
    await store.mark_done("ff" * 32)  # unknown: harmless
    assert await store.unfinished_requests() == []


# -- responses ----------------------------------------------------------------------------------


async def test_save_responses_keeps_order_and_ignores_duplicates(store: Store) -> None:
    request_id = await claimed(store)
    first, second = response_event(request_id, "one"), response_event(request_id, "two")
    await store.save_responses(request_id, [(0, first), (1, second)], now=NOW)
    await store.save_responses(request_id, [(0, first)], now=NOW + 1)
    assert await store.responses_for(request_id) == [first, second]
    assert await store.unpublished_responses() == [first, second]  # the duplicate is ignored
    [(_, handled)] = await store.unfinished_requests()
    assert handled == {0, 1}
    assert await store.responses_for(await claimed(store)) == []


async def test_whole_request_response_has_no_item(store: Store) -> None:
    request_id = await claimed(store)
    event = response_event(request_id)
    await store.save_responses(request_id, [(None, event)], now=NOW)
    assert await store.responses_for(request_id) == [event]
    [(record, handled)] = await store.unfinished_requests()
    assert record.event_id == request_id
    assert handled == set()
    assert await store.unanswered_requests() == []


async def test_unpublished_responses_oldest_first_until_marked_published(store: Store) -> None:
    a, b, c = [await claimed(store) for _ in range(3)]
    a_one, a_two = response_event(a, "a1"), response_event(a, "a2")
    c_one = response_event(c, "c1")
    await store.save_responses(a, [(0, a_one), (1, a_two)], now=NOW + 2)
    # A payment settled together with its response: stored unpublished too, and earlier.
    [payment] = await store.reserve(
        b, WALLET, [intent(0)], budget_msat=None, window_start=0, now=NOW
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
    await store.save_responses(c, [(None, c_one)], now=NOW + 3)
    assert await store.unpublished_responses() == [b_one, a_one, a_two, c_one]

    await store.mark_published([a_one.id, b_one.id])
    assert await store.unpublished_responses() == [a_two, c_one]
    # Published responses stay stored (a duplicate request is answered from them).
    assert await store.responses_for(a) == [a_one, a_two]
    assert await store.responses_for(b) == [b_one]

    # Saving a published response again does not queue it again.
    await store.save_responses(a, [(0, a_one)], now=NOW + 4)
    assert await store.unpublished_responses() == [a_two, c_one]

    await store.mark_published([a_two.id, c_one.id, a_one.id])
    assert await store.unpublished_responses() == []


async def test_mark_published_of_unknown_ids_is_harmless(store: Store) -> None:
    request_id = await claimed(store)
    event = response_event(request_id)
    await store.save_responses(request_id, [(None, event)], now=NOW)
    await store.mark_published([])
    await store.mark_published(["ff" * 32, "00" * 32])
    assert await store.unpublished_responses() == [event]
    await store.mark_published([event.id, "ff" * 32])
    assert await store.unpublished_responses() == []
    await store.mark_published([event.id])  # twice: harmless
    assert await store.unpublished_responses() == []
    assert await store.responses_for(request_id) == [event]


# -- pruning ------------------------------------------------------------------------------------


async def test_prune_forgets_old_requests_that_moved_no_money(store: Store) -> None:
    cut = NOW
    old = cut - 100

    responses: dict[str, Event] = {}

    async def with_response(*, received_at: int, created_at: int) -> str:
        request_id = await claimed(store, received_at=received_at, created_at=created_at)
        responses[request_id] = response_event(request_id)
        await store.save_responses(request_id, [(None, responses[request_id])], now=old)
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
            request_id, WALLET, [intent(0)], budget_msat=None, window_start=0, now=old
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
    assert await store.unpublished_responses() == [
        responses[r] for r in (received_late, created_late, new, with_failed_payment)
    ]
    assert [r.event_id for r in await store.unanswered_requests()] == []
    assert await store.payment(payments[0]) is not None
    assert await store.payment(payments[1]) is not None

    assert await store.prune(before=cut) == 0  # nothing left to prune


async def test_a_pruned_request_can_be_claimed_again(store: Store) -> None:
    record = request_record(received_at=NOW - 10, created_at=NOW - 10)
    assert await store.claim(record)
    await store.save_responses(record.event_id, [(None, response_event(record.event_id))], now=NOW)
    assert await store.prune(before=NOW) == 1
    again = replace(record, received_at=NOW + 1)
    assert await store.claim(again) is True
    assert await store.request(record.event_id) == again
    assert await store.responses_for(record.event_id) == []
    assert await store.unanswered_requests() == [again]


async def test_prune_of_an_empty_store_removes_nothing(store: Store) -> None:
    assert await store.prune(before=NOW) == 0
