"""The relay pool against real websocket relays (our LocalRelay with its fault knobs)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.messages import ClientReq, encode
from nwcd.relay.connection import ConnectionOptions, RelayConnection, backoff_delay
from nwcd.relay.pool import PoolOptions, RelayPool, split_filters
from nwcd.relay.server import LocalRelay

FAST = PoolOptions(connection=ConnectionOptions(backoff_base=0.05, backoff_cap=0.2))


def note(secret: SecretKey, text: str, *, kind: int = 1, p: str | None = None) -> Event:
    tags = [["p", p]] if p else []
    return sign_event(secret, kind=kind, content=text, tags=tags, created_at=int(time.time()))


@pytest.fixture
async def relay() -> AsyncIterator[LocalRelay]:
    async with LocalRelay() as local:
        yield local


async def next_event(subscription: object, timeout: float = 5.0) -> Event:
    return await asyncio.wait_for(subscription.get(), timeout)  # type: ignore[attr-defined]


def test_backoff_grows_jitters_and_is_capped() -> None:
    assert backoff_delay(0, base=1, cap=30, rng=lambda: 0.0) == 0.5
    assert backoff_delay(0, base=1, cap=30, rng=lambda: 1.0) == 1.0
    assert backoff_delay(3, base=1, cap=30, rng=lambda: 1.0) == 8.0
    assert backoff_delay(50, base=1, cap=30, rng=lambda: 1.0) == 30.0
    assert 15.0 <= backoff_delay(50, base=1, cap=30) <= 30.0


def test_split_filters_respects_limits() -> None:
    wallets = tuple(f"{i:064x}" for i in range(1_250))
    groups = split_filters(
        [Filter(kinds=(23194,), tags={"p": wallets})], max_values=500, max_filters=2
    )
    assert [len(group) for group in groups] == [2, 1]
    values = [v for group in groups for f in group for v in f.tags["p"]]
    assert values == list(wallets)
    assert all(len(f.tags["p"]) <= 500 for group in groups for f in group)


def test_split_filters_keeps_each_req_within_bytes() -> None:
    wallets = tuple(f"{i:064x}" for i in range(5_000))
    groups = split_filters(
        [Filter(kinds=(23194,), tags={"p": wallets}, since=1_700_000_000)],
        max_values=500,
        max_filters=10,
        max_bytes=96_000,
    )
    assert [len(group) for group in groups] == [2] * 5  # 10 filters of 500 values, ~34 kB each
    sizes = [len(encode(ClientReq("x" * 64, group)).encode()) for group in groups]
    assert max(sizes) <= 96_000
    assert [v for group in groups for f in group for v in f.tags["p"]] == list(wallets)


async def test_publish_and_subscribe(relay: LocalRelay) -> None:
    secret = SecretKey.generate()
    async with RelayPool([relay.url]) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        event = note(secret, "hello")
        result = await pool.publish(event)
        assert result.accepted == (relay.url,)
        assert (await next_event(subscription)).id == event.id


async def test_duplicates_from_two_relays_arrive_once(relay: LocalRelay) -> None:
    secret = SecretKey.generate()
    async with LocalRelay() as other, RelayPool([relay.url, other.url]) as pool:
        await pool.wait_connected(5, count=2)
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        await asyncio.sleep(0.05)
        event = note(secret, "twice")
        result = await pool.publish(event)
        assert sorted(result.accepted) == sorted([relay.url, other.url])
        assert (await next_event(subscription)).id == event.id
        second = note(secret, "marker")
        await pool.publish(second)
        # The next thing through is the marker: the copy from the other relay was dropped.
        assert (await next_event(subscription)).id == second.id


async def test_relay_side_duplicate_delivery_is_dropped(relay: LocalRelay) -> None:
    relay.faults.duplicate_delivery = True
    secret = SecretKey.generate()
    async with RelayPool([relay.url]) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        first, second = note(secret, "a"), note(secret, "b")
        await pool.publish(first)
        await pool.publish(second)
        got = [await next_event(subscription), await next_event(subscription)]
        assert [e.id for e in got] == [first.id, second.id]


async def test_rejected_and_unconfirmed_publishes(relay: LocalRelay) -> None:
    secret = SecretKey.generate()
    async with RelayPool([relay.url]) as pool:
        await pool.wait_connected(5)
        relay.faults.reject_publishes = True
        result = await pool.publish(note(secret, "no"))
        assert not result.ok
        assert result.rejected[relay.url].startswith("blocked:")
        relay.faults.reject_publishes = False
        relay.faults.no_ok_for_ephemeral = True
        started = time.monotonic()
        result = await pool.publish(note(secret, "ephemeral", kind=23195), timeout=0.3)
        assert result.unconfirmed == (relay.url,)
        assert time.monotonic() - started < 2.0


async def test_subscription_survives_a_relay_restart_without_losing_events() -> None:
    secret = SecretKey.generate()
    slow_reconnect = PoolOptions(connection=ConnectionOptions(backoff_base=1.0, backoff_cap=1.0))
    first = LocalRelay()
    await first.start()
    port = first.port
    async with RelayPool([first.url], options=slow_reconnect) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        before = note(secret, "before")
        await pool.publish(before)
        assert (await next_event(subscription)).id == before.id
        await first.stop()
        async with LocalRelay(port=port) as restarted:
            # Published by someone else while our pool is still waiting to reconnect.
            async with RelayPool([restarted.url]) as writer:
                missed = note(secret, "while you were away")
                assert (await writer.publish(missed)).ok
            assert pool.connected_relays == []
            assert (await next_event(subscription)).id == missed.id


async def test_publish_to_a_down_relay_is_sent_when_it_comes_back() -> None:
    secret = SecretKey.generate()
    down = LocalRelay()
    await down.start()
    port = down.port
    await down.stop()
    async with RelayPool([f"ws://127.0.0.1:{port}"], options=FAST) as pool:
        event = note(secret, "later")
        result = await pool.publish(event, timeout=0.2)
        assert result.unconfirmed == (f"ws://127.0.0.1:{port}",)
        async with LocalRelay(port=port) as revived:
            await pool.wait_connected(5)
            for _ in range(100):
                if any(e.id == event.id for e in revived.stored_events()):
                    break
                await asyncio.sleep(0.02)
            assert [e.id for e in revived.stored_events()] == [event.id]


async def test_transient_closed_is_retried(relay: LocalRelay) -> None:
    secret = SecretKey.generate()
    relay.faults.close_subscriptions = True
    async with RelayPool([relay.url], options=FAST) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        await asyncio.wait_for(subscription.eose.wait(), 5)
        assert subscription.closed_reasons[relay.url].startswith("error:")
        relay.faults.close_subscriptions = False
        event = note(secret, "after retry")
        await pool.publish(event)
        assert (await next_event(subscription)).id == event.id


async def test_nip42_auth() -> None:
    key = SecretKey.generate()
    async with (
        LocalRelay(auth_required=True) as relay,
        RelayPool([relay.url], auth_key=key) as pool,
    ):
        subscription = await pool.subscribe([Filter(authors=(key.public_key.hex,))])
        event = note(key, "authenticated")
        result = await pool.publish(event)
        assert result.ok, result
        assert (await next_event(subscription)).id == event.id


async def test_many_p_values_are_split_and_all_work(relay: LocalRelay) -> None:
    secret = SecretKey.generate()
    targets = [SecretKey.generate().public_key.hex for _ in range(30)]
    options = PoolOptions(max_filter_values=7, max_filters_per_req=2)
    async with RelayPool([relay.url], options=options) as pool:
        subscription = await pool.subscribe([Filter(kinds=(1,), tags={"p": tuple(targets)})])
        assert len(subscription.parts) == 3  # 5 filters of <= 7 values, 2 per REQ
        last = note(secret, "to the last one", p=targets[-1])
        await pool.publish(last)
        assert (await next_event(subscription)).id == last.id


async def test_reqs_past_the_subscriptions_per_socket_go_on_more_sockets(
    relay: LocalRelay,
) -> None:
    secret = SecretKey.generate()
    targets = [SecretKey.generate().public_key.hex for _ in range(30)]
    options = PoolOptions(max_filter_values=7, max_filters_per_req=1, max_subscriptions=2)
    async with RelayPool([relay.url], options=options) as pool:
        subscription = await pool.subscribe([Filter(kinds=(1,), tags={"p": tuple(targets)})])
        assert len(subscription.parts) == 5  # on 3 sockets: 2 + 2 + 1
        await asyncio.wait_for(subscription.eose.wait(), 10)
        for target in (targets[0], targets[-1]):
            event = note(secret, "to one of them", p=target)
            await pool.publish(event)
            assert (await next_event(subscription)).id == event.id
        await subscription.close()
        assert pool._lane_load == [0, 0, 0]


async def test_one_more_value_sends_only_the_req_that_changed(
    relay: LocalRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = SecretKey.generate()
    targets = [SecretKey.generate().public_key.hex for _ in range(30)]
    since = int(time.time()) - 60
    options = PoolOptions(max_filter_values=7, max_filters_per_req=1)
    async with RelayPool([relay.url], options=options) as pool:
        subscription = await pool.subscribe(
            [Filter(kinds=(1,), tags={"p": tuple(targets)}, since=since)]
        )
        await asyncio.wait_for(subscription.eose.wait(), 10)
        sent: list[str] = []
        original = RelayConnection.subscribe

        async def spy(self: RelayConnection, part_id: str, filters: tuple[Filter, ...]) -> None:
            sent.append(part_id)
            await original(self, part_id, filters)

        monkeypatch.setattr(RelayConnection, "subscribe", spy)
        newcomer = SecretKey.generate().public_key.hex
        # A later ``since`` asks for less: the parts the relay holds still cover it.
        await subscription.update(
            [Filter(kinds=(1,), tags={"p": (*targets, newcomer)}, since=since + 5)]
        )
        assert sent == [f"{subscription.id}.4"]  # 7, 7, 7, 7 unchanged; 2 -> 3 values
        await asyncio.wait_for(subscription.eose.wait(), 10)
        for target in (newcomer, targets[0]):
            event = note(secret, "hello", p=target)
            await pool.publish(event)
            assert (await next_event(subscription)).id == event.id


async def test_slow_consumer_gets_backpressure_not_unbounded_memory(relay: LocalRelay) -> None:
    secret = SecretKey.generate()
    async with RelayPool([relay.url], options=PoolOptions(queue_size=4)) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        events = [note(secret, str(i)) for i in range(40)]
        async with RelayPool([relay.url]) as writer:
            for event in events:
                await writer.publish(event)
        assert subscription._queue.qsize() <= 4
        got = [await next_event(subscription) for _ in events]
        assert [e.id for e in got] == [e.id for e in events]


async def test_forged_events_never_reach_the_consumer() -> None:
    secret = SecretKey.generate()
    good = note(secret, "good")
    forged = {**good.to_json(), "content": "forged"}  # id no longer matches
    bad_sig = {**note(secret, "x").to_json(), "sig": "00" * 64}

    async def fake_relay(ws: ServerConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message[0] == "REQ":
                for event in (forged, bad_sig, good.to_json()):
                    await ws.send(json.dumps(["EVENT", message[1], event]))
                await ws.send('["EVENT", "nonsense"]')

    async with serve(fake_relay, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with RelayPool([f"ws://127.0.0.1:{port}"]) as pool:
            subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
            assert (await next_event(subscription)).id == good.id
            await asyncio.sleep(0.1)
            assert subscription.get_nowait() is None
