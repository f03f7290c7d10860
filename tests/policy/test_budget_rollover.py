"""Budget windows applied by the store, as time goes by: a hypothesis state machine.

The pure rules (:func:`window_start`, :func:`window_end`) meet the atomic ledger
(:meth:`SqliteStore.reserve`) the way the service uses them: two stores on one file
(``nwcd serve`` and another process) reserve concurrently, payments succeed (amount +
actual fee), fail (released) or stay unknown (still reserved), and the clock jumps,
often exactly onto a window boundary, in time zones with DST and odd offsets.

Invariants after every step, for the current window:

- the store's ``budget_used`` equals the model: succeeded payments at amount + fee,
  open ones (reserved, in flight, unknown) at amount + fee reserve, failed ones at 0,
  counting only payments created in the window;
- spent + reserved never exceeds the budget;
- a request is denied only when it really did not fit;
- a released reservation is available again at once;
- at a rollover the new window starts empty: the whole budget is available, even
  while payments of the old window are still unknown.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from nwcd.errors import ErrorCode
from nwcd.nostr.keys import SecretKey
from nwcd.policy.budget import window_end, window_start
from nwcd.policy.grants import BudgetPeriod
from nwcd.ports import PaymentIntent, PaymentState, RequestRecord, Reserved
from nwcd.store.sqlite import SqliteStore

T = TypeVar("T")

WALLET = SecretKey.generate().public_key.hex
ZONES: list[tzinfo] = [
    UTC,
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/Santiago"),  # DST changes at midnight
    ZoneInfo("Australia/Lord_Howe"),  # 30-minute DST shifts
    timezone(timedelta(hours=5, minutes=45)),
]
# Two days before Berlin's spring-forward, three before the end of March.
START = int(datetime(2025, 3, 28, 21, 30, tzinfo=UTC).timestamp())


@dataclass
class Payment:
    amount: int
    reserve: int
    created_at: int
    state: PaymentState = PaymentState.RESERVED
    fee: int = 0

    def counted(self) -> int:
        """What this payment counts against its window's budget."""
        if self.state is PaymentState.FAILED:
            return 0
        if self.state is PaymentState.SUCCEEDED:
            return self.amount + self.fee
        return self.amount + self.reserve


items = st.lists(st.tuples(st.integers(1, 30_000), st.integers(0, 3_000)), min_size=1, max_size=4)


class BudgetLedger(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.loop = asyncio.new_event_loop()
        path = Path(self.folder.name) / "nwcd.sqlite"
        self.stores = [self.run(SqliteStore.open(path)), self.run(SqliteStore.open(path))]
        self.payments: dict[int, Payment] = {}
        self.now = START
        self.budget = 0
        self.period = BudgetPeriod.NEVER
        self.tz: tzinfo = UTC
        self.requests = itertools.count(1)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        for store in self.stores:
            self.run(store.close())
        self.loop.close()
        self.folder.cleanup()

    # -- the model --------------------------------------------------------------------------

    @property
    def window(self) -> int:
        return window_start(self.now, self.period, self.tz)

    def model_used(self) -> int:
        return sum(p.counted() for p in self.payments.values() if p.created_at >= self.window)

    def store_used(self) -> int:
        views = {self.run(s.budget_used(WALLET, self.window)) for s in self.stores}
        assert len(views) == 1, views  # both processes see the same committed state
        return views.pop()

    async def reserve(
        self, which: int, batch: list[tuple[int, int]]
    ) -> list[tuple[int, int] | None]:
        """Each item's (payment id, fee reserve granted), or None if it was denied."""
        number = next(self.requests)
        request_id = f"{number:064x}"
        store = self.stores[which]
        await store.claim(
            RequestRecord(request_id, WALLET, "ab" * 32, "nip44_v2", "{}", self.now, self.now),
            "model",
        )
        intents = [
            PaymentIntent(i, "multi_pay_invoice", f"i{i}", f"{number:048x}{i:016x}", None, a, r)
            for i, (a, r) in enumerate(batch)
        ]
        results = await store.reserve(
            request_id,
            WALLET,
            intents,
            owner="model",
            budget_msat=self.budget,
            window_start=self.window,
            now=self.now,
        )
        granted: list[tuple[int, int] | None] = []
        for result in results:
            if isinstance(result, Reserved):
                granted.append((result.payment_id, result.fee_reserve_msat))
            else:
                assert result.code is ErrorCode.QUOTA_EXCEEDED
                granted.append(None)
        return granted

    def open_payments(self) -> list[int]:
        return sorted(
            pid
            for pid, p in self.payments.items()
            if p.state in (PaymentState.RESERVED, PaymentState.UNKNOWN)
        )

    # -- rules ------------------------------------------------------------------------------

    @initialize(
        budget=st.integers(1_000, 80_000),
        period=st.sampled_from(list(BudgetPeriod)),
        tz=st.sampled_from(ZONES),
    )
    def configure(self, budget: int, period: BudgetPeriod, tz: tzinfo) -> None:
        self.budget, self.period, self.tz = budget, period, tz

    @rule(calls=st.lists(st.tuples(st.integers(0, 1), items), min_size=1, max_size=5))
    def reserve_concurrently(self, calls: list[tuple[int, list[tuple[int, int]]]]) -> None:
        before = self.model_used()

        async def everything() -> list[list[tuple[int, int] | None]]:
            return await asyncio.gather(*(self.reserve(which, batch) for which, batch in calls))

        results = self.run(everything())
        granted = 0
        denied: list[int] = []
        for (_, batch), outcome in zip(calls, results, strict=True):
            for (amount, reserve), admitted in zip(batch, outcome, strict=True):
                if admitted is None:
                    denied.append(amount)
                else:
                    payment_id, granted_reserve = admitted
                    # The reserve is what was asked, capped to what the budget had left.
                    assert 0 <= granted_reserve <= reserve
                    self.payments[payment_id] = Payment(amount, granted_reserve, self.now)
                    granted += amount + granted_reserve
        after = self.model_used()
        assert after == before + granted
        # Denied only when its amount alone did not fit at the end of its own
        # transaction, which saw at most everything granted here.
        assert all(after + amount > self.budget for amount in denied)

    @rule(pick=st.integers(0, 10**6), fee_draw=st.integers(0, 10**6), which=st.integers(0, 1))
    def succeed(self, pick: int, fee_draw: int, which: int) -> None:
        open_ids = self.open_payments()
        if not open_ids:
            return
        payment_id = open_ids[pick % len(open_ids)]
        payment = self.payments[payment_id]
        payment.fee = fee_draw % (payment.reserve + 1)  # the backend's fee limit is the reserve
        payment.state = PaymentState.SUCCEEDED
        self.run(
            self.stores[which].settle(
                payment_id,
                PaymentState.SUCCEEDED,
                now=self.now,
                preimage="00" * 32,
                fee_msat=payment.fee,
            )
        )

    @rule(pick=st.integers(0, 10**6), which=st.integers(0, 1))
    def fail_then_reuse(self, pick: int, which: int) -> None:
        open_ids = self.open_payments()
        if not open_ids:
            return
        payment_id = open_ids[pick % len(open_ids)]
        payment = self.payments[payment_id]
        payment.state = PaymentState.FAILED
        self.run(self.stores[which].settle(payment_id, PaymentState.FAILED, now=self.now))
        if payment.created_at >= self.window:
            # The released reservation is available again at once, from the other process.
            [again] = self.run(self.reserve(1 - which, [(payment.amount, payment.reserve)]))
            assert again is not None
            assert again[1] == payment.reserve  # exactly what the failure released
            self.payments[again[0]] = Payment(payment.amount, payment.reserve, self.now)

    @rule(pick=st.integers(0, 10**6), which=st.integers(0, 1))
    def outcome_unknown(self, pick: int, which: int) -> None:
        open_ids = self.open_payments()
        if not open_ids:
            return
        payment_id = open_ids[pick % len(open_ids)]
        self.payments[payment_id].state = PaymentState.UNKNOWN
        self.run(self.stores[which].settle(payment_id, PaymentState.UNKNOWN, now=self.now))

    @rule(
        step=st.one_of(
            st.just("boundary"),
            st.just("before-boundary"),
            st.integers(1, 3 * 86_400),
            st.integers(1, 400 * 86_400),
        )
    )
    def time_passes(self, step: str | int) -> None:
        old_window = self.window
        end = window_end(self.now, self.period, self.tz)
        if step == "boundary" and end is not None:
            self.now = end
        elif step == "before-boundary" and end is not None and end - 1 > self.now:
            self.now = end - 1
        elif isinstance(step, int):
            self.now += step
        if self.window == old_window:
            return
        # A new window: it starts empty, whatever the old one left open.
        event(f"rollover ({self.period.value}, to {step if isinstance(step, str) else 'later'})")
        assert self.window > old_window
        assert self.store_used() == 0
        [whole] = self.run(self.reserve(0, [(self.budget, 0)]))
        assert whole is not None, "the whole budget is available in a new window"
        [nothing] = self.run(self.reserve(1, [(1, 0)]))
        assert nothing is None
        self.run(self.stores[1].settle(whole[0], PaymentState.FAILED, now=self.now))
        self.payments[whole[0]] = Payment(self.budget, 0, self.now, PaymentState.FAILED)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def ledger_matches_the_model_and_the_budget_holds(self) -> None:
        if not self.budget:
            return  # not configured yet
        used = self.store_used()
        assert used == self.model_used()
        assert used <= self.budget
        # The clock is where the window says it is.
        assert self.window <= self.now
        end = window_end(self.now, self.period, self.tz)
        assert end is None or self.now < end


BudgetLedger.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_budget_ledger_across_windows = BudgetLedger.TestCase
