"""The chaos end checks catch what they are for (planted violations), and pass a clean run."""

from __future__ import annotations

from tests.chaos.checks import (
    Attempt,
    Item,
    LedgerPayment,
    Report,
    SentRequest,
    SimPayment,
    check,
)

WALLET = "aa" * 32
H1, H2 = "11" * 32, "22" * 32
PAID = '{"error": null, "result": {"preimage": "p1"}}'


def clean() -> dict[str, object]:
    return {
        "requests": [
            SentRequest(
                "e1",
                "app",
                WALLET,
                "multi_pay_invoice",
                {
                    "a": Item("a", H1, {PAID}, preimage="p1"),
                    "b": Item("b", H2, {'{"error": ["PAYMENT_FAILED", "x"]}'}, error_code="x"),
                },
            )
        ],
        "attempts": [Attempt(H1, "started"), Attempt(H2, "started")],
        "sim_payments": [
            SimPayment(H1, "succeeded", "p1", 1000, 2),
            SimPayment(H2, "failed", "p2", 5, 0),
        ],
        "ledger": [
            LedgerPayment(WALLET, H1, "succeeded", "p1", 1000, 2),
            LedgerPayment(WALLET, H2, "failed", None, 5, None),
        ],
        "budgets": {WALLET: 1002},
        "names": {WALLET: "app"},
        "recovery_seconds": [1.0, 2.0],
    }


def run(**changes: object) -> Report:
    return check(**{**clean(), **changes})  # type: ignore[arg-type]


def test_a_clean_run_has_no_violation() -> None:
    report = run()
    assert report.violations == []
    assert report.figures["requests answered"].startswith("1/1 (2/2 items")
    assert "p50 1.50 s" in report.figures["start after kill (recovery included)"]


def test_a_second_attempt_at_a_paid_hash_is_caught() -> None:
    report = run(attempts=[Attempt(H1, "started"), Attempt(H1, "already_paid")])
    assert any("second pay attempt" in v for v in report.violations)


def test_money_moved_without_a_ledger_record_is_caught() -> None:
    report = run(ledger=[LedgerPayment(WALLET, H2, "failed", None, 5, None)])
    assert any("without a succeeded ledger record" in v for v in report.violations)


def test_an_open_payment_at_the_end_is_caught() -> None:
    ledger = [*clean()["ledger"], LedgerPayment(WALLET, "33" * 32, "unknown", None, 1, None)]  # type: ignore[misc]
    assert any("still open" in v for v in run(ledger=ledger).violations)


def test_a_budget_exceeded_by_one_msat_is_caught() -> None:
    assert any("budget exceeded" in v for v in run(budgets={WALLET: 1001}).violations)


def test_unanswered_and_disagreeing_items_are_caught() -> None:
    requests = clean()["requests"]
    requests[0].items["a"].answers.add('{"error": ["INTERNAL", "x"]}')  # type: ignore[index]
    requests[0].items["b"].answers.clear()  # type: ignore[index]
    violations = run(requests=requests).violations
    assert any("answered differently" in v for v in violations)
    assert any("unanswered items" in v for v in violations)


def test_a_paid_answer_the_backend_contradicts_is_caught() -> None:
    payments = [SimPayment(H1, "failed", "p1", 1000, 2), SimPayment(H2, "failed", "p2", 5, 0)]
    assert any("did not pay it so" in v for v in run(sim_payments=payments).violations)


def test_a_revoked_connection_must_be_refused() -> None:
    requests = clean()["requests"]
    requests[0].sent_after_revoke = True  # type: ignore[index]
    assert any("UNAUTHORIZED" in v for v in run(requests=requests).violations)
