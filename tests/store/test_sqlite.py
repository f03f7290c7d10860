"""The SQLite store: migrations, connections, exactly-once claims, budgets and responses."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import stat
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nwcd.errors import ErrorCode
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.authorize import Deny
from nwcd.policy.grants import BudgetPeriod, Connection
from nwcd.ports import PaymentIntent, PaymentRecord, PaymentState, RequestRecord
from nwcd.store.sqlite import SqliteStore

WALLET_KEY = SecretKey.generate()
WALLET = WALLET_KEY.public_key.hex
OTHER_WALLET = SecretKey.generate().public_key.hex
APP = "ab" * 32
NOW = 1_700_000_000
_ids = itertools.count()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "x.sqlite")
    yield opened
    await opened.close()


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


async def claimed(store: SqliteStore, wallet: str = WALLET) -> str:
    """A freshly claimed request id (payments and responses refer to one)."""
    event_id = hash_of(10**30 + next(_ids))
    record = RequestRecord(event_id, wallet, APP, "nip44_v2", "{}", NOW)
    assert await store.claim(record)
    return event_id


async def reserve(
    store: SqliteStore,
    intents: Sequence[PaymentIntent],
    *,
    budget: int | None = None,
    window_start: int = 0,
    now: int = NOW,
    wallet: str = WALLET,
) -> list[int | Deny]:
    request_id = await claimed(store, wallet)
    return await store.reserve(
        request_id, wallet, intents, budget_msat=budget, window_start=window_start, now=now
    )


async def reserve_one(
    store: SqliteStore,
    amount: int = 1000,
    fee_reserve: int = 100,
    *,
    budget: int | None = None,
    now: int = NOW,
) -> int:
    [result] = await reserve(
        store, [intent(amount=amount, reserve=fee_reserve)], budget=budget, now=now
    )
    assert isinstance(result, int)
    return result


async def stored(store: SqliteStore, payment_id: int) -> PaymentRecord:
    record = await store.payment(payment_id)
    assert record is not None
    return record


def response_event(request_id: str, content: str = "sealed") -> Event:
    return sign_event(
        WALLET_KEY,
        kind=23195,
        content=content,
        tags=[["p", APP], ["e", request_id]],
        created_at=NOW,
    )


# -- file, migrations ---------------------------------------------------------------------------


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


async def test_migrations_apply_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "x.sqlite"
    first = await SqliteStore.open(path)
    assert user_version(path) == 2
    conn = connection()
    await first.add_connection(conn)
    await first.close()

    second = await SqliteStore.open(path)
    try:
        assert user_version(path) == 2
        assert await second.connections_version() == 1
        [loaded] = await second.connections()
        assert loaded.name == conn.name
        assert loaded.wallet_pubkey == conn.wallet_pubkey
    finally:
        await second.close()


async def test_concurrent_opens_of_a_fresh_file(tmp_path: Path) -> None:
    # Regression: switching a new file to WAL raised "database is locked" while another
    # opener held a lock (SQLite does not call the busy handler for that switch).
    for attempt in range(40):
        path = tmp_path / f"fresh{attempt}.sqlite"
        stores = await asyncio.gather(*(SqliteStore.open(path) for _ in range(4)))
        try:
            assert user_version(path) == 2
            assert {await s.connections_version() for s in stores} == {0}
        finally:
            for s in stores:
                await s.close()


async def test_database_file_is_private(store: SqliteStore) -> None:
    await store.add_connection(connection())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    wal = store.path.with_name(store.path.name + "-wal")
    assert wal.exists()  # WAL mode: the secret sits here too until a checkpoint
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    closed = await SqliteStore.open(tmp_path / "x.sqlite")
    await closed.close()
    with pytest.raises(RuntimeError):
        await closed.connections()


# -- connections --------------------------------------------------------------------------------


async def test_add_and_list_connections_round_trip(store: SqliteStore) -> None:
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


async def test_save_connection_updates_and_bumps_version(store: SqliteStore) -> None:
    conn = connection()
    assert await store.connections_version() == 0
    await store.add_connection(conn)
    assert await store.connections_version() == 1
    changed = replace(conn, name="renamed", budget_msat=5, revoked_at=NOW, methods=frozenset())
    await store.save_connection(changed)
    assert await store.connections_version() == 2
    assert await store.connections() == [changed]


async def test_touch_does_not_bump_version(store: SqliteStore) -> None:
    conn = connection()
    await store.add_connection(conn)
    await store.touch_connection(conn.wallet_pubkey, NOW + 99)
    assert await store.connections_version() == 1
    [loaded] = await store.connections()
    assert loaded.last_used_at == NOW + 99


async def test_duplicate_name_is_a_value_error(store: SqliteStore) -> None:
    await store.add_connection(connection("twin"))
    with pytest.raises(ValueError, match="'twin' exists already"):
        await store.add_connection(connection("twin"))
    assert len(await store.connections()) == 1
    assert await store.connections_version() == 1  # the failed insert rolled back


# -- requests -----------------------------------------------------------------------------------


async def test_claim_is_idempotent(store: SqliteStore) -> None:
    record = RequestRecord("ee" * 32, WALLET, APP, "nip04", '{"id": "x"}', NOW)
    assert await store.claim(record) is True
    assert await store.claim(record) is False
    assert await store.claim(replace(record, received_at=NOW + 1)) is False
    assert await store.request(record.event_id) == record
    assert await store.request("ff" * 32) is None


async def test_unanswered_requests(store: SqliteStore) -> None:
    bare = await claimed(store)
    answered = await claimed(store)
    await store.save_responses(answered, [(None, response_event(answered))], now=NOW)
    with_payment = await claimed(store)
    await store.reserve(with_payment, WALLET, [intent()], budget_msat=None, window_start=0, now=NOW)
    assert [r.event_id for r in await store.unanswered_requests()] == [bare]


# -- reservations and budgets -------------------------------------------------------------------


async def test_reserve_without_budget_grants_everything(store: SqliteStore) -> None:
    results = await reserve(store, [intent(i, amount=10**12) for i in range(3)])
    assert all(isinstance(r, int) for r in results)
    assert len(set(results)) == 3


async def test_reserve_checks_each_item_in_order_against_the_running_total(
    store: SqliteStore,
) -> None:
    intents = [
        intent(0, 500, 100),  # 600: fits, used 600
        intent(1, 450, 50),  # 500: 1100 > 1000, denied
        intent(2, 350, 50),  # 400: exactly 1000, fits
        intent(3, 1, 0),  # 1: 1001, denied
    ]
    request_id = await claimed(store)
    results = await store.reserve(
        request_id, WALLET, intents, budget_msat=1000, window_start=0, now=NOW
    )
    assert isinstance(results[0], int)
    assert isinstance(results[2], int)
    for denied, remaining in ((results[1], 400), (results[3], 0)):
        assert isinstance(denied, Deny)
        assert denied.code is ErrorCode.QUOTA_EXCEEDED
        assert f"remaining budget of {remaining} msat" in denied.message
    payments = await store.payments_for(request_id)
    assert [p.intent.item_index for p in payments] == [0, 2]
    assert all(p.state is PaymentState.RESERVED for p in payments)
    assert [p.id for p in payments] == [results[0], results[2]]
    assert payments[0].intent == intents[0]
    assert await store.budget_used(WALLET, 0) == 1000


async def test_later_smaller_item_fits_after_a_denial(store: SqliteStore) -> None:
    await reserve_one(store, 700, 0, budget=1000)
    results = await reserve(store, [intent(0, 400, 0), intent(1, 300, 0)], budget=1000)
    assert isinstance(results[0], Deny)
    assert isinstance(results[1], int)


async def test_succeeded_counts_amount_plus_actual_fee(store: SqliteStore) -> None:
    payment = await reserve_one(store, 1000, 100)
    assert await store.budget_used(WALLET, 0) == 1100
    await store.settle(payment, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32, fee_msat=7)
    assert await store.budget_used(WALLET, 0) == 1007
    record = await store.payment(payment)
    assert record is not None
    assert (record.state, record.preimage, record.fee_msat) == (
        PaymentState.SUCCEEDED,
        "00" * 32,
        7,
    )


async def test_succeeded_without_fee_counts_the_amount(store: SqliteStore) -> None:
    payment = await reserve_one(store, 1000, 100)
    await store.settle(payment, PaymentState.SUCCEEDED, now=NOW, preimage="00" * 32)
    assert await store.budget_used(WALLET, 0) == 1000


async def test_failed_counts_nothing_and_frees_the_budget(store: SqliteStore) -> None:
    payment = await reserve_one(store, 900, 100, budget=1000)
    [denied] = await reserve(store, [intent(amount=1, reserve=0)], budget=1000)
    assert isinstance(denied, Deny)
    await store.settle(
        payment, PaymentState.FAILED, now=NOW, error_code="PAYMENT_FAILED", error_message="x"
    )
    assert await store.budget_used(WALLET, 0) == 0
    await reserve_one(store, 900, 100, budget=1000)
    record = await store.payment(payment)
    assert record is not None
    assert (record.error_code, record.error_message) == ("PAYMENT_FAILED", "x")


@pytest.mark.parametrize("state", [PaymentState.IN_FLIGHT, PaymentState.UNKNOWN])
async def test_unresolved_counts_amount_plus_reserve(
    store: SqliteStore, state: PaymentState
) -> None:
    payment = await reserve_one(store, 1000, 100)
    if state is PaymentState.IN_FLIGHT:
        await store.mark_in_flight([payment], NOW)
    else:
        await store.settle(payment, state, now=NOW)
    record = await store.payment(payment)
    assert record is not None
    assert record.state is state
    assert await store.budget_used(WALLET, 0) == 1100


async def test_window_start_excludes_older_payments(store: SqliteStore) -> None:
    await reserve_one(store, 800, 0, budget=1000, now=100)
    assert await store.budget_used(WALLET, 0) == 800
    assert await store.budget_used(WALLET, 101) == 0
    assert await store.budget_used(WALLET, 100) == 800  # the window start is inclusive
    # Last window's spend does not count in this one.
    results = await reserve(store, [intent(amount=900, reserve=0)], budget=1000, window_start=200)
    assert isinstance(results[0], int)
    results = await reserve(store, [intent(amount=900, reserve=0)], budget=1000, window_start=100)
    assert isinstance(results[0], Deny)


async def test_budgets_are_per_wallet(store: SqliteStore) -> None:
    await reserve_one(store, 1000, 0, budget=1000)
    [other] = await reserve(
        store, [intent(amount=1000, reserve=0)], budget=1000, wallet=OTHER_WALLET
    )
    assert isinstance(other, int)
    assert await store.budget_used(WALLET, 0) == 1000
    assert await store.budget_used(OTHER_WALLET, 0) == 1000


async def test_mark_in_flight_only_moves_reserved_payments(store: SqliteStore) -> None:
    done = await reserve_one(store)
    waiting = await reserve_one(store)
    await store.settle(done, PaymentState.SUCCEEDED, now=NOW, preimage="aa" * 32, fee_msat=0)
    await store.mark_in_flight([done, waiting], NOW + 1)
    states = {p: (await stored(store, p)).state for p in (done, waiting)}
    assert states == {done: PaymentState.SUCCEEDED, waiting: PaymentState.IN_FLIGHT}
    assert await store.payment(10**9) is None


async def test_unresolved_payments(store: SqliteStore) -> None:
    reserved = await reserve_one(store)
    in_flight = await reserve_one(store)
    unknown = await reserve_one(store)
    succeeded = await reserve_one(store)
    failed = await reserve_one(store)
    await store.mark_in_flight([in_flight], NOW)
    await store.settle(unknown, PaymentState.UNKNOWN, now=NOW)
    await store.settle(succeeded, PaymentState.SUCCEEDED, now=NOW, preimage="aa" * 32, fee_msat=0)
    await store.settle(failed, PaymentState.FAILED, now=NOW)
    unresolved = await store.unresolved_payments()
    assert [p.id for p in unresolved] == [reserved, in_flight, unknown]


# -- settling with a response -------------------------------------------------------------------


async def test_settle_stores_the_response(store: SqliteStore) -> None:
    request_id = await claimed(store)
    [payment] = await store.reserve(
        request_id, WALLET, [intent(3)], budget_msat=None, window_start=0, now=NOW
    )
    assert isinstance(payment, int)
    event = response_event(request_id)
    await store.settle(
        payment,
        PaymentState.SUCCEEDED,
        now=NOW,
        preimage="bb" * 32,
        fee_msat=1,
        response=(request_id, 3, event),
    )
    assert await store.responses_for(request_id) == [event]
    assert await store.answered_items(request_id) == {3}
    assert (await stored(store, payment)).state is PaymentState.SUCCEEDED


async def test_settle_is_atomic_with_its_response(store: SqliteStore) -> None:
    payment = await reserve_one(store)
    unclaimed = "cc" * 32  # violates the responses -> requests foreign key
    with pytest.raises(sqlite3.IntegrityError):
        await store.settle(
            payment,
            PaymentState.SUCCEEDED,
            now=NOW,
            preimage="bb" * 32,
            fee_msat=1,
            response=(unclaimed, 0, response_event(unclaimed)),
        )
    record = await store.payment(payment)
    assert record is not None
    assert record.state is PaymentState.RESERVED
    assert record.preimage is None
    assert await store.responses_for(unclaimed) == []


async def test_save_responses_keeps_order_and_ignores_duplicates(store: SqliteStore) -> None:
    request_id = await claimed(store)
    first, second = response_event(request_id, "one"), response_event(request_id, "two")
    await store.save_responses(request_id, [(0, first), (1, second)], now=NOW)
    await store.save_responses(request_id, [(0, first)], now=NOW + 1)
    assert await store.responses_for(request_id) == [first, second]
    assert await store.answered_items(request_id) == {0, 1}
    assert await store.responses_for(await claimed(store)) == []


async def test_whole_request_response_has_no_item(store: SqliteStore) -> None:
    request_id = await claimed(store)
    await store.save_responses(request_id, [(None, response_event(request_id))], now=NOW)
    assert await store.answered_items(request_id) == {None}


# -- lookups by payment hash --------------------------------------------------------------------


async def test_one_live_payment_per_hash(store: SqliteStore) -> None:
    h_paid, h_open, h_failed, h_missing = (hash_of(10**40 + i) for i in range(4))
    [paid] = await reserve(store, [intent(payment_hash=h_paid)])
    [first_open] = await reserve(store, [intent(payment_hash=h_open)])
    [failed] = await reserve(store, [intent(payment_hash=h_failed)])
    # A second live payment of a hash is refused: same connection (ask again) or another.
    [again] = await reserve(store, [intent(payment_hash=h_open)])
    assert isinstance(again, Deny)
    assert again.code is ErrorCode.OTHER
    [other] = await reserve(store, [intent(payment_hash=h_paid)], wallet=OTHER_WALLET)
    assert isinstance(other, Deny)
    assert other.code is ErrorCode.PAYMENT_FAILED
    assert isinstance(paid, int)
    assert isinstance(failed, int)
    assert await store.settle(paid, PaymentState.SUCCEEDED, now=NOW, preimage="dd" * 32, fee_msat=2)
    assert await store.settle(failed, PaymentState.FAILED, now=NOW)
    # Settling twice does nothing the second time.
    assert not await store.settle(failed, PaymentState.SUCCEEDED, now=NOW, preimage="ee" * 32)
    # A failed payment frees its hash for a new attempt.
    [retry] = await reserve(store, [intent(payment_hash=h_failed)])
    assert isinstance(retry, int)
    await store.settle(retry, PaymentState.FAILED, now=NOW)

    found = await store.payments_by_hashes(WALLET, [h_paid, h_open, h_failed, h_missing, h_paid])
    assert set(found) == {h_paid, h_open}
    assert found[h_paid].id == paid
    assert found[h_paid].preimage == "dd" * 32
    assert found[h_open].id == first_open
    assert found[h_paid].wallet_pubkey == WALLET

    best = await store.payment_by_hash(WALLET, h_paid)
    assert best is not None
    assert best.id == paid
    open_best = await store.payment_by_hash(WALLET, h_open)
    assert open_best is not None
    assert open_best.id == first_open
    assert await store.payment_by_hash(WALLET, h_failed) is None
    assert await store.payment_by_hash(WALLET, h_missing) is None
    assert retry not in (paid, failed)


async def test_payments_by_hashes_handles_many_hashes(store: SqliteStore) -> None:
    hashes = [hash_of(10**50 + i) for i in range(1200)]
    request_id = await claimed(store)
    await store.reserve(
        request_id,
        WALLET,
        [intent(i, payment_hash=h) for i, h in enumerate(hashes[::100])],
        budget_msat=None,
        window_start=0,
        now=NOW,
    )
    found = await store.payments_by_hashes(WALLET, hashes)
    assert set(found) == set(hashes[::100])


# -- invoices -----------------------------------------------------------------------------------


async def test_invoice_ownership(store: SqliteStore) -> None:
    made, paid, foreign = hash_of(1), hash_of(2), hash_of(3)
    await store.add_invoice(made, WALLET, NOW)
    await store.add_invoice(made, OTHER_WALLET, NOW)  # the first owner keeps it
    await store.add_invoice(foreign, OTHER_WALLET, NOW)
    await reserve(store, [intent(payment_hash=paid)])
    assert await store.invoice_owner(made) == WALLET
    assert await store.invoice_owner(foreign) == OTHER_WALLET
    assert await store.invoice_owner(paid) is None
    assert await store.owned_hashes(WALLET) == {made, paid}
    assert await store.owned_hashes(OTHER_WALLET) == {foreign}
    assert await store.owned_hashes(hash_of(9)) == set()


# -- two stores on one file ---------------------------------------------------------------------


async def test_two_stores_never_overspend_together(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    a = await SqliteStore.open(path)
    b = await SqliteStore.open(path)
    try:
        budget = 50_000

        async def one(s: SqliteStore) -> int | Deny:
            [result] = await reserve(s, [intent(amount=900, reserve=100)], budget=budget)
            return result

        results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(120)))
        granted = [r for r in results if isinstance(r, int)]
        assert len(granted) == 50
        assert len(set(granted)) == 50
        assert all(r.code is ErrorCode.QUOTA_EXCEEDED for r in results if isinstance(r, Deny))
        assert await a.budget_used(WALLET, 0) == budget
        assert await b.budget_used(WALLET, 0) == budget
    finally:
        await a.close()
        await b.close()


@dataclass
class Open:
    """A payment the model still counts as ``amount + reserve``."""

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
def test_concurrent_stores_respect_the_budget(budget: int, ops: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run_budget_scenario(Path(folder) / "shared.sqlite", budget, ops))


async def _run_budget_scenario(path: Path, budget: int, ops: list[tuple[str, object]]) -> None:
    stores = [await SqliteStore.open(path)]
    stores.append(await SqliteStore.open(path))
    open_payments: dict[int, Open] = {}
    spent = 0  # succeeded: amount + actual fee

    async def used() -> int:
        views = {await s.budget_used(WALLET, 0) for s in stores}
        assert len(views) == 1  # both stores see the same committed state
        return views.pop()

    def model() -> int:
        return spent + sum(p.amount + p.reserve for p in open_payments.values())

    try:
        for kind, arg in ops:
            before = await used()
            if kind == "reserve":
                calls: list[tuple[int, list[tuple[int, int]]]] = arg  # type: ignore[assignment]
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
                        cost = item.amount_msat + item.fee_reserve_msat
                        if isinstance(result, int):
                            granted_cost += cost
                            open_payments[result] = Open(item.amount_msat, item.fee_reserve_msat)
                        else:
                            assert result.code is ErrorCode.QUOTA_EXCEEDED
                            # Denied only when it really did not fit.
                            assert after + cost > budget
                assert after == before + granted_cost
            else:
                which, pick, fee_draw = arg  # type: ignore[misc]
                if not open_payments:
                    continue
                payment_id = sorted(open_payments)[pick % len(open_payments)]
                payment = open_payments[payment_id]
                settle = stores[which].settle
                if kind == "succeed":
                    fee = fee_draw % (payment.reserve + 1)
                    await settle(
                        payment_id,
                        PaymentState.SUCCEEDED,
                        now=NOW,
                        preimage="00" * 32,
                        fee_msat=fee,
                    )
                    del open_payments[payment_id]
                    spent += payment.amount + fee
                elif kind == "fail":
                    await settle(payment_id, PaymentState.FAILED, now=NOW)
                    del open_payments[payment_id]
                    # The released reservation is available again, from either store.
                    again = await reserve(
                        stores[1 - which],
                        [intent(0, payment.amount, payment.reserve)],
                        budget=budget,
                    )
                    assert isinstance(again[0], int), again
                    open_payments[again[0]] = payment
                else:
                    await settle(payment_id, PaymentState.UNKNOWN, now=NOW)
            now_used = await used()
            assert now_used == model()
            assert now_used <= budget
    finally:
        for s in stores:
            await s.close()
