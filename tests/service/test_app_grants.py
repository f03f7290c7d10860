"""Granting what an app asked for: the operator may only narrow it (never a wider grant), the
relays it gets, free names, and connections made for an app's own key in a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.nip47.app_request import AppRequest
from nwcd.nip47.methods import Method
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import MAX_NAME_CHARS, SCOPES, BudgetPeriod
from nwcd.service.admin import (
    AdminError,
    Narrowing,
    NewConnection,
    create_connection,
    free_name,
    grant_request,
    revoke_connection,
)
from nwcd.store.sqlite import SqliteStore

NOW = 1_764_000_000
APP = SecretKey.generate().public_key
OURS = ("wss://relay.example.com", "wss://other.example.com")
ASKED = AppRequest(
    app_pubkey=APP,
    name="Zap Café",
    relays=("wss://nos.lol", "wss://relay.example.com"),
    methods=frozenset({"pay_invoice", "get_balance", "get_info"}),
    budget_msat=21_000_000,
    budget_period=BudgetPeriod.WEEKLY,
    expires_at=NOW + 30 * 86400,
)


AS_ASKED = Narrowing()


def grant(narrowing: Narrowing = AS_ASKED, request: AppRequest = ASKED) -> NewConnection:
    return grant_request(request, narrowing, service_relays=OURS)


# -- as asked, and the relays ------------------------------------------------------------------


def test_as_asked_on_the_relay_the_app_and_the_service_share() -> None:
    assert grant() == NewConnection(
        name="Zap Café",
        relays=("wss://relay.example.com",),  # not nos.lol: the service does not use it
        methods=ASKED.methods,
        budget_msat=21_000_000,
        budget_period=BudgetPeriod.WEEKLY,
        expires_at=ASKED.expires_at,
        app_pubkey=APP,
    )


@pytest.mark.parametrize(
    "spelling",
    ["wss://relay.example.com/", "WSS://Relay.Example.COM", "wss://relay.example.com:443"],
)
def test_a_shared_relay_is_found_in_any_spelling_and_kept_in_the_services(spelling: str) -> None:
    request = replace(ASKED, relays=(spelling,))
    assert grant(request=request).relays == ("wss://relay.example.com",)


def test_no_shared_relay_is_refused_naming_both_unless_the_operator_takes_the_apps() -> None:
    request = replace(ASKED, relays=("wss://nos.lol", "wss://relay.example.com:4443"))
    with pytest.raises(AdminError) as refused:
        grant(request=request)
    assert str(refused.value) == (
        "the app waits on wss://nos.lol, wss://relay.example.com:4443, relays the service"
        " does not use (it uses: wss://relay.example.com, wss://other.example.com); add one"
        " of the app's relays to the service's relays, or accept with the app's relays"
        " (--use-app-relays) and the service connects to them too"
    )
    taken = grant(Narrowing(use_app_relays=True), request)
    assert taken.relays == request.relays


def test_an_authorization_url_gets_the_services_relays() -> None:
    request = replace(ASKED, relays=())
    assert grant(request=request).relays == OURS
    with pytest.raises(AdminError, match="the service has no relays to offer the app"):
        grant_request(request, service_relays=())


def test_the_name_is_the_operators_else_the_apps_else_made_from_the_key() -> None:
    assert grant(Narrowing(name="shop")).name == "shop"
    assert grant(request=replace(ASKED, name=None)).name == f"app {APP.hex[:8]}"
    with pytest.raises(AdminError, match="at most 64 printable characters"):
        grant(Narrowing(name="x" * 65))


# -- narrowing, never widening -----------------------------------------------------------------


def test_the_operator_may_grant_less() -> None:
    narrowed = grant(
        Narrowing(
            methods=frozenset({"get_info"}),
            budget_msat=1_000,
            budget_period=BudgetPeriod.MONTHLY,
            expires_at=NOW + 86400,
            max_amount_msat=500,
            lud16="shop@example.com",
        )
    )
    assert narrowed.methods == frozenset({"get_info"})
    assert (narrowed.budget_msat, narrowed.budget_period) == (1_000, BudgetPeriod.MONTHLY)
    assert narrowed.expires_at == NOW + 86400
    assert narrowed.max_amount_msat == 500  # apps ask for no limit per payment: the operator's
    assert narrowed.lud16 == "shop@example.com"


@pytest.mark.parametrize(
    ("narrowing", "message"),
    [
        (
            Narrowing(methods=SCOPES["pay"]),
            "the app did not ask for multi_pay_invoice, multi_pay_keysend, pay_keysend; it asks"
            " for pay_invoice,get_balance,get_info: grant those or fewer",
        ),
        (Narrowing(methods=frozenset()), "grant the app at least one method"),
        (
            Narrowing(budget_msat=21_000_001),
            "the app asks for a budget of 21000000 msat: grant at most that",
        ),
        (
            Narrowing(budget_period=BudgetPeriod.DAILY),
            "the app's budget renews weekly: one that renews daily would let it spend more",
        ),
        (
            Narrowing(expires_at=ASKED.expires_at + 1),  # type: ignore[operator]
            "the app asks for its connection to expire at 2025-12-24 16:00 UTC: choose that or"
            " an earlier expiry",
        ),
    ],
)
def test_a_wider_grant_is_refused(narrowing: Narrowing, message: str) -> None:
    with pytest.raises(AdminError) as refused:
        grant(narrowing)
    assert str(refused.value) == message


def test_what_the_app_did_not_limit_the_operator_may_limit_any_way() -> None:
    # (A renewal without a budget renews nothing: it is never.)
    open_ended = replace(ASKED, methods=None, budget_msat=None, expires_at=None)
    new = grant(Narrowing(methods=SCOPES["read"], budget_msat=5, expires_at=NOW + 9), open_ended)
    assert (new.methods, new.budget_msat, new.budget_period) == (SCOPES["read"], 5, "never")
    assert new.expires_at == NOW + 9
    assert grant(Narrowing(budget_msat=5, budget_period=BudgetPeriod.DAILY), open_ended)
    with pytest.raises(AdminError, match="--budget-period needs --budget-msat"):
        grant(Narrowing(budget_period=BudgetPeriod.DAILY), open_ended)
    assert grant(request=open_ended).methods is None  # every method, as asked


_RENEWALS = list(BudgetPeriod)
_methods = st.sets(st.sampled_from([m.value for m in Method]), min_size=1).map(frozenset)


@given(
    asked_methods=st.none() | _methods,
    asked_budget=st.none() | st.integers(1, 10**6),
    asked_period=st.sampled_from(_RENEWALS),
    asked_expiry=st.none() | st.integers(NOW, NOW + 10**6),
    methods=st.none() | _methods,
    budget=st.none() | st.integers(1, 2 * 10**6),
    period=st.none() | st.sampled_from(_RENEWALS),
    expiry=st.none() | st.integers(NOW, NOW + 2 * 10**6),
)
def test_a_grant_is_never_wider_than_the_request(
    asked_methods: frozenset[str] | None,
    asked_budget: int | None,
    asked_period: BudgetPeriod,
    asked_expiry: int | None,
    methods: frozenset[str] | None,
    budget: int | None,
    period: BudgetPeriod | None,
    expiry: int | None,
) -> None:
    request = replace(
        ASKED,
        methods=asked_methods,
        budget_msat=asked_budget,
        budget_period=asked_period if asked_budget is not None else BudgetPeriod.NEVER,
        expires_at=asked_expiry,
    )
    try:
        narrowing = Narrowing(
            methods=methods, budget_msat=budget, budget_period=period, expires_at=expiry
        )
        new = grant(narrowing, request)
    except AdminError:
        return
    order = [
        BudgetPeriod.DAILY,
        BudgetPeriod.WEEKLY,
        BudgetPeriod.MONTHLY,
        BudgetPeriod.YEARLY,
        BudgetPeriod.NEVER,
    ]
    if request.methods is not None:
        assert new.methods is not None
        assert new.methods <= request.methods
    if request.budget_msat is not None:
        assert new.budget_msat is not None
        assert new.budget_msat <= request.budget_msat
        assert order.index(new.budget_period) >= order.index(request.budget_period)
    if request.expires_at is not None:
        assert new.expires_at is not None
        assert new.expires_at <= request.expires_at
    # And what the operator asked for is what is granted.
    assert new.methods == (methods if methods is not None else request.methods)
    assert new.budget_msat == (budget if budget is not None else request.budget_msat)


@given(
    st.text(min_size=1, max_size=MAX_NAME_CHARS),
    st.sets(st.text(max_size=MAX_NAME_CHARS), max_size=20),
)
def test_a_free_name_is_free_short_enough_and_its_own_when_it_can_be(
    name: str, taken: set[str]
) -> None:
    free = free_name(name, taken)
    assert free not in taken
    assert len(free) <= MAX_NAME_CHARS
    if name not in taken:
        assert free == name


def test_free_names_count_up() -> None:
    assert free_name("shop", {"shop", "shop 2"}) == "shop 3"
    long = "x" * MAX_NAME_CHARS
    assert free_name(long, {long}) == "x" * (MAX_NAME_CHARS - 2) + " 2"


# -- in a real store ---------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "nwcd.sqlite")
    yield opened
    await opened.close()


async def test_a_connection_for_the_apps_own_key_has_no_uri(store: SqliteStore) -> None:
    created = await create_connection(store, grant(), now=NOW, listen_timeout=1)
    assert created.uri is None  # the app keeps its secret: there is nothing to hand out
    assert created.behind == []
    [stored] = await store.connections()
    assert stored == created.connection
    assert stored.app_pubkey == APP.hex
    assert stored.relays == ("wss://relay.example.com",)
    assert (stored.budget_msat, stored.budget_period) == (21_000_000, BudgetPeriod.WEEKLY)
    assert stored.wallet_pubkey != APP.hex


async def test_the_operators_own_connections_still_get_a_fresh_app_key_and_uri(
    store: SqliteStore,
) -> None:
    new = NewConnection(name="shop", relays=OURS)
    created = await create_connection(store, new, now=NOW, listen_timeout=1)
    assert created.uri is not None
    assert created.uri.client_pubkey.hex == created.connection.app_pubkey
    assert created.uri.wallet_pubkey.hex == created.connection.wallet_pubkey
    with pytest.raises(AdminError, match="a connection named 'shop' exists already"):
        await create_connection(store, new, now=NOW, listen_timeout=1)  # no renaming here


async def test_an_apps_taken_name_gets_a_number(store: SqliteStore) -> None:
    await create_connection(store, NewConnection("Zap Café", OURS), now=NOW, listen_timeout=1)
    await create_connection(store, NewConnection("Zap Café 2", OURS), now=NOW, listen_timeout=1)
    created = await create_connection(store, grant(), now=NOW, listen_timeout=1)
    assert created.connection.name == "Zap Café 3"


async def test_one_live_connection_per_app_key(store: SqliteStore) -> None:
    first = await create_connection(store, grant(), now=NOW, listen_timeout=1)
    with pytest.raises(AdminError) as refused:
        await create_connection(store, grant(), now=NOW, listen_timeout=1)
    assert str(refused.value) == (
        "this app's key has a connection already ('Zap Café'); revoke it before accepting"
        f" the app again: nwcd connection revoke {first.connection.wallet_pubkey[:16]}"
    )
    await revoke_connection(store, first.connection.wallet_pubkey, now=NOW)
    again = await create_connection(store, grant(), now=NOW, listen_timeout=1)
    assert again.connection.name == "Zap Café 2"
    # Once expired, a connection no longer counts either.
    later = ASKED.expires_at + 1  # type: ignore[operator]
    third = await create_connection(
        store, grant(request=replace(ASKED, expires_at=None)), now=later, listen_timeout=1
    )
    assert third.connection.app_pubkey == APP.hex
    assert len(await store.connections()) == 3
