"""Request-level authorization: revoked, expired, not granted, or allowed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nwcd.errors import ErrorCode
from nwcd.nostr.keys import SecretKey
from nwcd.policy.authorize import Deny, authorize
from nwcd.policy.grants import Connection, expand_methods

NOW = 1_700_000_000

BASE = Connection(
    name="app",
    wallet_key=SecretKey.generate(),
    app_pubkey="ab" * 32,
    relays=("ws://127.0.0.1:1",),
    created_at=NOW - 1000,
    methods=expand_methods(["pay", "get_info"]),
)


def test_allowed_returns_none() -> None:
    assert authorize(BASE, "pay_invoice", NOW) is None
    assert authorize(BASE, "get_info", NOW) is None


def test_all_methods_when_methods_is_none() -> None:
    conn = replace(BASE, methods=None)
    for method in ("get_balance", "sign_message", "make_hold_invoice"):
        assert authorize(conn, method, NOW) is None


@pytest.mark.parametrize("method", ["get_balance", "make_invoice", "sign_message", "nonsense"])
def test_method_not_granted_is_restricted(method: str) -> None:
    deny = authorize(BASE, method, NOW)
    assert isinstance(deny, Deny)
    assert deny.code is ErrorCode.RESTRICTED
    assert method in deny.message


def test_empty_grant_restricts_everything() -> None:
    deny = authorize(replace(BASE, methods=frozenset()), "get_info", NOW)
    assert deny is not None
    assert deny.code is ErrorCode.RESTRICTED


@pytest.mark.parametrize("revoked_at", [NOW, NOW - 1, 0])
def test_revoked(revoked_at: int) -> None:
    deny = authorize(replace(BASE, revoked_at=revoked_at), "get_info", NOW)
    assert deny == Deny(ErrorCode.UNAUTHORIZED, "this connection was revoked")
    assert "revoked" in deny.message


def test_revocation_in_the_future_is_not_yet_effective() -> None:
    assert authorize(replace(BASE, revoked_at=NOW + 1), "get_info", NOW) is None


@pytest.mark.parametrize("expires_at", [NOW, NOW - 1])
def test_expired(expires_at: int) -> None:
    deny = authorize(replace(BASE, expires_at=expires_at), "get_info", NOW)
    assert deny is not None
    assert deny.code is ErrorCode.UNAUTHORIZED
    assert "expired" in deny.message


def test_not_yet_expired() -> None:
    assert authorize(replace(BASE, expires_at=NOW + 1), "pay_invoice", NOW) is None


def test_revoked_wins_over_expired_and_restricted() -> None:
    conn = replace(BASE, revoked_at=NOW - 5, expires_at=NOW - 5)
    deny = authorize(conn, "sign_message", NOW)
    assert deny is not None
    assert "revoked" in deny.message


def test_expired_wins_over_restricted() -> None:
    deny = authorize(replace(BASE, expires_at=NOW), "sign_message", NOW)
    assert deny is not None
    assert deny.code is ErrorCode.UNAUTHORIZED
