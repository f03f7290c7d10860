"""Run the benchmarks and write one report: ``python -m bench all [--quick] [--out DIR]``.

    python -m bench all              # every benchmark whose peers are installed, < 10 min
    python -m bench multi_pay reads  # some of them
    python -m bench list             # what there is

Writes ``DIR/report.md`` (a Markdown table: each figure beside its target and the peer
or baseline it is compared with), ``DIR/report.json`` and ``DIR/*.png`` (batch time
against batch size, nwcd against paying one at a time; throughput against connections;
the real backends against their floor). A benchmark whose peer is not installed (see
``scripts/setup-peers.sh``) is listed under "did not finish" with the reason; the rest
still run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Report, markdown

# name: what it measures. Each module has ``async def collect(workdir, quick) -> Report``.
BENCHMARKS = {
    "multi_pay": "batch time vs size, CPU per item, relay events per payment, idle CPU",
    "reads": "get_balance under load: CPU per request, req/s, p50/p99; vs the Alby JS SDK",
    "scale": "1 to 100,000 connections: start time, RSS, latency, throughput",
    "crypto": "the cryptographic floor per request and per batch item",
    "lnbits_service": "multi_pay_invoice on LNbits vs LNbits alone and one by one",
    "lnd_service": "multi_pay_invoice on LND regtest vs LND alone and one by one",
}


async def run(names: list[str], quick: bool) -> Report:
    report = Report()
    for name in names:
        started = time.monotonic()
        print(f"== {name}: {BENCHMARKS[name]}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            with tempfile.TemporaryDirectory(prefix=f"nwcd-bench-{name}-") as workdir:
                part = await module.collect(Path(workdir), quick)
        except Exception as exc:  # one benchmark failing must not lose the others' figures
            traceback.print_exc()
            report.failed.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        report.extend(part)
        for row in part.rows:
            print("   " + " | ".join(cell for cell in row.cells() if cell), flush=True)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    return report


def context(quick: bool, seconds: float) -> list[str]:
    return [
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{'quick' if quick else 'full'} run, {seconds / 60:.1f} min",
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        "CPU figures are the service process's own CPU time (/proc), wall times are medians",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0].split(": ")[0]
    )
    parser.add_argument("names", nargs="+", help="all, list, or benchmark names")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and runs")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args()
    if args.names == ["list"]:
        for name, what in BENCHMARKS.items():
            print(f"{name:15} {what}")
        return
    names = list(BENCHMARKS) if args.names == ["all"] else args.names
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (see: python -m bench list)")
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(names, args.quick))
    lines = context(args.quick, time.monotonic() - started)
    (args.out / "report.md").write_text(markdown(report, title="nwcd benchmarks", context=lines))
    (args.out / "report.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))
    from bench.plot import draw

    for path in draw(report, args.out):
        print(f"wrote {path}")
    print(f"wrote {args.out / 'report.md'}")
    if report.failed:
        print("did not finish: " + "; ".join(report.failed))


if __name__ == "__main__":
    main()
