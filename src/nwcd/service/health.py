"""Is this instance ready to serve? The report behind the console's ``GET /health``.

:class:`HealthReport` decides from plain data (pure); :func:`health` gathers that data
from a running :class:`~nwcd.service.daemon.WalletDaemon`: one cheap store call (the
connections version), bounded in time, and the relay pool's socket states. Ready
means the store answers and at least one relay is connected: without the store no
request can be claimed, without a relay none arrives. The console answers 200 when
:attr:`HealthReport.ok`, else 503, with :meth:`HealthReport.as_json` as the body.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nwcd.service.daemon import WalletDaemon

__all__ = ["STORE_TIMEOUT", "HealthReport", "health"]

log = logging.getLogger("nwcd.service")

STORE_TIMEOUT = 2.0
"""Seconds the store has to answer before it counts as unreachable."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What a health check found (no secret: kinds, counts and relay URLs only)."""

    instance_id: str
    store: str
    backend: str
    store_reachable: bool
    connections: int
    relays: Mapping[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Ready: the store answers and at least one relay is connected."""
        return self.store_reachable and any(self.relays.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "instance": self.instance_id,
            "store": {"kind": self.store, "reachable": self.store_reachable},
            "backend": {"kind": self.backend},
            "relays": {
                "connected": sum(self.relays.values()),
                "total": len(self.relays),
                "states": {url: self.relays[url] for url in sorted(self.relays)},
            },
            "connections": self.connections,
        }


async def health(daemon: WalletDaemon, *, timeout: float = STORE_TIMEOUT) -> HealthReport:
    """Check a running daemon now: never raises, a store that fails or is slow is
    reported unreachable (and logged by the kind of its error only)."""
    try:
        async with asyncio.timeout(timeout):
            await daemon.store.connections_version()
        reachable = True
    except Exception as exc:
        log.warning("health: the store did not answer (%s)", type(exc).__name__)
        reachable = False
    return HealthReport(
        instance_id=daemon.instance_id,
        store=daemon.store.kind,
        backend=daemon.backend.kind,
        store_reachable=reachable,
        connections=len(daemon.pipeline.connections),
        relays=daemon.relay_states(),
    )
