"""Admission of payments: which of a request's payments may start, and with what fee limit.

Pure: every store runs :func:`admit` inside the transaction that reads what is
used and inserts the reservations, so the rules live here once and concurrent
requests (also from other processes) can never overspend.

The rules, applied in request order:

1. One live payment per payment hash, whoever asks: a second one could only
   pay twice or borrow an outcome it did not pay for. A hash held by the same
   connection is "ask again for its result"; by another connection, refused.
2. A payment is admitted when its amount fits what is left of the budget. Its
   fee reserve (the most it may spend on routing fees, passed to the backend as
   the fee limit) is the configured reserve, capped to what is left after the
   amount: a reserve that does not fit never refuses a payment the budget can
   carry, and the budget is never exceeded, fees included.

What counts as used (:func:`budget_cost`): a settled payment its amount plus
the fee it really paid; an open one its amount plus its fee reserve; a failed
one nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nwcd.errors import ErrorCode
from nwcd.policy.authorize import Deny

__all__ = ["Admit", "Ask", "admit", "budget_cost", "hashes_of", "held"]


@dataclass(frozen=True, slots=True)
class Ask:
    """One payment asking to start."""

    payment_hash: str
    amount_msat: int
    fee_reserve_msat: int


@dataclass(frozen=True, slots=True)
class Admit:
    """The payment may start; it may spend at most ``fee_reserve_msat`` on fees."""

    fee_reserve_msat: int


def budget_cost(
    *, state: str, amount_msat: int, fee_reserve_msat: int, fee_msat: int | None
) -> int:
    """What one payment counts against its connection's budget."""
    if state == "failed":
        return 0
    if state == "succeeded":
        return amount_msat + (fee_msat or 0)
    return amount_msat + fee_reserve_msat


def admit(
    asks: Sequence[Ask],
    *,
    wallet_pubkey: str,
    budget_msat: int | None,
    used_msat: int,
    holders: Mapping[str, str],
) -> list[Admit | Deny]:
    """Decide each ask, in order; admitted ones count against the following ones.

    Args:
        asks: the payments of one request, in request order.
        wallet_pubkey: the connection asking.
        budget_msat: its budget (None: no budget).
        used_msat: what already counts against the budget in the current window.
        holders: payment hash -> wallet pubkey of a live (not failed) payment of it.
    """
    holding = dict(holders)
    used = used_msat
    decisions: list[Admit | Deny] = []
    for ask in asks:
        holder = holding.get(ask.payment_hash)
        if holder is not None:
            decisions.append(held(by_same_connection=holder == wallet_pubkey))
            continue
        fee_reserve = ask.fee_reserve_msat
        if budget_msat is not None:
            left = budget_msat - used
            if ask.amount_msat > left:
                decisions.append(
                    Deny(
                        ErrorCode.QUOTA_EXCEEDED,
                        f"payment of {ask.amount_msat} msat exceeds the remaining budget of"
                        f" {max(0, left)} msat",
                    )
                )
                continue
            fee_reserve = min(fee_reserve, left - ask.amount_msat)
        used += ask.amount_msat + fee_reserve
        holding[ask.payment_hash] = wallet_pubkey
        decisions.append(Admit(fee_reserve))
    return decisions


def held(*, by_same_connection: bool) -> Deny:
    """The refusal of a payment whose hash has a live payment already."""
    if by_same_connection:
        return Deny(
            ErrorCode.OTHER,
            "this invoice is already being paid by an earlier request; ask again for its result",
        )
    return Deny(ErrorCode.PAYMENT_FAILED, "this invoice was already paid or is being paid")


def hashes_of(asks: Iterable[Ask]) -> list[str]:
    """The distinct payment hashes of some asks (what a store looks up as ``holders``)."""
    return list(dict.fromkeys(ask.payment_hash for ask in asks))
