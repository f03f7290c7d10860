"""The client fails fast when no relay can be reached, and splits batches above the
service's item limit."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nwcd.client.client import MAX_BATCH_ITEMS, NWCClient, RelayUnreachable
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from tests.service.harness import WalletHarness


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_relay() -> Iterator[str]:
    """A TCP port that accepts connections and never answers the websocket handshake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}"


def some_uri(*relays: str) -> ConnectionUri:
    return ConnectionUri(SecretKey.generate().public_key, relays, SecretKey.generate())


async def test_a_refused_relay_fails_at_once() -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RelayUnreachable) as raised:
        async with NWCClient(some_uri(url), connect_timeout=20):
            pass
    assert time.monotonic() - started < 2  # not the 20 s connect timeout
    assert str(raised.value) == f"cannot reach relay {url}: connection refused"
    assert raised.value.reasons == {url: "connection refused"}


async def test_an_unknown_host_fails_at_once() -> None:
    expected = re.escape("cannot reach relay ws://nwcd-nowhere.invalid: unknown host")
    with pytest.raises(RelayUnreachable, match=expected):
        async with NWCClient(some_uri("ws://nwcd-nowhere.invalid"), connect_timeout=5):
            pass


async def test_a_silent_relay_fails_after_the_connect_timeout(silent_relay: str) -> None:
    refused = f"ws://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RelayUnreachable) as raised:
        async with NWCClient(some_uri(silent_relay, refused), connect_timeout=1.5):
            pass
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.5
    assert str(raised.value) == (
        f"cannot reach any relay: {silent_relay}: no connection within 1.5 s;"
        f" {refused}: connection refused"
    )


async def test_one_dead_relay_does_not_stop_the_client(tmp_path: Path, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    dead = f"ws://127.0.0.1:{closed_port()}"
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect(relays=(dead, url))
        await wallet.start()
        async with NWCClient(uri, timeout=10) as client:
            assert await client.get_balance() == 100_000_000_000


async def test_batches_above_the_limit_are_split(tmp_path: Path, nwcd_relay: object) -> None:
    """The service takes at most 100 items per request: 101 go as two requests."""
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        made = [await wallet.backend.create_invoice(1_000 + i) for i in range(101)]
        async with NWCClient(uri, timeout=30) as client:
            assert client.max_batch_items == MAX_BATCH_ITEMS == 100
            results = await client.multi_pay_invoice([m.invoice for m in made])
            # Smaller chunks, results still in input order, one failure kept in its place.
            small = [await wallet.backend.create_invoice(2_000 + i) for i in range(9)]
            bad = await wallet.backend.create_invoice(5_000, outcome="fail")
            invoices = (
                [s.invoice for s in small[:4]] + [bad.invoice] + [s.invoice for s in small[4:]]
            )
        async with NWCClient(uri, timeout=30, max_batch_items=3) as client:
            streamed = [r async for r in client.multi_pay_invoice_iter(invoices)]
            again = await client.multi_pay_invoice(invoices)
    assert [r.preimage for r in results] == [m.preimage for m in made]
    assert sorted(int(r.id) for r in streamed) == list(range(10))
    assert [r.ok for r in again] == [True] * 4 + [False] + [True] * 5
    assert [r.invoice for r in again] == invoices


def test_max_batch_items_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch_items"):
        NWCClient(some_uri("ws://127.0.0.1:1"), max_batch_items=0)


async def test_notifications_report_when_subscribed(tmp_path: Path, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        made = await wallet.backend.create_invoice(3_000)
        async with NWCClient(uri, timeout=10) as client:
            subscribed = asyncio.Event()
            stream = client.notifications(on_subscribed=subscribed.set)
            first = asyncio.ensure_future(anext(stream))
            await asyncio.wait_for(subscribed.wait(), 10)
            await client.pay_invoice(made.invoice)
            note = await asyncio.wait_for(first, 10)
            await stream.aclose()
    assert note.type == "payment_sent"
    assert note.transaction.payment_hash == made.payment_hash


async def test_a_request_past_its_expiration_is_not_acted_on(
    tmp_path: Path, nwcd_relay: object
) -> None:
    """``call(expiration=...)`` sends the NIP-47 tag; nwcd ignores a request received later."""
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        async with NWCClient(uri, timeout=10) as client:
            now = int(time.time())
            result = await client.call("get_balance", expiration=now + 60)
            assert result["balance"] == 100_000_000_000
            with pytest.raises(TimeoutError):
                await client.call("get_balance", expiration=now - 1, timeout=1)
