"""httpx's transport, except that a connection cancelled in its TLS handshake is closed.

A TCP connection whose TLS handshake is cancelled (a stream task cancelled by ``close()``,
an ``asyncio.timeout`` expiring) is closed there and then. httpcore 1.0 closes it only when
the handshake fails with an ``Exception``; on ``CancelledError`` it drops the connected
socket, which the garbage collector finds later (``ResourceWarning: unclosed transport``).
Used by the HTTP backends and the LNURL client.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore
import httpx

__all__ = ["http_transport"]

# httpx's own default pool limits
_DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class _ClosedOnCancelStream(httpcore.AsyncNetworkStream):
    """A connected TCP stream that is closed when its TLS handshake does not complete,
    cancelled included (httpcore closes it only on an ``Exception``)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            return await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            # Closing the transport is synchronous in there: done even if cancelled again.
            await self._stream.aclose()
            raise

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _ClosedOnCancelBackend(httpcore.AnyIOBackend):
    """httpcore's asyncio network backend, its TCP streams wrapped in
    :class:`_ClosedOnCancelStream`."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _ClosedOnCancelStream(stream)


class _Transport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` (no proxy, HTTP/1.1) on :class:`_ClosedOnCancelBackend`."""

    def __init__(self, verify: ssl.SSLContext | str | bool, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # The pool httpx makes above, with the network backend httpx gives no way to choose.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_ClosedOnCancelBackend(),
        )


def http_transport(
    verify: ssl.SSLContext | str | bool = True, limits: httpx.Limits = _DEFAULT_LIMITS
) -> httpx.AsyncBaseTransport:
    """httpx's transport, but a connection cancelled during its TLS handshake is closed.

    Args:
        verify: TLS verification: an ``SSLContext``, or as for ``httpx``.
        limits: the connection pool's limits.
    """
    return _Transport(verify, limits)
