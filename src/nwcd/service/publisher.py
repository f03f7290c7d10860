"""Publishing responses without ever blocking the pipeline.

Each event is published in its own task to the connection's relays and
retried with backoff until one relay answers ``OK true`` or the attempts are
spent. A relay that never sends ``OK`` for ephemeral kinds (nostr-rs-relay)
makes an attempt end as "sent, unconfirmed" after ``ok_timeout``; that is
logged and not retried forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

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


class Publisher:
    """Fire-and-track publishing: ``publish`` returns at once."""

    def __init__(self, pool: RelayPool, policy: PublishPolicy | None = None) -> None:
        self._pool = pool
        self._policy = policy or PublishPolicy()
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, event: Event, relays: Iterable[str]) -> None:
        """Publish in the background."""
        task = asyncio.create_task(self._publish(event, tuple(relays)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
