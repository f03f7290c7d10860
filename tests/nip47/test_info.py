"""The info event (kind 13194): what we advertise and how clients read it."""

from __future__ import annotations

import json

import pytest

from nwcd.nip47.encryption import Scheme
from nwcd.nip47.info import NOTIFICATION_TYPES, build_info_event, parse_info_event
from nwcd.nostr.event import parse_event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind

WALLET = SecretKey.generate()
APP = SecretKey.generate().public_key.hex


def test_default_info_event() -> None:
    event = build_info_event(
        WALLET, ["pay_invoice", "get_balance"], created_at=1_700_000_000, app_pubkey=APP
    )
    assert event.kind == Kind.NWC_INFO == 13194
    assert event.pubkey == WALLET.public_key.hex
    assert event.created_at == 1_700_000_000
    assert event.content == "pay_invoice get_balance notifications"
    assert event.tags == (
        ("encryption", "nip44_v2 nip04"),
        ("notifications", "payment_received payment_sent"),
        ("p", APP),
    )
    event.verify()
    wire = json.loads(json.dumps(event.to_json()))
    assert wire["kind"] == 13194
    parse_event(wire).verify()


def test_notification_types() -> None:
    assert NOTIFICATION_TYPES == ("payment_received", "payment_sent")


def test_without_notifications_or_app() -> None:
    event = build_info_event(WALLET, ["get_info"], created_at=5, notifications=())
    assert event.content == "get_info"
    assert event.tag_value("notifications") is None
    assert event.tag_value("p") is None
    assert event.tag_value("encryption") == "nip44_v2 nip04"
    event.verify()


def test_custom_encryption_and_notifications() -> None:
    event = build_info_event(
        WALLET,
        (),
        created_at=5,
        notifications=["payment_received"],
        encryption=[Scheme.NIP04],
    )
    assert event.content == "notifications"
    assert event.tag_value("encryption") == "nip04"
    assert event.tag_value("notifications") == "payment_received"
    event.verify()


def test_parse_our_own_event() -> None:
    event = build_info_event(WALLET, ["pay_invoice", "multi_pay_invoice"], created_at=5)
    methods, schemes = parse_info_event(event)
    assert methods == {"pay_invoice", "multi_pay_invoice", "notifications"}
    assert schemes == (Scheme.NIP44_V2, Scheme.NIP04)


@pytest.mark.parametrize(
    "content",
    [
        "pay_invoice,get_balance,get_info",
        "pay_invoice, get_balance, get_info",
        "pay_invoice get_balance  get_info\n",
        "pay_invoice|get_balance|get_info",
    ],
)
def test_parse_legacy_content_without_encryption_tag(content: str) -> None:
    event = sign_event(WALLET, kind=Kind.NWC_INFO, content=content, created_at=5)
    event.verify()
    methods, schemes = parse_info_event(event)
    assert methods == {"pay_invoice", "get_balance", "get_info"}
    assert schemes == (Scheme.NIP04,)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nip44_v2", (Scheme.NIP44_V2,)),
        ("nip04 nip44_v2", (Scheme.NIP44_V2, Scheme.NIP04)),
        ("nip99", (Scheme.NIP04,)),  # nothing we know: fall back to NIP-04
    ],
)
def test_parse_encryption_tag(value: str, expected: tuple[Scheme, ...]) -> None:
    event = sign_event(
        WALLET, kind=Kind.NWC_INFO, content="get_info", tags=[["encryption", value]], created_at=5
    )
    assert parse_info_event(event)[1] == expected


def test_notifications_go_out_in_the_app_s_schemes_or_both_when_unknown() -> None:
    from nwcd.nip47.encryption import Scheme
    from nwcd.nip47.info import notification_kinds
    from nwcd.nostr.kinds import Kind

    both = ((Scheme.NIP44_V2, Kind.NWC_NOTIFICATION), (Scheme.NIP04, Kind.NWC_NOTIFICATION_NIP04))
    assert notification_kinds(()) == both
    assert notification_kinds([Scheme.NIP04]) == (both[1],)
    assert notification_kinds({Scheme.NIP44_V2}) == (both[0],)
    assert notification_kinds([Scheme.NIP04, Scheme.NIP44_V2]) == both
