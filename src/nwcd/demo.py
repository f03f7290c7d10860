"""``nwcd demo``: the whole product on one machine, with nothing to configure.

It starts the local relay, the wallet service on the simulated Lightning
wallet, and a connection; makes a batch of invoices (some slow, one failing);
pays them with one ``multi_pay_invoice`` through the relay using the client
SDK, showing each result as it arrives (above 100 invoices the client sends
several requests: the service takes at most 100 items per request); then sums
up and prints the commands to run the same on one's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from nwcd.backends.simulator import SimulatedBackend
from nwcd.bootstrap import open_simulator, open_store
from nwcd.client.client import MAX_BATCH_ITEMS, InvoiceRequest, NWCClient
from nwcd.client.commands import format_msat
from nwcd.config import Settings
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import Connection
from nwcd.ports import Store
from nwcd.relay.server import LocalRelay
from nwcd.service.daemon import DaemonOptions, WalletDaemon

__all__ = ["NEXT_STEPS", "run_demo"]

NEXT_STEPS = """
next: the same with your own service (here on the simulator, in your data dir), in three
terminals:
  nwcd relay --port 7777                                       # or use a public wss:// relay
  nwcd connection create --name my-app --relay ws://127.0.0.1:7777   # prints NWC_URI
  nwcd serve --relay ws://127.0.0.1:7777
then pay through it as an app would:
  export NWC_URI='nostr+walletconnect://...'                   # printed by connection create
  nwcd pay "$NWC_URI" "$(nwcd sim invoice --amount-msat 21000)"
  nwcd balance "$NWC_URI"; nwcd history "$NWC_URI"             # see also: nwcd --help"""


def _latencies(count: int) -> list[int]:
    """A spread of payment latencies (ms): most quick, a few slow."""
    pattern = [60, 120, 250, 400, 800, 90, 150, 1000, 200, 70, 300, 500]
    return [pattern[i % len(pattern)] for i in range(count)]


async def run_demo(
    *, data_dir: Path | None = None, count: int = 12, store_url: str | None = None
) -> int:
    """Run the demo; 0 when every invoice got the outcome it was made for.

    ``count``: invoices in the batch (one of them set to fail when there are two or
    more). ``store_url``: a PostgreSQL store instead of SQLite in the data dir.
    """
    if count < 1:
        raise ValueError("the demo needs at least one invoice")
    with tempfile.TemporaryDirectory(prefix="nwcd-demo-") as tmp:
        settings = Settings(data_dir=data_dir or Path(tmp), store_url=store_url)
        out = sys.stdout
        async with LocalRelay("127.0.0.1", 0) as relay:
            print(f"local relay      {relay.url}", file=out)
            store = await open_store(settings)
            try:
                backend = await open_simulator(settings)
                try:
                    return await _run(relay.url, store, backend, count)
                finally:
                    await backend.close()
            finally:
                await store.close()


async def _run(relay_url: str, store: Store, backend: SimulatedBackend, count: int) -> int:
    wallet_key, app_secret = SecretKey.generate(), SecretKey.generate()
    await store.add_connection(
        Connection(
            name=f"demo-{wallet_key.public_key.hex[:8]}",
            wallet_key=wallet_key,
            app_pubkey=app_secret.public_key.hex,
            relays=(relay_url,),
            created_at=int(time.time()),
        )
    )
    uri = ConnectionUri(wallet_key.public_key, (relay_url,), app_secret)
    daemon = WalletDaemon(store=store, backend=backend, options=DaemonOptions(relays=(relay_url,)))
    ready = asyncio.Event()
    service = asyncio.create_task(daemon.run(ready.set))
    try:
        async with asyncio.timeout(15):
            await ready.wait()
        print(
            "wallet service   ready on the simulator, balance"
            f" {format_msat(await backend.get_balance())}"
        )
        latencies = _latencies(count)
        failing = count // 2 if count > 1 else None
        invoices = []
        for i, latency in enumerate(latencies):
            made = await backend.create_invoice(
                1_000 * (i + 1) * 10,
                latency_ms=latency,
                outcome="fail" if i == failing else "succeed",
                fee_msat=1_000 if i % 3 == 0 else 0,
            )
            invoices.append(made)
        requests_needed = -(-count // MAX_BATCH_ITEMS)
        split = (
            f", sent as {requests_needed} requests of at most {MAX_BATCH_ITEMS}"
            if requests_needed > 1
            else ""
        )
        to_fail = f", invoice #{failing + 1} set to fail" if failing is not None else ""
        print(
            f"batch            {count} invoice{'s' if count != 1 else ''}, latencies"
            f" {min(latencies)}-{max(latencies)} ms{to_fail}{split}\n"
        )
        hashes = {made.invoice: made.payment_hash for made in invoices}
        expected = {made.invoice: i != failing for i, made in enumerate(invoices)}
        as_designed = True
        paid = failed = 0
        started = time.perf_counter()
        async with NWCClient.from_uri(uri, timeout=30) as client:
            requests = [InvoiceRequest(made.invoice) for made in invoices]
            async for result in client.multi_pay_invoice_iter(requests):
                elapsed = time.perf_counter() - started
                index = int(result.id) + 1
                if result.ok:
                    paid += 1
                    proof = hashlib.sha256(bytes.fromhex(result.preimage or "")).hexdigest()
                    verified = proof == hashes[result.invoice]
                    as_designed &= verified and expected[result.invoice]
                    print(
                        f"  {elapsed:6.3f}s  #{index:<3} paid   fee"
                        f" {format_msat(result.fees_paid_msat or 0)},"
                        f" preimage {'verified' if verified else 'WRONG'}"
                    )
                else:
                    failed += 1
                    as_designed &= not expected[result.invoice]
                    code = result.error.code if result.error else "?"
                    message = result.error.message if result.error else ""
                    print(f"  {elapsed:6.3f}s  #{index:<3} failed {code}: {message}")
        total = time.perf_counter() - started
        print(
            f"\n{paid} paid, {failed} failed in {total:.3f} s"
            f" (paid one by one: {sum(latencies) / 1000:.3f} s of payment latency)"
        )
        print(f"balance now {format_msat(await backend.get_balance())}")
        should_fail = 1 if failing is not None else 0
        as_designed &= paid == count - should_fail and failed == should_fail
        print("demo ran as designed" if as_designed else "demo did NOT run as designed")
        print(NEXT_STEPS)
        return 0 if as_designed else 1
    finally:
        service.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service
