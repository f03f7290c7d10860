"""Scopes, method grants and the methods a connection may use."""

from __future__ import annotations

import pytest

from nwcd.nip47.methods import Method
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import (
    SCOPES,
    SERVICE_METHODS,
    BudgetPeriod,
    Connection,
    describe_methods,
    expand_methods,
)

PAY = {"pay_invoice", "multi_pay_invoice", "pay_keysend", "multi_pay_keysend"}
READ = {"get_balance", "get_info", "lookup_invoice", "list_transactions"}
ALL = [m.value for m in Method]


def connection(methods: frozenset[str] | None) -> Connection:
    return Connection(
        name="app",
        wallet_key=SecretKey.generate(),
        app_pubkey="ab" * 32,
        relays=("ws://127.0.0.1:1",),
        created_at=1,
        methods=methods,
    )


def test_scopes_cover_every_method_but_get_budget_exactly_once() -> None:
    seen = [method for scope in SCOPES.values() for method in scope]
    assert sorted(seen) == sorted(set(ALL) - {"get_budget"})


@pytest.mark.parametrize(
    ("methods", "may"),
    [
        (None, True),
        (frozenset({"get_budget"}), True),
        (frozenset({"multi_pay_keysend"}), True),
        (frozenset(PAY), True),
        (frozenset(READ | {"make_invoice", "sign_message"}), False),
        (frozenset(), False),
    ],
)
def test_get_budget_comes_with_any_payment_method(
    methods: frozenset[str] | None, may: bool
) -> None:
    conn = connection(methods)
    assert conn.may_use("get_budget") is may
    # Served by the service itself: listed whatever the backend offers.
    assert ("get_budget" in conn.allowed_methods([])) is may
    assert {"get_budget"} == SERVICE_METHODS


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([], set()),
        (["pay"], PAY),
        (["read"], READ),
        (["receive"], {"make_invoice"}),
        (["sign"], {"sign_message"}),
        (["hold"], {"make_hold_invoice", "settle_hold_invoice", "cancel_hold_invoice"}),
        (["pay", "read", "receive", "sign", "hold"], set(ALL) - {"get_budget"}),
        (["pay", "get_budget"], PAY | {"get_budget"}),
        (["get_info"], {"get_info"}),
        (["read", "make_invoice", "get_info"], READ | {"make_invoice"}),
        ([" pay_invoice ", "", "  ", "\tget_balance\n"], {"pay_invoice", "get_balance"}),
        (["pay", "pay"], PAY),
    ],
)
def test_expand_methods(words: list[str], expected: set[str]) -> None:
    result = expand_methods(words)
    assert isinstance(result, frozenset)
    assert result == expected


@pytest.mark.parametrize("word", ["bogus", "PAY", "pay_invoices", "hold_invoice", "pay read"])
def test_expand_methods_rejects_unknown_words(word: str) -> None:
    with pytest.raises(ValueError, match="unknown method or scope") as info:
        expand_methods(["get_info", word])
    message = str(info.value)
    assert repr(word.strip()) in message
    assert "scopes: pay, receive, read, sign, hold" in message
    assert "pay_invoice" in message


def test_expand_methods_accepts_any_iterable() -> None:
    assert expand_methods(w for w in ("sign", "get_info")) == {"sign_message", "get_info"}


def test_budget_periods() -> None:
    assert [p.value for p in BudgetPeriod] == ["daily", "weekly", "monthly", "yearly", "never"]
    assert BudgetPeriod("weekly") is BudgetPeriod.WEEKLY


def test_connection_defaults() -> None:
    conn = connection(None)
    assert conn.budget_period is BudgetPeriod.NEVER
    assert conn.budget_msat is None
    assert conn.max_amount_msat is None
    assert conn.revoked_at is None
    assert conn.wallet_pubkey == conn.wallet_key.public_key.hex


def test_allowed_methods_follow_the_method_order() -> None:
    backend = list(reversed(ALL))
    assert connection(None).allowed_methods(backend) == ALL


def test_allowed_methods_are_filtered_by_the_grant_and_the_backend() -> None:
    conn = connection(frozenset({"sign_message", "get_info", "pay_invoice", "make_invoice"}))
    backend = ["get_info", "make_invoice", "pay_invoice", "list_transactions"]
    assert conn.allowed_methods(backend) == [
        "pay_invoice",
        "make_invoice",
        "get_info",
        "get_budget",
    ]


def test_allowed_methods_ignore_unknown_backend_methods() -> None:
    backend = {"pay_bolt12_offer", "get_balance", "get_info"}
    assert connection(None).allowed_methods(backend) == ["get_balance", "get_info", "get_budget"]


def test_allowed_methods_empty_grant() -> None:
    assert connection(frozenset()).allowed_methods(ALL) == []
    assert connection(None).allowed_methods([]) == ["get_budget"]


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        (None, "all"),
        (frozenset(), "none"),
        (SCOPES["pay"], "pay"),
        (SCOPES["pay"] | SCOPES["read"], "pay,read"),
        (frozenset(ALL), "pay,receive,read,sign,hold,get_budget"),
        (SCOPES["read"] | {"pay_invoice"}, "read,pay_invoice"),
        (frozenset({"get_info", "make_invoice"}), "receive,get_info"),
        (frozenset({"multi_pay_invoice", "pay_invoice"}), "pay_invoice,multi_pay_invoice"),
    ],
)
def test_describe_methods(methods: frozenset[str] | None, expected: str) -> None:
    assert describe_methods(methods) == expected


@pytest.mark.parametrize("size", range(len(ALL) + 1))
def test_describe_methods_round_trips(size: int) -> None:
    for start in range(len(ALL)):
        methods = frozenset((ALL * 2)[start : start + size])
        if methods:
            assert expand_methods(describe_methods(methods).split(",")) == methods
