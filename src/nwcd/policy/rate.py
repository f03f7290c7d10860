"""Request rate limits: token buckets per connection and for the whole service.

An app that floods the service is answered ``RATE_LIMITED`` (with when to retry)
instead of being served or silently dropped; so is everyone once the service as a
whole takes in more than it is configured for. Pure: the caller gives the time.

The buckets live in one process: with several instances sharing a store, each
instance applies the limits to what reaches it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from nwcd.errors import ErrorCode, RequestError

__all__ = ["APP_RATE", "SERVICE_RATE", "RateLimit", "RateLimiter", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``per_second`` requests on average, up to ``burst`` at once; 0 per second: none."""

    per_second: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0


# Far above what an app does by hand, well below what would starve the others.
APP_RATE = RateLimit(per_second=20, burst=200)
SERVICE_RATE = RateLimit(per_second=1000, burst=2000)


@dataclass(slots=True)
class TokenBucket:
    """``tokens`` refill at the limit's rate, up to its burst; a request takes one."""

    limit: RateLimit
    tokens: float
    updated: float

    @classmethod
    def full(cls, limit: RateLimit, now: float) -> TokenBucket:
        return cls(limit, float(limit.burst), now)

    def wait(self, now: float) -> float:
        """Seconds until a request may pass (0: now), after refilling to ``now``."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = max(self.updated, now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.limit.per_second

    def take(self) -> None:
        self.tokens -= 1


class RateLimiter:
    """The limits of one service: each connection's bucket and the service-wide one.

    Buckets of the connections heard from least recently are forgotten past
    ``max_connections`` (a forgotten connection starts again with a full bucket).
    """

    def __init__(
        self, per_connection: RateLimit, service: RateLimit, *, max_connections: int = 100_000
    ) -> None:
        self._per_connection = per_connection
        self._service_limit = service
        self._service: TokenBucket | None = None
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._max_connections = max_connections

    def check(self, connection: str, now: float) -> RequestError | None:
        """Admit one request of ``connection`` (taking its tokens), or say why not.

        A request refused by either limit takes no token from the other.
        """
        mine = self._connection_bucket(connection, now)
        everyone = self._service_bucket(now)
        if mine is not None and (wait := mine.wait(now)) > 0:
            per_minute = self._per_connection.per_second * 60
            return _limited(f"more than {per_minute:g} requests a minute from this app", wait)
        if everyone is not None and (wait := everyone.wait(now)) > 0:
            return _limited("the wallet service is busy", wait)
        for bucket in (mine, everyone):
            if bucket is not None:
                bucket.take()
        return None

    def _connection_bucket(self, connection: str, now: float) -> TokenBucket | None:
        if self._per_connection.unlimited:
            return None
        bucket = self._buckets.get(connection)
        if bucket is None:
            bucket = self._buckets[connection] = TokenBucket.full(self._per_connection, now)
            if len(self._buckets) > self._max_connections:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(connection)
        return bucket

    def _service_bucket(self, now: float) -> TokenBucket | None:
        if self._service_limit.unlimited:
            return None
        if self._service is None:
            self._service = TokenBucket.full(self._service_limit, now)
        return self._service


def _limited(why: str, wait: float) -> RequestError:
    return RequestError(ErrorCode.RATE_LIMITED, f"{why}; retry in {max(wait, 0.1):.1f} s")
