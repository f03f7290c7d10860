"""BOLT-11 Lightning invoices: a fast, strict decoder and a small encoder.

Every ``pay_invoice`` request carries an invoice, so decoding sits on the hot
path. The ``bolt11`` package builds bit-string objects and takes milliseconds;
this module works on integers instead and is dominated by the libsecp256k1
public-key recovery:

* the data part becomes one big integer through ``int(text, 32)`` (the bech32
  alphabet translated to base-32 digits), and each field is a shift and a mask;
* the bech32 checksum is GF(2)-linear in the input bits and the generator has
  period 1023, so it is 30 parities of (folded input & precomputed mask)
  instead of a Python loop per character. Only failures go through
  :func:`nwcd.bech32.decode`, which names the exact reason.

Reader rules follow BOLT-11: ``p``/``h``/``s``/``n`` fields of the wrong length
and unknown fields are skipped, the first valid field of each kind wins, a
missing ``p`` or ``s`` field or an unknown even feature bit fails, an ``n``
field is verified (low-S only) instead of recovering, recovery accepts high-S.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

import coincurve
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from nwcd import bech32
from nwcd.errors import InvalidInvoice

__all__ = [
    "DEFAULT_CLTV_EXPIRY",
    "DEFAULT_EXPIRY",
    "DEFAULT_FEATURES",
    "FEATURE_BASIC_MPP",
    "FEATURE_PAYMENT_SECRET",
    "FEATURE_VAR_ONION_OPTIN",
    "MAX_INVOICE_LENGTH",
    "Invoice",
    "Network",
    "RouteHop",
    "decode",
    "encode",
]

DEFAULT_EXPIRY: Final = 3600
DEFAULT_CLTV_EXPIRY: Final = 18
# The largest alphanumeric QR code; LND uses the same cap. It bounds the work a peer can cause.
MAX_INVOICE_LENGTH: Final = 7089

FEATURE_VAR_ONION_OPTIN: Final = 8
FEATURE_PAYMENT_SECRET: Final = 14
FEATURE_BASIC_MPP: Final = 16
# Compulsory var_onion_optin and payment_secret, as the BOLT-11 examples and modern nodes set.
DEFAULT_FEATURES: Final = (1 << FEATURE_VAR_ONION_OPTIN) | (1 << FEATURE_PAYMENT_SECRET)

# Even bits of the features BOLT-9 defines; an even bit outside this set fails the invoice.
_KNOWN_EVEN_FEATURES: Final = frozenset(
    (0, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 34, 38, 44, 46, 48, 50)
)
_KNOWN_EVEN_MASK: Final = sum(1 << bit for bit in _KNOWN_EVEN_FEATURES)

_SIG_SYMBOLS: Final = 104  # 520 bits: 64-byte compact signature + recovery id
_TIMESTAMP_SYMBOLS: Final = 7  # 35 bits
_HOP_STRUCT: Final = struct.Struct(">33sQIIH")  # 51 bytes = 408 bits per route hop
_HOP_BITS: Final = _HOP_STRUCT.size * 8

_TAG_P: Final = 1
_TAG_R: Final = 3
_TAG_9: Final = 5
_TAG_X: Final = 6
_TAG_F: Final = 9
_TAG_D: Final = 13
_TAG_S: Final = 16
_TAG_N: Final = 19
_TAG_H: Final = 23
_TAG_C: Final = 24
_TAG_M: Final = 27

_DIGITS: Final = "0123456789abcdefghijklmnopqrstuv"
_TO_BASE32: Final = str.maketrans(bech32.CHARSET, _DIGITS)
_REV: Final = bytes(
    bech32.CHARSET.index(chr(b)) if chr(b) in bech32.CHARSET else 0xFF for b in range(256)
)
_HRP_RE: Final = re.compile(r"ln([a-z]+)(.*)")
_AMOUNT_RE: Final = re.compile(r"([1-9][0-9]*)([munp]?)")
# msat per unit of amount, by multiplier; "p" is a tenth of a msat and handled apart.
_MSAT_PER_UNIT: Final = {"": 100_000_000_000, "m": 100_000_000, "u": 100_000, "n": 100}
_B58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class Network(StrEnum):
    """The BIP-173 currency prefix after ``ln`` in the human-readable part."""

    MAINNET = "bc"
    TESTNET = "tb"
    SIGNET = "tbs"
    REGTEST = "bcrt"
    SIMNET = "sb"


# segwit hrp, P2PKH version byte, P2SH version byte: to render fallback addresses.
_ADDRESS_PARAMS: Final = {
    Network.MAINNET: ("bc", 0x00, 0x05),
    Network.TESTNET: ("tb", 0x6F, 0xC4),
    Network.SIGNET: ("tb", 0x6F, 0xC4),
    Network.REGTEST: ("bcrt", 0x6F, 0xC4),
    Network.SIMNET: ("sb", 0x3F, 0x7B),
}


@dataclass(frozen=True, slots=True)
class RouteHop:
    """One hop of a private route hint (an ``r`` field entry)."""

    pubkey: str
    short_channel_id: str  # "block x tx x output", e.g. "123x4x5"
    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int

    @property
    def short_channel_id_int(self) -> int:
        """The 64-bit integer form of :attr:`short_channel_id`."""
        block, tx, out = (int(part) for part in self.short_channel_id.split("x"))
        return block << 40 | tx << 16 | out


@dataclass(frozen=True, slots=True)
class Invoice:
    """A decoded, signature-checked BOLT-11 invoice."""

    bolt11: str  # the invoice as given, lower-cased
    network: Network
    amount_msat: int | None
    timestamp: int
    payment_hash: str
    payment_secret: str
    description: str | None
    description_hash: str | None
    expiry: int
    min_final_cltv_expiry: int
    payee: str
    features: int
    route_hints: tuple[tuple[RouteHop, ...], ...] = ()
    fallback_address: str | None = None
    payment_metadata: str | None = None

    @property
    def expires_at(self) -> int:
        """Unix time after which the payee will refuse the payment."""
        return self.timestamp + self.expiry

    def is_expired(self, now: int) -> bool:
        """Whether the invoice has expired at unix time ``now``."""
        return now >= self.timestamp + self.expiry

    @property
    def feature_bits(self) -> frozenset[int]:
        """The set bits of :attr:`features`."""
        features = self.features
        return frozenset(bit for bit in range(features.bit_length()) if features >> bit & 1)


# --- the bech32 checksum as linear algebra over GF(2) ---------------------------------------


def _polymod_step(chk: int) -> int:
    top = chk >> 25
    chk = (chk & 0x1FFFFFF) << 5
    for i, gen in enumerate(bech32._GENERATOR):
        if top >> i & 1:
            chk ^= gen
    return chk


_PERIOD_BITS: Final = 5 * 1023  # x^1023 = 1 modulo the bech32 generator


def _checksum_masks() -> tuple[int, ...]:
    """Mask j has bit k set when input bit k (from the end) flips checksum bit j."""
    states = [1 << b for b in range(5)]
    contributions: list[str] = []
    for _ in range(1023):
        contributions.extend(format(state, "030b") for state in states)
        states = [_polymod_step(state) for state in states]
    table = "".join(contributions)
    return tuple(int(table[29 - j :: 30][::-1], 2) for j in range(30))


_MASKS: Final = _checksum_masks()
_PERIOD_MASK: Final = (1 << _PERIOD_BITS) - 1


@lru_cache(maxsize=64)
def _hrp_prefix(hrp: str) -> int:
    """The initial state (a leading 1) and the expanded hrp, as 5-bit symbols of an int."""
    value = 1
    for symbol in bech32._hrp_expand(hrp):
        value = value << 5 | symbol
    return value


def _polymod(value: int) -> int:
    """bech32's polymod of the 5-bit symbols of ``value`` (which must start with a 1 symbol)."""
    folded = 0
    while value:
        folded ^= value & _PERIOD_MASK
        value >>= _PERIOD_BITS
    chk = 0
    for j, mask in enumerate(_MASKS):
        chk |= ((folded & mask).bit_count() & 1) << j
    return chk


def _checksum_ok(hrp: str, symbols: int, count: int) -> bool:
    return _polymod(_hrp_prefix(hrp) << 5 * count | symbols) == bech32.Encoding.BECH32.value


def _bech32_encode(hrp: str, data: list[int], encoding: bech32.Encoding) -> str:
    """Same output as :func:`nwcd.bech32.encode`, with the fast checksum."""
    value = int("".join(_DIGITS[d] for d in data) or "0", 32)
    chk = _polymod((_hrp_prefix(hrp) << 5 * len(data) | value) << 30) ^ encoding.value
    checksum = "".join(bech32.CHARSET[chk >> 5 * (5 - i) & 31] for i in range(6))
    return hrp + "1" + "".join(bech32.CHARSET[d] for d in data) + checksum


def _bech32_failure(text: str) -> InvalidInvoice:
    """Ask the reference bech32 decoder why ``text`` was rejected."""
    try:
        bech32.decode(text, max_length=None)
    except bech32.Bech32Error as exc:
        return InvalidInvoice(f"invalid bech32: {exc}")
    return InvalidInvoice("invalid bech32: bech32m checksum, invoices use bech32")


# --- decoding ----------------------------------------------------------------------------------


def _parse_hrp(hrp: str) -> tuple[Network, int | None]:
    match = _HRP_RE.fullmatch(hrp)
    if match is None:
        raise InvalidInvoice(f"prefix {hrp!r} is not ln + currency + amount")
    currency, amount = match.groups()
    try:
        network = Network(currency)
    except ValueError:
        raise InvalidInvoice(f"unknown currency prefix {currency!r}") from None
    if not amount:
        return network, None
    parsed = _AMOUNT_RE.fullmatch(amount)
    if parsed is None:
        if amount[0] == "0":
            raise InvalidInvoice("amount must be positive, without leading zeros")
        raise InvalidInvoice(f"invalid amount or multiplier {amount!r}")
    digits, multiplier = parsed.groups()
    if multiplier == "p":
        if digits[-1] != "0":
            raise InvalidInvoice("sub-millisatoshi amount (p multiplier not ending in 0)")
        return network, int(digits) // 10
    return network, int(digits) * _MSAT_PER_UNIT[multiplier]


def _to_bytes(value: int, bits: int) -> bytes:
    """The whole bytes of a ``bits``-bit field; the trailing padding bits are dropped."""
    size = bits >> 3
    return (value >> (bits & 7)).to_bytes(size, "big")


def _base58check(version: int, payload: bytes) -> str:
    raw = bytes((version,)) + payload
    raw += hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    number = int.from_bytes(raw, "big")
    out = []
    while number:
        number, digit = divmod(number, 58)
        out.append(_B58[digit])
    pad = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _fallback(network: Network, version: int, program: bytes) -> str | None:
    """The address of an ``f`` field, or None for versions and lengths we must skip."""
    segwit_hrp, p2pkh, p2sh = _ADDRESS_PARAMS[network]
    if version == 17 and len(program) == 20:
        return _base58check(p2pkh, program)
    if version == 18 and len(program) == 20:
        return _base58check(p2sh, program)
    if version > 16 or not 2 <= len(program) <= 40:
        return None
    if version == 0 and len(program) not in (20, 32):
        return None
    encoding = bech32.Encoding.BECH32 if version == 0 else bech32.Encoding.BECH32M
    data = [version, *bech32.convert_bits(program, 8, 5, pad=True)]
    return _bech32_encode(segwit_hrp, data, encoding)


def _route(value: int, bits: int) -> tuple[RouteHop, ...]:
    count = bits // _HOP_BITS
    raw = (value >> (bits - count * _HOP_BITS)).to_bytes(count * _HOP_STRUCT.size, "big")
    return tuple(
        RouteHop(
            pubkey=pubkey.hex(),
            short_channel_id=f"{scid >> 40}x{scid >> 16 & 0xFFFFFF}x{scid & 0xFFFF}",
            fee_base_msat=fee_base,
            fee_proportional_millionths=fee_ppm,
            cltv_expiry_delta=cltv,
        )
        for pubkey, scid, fee_base, fee_ppm, cltv in _HOP_STRUCT.iter_unpack(raw)
    )


def _recover(signature: bytes, digest: bytes) -> bytes:
    recid = signature[64]
    if recid > 3:
        raise InvalidInvoice(f"invalid signature recovery id {recid}")
    ctx = GLOBAL_CONTEXT.ctx
    sig: Any = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, sig, signature, recid):
        raise InvalidInvoice("invalid signature encoding")
    pubkey: Any = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ecdsa_recover(ctx, pubkey, sig, digest):
        raise InvalidInvoice("signature is not recoverable")
    out: Any = ffi.new("unsigned char[33]")
    size: Any = ffi.new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(ctx, out, size, pubkey, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out, 33))


def _verify(payee: bytes, signature: bytes, digest: bytes) -> None:
    ctx = GLOBAL_CONTEXT.ctx
    pubkey: Any = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_parse(ctx, pubkey, payee, 33):
        raise InvalidInvoice("n field is not a valid public key")
    sig: Any = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_signature_parse_compact(ctx, sig, signature[:64]):
        raise InvalidInvoice("invalid signature encoding")
    # libsecp256k1 accepts only low-S here, as BOLT-11 requires when n is given.
    if lib.secp256k1_ecdsa_verify(ctx, sig, digest, pubkey) != 1:
        raise InvalidInvoice("signature does not verify against the n field (or is high-S)")


def decode(invoice: str) -> Invoice:
    """Decode and check a BOLT-11 invoice (its signature included).

    An ``h`` field is returned as is: matching it to a description is the caller's job.

    Raises:
        InvalidInvoice: for any problem, with the reason in the message.
    """
    if not isinstance(invoice, str):
        raise InvalidInvoice("an invoice is a string")
    if len(invoice) > MAX_INVOICE_LENGTH:
        raise InvalidInvoice(f"longer than {MAX_INVOICE_LENGTH} characters")
    text = invoice.lower()
    if text != invoice and invoice.upper() != invoice:
        raise InvalidInvoice("invalid bech32: mixed case")
    pos = text.rfind("1")
    chars = text[pos + 1 :]
    if pos < 1 or len(chars) < 6 or not text.isascii():
        raise _bech32_failure(invoice)
    hrp = text[:pos]
    values = chars.encode("ascii").translate(_REV)
    if 0xFF in values:
        raise _bech32_failure(invoice)
    total = len(chars)
    # Power-of-two bases take CPython's linear path: one C call for the whole data part.
    symbols = int(chars.translate(_TO_BASE32), 32)
    if not _checksum_ok(hrp, symbols, total):
        raise _bech32_failure(invoice)
    network, amount_msat = _parse_hrp(hrp)

    count = total - 6  # data symbols without the checksum
    data = symbols >> 30
    if count < _TIMESTAMP_SYMBOLS + _SIG_SYMBOLS:
        raise InvalidInvoice("too short to hold a timestamp and a signature")
    end = count - _SIG_SYMBOLS
    timestamp = data >> 5 * (count - _TIMESTAMP_SYMBOLS)

    payment_hash: bytes | None = None
    payment_secret: bytes | None = None
    description: str | None = None
    description_hash: bytes | None = None
    payee: bytes | None = None
    expiry: int | None = None
    cltv: int | None = None
    features: int | None = None
    fallback: str | None = None
    metadata: bytes | None = None
    routes: list[tuple[RouteHop, ...]] = []

    i = _TIMESTAMP_SYMBOLS
    while i < end:
        if i + 3 > end:
            raise InvalidInvoice("truncated tagged field")
        tag = values[i]
        length = values[i + 1] << 5 | values[i + 2]
        i += 3 + length
        if i > end:
            raise InvalidInvoice("tagged field runs into the signature")
        bits = 5 * length
        value = data >> 5 * (count - i) & ((1 << bits) - 1)
        if tag == _TAG_P:
            if length == 52 and payment_hash is None:
                payment_hash = _to_bytes(value, bits)
        elif tag == _TAG_S:
            if length == 52 and payment_secret is None:
                payment_secret = _to_bytes(value, bits)
        elif tag == _TAG_D:
            if description is None:
                try:
                    description = _to_bytes(value, bits).decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidInvoice("description is not valid UTF-8") from None
        elif tag == _TAG_H:
            if length == 52 and description_hash is None:
                description_hash = _to_bytes(value, bits)
        elif tag == _TAG_N:
            if length == 53 and payee is None:
                payee = _to_bytes(value, bits)
        elif tag == _TAG_X:
            if expiry is None:
                expiry = value
        elif tag == _TAG_C:
            if cltv is None:
                cltv = value
        elif tag == _TAG_9:
            if features is None:
                features = value
        elif tag == _TAG_R:
            hops = _route(value, bits)
            if hops:
                routes.append(hops)
        elif tag == _TAG_F:
            if fallback is None and length:
                program_bits = bits - 5
                program = _to_bytes(value & ((1 << program_bits) - 1), program_bits)
                fallback = _fallback(network, value >> program_bits, program)
        elif tag == _TAG_M and metadata is None:
            metadata = _to_bytes(value, bits)

    if payment_hash is None:
        raise InvalidInvoice("missing payment hash (p field)")
    if payment_secret is None:
        raise InvalidInvoice("missing payment secret (s field)")
    features = features or 0
    unknown = features & ~_KNOWN_EVEN_MASK
    if unknown:
        width = unknown.bit_length() + 1
        unknown &= ((1 << width + (width & 1)) - 1) // 3  # keep the even bits
    if unknown:
        bits_set = [bit for bit in range(unknown.bit_length()) if unknown >> bit & 1]
        raise InvalidInvoice(f"unknown required feature bits {bits_set}")

    signature = (data & ((1 << 520) - 1)).to_bytes(65, "big")
    signed_bits = 5 * end
    signed = data >> 520 << (-signed_bits & 7)
    digest = hashlib.sha256(
        hrp.encode("ascii") + signed.to_bytes((signed_bits + 7) >> 3, "big")
    ).digest()
    if payee is not None:
        _verify(payee, signature, digest)
    else:
        payee = _recover(signature, digest)

    return Invoice(
        bolt11=text,
        network=network,
        amount_msat=amount_msat,
        timestamp=timestamp,
        payment_hash=payment_hash.hex(),
        payment_secret=payment_secret.hex(),
        description=description,
        description_hash=None if description_hash is None else description_hash.hex(),
        expiry=DEFAULT_EXPIRY if expiry is None else expiry,
        min_final_cltv_expiry=DEFAULT_CLTV_EXPIRY if cltv is None else cltv,
        payee=payee.hex(),
        features=features,
        route_hints=tuple(routes),
        fallback_address=fallback,
        payment_metadata=None if metadata is None else metadata.hex(),
    )


# --- encoding ----------------------------------------------------------------------------------


def _amount_hrp(amount_msat: int) -> str:
    for multiplier, unit in _MSAT_PER_UNIT.items():
        if amount_msat % unit == 0:
            return f"{amount_msat // unit}{multiplier}"
    return f"{amount_msat * 10}p"


def _int_symbols(value: int) -> list[int]:
    """Big-endian 5-bit symbols of ``value``, at least one."""
    count = max(1, (value.bit_length() + 4) // 5)
    return [value >> 5 * (count - 1 - k) & 31 for k in range(count)]


def _bytes_symbols(raw: bytes) -> list[int]:
    return bech32.convert_bits(raw, 8, 5, pad=True)


def _field(tag: int, symbols: list[int]) -> list[int]:
    if len(symbols) > 1023:
        raise ValueError("a tagged field holds at most 1023 symbols (639 bytes)")
    return [tag, len(symbols) >> 5, len(symbols) & 31, *symbols]


def _raw32(value: str | bytes, what: str) -> bytes:
    raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return raw


def encode(
    *,
    secret: bytes,
    payment_hash: str | bytes,
    payment_secret: str | bytes,
    timestamp: int,
    network: Network = Network.MAINNET,
    amount_msat: int | None = None,
    description: str | None = None,
    description_hash: str | bytes | None = None,
    expiry: int = DEFAULT_EXPIRY,
    min_final_cltv_expiry: int = DEFAULT_CLTV_EXPIRY,
    features: int = DEFAULT_FEATURES,
    route_hints: Sequence[Sequence[RouteHop]] = (),
    payment_metadata: bytes | None = None,
    include_payee: bool = False,
) -> str:
    """Build and sign an invoice with the 32-byte node key ``secret``.

    Exactly one of ``description`` and ``description_hash`` is required (BOLT-11
    writer rule). The amount uses the shortest exact multiplier; ``x`` is written
    only when ``expiry`` is not the default.

    Raises:
        ValueError: a field is out of range.
    """
    if len(secret) != 32:
        raise ValueError("the node key is 32 bytes")
    if (description is None) == (description_hash is None):
        raise ValueError("give exactly one of description and description_hash")
    if not 0 <= timestamp < 1 << 35:
        raise ValueError("timestamp must fit in 35 bits")
    if amount_msat is not None and amount_msat <= 0:
        raise ValueError("amount_msat must be positive")
    if expiry < 0 or min_final_cltv_expiry < 0 or features < 0:
        raise ValueError("expiry, min_final_cltv_expiry and features must not be negative")
    hrp = "ln" + Network(network).value + ("" if amount_msat is None else _amount_hrp(amount_msat))
    data = _int_symbols(timestamp)
    data = [0] * (_TIMESTAMP_SYMBOLS - len(data)) + data
    data += _field(_TAG_P, _bytes_symbols(_raw32(payment_hash, "payment_hash")))
    data += _field(_TAG_S, _bytes_symbols(_raw32(payment_secret, "payment_secret")))
    if description is not None:
        data += _field(_TAG_D, _bytes_symbols(description.encode("utf-8")))
    else:
        assert description_hash is not None
        data += _field(_TAG_H, _bytes_symbols(_raw32(description_hash, "description_hash")))
    if expiry != DEFAULT_EXPIRY:
        data += _field(_TAG_X, _int_symbols(expiry))
    data += _field(_TAG_C, _int_symbols(min_final_cltv_expiry))
    for route in route_hints:
        raw = b"".join(
            _HOP_STRUCT.pack(
                bytes.fromhex(hop.pubkey),
                hop.short_channel_id_int,
                hop.fee_base_msat,
                hop.fee_proportional_millionths,
                hop.cltv_expiry_delta,
            )
            for hop in route
        )
        if raw:
            data += _field(_TAG_R, _bytes_symbols(raw))
    if features:
        data += _field(_TAG_9, _int_symbols(features))
    if payment_metadata is not None:
        data += _field(_TAG_M, _bytes_symbols(payment_metadata))
    key = coincurve.PrivateKey(secret)
    if include_payee:
        data += _field(_TAG_N, _bytes_symbols(key.public_key.format(compressed=True)))
    signed = bytes(bech32.convert_bits(data, 5, 8, pad=True))
    digest = hashlib.sha256(hrp.encode("ascii") + signed).digest()
    signature = key.sign_recoverable(digest, hasher=None)
    data += _bytes_symbols(signature)
    return _bech32_encode(hrp, data, bech32.Encoding.BECH32)
