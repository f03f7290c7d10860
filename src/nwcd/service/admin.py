"""Connection administration shared by the CLI, tests and (later) a web console.

Relays keep no ephemeral events, so a request sent to a wallet key no
running service listens for yet is lost for good. A new connection's URI is
therefore handed out only once every live ``nwcd serve`` instance says, in
its heartbeat, that it listens for the connections version that holds it.
"""

from __future__ import annotations

import asyncio
import time

from nwcd.ports import InstanceRegistry

__all__ = ["wait_until_listening"]


async def wait_until_listening(
    instances: InstanceRegistry, version: int, *, timeout: float, poll: float = 0.05
) -> list[str]:
    """Wait until every live instance listens for ``version`` (or ``timeout`` passes).

    Returns the ids of live instances that still do not (empty: all do, or
    none runs, in which case the next one to start subscribes before it
    reports ready). An instance killed meanwhile drops out once its lease
    expires.
    """
    deadline = time.monotonic() + timeout
    while True:
        behind = [
            instance.instance_id
            for instance in await instances.live_instances(int(time.time()))
            if instance.listening_version < version
        ]
        if not behind or time.monotonic() >= deadline:
            return behind
        await asyncio.sleep(poll)
