"""The HTTP edge of LNURL-pay: two GETs, each bounded in time, size and redirects.

Everything is decided by :mod:`nwcd.recipients.lnurl` and :mod:`nwcd.recipients.zap`;
this module only fetches. A recipient's server is a stranger: answers are read up to
:data:`MAX_RESPONSE_BYTES`, redirects are followed by hand so that each target passes
:func:`~nwcd.recipients.lnurl.check_url` (no downgrade to plain http, no loops), and every
failure, ``httpx``'s included, becomes a :class:`RecipientError` naming the host only
(LNURL paths and queries may hold tokens).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

import httpx

from nwcd import __version__, bolt11
from nwcd.http_transport import http_transport
from nwcd.nostr.event import Event
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import (
    LnurlTarget,
    PayParams,
    SuccessAction,
    callback_url,
    check_pay_answer,
    check_url,
    description_hash,
    encode_lnurl,
    parse_pay_params,
    server_reason,
)
from nwcd.recipients.zap import check_zap_request, zap_request_json

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_REDIRECTS",
    "MAX_RESPONSE_BYTES",
    "Resolved",
    "new_http_client",
    "pay_params",
    "read_bounded",
    "resolve",
]

DEFAULT_TIMEOUT: Final = 10.0
MAX_REDIRECTS: Final = 5
# LUD-06 lets the metadata hold a 136,536-character image: room for it, and little more.
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 3
_USER_AGENT: Final = f"nwcd/{__version__}"
_REDIRECTS: Final = frozenset((301, 302, 303, 307, 308))


async def _check_request(request: httpx.Request) -> None:
    check_url(str(request.url))


def new_http_client() -> httpx.AsyncClient:
    """A client for LNURL servers: bounded timeouts and redirects, no proxies from the env.

    :func:`pay_params` and :func:`resolve` follow redirects themselves; the client's own
    redirect policy (and its check of every URL it requests) covers other uses.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(DEFAULT_TIMEOUT),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={"User-Agent": _USER_AGENT, "Accept": "application/json"},
        event_hooks={"request": [_check_request]},
        trust_env=False,
        transport=http_transport(),
    )


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


async def read_bounded(
    response: httpx.Response, host: str, limit: int = MAX_RESPONSE_BYTES
) -> bytes:
    """A streamed response's body, refused as soon as it is known to exceed ``limit`` bytes.

    Raises:
        RecipientError: too large (``host`` names the server).
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RecipientError(f"{host} answered more than {limit // 1024} KiB")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise RecipientError(f"{host} answered more than {limit // 1024} KiB")
    return bytes(body)


async def _fetch(http: httpx.AsyncClient, url: str) -> tuple[str, int, bytes]:
    """GET ``url``, following up to :data:`MAX_REDIRECTS` checked redirects by hand."""
    seen = {url}
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url)
        async with http.stream("GET", url, follow_redirects=False) as response:
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return url, response.status_code, await read_bounded(response, _host(url))
        url = urljoin(url, location)
        if url in seen:
            raise RecipientError(f"{_host(url)} redirects in a loop")
        seen.add(url)
    raise RecipientError(f"{_host(url)} redirects more than {MAX_REDIRECTS} times")


async def _get_json(http: httpx.AsyncClient, url: str, timeout: float) -> object:
    """The JSON answer of ``url`` within ``timeout`` seconds, redirects included."""
    host = _host(url)
    try:
        async with asyncio.timeout(timeout):
            final, status, body = await _fetch(http, url)
    except TimeoutError:
        raise RecipientError(f"{host} did not answer within {timeout:g} s") from None
    except httpx.TimeoutException:
        raise RecipientError(f"{host} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise RecipientError(f"could not reach {host}: {type(exc).__name__}") from None
    host = _host(final)
    try:
        data: object = json.loads(body)
    except ValueError:
        data = None
    if status >= 400:
        reason = server_reason(data)
        detail = f": {reason}" if reason else ""
        raise RecipientError(f"{host} answered HTTP {status}{detail}")
    if data is None:
        raise RecipientError(f"{host} did not answer JSON")
    return data


async def pay_params(
    http: httpx.AsyncClient, target: LnurlTarget, *, timeout: float = DEFAULT_TIMEOUT
) -> PayParams:
    """Fetch and validate the recipient's LNURL-pay parameters (LUD-06 step 3).

    Raises:
        RecipientError: the server is unreachable, slow, redirects badly, answers an HTTP
            error, too much or no JSON, or parameters that fail validation.
    """
    return parse_pay_params(await _get_json(http, target.url, timeout))


@dataclass(frozen=True, slots=True)
class Resolved:
    """A checked invoice for one recipient, ready to pay."""

    invoice: str
    payment_hash: str
    amount_msat: int
    success_action: SuccessAction | None
    params: PayParams


async def resolve(
    http: httpx.AsyncClient,
    target: LnurlTarget,
    amount_msat: int,
    *,
    comment: str | None = None,
    zap_request: Event | None = None,
    params: PayParams | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    network: bolt11.Network | None = None,
    now: float | None = None,
) -> Resolved:
    """Get an invoice of exactly ``amount_msat`` from the recipient's LNURL-pay server.

    Fetches the parameters unless given, asks the callback (with a LUD-12 comment, or
    with a NIP-57 zap request and the recipient's ``lnurl``), and checks the answer: the
    invoice's amount, its description hash (``sha256`` of the metadata, or of the zap
    request's JSON for a zap), network and expiry, and the success action.

    Raises:
        ValueError: both ``comment`` and ``zap_request`` (a zap's comment is its content).
        RecipientError: anything the recipient or its server gets wrong, as a sentence.
    """
    if comment and zap_request is not None:
        raise ValueError("a zap's comment goes in the zap request's content, not in comment")
    if params is None:
        params = await pay_params(http, target, timeout=timeout)
    expected = description_hash(params.metadata)
    zap_json: str | None = None
    lnurl: str | None = None
    if zap_request is not None:
        if not params.allows_nostr:
            raise RecipientError("the recipient's server does not support zaps")
        zap_json = zap_request_json(zap_request)
        check_zap_request(zap_json, amount_msat=amount_msat)
        lnurl = zap_request.tag_value("lnurl") or encode_lnurl(target.url)
        expected = description_hash(zap_json)
    url = callback_url(params, amount_msat, comment=comment, zap_request=zap_json, lnurl=lnurl)
    answer = await _get_json(http, url, timeout)
    decoded, action = check_pay_answer(
        answer,
        params=params,
        amount_msat=amount_msat,
        description_hash=expected,
        network=network,
        now=now,
    )
    return Resolved(
        invoice=decoded.bolt11,
        payment_hash=decoded.payment_hash,
        amount_msat=amount_msat,
        success_action=action,
        params=params,
    )
