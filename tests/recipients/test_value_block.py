"""Podcasting 2.0 value blocks: feeds and dicts, the spec's amounts, the bLIP-10 record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nwcd.recipients.errors import RecipientError
from nwcd.recipients.value_block import (
    BOOSTAGRAM_TLV,
    ValueBlock,
    ValueRecipient,
    boostagram,
    parse_value_block,
    tlv_records,
    value_amounts,
    value_block_from_dict,
)

FEEDS = Path(__file__).parent / "feeds"
SINGLE = (FEEDS / "single.xml").read_bytes()
SPLITS = (FEEDS / "splits.xml").read_text()
HOST = "02a9cd2bca29dd7e29bdfdf485a8e78b8ccf9327517afa03a59be8f62a58792e1b"
A = "02d5c1bf8b940dc9cadca86d1b0a3c37fbe39cee4c7e839e33bef9174531d27f52"
B = "032f4ffbbafffbe51726ad3c164a3d0d37ec27bc67b29a159b0f49ae8ac21b8508"
C = "03ae9f91a0cb8ff43840e3c322c4c61f019d8c1c3cea15a25cfc425ac605e61a4a"
D = "039e2bd74dadb4a50c3be632a5068cbc820d520635acc5c527a2171ab6cab43a9c"


def node(name: str, address: str, split: int, *, fee: bool = False) -> ValueRecipient:
    return ValueRecipient(name, "node", address, split, fee)


def block(*recipients: ValueRecipient) -> ValueBlock:
    return ValueBlock(recipients=recipients)


# --- parsing -----------------------------------------------------------------------------------


def test_single_recipient_feed() -> None:
    parsed = parse_value_block(SINGLE)
    assert parsed == ValueBlock(
        recipients=(node("Host", HOST, 100),),
        suggested="0.00000021000",
        method="keysend",
        podcast="Solo Show",
        podcast_guid="917393e3-1b1e-5cef-ace4-edaa54e1f810",
    )
    assert parsed.suggested_msat == 21_000
    # An episode without its own block gets the channel's, with the episode named.
    episode = parse_value_block(SINGLE, episode_guid="solo-1")
    assert (episode.episode, episode.episode_guid) == ("#01 - Hello", "solo-1")
    assert episode.recipients == parsed.recipients


def test_feed_with_fee_and_mixed_recipients() -> None:
    parsed = parse_value_block(SPLITS)
    assert parsed.podcast == "Two Hosts & Friends"
    assert parsed.recipients == (
        node("Host A", A, 49),
        ValueRecipient("Host B", "node", B, 46, False, 696969, "eChoVKtO1KujpAA5HCoB"),
        ValueRecipient("Chapters", "lnaddress", "chapters@getalby.com", 5),
        node("Podcastindex.org (Donation)", C, 1, fee=True),
    )
    # The hive block and the bolt12 recipient are not lightning we can pay: ignored.


def test_item_value_block_overrides_the_channels() -> None:
    parsed = parse_value_block(SPLITS, episode_guid="ep-2")
    assert parsed.episode == "Episode 2: With a Guest"
    assert parsed.suggested == "0.00000010000"
    assert parsed.recipients == (
        node("Host A", A, 50),
        ValueRecipient("Guest", "lnaddress", "Guest@Example.com", 50),
        node("App fee", C, 2, fee=True),
    )
    assert parse_value_block(SPLITS, episode_guid="ep-1").recipients[0] == node("Host A", A, 49)


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ("<rss><channel>", "not usable XML"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><rss><channel>&a;</channel></rss>', "not usable XML"),
        ("<rss><other/></rss>", "no <channel>"),
        ("<rss><channel><title>x</title></channel></rss>", "no lightning value block"),
    ],
)
def test_unusable_feeds(xml: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        parse_value_block(xml)


def test_unknown_episode() -> None:
    with pytest.raises(RecipientError, match="no episode with the guid 'ep-9'"):
        parse_value_block(SPLITS, episode_guid="ep-9")


NS = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'


def feed_with(recipient: str) -> str:
    return (
        f'<rss {NS}><channel><podcast:value type="lightning" method="keysend">'
        f"{recipient}</podcast:value></channel></rss>"
    )


@pytest.mark.parametrize(
    ("recipient", "reason"),
    [
        ('<podcast:valueRecipient type="node" address="02ab" split="1"/>', "not a node pubkey"),
        (
            f'<podcast:valueRecipient type="lnaddress" address="{A}" split="1"/>',
            "not a lightning address",
        ),
        (f'<podcast:valueRecipient type="node" address="{A}" split="x"/>', "split 'x'"),
        (f'<podcast:valueRecipient type="node" address="{A}"/>', "split None"),
        (f'<podcast:valueRecipient type="node" address="{A}" split="-1"/>', "split '-1'"),
        (
            f'<podcast:valueRecipient type="node" address="{A}" split="1" customKey="5"/>',
            "customKey 5 is not a TLV type",
        ),
        (
            f'<podcast:valueRecipient type="node" address="{A}" split="1" customKey="k"/>',
            "customKey 'k'",
        ),
        ('<podcast:valueRecipient type="bolt12" address="lno1" split="1"/>', "no node or"),
        ("", "no node or lightning-address recipient"),
    ],
)
def test_malformed_recipients(recipient: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        parse_value_block(feed_with(recipient))


def test_suggested_msat_of_odd_values() -> None:
    assert ValueBlock(recipients=(), suggested="abc").suggested_msat is None
    assert ValueBlock(recipients=(), suggested="-1").suggested_msat is None
    assert ValueBlock(recipients=(), suggested=None).suggested_msat is None
    assert ValueBlock(recipients=(), suggested="0.00000000001").suggested_msat == 1


def test_podcast_index_api_dict() -> None:
    data: dict[str, Any] = {
        "model": {"type": "lightning", "method": "keysend", "suggested": "0.00000005000"},
        "destinations": [
            {"name": "Host", "address": A, "type": "node", "split": 95},
            {"name": "App", "address": C, "type": "node", "split": 5, "fee": True},
            {"name": "Hive", "address": "x", "type": "account", "split": 1},
            {
                "name": "Wallet",
                "address": B,
                "type": "node",
                "split": 5,
                "customKey": "112111100",
                "customValue": "wal_abc",
            },
        ],
        "podcast": "Show",
        "episode_guid": "ep-1",
    }
    parsed = value_block_from_dict(data)
    assert parsed == ValueBlock(
        recipients=(
            node("Host", A, 95),
            node("App", C, 5, fee=True),
            ValueRecipient("Wallet", "node", B, 5, False, 112111100, "wal_abc"),
        ),
        suggested="0.00000005000",
        method="keysend",
        podcast="Show",
        episode_guid="ep-1",
    )


def test_flat_dict_matches_the_xml() -> None:
    flat = {
        "type": "lightning",
        "method": "keysend",
        "suggested": "0.00000021000",
        "podcast": "Solo Show",
        "podcast_guid": "917393e3-1b1e-5cef-ace4-edaa54e1f810",
        "recipients": [{"name": "Host", "type": "node", "address": HOST, "split": "100"}],
    }
    assert value_block_from_dict(flat) == parse_value_block(SINGLE)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"model": {"type": "hive"}, "destinations": []}, "of type 'hive'"),
        ({"model": "lightning"}, "model is not an object"),
        ({"recipients": "x"}, "not a list of objects"),
        ({"recipients": [1]}, "not a list of objects"),
        ({"recipients": [{"type": "node", "address": A, "split": True}]}, "split True"),
    ],
)
def test_bad_dicts(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        value_block_from_dict(data)


# --- amounts -----------------------------------------------------------------------------------


def test_spec_example_1_no_fees() -> None:
    three = block(node("A", A, 50), node("B", B, 40), node("C", C, 10))
    assert value_amounts(three, 300_000) == [150_000, 120_000, 30_000]


def test_spec_example_2_splits_not_adding_to_100() -> None:
    three = block(node("A", A, 100), node("B", B, 99), node("C", C, 1))
    assert value_amounts(three, 1_000_000) == [500_000, 495_000, 5_000]


def test_spec_example_3_fees_off_the_top() -> None:
    four = block(
        node("A", A, 101), node("B", B, 99), node("C", C, 16, fee=True), node("D", D, 4, fee=True)
    )
    assert value_amounts(four, 2_500_000) == [1_010_000, 990_000, 400_000, 100_000]


def test_real_feed_one_percent_fee_with_rounding() -> None:
    parsed = parse_value_block(SPLITS)
    # 1000 sats: the fee is floor(1000 * 1%) = 10; 990 shared 49:46:5 =
    # floor 485.1, 455.4, 49.5 -> 485, 455, 49, and the 1 sat left goes to the largest (49).
    assert value_amounts(parsed, 1_000_000) == [486_000, 455_000, 49_000, 10_000]
    # 50 sats: the fee rounds down to 0 sats (the caller skips it), all 50 go to the hosts.
    assert value_amounts(parsed, 50_000) == [25_000, 23_000, 2_000, 0]


def test_zero_split_recipients_get_nothing() -> None:
    two = block(node("A", A, 0), node("B", B, 3))
    assert value_amounts(two, 10_000) == [0, 10_000]


@pytest.mark.parametrize(
    ("recipients", "total", "reason"),
    [
        ((node("A", A, 1),), 1500, "not a whole, non-negative number of sats"),
        ((node("A", A, 1),), -1000, "not a whole"),
        ((node("A", A, 1), node("F", C, 60, fee=True), node("G", D, 41, fee=True)), 1000, "101"),
        ((node("F", C, 10, fee=True),), 1000, "no recipient with a positive split"),
        ((node("A", A, 0),), 1000, "no recipient with a positive split"),
    ],
)
def test_amounts_refused(recipients: tuple[ValueRecipient, ...], total: int, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        value_amounts(block(*recipients), total)


# --- bLIP-10 -----------------------------------------------------------------------------------


def test_boostagram_record() -> None:
    record = boostagram(
        "Two Hosts & Friends",
        "Episode 2",
        "boost",
        "nwcd",
        2_100_000,
        sender_name="Satoshi",
        message="Great show ⚡",
        podcast_guid="c0ffee00",
        episode_guid="ep-2",
        ts=33,
        url="https://example.com/feed.xml",
    )
    assert record == {
        "podcast": "Two Hosts & Friends",
        "guid": "c0ffee00",
        "url": "https://example.com/feed.xml",
        "episode": "Episode 2",
        "episode_guid": "ep-2",
        "ts": 33,
        "action": "boost",
        "app_name": "nwcd",
        "value_msat_total": 2_100_000,
        "sender_name": "Satoshi",
        "message": "Great show ⚡",
    }
    stream = boostagram(None, None, "stream", "nwcd", 1000, feed_id=920666, item_id=7)
    assert stream == {
        "feedID": 920666,
        "itemID": 7,
        "action": "stream",
        "app_name": "nwcd",
        "value_msat_total": 1000,
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "reason"),
    [
        (("P", None, "tip", "app", 1), {}, "not one of boost, stream, auto"),
        (("P", None, "stream", "app", 1), {"message": "hi"}, "carries no message"),
        ((None, "E", "boost", "app", 1), {}, "names the podcast"),
        (("P", None, "boost", "app", -1), {}, "not negative"),
        (("P", None, "boost", "app", 1), {"ts": -5}, "not negative"),
    ],
)
def test_boostagram_refuses(args: tuple[Any, ...], kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        boostagram(*args, **kwargs)


def test_tlv_records() -> None:
    record = boostagram("Show", "Ep", "boost", "nwcd", 100_000, message="héllo")
    wallet = ValueRecipient("Host B", "node", B, 46, False, 696969, "eChoVKtO1KujpAA5HCoB")
    records = tlv_records(wallet, record, value_msat=46_000)
    assert [r["type"] for r in records] == [BOOSTAGRAM_TLV, 696969]
    sent = json.loads(bytes.fromhex(records[0]["value"]).decode("utf-8"))
    assert sent == {**record, "name": "Host B", "value_msat": 46_000}
    assert bytes.fromhex(records[1]["value"]) == b"eChoVKtO1KujpAA5HCoB"
    assert "name" not in record  # the caller's record is left as it was
    plain = tlv_records(node("", A, 1), record, value_msat=1000)
    assert len(plain) == 1
    assert "name" not in json.loads(bytes.fromhex(plain[0]["value"]))
    empty_value = ValueRecipient("X", "node", A, 1, False, 818818, None)
    assert tlv_records(empty_value, record, value_msat=1000)[1] == {"type": 818818, "value": ""}
    with pytest.raises(RecipientError, match="must not be negative"):
        tlv_records(wallet, record, value_msat=-1)
