"""NIP-04 (legacy, "unrecommended"): AES-256-CBC keyed by the raw ECDH x coordinate.

Wire form: ``base64(ciphertext) + "?iv=" + base64(iv)``, PKCS#7 padding.
It has no MAC, so the enclosing event's signature is all that protects it;
NWC reaches it only through encryption negotiation.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nwcd.errors import DecryptionError

__all__ = ["decrypt", "encrypt"]


def encrypt(shared_x: bytes, plaintext: str, *, iv: bytes | None = None) -> str:
    """Encrypt with the 32-byte shared x coordinate; ``iv`` is random unless given."""
    iv = os.urandom(16) if iv is None else iv
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(shared_x), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return f"{base64.b64encode(ciphertext).decode()}?iv={base64.b64encode(iv).decode()}"


def decrypt(shared_x: bytes, payload: str) -> str:
    """Decrypt a NIP-04 payload.

    Raises:
        DecryptionError: missing ``?iv=``, bad base64, bad IV length, bad padding, bad UTF-8.
    """
    body, sep, iv_text = payload.partition("?iv=")
    if not sep:
        raise DecryptionError("missing ?iv= separator")
    try:
        ciphertext = base64.b64decode(body, validate=True)
        iv = base64.b64decode(iv_text, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("invalid base64") from None
    if len(iv) != 16:
        raise DecryptionError("IV must be 16 bytes")
    if not ciphertext or len(ciphertext) % 16:
        raise DecryptionError("ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(shared_x), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plaintext = unpadder.update(padded) + unpadder.finalize()
        return plaintext.decode()
    except ValueError:  # bad padding, or UnicodeDecodeError (a ValueError)
        raise DecryptionError("invalid padding or text") from None
