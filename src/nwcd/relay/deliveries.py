"""Which arrivals of an event a subscription passes on: copies no, re-sends yes.

Pure (time is a parameter). The same event reaches a pool once per relay,
and again whenever its author re-publishes it: an app that saw no answer
sends its request again, and that re-send must reach the service, which
answers it from the store. Copies of one send from several relays must
still reach it once.

An arrival is passed on when:

* the event was never seen, or
* it is *live* (after the relay's EOSE) and either ``copy_window`` seconds
  passed since the last passed arrival, or the same relay delivered it
  before and ``resend_gap`` seconds passed (a relay forwards a publication
  once, so this is a new one; the gap keeps a relay that sends everything
  twice from costing a second handling).

Stored events a relay replays before its EOSE (after a reconnect or a
changed subscription) are never passed again: a replay is not a re-send.
Copies from other relays within the window are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["DeliveryFilter"]


@dataclass(slots=True)
class _Sending:
    """The arrivals of one publication of an event: when it was passed, from where."""

    passed_at: float
    relays: set[str] = field(default_factory=set)


class DeliveryFilter:
    """Remembers the last ``capacity`` events; older ones count as never seen."""

    def __init__(
        self, *, copy_window: float = 10.0, resend_gap: float = 1.0, capacity: int = 65_536
    ) -> None:
        self._copy_window = copy_window
        self._resend_gap = resend_gap
        self._capacity = capacity
        self._seen: OrderedDict[str, _Sending] = OrderedDict()

    def admit(self, event_id: str, relay: str, *, live: bool, now: float) -> bool:
        """Record an arrival; True if it is to be passed on."""
        sending = self._seen.get(event_id)
        if sending is not None:
            self._seen.move_to_end(event_id)
            since = now - sending.passed_at
            resent = since >= self._copy_window or (
                relay in sending.relays and since >= self._resend_gap
            )
            if not (live and resent):
                sending.relays.add(relay)
                return False
        self._seen[event_id] = _Sending(now, {relay})
        self._seen.move_to_end(event_id)
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True
