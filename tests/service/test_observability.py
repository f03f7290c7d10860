"""What the operator sees of a running service: each finished request stored (the activity
page), logged once (text and JSON) and counted in the metrics; payments in flight,
publish retries, recovery actions; and the health report.

Real requests through a real relay to a real ``WalletDaemon`` on the simulator; nothing
is timed: the tests wait for what the service does, then look.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nwcd.client.client import NWCClient, NWCError
from nwcd.errors import ErrorCode
from nwcd.logs import FIELDS, log_handler
from nwcd.nostr.event import sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.ports import OK, PaymentState, RequestSummary
from nwcd.relay.pool import RelayPool
from nwcd.relay.server import LocalRelay
from nwcd.service.health import health
from nwcd.service.metrics import Metrics, RecoveryAction
from nwcd.service.publisher import Publisher, PublishPolicy
from tests.service.harness import RawApp, WalletHarness
from tests.service.test_delivery import record_of, until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(metrics: Metrics) -> Samples:
    """Every sample of ``GET /metrics``, as Prometheus would read it."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@contextmanager
def log_lines(log_format: str) -> Iterator[io.StringIO]:
    """What the ``nwcd`` loggers write in ``log_format`` meanwhile (as ``nwcd serve``
    would, with ``--log-format``)."""
    stream = io.StringIO()
    handler = log_handler(log_format, stream)
    logger = logging.getLogger("nwcd")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def after_the_id(line: str) -> str:
    return line.split(" ", 2)[2]


async def finished(wallet: WalletHarness, count: int) -> list[RequestSummary]:
    """The requests, once ``count`` of them are done (the last answer reaches the app just
    before its request is recorded done)."""
    await until(
        lambda: wallet.store.recent_requests(100),
        lambda rows: sum(row.done for row in rows) >= count,
    )
    return await wallet.store.recent_requests(100)


async def test_finished_requests_are_stored_logged_and_counted(
    tmp_path: Path, nwcd_relay: LocalRelay, caplog: pytest.LogCaptureFixture
) -> None:
    url = nwcd_relay.url
    caplog.set_level(logging.INFO)
    with log_lines("text") as text, log_lines("json") as json_lines:
        async with WalletHarness(tmp_path, [url]) as wallet:
            uri = await wallet.connect("shop", budget_msat=100_000)
            await wallet.start()
            sim = wallet.backend
            single = await sim.create_invoice(2_000, fee_msat=5)
            good = await sim.create_invoice(1_000)
            bad = await sim.create_invoice(3_000, outcome="fail")
            too_much = await sim.create_invoice(200_000)
            async with NWCClient(uri, timeout=10) as client:
                await client.get_balance()
                paid = await client.pay_invoice(single.invoice)
                batch = await client.multi_pay_invoice([good.invoice, bad.invoice])
                with pytest.raises(NWCError) as denied:
                    await client.pay_invoice(too_much.invoice)
            assert [r.ok for r in batch] == [True, False]
            assert denied.value.code is ErrorCode.QUOTA_EXCEEDED
            rows = await finished(wallet, 4)
            mine = await wallet.store.recent_requests(100, wallet_pubkey=uri.wallet_pubkey.hex)
            by_method = {(row.method, row.outcome): row for row in rows}
            batch_items = await wallet.store.request_items(
                by_method["multi_pay_invoice", OK].request_id
            )
            denied_items = await wallet.store.request_items(
                by_method["pay_invoice", "QUOTA_EXCEEDED"].request_id
            )
            metrics = samples(wallet.daemon.metrics)
            instance = wallet.daemon.instance_id

    # Stored, for the activity page: one row per request, with what it finished as.
    assert mine == rows
    assert sorted(
        (row.method or "", row.outcome or "", row.amount_msat, row.items) for row in rows
    ) == [
        ("get_balance", OK, None, 0),
        ("multi_pay_invoice", OK, 4_000, 2),
        ("pay_invoice", "QUOTA_EXCEEDED", 200_000, 1),
        ("pay_invoice", OK, 2_000, 1),
    ]
    for row in rows:
        assert (row.connection, row.instance, row.done) == ("shop", instance, True)
        assert row.latency_ms is not None
        assert row.latency_ms >= 0
        assert row.finished_at is not None
        assert row.finished_at >= row.received_at
    # A batch's items are its payments, each in its own state; a denial made none.
    assert [(p.intent.item_index, p.intent.amount_msat, p.state) for p in batch_items] == [
        (0, 1_000, PaymentState.SUCCEEDED),
        (1, 3_000, PaymentState.FAILED),
    ]
    assert batch_items[1].error_code == ErrorCode.PAYMENT_FAILED
    assert denied_items == []

    # Logged: one INFO line per finished request, the same in both formats.
    finished_records = [r for r in caplog.records if hasattr(r, FIELDS)]
    assert len(finished_records) == 4
    assert all(r.levelno == logging.INFO and r.name == "nwcd.service" for r in finished_records)
    # In the order of what follows the request id (ids are random).
    lines = sorted((r.getMessage() for r in finished_records), key=after_the_id)
    short = r"request [0-9a-f]{16}"
    patterns = [
        rf"{short} get_balance for 'shop': ok, [\d.]+ ms",
        rf"{short} multi_pay_invoice for 'shop': ok, 2 items, 4000 msat, [\d.]+ ms",
        rf"{short} pay_invoice for 'shop': QUOTA_EXCEEDED \(payment of 200000 msat exceeds the"
        r" remaining budget of \d+ msat\), 1 item, 200000 msat, [\d.]+ ms",
        rf"{short} pay_invoice for 'shop': ok, 1 item, 2000 msat, [\d.]+ ms",
    ]
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), line
    text_lines = [line for line in text.getvalue().splitlines() if " for 'shop': " in line]
    assert (
        sorted((line.split(" INFO nwcd.service: ", 1)[1] for line in text_lines), key=after_the_id)
        == lines
    )
    objects = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    assert all(obj.keys() >= {"time", "level", "logger", "message"} for obj in objects)
    requests = sorted(
        (obj for obj in objects if "request_id" in obj),
        key=lambda obj: after_the_id(obj["message"]),
    )
    assert [obj["message"] for obj in requests] == lines
    assert {row.request_id for row in rows} == {obj["request_id"] for obj in requests}
    paid_line = next(obj for obj in requests if obj["amount_msat"] == 2_000)
    assert {key: paid_line[key] for key in ("level", "logger", "connection", "method")} == {
        "level": "INFO",
        "logger": "nwcd.service",
        "connection": "shop",
        "method": "pay_invoice",
    }
    assert (paid_line["outcome"], paid_line["items"]) == (OK, 1)
    assert isinstance(paid_line["latency_ms"], float)
    # Never a secret, in any format.
    everything = caplog.text + text.getvalue() + json_lines.getvalue()
    for secret in (
        uri.secret.reveal_hex(),
        single.invoice,
        single.preimage,
        paid["preimage"],
        bad.invoice,
        too_much.invoice,
    ):
        assert secret not in everything

    # Counted.
    assert {
        (dict(labels)["method"], dict(labels)["outcome"]): count
        for (name, labels), count in metrics.items()
        if name == "nwcd_requests_total"
    } == {
        ("get_balance", OK): 1,
        ("pay_invoice", OK): 1,
        ("multi_pay_invoice", OK): 1,
        ("pay_invoice", "QUOTA_EXCEEDED"): 1,
    }
    assert value(metrics, "nwcd_request_duration_seconds_count", method="pay_invoice") == 2
    assert value(metrics, "nwcd_request_duration_seconds_count", method="get_balance") == 1
    assert value(metrics, "nwcd_batch_items_total", outcome=OK) == 1
    assert value(metrics, "nwcd_batch_items_total", outcome="PAYMENT_FAILED") == 1
    assert value(metrics, "nwcd_budget_denials_total") == 1
    assert value(metrics, "nwcd_payments_in_flight") == 0
    assert value(metrics, "nwcd_relay_connected", relay=url) == 1
    for action in RecoveryAction:
        assert value(metrics, "nwcd_recovery_actions_total", action=action.value) == 0


async def test_a_payment_in_flight_is_counted_until_it_ends(
    tmp_path: Path, nwcd_relay: LocalRelay
) -> None:
    async with WalletHarness(tmp_path, [nwcd_relay.url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        hanging = await wallet.backend.create_invoice(1_000, outcome="hang")

        def in_flight() -> float:
            return value(samples(wallet.daemon.metrics), "nwcd_payments_in_flight")

        async def read() -> float:
            return in_flight()

        async with NWCClient(uri, timeout=20) as client:
            paying = asyncio.create_task(client.pay_invoice(hanging.invoice))
            await until(read, lambda n: n == 1)
            await wallet.backend.release(hanging.payment_hash, "succeed")
            await paying
        await until(read, lambda n: n == 0)


async def test_work_left_by_the_previous_run_is_counted_as_recovery(
    tmp_path: Path, nwcd_relay: LocalRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with WalletHarness(tmp_path, [nwcd_relay.url]) as wallet:
        uri = await wallet.connect("reader")
        # Claimed by a run that died before it started on it.
        request = RawApp(uri, pool=None).request("get_balance")  # type: ignore[arg-type]
        assert (await wallet.store.claim(record_of(request, uri), "a-run-that-died")).won
        await wallet.start()
        [row] = await finished(wallet, 1)
        metrics = samples(wallet.daemon.metrics)
    assert (row.request_id, row.method, row.outcome) == (request.id, "get_balance", OK)
    assert row.latency_ms is not None  # from when it was received, before the restart
    assert value(metrics, "nwcd_recovery_actions_total", action="taken_over") == 1
    assert value(metrics, "nwcd_recovery_actions_total", action="processed") == 1
    assert value(metrics, "nwcd_requests_total", method="get_balance", outcome=OK) == 1
    [line] = [r.getMessage() for r in caplog.records if hasattr(r, FIELDS)]
    assert line.startswith(f"request {request.id[:16]} get_balance for 'reader': ok, ")


async def test_a_publish_no_relay_takes_is_retried_and_counted(nwcd_relay: LocalRelay) -> None:
    metrics = Metrics()
    policy = PublishPolicy(attempts=3, ok_timeout=2, backoff_base=0.01, backoff_cap=0.02)
    nwcd_relay.faults.reject_publishes = True
    async with RelayPool([nwcd_relay.url]) as pool:
        assert await pool.wait_connected(10)
        publisher = Publisher(pool, policy, metrics)
        event = sign_event(
            SecretKey.generate(), kind=1, content="hello", tags=[], created_at=int(time.time())
        )
        publisher.publish(event, [nwcd_relay.url])
        await publisher.drain(10)
        await publisher.close()
    # Refused three times: tried again twice, then given up.
    assert value(samples(metrics), "nwcd_publish_retries_total") == 2


async def test_health_reports_ready_only_with_the_store_and_a_relay(
    tmp_path: Path, nwcd_relay: LocalRelay
) -> None:
    async with WalletHarness(tmp_path, [nwcd_relay.url]) as wallet:
        await wallet.connect("a")
        await wallet.connect("b")
        await wallet.start()
        ready = await health(wallet.daemon)
        assert ready.ok
        assert ready.as_json() == {
            "ok": True,
            "instance": wallet.daemon.instance_id,
            "store": {"kind": "sqlite", "reachable": True},
            "backend": {"kind": "simulator"},
            "relays": {"connected": 1, "total": 1, "states": {nwcd_relay.url: True}},
            "connections": 2,
        }
        await nwcd_relay.stop()
        await until(lambda: health(wallet.daemon), lambda report: not report.ok)
        down = await health(wallet.daemon)
        assert down.store_reachable
        assert down.as_json()["relays"] == {
            "connected": 0,
            "total": 1,
            "states": {nwcd_relay.url: False},
        }
        metrics = samples(wallet.daemon.metrics)
        assert value(metrics, "nwcd_relay_connected", relay=nwcd_relay.url) == 0
