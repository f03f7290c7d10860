"""The console's forms as pure functions: submitted fields in, a grant or field errors out.

The console's connection form offers every grant ``nwcd connection create`` has
(scopes and methods, a limit per payment, a renewing budget, an expiry, a lightning
address). Amounts are whole sats in the form (what people think in) and msat inside.
The rules of a change stay in :mod:`nwcd.service.admin`; this only reads the form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

from nwcd.policy.grants import SCOPES, BudgetPeriod, Connection, expand_methods
from nwcd.service.admin import Changes, NewConnection

__all__ = [
    "FormError",
    "GrantForm",
    "grant_form_of",
    "local_time",
    "parse_grant_form",
    "parse_sats",
    "sats_text",
]

ALL: Final = "all"
MAX_MSAT: Final = 21_000_000 * 100_000_000 * 1000
_LUD16 = re.compile(r"^[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class FormError(ValueError):
    """A form with mistakes: ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True, slots=True)
class GrantForm:
    """A connection's grant as the form shows it (``scopes``: checked scope names, or
    ``["all"]``; ``extra_methods``: single methods beyond them, comma-separated)."""

    name: str = ""
    scopes: Sequence[str] = field(default_factory=lambda: ["pay", "read"])
    extra_methods: str = ""
    max_amount_sat: str = ""
    budget_sat: str = ""
    budget_period: str = BudgetPeriod.NEVER.value
    expires_at: str = ""  # a datetime-local value, in the service's time zone
    lud16: str = ""


@dataclass(frozen=True, slots=True)
class Grant:
    """A parsed, valid :class:`GrantForm`."""

    name: str
    methods: frozenset[str] | None
    max_amount_msat: int | None
    budget_msat: int | None
    budget_period: BudgetPeriod
    expires_at: int | None
    lud16: str | None

    def new_connection(self, relays: tuple[str, ...]) -> NewConnection:
        return NewConnection(
            name=self.name,
            relays=relays,
            methods=self.methods,
            max_amount_msat=self.max_amount_msat,
            budget_msat=self.budget_msat,
            budget_period=self.budget_period,
            expires_at=self.expires_at,
            lud16=self.lud16,
        )

    def changes(self) -> Changes:
        """Every field as the form says (an empty field removes that limit)."""
        return Changes(
            name=self.name,
            methods=self.methods,
            max_amount_msat=self.max_amount_msat,
            budget_msat=self.budget_msat,
            budget_period=self.budget_period if self.budget_msat is not None else None,
            expires_at=self.expires_at,
            lud16=self.lud16,
        )


def sats_text(msat: int | None) -> str:
    """``msat`` in sats, exact: ``1500`` -> ``"1.5"`` (a limit set in msat by the CLI
    survives an edit in the console unchanged)."""
    if msat is None:
        return ""
    return str(msat // 1000) if msat % 1000 == 0 else str(Decimal(msat) / 1000)


def parse_sats(text: str, label: str, errors: dict[str, str], key: str) -> int | None:
    text = text.strip().replace("_", "").replace(",", "")
    if not text:
        return None
    try:
        msat = Decimal(text) * 1000
    except InvalidOperation:
        msat = Decimal(0)
    if not msat.is_finite() or msat != msat.to_integral_value() or not 0 < msat <= MAX_MSAT:
        errors[key] = f"{label} must be a positive number of sats (at most 3 decimals)"
        return None
    return int(msat)


def local_time(text: str, tz: tzinfo) -> int:
    """A ``datetime-local`` field (in ``tz`` unless it names an offset) as Unix seconds.

    Raises:
        ValueError: not a date and time.
    """
    when = datetime.fromisoformat(text.strip())
    return int((when if when.tzinfo else when.replace(tzinfo=tz)).timestamp())


def parse_grant_form(form: GrantForm, *, now: int, tz: tzinfo) -> Grant:
    """Read a submitted connection form.

    Raises:
        FormError: what is wrong, by field.
    """
    errors: dict[str, str] = {}
    name = form.name.strip()
    if not name:
        errors["name"] = "give the connection a name"
    elif len(name) > 64 or not name.isprintable():
        errors["name"] = "at most 64 printable characters"
    methods: frozenset[str] | None = None
    if ALL not in form.scopes:
        words = [s for s in form.scopes if s in SCOPES]
        words += [w.strip() for w in form.extra_methods.split(",") if w.strip()]
        try:
            methods = expand_methods(words)
        except ValueError as exc:
            errors["extra_methods"] = str(exc)
        else:
            if not methods:
                errors["scopes"] = "choose at least one scope or method"
    max_amount = parse_sats(form.max_amount_sat, "the limit", errors, "max_amount_sat")
    budget = parse_sats(form.budget_sat, "the budget", errors, "budget_sat")
    period_text = form.budget_period
    try:
        period = BudgetPeriod(period_text)
    except ValueError:
        errors["budget_period"] = f"unknown period {period_text!r}"
        period = BudgetPeriod.NEVER
    if budget is None and period is not BudgetPeriod.NEVER and "budget_sat" not in errors:
        errors["budget_sat"] = "a renewing budget needs an amount"
    expires_at = None
    expires_text = form.expires_at.strip()
    if expires_text:
        try:
            expires_at = local_time(expires_text, tz)
        except ValueError:
            errors["expires_at"] = "a date and time, e.g. 2027-01-31T18:00"
        else:
            if expires_at <= now:
                errors["expires_at"] = "that time has passed"
    lud16 = form.lud16.strip() or None
    if lud16 is not None and not _LUD16.match(lud16):
        errors["lud16"] = "a lightning address looks like name@example.com"
    if errors:
        raise FormError(errors)
    return Grant(name, methods, max_amount, budget, period, expires_at, lud16)


def grant_form_of(connection: Connection, tz: tzinfo) -> GrantForm:
    """The form that shows ``connection`` as it is (to edit it)."""
    methods = connection.methods
    if methods is None:
        scopes, extra = [ALL], ""
    else:
        scopes = [s for s, members in SCOPES.items() if members <= methods]
        covered = frozenset().union(*(SCOPES[s] for s in scopes))
        extra = ", ".join(sorted(methods - covered))

    expires = (
        ""
        if connection.expires_at is None
        else datetime.fromtimestamp(connection.expires_at, tz).strftime("%Y-%m-%dT%H:%M")
    )
    return GrantForm(
        name=connection.name,
        scopes=scopes,
        extra_methods=extra,
        max_amount_sat=sats_text(connection.max_amount_msat),
        budget_sat=sats_text(connection.budget_msat),
        budget_period=connection.budget_period.value,
        expires_at=expires,
        lud16=connection.lud16 or "",
    )
