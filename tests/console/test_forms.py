"""The console's connection form, read without a server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Any

import pytest

from nwcd.console.forms import FormError, GrantForm, grant_form_of, parse_grant_form, sats_text
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import SCOPES, BudgetPeriod, Connection

NOW = 1_800_000_000


def parse(**fields: Any) -> Any:
    return parse_grant_form(replace(GrantForm(name="shop"), **fields), now=NOW, tz=UTC)


def test_every_grant_of_the_cli_is_read() -> None:
    grant = parse_grant_form(
        GrantForm(
            name=" shop ",
            scopes=["pay", "read"],
            extra_methods="make_invoice",
            max_amount_sat="2.5",
            budget_sat="10_000",
            budget_period="daily",
            expires_at="2027-01-31T18:00",
            lud16="me@example.com",
        ),
        now=NOW,
        tz=UTC,
    )
    assert grant.name == "shop"
    assert grant.methods == SCOPES["pay"] | SCOPES["read"] | {"make_invoice"}
    assert grant.max_amount_msat == 2500
    assert grant.budget_msat == 10_000_000
    assert grant.budget_period is BudgetPeriod.DAILY
    assert grant.expires_at == 1_801_418_400
    assert grant.lud16 == "me@example.com"


def test_all_means_every_method() -> None:
    assert parse(scopes=["all", "pay"]).methods is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"scopes": []}, "scopes"),
        ({"extra_methods": "pay_everyone"}, "extra_methods"),
        ({"max_amount_sat": "0"}, "max_amount_sat"),
        ({"max_amount_sat": "1.0001"}, "max_amount_sat"),
        ({"budget_sat": "-5"}, "budget_sat"),
        ({"budget_sat": "NaN"}, "budget_sat"),
        ({"budget_period": "daily"}, "budget_sat"),
        ({"budget_sat": "5", "budget_period": "hourly"}, "budget_period"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2020-01-01T00:00"}, "expires_at"),
        ({"lud16": "not an address"}, "lud16"),
    ],
)
def test_mistakes_are_named_by_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(FormError) as caught:
        parse(**fields)
    assert field in caught.value.errors


def test_a_connection_shown_in_the_form_reads_back_unchanged() -> None:
    connection = Connection(
        name="tips",
        wallet_key=SecretKey.generate(),
        app_pubkey=SecretKey.generate().public_key.hex,
        relays=("ws://127.0.0.1:1",),
        created_at=NOW,
        methods=SCOPES["pay"] | {"get_balance"},
        max_amount_msat=1500,  # set in msat by the CLI: not a whole sat
        budget_msat=7_000_001,
        budget_period=BudgetPeriod.WEEKLY,
        expires_at=NOW + 3600 * 24,
        lud16="tips@example.com",
    )
    form = grant_form_of(connection, UTC)
    assert form.scopes == ["pay"]
    assert form.extra_methods == "get_balance"
    assert form.max_amount_sat == "1.5"
    grant = parse_grant_form(form, now=NOW, tz=UTC)
    assert grant.methods == connection.methods
    assert grant.max_amount_msat == 1500
    assert grant.budget_msat == 7_000_001
    assert grant.budget_period is BudgetPeriod.WEEKLY
    assert grant.expires_at == connection.expires_at
    assert grant.lud16 == "tips@example.com"


@pytest.mark.parametrize(("msat", "text"), [(None, ""), (1000, "1"), (1500, "1.5"), (1, "0.001")])
def test_sats_are_shown_exactly(msat: int | None, text: str) -> None:
    assert sats_text(msat) == text
