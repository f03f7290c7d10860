"""Benchmark: 20 invoices paid through the LND adapter concurrently vs one by one.

    python bench/lnd_batch.py [--runs 3] [--size 20]

Brings up the regtest network of the LND tests (btcd + LND A -> B -> C, binaries
from scripts/setup-lnd.sh), then for each run pays ``--size`` fresh invoices of C
(two hops) from A through ``LndBackend.pay_invoice``: all at once
(``asyncio.gather``, as ``multi_pay_invoice`` does) and one after the other. The
test suite measures the same through the whole service
(tests/backends/test_lnd.py::test_service_20_invoices_concurrent_vs_one_by_one).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.backends.lnd_network import LndNetwork, lnd_network

from nwcd import bolt11
from nwcd.backends.lnd import LndBackend
from nwcd.ports import Succeeded


def invoices(network: LndNetwork, count: int) -> list[bolt11.Invoice]:
    made = [network.c.add_invoice(1_000_000, f"bench {i}") for i in range(count)]
    return [bolt11.decode(m["payment_request"]) for m in made]


async def pay_all(backend: LndBackend, batch: list[bolt11.Invoice], concurrent: bool) -> float:
    start = time.perf_counter()
    if concurrent:
        outcomes = await asyncio.gather(
            *(backend.pay_invoice(i, amount_msat=1_000_000, fee_limit_msat=10_000) for i in batch)
        )
    else:
        outcomes = [
            await backend.pay_invoice(i, amount_msat=1_000_000, fee_limit_msat=10_000)
            for i in batch
        ]
    elapsed = time.perf_counter() - start
    assert all(isinstance(o, Succeeded) for o in outcomes), outcomes
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=20)
    args = parser.parse_args()
    with lnd_network() as network:
        print(f"network up in {network.bringup_seconds:.1f} s")
        timings: dict[str, list[float]] = {"concurrent": [], "one by one": []}
        async with await LndBackend.open(network.a.config()) as backend:
            for _ in range(args.runs):
                for label, concurrent in (("concurrent", True), ("one by one", False)):
                    batch = await asyncio.to_thread(invoices, network, args.size)
                    timings[label].append(await pay_all(backend, batch, concurrent))
        for label, values in timings.items():
            print(
                f"{args.size} invoices of C (two hops), {label}: median "
                f"{statistics.median(values):.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)})"
            )


if __name__ == "__main__":
    asyncio.run(main())
