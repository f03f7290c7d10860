"""NIP-44 v2 against every case of the official vector file (sha256-pinned)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import DecryptionError, InvalidKey
from nwcd.nostr import nip44
from nwcd.nostr.keys import PublicKey, SecretKey
from tests.conftest import VECTORS, load_vectors

OFFICIAL_SHA256 = "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040"
V2 = load_vectors("nip44.vectors.json")["v2"]
EXTENDED = load_vectors("nip44.extended-length.vectors.json")


def test_official_file_is_pinned() -> None:
    digest = hashlib.sha256((VECTORS / "nip44.vectors.json").read_bytes()).hexdigest()
    assert digest == OFFICIAL_SHA256


@pytest.mark.parametrize("case", V2["valid"]["get_conversation_key"])
def test_conversation_key(case: dict[str, str]) -> None:
    secret = SecretKey.from_hex(case["sec1"])
    key = nip44.conversation_key(secret, PublicKey.from_hex(case["pub2"]))
    assert key.hex() == case["conversation_key"]


@pytest.mark.parametrize("case", V2["invalid"]["get_conversation_key"])
def test_conversation_key_rejects_bad_keys(case: dict[str, str]) -> None:
    with pytest.raises(InvalidKey):
        nip44.conversation_key(SecretKey.from_hex(case["sec1"]), PublicKey.from_hex(case["pub2"]))


def test_message_keys() -> None:
    group = V2["valid"]["get_message_keys"]
    conv_key = bytes.fromhex(group["conversation_key"])
    for case in group["keys"]:
        chacha_key, chacha_nonce, hmac_key = nip44.message_keys(
            conv_key, bytes.fromhex(case["nonce"])
        )
        assert chacha_key.hex() == case["chacha_key"]
        assert chacha_nonce.hex() == case["chacha_nonce"]
        assert hmac_key.hex() == case["hmac_key"]


@pytest.mark.parametrize(("unpadded", "padded"), V2["valid"]["calc_padded_len"])
def test_calc_padded_len(unpadded: int, padded: int) -> None:
    assert nip44.calc_padded_len(unpadded) == padded


@pytest.mark.parametrize("case", V2["valid"]["encrypt_decrypt"])
def test_encrypt_decrypt(case: dict[str, str]) -> None:
    sec1, sec2 = SecretKey.from_hex(case["sec1"]), SecretKey.from_hex(case["sec2"])
    conv_key = nip44.conversation_key(sec1, sec2.public_key)
    assert conv_key.hex() == case["conversation_key"]
    payload = nip44.encrypt(conv_key, case["plaintext"], nonce=bytes.fromhex(case["nonce"]))
    assert payload == case["payload"]
    other_side = nip44.conversation_key(sec2, sec1.public_key)
    assert nip44.decrypt(other_side, payload) == case["plaintext"]


@pytest.mark.parametrize("case", V2["valid"]["encrypt_decrypt_long_msg"])
def test_encrypt_decrypt_long(case: dict[str, object]) -> None:
    plaintext = str(case["pattern"]) * int(str(case["repeat"]))
    assert hashlib.sha256(plaintext.encode()).hexdigest() == case["plaintext_sha256"]
    conv_key = bytes.fromhex(str(case["conversation_key"]))
    payload = nip44.encrypt(conv_key, plaintext, nonce=bytes.fromhex(str(case["nonce"])))
    assert hashlib.sha256(payload.encode()).hexdigest() == case["payload_sha256"]
    assert nip44.decrypt(conv_key, payload) == plaintext


@pytest.mark.parametrize("case", V2["invalid"]["decrypt"])
def test_decrypt_rejects(case: dict[str, str]) -> None:
    with pytest.raises(DecryptionError):
        nip44.decrypt(bytes.fromhex(case["conversation_key"]), case["payload"])


def test_invalid_lengths_under_the_current_spec() -> None:
    """The 2023 file lists 0, 65536, 100000, 10000000 as invalid; since nips#1907 only 0 is."""
    lengths = V2["invalid"]["encrypt_msg_lengths"]
    assert lengths == [0, 65536, 100000, 10000000]
    conv_key = bytes(range(32))
    with pytest.raises(ValueError, match="1 to"):
        nip44.encrypt(conv_key, "")
    for length in lengths[1:]:
        plaintext = "a" * length
        assert nip44.decrypt(conv_key, nip44.encrypt(conv_key, plaintext)) == plaintext


@pytest.mark.parametrize("case", EXTENDED["vectors"])
def test_extended_length_prefix(case: dict[str, object]) -> None:
    length = int(str(case["plaintext_len"]))
    plaintext = EXTENDED["plaintext_pattern"] * length
    assert hashlib.sha256(plaintext.encode()).hexdigest() == case["plaintext_sha256"]
    assert nip44.calc_padded_len(length) == case["padded_len"]
    conv_key = bytes.fromhex(EXTENDED["conversation_key"])
    payload = nip44.encrypt(conv_key, plaintext, nonce=bytes.fromhex(EXTENDED["nonce"]))
    assert hashlib.sha256(payload.encode()).hexdigest() == case["payload_sha256"]
    assert nip44.decrypt(conv_key, payload) == plaintext


@given(st.text(min_size=1, max_size=3000), st.binary(min_size=32, max_size=32))
def test_round_trip(plaintext: str, conv_key: bytes) -> None:
    # Lone surrogates cannot be UTF-8 encoded; every other string must round-trip.
    try:
        plaintext.encode()
    except UnicodeEncodeError:
        return
    assert nip44.decrypt(conv_key, nip44.encrypt(conv_key, plaintext)) == plaintext


@given(st.text(max_size=400))
def test_random_payload_is_a_documented_error(payload: str) -> None:
    with pytest.raises(DecryptionError):
        nip44.decrypt(bytes(32), payload)


@given(st.binary(min_size=99, max_size=600))
def test_random_bytes_are_a_documented_error(blob: bytes) -> None:
    import base64

    with pytest.raises(DecryptionError):
        nip44.decrypt(bytes(32), base64.b64encode(blob).decode())


def test_tampered_payload_fails_mac() -> None:
    conv_key = bytes(32)
    payload = nip44.encrypt(conv_key, "hello")
    tampered = payload[:50] + ("A" if payload[50] != "A" else "B") + payload[51:]
    with pytest.raises(DecryptionError):
        nip44.decrypt(conv_key, tampered)
