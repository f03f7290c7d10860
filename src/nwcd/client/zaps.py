"""Zap a note or a profile (NIP-57), zap splits included: who to pay, read from relays.

A note with ``zap`` tags (NIP-57 Appendix G) splits the amount over those pubkeys by
their weights; any other note zaps its author; a profile zaps its owner. Each one's
lightning address comes from its newest profile (kind 0: ``lud16``, else ``lud06``).
The zap requests themselves are made per recipient while resolving (see
:class:`nwcd.client.recipients.ZapAsk`), and everything is paid in one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

from nwcd.client.recipients import Recipient, RecipientResult, ZapAsk
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import PublicKey, SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.nostr.nip19 import Pointer
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.split import split_total
from nwcd.recipients.zap import zap_splits
from nwcd.relay.pool import RelayPool

__all__ = ["fetch", "lightning_address", "zap_recipients"]


async def fetch(pool: RelayPool, filters: Sequence[Filter], timeout: float) -> list[Event]:
    """Stored events matching ``filters``, until every relay said EOSE (or ``timeout``)."""
    subscription = await pool.subscribe(filters)
    try:
        # Relays send what they store before EOSE, and the pool queues it in that order.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await subscription.eose.wait()
        got: dict[str, Event] = {}
        while (event := subscription.get_nowait()) is not None:
            got[event.id] = event
    finally:
        await subscription.close()
    return list(got.values())  # the pool verified each one


def lightning_address(profile: Event) -> str | None:
    """A profile's ``lud16`` (``name@host``), else its ``lud06`` (``lnurl1...``)."""
    try:
        content = json.loads(profile.content)
    except ValueError:
        return None
    if not isinstance(content, dict):
        return None
    for key in ("lud16", "lud06"):
        value = content.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


async def zap_recipients(
    pool: RelayPool,
    pointer: Pointer,
    amount_msat: int,
    *,
    secret: SecretKey,
    relays: Sequence[str],
    comment: str | None = None,
    timeout: float = 10.0,
    created_at: int | None = None,
) -> list[Recipient | RecipientResult]:
    """The recipients of a zap of ``pointer``: one per zapped pubkey, each with its part
    of ``amount_msat`` and its zap request to make; a pubkey without a lightning
    address is a failed result (the others are still zapped).

    Raises:
        RecipientError: the note is not found on the relays, or no one can be zapped.
    """
    weights: list[tuple[str, float]]
    event_id = None
    if pointer.what == "event":
        notes = await fetch(pool, [Filter(ids=(pointer.id,))], timeout)
        if not notes:
            raise RecipientError(f"note {pointer.id[:12]}... not found on the relays")
        note = notes[0]
        event_id = note.id
        splits = zap_splits(note)
        weights = [(s.pubkey, s.weight) for s in splits] or [(note.pubkey, 1)]
    else:
        weights = [(pointer.id, 1)]
    amounts = split_total(amount_msat, [weight for _, weight in weights])
    pubkeys = tuple(dict.fromkeys(pubkey for pubkey, _ in weights))
    profiles = await fetch(pool, [Filter(kinds=(Kind.METADATA,), authors=pubkeys)], timeout)
    newest: dict[str, Event] = {}
    for profile in profiles:
        if profile.pubkey not in newest or profile.created_at > newest[profile.pubkey].created_at:
            newest[profile.pubkey] = profile
    out: list[Recipient | RecipientResult] = []
    for (pubkey, _), amount in zip(weights, amounts, strict=True):
        if amount <= 0:
            continue
        npub = PublicKey.from_hex(pubkey).npub()
        address = lightning_address(newest[pubkey]) if pubkey in newest else None
        if address is None:
            reason = "no profile found" if pubkey not in newest else "no lightning address"
            out.append(RecipientResult(npub, amount, "failed", error=f"{reason} for {npub}"))
            continue
        zap = ZapAsk(secret, pubkey, tuple(relays), event_id=event_id, created_at=created_at)
        out.append(Recipient(address, amount, comment, zap=zap))
    return out
