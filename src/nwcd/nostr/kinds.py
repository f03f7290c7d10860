"""Event kinds NWC uses, and the NIP-01 kind classes relays treat differently."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Kind", "is_ephemeral", "is_replaceable"]


class Kind(IntEnum):
    """Kinds of NIP-47, NIP-42 (relay authentication) and those zaps use (NIP-01, NIP-57)."""

    METADATA = 0
    ZAP_REQUEST = 9734
    ZAP_RECEIPT = 9735
    NWC_INFO = 13194
    NWC_REQUEST = 23194
    NWC_RESPONSE = 23195
    NWC_NOTIFICATION_NIP04 = 23196
    NWC_NOTIFICATION = 23197
    CLIENT_AUTH = 22242


def is_replaceable(kind: int) -> bool:
    """Relays keep only the latest event per (pubkey, kind)."""
    return kind in (0, 3) or 10000 <= kind < 20000


def is_ephemeral(kind: int) -> bool:
    """Relays are not expected to store these events."""
    return 20000 <= kind < 30000
