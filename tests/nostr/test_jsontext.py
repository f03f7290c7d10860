"""nwcd.nostr.jsontext writes what json.dumps(ensure_ascii=False, compact) writes, and
reads what json.loads reads: event ids depend on it byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import InvalidEvent
from nwcd.nostr import jsontext
from nwcd.nostr.event import compute_id


def reference(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# Every character class: controls, quotes, backslash, DEL, non-ASCII, U+2028/9, astral.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@given(text, st.lists(st.lists(text, max_size=4), max_size=4))
def test_event_serialization_is_byte_exact(content: str, tags: list[list[str]]) -> None:
    frozen = tuple(tuple(tag) for tag in tags)
    assert jsontext.dumps_bytes([0, "ab" * 32, 1700000000, 1, frozen, content]) == reference(
        [0, "ab" * 32, 1700000000, 1, tags, content]
    )


@given(values)
def test_values_write_and_read_as_with_json(value: Any) -> None:
    assert jsontext.dumps_bytes(value) == reference(value)
    assert jsontext.dumps(value) == reference(value).decode()
    assert jsontext.loads(reference(value).decode()) == json.loads(reference(value))


def test_what_orjson_refuses_is_handled_as_json_does() -> None:
    big = {"amount": 10**30, 1: "int key"}
    assert jsontext.dumps(big) == json.dumps(big, separators=(",", ":"))
    assert jsontext.loads('{"a": 1e400, "b": 100000000000000000000000000}') == json.loads(
        '{"a": 1e400, "b": 100000000000000000000000000}'
    )
    assert jsontext.loads('"\\ud800"') == "\ud800"  # a lone surrogate, as json reads it
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads("{not json")
    with pytest.raises(UnicodeEncodeError):
        jsontext.dumps_bytes(["\ud800"])
    with pytest.raises(InvalidEvent):
        compute_id("ab" * 32, 1, 1, (), "\ud800")
