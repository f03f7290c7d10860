"""InstanceRegistry contract: running instances, their leases, what they listen for."""

from __future__ import annotations

from dataclasses import replace

from nwcd.ports import InstanceRecord, Store
from tests.store.helpers import NOW


def instance(name: str, started_at: int, lease: int = 30, version: int = 0) -> InstanceRecord:
    return InstanceRecord(
        instance_id=name,
        started_at=started_at,
        heartbeat_at=started_at,
        lease_expires_at=started_at + lease,
        listening_version=version,
    )


async def test_no_instances_at_first(store: Store) -> None:
    assert await store.live_instances(NOW) == []


async def test_live_instances_are_ordered_by_start(store: Store) -> None:
    late, early, middle = instance("a", NOW + 2), instance("b", NOW), instance("c", NOW + 1)
    for record in (late, early, middle):
        await store.heartbeat(record)
    assert await store.live_instances(NOW + 2) == [early, middle, late]


async def test_live_instances_are_those_whose_lease_runs_past_now(store: Store) -> None:
    short = instance("short", NOW, lease=10)
    long = instance("long", NOW + 1, lease=60)
    await store.heartbeat(short)
    await store.heartbeat(long)
    assert await store.live_instances(NOW + 9) == [short, long]
    assert await store.live_instances(NOW + 10) == [long]  # expired at its expiry time
    assert await store.live_instances(NOW + 61) == []
    # Expired is not gone: an instance that beats again is live again.
    renewed = replace(short, heartbeat_at=NOW + 70, lease_expires_at=NOW + 100)
    await store.heartbeat(renewed)
    assert await store.live_instances(NOW + 71) == [renewed]


async def test_heartbeat_renews_the_lease_and_listening_version(store: Store) -> None:
    first = instance("one", NOW, lease=30, version=3)
    await store.heartbeat(first)
    renewed = replace(first, heartbeat_at=NOW + 20, lease_expires_at=NOW + 50, listening_version=4)
    await store.heartbeat(renewed)
    assert await store.live_instances(NOW) == [renewed]  # one row per instance
    assert await store.live_instances(NOW + 40) == [renewed]


async def test_retire_removes_an_instance(store: Store) -> None:
    one, two = instance("one", NOW), instance("two", NOW + 1)
    await store.heartbeat(one)
    await store.heartbeat(two)
    await store.retire("one")
    assert await store.live_instances(NOW) == [two]
    await store.retire("one")  # twice: harmless
    await store.retire("never-seen")
    assert await store.live_instances(NOW) == [two]
    await store.heartbeat(one)  # a retired id may register again
    assert await store.live_instances(NOW) == [one, two]
