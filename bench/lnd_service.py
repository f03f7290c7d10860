"""Benchmark: multi_pay_invoice through nwcd on a real LND node, against LND alone.

    python bench/lnd_service.py [--runs 3] [--sizes 10,50,100] [--relay nostr-rs-relay]

Brings up the regtest network of the LND tests (btcd + LND A -> B -> C, binaries from
scripts/setup-lnd.sh), one relay process and ``nwcd serve`` on node A (its own
process). Then, for each size and route (direct: invoices of B; two hops: of C), in
alternating order, ``--runs`` times each:

- **nwcd**: one ``multi_pay_invoice`` through the relay; seconds from publishing it to
  the first and to the last response; the TCP connections nwcd opened to A's REST
  port during the batch; node A's CPU seconds;
- **LND alone** (the floor): the same number of fresh invoices paid by as many
  concurrent ``/v2/router/send`` calls straight to A (one HTTP client, connections
  kept), first and last final state, A's CPU seconds;
- **one by one**: the same through LND alone, sequentially (the sequential services).

It prints medians side by side, nwcd / LND alone as a ratio, and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.backends.lnd_network import LndNetwork, LndNode, connections_to, lnd_network

from bench.load import cpu_seconds, paid_one_by_one, paid_together
from bench.multi_pay import make_connection, relay_process, service, timed_batch
from bench.report import Curve, Report, Row
from nwcd.relay.pool import RelayPool

AMOUNT_MSAT = 10_000  # small: every run pays hundreds of invoices over the same channels


@dataclass
class Sample:
    first: float
    last: float
    cpu: float
    connections: int = 0


@dataclass
class Results:
    samples: dict[tuple[str, str, int], list[Sample]] = field(default_factory=dict)

    def add(self, mode: str, route: str, size: int, sample: Sample) -> None:
        self.samples.setdefault((mode, route, size), []).append(sample)

    def median(self, mode: str, route: str, size: int, what: str) -> float:
        values = [getattr(s, what) for s in self.samples.get((mode, route, size), [])]
        return statistics.median(values) if values else float("nan")


async def invoices(node: LndNode, count: int) -> list[str]:
    made = await asyncio.gather(
        *(asyncio.to_thread(node.add_invoice, AMOUNT_MSAT, f"bench {i}") for i in range(count))
    )
    return [m["payment_request"] for m in made]


async def measured(
    node: LndNode, run: Callable[[], Awaitable[tuple[float, float]]], port: int | None = None
) -> Sample:
    """Run a batch; node's CPU over it and (with ``port``) the connections opened to it."""
    pid = node.process.pid if node.process else 0
    before_cpu = cpu_seconds(pid)
    known = connections_to(port) if port else set()
    seen: set[int] = set()
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            seen.update(connections_to(port or 0) - known)
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch()) if port else None
    first, last = await run()
    stop.set()
    if watcher is not None:
        await watcher
    return Sample(first, last, cpu_seconds(pid) - before_cpu, len(seen))


class LndAlone:
    """Payments straight to node A's REST API: the floor nwcd is measured against."""

    def __init__(self, node: LndNode) -> None:
        config = node.config()
        assert config.tls_cert is not None
        self._client = httpx.AsyncClient(
            base_url=config.url,
            headers={"Grpc-Metadata-macaroon": config.macaroon},
            verify=ssl.create_default_context(cafile=str(config.tls_cert)),
            timeout=httpx.Timeout(60),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def pay(self, invoice: str) -> None:
        body = {"payment_request": invoice, "timeout_seconds": 60, "fee_limit_msat": "100000"}
        async with self._client.stream("POST", "/v2/router/send", json=body) as response:
            async for line in response.aiter_lines():
                if '"SUCCEEDED"' in line:
                    continue  # read on to the end: the connection goes back to the pool
                if '"FAILED"' in line:
                    raise RuntimeError(f"LND failed a payment: {line[:200]}")

    async def concurrent(self, batch: list[str]) -> tuple[float, float]:
        return await paid_together(self.pay, batch)

    async def one_by_one(self, batch: list[str]) -> tuple[float, float]:
        return await paid_one_by_one(self.pay, batch)


async def run(args: argparse.Namespace, network: LndNetwork, root: Path) -> Results:
    a = network.a
    config = a.config()
    rest_port = int(config.url.rsplit(":", 1)[1])
    backend = [
        "[backend]",
        'kind = "lnd"',
        "[backend.lnd]",
        f'url = "{config.url}"',
        f'macaroon = "{config.macaroon}"',
        f'tls_cert = "{config.tls_cert}"',
    ]
    results = Results()
    routes = {"direct": network.b, "two hops": network.c}
    sizes = [int(s) for s in args.sizes.split(",")]
    async with relay_process(args.relay, root / "relay") as relay_url:
        data_dir = root / "nwcd"
        data_dir.mkdir()
        uri = await make_connection(data_dir, relay_url)
        alone = LndAlone(a)
        async with (
            service(data_dir, relay_url, per_connection=None, backend=backend),
            RelayPool([relay_url]) as pool,
        ):
            await pool.wait_connected(10)
            await timed_batch(uri, pool, await invoices(network.b, 5))  # warm-up
            await alone.concurrent(await invoices(network.b, 5))
            for run_number in range(args.runs):
                for size in sizes:
                    for route, payee in routes.items():
                        # Alternate who goes first, so neither always meets a warm node.
                        modes = ["nwcd", "alone"] if run_number % 2 == 0 else ["alone", "nwcd"]
                        for mode in modes:
                            batch = await invoices(payee, size)
                            await asyncio.sleep(args.pause)
                            if mode == "nwcd":

                                async def nwcd(batch: list[str] = batch) -> tuple[float, float]:
                                    return await timed_batch(uri, pool, batch)

                                sample = await measured(a, nwcd, rest_port)
                            else:
                                sample = await measured(a, lambda b=batch: alone.concurrent(b))
                            results.add(mode, route, size, sample)
                        if run_number == 0:
                            batch = await invoices(payee, size)
                            sample = await measured(a, lambda b=batch: alone.one_by_one(b))
                            results.add("one by one", route, size, sample)
                        print(
                            f"run {run_number + 1}: {size:3d} {route:8}"
                            f" nwcd {results.samples[('nwcd', route, size)][-1].last:.3f} s"
                            f"  alone {results.samples[('alone', route, size)][-1].last:.3f} s",
                            flush=True,
                        )
        await alone.close()
    return results


def report(results: Results, args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"\nmedians of {args.runs} runs, {AMOUNT_MSAT // 1000} sat per invoice, relay {args.relay}"
    )
    print(
        f"{'batch':16} {'nwcd first':>10} {'nwcd last':>10} {'alone first':>11}"
        f" {'alone last':>10} {'one by one':>10} {'nwcd/alone':>10}"
        f" {'A cpu nwcd':>10} {'A cpu alone':>11} {'conns':>6}"
    )
    for route in ("direct", "two hops"):
        for size in sizes:

            def m(mode: str, what: str, size: int = size, route: str = route) -> float:
                return results.median(mode, route, size, what)

            print(
                f"{size:3d}, {route:11} {m('nwcd', 'first'):10.3f} {m('nwcd', 'last'):10.3f}"
                f" {m('alone', 'first'):11.3f} {m('alone', 'last'):10.3f}"
                f" {m('one by one', 'last'):10.3f} {m('nwcd', 'last') / m('alone', 'last'):10.2f}"
                f" {m('nwcd', 'cpu'):10.2f} {m('alone', 'cpu'):11.2f}"
                f" {m('nwcd', 'connections'):6.0f}"
            )
    print(
        "\ntargets: nwcd last within 1.10x of LND alone at 100; first response within 50 ms"
        " of LND alone's first; A's CPU under nwcd <= alone + 10%."
        "\nreference (Alby Hub v1.21.2, measured here before): 100 direct 1.18-1.41 s,"
        " first response 512 ms."
    )


def rows(results: Results, sizes: list[int]) -> Report:
    """The report's rows (targets of the real-backend issue) and curves."""
    report = Report()
    for route in ("direct", "two hops"):
        for label, mode in (("nwcd", "nwcd"), ("LND alone", "alone"), ("one by one", "one by one")):
            points = tuple((size, results.median(mode, route, size, "last")) for size in sizes)
            report.curves.append(Curve("lnd", f"{label}, {route}", points))
        for size in sizes:

            def m(mode: str, what: str, size: int = size, route: str = route) -> float:
                return results.median(mode, route, size, what)

            ratio = m("nwcd", "last") / m("alone", "last")
            at_100 = size == 100
            report.rows += [
                Row("lnd", f"{size}, {route}: nwcd to the last answer", m("nwcd", "last"), "s",
                    "<= 1.10x LND alone" if at_100 else "", ratio <= 1.10 if at_100 else None,
                    f"LND alone {m('alone', 'last'):.3f} s ({ratio:.2f}x); one by one"
                    f" {m('one by one', 'last'):.2f} s; Alby Hub 1.18-1.41 s at 100 direct"),
                Row("lnd", f"{size}, {route}: nwcd first answer", m("nwcd", "first"), "s",
                    "<= LND alone's first + 50 ms" if at_100 else "",
                    m("nwcd", "first") <= m("alone", "first") + 0.05 if at_100 else None,
                    f"LND alone's first {m('alone', 'first'):.3f} s; Alby Hub 0.512 s"),
                Row("lnd", f"{size}, {route}: LND A's CPU per batch under nwcd", m("nwcd", "cpu"),
                    "s", "<= alone + 10%" if at_100 else "",
                    m("nwcd", "cpu") <= m("alone", "cpu") * 1.1 if at_100 else None,
                    f"alone {m('alone', 'cpu'):.2f} s"),
            ]  # fmt: skip
    return report


async def collect(workdir: Path, quick: bool) -> Report:
    sizes = [10, 100] if quick else [10, 50, 100]
    args = argparse.Namespace(
        runs=1 if quick else 2, sizes=",".join(map(str, sizes)), relay="nostr-rs-relay", pause=1.0
    )
    with lnd_network() as network:
        results = await run(args, network, workdir)
    return rows(results, sizes)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--relay", default="nostr-rs-relay", help="nostr-rs-relay, nostr-relay")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before each batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nwcd-lnd-bench-") as tmp, lnd_network() as network:
        print(f"network up in {network.bringup_seconds:.1f} s", flush=True)
        report(await run(args, network, Path(tmp)), args)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


if __name__ == "__main__":
    asyncio.run(main())
