"""Benchmark: a batch through nwcd on the NWC backend vs paying the upstream directly.

    python bench/nwc_backend.py [--runs 3] [--size 50] [--relay nostr-relay|nostr-sdk|nwcd]

The upstream is the Alby JS SDK's ``NWCWalletService`` on a fake wallet
(``interop/alby_wallet_service.mjs``, Node peers from scripts/setup-peers.sh); the
relay runs in its own process. ``nwcd serve`` runs as its own process too, with
``NWCD_BACKEND=nwc`` and the SDK service's URI in ``NWCD_NWC_URI``. Each run pays
``--size`` fresh invoices three ways, from an ``NWCClient`` in this process:

* through nwcd: one ``multi_pay_invoice`` to nwcd, which pays each item with one
  ``pay_invoice`` to the SDK's service (at most ``MAX_CONCURRENT_PAYMENTS`` at once);
* direct, one by one: ``pay_invoice`` to the SDK's service, each after the last;
* direct, concurrent: every ``pay_invoice`` to the SDK's service at once.

Every invoice must be paid, and reach the SDK's service exactly once per run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.interop.alby import payee_invoice, requests_seen
from tests.interop.node import NodeProcess, node_scripts

from bench.multi_pay import make_connection, relay_process
from nwcd.backends.nwc import MAX_CONCURRENT_PAYMENTS
from nwcd.client.client import NWCClient
from nwcd.nip47.uri import ConnectionUri

MODES = ("through nwcd (multi_pay_invoice)", "direct, one by one", "direct, concurrent")


@contextlib.asynccontextmanager
async def nwcd_on_nwc(data_dir: Path, relay: str, upstream_uri: str) -> AsyncIterator[None]:
    """``nwcd serve`` on the NWC backend, as its own process (the URI by environment)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nwcd",
        "serve",
        "--relay",
        relay,
        "--data-dir",
        str(data_dir),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NWCD_CONFIG": "", "NWCD_BACKEND": "nwc", "NWCD_NWC_URI": upstream_uri},
    )
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while b"nwcd ready" not in (line := await process.stderr.readline()):
            if not line:
                raise RuntimeError("nwcd serve exited before it was ready")
    drain = asyncio.create_task(_drain(process))
    try:
        yield
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
        drain.cancel()


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass


async def preimage(client: NWCClient, invoice: str) -> str | None:
    return str((await client.pay_invoice(invoice))["preimage"])


async def pay(
    mode: str, front: ConnectionUri, upstream: str, invoices: list[str]
) -> tuple[float, list[str | None]]:
    """Seconds to pay ``invoices`` one of the three ways (connected first), and the preimages."""
    if mode == MODES[0]:
        async with NWCClient(front, timeout=120) as client:
            started = time.perf_counter()
            results = await client.multi_pay_invoice(invoices)
            return time.perf_counter() - started, [r.preimage if r.ok else None for r in results]
    async with NWCClient.from_uri(upstream, timeout=120) as client:
        started = time.perf_counter()
        if mode == MODES[1]:
            preimages = [await preimage(client, invoice) for invoice in invoices]
        else:
            preimages = list(await asyncio.gather(*(preimage(client, i) for i in invoices)))
        return time.perf_counter() - started, preimages


async def one_run(service: NodeProcess, front: ConnectionUri, size: int) -> dict[str, float]:
    """Each mode once, on fresh invoices; checks each was paid exactly once."""
    timings: dict[str, float] = {}
    for mode in MODES:
        made = [await payee_invoice(service, 1_000 + i) for i in range(size)]
        invoices = [invoice for invoice, _ in made]
        before = len(requests_seen(service))
        timings[mode], preimages = await pay(mode, front, service.ready["uri"], invoices)
        assert preimages == [p for _, p in made], f"{mode}: not every invoice was paid"
        seen = collections.Counter(
            m["params"]["invoice"]
            for m in requests_seen(service)[before:]
            if m["request"] == "pay_invoice"
        )
        assert seen == dict.fromkeys(invoices, 1), f"{mode}: an invoice was not paid exactly once"
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument(
        "--relay", default="nostr-relay", choices=("nostr-relay", "nostr-sdk", "nwcd")
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nwcd-bench-") as tmp:
        work = Path(tmp)
        async with relay_process(args.relay, work / "relay") as relay:
            scripts = node_scripts(work / "node")
            async with NodeProcess(scripts, "alby_wallet_service.mjs", relay) as service:
                data_dir = work / "nwcd"
                data_dir.mkdir()
                front = await make_connection(data_dir, relay)
                async with nwcd_on_nwc(data_dir, relay, service.ready["uri"]):
                    runs = [await one_run(service, front, args.size) for _ in range(args.runs)]
    print(
        f"{args.size} invoices, Alby JS SDK NWCWalletService (fake wallet) upstream, relay"
        f" {args.relay}, {args.runs} runs; nwcd's NWC backend pays at most"
        f" {MAX_CONCURRENT_PAYMENTS} at once"
    )
    print(f"{'seconds':34} {'min':>7} {'median':>7} {'max':>7}  speed-up vs one by one")
    sequential = statistics.median(run[MODES[1]] for run in runs)
    for mode in MODES:
        values = [run[mode] for run in runs]
        median = statistics.median(values)
        print(
            f"{mode:34} {min(values):7.3f} {median:7.3f} {max(values):7.3f}"
            f"  {sequential / median:5.2f}x"
        )
    print("every invoice paid, each reaching the upstream exactly once (counted on its side)")


if __name__ == "__main__":
    asyncio.run(main())
