"""``nwcd sim ...`` commands reach a backend on the same data dir."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.bolt11 import decode
from nwcd.cli import main
from nwcd.errors import BackendUnavailable
from nwcd.nip47.methods import MakeHoldInvoiceParams, MakeInvoiceParams, TlvRecord
from nwcd.ports import Succeeded

ENV_NAMES = ("NWCD_DATA_DIR", "NWCD_CONFIG", "NWCD_RELAYS", "NWCD_BACKEND", "NWC_URI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def nwcd(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``nwcd`` in its own process, as the chaos tests run it next to ``nwcd serve``."""
    env = {name: value for name, value in os.environ.items() if name not in ENV_NAMES}
    return subprocess.run(
        [sys.executable, "-m", "nwcd", *argv, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


async def test_outage_from_the_command_line_reaches_the_backend(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = nwcd(data_dir, "sim", "outage", "--mode", "error", "--seconds", "5")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "simulated backend outage (error) for 5 s\n",
        "",
    )
    backend = await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite"))
    try:
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await backend.get_balance()
        done = nwcd(data_dir, "sim", "outage", "--end")
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            "simulated backend outage ended\n",
            "",
        )
        assert await backend.get_balance() > 0
    finally:
        await backend.close()


def test_hang_outage_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sim", "outage", "--mode", "hang", "--seconds", "0.5", "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    assert capsys.readouterr().out == "simulated backend outage (hang) for 0.5 s\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--end", "--mode", "error"], "not allowed with argument"),
        (["--end", "--seconds", "5"], "--end takes no --seconds"),
        (["--mode", "error"], "--mode needs --seconds"),
        (["--seconds", "5"], "one of the arguments --mode --end is required"),
        ([], "one of the arguments --mode --end is required"),
        (["--mode", "error", "--seconds", "0"], "must be a positive number of seconds"),
        (["--mode", "hang", "--seconds", "-3"], "must be a positive number of seconds"),
        (["--mode", "error", "--seconds", "soon"], "is not a number of seconds"),
        (["--mode", "flaky", "--seconds", "5"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    data_dir = tmp_path / "data"
    assert main(["sim", "outage", *argv, "--data-dir", str(data_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("nwcd")
    assert ": error: " in err
    assert expected in err
    assert not data_dir.exists()  # refused before the simulator was opened


async def test_sim_pay_pays_the_wallets_invoices_from_outside(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert nwcd(data_dir, "sim", "outage", "--end").returncode == 0  # makes the data dir
    backend = await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite"))
    try:
        ordinary = await backend.make_invoice(MakeInvoiceParams(21_000))
        held = await backend.make_hold_invoice(MakeHoldInvoiceParams(5_000, "ab" * 32))
        amountless = await backend.make_invoice(MakeInvoiceParams(0))
        assert ordinary.invoice is not None
        assert held.invoice is not None
        assert amountless.invoice is not None
        done = nwcd(data_dir, "sim", "pay", ordinary.invoice)
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout == f"paid 21000 msat to {ordinary.payment_hash}: settled\n"
        done = nwcd(data_dir, "sim", "pay", held.invoice)
        assert done.stdout == (
            f"paid 5000 msat to {held.payment_hash}: accepted"
            " (held: the app settles or cancels it)\n"
        )
        done = nwcd(data_dir, "sim", "pay", amountless.invoice, "--amount-msat", "777")
        assert done.returncode == 0
        states = [
            await backend.lookup_invoice(payment_hash=tx.payment_hash, invoice=None)
            for tx in (ordinary, held, amountless)
        ]
        assert [(tx.state, tx.amount_msat) for tx in states if tx] == [
            ("settled", 21_000),
            ("accepted", 5_000),
            ("settled", 777),
        ]
        again = nwcd(data_dir, "sim", "pay", ordinary.invoice)
        garbage = nwcd(data_dir, "sim", "pay", "lnbcrt1garbage")
        for refused, reason in ((again, "already paid"), (garbage, "not a valid invoice")):
            assert refused.returncode != 0
            assert refused.stdout == ""
            assert refused.stderr.count("\n") == 1
            assert reason in refused.stderr
    finally:
        await backend.close()


# --- named nodes, what they received, lightning addresses -------------------------------------


def test_sim_node_prints_a_stable_pubkey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sim", "node", "podcast", "--data-dir", str(tmp_path)]
    assert main(argv) == 0
    pubkey = capsys.readouterr().out.strip()
    assert re.fullmatch(r"0[23][0-9a-f]{64}", pubkey)
    assert main([*argv, "--json"]) == 0  # again: the same node
    assert json.loads(capsys.readouterr().out) == {"name": "podcast", "pubkey": pubkey}
    assert main(["sim", "node", "Bad Name", "--data-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "node name" in err


async def test_sim_received_lists_keysends_with_their_tlvs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = nwcd(data_dir, "sim", "node", "podcast")
    assert done.returncode == 0, done.stderr
    pubkey = done.stdout.strip()
    done = nwcd(data_dir, "sim", "received", "podcast")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "podcast received nothing yet\n")
    backend = await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite"))
    try:
        boost = '{"action":"boost","app_name":"test"}'
        records = (TlvRecord(7629169, boost.encode().hex()), TlvRecord(696969, "ff00"))
        outcome = await backend.pay_keysend(
            pubkey=pubkey,
            amount_msat=21_000,
            preimage="11" * 32,
            tlv_records=records,
            fee_limit_msat=0,
        )
        assert isinstance(outcome, Succeeded)
        invoice = await backend.create_invoice(3_000, node="podcast")
        await backend.pay_invoice(decode(invoice.invoice), amount_msat=3_000, fee_limit_msat=0)
    finally:
        await backend.close()
    keysend_hash = hashlib.sha256(bytes.fromhex("11" * 32)).hexdigest()
    done = nwcd(data_dir, "sim", "received", pubkey)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert re.fullmatch(rf"\S+ \S+  keysend  21000 msat  {keysend_hash}", lines[0])
    assert lines[1:3] == [f"  tlv 7629169: {boost}", "  tlv 696969 (hex): ff00"]
    assert re.fullmatch(rf"\S+ \S+  invoice  3000 msat  {invoice.payment_hash}", lines[3])
    done = nwcd(data_dir, "sim", "received", "podcast", "--json")
    received = json.loads(done.stdout)["received"]
    assert [(r["kind"], r["amount_msat"], r["payment_hash"]) for r in received] == [
        ("keysend", 21_000, keysend_hash),
        ("invoice", 3_000, invoice.payment_hash),
    ]
    assert received[0]["tlv_records"] == [
        {
            "type": 7629169,
            "value": boost.encode().hex(),
            "text": boost,
            "json": {"action": "boost", "app_name": "test"},
        },
        {"type": 696969, "value": "ff00", "text": None, "json": None},
    ]
    assert abs(received[0]["at"] - time.time()) < 120
    done = nwcd(data_dir, "sim", "received", "nobody")
    assert done.returncode == 2
    assert "no simulated node" in done.stderr


def test_sim_invoice_with_a_description_or_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["sim", "invoice", "--amount-msat", "1000", "--json", "--data-dir", str(tmp_path)]
    assert main([*common, "--description", "coffee"]) == 0
    assert decode(json.loads(capsys.readouterr().out)["invoice"]).description == "coffee"
    digest = hashlib.sha256(b"[]").hexdigest()
    assert main([*common, "--description-hash", digest]) == 0
    decoded = decode(json.loads(capsys.readouterr().out)["invoice"])
    assert (decoded.description, decoded.description_hash) == (None, digest)
    assert main([*common, "--description-hash", "12"]) == 2
    assert "description_hash must be 64 hex" in capsys.readouterr().err


async def test_sim_lnurl_serves_addresses_until_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {name: value for name, value in os.environ.items() if name not in ENV_NAMES}
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "nwcd", "sim", "lnurl", "--json", "--data-dir", str(data_dir)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert server.stdout is not None
        shown = json.loads(await asyncio.wait_for(server.stdout.readline(), 30))
        port = shown["port"]
        assert shown["url"] == f"http://127.0.0.1:{port}"
        assert shown["authority"] == f"127.0.0.1:{port}"
        assert shown["example_address"] == f"alice@127.0.0.1:{port}"
        assert re.fullmatch(r"[0-9a-f]{64}", shown["nostr_pubkey"])
        async with httpx.AsyncClient(timeout=10) as http:
            params = (await http.get(f"{shown['url']}/.well-known/lnurlp/alice")).json()
            answer = await http.get(params["callback"], params={"amount": 2_000, "comment": "hi"})
        invoice = decode(answer.json()["pr"])
        assert invoice.description_hash == hashlib.sha256(params["metadata"].encode()).hexdigest()
        backend = await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite"))
        try:
            assert shown["nostr_pubkey"] == backend.zapper_secret().public_key.hex
            outcome = await backend.pay_invoice(invoice, amount_msat=2_000, fee_limit_msat=0)
            assert isinstance(outcome, Succeeded)
        finally:
            await backend.close()
        done = nwcd(data_dir, "sim", "received", "alice")
        assert done.stdout.splitlines()[1:] == ["  comment: hi"]
    finally:
        server.kill()
        await asyncio.wait_for(server.communicate(), 10)
