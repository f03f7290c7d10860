"""The console's login rules, without a server."""

from __future__ import annotations

import pytest

from nwcd.console.auth import SessionSigner, hash_password, verify_password

KEY = bytes(range(32))


def test_a_password_matches_only_its_own_hash() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert hash_password("correct horse") != stored  # salted


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$1$2$3$xx", "bcrypt$a$b$c$d$e"])
def test_a_malformed_hash_matches_nothing(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_a_session_token_is_valid_until_it_expires() -> None:
    signer = SessionSigner(KEY, "hash")
    token = signer.issue(now=1000, lifetime=60)
    session = signer.check(token, now=1059)
    assert session is not None
    assert signer.check(token, now=1060) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "0" * 32 + t[32:],  # another session id, same mac
        lambda t: t.rsplit(".", 2)[0] + ".99999999999." + t.rsplit(".", 1)[1],  # longer life
        lambda t: "",
        lambda t: "a.b",
    ],
)
def test_forged_session_tokens_are_refused(mangle: object) -> None:
    signer = SessionSigner(KEY, "hash")
    token = signer.issue(now=1000)
    assert callable(mangle)
    assert signer.check(mangle(token), now=1001) is None


def test_a_new_password_ends_every_session() -> None:
    token = SessionSigner(KEY, "old hash").issue(now=1000)
    assert SessionSigner(KEY, "old hash").check(token, now=1001) is not None
    assert SessionSigner(KEY, "new hash").check(token, now=1001) is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    signer = SessionSigner(KEY, "hash")
    one = signer.check(signer.issue(now=1000), now=1001)
    two = signer.check(signer.issue(now=1000), now=1001)
    assert one is not None
    assert two is not None
    assert signer.check_csrf(one, signer.csrf_token(one))
    assert not signer.check_csrf(one, signer.csrf_token(two))
    assert not signer.check_csrf(one, None)
    assert not signer.check_csrf(one, "")
