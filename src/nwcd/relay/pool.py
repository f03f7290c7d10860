"""A pool of relays: subscribe once, publish everywhere, receive each event once.

Theory of operation:

* Each relay has its own :class:`~nwcd.relay.connection.RelayConnection` task,
  so a relay that is down never delays the others.
* A :class:`Subscription` is opened on every relay. Filters with very many
  tag values (one ``#p`` per wallet connection) are split into several filters
  and, past ``max_filters_per_req`` or ``max_req_bytes``, several REQs, to stay
  within relay limits. Past ``max_subscriptions`` REQs on one socket, further
  REQs go on more sockets to the same relay ("lanes", opened as needed): relays
  cap subscriptions per connection (nostr-rs-relay 32, strfry 20), and 100,000
  wallet keys need ~100 REQs of ~70 kB. Events are published on the first socket.
* Incoming events are verified (id and signature) once per event id, however
  many relays deliver them, and reach each subscription once per sending
  (:mod:`nwcd.relay.deliveries`): copies from several relays are dropped, a
  re-send by the event's author is delivered again, since it means
  something (an app re-sending a request whose answer it lost); the
  consumer decides.
* Each subscription has a bounded queue. When its consumer is slow, the relay
  readers wait, which stops reading from the sockets: back-pressure instead of
  unbounded memory.
* :meth:`RelayPool.publish` sends to every relay and collects each relay's
  ``OK``; relays that are down get the event when they come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace

from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.lru import BoundedSet
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter, split_values
from nwcd.nostr.keys import SecretKey
from nwcd.relay.connection import (
    ConnectionOptions,
    ConnectionOwner,
    OkResult,
    RelayConnection,
)
from nwcd.relay.deliveries import DeliveryFilter

__all__ = ["PoolOptions", "PublishResult", "RelayPool", "Subscription", "split_filters"]

log = logging.getLogger("nwcd.relay")


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """Tuning for a pool. Defaults fit public relays (nostr-rs-relay, strfry).

    A REQ holds at most ``max_filters_per_req`` filters of ``max_filter_values``
    values and ``max_req_bytes`` of JSON (relays take websocket messages of 128 kB
    or more: nostr-rs-relay and strfry by default); a socket holds at most
    ``max_subscriptions`` REQs (nostr-rs-relay allows 32, strfry 20).
    """

    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    max_filter_values: int = 500
    max_filters_per_req: int = 10
    max_req_bytes: int = 96_000
    max_subscriptions: int = 16
    queue_size: int = 1024
    seen_capacity: int = 100_000
    copy_window: float = 10.0
    resend_gap: float = 1.0


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Which relays accepted an event.

    ``unconfirmed`` relays got no ``OK`` in time: the event may have been
    delivered (some relays never confirm ephemeral kinds), or is queued for a
    relay that is down. ``sent`` are the unconfirmed relays whose open socket
    took the event: as delivered as such a relay ever confirms.
    """

    event_id: str
    accepted: tuple[str, ...]
    rejected: dict[str, str]
    unconfirmed: tuple[str, ...]
    sent: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """At least one relay accepted the event."""
        return bool(self.accepted)

    @property
    def delivered(self) -> bool:
        """A relay accepted the event, or an open socket took it."""
        return bool(self.accepted or self.sent)


REQ_ENVELOPE_BYTES = 96
"""Room in a REQ for ``["REQ","<id>",`` ... ``]`` (ids are at most 64 characters)."""

RESUME_BYTES = 32
"""Room per filter for a ``since`` added or moved when a REQ is sent again on reconnect."""


def split_filters(
    filters: Sequence[Filter],
    *,
    max_values: int,
    max_filters: int,
    max_bytes: int | None = None,
) -> list[tuple[Filter, ...]]:
    """Cut filters into groups of REQs that fit relay limits.

    A filter with more than ``max_values`` values in one tag or list field is
    copied once per chunk of values; then filters are grouped, at most
    ``max_filters`` per REQ and, with ``max_bytes``, as many as keep the REQ's
    JSON within ``max_bytes`` (a single filter larger than that goes alone).
    """
    expanded: list[Filter] = []
    for f in filters:
        expanded.extend(_split_one(f, max_values))
    groups: list[tuple[Filter, ...]] = []
    group: list[Filter] = []
    size = REQ_ENVELOPE_BYTES
    for f in expanded:
        cost = _json_bytes(f) + RESUME_BYTES if max_bytes is not None else 0
        if group and (
            len(group) >= max_filters or (max_bytes is not None and size + cost > max_bytes)
        ):
            groups.append(tuple(group))
            group, size = [], REQ_ENVELOPE_BYTES
        group.append(f)
        size += cost
    if group or not groups:
        groups.append(tuple(group))
    return groups


def _json_bytes(f: Filter) -> int:
    """Bytes of a filter in a REQ, with its separating comma."""
    text = json.dumps(f.to_json(), ensure_ascii=False, separators=(",", ":"))
    return len(text.encode()) + 1


def _split_one(f: Filter, max_values: int) -> list[Filter]:
    for letter, values in f.tags.items():
        if len(values) > max_values:
            return [
                part
                for chunk in split_values(list(values), max_values)
                for part in _split_one(
                    replace(f, tags={**f.tags, letter: tuple(chunk)}), max_values
                )
            ]
    if f.authors is not None and len(f.authors) > max_values:
        return [
            replace(f, authors=tuple(chunk)) for chunk in split_values(list(f.authors), max_values)
        ]
    if f.ids is not None and len(f.ids) > max_values:
        return [replace(f, ids=tuple(chunk)) for chunk in split_values(list(f.ids), max_values)]
    return [f]


def _covers(sent: tuple[Filter, ...] | None, wanted: tuple[Filter, ...]) -> bool:
    """Whether a REQ already sent with ``sent`` gets every event ``wanted`` asks for: the
    same filters, each with a ``since`` no later than the wanted one."""
    if sent is None or len(sent) != len(wanted):
        return False
    for old, new in zip(sent, wanted, strict=True):
        if old.since is not None and (new.since is None or new.since < old.since):
            return False
        if replace(new, since=old.since) != old:
            return False
    return True


class Subscription:
    """Events matching some filters, from every relay of a pool, each once.

    Iterate with ``async for event in subscription``, or ``await get()``.
    """

    def __init__(
        self,
        pool: RelayPool,
        sub_id: str,
        filters: tuple[Filter, ...],
        size: int,
        deliveries: DeliveryFilter,
    ) -> None:
        self.id = sub_id
        self.filters = filters
        self._pool = pool
        self._queue: asyncio.Queue[tuple[Event, bool]] = asyncio.Queue(maxsize=size)
        self._deliveries = deliveries
        self._eose_parts: dict[str, set[str]] = {}
        self.eose = asyncio.Event()
        self.closed_reasons: dict[str, str] = {}
        self.parts: dict[str, tuple[Filter, ...]] = {}

    async def get(self) -> Event:
        """The next event."""
        event, _ = await self._queue.get()
        return event

    async def next_delivery(self) -> tuple[Event, bool]:
        """The next event, and whether it came live (False: a relay replayed it from
        storage before its EOSE, as relays that keep ephemeral events do on subscribe)."""
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        """The next event if one is waiting."""
        try:
            return self._queue.get_nowait()[0]
        except asyncio.QueueEmpty:
            return None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield (await self._queue.get())[0]

    async def update(self, filters: Sequence[Filter]) -> None:
        """Replace the filters on every relay (e.g. a wallet connection was added)."""
        await self._pool._resubscribe(self, tuple(filters))

    async def close(self) -> None:
        """Close on every relay."""
        await self._pool._unsubscribe(self)

    async def _deliver(self, event: Event, relay: str, *, live: bool) -> None:
        if self._deliveries.admit(event.id, relay, live=live, now=time.monotonic()):
            await self._queue.put((event, live))

    def _on_eose(self, relay: str, part: str) -> None:
        parts = self._eose_parts.setdefault(relay, set())
        parts.add(part)
        if parts >= self.parts.keys():
            self.eose.set()


class _Lane:
    """The owner of a relay's extra socket: the pool, for the parts on that lane."""

    def __init__(self, pool: RelayPool, lane: int) -> None:
        self._pool = pool
        self._lane = lane

    def requests(self) -> dict[str, tuple[Filter, ...]]:
        return self._pool._requests(self._lane)

    def wants(self, subscription_id: str) -> bool:
        return self._pool._lane_of.get(subscription_id) == self._lane

    async def on_event(
        self, connection: RelayConnection, subscription_id: str, event: Event, *, live: bool
    ) -> None:
        await self._pool.on_event(connection, subscription_id, event, live=live)

    def on_eose(self, connection: RelayConnection, subscription_id: str) -> None:
        self._pool.on_eose(connection, subscription_id)

    def on_closed(self, connection: RelayConnection, subscription_id: str, message: str) -> None:
        self._pool.on_closed(connection, subscription_id, message)

    def on_state(self, connection: RelayConnection) -> None:
        self._pool.on_state(connection)


class RelayPool:
    """Connections to several relays, used as ``async with RelayPool(urls) as pool``."""

    def __init__(
        self,
        relays: Iterable[str] = (),
        *,
        auth_key: SecretKey | None = None,
        options: PoolOptions | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._options = options or PoolOptions()
        self._clock = clock
        self._auth_key = auth_key
        self._connections: dict[str, RelayConnection] = {}
        # Sockets to a relay beyond its first, for REQs past ``max_subscriptions``.
        self._lanes: dict[str, list[RelayConnection]] = {}
        self._lane_of: dict[str, int] = {}  # subscription part -> lane (0: first socket)
        self._lane_load: list[int] = [0]  # parts per lane
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._parts: dict[str, Subscription] = {}
        self._verified: BoundedSet[str] = BoundedSet(self._options.seen_capacity)
        self._counter = itertools.count()
        self._prefix = os.urandom(4).hex()
        self._started = False
        self.state_changed = asyncio.Condition()
        for url in relays:
            self._connections[url] = self._new_connection(url)

    def _new_connection(self, url: str, owner: ConnectionOwner | None = None) -> RelayConnection:
        return RelayConnection(
            url,
            owner or self,
            clock=self._clock,
            options=self._options.connection,
            auth_key=self._auth_key,
        )

    def _socket(self, url: str, lane: int) -> RelayConnection:
        """The socket to ``url`` that carries ``lane``'s REQs, opened if new."""
        if lane == 0:
            return self._connections[url]
        extra = self._lanes.setdefault(url, [])
        while len(extra) < lane:
            number = len(extra) + 1
            connection = self._new_connection(url, _Lane(self, number))
            extra.append(connection)
            if self._started:
                self._start_task(f"{url}#{number}", connection)
        return extra[lane - 1]

    def _start_task(self, key: str, connection: RelayConnection) -> None:
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(connection.run(), name=f"relay {key}")

    async def __aenter__(self) -> RelayPool:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start a task per relay."""
        self._started = True
        for url, connection in self._connections.items():
            self._start_task(url, connection)
        for url, extra in self._lanes.items():
            for number, connection in enumerate(extra, 1):
                self._start_task(f"{url}#{number}", connection)

    async def close(self) -> None:
        """Close every connection and stop their tasks."""
        self._started = False
        for connection in self._connections.values():
            await connection.close()
        for extra in self._lanes.values():
            for connection in extra:
                await connection.close()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @property
    def relays(self) -> list[str]:
        """Every relay URL in the pool."""
        return list(self._connections)

    @property
    def connected_relays(self) -> list[str]:
        """Relays with an open socket now."""
        return [url for url, c in self._connections.items() if c.is_connected]

    def add_relay(self, url: str) -> None:
        """Add a relay (it receives every open subscription once connected)."""
        if url in self._connections:
            return
        connection = self._new_connection(url)
        self._connections[url] = connection
        if self._started:
            self._start_task(url, connection)
        for lane in range(1, len(self._lane_load)):
            if self._lane_load[lane]:
                self._socket(url, lane)

    async def remove_relay(self, url: str) -> None:
        """Disconnect from a relay and forget it."""
        connection = self._connections.pop(url, None)
        lanes = self._lanes.pop(url, [])
        sockets = [connection, *lanes] if connection is not None else lanes
        keys = [url, *(f"{url}#{number}" for number in range(1, len(lanes) + 1))]
        for socket in sockets:
            await socket.close()
        for key in keys:
            task = self._tasks.pop(key, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def wait_connected(self, timeout: float, *, count: int = 1) -> bool:
        """Wait until ``count`` relays (at least one by default) are connected."""
        want = min(count, len(self._connections))

        async def enough() -> None:
            async with self.state_changed:
                await self.state_changed.wait_for(lambda: len(self.connected_relays) >= want)

        try:
            async with asyncio.timeout(timeout):
                await enough()
        except TimeoutError:
            return False
        return True

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(
        self, filters: Sequence[Filter], *, queue_size: int | None = None
    ) -> Subscription:
        """Open a subscription on every relay."""
        sub_id = f"{self._prefix}{next(self._counter):x}"
        subscription = Subscription(
            self,
            sub_id,
            tuple(filters),
            queue_size or self._options.queue_size,
            DeliveryFilter(
                copy_window=self._options.copy_window,
                resend_gap=self._options.resend_gap,
                capacity=max(4 * (queue_size or self._options.queue_size), 4096),
            ),
        )
        self._subscriptions[sub_id] = subscription
        await self._open_parts(subscription)
        return subscription

    async def _open_parts(self, subscription: Subscription) -> None:
        groups = split_filters(
            subscription.filters,
            max_values=self._options.max_filter_values,
            max_filters=self._options.max_filters_per_req,
            max_bytes=self._options.max_req_bytes,
        )
        new_parts = (
            {subscription.id: groups[0]}
            if len(groups) == 1
            else {f"{subscription.id}.{i}": group for i, group in enumerate(groups)}
        )
        stale = {
            part_id: self._release(part_id)
            for part_id in subscription.parts.keys() - new_parts.keys()
        }
        # A part the relays already hold as asked (or asking for more history) is not sent
        # again: adding one wallet key to 100,000 must not send every REQ again.
        kept = {
            part_id: subscription.parts[part_id]
            for part_id, group in new_parts.items()
            if _covers(subscription.parts.get(part_id), group)
        }
        changed = {part_id: g for part_id, g in new_parts.items() if part_id not in kept}
        subscription.parts = {**new_parts, **kept}
        # ``eose`` now waits for the changed parts only.
        for seen in subscription._eose_parts.values():
            seen -= changed.keys() | stale.keys()
        if changed or not subscription.parts:
            subscription.eose.clear()
        for part_id in stale:
            self._parts.pop(part_id, None)
        for part_id in new_parts:
            self._parts[part_id] = subscription
            if part_id not in self._lane_of:
                self._place(part_id)
        for url in list(self._connections):
            for part_id, lane in stale.items():
                await self._socket(url, lane).unsubscribe(part_id)
            for part_id, group in changed.items():
                await self._socket(url, self._lane_of[part_id]).subscribe(part_id, group)

    def _place(self, part_id: str) -> None:
        """Put a new subscription part on the first socket with room for it."""
        limit = max(1, self._options.max_subscriptions)
        lane = next((i for i, load in enumerate(self._lane_load) if load < limit), None)
        if lane is None:
            lane = len(self._lane_load)
            self._lane_load.append(0)
        self._lane_of[part_id] = lane
        self._lane_load[lane] += 1

    def _release(self, part_id: str) -> int:
        """Forget where a part was; its lane."""
        lane = self._lane_of.pop(part_id, 0)
        self._lane_load[lane] = max(0, self._lane_load[lane] - 1)
        return lane

    async def _resubscribe(self, subscription: Subscription, filters: tuple[Filter, ...]) -> None:
        subscription.filters = filters
        await self._open_parts(subscription)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.id, None)
        for part_id in subscription.parts:
            self._parts.pop(part_id, None)
            lane = self._release(part_id)
            for url in list(self._connections):
                await self._socket(url, lane).unsubscribe(part_id)

    # -- ConnectionOwner -----------------------------------------------------------------

    def requests(self) -> dict[str, tuple[Filter, ...]]:
        return self._requests(0)

    def wants(self, subscription_id: str) -> bool:
        return self._lane_of.get(subscription_id) == 0

    def _requests(self, lane: int) -> dict[str, tuple[Filter, ...]]:
        """The subscription parts one lane's sockets carry."""
        return {
            part_id: s.parts[part_id]
            for part_id, s in self._parts.items()
            if self._lane_of.get(part_id, 0) == lane
        }

    async def on_event(
        self, connection: RelayConnection, subscription_id: str, event: Event, *, live: bool
    ) -> None:
        subscription = self._parts.get(subscription_id)
        if subscription is None:
            return
        # The id is always recomputed (one sha256): a copy reusing a verified id with other
        # fields (an expiration tag removed, say) must fail. Only the Schnorr check is cached,
        # and failures are not remembered: a forged copy must not block the real event.
        if not event.id_matches():
            log.info("relay %s sent an event whose id does not match", connection.url)
            return
        if event.id not in self._verified:
            if not event.signature_valid():
                log.info("relay %s sent an invalid event %s", connection.url, event.id)
                return
            self._verified.add(event.id)
        if not any(f.matches(event) for f in subscription.filters):
            return  # a relay that ignores filters must not reach the consumer
        await subscription._deliver(event, connection.url, live=live)

    def on_eose(self, connection: RelayConnection, subscription_id: str) -> None:
        subscription = self._parts.get(subscription_id)
        if subscription is not None:
            subscription._on_eose(connection.url, subscription_id)

    def on_closed(self, connection: RelayConnection, subscription_id: str, message: str) -> None:
        subscription = self._parts.get(subscription_id)
        if subscription is None:
            return
        subscription.closed_reasons[connection.url] = message
        subscription._on_eose(connection.url, subscription_id)
        if message.startswith(("error:", "rate-limited:")):
            # A transient refusal: ask again after a pause. Other reasons are final.
            task = asyncio.get_running_loop().create_task(
                self._retry_part(connection, subscription_id)
            )
            task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def _retry_part(self, connection: RelayConnection, part_id: str) -> None:
        await asyncio.sleep(self._options.connection.backoff_base * 8)
        subscription = self._parts.get(part_id)
        if subscription is not None and part_id in subscription.parts:
            await connection.subscribe(part_id, subscription.parts[part_id])

    def on_state(self, connection: RelayConnection) -> None:
        async def notify() -> None:
            async with self.state_changed:
                self.state_changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    # -- publishing ----------------------------------------------------------------------

    async def publish(
        self,
        event: Event,
        *,
        timeout: float = 5.0,
        relays: Iterable[str] | None = None,
        first: bool = False,
    ) -> PublishResult:
        """Send ``event`` to every relay (or ``relays``) and wait up to ``timeout`` for OKs.

        Relays that are down get the event when they reconnect, as long as
        nobody has given up on it. Returns as soon as every relay answered or,
        with ``first``, as soon as one relay accepted it (the others are still
        waited for, in the background, up to ``timeout``).
        """
        targets = list(relays) if relays is not None else list(self._connections)
        for url in targets:
            if url not in self._connections:
                self.add_relay(url)
        waiters = {url: self._connections[url].publish(event) for url in targets}
        deadline = asyncio.get_running_loop().time() + timeout
        pending = set(waiters.values())
        while pending:
            done, pending = await asyncio.wait(
                pending,
                timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
                return_when=asyncio.FIRST_COMPLETED if first else asyncio.ALL_COMPLETED,
            )
            if not done:
                break  # timed out
            if first and any(w.result().accepted for w in done if not w.cancelled()):
                if pending:
                    rest = asyncio.ensure_future(asyncio.wait(pending, timeout=timeout))
                    rest.add_done_callback(lambda _: self._tally(event, waiters))
                    return self._tally(event, waiters, final=False)
                break
        return self._tally(event, waiters)

    def _tally(
        self, event: Event, waiters: dict[str, asyncio.Future[OkResult]], *, final: bool = True
    ) -> PublishResult:
        """What each relay did with ``event``; when ``final``, give up waiting on the rest."""
        accepted: list[str] = []
        rejected: dict[str, str] = {}
        unconfirmed: list[str] = []
        sent: list[str] = []
        for url, waiter in waiters.items():
            if waiter.done() and not waiter.cancelled():
                result: OkResult = waiter.result()
                if result.accepted:
                    accepted.append(url)
                else:
                    rejected[url] = result.message
                continue
            unconfirmed.append(url)
            if not final:
                continue
            waiter.cancel()
            connection = self._connections.get(url)
            # Sent but never confirmed (some relays never OK ephemeral kinds): do not
            # re-send it on every reconnect. Not sent yet: it stays queued for the relay.
            if connection is not None and connection.forget(event.id):
                sent.append(url)
        return PublishResult(event.id, tuple(accepted), rejected, tuple(unconfirmed), tuple(sent))
