"""Bech32 and bech32m (BIP-173, BIP-350) without the 90-character limit.

Nostr keys (NIP-19) and BOLT-11 invoices both use bech32; invoices are far
longer than the BIP-173 limit, so the limit is a parameter here.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CHARSET", "Bech32Error", "Encoding", "convert_bits", "decode", "encode"]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_REV = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Error(ValueError):
    """The string is not valid bech32/bech32m; the message says why."""


class Encoding(Enum):
    """Checksum constant: bech32 (BIP-173) or bech32m (BIP-350)."""

    BECH32 = 1
    BECH32M = 0x2BC830A3


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GENERATOR[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def decode(text: str, *, max_length: int | None = 90) -> tuple[str, list[int], Encoding]:
    """Split ``text`` into its human-readable part and 5-bit data (checksum removed).

    Raises:
        Bech32Error: mixed case, bad characters, bad length or bad checksum.
    """
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed case")
    if max_length is not None and len(text) > max_length:
        raise Bech32Error(f"longer than {max_length} characters")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise Bech32Error("missing human-readable part or separator")
    if pos + 7 > len(text):
        raise Bech32Error("checksum too short")
    hrp = text[:pos]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise Bech32Error("invalid character in human-readable part")
    try:
        data = [_CHARSET_REV[c] for c in text[pos + 1 :]]
    except KeyError as exc:
        raise Bech32Error(f"invalid data character {exc.args[0]!r}") from None
    const = _polymod(_hrp_expand(hrp) + data)
    if const == Encoding.BECH32.value:
        encoding = Encoding.BECH32
    elif const == Encoding.BECH32M.value:
        encoding = Encoding.BECH32M
    else:
        raise Bech32Error("invalid checksum")
    return hrp, data[:-6], encoding


def encode(hrp: str, data: list[int], encoding: Encoding = Encoding.BECH32) -> str:
    """Encode 5-bit ``data`` under ``hrp`` with a checksum."""
    values = _hrp_expand(hrp) + data
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ encoding.value
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


def convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    """Regroup a sequence of ``from_bits``-bit values into ``to_bits``-bit values.

    Raises:
        Bech32Error: a value is out of range or the padding is not zero.
    """
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        if value < 0 or value >> from_bits:
            raise Bech32Error("value out of range")
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        raise Bech32Error("invalid padding")
    return out
