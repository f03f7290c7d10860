"""NIP-01 events: strict parsing, canonical serialization, id, BIP-340 signatures.

Wire form (https://github.com/nostr-protocol/nips/blob/master/01.md)::

    {"id": <32-byte hex sha256 of the serialized event>,
     "pubkey": <32-byte x-only hex>, "created_at": <unix seconds>,
     "kind": <0..65535>, "tags": [[<string>, ...], ...],
     "content": <string>, "sig": <64-byte hex BIP-340 signature of id>}

The id is ``sha256(utf8(json([0, pubkey, created_at, kind, tags, content])))``
with no whitespace and non-ASCII characters kept verbatim, which is what
``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` writes (and
:mod:`nwcd.nostr.jsontext`, faster, byte for byte).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from nwcd.errors import InvalidEvent
from nwcd.nostr import jsontext
from nwcd.nostr.keys import SecretKey, verify_signature

__all__ = ["Event", "Tags", "compute_id", "is_hex", "parse_event", "sign_event"]

Tags = tuple[tuple[str, ...], ...]

_HEX: Final = frozenset("0123456789abcdef")
_FIELDS: Final = frozenset(("id", "pubkey", "created_at", "kind", "tags", "content", "sig"))
_MAX_TIMESTAMP: Final = 2**53 - 1


def is_hex(value: object, length: int) -> bool:
    """``value`` is ``length`` lowercase hex characters (an id, a key, a hash)."""
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value)


def compute_id(pubkey: str, created_at: int, kind: int, tags: Tags, content: str) -> str:
    """The NIP-01 event id (hex).

    Raises:
        InvalidEvent: the content or a tag is not encodable as UTF-8 (a lone surrogate).
    """
    try:
        data = jsontext.dumps_bytes([0, pubkey, created_at, kind, tags, content])
    except UnicodeEncodeError:
        raise InvalidEvent("event text is not valid UTF-8") from None
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    """A signed Nostr event. Build with :func:`sign_event` or :func:`parse_event`."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: Tags
    content: str
    sig: str

    def to_json(self) -> dict[str, Any]:
        """The wire form as a JSON-ready dict."""
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": [list(tag) for tag in self.tags],
            "content": self.content,
            "sig": self.sig,
        }

    def tag_value(self, name: str) -> str | None:
        """The first value of the first tag named ``name``, if any."""
        for tag in self.tags:
            if len(tag) >= 2 and tag[0] == name:
                return tag[1]
        return None

    def tag_values(self, name: str) -> list[str]:
        """The first value of every tag named ``name``."""
        return [tag[1] for tag in self.tags if len(tag) >= 2 and tag[0] == name]

    def id_matches(self) -> bool:
        """Whether ``id`` is the hash of the event's fields."""
        try:
            return compute_id(self.pubkey, self.created_at, self.kind, self.tags, self.content) == (
                self.id
            )
        except InvalidEvent:
            return False

    def signature_valid(self) -> bool:
        """Whether ``sig`` is a valid BIP-340 signature of ``id`` by ``pubkey``."""
        return verify_signature(self.pubkey, bytes.fromhex(self.sig), bytes.fromhex(self.id))

    def verify(self) -> None:
        """Check the id and the signature.

        Raises:
            InvalidEvent: the id does not match the fields or the signature is invalid.
        """
        if not self.id_matches():
            raise InvalidEvent("event id does not match its fields")
        if not self.signature_valid():
            raise InvalidEvent("event signature is invalid")


def parse_event(data: object) -> Event:
    """Parse the wire form of an event (already JSON-decoded), checking only its shape.

    Call :meth:`Event.verify` to check the id and signature.

    Raises:
        InvalidEvent: a field is missing or of the wrong type or format (extra
            fields, which some relays add, are ignored).
    """
    if not isinstance(data, dict):
        raise InvalidEvent("an event is a JSON object")
    missing = _FIELDS - data.keys()
    if missing:
        raise InvalidEvent(f"missing event fields: {sorted(missing)}")
    event_id, pubkey, sig = data["id"], data["pubkey"], data["sig"]
    created_at, kind, tags, content = (
        data["created_at"],
        data["kind"],
        data["tags"],
        data["content"],
    )
    if not is_hex(event_id, 64):
        raise InvalidEvent("id must be 64 lowercase hex characters")
    if not is_hex(pubkey, 64):
        raise InvalidEvent("pubkey must be 64 lowercase hex characters")
    if not is_hex(sig, 128):
        raise InvalidEvent("sig must be 128 lowercase hex characters")
    if type(created_at) is not int or not 0 <= created_at <= _MAX_TIMESTAMP:
        raise InvalidEvent("created_at must be a non-negative integer")
    if type(kind) is not int or not 0 <= kind <= 65535:
        raise InvalidEvent("kind must be an integer in 0..65535")
    if not isinstance(content, str):
        raise InvalidEvent("content must be a string")
    if not isinstance(tags, list):
        raise InvalidEvent("tags must be a list")
    parsed_tags: list[tuple[str, ...]] = []
    for tag in tags:
        if not isinstance(tag, list) or not all(isinstance(item, str) for item in tag):
            raise InvalidEvent("each tag must be a list of strings")
        parsed_tags.append(tuple(tag))
    return Event(event_id, pubkey, created_at, kind, tuple(parsed_tags), content, sig)


def sign_event(
    secret: SecretKey,
    *,
    kind: int,
    content: str,
    tags: Tags | list[list[str]] = (),
    created_at: int,
) -> Event:
    """Build and sign an event with ``secret``."""
    frozen_tags: Tags = tuple(tuple(tag) for tag in tags)
    kind = int(kind)  # an IntEnum member would not survive strict re-parsing
    pubkey = secret.public_key.hex
    event_id = compute_id(pubkey, created_at, kind, frozen_tags, content)
    sig = secret.sign(bytes.fromhex(event_id)).hex()
    return Event(event_id, pubkey, created_at, kind, frozen_tags, content, sig)
