"""Budget windows and fee reserves (pure arithmetic on integers and times)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from nwcd.policy.grants import BudgetPeriod

__all__ = ["FeeReserve", "window_start"]


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


@dataclass(frozen=True, slots=True)
class FeeReserve:
    """Routing fee held back with each payment: ``ppm`` of the amount, at least ``floor``."""

    ppm: int = 10_000  # 1%
    floor_msat: int = 10_000  # 10 sat

    def for_amount(self, amount_msat: int) -> int:
        return max(self.floor_msat, amount_msat * self.ppm // 1_000_000)
