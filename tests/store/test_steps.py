"""The store operations shared by both adapters, driven without a database (sans-I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from nwcd.errors import ErrorCode
from nwcd.policy.authorize import Deny
from nwcd.ports import NotOwner, PaymentIntent, Reserved
from nwcd.store import sql, steps

WALLET, OTHER = "aa" * 32, "bb" * 32


def intent(n: int, amount: int, reserve: int = 100) -> PaymentIntent:
    return PaymentIntent(n, "multi_pay_invoice", f"i{n}", f"{n:064x}", None, amount, reserve)


class Script:
    """A fake database: answers each statement from a table, and records what ran."""

    def __init__(self, answers: dict[str, list[list[Sequence[Any]]]]) -> None:
        self.answers = answers
        self.ran: list[tuple[str, Sequence[Any]]] = []

    def __call__(self, statement: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        self.ran.append((statement, args))
        queue = self.answers.get(statement.split()[0] + " " + statement.split()[1], [])
        return queue.pop(0) if queue else []


def test_reserve_reads_admits_and_inserts_in_order() -> None:
    holders = sql.hash_holders(3)
    script = Script(
        {
            "SELECT owner": [[("me",)]],
            "SELECT revoked_at,": [[(None, None)]],
            "SELECT COALESCE(SUM(CASE": [[(800,)]],
            "SELECT payment_hash,": [[(f"{2:064x}", OTHER)]],
            "INSERT INTO": [[(11,)], [(12,)]],
        }
    )
    result = steps.drive(
        steps.reserve(
            "r", WALLET, [intent(1, 50), intent(2, 10), intent(3, 40)],
            owner="me", budget_msat=1_000, window_start=0, now=5,
        ),
        script,
    )  # fmt: skip
    assert result[0] == Reserved(11, 100)  # 800 used + 150: fits
    assert isinstance(result[1], Deny)  # held by another connection
    assert result[1].code is ErrorCode.PAYMENT_FAILED
    assert result[2] == Reserved(12, 10)  # 40 fits the 50 left; its reserve is capped to 10
    statements = [statement for statement, _ in script.ran]
    assert statements == [
        sql.REQUEST_OWNER, sql.CONNECTION_LIFETIME, sql.BUDGET_USED, holders,
        sql.INSERT_PAYMENT, sql.INSERT_PAYMENT,
    ]  # fmt: skip
    assert script.ran[5][1][8] == 10  # the capped reserve is what is stored


def test_a_connection_revoked_in_the_store_reserves_nothing() -> None:
    # Revoked at 5 by another process; this one's copy in memory did not know yet.
    script = Script({"SELECT owner": [[("me",)]], "SELECT revoked_at,": [[(5, None)]]})
    decisions = steps.drive(
        steps.reserve(
            "r", WALLET, [intent(1, 10), intent(2, 10)],
            owner="me", budget_msat=None, window_start=0, now=5,
        ),
        script,
    )  # fmt: skip
    assert decisions == [Deny(ErrorCode.UNAUTHORIZED, "this connection was revoked")] * 2
    assert [statement for statement, _ in script.ran] == [
        sql.REQUEST_OWNER,
        sql.CONNECTION_LIFETIME,
    ]  # nothing inserted


def test_a_lost_insert_race_is_a_refusal_never_a_payment() -> None:
    script = Script(
        {"SELECT owner": [[("me",)]], "SELECT payment_hash,": [[]], "INSERT INTO": [[]]}
    )
    [decision] = steps.drive(
        steps.reserve(
            "r", WALLET, [intent(1, 10)], owner="me", budget_msat=None, window_start=0, now=5
        ),
        script,
    )
    assert isinstance(decision, Deny)
    assert decision.code is ErrorCode.PAYMENT_FAILED


def test_a_request_taken_over_meanwhile_is_not_reserved() -> None:
    # A stalled instance wakes up after another took its request over: it pays nothing
    # (for a keysend, a second preimage would be a second payment).
    script = Script({"SELECT owner": [[("the-other-instance",)]]})
    with pytest.raises(NotOwner):
        steps.drive(
            steps.reserve(
                "r", WALLET, [intent(1, 10)], owner="me", budget_msat=None, window_start=0, now=5
            ),
            script,
        )
    assert [statement for statement, _ in script.ran] == [sql.REQUEST_OWNER]


def test_take_over_decides_from_one_snapshot_of_the_registry() -> None:
    # Read once: an instance that registered a moment ago (lease in the future) is live,
    # even if it was not when an earlier statement ran; only expired ones are retired.
    script = Script(
        {
            "SELECT owner": [[("dead",), ("fresh",)]],
            "SELECT instance_id,": [[("dead", 99), ("fresh", 200)]],
            "UPDATE requests": [[("r1",)]],
        }
    )
    steps.drive(steps.take_over("me", 100, everyone_else=False, order="rowid"), script)
    ran = [(statement, tuple(args)) for statement, args in script.ran]
    assert ran[1] == (sql.INSTANCE_LEASES, ())
    assert (sql.RETIRE_EXPIRED, ("dead", 100)) in ran
    assert not any(args[:1] == ("fresh",) for statement, args in ran if "DELETE" in statement)
    adopted = [args for statement, args in ran if statement == sql.ADOPT]
    assert adopted == [("me", "dead", "dead")]  # the fresh instance's work is left alone
