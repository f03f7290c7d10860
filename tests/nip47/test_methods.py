"""NIP-47 request decoding: one params type per method, strict amounts, lenient batch items."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import ErrorCode, RequestError
from nwcd.nip47.methods import (
    MAX_AMOUNT_MSAT,
    MAX_CLTV_DELTA,
    MAX_EXPIRY_SECONDS,
    MAX_LIST_LIMIT,
    MAX_LIST_OFFSET,
    MAX_METADATA_CHARS,
    MAX_UNIX_TIME,
    CancelHoldInvoiceParams,
    GetBalanceParams,
    GetBudgetParams,
    GetInfoParams,
    InvoiceItem,
    KeysendItem,
    ListTransactionsParams,
    LookupInvoiceParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
    MultiPayInvoiceParams,
    MultiPayKeysendParams,
    Params,
    PayInvoiceParams,
    PayKeysendParams,
    Request,
    SettleHoldInvoiceParams,
    SignMessageParams,
    TlvRecord,
    UnknownMethod,
    decode_request,
    encode_request,
)

PUBKEY = "02" + "ab" * 32
HASH = "cd" * 32


def decode(method: str, params: Any = None, **kwargs: Any) -> Request:
    body: dict[str, Any] = {"method": method}
    if params is not None:
        body["params"] = params
    return decode_request(json.dumps(body), **kwargs)


def rejected(method: str, params: Any, **kwargs: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        decode(method, params, **kwargs)
    assert info.value.code is ErrorCode.OTHER
    return info.value


# -- every method decodes to its params type ------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        (
            "pay_invoice",
            {"invoice": "lnbc1x", "amount": 1000, "metadata": {"comment": "hi"}},
            PayInvoiceParams("lnbc1x", 1000, {"comment": "hi"}),
        ),
        ("pay_invoice", {"invoice": "lnbc1x"}, PayInvoiceParams("lnbc1x")),
        ("pay_invoice", {"invoice": "lnbc1x", "amount": None}, PayInvoiceParams("lnbc1x")),
        (
            "multi_pay_invoice",
            {"invoices": [{"id": "a", "invoice": "lnbc1x", "amount": 5}, {"invoice": "lnbc2y"}]},
            MultiPayInvoiceParams(
                (InvoiceItem(0, "a", "lnbc1x", 5), InvoiceItem(1, None, "lnbc2y"))
            ),
        ),
        (
            "pay_keysend",
            {
                "pubkey": PUBKEY.upper(),
                "amount": 21,
                "preimage": "EF" * 32,
                "tlv_records": [{"type": 5482373484, "value": "0A0B"}],
            },
            PayKeysendParams(PUBKEY, 21, "ef" * 32, (TlvRecord(5482373484, "0a0b"),)),
        ),
        (
            "multi_pay_keysend",
            {"keysends": [{"id": "k", "pubkey": PUBKEY, "amount": 7}]},
            MultiPayKeysendParams((KeysendItem(0, "k", PUBKEY, 7),)),
        ),
        (
            "make_invoice",
            {
                "amount": 1000,
                "description": "coffee",
                "description_hash": HASH.upper(),
                "expiry": 60,
                "metadata": {"a": 1},
            },
            MakeInvoiceParams(1000, "coffee", HASH, 60, {"a": 1}),
        ),
        ("make_invoice", {"amount": 0}, MakeInvoiceParams(0)),
        ("lookup_invoice", {"payment_hash": HASH}, LookupInvoiceParams(payment_hash=HASH)),
        ("lookup_invoice", {"invoice": "lnbc1x"}, LookupInvoiceParams(invoice="lnbc1x")),
        (
            "list_transactions",
            {"from": 1, "until": 2, "limit": 10, "offset": 5, "unpaid": True, "type": "incoming"},
            ListTransactionsParams(1, 2, 10, 5, True, "incoming"),
        ),
        ("list_transactions", {}, ListTransactionsParams()),
        ("get_balance", {}, GetBalanceParams()),
        ("get_balance", None, GetBalanceParams()),
        ("get_info", None, GetInfoParams()),
        ("get_budget", {}, GetBudgetParams()),
        ("get_budget", None, GetBudgetParams()),
        ("sign_message", {"message": "hello"}, SignMessageParams("hello")),
        (
            "make_hold_invoice",
            {
                "amount": 2000,
                "payment_hash": HASH.upper(),
                "description": "held",
                "expiry": 600,
                "min_cltv_expiry_delta": 40,
                "metadata": {"order": 7},
            },
            MakeHoldInvoiceParams(2000, HASH, "held", None, 600, 40, {"order": 7}),
        ),
        ("settle_hold_invoice", {"preimage": "AB" * 32}, SettleHoldInvoiceParams("ab" * 32)),
        ("cancel_hold_invoice", {"payment_hash": HASH}, CancelHoldInvoiceParams(HASH)),
        ("make_hold_invoices", {"amount": 1}, UnknownMethod("make_hold_invoices")),
    ],
)
def test_each_method_decodes_to_its_params(method: str, params: Any, expected: Params) -> None:
    request = decode(method, params)
    assert request == Request(method, expected)


def test_every_known_method_has_a_non_unknown_params_type() -> None:
    minimal: dict[str, dict[str, Any]] = {
        "pay_invoice": {"invoice": "lnbc1x"},
        "multi_pay_invoice": {"invoices": [{"invoice": "lnbc1x"}]},
        "pay_keysend": {"pubkey": PUBKEY, "amount": 1},
        "multi_pay_keysend": {"keysends": [{"pubkey": PUBKEY, "amount": 1}]},
        "make_invoice": {"amount": 1},
        "lookup_invoice": {"payment_hash": HASH},
        "list_transactions": {},
        "get_balance": {},
        "get_info": {},
        "get_budget": {},
        "sign_message": {"message": "m"},
        "make_hold_invoice": {"amount": 1, "payment_hash": HASH},
        "settle_hold_invoice": {"preimage": HASH},
        "cancel_hold_invoice": {"payment_hash": HASH},
    }
    assert set(minimal) == {m.value for m in Method}
    for method, params in minimal.items():
        assert not isinstance(decode(method, params).params, UnknownMethod), method


def test_settling_names_the_hash_of_the_preimage() -> None:
    preimage = bytes(range(32))
    settle = SettleHoldInvoiceParams(preimage.hex())
    assert settle.payment_hash == hashlib.sha256(preimage).hexdigest()


def test_encode_request_round_trips() -> None:
    text = encode_request("pay_invoice", {"invoice": "lnbc1x", "amount": 3})
    assert json.loads(text) == {
        "method": "pay_invoice",
        "params": {"invoice": "lnbc1x", "amount": 3},
    }
    assert decode_request(text).params == PayInvoiceParams("lnbc1x", 3)


# -- amounts are JSON integers ---------------------------------------------------------------

BAD_AMOUNTS = [
    1.0,
    1.5,
    "1000",
    True,
    False,
    -1,
    MAX_AMOUNT_MSAT + 1,
    2**63,
    2**64,
    2**70,
    [1],
    {"msat": 1},
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("pay_invoice", {"invoice": "lnbc1x"}),
        ("make_invoice", {}),
        ("pay_keysend", {"pubkey": PUBKEY}),
    ],
)
def test_amount_must_be_a_non_negative_integer(
    method: str, params: dict[str, Any], amount: object
) -> None:
    error = rejected(method, {**params, "amount": amount})
    assert "amount" in error.message


def test_largest_amount_is_accepted() -> None:
    request = decode("pay_invoice", {"invoice": "lnbc1x", "amount": MAX_AMOUNT_MSAT})
    assert request.params == PayInvoiceParams("lnbc1x", MAX_AMOUNT_MSAT)


@pytest.mark.parametrize(
    "params",
    [{"invoice": "lnbc1x", "amount": None}, {"invoice": "lnbc1x"}],
    ids=["null", "absent"],
)
def test_null_pay_invoice_amount_is_no_amount(params: dict[str, Any]) -> None:
    request = decode("pay_invoice", params)
    assert isinstance(request.params, PayInvoiceParams)
    assert request.params.amount_msat is None


def test_null_item_amount_is_no_amount_and_no_problem() -> None:
    request = decode("multi_pay_invoice", {"invoices": [{"invoice": "i0", "amount": None}]})
    assert request.params == MultiPayInvoiceParams((InvoiceItem(0, None, "i0"),))


@pytest.mark.parametrize("method", ["make_invoice", "pay_keysend"])
def test_required_amount_missing_or_null(method: str) -> None:
    extra = {"pubkey": PUBKEY} if method == "pay_keysend" else {}
    assert "amount" in rejected(method, extra).message
    assert "amount" in rejected(method, {**extra, "amount": None}).message


def test_keysend_amount_must_be_positive() -> None:
    assert "amount" in rejected("pay_keysend", {"pubkey": PUBKEY, "amount": 0}).message


@given(st.integers(min_value=0, max_value=MAX_AMOUNT_MSAT))
def test_any_amount_in_range_decodes_exactly(amount: int) -> None:
    request = decode("pay_invoice", {"invoice": "lnbc1x", "amount": amount})
    assert isinstance(request.params, PayInvoiceParams)
    assert request.params.amount_msat == amount


@given(st.integers(min_value=MAX_AMOUNT_MSAT + 1, max_value=2**200))
def test_any_amount_over_the_maximum_is_refused(amount: int) -> None:
    assert "amount" in rejected("pay_invoice", {"invoice": "lnbc1x", "amount": amount}).message


# -- every integer param is range-checked (fuzzing: huge integers overflowed SQLite) ------------


def test_bounds_fit_a_signed_64_bit_store() -> None:
    assert MAX_AMOUNT_MSAT == 21_000_000 * 100_000_000 * 1000  # 21 million BTC
    assert MAX_EXPIRY_SECONDS == 365 * 24 * 60 * 60
    for bound in (MAX_AMOUNT_MSAT, MAX_EXPIRY_SECONDS, MAX_UNIX_TIME, MAX_LIST_LIMIT):
        assert bound < 2**63
    assert MAX_LIST_OFFSET < 2**31


# (method, other params, field, attribute of the params type, lowest, highest)
INT_FIELDS = [
    ("pay_invoice", {"invoice": "lnbc1x"}, "amount", "amount_msat", 0, MAX_AMOUNT_MSAT),
    ("make_invoice", {}, "amount", "amount_msat", 0, MAX_AMOUNT_MSAT),
    ("pay_keysend", {"pubkey": PUBKEY}, "amount", "amount_msat", 1, MAX_AMOUNT_MSAT),
    ("make_invoice", {"amount": 1000}, "expiry", "expiry", 1, MAX_EXPIRY_SECONDS),
    ("make_hold_invoice", {"payment_hash": HASH}, "amount", "amount_msat", 0, MAX_AMOUNT_MSAT),
    (
        "make_hold_invoice",
        {"amount": 1, "payment_hash": HASH},
        "min_cltv_expiry_delta",
        "min_cltv_expiry_delta",
        1,
        MAX_CLTV_DELTA,
    ),
    ("list_transactions", {}, "from", "from_time", 0, MAX_UNIX_TIME),
    ("list_transactions", {}, "until", "until", 0, MAX_UNIX_TIME),
    ("list_transactions", {}, "limit", "limit", 0, MAX_LIST_LIMIT),
    ("list_transactions", {}, "offset", "offset", 0, MAX_LIST_OFFSET),
]
INT_FIELD_IDS = [f"{method}.{field}" for method, _, field, *_ in INT_FIELDS]


@pytest.mark.parametrize(
    ("method", "params", "field", "attribute", "low", "high"), INT_FIELDS, ids=INT_FIELD_IDS
)
@pytest.mark.parametrize("end", ["lowest", "highest"])
def test_integer_param_bounds_are_accepted(
    method: str,
    params: dict[str, Any],
    field: str,
    attribute: str,
    low: int,
    high: int,
    end: str,
) -> None:
    value = low if end == "lowest" else high
    decoded = decode(method, {**params, field: value}).params
    assert getattr(decoded, attribute) == value


@pytest.mark.parametrize(
    ("method", "params", "field", "attribute", "low", "high"), INT_FIELDS, ids=INT_FIELD_IDS
)
@pytest.mark.parametrize("past", ["below", "above", "2**63", "2**70", "-2**70"])
def test_integer_param_out_of_range_is_refused_naming_field_and_range(
    method: str,
    params: dict[str, Any],
    field: str,
    attribute: str,
    low: int,
    high: int,
    past: str,
) -> None:
    value = {"below": low - 1, "above": high + 1, "2**63": 2**63, "2**70": 2**70}.get(
        past, -(2**70)
    )
    message = rejected(method, {**params, field: value}).message
    assert f"{field} must be " in message
    assert f"from {low} to {high}" in message


@pytest.mark.parametrize(
    ("method", "params", "field", "attribute", "low", "high"), INT_FIELDS, ids=INT_FIELD_IDS
)
@pytest.mark.parametrize("value", [True, False, 1.0, 1.5, "1", [1]])
def test_integer_param_refuses_bools_floats_and_strings(
    method: str,
    params: dict[str, Any],
    field: str,
    attribute: str,
    low: int,
    high: int,
    value: object,
) -> None:
    assert f"{field} must be " in rejected(method, {**params, field: value}).message


@pytest.mark.parametrize(
    ("method", "params", "field", "attribute", "low", "high"), INT_FIELDS, ids=INT_FIELD_IDS
)
def test_integer_param_refuses_the_float_spelling_of_its_bounds(
    method: str, params: dict[str, Any], field: str, attribute: str, low: int, high: int
) -> None:
    for value in (float(low), float(high)):
        assert f"{field} must be " in rejected(method, {**params, field: value}).message


def test_batch_items_accept_the_largest_amount() -> None:
    invoices = decode(
        "multi_pay_invoice", {"invoices": [{"invoice": "i0", "amount": MAX_AMOUNT_MSAT}]}
    )
    assert invoices.params == MultiPayInvoiceParams((InvoiceItem(0, None, "i0", MAX_AMOUNT_MSAT),))
    keysends = decode(
        "multi_pay_keysend", {"keysends": [{"pubkey": PUBKEY, "amount": MAX_AMOUNT_MSAT}]}
    )
    assert keysends.params == MultiPayKeysendParams(
        (KeysendItem(0, None, PUBKEY, MAX_AMOUNT_MSAT),)
    )


def test_range_messages_say_what_the_bound_means() -> None:
    expiry = rejected("make_invoice", {"amount": 1000, "expiry": 2**70}).message
    assert "expiry must be a whole number of seconds from 1 to 31536000 (one year)" in expiry
    amount = rejected("make_invoice", {"amount": 2**63}).message
    assert f"amount must be a whole number of millisatoshis from 0 to {MAX_AMOUNT_MSAT}" in amount
    assert "21 million BTC" in amount
    since = rejected("list_transactions", {"from": 2**70}).message
    assert f"from must be a unix time in whole seconds from 0 to {MAX_UNIX_TIME}" in since


@pytest.mark.parametrize(
    ("method", "field"),
    [("make_invoice", "expiry"), ("list_transactions", "from"), ("list_transactions", "limit")],
)
def test_null_optional_integer_is_absent(method: str, field: str) -> None:
    params = {"amount": 1} if method == "make_invoice" else {}
    assert decode(method, {**params, field: None}) == decode(method, params)


def keysend_with_tlv_type(tlv_type: object) -> dict[str, Any]:
    return {"pubkey": PUBKEY, "amount": 1, "tlv_records": [{"type": tlv_type, "value": "00"}]}


@pytest.mark.parametrize("tlv_type", [0, 2**64 - 1])
def test_tlv_type_stays_u64(tlv_type: int) -> None:
    # TLV types go to the backend (LND takes them as decimal strings) and are never stored.
    decoded = decode("pay_keysend", keysend_with_tlv_type(tlv_type)).params
    assert decoded == PayKeysendParams(PUBKEY, 1, None, (TlvRecord(tlv_type, "00"),))


@pytest.mark.parametrize("tlv_type", [-1, 2**64, 2**70, True, 1.0])
def test_tlv_type_outside_u64_is_refused(tlv_type: object) -> None:
    assert "TLV type" in rejected("pay_keysend", keysend_with_tlv_type(tlv_type)).message


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("pay_invoice", {}, "invoice"),
        ("pay_invoice", {"invoice": ""}, "invoice"),
        ("pay_invoice", {"invoice": 5}, "invoice"),
        ("pay_keysend", {"amount": 1}, "pubkey"),
        ("pay_keysend", {"pubkey": "02ab", "amount": 1}, "pubkey"),
        ("pay_keysend", {"pubkey": PUBKEY, "amount": 1, "preimage": "xyz"}, "preimage"),
        ("pay_keysend", {"pubkey": PUBKEY, "amount": 1, "tlv_records": {}}, "tlv_records"),
        ("pay_keysend", {"pubkey": PUBKEY, "amount": 1, "tlv_records": [5]}, "TLV"),
        (
            "pay_keysend",
            {"pubkey": PUBKEY, "amount": 1, "tlv_records": [{"type": -1, "value": "00"}]},
            "TLV type",
        ),
        (
            "pay_keysend",
            {"pubkey": PUBKEY, "amount": 1, "tlv_records": [{"type": 1, "value": "abc"}]},
            "TLV value",
        ),
        ("make_invoice", {"amount": 1, "expiry": 0}, "expiry"),
        ("make_invoice", {"amount": 1, "expiry": 1.5}, "expiry"),
        ("make_invoice", {"amount": 1, "description": 5}, "description"),
        ("make_invoice", {"amount": 1, "description_hash": "ab"}, "description_hash"),
        ("make_invoice", {"amount": 1, "metadata": []}, "metadata"),
        ("lookup_invoice", {}, "payment_hash or invoice"),
        ("lookup_invoice", {"payment_hash": "zz" * 32}, "payment_hash"),
        ("list_transactions", {"limit": -1}, "limit"),
        ("list_transactions", {"from": 1.5}, "from"),
        ("list_transactions", {"until": "2"}, "until"),
        ("list_transactions", {"offset": True}, "offset"),
        ("list_transactions", {"unpaid": 1}, "unpaid"),
        ("list_transactions", {"type": "sideways"}, "type"),
        ("sign_message", {}, "message"),
        ("make_hold_invoice", {"amount": 1}, "payment_hash"),
        ("make_hold_invoice", {"amount": 1, "payment_hash": "ab"}, "payment_hash"),
        ("make_hold_invoice", {"payment_hash": HASH}, "amount"),
        ("settle_hold_invoice", {}, "preimage"),
        ("settle_hold_invoice", {"preimage": "zz" * 32}, "preimage"),
        ("cancel_hold_invoice", {"payment_hash": 7}, "payment_hash"),
    ],
)
def test_bad_params_name_the_field(method: str, params: dict[str, Any], field: str) -> None:
    assert field in rejected(method, params).message


# -- metadata ---------------------------------------------------------------------------------


def metadata_of_length(length: int) -> dict[str, str]:
    overhead = len('{"k":""}')
    metadata = {"k": "x" * (length - overhead)}
    assert len(json.dumps(metadata, separators=(",", ":"))) == length
    return metadata


def test_metadata_up_to_the_limit_is_kept() -> None:
    metadata = metadata_of_length(MAX_METADATA_CHARS)
    request = decode("pay_invoice", {"invoice": "lnbc1x", "metadata": metadata})
    assert request.params == PayInvoiceParams("lnbc1x", None, metadata)


@pytest.mark.parametrize(
    ("method", "params"),
    [("pay_invoice", {"invoice": "lnbc1x"}), ("make_invoice", {"amount": 1})],
)
def test_metadata_over_the_limit_is_dropped(method: str, params: dict[str, Any]) -> None:
    metadata = metadata_of_length(MAX_METADATA_CHARS + 1)
    params = decode(method, {**params, "metadata": metadata}).params
    assert isinstance(params, PayInvoiceParams | MakeInvoiceParams)
    assert params.metadata is None


def test_metadata_limit_counts_characters_not_escapes() -> None:
    # Regression: the length was measured on ASCII-escaped JSON, so 700 characters of
    # Japanese (4200 escaped characters) were dropped.
    kept = {"comment": "日本語のコメント" * 500}  # 4000 characters + 14 of JSON
    request = decode("pay_invoice", {"invoice": "lnbc1x", "metadata": kept})
    assert request.params == PayInvoiceParams("lnbc1x", None, kept)
    dropped = {"k": "é" * (MAX_METADATA_CHARS - len('{"k":""}') + 1)}
    request = decode("pay_invoice", {"invoice": "lnbc1x", "metadata": dropped})
    assert request.params == PayInvoiceParams("lnbc1x")


def test_oversized_item_metadata_is_dropped_without_a_problem() -> None:
    big = metadata_of_length(MAX_METADATA_CHARS + 1)
    small = {"a": 1}
    request = decode(
        "multi_pay_invoice",
        {"invoices": [{"invoice": "i0", "metadata": big}, {"invoice": "i1", "metadata": small}]},
    )
    assert request.params == MultiPayInvoiceParams(
        (InvoiceItem(0, None, "i0"), InvoiceItem(1, None, "i1", None, small))
    )


# -- multi_pay_invoice ------------------------------------------------------------------------


@pytest.mark.parametrize("invoices", [None, "lnbc1x", {"invoice": "lnbc1x"}, 3])
def test_multi_pay_invoice_needs_a_list(invoices: object) -> None:
    params = {} if invoices is None else {"invoices": invoices}
    assert "invoices must be a list" in rejected("multi_pay_invoice", params).message


def test_multi_pay_invoice_empty_list() -> None:
    assert "invoices is empty" in rejected("multi_pay_invoice", {"invoices": []}).message


def test_multi_pay_invoice_max_items() -> None:
    items = [{"invoice": f"lnbc{i}"} for i in range(4)]
    error = rejected("multi_pay_invoice", {"invoices": items}, max_items=3)
    assert "too many invoices: 4" in error.message
    request = decode("multi_pay_invoice", {"invoices": items[:3]}, max_items=3)
    assert isinstance(request.params, MultiPayInvoiceParams)
    assert [item.index for item in request.params.invoices] == [0, 1, 2]


def test_multi_pay_invoice_default_max_is_100() -> None:
    items = [{"invoice": f"lnbc{i}"} for i in range(101)]
    assert "too many" in rejected("multi_pay_invoice", {"invoices": items}).message
    params = decode("multi_pay_invoice", {"invoices": items[:100]}).params
    assert isinstance(params, MultiPayInvoiceParams)
    assert len(params.invoices) == 100


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("lnbc1x", "invoices[1] must be an object"),
        (None, "invoices[1] must be an object"),
        ({}, "invoices[1]: invoice"),
        ({"invoice": 5}, "invoices[1]: invoice"),
        ({"invoice": ""}, "invoices[1]: invoice"),
        ({"invoice": "lnbc1x", "id": 5}, "invoices[1]: id"),
        ({"invoice": "lnbc1x", "id": ""}, "invoices[1]: id"),
    ],
)
def test_untrustworthy_item_fails_the_whole_request(item: object, field: str) -> None:
    error = rejected("multi_pay_invoice", {"invoices": [{"invoice": "ok"}, item]})
    assert field in error.message


@pytest.mark.parametrize("amount", [1.5, "5", True, -3, MAX_AMOUNT_MSAT + 1, 2**64])
def test_bad_item_amount_is_a_problem_of_that_item_only(amount: object) -> None:
    request = decode(
        "multi_pay_invoice",
        {
            "invoices": [
                {"id": "a", "invoice": "i0", "amount": 10},
                {"id": "b", "invoice": "i1", "amount": amount, "metadata": {"x": 1}},
                {"invoice": "i2"},
            ]
        },
    )
    assert isinstance(request.params, MultiPayInvoiceParams)
    first, bad, last = request.params.invoices
    assert first == InvoiceItem(0, "a", "i0", 10)
    assert last == InvoiceItem(2, None, "i2")
    assert (bad.index, bad.id, bad.invoice, bad.amount_msat) == (1, "b", "i1", None)
    assert bad.problem is not None
    assert "amount" in bad.problem


def test_bad_item_metadata_is_a_problem_of_that_item_only() -> None:
    request = decode(
        "multi_pay_invoice",
        {"invoices": [{"invoice": "i0", "metadata": "text"}, {"invoice": "i1"}]},
    )
    assert isinstance(request.params, MultiPayInvoiceParams)
    bad, good = request.params.invoices
    assert bad.problem is not None
    assert "metadata" in bad.problem
    assert good.problem is None


# -- multi_pay_keysend ------------------------------------------------------------------------


def test_multi_pay_keysend_list_checks() -> None:
    assert "keysends must be a list" in rejected("multi_pay_keysend", {}).message
    assert "keysends is empty" in rejected("multi_pay_keysend", {"keysends": []}).message
    items = [{"pubkey": PUBKEY, "amount": 1}] * 3
    assert (
        "too many keysends"
        in rejected("multi_pay_keysend", {"keysends": items}, max_items=2).message
    )
    error = rejected("multi_pay_keysend", {"keysends": [{"pubkey": PUBKEY, "amount": 1}, 7]})
    assert "keysends[1] must be an object" in error.message


@pytest.mark.parametrize("pubkey", [None, "", 5])
def test_keysend_item_without_a_string_pubkey_fails_the_request(pubkey: object) -> None:
    item: dict[str, Any] = {"amount": 1}
    if pubkey is not None:
        item["pubkey"] = pubkey
    error = rejected("multi_pay_keysend", {"keysends": [item]})
    assert "keysends[0]: pubkey" in error.message


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"pubkey": PUBKEY}, "amount"),
        ({"pubkey": PUBKEY, "amount": 0}, "amount"),
        ({"pubkey": PUBKEY, "amount": 2.5}, "amount"),
        ({"pubkey": PUBKEY, "amount": "9"}, "amount"),
        ({"pubkey": PUBKEY, "amount": -1}, "amount"),
        ({"pubkey": PUBKEY, "amount": MAX_AMOUNT_MSAT + 1}, "amount"),
        ({"pubkey": PUBKEY, "amount": 2**70}, "amount"),
        ({"pubkey": "02AB", "amount": 1}, "pubkey"),
        ({"pubkey": PUBKEY, "amount": 1, "preimage": "00"}, "preimage"),
        ({"pubkey": PUBKEY, "amount": 1, "tlv_records": [{"type": 1, "value": "zz"}]}, "TLV"),
    ],
)
def test_bad_keysend_item_is_a_problem_of_that_item_only(item: dict[str, Any], field: str) -> None:
    good = {"id": "g", "pubkey": PUBKEY, "amount": 5}
    request = decode("multi_pay_keysend", {"keysends": [good, {"id": "b", **item}, good]})
    assert isinstance(request.params, MultiPayKeysendParams)
    first, bad, last = request.params.keysends
    assert first == KeysendItem(0, "g", PUBKEY, 5)
    assert last == KeysendItem(2, "g", PUBKEY, 5)
    assert (bad.index, bad.id, bad.pubkey) == (1, "b", str(item["pubkey"]).lower())
    assert bad.problem is not None
    assert field in bad.problem


# -- unknown methods and malformed envelopes ----------------------------------------------------


@pytest.mark.parametrize("method", ["hold_invoice", "PAY_INVOICE", "pay"])
def test_unknown_method(method: str) -> None:
    assert decode(method, {}) == Request(method, UnknownMethod(method))


@pytest.mark.parametrize(
    ("plaintext", "why"),
    [
        ("", "not JSON"),
        ("{not json", "not JSON"),
        ("[" * 100_000, "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"pay_invoice"', "not a JSON object"),
        ("null", "not a JSON object"),
        ("{}", "method"),
        ('{"params": {}}', "method"),
        ('{"method": 5}', "method"),
        ('{"method": ""}', "method"),
        ('{"method": null}', "method"),
        ('{"method": "get_info", "params": []}', "params must be an object"),
        ('{"method": "get_info", "params": "x"}', "params must be an object"),
    ],
)
def test_malformed_request(plaintext: str, why: str) -> None:
    with pytest.raises(RequestError) as info:
        decode_request(plaintext)
    assert info.value.code is ErrorCode.OTHER
    assert why in info.value.message


# -- property tests: never anything but a Request or a RequestError ------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "invoice",
    "amount",
    "metadata",
    "id",
    "pubkey",
    "preimage",
    "tlv_records",
    "description",
    "description_hash",
    "expiry",
    "payment_hash",
    "from",
    "until",
    "limit",
    "offset",
    "unpaid",
    "type",
    "message",
]
field_values = (
    json_values
    | st.sampled_from([PUBKEY, HASH, "lnbc1x", 0, 1, 2**64 - 1, {"a": 1}])
    | st.lists(
        st.fixed_dictionaries({"type": json_values, "value": st.text("0123456789abcdefAB")}),
        max_size=3,
    )
)
param_objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), field_values)
item_lists = st.lists(param_objects | json_values, max_size=5)
params_strategy = (
    param_objects
    | st.builds(lambda items, rest: {**rest, "invoices": items}, item_lists, param_objects)
    | st.builds(lambda items, rest: {**rest, "keysends": items}, item_lists, param_objects)
    | json_values
)
requests = st.dictionaries(
    st.sampled_from(["method", "params", "id"]) | st.text(max_size=8),
    json_values,
    max_size=3,
) | st.builds(
    lambda method, params: {"method": method, "params": params},
    st.sampled_from([m.value for m in Method]) | st.text(max_size=12) | json_values,
    params_strategy,
)


def check_total(plaintext: str) -> None:
    outcome: Request | RequestError
    try:
        outcome = decode_request(plaintext, max_items=4)
    except RequestError as exc:
        outcome = exc
    if isinstance(outcome, RequestError):
        assert outcome.code is ErrorCode.OTHER
        assert outcome.message
        return
    assert isinstance(outcome.method, str)
    assert outcome.method
    known = {m.value for m in Method}
    assert isinstance(outcome.params, UnknownMethod) == (outcome.method not in known)


@given(st.text())
def test_random_text_never_raises_anything_else(plaintext: str) -> None:
    check_total(plaintext)


@given(requests)
def test_random_json_objects_never_raise_anything_else(body: dict[str, Any]) -> None:
    check_total(json.dumps(body))


@given(st.lists(param_objects, min_size=1, max_size=6))
def test_batch_items_keep_their_order_and_index(items: list[dict[str, Any]]) -> None:
    try:
        request = decode_request(
            json.dumps({"method": "multi_pay_invoice", "params": {"invoices": items}})
        )
    except RequestError:
        return
    assert isinstance(request.params, MultiPayInvoiceParams)
    decoded = request.params.invoices
    assert [item.index for item in decoded] == list(range(len(items)))
    assert [item.invoice for item in decoded] == [raw["invoice"] for raw in items]
