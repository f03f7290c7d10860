"""Smoke tests of the third-party relay fixtures: publish, read back, kill and restart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from tests.support import fixtures, relays
from tests.support.relays import NostrRelayProcess, PeerMissing, SdkLocalRelay

# Registered here too, so these tests run before conftest.py imports the fixtures.
nostr_relay = fixtures.nostr_relay
sdk_relay = fixtures.sdk_relay

TIMEOUT = 5.0


def new_event(content: str = "hello") -> Event:
    return sign_event(SecretKey.generate(), kind=1, content=content, created_at=int(time.time()))


async def recv(ws: ClientConnection) -> list[Any]:
    data = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert isinstance(data, list)
    return data


async def publish(ws: ClientConnection, event: Event) -> list[Any]:
    await ws.send(json.dumps(["EVENT", event.to_json()]))
    return await recv(ws)


async def fetch(ws: ClientConnection, event_id: str) -> list[dict[str, Any]]:
    """REQ by id; the stored events up to EOSE (or a CLOSED, which nostr-sdk sends)."""
    await ws.send(json.dumps(["REQ", "q", {"ids": [event_id]}]))
    found: list[dict[str, Any]] = []
    while True:
        msg = await recv(ws)
        if msg[0] in ("EOSE", "CLOSED"):
            return found
        assert msg[:2] == ["EVENT", "q"], msg
        found.append(msg[2])


async def round_trip(url: str) -> None:
    event = new_event()
    async with connect(url) as ws:
        ok = await publish(ws, event)
        assert ok[:3] == ["OK", event.id, True], ok
    async with connect(url) as ws:
        stored = await fetch(ws, event.id)
    assert len(stored) == 1
    assert stored[0]["id"] == event.id
    assert stored[0]["sig"] == event.sig


async def test_nostr_relay_publish_and_read_back(nostr_relay: NostrRelayProcess) -> None:
    await round_trip(nostr_relay.url)


async def test_sdk_relay_publish_and_read_back(sdk_relay: SdkLocalRelay) -> None:
    await round_trip(sdk_relay.url)


async def test_nostr_relay_kill_and_restart_same_port(nostr_relay: NostrRelayProcess) -> None:
    url = nostr_relay.url
    event = new_event("survives a restart")
    async with connect(url) as ws:
        assert (await publish(ws, event))[2] is True
        await nostr_relay.kill()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    with pytest.raises(ConnectionRefusedError):
        async with connect(url, open_timeout=TIMEOUT):
            pass
    await nostr_relay.restart()
    assert nostr_relay.url == url
    async with connect(url) as ws:
        assert [e["id"] for e in await fetch(ws, event.id)] == [event.id]


def test_missing_nostr_relay_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NWCD_CACHE", str(tmp_path))
    with pytest.raises(PeerMissing, match=r"scripts/setup-peers\.sh"):
        relays.NostrRelayProcess(tmp_path)
