"""The benchmark report: its table says what was met and missed, its plots are PNGs.

The benchmarks themselves are run by people (``python -m bench all``), not by the tests:
their figures are measurements, never asserted. What is tested here is the part that
turns figures into the report, so a report never claims a target it missed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.plot import draw
from bench.report import Curve, Report, Row, check, markdown

ROOT = Path(__file__).resolve().parents[1]


def test_check_bounds() -> None:
    assert check(0.5, at_most=0.5)
    assert not check(0.51, at_most=0.5)
    assert check(4000, at_least=4000)
    assert not check(3999, at_least=4000)
    assert check(1.0)


def test_table_says_met_and_missed() -> None:
    report = Report(
        rows=[
            Row("batch", "CPU per item", 1.16, "ms", "<= 0.5 ms", False, "crypto 0.17 ms"),
            Row("relay", "events per payment", 2.0, "events", "2", True),
            Row("reads", "p50 | p99", 302.4, "ms"),
        ],
        failed=["lnd_service: PeerMissing: lnd is not installed"],
    )
    text = markdown(report, title="nwcd benchmarks", context=["2 cores"])
    lines = text.splitlines()
    assert lines[0] == "# nwcd benchmarks"
    assert "- 2 cores" in lines
    assert "| batch | CPU per item | 1.16 ms | <= 0.5 ms missed | crypto 0.17 ms |" in lines
    assert "| relay | events per payment | 2.00 events | 2 met |  |" in lines
    # A cell holding "|" must not split the row.
    assert "| reads | p50 \\| p99 | 302 ms |  |  |" in lines
    assert "- lnd_service: PeerMissing: lnd is not installed" in lines


def test_plots_are_pngs(tmp_path: Path) -> None:
    report = Report(
        curves=[
            Curve("batch", "nwcd concurrent", ((10, 0.27), (100, 0.44))),
            Curve("batch", "nwcd one at a time", ((10, 2.1), (100, 20.4))),
            Curve("connections", "nwcd get_balance", ((1, 600.0), (10_000, 580.0))),
            Curve("lnd", "empty", ()),
        ]
    )
    written = draw(report, tmp_path)
    assert sorted(path.name for path in written) == ["batch.png", "connections.png"]
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_entry_point_lists_and_refuses_unknown_names() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "list"], cwd=ROOT, capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert {"multi_pay", "reads", "scale", "crypto", "lnd_service"} <= {
        line.split()[0] for line in listed.stdout.splitlines()
    }
    unknown = subprocess.run(
        [sys.executable, "-m", "bench", "nonsense"], cwd=ROOT, capture_output=True, text=True
    )
    assert unknown.returncode == 2
    assert "unknown benchmark(s): nonsense" in unknown.stderr


def test_entry_point_writes_a_report(tmp_path: Path) -> None:
    """The quickest benchmark through the whole path: collect, table, files."""
    run = subprocess.run(
        [sys.executable, "-m", "bench", "crypto", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# nwcd benchmarks")
    assert "| crypto | floor per request: verify, decrypt, encrypt, sign (NIP-44) |" in report
    assert (tmp_path / "report.json").is_file()
