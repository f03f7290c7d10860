"""Paying many people in one call, end to end: ``nwcd serve``'s pipeline on the simulator,
a relay, and the simulator's real LNURL-pay server on loopback (``nwcd sim lnurl``)."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nwcd.backends.sim_lnurl import SimLnurlServer, lnurl_server
from nwcd.client.client import NWCClient
from nwcd.client.recipients import (
    Recipient,
    dry_run,
    pay_recipients,
    plan,
    value_block_recipients,
)
from nwcd.nip47.uri import ConnectionUri
from nwcd.recipients.value_block import BOOSTAGRAM_TLV, parse_value_block
from tests.client.test_pay_cli import nwcd_pay
from tests.service.harness import WalletHarness

FEED = Path(__file__).parent / "feeds" / "value_mixed.xml"


@dataclass
class Paying:
    wallet: WalletHarness
    uri: ConnectionUri
    lnurl: SimLnurlServer

    async def received(self, name: str) -> list[Any]:
        return list(await self.wallet.backend.received(name))


@pytest.fixture
async def paying(tmp_path: Path, nwcd_relay: object) -> AsyncIterator[Paying]:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        async with lnurl_server(wallet.backend) as server:
            yield Paying(wallet, uri, server)


def methods_sent(client: NWCClient) -> list[str]:
    """Record the NIP-47 method of every request ``client`` sends."""
    sent: list[str] = []
    send = client._send

    def spy(method: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(method)
        return send(method, *args, **kwargs)

    client._send = spy  # type: ignore[method-assign]
    return sent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tlv_json(record: Any, tlv_type: int) -> Any:
    [found] = [tlv for tlv in record.tlv_records if tlv.type == tlv_type]
    return found.json


async def test_twenty_lightning_addresses_are_paid_once_in_one_batch(paying: Paying) -> None:
    names = [f"friend{n}" for n in range(20)]
    recipients = [
        Recipient(paying.lnurl.address(name), (n + 1) * 1_000) for n, name in enumerate(names)
    ]
    async with NWCClient(paying.uri, timeout=30) as client:
        sent = methods_sent(client)
        results = await pay_recipients(client, recipients)
    assert sent == ["multi_pay_invoice"]
    assert [r.recipient for r in results] == [r.target for r in recipients]
    assert [r.status for r in results] == ["paid"] * 20
    for n, (name, result) in enumerate(zip(names, results, strict=True)):
        assert result.amount_msat == (n + 1) * 1_000
        assert result.preimage is not None
        assert hashlib.sha256(bytes.fromhex(result.preimage)).hexdigest() == result.payment_hash
        [got] = await paying.received(name)
        assert (got.amount_msat, got.payment_hash) == ((n + 1) * 1_000, result.payment_hash)


async def test_mixed_recipients_and_failures_do_not_block_the_others(paying: Paying) -> None:
    backend = paying.wallet.backend
    invoice = await backend.create_invoice(5_000)
    podcaster = await backend.add_node("podcaster")
    boost = json.dumps({"action": "boost", "value_msat_total": 2_000}).encode().hex()
    recipients = [
        Recipient(invoice.invoice),
        Recipient(podcaster, 2_000, tlv_records=((BOOSTAGRAM_TLV, boost), (696969, "6869"))),
        Recipient(paying.lnurl.address("alice"), 3_000, comment="thanks"),
        Recipient(paying.lnurl.address("tiny"), 500),  # below minSendable (1 sat)
        Recipient(paying.lnurl.address("chatty"), 1_000, comment="x" * 1_000),
        Recipient(f"ghost@127.0.0.1:{free_port()}", 1_000),  # nobody listens there
        Recipient("not a recipient", 1_000),
    ]
    async with NWCClient(paying.uri, timeout=30) as client:
        sent = methods_sent(client)
        results = await pay_recipients(client, recipients)
    assert sorted(sent) == ["multi_pay_invoice", "multi_pay_keysend"]
    assert [r.status for r in results] == ["paid"] * 3 + ["failed"] * 4
    assert all(r.error for r in results[3:])
    assert results[0].preimage == invoice.preimage
    [keysend] = await paying.received(podcaster)
    assert keysend.amount_msat == 2_000
    assert tlv_json(keysend, BOOSTAGRAM_TLV) == {"action": "boost", "value_msat_total": 2_000}
    assert [(t.type, t.value) for t in keysend.tlv_records] == [
        (BOOSTAGRAM_TLV, boost),
        (696969, "6869"),
    ]
    [paid] = await paying.received("alice")
    assert paid.amount_msat == 3_000
    for name in ("tiny", "chatty"):
        assert await paying.received(name) == []


async def test_a_dry_run_resolves_and_pays_nothing(paying: Paying) -> None:
    before = await paying.wallet.backend.get_balance()
    planned = await plan([Recipient(paying.lnurl.address("carol"), 21_000)])
    [result] = dry_run(planned)
    assert result.status == "resolved"
    assert result.invoice is not None
    assert result.invoice.startswith("lnbcrt210n")
    assert await paying.received("carol") == []
    assert await paying.wallet.backend.get_balance() == before


def render_feed(tmp_path: Path, paying: Paying, host: str, app: str) -> Path:
    feed = tmp_path / "feed.xml"
    feed.write_text(
        FEED.read_text()
        .replace("HOST_NODE", host)
        .replace("APP_NODE", app)
        .replace("COHOST_ADDRESS", paying.lnurl.address("cohost"))
    )
    return feed


async def test_a_value_block_is_split_and_boosted(tmp_path: Path, paying: Paying) -> None:
    """The feed's value block: a 1% app fee first, then 90/10 between the host's node and
    the cohost's lightning address; the keysend carries the boostagram and custom record."""
    backend = paying.wallet.backend
    host, app = await backend.add_node("host"), await backend.add_node("app")
    feed = render_feed(tmp_path, paying, host, app)
    block = parse_value_block(feed.read_bytes(), episode_guid="episode-2")
    recipients = value_block_recipients(
        block, 1_000_000, message="great show", sender_name="listener"
    )
    async with NWCClient(paying.uri, timeout=30) as client:
        results = await pay_recipients(client, recipients)
    assert [(r.recipient, r.amount_msat, r.status) for r in results] == [
        (host, 891_000, "paid"),
        (paying.lnurl.address("cohost"), 99_000, "paid"),
        (app, 10_000, "paid"),
    ]
    [to_host] = await paying.received("host")
    record = tlv_json(to_host, BOOSTAGRAM_TLV)
    assert record["value_msat_total"] == 1_000_000
    assert record["value_msat"] == 891_000
    assert record["message"] == "great show"
    assert record["sender_name"] == "listener"
    assert record["episode"] == "Episode two"
    assert [t.text for t in to_host.tlv_records if t.type == 696969] == ["host-podcast-id"]
    [to_cohost] = await paying.received("cohost")
    assert to_cohost.amount_msat == 99_000


async def test_the_cli_forms(tmp_path: Path, paying: Paying) -> None:
    uri = paying.uri.format()
    alice, bob = paying.lnurl.address("alice"), paying.lnurl.address("bob")

    code, out, _ = await nwcd_pay(uri, "--to", f"{alice}=3", "--to", f"{bob}=2", "--json")
    assert code == 0
    results = json.loads(out)
    assert [(r["recipient"], r["amount_msat"], r["ok"]) for r in results] == [
        (alice, 3_000, True),
        (bob, 2_000, True),
    ]
    assert all(r["preimage"] for r in results)

    code, out, _ = await nwcd_pay(uri, "--split", "10", f"{alice}=60", f"{bob}=40", "--json")
    assert code == 0
    assert [r["amount_msat"] for r in json.loads(out)] == [6_000, 4_000]
    assert [p.amount_msat for p in await paying.received("alice")] == [3_000, 6_000]

    code, out, _ = await nwcd_pay(uri, "--to", f"{alice}=50", "--dry-run", "--json")
    assert code == 0
    [resolved] = json.loads(out)
    assert resolved["ok"] is False
    assert resolved["status"] == "resolved"
    assert len(await paying.received("alice")) == 2

    host, app = (
        await paying.wallet.backend.add_node("host"),
        await paying.wallet.backend.add_node("app"),
    )
    feed = render_feed(tmp_path, paying, host, app)
    value_block = ("--value-block", str(feed), "--amount-sat", "1000", "--json")
    code, out, _ = await nwcd_pay(uri, *value_block, "--episode", "episode-2", "--message", "hi")
    assert code == 0, out
    assert [r["amount_msat"] for r in json.loads(out)] == [891_000, 99_000, 10_000]
    code, out, _ = await nwcd_pay(uri, *value_block)  # the channel's block: the host alone
    assert code == 0, out
    assert [(r["recipient"], r["amount_msat"]) for r in json.loads(out)] == [(host, 1_000_000)]

    code, out, _ = await nwcd_pay(uri, "--to", f"{alice}=1", "--to", "nobody@invalid..", "--json")
    assert code == 1
    good, bad = json.loads(out)
    assert good["ok"] is True
    assert bad["ok"] is False
    assert bad["error"]


async def test_a_value_block_from_a_feed_url(tmp_path: Path, paying: Paying) -> None:
    """``--value-block URL``: the feed fetched over HTTP (plain HTTP is allowed for feeds),
    and a feed that cannot be fetched is a one-line error before anything is paid."""
    from aiohttp import web

    host = await paying.wallet.backend.add_node("host")
    app_node = await paying.wallet.backend.add_node("app")
    feed = render_feed(tmp_path, paying, host, app_node).read_bytes()

    async def serve_feed(request: web.Request) -> web.Response:
        return web.Response(body=feed, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/feed.xml", serve_feed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        uri = paying.uri.format()
        code, out, _ = await nwcd_pay(
            uri, "--value-block", f"{base}/feed.xml", "--amount-sat", "1000", "--json"
        )
        assert code == 0, out
        assert [(r["recipient"], r["amount_msat"]) for r in json.loads(out)] == [(host, 1_000_000)]
        code, out, err = await nwcd_pay(
            uri, "--value-block", f"{base}/missing.xml", "--amount-sat", "1000"
        )
        assert code != 0
        assert f"cannot fetch {base}/missing.xml" in err
        assert [p.amount_msat for p in await paying.received("host")] == [1_000_000]
    finally:
        await runner.cleanup()


async def test_a_wallet_without_batches_gets_single_payments(
    tmp_path: Path, nwcd_relay: object
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect(methods=frozenset({"pay_invoice", "pay_keysend", "get_info"}))
        await wallet.start()
        node = await wallet.backend.add_node("node")
        async with lnurl_server(wallet.backend) as server:
            recipients = [
                Recipient(server.address("alice"), 1_000),
                Recipient(server.address("bob"), 2_000),
                Recipient(node, 3_000, tlv_records=((696969, "6869"),)),
            ]
            async with NWCClient(uri, timeout=30) as client:
                sent = methods_sent(client)
                results = await pay_recipients(client, recipients)
        assert sorted(sent) == ["pay_invoice", "pay_invoice", "pay_keysend"]
        assert [r.status for r in results] == ["paid"] * 3
        [keysend] = await wallet.backend.received("node")
        assert [(t.type, t.text) for t in keysend.tlv_records] == [(696969, "hi")]


async def test_an_amountless_invoice_is_paid_the_amount_given(paying: Paying) -> None:
    backend = paying.wallet.backend
    amountless = await backend.create_invoice(None)
    priced = await backend.create_invoice(4_000)
    async with NWCClient(paying.uri, timeout=30) as client:
        results = await pay_recipients(
            client,
            [Recipient(amountless.invoice, 7_000), Recipient(priced.invoice)],
        )
    assert [(r.status, r.amount_msat) for r in results] == [("paid", 7_000), ("paid", 4_000)]
    assert [r.preimage for r in results] == [amountless.preimage, priced.preimage]
    got = await paying.received(backend.payee_pubkeys[0])  # both invoices are payee 0's
    assert sorted(p.amount_msat for p in got) == [4_000, 7_000]
