"""Budget windows in a time zone (DST included) and fee reserves."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.nip47.results import Budget
from nwcd.nostr.keys import SecretKey
from nwcd.policy.budget import FeeReserve, budget_status, window_end, window_start
from nwcd.policy.grants import BudgetPeriod, Connection

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR = [p for p in BudgetPeriod if p is not BudgetPeriod.NEVER]


def ts(tz: tzinfo, *args: int) -> int:
    """Unix time of a local wall-clock time (the earlier one if ambiguous)."""
    return int(datetime(*args, tzinfo=tz).timestamp())  # type: ignore[misc]


def utc(*args: int) -> int:
    return ts(UTC, *args)


# -- fixed examples -----------------------------------------------------------------------------


@pytest.mark.parametrize("now", [0, 1, 1_700_000_000, 2**40])
def test_never_is_one_window_since_the_epoch(now: int) -> None:
    assert window_start(now, BudgetPeriod.NEVER) == 0
    assert window_start(now, BudgetPeriod.NEVER, BERLIN) == 0


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (BudgetPeriod.DAILY, utc(2025, 5, 14)),
        (BudgetPeriod.WEEKLY, utc(2025, 5, 12)),  # Wednesday -> Monday
        (BudgetPeriod.MONTHLY, utc(2025, 5, 1)),
        (BudgetPeriod.YEARLY, utc(2025, 1, 1)),
    ],
)
def test_calendar_periods_in_utc(period: BudgetPeriod, expected: int) -> None:
    now = utc(2025, 5, 14, 15, 30, 12)
    assert window_start(now, period) == expected
    assert window_start(now, period, UTC) == expected


def test_week_starts_on_monday() -> None:
    monday = utc(2025, 5, 12)
    for offset_days in range(7):
        now = monday + offset_days * 86_400 + 3600
        assert window_start(now, BudgetPeriod.WEEKLY) == monday
    # Exactly at midnight on Monday a new week begins; a second before is the old one.
    assert window_start(monday, BudgetPeriod.WEEKLY) == monday
    assert window_start(monday - 1, BudgetPeriod.WEEKLY) == utc(2025, 5, 5)
    assert date(2025, 5, 12).isoweekday() == 1


def test_boundaries_are_inclusive_at_midnight() -> None:
    midnight = utc(2024, 1, 1)  # a Monday, first of month and year
    for period in CALENDAR:
        assert window_start(midnight, period) == midnight
        assert window_start(midnight - 1, period) < midnight


def test_local_midnight_in_a_fixed_offset_zone() -> None:
    plus_ten = timezone(timedelta(hours=10))
    # 2025-05-14 20:00 UTC is already 2025-05-15 06:00 at +10:00.
    now = utc(2025, 5, 14, 20)
    assert window_start(now, BudgetPeriod.DAILY, plus_ten) == utc(2025, 5, 14, 14)
    assert window_start(now, BudgetPeriod.DAILY) == utc(2025, 5, 14)


def test_berlin_spring_forward_day() -> None:
    # 2025-03-30 is the last Sunday of March: 02:00 CET -> 03:00 CEST (a 23-hour day).
    start_of_day = utc(2025, 3, 29, 23)  # 00:00 CET
    next_day = utc(2025, 3, 30, 22)  # 00:00 CEST
    assert next_day - start_of_day == 23 * 3600
    for now in (start_of_day, utc(2025, 3, 30, 0, 59, 59), utc(2025, 3, 30, 1), next_day - 1):
        assert window_start(now, BudgetPeriod.DAILY, BERLIN) == start_of_day
    assert window_start(next_day, BudgetPeriod.DAILY, BERLIN) == next_day
    # The week began on Monday 2025-03-24 in winter time; the next one begins in summer time.
    assert window_start(next_day - 1, BudgetPeriod.WEEKLY, BERLIN) == utc(2025, 3, 23, 23)
    assert window_start(next_day, BudgetPeriod.WEEKLY, BERLIN) == next_day
    # The month began in winter time; April begins in summer time.
    assert window_start(next_day, BudgetPeriod.MONTHLY, BERLIN) == utc(2025, 2, 28, 23)
    assert window_start(utc(2025, 3, 31, 22), BudgetPeriod.MONTHLY, BERLIN) == utc(2025, 3, 31, 22)
    assert window_start(utc(2025, 3, 31, 21, 59), BudgetPeriod.MONTHLY, BERLIN) == utc(
        2025, 2, 28, 23
    )


def test_berlin_fall_back_day() -> None:
    # 2025-10-26: 03:00 CEST -> 02:00 CET (a 25-hour day; 02:xx happens twice).
    start_of_day = utc(2025, 10, 25, 22)  # 00:00 CEST
    next_day = utc(2025, 10, 26, 23)  # 00:00 CET
    assert next_day - start_of_day == 25 * 3600
    for now in (utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30), next_day - 1):
        assert window_start(now, BudgetPeriod.DAILY, BERLIN) == start_of_day
    assert window_start(next_day, BudgetPeriod.DAILY, BERLIN) == next_day
    # Sunday 2025-10-26 belongs to the week of Monday 2025-10-20 (summer time).
    assert window_start(utc(2025, 10, 26, 1, 30), BudgetPeriod.WEEKLY, BERLIN) == utc(
        2025, 10, 19, 22
    )


def test_yearly_in_berlin() -> None:
    assert window_start(utc(2025, 7, 1), BudgetPeriod.YEARLY, BERLIN) == utc(2024, 12, 31, 23)


# -- properties ---------------------------------------------------------------------------------

ZONES = [
    UTC,
    BERLIN,
    ZoneInfo("America/New_York"),
    ZoneInfo("Asia/Kolkata"),  # +05:30
    ZoneInfo("Australia/Lord_Howe"),  # 30-minute DST shifts
    ZoneInfo("America/Santiago"),  # DST changes at midnight
    ZoneInfo("Pacific/Apia"),  # skipped 2011-12-30 entirely
    timezone(timedelta(hours=-9, minutes=-30)),
]


def next_window_start(now: int, period: BudgetPeriod, tz: tzinfo) -> int:
    """The start of the window after the one holding ``now``, by calendar arithmetic."""
    day = datetime.fromtimestamp(now, tz).date()
    match period:
        case BudgetPeriod.DAILY:
            nxt = day + timedelta(days=1)
        case BudgetPeriod.WEEKLY:
            nxt = day + timedelta(days=7 - day.weekday())
        case BudgetPeriod.MONTHLY:
            nxt = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        case _:
            nxt = date(day.year + 1, 1, 1)
    return ts(tz, nxt.year, nxt.month, nxt.day)


@given(
    now=st.integers(min_value=86_400 * 366, max_value=4_102_444_800),  # 1971 .. 2100
    period=st.sampled_from(CALENDAR),
    tz=st.sampled_from(ZONES),
)
def test_window_contains_now(now: int, period: BudgetPeriod, tz: tzinfo) -> None:
    start = window_start(now, period, tz)
    nxt = next_window_start(now, period, tz)
    assert start <= now < nxt
    # The start is a boundary: it is its own window's start and a second earlier is another.
    assert window_start(start, period, tz) == start
    assert window_start(start - 1, period, tz) < start
    # Everything up to the next boundary stays in this window; the next one starts there.
    assert window_start(nxt - 1, period, tz) == start
    assert window_start(nxt, period, tz) == nxt
    # Starts are local midnights (or the first instant of a day whose midnight DST skipped)
    # of the day, of the Monday, of the 1st, of January 1st holding ``now``.
    local = datetime.fromtimestamp(start, tz)
    today = datetime.fromtimestamp(now, tz).date()
    skipped_midnight = datetime.fromtimestamp(start - 1, tz).utcoffset() != local.utcoffset()
    assert local.time() == time(0) or skipped_midnight
    match period:
        case BudgetPeriod.DAILY:
            assert local.date() == today
        case BudgetPeriod.WEEKLY:
            assert local.weekday() == 0
            assert 0 <= (today - local.date()).days < 7
        case BudgetPeriod.MONTHLY:
            assert (local.year, local.month, local.day) == (today.year, today.month, 1)
        case _:
            assert (local.year, local.month, local.day) == (today.year, 1, 1)


@given(
    now=st.integers(min_value=86_400 * 366, max_value=4_102_444_800),
    period=st.sampled_from(CALENDAR),
    tz=st.sampled_from(ZONES),
)
def test_window_end_is_the_next_window_start(now: int, period: BudgetPeriod, tz: tzinfo) -> None:
    end = window_end(now, period, tz)
    assert end == next_window_start(now, period, tz)
    assert now < end
    assert window_start(end, period, tz) == end
    assert window_start(end - 1, period, tz) == window_start(now, period, tz)


def test_window_end_examples() -> None:
    now = utc(2025, 12, 31, 23, 59, 59)
    assert window_end(now, BudgetPeriod.DAILY) == utc(2026, 1, 1)
    assert window_end(now, BudgetPeriod.WEEKLY) == utc(2026, 1, 5)  # the next Monday
    assert window_end(now, BudgetPeriod.MONTHLY) == utc(2026, 1, 1)
    assert window_end(now, BudgetPeriod.YEARLY) == utc(2026, 1, 1)
    assert window_end(now, BudgetPeriod.NEVER) is None
    # Berlin's spring-forward day is 23 hours long.
    assert window_end(utc(2025, 3, 29, 23), BudgetPeriod.DAILY, BERLIN) == utc(2025, 3, 30, 22)


@given(
    now=st.integers(min_value=0, max_value=utc(9999, 1, 1)),
    period=st.sampled_from(list(BudgetPeriod)),
)
def test_window_start_never_after_now(now: int, period: BudgetPeriod) -> None:
    assert window_start(now, period, BERLIN) <= now
    assert window_start(now, period) <= now


# -- fee reserve --------------------------------------------------------------------------------


def test_fee_reserve_defaults() -> None:
    reserve = FeeReserve()
    assert (reserve.ppm, reserve.floor_msat) == (10_000, 10_000)
    assert reserve.for_amount(0) == 10_000
    assert reserve.for_amount(1_000_000) == 10_000  # 1% equals the floor here
    assert reserve.for_amount(1_000_100) == 10_001
    assert reserve.for_amount(5_000_000) == 50_000
    assert reserve.for_amount(5_000_099) == 50_000  # rounds down


def test_fee_reserve_floor_dominates_small_amounts() -> None:
    reserve = FeeReserve(ppm=5_000, floor_msat=2_000)
    assert reserve.for_amount(100_000) == 2_000
    assert reserve.for_amount(400_000) == 2_000
    assert reserve.for_amount(1_000_000) == 5_000


def test_fee_reserve_zero() -> None:
    assert FeeReserve(ppm=0, floor_msat=0).for_amount(10**12) == 0


@given(
    amount=st.integers(min_value=0, max_value=2**64 - 1),
    ppm=st.integers(min_value=0, max_value=1_000_000),
    floor=st.integers(min_value=0, max_value=10**9),
)
def test_fee_reserve_property(amount: int, ppm: int, floor: int) -> None:
    fee = FeeReserve(ppm=ppm, floor_msat=floor).for_amount(amount)
    assert fee >= floor
    assert fee * 1_000_000 >= amount * ppm - 999_999
    assert fee == floor or fee * 1_000_000 <= amount * ppm
    assert FeeReserve(ppm=ppm, floor_msat=floor).for_amount(amount + 1) >= fee  # monotonic


# -- get_budget ---------------------------------------------------------------------------------


def _granted(budget_msat: int | None, period: BudgetPeriod) -> Connection:
    return Connection(
        name="app",
        wallet_key=SecretKey.generate(),
        app_pubkey="ab" * 32,
        relays=("ws://127.0.0.1:1",),
        created_at=1,
        budget_msat=budget_msat,
        budget_period=period,
    )


def test_budget_status_renews_when_the_window_ends() -> None:
    now = utc(2025, 5, 14, 15, 30)
    status = budget_status(_granted(50_000, BudgetPeriod.MONTHLY), 12_345, now)
    assert status == Budget(12_345, 50_000, "monthly", utc(2025, 6, 1))
    assert status.to_json() == {
        "used_budget": 12_345,
        "total_budget": 50_000,
        "renewal_period": "monthly",
        "renews_at": utc(2025, 6, 1),
    }
    # In the operator's time zone, as the windows themselves.
    berlin = budget_status(_granted(50_000, BudgetPeriod.DAILY), 0, now, BERLIN)
    assert berlin is not None
    assert berlin.renews_at == ts(BERLIN, 2025, 5, 15)


def test_budget_status_of_a_budget_that_never_renews_has_no_renewal_time() -> None:
    status = budget_status(_granted(1_000, BudgetPeriod.NEVER), 1_500, utc(2025, 1, 1))
    # Lowered below what was already used: reported as it is, not clipped.
    assert status == Budget(1_500, 1_000, "never", None)
    assert status.to_json() == {
        "used_budget": 1_500,
        "total_budget": 1_000,
        "renewal_period": "never",
    }


def test_no_budget_is_an_empty_result() -> None:
    assert budget_status(_granted(None, BudgetPeriod.DAILY), 0, utc(2025, 1, 1)) is None
