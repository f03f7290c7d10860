"""Every error nwcd raises, and the NIP-47 code each one becomes on the wire.

The tree, with whose fault each branch is::

    NwcdError
    ├── ProtocolError            malformed input from a peer (remote fault)
    │   ├── InvalidKey           not a valid secp256k1 key / hex / bech32
    │   ├── InvalidEvent         event JSON, id or signature is wrong
    │   ├── InvalidMessage       relay/client wire message is malformed
    │   ├── DecryptionError      NIP-44 / NIP-04 payload cannot be opened
    │   ├── InvalidUri           nostr+walletconnect:// URI is malformed
    │   └── InvalidInvoice       BOLT-11 invoice cannot be decoded
    ├── RequestError             a NIP-47 request we answer with an error code
    │                            (its ``code`` is the NIP-47 error code)
    └── BackendError             the Lightning backend failed (adapter edge)
        ├── BackendUnavailable   could not reach it: the outcome is unknown
        └── BackendTimeout       no answer in time: the outcome is unknown

Messages of ``RequestError`` are written for the app and are safe to send.
Anything else that reaches the service is our fault and is answered with
``INTERNAL`` and a generic message: exception text never reaches the wire.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "DecryptionError",
    "ErrorCode",
    "InvalidEvent",
    "InvalidInvoice",
    "InvalidKey",
    "InvalidMessage",
    "InvalidUri",
    "NwcdError",
    "ProtocolError",
    "RequestError",
]


class ErrorCode(StrEnum):
    """NIP-47 error codes (core list, method codes, and ones seen in the wild)."""

    RATE_LIMITED = "RATE_LIMITED"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RESTRICTED = "RESTRICTED"
    UNAUTHORIZED = "UNAUTHORIZED"
    INTERNAL = "INTERNAL"
    UNSUPPORTED_ENCRYPTION = "UNSUPPORTED_ENCRYPTION"
    OTHER = "OTHER"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    NOT_FOUND = "NOT_FOUND"
    BAD_REQUEST = "BAD_REQUEST"


class NwcdError(Exception):
    """Base class of every error raised by nwcd."""


class ProtocolError(NwcdError, ValueError):
    """Input from a peer does not follow the protocol."""


class InvalidKey(ProtocolError):
    """A key is not valid hex/bech32 or not a valid secp256k1 key."""


class InvalidEvent(ProtocolError):
    """A Nostr event is malformed, or its id or signature does not verify."""


class InvalidMessage(ProtocolError):
    """A relay wire message (EVENT, REQ, OK, ...) is malformed."""


class DecryptionError(ProtocolError):
    """An encrypted payload cannot be decrypted or authenticated."""


class InvalidUri(ProtocolError):
    """A ``nostr+walletconnect://`` URI is malformed."""


class InvalidInvoice(ProtocolError):
    """A BOLT-11 invoice cannot be decoded; the message says why."""


class RequestError(NwcdError):
    """A NIP-47 request that is answered with an error response.

    Args:
        code: the NIP-47 error code sent to the app.
        message: a human readable message, safe to show to the app.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"RequestError({self.code.value}, {self.message!r})"


class BackendError(NwcdError):
    """The Lightning backend failed; adapters raise only this family."""


class BackendUnavailable(BackendError):
    """The backend could not be reached; any payment outcome is unknown."""


class BackendTimeout(BackendError):
    """The backend did not answer in time; any payment outcome is unknown."""
