"""Dividing one amount between several recipients by their shares, in whole sats.

Whole sats because LNURL servers and keysend receivers commonly refuse millisatoshi
fractions, and because a split should add up exactly: nothing is lost to rounding.

The rule: each recipient gets ``floor(total * share / sum(shares))`` sats, computed
exactly (float shares are taken at their exact binary value), and the sats left over
go to the recipient with the largest share, the first of them on a tie. A recipient may
so get 0 sats; the caller skips it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from nwcd.recipients.errors import RecipientError

__all__ = ["parse_share_args", "split_sats", "split_total", "whole_sats"]


def _exact_shares(shares: Sequence[int | float]) -> list[Fraction]:
    if not shares:
        raise RecipientError("a split needs at least one recipient")
    exact: list[Fraction] = []
    for share in shares:
        if isinstance(share, bool) or not isinstance(share, int | float):
            raise RecipientError(f"the share {share!r} is not a number")
        if not math.isfinite(share) or share <= 0:
            raise RecipientError(f"the share {share!r} is not a positive number")
        exact.append(Fraction(share))
    return exact


def split_sats(total_sat: int, shares: Sequence[int | float]) -> list[int]:
    """``total_sat`` divided by ``shares`` (module rule); the result sums to ``total_sat``.

    Raises:
        RecipientError: no shares, a share that is not a positive finite number, or a
            negative total.
    """
    exact = _exact_shares(shares)
    if total_sat < 0:
        raise RecipientError("the amount to split must not be negative")
    whole = sum(exact)
    amounts = [math.floor(total_sat * share / whole) for share in exact]
    largest = max(range(len(exact)), key=lambda index: (exact[index], -index))
    amounts[largest] += total_sat - sum(amounts)
    return amounts


def whole_sats(total_msat: int) -> int:
    """``total_msat`` in sats: a split of an amount with msat left over could not add up.

    Raises:
        RecipientError: negative, or not a whole number of sats.
    """
    if total_msat < 0 or total_msat % 1000:
        raise RecipientError(f"{total_msat} msat is not a whole, non-negative number of sats")
    return total_msat // 1000


def split_total(total_msat: int, shares: Sequence[int | float]) -> list[int]:
    """``total_msat`` divided by ``shares`` in whole sats (msat amounts, multiples of 1000).

    Raises:
        RecipientError: as :func:`whole_sats` and :func:`split_sats`.
    """
    return [sats * 1000 for sats in split_sats(whole_sats(total_msat), shares)]


def parse_share_args(args: Sequence[str]) -> list[tuple[str, float]]:
    """Parse ``recipient=share`` arguments, e.g. ``alice@example.com=60``.

    The share follows the last ``=``, so recipients holding ``=`` (a URL's query) work.

    Raises:
        RecipientError: an argument without ``=``, an empty recipient, or a share that is
            not a positive finite number.
    """
    parsed: list[tuple[str, float]] = []
    for arg in args:
        recipient, sep, share_text = arg.rpartition("=")
        recipient = recipient.strip()
        if not sep or not recipient:
            raise RecipientError(f"{arg!r} is not recipient=share (e.g. alice@example.com=60)")
        try:
            share = float(share_text)
        except ValueError:
            raise RecipientError(f"the share in {arg!r} is not a number") from None
        if not math.isfinite(share) or share <= 0:
            raise RecipientError(f"the share in {arg!r} is not a positive number")
        parsed.append((recipient, share))
    return parsed
