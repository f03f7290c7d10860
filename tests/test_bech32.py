"""Bech32 / bech32m against the BIP-173 and BIP-350 test vectors, and convert_bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.bech32 import CHARSET, Bech32Error, Encoding, convert_bits, decode, encode

# BIP-173 "Test vectors": valid bech32 strings.
VALID_BECH32 = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

# BIP-350 "Test vectors for Bech32m": valid bech32m strings.
VALID_BECH32M = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]

# BIP-173 invalid bech32 strings, with the reason the BIP gives.
INVALID_BECH32 = {
    "\x201nwldj5": "HRP character out of range",
    "\x7f1axkwrx": "HRP character out of range",
    "\x801eym55h": "HRP character out of range",
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx": (
        "overall max length exceeded"
    ),
    "pzry9x0s0muk": "no separator character",
    "1pzry9x0s0muk": "empty HRP",
    "x1b4n0q5v": "invalid data character",
    "li1dgmt3": "too short checksum",
    "de1lg7wt\xff": "invalid character in checksum",
    "A1G7SGD8": "checksum calculated with uppercase form of HRP",
    "10a06t8": "empty HRP",
    "1qzzfhee": "empty HRP",
}

# BIP-350 invalid bech32m strings.
INVALID_BECH32M = {
    "\x201xj0phk": "HRP character out of range",
    "\x7f1g6xzxy": "HRP character out of range",
    "\x801vctc34": "HRP character out of range",
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4": (
        "overall max length exceeded"
    ),
    "qyrz8wqd2c9m": "no separator character",
    "1qyrz8wqd2c9m": "empty HRP",
    "y1b0jsk6g": "invalid data character",
    "lt1igcx5c0": "invalid data character",
    "in1muywd": "too short checksum",
    "mm1crxm3i": "invalid character in checksum",
    "au1s5cgom": "invalid character in checksum",
    "M1VUXWEZ": "checksum calculated with uppercase form of HRP",
    "16plkw9": "empty HRP",
    "1p2gdwpf": "empty HRP",
}

# BIP-173 / BIP-350 segwit addresses: (address, witness version, witness program).
SEGWIT = [
    (
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
        0,
        "751e76e8199196d454941c45d1b3a323f1433bd6",
        Encoding.BECH32,
    ),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        0,
        "1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
        Encoding.BECH32,
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        1,
        "751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
        Encoding.BECH32M,
    ),
    ("BC1SW50QGDZ25J", 16, "751e", Encoding.BECH32M),
]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [(t, Encoding.BECH32) for t in VALID_BECH32] + [(t, Encoding.BECH32M) for t in VALID_BECH32M],
)
def test_valid(text: str, encoding: Encoding) -> None:
    hrp, data, got = decode(text)
    assert got is encoding
    assert encode(hrp, data, encoding) == text.lower()
    # Flipping one data character breaks the checksum.
    pos = text.rfind("1") + 1
    flipped = CHARSET[(CHARSET.index(text[pos].lower()) + 1) % 32]
    if text.isupper():
        flipped = flipped.upper()
    with pytest.raises(Bech32Error):
        decode(text[:pos] + flipped + text[pos + 1 :])


@pytest.mark.parametrize(
    "text", [*INVALID_BECH32, *INVALID_BECH32M], ids=lambda t: t.encode("unicode_escape").decode()
)
def test_invalid(text: str) -> None:
    with pytest.raises(Bech32Error):
        decode(text)


def test_mixed_case_is_rejected() -> None:
    with pytest.raises(Bech32Error, match="mixed case"):
        decode("a12UEL5L")
    with pytest.raises(Bech32Error, match="mixed case"):
        decode("A12uEL5L")


def test_length_limit_is_a_parameter() -> None:
    long_hrp = "a" * 100
    text = encode(long_hrp, [0, 1, 2])
    with pytest.raises(Bech32Error, match="longer than 90"):
        decode(text)
    assert decode(text, max_length=None) == (long_hrp, [0, 1, 2], Encoding.BECH32)
    assert decode(text, max_length=len(text))[0] == long_hrp
    with pytest.raises(Bech32Error, match="longer than"):
        decode(text, max_length=len(text) - 1)


@pytest.mark.parametrize(("address", "version", "program", "encoding"), SEGWIT)
def test_segwit_addresses(address: str, version: int, program: str, encoding: Encoding) -> None:
    hrp, data, got = decode(address)
    assert got is encoding
    assert hrp == address[:2].lower()
    assert data[0] == version
    assert bytes(convert_bits(data[1:], 5, 8, pad=False)).hex() == program
    rebuilt = [version, *convert_bits(bytes.fromhex(program), 8, 5, pad=True)]
    assert encode(hrp, rebuilt, encoding) == address.lower()


# --- convert_bits -----------------------------------------------------------


def test_convert_bits_known_values() -> None:
    assert convert_bits(b"\xff", 8, 5, pad=True) == [31, 28]
    assert convert_bits([31, 28], 5, 8, pad=False) == [255]
    assert convert_bits(b"\x00\x01", 8, 5, pad=True) == [0, 0, 0, 16]
    assert convert_bits(b"", 8, 5, pad=True) == []
    assert convert_bits([], 5, 8, pad=False) == []
    assert convert_bits([1, 0, 1, 1], 1, 4, pad=False) == [0b1011]


def test_convert_bits_without_padding_rejects_leftover_bits() -> None:
    # 8 bits into 5-bit groups leaves 3 bits that only padding could hold.
    with pytest.raises(Bech32Error, match="padding"):
        convert_bits(b"\xff", 8, 5, pad=False)
    # Non-zero padding bits when going back to 8 bits.
    with pytest.raises(Bech32Error, match="padding"):
        convert_bits([31, 29], 5, 8, pad=False)
    # A whole extra group of padding (>= from_bits leftover bits).
    with pytest.raises(Bech32Error, match="padding"):
        convert_bits([31, 28, 0], 5, 8, pad=False)


@pytest.mark.parametrize(("values", "from_bits"), [([32], 5), ([-1], 5), ([256], 8), ([2], 1)])
def test_convert_bits_rejects_out_of_range(values: list[int], from_bits: int) -> None:
    with pytest.raises(Bech32Error, match="range"):
        convert_bits(values, from_bits, 8, pad=True)


@given(st.binary(max_size=100))
def test_convert_bits_round_trip(data: bytes) -> None:
    five = convert_bits(data, 8, 5, pad=True)
    assert all(0 <= v < 32 for v in five)
    assert len(five) == (len(data) * 8 + 4) // 5
    assert bytes(convert_bits(five, 5, 8, pad=False)) == data


@given(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20).map(
        str.lower
    ),
    st.lists(st.integers(0, 31), max_size=60),
    st.sampled_from(Encoding),
)
def test_encode_decode_round_trip(hrp: str, data: list[int], encoding: Encoding) -> None:
    text = encode(hrp, data, encoding)
    assert decode(text, max_length=None) == (hrp, data, encoding)
    assert decode(text.upper(), max_length=None) == (hrp, data, encoding)


@given(st.text(max_size=120))
def test_random_text_decodes_or_raises_bech32_error(text: str) -> None:
    try:
        hrp, data, encoding = decode(text, max_length=None)
    except Bech32Error:
        return
    assert encode(hrp, data, encoding) == text.lower()
