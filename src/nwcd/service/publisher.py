"""Publishing responses without ever blocking the pipeline.

Responses are urgent: an app is waiting. Notifications are not, and a batch
produces two per payment (NIP-44 and NIP-04), so they wait in a bounded queue
until no response is being published (or ``defer_limit`` seconds have
passed) and never compete with the answers for the relay.

Each event is published in its own task to the connection's relays and
retried with backoff until one relay answers ``OK true`` or the attempts are
spent. A relay that never sends ``OK`` for ephemeral kinds (nostr-rs-relay)
makes an attempt end as "sent, unconfirmed" after ``ok_timeout``; that is
logged and not retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from nwcd.nostr.event import Event
from nwcd.relay.connection import backoff_delay
from nwcd.relay.pool import RelayPool

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

    def __init__(self, pool: RelayPool, policy: PublishPolicy | None = None) -> None:
        self._pool = pool
        self._policy = policy or PublishPolicy()
        self._tasks: set[asyncio.Task[None]] = set()
        self._urgent = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._deferred: deque[tuple[Callable[[], list[Event]], tuple[str, ...]]] = deque()
        self._deferred_ready = asyncio.Event()
        self._deferred_task: asyncio.Task[None] | None = None

    def publish(self, event: Event, relays: Iterable[str]) -> None:
        """Publish in the background, now."""
        self._urgent += 1
        self._idle.clear()
        self._spawn(self._publish_urgent(event, tuple(relays)))

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

    async def _publish_urgent(self, event: Event, relays: tuple[str, ...]) -> None:
        try:
            await self._publish(event, relays)
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._idle.set()

    async def _run_deferred(self) -> None:
        while True:
            await self._deferred_ready.wait()
            self._deferred_ready.clear()
            while self._deferred:
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

    async def _publish(self, event: Event, relays: tuple[str, ...]) -> None:
        policy = self._policy
        for attempt in range(policy.attempts):
            result = await self._pool.publish(event, timeout=policy.ok_timeout, relays=relays)
            if result.ok:
                return
            if result.unconfirmed and not result.rejected:
                # Sent to connected relays that never confirm, or queued for relays that
                # are down (the pool re-sends on reconnect): nothing more to do here.
                log.debug("event %s sent without confirmation", event.id)
                return
            log.info("event %s refused (%s); retrying", event.id, result.rejected)
            await asyncio.sleep(
                backoff_delay(attempt, base=policy.backoff_base, cap=policy.backoff_cap)
            )
        log.warning("event %s not accepted by any relay", event.id)

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
