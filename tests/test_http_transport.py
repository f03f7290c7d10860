"""A request cancelled while its connection's TLS handshake runs (a hold invoice watcher
when the LND backend closes, an LNURL request past its timeout) closes that connection
then, not the garbage collector later (``ResourceWarning: unclosed transport``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from nwcd.backends.lnd import LndBackend, LndConfig
from nwcd.recipients.resolve import new_http_client


@dataclass
class TlsBlackHole:
    """A TCP server that reads the ClientHello and never answers it."""

    port: int = 0
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello: the client waits in its handshake
        self.hello.set()
        await reader.read()  # until the client closes
        self.closed.set()
        writer.close()
        await writer.wait_closed()


@pytest.fixture
async def black_hole() -> AsyncIterator[TlsBlackHole]:
    hole = TlsBlackHole()
    server = await asyncio.start_server(hole.serve, "127.0.0.1", 0)
    hole.port = server.sockets[0].getsockname()[1]
    async with server:
        yield hole


async def cancel_in_handshake(hole: TlsBlackHole, request: Callable[[], Awaitable[object]]) -> None:
    async def ask() -> None:
        await request()

    asking = asyncio.create_task(ask())
    async with asyncio.timeout(10):
        await hole.hello.wait()
    asking.cancel()
    await asyncio.wait([asking])
    assert asking.cancelled()
    async with asyncio.timeout(10):
        await hole.closed.wait()


async def test_the_lnd_backend(black_hole: TlsBlackHole) -> None:
    config = LndConfig(f"https://127.0.0.1:{black_hole.port}", "0201036c6e64", None, timeout=30)
    async with await LndBackend.open(config) as backend:
        await cancel_in_handshake(black_hole, backend.get_info)


async def test_the_lnurl_client(black_hole: TlsBlackHole) -> None:
    async with new_http_client() as http:
        url = f"https://127.0.0.1:{black_hole.port}/.well-known/lnurlp/alice"
        await cancel_in_handshake(black_hole, lambda: http.get(url))
