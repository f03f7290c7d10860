"""The console's login rules, as functions of data: password hashes, session tokens, CSRF.

- The admin password is stored only as a scrypt hash (memory-hard, so a stolen file
  is slow to brute-force), in the text form ``scrypt$n$r$p$salt$hash``.
- A session is a signed token ``<session id>.<expiry>.<mac>``: an HMAC-SHA256 under a
  key that lives in the data dir, so sessions survive a restart and need no table.
  Changing the password changes the key's input, which ends every session.
- A form's CSRF token is an HMAC of the session id: a page of another site can neither
  read nor forge it, and it needs no storage either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "SESSION_SECONDS",
    "Session",
    "SessionSigner",
    "hash_password",
    "new_password",
    "verify_password",
]

SESSION_SECONDS: Final = 12 * 3600
MIN_PASSWORD_LENGTH: Final = 8
# scrypt's cost: 2^15 x 8 x 128 bytes = 32 MiB and ~50 ms per check on this machine kind.
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    """The stored form of a password.

    Raises:
        ValueError: shorter than :data:`MIN_PASSWORD_LENGTH` characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(16)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_scrypt(password, salt, _N, _R, _P))}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a malformed ``stored`` matches nothing)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(expected))


def new_password() -> str:
    """A random password for the first start: 20 URL-safe characters (~120 bits)."""
    return secrets.token_urlsafe(15)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    expires_at: int


class SessionSigner:
    """Issues and checks session tokens and the CSRF tokens bound to them.

    ``key``: the data dir's console key; ``password_hash``: the stored hash, mixed into
    the signing key so that a new password logs every session out.
    """

    def __init__(self, key: bytes, password_hash: str) -> None:
        self._key = hmac.new(key, password_hash.encode(), hashlib.sha256).digest()

    def _mac(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).digest())

    def issue(self, now: int, lifetime: int = SESSION_SECONDS) -> str:
        """A new session's cookie value."""
        body = f"{secrets.token_hex(16)}.{now + lifetime}"
        return f"{body}.{self._mac('session', body)}"

    def check(self, token: str | None, now: int) -> Session | None:
        """The session of a cookie value, or None (missing, forged, or expired)."""
        if not token or token.count(".") != 2:
            return None
        body, _, mac = token.rpartition(".")
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        session_id, _, expiry = body.partition(".")
        if not expiry.isdigit() or int(expiry) <= now:
            return None
        return Session(session_id, int(expiry))

    def csrf_token(self, session: Session) -> str:
        """The token every form and API call of this session carries."""
        return self._mac("csrf", session.session_id)

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))
