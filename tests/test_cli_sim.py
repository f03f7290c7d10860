"""``nwcd sim outage`` and ``nwcd sim pay`` reach a backend on the same data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.cli import main
from nwcd.errors import BackendUnavailable
from nwcd.nip47.methods import MakeHoldInvoiceParams, MakeInvoiceParams

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
