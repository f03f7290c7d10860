"""NIP-19 pointers to what a zap goes to: ``note1``/``nevent1`` (a note) and
``npub1``/``nprofile1`` (a profile), also with a ``nostr:`` prefix or as bare hex
(a 64-hex id is read as a profile's pubkey only where the caller says so)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nwcd import bech32
from nwcd.errors import NwcdError

__all__ = ["Nip19Error", "Pointer", "encode_nevent", "encode_nprofile", "parse_pointer"]

_SPECIAL, _RELAY, _AUTHOR, _KIND = 0, 1, 2, 3


class Nip19Error(NwcdError, ValueError):
    """Not a note or profile pointer."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """A note (``what`` = "event": ``id`` is its event id, ``author`` its pubkey when the
    pointer says) or a profile (``what`` = "profile": ``id`` is the pubkey)."""

    what: Literal["event", "profile"]
    id: str
    relays: tuple[str, ...] = ()
    author: str | None = None


def _payload(text: str) -> tuple[str, bytes]:
    try:
        hrp, data, _ = bech32.decode(text, max_length=None)
        return hrp, bytes(bech32.convert_bits(data, 5, 8, pad=False))
    except bech32.Bech32Error as exc:
        raise Nip19Error(f"not a NIP-19 pointer: {exc}") from exc


def _tlv(payload: bytes) -> dict[int, list[bytes]]:
    fields: dict[int, list[bytes]] = {}
    at = 0
    while at + 2 <= len(payload):
        kind, length = payload[at], payload[at + 1]
        value = payload[at + 2 : at + 2 + length]
        if len(value) != length:
            raise Nip19Error("truncated TLV")
        fields.setdefault(kind, []).append(value)
        at += 2 + length
    return fields


def parse_pointer(text: str) -> Pointer:
    """Read ``note1``, ``nevent1``, ``npub1`` or ``nprofile1`` (``nostr:`` allowed).

    Raises:
        Nip19Error: anything else, or a malformed one.
    """
    text = text.strip().removeprefix("nostr:")
    hrp, payload = _payload(text)
    if hrp in ("note", "npub"):
        if len(payload) != 32:
            raise Nip19Error(f"{hrp} must hold 32 bytes")
        return Pointer("event" if hrp == "note" else "profile", payload.hex())
    if hrp not in ("nevent", "nprofile"):
        raise Nip19Error(f"not a note or profile ({hrp}1...)")
    fields = _tlv(payload)
    special = fields.get(_SPECIAL, [])
    if len(special) != 1 or len(special[0]) != 32:
        raise Nip19Error(f"{hrp} must hold one 32-byte id")
    relays = tuple(value.decode("utf-8", "replace") for value in fields.get(_RELAY, []))
    if hrp == "nprofile":
        return Pointer("profile", special[0].hex(), relays)
    authors = [value for value in fields.get(_AUTHOR, []) if len(value) == 32]
    return Pointer("event", special[0].hex(), relays, authors[0].hex() if authors else None)


def _encode(hrp: str, fields: list[tuple[int, bytes]]) -> str:
    payload = b"".join(bytes((kind, len(value))) + value for kind, value in fields)
    return bech32.encode(hrp, bech32.convert_bits(payload, 8, 5, pad=True))


def encode_nevent(event_id: str, *, relays: tuple[str, ...] = (), author: str | None = None) -> str:
    fields = [(_SPECIAL, bytes.fromhex(event_id))]
    fields += [(_RELAY, relay.encode()) for relay in relays]
    if author is not None:
        fields.append((_AUTHOR, bytes.fromhex(author)))
    return _encode("nevent", fields)


def encode_nprofile(pubkey: str, *, relays: tuple[str, ...] = ()) -> str:
    return _encode(
        "nprofile",
        [(_SPECIAL, bytes.fromhex(pubkey)), *((_RELAY, relay.encode()) for relay in relays)],
    )
