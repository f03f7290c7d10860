"""Benchmark: does the operator's console slow the service down?

    python bench/console_load.py [--runs 3] [--seconds 10] [--clients 4] [--concurrency 16]

``nwcd serve`` (its own process, simulator) on one nostr-relay process, loaded with
``get_balance`` requests by several client processes (each keeps ``--concurrency``
requests in flight) for ``--seconds``, alternately:

- **off**: no console;
- **on**: the console listening, an operator's browser polling the activity list every
  2 s (as the page does) and Prometheus scraping ``/metrics`` and ``/health`` every second.

Prints requests/s, p50/p99 latency and the service's CPU per request for each, medians of
``--runs``, and on/off as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import get_balance_load
from bench.multi_pay import free_port, make_connection, relay_process, service
from nwcd.console.credentials import Credentials
from nwcd.nip47.uri import ConnectionUri

PASSWORD = "bench password"


async def operator(base: str, stop: asyncio.Event) -> int:
    """Log in, then poll like an open activity page and a Prometheus scraper."""
    polls = 0
    async with httpx.AsyncClient(base_url=base, follow_redirects=True) as web:
        page = (await web.get("/login")).text
        token = re.search(r'name="login_token" value="([^"]+)"', page)
        assert token, page
        await web.post("/login", data={"password": PASSWORD, "login_token": token.group(1)})
        tick = 0
        while not stop.is_set():
            await web.get("/metrics")
            await web.get("/health")
            if tick % 2 == 0:
                assert (await web.get("/activity/rows")).status_code == 200
            polls += 1
            tick += 1
            await asyncio.sleep(1)
    return polls


async def one_run(
    data_dir: Path, relay: str, uri: ConnectionUri, args: argparse.Namespace, console: bool
) -> dict[str, float]:
    port = free_port()
    extra = ["[http]", f'listen = "127.0.0.1:{port}"'] if console else []
    async with service(data_dir, relay, per_connection=None, extra=extra) as process:
        stop = asyncio.Event()
        watcher = (
            asyncio.create_task(operator(f"http://127.0.0.1:{port}", stop)) if console else None
        )
        await asyncio.sleep(1)
        result = await get_balance_load(
            uri.format(),
            (process.pid,),
            seconds=args.seconds,
            clients=args.clients,
            concurrency=args.concurrency,
        )
        stop.set()
        if watcher is not None:
            await watcher
    return {
        "rps": result.per_second,
        "p50": result.p50_ms,
        "p99": result.p99_ms,
        "cpu_ms": result.cpu_ms_per_request,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--relay", default="nostr-relay")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="nwcd-console-bench-") as tmp:
        data_dir = Path(tmp) / "nwcd"
        data_dir.mkdir()
        Credentials(data_dir).set_password(PASSWORD)
        async with relay_process(args.relay, Path(tmp) / "relay") as relay:
            uri = await make_connection(data_dir, relay)
            for run in range(args.runs):
                for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
                    result = await one_run(data_dir, relay, uri, args, mode == "on")
                    results[mode].append(result)
                    print(
                        f"run {run + 1} console {mode:3}: {result['rps']:7.0f} req/s"
                        f"  p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms"
                        f"  service CPU {result['cpu_ms']:.3f} ms/request",
                        flush=True,
                    )
    print(f"\nmedians of {args.runs} runs, {args.clients} clients x {args.concurrency} in flight,"
          f" {args.seconds:.0f} s each, relay {args.relay}")  # fmt: skip
    print(f"{'console':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}")
    medians = {
        mode: {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99", "cpu_ms")}
        for mode, runs in results.items()
    }
    for mode, m in medians.items():
        print(f"{mode:8} {m['rps']:8.0f} {m['p50']:8.1f} {m['p99']:8.1f} {m['cpu_ms']:11.3f}")
    print(
        f"on/off: req/s {medians['on']['rps'] / medians['off']['rps']:.2f},"
        f" p50 {medians['on']['p50'] / medians['off']['p50']:.2f},"
        f" CPU/request {medians['on']['cpu_ms'] / medians['off']['cpu_ms']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
