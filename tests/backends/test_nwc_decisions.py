"""The NWC backend's decisions, as tables: what an upstream's answer means for the money."""

from __future__ import annotations

import hashlib
from typing import Final

import pytest

from nwcd.backends.nwc import (
    NwcConfig,
    call_error,
    incoming_transaction,
    paid_outcome,
    pay_outcome,
    served_methods,
    status_outcome,
)
from nwcd.client.client import Notification
from nwcd.errors import BackendUnavailable, ErrorCode, RequestError
from nwcd.nip47.results import Transaction
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.ports import NOT_FOUND, Failed, Pending, Succeeded

PREIMAGE: Final = "11" * 32
HASH: Final = hashlib.sha256(bytes.fromhex(PREIMAGE)).hexdigest()

# upstream code -> what nwcd makes of the answer to a payment
PAY_ERRORS: Final[dict[str, type | ErrorCode]] = {
    "PAYMENT_FAILED": Failed,  # the spec's "the payment failed"
    "INSUFFICIENT_BALANCE": ErrorCode.INSUFFICIENT_BALANCE,  # refused before paying
    "QUOTA_EXCEEDED": ErrorCode.QUOTA_EXCEEDED,
    "RATE_LIMITED": ErrorCode.RATE_LIMITED,
    "NOT_IMPLEMENTED": ErrorCode.NOT_IMPLEMENTED,
    "UNAUTHORIZED": Failed,  # nwcd's connection refused: nothing was done
    "RESTRICTED": Failed,
    "UNSUPPORTED_ENCRYPTION": Failed,
    "BAD_REQUEST": Failed,  # Alby Hub: the request could not be read
    "EXPIRED": Failed,  # Alby Hub: the connection expired
    "INTERNAL": Pending,  # Alby Hub's answer to every failure, others' to a crash: unknown
    "OTHER": Pending,  # says nothing about the money
    "NOT_FOUND": Pending,
    "SOMETHING_NEW": Pending,
}


@pytest.mark.parametrize(("code", "expected"), PAY_ERRORS.items())
def test_pay_error_codes(code: str, expected: type | ErrorCode) -> None:
    outcome = pay_outcome(code, "why")
    if isinstance(expected, ErrorCode):
        assert isinstance(outcome, RequestError)
        assert outcome.code is expected
        assert outcome.message == "upstream wallet: why"
    else:
        assert isinstance(outcome, expected), outcome


# upstream code -> what the app sees for any other method (None: BackendUnavailable)
CALL_ERRORS: Final[dict[str, ErrorCode | None]] = {
    "NOT_FOUND": ErrorCode.NOT_FOUND,
    "OTHER": ErrorCode.OTHER,
    "BAD_REQUEST": ErrorCode.OTHER,
    "INSUFFICIENT_BALANCE": ErrorCode.INSUFFICIENT_BALANCE,
    "QUOTA_EXCEEDED": ErrorCode.QUOTA_EXCEEDED,
    "RATE_LIMITED": ErrorCode.RATE_LIMITED,
    "NOT_IMPLEMENTED": ErrorCode.NOT_IMPLEMENTED,
    "PAYMENT_FAILED": ErrorCode.PAYMENT_FAILED,
    "SOMETHING_NEW": ErrorCode.OTHER,
    "INTERNAL": None,
    "UNAUTHORIZED": None,
    "RESTRICTED": None,
    "UNSUPPORTED_ENCRYPTION": None,
    "EXPIRED": None,
}


@pytest.mark.parametrize(("code", "expected"), CALL_ERRORS.items())
def test_call_error_codes(code: str, expected: ErrorCode | None) -> None:
    error = call_error(code, "x" * 500)
    if expected is None:
        assert isinstance(error, BackendUnavailable)
    else:
        assert isinstance(error, RequestError)
        assert error.code is expected
        assert len(error.message) < 250  # an upstream message is cut short


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"preimage": PREIMAGE, "fees_paid": 3}, Succeeded(PREIMAGE, 3)),
        ({"preimage": PREIMAGE.upper()}, Succeeded(PREIMAGE, 0)),
        ({"preimage": PREIMAGE, "fees_paid": -1}, Succeeded(PREIMAGE, 0)),
        ({"preimage": "22" * 32}, Pending),  # not the payment's preimage
        ({"preimage": "zz"}, Pending),
        ({}, Pending),
    ],
    ids=["fees", "upper", "negative-fee", "wrong-preimage", "not-hex", "none"],
)
def test_paid_answers(result: dict[str, object], expected: object) -> None:
    outcome = paid_outcome(result, HASH)
    if isinstance(expected, type):
        assert isinstance(outcome, expected), outcome
    else:
        assert outcome == expected


def tx(state: str | None, **fields: object) -> Transaction:
    values: dict[str, object] = {
        "type": "outgoing",
        "payment_hash": HASH,
        "amount_msat": 1_000,
        "created_at": 1,
        "state": state,
    }
    return Transaction(**(values | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("found", "may_still_arrive", "expected"),
    [
        (None, False, Failed(NOT_FOUND)),
        (None, True, Pending),  # our request may still reach the upstream
        (tx("pending", type="incoming"), False, Failed(NOT_FOUND)),  # an invoice, no payment
        (tx("settled", preimage=PREIMAGE, fees_paid_msat=5), False, Succeeded(PREIMAGE, 5)),
        (tx(None, preimage=PREIMAGE, settled_at=9), False, Succeeded(PREIMAGE, 0)),  # no state
        (tx("settled"), False, Pending),  # settled without the preimage proves nothing
        (tx("settled", preimage="22" * 32), False, Pending),
        (tx("failed"), True, Failed),
        (tx("pending"), False, Pending),
        (tx("accepted"), False, Pending),
        (tx("expired"), False, Pending),
        (tx(None), False, Pending),
    ],
)
def test_status_from_lookup(
    found: Transaction | None, may_still_arrive: bool, expected: object
) -> None:
    outcome = status_outcome(found, HASH, may_still_arrive=may_still_arrive)
    if isinstance(expected, type):
        assert isinstance(outcome, expected), outcome
        assert outcome != Failed(NOT_FOUND)
    else:
        assert outcome == expected


@pytest.mark.parametrize(
    ("offered", "served"),
    [
        ({"pay_invoice", "get_balance"}, {"pay_invoice", "multi_pay_invoice", "get_balance"}),
        ({"multi_pay_invoice", "get_info"}, {"get_info"}),  # never the upstream's batches
        (
            {"pay_keysend", "notifications", "get_budget", "pay"},
            {"pay_keysend", "multi_pay_keysend"},
        ),
        (set(), set()),
    ],
)
def test_served_methods(offered: set[str], served: set[str]) -> None:
    assert served_methods(offered) == served


@pytest.mark.parametrize(
    ("kind", "tx_type", "state"),
    [
        ("payment_received", "incoming", "settled"),
        ("hold_invoice_accepted", "incoming", "accepted"),
        ("payment_sent", "outgoing", None),
        ("payment_received", "outgoing", None),
    ],
)
def test_incoming_notifications(kind: str, tx_type: str, state: str | None) -> None:
    note = Notification(kind, tx(None, type=tx_type))
    got = incoming_transaction(note)
    assert (got.state if got else None) == state


def test_the_uri_is_never_shown() -> None:
    uri = ConnectionUri(
        SecretKey.generate().public_key, ("ws://127.0.0.1:1",), SecretKey.generate()
    ).format()
    config = NwcConfig(uri)
    assert uri not in repr(config)
    assert uri not in str(config)
    secret = uri.split("secret=")[1][:64]
    assert secret not in repr(config)
    with pytest.raises(ValueError, match="bad secret") as bad:
        NwcConfig(uri.replace("secret=", "secret=zz"))
    assert "zz" + secret not in str(bad.value)
    with pytest.raises(ValueError, match="payment_timeout"):
        NwcConfig(uri, payment_timeout=0)
