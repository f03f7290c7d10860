"""The info event (kind 13194): what one wallet connection can do.

Content is the space-separated method list plus ``notifications`` when the
connection receives them; tags name the encryption schemes and notification
types (NIP-47, "info event").
"""

from __future__ import annotations

from collections.abc import Iterable

from nwcd.nip47.encryption import SUPPORTED, Scheme
from nwcd.nip47.methods import Method
from nwcd.nip47.results import Transaction
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind

__all__ = [
    "NOTIFICATION_TYPES",
    "build_info_event",
    "incoming_notification",
    "notification_kinds",
    "notification_types",
    "parse_info_event",
]

PAYMENT_RECEIVED = "payment_received"
PAYMENT_SENT = "payment_sent"
HOLD_INVOICE_ACCEPTED = "hold_invoice_accepted"
NOTIFICATION_TYPES: tuple[str, ...] = (PAYMENT_RECEIVED, PAYMENT_SENT)


_NOTIFICATION_KIND = {
    Scheme.NIP44_V2: Kind.NWC_NOTIFICATION,
    Scheme.NIP04: Kind.NWC_NOTIFICATION_NIP04,
}


def notification_kinds(known: Iterable[Scheme]) -> tuple[tuple[Scheme, Kind], ...]:
    """The schemes and event kinds to notify an app in: those it is known to use (its
    requests'), else both (an app that never asked anything may listen to either). One
    event instead of two halves the relay's work for every payment."""
    used = set(known)
    return tuple(
        (scheme, kind) for scheme, kind in _NOTIFICATION_KIND.items() if not used or scheme in used
    )


def notification_types(methods: Iterable[str]) -> tuple[str, ...]:
    """What a connection allowed ``methods`` is told: payments always, held payments
    when it may make hold invoices (nothing else could make it one)."""
    if Method.MAKE_HOLD_INVOICE in set(methods):
        return (*NOTIFICATION_TYPES, HOLD_INVOICE_ACCEPTED)
    return NOTIFICATION_TYPES


def incoming_notification(tx: Transaction) -> str | None:
    """The notification an incoming payment reported by the backend is, if any."""
    return {"settled": PAYMENT_RECEIVED, "accepted": HOLD_INVOICE_ACCEPTED}.get(tx.state or "")


def build_info_event(
    wallet_key: SecretKey,
    methods: Iterable[str],
    *,
    created_at: int,
    notifications: Iterable[str] = NOTIFICATION_TYPES,
    encryption: Iterable[Scheme] = SUPPORTED,
    app_pubkey: str | None = None,
) -> Event:
    """Sign the info event of one wallet key."""
    notification_types = list(notifications)
    words = list(methods)
    if notification_types:
        words.append("notifications")
    tags = [["encryption", " ".join(s.value for s in encryption)]]
    if notification_types:
        tags.append(["notifications", " ".join(notification_types)])
    if app_pubkey is not None:
        tags.append(["p", app_pubkey])
    return sign_event(
        wallet_key, kind=Kind.NWC_INFO, content=" ".join(words), tags=tags, created_at=created_at
    )


def parse_info_event(event: Event) -> tuple[frozenset[str], tuple[Scheme, ...]]:
    """Methods and encryption schemes a wallet advertises (client side).

    Content separators vary in the wild (old Alby used commas); no
    ``encryption`` tag means NIP-04 only.
    """
    words = event.content.replace(",", " ").replace("|", " ").split()
    tag = event.tag_value("encryption")
    schemes = tuple(s for s in SUPPORTED if tag is not None and s.value in tag.split())
    return frozenset(words), schemes or (Scheme.NIP04,)
