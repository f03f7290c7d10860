"""Soak: does ``nwcd serve`` stay flat under a long load? RSS and store size over time.

    python bench/soak.py [--minutes 10] [--in-flight 8] [--relay nostr-sdk]

``nwcd serve`` (its own process, on the simulator) answers ``get_balance``
requests from one app, ``--in-flight`` at a time, for ``--minutes``; every
``--every`` seconds it prints the requests answered, the rate, the service's
resident memory and the size of its store. The service runs with a 60 s
freshness window and no extra retention, so requests that moved no money are
pruned after its 180 s horizon: past that, the store should stop growing, and
memory should level off once the service's bounded caches are full.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.multi_pay import make_connection, relay_process
from nwcd.nip47.encryption import Scheme, seal_content
from nwcd.nip47.methods import encode_request
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool

GET_BALANCE = encode_request("get_balance", {})


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_mb(data_dir: Path) -> float:
    return sum(p.stat().st_size for p in data_dir.glob("nwcd.sqlite*")) / 2**20


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--relay", default="nostr-sdk", help="nostr-sdk, nostr-relay or nwcd")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nwcd-soak-") as tmp:
        root = Path(tmp)
        async with relay_process(args.relay, root / "relay") as relay_url:
            data_dir = root / "data"
            data_dir.mkdir()
            (data_dir / "nwcd.toml").write_text(
                "[service]\nfreshness_window = 60\nretention = 0\n"
                "app_requests_per_minute = 0\nrequests_per_second = 0\n"
            )
            uri = await make_connection(data_dir, relay_url)
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nwcd", "serve", "--relay", relay_url,
                "--data-dir", str(data_dir), "--config", str(data_dir / "nwcd.toml"),
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert service.stderr is not None
            async with asyncio.timeout(30):
                while b"nwcd ready" not in await service.stderr.readline():
                    pass
            drain = asyncio.create_task(_drain(service))
            try:
                await load(uri, service.pid, data_dir, args)
            finally:
                service.terminate()
                await service.wait()
                drain.cancel()
    print(f"\nmachine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass


async def load(uri: ConnectionUri, pid: int, data_dir: Path, args: argparse.Namespace) -> None:
    """``in_flight`` workers, each sending its next request when the last is answered; one
    subscription for every answer (as an app with many requests in flight would)."""
    answered = 0
    deadline = time.monotonic() + 60 * args.minutes
    waiting: dict[str, asyncio.Future[None]] = {}
    async with RelayPool(uri.relays) as pool:
        await pool.wait_connected(10)
        subscription = await pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(uri.wallet_pubkey.hex,),
                    tags={"p": (uri.client_pubkey.hex,)},
                )
            ]
        )

        async def read() -> None:
            while True:
                event = await subscription.get()
                future = waiting.pop(event.tag_value("e") or "", None)
                if future is not None and not future.done():
                    future.set_result(None)

        async def worker() -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                request = sign_event(
                    uri.secret,
                    kind=Kind.NWC_REQUEST,
                    content=seal_content(
                        uri.secret, uri.wallet_pubkey, Scheme.NIP44_V2, GET_BALANCE
                    ),
                    tags=[["p", uri.wallet_pubkey.hex], ["encryption", "nip44_v2"]],
                    created_at=int(time.time()),
                )
                future = waiting[request.id] = asyncio.get_running_loop().create_future()
                await pool.publish(request, timeout=0.01)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await future
                        answered += 1

        reader = asyncio.create_task(read())
        workers = [asyncio.create_task(worker()) for _ in range(args.in_flight)]
        started = last_time = time.monotonic()
        last_count = 0
        samples: list[float] = []
        print(f"{'minute':>7} {'answered':>9} {'req/s':>7} {'RSS MB':>7} {'store MB':>9}")
        while time.monotonic() < deadline:
            await asyncio.sleep(min(args.every, max(0.0, deadline - time.monotonic())))
            now = time.monotonic()
            rate = (answered - last_count) / (now - last_time)
            last_time, last_count = now, answered
            samples.append(rss_mb(pid))
            print(
                f"{(now - started) / 60:7.1f} {answered:9d} {rate:7.0f}"
                f" {samples[-1]:7.1f} {store_mb(data_dir):9.2f}",
                flush=True,
            )
        await asyncio.gather(*workers, return_exceptions=True)
        reader.cancel()
    half = len(samples) // 2
    if half:
        print(
            f"RSS: first half max {max(samples[:half]):.1f} MB, second half max"
            f" {max(samples[half:]):.1f} MB, last {samples[-1]:.1f} MB"
        )


if __name__ == "__main__":
    asyncio.run(main())
