"""What only the SQLite adapter has: its file, its migrations, its write batching.

Everything the ports promise is in the ``test_*_contract.py`` suites, which run on
this adapter too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest

from nwcd.nip47.info import PAYMENT_RECEIVED as RECEIVED
from nwcd.nostr.event import sign_event
from nwcd.ports import OK, Claim, Orphans, PaymentState, RequestOutcome, RequestRecord, Store
from nwcd.store import sql
from nwcd.store.sqlite import SqliteStore
from tests.store.helpers import (
    APP,
    NOW,
    OWNER,
    WALLET,
    WALLET_KEY,
    claimed,
    connection,
    hash_of,
    instance,
    open_work,
    request_record,
    reserve_one,
    response_event,
    stored,
)

LATEST_VERSION = 6


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "x.sqlite")
    yield opened
    await opened.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


# -- file, migrations ---------------------------------------------------------------------------


async def test_migrations_apply_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "x.sqlite"
    first = await SqliteStore.open(path)
    assert user_version(path) == LATEST_VERSION
    conn = connection()
    await first.add_connection(conn)
    await first.close()

    second = await SqliteStore.open(path)
    try:
        assert user_version(path) == LATEST_VERSION
        assert await second.connections_version() == 1
        [loaded] = await second.connections()
        assert loaded.name == conn.name
        assert loaded.wallet_pubkey == conn.wallet_pubkey
    finally:
        await second.close()


_MIGRATIONS = (
    "0001_init.sql",
    "0002_payment_hash_index.sql",
    "0003_outbox_retention_instances.sql",
    "0004_owners.sql",
    "0005_metadata.sql",
)


def _database_at_version(path: Path, version: int) -> None:
    """A file as an older nwcd left it: the first ``version`` migrations applied."""
    folder = resources.files("nwcd.store") / "migrations"
    db = sqlite3.connect(path)
    try:
        for name in _MIGRATIONS[:version]:
            db.executescript((folder / name).read_text())
        db.execute(f"PRAGMA user_version = {version}")
        db.commit()
    finally:
        db.close()


def _owner_column(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT event_id, owner FROM requests").fetchall())
    finally:
        db.close()


async def test_migration_3_keeps_data_stored_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _database_at_version(path, 2)
    request = sign_event(WALLET_KEY, kind=23194, content="ask", tags=[], created_at=NOW - 500)
    request_json = json.dumps(request.to_json())
    old_response = response_event(request.id)
    db = sqlite3.connect(path)
    try:
        db.execute(
            "INSERT INTO requests (event_id, wallet_pubkey, app_pubkey, scheme, event_json,"
            " received_at) VALUES (?,?,?,?,?,?)",
            (request.id, WALLET, APP, "nip44_v2", request_json, NOW - 10),
        )
        db.execute(
            "INSERT INTO responses (event_id, request_id, item_index, event_json, created_at)"
            " VALUES (?,?,?,?,?)",
            (old_response.id, request.id, None, json.dumps(old_response.to_json()), NOW - 10),
        )
        db.commit()
    finally:
        db.close()

    store = await SqliteStore.open(path)
    try:
        assert user_version(path) == LATEST_VERSION
        # The request's own created_at is read from the stored event.
        assert await store.request(request.id) == RequestRecord(
            request.id, WALLET, APP, "nip44_v2", request_json, NOW - 10, NOW - 500
        )
        # Responses stored before the outbox existed count as published.
        assert await store.responses_for(request.id) == [old_response]
        old_work = await open_work(store)
        assert old_work.undelivered == []
        # Not done, answered as a whole (it predates owners: nobody's): taken over and
        # marked done, nothing to finish.
        assert old_work.unfinished == []
        fresh = await claimed(store)
        new_response = response_event(fresh, "new")
        await store.save_responses(fresh, [(None, new_response)], owner=OWNER, now=NOW)
        assert (await open_work(store)).undelivered == [new_response]
        # Old enough on both clocks, and it moved no money: prunable.
        assert await store.prune(before=NOW - 9) == 1
        assert await store.request(request.id) is None
        assert await store.live_instances(NOW) == []
    finally:
        await store.close()


async def test_migration_4_old_requests_belong_to_nobody_until_the_first_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.sqlite"
    _database_at_version(path, 3)
    bare, paying, delivering, finished = (hash_of(10**60 + i) for i in range(4))
    unsent = response_event(delivering, "unsent")
    sent = response_event(finished, "sent")
    db = sqlite3.connect(path)
    try:
        for n, event_id in enumerate((bare, paying, delivering, finished)):
            db.execute(
                "INSERT INTO requests (event_id, wallet_pubkey, app_pubkey, scheme, event_json,"
                " received_at, created_at, done) VALUES (?,?,?,?,?,?,?,?)",
                (event_id, WALLET, APP, "nip44_v2", "{}", NOW - n, NOW - n, int(n >= 2)),
            )
        db.execute(
            "INSERT INTO payments (request_id, item_index, wallet_pubkey, result_type, d_tag,"
            " payment_hash, invoice, amount_msat, fee_reserve_msat, state, created_at, updated_at)"
            " VALUES (?,0,?,'pay_invoice',NULL,?,'lnbcrt1x',1000,100,'in_flight',?,?)",
            (paying, WALLET, hash_of(99), NOW, NOW),
        )
        for event, published in ((unsent, 0), (sent, 1)):
            db.execute(
                "INSERT INTO responses (event_id, request_id, item_index, event_json, created_at,"
                " published) VALUES (?,?,NULL,?,?,?)",
                (event.id, event.tags[1][1], json.dumps(event.to_json()), NOW, published),
            )
        db.execute(
            "INSERT INTO invoices (payment_hash, wallet_pubkey, created_at) VALUES (?,?,?)",
            (hash_of(98), WALLET, NOW),
        )
        db.execute("INSERT INTO instances VALUES ('old-serve', ?, ?, ?, 0)", (NOW, NOW, NOW + 600))
        db.commit()
    finally:
        db.close()

    store = await SqliteStore.open(path)
    try:
        assert user_version(path) == LATEST_VERSION
        # Old rows belong to nobody ('') and instances from before are forgotten.
        assert set(_owner_column(path).values()) == {""}
        assert await store.live_instances(NOW) == []
        record = await store.request(bare)
        assert record is not None
        assert await store.claim(record, "someone") == Claim(False, "", NOW)
        # An invoice from before was never notified.
        assert await store.claim_notification(hash_of(98), RECEIVED) is True
        assert await store.claim_notification(hash_of(98), RECEIVED) is False

        # The first start (one instance at a time: every other owner's work) takes them over.
        first = instance("first", NOW)
        await store.register(first)
        orphans = await store.take_over("first", NOW, everyone_else=not store.shared)
        assert [r.event_id for r in orphans.unanswered] == [bare]
        assert [(r.event_id, handled) for r, handled in orphans.unfinished] == [(paying, {0})]
        assert [(p.request_id, p.state) for p in orphans.unresolved] == [
            (paying, PaymentState.IN_FLIGHT)
        ]
        assert orphans.undelivered == [unsent]
        # Done and published: no work, so it stays nobody's.
        assert _owner_column(path) == {
            bare: "first",
            paying: "first",
            delivering: "first",
            finished: "",
        }
        assert await store.take_over("second", NOW) == Orphans()
    finally:
        await store.close()


async def test_migration_6_lists_requests_finished_before_it(tmp_path: Path) -> None:
    path = tmp_path / "v5.sqlite"
    _database_at_version(path, 5)
    finished, running = hash_of(10**61), hash_of(10**61 + 1)
    db = sqlite3.connect(path)
    try:
        for n, event_id in enumerate((finished, running)):
            db.execute(
                "INSERT INTO requests (event_id, wallet_pubkey, app_pubkey, scheme, event_json,"
                " received_at, created_at, done, owner) VALUES (?,?,?,?,?,?,?,?,'old')",
                (event_id, WALLET, APP, "nip44_v2", "{}", NOW + n, NOW + n, int(n == 0)),
            )
        db.commit()
    finally:
        db.close()
    store = await SqliteStore.open(path)
    try:
        assert user_version(path) == LATEST_VERSION
        # What it finished as was not recorded then; from now on it is.
        assert [(s.request_id, s.done, s.outcome) for s in await store.recent_requests(5)] == [
            (running, False, None),
            (finished, True, None),
        ]
        await store.mark_done(running, RequestOutcome("get_info", OK, NOW + 2))
        [now_done, _] = await store.recent_requests(5)
        assert (now_done.method, now_done.outcome, now_done.finished_at) == (
            "get_info",
            OK,
            NOW + 2,
        )
    finally:
        await store.close()


def test_recent_requests_are_read_through_an_index(tmp_path: Path) -> None:
    path = tmp_path / "plan.sqlite"
    asyncio.run(_created(path))
    db = sqlite3.connect(path)
    try:
        for wallet, before in (
            (None, None),
            (WALLET, None),
            (None, (NOW, "ab")),
            (WALLET, (1, "a")),
        ):
            query, args = sql.recent_requests(10, wallet, before)
            plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + query, args))
            assert "USING INDEX requests_recent" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of every request
    finally:
        db.close()


async def _created(path: Path) -> None:
    await (await SqliteStore.open(path)).close()


async def test_an_upgraded_file_is_not_migrated_again(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    _database_at_version(path, 3)
    for _ in range(2):
        store = await SqliteStore.open(path)
        try:
            assert user_version(path) == LATEST_VERSION
            await claimed(store, owner="serve")
        finally:
            await store.close()
    assert set(_owner_column(path).values()) == {"serve"}


async def test_sqlite_is_one_instance_at_a_time(sqlite_store: SqliteStore) -> None:
    assert SqliteStore.shared is False
    assert sqlite_store.shared is False
    store: Store = sqlite_store  # it implements the whole port
    assert store.shared is False


async def test_a_hash_is_live_once_even_written_around_reserve(sqlite_store: SqliteStore) -> None:
    # The unique index holds whatever writes the file, not only what reserve checks.
    payment = await reserve_one(sqlite_store)
    record = await stored(sqlite_store, payment.payment_id)
    db = sqlite3.connect(sqlite_store.path)
    try:
        insert = (
            "INSERT INTO payments (request_id, item_index, wallet_pubkey, result_type,"
            " payment_hash, amount_msat, fee_reserve_msat, state, created_at, updated_at)"
            " VALUES (?, 1, ?, 'pay_invoice', ?, 1, 0, ?, 0, 0)"
        )
        args = (record.request_id, WALLET, record.intent.payment_hash)
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(insert, (*args, "succeeded"))
        db.execute(insert, (*args, "failed"))  # failed ones do not hold the hash
        db.commit()
    finally:
        db.close()


async def test_concurrent_opens_of_a_fresh_file(tmp_path: Path) -> None:
    # Regression: switching a new file to WAL raised "database is locked" while another
    # opener held a lock (SQLite does not call the busy handler for that switch).
    for attempt in range(40):
        path = tmp_path / f"fresh{attempt}.sqlite"
        stores = await asyncio.gather(*(SqliteStore.open(path) for _ in range(4)))
        try:
            assert user_version(path) == LATEST_VERSION
            assert {await s.connections_version() for s in stores} == {0}
        finally:
            for s in stores:
                await s.close()


async def test_database_file_is_private(sqlite_store: SqliteStore) -> None:
    await sqlite_store.add_connection(connection())
    assert stat.S_IMODE(sqlite_store.path.stat().st_mode) == 0o600
    wal = sqlite_store.path.with_name(sqlite_store.path.name + "-wal")
    assert wal.exists()  # WAL mode: the secret sits here too until a checkpoint
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    closed = await SqliteStore.open(tmp_path / "x.sqlite")
    await closed.close()
    with pytest.raises(RuntimeError):
        await closed.connections()


# -- transactions -------------------------------------------------------------------------------


async def test_settle_is_atomic_with_its_response(sqlite_store: SqliteStore) -> None:
    payment = (await reserve_one(sqlite_store)).payment_id
    unclaimed = "cc" * 32  # violates the responses -> requests foreign key
    with pytest.raises(sqlite3.IntegrityError):
        await sqlite_store.settle(
            payment,
            PaymentState.SUCCEEDED,
            now=NOW,
            preimage="bb" * 32,
            fee_msat=1,
            response=(unclaimed, 0, response_event(unclaimed)),
        )
    record = await stored(sqlite_store, payment)
    assert record.state is PaymentState.RESERVED
    assert record.preimage is None
    assert await sqlite_store.responses_for(unclaimed) == []
    assert (await open_work(sqlite_store)).undelivered == []


async def test_writes_queued_together_commit_together_but_fail_alone(
    sqlite_store: SqliteStore,
) -> None:
    # Hold the store thread so the next writes queue up and are flushed as one batch.
    # (Reaches into the adapter's internals: this is its batching, not a port promise.)
    taken = connection("taken")
    await sqlite_store.add_connection(taken)
    release = threading.Event()
    busy = asyncio.wrap_future(sqlite_store._runner.submit(release.wait))
    record = request_record()
    writes = [
        asyncio.ensure_future(sqlite_store.claim(record, "first")),
        asyncio.ensure_future(sqlite_store.add_connection(connection("taken"))),
        asyncio.ensure_future(sqlite_store.touch_connection(taken.wallet_pubkey, NOW + 5)),
        asyncio.ensure_future(sqlite_store.claim(record, "second")),
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(sqlite_store._pending) == len(writes)  # one batch, not flushed yet
    release.set()
    await busy
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert outcomes[0] == Claim(True, "first", NOW)
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] is None
    # Sees the claim made earlier in the same batch.
    assert outcomes[3] == Claim(False, "first", NOW)
    assert await sqlite_store.request(record.event_id) == record
    [loaded] = await sqlite_store.connections()
    assert loaded.last_used_at == NOW + 5
    assert await sqlite_store.connections_version() == 1


async def test_a_write_waits_on_the_store_thread_while_another_process_holds_the_lock(
    sqlite_store: SqliteStore,
) -> None:
    # Inline calls never wait for a lock (busy timeout 0 on the loop): SQLITE_BUSY sends
    # the write to the store thread, where it waits; later calls keep their order.
    other = sqlite3.connect(sqlite_store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        record = request_record()
        claim = asyncio.ensure_future(sqlite_store.claim(record, "me"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not claim.done()  # neither refused nor blocking the loop: waiting
        assert not sqlite_store._runner.idle
        read = asyncio.ensure_future(sqlite_store.request(record.event_id))
        other.execute("COMMIT")
    finally:
        other.close()
    assert await claim == Claim(True, "me", NOW)
    assert await read == record  # queued behind the claim, so it sees it
    assert await sqlite_store.request(record.event_id) == record
