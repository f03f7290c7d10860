"""ActivityLog contract: what finished requests are recorded as, newest first, across
instances, and a batch's items in their live state (the operator's activity page)."""

from __future__ import annotations

from pathlib import Path

from nwcd.ports import OK, PaymentState, RequestOutcome, RequestSummary, Reserved, Store
from tests.store.conftest import SharedStores
from tests.store.helpers import (
    FINISHED,
    NOW,
    OTHER_WALLET,
    OWNER,
    WALLET,
    claimed,
    connection,
    intent,
    reserve,
    response_event,
)

BATCH = RequestOutcome(
    method="multi_pay_invoice",
    outcome=OK,
    finished_at=NOW + 2,
    amount_msat=3_000,
    items=2,
    latency_ms=12.6,
)


async def test_a_finished_request_is_listed_with_what_it_finished_as(store: Store) -> None:
    shop = connection("shop")
    await store.add_connection(shop)
    request_id = await claimed(store, shop.wallet_pubkey, received_at=NOW)
    await store.mark_done(request_id, BATCH)
    assert await store.recent_requests(10) == [
        RequestSummary(
            request_id=request_id,
            wallet_pubkey=shop.wallet_pubkey,
            connection="shop",
            received_at=NOW,
            instance=OWNER,
            done=True,
            method="multi_pay_invoice",
            outcome=OK,
            amount_msat=3_000,
            items=2,
            latency_ms=13,  # whole milliseconds
            finished_at=NOW + 2,
        )
    ]


async def test_a_running_request_is_listed_without_an_outcome(store: Store) -> None:
    request_id = await claimed(store, WALLET, received_at=NOW, owner="instance-a")
    [running] = await store.recent_requests(10)
    assert running == RequestSummary(
        request_id=request_id,
        wallet_pubkey=WALLET,
        connection=None,  # no such connection in this store
        received_at=NOW,
        instance="instance-a",
        done=False,
    )


async def test_what_a_request_finished_as_is_kept_from_its_first_finish(store: Store) -> None:
    request_id = await claimed(store)
    unknown = RequestOutcome(method="pay_invoice", outcome=None, finished_at=NOW + 5)
    await store.mark_done(request_id, unknown)
    await store.mark_done(request_id, FINISHED)
    [summary] = await store.recent_requests(1)
    assert (summary.done, summary.method, summary.outcome, summary.finished_at) == (
        True,
        "pay_invoice",
        None,
        NOW + 5,
    )
    assert (summary.amount_msat, summary.items, summary.latency_ms) == (None, 0, None)
    await store.mark_done("ff" * 32, FINISHED)  # unknown: harmless


async def test_newest_first_and_pages_follow_the_cursor(store: Store) -> None:
    # Several per second: ties on received_at are ordered by id, and no page loses one.
    ids = [await claimed(store, received_at=NOW + n // 3) for n in range(10)]
    expected = sorted(ids, key=lambda i: (NOW + ids.index(i) // 3, i), reverse=True)
    assert [s.request_id for s in await store.recent_requests(100)] == expected
    assert [s.request_id for s in await store.recent_requests(4)] == expected[:4]
    pages: list[str] = []
    before = None
    while page := await store.recent_requests(3, before=before):
        pages += [s.request_id for s in page]
        before = page[-1].cursor
    assert pages == expected
    assert await store.recent_requests(0) == []


async def test_one_connection_s_requests(store: Store) -> None:
    mine = [await claimed(store, WALLET, received_at=NOW + n) for n in range(3)]
    theirs = await claimed(store, OTHER_WALLET, received_at=NOW + 1)
    listed = await store.recent_requests(10, wallet_pubkey=WALLET)
    assert [s.request_id for s in listed] == mine[::-1]
    [first] = await store.recent_requests(1, wallet_pubkey=WALLET, before=listed[0].cursor)
    assert first.request_id == mine[1]
    [other] = await store.recent_requests(10, wallet_pubkey=OTHER_WALLET)
    assert other.request_id == theirs
    assert await store.recent_requests(10, wallet_pubkey="00" * 32) == []


async def test_a_pruned_request_is_no_longer_listed(store: Store) -> None:
    old = await claimed(store, received_at=NOW - 100, created_at=NOW - 100)
    await store.save_responses(old, [(None, response_event(old))], owner=OWNER, now=NOW - 100)
    await store.mark_done(old, FINISHED)
    kept = await claimed(store, received_at=NOW)
    assert await store.prune(before=NOW - 10) == 1
    assert [s.request_id for s in await store.recent_requests(10)] == [kept]


async def test_a_batch_s_items_in_their_current_state(store: Store) -> None:
    intents = [intent(i, amount=1_000 * (i + 1)) for i in range(3)]
    results = await reserve(store, intents)
    reserved = [r for r in results if isinstance(r, Reserved)]
    assert len(reserved) == 3
    first = await store.payment(reserved[0].payment_id)
    assert first is not None
    request_id = first.request_id
    assert await store.mark_in_flight([reserved[1].payment_id], NOW)
    assert await store.settle(reserved[2].payment_id, PaymentState.SUCCEEDED, now=NOW, fee_msat=1)
    items = await store.request_items(request_id)
    assert [(p.intent.item_index, p.state) for p in items] == [
        (0, PaymentState.RESERVED),
        (1, PaymentState.IN_FLIGHT),
        (2, PaymentState.SUCCEEDED),
    ]
    assert [p.intent for p in items] == intents
    assert await store.settle(
        reserved[0].payment_id, PaymentState.FAILED, now=NOW + 1, error_code="PAYMENT_FAILED"
    )
    [now_failed, *_] = await store.request_items(request_id)
    assert (now_failed.state, now_failed.error_code) == (PaymentState.FAILED, "PAYMENT_FAILED")
    other = await claimed(store)
    assert await store.request_items(other) == []
    assert await store.request_items("ff" * 32) == []


async def test_every_instance_sees_the_requests_of_the_others(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    async with shared_stores(tmp_path, 2) as (first, second):
        one = await claimed(first, received_at=NOW, owner="instance-1")
        two = await claimed(second, received_at=NOW + 1, owner="instance-2")
        await second.mark_done(two, BATCH)
        for store in (first, second):
            listed = await store.recent_requests(10)
            assert [(s.request_id, s.instance, s.done) for s in listed] == [
                (two, "instance-2", True),
                (one, "instance-1", False),
            ]


async def test_one_request_by_its_id(store: Store) -> None:
    shop = connection("shop")
    await store.add_connection(shop)
    request_id = await claimed(store, shop.wallet_pubkey, received_at=NOW)
    assert await store.request_summary("f" * 64) is None
    running = await store.request_summary(request_id)
    assert running is not None
    assert not running.done
    assert running.connection == "shop"
    await store.mark_done(request_id, BATCH)
    assert await store.request_summary(request_id) == (await store.recent_requests(1))[0]
