"""The operator's commands: ``serve`` and ``relay`` refusing to start with one line that says
what to do, ``wallet balance | history``, ``demo``, global options before the command, and
help text for every option."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nwcd import bolt11
from nwcd.bootstrap import open_simulator
from nwcd.cli import build_parser, main
from nwcd.config import Settings

ENV_NAMES = ("NWCD_DATA_DIR", "NWCD_CONFIG", "NWCD_RELAYS", "NWCD_BACKEND", "NWC_URI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self.run(*argv)
        assert code == 0, err
        return out

    def fails(self, *argv: str) -> str:
        """Exit 2, nothing on stdout, exactly one line on stderr."""
        code, out, err = self.run(*argv)
        assert code == 2, (out, err)
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.endswith("\n")
        return err.strip()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


# -- serve -----------------------------------------------------------------------------------


def test_serve_without_relays_says_how_to_give_them(cli: Cli, tmp_path: Path) -> None:
    err = cli.fails("serve", "--data-dir", str(tmp_path / "data"))
    assert err == (
        "nwcd: error: no relays to serve on: give --relay wss://... (repeatable), set"
        ' NWCD_RELAYS=wss://a,wss://b, or relays = ["wss://..."] in the config file'
    )
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_serve_with_a_bad_relay_url(cli: Cli, tmp_path: Path) -> None:
    err = cli.fails("serve", "--relay", "http://relay.example.com", "--data-dir", str(tmp_path))
    assert err == "nwcd: error: relay 'http://relay.example.com' is not a ws:// or wss:// URL"


def test_serve_on_a_data_dir_that_cannot_be(cli: Cli, tmp_path: Path) -> None:
    relay = ["--relay", "ws://127.0.0.1:7777"]
    err = cli.fails("serve", *relay, "--data-dir", "/proc/nope")
    assert err == (
        "nwcd: error: data dir /proc/nope: No such file or directory (give a folder you can"
        " write to: --data-dir DIR or NWCD_DATA_DIR)"
    )
    a_file = tmp_path / "file"
    a_file.write_text("")
    err = cli.fails("serve", *relay, "--data-dir", str(a_file))
    assert err.startswith(f"nwcd: error: data dir {a_file}: ")
    assert err.endswith("(give a folder you can write to: --data-dir DIR or NWCD_DATA_DIR)")


def test_verbose_adds_the_traceback(cli: Cli, tmp_path: Path) -> None:
    for argv in (["-v", "serve"], ["serve", "-v"]):
        code, out, err = cli.run(*argv, "--data-dir", str(tmp_path))
        assert (code, out) == (2, "")
        assert "Traceback (most recent call last)" in err
        assert err.splitlines()[-1].startswith("nwcd: error: no relays to serve on")


# -- relay -----------------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_relay_on_a_port_in_use(cli: Cli, busy_port: int) -> None:
    err = cli.fails("relay", "--port", str(busy_port))
    assert err == (
        f"nwcd: error: cannot listen on 127.0.0.1:{busy_port}: address already in use: another"
        " program (an nwcd relay?) listens there; stop it or choose another --port"
    )


def test_relay_on_an_address_not_of_this_machine(cli: Cli) -> None:
    err = cli.fails("relay", "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1
    assert err == (
        "nwcd: error: cannot listen on 192.0.2.1:0: address not available: --host must be an"
        " address of this machine"
    )


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_relay_port_out_of_range(cli: Cli, port: str) -> None:
    err = cli.fails("relay", f"--port={port}")
    assert err == (
        f"nwcd relay: error: argument --port: {port!r} is not a TCP port: give 1 to 65535"
        " (0: any free port) (see: nwcd relay --help)"
    )


# -- global options --------------------------------------------------------------------------


def test_global_options_before_the_command(cli: Cli, tmp_path: Path) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    made = json.loads(
        cli.ok("--data-dir", str(before), "sim", "invoice", "--amount-msat", "1000", "--json")
    )
    assert made["amount_msat"] == 1000
    assert (before / "simulator.sqlite").exists()
    relay = ["--relay", "ws://127.0.0.1:7777"]
    cli.ok("connection", "create", "--name", "a", *relay, "--data-dir", str(after))
    # Given on both sides, the one after the command wins.
    listed = json.loads(
        cli.ok("--data-dir", str(before), "connection", "list", "--data-dir", str(after), "--json")
    )
    assert [c["name"] for c in listed] == ["a"]
    assert json.loads(cli.ok("--data-dir", str(before), "connection", "list", "--json")) == []
    config = tmp_path / "nwcd.toml"
    config.write_text(f'data_dir = "{after}"\n')
    listed = json.loads(cli.ok("--config", str(config), "connection", "list", "--json"))
    assert [c["name"] for c in listed] == ["a"]
    code, _, err = cli.run("-v", "--data-dir", str(before), "wallet", "balance")
    assert code == 0, err


def _options(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_option_has_help() -> None:
    missing = [
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, action in _options(build_parser(), "nwcd")
        if not action.help
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["pay"], ["--timeout SECONDS", "give up waiting after SECONDS", "NWC_URI", "examples:"]),
        (["relay"], ["--host HOST", "keep it on loopback", "--port PORT", "any free port"]),
        (["sim", "invoice"], ["--latency-ms MS", "--outcome", "nwcd sim release", "--fee-msat"]),
        (["serve"], ["--relay URL", "NWCD_RELAYS", "examples:", "--data-dir DIR", "-v"]),
        (["wallet", "history"], ["--limit N", "--unpaid"]),
        (["demo"], ["--invoices N", "1 to 1000"]),
        (
            [],
            [
                "-v, --verbose",
                "--data-dir DIR",
                "--config FILE",
                "balance",
                "keysend",
                "watch",
                "wallet",
            ],
        ),
    ],
)
def test_help_texts(cli: Cli, argv: list[str], wanted: list[str]) -> None:
    code, out, _ = cli.run(*argv, "--help")
    assert code == 0
    text = " ".join(out.split())
    for phrase in wanted:
        assert " ".join(phrase.split()) in text, phrase


# -- wallet ----------------------------------------------------------------------------------


async def _pay_from_the_wallet(data_dir: Path) -> str:
    """One outgoing payment of the simulated wallet on ``data_dir``; its payment hash."""
    backend = await open_simulator(Settings(data_dir=data_dir))
    try:
        made = await backend.create_invoice(12_345, fee_msat=5)
        await backend.pay_invoice(
            bolt11.decode(made.invoice), amount_msat=12_345, fee_limit_msat=1_000
        )
        return made.payment_hash
    finally:
        await backend.close()


def test_wallet_balance_and_history(cli: Cli, tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    out = cli.ok("wallet", "balance", *data)
    assert out == "balance 100,000,000 sat (100,000,000,000 msat) (simulator backend)\n"
    assert cli.ok("wallet", "history", *data) == (
        "no transactions (--unpaid also lists open ones)\n"
    )
    payment_hash = asyncio.run(_pay_from_the_wallet(tmp_path))
    header, row = cli.ok("wallet", "history", *data).splitlines()
    assert header.split()[:5] == ["TIME", "TYPE", "STATE", "AMOUNT", "FEE"]
    assert "outgoing  settled  12.345 sat (12,345 msat)  0.005 sat (5 msat)" in row
    assert payment_hash[:16] in row
    listed = json.loads(cli.ok("wallet", "history", *data, "--limit", "1", "--json"))
    assert [tx["payment_hash"] for tx in listed["transactions"]] == [payment_hash]
    assert json.loads(cli.ok("wallet", "balance", *data, "--json")) == {
        "balance": 100_000_000_000 - 12_345 - 5
    }
    assert "the limit must be" in cli.fails("wallet", "history", "--limit", "0", *data)


# -- demo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-3", "1001", "many"])
def test_demo_batch_size_is_checked(cli: Cli, count: str) -> None:
    err = cli.fails("demo", "--invoices", count)
    assert err == (
        f"nwcd demo: error: argument --invoices: the batch size must be a whole number from 1 to"
        f" 1000, not {count} (see: nwcd demo --help)"
    )


def test_demo_above_the_batch_maximum_ends_with_the_next_step(cli: Cli, tmp_path: Path) -> None:
    out = cli.ok("demo", "--invoices", "101", "--data-dir", str(tmp_path))
    assert "101 invoices, latencies 60-1000 ms, invoice #51 set to fail, sent as 2 requests" in out
    assert "\n100 paid, 1 failed in " in out
    assert "demo ran as designed" in out
    steps = out.split("demo ran as designed", 1)[1]
    for command in (
        "nwcd relay --port 7777",
        "nwcd connection create --name my-app --relay ws://127.0.0.1:7777",
        "nwcd serve --relay ws://127.0.0.1:7777",
        'nwcd pay "$NWC_URI" "$(nwcd sim invoice --amount-msat 21000)"',
    ):
        assert command in steps


def test_demo_with_one_invoice(cli: Cli, tmp_path: Path) -> None:
    out = cli.ok("demo", "--invoices", "1", "--data-dir", str(tmp_path))
    assert "batch            1 invoice, latencies 60-60 ms\n" in out
    assert "\n1 paid, 0 failed in " in out
    assert "demo ran as designed" in out
