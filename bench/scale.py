"""Benchmark: ``nwcd serve`` with 1 to 100,000 wallet connections on one instance.

    python bench/scale.py [--sizes 1,1000,10000,100000] [--quick] [--requests 200]

For each size N it creates N connections in a fresh data dir's SQLite store
(through the store's API, all at once, so they are committed together), starts
a fresh relay process (nostr-rs-relay, built by ``scripts/setup-peers.sh``; the
PyPI ``nostr-relay`` when it is not built, with a note) and ``nwcd serve``, and
measures:

* start: seconds from spawning the process to "nwcd ready" in its log; then a
  ``get_balance`` from the last connection created must be answered (the
  service subscribed for every connection, not only the first);
* settled: seconds from spawning until the service has published every info
  event (past the first 500 connections they go out after "ready") and is idle
  (under 10% of a core for half a second); the load starts then;
* RSS of the service (VmRSS) once ready and after the load;
* ``get_balance`` round trips from the last connection: p50/p99 over
  ``--requests`` sequential requests, requests/s with 8 in flight;
* the service's CPU (user + system) per request over both;
* a connection added while it serves N: seconds from the store's commit to its
  first answer (the service reloads connections and updates its subscription).

Targets (one issue's): 10,000 connections start <= 5 s and RSS <= 200 MB;
100,000 start <= 30 s and RSS <= 1 GB; latency within 10% of N=1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.multi_pay import SERVICE_MESSAGES, balance_rate, relay_process, service
from bench.report import Curve, Report, Row, check
from nwcd.client.client import NWCClient
from nwcd.errors import NwcdError
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import Connection
from nwcd.store.sqlite import SqliteStore

SIZES = (1, 1_000, 10_000, 100_000)
QUICK_SIZES = (1, 1_000, 10_000)
START_TARGET = {10_000: 5.0, 100_000: 30.0}  # seconds
RSS_TARGET = {10_000: 200.0, 100_000: 1024.0}  # MB
LATENCY_SLACK = 1.10  # p50 within 10% of N=1
IN_FLIGHT = 8
INFO_BATCH = 500  # DaemonOptions.info_batch: info events published before "ready"
CREATE_CHUNK = 10_000  # add_connection calls queued at once (each chunk: one transaction)


@dataclass(frozen=True, slots=True)
class Measured:
    size: int
    create_s: float
    start_s: float
    answer_s: float  # the first and the last connection's first answers, clients' connect included
    settled_s: float
    rss_ready_mb: float
    rss_loaded_mb: float
    p50_ms: float
    p99_ms: float
    req_per_s: float
    cpu_ms_per_request: float
    added_s: float = float("nan")
    answered: bool = True


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def create_connections(data_dir: Path, relay: str, size: int) -> list[ConnectionUri]:
    """``size`` connections in the store; the URIs of the first and the last created.

    Every connection has its own wallet key (each one is a ``#p`` value the service
    subscribes to); the apps share one key except the first and the last, whose URIs
    are used (the app key only matters to the app that holds it).
    """
    store = await SqliteStore.open(data_dir / "nwcd.sqlite")
    try:
        shared_app = SecretKey.generate()
        ends: dict[int, ConnectionUri] = {}
        now = int(time.time())
        for start in range(0, size, CREATE_CHUNK):
            batch: list[Connection] = []
            for i in range(start, min(size, start + CREATE_CHUNK)):
                wallet = SecretKey.generate()
                app = SecretKey.generate() if i in (0, size - 1) else shared_app
                if i in (0, size - 1):
                    ends[i] = ConnectionUri(wallet.public_key, (relay,), app)
                batch.append(
                    Connection(
                        name=f"scale-{i}",
                        wallet_key=wallet,
                        app_pubkey=app.public_key.hex,
                        relays=(relay,),
                        created_at=now,
                    )
                )
            # Queued together, the store commits them in one transaction.
            await asyncio.gather(*(store.add_connection(c) for c in batch))
    finally:
        await store.close()
    return [ends[i] for i in sorted(ends)]


async def settle(pid: int, size: int, mark: int, *, limit: float = 600.0) -> None:
    """Wait until the service logged that the info events after "ready" are out (log
    messages from index ``mark`` on), then until it uses under 10% of a core."""
    deadline = time.perf_counter() + limit
    while size > INFO_BATCH and time.perf_counter() < deadline:
        if any(m.startswith("published the info events") for m in SERVICE_MESSAGES[mark:]):
            break
        await asyncio.sleep(0.2)
    while time.perf_counter() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.05:
            return


async def add_and_ask(data_dir: Path, relay: str, *, limit: float = 120.0) -> float:
    """Add a connection while the service runs; seconds until it answers it."""
    store = await SqliteStore.open(data_dir / "nwcd.sqlite")
    wallet, app = SecretKey.generate(), SecretKey.generate()
    try:
        await store.add_connection(
            Connection(
                name="added",
                wallet_key=wallet,
                app_pubkey=app.public_key.hex,
                relays=(relay,),
                created_at=int(time.time()),
            )
        )
    finally:
        await store.close()
    added = time.perf_counter()
    uri = ConnectionUri(wallet.public_key, (relay,), app)
    while time.perf_counter() - added < limit:
        try:
            async with NWCClient.from_uri(uri, timeout=1, info_timeout=1) as client:
                await client.get_balance()
            return time.perf_counter() - added
        except (TimeoutError, NwcdError):
            continue
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def latencies(uri: ConnectionUri, requests: int) -> list[float]:
    """Seconds per sequential get_balance round trip."""
    times: list[float] = []
    async with NWCClient.from_uri(uri, timeout=30) as client:
        await client.get_balance()
        for _ in range(requests):
            started = time.perf_counter()
            await client.get_balance()
            times.append(time.perf_counter() - started)
    return times


async def measure(size: int, relay_kind: str, root: Path, requests: int) -> Measured:
    work = Path(tempfile.mkdtemp(dir=root, prefix=f"n{size}-"))
    async with relay_process(relay_kind, work / "relay") as relay:
        data_dir = work / "data"
        data_dir.mkdir()
        started = time.perf_counter()
        uris = await create_connections(data_dir, relay, size)
        first, last = uris[0], uris[-1]
        create_s = time.perf_counter() - started
        spawned = time.perf_counter()
        mark = len(SERVICE_MESSAGES)
        async with service(data_dir, relay, per_connection=None, ready_timeout=600) as process:
            start_s = time.perf_counter() - spawned
            pid = process.pid
            rss_ready = rss_mb(pid)
            # Answered for the last connection: the service subscribed for all of them.
            asked = time.perf_counter()
            try:
                for uri in dict.fromkeys((last, first)):
                    async with NWCClient.from_uri(uri, timeout=60) as client:
                        await client.get_balance()
            except (TimeoutError, NwcdError) as exc:
                print(f"N={size}: not answered ({type(exc).__name__})", file=sys.stderr)
                nan = float("nan")
                return Measured(size, create_s, start_s, nan, nan, rss_ready, rss_mb(pid),
                                *(nan,) * 4, answered=False)  # fmt: skip
            answer_s = time.perf_counter() - asked
            await settle(pid, size, mark)
            settled_s = time.perf_counter() - spawned
            cpu_before = cpu_seconds(pid)
            times = await latencies(last, requests)
            total = 2 * requests
            rate = await balance_rate(last, IN_FLIGHT, total)
            # +2: the first request of each client (a warm-up, not timed).
            cpu_ms = (cpu_seconds(pid) - cpu_before) * 1e3 / (requests + total + 2)
            rss_loaded = rss_mb(pid)
            added_s = await add_and_ask(data_dir, relay)
    return Measured(
        size=size,
        create_s=create_s,
        start_s=start_s,
        answer_s=answer_s,
        settled_s=settled_s,
        rss_ready_mb=rss_ready,
        rss_loaded_mb=rss_loaded,
        p50_ms=statistics.median(times) * 1e3,
        p99_ms=percentile(times, 0.99) * 1e3,
        req_per_s=rate,
        cpu_ms_per_request=cpu_ms,
        added_s=added_s,
    )


def pick_relay() -> str:
    """nostr-rs-relay when built, else the PyPI nostr-relay (with a note)."""
    from tests.support.relays import PeerMissing, nostr_rs_relay_executable

    try:
        nostr_rs_relay_executable()
    except PeerMissing as exc:
        print(f"note: {exc}; using the PyPI nostr-relay instead", file=sys.stderr)
        return "nostr-relay"
    return "nostr-rs-relay"


def rows_of(results: list[Measured], relay_kind: str) -> list[Row]:
    base = next((m for m in results if m.size == 1), None)
    rows: list[Row] = []
    for m in results:
        case = f"{m.size:,} connections ({relay_kind})"
        start_target = START_TARGET.get(m.size)
        rss_target = RSS_TARGET.get(m.size)
        rss = max(m.rss_ready_mb, m.rss_loaded_mb)
        rows.append(
            Row(
                "scale",
                f"{case}: start",
                m.start_s,
                "s",
                f"<= {start_target:g} s" if start_target else "",
                check(m.start_s, at_most=start_target) if start_target else None,
            )
        )
        rows.append(
            Row(
                "scale",
                f"{case}: first and last connection answered after ready",
                m.answer_s,
                "s",
                "answered",
                m.answered,
            )
        )
        rows.append(Row("scale", f"{case}: settled (idle after start)", m.settled_s, "s"))
        rows.append(
            Row(
                "scale",
                f"{case}: RSS",
                rss,
                "MB",
                f"<= {rss_target:g} MB" if rss_target else "",
                check(rss, at_most=rss_target) if rss_target else None,
            )
        )
        rows.append(
            Row("scale", f"{case}: a connection added, to its first answer", m.added_s, "s")
        )
        latency_target = base.p50_ms * LATENCY_SLACK if base and m is not base else None
        rows.append(
            Row(
                "scale",
                f"{case}: get_balance p50 (p99 {m.p99_ms:.2f} ms)",
                m.p50_ms,
                "ms",
                f"<= {latency_target:.2f} ms (N=1 +10%)" if latency_target else "",
                check(m.p50_ms, at_most=latency_target) if latency_target else None,
            )
        )
        rows.append(
            Row(
                "scale",
                f"{case}: get_balance, {IN_FLIGHT} in flight",
                m.req_per_s,
                "req/s",
                compare=f"{m.req_per_s / base.req_per_s:.2f}x N=1" if base else "",
            )
        )
        rows.append(
            Row(
                "scale",
                f"{case}: service CPU per request",
                m.cpu_ms_per_request,
                "ms",
                compare=f"{m.cpu_ms_per_request / base.cpu_ms_per_request:.2f}x N=1"
                if base
                else "",
            )
        )
    return rows


def table(results: list[Measured]) -> str:
    base = next((m for m in results if m.size == 1), results[0])
    header = (
        f"{'N':>8} {'create s':>8} {'start s':>8} {'target':>7} {'answer':>7} {'settled':>7}"
        f" {'RSS MB':>7}"
        f" {'loaded':>7}"
        f" {'target':>7} {'p50 ms':>7} {'p99 ms':>7} {'x N=1':>6} {'req/s':>6} {'x N=1':>6}"
        f" {'CPU ms/req':>10} {'x N=1':>6} {'added s':>7}"
    )
    lines = [header]
    for m in results:
        start_target = START_TARGET.get(m.size)
        rss_target = RSS_TARGET.get(m.size)
        lines.append(
            f"{m.size:>8,} {m.create_s:>8.1f} {m.start_s:>8.2f}"
            f" {f'<={start_target:g}' if start_target else '':>7}"
            f" {f'{m.answer_s:.2f}' if m.answered else 'NONE':>7}"
            f" {m.settled_s:>7.1f}"
            f" {m.rss_ready_mb:>7.0f} {m.rss_loaded_mb:>7.0f}"
            f" {f'<={rss_target:g}' if rss_target else '':>7}"
            f" {m.p50_ms:>7.2f} {m.p99_ms:>7.2f} {m.p50_ms / base.p50_ms:>6.2f}"
            f" {m.req_per_s:>6.0f} {m.req_per_s / base.req_per_s:>6.2f}"
            f" {m.cpu_ms_per_request:>10.2f} {m.cpu_ms_per_request / base.cpu_ms_per_request:>6.2f}"
            f" {m.added_s:>7.2f}"
        )
    return "\n".join(lines)


async def run(
    sizes: tuple[int, ...], root: Path, requests: int, relay_kind: str | None = None
) -> tuple[list[Measured], str]:
    kind = relay_kind or pick_relay()
    results: list[Measured] = []
    for size in sizes:
        results.append(await measure(size, kind, root, requests))
        print(table(results).splitlines()[-1], flush=True)
    return results, kind


async def collect(workdir: Path, quick: bool) -> Report:
    """The report's rows: start, RSS, latency, throughput and CPU per request by N."""
    sizes = QUICK_SIZES if quick else SIZES
    results, kind = await run(sizes, workdir, 100 if quick else 200)
    rows = rows_of(results, kind)
    failed = [f"scale: {m.size:,} connections: no answer" for m in results if not m.answered]
    curve = Curve(
        plot="connections",
        label="nwcd get_balance",
        points=tuple((float(m.size), m.req_per_s) for m in results),
    )
    return Report(rows=rows, curves=[curve], failed=failed)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", help="connection counts, comma separated")
    parser.add_argument("--quick", action="store_true", help="1, 1,000 and 10,000 only")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per N")
    parser.add_argument("--relay", choices=["nostr-rs-relay", "nostr-relay"], default=None)
    args = parser.parse_args()
    if args.sizes:
        sizes = tuple(int(word.replace("_", "")) for word in args.sizes.split(","))
    else:
        sizes = QUICK_SIZES if args.quick else SIZES
    with tempfile.TemporaryDirectory(prefix="nwcd-scale-") as tmp:
        results, kind = await run(sizes, Path(tmp), args.requests, args.relay)
    print(f"\nrelay: {kind}; machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(table(results))
    print()
    for row in rows_of(results, kind):
        print(" | ".join(row.cells()))


if __name__ == "__main__":
    asyncio.run(main())
