"""Connection administration, shared by the CLI, tests and (later) a web console.

Create, change, revoke and look up connections, and report their budget use.
The rules of a change (what may change, what must come together) are pure
(:func:`apply_changes`), and so are those of granting what an app asked for
(:func:`grant_request`, :func:`free_name`); the rest is a thin layer over the store.

Relays keep no ephemeral events, so a request sent to a wallet key no
running service listens for yet is lost for good. A new connection is
therefore handed out only once every live ``nwcd serve`` instance says, in
its heartbeat, that it listens for the connections version that holds it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import PublicKey, SecretKey
from nwcd.policy.budget import window_end, window_start
from nwcd.policy.grants import (
    MAX_NAME_CHARS,
    BudgetPeriod,
    Connection,
    check_name,
    describe_methods,
)
from nwcd.ports import ConnectionStore, InstanceRegistry, PaymentLedger, Store

if TYPE_CHECKING:  # the CLI's other commands need not load the app-request parser
    from nwcd.nip47.app_request import AppRequest

__all__ = [
    "KEEP",
    "AdminError",
    "Changes",
    "Created",
    "Keep",
    "Narrowing",
    "NewConnection",
    "Usage",
    "apply_changes",
    "create_connection",
    "find_connection",
    "free_name",
    "grant_request",
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
    """What a new connection is granted (``methods`` None: every method).

    ``app_pubkey``: the key of an app that asked for the connection and keeps its own
    secret (:func:`grant_request`); None: nwcd makes the app's key and hands it out once,
    in the URI.
    """

    name: str
    relays: tuple[str, ...]
    methods: frozenset[str] | None = None
    max_amount_msat: int | None = None
    budget_msat: int | None = None
    budget_period: BudgetPeriod = BudgetPeriod.NEVER
    expires_at: int | None = None
    lud16: str | None = None
    app_pubkey: PublicKey | None = None


@dataclass(frozen=True, slots=True)
class Created:
    """A stored connection and the URI to give its app (shown once: the app's secret is not
    stored). ``uri`` is None for a connection made for an app's own key: there is no secret
    to hand out; the app learns of it from the info event (NWA) or the wallet's answer
    (authorization URL). ``behind``: running instances that did not confirm they listen
    for it."""

    connection: Connection
    uri: ConnectionUri | None
    behind: list[str]


@dataclass(frozen=True, slots=True)
class Narrowing:
    """What the operator changes in an app's request (:func:`grant_request`); None keeps
    what the app asked for.

    Each change may only narrow the request: fewer methods, a smaller budget or one that
    renews less often, an earlier expiry. A limit per payment and a lightning address are
    the operator's own (an app asks for neither). ``use_app_relays``: use every relay the
    app names, also those the service does not use yet (it then connects to them too).
    """

    name: str | None = None
    methods: frozenset[str] | None = None
    budget_msat: int | None = None
    budget_period: BudgetPeriod | None = None
    expires_at: int | None = None
    max_amount_msat: int | None = None
    lud16: str | None = None
    use_app_relays: bool = False


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


# Shortest first: a budget that renews less often than asked lets the app spend no more.
_RENEWALS: Final = (
    BudgetPeriod.DAILY,
    BudgetPeriod.WEEKLY,
    BudgetPeriod.MONTHLY,
    BudgetPeriod.YEARLY,
    BudgetPeriod.NEVER,
)


def grant_request(
    request: AppRequest, narrowing: Narrowing = Narrowing(), *, service_relays: Sequence[str]
) -> NewConnection:
    """The connection to create for an app's request, as the operator narrowed it.

    ``service_relays``: the relays the service is configured with. An authorization URL
    names no relay, so the connection uses these. An NWA app sends its requests only
    to its own relays, so the connection uses those of them the service uses too; if
    there are none, it is refused unless ``narrowing.use_app_relays``: an app's URI
    alone never makes the service connect to a relay the operator did not choose.

    Raises:
        AdminError: the narrowing would grant more than the app asked for, or no relay
            is both the app's and the service's.
    """
    methods = request.methods
    if narrowing.methods is not None:
        if not narrowing.methods:
            raise AdminError("grant the app at least one method")
        if request.methods is not None and (extra := narrowing.methods - request.methods):
            raise AdminError(
                f"the app did not ask for {', '.join(sorted(extra))}; it asks for"
                f" {describe_methods(request.methods)}: grant those or fewer"
            )
        methods = narrowing.methods
    budget, period = request.budget_msat, request.budget_period
    if budget is None:
        period = BudgetPeriod.NEVER  # no budget renews
    if narrowing.budget_msat is not None:
        if budget is not None and narrowing.budget_msat > budget:
            raise AdminError(f"the app asks for a budget of {budget} msat: grant at most that")
        budget = narrowing.budget_msat
    if narrowing.budget_period is not None:
        if budget is None:
            raise AdminError("--budget-period needs --budget-msat (the amount that renews)")
        if request.budget_msat is not None and _RENEWALS.index(
            narrowing.budget_period
        ) < _RENEWALS.index(request.budget_period):
            raise AdminError(
                f"the app's budget {_renews(request.budget_period)}: one that"
                f" {_renews(narrowing.budget_period)} would let it spend more"
            )
        period = narrowing.budget_period
    expires = request.expires_at
    if narrowing.expires_at is not None:
        if expires is not None and narrowing.expires_at > expires:
            raise AdminError(
                f"the app asks for its connection to expire at {_utc(expires)}: choose"
                " that or an earlier expiry"
            )
        expires = narrowing.expires_at
    try:
        name = check_name(narrowing.name or request.name or f"app {request.app_pubkey.hex[:8]}")
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    return NewConnection(
        name=name,
        relays=_relays_for(request, service_relays, use_app_relays=narrowing.use_app_relays),
        methods=methods,
        max_amount_msat=narrowing.max_amount_msat,
        budget_msat=budget,
        budget_period=period,
        expires_at=expires,
        lud16=narrowing.lud16,
        app_pubkey=request.app_pubkey,
    )


def _renews(period: BudgetPeriod) -> str:
    return "never renews" if period is BudgetPeriod.NEVER else f"renews {period.value}"


def _utc(stamp: int) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _relay_key(url: str) -> tuple[str, str, int | None, str, str]:
    """What makes two spellings of a relay URL the same relay (case, default port, "/")."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"ws": 80, "wss": 443}.get(parts.scheme)
    except ValueError:  # not a valid port: only the same spelling is the same relay
        return parts.scheme, url, None, "", ""
    return parts.scheme, parts.hostname or "", port, parts.path.rstrip("/"), parts.query


def _relays_for(
    request: AppRequest, service_relays: Sequence[str], *, use_app_relays: bool
) -> tuple[str, ...]:
    """The connection's relays (see :func:`grant_request`); the service's spelling of a
    shared relay, so the service keeps one socket to it."""
    ours = ", ".join(service_relays) or "none configured"
    if not request.relays:
        if not service_relays:
            raise AdminError(
                "the service has no relays to offer the app: set relays in the config"
                " file or NWCD_RELAYS"
            )
        return tuple(service_relays)
    if use_app_relays:
        return request.relays
    by_key = {_relay_key(relay): relay for relay in service_relays}
    shared = [by_key[key] for key in map(_relay_key, request.relays) if key in by_key]
    if not shared:
        raise AdminError(
            f"the app waits on {', '.join(request.relays)},"
            f" {'a relay' if len(request.relays) == 1 else 'relays'} the service does not use"
            f" (it uses: {ours}); add one of the app's relays to the service's relays, or"
            " accept with the app's relays (--use-app-relays) and the service connects to"
            " them too"
        )
    return tuple(dict.fromkeys(shared))


def free_name(name: str, taken: Collection[str]) -> str:
    """``name``, or the first of ``name 2``, ``name 3``... that is not taken (shortened to
    fit :data:`~nwcd.policy.grants.MAX_NAME_CHARS`): an app's suggested name must not make
    its request a dead end."""
    if name not in taken:
        return name
    for number in itertools.count(2):
        suffix = f" {number}"
        candidate = name[: MAX_NAME_CHARS - len(suffix)].rstrip() + suffix
        if candidate not in taken:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _live_grant(connections: Sequence[Connection], app_pubkey: str, now: int) -> Connection | None:
    """A connection of ``app_pubkey`` that is neither revoked nor expired, if any."""
    for c in connections:
        expired = c.expires_at is not None and c.expires_at <= now
        if c.app_pubkey == app_pubkey and c.revoked_at is None and not expired:
            return c
    return None


# -- with the store ----------------------------------------------------------------------------


async def create_connection(
    store: Store, new: NewConnection, *, now: int, listen_timeout: float
) -> Created:
    """Store a new connection with a fresh wallet key, and wait until running services listen.

    Without ``new.app_pubkey``, nwcd makes the app's key too, and the URI carries its
    secret (the only copy). With it, the connection is for that key (the app asked for
    it) and there is no URI. The name the app suggested is then free to change: when it
    is taken, the connection is named ``"<name> 2"``, ``"<name> 3"``... And a key that has
    a live connection gets no second one, which would double its budget.

    Raises:
        AdminError: the name is taken (a name the operator chose), or the app's key has a
            live connection.
    """
    wallet_key = SecretKey.generate()
    app_secret, app_key = None, new.app_pubkey
    if app_key is None:
        app_secret = SecretKey.generate()  # handed to the app in the URI, never stored
        app_key = app_secret.public_key
    connection = Connection(
        name=new.name,
        wallet_key=wallet_key,
        app_pubkey=app_key.hex,
        relays=new.relays,
        created_at=now,
        methods=new.methods,
        max_amount_msat=new.max_amount_msat,
        budget_msat=new.budget_msat,
        budget_period=new.budget_period,
        expires_at=new.expires_at,
        lud16=new.lud16,
    )
    connection = await _add(store, connection, for_app=new.app_pubkey is not None, now=now)
    # A request sent before the running services listen would be lost: wait for them.
    behind = await wait_until_listening(
        store, await store.connections_version(), timeout=listen_timeout
    )
    uri = None
    if app_secret is not None:
        uri = ConnectionUri(wallet_key.public_key, new.relays, app_secret, new.lud16)
    return Created(connection, uri, behind)


_NAME_ATTEMPTS: Final = 5
"""Tries at a free name for an app's connection (another process may take one meanwhile)."""


async def _add(
    store: ConnectionStore, connection: Connection, *, for_app: bool, now: int
) -> Connection:
    """Store ``connection``; ``for_app``: under a free name (:func:`free_name`), once no live
    connection has its app key. Returns it as stored."""
    wanted = connection.name
    for _ in range(_NAME_ATTEMPTS):
        if for_app:
            existing = await store.connections()
            live = _live_grant(existing, connection.app_pubkey, now)
            if live is not None:
                raise AdminError(
                    f"this app's key has a connection already ({live.name!r}); revoke it"
                    " before accepting the app again: nwcd connection revoke"
                    f" {live.wallet_pubkey[:16]}"
                )
            connection = replace(connection, name=free_name(wanted, {c.name for c in existing}))
        try:
            await store.add_connection(connection)
        except ValueError as exc:
            if not for_app:
                raise AdminError(f"{exc} (see: nwcd connection list)") from None
            continue
        return connection
    raise AdminError(f"no free name like {wanted!r} was found: give the connection a name")


async def update_connection(
    store: Store, key: str, changes: Changes, *, listen_timeout: float = 0
) -> tuple[Connection, Connection]:
    """Change a connection; returns it before and after, once running services apply it
    (or ``listen_timeout`` passes): a lower budget or a revocation holds when this returns.

    Raises:
        AdminError: no such connection, a change the rules refuse, or a taken name.
    """
    old = find_connection(await store.connections(), key)
    new = apply_changes(old, changes)
    try:
        await store.save_connection(new)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    await _applied(store, listen_timeout)
    return old, new


async def revoke_connection(
    store: Store, key: str, *, now: int, listen_timeout: float = 0
) -> tuple[Connection, bool]:
    """Revoke a connection; returns it and whether it was revoked already, once running
    services refuse it (or ``listen_timeout`` passes).

    Raises:
        AdminError: no such connection.
    """
    connection = find_connection(await store.connections(), key)
    if connection.revoked_at is not None:
        return connection, True
    revoked = replace(connection, revoked_at=now)
    await store.save_connection(revoked)
    await _applied(store, listen_timeout)
    return revoked, False


async def _applied(store: Store, listen_timeout: float) -> None:
    """Wait until running services apply the latest connection change (they confirm the
    connections version in their heartbeat only after reloading the grants)."""
    if listen_timeout > 0:
        version = await store.connections_version()
        await wait_until_listening(store, version, timeout=listen_timeout)


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
