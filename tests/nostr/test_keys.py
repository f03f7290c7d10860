"""Keys: every official BIP-340 vector, NIP-19 npub/nsec, ECDH and its cache, hidden secrets."""

from __future__ import annotations

import csv
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import InvalidKey
from nwcd.nostr.keys import PublicKey, SecretKey, verify_signature
from tests.conftest import VECTORS

CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

with (VECTORS / "bip340.test-vectors.csv").open(newline="") as _file:
    BIP340 = list(csv.DictReader(_file))

SIGNING_ROWS = [r for r in BIP340 if r["secret key"] and len(r["message"]) == 64]
SHORT_OR_LONG_ROWS = [r for r in BIP340 if len(r["message"]) != 64]

# NIP-19's own example keys.
NPUB = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
NPUB_HEX = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
NSEC = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5"
NSEC_HEX = "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa"


def _row_id(row: dict[str, str]) -> str:
    return f"{row['index']}-{row['comment'] or 'ok'}"[:60]


def test_csv_is_complete() -> None:
    assert [int(r["index"]) for r in BIP340] == list(range(19))
    assert len(SIGNING_ROWS) == 4
    assert [int(r["index"]) for r in SHORT_OR_LONG_ROWS] == [15, 16, 17, 18]


@pytest.mark.parametrize("row", SIGNING_ROWS, ids=_row_id)
def test_sign_matches_vector(row: dict[str, str]) -> None:
    secret = SecretKey.from_hex(row["secret key"].lower())
    assert secret.public_key.hex == row["public key"].lower()
    signature = secret.sign(bytes.fromhex(row["message"]), bytes.fromhex(row["aux_rand"]))
    assert signature.hex() == row["signature"].lower()


@pytest.mark.parametrize("row", BIP340, ids=_row_id)
def test_verify_matches_vector(row: dict[str, str]) -> None:
    """Every row, including 15-18: verify follows BIP-340 for any message length."""
    expected = row["verification result"] == "TRUE"
    signature, message = bytes.fromhex(row["signature"]), bytes.fromhex(row["message"])
    try:
        public = PublicKey.from_hex(row["public key"].lower())
    except InvalidKey:
        # Rows 5 (not on the curve) and 14 (x >= p) have invalid public keys.
        assert not expected
        assert row["index"] in {"5", "14"}
        return
    assert public.verify(signature, message) is expected
    assert verify_signature(public.hex, signature, message) is expected


@pytest.mark.parametrize("row", SHORT_OR_LONG_ROWS, ids=_row_id)
def test_sign_refuses_non_digest_messages(row: dict[str, str]) -> None:
    secret = SecretKey.from_hex(row["secret key"].lower())
    with pytest.raises(ValueError, match="32-byte"):
        secret.sign(bytes.fromhex(row["message"]), bytes.fromhex(row["aux_rand"]))


def test_sign_refuses_wrong_length_aux_rand() -> None:
    secret = SecretKey.from_hex(SIGNING_ROWS[0]["secret key"].lower())
    for aux in (b"", b"\x01", bytes(31), bytes(33)):
        with pytest.raises(ValueError, match="aux_rand"):
            secret.sign(bytes(32), aux)


def test_default_aux_rand_is_fresh_and_signatures_verify() -> None:
    secret = SecretKey.generate()
    message = bytes(range(32))
    first, second = secret.sign(message), secret.sign(message)
    assert first != second
    assert secret.public_key.verify(first, message)
    assert secret.public_key.verify(second, message)
    assert not secret.public_key.verify(first, bytes(32))
    assert not SecretKey.generate().public_key.verify(first, message)


def test_verify_rejects_wrong_length_signature() -> None:
    secret = SecretKey.generate()
    signature = secret.sign(bytes(32))
    assert not secret.public_key.verify(signature[:63], bytes(32))
    assert not secret.public_key.verify(signature + b"\x00", bytes(32))
    assert not secret.public_key.verify(b"", bytes(32))


def test_verify_signature_with_bad_pubkey_hex_is_false() -> None:
    signature = bytes.fromhex(SIGNING_ROWS[0]["signature"])
    message = bytes.fromhex(SIGNING_ROWS[0]["message"])
    good = SIGNING_ROWS[0]["public key"].lower()
    assert verify_signature(good, signature, message)
    assert not verify_signature(good.upper(), signature, message)
    assert not verify_signature("00" * 32, signature, message)
    assert not verify_signature("zz", signature, message)


# --- NIP-19 -----------------------------------------------------------------


def test_npub_example() -> None:
    public = PublicKey.from_npub(NPUB)
    assert public.hex == NPUB_HEX
    assert public.npub() == NPUB
    assert PublicKey.parse(NPUB) == PublicKey.parse(NPUB_HEX) == public
    assert PublicKey.from_hex(NPUB_HEX).npub() == NPUB


def test_nsec_example() -> None:
    secret = SecretKey.from_nsec(NSEC)
    assert secret.reveal_hex() == NSEC_HEX
    assert secret.reveal_nsec() == NSEC
    assert SecretKey.parse(NSEC) == SecretKey.parse(NSEC_HEX) == secret
    assert SecretKey.from_hex(NSEC_HEX).reveal_nsec() == NSEC


def test_bech32_prefix_is_checked() -> None:
    with pytest.raises(InvalidKey, match="npub"):
        PublicKey.from_npub(NSEC)
    with pytest.raises(InvalidKey, match="nsec"):
        SecretKey.from_nsec(NPUB)


@pytest.mark.parametrize(
    "text",
    [
        NPUB[:-1] + ("q" if NPUB[-1] != "q" else "p"),  # checksum
        NPUB[:10] + NPUB[10:].upper(),  # mixed case
        "npub1" + "q" * 58,  # checksum, and 36 bytes
        "",
        "7e7e",
        NPUB_HEX.upper(),
        NPUB_HEX + "00",
        "g" * 64,
        "00" * 32,  # 0 is not an x coordinate on the curve
        "ff" * 32,  # >= p
    ],
)
def test_bad_public_keys(text: str) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.parse(text)


def test_bech32_of_wrong_length_is_rejected() -> None:
    from nwcd import bech32

    short = bech32.encode("npub", bech32.convert_bits(bytes(31), 8, 5, pad=True))
    with pytest.raises(InvalidKey, match="32 bytes"):
        PublicKey.from_npub(short)


@pytest.mark.parametrize(
    "raw",
    [bytes(32), CURVE_ORDER.to_bytes(32, "big"), b"\xff" * 32, bytes(31), bytes(33), b""],
    ids=["zero", "n", "max", "31", "33", "empty"],
)
def test_out_of_range_secret_keys(raw: bytes) -> None:
    with pytest.raises(InvalidKey):
        SecretKey(raw)


def test_secret_key_range_edges() -> None:
    assert SecretKey((1).to_bytes(32, "big")).public_key.hex == (
        "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    )
    SecretKey((CURVE_ORDER - 1).to_bytes(32, "big"))


def test_public_key_wrong_length() -> None:
    with pytest.raises(InvalidKey):
        PublicKey(bytes.fromhex(NPUB_HEX)[:31])


# --- secrecy ----------------------------------------------------------------


def test_repr_and_str_hide_the_secret() -> None:
    secret = SecretKey.from_hex(NSEC_HEX)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert NSEC_HEX not in text
        assert NSEC not in text
        assert secret.public_key.hex in text


def test_secret_key_is_not_picklable() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(SecretKey.from_hex(NSEC_HEX))


def test_equality_and_hashing() -> None:
    a, b = SecretKey.from_hex(NSEC_HEX), SecretKey.from_nsec(NSEC)
    assert a == b
    assert hash(a) == hash(b)
    assert a != SecretKey.generate()
    assert a != NSEC_HEX
    p = PublicKey.from_hex(NPUB_HEX)
    assert {p: 1}[PublicKey.from_npub(NPUB)] == 1
    assert p != NPUB_HEX
    assert repr(p) == f"PublicKey({NPUB_HEX})"
    assert str(p) == NPUB_HEX


# --- ECDH -------------------------------------------------------------------


def test_ecdh_is_symmetric() -> None:
    alice, bob = SecretKey.generate(), SecretKey.generate()
    shared = alice.shared_x(bob.public_key)
    assert len(shared) == 32
    assert shared == bob.shared_x(alice.public_key)
    assert shared != alice.shared_x(SecretKey.generate().public_key)


def test_ecdh_known_value() -> None:
    # 1 * P = P: with secret 1, the shared x is the peer's own x coordinate.
    one = SecretKey((1).to_bytes(32, "big"))
    peer = PublicKey.from_hex(NPUB_HEX)
    assert one.shared_x(peer) == peer.raw


def test_shared_x_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, carol = SecretKey.generate(), SecretKey.generate(), SecretKey.generate()
    calls = 0
    original = PublicKey.lift

    def counting_lift(self: PublicKey) -> object:
        nonlocal calls
        calls += 1
        return original(self)

    monkeypatch.setattr(PublicKey, "lift", counting_lift)
    first = alice.shared_x(bob.public_key)
    assert calls == 1
    assert alice.shared_x(bob.public_key) == first
    assert alice.shared_x(PublicKey.from_hex(bob.public_key.hex)) == first
    assert calls == 1
    assert len(alice._shared) == 1
    alice.shared_x(carol.public_key)
    assert calls == 2
    assert len(alice._shared) == 2


def test_shared_x_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import nwcd.nostr.keys as keys_module

    monkeypatch.setattr(keys_module, "_SHARED_CACHE_SIZE", 2)
    alice = SecretKey.generate()
    peers = [SecretKey.generate().public_key for _ in range(3)]
    for peer in peers:
        alice.shared_x(peer)
    assert list(alice._shared) == [peers[1].raw, peers[2].raw]
    # A hit moves the entry to the end, so the least recently used one goes next.
    alice.shared_x(peers[1])
    alice.shared_x(peers[0])
    assert list(alice._shared) == [peers[1].raw, peers[0].raw]


# --- property tests ---------------------------------------------------------


@given(st.binary(min_size=32, max_size=32))
def test_random_32_bytes_is_a_key_or_invalid_key(raw: bytes) -> None:
    value = int.from_bytes(raw, "big")
    if 0 < value < CURVE_ORDER:
        secret = SecretKey(raw)
        assert SecretKey.from_hex(raw.hex()) == secret
        assert SecretKey.from_nsec(secret.reveal_nsec()) == secret
        assert PublicKey.from_npub(secret.public_key.npub()) == secret.public_key
    else:
        with pytest.raises(InvalidKey):
            SecretKey(raw)


@given(
    st.one_of(
        st.text(max_size=100),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l", max_size=70).map("npub1".__add__),
    )
)
def test_public_key_parse_is_a_value_or_invalid_key(text: str) -> None:
    try:
        public = PublicKey.parse(text)
    except InvalidKey:
        return
    assert text in (public.hex, public.npub())


@given(
    st.one_of(
        st.text(max_size=100),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.text(alphabet="qpzry9x8gf2tvdw0s3jn54khce6mua7l", max_size=70).map("nsec1".__add__),
    )
)
def test_secret_key_parse_is_a_value_or_invalid_key(text: str) -> None:
    try:
        secret = SecretKey.parse(text)
    except InvalidKey:
        return
    assert text in (secret.reveal_hex(), secret.reveal_nsec())


def test_a_stored_key_derives_nothing_until_used_and_is_checked_then() -> None:
    real = SecretKey.generate()
    stored = SecretKey.stored(real.reveal_hex(), real.public_key.hex)
    assert stored.public_key == real.public_key
    digest = bytes(32)
    assert real.public_key.verify(stored.sign(digest), digest)
    # A public key stored beside the wrong secret: refused before signing or decrypting.
    other = SecretKey.generate().public_key.hex
    with pytest.raises(InvalidKey):
        SecretKey.stored(real.reveal_hex(), other).sign(digest)
    with pytest.raises(InvalidKey):
        SecretKey.stored(real.reveal_hex(), other).shared_x(real.public_key)


def test_parsed_public_keys_are_shared_and_bad_ones_fail_every_time() -> None:
    key = SecretKey.generate().public_key
    assert PublicKey.from_hex(key.hex) is PublicKey.from_hex(key.hex)
    assert PublicKey.from_hex(key.hex) == key
    bad = "ff" * 32  # not an x coordinate on the curve
    for _ in range(2):
        with pytest.raises(InvalidKey):
            PublicKey.from_hex(bad)
    with pytest.raises(InvalidKey):
        PublicKey.from_hex(["not", "a", "string"])  # type: ignore[arg-type]
