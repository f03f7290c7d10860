"""Shared httpx helpers for the HTTP backends (LNbits, LND REST): one client, one edge.

Every call an adapter makes through ``httpx`` runs inside :func:`map_exceptions`,
so the service never sees an ``httpx`` exception (architecture principle 5)::

    httpx.TimeoutException      -> BackendTimeout      (no answer in time: outcome unknown)
    httpx.TransportError        -> BackendUnavailable  (could not talk to it: outcome unknown)
    other httpx.HTTPError       -> BackendUnavailable  (decoding, redirects, ...)
    BadResponse (bad JSON, a missing or mistyped field)  -> BackendUnavailable

Messages name the backend and the kind of failure, never a URL, header or body:
URLs can carry keys (LNbits' websocket path is the wallet key) and headers do.

Connections go through :func:`nwcd.http_transport.http_transport` (a TLS handshake that
is cancelled closes its socket).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

import httpx

from nwcd.errors import BackendError, BackendTimeout, BackendUnavailable
from nwcd.http_transport import http_transport

__all__ = [
    "BadResponse",
    "create_client",
    "field",
    "json_body",
    "map_exceptions",
]

_USER_AGENT: Final = "nwcd"


class BadResponse(ValueError):
    """A response is not what the backend's API promises (bad JSON, missing field).

    Raised by :func:`json_body` and :func:`field` inside :func:`map_exceptions`,
    which turns it into :class:`~nwcd.errors.BackendUnavailable`. Its message
    names a field or a type, never a value.
    """


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
