"""Benchmark: stores and instances. SQLite vs PostgreSQL, 1-3 instances, take-over time.

    python bench/instances.py [--runs 5] [--size 100] [--balance-requests 2000]

Everything goes through nostr-sdk's LocalRelay in its own process (the relay
must not be the limit), with ``nwcd serve`` processes on the simulator:

1. One instance on SQLite, then on PostgreSQL (a throwaway server started
   here): a ``--size``-invoice ``multi_pay_invoice`` (instant payments), median
   of ``--runs``, and ``get_balance`` throughput with 32 requests in flight.
2. One, two and three instances on one PostgreSQL database: ``get_balance``
   throughput and the same batch. Every instance receives every request and
   one claims it, so on this 2-core machine the instances share two cores
   with the relay and the load generator: the numbers say what an instance
   costs, not how far a bigger machine scales.
3. Take-over: two instances; a 50-invoice batch whose payments take 1 s; the
   instance that claimed it is killed (SIGKILL) 0.3 s later. Printed: the time
   from the kill to the last answer, with the lease at 10 s (the default) and 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from tests.support.postgres import PostgresServer
from tests.support.service import ServeProcess

from bench.multi_pay import balance_rate, one_batch, relay_process
from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.nip47.encryption import Scheme, seal_content
from nwcd.nip47.methods import encode_request
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.policy.grants import Connection
from nwcd.ports import Store
from nwcd.relay.pool import RelayPool
from nwcd.store.postgres import PostgresStore
from nwcd.store.sqlite import SqliteStore


async def open_store(data_dir: Path, url: str | None) -> Store:
    if url is None:
        return await SqliteStore.open(data_dir / "nwcd.sqlite")
    return await PostgresStore.open(url)


async def make_connection(data_dir: Path, url: str | None, relay: str) -> ConnectionUri:
    store = await open_store(data_dir, url)
    wallet_key, app_secret = SecretKey.generate(), SecretKey.generate()
    await store.add_connection(
        Connection(
            name=f"bench-{wallet_key.public_key.hex[:8]}",
            wallet_key=wallet_key,
            app_pubkey=app_secret.public_key.hex,
            relays=(relay,),
            created_at=int(time.time()),
        )
    )
    await store.close()
    return ConnectionUri(wallet_key.public_key, (relay,), app_secret)


@contextlib.asynccontextmanager
async def instances(
    data_dir: Path, relay: str, url: str | None, count: int, lease: int = 10
) -> AsyncIterator[list[ServeProcess]]:
    config = data_dir / "nwcd.toml"
    config.write_text(
        f"[store]\nlease = {lease}\n"
        "[service]\napp_requests_per_minute = 0\nrequests_per_second = 0\n"
    )
    env = {"NWCD_STORE_URL": url} if url else {}
    services = [
        ServeProcess(
            data_dir,
            [relay],
            log_path=data_dir / f"serve{n}.log",
            extra_args=("--config", str(config)),
            env=env,
        )
        for n in range(count)
    ]
    try:
        await asyncio.gather(*(service.start() for service in services))
        yield services
    finally:
        await asyncio.gather(*(service.stop() for service in services))


async def batch_and_balance(
    data_dir: Path, relay: str, url: str | None, count: int, args: argparse.Namespace
) -> tuple[float, float]:
    """Median seconds of a batch, and get_balance requests per second."""
    uri = await make_connection(data_dir, url, relay)
    async with (
        instances(data_dir, relay, url, count),
        RelayPool([relay]) as pool,
        await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite")) as sim,
    ):
        await pool.wait_connected(10)
        await one_batch(uri, pool, sim, 10, 0)  # warm-up
        times = []
        for _ in range(args.runs):
            await asyncio.sleep(1.0)
            times.append(await one_batch(uri, pool, sim, args.size, 0))
        rate = await balance_rate(uri, 32, args.balance_requests)
    return statistics.median(times), rate


async def take_over(data_dir: Path, relay: str, url: str, lease: int) -> float:
    """Seconds from killing the instance that claimed a batch to its last answer."""
    uri = await make_connection(data_dir, url, relay)
    async with (
        instances(data_dir, relay, url, 2, lease=lease) as services,
        RelayPool([relay]) as pool,
        await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite")) as sim,
    ):
        await pool.wait_connected(10)
        invoices = [(await sim.create_invoice(1_000, latency_ms=1_000)).invoice for _ in range(50)]
        params = {"invoices": [{"id": str(i), "invoice": inv} for i, inv in enumerate(invoices)]}
        request = sign_event(
            uri.secret,
            kind=Kind.NWC_REQUEST,
            content=seal_content(
                uri.secret,
                uri.wallet_pubkey,
                Scheme.NIP44_V2,
                encode_request("multi_pay_invoice", params),
            ),
            tags=[["p", uri.wallet_pubkey.hex], ["encryption", "nip44_v2"]],
            created_at=int(time.time()),
        )
        answers = await pool.subscribe(
            [Filter(kinds=(Kind.NWC_RESPONSE,), tags={"e": (request.id,)})], queue_size=200
        )
        await asyncio.sleep(0.05)
        await pool.publish(request, timeout=0.5)
        await asyncio.sleep(0.3)
        owner = await _owner(url, request.id)
        [victim] = [s for s in services if owner in s.log_path.read_text()]
        await victim.kill()
        killed = time.monotonic()
        seen: set[str] = set()
        async with asyncio.timeout(120):
            while len(seen) < 50:
                event = await answers.get()
                seen.add(event.tag_value("d") or "")
        return time.monotonic() - killed


async def _owner(url: str, request_id: str) -> str:
    """The (short) id of the instance that claimed a request, as its ready line shows it."""
    db = await asyncpg.connect(url)
    try:
        owner: str = await db.fetchval("SELECT owner FROM requests WHERE event_id = $1", request_id)
    finally:
        await db.close()
    return owner[:12]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--balance-requests", type=int, default=2000)
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="nwcd-bench-") as tmp, PostgresServer() as postgres:
        root = Path(tmp)
        async with relay_process("nostr-sdk", root / "relay") as relay:
            for name, url in (("SQLite", None), ("PostgreSQL", "pg")):
                folder = Path(tempfile.mkdtemp(dir=root))
                store_url = postgres.url(postgres.new_schema()) if url else None
                batch, rate = await batch_and_balance(folder, relay, store_url, 1, args)
                rows.append(
                    f"{name:10} 1 instance : {args.size}-invoice batch {batch:6.3f} s (median of"
                    f" {args.runs}), get_balance {rate:6.0f} requests/s"
                )
                print(rows[-1], flush=True)
            for count in (2, 3):
                folder = Path(tempfile.mkdtemp(dir=root))
                store_url = postgres.url(postgres.new_schema())
                batch, rate = await batch_and_balance(folder, relay, store_url, count, args)
                rows.append(
                    f"PostgreSQL {count} instances: {args.size}-invoice batch {batch:6.3f} s,"
                    f" get_balance {rate:6.0f} requests/s"
                )
                print(rows[-1], flush=True)
            for lease in (10, 3):
                folder = Path(tempfile.mkdtemp(dir=root))
                seconds = await take_over(folder, relay, postgres.url(postgres.new_schema()), lease)
                rows.append(
                    f"take-over: lease {lease:2d} s, kill -9 of the instance holding a 50-invoice"
                    f" batch to its last answer: {seconds:5.1f} s"
                )
                print(rows[-1], flush=True)
    print("\nsummary")
    for row in rows:
        print(row)
    print(f"\nmachine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


if __name__ == "__main__":
    asyncio.run(main())
