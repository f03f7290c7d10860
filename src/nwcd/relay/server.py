"""A small in-memory Nostr relay for the demo and for fault injection in tests.

**For local use only**: it keeps everything in memory, has no rate limits, no
persistence and no access control beyond optional NIP-42 auth. Bind it to
loopback; never expose it to a network.

It implements the part of NIP-01 that NWC needs, plus NIP-42:

* ``["EVENT", e]``: the id and signature are checked; the answer is
  ``["OK", id, true|false, "prefix: message"]`` (``invalid:``, ``duplicate:``,
  ``blocked:``, ``auth-required:``). Ephemeral kinds (20000-29999) go to live
  subscribers only; replaceable kinds keep the latest event per
  (pubkey, kind), addressable kinds (30000-39999) per (pubkey, kind, ``d``);
  other events are kept, the newest ``max_events`` of them.
* ``["REQ", sub, filter, ...]``: stored matches (newest first, ``limit`` per
  filter), ``["EOSE", sub]``, then live matches. A bad REQ gets ``CLOSED``.
* ``["CLOSE", sub]``; malformed messages get a ``NOTICE`` and the connection
  stays open.
* Size: a message over ``max_message_bytes`` is refused (``OK false`` for an
  event, else ``NOTICE``); one over four times that closes the connection
  (code 1009), as the websocket layer will not even buffer it.

Theory of operation: each connection's messages are handled synchronously in
its receive loop (verify, store, fan out), and every outgoing message is
written without awaiting (``websockets.broadcast``), so a relay round trip is
one pass through the event loop. An event is JSON-encoded once; each
subscription only wraps it with its id. Per-connection order is kept, also
when :attr:`FaultPlan.delay_ms` is set (delayed messages go through a queue).
There is no backpressure: a client whose write buffer exceeds 16 MiB is
dropped. asyncio sets ``TCP_NODELAY`` on its sockets; we set it again
explicitly, since Nagle plus delayed ACK costs ~40 ms per round trip.

Faults: tests change :attr:`LocalRelay.faults` (a :class:`FaultPlan`) while the
relay runs, and call :meth:`LocalRelay.drop_connections`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from nwcd.errors import InvalidEvent, InvalidMessage
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind, is_ephemeral, is_replaceable
from nwcd.nostr.messages import (
    ClientAuth,
    ClientClose,
    ClientEvent,
    ClientReq,
    parse_client_message,
)

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "FaultPlan", "LocalRelay", "run_relay"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES: Final = 128 * 1024
DEFAULT_MAX_EVENTS: Final = 10_000
_HARD_LIMIT_FACTOR: Final = 4
_MAX_WRITE_BUFFER: Final = 16 * 1024 * 1024
_MAX_SEEN_IDS: Final = 100_000
_AUTH_MAX_SKEW: Final = 600


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _is_addressable(kind: int) -> bool:
    return 30000 <= kind < 40000


@dataclass
class FaultPlan:
    """Misbehaviours to inject; tests may change the fields while the relay runs.

    Attributes:
        delay_ms: hold every message the relay sends for this long (a slow link);
            order is kept.
        duplicate_delivery: send every ``EVENT`` to a subscription twice.
        reject_publishes: answer every published event ``OK false`` with
            ``reject_message`` and drop it.
        close_subscriptions: answer every new ``REQ`` with ``CLOSED`` and
            ``close_message``.
        no_ok_for_ephemeral: send no ``OK`` for ephemeral kinds, yet forward
            them (what nostr-rs-relay does).
        refuse_connections: refuse websocket handshakes with HTTP 503.
    """

    delay_ms: int = 0
    duplicate_delivery: bool = False
    reject_publishes: bool = False
    reject_message: str = "blocked: publishing is disabled by the fault plan"
    close_subscriptions: bool = False
    close_message: str = "error: subscriptions are disabled by the fault plan"
    no_ok_for_ephemeral: bool = False
    refuse_connections: bool = False


@dataclass(frozen=True, slots=True)
class _Stored:
    """An event with its wire JSON, encoded once."""

    event: Event
    json: str


@dataclass(slots=True)
class _Subscription:
    prefix: str  # '["EVENT",<sub id>,' ready to wrap an event
    filters: tuple[Filter, ...]


class _Client:
    """One websocket connection: its subscriptions, auth state and send queue."""

    def __init__(self, ws: ServerConnection, relay: LocalRelay) -> None:
        self.ws = ws
        self.relay = relay
        self.subscriptions: dict[str, _Subscription] = {}
        self.challenge = secrets.token_hex(16)
        self.authed: set[str] = set()
        self._delayed: deque[tuple[float, str]] = deque()
        self._flusher: asyncio.Task[None] | None = None

    def send(self, text: str) -> None:
        """Write now, or queue behind a fault-plan delay (never reordering)."""
        delay = self.relay.faults.delay_ms
        if delay <= 0 and not self._delayed:
            self._write(text)
            return
        due = asyncio.get_running_loop().time() + max(delay, 0) / 1000
        self._delayed.append((due, text))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())

    def _write(self, text: str) -> None:
        broadcast((self.ws,), text)
        transport = self.ws.transport
        if transport is not None and transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
            logger.warning("dropping a client that does not read (write buffer full)")
            transport.abort()

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._delayed:
                due, text = self._delayed[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._delayed.popleft()
                self._write(text)
        finally:
            self._flusher = None

    async def aclose(self) -> None:
        """Forget queued messages and end the flusher; the connection is gone."""
        self._delayed.clear()
        flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
            await asyncio.wait([flusher])


class LocalRelay:
    """An in-memory NIP-01 relay on ``host:port`` (port 0 picks a free port).

    Use as ``async with LocalRelay() as relay: ... relay.url ...``.

    Args:
        host: address to bind; keep it on loopback.
        port: TCP port, 0 for any free one.
        max_message_bytes: largest client message handled (bytes of the frame).
        auth_required: NIP-42 mode: send ``AUTH`` on connect and refuse ``EVENT``
            and ``REQ`` until the client has authenticated.
        max_events: how many regular events to keep (oldest go first).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        auth_required: bool = False,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        if max_message_bytes < 1 or max_events < 1:
            raise ValueError("max_message_bytes and max_events must be positive")
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.auth_required = auth_required
        self.max_events = max_events
        self.faults = FaultPlan()
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._regular: OrderedDict[str, _Stored] = OrderedDict()
        self._latest: dict[tuple[str, int, str], _Stored] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections; ``port`` becomes the bound port."""
        if self._server is not None:
            raise RuntimeError("relay already started")
        self._server = await serve(
            self._handle_connection,
            self.host,
            self.port,
            compression=None,  # loopback: deflate only costs CPU
            max_size=self.max_message_bytes * _HARD_LIMIT_FACTOR,
            process_request=self._process_request,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("local relay listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (code 1001) and stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> LocalRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``ws://host:port`` of the running relay."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def connection_count(self) -> int:
        """How many websocket clients are connected now."""
        return len(self._clients)

    async def drop_connections(self) -> None:
        """Cut every connection abruptly (no close handshake), like a network failure.

        Returns once every connection handler has finished; the relay keeps
        listening, so clients can reconnect.
        """
        connections = [client.ws for client in self._clients]
        for ws in connections:
            if ws.transport is not None:
                ws.transport.abort()
        for ws in connections:
            await ws.wait_closed()

    def stored_events(self) -> list[Event]:
        """Every stored event (regular and latest replaceable), for assertions."""
        return [s.event for s in (*self._regular.values(), *self._latest.values())]

    # -- connection handling ------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if self.faults.refuse_connections:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "refused by the fault plan\n")
        return None

    async def _handle_connection(self, ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket") if ws.transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = _Client(ws, self)
        self._clients.add(client)
        try:
            if self.auth_required:
                client.send(_dumps(["AUTH", client.challenge]))
            while True:
                data = await ws.recv(decode=False)
                try:
                    self._handle_message(client, data)
                except Exception:  # a bug here must not take the relay down
                    logger.exception("local relay failed on a message")
                    client.send(_dumps(["NOTICE", "error: internal error"]))
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            await client.aclose()

    def _handle_message(self, client: _Client, data: bytes) -> None:
        if len(data) > self.max_message_bytes:
            self._refuse_oversized(client, data)
            return
        try:
            message = parse_client_message(data)
        except (InvalidMessage, InvalidEvent) as exc:
            self._refuse_malformed(client, data, str(exc))
            return
        match message:
            case ClientEvent(event=event):
                self._on_event(client, event)
            case ClientReq(subscription_id=sub_id, filters=filters):
                self._on_req(client, sub_id, filters)
            case ClientClose(subscription_id=sub_id):
                client.subscriptions.pop(sub_id, None)
            case ClientAuth(event=event):
                self._on_auth(client, event)

    def _refuse_oversized(self, client: _Client, data: bytes) -> None:
        reason = f"message is {len(data)} bytes, the limit is {self.max_message_bytes}"
        event_id = _peek_event_id(data)
        if event_id is not None:
            client.send(_dumps(["OK", event_id, False, f"invalid: {reason}"]))
        else:
            client.send(_dumps(["NOTICE", f"invalid: {reason}"]))

    def _refuse_malformed(self, client: _Client, data: bytes, reason: str) -> None:
        """Answer in the way the client can match: OK for an EVENT, CLOSED for a REQ."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raw = None
        if isinstance(raw, list) and len(raw) >= 2:
            if raw[0] == "EVENT" and isinstance(raw[1], dict):
                event_id = raw[1].get("id")
                if isinstance(event_id, str):
                    client.send(_dumps(["OK", event_id, False, f"invalid: {reason}"]))
                    return
            if raw[0] == "REQ" and isinstance(raw[1], str) and raw[1]:
                client.send(_dumps(["CLOSED", raw[1], f"invalid: {reason}"]))
                return
        client.send(_dumps(["NOTICE", f"invalid: {reason}"]))

    # -- EVENT ----------------------------------------------------------------

    def _on_event(self, client: _Client, event: Event) -> None:
        faults = self.faults
        ephemeral = is_ephemeral(event.kind)

        def answer(accepted: bool, message: str) -> None:
            if ephemeral and faults.no_ok_for_ephemeral:
                return
            client.send(_dumps(["OK", event.id, accepted, message]))

        if self.auth_required and not client.authed:
            answer(False, "auth-required: authenticate with NIP-42 first")
            return
        if faults.reject_publishes:
            answer(False, faults.reject_message)
            return
        if event.kind == Kind.CLIENT_AUTH:
            answer(False, "invalid: kind 22242 is sent with AUTH, not EVENT")
            return
        try:
            event.verify()
        except InvalidEvent as exc:
            answer(False, f"invalid: {exc}")
            return
        # Ephemeral events are not kept, so (as on strfry and nostr-rs-relay) a copy
        # published again is forwarded again: how a lost NWC answer gets re-sent.
        if not ephemeral:
            if event.id in self._seen:
                answer(True, "duplicate: already have this event")
                return
            self._remember(event.id)
        stored = _Stored(event, _dumps(event.to_json()))
        if not ephemeral and not self._store(stored):
            answer(True, "duplicate: a newer event of this kind is stored")
            return
        answer(True, "")
        self._fan_out(stored)

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        if len(self._seen) > _MAX_SEEN_IDS:
            self._seen.popitem(last=False)

    def _store(self, stored: _Stored) -> bool:
        """Keep the event; False if a newer replaceable one already wins."""
        event = stored.event
        if is_replaceable(event.kind) or _is_addressable(event.kind):
            d_tag = (event.tag_value("d") or "") if _is_addressable(event.kind) else ""
            key = (event.pubkey, event.kind, d_tag)
            current = self._latest.get(key)
            if current is not None and (current.event.created_at, event.id) > (
                event.created_at,
                current.event.id,
            ):
                # NIP-01: the newest wins; on a tie, the lowest id.
                return False
            self._latest[key] = stored
            return True
        self._regular[event.id] = stored
        if len(self._regular) > self.max_events:
            self._regular.popitem(last=False)
        return True

    def _fan_out(self, stored: _Stored) -> None:
        copies = 2 if self.faults.duplicate_delivery else 1
        event = stored.event
        for client in tuple(self._clients):
            for sub in client.subscriptions.values():
                if any(f.matches(event) for f in sub.filters):
                    text = sub.prefix + stored.json + "]"
                    for _ in range(copies):
                        client.send(text)

    # -- REQ ------------------------------------------------------------------

    def _on_req(self, client: _Client, sub_id: str, filters: tuple[Filter, ...]) -> None:
        if self.auth_required and not client.authed:
            client.send(_dumps(["CLOSED", sub_id, "auth-required: authenticate with NIP-42"]))
            return
        if self.faults.close_subscriptions:
            client.subscriptions.pop(sub_id, None)
            client.send(_dumps(["CLOSED", sub_id, self.faults.close_message]))
            return
        sub = _Subscription(f'["EVENT",{_dumps(sub_id)},', filters)
        client.subscriptions[sub_id] = sub
        copies = 2 if self.faults.duplicate_delivery else 1
        for stored in self._query(filters):
            text = sub.prefix + stored.json + "]"
            for _ in range(copies):
                client.send(text)
        client.send(_dumps(["EOSE", sub_id]))

    def _query(self, filters: Iterable[Filter]) -> list[_Stored]:
        """Stored events matching any filter: newest first, ``limit`` per filter."""
        found: dict[str, _Stored] = {}
        pool = (*self._regular.values(), *self._latest.values())
        for flt in filters:
            if flt.limit == 0:
                continue
            if flt.ids is not None:
                candidates: Iterable[_Stored] = (
                    s for i in flt.ids if (s := self._by_id(i)) is not None
                )
            else:
                candidates = pool
            matches = [s for s in candidates if flt.matches(s.event)]
            matches.sort(key=_newest_first)
            if flt.limit is not None:
                matches = matches[: flt.limit]
            for s in matches:
                found[s.event.id] = s
        return sorted(found.values(), key=_newest_first)

    def _by_id(self, event_id: str) -> _Stored | None:
        stored = self._regular.get(event_id)
        if stored is not None:
            return stored
        for s in self._latest.values():
            if s.event.id == event_id:
                return s
        return None

    # -- AUTH -----------------------------------------------------------------

    def _on_auth(self, client: _Client, event: Event) -> None:
        problem = self._auth_problem(client, event)
        if problem is None:
            client.authed.add(event.pubkey)
            client.send(_dumps(["OK", event.id, True, ""]))
        else:
            client.send(_dumps(["OK", event.id, False, problem]))

    def _auth_problem(self, client: _Client, event: Event) -> str | None:
        """Why a NIP-42 auth event is not acceptable, or None if it is."""
        if event.kind != Kind.CLIENT_AUTH:
            return "invalid: an AUTH event has kind 22242"
        try:
            event.verify()
        except InvalidEvent as exc:
            return f"invalid: {exc}"
        if event.tag_value("challenge") != client.challenge:
            return "invalid: wrong or missing challenge"
        if not self._is_our_url(event.tag_value("relay")):
            return "invalid: the relay tag does not name this relay"
        if abs(event.created_at - time.time()) > _AUTH_MAX_SKEW:
            return "invalid: created_at is too far from now"
        return None

    def _is_our_url(self, url: str | None) -> bool:
        """Scheme ws/wss and our port; the host is not checked (loopback has many names)."""
        if url is None:
            return False
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            return False
        return parts.scheme in ("ws", "wss") and port == self.port


def _newest_first(stored: _Stored) -> tuple[int, str]:
    return (-stored.event.created_at, stored.event.id)


def _peek_event_id(data: bytes) -> str | None:
    """The id of an ``["EVENT", {...}]`` message, without validating anything else."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if isinstance(raw, list) and len(raw) == 2 and raw[0] == "EVENT" and isinstance(raw[1], dict):
        event_id = raw[1].get("id")
        return event_id if isinstance(event_id, str) else None
    return None


async def run_relay(
    host: str = "127.0.0.1",
    port: int = 7777,
    *,
    auth_required: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    on_listening: Callable[[str], object] | None = None,
) -> None:
    """Run a :class:`LocalRelay` until cancelled (``nwcd relay``).

    Args:
        host: address to bind (keep it on loopback).
        port: TCP port, 0 for any free one.
        auth_required: NIP-42 mode.
        max_message_bytes: largest client message handled.
        on_listening: called with the relay URL once it accepts connections.
    """
    async with LocalRelay(
        host, port, auth_required=auth_required, max_message_bytes=max_message_bytes
    ) as relay:
        if on_listening is not None:
            on_listening(relay.url)
        await asyncio.Future()  # until cancelled
