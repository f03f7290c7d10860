"""Admission of payments against budgets and live payment hashes (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import ErrorCode
from nwcd.policy.admission import Admit, Ask, admit, budget_cost
from nwcd.policy.authorize import Deny

ME, OTHER = "aa" * 32, "bb" * 32


def ask(n: int, amount: int, reserve: int = 10_000) -> Ask:
    return Ask(f"{n:064x}", amount, reserve)


def test_no_budget_admits_everything_with_its_reserve() -> None:
    decisions = admit(
        [ask(1, 10**15), ask(2, 1)], wallet_pubkey=ME, budget_msat=None, used_msat=0, holders={}
    )
    assert decisions == [Admit(10_000), Admit(10_000)]


def test_the_fee_reserve_is_capped_to_what_the_budget_has_left() -> None:
    # 500 sat, 100 sat invoices with a 10 sat floor reserve: five fit (issue: the fifth
    # used to be refused forever, although no fee was ever paid).
    used = 4 * 100_000
    [fifth] = admit(
        [ask(5, 100_000)], wallet_pubkey=ME, budget_msat=500_000, used_msat=used, holders={}
    )
    assert fifth == Admit(0)
    [sixth] = admit(
        [ask(6, 1)], wallet_pubkey=ME, budget_msat=500_000, used_msat=500_000, holders={}
    )
    assert isinstance(sixth, Deny)
    assert sixth.code is ErrorCode.QUOTA_EXCEEDED
    assert sixth.message == "payment of 1 msat exceeds the remaining budget of 0 msat"


def test_items_are_decided_in_order_against_the_running_total() -> None:
    decisions = admit(
        [ask(1, 500, 100), ask(2, 450, 50), ask(3, 350, 60), ask(4, 1, 0)],
        wallet_pubkey=ME,
        budget_msat=1000,
        used_msat=0,
        holders={},
    )
    assert decisions[0] == Admit(100)  # 600 used
    assert isinstance(decisions[1], Deny)  # 450 > 400 left
    assert "remaining budget of 400 msat" in decisions[1].message
    assert decisions[2] == Admit(50)  # 350 fits; reserve capped 60 -> 50
    assert isinstance(decisions[3], Deny)  # nothing left


def test_a_live_hash_is_refused_by_who_holds_it() -> None:
    mine, theirs = ask(1, 10), ask(2, 10)
    held = {mine.payment_hash: ME, theirs.payment_hash: OTHER}
    same, other = admit(
        [mine, theirs], wallet_pubkey=ME, budget_msat=None, used_msat=0, holders=held
    )
    assert isinstance(same, Deny)
    assert same.code is ErrorCode.OTHER
    assert "ask again" in same.message
    assert isinstance(other, Deny)
    assert other.code is ErrorCode.PAYMENT_FAILED


def test_the_same_hash_twice_in_one_request_is_paid_once() -> None:
    first, second = admit(
        [ask(1, 10), ask(1, 10)], wallet_pubkey=ME, budget_msat=None, used_msat=0, holders={}
    )
    assert first == Admit(10_000)
    assert isinstance(second, Deny)


def test_budget_cost_of_each_state() -> None:
    def cost(state: str, fee: int | None = None) -> int:
        return budget_cost(state=state, amount_msat=1000, fee_reserve_msat=100, fee_msat=fee)

    assert cost("failed") == 0
    assert cost("succeeded", 7) == 1007
    assert cost("succeeded") == 1000
    for open_state in ("reserved", "in_flight", "unknown"):
        assert cost(open_state) == 1100


@given(
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.lists(st.tuples(st.integers(0, 3_000), st.integers(0, 500)), max_size=12),
)
def test_never_above_the_budget_and_refused_only_when_the_amount_does_not_fit(
    budget: int, used: int, items: list[tuple[int, int]]
) -> None:
    asks = [ask(n, amount, reserve) for n, (amount, reserve) in enumerate(items)]
    decisions = admit(asks, wallet_pubkey=ME, budget_msat=budget, used_msat=used, holders={})
    total = used
    for item, decision in zip(asks, decisions, strict=True):
        if isinstance(decision, Admit):
            assert 0 <= decision.fee_reserve_msat <= item.fee_reserve_msat
            total += item.amount_msat + decision.fee_reserve_msat
            assert total <= max(budget, used)
        else:
            assert item.amount_msat > budget - total
