"""Every request answered, also at the seams: between storing and publishing, on a re-send,
right after a connection is created, and after old requests are forgotten."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nwcd.nip47.encryption import Scheme, seal_content
from nwcd.nip47.results import encode_response
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.ports import OK, RequestOutcome, RequestRecord
from nwcd.relay.pool import RelayPool
from nwcd.service.daemon import DaemonOptions
from nwcd.service.pipeline import ServiceSettings
from tests.service.harness import RawApp, WalletHarness

T = TypeVar("T")


async def until(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 10
) -> None:
    """Poll what another task changes until ``done`` holds for it."""
    async with asyncio.timeout(timeout):
        while not done(await read()):  # noqa: ASYNC110 (the service changes it)
            await asyncio.sleep(0.05)


async def unpublished(data_dir: Path) -> list[str]:
    """Ids of responses the store holds as not delivered (read beside the service)."""
    db = sqlite3.connect(data_dir / "nwcd.sqlite")
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM responses WHERE published = 0")]
    finally:
        db.close()


def record_of(request: Event, uri: ConnectionUri) -> RequestRecord:
    return RequestRecord(
        request.id,
        uri.wallet_pubkey.hex,
        request.pubkey,
        Scheme.NIP44_V2.value,
        json.dumps(request.to_json()),
        request.created_at,
        request.created_at,
    )


async def test_a_response_stored_but_never_published_is_published_on_start(
    tmp_path: Path, relay_url: str
) -> None:
    async with WalletHarness(tmp_path, [relay_url]) as wallet:
        uri = await wallet.connect()
        [connection] = await wallet.store.connections()
        async with RelayPool([relay_url]) as pool:
            await pool.wait_connected(10)
            app = RawApp(uri, pool)
            request = app.request("get_balance")
            # What a process killed between storing and publishing left behind.
            await wallet.store.claim(record_of(request, uri), "a-process-that-died")
            plaintext = encode_response("get_balance", result={"balance": 21})
            answer = sign_event(
                connection.wallet_key,
                kind=Kind.NWC_RESPONSE,
                content=seal_content(
                    connection.wallet_key, uri.client_pubkey, Scheme.NIP44_V2, plaintext
                ),
                tags=[["p", request.pubkey], ["e", request.id]],
                created_at=request.created_at,
            )
            await wallet.store.save_responses(
                request.id, [(None, answer)], owner="a-process-that-died", now=request.created_at
            )
            await wallet.store.mark_done(
                request.id, RequestOutcome("get_balance", OK, request.created_at)
            )
            responses = await pool.subscribe(
                [Filter(kinds=(Kind.NWC_RESPONSE,), tags={"e": (request.id,)})]
            )
            await wallet.start()
            [(event, response)] = await app.collect(responses, 1, 10, 0.3, request.pubkey)
            assert event.id == answer.id
            assert response.result == {"balance": 21}
            # Delivered, so marked: the next start does not send it again.
            await until(lambda: unpublished(tmp_path), lambda got: not got)


async def test_an_app_re_sending_its_request_soon_gets_the_stored_answers(
    tmp_path: Path, relay_url: str
) -> None:
    # Default pool options: a re-send within a minute used to be dropped as a copy.
    options = DaemonOptions(relays=(relay_url,))
    async with WalletHarness(tmp_path, [relay_url], options=options) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        invoices = [await wallet.backend.create_invoice(2_000) for _ in range(3)]
        items = [{"id": str(i), "invoice": m.invoice} for i, m in enumerate(invoices)]
        async with RelayPool([relay_url]) as pool:
            await pool.wait_connected(10)
            app = RawApp(uri, pool)
            request = app.request("multi_pay_invoice", {"invoices": items})
            first = await app.send(request, expect=3, settle=0.3)
            assert {e.tag_value("d") for e, _ in first} == {"0", "1", "2"}
            await asyncio.sleep(1.5)  # the app saw no answer (say) and sends it again
            again = await app.send(request, expect=3, settle=0.3)
            assert {e.id for e, _ in again} == {e.id for e, _ in first}
        assert await wallet.backend.get_balance() == 100_000_000_000 - 3 * 2_000


async def test_a_new_connection_is_answered_as_soon_as_create_returns(
    tmp_path: Path, relay_url: str
) -> None:
    # The service polls for connection changes (0.5 s by default) and needs a round trip
    # to its relays to listen: `connection create` must not hand out the URI before.
    options = DaemonOptions(relays=(relay_url,))
    async with WalletHarness(tmp_path, [relay_url], options=options) as wallet:
        await wallet.connect("first")
        await wallet.start()
        async with RelayPool([relay_url]) as pool:
            await pool.wait_connected(10)
            for attempt in range(3):
                created = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "nwcd",
                    "connection",
                    "create",
                    "--name",
                    f"new{attempt}",
                    "--relay",
                    relay_url,
                    "--json",
                    "--data-dir",
                    str(tmp_path),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={**os.environ, "NWCD_CONFIG": ""},
                )
                out, err = await created.communicate()
                assert created.returncode == 0, err
                assert b"warning" not in err
                uri = ConnectionUri.parse(json.loads(out)["uri"])
                app = RawApp(uri, pool)
                [(_, response)] = await app.send(app.request("get_info"), timeout=10)
                assert response.error is None


async def test_old_requests_that_moved_no_money_are_forgotten_and_never_answered_twice(
    tmp_path: Path, relay_url: str
) -> None:
    # A 1 s freshness window and margin: the horizon is 3 s, and requests that moved no
    # money are pruned once both their date and arrival are older than that.
    settings = ServiceSettings(freshness_window=1, subscribe_margin=1, retention=0)
    options = DaemonOptions(relays=(relay_url,), prune_interval=0.2)
    async with WalletHarness(tmp_path, [relay_url], settings, options) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        invoice = await wallet.backend.create_invoice(1_000)
        async with RelayPool([relay_url]) as pool:
            await pool.wait_connected(10)
            app = RawApp(uri, pool)
            read = app.request("get_balance")
            pay = app.request("pay_invoice", {"invoice": invoice.invoice})
            [(answered, balance)] = await app.send(read)
            [(paid_event, paid)] = await app.send(pay)
            assert balance.error is None
            assert paid.error is None
            await until(lambda: wallet.store.request(read.id), lambda got: got is None)
            assert await wallet.store.request(pay.id) is not None  # it moved money: kept
            assert time.time() - read.created_at > settings.horizon
            # Re-sent after it was forgotten: older than the horizon, so dropped rather
            # than answered a second time ("too old" would contradict the first answer).
            # (A relay that stores ephemeral events may replay the first answer.)
            late = await app.send(read, expect=1, timeout=1.5, settle=1.0)
            assert {event.id for event, _ in late} <= {answered.id}
            # The payment's answer is still there for an app that lost it.
            [(again, _)] = await app.send(pay)
            assert again.id == paid_event.id
        assert await wallet.backend.get_balance() == 100_000_000_000 - 1_000
