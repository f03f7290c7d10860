"""NIP-04 against the cross-implementation vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import DecryptionError
from nwcd.nostr import nip04
from nwcd.nostr.keys import PublicKey, SecretKey
from tests.conftest import load_vectors

VECTORS = load_vectors("nip04.vectors.json")


@pytest.mark.parametrize("case", VECTORS["valid"])
def test_decrypts_from_both_sides(case: dict[str, str]) -> None:
    receiver = SecretKey.from_hex(case["receiver_sec"])
    sender = SecretKey.from_hex(case["sender_sec"])
    assert receiver.public_key.hex == case["receiver_pub"]
    shared = receiver.shared_x(PublicKey.from_hex(case["sender_pub"]))
    assert shared == sender.shared_x(receiver.public_key)
    assert nip04.decrypt(shared, case["payload"]) == case["plaintext"]
    again = nip04.encrypt(shared, case["plaintext"])
    assert nip04.decrypt(shared, again) == case["plaintext"]


@pytest.mark.parametrize("case", VECTORS["invalid"])
def test_rejects(case: dict[str, str]) -> None:
    shared = SecretKey.from_hex(case["sec"]).shared_x(PublicKey.from_hex(case["pub"]))
    with pytest.raises(DecryptionError):
        nip04.decrypt(shared, case["payload"])


def test_fixed_iv_is_deterministic() -> None:
    shared = bytes(range(32))
    a = nip04.encrypt(shared, "x", iv=bytes(16))
    assert a == nip04.encrypt(shared, "x", iv=bytes(16))
    assert a.endswith("?iv=AAAAAAAAAAAAAAAAAAAAAA==")


@given(st.text(max_size=2000), st.binary(min_size=32, max_size=32))
def test_round_trip(plaintext: str, key: bytes) -> None:
    try:
        plaintext.encode()
    except UnicodeEncodeError:
        return
    assert nip04.decrypt(key, nip04.encrypt(key, plaintext)) == plaintext


@given(st.text(max_size=300))
def test_random_payload_is_a_documented_error(payload: str) -> None:
    with pytest.raises(DecryptionError):
        nip04.decrypt(bytes(32), payload)
