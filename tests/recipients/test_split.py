"""Splitting an amount by shares: whole sats, exact totals, the remainder rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.recipients.errors import RecipientError
from nwcd.recipients.split import parse_share_args, split_sats, split_total


def test_even_split() -> None:
    assert split_sats(300, [1, 1, 1]) == [100, 100, 100]


def test_floors_and_gives_the_remainder_to_the_largest_share() -> None:
    # 1000 * 60/100 = 600, 1000 * 25/100 = 250, 1000 * 15/100 = 150: exact.
    assert split_sats(1000, [60, 25, 15]) == [600, 250, 150]
    # 100 / 3 = 33.33 each: the leftover sat goes to the first of the tied largest.
    assert split_sats(100, [1, 1, 1]) == [34, 33, 33]
    # floor(10 * 1/6) = 1, floor(10 * 2/6) = 3, floor(10 * 3/6) = 5; 1 left goes to 3.
    assert split_sats(10, [1, 2, 3]) == [1, 3, 6]


def test_small_shares_may_get_nothing() -> None:
    assert split_sats(10, [99, 1]) == [10, 0]


def test_float_shares_are_exact() -> None:
    assert split_sats(1000, [0.1, 0.2, 0.7]) == [100, 200, 700]
    assert split_sats(21, [33.3, 33.3, 33.4]) == [6, 6, 9]


def test_zero_total() -> None:
    assert split_sats(0, [1, 2]) == [0, 0]


def test_split_total_works_in_msat_of_whole_sats() -> None:
    assert split_total(100_000, [1, 1, 1]) == [34_000, 33_000, 33_000]
    with pytest.raises(RecipientError, match="1500 msat is not a whole, non-negative number"):
        split_total(1500, [1])
    with pytest.raises(RecipientError, match="-1000 msat is not a whole, non-negative number"):
        split_total(-1000, [1])


@pytest.mark.parametrize(
    ("shares", "reason"),
    [
        ([], "at least one recipient"),
        ([1, 0], "not a positive number"),
        ([1, -2], "not a positive number"),
        ([float("nan")], "not a positive number"),
        ([float("inf")], "not a positive number"),
        ([True], "not a number"),
        (["3"], "not a number"),
    ],
)
def test_bad_shares(shares: list[int | float], reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        split_sats(100, shares)


def test_negative_total() -> None:
    with pytest.raises(RecipientError, match="must not be negative"):
        split_sats(-1, [1])


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(
        st.one_of(
            st.integers(min_value=1, max_value=10**6),
            st.floats(min_value=1e-3, max_value=1e6),
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_the_split_always_adds_up(total: int, shares: list[int | float]) -> None:
    amounts = split_sats(total, shares)
    assert sum(amounts) == total
    assert all(amount >= 0 for amount in amounts)
    whole = sum(shares)
    for amount, share in zip(amounts, shares, strict=True):
        # Each gets its floor, the largest share at most len(shares) - 1 sats more.
        assert amount >= int(total * share / whole) - 1


def test_parse_share_args() -> None:
    assert parse_share_args(["alice@example.com=60", " bob@example.com =40.5"]) == [
        ("alice@example.com", 60.0),
        ("bob@example.com", 40.5),
    ]
    # The share follows the last "=": a URL with a query keeps its own.
    assert parse_share_args(["https://x.example/p?user=carol=1"]) == [
        ("https://x.example/p?user=carol", 1.0)
    ]


@pytest.mark.parametrize(
    ("arg", "reason"),
    [
        ("alice@example.com", "is not recipient=share"),
        ("=5", "is not recipient=share"),
        ("alice@example.com=", "is not a number"),
        ("alice@example.com=sixty", "is not a number"),
        ("alice@example.com=0", "not a positive number"),
        ("alice@example.com=-3", "not a positive number"),
        ("alice@example.com=nan", "not a positive number"),
    ],
)
def test_parse_share_args_refuses(arg: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        parse_share_args([arg])
