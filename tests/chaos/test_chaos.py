"""The chaos suite, bounded for CI: at least 10 kill -9s among every other fault, then the
end checks must find nothing. ``python -m tests.chaos`` runs longer ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.runner import ChaosPlan, run

# Each run is about 100 s of faults and settling, more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_every_request_answered_exactly_once_under_faults(tmp_path: Path) -> None:
    plan = ChaosPlan(seed=20261204, duration=90, min_kills=10, settle_timeout=60)
    report, _ = await run(plan, tmp_path)
    print("\n".join(f"{name}: {value}" for name, value in report.figures.items()))
    assert report.violations == []


async def test_three_instances_on_postgresql_lose_nothing_when_killed(tmp_path: Path) -> None:
    # Instances die one at a time or two at once; the others take the work over once the
    # dead ones' leases (10 s) expire. A payment marked in flight that the backend never saw
    # may still be sent by a stalled (not dead) instance: it is called failed only after a
    # 120 s grace, hence the long settling.
    plan = ChaosPlan(seed=20261205, duration=90, min_kills=8, settle_timeout=200, instances=3)
    report, _ = await run(plan, tmp_path)
    print("\n".join(f"{name}: {value}" for name, value in report.figures.items()))
    assert report.violations == []
