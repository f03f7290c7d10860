"""Benchmark: read requests (get_balance) under load, nwcd against the Alby JS SDK service.

    python bench/reads.py [--runs 3] [--seconds 5] [--clients 3] [--concurrency 16] [--relay R]

``nwcd serve`` (its own process, simulator) and then a wallet service written with the
Alby JS SDK (``interop/alby_wallet_service.mjs``, @getalby/sdk's NWCWalletService on an
in-memory wallet, Node.js) on the same relay process (the PyPI nostr-relay unless
``--relay``), each loaded with get_balance by ``--clients`` client processes keeping
``--concurrency`` requests in flight, alternately.
Prints requests/s, p50/p99 latency and the service's CPU per request. nwcd journals every
request durably (exactly-once across restarts and instances); the SDK's service keeps
nothing, so it is the floor of a stateless NWC service in Node.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.interop.node import NodeProcess, node_scripts

from bench.load import LoadResult, get_balance_load
from bench.multi_pay import make_connection, relay_process, service
from bench.report import Report, Row, check


@asynccontextmanager
async def nwcd_service(workdir: Path, relay: str) -> AsyncIterator[tuple[str, int]]:
    data_dir = workdir / "nwcd"
    data_dir.mkdir(parents=True, exist_ok=True)
    uri = await make_connection(data_dir, relay)
    async with service(data_dir, relay, per_connection=None) as process:
        yield uri.format(), process.pid


@asynccontextmanager
async def alby_service(workdir: Path, relay: str) -> AsyncIterator[tuple[str, int]]:
    async with NodeProcess(
        node_scripts(workdir / "node"), "alby_wallet_service.mjs", relay
    ) as node:
        yield str(node.ready["uri"]), node.pid


SERVICES = {"nwcd": nwcd_service, "Alby JS SDK": alby_service}


async def measure(
    workdir: Path, *, runs: int, seconds: float, clients: int, concurrency: int, relay_kind: str
) -> dict[str, list[LoadResult]]:
    results: dict[str, list[LoadResult]] = {name: [] for name in SERVICES}
    async with relay_process(relay_kind, workdir / "relay") as relay:
        for run in range(runs):
            order = list(SERVICES) if run % 2 == 0 else list(reversed(SERVICES))
            for name in order:
                async with SERVICES[name](workdir / f"{name}-{run}", relay) as (uri, pid):
                    result = await get_balance_load(
                        uri, (pid,), seconds=seconds, clients=clients, concurrency=concurrency
                    )
                results[name].append(result)
                print(f"  {name:12} {describe(result)}", flush=True)
    return results


def describe(result: LoadResult) -> str:
    return (
        f"{result.per_second:7.0f} req/s  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f}"
        f" ms  service CPU {result.cpu_ms_per_request:.3f} ms/request"
    )


def medians(results: list[LoadResult]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.per_second for r in results),
        "p50": statistics.median(r.p50_ms for r in results),
        "p99": statistics.median(r.p99_ms for r in results),
        "cpu": statistics.median(r.cpu_ms_per_request for r in results),
    }


async def collect(workdir: Path, quick: bool) -> Report:
    clients, concurrency = 3, 16
    # nostr-relay: the one relay both services run on (the SDK's service waits for OKs
    # nostr-rs-relay does not send for ephemeral events; nostr-sdk's LocalRelay rate-limits
    # the clients' REQs). Its CPU limits req/s: the service's CPU per request is the figure.
    results = await measure(
        workdir, runs=2 if quick else 3, seconds=4 if quick else 6, clients=clients,
        concurrency=concurrency, relay_kind="nostr-relay",
    )  # fmt: skip
    ours, alby = medians(results["nwcd"]), medians(results["Alby JS SDK"])
    load = f"{clients} client processes x {concurrency} in flight, nostr-relay"
    return Report(
        rows=[
            Row("reads", f"get_balance service CPU per request ({load})", ours["cpu"], "ms",
                "<= 0.25 ms", check(ours["cpu"], at_most=0.25),
                f"Alby JS SDK service {alby['cpu']:.3f} ms"),
            Row("reads", "get_balance requests/s", ours["rps"], "req/s", "", None,
                f"Alby JS SDK service {alby['rps']:.0f} req/s"),
            Row("reads", "get_balance p50 / p99", ours["p50"], "ms", "", None,
                f"p99 {ours['p99']:.1f} ms; Alby JS SDK service p50 {alby['p50']:.1f},"
                f" p99 {alby['p99']:.1f} ms"),
        ]
    )  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--relay", default="nostr-sdk", help="nostr-sdk, nostr-relay, nostr-rs-relay"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nwcd-reads-") as tmp:
        results = await measure(
            Path(tmp), runs=args.runs, seconds=args.seconds, clients=args.clients,
            concurrency=args.concurrency, relay_kind=args.relay,
        )  # fmt: skip
    print(f"\nmedians of {args.runs} runs")
    for name, runs in results.items():
        m = medians(runs)
        print(
            f"{name:12} {m['rps']:7.0f} req/s  p50 {m['p50']:6.1f} ms  p99 {m['p99']:6.1f} ms"
            f"  CPU {m['cpu']:.3f} ms/request"
        )


if __name__ == "__main__":
    asyncio.run(main())
