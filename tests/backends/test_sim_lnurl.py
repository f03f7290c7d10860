"""The simulator's LNURL-pay server, over real HTTP: lightning addresses, comments, zaps."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nwcd.backends.sim_lnurl import (
    COMMENT_ALLOWED,
    MAX_SENDABLE_MSAT,
    MIN_SENDABLE_MSAT,
    SimLnurlServer,
    lnurl_server,
    pay_metadata,
)
from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.bolt11 import decode
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.ports import Succeeded
from nwcd.recipients.zap import zap_request, zap_request_json
from nwcd.relay.pool import RelayPool
from nwcd.relay.server import LocalRelay


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimulatedBackend]:
    backend = await SimulatedBackend.open(SimulatorConfig(tmp_path / "sim.sqlite3"))
    yield backend
    await backend.close()


@pytest.fixture
async def server(sim: SimulatedBackend) -> AsyncIterator[SimLnurlServer]:
    async with lnurl_server(sim) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def pay_params(http: httpx.AsyncClient, server: SimLnurlServer, name: str) -> Any:
    """Resolve a lightning address as a wallet does (LUD-16)."""
    user, domain = server.address(name).split("@")
    response = await http.get(f"http://{domain}/.well-known/lnurlp/{user}")
    assert response.status_code == 200, response.text
    return response.json()


async def refused(http: httpx.AsyncClient, url: str, **query: str | int) -> str:
    """The reason of a LUD-06 error answer."""
    response = await http.get(url, params=query)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "ERROR"
    return str(body["reason"])


async def test_the_address_resolves_to_pay_params(
    sim: SimulatedBackend, server: SimLnurlServer, http: httpx.AsyncClient
) -> None:
    assert server.authority == f"127.0.0.1:{server.port}"
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.address("alice") == f"alice@127.0.0.1:{server.port}"
    assert server.port > 0
    params = await pay_params(http, server, "alice")
    assert params == {
        "tag": "payRequest",
        "callback": f"{server.url}/lnurlp/alice/callback",
        "metadata": params["metadata"],
        "minSendable": MIN_SENDABLE_MSAT,
        "maxSendable": MAX_SENDABLE_MSAT,
        "commentAllowed": COMMENT_ALLOWED,
        "allowsNostr": True,
        "nostrPubkey": sim.zapper_secret().public_key.hex,
    }
    assert server.nostr_pubkey == params["nostrPubkey"]
    metadata = dict(json.loads(params["metadata"]))
    assert metadata["text/identifier"] == server.address("alice")
    assert "alice" in metadata["text/plain"]
    assert [node.name for node in await sim.nodes()] == ["alice"]  # made on first use
    assert [node.name for node in await sim.nodes()] == ["alice"]
    reason = await refused(http, f"{server.url}/.well-known/lnurlp/Not%20A%20Name")
    assert "node name" in reason


async def test_the_callback_mints_an_invoice_the_wallet_pays(
    sim: SimulatedBackend, server: SimLnurlServer, http: httpx.AsyncClient
) -> None:
    params = await pay_params(http, server, "bob")
    response = await http.get(params["callback"], params={"amount": 21_000, "comment": "thanks!"})
    assert response.status_code == 200
    body = response.json()
    assert body["routes"] == []
    invoice = decode(body["pr"])
    [bob] = await sim.nodes()
    assert invoice.amount_msat == 21_000
    assert invoice.payee == bob.pubkey
    assert invoice.description is None
    assert invoice.description_hash == hashlib.sha256(params["metadata"].encode()).hexdigest()
    assert params["metadata"] == pay_metadata("bob", server.authority)
    outcome = await sim.pay_invoice(invoice, amount_msat=21_000, fee_limit_msat=0)
    assert isinstance(outcome, Succeeded)
    [got] = await sim.received("bob")
    assert (got.kind, got.amount_msat, got.payment_hash) == (
        "invoice",
        21_000,
        invoice.payment_hash,
    )
    assert got.description == params["metadata"]
    assert got.metadata == {"comment": "thanks!"}


async def test_the_callback_refuses_what_the_pay_request_does_not_allow(
    server: SimLnurlServer, http: httpx.AsyncClient
) -> None:
    callback = (await pay_params(http, server, "carol"))["callback"]
    for amount in (MIN_SENDABLE_MSAT - 1, MAX_SENDABLE_MSAT + 1):
        assert "outside" in await refused(http, callback, amount=amount)
    for amount in ("", "abc", "-5", "1e6"):
        assert "amount" in await refused(http, callback, amount=amount)
    assert "amount" in await refused(http, callback)
    too_long = "x" * (COMMENT_ALLOWED + 1)
    assert "comment" in await refused(http, callback, amount=1_000, comment=too_long)
    response = await http.get(
        callback, params={"amount": MIN_SENDABLE_MSAT, "comment": "x" * COMMENT_ALLOWED}
    )
    assert response.status_code == 200
    assert decode(response.json()["pr"]).amount_msat == MIN_SENDABLE_MSAT


def zap_json(amount_msat: int, **changes: Any) -> str:
    """A zap request for ``amount_msat`` as a nostr client sends it to the callback."""
    fields: dict[str, Any] = {
        "recipient_pubkey": SecretKey.generate().public_key.hex,
        "amount_msat": amount_msat,
        "relays": ["ws://127.0.0.1:1"],
        "lnurl": "lnurl1dp68gurn8ghj7",
        "comment": "zap ⚡",
        "created_at": int(time.time()),
        **changes,
    }
    return zap_request_json(zap_request(SecretKey.generate(), **fields))


async def test_a_zap_invoice_commits_to_the_zap_request(
    sim: SimulatedBackend, server: SimLnurlServer, http: httpx.AsyncClient
) -> None:
    callback = (await pay_params(http, server, "dave"))["callback"]
    zap = zap_json(5_000)
    response = await http.get(
        callback, params={"amount": 5_000, "nostr": zap, "lnurl": "lnurl1dp68gurn8ghj7"}
    )
    assert response.status_code == 200, response.text
    invoice = decode(response.json()["pr"])
    assert invoice.amount_msat == 5_000
    assert invoice.description_hash == hashlib.sha256(zap.encode()).hexdigest()
    await sim.pay_invoice(invoice, amount_msat=5_000, fee_limit_msat=0)
    [got] = await sim.received("dave")
    assert got.description == zap
    assert got.metadata is not None
    assert got.metadata["zap_request"] == json.loads(zap)


async def test_a_bad_zap_request_is_refused(
    server: SimLnurlServer, http: httpx.AsyncClient
) -> None:
    callback = (await pay_params(http, server, "erin"))["callback"]
    other_amount = zap_json(9_000)
    reason = await refused(http, callback, amount=5_000, nostr=other_amount)
    assert "9000 msat" in reason
    forged = json.loads(zap_json(5_000))
    forged["content"] = "changed after signing"
    reason = await refused(http, callback, amount=5_000, nostr=json.dumps(forged))
    assert "not a valid nostr event" in reason
    assert "not JSON" in await refused(http, callback, amount=5_000, nostr="{nope")


async def test_a_paid_zap_gets_its_receipt_on_the_requests_relays(
    sim: SimulatedBackend,
    server: SimLnurlServer,
    http: httpx.AsyncClient,
    nwcd_relay: LocalRelay,
) -> None:
    callback = (await pay_params(http, server, "frank"))["callback"]
    recipient = SecretKey.generate().public_key.hex
    zapped_event = "ee" * 32
    zap = zap_json(
        5_000,
        recipient_pubkey=recipient,
        relays=[nwcd_relay.url, "https://not-a-relay.example"],
        event_id=zapped_event,
    )
    async with RelayPool([nwcd_relay.url]) as pool:
        receipts = await pool.subscribe(
            [Filter(kinds=(Kind.ZAP_RECEIPT,), tags={"p": (recipient,)})]
        )
        response = await http.get(callback, params={"amount": 5_000, "nostr": zap})
        invoice = decode(response.json()["pr"])
        await sim.pay_invoice(invoice, amount_msat=5_000, fee_limit_msat=0)
        receipt = await asyncio.wait_for(receipts.get(), 10)
    receipt.verify()
    assert receipt.pubkey == server.nostr_pubkey
    assert receipt.kind == Kind.ZAP_RECEIPT
    assert receipt.tag_value("p") == recipient
    assert receipt.tag_value("e") == zapped_event
    assert receipt.tag_value("P") == json.loads(zap)["pubkey"]
    assert receipt.tag_value("bolt11") == invoice.bolt11
    assert receipt.tag_value("description") == zap
    [got] = await sim.received("frank")
    assert receipt.created_at == int(got.at)
