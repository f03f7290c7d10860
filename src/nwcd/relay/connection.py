"""One relay connection: connect, authenticate, resubscribe, resend, reconnect.

Theory of operation: :meth:`RelayConnection.run` is a loop owned by one task.
Each turn opens a websocket, sends the pool's subscriptions (with ``since``
moved to a safety margin before the last moment this relay was known to be
caught up, so nothing published while we were away is missed), re-sends the
events still waiting for an ``OK``, and then reads messages until the socket
closes. Failures wait an exponentially growing, jittered delay and try again;
one relay that is down never blocks the others, each having its own task.

Messages are handed to the pool (:class:`ConnectionOwner`), which owns the
subscriptions, deduplication and signature checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from nwcd.clock import Clock
from nwcd.errors import InvalidEvent, InvalidMessage
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.nostr.messages import (
    AuthChallenge,
    ClientAuth,
    ClientClose,
    ClientEvent,
    ClientReq,
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayNotice,
    RelayOk,
    encode,
    parse_relay_message,
)

__all__ = ["ConnectionOptions", "ConnectionOwner", "OkResult", "RelayConnection", "backoff_delay"]

log = logging.getLogger("nwcd.relay")

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): exponential, capped, jittered.

    "Equal jitter": half the exponential delay is fixed, half random, so
    reconnecting clients spread out but never retry in a tight loop.
    """
    delay: float = min(cap, base * (2 ** min(attempt, 32)))
    return delay / 2 + rng() * delay / 2


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """Tuning for one relay connection."""

    connect_timeout: float = 10.0
    backoff_base: float = 0.25
    backoff_cap: float = 30.0
    resubscribe_margin: int = 60
    max_message_bytes: int = 4 * 1024 * 1024
    outbox_capacity: int = 10_000
    max_resends: int = 3
    ping_interval: float | None = 20.0


@dataclass(frozen=True, slots=True)
class OkResult:
    """A relay's answer to one published event."""

    accepted: bool
    message: str


class ConnectionOwner(Protocol):
    """What a connection needs from the pool that owns it."""

    def requests(self) -> dict[str, tuple[Filter, ...]]:
        """Every subscription part to open: REQ id -> filters."""
        ...

    def wants(self, subscription_id: str) -> bool:
        """Whether ``subscription_id`` is one of :meth:`requests` (asked per event)."""
        ...

    async def on_event(
        self, connection: RelayConnection, subscription_id: str, event: Event, *, live: bool
    ) -> None:
        """An event arrived (not yet deduplicated or verified); ``live``: after the
        relay's EOSE for this subscription, i.e. not a replay of stored events."""
        ...

    def on_eose(self, connection: RelayConnection, subscription_id: str) -> None:
        """The relay sent all stored events of a subscription."""
        ...

    def on_closed(self, connection: RelayConnection, subscription_id: str, message: str) -> None:
        """The relay ended a subscription."""
        ...

    def on_state(self, connection: RelayConnection) -> None:
        """The connection went up or down."""
        ...


class RelayConnection:
    """One websocket to one relay, kept open for as long as the pool runs."""

    def __init__(
        self,
        url: str,
        owner: ConnectionOwner,
        *,
        clock: Clock,
        options: ConnectionOptions,
        auth_key: SecretKey | None = None,
    ) -> None:
        self.url = url
        self._owner = owner
        self._clock = clock
        self._options = options
        self._auth_key = auth_key
        self._ws: ClientConnection | None = None
        self._outbox: OrderedDict[str, Event] = OrderedDict()
        # Which socket session each outbox event was last written to: only an event
        # written on the live socket may be dropped from the outbox unconfirmed.
        self._sessions = 0
        self._sent_on: dict[str, int] = {}
        self._resends: dict[str, int] = {}
        self._waiters: dict[str, list[asyncio.Future[OkResult]]] = {}
        self._caught_up: dict[str, int] = {}
        # Subscriptions past their EOSE in this session: what arrives now is live.
        self._live: set[str] = set()
        self._auth_event_id: str | None = None
        self.authenticated = False
        self.connected = asyncio.Event()
        self.attempts = 0

    @property
    def is_connected(self) -> bool:
        return self._ws is not None

    async def run(self) -> None:
        """Connect and reconnect until cancelled."""
        while True:
            try:
                async with connect(
                    self.url,
                    open_timeout=self._options.connect_timeout,
                    max_size=self._options.max_message_bytes,
                    ping_interval=self._options.ping_interval,
                    compression=None,
                ) as ws:
                    self.attempts = 0
                    await self._session(ws)
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                log.info("relay %s: disconnected (%s)", self.url, type(exc).__name__)
            except Exception:
                # A bug must not end this relay's task for good: log it and reconnect.
                log.exception("relay %s: unexpected error; reconnecting", self.url)
            finally:
                if self._ws is not None:
                    self._ws = None
                    # Live until now: a resubscription need only reach back from here.
                    now = int(self._clock.now())
                    for subscription_id in self._caught_up:
                        self._caught_up[subscription_id] = now
                    self.connected.clear()
                    self.authenticated = False
                    self._owner.on_state(self)
            await asyncio.sleep(
                backoff_delay(
                    self.attempts, base=self._options.backoff_base, cap=self._options.backoff_cap
                )
            )
            self.attempts += 1

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._sessions += 1
        self._live.clear()
        self.connected.set()
        self._owner.on_state(self)
        log.info("relay %s: connected", self.url)
        for subscription_id, filters in self._owner.requests().items():
            await self._send_req(subscription_id, filters)
        for event in list(self._outbox.values()):
            # An event the relay keeps dropping the connection over (too large, say)
            # must not take every reconnect down with it: give up on it after a few.
            resends = self._resends[event.id] = self._resends.get(event.id, 0) + 1
            if resends > self._options.max_resends:
                log.warning("relay %s: giving up on event %s", self.url, event.id)
                self._settle(event.id, OkResult(False, "error: the relay did not take it"))
                continue
            await self._send_event(event)
        quick = _quickack_socket(ws)
        try:
            async for raw in ws:
                if quick is not None and _QUICKACK is not None:
                    # Acknowledge at once: a relay that does not set TCP_NODELAY (nostr-sdk's)
                    # otherwise holds its next message until our delayed ACK, ~40 ms later.
                    with contextlib.suppress(OSError):
                        quick.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                await self._dispatch(raw)
        finally:
            if quick is not None:
                quick.close()

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = parse_relay_message(raw)
        except (InvalidMessage, InvalidEvent) as exc:
            log.debug("relay %s: ignoring malformed message: %s", self.url, exc)
            return
        match message:
            case RelayEvent(subscription_id, event):
                live = subscription_id in self._live
                await self._owner.on_event(self, subscription_id, event, live=live)
                # Only for our own subscriptions, and never past "now": an event dated in
                # the future must not move a resubscription's ``since`` beyond live events.
                if self._owner.wants(subscription_id):
                    seen = min(event.created_at, int(self._clock.now()))
                    if seen > self._caught_up.get(subscription_id, 0):
                        self._caught_up[subscription_id] = seen
            case RelayOk(event_id, accepted, text):
                await self._on_ok(event_id, accepted, text)
            case RelayEose(subscription_id):
                self._live.add(subscription_id)
                self._caught_up[subscription_id] = int(self._clock.now())
                self._owner.on_eose(self, subscription_id)
            case RelayClosed(subscription_id, text):
                await self._on_closed(subscription_id, text)
            case RelayNotice(text):
                log.info("relay %s: NOTICE %s", self.url, text[:200])
            case AuthChallenge(challenge):
                await self._authenticate(challenge)

    async def _on_ok(self, event_id: str, accepted: bool, text: str) -> None:
        if event_id == self._auth_event_id:
            self.authenticated = accepted
            self._auth_event_id = None
            if accepted:
                # Subscriptions and publishes refused before auth go out again.
                for subscription_id, filters in self._owner.requests().items():
                    await self._send_req(subscription_id, filters)
                for event in list(self._outbox.values()):
                    await self._send_event(event)
            else:
                log.warning("relay %s: authentication refused: %s", self.url, text[:200])
            return
        if not accepted and text.startswith("auth-required:") and self._auth_key is not None:
            return  # kept in the outbox, re-sent once authenticated
        self._settle(event_id, OkResult(accepted, text))

    def _settle(self, event_id: str, result: OkResult) -> None:
        """The relay answered (or we gave up): stop re-sending, tell the publishers."""
        self._outbox.pop(event_id, None)
        self._sent_on.pop(event_id, None)
        self._resends.pop(event_id, None)
        for waiter in self._waiters.pop(event_id, []):
            if not waiter.done():
                waiter.set_result(result)

    async def _on_closed(self, subscription_id: str, text: str) -> None:
        if not self._owner.wants(subscription_id):
            return
        if text.startswith("auth-required:") and self._auth_key is not None:
            return  # re-sent after AUTH succeeds
        log.warning("relay %s: subscription %s closed: %s", self.url, subscription_id, text[:200])
        self._owner.on_closed(self, subscription_id, text)

    async def _authenticate(self, challenge: str) -> None:
        if self._auth_key is None:
            log.info("relay %s asks for AUTH but no key is configured", self.url)
            return
        event = sign_event(
            self._auth_key,
            kind=Kind.CLIENT_AUTH,
            content="",
            tags=[["relay", self.url], ["challenge", challenge]],
            created_at=int(self._clock.now()),
        )
        self._auth_event_id = event.id
        await self.send_raw(encode(ClientAuth(event)))

    async def _send_req(self, subscription_id: str, filters: tuple[Filter, ...]) -> None:
        self._live.discard(subscription_id)
        await self.send_raw(
            encode(ClientReq(subscription_id, self._resume(subscription_id, filters)))
        )

    def _resume(self, subscription_id: str, filters: tuple[Filter, ...]) -> tuple[Filter, ...]:
        """Move ``since`` to just before the last moment this relay was caught up."""
        caught_up = self._caught_up.get(subscription_id)
        if caught_up is None:
            return filters
        since = max(0, caught_up - self._options.resubscribe_margin)
        return tuple(
            f if f.since is not None and f.since >= since else replace(f, since=since)
            for f in filters
        )

    async def send_raw(self, text: str) -> bool:
        """Send one message if connected; False if the socket is down."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def subscribe(self, subscription_id: str, filters: tuple[Filter, ...]) -> None:
        """Open or replace one subscription part (sent now if connected, else on connect)."""
        await self._send_req(subscription_id, filters)

    async def unsubscribe(self, subscription_id: str) -> None:
        """Close one subscription part."""
        self._caught_up.pop(subscription_id, None)
        await self.send_raw(encode(ClientClose(subscription_id)))

    def publish(self, event: Event) -> asyncio.Future[OkResult]:
        """Send ``event`` now or when connected; the future resolves on the relay's OK."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[OkResult] = loop.create_future()
        self._waiters.setdefault(event.id, []).append(waiter)
        waiter.add_done_callback(lambda fut: self._forget_waiter(event.id, fut))
        if event.id not in self._outbox:
            self._outbox[event.id] = event
            while len(self._outbox) > self._options.outbox_capacity:
                dropped, _ = self._outbox.popitem(last=False)
                self._sent_on.pop(dropped, None)
                self._resends.pop(dropped, None)
            if self._ws is not None:
                task = loop.create_task(self._send_event(event))
                task.add_done_callback(_consume)
        return waiter

    async def _send_event(self, event: Event) -> bool:
        session = self._sessions
        sent = await self.send_raw(encode(ClientEvent(event)))
        if sent:
            self._sent_on[event.id] = session
        return sent

    def forget(self, event_id: str) -> bool:
        """Stop re-sending ``event_id`` if the live socket took it (its publisher gave up
        on an OK, as some relays never send one for ephemeral kinds); True if it did."""
        if self._ws is not None and self._sent_on.get(event_id) == self._sessions:
            self._outbox.pop(event_id, None)
            self._sent_on.pop(event_id, None)
            self._resends.pop(event_id, None)
            return True
        return False

    def _forget_waiter(self, event_id: str, waiter: asyncio.Future[OkResult]) -> None:
        waiters = self._waiters.get(event_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[event_id]

    async def close(self) -> None:
        """Close the socket (the run task is cancelled by the pool)."""
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.close()


def _quickack_socket(ws: ClientConnection) -> socket.socket | None:
    """A duplicate of the connection's socket for setting TCP_QUICKACK after each read, or
    None (not Linux, no socket). The transport's own socket object will not do: uvloop's
    builds a Python socket for every setsockopt, a cost per message; the duplicate shares
    the kernel socket, so its options are the connection's. Close it with the session."""
    if _QUICKACK is None:
        return None
    sock = ws.transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        return socket.fromfd(sock.fileno(), sock.family, sock.type)
    except OSError:
        return None


def _consume(task: asyncio.Task[bool]) -> None:
    if not task.cancelled():
        task.exception()
