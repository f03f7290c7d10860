"""NIP-47 responses: the envelope we send, and tolerant parsing of what wallets send."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import ErrorCode, InvalidMessage, RequestError
from nwcd.nip47.results import (
    Budget,
    ErrorPayload,
    NodeInfo,
    PayResult,
    Response,
    Transaction,
    decode_response,
    encode_response,
    error_response,
)

HASH = "ab" * 32


# -- encoding -----------------------------------------------------------------------------------


def test_encode_result_has_null_error() -> None:
    text = encode_response("pay_invoice", result=PayResult("00" * 32, 12).to_json())
    assert json.loads(text) == {
        "result_type": "pay_invoice",
        "error": None,
        "result": {"preimage": "00" * 32, "fees_paid": 12},
    }
    assert " " not in text  # compact separators


def test_encode_error_drops_the_result() -> None:
    text = encode_response(
        "pay_invoice", result={"preimage": "x"}, error=ErrorPayload("PAYMENT_FAILED", "no route")
    )
    assert json.loads(text) == {
        "result_type": "pay_invoice",
        "error": {"code": "PAYMENT_FAILED", "message": "no route"},
        "result": None,
    }


def test_encode_keeps_non_ascii_verbatim() -> None:
    text = encode_response("get_info", result={"alias": "Zürich ⚡"})
    assert "Zürich ⚡" in text
    assert json.loads(text)["result"]["alias"] == "Zürich ⚡"


@pytest.mark.parametrize("code", [ErrorCode.QUOTA_EXCEEDED, "CUSTOM_CODE"])
def test_error_response(code: ErrorCode | str) -> None:
    data = json.loads(error_response("multi_pay_invoice", code, "over budget"))
    assert data == {
        "result_type": "multi_pay_invoice",
        "error": {"code": str(code), "message": "over budget"},
        "result": None,
    }


def test_encode_then_decode_round_trip() -> None:
    result = {"balance": 21_000}
    response = decode_response(encode_response("get_balance", result=result))
    assert response == Response("get_balance", result, None)
    assert response.ok
    assert response.raise_for_error() == result


# -- tolerant decoding --------------------------------------------------------------------------


def test_missing_error_and_result_are_null() -> None:
    response = decode_response('{"result_type": "pay_invoice"}')
    assert response.result is None
    assert response.error is None
    assert response.ok
    assert response.raise_for_error() == {}


def test_missing_error_key_with_result() -> None:
    response = decode_response('{"result_type": "get_balance", "result": {"balance": 5}}')
    assert response.ok
    assert response.result == {"balance": 5}


def test_missing_result_type_is_empty_string() -> None:
    response = decode_response('{"error": {"code": "UNSUPPORTED_ENCRYPTION", "message": "m"}}')
    assert response.result_type == ""
    assert response.error == ErrorPayload("UNSUPPORTED_ENCRYPTION", "m")


def test_unknown_codes_are_kept_as_strings() -> None:
    response = decode_response(
        '{"result_type": "pay_invoice", "error": {"code": "EXPIRED", "message": "too late"}}'
    )
    assert response.error == ErrorPayload("EXPIRED", "too late")
    assert not response.ok


def test_error_without_code_or_message() -> None:
    response = decode_response('{"result_type": "pay_invoice", "error": {}}')
    assert response.error == ErrorPayload("OTHER", "")


def test_error_wins_over_result() -> None:
    response = decode_response(
        json.dumps(
            {
                "result_type": "pay_invoice",
                "result": {"preimage": "00"},
                "error": {"code": "PAYMENT_FAILED", "message": "failed"},
            }
        )
    )
    assert not response.ok
    with pytest.raises(RequestError) as info:
        response.raise_for_error()
    assert info.value.code is ErrorCode.PAYMENT_FAILED
    assert info.value.message == "failed"


def test_raise_for_error_known_code() -> None:
    response = decode_response(error_response("get_balance", ErrorCode.RESTRICTED, "no"))
    with pytest.raises(RequestError) as info:
        response.raise_for_error()
    assert info.value.code is ErrorCode.RESTRICTED
    assert info.value.message == "no"


@pytest.mark.parametrize("code", ["EXPIRED", "INTERNAL_ERROR", "payment_failed"])
def test_raise_for_error_maps_unknown_codes_to_other(code: str) -> None:
    response = decode_response(error_response("pay_invoice", code, "something broke"))
    with pytest.raises(RequestError) as info:
        response.raise_for_error()
    assert info.value.code is ErrorCode.OTHER
    assert info.value.message == f"{code}: something broke"


@pytest.mark.parametrize(
    "plaintext",
    [
        "",
        "not json",
        "[]",
        '"x"',
        "null",
        '{"result_type": "x", "error": "PAYMENT_FAILED"}',
        '{"result_type": "x", "error": ["PAYMENT_FAILED"]}',
        '{"result_type": "x", "result": [1, 2]}',
        '{"result_type": "x", "result": 5}',
    ],
)
def test_malformed_responses(plaintext: str) -> None:
    with pytest.raises(InvalidMessage):
        decode_response(plaintext)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["result_type", "result", "error"]) | st.text(max_size=6),
        json_values | st.dictionaries(st.sampled_from(["code", "message"]), json_values),
        max_size=4,
    )
    | json_values
)
def test_decode_response_is_total(data: Any) -> None:
    outcome: Response | InvalidMessage
    try:
        outcome = decode_response(json.dumps(data))
    except InvalidMessage as exc:
        outcome = exc
    if isinstance(outcome, Response):
        assert isinstance(outcome.result_type, str)
        assert outcome.result is None or isinstance(outcome.result, dict)
        if outcome.error is not None:
            assert isinstance(outcome.error.code, str)
            with pytest.raises(RequestError):
                outcome.raise_for_error()


# -- result types -------------------------------------------------------------------------------


def test_node_info_to_json() -> None:
    info = NodeInfo("alias", "#ff9900", "02" + "ab" * 32, "regtest", 100, "00" * 32, ("get_info",))
    assert info.to_json() == {
        "alias": "alias",
        "color": "#ff9900",
        "pubkey": "02" + "ab" * 32,
        "network": "regtest",
        "block_height": 100,
        "block_hash": "00" * 32,
        "methods": ["get_info"],
        "notifications": [],
    }


def test_transaction_to_json_drops_nones_and_renames_amounts() -> None:
    tx = Transaction("outgoing", HASH, 5000, 1_700_000_000, fees_paid_msat=3)
    assert tx.to_json() == {
        "type": "outgoing",
        "payment_hash": HASH,
        "amount": 5000,
        "fees_paid": 3,
        "created_at": 1_700_000_000,
    }


def test_transaction_full_round_trip() -> None:
    tx = Transaction(
        type="incoming",
        payment_hash=HASH,
        amount_msat=21_000,
        created_at=1_700_000_000,
        state="settled",
        invoice="lnbcrt1x",
        description="coffee",
        description_hash="cd" * 32,
        preimage="ef" * 32,
        fees_paid_msat=0,
        expires_at=1_700_003_600,
        settled_at=1_700_000_100,
        metadata={"comment": "thanks"},
    )
    data = tx.to_json()
    assert data["metadata"] == {"comment": "thanks"}
    assert Transaction.from_json(json.loads(json.dumps(data))) == tx


@given(
    st.builds(
        Transaction,
        type=st.sampled_from(["incoming", "outgoing"]),
        payment_hash=st.text(min_size=1, max_size=64),
        amount_msat=st.integers(min_value=0, max_value=2**63),
        created_at=st.integers(min_value=0, max_value=2**40),
        state=st.none() | st.sampled_from(["pending", "settled", "expired", "failed", "accepted"]),
        invoice=st.none() | st.text(max_size=20),
        description=st.none() | st.text(max_size=20),
        description_hash=st.none() | st.text(max_size=64),
        preimage=st.none() | st.text(max_size=64),
        fees_paid_msat=st.integers(min_value=0, max_value=2**40),
        expires_at=st.none() | st.integers(min_value=0, max_value=2**40),
        settled_at=st.none() | st.integers(min_value=0, max_value=2**40),
        metadata=st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    )
)
def test_transaction_round_trip_property(tx: Transaction) -> None:
    assert Transaction.from_json(json.loads(json.dumps(tx.to_json()))) == tx


def test_transaction_from_json_tolerates_missing_and_null_amounts() -> None:
    tx = Transaction.from_json({"payment_hash": HASH, "amount": None, "fees_paid": None})
    assert tx == Transaction("incoming", HASH, 0, 0)


@pytest.mark.parametrize(
    "data",
    [{}, {"payment_hash": HASH, "amount": "lots"}, {"payment_hash": HASH, "created_at": [1]}],
)
def test_transaction_from_json_rejects_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        Transaction.from_json(data)


def test_budget_round_trip_and_empty_result() -> None:
    full = Budget(used_msat=10, total_msat=20, renewal_period="daily", renews_at=1_700_000_000)
    assert Budget.from_json(full.to_json()) == full
    never = Budget(used_msat=0, total_msat=20, renewal_period="never")
    assert "renews_at" not in never.to_json()
    assert Budget.from_json(never.to_json()) == never
    assert Budget.from_json({}) is None


@pytest.mark.parametrize(
    "data", [{"used_budget": 1}, {"used_budget": "x", "total_budget": 2}, {"total_budget": None}]
)
def test_malformed_budget_results(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage, match="get_budget"):
        Budget.from_json(data)
