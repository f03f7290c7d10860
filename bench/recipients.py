"""Benchmark: pay a lightning-address split end to end, all at once vs one at a time.

    python bench/recipients.py [--recipients 20] [--runs 5] [--delay-ms 0,100]

``nwcd serve`` runs as its own process on the simulator, behind the PyPI ``nostr-relay``
process; the simulator's LNURL-pay server (``nwcd sim lnurl``) runs here, on loopback,
optionally behind a proxy that holds every HTTP answer ``--delay-ms`` (a remote LNURL
server's round trip: loopback answers in about a millisecond, the internet does not).

Two ways to pay ``--recipients`` lightning addresses, timed from the first HTTP request
to the last result, with a connected client:

- **together**: :func:`nwcd.client.recipients.pay_recipients`: every address resolved at
  once (pay params, then the invoice, checked), then one ``multi_pay_invoice``;
- **one at a time**: what an app does without it: for each address in turn, resolve it
  and ``pay_invoice``, waiting for the answer before the next.

Prints the median of ``--runs`` for each, the ratio, and the resolution alone.
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

import httpx
from aiohttp import web

from bench.multi_pay import make_connection, relay_process, service
from nwcd.backends.sim_lnurl import lnurl_server
from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.client.client import NWCClient
from nwcd.client.recipients import Recipient, pay_recipients, plan
from nwcd.recipients.lnurl import LnurlTarget, parse_target
from nwcd.recipients.resolve import new_http_client, resolve


@contextlib.asynccontextmanager
async def delayed(upstream: str, delay_ms: int) -> AsyncIterator[str]:
    """A proxy in front of ``upstream`` answering each request ``delay_ms`` late; yields
    its ``host:port`` (``upstream`` itself when there is no delay)."""
    if delay_ms <= 0:
        yield upstream
        return
    async with httpx.AsyncClient(base_url=f"http://{upstream}") as forward:

        async def relay(request: web.Request) -> web.Response:
            await asyncio.sleep(delay_ms / 1000)
            answer = await forward.get(request.path_qs)
            return web.Response(
                body=answer.content,
                status=answer.status_code,
                content_type="application/json",
            )

        app = web.Application()
        app.router.add_get("/{tail:.*}", relay)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"{host}:{port}"
        finally:
            await runner.cleanup()


async def together(client: NWCClient, addresses: list[str], http: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    results = await pay_recipients(
        client, [Recipient(address, 1_000 + n) for n, address in enumerate(addresses)], http=http
    )
    elapsed = time.perf_counter() - start
    assert all(result.ok for result in results), [r.error for r in results if not r.ok]
    return elapsed


async def one_at_a_time(client: NWCClient, addresses: list[str], http: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    for n, address in enumerate(addresses):
        target = parse_target(address)
        assert isinstance(target, LnurlTarget)
        resolved = await resolve(http, target, 1_000 + n)
        await client.pay_invoice(resolved.invoice)
    return time.perf_counter() - start


async def resolution(addresses: list[str], http: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    planned = await plan([Recipient(address, 1_000) for address in addresses], http=http)
    elapsed = time.perf_counter() - start
    assert len(planned) == len(addresses)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay-ms", default="0,100", help="HTTP delays to run, comma-separated")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nwcd-bench-") as tmp:
        data_dir = Path(tmp)
        async with relay_process("nostr-relay", data_dir / "relay") as relay:
            uri = await make_connection(data_dir, relay)
            sim = await SimulatedBackend.open(SimulatorConfig(data_dir / "simulator.sqlite"))
            try:
                async with (
                    service(data_dir, relay, per_connection=None),
                    lnurl_server(sim) as server,
                    NWCClient(uri, timeout=60) as client,
                    new_http_client() as http,
                ):
                    for delay_ms in (int(d) for d in args.delay_ms.split(",")):
                        async with delayed(server.authority, delay_ms) as authority:
                            addresses = [f"friend{n}@{authority}" for n in range(args.recipients)]
                            await together(client, addresses, http)  # warm up both paths
                            await one_at_a_time(client, addresses[:2], http)
                            times: dict[str, list[float]] = {"together": [], "one": [], "res": []}
                            for _ in range(args.runs):
                                times["together"].append(await together(client, addresses, http))
                                times["one"].append(await one_at_a_time(client, addresses, http))
                                times["res"].append(await resolution(addresses, http))
                        median = {key: statistics.median(value) for key, value in times.items()}
                        rows.append((delay_ms, median))
                        print(
                            f"HTTP delay {delay_ms:>3} ms: together {median['together']:.3f} s"
                            f" (resolution alone {median['res']:.3f} s),"
                            f" one at a time {median['one']:.3f} s",
                            flush=True,
                        )
            finally:
                await sim.close()
    print(f"\n{args.recipients} lightning addresses, median of {args.runs} runs")
    print(f"{'HTTP delay':>10}  {'together':>9}  {'one at a time':>13}  {'speed-up':>8}")
    for delay_ms, median in rows:
        ratio = median["one"] / median["together"]
        print(
            f"{delay_ms:>7} ms  {median['together']:>7.3f} s  {median['one']:>11.3f} s"
            f"  {ratio:>7.1f}x"
        )
    print(f"\nmachine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


if __name__ == "__main__":
    asyncio.run(main())
