"""NIP-01 events: real signed events, the NIP-47 appendix trap, strict parsing, ids.

Ids are cross-checked two ways: against an independent serializer written here
from the NIP-01 escaping rules, and against rust-nostr (``nostr_sdk``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import nostr_sdk  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import InvalidEvent
from nwcd.nostr.event import Event, compute_id, parse_event, sign_event
from nwcd.nostr.keys import SecretKey
from tests.conftest import load_vectors

VECTORS = load_vectors("nip01.events.json")
VALID = [case["event"] for case in VECTORS["valid"]]
APPENDIX = VECTORS["invalid"][0]
SECRET = SecretKey.from_hex("67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa")
SDK_KEYS = nostr_sdk.Keys.parse(SECRET.reveal_hex())

# NIP-01: escape only these in strings; "all other characters must be included verbatim".
_SHORT_ESCAPES = {"\n": "\\n", '"': '\\"', "\\": "\\\\", "\r": "\\r", "\t": "\\t"}
_SHORT_ESCAPES |= {"\b": "\\b", "\f": "\\f"}

ESCAPE_HEAVY = [
    "line\nbreak",
    'quote " inside',
    "back\\slash \\n not a newline",
    "tab\there\r\n",
    "emoji 🤙⚡️ and combining é",
    "separators \u2028 and \u2029",
    "controls \x00 \x01 \x1f \x7f \b \f",
    "/ slash and </script>",
    "ünïcødé ✓ 日本語 𝄞",
    "",
]

texts = st.text(st.characters(codec="utf-8"), max_size=200)
tag_lists = st.lists(st.lists(texts, max_size=5), max_size=6)


def _escape(text: str) -> str:
    out = []
    for char in text:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x20:
            # JSON cannot hold raw control characters; JSON.stringify writes \u00xx.
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def independent_id(
    pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str
) -> str:
    tags_text = ",".join("[" + ",".join(_escape(v) for v in tag) + "]" for tag in tags)
    text = f'[0,"{pubkey}",{created_at},{kind},[{tags_text}],{_escape(content)}]'
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sdk_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    event_id: str = nostr_sdk.EventId.compute(
        nostr_sdk.PublicKey.parse(pubkey),
        nostr_sdk.Timestamp.from_secs(created_at),
        nostr_sdk.Kind(kind),
        [nostr_sdk.Tag.parse(tag) for tag in tags],
        content,
    ).to_hex()
    return event_id


def _wire(event: Event) -> str:
    return json.dumps(event.to_json(), ensure_ascii=False)


# --- vectors ----------------------------------------------------------------


@pytest.mark.parametrize("data", VALID, ids=lambda d: d["id"][:12])
def test_valid_vector_events(data: dict[str, Any]) -> None:
    event = parse_event(data)
    assert event.to_json() == data
    assert (
        compute_id(event.pubkey, event.created_at, event.kind, event.tags, event.content)
        == (data["id"])
    )
    assert (
        independent_id(
            data["pubkey"], data["created_at"], data["kind"], data["tags"], data["content"]
        )
        == data["id"]
    )
    assert event.id_matches()
    assert event.signature_valid()
    event.verify()


def test_appendix_event_has_a_valid_signature_over_a_wrong_id() -> None:
    event = parse_event(APPENDIX["event"])
    assert event.signature_valid()
    assert not event.id_matches()
    assert (
        compute_id(event.pubkey, event.created_at, event.kind, event.tags, event.content)
        == (APPENDIX["computed_id"])
    )
    with pytest.raises(InvalidEvent, match="id"):
        event.verify()


def test_wrong_signature_is_rejected() -> None:
    data = dict(VALID[0])
    sig = bytearray.fromhex(data["sig"])
    sig[10] ^= 1
    data["sig"] = sig.hex()
    event = parse_event(data)
    assert event.id_matches()
    with pytest.raises(InvalidEvent, match="signature"):
        event.verify()


def test_signature_by_another_key_is_rejected() -> None:
    other = sign_event(SecretKey.generate(), kind=1, content="x", created_at=1)
    forged = sign_event(SECRET, kind=1, content="x", created_at=1)
    data = forged.to_json() | {"sig": other.sig}
    with pytest.raises(InvalidEvent, match="signature"):
        parse_event(data).verify()


def test_pubkey_off_the_curve_does_not_verify() -> None:
    pubkey = "00" * 32  # x = 0 is not on secp256k1
    event_id = compute_id(pubkey, 1, 1, (), "")
    event = parse_event(
        {
            "id": event_id,
            "pubkey": pubkey,
            "created_at": 1,
            "kind": 1,
            "tags": [],
            "content": "",
            "sig": "00" * 64,
        }
    )
    assert event.id_matches()
    assert not event.signature_valid()
    with pytest.raises(InvalidEvent, match="signature"):
        event.verify()


def test_extra_fields_are_ignored() -> None:
    data = dict(VALID[3]) | {"seenOn": ["wss://x"], "relays": None}
    event = parse_event(data)
    event.verify()
    assert "seenOn" not in event.to_json()


# --- signing and serialization ----------------------------------------------


def test_sign_event_round_trip() -> None:
    event = sign_event(
        SECRET,
        kind=23194,
        content="payload",
        tags=[["p", SECRET.public_key.hex], ["expiration", "1700000060"]],
        created_at=1_700_000_000,
    )
    assert event.pubkey == SECRET.public_key.hex
    assert event.tags == (("p", SECRET.public_key.hex), ("expiration", "1700000060"))
    event.verify()
    assert parse_event(event.to_json()) == event
    assert parse_event(json.loads(_wire(event))) == event
    assert event.tag_value("expiration") == "1700000060"
    assert event.tag_value("e") is None
    assert event.tag_values("p") == [SECRET.public_key.hex]


def test_tag_helpers_skip_short_tags() -> None:
    event = sign_event(
        SECRET, kind=1, content="", tags=[["p"], ["p", "a", "x"], [], ["p", "b"]], created_at=0
    )
    assert event.tag_value("p") == "a"
    assert event.tag_values("p") == ["a", "b"]


def test_signatures_use_fresh_aux_rand_but_the_same_id() -> None:
    first = sign_event(SECRET, kind=1, content="same", created_at=7)
    second = sign_event(SECRET, kind=1, content="same", created_at=7)
    assert first.id == second.id
    assert first.sig != second.sig
    first.verify()
    second.verify()


@pytest.mark.parametrize("content", ESCAPE_HEAVY)
def test_escape_heavy_content_matches_independent_ids(content: str) -> None:
    tags = [["x", content], ["t", "a\tb", content[::-1]]]
    event = sign_event(SECRET, kind=1, content=content, tags=tags, created_at=1_700_000_000)
    expected = independent_id(event.pubkey, event.created_at, event.kind, tags, content)
    assert event.id == expected
    assert sdk_id(event.pubkey, event.created_at, event.kind, tags, content) == expected
    # rust-nostr accepts our wire form and verifies both the id and the signature.
    assert nostr_sdk.Event.from_json(_wire(event)).verify()
    parse_event(json.loads(_wire(event))).verify()


@pytest.mark.parametrize("content", ESCAPE_HEAVY)
def test_events_signed_by_nostr_sdk_verify_here(content: str) -> None:
    unsigned = (
        nostr_sdk.EventBuilder(nostr_sdk.Kind(23195), content)
        .tags([nostr_sdk.Tag.parse(["p", SECRET.public_key.hex]), nostr_sdk.Tag.parse(["e", "x"])])
        .custom_created_at(nostr_sdk.Timestamp.from_secs(1_700_000_001))
        .finalize_unsigned(SDK_KEYS.public_key())
    )
    sdk_event = SDK_KEYS.sign_event(unsigned)
    event = parse_event(json.loads(sdk_event.as_json()))
    event.verify()
    assert event.id == sdk_event.id().to_hex()
    assert event.content == content


def test_non_ascii_is_hashed_verbatim_not_escaped() -> None:
    content = "é\u2028🤙"
    ascii_escaped = json.dumps([0, SECRET.public_key.hex, 1, 1, [], content], separators=(",", ":"))
    wrong = hashlib.sha256(ascii_escaped.encode()).hexdigest()
    event = sign_event(SECRET, kind=1, content=content, created_at=1)
    assert event.id != wrong
    assert event.id == independent_id(SECRET.public_key.hex, 1, 1, [], content)


def test_lone_surrogates() -> None:
    with pytest.raises(InvalidEvent, match="UTF-8"):
        sign_event(SECRET, kind=1, content="\ud800", created_at=1)
    with pytest.raises(InvalidEvent, match="UTF-8"):
        compute_id(SECRET.public_key.hex, 1, 1, (("t", "\udfff"),), "")
    # JSON can carry one ("\ud800"); such an event parses but never verifies.
    data = json.loads(json.dumps(sign_event(SECRET, kind=1, content="", created_at=1).to_json()))
    data["content"] = json.loads('"\\ud800"')
    event = parse_event(data)
    assert not event.id_matches()
    with pytest.raises(InvalidEvent):
        event.verify()


def test_tampering_any_signed_field_breaks_the_id() -> None:
    event = sign_event(SECRET, kind=1, content="c", tags=[["t", "v"]], created_at=10)
    for field, value in [
        ("content", "d"),
        ("kind", 2),
        ("created_at", 11),
        ("tags", [["t", "w"]]),
        ("tags", [["t", "v"], []]),
        ("pubkey", SecretKey.generate().public_key.hex),
    ]:
        tampered = parse_event(event.to_json() | {field: value})
        with pytest.raises(InvalidEvent, match="id"):
            tampered.verify()


# --- strict parsing ---------------------------------------------------------

_BASE = VALID[2]
_HEX64 = _BASE["id"]


def _with(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(_BASE)
    data.update(changes)
    return data


def _without(field: str) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(_BASE)
    del data[field]
    return data


MALFORMED = {
    "list": [_BASE],
    "string": json.dumps(_BASE),
    "none": None,
    **{f"missing-{f}": _without(f) for f in _BASE},
    "id-upper": _with(id=_HEX64.upper()),
    "id-short": _with(id=_HEX64[:-1]),
    "id-long": _with(id=_HEX64 + "0"),
    "id-nonhex": _with(id="g" * 64),
    "id-int": _with(id=1),
    "id-bytes-like-list": _with(id=list(bytes.fromhex(_HEX64))),
    "pubkey-upper": _with(pubkey=_BASE["pubkey"].upper()),
    "pubkey-npub": _with(pubkey="npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"),
    "pubkey-short": _with(pubkey=_BASE["pubkey"][:62]),
    "pubkey-none": _with(pubkey=None),
    "sig-64": _with(sig=_BASE["sig"][:64]),
    "sig-upper": _with(sig=_BASE["sig"].upper()),
    "sig-nonhex": _with(sig="x" * 128),
    "created_at-negative": _with(created_at=-1),
    "created_at-float": _with(created_at=1640839235.0),
    "created_at-string": _with(created_at="1640839235"),
    "created_at-bool": _with(created_at=True),
    "created_at-huge": _with(created_at=2**53),
    "created_at-none": _with(created_at=None),
    "kind-negative": _with(kind=-1),
    "kind-too-big": _with(kind=65536),
    "kind-float": _with(kind=4.0),
    "kind-string": _with(kind="4"),
    "kind-bool": _with(kind=False),
    "content-none": _with(content=None),
    "content-int": _with(content=1),
    "content-list": _with(content=["a"]),
    "tags-none": _with(tags=None),
    "tags-dict": _with(tags={"p": "x"}),
    "tags-string": _with(tags="p"),
    "tags-flat": _with(tags=["p", "x"]),
    "tag-with-null": _with(tags=[["p", None]]),
    "tag-with-int": _with(tags=[["p", 1]]),
    "tag-nested": _with(tags=[["p", ["x"]]]),
    "tag-dict": _with(tags=[{"p": "x"}]),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_events_are_rejected(data: object) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(data)


def test_limits_are_inclusive() -> None:
    event = parse_event(_with(created_at=2**53 - 1, kind=65535))
    assert (event.created_at, event.kind) == (2**53 - 1, 65535)
    assert parse_event(_with(created_at=0, kind=0)).kind == 0


# --- property tests ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_random_json_is_an_event_or_invalid_event(data: object) -> None:
    try:
        event = parse_event(data)
    except InvalidEvent:
        return
    assert isinstance(data, dict)
    assert all(data[key] == value for key, value in event.to_json().items())


@given(st.sampled_from(sorted(_BASE)), json_values)
def test_one_random_field_is_an_event_or_invalid_event(field: str, value: object) -> None:
    try:
        event = parse_event(_with(**{field: value}))
    except InvalidEvent:
        return
    assert event.to_json()[field] == value


@given(
    content=texts,
    tags=tag_lists,
    kind=st.integers(0, 65535),
    created_at=st.integers(0, 2**53 - 1),
)
def test_random_events_round_trip(
    content: str, tags: list[list[str]], kind: int, created_at: int
) -> None:
    event = sign_event(SECRET, kind=kind, content=content, tags=tags, created_at=created_at)
    again = parse_event(json.loads(_wire(event)))
    assert again == event
    again.verify()
    assert event.id == independent_id(event.pubkey, created_at, kind, tags, content)


@given(content=texts, tags=st.lists(st.lists(texts, min_size=1, max_size=4), max_size=4))
def test_random_ids_match_nostr_sdk(content: str, tags: list[list[str]]) -> None:
    event = sign_event(SECRET, kind=1, content=content, tags=tags, created_at=1_700_000_000)
    assert sdk_id(event.pubkey, event.created_at, event.kind, tags, content) == event.id
    assert nostr_sdk.Event.from_json(_wire(event)).verify()
