"""Connection administration, shared by the CLI, tests and (later) a web console.

Create, change, revoke and look up connections, and report their budget use.
The rules of a change (what may change, what must come together) are pure
(:func:`apply_changes`); the rest is a thin layer over the store.

Relays keep no ephemeral events, so a request sent to a wallet key no
running service listens for yet is lost for good. A new connection is
therefore handed out only once every live ``nwcd serve`` instance says, in
its heartbeat, that it listens for the connections version that holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Final

from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.budget import window_end, window_start
from nwcd.policy.grants import BudgetPeriod, Connection
from nwcd.ports import ConnectionStore, InstanceRegistry, PaymentLedger, Store

__all__ = [
    "KEEP",
    "AdminError",
    "Changes",
    "Created",
    "Keep",
    "NewConnection",
    "Usage",
    "apply_changes",
    "create_connection",
    "find_connection",
    "revoke_connection",
    "update_connection",
    "usages",
    "wait_until_listening",
]


class AdminError(ValueError):
    """An administration request that cannot be done; the message says why and what to do."""


class Keep:
    """The type of :data:`KEEP`."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = Keep()
"""A field of :class:`Changes` left as it is."""


@dataclass(frozen=True, slots=True)
class NewConnection:
    """What a new connection is granted (``methods`` None: every method)."""

    name: str
    relays: tuple[str, ...]
    methods: frozenset[str] | None = None
    max_amount_msat: int | None = None
    budget_msat: int | None = None
    budget_period: BudgetPeriod = BudgetPeriod.NEVER
    expires_at: int | None = None
    lud16: str | None = None


@dataclass(frozen=True, slots=True)
class Created:
    """A stored connection and the URI to give its app (shown once: the app's secret is not
    stored). ``behind``: running instances that did not confirm they listen for it."""

    connection: Connection
    uri: ConnectionUri
    behind: list[str]


@dataclass(frozen=True, slots=True)
class Changes:
    """Changes to a connection; :data:`KEEP` leaves a field, None removes a limit."""

    name: str | None = None
    relays: tuple[str, ...] | None = None
    methods: frozenset[str] | Keep | None = KEEP
    max_amount_msat: int | Keep | None = KEEP
    budget_msat: int | Keep | None = KEEP
    budget_period: BudgetPeriod | None = None
    expires_at: int | Keep | None = KEEP
    lud16: str | Keep | None = KEEP

    @property
    def empty(self) -> bool:
        return self == Changes()


@dataclass(frozen=True, slots=True)
class Usage:
    """A connection with its budget use (spent + reserved) in the current window."""

    connection: Connection
    used_msat: int
    window_end: int | None
    now: int

    @property
    def remaining_msat(self) -> int | None:
        budget = self.connection.budget_msat
        return None if budget is None else max(0, budget - self.used_msat)

    @property
    def state(self) -> str:
        c = self.connection
        if c.revoked_at is not None and c.revoked_at <= self.now:
            return "revoked"
        if c.expires_at is not None and c.expires_at <= self.now:
            return "expired"
        return "active"


# -- rules (pure) ------------------------------------------------------------------------------


def find_connection(connections: Sequence[Connection], key: str) -> Connection:
    """By name, wallet or app pubkey, or a unique pubkey prefix of at least 8 hex digits.

    Raises:
        AdminError: nothing, or several connections, match.
    """
    for c in connections:
        if key == c.name:
            return c
    wanted = key.lower()
    for c in connections:
        if wanted in (c.wallet_pubkey, c.app_pubkey):
            return c
    if len(wanted) >= 8 and all(ch in "0123456789abcdef" for ch in wanted):
        matches = [
            c
            for c in connections
            if c.wallet_pubkey.startswith(wanted) or c.app_pubkey.startswith(wanted)
        ]
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(repr(c.name) for c in matches)
            raise AdminError(f"{key!r} matches several connections ({names}): give more digits")
    raise AdminError(f"no connection named or keyed {key!r} (see: nwcd connection list)")


def apply_changes(old: Connection, changes: Changes) -> Connection:
    """The connection with ``changes`` made.

    Raises:
        AdminError: nothing to change, a revoked connection, or a budget period without
            a budget.
    """
    if changes.empty:
        raise AdminError(
            "nothing to change: give --methods, --max-amount-msat, --budget-msat,"
            " --budget-period, --expires-in/--expires-at, --relay, --lud16 (or a --no-* option)"
        )
    if old.revoked_at is not None:
        raise AdminError(
            f"connection {old.name!r} is revoked and cannot be changed; create a new one"
        )
    new = old
    if changes.name is not None:
        new = replace(new, name=changes.name)
    if changes.relays is not None:
        new = replace(new, relays=changes.relays)
    if not isinstance(changes.methods, Keep):
        new = replace(new, methods=changes.methods)
    if not isinstance(changes.max_amount_msat, Keep):
        new = replace(new, max_amount_msat=changes.max_amount_msat)
    if changes.budget_msat is None:
        if changes.budget_period is not None:
            raise AdminError("--budget-period cannot be combined with --no-budget")
        new = replace(new, budget_msat=None, budget_period=BudgetPeriod.NEVER)
    else:
        if not isinstance(changes.budget_msat, Keep):
            new = replace(new, budget_msat=changes.budget_msat)
        if changes.budget_period is not None:
            if new.budget_msat is None:
                raise AdminError(
                    f"connection {old.name!r} has no budget: give --budget-msat with"
                    " --budget-period"
                )
            new = replace(new, budget_period=changes.budget_period)
    if not isinstance(changes.expires_at, Keep):
        new = replace(new, expires_at=changes.expires_at)
    if not isinstance(changes.lud16, Keep):
        new = replace(new, lud16=changes.lud16)
    return new


# -- with the store ----------------------------------------------------------------------------


async def create_connection(
    store: Store, new: NewConnection, *, now: int, listen_timeout: float
) -> Created:
    """Store a new connection with fresh keys, and wait until running services listen.

    Raises:
        AdminError: the name is taken.
    """
    wallet_key = SecretKey.generate()
    app_secret = SecretKey.generate()  # handed to the app in the URI, never stored
    connection = Connection(
        name=new.name,
        wallet_key=wallet_key,
        app_pubkey=app_secret.public_key.hex,
        relays=new.relays,
        created_at=now,
        methods=new.methods,
        max_amount_msat=new.max_amount_msat,
        budget_msat=new.budget_msat,
        budget_period=new.budget_period,
        expires_at=new.expires_at,
        lud16=new.lud16,
    )
    try:
        await store.add_connection(connection)
    except ValueError as exc:
        raise AdminError(f"{exc} (see: nwcd connection list)") from None
    # A request sent before the running services listen would be lost: wait for them.
    behind = await wait_until_listening(
        store, await store.connections_version(), timeout=listen_timeout
    )
    uri = ConnectionUri(wallet_key.public_key, new.relays, app_secret, new.lud16)
    return Created(connection, uri, behind)


async def update_connection(
    store: ConnectionStore, key: str, changes: Changes
) -> tuple[Connection, Connection]:
    """Change a connection; returns it before and after.

    Raises:
        AdminError: no such connection, a change the rules refuse, or a taken name.
    """
    old = find_connection(await store.connections(), key)
    new = apply_changes(old, changes)
    try:
        await store.save_connection(new)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    return old, new


async def revoke_connection(
    store: ConnectionStore, key: str, *, now: int
) -> tuple[Connection, bool]:
    """Revoke a connection (at once, also in running services); returns it and whether it
    was revoked already.

    Raises:
        AdminError: no such connection.
    """
    connection = find_connection(await store.connections(), key)
    if connection.revoked_at is not None:
        return connection, True
    revoked = replace(connection, revoked_at=now)
    await store.save_connection(revoked)
    return revoked, False


async def usages(
    store: PaymentLedger, connections: Sequence[Connection], tz: tzinfo, *, now: int
) -> list[Usage]:
    """Budget used (spent + reserved) in each connection's current window."""
    found = []
    for c in connections:
        used = await store.budget_used(c.wallet_pubkey, window_start(now, c.budget_period, tz))
        found.append(Usage(c, used, window_end(now, c.budget_period, tz), now))
    return found


async def wait_until_listening(
    instances: InstanceRegistry, version: int, *, timeout: float, poll: float = 0.05
) -> list[str]:
    """Wait until every live instance listens for ``version`` (or ``timeout`` passes).

    Returns the ids of live instances that still do not (empty: all do, or
    none runs, in which case the next one to start subscribes before it
    reports ready). An instance killed meanwhile drops out once its lease
    expires.
    """
    deadline = time.monotonic() + timeout
    while True:
        behind = [
            instance.instance_id
            for instance in await instances.live_instances(int(time.time()))
            if instance.listening_version < version
        ]
        if not behind or time.monotonic() >= deadline:
            return behind
        await asyncio.sleep(poll)
