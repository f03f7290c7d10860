"""The relay pool against the third-party nostr-relay process (PyPI) and nostr-sdk's relay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.relay.connection import ConnectionOptions
from nwcd.relay.pool import PoolOptions, RelayPool
from tests.support.relays import NostrRelayProcess, SdkLocalRelay


def note(secret: SecretKey, text: str, kind: int = 1) -> Event:
    return sign_event(secret, kind=kind, content=text, created_at=int(time.time()))


async def test_publish_subscribe_and_ok(nostr_relay: NostrRelayProcess) -> None:
    secret = SecretKey.generate()
    async with RelayPool([nostr_relay.url]) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        event = note(secret, "hello", kind=23194)
        result = await pool.publish(event)
        assert result.accepted == (nostr_relay.url,)
        got = await asyncio.wait_for(subscription.get(), 10)
        assert got.id == event.id


async def test_no_event_lost_across_a_relay_kill_and_restart(
    nostr_relay: NostrRelayProcess,
) -> None:
    secret = SecretKey.generate()
    # The first reconnect waits 5-10 s: time for the restart and the other client's
    # publish even on a loaded machine.
    slow = PoolOptions(connection=ConnectionOptions(backoff_base=10.0, backoff_cap=10.0))
    async with RelayPool([nostr_relay.url], options=slow) as pool:
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        await asyncio.wait_for(subscription.eose.wait(), 10)
        await nostr_relay.kill()
        await nostr_relay.restart()
        # Published by another client while our pool is still waiting to reconnect.
        async with RelayPool([nostr_relay.url]) as writer:
            missed = note(secret, "while you were away", kind=23194)
            assert (await writer.publish(missed)).ok
        assert pool.connected_relays == []
        got = await asyncio.wait_for(subscription.get(), 30)
        assert got.id == missed.id


async def test_the_same_event_from_two_relays_arrives_once(tmp_path: Path) -> None:
    secret = SecretKey.generate()
    async with (
        NostrRelayProcess(tmp_path) as first,
        SdkLocalRelay() as second,
        RelayPool([first.url, second.url]) as pool,
    ):
        await pool.wait_connected(10, count=2)
        subscription = await pool.subscribe([Filter(authors=(secret.public_key.hex,))])
        await asyncio.wait_for(subscription.eose.wait(), 10)
        await asyncio.sleep(0.1)
        event, marker = note(secret, "twice"), note(secret, "marker")
        assert len((await pool.publish(event)).accepted) == 2
        await pool.publish(marker)
        got = [await asyncio.wait_for(subscription.get(), 10) for _ in range(2)]
        assert [e.id for e in got] == [event.id, marker.id]
        await asyncio.sleep(0.2)
        assert subscription.get_nowait() is None
