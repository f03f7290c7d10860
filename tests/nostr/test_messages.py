"""NIP-01 / NIP-42 wire messages: round trips, strict parsing, never another exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import InvalidEvent, InvalidMessage
from nwcd.nostr.event import sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.messages import (
    MAX_SUBSCRIPTION_ID,
    AuthChallenge,
    ClientAuth,
    ClientClose,
    ClientEvent,
    ClientMessage,
    ClientReq,
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayMessage,
    RelayNotice,
    RelayOk,
    encode,
    parse_client_message,
    parse_relay_message,
)

SECRET = SecretKey.from_hex("67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa")
EVENT = sign_event(
    SECRET, kind=23194, content="é \n \u2028 🤙", tags=[["p", "ab" * 32]], created_at=1700000000
)
AUTH_EVENT = sign_event(
    SECRET,
    kind=22242,
    content="",
    tags=[["relay", "wss://relay.example"], ["challenge", "c-1"]],
    created_at=1700000000,
)
EV = EVENT.to_json()
FILTER = Filter(kinds=(23194,), tags={"p": ("ab" * 32,)}, since=5)

RELAY_MESSAGES: list[RelayMessage] = [
    RelayEvent("sub-1", EVENT),
    RelayOk(EVENT.id, True, ""),
    RelayOk(EVENT.id, False, "blocked: you are banned"),
    RelayEose("sub-1"),
    RelayClosed("s" * MAX_SUBSCRIPTION_ID, "auth-required: please authenticate"),
    RelayNotice('hello "world" \\ ✓'),
    AuthChallenge("challenge-string"),
]
CLIENT_MESSAGES: list[ClientMessage] = [
    ClientEvent(EVENT),
    ClientReq("sub-1", (FILTER,)),
    ClientReq("x", (FILTER, Filter(), Filter(ids=(EVENT.id,), limit=0))),
    ClientClose("sub-1"),
    ClientAuth(AUTH_EVENT),
]


def _text(*items: Any) -> str:
    return json.dumps(list(items))


# --- round trips ------------------------------------------------------------


@pytest.mark.parametrize("message", RELAY_MESSAGES, ids=lambda m: type(m).__name__)
def test_relay_message_round_trip(message: RelayMessage) -> None:
    text = encode(message)
    assert parse_relay_message(text) == message
    assert parse_relay_message(text.encode()) == message
    assert json.loads(text) == message.to_json()


@pytest.mark.parametrize("message", CLIENT_MESSAGES, ids=lambda m: type(m).__name__)
def test_client_message_round_trip(message: ClientMessage) -> None:
    text = encode(message)
    assert parse_client_message(text) == message
    assert parse_client_message(text.encode()) == message
    assert json.loads(text) == message.to_json()


def test_encode_is_compact_and_keeps_non_ascii() -> None:
    text = encode(RelayNotice("é ✓"))
    assert text == '["NOTICE","é ✓"]'
    assert encode(ClientClose("a")) == '["CLOSE","a"]'


def test_wire_shapes() -> None:
    assert RelayEvent("s", EVENT).to_json() == ["EVENT", "s", EV]
    assert RelayOk("i", True, "m").to_json() == ["OK", "i", True, "m"]
    assert RelayEose("s").to_json() == ["EOSE", "s"]
    assert RelayClosed("s", "m").to_json() == ["CLOSED", "s", "m"]
    assert AuthChallenge("c").to_json() == ["AUTH", "c"]
    assert ClientEvent(EVENT).to_json() == ["EVENT", EV]
    assert ClientReq("s", (Filter(), FILTER)).to_json() == ["REQ", "s", {}, FILTER.to_json()]
    assert ClientAuth(AUTH_EVENT).to_json() == ["AUTH", AUTH_EVENT.to_json()]


def test_lenient_relay_forms() -> None:
    # NIP-01 makes the OK message mandatory, but some relays omit it; same for CLOSED.
    assert parse_relay_message(_text("OK", EVENT.id, True)) == RelayOk(EVENT.id, True, "")
    assert parse_relay_message(_text("CLOSED", "s")) == RelayClosed("s", "")


def test_embedded_event_is_not_verified_by_parsing() -> None:
    """Parsing checks shape only: the caller verifies (relays send junk; we must not crash)."""
    forged = EV | {"content": "changed"}
    message = parse_relay_message(_text("EVENT", "s", forged))
    assert isinstance(message, RelayEvent)
    with pytest.raises(InvalidEvent):
        message.event.verify()


# --- strict parsing ---------------------------------------------------------

BAD_COMMON: list[str | bytes] = [
    "",
    "not json",
    "{}",
    '{"EVENT": 1}',
    "null",
    '"EVENT"',
    "[]",
    "[1]",
    "[null]",
    '[["EVENT"]]',
    "[" * 100_000,
    b"\xff\xfe\x00",
    b'["NOTICE", "\xff"]',
]

BAD_RELAY: list[str | bytes] = [
    _text("EVENT", "s"),
    _text("EVENT", EV),
    _text("EVENT", "s", EV, "extra"),
    _text("EVENT", "", EV),
    _text("EVENT", "s" * (MAX_SUBSCRIPTION_ID + 1), EV),
    _text("EVENT", 1, EV),
    _text("OK", EVENT.id),
    _text("OK", EVENT.id, "true", ""),
    _text("OK", EVENT.id, 1, ""),
    _text("OK", EVENT.id, None, ""),
    _text("OK", 1, True, ""),
    _text("OK", EVENT.id, True, None),
    _text("OK", EVENT.id, True, "", "extra"),
    _text("EOSE"),
    _text("EOSE", ""),
    _text("EOSE", None),
    _text("EOSE", "s", "extra"),
    _text("CLOSED"),
    _text("CLOSED", 5, "m"),
    _text("CLOSED", "s", 5),
    _text("CLOSED", "s", "m", "x"),
    _text("NOTICE"),
    _text("NOTICE", 1),
    _text("NOTICE", "a", "b"),
    _text("AUTH"),
    _text("AUTH", {"challenge": "c"}),
    _text("AUTH", "c", "d"),
    _text("REQ", "s", {}),
    _text("CLOSE", "s"),
    _text("COUNT", "s", {"count": 1}),
    _text("event", "s", EV),
]

BAD_CLIENT: list[str | bytes] = [
    _text("EVENT"),
    _text("EVENT", "s", EV),
    _text("EVENT", EV, EV),
    _text("REQ"),
    _text("REQ", "s"),
    _text("REQ", "", {}),
    _text("REQ", "s" * (MAX_SUBSCRIPTION_ID + 1), {}),
    _text("REQ", 1, {}),
    _text("REQ", "s", []),
    _text("REQ", "s", {}, None),
    _text("REQ", "s", {"kinds": "1"}),
    _text("REQ", "s", {"bogus": 1}),
    _text("CLOSE"),
    _text("CLOSE", ""),
    _text("CLOSE", 1),
    _text("CLOSE", "s", "x"),
    _text("AUTH"),
    _text("AUTH", AUTH_EVENT.to_json(), "x"),
    _text("OK", EVENT.id, True, ""),
    _text("EOSE", "s"),
    _text("NOTICE", "n"),
    _text("COUNT", "s", {}),
]

BAD_EVENT_RELAY = [
    _text("EVENT", "s", EV | {"kind": "1"}),
    _text("EVENT", "s", None),
    _text("EVENT", "s", [EV]),
]
BAD_EVENT_CLIENT = [
    _text("EVENT", EV | {"sig": "00"}),
    _text("EVENT", {k: v for k, v in EV.items() if k != "id"}),
    _text("AUTH", AUTH_EVENT.to_json() | {"tags": [["relay", None]]}),
    _text("AUTH", None),
    _text("AUTH", "a relay's challenge, sent the wrong way"),
]


@pytest.mark.parametrize("text", BAD_COMMON + BAD_RELAY, ids=lambda t: repr(t)[:50])
def test_malformed_relay_messages(text: str | bytes) -> None:
    with pytest.raises(InvalidMessage):
        parse_relay_message(text)


@pytest.mark.parametrize("text", BAD_COMMON + BAD_CLIENT, ids=lambda t: repr(t)[:50])
def test_malformed_client_messages(text: str | bytes) -> None:
    with pytest.raises(InvalidMessage):
        parse_client_message(text)


@pytest.mark.parametrize("text", BAD_EVENT_RELAY, ids=lambda t: t[:50])
def test_malformed_event_in_relay_message(text: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_relay_message(text)


@pytest.mark.parametrize("text", BAD_EVENT_CLIENT, ids=lambda t: t[:50])
def test_malformed_event_in_client_message(text: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_client_message(text)


# --- property tests ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=15,
)
message_types = st.sampled_from(
    ["EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "AUTH", "REQ", "CLOSE", "COUNT"]
)
ids_and_subs = st.sampled_from(["s", EVENT.id, "", "s" * 65])
known_parts = st.sampled_from([EV, AUTH_EVENT.to_json(), {}, FILTER.to_json(), True, False])
arrays = st.tuples(
    message_types, st.lists(json_values | ids_and_subs | known_parts, max_size=4)
).map(lambda t: [t[0], *t[1]])


def _parse_both(text: str | bytes) -> None:
    for parse in (parse_relay_message, parse_client_message):
        try:
            message = parse(text)
        except (InvalidMessage, InvalidEvent):
            continue
        # Whatever parses re-encodes and parses to the same value.
        assert parse(encode(message)) == message


@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _parse_both(text)


@given(st.binary(max_size=100))
def test_random_bytes(data: bytes) -> None:
    _parse_both(data)


@given(arrays)
def test_random_json_arrays(data: list[Any]) -> None:
    _parse_both(json.dumps(data))


@given(json_values)
def test_random_json_values(data: object) -> None:
    _parse_both(json.dumps(data))
