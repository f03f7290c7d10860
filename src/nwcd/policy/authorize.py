"""Request-level authorization: may this connection call this method now?

Pure: takes the connection, the method and the time, returns a denial or
None. Amount and budget limits are checked per payment by the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from nwcd.errors import ErrorCode
from nwcd.policy.grants import Connection

__all__ = ["Deny", "authorize", "lifetime_denial"]


@dataclass(frozen=True, slots=True)
class Deny:
    """A refusal, answered with ``code`` and ``message``."""

    code: ErrorCode
    message: str


def authorize(connection: Connection, method: str, now: int) -> Deny | None:
    """Deny revoked or expired connections and methods outside the grant."""
    ended = lifetime_denial(connection.revoked_at, connection.expires_at, now)
    if ended is not None:
        return ended
    if not connection.may_use(method):
        return Deny(ErrorCode.RESTRICTED, f"this connection may not use {method}")
    return None


def lifetime_denial(revoked_at: int | None, expires_at: int | None, now: int) -> Deny | None:
    """Deny a connection that was revoked or has expired by ``now``.

    Checked on the request and again, from the stored row, in the transaction that
    reserves a payment: a revocation another process made a moment ago is not yet in
    this one's memory.
    """
    if revoked_at is not None and revoked_at <= now:
        return Deny(ErrorCode.UNAUTHORIZED, "this connection was revoked")
    if expires_at is not None and expires_at <= now:
        return Deny(ErrorCode.UNAUTHORIZED, "this connection has expired")
    return None
