"""InstanceRegistry contract: running instances, their leases, what they listen for, and
the work of the ones that stopped (``take_over``)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from nwcd.ports import Claim, NotOwner, Orphans, PaymentState, Reserved, Store
from tests.store.conftest import SharedStores
from tests.store.helpers import (
    FINISHED,
    NOW,
    OWNER,
    WALLET,
    claimed,
    instance,
    intent,
    request_record,
    reserve,
    response_event,
    unfinished_by_id,
)

# -- registry -----------------------------------------------------------------------------------


async def test_no_instances_at_first(store: Store) -> None:
    assert await store.live_instances(NOW) == []


async def test_live_instances_are_ordered_by_start(store: Store) -> None:
    late, early, middle = instance("a", NOW + 2), instance("b", NOW), instance("c", NOW + 1)
    for record in (late, early, middle):
        await store.register(record)
    assert await store.live_instances(NOW + 2) == [early, middle, late]


async def test_live_instances_are_those_whose_lease_runs_past_now(store: Store) -> None:
    short = instance("short", NOW, lease=10)
    long = instance("long", NOW + 1, lease=60)
    await store.register(short)
    await store.register(long)
    assert await store.live_instances(NOW + 9) == [short, long]
    assert await store.live_instances(NOW + 10) == [long]  # expired at its expiry time
    assert await store.live_instances(NOW + 61) == []
    # Expired is not gone (until someone takes its work over): a beat makes it live again.
    renewed = replace(short, heartbeat_at=NOW + 70, lease_expires_at=NOW + 100)
    assert await store.heartbeat(renewed) is True
    assert await store.live_instances(NOW + 71) == [renewed]


async def test_heartbeat_renews_the_lease_and_listening_version(store: Store) -> None:
    first = instance("one", NOW, lease=30, version=3)
    await store.register(first)
    renewed = replace(first, heartbeat_at=NOW + 20, lease_expires_at=NOW + 50, listening_version=4)
    assert await store.heartbeat(renewed) is True
    assert await store.live_instances(NOW) == [renewed]  # one row per instance
    assert await store.live_instances(NOW + 40) == [renewed]


async def test_heartbeat_does_not_change_when_an_instance_started(store: Store) -> None:
    first = instance("one", NOW)
    await store.register(first)
    assert await store.heartbeat(replace(first, started_at=NOW + 5, heartbeat_at=NOW + 6))
    [loaded] = await store.live_instances(NOW + 6)
    assert (loaded.started_at, loaded.heartbeat_at) == (NOW, NOW + 6)


async def test_heartbeat_of_an_unregistered_instance_is_false(store: Store) -> None:
    assert await store.heartbeat(instance("never-registered", NOW)) is False
    assert await store.live_instances(NOW) == []  # a beat does not register


async def test_retire_removes_an_instance(store: Store) -> None:
    one, two = instance("one", NOW), instance("two", NOW + 1)
    await store.register(one)
    await store.register(two)
    await store.retire("one")
    assert await store.live_instances(NOW) == [two]
    assert await store.heartbeat(one) is False  # gone: it must stop
    await store.retire("one")  # twice: harmless
    await store.retire("never-seen")
    assert await store.live_instances(NOW) == [two]
    await store.register(one)  # a retired id may register again
    assert await store.live_instances(NOW) == [one, two]
    assert await store.heartbeat(one) is True


async def test_registering_an_id_twice_fails(store: Store) -> None:
    first = instance("twin", NOW)
    await store.register(first)
    with pytest.raises(Exception):  # noqa: B017, PT011 (the adapter's integrity error)
        await store.register(replace(first, started_at=NOW + 1, heartbeat_at=NOW + 1))
    assert await store.live_instances(NOW) == [first]  # the first one is kept


# -- take_over ----------------------------------------------------------------------------------


async def _work_of_every_kind(store: Store, owner: str) -> dict[str, object]:
    """Requests of ``owner`` with each kind of open work, and one with none left."""
    bare = await claimed(store, owner=owner)
    started = await claimed(store, owner=owner)
    [payment] = await store.reserve(
        started, WALLET, [intent(0)], owner=owner, budget_msat=None, window_start=0, now=NOW
    )
    assert isinstance(payment, Reserved)
    item_one = response_event(started, "one")
    await store.save_responses(started, [(1, item_one)], owner=owner, now=NOW)
    # Done, its response never published: only the delivery is left.
    delivered_late = await claimed(store, owner=owner)
    late = response_event(delivered_late, "late")
    await store.save_responses(delivered_late, [(None, late)], owner=owner, now=NOW + 1)
    await store.mark_done(delivered_late, FINISHED)
    # Done and published: nothing left.
    finished = await claimed(store, owner=owner)
    published = response_event(finished, "published")
    await store.save_responses(finished, [(None, published)], owner=owner, now=NOW)
    await store.mark_published([published.id])
    await store.mark_done(finished, FINISHED)
    return {
        "bare": bare,
        "started": started,
        "payment": payment.payment_id,
        "item_one": item_one,
        "delivered_late": delivered_late,
        "late": late,
        "finished": finished,
    }


async def test_take_over_adopts_the_work_of_an_expired_instance(store: Store) -> None:
    dead = instance("dead", NOW - 100, lease=30)
    await store.register(dead)
    work = await _work_of_every_kind(store, "dead")
    heir = instance("heir", NOW)
    await store.register(heir)

    orphans = await store.take_over("heir", NOW)

    assert orphans
    assert orphans.unanswered == [await store.request(str(work["bare"]))]
    unfinished = unfinished_by_id(orphans)
    assert set(unfinished) == {work["started"]}  # done requests are not unfinished
    assert unfinished[str(work["started"])] == (await store.request(str(work["started"])), {0, 1})
    assert [p.id for p in orphans.unresolved] == [work["payment"]]
    assert orphans.unresolved[0].state is PaymentState.RESERVED
    assert orphans.undelivered == [work["item_one"], work["late"]]  # oldest first
    # The adopted requests belong to the heir now; the finished one stayed where it was.
    for key in ("bare", "started", "delivered_late"):
        record = await store.request(str(work[key]))
        assert record is not None
        assert await store.claim(record, "late-comer") == Claim(False, "heir", NOW)
    finished = await store.request(str(work["finished"]))
    assert finished is not None
    assert await store.claim(finished, "late-comer") == Claim(False, "dead", NOW)
    # The dead instance is retired: gone from the registry, and its next beat says so.
    assert [i.instance_id for i in await store.live_instances(NOW - 90)] == ["heir"]
    assert [i.instance_id for i in await store.live_instances(NOW)] == ["heir"]
    beat = replace(dead, heartbeat_at=NOW, lease_expires_at=NOW + 30)
    assert await store.heartbeat(beat) is False
    # Nothing is left for a second take-over, by the heir or anyone else.
    assert not await store.take_over("heir", NOW)
    await store.register(instance("another", NOW))
    assert await store.take_over("another", NOW) == Orphans()


async def test_an_expired_lease_is_dead_at_its_expiry_time(store: Store) -> None:
    await store.register(instance("short", NOW, lease=10))
    request_id = await claimed(store, owner="short")
    await store.register(instance("heir", NOW, lease=60))
    assert not await store.take_over("heir", NOW + 9)  # still live
    assert [r.event_id for r in (await store.take_over("heir", NOW + 10)).unanswered] == [
        request_id
    ]


async def test_take_over_adopts_the_work_of_owners_never_registered(store: Store) -> None:
    request_id = await claimed(store, owner="no-such-instance")
    await store.register(instance("heir", NOW))
    orphans = await store.take_over("heir", NOW)
    assert [r.event_id for r in orphans.unanswered] == [request_id]


async def test_take_over_leaves_live_instances_alone(store: Store) -> None:
    alive = instance("alive", NOW, lease=30)
    await store.register(alive)
    work = await _work_of_every_kind(store, "alive")
    await store.register(instance("heir", NOW))
    assert await store.take_over("heir", NOW + 29) == Orphans()
    assert await store.heartbeat(replace(alive, heartbeat_at=NOW + 29)) is True
    record = await store.request(str(work["bare"]))
    assert record is not None
    assert (await store.claim(record, "x")).owner == "alive"


async def test_take_over_never_returns_the_takers_own_work(store: Store) -> None:
    await store.register(instance("me", NOW))
    await claimed(store, owner="me")
    assert await store.take_over("me", NOW) == Orphans()
    assert await store.take_over("me", NOW, everyone_else=True) == Orphans()


async def test_take_over_of_everyone_else_takes_live_instances_work_too(store: Store) -> None:
    alive = instance("alive", NOW, lease=300)
    await store.register(alive)
    await store.register(instance("dead", NOW - 100, lease=30))
    await store.register(instance("me", NOW))
    mine = await claimed(store, owner="me")
    of_alive = await claimed(store, owner="alive")
    of_dead = await claimed(store, owner="dead")
    first = await store.take_over("me", NOW)  # the dead one's only
    assert [r.event_id for r in first.unanswered] == [of_dead]
    of_alive_too = await claimed(store, owner="alive")

    orphans = await store.take_over("me", NOW, everyone_else=True)

    assert {r.event_id for r in orphans.unanswered} == {of_alive, of_alive_too}
    assert mine not in {r.event_id for r in orphans.unanswered}
    assert of_dead not in {r.event_id for r in orphans.unanswered}  # adopted before
    # The other instance is retired although its lease runs: its next beat tells it to stop.
    assert [i.instance_id for i in await store.live_instances(NOW)] == ["me"]
    assert await store.heartbeat(replace(alive, heartbeat_at=NOW + 1)) is False


async def test_take_over_retires_dead_instances_without_work(store: Store) -> None:
    idle = instance("idle", NOW - 100, lease=30)
    await store.register(idle)
    await store.register(instance("heir", NOW))
    assert await store.take_over("heir", NOW) == Orphans()
    assert await store.heartbeat(replace(idle, heartbeat_at=NOW)) is False


async def test_a_request_with_a_response_published_and_done_is_no_work(store: Store) -> None:
    finished = await claimed(store)
    event = response_event(finished)
    await store.save_responses(finished, [(None, event)], owner=OWNER, now=NOW)
    await store.mark_done(finished, FINISHED)
    # Done, not published: the delivery is left.
    assert (await store.take_over("first", NOW)).undelivered == [event]
    await store.mark_published([event.id])
    assert await store.take_over("second", NOW) == Orphans()


async def test_an_unresolved_payment_is_taken_over_even_if_its_request_is_done(
    store: Store,
) -> None:
    # Reachable: after a take-over, recovery resumes a still pending payment in the
    # background, then pipeline.finish() finds every item handled and marks the request
    # done; if that instance dies before the payment resolves, nobody resolves it.
    [payment] = await reserve(store, [intent(0)])
    assert isinstance(payment, Reserved)
    assert await store.settle(payment.payment_id, PaymentState.UNKNOWN, now=NOW)
    record = await store.payment(payment.payment_id)
    assert record is not None
    await store.mark_done(record.request_id, FINISHED)
    orphans = await store.take_over("heir", NOW)
    assert [p.id for p in orphans.unresolved] == [payment.payment_id]


async def test_an_empty_store_has_no_orphans(store: Store) -> None:
    orphans = await store.take_over("me", NOW, everyone_else=True)
    assert orphans == Orphans()
    assert not orphans


# -- several stores on one database -------------------------------------------------------------


async def test_concurrent_take_overs_share_the_work_out(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    async with shared_stores(tmp_path, 4) as stores:
        await stores[0].register(instance("dead", NOW - 100, lease=30))
        requests = [await claimed(stores[0], owner="dead") for _ in range(50)]
        heirs = [f"heir{i}" for i in range(len(stores))]
        for store, heir in zip(stores, heirs, strict=True):
            await store.register(instance(heir, NOW))  # live: no heir adopts another's work

        taken = await asyncio.gather(
            *(store.take_over(heir, NOW) for store, heir in zip(stores, heirs, strict=True))
        )

        adopted = [{r.event_id for r in orphans.unanswered} for orphans in taken]
        assert set().union(*adopted) == set(requests)
        assert sum(len(ids) for ids in adopted) == len(requests)  # pairwise disjoint
        for orphans in taken:
            assert (orphans.unfinished, orphans.unresolved, orphans.undelivered) == ([], [], [])
        # Each request now belongs to the heir that got it.
        for heir, ids in zip(heirs, adopted, strict=True):
            for event_id in ids:
                record = await stores[0].request(event_id)
                assert record is not None
                assert (await stores[1].claim(record, "x")).owner == heir
        await stores[3].register(instance("late", NOW))
        assert await stores[3].take_over("late", NOW) == Orphans()


async def test_a_claim_after_take_over_is_refused_to_the_old_owner(store: Store) -> None:
    await store.register(instance("dead", NOW - 100, lease=30))
    record = request_record()
    assert (await store.claim(record, "dead")).won
    await store.register(instance("heir", NOW))
    assert await store.take_over("heir", NOW)
    assert await store.claim(record, "dead") == Claim(False, "heir", NOW)


async def test_a_stalled_instance_cannot_reserve_what_was_taken_over(store: Store) -> None:
    # Its lease expired (it stalled), another instance took its requests: when it wakes up
    # it must pay nothing of them (a keysend's fresh preimage would be a second payment).
    request_id = await claimed(store, owner="stalled")
    await store.take_over("heir", NOW)
    with pytest.raises(NotOwner):
        await store.reserve(
            request_id, WALLET, [intent(0)], owner="stalled",
            budget_msat=None, window_start=0, now=NOW,
        )  # fmt: skip
    [reserved] = await store.reserve(
        request_id, WALLET, [intent(0)], owner="heir", budget_msat=None, window_start=0, now=NOW
    )
    assert isinstance(reserved, Reserved)


async def test_a_stalled_instance_cannot_answer_what_was_taken_from_it(store: Store) -> None:
    # Its denials would otherwise go out next to the heir's answers: two answers for an item.
    request_id = await claimed(store, owner="stalled")
    await store.take_over("heir", NOW)
    stale = response_event(request_id, "stale")
    with pytest.raises(NotOwner):
        await store.save_responses(request_id, [(0, stale)], owner="stalled", now=NOW)
    with pytest.raises(NotOwner):
        await store.save_responses("ff" * 32, [(None, stale)], owner="stalled", now=NOW)
    assert await store.responses_for(request_id) == []
    heirs = response_event(request_id, "heir's")
    await store.save_responses(request_id, [(0, heirs)], owner="heir", now=NOW)
    assert await store.responses_for(request_id) == [heirs]


async def test_a_fenced_reservation_is_never_sent(store: Store) -> None:
    [kept, flying] = await reserve(store, [intent(0), intent(1)])
    assert isinstance(kept, Reserved)
    assert isinstance(flying, Reserved)
    assert await store.mark_in_flight([flying.payment_id], NOW) == {flying.payment_id}
    # Fencing moves only a reservation nobody started to send.
    assert await store.fence(kept.payment_id, NOW)
    assert not await store.fence(kept.payment_id, NOW)
    assert not await store.fence(flying.payment_id, NOW)
    assert await store.mark_in_flight([kept.payment_id], NOW) == set()  # never sent now
    fenced = await store.payment(kept.payment_id)
    assert fenced is not None
    assert fenced.state is PaymentState.UNKNOWN
