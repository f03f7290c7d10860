"""secp256k1 keys as Nostr uses them: x-only public keys, BIP-340 signatures.

Backed by libsecp256k1 through ``coincurve``. ``bench/crypto.py`` measured
``coincurve`` against the ``secp256k1`` package: verify and ECDH cost the same,
but ``coincurve.PrivateKey.sign_schnorr`` rebuilds the key pair and verifies its
own signature on every call (~80 us against ~20 us). So a :class:`SecretKey`
builds its libsecp256k1 key pair once and signs through coincurve's own
bindings, which brings signing to the speed of the ``secp256k1`` package while
keeping one well-kept dependency.

A :class:`SecretKey` also caches the ECDH shared secret per peer, so a request
and its response never pay for ECDH twice.

Key pairs and public keys are derived on first use, not when a key is parsed: a
service loading 100,000 wallet connections would otherwise spend ~10 s on
elliptic-curve work for keys most of which never sign anything in a session.
A key read back from a store with the public key stored beside it
(:meth:`SecretKey.stored`) derives nothing until it signs or decrypts; then the
stored public key is checked against the secret once.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from typing import Any, Final

import coincurve
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from nwcd import bech32
from nwcd.errors import InvalidKey

__all__ = ["PublicKey", "SecretKey", "verify_signature"]

_CURVE_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX_DIGITS: Final = frozenset("0123456789abcdef")
_SHARED_CACHE_SIZE: Final = 4096
_PARSED_CACHE_SIZE: Final = 4096


def _hex32(text: str, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != 64 or not _HEX_DIGITS.issuperset(text):
        raise InvalidKey(f"{what} must be 64 lowercase hex characters")
    return bytes.fromhex(text)


def _from_bech32(text: str, hrp: str) -> bytes:
    try:
        got_hrp, data, _ = bech32.decode(text)
        raw = bytes(bech32.convert_bits(data, 5, 8, pad=False))
    except bech32.Bech32Error as exc:
        raise InvalidKey(f"invalid {hrp}: {exc}") from None
    if got_hrp != hrp:
        raise InvalidKey(f"expected an {hrp}, got the prefix {got_hrp!r}")
    if len(raw) != 32:
        raise InvalidKey(f"an {hrp} holds 32 bytes, this one {len(raw)}")
    return raw


def _to_bech32(hrp: str, raw: bytes) -> str:
    return bech32.encode(hrp, bech32.convert_bits(raw, 8, 5, pad=True))


class PublicKey:
    """A 32-byte x-only public key (BIP-340), shown as lowercase hex."""

    __slots__ = ("_point", "hex", "raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise InvalidKey("a public key is 32 bytes")
        try:
            point = coincurve.PublicKeyXOnly(raw)
        except (ValueError, TypeError):
            raise InvalidKey("public key is not a point on secp256k1") from None
        self.raw = raw
        self.hex = raw.hex()
        self._point: coincurve.PublicKeyXOnly | None = point

    @classmethod
    def _derived(cls, raw: bytes) -> PublicKey:
        """A public key computed from a secret key here: a valid point, not parsed
        again until it verifies something."""
        key = cls.__new__(cls)
        key.raw = raw
        key.hex = raw.hex()
        key._point = None
        return key

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        """Parse 64 lowercase hex characters (the last few thousand parsed are cached:
        every request's signature check and its decryption parse the app's key)."""
        if cls is PublicKey and type(text) is str:
            return _public_key_from_hex(text)
        return cls(_hex32(text, "public key"))

    @classmethod
    def from_npub(cls, text: str) -> PublicKey:
        """Parse a NIP-19 ``npub1...`` string."""
        return cls(_from_bech32(text, "npub"))

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """Parse hex or npub."""
        return cls.from_npub(text) if text.startswith("npub1") else cls.from_hex(text)

    def npub(self) -> str:
        """The NIP-19 ``npub1...`` form."""
        return _to_bech32("npub", self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Check a BIP-340 signature of a 32-byte message."""
        if len(signature) != 64:
            return False
        if self._point is None:
            self._point = coincurve.PublicKeyXOnly(self.raw)
        return bool(self._point.verify(signature, message))

    def lift(self) -> coincurve.PublicKey:
        """The full point with even y, for ECDH (NIP-04/NIP-44)."""
        return coincurve.PublicKey(b"\x02" + self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.hex})"

    def __str__(self) -> str:
        return self.hex


class SecretKey:
    """A secp256k1 secret key. Its ``repr`` never shows the secret."""

    __slots__ = ("_keypair", "_public", "_raw", "_shared")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < _CURVE_ORDER:
            raise InvalidKey("a secret key is 32 bytes in [1, n-1]")
        self._raw = raw
        self._keypair: Any = None  # derived on first use (see the module's docstring)
        self._public: PublicKey | None = None
        self._shared: OrderedDict[bytes, bytes] | None = None

    @classmethod
    def stored(cls, secret_hex: str, public_hex: str) -> SecretKey:
        """A key read back from a store with its public key: nothing is derived until
        the key signs or decrypts, and then the stored public key must match.

        Raises:
            InvalidKey: either is not 64 lowercase hex characters, or the secret is
                out of range.
        """
        key = cls.from_hex(secret_hex)
        key._public = PublicKey._derived(_hex32(public_hex, "public key"))
        return key

    @property
    def public_key(self) -> PublicKey:
        if self._public is None:
            self._public = PublicKey._derived(_xonly(self._pair()))
        return self._public

    def _pair(self) -> Any:
        """The libsecp256k1 key pair, made once; a stored public key is checked then."""
        if self._keypair is None:
            keypair: Any = ffi.new("secp256k1_keypair *")
            if lib.secp256k1_keypair_create(GLOBAL_CONTEXT.ctx, keypair, self._raw) != 1:
                raise InvalidKey("invalid secret key")  # pragma: no cover - range checked
            if self._public is not None and self._public.raw != _xonly(keypair):
                raise InvalidKey("the stored public key does not belong to this secret key")
            self._keypair = keypair
        return self._keypair

    @classmethod
    def generate(cls) -> SecretKey:
        """A new random key from the OS CSPRNG."""
        while True:
            try:
                return cls(os.urandom(32))
            except InvalidKey:  # pragma: no cover - probability ~2^-128
                continue

    @classmethod
    def from_hex(cls, text: str) -> SecretKey:
        """Parse 64 lowercase hex characters."""
        return cls(_hex32(text, "secret key"))

    @classmethod
    def from_nsec(cls, text: str) -> SecretKey:
        """Parse a NIP-19 ``nsec1...`` string."""
        return cls(_from_bech32(text, "nsec"))

    @classmethod
    def parse(cls, text: str) -> SecretKey:
        """Parse hex or nsec."""
        return cls.from_nsec(text) if text.startswith("nsec1") else cls.from_hex(text)

    def reveal_hex(self) -> str:
        """The secret as hex: call only to write it where it belongs (a URI, a key file)."""
        return self._raw.hex()

    def reveal_nsec(self) -> str:
        """The secret as NIP-19 ``nsec1...``."""
        return _to_bech32("nsec", self._raw)

    def sign(self, message: bytes, aux_rand: bytes | None = None) -> bytes:
        """BIP-340 sign a 32-byte message; ``aux_rand`` defaults to fresh randomness."""
        if len(message) != 32:
            raise ValueError("nostr signs 32-byte digests only")
        aux = os.urandom(32) if aux_rand is None else aux_rand
        if len(aux) != 32:
            # libsecp256k1 reads exactly 32 bytes from this pointer: a shorter
            # buffer would be read past its end.
            raise ValueError("aux_rand must be 32 bytes")
        signature: Any = ffi.new("unsigned char[64]")
        ok = lib.secp256k1_schnorrsig_sign32(
            GLOBAL_CONTEXT.ctx, signature, message, self._pair(), aux
        )
        if ok != 1:  # pragma: no cover - cannot fail for a valid key pair
            raise RuntimeError("libsecp256k1 refused to sign")
        return bytes(ffi.buffer(signature, 64))

    def shared_x(self, peer: PublicKey) -> bytes:
        """The unhashed ECDH x coordinate with ``peer`` (NIP-04 and NIP-44), cached."""
        if self._shared is None:
            self._pair()  # a stored public key is checked before the first decryption
            self._shared = OrderedDict()
        cached = self._shared.get(peer.raw)
        if cached is not None:
            self._shared.move_to_end(peer.raw)
            return cached
        shared = peer.lift().multiply(self._raw).format(compressed=True)[1:]
        self._shared[peer.raw] = shared
        if len(self._shared) > _SHARED_CACHE_SIZE:
            self._shared.popitem(last=False)
        return bytes(shared)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"SecretKey(<secret of {self.public_key.hex}>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("secret keys are not picklable")


def _xonly(keypair: Any) -> bytes:
    """The 32-byte x-only public key of a libsecp256k1 key pair."""
    xonly: Any = ffi.new("secp256k1_xonly_pubkey *")
    out: Any = ffi.new("unsigned char[32]")
    ok = lib.secp256k1_keypair_xonly_pub(GLOBAL_CONTEXT.ctx, xonly, ffi.NULL, keypair)
    ok &= lib.secp256k1_xonly_pubkey_serialize(GLOBAL_CONTEXT.ctx, out, xonly)
    if ok != 1:  # pragma: no cover - cannot fail for a valid key pair
        raise RuntimeError("libsecp256k1 could not serialize a public key")
    return bytes(ffi.buffer(out, 32))


@functools.lru_cache(maxsize=_PARSED_CACHE_SIZE)
def _public_key_from_hex(text: str) -> PublicKey:
    """A parsed key, immutable, so shared (a string that fails is not remembered)."""
    return PublicKey(_hex32(text, "public key"))


def verify_signature(pubkey_hex: str, signature: bytes, message: bytes) -> bool:
    """Verify a BIP-340 signature given a hex public key; invalid keys verify nothing."""
    try:
        return PublicKey.from_hex(pubkey_hex).verify(signature, message)
    except InvalidKey:
        return False
