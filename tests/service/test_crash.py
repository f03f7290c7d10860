"""Exactly once across a kill -9: ``nwcd serve`` as a real process, state in the data dir."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.ports import Pending
from nwcd.relay.pool import RelayPool
from tests.service.harness import RawApp
from tests.support.service import ServeProcess

pytestmark = pytest.mark.slow


def nwcd(*args: str, data_dir: Path) -> str:
    """Run a CLI command to completion and return its stdout."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "nwcd", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture
async def service(tmp_path: Path, relay_url: str) -> AsyncIterator[ServeProcess]:
    service = ServeProcess(tmp_path, [relay_url])
    try:
        yield service
    finally:
        await service.kill()


async def test_kill_9_mid_batch_pays_nothing_twice(
    tmp_path: Path, relay_url: str, service: ServeProcess
) -> None:
    created = json.loads(
        nwcd(
            "connection",
            "create",
            "--name",
            "app",
            "--relay",
            relay_url,
            "--json",
            data_dir=tmp_path,
        )
    )
    assert set(created) == {"name", "uri", "wallet_pubkey", "app_pubkey"}
    uri = ConnectionUri.parse(created["uri"])

    def sim_invoice(amount: int, outcome: str) -> dict[str, object]:
        out = nwcd(
            "sim", "invoice", "--amount-msat", str(amount), "--outcome", outcome, "--fee-msat",
            "2", "--json", data_dir=tmp_path,
        )  # fmt: skip
        made = json.loads(out)
        assert set(made) == {"invoice", "payment_hash", "amount_msat"}
        return dict(made)

    quick = [sim_invoice(1_000 * (i + 1), "succeed") for i in range(2)]
    hanging = [sim_invoice(10_000 * (i + 1), "hang") for i in range(3)]
    items = [{"id": f"q{i}", "invoice": m["invoice"]} for i, m in enumerate(quick)]
    items += [{"id": f"h{i}", "invoice": m["invoice"]} for i, m in enumerate(hanging)]

    await service.start()
    async with RelayPool([relay_url]) as pool:
        await pool.wait_connected(10)
        app = RawApp(uri, pool)
        request = app.request("multi_pay_invoice", {"invoices": items})
        responses = await pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(uri.wallet_pubkey.hex,),
                    tags={"e": (request.id,)},
                )
            ]
        )
        await pool.publish(request)
        first = await app.collect(responses, 2, 15, 0, request.pubkey)
        assert {event.tag_value("d") for event, _ in first} == {"q0", "q1"}
        # Kill only once the backend holds all three hanging payments in flight.
        async with await SimulatedBackend.open(
            SimulatorConfig(tmp_path / "simulator.sqlite")
        ) as watcher:
            async with asyncio.timeout(15):
                for made in hanging:
                    while True:  # polling: the payments live in another process
                        status = await watcher.payment_status(str(made["payment_hash"]))
                        if isinstance(status, Pending):
                            break
                        await asyncio.sleep(0.02)

        await service.kill()
        # While the service is down: one payee settles, one fails, one keeps hanging.
        nwcd(
            "sim",
            "release",
            str(hanging[0]["payment_hash"]),
            "--outcome",
            "succeed",
            data_dir=tmp_path,
        )
        nwcd(
            "sim",
            "release",
            str(hanging[1]["payment_hash"]),
            "--outcome",
            "fail",
            data_dir=tmp_path,
        )

        await service.start()
        recovered = await app.collect(responses, 2, 20, 0, request.pubkey, new_only=True)
        by_d = {event.tag_value("d"): response for event, response in recovered}
        assert set(by_d) == {"h0", "h1"}
        assert by_d["h0"].result is not None
        assert by_d["h1"].error is not None
        assert by_d["h1"].error.code == "PAYMENT_FAILED"

        nwcd(
            "sim",
            "release",
            str(hanging[2]["payment_hash"]),
            "--outcome",
            "succeed",
            data_dir=tmp_path,
        )
        last = await app.collect(responses, 1, 30, 1.0, request.pubkey, new_only=True)
        assert [event.tag_value("d") for event, _ in last] == ["h2"]

        await responses.close()

    await service.kill()
    async with await SimulatedBackend.open(SimulatorConfig(tmp_path / "simulator.sqlite")) as sim:
        outgoing = await sim.list_transactions(
            __import__(
                "nwcd.nip47.methods", fromlist=["ListTransactionsParams"]
            ).ListTransactionsParams(type="outgoing", unpaid=True)
        )
        hashes = [tx.payment_hash for tx in outgoing]
        assert len(hashes) == len(set(hashes)), "an invoice was paid twice"
        settled = {tx.payment_hash for tx in outgoing if tx.state == "settled"}
        expected = {m["payment_hash"] for m in quick} | {
            hanging[0]["payment_hash"],
            hanging[2]["payment_hash"],
        }
        assert settled == expected
        paid = 1_000 + 2_000 + 10_000 + 30_000 + 4 * 2
        assert await sim.get_balance() == 100_000_000_000 - paid


async def test_sigterm_stops_serve_cleanly(tmp_path: Path, relay_url: str) -> None:
    nwcd("connection", "create", "--name", "app", "--relay", relay_url, data_dir=tmp_path)
    service = ServeProcess(tmp_path, [relay_url])
    await service.start()
    assert service.process is not None
    service.process.terminate()
    code = await asyncio.wait_for(service.process.wait(), 30)
    assert code == 0
    await service.kill()


@pytest.mark.parametrize("outage", [0.0, 3.0], ids=["backend-up", "backend-down-at-start"])
async def test_recovery_answers_batch_items_left_unanswered(
    tmp_path: Path, nwcd_relay: object, outage: float
) -> None:
    """The process died after reserving a batch but before answering its bad items:
    on start, the payment is resolved and the other items are answered too; if the
    backend is down then, once it is back (the items wait, they are not dropped)."""
    from nwcd.nip47.encryption import Scheme
    from nwcd.ports import PaymentIntent, RequestRecord
    from tests.service.harness import WalletHarness

    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet, RelayPool([url]) as pool:
        uri = await wallet.connect()
        await pool.wait_connected(5)
        good = await wallet.backend.create_invoice(5_000)
        app = RawApp(uri, pool)
        request = app.request(
            "multi_pay_invoice",
            {"invoices": [{"id": "good", "invoice": good.invoice}, {"id": "bad", "invoice": "x"}]},
        )
        # What a dying process left behind: the claim and the good item's reservation.
        await wallet.store.claim(
            RequestRecord(
                request.id,
                uri.wallet_pubkey.hex,
                request.pubkey,
                Scheme.NIP44_V2.value,
                json.dumps(request.to_json()),
                request.created_at,
                request.created_at,
            ),
            "a-process-that-died",
        )
        intent = PaymentIntent(
            0, "multi_pay_invoice", "good", good.payment_hash, good.invoice, 5_000, 10_000
        )
        await wallet.store.reserve(
            request.id,
            uri.wallet_pubkey.hex,
            [intent],
            owner="a-process-that-died",
            budget_msat=None,
            window_start=0,
            now=0,
        )
        responses = await pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(uri.wallet_pubkey.hex,),
                    tags={"e": (request.id,)},
                )
            ]
        )
        if outage:
            await wallet.backend.set_outage("error", outage)
        await wallet.start()
        got = await app.collect(responses, 2, 15 + outage, 0.3, request.pubkey)
        by_d = {event.tag_value("d"): response for event, response in got}
        assert set(by_d) == {"good", "bad"}
        # Never sent before the "crash": answered failed, nothing paid.
        assert by_d["good"].error is not None
        assert by_d["bad"].error is not None
        assert "invalid invoice" in by_d["bad"].error.message
        assert await wallet.backend.get_balance() == 100_000_000_000
        db = sqlite3.connect(tmp_path / "nwcd.sqlite")
        try:
            [(done,)] = db.execute("SELECT done FROM requests WHERE event_id = ?", (request.id,))
        finally:
            db.close()
        assert done == 1  # the batch was marked done: nothing is left for a later start


async def test_a_batch_taken_over_after_its_connection_was_revoked_pays_nothing_more(
    tmp_path: Path, nwcd_relay: object
) -> None:
    """Revoked while the batch was half done (the process died first): the items never
    started are answered UNAUTHORIZED, not paid."""
    from dataclasses import replace

    from nwcd.errors import ErrorCode
    from nwcd.nip47.encryption import Scheme, seal_content
    from nwcd.nip47.results import error_response
    from nwcd.nostr.event import sign_event
    from nwcd.ports import RequestRecord
    from tests.service.harness import WalletHarness

    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet, RelayPool([url]) as pool:
        uri = await wallet.connect()
        await pool.wait_connected(5)
        invoices = [await wallet.backend.create_invoice(5_000) for _ in range(2)]
        app = RawApp(uri, pool)
        items = [{"id": str(i), "invoice": m.invoice} for i, m in enumerate(invoices)]
        request = app.request("multi_pay_invoice", {"invoices": items})
        await wallet.store.claim(
            RequestRecord(
                request.id, uri.wallet_pubkey.hex, request.pubkey, Scheme.NIP44_V2.value,
                json.dumps(request.to_json()), request.created_at, request.created_at,
            ),
            "a-process-that-died",
        )  # fmt: skip
        # Item 0 was answered (failed) before the crash; item 1 was never started.
        [connection] = await wallet.store.connections()
        await wallet.store.save_connection(replace(connection, revoked_at=request.created_at))
        responses = await pool.subscribe(
            [Filter(kinds=(Kind.NWC_RESPONSE,), tags={"e": (request.id,)})]
        )
        item0 = sign_event(
            connection.wallet_key,
            kind=Kind.NWC_RESPONSE,
            content=seal_content(
                connection.wallet_key, uri.client_pubkey, Scheme.NIP44_V2,
                error_response("multi_pay_invoice", ErrorCode.PAYMENT_FAILED, "failed"),
            ),
            tags=[["p", request.pubkey], ["e", request.id], ["d", "0"]],
            created_at=request.created_at,
        )  # fmt: skip
        await wallet.store.save_responses(
            request.id, [(0, item0)], owner="a-process-that-died", now=request.created_at
        )
        await wallet.start()
        got = await app.collect(responses, 2, 10, 0.5, request.pubkey, new_only=True)
        answers = {e.tag_value("d"): response for e, response in got if e.tag_value("d")}
        assert set(answers) == {"0", "1"}
        assert answers["0"].error is not None  # the stored answer, delivered as it was
        assert answers["0"].error.code == "PAYMENT_FAILED"
        assert answers["1"].error is not None
        assert answers["1"].error.code == "UNAUTHORIZED"
        assert await wallet.backend.get_balance() == 100_000_000_000
