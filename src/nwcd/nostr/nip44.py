"""NIP-44 version 2: versioned, padded, authenticated encryption between two keys.

https://github.com/nostr-protocol/nips/blob/master/44.md ::

    conversation_key = HKDF-extract(sha256, IKM=shared_x, salt="nip44-v2")
    chacha_key, chacha_nonce, hmac_key = HKDF-expand(conversation_key, nonce, 76)
    payload = base64(0x02 || nonce || ChaCha20(padded) || HMAC(hmac_key, nonce || ciphertext))

Plaintexts up to 2^32-1 bytes are accepted (PR nips#1907: a 6-byte length
prefix from 65536 bytes on). NWC peers that predate it cap at 65535 bytes,
so callers keep NWC payloads below that.

The MAC is checked in constant time before anything is decrypted.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from nwcd.errors import DecryptionError
from nwcd.nostr.keys import PublicKey, SecretKey

__all__ = [
    "MAX_PLAINTEXT",
    "calc_padded_len",
    "conversation_key",
    "conversation_key_from_shared_x",
    "decrypt",
    "encrypt",
    "message_keys",
]

VERSION: Final = 2
MAX_PLAINTEXT: Final = 2**32 - 1
_SALT: Final = b"nip44-v2"
_MIN_PAYLOAD_CHARS: Final = 132
_MIN_DECODED: Final = 99


@functools.lru_cache(maxsize=4096)
def conversation_key_from_shared_x(shared_x: bytes) -> bytes:
    """HKDF-extract of the unhashed ECDH x coordinate (cached per peer: every request and
    its response between the same two keys use the same one)."""
    return hmac.digest(_SALT, shared_x, hashlib.sha256)


def conversation_key(secret: SecretKey, peer: PublicKey) -> bytes:
    """The symmetric key between ``secret`` and ``peer`` (ECDH cached by ``secret``)."""
    return conversation_key_from_shared_x(secret.shared_x(peer))


def message_keys(conv_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """``(chacha_key, chacha_nonce, hmac_key)`` for one message."""
    if len(conv_key) != 32:
        raise ValueError("conversation key must be 32 bytes")
    if len(nonce) != 32:
        raise ValueError("nonce must be 32 bytes")
    keys = HKDFExpand(algorithm=hashes.SHA256(), length=76, info=nonce).derive(conv_key)
    return keys[:32], keys[32:44], keys[44:76]


def calc_padded_len(unpadded_len: int) -> int:
    """Length of the padded plaintext (without the length prefix)."""
    if unpadded_len <= 0:
        raise ValueError("plaintext must not be empty")
    if unpadded_len <= 32:
        return 32
    next_power = 1 << (unpadded_len - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((unpadded_len - 1) // chunk + 1)


def _pad(plaintext: bytes) -> bytes:
    length = len(plaintext)
    if not 1 <= length <= MAX_PLAINTEXT:
        raise ValueError(f"plaintext must be 1 to {MAX_PLAINTEXT} bytes")
    prefix = length.to_bytes(2, "big") if length < 65536 else b"\0\0" + length.to_bytes(4, "big")
    return prefix + plaintext + bytes(calc_padded_len(length) - length)


def _unpad(padded: bytes) -> bytes:
    if len(padded) < 2:
        raise DecryptionError("invalid padding")
    length = int.from_bytes(padded[:2], "big")
    prefix = 2
    if length == 0:
        if len(padded) < 6:
            raise DecryptionError("invalid padding")
        length = int.from_bytes(padded[2:6], "big")
        prefix = 6
        if length < 65536:
            raise DecryptionError("invalid padding: long prefix for a short message")
    plaintext = padded[prefix : prefix + length]
    if length == 0 or len(plaintext) != length:
        raise DecryptionError("invalid padding")
    if len(padded) != prefix + calc_padded_len(length):
        raise DecryptionError("invalid padding")
    return plaintext


def _chacha20(key: bytes, nonce12: bytes, data: bytes) -> bytes:
    # cryptography's ChaCha20 takes a 16-byte nonce: a 4-byte counter (0) then the 12-byte nonce.
    cipher = Cipher(algorithms.ChaCha20(key, b"\0\0\0\0" + nonce12), mode=None)
    return cipher.encryptor().update(data)


def encrypt(conv_key: bytes, plaintext: str, *, nonce: bytes | None = None) -> str:
    """Encrypt ``plaintext`` (UTF-8); ``nonce`` is random unless given (for vectors)."""
    nonce = os.urandom(32) if nonce is None else nonce
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    ciphertext = _chacha20(chacha_key, chacha_nonce, _pad(plaintext.encode()))
    mac = hmac.digest(hmac_key, nonce + ciphertext, hashlib.sha256)
    return base64.b64encode(bytes([VERSION]) + nonce + ciphertext + mac).decode()


def decrypt(conv_key: bytes, payload: str) -> str:
    """Authenticate and decrypt a payload.

    Raises:
        DecryptionError: unknown version, bad base64, bad MAC, bad padding, bad UTF-8.
    """
    if not payload or payload[0] == "#":
        raise DecryptionError("unknown encryption version")
    if len(payload) < _MIN_PAYLOAD_CHARS:
        raise DecryptionError("payload too short")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("invalid base64") from None
    if len(data) < _MIN_DECODED:
        raise DecryptionError("payload too short")
    if data[0] != VERSION:
        raise DecryptionError(f"unknown encryption version {data[0]}")
    nonce, ciphertext, mac = data[1:33], data[33:-32], data[-32:]
    chacha_key, chacha_nonce, hmac_key = message_keys(conv_key, nonce)
    expected = hmac.digest(hmac_key, nonce + ciphertext, hashlib.sha256)
    if not hmac.compare_digest(expected, mac):
        raise DecryptionError("invalid MAC")
    plaintext = _unpad(_chacha20(chacha_key, chacha_nonce, ciphertext))
    try:
        return plaintext.decode()
    except UnicodeDecodeError:
        raise DecryptionError("plaintext is not UTF-8") from None
