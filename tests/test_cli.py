"""``nwcd connection ...`` in-process: output shapes, every change, and one-line usage errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nwcd.cli import main
from nwcd.nip47.uri import ConnectionUri
from nwcd.policy.budget import window_end, window_start
from nwcd.policy.grants import SCOPES, BudgetPeriod
from nwcd.ports import PaymentIntent, PaymentState, RequestRecord, Reserved
from nwcd.store.sqlite import SqliteStore

RELAY = "ws://127.0.0.1:7777"
OLD_KEYS = {
    "name",
    "wallet_pubkey",
    "app_pubkey",
    "methods",
    "relays",
    "max_amount_msat",
    "budget_msat",
    "budget_period",
    "expires_at",
    "created_at",
    "last_used_at",
    "revoked",
}
NEW_KEYS = {
    "state",
    "revoked_at",
    "lud16",
    "budget_used_msat",
    "budget_remaining_msat",
    "budget_renews_at",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NWCD_DATA_DIR", "NWCD_CONFIG", "NWCD_RELAYS", "NWCD_BACKEND", "NWC_URI"):
        monkeypatch.delenv(name, raising=False)


class Cli:
    """Runs ``nwcd`` in-process against one data dir."""

    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = data_dir
        self.capsys = capsys

    def run(self, *argv: str, data_dir: bool = True) -> tuple[int, str, str]:
        args = list(argv)
        if data_dir:
            args += ["--data-dir", str(self.data_dir)]
        self.capsys.readouterr()
        code = main(args)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self.run(*argv)
        assert code == 0, err
        assert err == ""
        return out

    def json(self, *argv: str) -> Any:
        return json.loads(self.ok(*argv, "--json"))

    def fails(self, *argv: str, data_dir: bool = True) -> str:
        """A usage error: exit code 2, nothing on stdout, exactly one line on stderr."""
        code, out, err = self.run(*argv, data_dir=data_dir)
        assert code == 2, (out, err)
        assert out == ""
        assert err.endswith("\n")
        assert err.count("\n") == 1, err
        assert err.startswith("nwcd")
        assert ": error: " in err
        return err.strip()

    def create(self, name: str, *extra: str) -> dict[str, str]:
        result: dict[str, str] = self.json(
            "connection", "create", "--name", name, "--relay", RELAY, *extra
        )
        return result


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "data", capsys)


# -- create -------------------------------------------------------------------------------------


def test_create_prints_the_uri_and_a_terminal_qr_code(cli: Cli) -> None:
    out = cli.ok(
        "connection",
        "create",
        "--name",
        "shop",
        "--relay",
        RELAY,
        "--relay",
        "wss://relay.example.com",
        "--lud16",
        "shop@example.com",
    )
    lines = out.splitlines()
    assert lines[0] == "Connection 'shop' created. Give this URI to the app (shown once):"
    uri = ConnectionUri.parse(lines[2])
    assert uri.relays == (RELAY, "wss://relay.example.com")
    assert uri.lud16 == "shop@example.com"
    qr = [line for line in lines[3:] if line.strip()]
    assert len(qr) > 15
    assert all(set(line) <= {"█", "▀", "▄", " "} for line in qr)
    [listed] = cli.json("connection", "list")
    assert listed["wallet_pubkey"] == uri.wallet_pubkey.hex
    assert listed["app_pubkey"] == uri.client_pubkey.hex


def test_create_json_is_exactly_the_documented_shape(cli: Cli) -> None:
    out = cli.ok("connection", "create", "--name", "bot", "--relay", RELAY, "--json")
    created = json.loads(out)  # the whole output is one JSON document: no QR, no prose
    assert set(created) == {"name", "uri", "wallet_pubkey", "app_pubkey"}
    assert created["name"] == "bot"
    uri = ConnectionUri.parse(created["uri"])
    assert uri.wallet_pubkey.hex == created["wallet_pubkey"]
    assert uri.client_pubkey.hex == created["app_pubkey"]
    assert uri.lud16 is None


def test_create_writes_a_png(cli: Cli, tmp_path: Path) -> None:
    png = tmp_path / "qr.png"
    created = cli.create("shop", "--qr-png", str(png))
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_size > 200
    assert created["name"] == "shop"
    text_png = tmp_path / "text.png"
    out = cli.ok(
        "connection", "create", "--name", "shop2", "--relay", RELAY, "--qr-png", str(text_png)
    )
    assert f"QR code written to {text_png}" in out
    assert text_png.exists()


def test_create_with_every_limit(cli: Cli) -> None:
    before = int(time.time())
    cli.create(
        "tips",
        "--methods",
        "pay,get_balance",
        "--max-amount-msat",
        "1_000_000",
        "--budget-msat",
        "5000000",
        "--budget-period",
        "daily",
        "--expires-in",
        "30d",
    )
    shown = cli.json("connection", "show", "tips")
    assert set(shown) == OLD_KEYS | NEW_KEYS
    assert shown["methods"] == sorted(SCOPES["pay"] | {"get_balance"})
    assert shown["max_amount_msat"] == 1_000_000
    assert (shown["budget_msat"], shown["budget_period"]) == (5_000_000, "daily")
    assert before + 30 * 86_400 <= shown["expires_at"] <= int(time.time()) + 30 * 86_400
    assert shown["state"] == "active"
    assert shown["budget_used_msat"] == 0
    assert shown["budget_remaining_msat"] == 5_000_000
    assert shown["budget_renews_at"] == window_end(int(time.time()), BudgetPeriod.DAILY)
    assert shown["revoked"] is False
    assert shown["lud16"] is None


def test_create_defaults(cli: Cli) -> None:
    cli.create("plain")
    shown = cli.json("connection", "show", "plain")
    assert shown["methods"] == "all"
    assert shown["max_amount_msat"] is None
    assert shown["budget_msat"] is None
    assert shown["budget_period"] == "never"
    assert shown["budget_remaining_msat"] is None
    assert shown["budget_renews_at"] is None
    assert shown["expires_at"] is None
    assert shown["relays"] == [RELAY]


def test_relays_come_from_the_environment_or_config(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NWCD_RELAYS", "wss://a.example.com, wss://b.example.com")
    cli.json("connection", "create", "--name", "env")
    assert cli.json("connection", "show", "env")["relays"] == [
        "wss://a.example.com",
        "wss://b.example.com",
    ]
    monkeypatch.delenv("NWCD_RELAYS")
    config = tmp_path / "nwcd.toml"
    config.write_text('relays = ["wss://c.example.com"]\n')
    cli.json("connection", "create", "--name", "file", "--config", str(config))
    assert cli.json("connection", "show", "file")["relays"] == ["wss://c.example.com"]


def test_expires_at_without_offset_is_in_the_configured_timezone(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "nwcd.toml"
    config.write_text('[service]\ntimezone = "Europe/Berlin"\n')
    cli.create("berlin", "--expires-at", "2099-07-01T12:00", "--config", str(config))
    cli.create("offset", "--expires-at", "2099-07-01T12:00+00:00", "--config", str(config))
    assert cli.json("connection", "show", "berlin")["expires_at"] == 4086583200  # 10:00 UTC
    assert cli.json("connection", "show", "offset")["expires_at"] == 4086583200 + 7200
    out = cli.ok("connection", "show", "berlin", "--config", str(config))
    assert "expires:         2099-07-01 12:00 CEST" in out


# -- list / show --------------------------------------------------------------------------------


def test_list_when_empty(cli: Cli) -> None:
    assert "no connections yet" in cli.ok("connection", "list")
    assert cli.json("connection", "list") == []


async def _spend(data_dir: Path, wallet: str, items: list[tuple[int, int, int]]) -> list[int]:
    """Reserve (amount, fee reserve, created_at) payments for a wallet, as the service would."""
    store = await SqliteStore.open(data_dir / "nwcd.sqlite")
    try:
        ids = []
        for n, (amount, reserve, created_at) in enumerate(items):
            request_id = f"{n + 1:064x}"
            await store.claim(
                RequestRecord(request_id, wallet, "ab" * 32, "nip44_v2", "{}", 0, 0), "cli-test"
            )
            [reserved] = await store.reserve(
                request_id,
                wallet,
                [PaymentIntent(0, "pay_invoice", None, f"{n:064x}", None, amount, reserve)],
                owner="cli-test",
                budget_msat=None,
                window_start=0,
                now=created_at,
            )
            assert isinstance(reserved, Reserved)
            ids.append(reserved.payment_id)
        return ids
    finally:
        await store.close()


async def _settle(data_dir: Path, payment_id: int, state: PaymentState, fee: int = 0) -> None:
    store = await SqliteStore.open(data_dir / "nwcd.sqlite")
    try:
        await store.settle(payment_id, state, now=int(time.time()), fee_msat=fee)
    finally:
        await store.close()


def test_list_and_show_report_budget_use_in_the_current_window(cli: Cli) -> None:
    created = cli.create("tips", "--budget-msat", "100000", "--budget-period", "daily")
    cli.create("free")
    now = int(time.time())
    today = window_start(now, BudgetPeriod.DAILY)
    ids = asyncio.run(
        _spend(
            cli.data_dir,
            created["wallet_pubkey"],
            [
                (10_000, 1_000, now),  # will succeed with fee 7
                (20_000, 2_000, now),  # will fail: released
                (30_000, 3_000, now),  # in flight: reserved
                (40_000, 4_000, today - 1),  # yesterday: another window
            ],
        )
    )
    asyncio.run(_settle(cli.data_dir, ids[0], PaymentState.SUCCEEDED, fee=7))
    asyncio.run(_settle(cli.data_dir, ids[1], PaymentState.FAILED))
    used = 10_007 + 33_000
    shown = cli.json("connection", "show", "tips")
    assert shown["budget_used_msat"] == used
    assert shown["budget_remaining_msat"] == 100_000 - used
    listed = {c["name"]: c for c in cli.json("connection", "list")}
    assert listed["tips"]["budget_used_msat"] == used
    assert listed["free"]["budget_used_msat"] == 0
    assert listed["free"]["budget_remaining_msat"] is None
    assert set(listed["free"]) == OLD_KEYS | NEW_KEYS

    out = cli.ok("connection", "list")
    header, *lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines[:2]}
    tips_row, free_row = rows["tips"], rows["free"]
    assert header.split() == [
        "NAME",
        "STATE",
        "WALLET",
        "APP",
        "METHODS",
        "BUDGET",
        "USED",
        "LEFT",
        "EXPIRES",
        "LAST",
        "USED",
    ]
    assert tips_row.split()[:8] == [
        "tips",
        "active",
        created["wallet_pubkey"][:12],
        created["app_pubkey"][:12],
        "all",
        "100000/daily",
        str(used),
        str(100_000 - used),
    ]
    assert tips_row.split()[8:] == ["never", "never"]
    assert free_row.split()[5:8] == ["-", "0", "-"]

    text = cli.ok("connection", "show", "tips")
    assert f"budget:          100000 msat daily: {used} used, {100_000 - used} left, renews" in text


def test_a_never_budget_counts_everything_and_does_not_renew(cli: Cli) -> None:
    created = cli.create("once", "--budget-msat", "50000")
    asyncio.run(_spend(cli.data_dir, created["wallet_pubkey"], [(1_000, 100, 1_000_000)]))
    shown = cli.json("connection", "show", "once")
    assert (shown["budget_used_msat"], shown["budget_remaining_msat"]) == (1_100, 48_900)
    assert shown["budget_renews_at"] is None
    assert "never renews" in cli.ok("connection", "show", "once")


def test_remaining_never_goes_negative(cli: Cli) -> None:
    created = cli.create("small", "--budget-msat", "1000")
    asyncio.run(_spend(cli.data_dir, created["wallet_pubkey"], [(5_000, 0, int(time.time()))]))
    assert cli.json("connection", "show", "small")["budget_remaining_msat"] == 0


def test_show_by_name_pubkeys_and_prefix(cli: Cli) -> None:
    a = cli.create("a")
    b = cli.create("b")
    for key in (
        "a",
        a["wallet_pubkey"],
        a["app_pubkey"],
        a["wallet_pubkey"][:8],
        a["app_pubkey"][:12].upper(),
    ):
        assert cli.json("connection", "show", key)["name"] == "a", key
    assert cli.json("connection", "show", b["wallet_pubkey"])["name"] == "b"
    text = cli.ok("connection", "show", "a")
    assert f"wallet pubkey:   {a['wallet_pubkey']}" in text
    assert f"app pubkey:      {a['app_pubkey']}" in text
    assert "methods:         all" in text
    assert "last used:       never" in text
    # Too short a prefix is not taken as a key.
    assert "no connection" in cli.fails("connection", "show", a["wallet_pubkey"][:7])


def test_last_used_is_shown(cli: Cli) -> None:
    created = cli.create("app")

    async def touch() -> None:
        store = await SqliteStore.open(cli.data_dir / "nwcd.sqlite")
        try:
            await store.touch_connection(created["wallet_pubkey"], 1_767_225_600)
        finally:
            await store.close()

    asyncio.run(touch())
    assert cli.json("connection", "show", "app")["last_used_at"] == 1_767_225_600
    assert "2026-01-01 00:00 UTC" in cli.ok("connection", "list")


# -- update -------------------------------------------------------------------------------------


def test_update_changes_only_what_is_given(cli: Cli) -> None:
    created = cli.create(
        "shop",
        "--methods",
        "pay,read",
        "--max-amount-msat",
        "1000",
        "--budget-msat",
        "9000",
        "--budget-period",
        "weekly",
        "--expires-in",
        "1d",
        "--lud16",
        "shop@example.com",
    )
    before = cli.json("connection", "show", "shop")
    after = cli.json("connection", "update", "shop", "--max-amount-msat", "2000")
    assert after["max_amount_msat"] == 2000
    changed = {k for k in OLD_KEYS | NEW_KEYS if before[k] != after[k]}
    assert changed == {"max_amount_msat"}
    assert after["wallet_pubkey"] == created["wallet_pubkey"]


def test_update_every_option(cli: Cli) -> None:
    cli.create("shop", "--methods", "read")

    def update(*argv: str) -> dict[str, Any]:
        result: dict[str, Any] = cli.json("connection", "update", "shop", *argv)
        return result

    assert update("--methods", "pay,receive")["methods"] == sorted(
        SCOPES["pay"] | SCOPES["receive"]
    )
    assert update("--methods", "all")["methods"] == "all"
    assert update("--max-amount-msat", "5")["max_amount_msat"] == 5
    assert update("--no-max-amount")["max_amount_msat"] is None
    shown = update("--budget-msat", "100")
    assert (shown["budget_msat"], shown["budget_period"]) == (100, "never")
    assert update("--budget-period", "monthly")["budget_period"] == "monthly"
    shown = update("--budget-msat", "200")
    assert (shown["budget_msat"], shown["budget_period"]) == (200, "monthly")
    shown = update("--no-budget")
    assert (shown["budget_msat"], shown["budget_period"]) == (None, "never")
    now = int(time.time())
    assert now + 3600 <= update("--expires-in", "1h")["expires_at"] <= int(time.time()) + 3600
    assert update("--expires-at", "2099-01-01T00:00:00+00:00")["expires_at"] == 4070908800
    assert update("--no-expiry")["expires_at"] is None
    assert update("--relay", "wss://x.example.com", "--relay", "wss://y.example.com")["relays"] == [
        "wss://x.example.com",
        "wss://y.example.com",
    ]
    assert update("--lud16", "me@example.com")["lud16"] == "me@example.com"
    assert update("--no-lud16")["lud16"] is None
    assert update("--name", "store")["name"] == "store"
    assert cli.json("connection", "show", "store")["name"] == "store"


def test_update_text_output_and_uri_note(cli: Cli) -> None:
    cli.create("shop")
    out = cli.ok("connection", "update", "shop", "--methods", "pay")
    assert out.startswith("connection 'shop' updated")
    assert "methods:         pay (pay_invoice" in out
    assert "note:" not in out
    out = cli.ok("connection", "update", "shop", "--relay", "wss://new.example.com")
    assert "note: the app's URI still names the old relays" in out


def test_update_takes_effect_in_the_store_version(cli: Cli) -> None:
    """A running service polls the connections version: every change bumps it."""
    cli.create("shop")

    async def version() -> int:
        store = await SqliteStore.open(cli.data_dir / "nwcd.sqlite")
        try:
            return await store.connections_version()
        finally:
            await store.close()

    first = asyncio.run(version())
    cli.json("connection", "update", "shop", "--methods", "read")
    second = asyncio.run(version())
    cli.ok("connection", "revoke", "shop")
    assert first < second < asyncio.run(version())


# -- revoke -------------------------------------------------------------------------------------


def test_revoke(cli: Cli) -> None:
    created = cli.create("shop")
    cli.create("other")
    out = cli.ok("connection", "revoke", created["app_pubkey"])
    assert out.startswith("connection 'shop' revoked")
    listed = {c["name"]: c for c in cli.json("connection", "list")}
    assert listed["shop"]["revoked"] is True
    assert listed["shop"]["state"] == "revoked"
    assert abs(listed["shop"]["revoked_at"] - time.time()) < 5
    assert listed["other"]["revoked"] is False
    assert "was revoked already" in cli.ok("connection", "revoke", "shop")
    text = cli.ok("connection", "list")
    states = {line.split()[0]: line.split()[1] for line in text.splitlines()[1:3]}
    assert states == {"shop": "revoked", "other": "active"}
    err = cli.fails("connection", "update", "shop", "--methods", "read")
    assert "is revoked and cannot be changed" in err


def test_expired_state(cli: Cli) -> None:
    cli.create("brief", "--expires-in", "1s")
    time.sleep(1.1)
    assert cli.json("connection", "show", "brief")["state"] == "expired"


# -- help and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["create", "list", "show", "update", "revoke"])
def test_help_has_examples(cli: Cli, action: str) -> None:
    code, out, _ = cli.run("connection", action, "--help", data_dir=False)
    assert code == 0
    assert "examples:" in out
    assert f"nwcd connection {action}" in out.split("examples:")[1]


def test_top_level_help(cli: Cli) -> None:
    code, out, _ = cli.run(data_dir=False)
    assert code == 0
    assert "connection" in out


BAD_CREATE: list[tuple[list[str], str]] = [
    (["--methods", "pay,fly"], "unknown method or scope 'fly'; scopes: pay, receive, read, sign"),
    (["--methods", ","], "give scopes (pay, receive, read, sign)"),
    (["--methods", "all,pay"], "'all' cannot be combined"),
    (["--max-amount-msat", "-5"], "--max-amount-msat: must be a positive number of msat, not -5"),
    (["--max-amount-msat", "0"], "must be a positive number of msat, not 0"),
    (["--max-amount-msat", "1.5"], "'1.5' is not a whole number of msat"),
    (["--budget-msat", "-1"], "--budget-msat: must be a positive number of msat"),
    (["--budget-msat", "lots"], "'lots' is not a whole number of msat"),
    (["--budget-msat", "5", "--budget-period", "hourly"], "invalid choice: 'hourly'"),
    (["--budget-period", "daily"], "--budget-period needs --budget-msat"),
    (["--expires-in", "30x"], "'30x' is not a duration"),
    (["--expires-in", "0d"], "'0d' is not a duration"),
    (["--expires-in=-3d"], "'-3d' is not a duration"),
    (["--expires-in", "-3d"], "expected one argument (a value that starts with '-' is written"),
    (["--expires-in", "30d", "--expires-at", "2099-01-01"], "not allowed with argument"),
    (["--expires-at", "tomorrow"], "'tomorrow' is not an ISO date"),
    (["--expires-at", "2001-01-01"], "is in the past"),
    (["--lud16", "nobody"], "'nobody' is not a lightning address"),
    (["--relay", "http://relay.example.com"], "is not a ws:// or wss:// URL"),
    (["--relay", "wss://"], "is not a ws:// or wss:// URL"),
    (["--relay", "wss://relay:port"], "is not a ws:// or wss:// URL"),
    (["--qr-png", "/no/such/folder/qr.png"], "--qr-png: folder '/no/such/folder' does not exist"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_CREATE)
def test_bad_create_arguments(cli: Cli, extra: list[str], message: str) -> None:
    err = cli.fails("connection", "create", "--name", "x", "--relay", RELAY, *extra)
    assert message in err
    assert cli.json("connection", "list") == []  # nothing was stored


def test_create_needs_a_name_and_a_relay(cli: Cli) -> None:
    assert "required: --name" in cli.fails("connection", "create", "--relay", RELAY)
    assert "--name: the name must not be empty" in cli.fails(
        "connection", "create", "--name", "  ", "--relay", RELAY
    )
    assert "give at least one --relay URL" in cli.fails("connection", "create", "--name", "x")


def test_usage_errors_point_to_help(cli: Cli) -> None:
    err = cli.fails("connection", "create", "--name", "x", "--methods", "nope")
    assert err.startswith("nwcd connection create: error: argument --methods:")
    assert err.endswith("(see: nwcd connection create --help)")
    assert "invalid choice: 'frobnicate'" in cli.fails("connection", "frobnicate")
    assert "required: ACTION" in cli.fails("connection", data_dir=False)


def test_duplicate_name(cli: Cli) -> None:
    cli.create("shop")
    err = cli.fails("connection", "create", "--name", "shop", "--relay", RELAY)
    assert "a connection named 'shop' exists already" in err
    cli.create("other")
    assert "exists already" in cli.fails("connection", "update", "other", "--name", "shop")


@pytest.mark.parametrize("action", ["show", "update", "revoke"])
def test_unknown_connection(cli: Cli, action: str) -> None:
    cli.create("shop")
    extra = ["--methods", "read"] if action == "update" else []
    err = cli.fails("connection", action, "shopp", *extra)
    assert err == ("nwcd: error: no connection named or keyed 'shopp' (see: nwcd connection list)")


BAD_UPDATE: list[tuple[list[str], str]] = [
    ([], "nothing to change"),
    (["--methods", "fly"], "unknown method or scope 'fly'"),
    (["--max-amount-msat", "-1"], "must be a positive number of msat"),
    (["--max-amount-msat", "5", "--no-max-amount"], "not allowed with argument"),
    (["--budget-msat", "5", "--no-budget"], "not allowed with argument"),
    (["--no-budget", "--budget-period", "daily"], "cannot be combined with --no-budget"),
    (["--budget-period", "daily"], "has no budget: give --budget-msat with --budget-period"),
    (["--expires-in", "1d", "--no-expiry"], "not allowed with argument"),
    (["--expires-at", "2099-01-01", "--no-expiry"], "not allowed with argument"),
    (["--expires-in", "soon"], "is not a duration"),
    (["--relay", "relay.example.com"], "is not a ws:// or wss:// URL"),
    (["--lud16", "x@y.com", "--no-lud16"], "not allowed with argument"),
    (["--name", ""], "the name must not be empty"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_UPDATE)
def test_bad_update_arguments(cli: Cli, extra: list[str], message: str) -> None:
    cli.create("shop")
    before = cli.json("connection", "show", "shop")
    assert message in cli.fails("connection", "update", "shop", *extra)
    assert cli.json("connection", "show", "shop") == before


def test_bad_config_is_one_line(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "nwcd.toml"
    config.write_text('[service]\ncap_balance_to_budget = "yes"\n')
    err = cli.fails("connection", "list", "--config", str(config))
    assert "service.cap_balance_to_budget must be a bool" in err
    config.write_text('[service]\ntimezone = "Mars/Olympus"\n')
    assert "unknown time zone 'Mars/Olympus'" in cli.fails(
        "connection", "list", "--config", str(config)
    )
    config.write_text("[service]\ncap_balance_to_budget = true\n")
    assert cli.json("connection", "list", "--config", str(config)) == []


def test_closed_stdout_is_not_a_traceback(cli: Cli) -> None:
    """``nwcd connection show x | head -1``: the reader may leave before we write."""
    cli.create("shop")
    data_dir = str(cli.data_dir)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nwcd", "connection", "show", "shop", "--data-dir", data_dir],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr
