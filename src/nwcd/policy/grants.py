"""A wallet connection: what one app was granted.

Each connection has its own wallet key pair (the URI's pubkey), so revoking
one never touches another and an app learns nothing about the others.
Scopes are shorthands for sets of methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from nwcd.nip47.methods import Method
from nwcd.nostr.keys import SecretKey

__all__ = [
    "MAX_NAME_CHARS",
    "SCOPES",
    "SERVICE_METHODS",
    "BudgetPeriod",
    "Connection",
    "check_name",
    "describe_methods",
    "expand_methods",
]

SCOPES: dict[str, frozenset[str]] = {
    "pay": frozenset(
        {
            Method.PAY_INVOICE,
            Method.MULTI_PAY_INVOICE,
            Method.PAY_KEYSEND,
            Method.MULTI_PAY_KEYSEND,
        }
    ),
    "receive": frozenset({Method.MAKE_INVOICE}),
    "read": frozenset(
        {Method.GET_BALANCE, Method.GET_INFO, Method.LOOKUP_INVOICE, Method.LIST_TRANSACTIONS}
    ),
    "sign": frozenset({Method.SIGN_MESSAGE}),
    "hold": frozenset(
        {Method.MAKE_HOLD_INVOICE, Method.SETTLE_HOLD_INVOICE, Method.CANCEL_HOLD_INVOICE}
    ),
}

PAY_METHODS = SCOPES["pay"]

MAX_NAME_CHARS = 64
"""A connection's name fits one line of ``nwcd connection list``."""

# Answered by the service from its own records, whatever the backend.
SERVICE_METHODS: frozenset[str] = frozenset({Method.GET_BUDGET})


class BudgetPeriod(StrEnum):
    """When a budget renews (calendar periods, in the configured time zone)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"
    NEVER = "never"


def check_name(text: str) -> str:
    """A connection's name, stripped: 1 to :data:`MAX_NAME_CHARS` printable characters.

    Raises:
        ValueError: it is empty, too long or not printable.
    """
    name = text.strip()
    if not name:
        raise ValueError("the name must not be empty")
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ValueError(f"the name must be at most {MAX_NAME_CHARS} printable characters")
    return name


def expand_methods(words: Iterable[str]) -> frozenset[str]:
    """Scopes and method names -> method names.

    Raises:
        ValueError: a word is neither a scope nor a method.
    """
    known = {m.value for m in Method}
    methods: set[str] = set()
    for word in words:
        word = word.strip()
        if not word:
            continue
        if word in SCOPES:
            methods |= SCOPES[word]
        elif word in known:
            methods.add(word)
        else:
            raise ValueError(
                f"unknown method or scope {word!r}; scopes: {', '.join(SCOPES)}; "
                f"methods: {', '.join(sorted(known))}"
            )
    return frozenset(methods)


@dataclass(frozen=True, slots=True)
class Connection:
    """One app's grant. ``methods`` None means every method."""

    name: str
    wallet_key: SecretKey
    app_pubkey: str
    relays: tuple[str, ...]
    created_at: int
    methods: frozenset[str] | None = None
    max_amount_msat: int | None = None
    budget_msat: int | None = None
    budget_period: BudgetPeriod = BudgetPeriod.NEVER
    expires_at: int | None = None
    lud16: str | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None

    @property
    def wallet_pubkey(self) -> str:
        return self.wallet_key.public_key.hex

    def may_use(self, method: str) -> bool:
        """Whether the grant covers ``method``.

        ``get_budget`` comes with any payment method, as in Alby Hub: an app that may
        spend may see how much it has left (grants made before it existed included).
        """
        if self.methods is None or method in self.methods:
            return True
        return method == Method.GET_BUDGET and not self.methods.isdisjoint(PAY_METHODS)

    def allowed_methods(self, backend_methods: Iterable[str]) -> list[str]:
        """Methods this connection may use on this backend, in a stable order."""
        available = set(backend_methods) | SERVICE_METHODS
        return [m.value for m in Method if m.value in available and self.may_use(m.value)]


def describe_methods(methods: frozenset[str] | None) -> str:
    """A short, stable description of a grant: ``all``, whole scopes, then single methods.

    ``describe_methods(frozenset(SCOPES["pay"]) | {"get_balance"})`` is
    ``"pay,get_balance"``; apart from ``all`` and ``none`` the result parses back
    with :func:`expand_methods`.
    """
    if methods is None:
        return "all"
    if not methods:
        return "none"
    words = [scope for scope, members in SCOPES.items() if members <= methods]
    covered = frozenset().union(*(SCOPES[w] for w in words))
    words += [m.value for m in Method if m.value in methods and m.value not in covered]
    return ",".join(words)
