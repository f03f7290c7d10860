"""NIP-19 pointers: the spec's example, nostr-sdk as an independent encoder, bad input."""

from __future__ import annotations

import nostr_sdk
import pytest

from nwcd import bech32
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.nip19 import Nip19Error, Pointer, encode_nevent, encode_nprofile, parse_pointer

# NIP-19's own nprofile example
SPEC_NPROFILE = (
    "nprofile1qqsrhuxx8l9ex335q7he0f09aej04zpazpl0ne2cgukyawd24mayt8gpp4mhxue69uhhytnc9e3k7mg"
    "pz4mhxue69uhkg6nzv9ejuumpv34kytnrdaksjlyr9p"
)
SPEC_PUBKEY = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
EVENT_ID = "b9f5441e45ca39179320e0031cfb18e34078673dcc3d3e3a3b3a981760aa5696"


def test_the_specs_nprofile_example() -> None:
    pointer = parse_pointer(SPEC_NPROFILE)
    assert pointer == Pointer("profile", SPEC_PUBKEY, ("wss://r.x.com", "wss://djbas.sadkb.com"))
    assert encode_nprofile(SPEC_PUBKEY, relays=pointer.relays) == SPEC_NPROFILE


def test_note_and_npub_from_nostr_sdk() -> None:
    pubkey = SecretKey.generate().public_key.hex
    npub = nostr_sdk.PublicKey.parse(pubkey).to_bech32()
    note = nostr_sdk.EventId.parse(EVENT_ID).to_bech32()
    assert parse_pointer(npub) == Pointer("profile", pubkey)
    assert parse_pointer(f"nostr:{note}") == Pointer("event", EVENT_ID)


def test_nevent_round_trips_with_nostr_sdk() -> None:
    author = SecretKey.generate().public_key.hex
    relays = ("wss://relay.example.com", "ws://127.0.0.1:7777")
    theirs = nostr_sdk.Nip19Event(
        nostr_sdk.EventId.parse(EVENT_ID),
        author=nostr_sdk.PublicKey.parse(author),
        relays=[nostr_sdk.RelayUrl.parse(relay) for relay in relays],
    ).to_bech32()
    assert parse_pointer(theirs) == Pointer("event", EVENT_ID, relays, author)
    ours = encode_nevent(EVENT_ID, relays=relays, author=author)
    decoded = nostr_sdk.Nip19Event.from_bech32(ours)
    assert decoded.event_id().to_hex() == EVENT_ID
    assert decoded.author() is not None
    assert decoded.author().to_hex() == author
    assert [str(relay) for relay in decoded.relays()] == list(relays)
    assert parse_pointer(ours) == Pointer("event", EVENT_ID, relays, author)


def _bech32(hrp: str, payload: bytes) -> str:
    return bech32.encode(hrp, bech32.convert_bits(payload, 8, 5, pad=True))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", "not a NIP-19 pointer"),
        (_bech32("nsec", bytes(32)), "not a note or profile"),
        (_bech32("note", bytes(31)), "must hold 32 bytes"),
        (_bech32("nevent", bytes((0, 32)) + bytes(10)), "truncated TLV"),
        (_bech32("nprofile", bytes((1, 3)) + b"wss"), "one 32-byte id"),
        (
            _bech32("nevent", bytes((0, 32)) + bytes(32) + bytes((0, 32)) + bytes(32)),
            "one 32-byte id",
        ),
    ],
)
def test_malformed_pointers_are_refused(text: str, reason: str) -> None:
    with pytest.raises(Nip19Error, match=reason):
        parse_pointer(text)
