"""NIP-47 requests: one frozen params type per method, parsed strictly at one boundary.

Request plaintext (inside the encrypted content of a kind-23194 event)::

    {"method": "pay_invoice", "params": {"invoice": "lnbc...", "amount": 1000}}

Amounts are integer millisatoshis. :func:`decode_request` turns the plaintext
into a :class:`Request` whose ``params`` is one of the dataclasses below, or
:class:`UnknownMethod`. A malformed request raises :class:`~nwcd.errors.RequestError`
with code ``OTHER`` (the core error list has no "bad request" code that every
client can parse) and a message naming the field.

Every integer param is range-checked here (bounds below), so no client-chosen
number can overflow a store or a backend further on. A JSON ``null`` is read as
the field being absent: ``"amount": null`` on ``pay_invoice`` (or on a
``multi_pay_invoice`` item) means "pay the invoice's own amount", as clients such
as the Alby SDK send null for optional fields they leave out.

Batch items (``multi_pay_invoice``, ``multi_pay_keysend``) are parsed leniently:
a problem in one item (a bad amount) is kept on the item as ``problem`` so only
that item fails; the request fails as a whole only when the item list itself
cannot be trusted (docs/design.md, section 1).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from nwcd.errors import ErrorCode, RequestError
from nwcd.nostr import jsontext

__all__ = [
    "CancelHoldInvoiceParams",
    "GetBalanceParams",
    "GetBudgetParams",
    "GetInfoParams",
    "InvoiceItem",
    "KeysendItem",
    "ListTransactionsParams",
    "LookupInvoiceParams",
    "MakeHoldInvoiceParams",
    "MakeInvoiceParams",
    "Method",
    "MultiPayInvoiceParams",
    "MultiPayKeysendParams",
    "Params",
    "PayInvoiceParams",
    "PayKeysendParams",
    "Request",
    "SettleHoldInvoiceParams",
    "SignMessageParams",
    "TlvRecord",
    "UnknownMethod",
    "decode_request",
    "encode_request",
    "metadata_text",
]

MAX_METADATA_CHARS: Final = 4096
# 21 million BTC in msat: no real amount is larger, and it fits a signed 64-bit
# integer (SQLite INTEGER, PostgreSQL BIGINT).
MAX_AMOUNT_MSAT: Final = 2_100_000_000_000_000_000
# One year in seconds: longer-lived invoices are a mistake, and it fits any store.
MAX_EXPIRY_SECONDS: Final = 365 * 24 * 60 * 60
# BOLT 11 final CLTV deltas are a few dozen blocks; two weeks of blocks is already absurd.
MAX_CLTV_DELTA: Final = 2016
# Unix seconds, about the year 36800: any real ``from``/``until``, and it fits any store.
MAX_UNIX_TIME: Final = 2**40
# Far more transactions than one relay event can carry (the default page is 50).
MAX_LIST_LIMIT: Final = 10_000
# A signed 32-bit integer: pages that deep do not exist, and it fits any store.
MAX_LIST_OFFSET: Final = 2**31 - 1
# TLV record types are BOLT "bigsize" u64s; they are sent to backends, never stored.
_MAX_U64: Final = 2**64 - 1
_HEX: Final = frozenset("0123456789abcdef")


class Method(StrEnum):
    """Methods a wallet service can serve."""

    PAY_INVOICE = "pay_invoice"
    MULTI_PAY_INVOICE = "multi_pay_invoice"
    PAY_KEYSEND = "pay_keysend"
    MULTI_PAY_KEYSEND = "multi_pay_keysend"
    MAKE_INVOICE = "make_invoice"
    LOOKUP_INVOICE = "lookup_invoice"
    LIST_TRANSACTIONS = "list_transactions"
    GET_BALANCE = "get_balance"
    GET_INFO = "get_info"
    GET_BUDGET = "get_budget"
    SIGN_MESSAGE = "sign_message"
    MAKE_HOLD_INVOICE = "make_hold_invoice"
    SETTLE_HOLD_INVOICE = "settle_hold_invoice"
    CANCEL_HOLD_INVOICE = "cancel_hold_invoice"


def _bad(message: str) -> RequestError:
    return RequestError(ErrorCode.OTHER, f"invalid params: {message}")


def _int_in(value: object, name: str, low: int, high: int, what: str, note: str = "") -> int:
    """A JSON integer from ``low`` to ``high`` inclusive (bools and floats are refused)."""
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"{name} must be {what} from {low} to {high}{note}")
    return value


def _msat(value: object, name: str, low: int = 0) -> int:
    """An amount in msat: a JSON integer from ``low`` to :data:`MAX_AMOUNT_MSAT`."""
    return _int_in(
        value, name, low, MAX_AMOUNT_MSAT, "a whole number of millisatoshis", " (21 million BTC)"
    )


def _optional_msat(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    return None if value is None else _msat(value, name)


def _optional_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    return value


def _required_str(params: Mapping[str, Any], name: str) -> str:
    value = _optional_str(params, name)
    if not value:
        raise _bad(f"{name} is required")
    return value


def _hex(value: str | None, name: str, length: int) -> str | None:
    if value is None:
        return None
    lowered = value.lower()
    if len(lowered) != length or not _HEX.issuperset(lowered):
        raise _bad(f"{name} must be {length} hex characters")
    return lowered


def _required_hex(params: Mapping[str, Any], name: str, length: int = 64) -> str:
    value = _hex(_required_str(params, name), name, length)
    assert value is not None  # a required string is never None
    return value


def _metadata(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    metadata = params.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _bad("metadata must be an object")
    # 47.md: metadata longer than 4096 characters "MUST be dropped" (characters, so
    # non-ASCII text is not counted as its 6-character \u escapes).
    if len(metadata_text(metadata)) > MAX_METADATA_CHARS:
        return None
    return metadata


def metadata_text(metadata: Mapping[str, Any]) -> str:
    """An app's metadata as the compact JSON text it is measured and stored as."""
    return json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class PayInvoiceParams:
    """``pay_invoice``: ``amount`` only for amountless invoices (or equal to the invoice's).

    ``"amount": null`` is the same as no ``amount`` (``amount_msat`` None): pay the
    invoice's own amount.
    """

    invoice: str
    amount_msat: int | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    """One invoice of ``multi_pay_invoice``; ``problem`` fails only this item."""

    index: int
    id: str | None
    invoice: str
    amount_msat: int | None = None
    metadata: Mapping[str, Any] | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class MultiPayInvoiceParams:
    """``multi_pay_invoice``: several invoices, one response each."""

    invoices: tuple[InvoiceItem, ...]


@dataclass(frozen=True, slots=True)
class TlvRecord:
    """A keysend TLV record: a u64 type and a hex value."""

    type: int
    value: str


@dataclass(frozen=True, slots=True)
class PayKeysendParams:
    """``pay_keysend``."""

    pubkey: str
    amount_msat: int
    preimage: str | None = None
    tlv_records: tuple[TlvRecord, ...] = ()
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class KeysendItem:
    """One keysend of ``multi_pay_keysend``; ``problem`` fails only this item."""

    index: int
    id: str | None
    pubkey: str
    amount_msat: int = 0
    preimage: str | None = None
    tlv_records: tuple[TlvRecord, ...] = ()
    problem: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MultiPayKeysendParams:
    """``multi_pay_keysend``."""

    keysends: tuple[KeysendItem, ...]


@dataclass(frozen=True, slots=True)
class MakeInvoiceParams:
    """``make_invoice``."""

    amount_msat: int
    description: str | None = None
    description_hash: str | None = None
    expiry: int | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MakeHoldInvoiceParams:
    """``make_hold_invoice``: the app chose the preimage and gives only its hash; the
    payer's HTLC is held until the app settles (with the preimage) or cancels."""

    amount_msat: int
    payment_hash: str
    description: str | None = None
    description_hash: str | None = None
    expiry: int | None = None
    min_cltv_expiry_delta: int | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SettleHoldInvoiceParams:
    """``settle_hold_invoice``: the preimage releases the held payment."""

    preimage: str

    @property
    def payment_hash(self) -> str:
        return hashlib.sha256(bytes.fromhex(self.preimage)).hexdigest()


@dataclass(frozen=True, slots=True)
class CancelHoldInvoiceParams:
    """``cancel_hold_invoice``: the held payment goes back to the payer."""

    payment_hash: str


@dataclass(frozen=True, slots=True)
class LookupInvoiceParams:
    """``lookup_invoice``: by payment hash or by invoice."""

    payment_hash: str | None = None
    invoice: str | None = None


@dataclass(frozen=True, slots=True)
class ListTransactionsParams:
    """``list_transactions``: ``from``/``until`` inclusive unix seconds."""

    from_time: int | None = None
    until: int | None = None
    limit: int | None = None
    offset: int = 0
    unpaid: bool = False
    type: str | None = None


@dataclass(frozen=True, slots=True)
class GetBalanceParams:
    """``get_balance``."""


@dataclass(frozen=True, slots=True)
class GetInfoParams:
    """``get_info``."""


@dataclass(frozen=True, slots=True)
class GetBudgetParams:
    """``get_budget`` (Alby extension): this connection's budget and what is used of it."""


@dataclass(frozen=True, slots=True)
class SignMessageParams:
    """``sign_message`` (Alby extension)."""

    message: str


@dataclass(frozen=True, slots=True)
class UnknownMethod:
    """A method we do not know: answered with ``NOT_IMPLEMENTED``."""

    name: str


Params = (
    PayInvoiceParams
    | MultiPayInvoiceParams
    | PayKeysendParams
    | MultiPayKeysendParams
    | MakeInvoiceParams
    | LookupInvoiceParams
    | ListTransactionsParams
    | GetBalanceParams
    | GetInfoParams
    | GetBudgetParams
    | SignMessageParams
    | MakeHoldInvoiceParams
    | SettleHoldInvoiceParams
    | CancelHoldInvoiceParams
    | UnknownMethod
)


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request: ``method`` is the name as sent (also for unknown methods)."""

    method: str
    params: Params


def _item_id(raw: Mapping[str, Any], where: str) -> str | None:
    item_id = raw.get("id")
    if item_id is None:
        return None
    if not isinstance(item_id, str) or not item_id:
        raise _bad(f"{where}: id must be a non-empty string")
    return item_id


def _items(params: Mapping[str, Any], name: str, max_items: int) -> list[Mapping[str, Any]]:
    items = params.get(name)
    if not isinstance(items, list):
        raise _bad(f"{name} must be a list")
    if not items:
        raise _bad(f"{name} is empty")
    if len(items) > max_items:
        raise RequestError(
            ErrorCode.OTHER, f"too many {name}: {len(items)} (at most {max_items} per request)"
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"{name}[{index}] must be an object")
    return items


def _invoice_item(index: int, raw: Mapping[str, Any]) -> InvoiceItem:
    where = f"invoices[{index}]"
    item_id = _item_id(raw, where)
    invoice = raw.get("invoice")
    if not isinstance(invoice, str) or not invoice:
        raise _bad(f"{where}: invoice must be a non-empty string")
    try:
        amount = _optional_msat(raw, "amount")
        metadata = _metadata(raw)
    except RequestError as exc:
        return InvoiceItem(index, item_id, invoice, problem=exc.message)
    return InvoiceItem(index, item_id, invoice, amount, metadata)


def _tlv_records(raw: Mapping[str, Any]) -> tuple[TlvRecord, ...]:
    records = raw.get("tlv_records")
    if records is None:
        return ()
    if not isinstance(records, list):
        raise _bad("tlv_records must be a list")
    out: list[TlvRecord] = []
    for record in records:
        if not isinstance(record, dict):
            raise _bad("each TLV record must be an object")
        tlv_type = record.get("type")
        value = record.get("value")
        if type(tlv_type) is not int or not 0 <= tlv_type <= _MAX_U64:
            raise _bad("TLV type must be an unsigned 64-bit integer")
        if not isinstance(value, str) or len(value) % 2 or not _HEX.issuperset(value.lower()):
            raise _bad("TLV value must be hex")
        out.append(TlvRecord(tlv_type, value.lower()))
    return tuple(out)


def _keysend_fields(
    raw: Mapping[str, Any],
) -> tuple[str, int, str | None, tuple[TlvRecord, ...], Mapping[str, Any] | None]:
    pubkey = _hex(_required_str(raw, "pubkey"), "pubkey", 66)
    assert pubkey is not None
    if "amount" not in raw:
        raise _bad("amount is required")
    amount = _msat(raw["amount"], "amount", low=1)  # a keysend of nothing pays nothing
    preimage = _hex(_optional_str(raw, "preimage"), "preimage", 64)
    return pubkey, amount, preimage, _tlv_records(raw), _metadata(raw)


def _keysend_item(index: int, raw: Mapping[str, Any]) -> KeysendItem:
    where = f"keysends[{index}]"
    item_id = _item_id(raw, where)
    pubkey = raw.get("pubkey")
    if not isinstance(pubkey, str) or not pubkey:
        raise _bad(f"{where}: pubkey must be a non-empty string")
    try:
        pubkey, amount, preimage, records, metadata = _keysend_fields(raw)
    except RequestError as exc:
        return KeysendItem(index, item_id, pubkey.lower(), problem=exc.message)
    return KeysendItem(index, item_id, pubkey, amount, preimage, records, metadata=metadata)


def _parse_params(method: str, params: Mapping[str, Any], max_items: int) -> Params:
    match method:
        case Method.PAY_INVOICE:
            return PayInvoiceParams(
                _required_str(params, "invoice"),
                _optional_msat(params, "amount"),
                _metadata(params),
            )
        case Method.MULTI_PAY_INVOICE:
            items = _items(params, "invoices", max_items)
            return MultiPayInvoiceParams(
                tuple(_invoice_item(i, raw) for i, raw in enumerate(items))
            )
        case Method.PAY_KEYSEND:
            return PayKeysendParams(*_keysend_fields(params))
        case Method.MULTI_PAY_KEYSEND:
            items = _items(params, "keysends", max_items)
            return MultiPayKeysendParams(
                tuple(_keysend_item(i, raw) for i, raw in enumerate(items))
            )
        case Method.MAKE_INVOICE:
            amount, description, description_hash, expiry = _invoice_fields(params)
            return MakeInvoiceParams(
                amount, description, description_hash, expiry, _metadata(params)
            )
        case Method.MAKE_HOLD_INVOICE:
            amount, description, description_hash, expiry = _invoice_fields(params)
            delta = params.get("min_cltv_expiry_delta")
            if delta is not None:
                delta = _int_in(
                    delta, "min_cltv_expiry_delta", 1, MAX_CLTV_DELTA, "a whole number of blocks"
                )
            return MakeHoldInvoiceParams(
                amount,
                _required_hex(params, "payment_hash"),
                description,
                description_hash,
                expiry,
                delta,
                _metadata(params),
            )
        case Method.SETTLE_HOLD_INVOICE:
            return SettleHoldInvoiceParams(_required_hex(params, "preimage"))
        case Method.CANCEL_HOLD_INVOICE:
            return CancelHoldInvoiceParams(_required_hex(params, "payment_hash"))
        case Method.LOOKUP_INVOICE:
            payment_hash = _hex(_optional_str(params, "payment_hash"), "payment_hash", 64)
            invoice = _optional_str(params, "invoice")
            if payment_hash is None and not invoice:
                raise _bad("payment_hash or invoice is required")
            return LookupInvoiceParams(payment_hash, invoice or None)
        case Method.LIST_TRANSACTIONS:
            return _list_params(params)
        case Method.GET_BALANCE:
            return GetBalanceParams()
        case Method.GET_INFO:
            return GetInfoParams()
        case Method.GET_BUDGET:
            return GetBudgetParams()
        case Method.SIGN_MESSAGE:
            return SignMessageParams(_required_str(params, "message"))
        case _:
            return UnknownMethod(method)


def _invoice_fields(params: Mapping[str, Any]) -> tuple[int, str | None, str | None, int | None]:
    """``amount``, ``description``, ``description_hash`` and ``expiry`` of a new invoice."""
    if "amount" not in params:
        raise _bad("amount is required")
    expiry = params.get("expiry")
    if expiry is not None:
        expiry = _int_in(
            expiry, "expiry", 1, MAX_EXPIRY_SECONDS, "a whole number of seconds", " (one year)"
        )
    return (
        _msat(params["amount"], "amount"),
        _optional_str(params, "description"),
        _hex(_optional_str(params, "description_hash"), "description_hash", 64),
        expiry,
    )


def _list_params(params: Mapping[str, Any]) -> ListTransactionsParams:
    def optional_int(name: str, high: int, what: str) -> int | None:
        value = params.get(name)
        return None if value is None else _int_in(value, name, 0, high, what)

    unpaid = params.get("unpaid", False)
    if not isinstance(unpaid, bool):
        raise _bad("unpaid must be a boolean")
    tx_type = params.get("type")
    if tx_type is not None and tx_type not in ("incoming", "outgoing"):
        raise _bad("type must be incoming or outgoing")
    return ListTransactionsParams(
        optional_int("from", MAX_UNIX_TIME, "a unix time in whole seconds"),
        optional_int("until", MAX_UNIX_TIME, "a unix time in whole seconds"),
        optional_int("limit", MAX_LIST_LIMIT, "a whole number"),
        optional_int("offset", MAX_LIST_OFFSET, "a whole number") or 0,
        unpaid,
        tx_type,
    )


def decode_request(plaintext: str, *, max_items: int = 100) -> Request:
    """Parse a decrypted request.

    Args:
        plaintext: the decrypted content of a kind-23194 event.
        max_items: the most items a ``multi_*`` request may hold.

    Raises:
        RequestError: ``OTHER`` for malformed JSON, method or params.
    """
    try:
        data = jsontext.loads(plaintext)
    except (ValueError, RecursionError):
        raise RequestError(ErrorCode.OTHER, "invalid request: content is not JSON") from None
    if not isinstance(data, dict):
        raise RequestError(ErrorCode.OTHER, "invalid request: content is not a JSON object")
    method = data.get("method")
    if not isinstance(method, str) or not method:
        raise RequestError(ErrorCode.OTHER, "invalid request: method must be a string")
    params = data.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RequestError(ErrorCode.OTHER, "invalid request: params must be an object")
    return Request(method, _parse_params(method, params, max_items))


def encode_request(method: str, params: Mapping[str, Any]) -> str:
    """The plaintext of a request (client side)."""
    return json.dumps({"method": method, "params": params}, separators=(",", ":"))
