"""The pure rules of observability: what a finished request is recorded as, its log line,
how metrics label and count it, and when an instance is healthy."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nwcd.errors import ErrorCode, RequestError
from nwcd.nip47.encryption import Scheme
from nwcd.nip47.results import PayResult
from nwcd.nostr.event import sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import Connection
from nwcd.ports import OK, RequestOutcome
from nwcd.service.health import HealthReport
from nwcd.service.metrics import Metrics, RecoveryAction, method_label
from nwcd.service.pipeline import RequestContext, finished_line, finished_request, item_outcome

APP_KEY = SecretKey.generate()


def context(method: str, received: float | None = 100.0) -> RequestContext:
    connection = Connection(
        name="shop",
        wallet_key=SecretKey.generate(),
        app_pubkey=APP_KEY.public_key.hex,
        relays=(),
        created_at=0,
    )
    event = sign_event(APP_KEY, kind=23194, content="sealed", tags=[], created_at=1)
    return RequestContext(event, connection, APP_KEY.public_key, Scheme.NIP44_V2, method, received)


def counts(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if not s.name.endswith("_created")
    }


# -- what a request finished as ----------------------------------------------------------------


def test_an_answer_is_recorded_with_its_outcome_and_latency() -> None:
    outcome = finished_request(
        context("pay_invoice"), "QUOTA_EXCEEDED", now=7, monotonic=100.25, amount_msat=5, items=1
    )
    assert outcome == RequestOutcome(
        method="pay_invoice",
        outcome="QUOTA_EXCEEDED",
        finished_at=7,
        amount_msat=5,
        items=1,
        latency_ms=250.0,
    )


@pytest.mark.parametrize(
    ("method", "recorded"),
    [("multi_pay_invoice", OK), ("multi_pay_keysend", OK), ("pay_invoice", None), ("", None)],
)
def test_finishing_without_an_answer_is_ok_for_a_batch_only(
    method: str, recorded: str | None
) -> None:
    # After a restart, the answers were stored before: a batch was handled, the outcome
    # of anything else is not known here.
    assert finished_request(context(method), None, now=1, monotonic=101).outcome == recorded


def test_latency_is_unknown_without_a_receipt_and_never_negative() -> None:
    assert finished_request(context("get_info", None), OK, now=1, monotonic=5).latency_ms is None
    assert finished_request(context("get_info", 10.0), OK, now=1, monotonic=9).latency_ms == 0


def test_an_item_is_ok_when_paid_else_its_code() -> None:
    assert item_outcome(PayResult("00" * 32, 0)) == OK
    assert item_outcome(RequestError(ErrorCode.PAYMENT_FAILED, "no route")) == "PAYMENT_FAILED"


# -- its log line --------------------------------------------------------------------------------


def test_the_log_line_says_what_the_fields_say() -> None:
    ctx = context("pay_invoice")
    outcome = RequestOutcome("pay_invoice", "PAYMENT_FAILED", 9, 3_000, 1, 12.34)
    message, fields = finished_line(ctx, outcome, "payment failed: " + "x" * 200)
    assert message == (
        f"request {ctx.event.id[:16]} pay_invoice for 'shop': PAYMENT_FAILED (payment failed: "
        + "x" * 104
        + "), 1 item, 3000 msat, 12.3 ms"
    )
    assert fields == {
        "request_id": ctx.event.id,
        "connection": "shop",
        "method": "pay_invoice",
        "outcome": "PAYMENT_FAILED",
        "amount_msat": 3_000,
        "items": 1,
        "latency_ms": 12.3,
        "detail": "payment failed: " + "x" * 104,
    }


def test_the_log_line_of_an_odd_request() -> None:
    ctx = context("")
    message, fields = finished_line(ctx, RequestOutcome("", None, 9))
    assert (
        message
        == f"request {ctx.event.id[:16]} (method unknown) for 'shop': answered before a restart"
    )
    assert (fields["outcome"], fields["latency_ms"], "detail" in fields) == (None, None, False)
    # An app's method name cannot forge a line.
    message, fields = finished_line(ctx, RequestOutcome("pay\nINFO forged", "NOT_IMPLEMENTED", 9))
    assert "\n" not in message
    assert "'pay\\nINFO forged' for 'shop': NOT_IMPLEMENTED" in message
    assert fields["method"] == "pay\nINFO forged"  # a JSON string escapes it


# -- metrics -------------------------------------------------------------------------------------


def test_requests_are_counted_by_known_labels_only() -> None:
    metrics = Metrics()
    metrics.request_finished(RequestOutcome("get_balance", OK, 1, latency_ms=20.0))
    metrics.request_finished(RequestOutcome("x" * 64, "NOT_IMPLEMENTED", 1, latency_ms=1.0))
    metrics.request_finished(RequestOutcome("y" * 64, "NOT_IMPLEMENTED", 1))
    metrics.request_finished(RequestOutcome("get_balance", "SOMETHING_ELSE", 1))
    found = counts(metrics)
    requests = {k[1]: v for k, v in found.items() if k[0] == "nwcd_requests_total"}
    assert requests == {
        (("method", "get_balance"), ("outcome", "ok")): 1,
        (("method", "other"), ("outcome", "NOT_IMPLEMENTED")): 2,
        (("method", "get_balance"), ("outcome", "other")): 1,
    }
    assert found["nwcd_request_duration_seconds_count", (("method", "get_balance"),)] == 1
    assert found["nwcd_request_duration_seconds_sum", (("method", "get_balance"),)] == 0.02
    assert found["nwcd_request_duration_seconds_count", (("method", "other"),)] == 1
    assert method_label("multi_pay_keysend") == "multi_pay_keysend"


def test_each_quota_answer_is_one_budget_denial() -> None:
    metrics = Metrics()
    metrics.request_finished(RequestOutcome("pay_invoice", "QUOTA_EXCEEDED", 1, 10, 1))
    metrics.item_answered("QUOTA_EXCEEDED")
    metrics.item_answered(OK)
    metrics.request_finished(RequestOutcome("multi_pay_invoice", OK, 1, 10, 2))
    found = counts(metrics)
    assert found["nwcd_budget_denials_total", ()] == 2
    assert found["nwcd_batch_items_total", (("outcome", "QUOTA_EXCEEDED"),)] == 1
    assert found["nwcd_batch_items_total", (("outcome", "ok"),)] == 1


def test_a_request_closed_after_a_restart_is_a_recovery_not_a_new_answer() -> None:
    metrics = Metrics()
    metrics.request_finished(RequestOutcome("pay_invoice", None, 1))
    metrics.recovered(RecoveryAction.LOOKED_UP, 3)
    metrics.recovered(RecoveryAction.REPUBLISHED, 0)
    found = counts(metrics)
    assert not any(name == "nwcd_requests_total" for name, _ in found)
    recovery = {
        dict(labels)["action"]: v
        for (name, labels), v in found.items()
        if name == "nwcd_recovery_actions_total"
    }
    assert recovery == {action.value: 0 for action in RecoveryAction} | {
        "closed": 1,
        "looked_up": 3,
    }


def test_payments_in_flight_go_down_whatever_happens() -> None:
    metrics = Metrics()
    with metrics.payment_in_flight(), metrics.payment_in_flight():
        assert counts(metrics)["nwcd_payments_in_flight", ()] == 2
    with pytest.raises(RuntimeError), metrics.payment_in_flight():
        raise RuntimeError("backend")
    assert counts(metrics)["nwcd_payments_in_flight", ()] == 0


def test_each_daemon_has_its_own_figures_and_relay_states() -> None:
    one, two = Metrics(), Metrics()
    one.publish_retried()
    one.watch_relays(lambda: {"wss://b.example": False, "wss://a.example": True})
    found = counts(one)
    assert found["nwcd_publish_retries_total", ()] == 1
    assert found["nwcd_relay_connected", (("relay", "wss://a.example"),)] == 1
    assert found["nwcd_relay_connected", (("relay", "wss://b.example"),)] == 0
    assert counts(two)["nwcd_publish_retries_total", ()] == 0
    assert not any(name == "nwcd_relay_connected" for name, _ in counts(two))
    body, content_type = two.render()
    assert content_type.startswith("text/plain; version=")
    assert b"# HELP nwcd_requests_total" in body


# -- health --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store_reachable", "relays", "ok"),
    [
        (True, {"wss://a": True, "wss://b": False}, True),
        (True, {"wss://a": False}, False),
        (True, {}, False),
        (False, {"wss://a": True}, False),
    ],
)
def test_ready_needs_the_store_and_one_connected_relay(
    store_reachable: bool, relays: dict[str, bool], ok: bool
) -> None:
    report = HealthReport("i1", "postgresql", "lnd", store_reachable, 3, relays)
    assert report.ok is ok
    assert report.as_json() == {
        "ok": ok,
        "instance": "i1",
        "store": {"kind": "postgresql", "reachable": store_reachable},
        "backend": {"kind": "lnd"},
        "relays": {
            "connected": sum(relays.values()),
            "total": len(relays),
            "states": dict(sorted(relays.items())),
        },
        "connections": 3,
    }
