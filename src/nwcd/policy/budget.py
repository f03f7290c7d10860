"""Budget windows and fee reserves (pure arithmetic on integers and times)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from nwcd.nip47.results import Budget
from nwcd.policy.grants import BudgetPeriod, Connection

__all__ = ["FeeReserve", "budget_status", "window_end", "window_start"]


def window_start(now: int, period: BudgetPeriod, tz: tzinfo = UTC) -> int:
    """Unix time at which the budget window containing ``now`` began.

    Calendar periods start at local midnight in ``tz``: days, ISO weeks
    (Monday), months and years. ``never`` is one window since the epoch.
    """
    if period is BudgetPeriod.NEVER:
        return 0
    local = datetime.fromtimestamp(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    match period:
        case BudgetPeriod.DAILY:
            start = midnight
        case BudgetPeriod.WEEKLY:
            start = midnight - timedelta(days=midnight.weekday())
        case BudgetPeriod.MONTHLY:
            start = midnight.replace(day=1)
        case BudgetPeriod.YEARLY:
            start = midnight.replace(month=1, day=1)
    # Rebuild with tz so a DST change between midnight and now is accounted for.
    naive = start.replace(tzinfo=None)
    return int(naive.replace(tzinfo=tz).timestamp())


def window_end(now: int, period: BudgetPeriod, tz: tzinfo = UTC) -> int | None:
    """Unix time at which the window containing ``now`` ends (the next one starts).

    ``None`` for ``never``. Always ``window_start(window_end(t)) == window_end(t)``.
    """
    day = datetime.fromtimestamp(now, tz).date()
    match period:
        case BudgetPeriod.NEVER:
            return None
        case BudgetPeriod.DAILY:
            nxt = day + timedelta(days=1)
        case BudgetPeriod.WEEKLY:
            nxt = day + timedelta(days=7 - day.weekday())
        case BudgetPeriod.MONTHLY:
            nxt = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        case BudgetPeriod.YEARLY:
            nxt = date(day.year + 1, 1, 1)
    # A local midnight DST skipped maps to the first instant of that day, as in window_start.
    return int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())


def budget_status(
    connection: Connection, used_msat: int, now: int, tz: tzinfo = UTC
) -> Budget | None:
    """What ``get_budget`` answers: None (``{}``) for a connection without a budget.

    ``used_msat`` is what the ledger counts in the current window (payments in
    flight with their fee reserve), so it may exceed the total after the operator
    lowered the budget; it is reported as it is.
    """
    if connection.budget_msat is None:
        return None
    return Budget(
        used_msat=used_msat,
        total_msat=connection.budget_msat,
        renewal_period=connection.budget_period.value,
        renews_at=window_end(now, connection.budget_period, tz),
    )


@dataclass(frozen=True, slots=True)
class FeeReserve:
    """Routing fee held back with each payment: ``ppm`` of the amount, at least ``floor``."""

    ppm: int = 10_000  # 1%
    floor_msat: int = 10_000  # 10 sat

    def for_amount(self, amount_msat: int) -> int:
        return max(self.floor_msat, amount_msat * self.ppm // 1_000_000)
