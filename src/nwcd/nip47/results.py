"""NIP-47 responses: result types, error payloads, and the response envelope.

Response plaintext (inside a kind-23195 event)::

    {"result_type": "pay_invoice", "error": null,
     "result": {"preimage": "...", "fees_paid": 0}}
    {"result_type": "pay_invoice", "error": {"code": "PAYMENT_FAILED", "message": "..."},
     "result": null}

Decoding is tolerant, as deployed wallets differ (some omit ``result`` on errors): a
missing ``error``/``result`` is ``null``, any string is accepted as a code,
and ``error`` wins when both are present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nwcd.errors import ErrorCode, InvalidMessage, RequestError
from nwcd.nostr import jsontext

__all__ = [
    "Budget",
    "ErrorPayload",
    "NodeInfo",
    "PayResult",
    "Response",
    "Transaction",
    "decode_response",
    "encode_response",
    "error_response",
]


@dataclass(frozen=True, slots=True)
class ErrorPayload:
    """``{"code", "message"}``; ``code`` is a plain string so unknown codes survive."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class PayResult:
    """Result of ``pay_invoice``/``pay_keysend`` and of each ``multi_*`` item."""

    preimage: str
    fees_paid_msat: int

    def to_json(self) -> dict[str, Any]:
        return {"preimage": self.preimage, "fees_paid": self.fees_paid_msat}


@dataclass(frozen=True, slots=True)
class Transaction:
    """The NIP-47 transaction object (invoices, lookups, lists, notifications)."""

    type: str  # "incoming" | "outgoing"
    payment_hash: str
    amount_msat: int
    created_at: int
    state: str | None = None  # pending | settled | expired | failed | accepted
    invoice: str | None = None
    description: str | None = None
    description_hash: str | None = None
    preimage: str | None = None
    fees_paid_msat: int = 0
    expires_at: int | None = None
    settled_at: int | None = None
    metadata: Mapping[str, Any] | None = None
    settle_deadline: int | None = None  # a block height: settle or cancel a held payment before

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "state": self.state,
            "invoice": self.invoice,
            "description": self.description,
            "description_hash": self.description_hash,
            "preimage": self.preimage,
            "payment_hash": self.payment_hash,
            "amount": self.amount_msat,
            "fees_paid": self.fees_paid_msat,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "settled_at": self.settled_at,
            "settle_deadline": self.settle_deadline,
        }
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transaction:
        """Parse a transaction object (client side).

        Raises:
            InvalidMessage: a required field is missing or of the wrong type.
        """
        try:
            return cls(
                type=str(data.get("type") or "incoming"),
                payment_hash=str(data["payment_hash"]),
                amount_msat=int(data.get("amount") or 0),
                created_at=int(data.get("created_at") or 0),
                state=data.get("state"),
                invoice=data.get("invoice"),
                description=data.get("description"),
                description_hash=data.get("description_hash"),
                preimage=data.get("preimage"),
                fees_paid_msat=int(data.get("fees_paid") or 0),
                expires_at=data.get("expires_at"),
                settled_at=data.get("settled_at"),
                metadata=data.get("metadata"),
                settle_deadline=data.get("settle_deadline"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMessage(f"malformed transaction: {exc}") from None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """``get_info`` result (``methods`` and ``notifications`` are per connection)."""

    alias: str
    color: str
    pubkey: str
    network: str
    block_height: int
    block_hash: str
    methods: tuple[str, ...] = ()
    notifications: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "color": self.color,
            "pubkey": self.pubkey,
            "network": self.network,
            "block_height": self.block_height,
            "block_hash": self.block_hash,
            "methods": list(self.methods),
            "notifications": list(self.notifications),
        }


@dataclass(frozen=True, slots=True)
class Budget:
    """``get_budget`` result for a connection with a budget (without one the result is ``{}``).

    Amounts in msat; ``used_msat`` counts payments in flight with their fee reserve,
    so an app never plans with money already promised. ``renews_at`` (unix seconds)
    is None for a budget that never renews.
    """

    used_msat: int
    total_msat: int
    renewal_period: str
    renews_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "used_budget": self.used_msat,
            "total_budget": self.total_msat,
            "renewal_period": self.renewal_period,
        }
        if self.renews_at is not None:
            result["renews_at"] = self.renews_at
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Budget | None:
        """None for ``{}`` (no budget).

        Raises:
            InvalidMessage: a field is missing or of the wrong type.
        """
        if not data:
            return None
        try:
            renews_at = data.get("renews_at")
            return cls(
                used_msat=int(data["used_budget"]),
                total_msat=int(data["total_budget"]),
                renewal_period=str(data.get("renewal_period") or "never"),
                renews_at=None if renews_at is None else int(renews_at),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMessage(f"malformed get_budget result: {exc}") from None


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded response envelope."""

    result_type: str
    result: Mapping[str, Any] | None = None
    error: ErrorPayload | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> Mapping[str, Any]:
        """The result, or :class:`RequestError` carrying the wallet's code."""
        if self.error is not None:
            try:
                raise RequestError(ErrorCode(self.error.code), self.error.message)
            except ValueError:  # a code outside our list: keep it in the message
                raise RequestError(
                    ErrorCode.OTHER, f"{self.error.code}: {self.error.message}"
                ) from None
        return self.result or {}


def encode_response(
    result_type: str,
    *,
    result: Mapping[str, Any] | Sequence[Any] | None = None,
    error: ErrorPayload | None = None,
) -> str:
    """The plaintext of a response; exactly one of ``result``/``error``."""
    return jsontext.dumps(
        {
            "result_type": result_type,
            "error": error.to_json() if error is not None else None,
            "result": result if error is None else None,
        }
    )


def error_response(result_type: str, code: ErrorCode | str, message: str) -> str:
    """The plaintext of an error response."""
    return encode_response(result_type, error=ErrorPayload(str(code), message))


def decode_response(plaintext: str) -> Response:
    """Parse a decrypted response (client side).

    Raises:
        InvalidMessage: not a JSON object, or ``error`` of the wrong shape.
    """
    try:
        data = jsontext.loads(plaintext)
    except (ValueError, RecursionError):
        raise InvalidMessage("response is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidMessage("response is not a JSON object")
    result_type = data.get("result_type")
    error = data.get("error")
    result = data.get("result")
    payload: ErrorPayload | None = None
    if error is not None:
        if not isinstance(error, dict):
            raise InvalidMessage("response error is not an object")
        payload = ErrorPayload(str(error.get("code") or "OTHER"), str(error.get("message") or ""))
    if result is not None and not isinstance(result, dict):
        raise InvalidMessage("response result is not an object")
    return Response(str(result_type or ""), result, payload)
