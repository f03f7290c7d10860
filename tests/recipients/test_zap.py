"""Zap requests: building them, the LNURL server's Appendix D checks, zap split weights."""

from __future__ import annotations

import hashlib
import json

import pytest

from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import description_hash
from nwcd.recipients.zap import (
    MAX_ZAP_REQUEST_LENGTH,
    ZapSplit,
    check_zap_request,
    zap_request,
    zap_request_json,
    zap_splits,
)

SENDER = SecretKey(bytes(31) + b"\x01")
RECIPIENT = SecretKey(bytes(31) + b"\x02").public_key.hex
OTHER = SecretKey(bytes(31) + b"\x03").public_key.hex
EVENT_ID = "ab" * 32
LNURL = "lnurl1dp68gurn8ghj7um5v93kketj9ehx2amn9uh8wetvdskkkmn0wahz7mrww4excup0dajx2mrv92x9xp"
RELAYS = ["wss://relay.example.com", "wss://other.example.org"]
NOT_A_POINT = "ff" * 32


def make_request(**changes: object) -> Event:
    args: dict[str, object] = {
        "recipient_pubkey": RECIPIENT,
        "amount_msat": 21_000,
        "relays": RELAYS,
        "lnurl": LNURL,
        "event_id": EVENT_ID,
        "comment": "Zap! ⚡",
        "created_at": 1_700_000_000,
    }
    args.update(changes)
    return zap_request(SENDER, **args)  # type: ignore[arg-type]


def signed(tags: list[list[str]], *, kind: int = Kind.ZAP_REQUEST) -> str:
    event = sign_event(SENDER, kind=kind, content="", tags=tags, created_at=1_700_000_000)
    return zap_request_json(event)


GOOD_TAGS = [["relays", *RELAYS], ["amount", "21000"], ["lnurl", LNURL], ["p", RECIPIENT]]


def test_zap_request_carries_the_nip57_tags() -> None:
    event = make_request(coordinate=f"30023:{RECIPIENT}:my-article")
    assert event.kind == 9734
    assert event.pubkey == SENDER.public_key.hex
    assert event.content == "Zap! ⚡"
    assert event.tags == (
        ("relays", *RELAYS),
        ("amount", "21000"),
        ("lnurl", LNURL),
        ("p", RECIPIENT),
        ("e", EVENT_ID),
        ("a", f"30023:{RECIPIENT}:my-article"),
    )
    event.verify()


def test_zap_request_without_event_is_a_profile_zap() -> None:
    event = make_request(event_id=None, comment="")
    assert event.tag_values("e") == []
    assert event.content == ""


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"recipient_pubkey": "npub1xyz"}, "is not a nostr public key"),
        ({"recipient_pubkey": NOT_A_POINT}, "is not a nostr public key"),
        ({"amount_msat": 0}, "must be positive"),
        ({"relays": []}, "at least one relay"),
        ({"event_id": "AB" * 32}, "is not an event id"),
        ({"coordinate": "30023:nothex:d"}, "is not an event coordinate"),
        ({"coordinate": "kind:" + RECIPIENT + ":d"}, "is not an event coordinate"),
    ],
)
def test_zap_request_refuses_malformed_arguments(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        make_request(**changes)


def test_json_is_compact_and_hash_is_of_the_utf8_text() -> None:
    event = make_request()
    text = zap_request_json(event)
    assert ", " not in text
    assert "⚡" in text
    assert json.loads(text) == event.to_json()
    # sha256 of the UTF-8 bytes, as the invoice's description hash must be.
    assert description_hash(text) == hashlib.sha256(text.encode()).hexdigest()
    assert description_hash("{}") == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


def test_a_good_request_passes_and_comes_back_as_the_event() -> None:
    event = make_request(coordinate=f"30023:{RECIPIENT}:")
    assert check_zap_request(zap_request_json(event), amount_msat=21_000) == event
    assert check_zap_request(zap_request_json(event), amount_msat=None) == event


def test_the_amount_tag_is_optional() -> None:
    text = signed([["relays", *RELAYS], ["p", RECIPIENT]])
    assert check_zap_request(text, amount_msat=5000).tag_value("amount") is None


def test_a_sender_tag_with_a_pubkey_passes() -> None:
    text = signed([*GOOD_TAGS, ["P", SENDER.public_key.hex]])
    assert check_zap_request(text, amount_msat=21_000).tag_value("P") == SENDER.public_key.hex


def tampered_signature() -> str:
    data = make_request().to_json()
    data["content"] = "changed"
    return json.dumps(data)


def other_signature() -> str:
    data = make_request().to_json()
    data["sig"] = make_request(comment="other").sig
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "not a valid nostr event: an event is a JSON object"),
        ('{"kind": 9734}', "not a valid nostr event: missing event fields"),
        (tampered_signature(), "event id does not match"),
        (other_signature(), "signature is invalid"),
        (signed(GOOD_TAGS, kind=1), "of kind 9734, not 1"),
        (signed([]), "has no tags"),
        (signed([["relays", *RELAYS]]), "exactly one 'p' tag, this one 0"),
        (signed([*GOOD_TAGS, ["p", OTHER]]), "exactly one 'p' tag, this one 2"),
        (signed([["relays", *RELAYS], ["p"]]), "'p' tag has no value"),
        (signed([["relays", *RELAYS], ["p", NOT_A_POINT]]), "'p' tag is not a nostr public key"),
        (signed([*GOOD_TAGS, ["e", EVENT_ID], ["e", EVENT_ID]]), "at most one 'e' tag"),
        (signed([*GOOD_TAGS, ["e", "1234"]]), "'e' tag is not an event id"),
        (signed([["p", RECIPIENT], ["amount", "21000"]]), "names no relays"),
        (signed([["p", RECIPIENT], ["relays"]]), "names no relays"),
        (signed([["relays", *RELAYS], ["p", RECIPIENT], ["amount", "2.1"]]), "not a positive"),
        (signed([["relays", *RELAYS], ["p", RECIPIENT], ["amount", "0"]]), "not a positive"),
        (signed([*GOOD_TAGS, ["amount", "21000"]]), "at most one 'amount' tag"),
        (signed([*GOOD_TAGS, ["a", "x:y:z"]]), "'a' tag is not an event coordinate"),
        (signed([*GOOD_TAGS, ["P", OTHER], ["P", OTHER]]), "at most one 'P' tag"),
        (signed([*GOOD_TAGS, ["P", "xyz"]]), "'P' tag is not a nostr public key"),
        ("x" * (MAX_ZAP_REQUEST_LENGTH + 1), "longer than"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        check_zap_request(text, amount_msat=21_000)


def test_the_amount_must_match_the_callback_amount() -> None:
    with pytest.raises(RecipientError, match="is for 21000 msat but the callback asks for 1000"):
        check_zap_request(zap_request_json(make_request()), amount_msat=1000)


def zapped(tags: list[list[str]]) -> Event:
    return sign_event(SENDER, kind=1, content="a note", tags=tags, created_at=1)


def test_splits_without_weights_are_equal() -> None:
    event = zapped([["zap", RECIPIENT, "wss://a.example"], ["zap", OTHER]])
    assert zap_splits(event) == [
        ZapSplit(RECIPIENT, "wss://a.example", 1.0),
        ZapSplit(OTHER, None, 1.0),
    ]


def test_splits_with_weights_follow_them() -> None:
    event = zapped(
        [
            ["zap", RECIPIENT, "wss://a.example", "1"],
            ["zap", OTHER, "", "2.5"],
            ["p", RECIPIENT],
        ]
    )
    assert zap_splits(event) == [
        ZapSplit(RECIPIENT, "wss://a.example", 1.0),
        ZapSplit(OTHER, None, 2.5),
    ]


def test_partial_weights_leave_the_unweighted_out() -> None:
    event = zapped([["zap", RECIPIENT, "wss://a", "3"], ["zap", OTHER, "wss://b"]])
    assert [split.weight for split in zap_splits(event)] == [3.0, 0.0]


@pytest.mark.parametrize("weight", ["-1", "nan", "inf", "lots", "0"])
def test_unusable_weights_count_as_zero(weight: str) -> None:
    event = zapped([["zap", RECIPIENT, "wss://a", weight], ["zap", OTHER, "wss://b", "1"]])
    assert [split.weight for split in zap_splits(event)] == [0.0, 1.0]


def test_invalid_pubkeys_are_skipped_and_no_tags_give_nothing() -> None:
    event = zapped([["zap", NOT_A_POINT, "", "1"], ["zap"], ["zap", "npub1x"], ["zap", OTHER]])
    assert zap_splits(event) == [ZapSplit(OTHER, None, 1.0)]
    assert zap_splits(zapped([])) == []
