"""The end checks of a chaos run: plain data in, violations and figures out (pure).

What must hold, whatever was injected:

* **paid at most once**: the simulator never saw a second attempt at a hash it
  had paid or was paying, and every payment it made is one the service's
  ledger records as succeeded (no money moved without a record), with the
  same preimage the app was told;
* **budgets held**: what each connection with a budget spent (amount + fee of
  its succeeded payments) is at most its budget;
* **every request answered**: every item of every request the apps sent has
  an answer (a request whose connection was revoked before it was sent,
  ``UNAUTHORIZED``); a patient app (it never re-sends) is excused only for
  requests the service never received (sent while it was down, to relays that
  keep no ephemeral events); the service ends with every stored answer
  delivered to a relay and every claimed request done;
* **answers agree**: every answer to one item says the same thing, and an
  answer "paid" matches what the backend paid.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

__all__ = [
    "Attempt",
    "Item",
    "LedgerPayment",
    "Report",
    "SentRequest",
    "SimPayment",
    "check",
]

DOUBLE_ATTEMPTS = ("already_paid", "in_transition")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One pay call the simulator saw, and what it did with it."""

    payment_hash: str
    result: str


@dataclass(frozen=True, slots=True)
class SimPayment:
    """A payment as the backend (simulator) made it."""

    payment_hash: str
    status: str
    preimage: str
    amount_msat: int
    fee_msat: int


@dataclass(frozen=True, slots=True)
class LedgerPayment:
    """A payment as the service's store records it."""

    wallet_pubkey: str
    payment_hash: str
    state: str
    preimage: str | None
    amount_msat: int
    fee_msat: int | None


@dataclass
class Item:
    """One item of a request (``d`` None for a single ``pay_*`` or a read)."""

    d: str | None
    payment_hash: str | None = None
    answers: set[str] = field(default_factory=set)  # distinct decoded answers
    preimage: str | None = None  # from a "paid" answer
    error_code: str | None = None


@dataclass
class SentRequest:
    """A request an app sent (maybe several times), and what came back."""

    event_id: str
    app: str
    wallet_pubkey: str
    method: str
    items: dict[str | None, Item]
    sent_after_revoke: bool = False
    sends: int = 1

    @property
    def answered(self) -> bool:
        return all(item.answers for item in self.items.values())


@dataclass
class Report:
    """What a run found: ``violations`` must be empty."""

    violations: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def line(self, name: str, value: object) -> None:
        self.figures[name] = str(value)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def check(
    *,
    requests: Sequence[SentRequest],
    attempts: Sequence[Attempt],
    sim_payments: Sequence[SimPayment],
    ledger: Sequence[LedgerPayment],
    budgets: Mapping[str, int],
    names: Mapping[str, str],
    recovery_seconds: Sequence[float],
    never_received: Set[str] = frozenset(),
    undelivered: Sequence[str] = (),
    open_requests: Sequence[str] = (),
    limit: int = 20,
) -> Report:
    """Every end check over one run's records; at most ``limit`` examples per kind."""
    report = Report()

    def violate(kind: str, examples: list[str]) -> None:
        if examples:
            shown = "; ".join(examples[:limit])
            more = f" (+{len(examples) - limit} more)" if len(examples) > limit else ""
            report.violations.append(f"{kind}: {len(examples)}: {shown}{more}")

    # -- paid at most once ----------------------------------------------------------------
    doubles = [f"{a.payment_hash[:16]} {a.result}" for a in attempts if a.result in DOUBLE_ATTEMPTS]
    violate("second pay attempt of a paid or in-flight hash", doubles)
    per_hash = Counter(p.payment_hash for p in sim_payments if p.status == "succeeded")
    violate("hash paid more than once", [h[:16] for h, n in per_hash.items() if n > 1])
    recorded = {p.payment_hash: p for p in ledger if p.state == "succeeded"}
    open_states = ("reserved", "in_flight", "unknown")
    unrecorded = []
    for paid in sim_payments:
        if paid.status != "succeeded":
            continue
        record = recorded.get(paid.payment_hash)
        if record is None or record.preimage != paid.preimage:
            unrecorded.append(paid.payment_hash[:16])
    violate("paid by the backend without a succeeded ledger record", unrecorded)
    still_open = [p.payment_hash[:16] for p in ledger if p.state in open_states]
    violate("payments still open at the end", still_open)
    report.line("pay attempts", f"{len(attempts)} ({len(doubles)} second attempts)")
    report.line(
        "payments per hash",
        f"max {max(per_hash.values(), default=0)} over {len(per_hash)} paid hashes",
    )

    # -- budgets ----------------------------------------------------------------------------
    spent: Counter[str] = Counter()
    for payment in ledger:
        if payment.state == "succeeded":
            spent[payment.wallet_pubkey] += payment.amount_msat + (payment.fee_msat or 0)
    over = [
        f"{names.get(wallet, wallet[:8])} {spent[wallet]} > {budget}"
        for wallet, budget in budgets.items()
        if spent[wallet] > budget
    ]
    violate("budget exceeded", over)
    uses = [
        f"{names.get(w, w[:8])} {spent[w]}/{b} msat ({100 * spent[w] / b:.1f}%)"
        for w, b in budgets.items()
    ]
    report.line("budgets", ", ".join(uses) or "none")

    # -- every request answered, answers agree --------------------------------------------
    items = [item for request in requests for item in request.items.values()]
    missing = [
        f"{r.app}/{r.method}/{r.event_id[:12]}/{d}"
        for r in requests
        if r.event_id not in never_received
        for d, item in r.items.items()
        if not item.answers
    ]
    violate("unanswered items", missing)
    violate("stored answers never delivered to a relay", [e[:12] for e in undelivered])
    violate("claimed requests not done", [e[:12] for e in open_requests])
    disagreeing = [
        f"{r.event_id[:12]}/{d}: {len(item.answers)} answers"
        for r in requests
        for d, item in r.items.items()
        if len(item.answers) > 1
    ]
    violate("items answered differently", disagreeing)
    revoked = [r for r in requests if r.sent_after_revoke]
    not_refused = [
        f"{r.app}/{r.event_id[:12]}"
        for r in revoked
        for item in r.items.values()
        if item.answers and item.error_code != "UNAUTHORIZED"
    ]
    violate("revoked connection not answered UNAUTHORIZED", not_refused)
    sim_by_hash = {p.payment_hash: p for p in sim_payments}
    wrong_money = []
    for item in items:
        if item.preimage is None or item.payment_hash is None:
            continue
        made = sim_by_hash.get(item.payment_hash)
        if made is None or made.status != "succeeded" or made.preimage != item.preimage:
            wrong_money.append(item.payment_hash[:16])
    violate("answered paid, but the backend did not pay it so", wrong_money)
    answered = sum(1 for r in requests if r.answered)
    report.line(
        "requests answered",
        f"{answered}/{len(requests)} ({sum(1 for i in items if i.answers)}/{len(items)} items;"
        f" {sum(r.sends - 1 for r in requests)} re-sends)",
    )
    if never_received:
        report.line("never received (patient app, service down)", len(never_received))
    report.line("revoked connection requests", f"{len(revoked)} (all UNAUTHORIZED)")
    report.line("disagreeing answers", len(disagreeing))
    if recovery_seconds:
        report.line(
            "start after kill (recovery included)",
            f"p50 {statistics.median(recovery_seconds):.2f} s,"
            f" p90 {_percentile(recovery_seconds, 0.9):.2f} s, max {max(recovery_seconds):.2f} s",
        )
    return report
