"""ConnectionStore contract: connections round-trip, names are unique, a version counts changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from nwcd.policy.grants import BudgetPeriod
from nwcd.ports import Store
from tests.store.conftest import SharedStores
from tests.store.helpers import NOW, connection


async def test_a_fresh_store_is_empty(store: Store) -> None:
    assert await store.connections() == []
    assert await store.connections_version() == 0


async def test_add_and_list_connections_round_trip(store: Store) -> None:
    full = connection(
        "full",
        created_at=NOW + 5,
        methods=frozenset({"pay_invoice", "get_info"}),
        max_amount_msat=50_000,
        budget_msat=1_000_000,
        budget_period=BudgetPeriod.WEEKLY,
        expires_at=NOW + 3600,
        lud16="me@example.com",
        revoked_at=NOW + 10,
        last_used_at=NOW + 1,
        relays=("wss://a.example", "wss://b.example"),
    )
    bare = connection("bare", created_at=NOW)
    await store.add_connection(full)
    await store.add_connection(bare)
    loaded = await store.connections()
    assert [c.name for c in loaded] == ["bare", "full"]  # by created_at, then name
    assert loaded[1] == full
    assert loaded[0] == bare
    assert loaded[0].methods is None
    assert loaded[0].wallet_key.reveal_hex() == bare.wallet_key.reveal_hex()


async def test_connections_with_one_created_at_are_ordered_by_name(store: Store) -> None:
    for name in ("b", "c", "a"):
        await store.add_connection(connection(name, created_at=NOW))
    assert [c.name for c in await store.connections()] == ["a", "b", "c"]


async def test_save_connection_updates_and_bumps_version(store: Store) -> None:
    conn = connection()
    assert await store.connections_version() == 0
    await store.add_connection(conn)
    assert await store.connections_version() == 1
    changed = replace(conn, name="renamed", budget_msat=5, revoked_at=NOW, methods=frozenset())
    await store.save_connection(changed)
    assert await store.connections_version() == 2
    assert await store.connections() == [changed]


async def test_touch_does_not_bump_version(store: Store) -> None:
    conn = connection()
    await store.add_connection(conn)
    await store.touch_connection(conn.wallet_pubkey, NOW + 99)
    assert await store.connections_version() == 1
    [loaded] = await store.connections()
    assert loaded.last_used_at == NOW + 99


async def test_duplicate_name_is_a_value_error(store: Store) -> None:
    await store.add_connection(connection("twin"))
    with pytest.raises(ValueError, match="'twin' exists already"):
        await store.add_connection(connection("twin"))
    assert len(await store.connections()) == 1
    assert await store.connections_version() == 1  # the failed insert rolled back


async def test_renaming_to_a_taken_name_is_a_value_error(store: Store) -> None:
    first, second = connection("first"), connection("second", created_at=NOW + 1)
    await store.add_connection(first)
    await store.add_connection(second)
    with pytest.raises(ValueError, match="'first' exists already"):
        await store.save_connection(replace(second, name="first", budget_msat=1))
    assert await store.connections() == [first, second]
    assert await store.connections_version() == 2  # the failed update rolled back


async def test_a_failing_write_does_not_undo_concurrent_ones(store: Store) -> None:
    taken = connection("taken")
    await store.add_connection(taken)
    fresh = connection("fresh", created_at=NOW + 1)
    outcomes = await asyncio.gather(
        store.add_connection(connection("taken")),
        store.add_connection(fresh),
        store.touch_connection(taken.wallet_pubkey, NOW + 7),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], ValueError)
    assert list(outcomes[1:]) == [None, None]
    assert await store.connections() == [replace(taken, last_used_at=NOW + 7), fresh]
    assert await store.connections_version() == 2


# -- changes from any process -------------------------------------------------------------------

POLL = 0.05
SEEN_WITHIN = 2.0  # many poll intervals: the machine may be busy


@asynccontextmanager
async def watching(store: Store) -> AsyncIterator[AsyncIterator[int]]:
    """``store.connection_changes``, closed afterwards (the port promises only an
    ``AsyncIterator``; an async generator has ``aclose``)."""
    changes = store.connection_changes(POLL)
    try:
        yield changes
    finally:
        aclose = getattr(changes, "aclose", None)
        if aclose is not None:
            await aclose()


async def test_connection_changes_start_with_the_current_version(store: Store) -> None:
    await store.add_connection(connection("one"))
    await store.add_connection(connection("two", created_at=NOW + 1))
    async with watching(store) as changes, asyncio.timeout(SEEN_WITHIN):
        assert await anext(changes) == 2


async def test_connection_changes_of_a_fresh_store_start_at_zero(store: Store) -> None:
    async with watching(store) as changes, asyncio.timeout(SEEN_WITHIN):
        assert await anext(changes) == 0


async def test_connection_changes_wait_for_a_change(store: Store) -> None:
    async with watching(store) as changes:
        async with asyncio.timeout(SEEN_WITHIN):
            assert await anext(changes) == 0
        pending = asyncio.ensure_future(anext(changes))
        try:
            await asyncio.sleep(5 * POLL)
            assert not pending.done()  # nothing changed: nothing to say
            conn = connection()
            await store.add_connection(conn)
            async with asyncio.timeout(SEEN_WITHIN):
                assert await pending == 1
        finally:  # a failure above leaves it waiting: stop it before closing the iterator
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await store.touch_connection(conn.wallet_pubkey, NOW + 1)  # not a change
        await store.save_connection(replace(conn, budget_msat=7))
        async with asyncio.timeout(SEEN_WITHIN):
            assert await anext(changes) == 2


async def test_connection_changes_from_another_store_are_seen(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    async with shared_stores(tmp_path, 2) as (watcher, editor):
        await editor.add_connection(connection("before"))
        async with watching(watcher) as changes:
            async with asyncio.timeout(SEEN_WITHIN):
                assert await anext(changes) == 1
            first = connection("first", created_at=NOW + 1)
            await editor.add_connection(first)
            async with asyncio.timeout(SEEN_WITHIN):
                assert await anext(changes) == 2
            await editor.save_connection(replace(first, revoked_at=NOW + 2))
            async with asyncio.timeout(SEEN_WITHIN):
                assert await anext(changes) == 3
            assert [c.name for c in await watcher.connections()] == ["before", "first"]
