"""NIP-01 filters: wire round trips, strict parsing, matching, value splitting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import InvalidMessage
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter, split_values
from nwcd.nostr.keys import SecretKey

WALLET = SecretKey.from_hex("67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa")
APP = SecretKey.from_hex("11" * 32)
OTHER = SecretKey.from_hex("22" * 32)


def _request(
    secret: SecretKey = APP, *, kind: int = 23194, created_at: int = 1000, tags: Any = None
) -> Event:
    if tags is None:
        tags = [["p", WALLET.public_key.hex], ["e", "ab" * 32, "wss://relay"]]
    return sign_event(secret, kind=kind, content="x", tags=tags, created_at=created_at)


EVENT = _request()


# --- wire form --------------------------------------------------------------


def test_full_filter_round_trip() -> None:
    f = Filter(
        ids=("aa" * 32,),
        authors=(APP.public_key.hex, OTHER.public_key.hex),
        kinds=(23194, 23195),
        tags={"p": (WALLET.public_key.hex,), "e": ("bb" * 32, "cc" * 32)},
        since=10,
        until=20,
        limit=5,
    )
    wire = f.to_json()
    assert wire == {
        "ids": ["aa" * 32],
        "authors": [APP.public_key.hex, OTHER.public_key.hex],
        "kinds": [23194, 23195],
        "#p": [WALLET.public_key.hex],
        "#e": ["bb" * 32, "cc" * 32],
        "since": 10,
        "until": 20,
        "limit": 5,
    }
    assert Filter.from_json(wire) == f


def test_empty_filter_round_trip() -> None:
    assert Filter().to_json() == {}
    assert Filter.from_json({}) == Filter()


def test_empty_lists_are_kept_not_dropped() -> None:
    f = Filter(ids=(), kinds=())
    assert f.to_json() == {"ids": [], "kinds": []}
    assert Filter.from_json(f.to_json()) == f


def test_zero_values_are_kept() -> None:
    f = Filter(since=0, until=0, limit=0)
    assert f.to_json() == {"since": 0, "until": 0, "limit": 0}
    assert Filter.from_json(f.to_json()) == f


def test_null_numbers_mean_absent() -> None:
    assert Filter.from_json({"since": None, "until": None, "limit": None}) == Filter()


@pytest.mark.parametrize(
    "data",
    [
        [],
        "filter",
        None,
        {"unknown": 1},
        {"#pp": ["x"]},
        {"#": ["x"]},
        {"ids": "aa"},
        {"ids": [1]},
        {"ids": None},
        {"authors": [None]},
        {"authors": {"a": 1}},
        {"kinds": 1},
        {"kinds": ["1"]},
        {"kinds": [1.0]},
        {"kinds": [True]},
        {"#p": "x"},
        {"#p": [1]},
        {"#p": None},
        {"since": -1},
        {"since": "1"},
        {"since": 1.5},
        {"since": True},
        {"until": [1]},
        {"limit": -5},
        {"limit": False},
    ],
    ids=repr,
)
def test_malformed_filters_are_rejected(data: object) -> None:
    with pytest.raises(InvalidMessage):
        Filter.from_json(data)


# --- matching ---------------------------------------------------------------


def test_empty_filter_matches_everything() -> None:
    assert Filter().matches(EVENT)


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (Filter(ids=(EVENT.id,)), True),
        (Filter(ids=("00" * 32, EVENT.id)), True),
        (Filter(ids=("00" * 32,)), False),
        (Filter(ids=()), False),
        (Filter(authors=(APP.public_key.hex,)), True),
        (Filter(authors=(OTHER.public_key.hex,)), False),
        (Filter(kinds=(23194,)), True),
        (Filter(kinds=(23195, 13194)), False),
        (Filter(since=1000), True),
        (Filter(since=1001), False),
        (Filter(until=1000), True),
        (Filter(until=999), False),
        (Filter(since=1000, until=1000), True),
        (Filter(tags={"p": (WALLET.public_key.hex,)}), True),
        (Filter(tags={"p": (APP.public_key.hex, WALLET.public_key.hex)}), True),
        (Filter(tags={"p": (APP.public_key.hex,)}), False),
        (Filter(tags={"e": ("ab" * 32,)}), True),
        # Only a tag's first value is indexed, not the relay hint after it.
        (Filter(tags={"e": ("wss://relay",)}), False),
        (Filter(tags={"t": ("anything",)}), False),
        (Filter(tags={"p": (WALLET.public_key.hex,), "e": ("ab" * 32,)}), True),
        (Filter(tags={"p": (WALLET.public_key.hex,), "e": ("cd" * 32,)}), False),
        (Filter(tags={"p": ()}), False),
        (
            Filter(
                authors=(APP.public_key.hex,),
                kinds=(23194,),
                tags={"p": (WALLET.public_key.hex,)},
                since=1,
                until=2000,
                limit=1,
            ),
            True,
        ),
        (Filter(authors=(APP.public_key.hex,), kinds=(23195,)), False),
    ],
    ids=lambda v: repr(v.to_json()) if isinstance(v, Filter) else str(v),
)
def test_matches(f: Filter, expected: bool) -> None:
    assert f.matches(EVENT) is expected
    # The parsed wire form behaves identically.
    assert Filter.from_json(f.to_json()).matches(EVENT) is expected


def test_tag_names_are_case_sensitive_and_single_element_tags_never_match() -> None:
    event = _request(tags=[["P", WALLET.public_key.hex], ["t"], ["d", ""]])
    assert not Filter(tags={"p": (WALLET.public_key.hex,)}).matches(event)
    assert Filter(tags={"P": (WALLET.public_key.hex,)}).matches(event)
    assert not Filter(tags={"t": ("",)}).matches(event)
    assert Filter(tags={"d": ("",)}).matches(event)


def test_limit_is_ignored_by_matching() -> None:
    assert Filter(limit=0).matches(EVENT)


# --- split_values -----------------------------------------------------------


def test_split_values() -> None:
    values = [f"{i:064x}" for i in range(7)]
    assert split_values(values, 3) == [values[0:3], values[3:6], values[6:7]]
    assert split_values(values, 7) == [values]
    assert split_values(values, 100) == [values]
    assert split_values(values, 1) == [[v] for v in values]
    assert split_values([], 3) == []


@pytest.mark.parametrize("size", [0, -1])
def test_split_values_rejects_non_positive_sizes(size: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        split_values(["a"], size)


@given(st.lists(st.text(max_size=3), max_size=50), st.integers(1, 20))
def test_split_values_properties(values: list[str], size: int) -> None:
    chunks = split_values(values, size)
    assert [v for chunk in chunks for v in chunk] == values
    assert all(1 <= len(chunk) <= size for chunk in chunks)
    assert all(len(chunk) == size for chunk in chunks[:-1])


# --- property tests ---------------------------------------------------------

hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
non_negative = st.integers(0, 2**53)
filters = st.builds(
    Filter,
    ids=st.none() | st.lists(hex64, max_size=3).map(tuple),
    authors=st.none() | st.lists(hex64, max_size=3).map(tuple),
    kinds=st.none() | st.lists(st.integers(0, 65535), max_size=3).map(tuple),
    tags=st.dictionaries(
        st.characters(codec="ascii", categories=("Ll", "Lu")),
        st.lists(st.text(max_size=10), max_size=3).map(tuple),
        max_size=3,
    ),
    since=st.none() | non_negative,
    until=st.none() | non_negative,
    limit=st.none() | non_negative,
)


@given(filters)
def test_random_filters_round_trip(f: Filter) -> None:
    assert Filter.from_json(f.to_json()) == f


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=10,
)
filter_keys = st.sampled_from(["ids", "authors", "kinds", "#p", "#e", "since", "until", "limit"])


@given(json_values | st.dictionaries(filter_keys | st.text(max_size=3), json_values, max_size=4))
def test_random_json_is_a_filter_or_invalid_message(data: object) -> None:
    try:
        f = Filter.from_json(data)
    except InvalidMessage:
        return
    assert isinstance(data, dict)
    assert Filter.from_json(f.to_json()) == f


@given(filters, st.integers(0, 2**53), st.integers(0, 65535))
def test_matching_agrees_with_each_field(f: Filter, created_at: int, kind: int) -> None:
    event = sign_event(
        APP, kind=kind, content="", tags=[["p", WALLET.public_key.hex]], created_at=created_at
    )
    expected = (
        (f.ids is None or event.id in f.ids)
        and (f.authors is None or event.pubkey in f.authors)
        and (f.kinds is None or kind in f.kinds)
        and (f.since is None or f.since <= created_at)
        and (f.until is None or created_at <= f.until)
        and all(
            letter == "p" and WALLET.public_key.hex in values for letter, values in f.tags.items()
        )
    )
    assert f.matches(event) is expected
