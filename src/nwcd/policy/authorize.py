"""Request-level authorization: may this connection call this method now?

Pure: takes the connection, the method and the time, returns a denial or
None. Amount and budget limits are checked per payment by the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from nwcd.errors import ErrorCode
from nwcd.policy.grants import Connection

__all__ = ["Deny", "authorize"]


@dataclass(frozen=True, slots=True)
class Deny:
    """A refusal, answered with ``code`` and ``message``."""

    code: ErrorCode
    message: str


def authorize(connection: Connection, method: str, now: int) -> Deny | None:
    """Deny revoked or expired connections and methods outside the grant."""
    if connection.revoked_at is not None and connection.revoked_at <= now:
        return Deny(ErrorCode.UNAUTHORIZED, "this connection was revoked")
    if connection.expires_at is not None and connection.expires_at <= now:
        return Deny(ErrorCode.UNAUTHORIZED, "this connection has expired")
    if not connection.may_use(method):
        return Deny(ErrorCode.RESTRICTED, f"this connection may not use {method}")
    return None
