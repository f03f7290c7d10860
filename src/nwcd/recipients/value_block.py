"""Podcasting 2.0 value blocks: who a podcast wants paid, how much each, and the boostagram.

A feed's ``<podcast:value type="lightning">`` lists ``<podcast:valueRecipient>``s: keysend
nodes (``type="node"``) or lightning addresses (``type="lnaddress"``), each with a ``split``.
An episode's own value block replaces the channel's. The amounts follow the value spec:
``fee="true"`` recipients take ``split`` percent of the total off the top, and the rest is
shared by the others in proportion to their splits. The payment carries the bLIP-10 JSON
record (TLV 7629169) that tells the podcaster which show, episode and message it is for.
Specs: https://github.com/Podcastindex-org/podcast-namespace/tree/main/value
Feeds are untrusted XML, so they are parsed with ``defusedxml`` (no entities, no DTDs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import LnurlTarget, is_node_pubkey, parse_target
from nwcd.recipients.split import split_sats, whole_sats

__all__ = [
    "BOOSTAGRAM_TLV",
    "MIN_CUSTOM_KEY",
    "ValueBlock",
    "ValueRecipient",
    "boostagram",
    "parse_value_block",
    "tlv_records",
    "value_amounts",
    "value_block_from_dict",
]

BOOSTAGRAM_TLV: Final = 7629169
# The value spec: a customKey is a TLV type of at least 2^16 (below is the protocol's own).
MIN_CUSTOM_KEY: Final = 1 << 16
_MAX_TLV_TYPE: Final = (1 << 64) - 1
_ACTIONS: Final = frozenset(("boost", "stream", "auto"))
_MSAT_PER_BTC: Final = Decimal(100_000_000_000)

RecipientType = Literal["node", "lnaddress"]


@dataclass(frozen=True, slots=True)
class ValueRecipient:
    """One ``valueRecipient``: a node pubkey or a lightning address, and its split."""

    name: str
    type: RecipientType
    address: str
    split: int
    fee: bool = False
    custom_key: int | None = None
    custom_value: str | None = None


@dataclass(frozen=True, slots=True)
class ValueBlock:
    """The lightning value block that applies to a podcast (or one of its episodes)."""

    recipients: tuple[ValueRecipient, ...]
    suggested: str | None = None
    method: str = "keysend"
    podcast: str | None = None
    episode: str | None = None
    podcast_guid: str | None = None
    episode_guid: str | None = None

    @property
    def suggested_msat(self) -> int | None:
        """The ``suggested`` amount (BTC, e.g. ``0.00000005000``) in msat, if usable."""
        if self.suggested is None:
            return None
        try:
            msat = Decimal(self.suggested.strip()) * _MSAT_PER_BTC
        except InvalidOperation:
            return None
        if not msat.is_finite() or msat <= 0:
            return None
        return int(msat)


# --- recipients from attributes ----------------------------------------------------------------


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise RecipientError(f"the value recipient's {what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value.strip())
    raise RecipientError(f"the value recipient's {what} {value!r} is not an integer")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _is_address(text: str) -> bool:
    try:
        target = parse_target(text)
    except RecipientError:
        return False
    return isinstance(target, LnurlTarget) and target.identifier is not None


def _recipient(attrs: Mapping[str, Any]) -> ValueRecipient | None:
    """A recipient from its attributes; None for an address type this package cannot pay."""
    kind = str(attrs.get("type", "")).strip().lower()
    if kind not in ("node", "lnaddress"):
        return None
    name = str(attrs.get("name") or "")
    address = str(attrs.get("address") or "").strip()
    if kind == "node":
        address = address.lower()
        if not is_node_pubkey(address):
            raise RecipientError(f"value recipient {name!r}: {address!r} is not a node pubkey")
    elif not _is_address(address):
        raise RecipientError(f"value recipient {name!r}: {address!r} is not a lightning address")
    split = _int(attrs.get("split"), "split")
    if split < 0:
        raise RecipientError(f"value recipient {name!r}: the split must not be negative")
    key = attrs.get("customKey", attrs.get("custom_key"))
    custom_key = None if key in (None, "") else _int(key, "customKey")
    if custom_key is not None and not MIN_CUSTOM_KEY <= custom_key <= _MAX_TLV_TYPE:
        raise RecipientError(
            f"value recipient {name!r}: customKey {custom_key} is not a TLV type >= 2^16"
        )
    custom_value = _optional_str(attrs.get("customValue", attrs.get("custom_value")))
    return ValueRecipient(
        name=name,
        type="node" if kind == "node" else "lnaddress",
        address=address,
        split=split,
        fee=_bool(attrs.get("fee", False)),
        custom_key=custom_key,
        custom_value=custom_value if custom_key is not None else None,
    )


def _recipients(items: Sequence[Mapping[str, Any]]) -> tuple[ValueRecipient, ...]:
    found = tuple(r for r in (_recipient(item) for item in items) if r is not None)
    if not found:
        raise RecipientError("the value block has no node or lightning-address recipient")
    return found


# --- XML ---------------------------------------------------------------------------------------


def _local(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _is_podcast(element: Element, name: str) -> bool:
    namespace, local = _local(element.tag)
    return local == name and namespace.rstrip("/").endswith("podcastindex.org/namespace/1.0")


def _child_text(parent: Element, name: str, *, podcast: bool = False) -> str | None:
    for child in parent:
        if (_is_podcast(child, name) if podcast else child.tag == name) and child.text:
            return child.text.strip() or None
    return None


def _lightning_value(parent: Element) -> Element | None:
    for child in parent:
        if _is_podcast(child, "value") and child.get("type", "").lower() == "lightning":
            return child
    return None


def _block_from_element(element: Element, **fields: str | None) -> ValueBlock:
    recipients = [dict(child.attrib) for child in element if _is_podcast(child, "valueRecipient")]
    return ValueBlock(
        recipients=_recipients(recipients),
        suggested=element.get("suggested"),
        method=element.get("method", "keysend"),
        **fields,
    )


def parse_value_block(xml: str | bytes, *, episode_guid: str | None = None) -> ValueBlock:
    """The lightning value block of a feed (RSS), or of its episode ``episode_guid``.

    The episode's own ``<podcast:value>`` overrides the channel's; value blocks of other
    types are ignored, and so are recipients of other address types.

    Raises:
        RecipientError: not well-formed or unsafe XML, no channel, no such episode, no
            lightning value block, or a malformed recipient.
    """
    try:
        root = SafeET.fromstring(xml)
    except (ParseError, DefusedXmlException) as exc:
        raise RecipientError(f"the feed is not usable XML: {exc}") from None
    channel = root if root.tag == "channel" else root.find("channel")
    if channel is None:
        raise RecipientError("the feed has no <channel>")
    fields: dict[str, str | None] = {
        "podcast": _child_text(channel, "title"),
        "podcast_guid": _child_text(channel, "guid", podcast=True),
    }
    value = _lightning_value(channel)
    if episode_guid is not None:
        item = next(
            (i for i in channel.findall("item") if _child_text(i, "guid") == episode_guid),
            None,
        )
        if item is None:
            raise RecipientError(f"the feed has no episode with the guid {episode_guid!r}")
        fields["episode"] = _child_text(item, "title")
        fields["episode_guid"] = episode_guid
        value = _lightning_value(item) or value
    if value is None:
        raise RecipientError("the feed has no lightning value block")
    return _block_from_element(value, **fields)


def value_block_from_dict(data: Mapping[str, Any]) -> ValueBlock:
    """A value block from JSON: the Podcast Index API's ``value`` object
    (``{"model": {...}, "destinations": [...]}``) or a flat
    ``{"type", "method", "suggested", "recipients": [...]}``; recipients use the feed's
    attribute names (``customKey``...). ``podcast``, ``episode``, ``podcast_guid`` and
    ``episode_guid`` keys are kept when present.

    Raises:
        RecipientError: not a lightning block, or a malformed recipient.
    """
    model = data.get("model", data)
    if not isinstance(model, Mapping):
        raise RecipientError("the value block's model is not an object")
    if str(model.get("type", "lightning")).lower() != "lightning":
        raise RecipientError(f"the value block is of type {model.get('type')!r}, not lightning")
    items = data.get("destinations", data.get("recipients"))
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        raise RecipientError("the value block's recipients are not a list of objects")
    return ValueBlock(
        recipients=_recipients(items),
        suggested=_optional_str(model.get("suggested")),
        method=str(model.get("method") or "keysend"),
        podcast=_optional_str(data.get("podcast")),
        episode=_optional_str(data.get("episode")),
        podcast_guid=_optional_str(data.get("podcast_guid")),
        episode_guid=_optional_str(data.get("episode_guid")),
    )


# --- amounts -----------------------------------------------------------------------------------


def value_amounts(block: ValueBlock, total_msat: int) -> list[int]:
    """The msat for each recipient, in order, in whole sats, adding up to ``total_msat``.

    Rule (value spec 1.4, "Payment calculation"): each ``fee`` recipient gets
    ``floor(total * split / 100)`` sats; what is left, rounding leftovers included, is
    divided among the non-fee recipients by their splits as :func:`~nwcd.recipients.split.
    split_sats` does (floors, the remaining sats to the largest split, the first on a tie).
    Non-fee recipients with split 0 get nothing; any recipient may round down to 0, and the
    caller skips those.

    Raises:
        RecipientError: ``total_msat`` is not a whole number of sats, the fee splits add
            up to more than 100 percent, or no non-fee recipient has a positive split.
    """
    total_sat = whole_sats(total_msat)
    fees = [r.split for r in block.recipients if r.fee]
    if sum(fees) > 100:
        raise RecipientError(f"the value block's fees add up to {sum(fees)} percent")
    shares = [(i, r.split) for i, r in enumerate(block.recipients) if not r.fee and r.split > 0]
    if not shares:
        raise RecipientError("the value block has no recipient with a positive split")
    amounts = [total_sat * r.split // 100 if r.fee else 0 for r in block.recipients]
    rest = split_sats(total_sat - sum(amounts), [split for _, split in shares])
    for (index, _), sats in zip(shares, rest, strict=True):
        amounts[index] = sats
    return [sats * 1000 for sats in amounts]


# --- the bLIP-10 record ------------------------------------------------------------------------


def boostagram(
    podcast: str | None,
    episode: str | None,
    action: str,
    app_name: str,
    value_msat_total: int,
    *,
    sender_name: str | None = None,
    message: str | None = None,
    podcast_guid: str | None = None,
    episode_guid: str | None = None,
    ts: int | None = None,
    url: str | None = None,
    feed_id: int | None = None,
    item_id: int | None = None,
    app_version: str | None = None,
    sender_id: str | None = None,
    boost_link: str | None = None,
    uuid: str | None = None,
    reply_address: str | None = None,
) -> dict[str, Any]:
    """The bLIP-10 JSON record (TLV 7629169) for a payment to a podcast; unset fields omitted.

    ``value_msat_total`` is what the listener chose, before the split. bLIP-10 wants the
    podcast named by at least one of ``podcast``, ``podcast_guid`` (its ``guid``), ``url``
    or ``feed_id``; a ``message`` makes it a boostagram and belongs to boosts and autos only.

    Raises:
        RecipientError: an unknown action, a message on a stream, no podcast identifier,
            a negative amount or timestamp.
    """
    if action not in _ACTIONS:
        raise RecipientError(f"the action {action!r} is not one of boost, stream, auto")
    if message and action == "stream":
        raise RecipientError("a stream payment carries no message")
    if podcast is None and podcast_guid is None and url is None and feed_id is None:
        raise RecipientError("a boostagram names the podcast (title, guid, feed URL or ID)")
    if value_msat_total < 0 or (ts is not None and ts < 0):
        raise RecipientError("amounts and timestamps in a boostagram are not negative")
    record: dict[str, Any] = {
        "podcast": podcast,
        "guid": podcast_guid,
        "feedID": feed_id,
        "url": url,
        "episode": episode,
        "episode_guid": episode_guid,
        "itemID": item_id,
        "ts": ts,
        "action": action,
        "app_name": app_name,
        "app_version": app_version,
        "value_msat_total": value_msat_total,
        "sender_name": sender_name,
        "sender_id": sender_id,
        "message": message or None,
        "boost_link": boost_link,
        "uuid": uuid,
        "reply_address": reply_address,
    }
    return {key: value for key, value in record.items() if value is not None}


def tlv_records(
    recipient: ValueRecipient, record: Mapping[str, Any], *, value_msat: int
) -> list[dict[str, Any]]:
    """The NIP-47 ``tlv_records`` of a keysend to ``recipient``: ``{"type", "value" (hex)}``.

    The bLIP-10 record gains this split's ``name`` and ``value_msat`` and is sent as UTF-8
    JSON; the recipient's ``customKey`` record, when it has one, carries ``customValue`` as
    UTF-8 (the value spec's rule; an absent value is sent empty).
    """
    if value_msat < 0:
        raise RecipientError("a split's value_msat must not be negative")
    own = {**record, "value_msat": value_msat}
    if recipient.name:
        own["name"] = recipient.name
    text = json.dumps(own, ensure_ascii=False, separators=(",", ":"))
    records: list[dict[str, Any]] = [{"type": BOOSTAGRAM_TLV, "value": text.encode().hex()}]
    if recipient.custom_key is not None:
        value = (recipient.custom_value or "").encode("utf-8").hex()
        records.append({"type": recipient.custom_key, "value": value})
    return records
