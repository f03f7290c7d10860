"""resolve() against a real LNURL-pay server on 127.0.0.1, one recipient per behaviour."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from nwcd.bolt11 import Network
from nwcd.nostr.event import Event
from nwcd.nostr.keys import SecretKey
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import (
    LnurlTarget,
    MessageAction,
    UrlAction,
    aes_action,
    description_hash,
    encode_lnurl,
    parse_target,
    reveal,
)
from nwcd.recipients.resolve import MAX_RESPONSE_BYTES, new_http_client, pay_params, resolve
from nwcd.recipients.zap import check_zap_request, zap_request
from tests.recipients.support import mint

PREIMAGE = bytes(range(32))
ZAPPER = SecretKey(hashlib.sha256(b"zapper").digest())
SENDER = SecretKey(hashlib.sha256(b"sender").digest())
RECIPIENT = SecretKey(hashlib.sha256(b"recipient").digest()).public_key.hex


def zap_to(target: LnurlTarget, amount_msat: int, comment: str = "") -> Event:
    return zap_request(
        SENDER,
        recipient_pubkey=RECIPIENT,
        amount_msat=amount_msat,
        relays=["wss://relay.example.com"],
        lnurl=encode_lnurl(target.url),
        comment=comment,
        created_at=int(time.time()),
    )


def metadata(name: str) -> str:
    return json.dumps([["text/plain", f"Pay {name}"], ["text/identifier", f"{name}@test"]])


@dataclass
class Server:
    """The test LNURL server's address and what its callbacks were asked."""

    base: str = ""
    calls: list[dict[str, str]] = field(default_factory=list)

    def target(self, name: str) -> LnurlTarget:
        target = parse_target(f"{name}@{self.base.removeprefix('http://')}")
        assert isinstance(target, LnurlTarget)
        return target


def pay_request(server: Server, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "tag": "payRequest",
        "callback": f"{server.base}/cb/{name}?tok=a%2Bb",
        "minSendable": 1000,
        "maxSendable": 1_000_000_000,
        "metadata": metadata(name),
        "commentAllowed": 32,
        **extra,
    }


def build_app(server: Server) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/.well-known/lnurlp/{name}")
    async def params(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        local = f"{server.base}/.well-known/lnurlp"
        if name in ("alice", "wrongamount", "wronghash", "cberror", "msg", "url", "aes"):
            return web.json_response(pay_request(server, name))
        if name == "urlevil":
            return web.json_response(pay_request(server, name))
        if name == "range":
            return web.json_response(pay_request(server, name, minSendable=5000, maxSendable=9000))
        if name == "zapper":
            extra = {"allowsNostr": True, "nostrPubkey": ZAPPER.public_key.hex}
            return web.json_response(pay_request(server, name, **extra))
        if name == "slow":
            await asyncio.sleep(5)
        if name == "badjson":
            return web.Response(text="{not json", content_type="application/json")
        if name == "huge":
            return web.Response(body=b" " * (MAX_RESPONSE_BYTES + 1))
        if name == "hugestream":
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(MAX_RESPONSE_BYTES // 4096 + 2):
                await response.write(b" " * 4096)
            return response
        if name == "loop":
            raise web.HTTPFound(f"{local}/loop2")
        if name == "loop2":
            raise web.HTTPFound(f"{local}/loop")
        if name.startswith("hop"):
            raise web.HTTPFound(f"{local}/hop{int(name[3:]) + 1}")
        if name == "moved":
            raise web.HTTPMovedPermanently("/.well-known/lnurlp/alice")
        if name == "downgrade":
            raise web.HTTPFound("http://example.com/.well-known/lnurlp/alice")
        if name == "error":
            return web.json_response({"status": "ERROR", "reason": "Account suspended"})
        if name == "gone":
            return web.json_response({"status": "ERROR", "reason": "no such user"}, status=404)
        if name == "broken":
            return web.Response(status=500, text="oops")
        raise web.HTTPNotFound()

    @routes.get("/cb/{name}")
    async def callback(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        query = dict(request.query)
        server.calls.append(query)
        amount = int(query["amount"])
        hashed = description_hash(metadata(name))
        answer: dict[str, Any] = {"routes": []}
        if name == "zapper":
            try:
                check_zap_request(query["nostr"], amount_msat=amount)
            except RecipientError as exc:
                return web.json_response({"status": "ERROR", "reason": exc.reason})
            hashed = description_hash(query["nostr"])
        elif name == "cberror":
            return web.json_response({"status": "ERROR", "reason": "Invoice limit reached"})
        elif name == "wrongamount":
            amount += 1000
        elif name == "wronghash":
            hashed = description_hash("something else")
        elif name == "msg":
            answer["successAction"] = {"tag": "message", "message": "Thanks!"}
        elif name == "url":
            url = f"{server.base}/order/1"
            answer["successAction"] = {"tag": "url", "description": "Order", "url": url}
        elif name == "urlevil":
            url = "https://evil.example/order/1"
            answer["successAction"] = {"tag": "url", "description": "Order", "url": url}
        elif name == "aes":
            action = aes_action("Your code", "PIN 4242", PREIMAGE.hex())
            answer["successAction"] = {
                "tag": "aes",
                "description": action.description,
                "ciphertext": action.ciphertext,
                "iv": action.iv,
            }
        answer["pr"] = mint(amount, hashed, preimage=PREIMAGE)
        return web.json_response(answer)

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    runner = web.AppRunner(
        build_app(state), access_log=None, handle_signals=False, shutdown_timeout=0.1
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    state.base = f"http://{host}:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_http_client() as client:
        yield client


async def test_a_plain_payment(server: Server, http: httpx.AsyncClient) -> None:
    target = server.target("alice")
    assert target.identifier == f"alice@{server.base.removeprefix('http://')}"
    resolved = await resolve(http, target, 21_000, comment="thanks ⚡", network=Network.MAINNET)
    assert resolved.amount_msat == 21_000
    assert resolved.payment_hash == hashlib.sha256(PREIMAGE).hexdigest()
    assert resolved.invoice.startswith("lnbc210n1")
    assert resolved.success_action is None
    assert resolved.params.description == "Pay alice"
    # The callback's own query is kept; the comment arrives intact.
    assert server.calls == [{"tok": "a+b", "amount": "21000", "comment": "thanks ⚡"}]


async def test_given_params_skip_the_first_request(server: Server, http: httpx.AsyncClient) -> None:
    params = await pay_params(http, server.target("alice"))
    resolved = await resolve(http, server.target("alice"), 5000, params=params)
    assert resolved.params is params
    assert len(server.calls) == 1


async def test_a_permanent_redirect_on_the_same_host_is_followed(
    server: Server, http: httpx.AsyncClient
) -> None:
    params = await pay_params(http, server.target("moved"))
    assert params.callback.endswith("/cb/alice?tok=a%2Bb")


async def test_success_actions(server: Server, http: httpx.AsyncClient) -> None:
    message = await resolve(http, server.target("msg"), 1000)
    assert message.success_action == MessageAction("Thanks!")
    url = await resolve(http, server.target("url"), 1000)
    assert url.success_action == UrlAction("Order", f"{server.base}/order/1")
    aes = await resolve(http, server.target("aes"), 1000)
    assert aes.success_action is not None
    assert reveal(aes.success_action, PREIMAGE.hex()) == {
        "tag": "aes",
        "description": "Your code",
        "plaintext": "PIN 4242",
    }


async def test_a_zap(server: Server, http: httpx.AsyncClient) -> None:
    target = server.target("zapper")
    request = zap_to(target, 21_000, "Great post ⚡")
    resolved = await resolve(http, target, 21_000, zap_request=request)
    assert resolved.params.nostr_pubkey == ZAPPER.public_key.hex
    (call,) = server.calls
    assert call["lnurl"] == encode_lnurl(target.url)
    assert "comment" not in call
    assert check_zap_request(call["nostr"], amount_msat=21_000) == request


async def test_a_zap_to_a_server_without_zaps(server: Server, http: httpx.AsyncClient) -> None:
    target = server.target("alice")
    request = zap_to(target, 1000)
    with pytest.raises(RecipientError, match="does not support zaps"):
        await resolve(http, target, 1000, zap_request=request)
    with pytest.raises(ValueError, match="zap's comment"):
        await resolve(http, target, 1000, zap_request=request, comment="hi")


async def test_a_zap_for_another_amount_is_refused_before_asking(
    server: Server, http: httpx.AsyncClient
) -> None:
    target = server.target("zapper")
    request = zap_to(target, 5000)
    with pytest.raises(RecipientError, match="is for 5000 msat but the callback asks for 1000"):
        await resolve(http, target, 1000, zap_request=request)
    assert server.calls == []


@pytest.mark.parametrize(
    ("name", "amount", "comment", "reason"),
    [
        ("range", 1000, None, "1000 msat is outside what the recipient accepts \\(5000 to 9000"),
        ("range", 10_000, None, "outside what the recipient accepts"),
        ("alice", 1000, "x" * 33, "the comment has 33 characters, the recipient accepts 32"),
        ("wrongamount", 3000, None, "invoice is for 4000 msat, not 3000"),
        ("wronghash", 3000, None, "does not commit to the expected description hash"),
        ("cberror", 3000, None, "server refused: Invoice limit reached"),
        ("urlevil", 3000, None, "url is not on the callback's domain"),
        ("error", 3000, None, "server refused: Account suspended"),
        ("nobody", 3000, None, "answered HTTP 404$"),
        ("gone", 3000, None, "answered HTTP 404: no such user"),
        ("broken", 3000, None, "answered HTTP 500$"),
        ("badjson", 3000, None, "did not answer JSON"),
        ("huge", 3000, None, "answered more than 192 KiB"),
        ("hugestream", 3000, None, "answered more than 192 KiB"),
        ("loop", 3000, None, "redirects in a loop"),
        ("hop1", 3000, None, "redirects more than 5 times"),
        ("downgrade", 3000, None, "'http://example.com/.well-known/lnurlp/alice' is plain http"),
    ],
)
async def test_recipients_that_misbehave(
    server: Server,
    http: httpx.AsyncClient,
    name: str,
    amount: int,
    comment: str | None,
    reason: str,
) -> None:
    with pytest.raises(RecipientError, match=reason):
        await resolve(http, server.target(name), amount, comment=comment)


async def test_a_slow_server_times_out(server: Server, http: httpx.AsyncClient) -> None:
    started = time.monotonic()
    host = server.base.removeprefix("http://")
    with pytest.raises(RecipientError, match=f"^{host} did not answer within 0.3 s$"):
        await resolve(http, server.target("slow"), 1000, timeout=0.3)
    assert time.monotonic() - started < 2


async def test_an_unreachable_server(http: httpx.AsyncClient) -> None:
    target = LnurlTarget("http://127.0.0.1:9/.well-known/lnurlp/x")
    with pytest.raises(RecipientError, match=r"could not reach 127\.0\.0\.1:9: ConnectError"):
        await pay_params(http, target)


async def test_the_client_checks_every_url_it_requests() -> None:
    async with new_http_client() as client:
        with pytest.raises(RecipientError, match="plain http"):
            await client.get("http://example.com/")


async def test_a_value_block_share_below_the_minimum_is_skipped(
    server: Server, http: httpx.AsyncClient
) -> None:
    """The client's plan: a value-block share under ``minSendable`` is skipped, not sent and
    not failed; the same amount asked for explicitly is a failure with the reason."""
    from nwcd.client.recipients import Planned, Recipient, RecipientResult, plan

    address = f"range@{server.base.removeprefix('http://')}"
    skipped, failed, fine = await plan(
        [
            Recipient(address, 3_000, skip_below_minimum=True),
            Recipient(address, 3_000),
            Recipient(address, 6_000, skip_below_minimum=True),
        ],
        http=http,
    )
    assert isinstance(skipped, RecipientResult)
    assert isinstance(failed, RecipientResult)
    assert (skipped.status, skipped.error) == (
        "skipped",
        "below the 5000 msat the recipient accepts",
    )
    assert failed.status == "failed"
    assert "outside what the recipient accepts" in (failed.error or "")
    assert isinstance(fine, Planned)
    assert fine.amount_msat == 6_000
    assert [call["amount"] for call in server.calls] == ["6000"]
