"""BOLT-11 decoding against the spec's examples, round trips, fuzzing and the bolt11 package."""

from __future__ import annotations

import hashlib
from typing import Any

import bolt11 as reference
import coincurve
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nwcd import bech32
from nwcd.bolt11 import (
    DEFAULT_FEATURES,
    MAX_INVOICE_LENGTH,
    Invoice,
    Network,
    RouteHop,
    decode,
    encode,
)
from nwcd.errors import InvalidInvoice
from tests.conftest import load_vectors

VECTORS = load_vectors("bolt11.examples.json")
VALID = VECTORS["valid"]
INVALID = VECTORS["invalid"]
SPEC_KEY = bytes.fromhex(VECTORS["signing_key"]["priv_key"])
SPEC_NODE = VECTORS["signing_key"]["node_id"]
KEY = hashlib.sha256(b"nwcd bolt11 test node").digest()
NODE = coincurve.PrivateKey(KEY).public_key.format().hex()
HASH = "00" * 31 + "01"
SECRET = "11" * 32

# The reason each invalid example must name (matched against the lower-cased message).
REASONS = {
    "Same, but adding invalid unknown feature 100": "feature bits [100]",
    "Bech32 checksum is invalid.": "checksum",
    "Malformed bech32 string (no 1)": "separator",
    "Malformed bech32 string (mixed case)": "mixed case",
    "Signature is not recoverable.": "not recoverable",
    "String is too short.": "too short",
    "Invalid multiplier": "multiplier",
    "Invalid sub-millisatoshi precision.": "sub-millisatoshi",
    "Missing required `s` field.": "missing payment secret",
    "Non canonical signature (high-S) with 'n' field defined": "high-s",
}


def _title(case: dict[str, Any]) -> str:
    return str(case["title"])[:60]


@pytest.mark.parametrize("case", VALID, ids=_title)
def test_valid_example(case: dict[str, Any]) -> None:
    invoice = decode(case["invoice"])
    assert invoice.network.value == case["currency_prefix"][2:]
    assert invoice.amount_msat == case["amount_msat"]
    assert invoice.timestamp == case["timestamp"]
    assert invoice.payment_hash == case["payment_hash"]
    assert invoice.payment_secret == case["payment_secret"]
    assert invoice.description == case["description"]
    assert invoice.description_hash == case["description_hash"]
    assert invoice.expiry == case["expiry_seconds"]
    assert invoice.expires_at == case["expires_at"]
    assert invoice.min_final_cltv_expiry == case["min_final_cltv_expiry_delta"]
    assert invoice.payee == case["payee"]
    assert invoice.fallback_address == case["fallback_address"]
    assert sorted(invoice.feature_bits) == case["feature_bits_set"]
    assert bool(invoice.route_hints) == case["has_route_hints"]
    assert invoice.payment_metadata == case.get("payment_metadata")
    assert invoice.bolt11 == case["invoice"].lower()


@pytest.mark.parametrize("case", INVALID, ids=_title)
def test_invalid_example(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        decode(case["invoice"])
    assert REASONS[case["title"]] in str(caught.value).lower()


def test_every_invalid_example_has_a_reason() -> None:
    assert {case["title"] for case in INVALID} == set(REASONS)


def test_route_hints_of_the_spec_example() -> None:
    case = next(case for case in VALID if "extra routing info" in case["title"])
    (route,) = decode(case["invoice"]).route_hints
    assert route == (
        RouteHop(
            "029e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255",
            "66051x263430x1800",
            1,
            20,
            3,
        ),
        RouteHop(
            "039e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255",
            "197637x395016x2314",
            2,
            30,
            4,
        ),
    )
    assert route[0].short_channel_id_int == 0x0102030405060708


def test_spec_examples_agree_with_the_bolt11_package() -> None:
    for case in VALID:
        if "P2TR" in case["title"]:
            continue  # bolt11 2.2.0 writes taproot fallbacks with bech32 instead of bech32m
        _assert_same_as_reference(decode(case["invoice"]), case["invoice"])


def test_expiry() -> None:
    invoice = decode(_invoice(expiry=60, timestamp=1000))
    assert invoice.expires_at == 1060
    assert not invoice.is_expired(1059)
    assert invoice.is_expired(1060)


# --- hand-built invoices: signed bech32 over raw 5-bit fields -----------------------------------


def _field(tag: str, symbols: list[int]) -> list[int]:
    return [bech32.CHARSET.index(tag), len(symbols) >> 5, len(symbols) & 31, *symbols]


def _bytes(raw: bytes) -> list[int]:
    return bech32.convert_bits(raw, 8, 5, pad=True)


def _sign(hrp: str, fields: list[int], key: bytes = KEY, recid: int | None = None) -> str:
    data = [0] * 6 + [1, *fields]  # timestamp 1
    signed = bytes(bech32.convert_bits(data, 5, 8, pad=True))
    digest = hashlib.sha256(hrp.encode() + signed).digest()
    signature = coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)
    if recid is not None:
        signature = signature[:64] + bytes([recid])
    return bech32.encode(hrp, data + _bytes(signature))


PS = _field("p", _bytes(bytes(32))) + _field("s", _bytes(bytes.fromhex(SECRET)))


def _invoice(**fields: Any) -> str:
    args: dict[str, Any] = {
        "secret": KEY,
        "payment_hash": HASH,
        "payment_secret": SECRET,
        "timestamp": 1_700_000_000,
        "description": "test",
    }
    args.update(fields)
    return encode(**args)


def test_hand_built_minimal_invoice() -> None:
    invoice = decode(_sign("lnbcrt", PS))
    assert invoice.network is Network.REGTEST
    assert invoice.amount_msat is None
    assert invoice.timestamp == 1
    assert invoice.payee == NODE
    assert invoice.features == 0
    assert invoice.description is None
    assert invoice.expiry == 3600
    assert invoice.min_final_cltv_expiry == 18


@pytest.mark.parametrize(
    ("hrp", "fields", "reason"),
    [
        ("lnbc", _field("s", _bytes(bytes(32))), "missing payment hash"),
        ("lnbc", _field("p", _bytes(bytes(31))) + PS[55:], "missing payment hash"),
        ("lnbc", PS + _field("d", _bytes(b"\xff\xfe")), "utf-8"),
        ("lnbc", PS + _field("9", [4]), "feature bits [2]"),
        ("lnbc", PS + _field("9", [4, *[0] * 10]), "feature bits [52]"),
        ("lnbc", [*PS, 5, 0], "truncated"),
        ("lnbc", [*PS, 5, 31, 31], "runs into the signature"),
        ("lnxy", PS, "unknown currency"),
        ("lnbc0", PS, "leading zeros"),
        ("lnbc01m", PS, "leading zeros"),
        ("lnbc1.5m", PS, "multiplier"),
        ("lnbcm", PS, "unknown currency"),
        ("bc", PS, "not ln"),
        ("lnbc10mm", PS, "multiplier"),
    ],
)
def test_hand_built_invalid(hrp: str, fields: list[int], reason: str) -> None:
    with pytest.raises(InvalidInvoice) as caught:
        decode(_sign(hrp, fields))
    assert reason in str(caught.value).lower()


def test_unknown_odd_feature_is_ignored_and_kept() -> None:
    invoice = decode(_sign("lnbc", [*PS, *_field("9", [1, 0, 0, 0])]))  # bit 15
    assert invoice.feature_bits == frozenset({15})
    invoice = decode(_sign("lnbc", [*PS, *_field("9", [2, *[0] * 20])]))
    assert invoice.feature_bits == frozenset({101})


def test_known_even_features_are_understood() -> None:
    features = (1 << 8) | (1 << 14) | (1 << 16) | (1 << 48)
    assert decode(_invoice(features=features)).features == features


def test_first_valid_field_wins_and_wrong_lengths_are_skipped() -> None:
    other = bytes(range(32))
    fields = [
        *_field("p", _bytes(bytes(33))),
        *_field("p", _bytes(other)),
        *_field("p", _bytes(bytes(32))),
        *_field("s", _bytes(bytes(31))),
        *_field("s", _bytes(other)),
        *_field("s", _bytes(bytes(32))),
        *_field("h", _bytes(other)),
        *_field("h", _bytes(bytes(32))),
        *_field("x", [1]),
        *_field("x", [2]),
        *_field("c", [3]),
        *_field("c", [4]),
        *_field("z", [1, 2, 3]),  # unknown field
        *_field("n", _bytes(bytes(32))),  # wrong length: recover instead
    ]
    invoice = decode(_sign("lntbs", fields))
    assert invoice.network is Network.SIGNET
    assert invoice.payment_hash == other.hex()
    assert invoice.payment_secret == other.hex()
    assert invoice.description_hash == other.hex()
    assert (invoice.expiry, invoice.min_final_cltv_expiry) == (1, 3)
    assert invoice.payee == NODE


def test_n_field_is_used_to_verify() -> None:
    invoice = decode(_invoice(include_payee=True))
    assert invoice.payee == NODE
    wrong = coincurve.PrivateKey(SPEC_KEY).public_key.format()
    with pytest.raises(InvalidInvoice, match="n field"):
        decode(_sign("lnbc", [*PS, *_field("n", _bytes(wrong))]))
    with pytest.raises(InvalidInvoice, match="not a valid public key"):
        decode(_sign("lnbc", [*PS, *_field("n", _bytes(b"\x05" + bytes(32)))]))


def test_bad_recovery_id() -> None:
    with pytest.raises(InvalidInvoice, match="recovery id"):
        decode(_sign("lnbc", PS, recid=4))


def test_fallback_versions() -> None:
    program = bytes(range(20))
    fallbacks = [
        (_field("f", [19, *_bytes(program)]), None),  # unknown version: skipped
        (_field("f", [0, *_bytes(bytes(25))]), None),  # v0 of a bad length: skipped
        (_field("f", [1, *_bytes(bytes(32))]), "bcrt1p"),
        (_field("f", [17, *_bytes(program)]), "m"),
        (_field("f", [18, *_bytes(program)]), "2"),
        (_field("f", []), None),
    ]
    for field, prefix in fallbacks:
        address = decode(_sign("lnbcrt", PS + field)).fallback_address
        if prefix is None:
            assert address is None
        else:
            assert address is not None
            assert address.startswith(prefix)
    both = _field("f", [19, *_bytes(program)]) + _field("f", [17, *_bytes(program)])
    assert decode(_sign("lnsb", PS + both)).fallback_address is not None


def test_bech32m_checksum_is_refused() -> None:
    text = _sign("lnbc", PS)
    hrp, data, _ = bech32.decode(text, max_length=None)
    with pytest.raises(InvalidInvoice, match="bech32m"):
        decode(bech32.encode(hrp, data, bech32.Encoding.BECH32M))


@pytest.mark.parametrize(
    "text",
    ["", "1", "lnbc1", "lnbc1qqqqqq", "ln\u00e9bc1" + "q" * 200, "x" * (MAX_INVOICE_LENGTH + 1)],
)
def test_garbage(text: str) -> None:
    with pytest.raises(InvalidInvoice):
        decode(text)


def test_not_a_string() -> None:
    with pytest.raises(InvalidInvoice):
        decode(b"lnbc1")  # type: ignore[arg-type]


# --- encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_msat", "hrp"),
    [
        (100_000_000_000, "lnbc1"),
        (2_000_000_000, "lnbc20m"),
        (250_000_000, "lnbc2500u"),
        (1_000, "lnbc10n"),
        (100, "lnbc1n"),
        (1, "lnbc10p"),
        (967_878_534, "lnbc9678785340p"),
        (None, "lnbc"),
    ],
)
def test_shortest_multiplier(amount_msat: int | None, hrp: str) -> None:
    text = _invoice(amount_msat=amount_msat)
    assert text.rsplit("1", 1)[0] == hrp
    assert decode(text).amount_msat == amount_msat


def test_encode_reproduces_a_spec_example() -> None:
    case = next(case for case in VALID if case["title"].startswith("Please send $3"))
    text = encode(
        secret=SPEC_KEY,
        payment_hash=case["payment_hash"],
        payment_secret=case["payment_secret"],
        timestamp=case["timestamp"],
        amount_msat=case["amount_msat"],
        description=case["description"],
        expiry=60,
    )
    invoice = decode(text)
    assert invoice.payee == SPEC_NODE
    assert invoice.features == DEFAULT_FEATURES
    assert (invoice.amount_msat, invoice.description) == (case["amount_msat"], "1 cup coffee")


@pytest.mark.parametrize(
    "fields",
    [
        {"description": None},
        {"description_hash": HASH},
        {"secret": b"short"},
        {"timestamp": -1},
        {"amount_msat": 0},
        {"expiry": -1},
        {"payment_hash": "00"},
        {"description": "x" * 640},
    ],
)
def test_encode_rejects(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        _invoice(**fields)


# --- properties ------------------------------------------------------------------------------

hex32 = st.binary(min_size=32, max_size=32).map(bytes.hex)


def hops(fee_bits: int = 32, cltv_bits: int = 16) -> st.SearchStrategy[RouteHop]:
    return st.builds(
        RouteHop,
        pubkey=st.sampled_from([NODE, SPEC_NODE]),
        short_channel_id=st.tuples(
            st.integers(0, 2**24 - 1), st.integers(0, 2**24 - 1), st.integers(0, 2**16 - 1)
        ).map(lambda t: f"{t[0]}x{t[1]}x{t[2]}"),
        fee_base_msat=st.integers(0, 2**fee_bits - 1),
        fee_proportional_millionths=st.integers(0, 2**fee_bits - 1),
        cltv_expiry_delta=st.integers(0, 2**cltv_bits - 1),
    )


known = st.sets(st.sampled_from([8, 9, 14, 15, 16, 17, 24, 25, 48, 49]))
odd = st.sets(st.integers(0, 300).map(lambda b: b | 1), max_size=4)


@st.composite
def invoice_args(
    draw: st.DrawFn,
    hop: st.SearchStrategy[RouteHop] | None = None,
    networks: tuple[Network, ...] = tuple(Network),
) -> dict[str, Any]:
    hop = hops() if hop is None else hop
    described = draw(st.booleans())
    return {
        "secret": draw(st.sampled_from([KEY, SPEC_KEY])),
        "network": draw(st.sampled_from(networks)),
        "amount_msat": draw(st.none() | st.integers(1, 21_000_000 * 10**11)),
        "timestamp": draw(st.integers(0, 2**35 - 1)),
        "payment_hash": draw(hex32),
        "payment_secret": draw(hex32),
        "description": draw(st.text(max_size=100)) if described else None,
        "description_hash": None if described else draw(hex32),
        "expiry": draw(st.integers(0, 2**40)),
        "min_final_cltv_expiry": draw(st.integers(0, 2**32)),
        "features": sum(1 << bit for bit in draw(known) | draw(odd)),
        "route_hints": draw(st.lists(st.lists(hop, min_size=1, max_size=3), max_size=2)),
        "payment_metadata": draw(st.none() | st.binary(max_size=40)),
        "include_payee": draw(st.booleans()),
    }


def _check_round_trip(args: dict[str, Any], invoice: Invoice) -> None:
    node = NODE if args["secret"] == KEY else SPEC_NODE
    assert invoice.network == args["network"]
    assert invoice.amount_msat == args["amount_msat"]
    assert invoice.timestamp == args["timestamp"]
    assert invoice.payment_hash == args["payment_hash"]
    assert invoice.payment_secret == args["payment_secret"]
    assert invoice.description == args["description"]
    assert invoice.description_hash == args["description_hash"]
    assert invoice.expiry == args["expiry"]
    assert invoice.min_final_cltv_expiry == args["min_final_cltv_expiry"]
    assert invoice.features == args["features"]
    assert invoice.route_hints == tuple(tuple(route) for route in args["route_hints"])
    metadata = args["payment_metadata"]
    assert invoice.payment_metadata == (None if metadata is None else metadata.hex())
    assert invoice.payee == node


@given(invoice_args())
def test_round_trip(args: dict[str, Any]) -> None:
    text = encode(**args)
    bech32.decode(text, max_length=None)  # a plain bech32 string
    _check_round_trip(args, decode(text))
    _check_round_trip(args, decode(text.upper()))


def _assert_same_as_reference(ours: Invoice, text: str) -> None:
    theirs = reference.decode(text)
    assert theirs.currency == ours.network.value
    assert theirs.amount_msat == ours.amount_msat
    assert theirs.date == ours.timestamp
    assert theirs.payment_hash == ours.payment_hash
    assert theirs.payment_secret == ours.payment_secret
    assert theirs.description == ours.description
    assert theirs.description_hash == ours.description_hash
    assert theirs.expiry == ours.expiry
    assert theirs.min_final_cltv_expiry == ours.min_final_cltv_expiry
    assert theirs.payee == ours.payee
    assert (theirs.features.data.uint if theirs.features else 0) == ours.features
    assert theirs.metadata == ours.payment_metadata
    routes = tuple(
        tuple(
            RouteHop(
                hop.public_key,
                hop.short_channel_id,
                hop.base_fee,
                hop.ppm_fee,
                hop.cltv_expiry_delta,
            )
            for hop in hint.routes
        )
        for hint in theirs.route_hints or []
    )
    assert routes == ours.route_hints
    if ours.fallback_address is not None:
        assert theirs.fallback is not None
        assert theirs.fallback.address == ours.fallback_address


# bolt11 2.2.0 reads route-hint fees and CLTV deltas as signed integers (stay below the sign
# bit) and does not know simnet.
INTEROP_NETWORKS = (Network.MAINNET, Network.TESTNET, Network.SIGNET, Network.REGTEST)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invoice_args(hops(fee_bits=31, cltv_bits=15), INTEROP_NETWORKS))
def test_interop_with_the_bolt11_package(args: dict[str, Any]) -> None:
    text = encode(**args)
    _assert_same_as_reference(decode(text), text)


def _decode_or_invalid(text: str) -> str | None:
    """Decode ``text``: any exception but InvalidInvoice fails the test; return its message."""
    try:
        decode(text)
    except InvalidInvoice as exc:
        reason = str(exc)
        assert reason
        return reason
    return None


@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _decode_or_invalid(text)


@given(st.text(alphabet="ln1" + bech32.CHARSET + bech32.CHARSET.upper(), max_size=400))
def test_random_bech32_text(text: str) -> None:
    reason = _decode_or_invalid(text)
    try:
        _, _, encoding = bech32.decode(text, max_length=None)
    except bech32.Bech32Error:
        return
    # Whenever the reference accepts the checksum, the fast checksum must accept it too.
    if encoding is bech32.Encoding.BECH32:
        assert "invalid bech32" not in (reason or "")


BASE = _invoice(amount_msat=1234, route_hints=[[RouteHop(NODE, "1x2x3", 4, 5, 6)]])


@given(
    st.lists(
        st.tuples(
            st.integers(0, len(BASE) - 1), st.sampled_from(["del", "set", "ins", "case"]), st.text()
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_text(edits: list[tuple[int, str, str]]) -> None:
    text = BASE
    for index, kind, value in edits:
        index %= max(len(text), 1)
        if kind == "del":
            text = text[:index] + text[index + 1 :]
        elif kind == "set":
            text = text[:index] + value[:1] + text[index + 1 :]
        elif kind == "ins":
            text = text[:index] + value + text[index:]
        else:
            text = text[:index] + text[index:].upper()
    _decode_or_invalid(text)


@given(st.data())
def test_mutated_symbols_with_a_fresh_checksum(data: st.DataObject) -> None:
    """Garbage behind a valid checksum exercises the field parser and the signature checks."""
    hrp, symbols, _ = bech32.decode(BASE, max_length=None)
    for _ in range(data.draw(st.integers(1, 6))):
        index = data.draw(st.integers(0, len(symbols) - 1))
        kind = data.draw(st.sampled_from(["set", "del", "ins"]))
        value = data.draw(st.integers(0, 31))
        if kind == "set":
            symbols[index] = value
        elif kind == "del":
            del symbols[index]
        else:
            symbols.insert(index, value)
    assert "bech32" not in (_decode_or_invalid(bech32.encode(hrp, symbols)) or "")
    prefix = data.draw(st.sampled_from(["lnbc", "lntb10u", "lnbc1p", "lnbc0", "lnbcrt5"]))
    _decode_or_invalid(bech32.encode(prefix, symbols))
