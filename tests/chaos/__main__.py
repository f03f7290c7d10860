"""``python -m tests.chaos --seed S --duration 60``: one chaos run and its figures.

Exits 1 if a check found a violation.

Needs the third-party relays installed by ``scripts/setup-peers.sh``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path

from tests.chaos.runner import ChaosPlan, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    parser.add_argument("--kills", type=int, default=10, help="at least this many kill -9s")
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument("--rate", type=float, default=6.0, help="requests per second")
    parser.add_argument(
        "--instances", type=int, default=1, help="nwcd serve instances (above 1: PostgreSQL)"
    )
    parser.add_argument(
        "--settle", type=float, default=200.0, help="seconds to wait for every answer after"
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and state here")
    parser.add_argument("--rss-json", type=Path, help="write the RSS samples here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Writes to sockets a killed peer closed: expected here, and loud.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    plan = ChaosPlan(
        seed=args.seed,
        duration=args.duration,
        min_kills=args.kills,
        apps=args.apps,
        request_rate=args.rate,
        instances=args.instances,
        settle_timeout=args.settle,
    )
    with tempfile.TemporaryDirectory(prefix="nwcd-chaos-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        report, raw = asyncio.run(run(plan, workdir))
    for name, value in report.figures.items():
        print(f"{name:>38}: {value}")
    print(f"{'violations':>38}: {len(report.violations)}")
    for violation in report.violations:
        print(f"  VIOLATION {violation}")
    if args.rss_json is not None:
        args.rss_json.write_text(json.dumps(raw["rss"]))
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
