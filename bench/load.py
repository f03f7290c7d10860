"""A get_balance load from several client processes, and what it cost the wallet service.

    python bench/load.py URI --seconds 5 --concurrency 16   # one client process (JSON out)

The load generator must not be the limit: each client is its own process (own event loop,
own GIL) keeping ``concurrency`` requests in flight, and the figure that matters is the
service's CPU per request (``/proc`` CPU time of its process over the run), which does not
depend on how fast the clients are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nwcd.client.client import NWCClient
from nwcd.nip47.uri import ConnectionUri

_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(*pids: int) -> float:
    """User + system CPU of processes so far (``/proc/PID/stat``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICK


async def paid_together(
    pay: Callable[[str], Awaitable[None]], batch: Sequence[str], limit: int = 0
) -> tuple[float, float]:
    """Pay all of ``batch`` at once (``limit``: at most that many in flight): seconds to
    the first and the last payment done (a backend alone: the floor)."""
    slots = asyncio.Semaphore(limit or len(batch) or 1)
    started = time.perf_counter()
    done: list[float] = []

    async def one(invoice: str) -> None:
        async with slots:
            await pay(invoice)
        done.append(time.perf_counter() - started)

    await asyncio.gather(*(one(invoice) for invoice in batch))
    return min(done), max(done)


async def paid_one_by_one(
    pay: Callable[[str], Awaitable[None]], batch: Sequence[str]
) -> tuple[float, float]:
    """Pay ``batch`` one at a time (how sequential services pay): first and last, seconds."""
    started = time.perf_counter()
    first = 0.0
    for invoice in batch:
        await pay(invoice)
        first = first or time.perf_counter() - started
    return first, time.perf_counter() - started


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float  # of the measured service processes

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


async def client_process(uri: str, seconds: float, concurrency: int) -> list[float]:
    """``concurrency`` get_balance loops for ``seconds``; their latencies."""
    latencies: list[float] = []
    async with NWCClient(ConnectionUri.parse(uri), timeout=30) as client:
        await client.get_balance()  # connected and warm before the clock starts
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await client.get_balance()
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies


async def get_balance_load(
    uri: str, service_pids: tuple[int, ...], *, seconds: float, clients: int, concurrency: int
) -> LoadResult:
    """Load the wallet behind ``uri`` from ``clients`` processes; measure ``service_pids``."""
    command = [__file__, uri, "--seconds", str(seconds), "--concurrency", str(concurrency)]
    before = cpu_seconds(*service_pids)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, *command, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(clients)
    ]
    outputs = [await process.communicate() for process in processes]
    cpu = cpu_seconds(*service_pids) - before
    latencies = sorted(x for out, _ in outputs for x in json.loads(out))
    count = len(latencies)
    if count == 0:
        raise RuntimeError("no request was answered")
    return LoadResult(
        requests=count,
        seconds=seconds,
        p50_ms=latencies[count // 2] * 1000,
        p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000,
        # Each client's warm-up request is served inside the measured CPU too.
        cpu_ms_per_request=cpu / (count + clients) * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(client_process(args.uri, args.seconds, args.concurrency))))


if __name__ == "__main__":
    main()
