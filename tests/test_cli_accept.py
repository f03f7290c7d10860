"""``nwcd connection accept``: what the app asks for is shown, the operator is asked (or
gives --yes), the connection is made for the app's key; refusals are one line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from nwcd.cli import main
from nwcd.nip47.app_request import AppRequest, format_nwa_uri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import BudgetPeriod

RELAY = "ws://127.0.0.1:7777"
APP = SecretKey.generate().public_key
ASKED = AppRequest(
    app_pubkey=APP,
    name="Zap Café",
    relays=(RELAY,),
    methods=frozenset({"pay_invoice", "get_balance", "get_info"}),
    budget_msat=21_000_000,
    budget_period=BudgetPeriod.MONTHLY,
    isolated=True,
    return_to="https://zap.example.com/done",
)
URI = format_nwa_uri(ASKED)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NWCD_DATA_DIR", "NWCD_CONFIG", "NWC_URI", "NWCD_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NWCD_RELAYS", RELAY)  # the service's relays


class Cli:
    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = data_dir
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*argv, "--data-dir", str(self.data_dir)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def fails(self, *argv: str) -> str:
        code, out, err = self.run(*argv)
        assert code == 2, (out, err)
        assert out == ""
        assert err.count("\n") == 1, err
        return err.strip()

    def connections(self) -> list[dict[str, Any]]:
        code, out, err = self.run("connection", "list", "--json")
        assert code == 0, err
        found: list[dict[str, Any]] = json.loads(out)
        return found


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "data", capsys)


class Terminal(io.StringIO):
    """A stdin that is a terminal, where the operator types ``answer``."""

    def isatty(self) -> bool:
        return True


def test_accept_shows_the_request_and_creates_the_connection_for_the_apps_key(
    cli: Cli,
) -> None:
    code, out, err = cli.run("connection", "accept", URI, "--yes")
    assert code == 0, err
    assert err == ""
    [connection] = cli.connections()
    assert out.splitlines() == [
        f"The app {APP.hex} asks for a connection:",
        "  name:            Zap Café",
        "  methods:         get_balance, get_info, pay_invoice",
        "  budget:          21,000 sat (21,000,000 msat) monthly",
        "  max per payment: none",
        "  expires:         never",
        f"  relays:          {RELAY}",
        "  isolated:        asked, but nwcd has no separate balances: the app pays from the"
        " wallet's, within its budget",
        "  returns to:      https://zap.example.com/done",
        "It is named 'Zap Café' ('Zap Café 2'... if that name is taken).",
        "",
        "Connection 'Zap Café' created for the app.",
        f"wallet pubkey: {connection['wallet_pubkey']}",
        "No nwcd serve is running: once one starts, it publishes the info event on"
        f" {RELAY} and the app takes it from there.",
    ]
    assert connection["app_pubkey"] == APP.hex
    assert sorted(connection["methods"]) == ["get_balance", "get_info", "pay_invoice"]
    assert connection["budget_msat"] == 21_000_000
    assert connection["budget_period"] == "monthly"
    assert connection["relays"] == [RELAY]


def test_json_is_the_result_alone_and_the_request_goes_to_stderr(cli: Cli) -> None:
    code, out, err = cli.run("connection", "accept", URI, "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    [connection] = cli.connections()
    assert result == {
        "name": "Zap Café",
        "wallet_pubkey": connection["wallet_pubkey"],
        "app_pubkey": APP.hex,
        "relays": [RELAY],
    }
    assert err.startswith(f"The app {APP.hex} asks for a connection:")


def test_the_operator_narrows_and_sees_what_is_granted(cli: Cli) -> None:
    code, out, err = cli.run(
        "connection", "accept", URI, "--yes", "--name", "zap", "--methods", "get_info",
        "--budget-msat", "1000", "--budget-period", "yearly", "--expires-in", "1d",
    )  # fmt: skip
    assert code == 0, err
    assert "  methods:         get_balance, get_info, pay_invoice\n" in out
    assert "                   you grant: get_info\n" in out
    assert "                   you grant: 1 sat (1,000 msat) yearly\n" in out
    [connection] = cli.connections()
    assert connection["name"] == "zap"
    assert connection["methods"] == ["get_info"]
    assert (connection["budget_msat"], connection["budget_period"]) == (1000, "yearly")
    assert connection["expires_at"] is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--methods", "pay"), "the app did not ask for multi_pay_invoice, multi_pay_keysend,"),
        (("--budget-msat", "21000001"), "grant at most that"),
        (("--budget-period", "daily"), "one that renews daily would let it spend more"),
    ],
)
def test_a_wider_grant_is_one_line_and_nothing_is_made(
    cli: Cli, extra: tuple[str, ...], message: str
) -> None:
    assert message in cli.fails("connection", "accept", URI, "--yes", *extra)
    assert cli.connections() == []


def test_a_bad_uri_is_one_line(cli: Cli) -> None:
    bad = URI.replace("get_info", "get_infos")
    assert cli.fails("connection", "accept", bad, "--yes").startswith(
        "nwcd: error: cannot accept this request: the app asks for a method nwcd does not"
        " know: get_infos (known: "
    )


def test_an_app_relay_the_service_does_not_use_is_refused_unless_taken(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NWCD_RELAYS", "wss://ours.example.com")
    err = cli.fails("connection", "accept", URI, "--yes")
    assert err == (
        f"nwcd: error: the app waits on {RELAY}, a relay the service does not use (it uses:"
        " wss://ours.example.com); add one of the app's relays to the service's relays, or"
        " accept with the app's relays (--use-app-relays) and the service connects to them"
        " too"
    )
    code, _, err = cli.run("connection", "accept", URI, "--yes", "--use-app-relays")
    assert code == 0, err
    assert cli.connections()[0]["relays"] == [RELAY]


def test_without_yes_it_asks_on_the_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = cli.run("connection", "accept", URI)
    assert code == 1
    assert err == "Create this connection? [y/N] not created\n"
    assert cli.connections() == []
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = cli.run("connection", "accept", URI)
    assert code == 0, err
    assert "Connection 'Zap Café' created for the app." in out
    assert len(cli.connections()) == 1


def test_without_yes_and_without_a_terminal_nothing_is_made(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, _, err = cli.run("connection", "accept", URI)
    assert code == 2
    assert err == ("nwcd: error: not on a terminal to ask: give --yes to accept without asking\n")
    assert cli.connections() == []


def test_the_same_app_twice_is_refused_while_its_connection_lives(cli: Cli) -> None:
    assert cli.run("connection", "accept", URI, "--yes")[0] == 0
    code, out, err = cli.run("connection", "accept", URI, "--yes", "--json")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(
        "nwcd: error: this app's key has a connection already ('Zap Café'); revoke it"
    )
    assert cli.run("connection", "revoke", "Zap Café")[0] == 0
    code, out, err = cli.run("connection", "accept", URI, "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "Zap Café 2"
