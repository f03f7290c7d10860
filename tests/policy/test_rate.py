"""Rate limits: token buckets per connection and for the whole service (pure, a given clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import ErrorCode
from nwcd.policy.rate import RateLimit, RateLimiter, TokenBucket

NONE = RateLimit(per_second=0, burst=1)


def admitted(limiter: RateLimiter, app: str, now: float, times: int) -> int:
    return sum(limiter.check(app, now) is None for _ in range(times))


def test_a_burst_passes_then_the_rate_holds() -> None:
    limiter = RateLimiter(RateLimit(per_second=2, burst=5), NONE)
    assert admitted(limiter, "a", 0.0, 5) == 5
    refused = limiter.check("a", 0.0)
    assert refused is not None
    assert refused.code is ErrorCode.RATE_LIMITED
    assert refused.message == "more than 120 requests a minute from this app; retry in 0.5 s"
    assert admitted(limiter, "a", 0.5, 3) == 1  # one token back after half a second
    assert admitted(limiter, "a", 10.0, 10) == 5  # refilled to the burst, not beyond


def test_each_app_has_its_own_bucket() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=2), NONE)
    assert admitted(limiter, "greedy", 0.0, 10) == 2
    assert admitted(limiter, "polite", 0.0, 2) == 2


def test_the_service_limit_holds_for_everyone_together() -> None:
    limiter = RateLimiter(RateLimit(per_second=100, burst=100), RateLimit(10, 3))
    assert [limiter.check(app, 0.0) is None for app in "abcd"] == [True, True, True, False]
    refused = limiter.check("e", 0.0)
    assert refused is not None
    assert refused.message == "the wallet service is busy; retry in 0.1 s"


def test_a_request_refused_by_one_limit_takes_nothing_from_the_other() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), RateLimit(1, 2))
    assert limiter.check("a", 0.0) is None
    assert admitted(limiter, "a", 0.0, 50) == 0  # refused by its own bucket only ...
    assert limiter.check("b", 0.0) is None  # ... so the service still had a token for b


def test_zero_per_second_is_no_limit() -> None:
    limiter = RateLimiter(NONE, NONE)
    assert admitted(limiter, "a", 0.0, 10_000) == 10_000


def test_forgotten_connections_start_full() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), NONE, max_connections=2)
    for app in ("a", "b", "c"):  # "a" is the least recently heard from: forgotten
        assert limiter.check(app, 0.0) is None
    assert limiter.check("a", 0.0) is None
    assert limiter.check("c", 0.0) is not None


def test_a_clock_going_back_gives_no_tokens() -> None:
    bucket = TokenBucket.full(RateLimit(per_second=1, burst=1), 100.0)
    bucket.take()
    assert bucket.wait(50.0) == pytest.approx(1.0)
    assert bucket.wait(100.5) == pytest.approx(0.5)


@given(
    per_second=st.integers(1, 50),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_time(
    per_second: int, burst: int, gaps: list[float]
) -> None:
    limiter = RateLimiter(RateLimit(per_second, burst), NONE)
    now, passed = 0.0, 0
    for gap in gaps:
        now += gap
        passed += limiter.check("a", now) is None
    assert passed <= burst + per_second * now + 1e-9
