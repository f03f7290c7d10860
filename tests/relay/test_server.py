"""The local relay (nwcd.relay.server) driven by a plain websockets client."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.relay.server import FaultPlan, LocalRelay, run_relay

TIMEOUT = 5.0


def now() -> int:
    return int(time.time())


def make_event(
    secret: SecretKey | None = None,
    *,
    kind: int = 1,
    content: str = "hello",
    tags: list[list[str]] | None = None,
    created_at: int | None = None,
) -> Event:
    return sign_event(
        secret or SecretKey.generate(),
        kind=kind,
        content=content,
        tags=tags or [],
        created_at=now() if created_at is None else created_at,
    )


class Client:
    """A thin test client: JSON in, JSON out, every receive bounded by a timeout."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, *message: Any) -> None:
        await self.ws.send(json.dumps(list(message)))

    async def recv(self, timeout: float = TIMEOUT) -> list[Any]:
        data = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        assert isinstance(data, list)
        return data

    async def publish(self, event: Event) -> list[Any]:
        await self.send("EVENT", event.to_json())
        return await self.recv()

    async def req(self, sub_id: str, *filters: dict[str, Any]) -> list[dict[str, Any]]:
        """Open a subscription and collect the stored events up to EOSE."""
        await self.send("REQ", sub_id, *filters)
        events: list[dict[str, Any]] = []
        while True:
            msg = await self.recv()
            if msg[0] == "EOSE":
                assert msg == ["EOSE", sub_id]
                return events
            assert msg[0] == "EVENT", msg
            assert msg[1] == sub_id
            events.append(msg[2])

    async def barrier(self) -> None:
        """Wait until the relay has handled everything sent before (a REQ round trip)."""
        await self.send("REQ", "barrier", {"ids": ["0" * 64]})
        assert await self.recv() == ["EOSE", "barrier"]
        await self.send("CLOSE", "barrier")


@pytest.fixture
async def relay() -> AsyncIterator[LocalRelay]:
    async with LocalRelay() as r:
        yield r


@pytest.fixture
async def client(relay: LocalRelay) -> AsyncIterator[Client]:
    async with connect(relay.url) as ws:
        yield Client(ws)


@pytest.fixture
async def other(relay: LocalRelay) -> AsyncIterator[Client]:
    async with connect(relay.url) as ws:
        yield Client(ws)


# -- publish and subscribe ------------------------------------------------------------


async def test_publish_then_req_returns_stored_event(client: Client, other: Client) -> None:
    event = make_event()
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert await other.req("s", {"ids": [event.id]}) == [event.to_json()]


async def test_live_event_reaches_subscriber(client: Client, other: Client) -> None:
    assert await other.req("live", {"kinds": [1]}) == []
    event = make_event()
    assert (await client.publish(event))[2] is True
    assert await other.recv() == ["EVENT", "live", event.to_json()]


async def test_publisher_own_subscription_gets_ok_then_event(client: Client) -> None:
    await client.req("mine", {"kinds": [7]})
    event = make_event(kind=7)
    await client.send("EVENT", event.to_json())
    assert await client.recv() == ["OK", event.id, True, ""]
    assert await client.recv() == ["EVENT", "mine", event.to_json()]


async def test_close_stops_live_delivery(client: Client, other: Client) -> None:
    await other.req("a", {"kinds": [1]})
    await other.req("b", {"kinds": [1]})
    await other.send("CLOSE", "a")
    await other.barrier()
    event = make_event()
    await client.publish(event)
    assert await other.recv() == ["EVENT", "b", event.to_json()]
    await other.barrier()  # nothing for "a" arrived before the barrier's EOSE


async def test_req_with_same_id_replaces_subscription(client: Client, other: Client) -> None:
    await other.req("s", {"kinds": [1]})
    await other.req("s", {"kinds": [2]})
    one, two = make_event(kind=1), make_event(kind=2)
    await client.publish(one)
    await client.publish(two)
    assert await other.recv() == ["EVENT", "s", two.to_json()]


async def test_bad_signature_is_invalid(client: Client) -> None:
    event = make_event()
    forged = {**event.to_json(), "sig": "00" * 64}
    await client.send("EVENT", forged)
    ok = await client.recv()
    assert ok[:3] == ["OK", event.id, False]
    assert ok[3].startswith("invalid:")


async def test_wrong_id_is_invalid(client: Client) -> None:
    event = make_event()
    tampered = {**event.to_json(), "content": "changed"}
    await client.send("EVENT", tampered)
    ok = await client.recv()
    assert ok[:3] == ["OK", event.id, False]
    assert ok[3].startswith("invalid:")
    assert await client.req("s", {"ids": [event.id]}) == []


async def test_malformed_event_gets_ok_false_with_its_id(client: Client) -> None:
    await client.send("EVENT", {"id": "ab" * 32, "kind": "one"})
    ok = await client.recv()
    assert ok[:3] == ["OK", "ab" * 32, False]
    assert ok[3].startswith("invalid:")


async def test_duplicate(client: Client) -> None:
    event = make_event()
    assert await client.publish(event) == ["OK", event.id, True, ""]
    ok = await client.publish(event)
    assert ok[:3] == ["OK", event.id, True]
    assert ok[3].startswith("duplicate:")


async def test_duplicate_is_not_delivered_again(client: Client, other: Client) -> None:
    await other.req("s", {"kinds": [1]})
    event = make_event(kind=1)
    await client.publish(event)
    assert (await client.publish(event))[3].startswith("duplicate:")
    assert await other.recv() == ["EVENT", "s", event.to_json()]
    await other.barrier()


async def test_ephemeral_copy_is_forwarded_again(client: Client, other: Client) -> None:
    """Ephemeral events are not kept, so nothing marks a second copy as a duplicate."""
    await other.req("s", {"kinds": [23195]})
    event = make_event(kind=23195)
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert await other.recv() == ["EVENT", "s", event.to_json()]
    assert await other.recv() == ["EVENT", "s", event.to_json()]


async def test_ephemeral_forwarded_not_stored(
    relay: LocalRelay, client: Client, other: Client
) -> None:
    await other.req("s", {"kinds": [23195]})
    event = make_event(kind=23195)
    assert await client.publish(event) == ["OK", event.id, True, ""]
    assert await other.recv() == ["EVENT", "s", event.to_json()]
    assert await client.req("later", {"kinds": [23195]}) == []
    assert relay.stored_events() == []


async def test_replaceable_keeps_latest(client: Client) -> None:
    secret = SecretKey.generate()
    old = make_event(secret, kind=13194, content="old", created_at=1000)
    new = make_event(secret, kind=13194, content="new", created_at=2000)
    other_author = make_event(kind=13194, content="other", created_at=1500)
    for event in (old, new, other_author):
        assert (await client.publish(event))[2] is True
    got = await client.req("s", {"kinds": [13194]})
    assert [e["content"] for e in got] == ["new", "other"]
    # An older one published later does not win.
    older = make_event(secret, kind=13194, content="older", created_at=500)
    ok = await client.publish(older)
    assert ok[2] is True
    assert ok[3].startswith("duplicate:")
    got = await client.req("s2", {"kinds": [13194], "authors": [secret.public_key.hex]})
    assert [e["content"] for e in got] == ["new"]


async def test_addressable_kept_per_d_tag(client: Client) -> None:
    secret = SecretKey.generate()
    for d, content, at in (("a", "a1", 1), ("a", "a2", 2), ("b", "b1", 1)):
        await client.publish(
            make_event(secret, kind=30078, content=content, tags=[["d", d]], created_at=at)
        )
    got = await client.req("s", {"kinds": [30078]})
    assert sorted(e["content"] for e in got) == ["a2", "b1"]


async def test_regular_events_bounded() -> None:
    async with LocalRelay(max_events=3) as relay, connect(relay.url) as ws:
        client = Client(ws)
        events = [make_event(created_at=i) for i in range(1, 6)]
        for event in events:
            await client.publish(event)
        got = await client.req("s", {"kinds": [1]})
        assert [e["id"] for e in got] == [e.id for e in reversed(events[2:])]


# -- filters --------------------------------------------------------------------------


@pytest.fixture
async def corpus(client: Client) -> dict[str, Event]:
    alice, bob = SecretKey.generate(), SecretKey.generate()
    wallet = "aa" * 32
    events = {
        "a1": make_event(alice, kind=1, tags=[["p", wallet]], created_at=100),
        "a2": make_event(alice, kind=2, created_at=200),
        "b1": make_event(bob, kind=1, tags=[["p", "bb" * 32], ["e", "cc" * 32]], created_at=300),
        "b3": make_event(bob, kind=3, tags=[["p", wallet]], created_at=400),
    }
    for event in events.values():
        assert (await client.publish(event))[2] is True
    return events


async def _names(client: Client, corpus: dict[str, Event], *filters: dict[str, Any]) -> list[str]:
    by_id = {e.id: name for name, e in corpus.items()}
    return [by_id[e["id"]] for e in await client.req("f", *filters)]


async def test_filter_p_tag(client: Client, corpus: dict[str, Event]) -> None:
    assert await _names(client, corpus, {"#p": ["aa" * 32]}) == ["b3", "a1"]


async def test_filter_kinds_and_authors(client: Client, corpus: dict[str, Event]) -> None:
    assert await _names(client, corpus, {"kinds": [1]}) == ["b1", "a1"]
    alice = corpus["a1"].pubkey
    assert await _names(client, corpus, {"authors": [alice]}) == ["a2", "a1"]
    assert await _names(client, corpus, {"authors": [alice], "kinds": [2]}) == ["a2"]


async def test_filter_since_until_limit(client: Client, corpus: dict[str, Event]) -> None:
    assert await _names(client, corpus, {"since": 200}) == ["b3", "b1", "a2"]
    assert await _names(client, corpus, {"until": 200}) == ["a2", "a1"]
    assert await _names(client, corpus, {"since": 150, "until": 350}) == ["b1", "a2"]
    assert await _names(client, corpus, {"limit": 2}) == ["b3", "b1"]
    assert await _names(client, corpus, {"limit": 0}) == []


async def test_several_filters_are_or(client: Client, corpus: dict[str, Event]) -> None:
    got = await _names(client, corpus, {"kinds": [2]}, {"#e": ["cc" * 32]}, {"kinds": [2]})
    assert got == ["b1", "a2"]


async def test_live_filter_p_tag(client: Client, other: Client) -> None:
    wallet = "dd" * 32
    await other.req("p", {"kinds": [23194], "#p": [wallet]})
    await client.publish(make_event(kind=23194, tags=[["p", "ee" * 32]]))
    wanted = make_event(kind=23194, tags=[["p", wallet]])
    await client.publish(wanted)
    assert await other.recv() == ["EVENT", "p", wanted.to_json()]


async def test_filter_ids(client: Client, corpus: dict[str, Event]) -> None:
    assert await _names(client, corpus, {"ids": [corpus["a2"].id, "ff" * 32]}) == ["a2"]


# -- malformed and oversized messages ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["not json", "{}", "[]", "[1, 2]", '["WHAT", 1]', '["CLOSE"]', '["EVENT"]', "[" * 100_000],
)
async def test_malformed_message_gets_notice_and_connection_survives(
    client: Client, raw: str
) -> None:
    await client.ws.send(raw)
    notice = await client.recv()
    assert notice[0] == "NOTICE"
    assert notice[1].startswith("invalid:")
    event = make_event()
    assert await client.publish(event) == ["OK", event.id, True, ""]


async def test_binary_frame_is_accepted(client: Client) -> None:
    event = make_event()
    await client.ws.send(json.dumps(["EVENT", event.to_json()]).encode())
    assert await client.recv() == ["OK", event.id, True, ""]


@pytest.mark.parametrize(
    "filters",
    [[], [{"kinds": "1"}], [{"unknown": 1}], [{"since": -1}], ["not an object"]],
)
async def test_bad_req_gets_closed(client: Client, filters: list[Any]) -> None:
    await client.send("REQ", "bad", *filters)
    closed = await client.recv()
    assert closed[:2] == ["CLOSED", "bad"]
    assert closed[2].startswith("invalid:")


async def test_too_long_subscription_id(client: Client) -> None:
    await client.send("REQ", "x" * 65, {})
    closed = await client.recv()
    assert closed[0] == "CLOSED"
    assert closed[2].startswith("invalid:")


async def test_oversized_event_refused_connection_kept() -> None:
    async with LocalRelay(max_message_bytes=2048) as relay, connect(relay.url) as ws:
        client = Client(ws)
        big = make_event(content="x" * 4096)
        ok = await client.publish(big)
        assert ok[:3] == ["OK", big.id, False]
        assert ok[3].startswith("invalid:")
        await client.ws.send(json.dumps(["REQ", "s", {"#p": ["y" * 4096]}]))
        notice = await client.recv()
        assert notice[0] == "NOTICE"
        small = make_event()
        assert await client.publish(small) == ["OK", small.id, True, ""]
        assert relay.stored_events() == [small]


async def test_far_oversized_message_closes_connection_only() -> None:
    async with LocalRelay(max_message_bytes=1024) as relay:
        async with connect(relay.url) as ws:
            await ws.send("x" * 5000)
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
        async with connect(relay.url) as ws:
            event = make_event()
            assert await Client(ws).publish(event) == ["OK", event.id, True, ""]


async def test_kind_22242_is_not_published(client: Client) -> None:
    event = make_event(kind=22242)
    ok = await client.publish(event)
    assert ok[:3] == ["OK", event.id, False]


# -- fault injection ------------------------------------------------------------------


async def test_drop_connections_then_reconnect(relay: LocalRelay, client: Client) -> None:
    assert relay.connection_count == 1
    await relay.drop_connections()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(client.ws.recv(), TIMEOUT)
    assert relay.connection_count == 0
    async with connect(relay.url) as ws:
        event = make_event()
        assert await Client(ws).publish(event) == ["OK", event.id, True, ""]


async def test_delay(relay: LocalRelay, client: Client, other: Client) -> None:
    await other.req("s", {"kinds": [1]})
    relay.faults.delay_ms = 150
    first, second = make_event(content="1"), make_event(content="2")
    started = time.monotonic()
    await client.send("EVENT", first.to_json())
    await client.send("EVENT", second.to_json())
    assert (await client.recv())[1] == first.id
    assert (await client.recv())[1] == second.id
    assert time.monotonic() - started >= 0.15
    relay.faults.delay_ms = 0  # messages already queued still come in order
    assert (await other.recv())[2]["id"] == first.id
    assert (await other.recv())[2]["id"] == second.id
    started = time.monotonic()
    await client.publish(make_event())
    assert time.monotonic() - started < 0.15


async def test_drop_with_delayed_messages_queued(relay: LocalRelay, client: Client) -> None:
    relay.faults.delay_ms = 10_000
    await client.send("EVENT", make_event().to_json())
    await client.send("REQ", "s", {})
    (server_side,) = relay._clients

    async def queued() -> None:
        while len(server_side._delayed) < 2:  # noqa: ASYNC110 - a bounded poll of relay state
            await asyncio.sleep(0.005)

    await asyncio.wait_for(queued(), TIMEOUT)
    started = time.monotonic()
    await relay.drop_connections()
    assert relay.connection_count == 0
    assert time.monotonic() - started < 1


async def test_duplicate_delivery(relay: LocalRelay, client: Client, other: Client) -> None:
    relay.faults.duplicate_delivery = True
    event = make_event(kind=23194)
    await other.req("s", {"kinds": [23194]})
    await client.publish(event)
    expected = ["EVENT", "s", event.to_json()]
    assert [await other.recv(), await other.recv()] == [expected, expected]
    stored = make_event()
    await client.publish(stored)
    await client.req("s2", {"ids": [stored.id]})  # collects both copies without error
    await client.send("REQ", "s3", {"ids": [stored.id]})
    assert [(await client.recv())[0] for _ in range(3)] == ["EVENT", "EVENT", "EOSE"]


async def test_reject_publishes(relay: LocalRelay, client: Client, other: Client) -> None:
    await other.req("s", {"kinds": [1]})
    relay.faults.reject_publishes = True
    event = make_event()
    ok = await client.publish(event)
    assert ok[:3] == ["OK", event.id, False]
    assert ok[3].startswith("blocked:")
    relay.faults.reject_publishes = False
    assert await client.req("q", {"ids": [event.id]}) == []
    await other.barrier()  # it was not forwarded either


async def test_close_subscriptions(relay: LocalRelay, client: Client) -> None:
    relay.faults.close_subscriptions = True
    await client.send("REQ", "s", {"kinds": [1]})
    closed = await client.recv()
    assert closed[:2] == ["CLOSED", "s"]
    relay.faults = FaultPlan()
    assert await client.req("s", {"kinds": [1]}) == []


async def test_no_ok_for_ephemeral(relay: LocalRelay, client: Client, other: Client) -> None:
    relay.faults.no_ok_for_ephemeral = True
    await other.req("s", {"kinds": [23195]})
    ephemeral, regular = make_event(kind=23195), make_event(kind=1)
    await client.send("EVENT", ephemeral.to_json())
    # The next message is the regular event's OK: none came for the ephemeral one.
    assert await client.publish(regular) == ["OK", regular.id, True, ""]
    assert await other.recv() == ["EVENT", "s", ephemeral.to_json()]


async def test_refuse_connections(relay: LocalRelay) -> None:
    relay.faults.refuse_connections = True
    with pytest.raises(InvalidStatus) as info:
        async with connect(relay.url):
            pass
    assert info.value.response.status_code == 503
    relay.faults.refuse_connections = False
    async with connect(relay.url):
        pass


# -- NIP-42 ---------------------------------------------------------------------------


def auth_event(
    secret: SecretKey, relay_url: str, challenge: str, created_at: int | None = None
) -> Event:
    return make_event(
        secret,
        kind=22242,
        content="",
        tags=[["relay", relay_url], ["challenge", challenge]],
        created_at=created_at,
    )


async def test_auth_flow() -> None:
    async with LocalRelay(auth_required=True) as relay, connect(relay.url) as ws:
        client = Client(ws)
        kind, challenge = await client.recv()
        assert kind == "AUTH"
        event = make_event()
        ok = await client.publish(event)
        assert ok[:3] == ["OK", event.id, False]
        assert ok[3].startswith("auth-required:")
        await client.send("REQ", "s", {})
        closed = await client.recv()
        assert closed[:2] == ["CLOSED", "s"]
        assert closed[2].startswith("auth-required:")

        secret = SecretKey.generate()
        bad = [
            auth_event(secret, relay.url, "wrong"),
            auth_event(secret, "ws://127.0.0.1:1", challenge),
            auth_event(secret, relay.url, challenge, created_at=now() - 3600),
            make_event(secret, kind=1, tags=[["relay", relay.url], ["challenge", challenge]]),
        ]
        for attempt in bad:
            await client.send("AUTH", attempt.to_json())
            ok = await client.recv()
            assert ok[:3] == ["OK", attempt.id, False], attempt
        good = auth_event(secret, relay.url + "/", challenge)
        await client.send("AUTH", good.to_json())
        assert await client.recv() == ["OK", good.id, True, ""]
        assert await client.publish(event) == ["OK", event.id, True, ""]
        assert await client.req("s", {"ids": [event.id]}) == [event.to_json()]


async def test_auth_challenge_differs_per_connection() -> None:
    async with LocalRelay(auth_required=True) as relay:
        async with connect(relay.url) as a, connect(relay.url) as b:
            first = await Client(a).recv()
            second = await Client(b).recv()
        assert first[0] == second[0] == "AUTH"
        assert first[1] != second[1]


# -- lifecycle ------------------------------------------------------------------------


async def test_stop_closes_clients() -> None:
    relay = LocalRelay()
    await relay.start()
    assert relay.url == f"ws://127.0.0.1:{relay.port}"
    async with connect(relay.url) as ws:
        await relay.stop()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    await relay.stop()  # idempotent


async def test_server_sockets_use_tcp_nodelay(relay: LocalRelay, client: Client) -> None:
    await client.barrier()
    (server_side,) = relay._clients
    sock = server_side.ws.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_run_relay_until_cancelled() -> None:
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_relay("127.0.0.1", 0, on_listening=listening.set_result))
    url = await asyncio.wait_for(listening, TIMEOUT)
    async with connect(url) as ws:
        event = make_event()
        assert await Client(ws).publish(event) == ["OK", event.id, True, ""]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)


def test_bad_limits_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        LocalRelay(max_message_bytes=0)
