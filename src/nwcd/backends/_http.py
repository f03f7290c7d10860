"""Shared httpx helpers for the HTTP backends (LNbits, LND REST): one client, one edge.

Every call an adapter makes through ``httpx`` runs inside :func:`map_exceptions`,
so the service never sees an ``httpx`` exception (architecture principle 5)::

    httpx.TimeoutException      -> BackendTimeout      (no answer in time: outcome unknown)
    httpx.TransportError        -> BackendUnavailable  (could not talk to it: outcome unknown)
    other httpx.HTTPError       -> BackendUnavailable  (decoding, redirects, ...)
    BadResponse (bad JSON, a missing or mistyped field)  -> BackendUnavailable

Messages name the backend and the kind of failure, never a URL, header or body:
URLs can carry keys (LNbits' websocket path is the wallet key) and headers do.

Connections go through :func:`http_transport`: httpx's own transport, except that a TCP
connection whose TLS handshake is cancelled (a stream task cancelled by ``close()``, an
``asyncio.timeout`` expiring) is closed there and then. httpcore 1.0 closes it only when
the handshake fails with an ``Exception``; on ``CancelledError`` it drops the connected
socket, which the garbage collector finds later (``ResourceWarning: unclosed transport``).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import httpcore
import httpx

from nwcd.errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = [
    "BadResponse",
    "create_client",
    "field",
    "http_transport",
    "json_body",
    "map_exceptions",
]

_USER_AGENT: Final = "nwcd"
# httpx's own default pool limits
_DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class BadResponse(ValueError):
    """A response is not what the backend's API promises (bad JSON, missing field).

    Raised by :func:`json_body` and :func:`field` inside :func:`map_exceptions`,
    which turns it into :class:`~nwcd.errors.BackendUnavailable`. Its message
    names a field or a type, never a value.
    """


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


def create_client(
    base_url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: bool | str = True,
) -> httpx.AsyncClient:
    """One ``httpx.AsyncClient`` for one backend.

    Args:
        base_url: the backend's root, e.g. ``http://127.0.0.1:5000``.
        timeout: seconds for connect, read, write and pool each.
        headers: sent with every request (keys: keep them out of ``base_url``).
        transport: a custom transport (``httpx.MockTransport`` in tests); by default
            :func:`http_transport`.
        verify: TLS verification, or the path of a CA bundle / self-signed cert.
    """
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": _USER_AGENT, **(headers or {})},
        transport=transport if transport is not None else http_transport(verify),
        trust_env=False,  # no proxies from the environment: the backend is configured explicitly
        follow_redirects=False,
    )


@contextlib.contextmanager
def map_exceptions(backend: str) -> Iterator[None]:
    """Translate ``httpx`` exceptions and :class:`BadResponse` into backend errors.

    Args:
        backend: the backend's name for messages, e.g. ``"LNbits"``.

    Raises:
        BackendTimeout: the backend did not answer in time.
        BackendUnavailable: it could not be reached, or answered something malformed.
    """
    try:
        yield
    except BackendError:
        raise
    except httpx.TimeoutException as exc:
        raise BackendTimeout(f"{backend}: no answer in time ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"{backend}: cannot be reached ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise BackendUnavailable(f"{backend}: HTTP failure ({type(exc).__name__})") from None
    except BadResponse as exc:
        raise BackendUnavailable(f"{backend}: unexpected response: {exc}") from None


def json_body(response: httpx.Response) -> Any:
    """The response's JSON.

    Raises:
        BadResponse: the body is not JSON.
    """
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):
        raise BadResponse(f"HTTP {response.status_code} body is not JSON") from None


def field(data: object, name: str, kind: type | tuple[type, ...]) -> Any:
    """``data[name]`` checked to be of ``kind`` (``bool`` is never an ``int`` here).

    Raises:
        BadResponse: ``data`` is not an object, or the field is missing or mistyped.
    """
    if not isinstance(data, dict):
        raise BadResponse(f"expected an object holding {name!r}")
    if name not in data:
        raise BadResponse(f"field {name!r} is missing")
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise BadResponse(f"field {name!r} is not of type {'/'.join(k.__name__ for k in kinds)}")
    return value
