"""Publishing responses without ever blocking the pipeline.

Responses are urgent: an app is waiting. Notifications are not, and a batch
produces two per payment (NIP-44 and NIP-04), so they wait in a bounded queue
until no response is being published (or ``defer_limit`` seconds have
passed) and never compete with the answers for the relay.

Each event is published in its own task to the connection's relays until it
is delivered: a relay answered ``OK true``, or (for relays that never send
``OK`` for ephemeral kinds, like nostr-rs-relay) its open socket took the
event. While every relay is down it keeps trying, with backoff; only when
every relay refuses it ``attempts`` times does it give up (events without
``on_delivered``, notifications, also give up after ``attempts`` rounds
while relays are down). ``on_delivered`` lets the caller record delivery:
responses are marked published in the store, so a response stored but never
delivered is sent again after a restart. Each round tried again is counted
(``nwcd_publish_retries_total``): relays that refuse or are down show there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from nwcd.nostr.event import Event
from nwcd.relay.connection import backoff_delay
from nwcd.relay.pool import RelayPool
from nwcd.service.metrics import Metrics

__all__ = ["PublishPolicy", "Publisher"]

log = logging.getLogger("nwcd.service")


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    """How hard to try: ``attempts`` rounds of ``ok_timeout`` seconds, backoff between."""

    attempts: int = 5
    ok_timeout: float = 5.0
    backoff_base: float = 0.5
    backoff_cap: float = 10.0
    defer_limit: float = 2.0
    deferred_capacity: int = 10_000


class Publisher:
    """Fire-and-track publishing: ``publish`` returns at once."""

    def __init__(
        self, pool: RelayPool, policy: PublishPolicy | None = None, metrics: Metrics | None = None
    ) -> None:
        self._pool = pool
        self._policy = policy or PublishPolicy()
        self._metrics = metrics or Metrics()
        self._tasks: set[asyncio.Task[None]] = set()
        self._urgent = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._deferred: deque[tuple[Callable[[], list[Event]], tuple[str, ...]]] = deque()
        self._deferred_ready = asyncio.Event()
        self._deferred_task: asyncio.Task[None] | None = None

    def publish(
        self,
        event: Event,
        relays: Iterable[str],
        on_delivered: Callable[[Event], None] | None = None,
    ) -> None:
        """Publish in the background, now; ``on_delivered(event)`` once a relay took it."""
        self._urgent += 1
        self._idle.clear()
        self._spawn(self._publish_urgent(event, tuple(relays), on_delivered))

    def publish_later(self, build: Callable[[], list[Event]], relays: Iterable[str]) -> None:
        """Build and publish events once no urgent publish is running.

        ``build`` runs late too, so signing and encrypting low-priority events
        never takes CPU from answers an app is waiting for.
        """
        if len(self._deferred) >= self._policy.deferred_capacity:
            self._deferred.popleft()
            log.warning("deferred queue full: dropping the oldest notification")
        self._deferred.append((build, tuple(relays)))
        self._deferred_ready.set()
        if self._deferred_task is None:
            self._deferred_task = asyncio.create_task(self._run_deferred())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_urgent(
        self,
        event: Event,
        relays: tuple[str, ...],
        on_delivered: Callable[[Event], None] | None,
    ) -> None:
        try:
            await self._publish(event, relays, on_delivered)
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._idle.set()

    async def _run_deferred(self) -> None:
        while True:
            await self._deferred_ready.wait()
            self._deferred_ready.clear()
            while self._deferred:
                if not self._idle.is_set():  # no timer when nothing urgent is running
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that arrives as the wait ends, and close() would hang.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._policy.defer_limit):
                            await self._idle.wait()
                build, relays = self._deferred.popleft()
                try:
                    events = build()
                except Exception:
                    log.exception("could not build a deferred event")
                    continue
                for event in events:
                    self._spawn(self._publish(event, relays))

    async def _publish(
        self,
        event: Event,
        relays: tuple[str, ...],
        on_delivered: Callable[[Event], None] | None = None,
    ) -> None:
        policy = self._policy
        failures = 0
        for attempt in itertools.count():
            result = await self._pool.publish(
                event, timeout=policy.ok_timeout, relays=relays, first=True
            )
            if result.delivered:
                if on_delivered is not None:
                    on_delivered(event)
                return
            # Refused by every relay counts against the attempts. Unreachable relays
            # do too, except for events someone waits for (``on_delivered``): those
            # wait in the pool's queues and are offered again until a relay takes them.
            if (result.rejected and not result.unconfirmed) or on_delivered is None:
                failures += 1
                if failures >= policy.attempts:
                    log.warning("event %s not delivered: %s", event.id, result.rejected)
                    return
                log.info("event %s not delivered (%s); retrying", event.id, result.rejected)
            self._metrics.publish_retried()
            await asyncio.sleep(
                backoff_delay(attempt, base=policy.backoff_base, cap=policy.backoff_cap)
            )

    async def drain(self, timeout: float) -> None:
        """Wait for pending publishes, up to ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        """Cancel what is left."""
        if self._deferred_task is not None:
            self._deferred_task.cancel()
            await asyncio.gather(self._deferred_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
