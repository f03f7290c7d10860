"""NIP-57 zaps: the kind-9734 zap request, the checks an LNURL server makes, zap splits.

A zap is an LNURL-pay payment whose callback also gets the signed zap request (the
``nostr`` query parameter); the server answers an invoice whose description hash is
``sha256`` of that exact JSON text, so the text is built once and hashed as sent.
Spec: https://github.com/nostr-protocol/nips/blob/master/57.md (Appendix D: the server's
checks; Appendix G: ``zap`` tags that split a zap between several people).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from nwcd.errors import InvalidEvent, InvalidKey
from nwcd.nostr.event import Event, is_hex, parse_event, sign_event
from nwcd.nostr.keys import PublicKey, SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.recipients.errors import RecipientError

__all__ = [
    "MAX_ZAP_REQUEST_LENGTH",
    "ZapSplit",
    "check_zap_request",
    "is_nostr_pubkey",
    "zap_request",
    "zap_request_json",
    "zap_splits",
]

# Far above any honest zap request (a comment and a few relays), small enough to parse freely.
MAX_ZAP_REQUEST_LENGTH: Final = 65536


def is_nostr_pubkey(text: object) -> bool:
    """Whether ``text`` is a BIP-340 public key in lowercase hex (a point on the curve)."""
    if not isinstance(text, str):
        return False
    try:
        PublicKey.from_hex(text)
    except InvalidKey:
        return False
    return True


def _is_coordinate(text: str) -> bool:
    """``<kind>:<pubkey hex>:<d tag>`` (NIP-01 addressable event coordinate)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[0].isdigit() or not parts[0].isascii():
        return False
    return 0 <= int(parts[0]) <= 65535 and is_nostr_pubkey(parts[1])


def zap_request(
    secret: SecretKey,
    *,
    recipient_pubkey: str,
    amount_msat: int,
    relays: Sequence[str],
    lnurl: str,
    event_id: str | None = None,
    comment: str = "",
    created_at: int,
    coordinate: str | None = None,
) -> Event:
    """A signed kind-9734 zap request; its ``content`` is the zap's comment.

    Raises:
        RecipientError: a pubkey, event id, coordinate or amount is malformed, or no relay
            is given (the recipient's server publishes the receipt there).
    """
    if not is_nostr_pubkey(recipient_pubkey):
        raise RecipientError(f"{recipient_pubkey!r} is not a nostr public key (64 hex digits)")
    if amount_msat <= 0:
        raise RecipientError("a zap's amount must be positive")
    if not relays:
        raise RecipientError("a zap request needs at least one relay for the zap receipt")
    if event_id is not None and not is_hex(event_id, 64):
        raise RecipientError(f"{event_id!r} is not an event id (64 hex digits)")
    if coordinate is not None and not _is_coordinate(coordinate):
        raise RecipientError(f"{coordinate!r} is not an event coordinate (kind:pubkey:d)")
    tags = [
        ["relays", *relays],
        ["amount", str(amount_msat)],
        ["lnurl", lnurl],
        ["p", recipient_pubkey],
    ]
    if event_id is not None:
        tags.append(["e", event_id])
    if coordinate is not None:
        tags.append(["a", coordinate])
    return sign_event(
        secret, kind=Kind.ZAP_REQUEST, content=comment, tags=tags, created_at=created_at
    )


def zap_request_json(event: Event) -> str:
    """The text sent as the ``nostr`` parameter: compact JSON, non-ASCII kept verbatim."""
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))


def _tags(event: Event, name: str) -> list[tuple[str, ...]]:
    return [tag for tag in event.tags if tag and tag[0] == name]


def _single_value(event: Event, name: str, *, required: bool) -> str | None:
    """The value of the only ``name`` tag, checking the count Appendix D allows."""
    found = _tags(event, name)
    if len(found) > 1 or (required and not found):
        allowed = "exactly one" if required else "at most one"
        raise RecipientError(f"a zap request has {allowed} {name!r} tag, this one {len(found)}")
    if not found:
        return None
    if len(found[0]) < 2:
        raise RecipientError(f"the zap request's {name!r} tag has no value")
    return found[0][1]


def check_zap_request(text: str, *, amount_msat: int | None) -> Event:
    """Check a zap request as the recipient's LNURL server must (NIP-57 Appendix D).

    ``text`` is the ``nostr`` query parameter, already URL-decoded; ``amount_msat`` is the
    callback's ``amount`` parameter (None skips the comparison). Checked: JSON of a
    well-formed event with a valid id and signature, kind 9734, tags, exactly one valid ``p``
    tag, at most one ``e`` tag holding an event id, a ``relays`` tag naming at least one
    relay, at most one ``amount`` tag equal to ``amount_msat``, every ``a`` tag a valid event
    coordinate, at most one ``P`` tag holding a public key. Appendix D ties ``P`` to the
    receipt, which only the server knows, so this checks its form only.

    Raises:
        RecipientError: the first failed check, as a sentence.
    """
    if len(text) > MAX_ZAP_REQUEST_LENGTH:
        raise RecipientError(f"the zap request is longer than {MAX_ZAP_REQUEST_LENGTH} characters")
    try:
        data = json.loads(text)
    except ValueError:
        raise RecipientError("the zap request is not JSON") from None
    try:
        event = parse_event(data)
        event.verify()
    except InvalidEvent as exc:
        raise RecipientError(f"the zap request is not a valid nostr event: {exc}") from None
    if event.kind != Kind.ZAP_REQUEST:
        raise RecipientError(f"a zap request is of kind {Kind.ZAP_REQUEST:d}, not {event.kind}")
    if not event.tags:
        raise RecipientError("the zap request has no tags")
    recipient = _single_value(event, "p", required=True)
    if recipient is None or not is_nostr_pubkey(recipient):
        raise RecipientError("the zap request's 'p' tag is not a nostr public key")
    zapped = _single_value(event, "e", required=False)
    if zapped is not None and not is_hex(zapped, 64):
        raise RecipientError("the zap request's 'e' tag is not an event id")
    relays = _tags(event, "relays")
    if not relays or not any(relay for tag in relays for relay in tag[1:]):
        raise RecipientError("the zap request names no relays for the zap receipt")
    amount = _single_value(event, "amount", required=False)
    if amount is not None:
        if not amount.isascii() or not amount.isdigit() or int(amount) <= 0:
            raise RecipientError(f"the zap request's amount {amount!r} is not a positive integer")
        if amount_msat is not None and int(amount) != amount_msat:
            raise RecipientError(
                f"the zap request is for {amount} msat but the callback asks for {amount_msat}"
            )
    for tag in _tags(event, "a"):
        if len(tag) < 2 or not _is_coordinate(tag[1]):
            raise RecipientError("the zap request's 'a' tag is not an event coordinate")
    sender = _single_value(event, "P", required=False)
    if sender is not None and not is_nostr_pubkey(sender):
        raise RecipientError("the zap request's 'P' tag is not a nostr public key")
    return event


@dataclass(frozen=True, slots=True)
class ZapSplit:
    """One receiver of a zap split; ``relay`` is where to find its profile (kind 0)."""

    pubkey: str
    relay: str | None
    weight: float


def _weight(tag: tuple[str, ...]) -> float | None:
    """The tag's weight; None when absent; 0 when not a finite non-negative number."""
    if len(tag) < 4 or not tag[3].strip():
        return None
    try:
        weight = float(tag[3])
    except ValueError:
        return 0.0
    return weight if math.isfinite(weight) and weight > 0 else 0.0


def zap_splits(event: Event) -> list[ZapSplit]:
    """The receivers of the event's ``zap`` tags, in order (NIP-57 Appendix G).

    ``["zap", <pubkey hex>, <relay>, <weight>]``: with no weight anywhere every receiver
    gets weight 1 (equal shares); once any tag has a weight, tags without one get 0, as do
    weights that are not finite positive numbers, and the caller skips zero weights.
    Tags whose pubkey is not a valid public key are dropped. No ``zap`` tag: an empty list.
    """
    parsed: list[tuple[str, str | None, float | None]] = []
    for tag in _tags(event, "zap"):
        if len(tag) < 2 or not is_nostr_pubkey(tag[1]):
            continue
        relay = tag[2] if len(tag) >= 3 and tag[2] else None
        parsed.append((tag[1], relay, _weight(tag)))
    if all(weight is None for _, _, weight in parsed):
        return [ZapSplit(pubkey, relay, 1.0) for pubkey, relay, _ in parsed]
    return [ZapSplit(pubkey, relay, weight or 0.0) for pubkey, relay, weight in parsed]
