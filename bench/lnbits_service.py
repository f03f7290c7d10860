"""Benchmark: multi_pay_invoice through nwcd on a real LNbits, against LNbits alone.

    python bench/lnbits_service.py [--runs 3] [--sizes 10,50,100] [--caps 1,4,8,16,32,0]
                                   [--relay nostr-relay] [--quick]

Starts one LNbits 1.6.2 (FakeWallet, SQLite; tests/backends/lnbits_server.py, installed
by scripts/setup-peers.sh) with two wallets: A (funded) pays, B makes the invoices;
internal payments between them are real LNbits payments (balances move, preimages are
released). One relay process and ``nwcd serve`` on wallet A (its own process). Then, for
each size, in alternating order, ``--runs`` times each:

- **nwcd**: one ``multi_pay_invoice`` through the relay; seconds from publishing it to
  the first and to the last response;
- **LNbits alone** (the floor): the same number of fresh invoices paid by as many
  concurrent ``POST /api/v1/payments`` with A's admin key straight to LNbits (one HTTP
  client, connections kept), first and last answer;
- **one by one**: the same through LNbits alone, sequentially (the sequential services).

With each batch, the CPU seconds of the LNbits processes (the parent and its uvicorn
child) and of ``nwcd serve``. Then the cap experiment: one ``nwcd serve`` per value of
``--caps``, each with ``[backend.lnbits] max_concurrent_payments`` set to it, against
LNbits alone with the same number of payments in flight, at ``--cap-size`` invoices.
Those services all run (each with its websocket on wallet A) and the caps take turns,
in reverse order every other run. Payee B's balance is checked after every batch: a
payment that did not arrive is reported, never timed silently.

LNbits 1.6.2 serialises more than its writes: every database access takes one
``asyncio.Lock`` (``Database.connect``) and each wallet's payments take another
(``_pay_invoice``). Yet it is CPU-bound and spends less CPU per payment the more
requests wait, so its floor falls with more in flight while the first answer comes
later (every request queues for the database lock at each step).

It prints medians side by side and nwcd / LNbits alone as a ratio.
``collect(workdir, quick)`` returns the same as rows and curves for ``python -m bench all``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.backends.lnbits_server import LNBITS_VERSION, LnbitsServer, LnbitsWallet
from tests.support.relays import PeerMissing, nostr_rs_relay_executable

from bench.load import paid_one_by_one, paid_together
from bench.multi_pay import make_connection, relay_process, service, timed_batch
from bench.report import Curve, Report, Row, check
from nwcd.backends.lnbits import MAX_CONCURRENT_PAYMENTS
from nwcd.nip47.uri import ConnectionUri
from nwcd.relay.pool import RelayPool

BENCH = "lnbits_service"
AMOUNT_SAT = 10  # every run pays thousands of invoices
FUND_SAT = 10_000_000  # the most LNbits credits at once
INVOICE_MAKERS = 8  # invoices are made this many at a time (untimed)
RATIO_TARGET = 1.10  # nwcd's last response within 1.10x of LNbits alone (as for LND)
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of processes so far (``/proc/PID/stat``); gone ones count 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICK


@dataclass
class Sample:
    first: float
    last: float
    lnbits_cpu: float
    nwcd_cpu: float


@dataclass
class Results:
    samples: dict[tuple[str, int], list[Sample]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # batches whose payments did not arrive

    def add(self, mode: str, size: int, sample: Sample) -> None:
        self.samples.setdefault((mode, size), []).append(sample)

    def median(self, mode: str, size: int, what: str) -> float:
        values = [getattr(s, what) for s in self.samples.get((mode, size), [])]
        return statistics.median(values) if values else float("nan")


class Lnbits:
    """Straight to LNbits: A pays (the floor nwcd is measured against), B makes invoices."""

    def __init__(
        self,
        server: LnbitsServer,
        payer: LnbitsWallet,
        payee: LnbitsWallet,
        *,
        keep_history: bool = False,
    ) -> None:
        self.server = server
        self.payer = payer
        self.payee = payee
        self.keep_history = keep_history
        # Idle connections are let go before uvicorn's 5 s keep-alive ends them: a request
        # sent as uvicorn closes its connection fails (httpx.ReadError, seen at 100 in flight).
        limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=200, keepalive_expiry=4
        )
        self._payer = httpx.AsyncClient(
            base_url=server.url,
            headers={"X-Api-Key": payer.admin_key},
            timeout=httpx.Timeout(120),
            limits=limits,
            trust_env=False,
        )
        self._payee = httpx.AsyncClient(
            base_url=server.url,
            headers={"X-Api-Key": payee.invoice_key},
            timeout=httpx.Timeout(120),
            limits=limits,
            trust_env=False,
        )
        self.paid = 0  # payments B should have received so far

    async def close(self) -> None:
        await self._payer.aclose()
        await self._payee.aclose()

    async def forget(self) -> None:
        """Delete A's payments and B's invoices from LNbits' database (while it is idle).

        LNbits reads a balance by summing the payments of every wallet (its ``balances``
        view: a scan and a GROUP BY over ``apipayments``), several times per payment and
        under its one database lock, so its floor grows with its history (about 7 ms a
        balance at 7,700 payments here). Forgetting each batch measures every batch at
        the same database size; ``keep_history`` lets the history grow instead.
        """
        if self.keep_history:
            return
        await asyncio.to_thread(self._forget)
        self.paid = 0

    def _forget(self) -> None:
        database = self.server.workdir / "data" / "database.sqlite3"
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as db, db:
            db.execute(
                "DELETE FROM apipayments WHERE (wallet_id = ? AND amount < 0) OR wallet_id = ?",
                (self.payer.id, self.payee.id),
            )

    async def invoices(self, count: int) -> list[str]:
        slots = asyncio.Semaphore(INVOICE_MAKERS)

        async def one(i: int) -> str:
            async with slots:
                response = await self._payee.post(
                    "/api/v1/payments",
                    json={"out": False, "amount": AMOUNT_SAT, "memo": f"bench {i}"},
                )
            response.raise_for_status()
            return str(response.json()["bolt11"])

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def received(self) -> int:
        """Payments B has received (its balance in invoices)."""
        response = await self._payee.get("/api/v1/wallet")
        response.raise_for_status()
        return int(response.json()["balance"]) // (AMOUNT_SAT * 1000)

    async def pay(self, invoice: str) -> None:
        response = await self._payer.post("/api/v1/payments", json={"out": True, "bolt11": invoice})
        if response.status_code not in (200, 201) or response.json().get("status") != "success":
            raise RuntimeError(f"LNbits: HTTP {response.status_code} {response.text[:200]}")

    async def concurrent(self, batch: Sequence[str], limit: int = 0) -> tuple[float, float]:
        """All of ``batch`` at once (``limit``: at most that many in flight)."""
        return await paid_together(self.pay, batch, limit)

    async def one_by_one(self, batch: Sequence[str]) -> tuple[float, float]:
        return await paid_one_by_one(self.pay, batch)


@dataclass
class Nwcd:
    """One ``nwcd serve`` on wallet A and its connection."""

    uri: ConnectionUri
    pid: int


async def measured(
    lnbits: Lnbits,
    results: Results,
    label: str,
    size: int,
    nwcd_pid: int,
    run: Callable[[Sequence[str]], Awaitable[tuple[float, float]]],
    pause: float,
) -> Sample:
    """Fresh invoices; a pause; one timed batch with the CPU of LNbits and nwcd over it;
    then whether B received them all."""
    await lnbits.forget()
    batch = await lnbits.invoices(size)
    await asyncio.sleep(pause)
    pids = lnbits.server.pids()
    lnbits_before, nwcd_before = cpu_seconds(pids), cpu_seconds([nwcd_pid])
    first, last = await run(batch)
    sample = Sample(
        first,
        last,
        cpu_seconds(pids) - lnbits_before,
        cpu_seconds([nwcd_pid]) - nwcd_before,
    )
    lnbits.paid += size
    # nwcd answers once LNbits has answered, but let a straggler land before counting.
    for _ in range(50):
        if (received := await lnbits.received()) >= lnbits.paid:
            break
        await asyncio.sleep(0.1)
    if received != lnbits.paid:
        results.missing.append(f"{label} n={size}: {lnbits.paid - received} not received")
        lnbits.paid = received
    results.add(label, size, sample)
    return sample


@dataclass(frozen=True)
class Plan:
    runs: int = 3
    sizes: tuple[int, ...] = (10, 50, 100)
    caps: tuple[int, ...] = (1, 4, 8, 16, 32, 100)
    cap_size: int = 100
    cap_runs: int = 3
    relay: str = "nostr-relay"
    pause: float = 0.5
    keep_history: bool = False


def default_relay() -> str:
    try:
        nostr_rs_relay_executable()
    except PeerMissing:
        return "nostr-relay"
    return "nostr-rs-relay"


async def start_lnbits(workdir: Path) -> tuple[LnbitsServer, LnbitsWallet, LnbitsWallet]:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    server = LnbitsServer(workdir)
    await asyncio.to_thread(server.start)
    try:
        payer = await asyncio.to_thread(server.new_wallet, "payer", fund_sat=FUND_SAT)
        payee = await asyncio.to_thread(server.new_wallet, "payee")
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    return server, payer, payee


def backend_lines(lnbits: Lnbits) -> list[str]:
    server, payer = lnbits.server, lnbits.payer
    return [
        "[backend]",
        'kind = "lnbits"',
        "[backend.lnbits]",
        f'url = "{server.url}"',
        f'admin_key = "{payer.admin_key}"',
        f'invoice_key = "{payer.invoice_key}"',
        "timeout = 120",
    ]


def cap_label(cap: int) -> str:
    return f"cap {cap}"


async def start_services(
    stack: contextlib.AsyncExitStack,
    variants: Sequence[tuple[str, Sequence[str]]],
    lnbits: Lnbits,
    pool: RelayPool,
    relay_url: str,
    root: Path,
) -> dict[str, Nwcd]:
    """``nwcd serve`` per (label, more ``[backend.lnbits]`` lines), each warmed up."""
    services: dict[str, Nwcd] = {}
    for label, lines in variants:
        data_dir = root / label.replace(" ", "-")
        data_dir.mkdir()
        uri = await make_connection(data_dir, relay_url)
        backend = [*backend_lines(lnbits), *lines]
        process = await stack.enter_async_context(
            service(data_dir, relay_url, per_connection=None, backend=backend)
        )
        services[label] = Nwcd(uri, process.pid)
    await pool.wait_connected(10)
    for nwcd in services.values():
        await timed_batch(nwcd.uri, pool, await lnbits.invoices(5))
        lnbits.paid += 5
    return services


def through(
    nwcd: Nwcd, pool: RelayPool
) -> Callable[[Sequence[str]], Awaitable[tuple[float, float]]]:
    async def batch(invoices: Sequence[str]) -> tuple[float, float]:
        return await timed_batch(nwcd.uri, pool, invoices)

    return batch


async def run(
    plan: Plan,
    server: LnbitsServer,
    payer: LnbitsWallet,
    payee: LnbitsWallet,
    root: Path,
    say: Callable[[str], None] = print,
) -> Results:
    """Both phases: nwcd as configured against LNbits alone, then the cap experiment."""
    results = Results()
    lnbits = Lnbits(server, payer, payee, keep_history=plan.keep_history)
    try:
        async with (
            relay_process(plan.relay, root / "relay") as relay_url,
            RelayPool([relay_url]) as pool,
        ):
            await lnbits.forget()
            await lnbits.concurrent(await lnbits.invoices(5))  # warm-up
            lnbits.paid += 5
            # Phase 1: one service, as an operator runs it (its websocket on A included).
            async with contextlib.AsyncExitStack() as stack:
                services = await start_services(
                    stack, [("nwcd", ())], lnbits, pool, relay_url, root
                )
                main = services["nwcd"]
                for run_number in range(plan.runs):
                    for size in plan.sizes:
                        # Alternate who goes first, so neither always meets a warm LNbits.
                        modes = ["nwcd", "alone"] if run_number % 2 == 0 else ["alone", "nwcd"]
                        for mode in modes:
                            pay = through(main, pool) if mode == "nwcd" else lnbits.concurrent
                            await measured(lnbits, results, mode, size, main.pid, pay, plan.pause)
                        if run_number == 0:
                            await measured(
                                lnbits,
                                results,
                                "one by one",
                                size,
                                main.pid,
                                lnbits.one_by_one,
                                plan.pause,
                            )
                        say(
                            f"run {run_number + 1}: {size:3d}"
                            f"  nwcd {results.samples[('nwcd', size)][-1].last:.3f} s"
                            f"  alone {results.samples[('alone', size)][-1].last:.3f} s"
                        )
            if plan.caps:
                await cap_experiment(plan, lnbits, results, pool, relay_url, root, say)
    finally:
        await lnbits.close()
    return results


async def cap_experiment(
    plan: Plan,
    lnbits: Lnbits,
    results: Results,
    pool: RelayPool,
    relay_url: str,
    root: Path,
    say: Callable[[str], None],
) -> None:
    """Phase 2: a service per cap, all running (so the caps can take turns: none always
    meets a fuller LNbits database), each against LNbits alone with as many in flight."""
    async with contextlib.AsyncExitStack() as stack:
        variants = [(cap_label(cap), (f"max_concurrent_payments = {cap}",)) for cap in plan.caps]
        services = await start_services(stack, variants, lnbits, pool, relay_url, root)
        size = plan.cap_size
        for run_number in range(plan.cap_runs):
            caps = plan.caps if run_number % 2 == 0 else tuple(reversed(plan.caps))
            for cap in caps:
                label = cap_label(cap)
                nwcd = services[label]

                async def alone(invoices: Sequence[str], cap: int = cap) -> tuple[float, float]:
                    return await lnbits.concurrent(invoices, cap)

                for mode in ["nwcd", "alone"] if run_number % 2 == 0 else ["alone", "nwcd"]:
                    pay = through(nwcd, pool) if mode == "nwcd" else alone
                    await measured(
                        lnbits, results, f"{mode} {label}", size, nwcd.pid, pay, plan.pause
                    )
                nwcd_last = results.samples[(f"nwcd {label}", size)][-1].last
                alone_last = results.samples[(f"alone {label}", size)][-1].last
                say(
                    f"cap run {run_number + 1}: {label:7}"
                    f"  nwcd {nwcd_last:.3f} s  alone {alone_last:.3f} s"
                )


def table(results: Results, plan: Plan) -> list[str]:
    lines = [
        f"medians of {plan.runs} runs, {AMOUNT_SAT} sat per invoice, LNbits {LNBITS_VERSION}"
        f" (FakeWallet, SQLite, internal payments), relay {plan.relay},"
        f" adapter cap {MAX_CONCURRENT_PAYMENTS},"
        + (" history kept" if plan.keep_history else " A's payments forgotten before each batch"),
        f"{'n':>4} {'nwcd first':>10} {'nwcd last':>10} {'alone first':>11} {'alone last':>10}"
        f" {'one by one':>10} {'nwcd/alone':>10} {'LNbits cpu':>10} {'LNbits cpu':>10}"
        f" {'nwcd cpu':>8}",
        f"{'':>4} {'':>10} {'':>10} {'':>11} {'':>10} {'':>10} {'':>10}"
        f" {'under nwcd':>10} {'alone':>10} {'':>8}",
    ]
    for size in plan.sizes:

        def m(mode: str, what: str, size: int = size) -> float:
            return results.median(mode, size, what)

        lines.append(
            f"{size:4d} {m('nwcd', 'first'):10.3f} {m('nwcd', 'last'):10.3f}"
            f" {m('alone', 'first'):11.3f} {m('alone', 'last'):10.3f}"
            f" {m('one by one', 'last'):10.3f} {m('nwcd', 'last') / m('alone', 'last'):10.2f}"
            f" {m('nwcd', 'lnbits_cpu'):10.2f} {m('alone', 'lnbits_cpu'):10.2f}"
            f" {m('nwcd', 'nwcd_cpu'):8.2f}"
        )
    if plan.caps:
        lines += [
            "",
            f"cap experiment: n = {plan.cap_size}, medians of {plan.cap_runs} runs;"
            " LNbits alone with as many payments in flight as the cap",
            f"{'cap':>7} {'nwcd first':>10} {'nwcd last':>10} {'alone first':>11}"
            f" {'alone last':>10} {'nwcd/alone':>10} {'LNbits cpu':>10} {'nwcd cpu':>8}",
        ]
        for cap in plan.caps:
            label = cap_label(cap)

            def c(mode: str, what: str, label: str = label) -> float:
                return results.median(f"{mode} {label}", plan.cap_size, what)

            lines.append(
                f"{label:>7} {c('nwcd', 'first'):10.3f} {c('nwcd', 'last'):10.3f}"
                f" {c('alone', 'first'):11.3f} {c('alone', 'last'):10.3f}"
                f" {c('nwcd', 'last') / c('alone', 'last'):10.2f}"
                f" {c('nwcd', 'lnbits_cpu'):10.2f} {c('nwcd', 'nwcd_cpu'):8.2f}"
            )
    if results.missing:
        lines += ["", "payments that did not arrive:", *results.missing]
    return lines


def to_report(results: Results, plan: Plan) -> Report:
    report = Report()
    if results.missing:
        report.failed.append(f"{BENCH}: payments did not arrive: {'; '.join(results.missing)}")
    for size in plan.sizes:

        def m(mode: str, what: str, size: int = size) -> float:
            return results.median(mode, size, what)

        ratio = m("nwcd", "last") / m("alone", "last")
        report.rows += [
            Row(
                BENCH,
                f"n={size}: nwcd multi_pay_invoice, first response",
                m("nwcd", "first"),
                "s",
                compare=f"LNbits alone {m('alone', 'first'):.3f} s",
            ),
            Row(
                BENCH,
                f"n={size}: nwcd multi_pay_invoice, last response",
                m("nwcd", "last"),
                "s",
                target=f"<= {RATIO_TARGET:.2f}x LNbits alone",
                met=check(ratio, at_most=RATIO_TARGET),
                compare=f"LNbits alone {m('alone', 'last'):.3f} s (x{ratio:.2f})",
            ),
            Row(BENCH, f"n={size}: LNbits alone, n concurrent, first", m("alone", "first"), "s"),
            Row(BENCH, f"n={size}: LNbits alone, n concurrent, last", m("alone", "last"), "s"),
            Row(
                BENCH,
                f"n={size}: LNbits alone, one by one",
                m("one by one", "last"),
                "s",
                compare=f"n concurrent {m('alone', 'last'):.3f} s",
            ),
            Row(
                BENCH,
                f"n={size}: LNbits CPU per batch under nwcd",
                m("nwcd", "lnbits_cpu"),
                "s",
                compare=f"alone {m('alone', 'lnbits_cpu'):.2f} s",
            ),
        ]
    series = {
        "nwcd first": ("nwcd", "first"),
        "nwcd last": ("nwcd", "last"),
        "LNbits alone first": ("alone", "first"),
        "LNbits alone last": ("alone", "last"),
        "LNbits one by one": ("one by one", "last"),
    }
    for label, (mode, what) in series.items():
        points = tuple((float(size), results.median(mode, size, what)) for size in plan.sizes)
        report.curves.append(Curve("lnbits", label, points))
    for mode in ("nwcd", "alone"):
        points = tuple(
            (float(cap), results.median(f"{mode} {cap_label(cap)}", plan.cap_size, "last"))
            for cap in plan.caps
        )
        if points:
            name = "nwcd" if mode == "nwcd" else "LNbits alone"
            report.curves.append(Curve("lnbits cap", f"{name} last, n={plan.cap_size}", points))
    for cap in plan.caps:
        label = cap_label(cap)
        last = results.median(f"nwcd {label}", plan.cap_size, "last")
        alone = results.median(f"alone {label}", plan.cap_size, "last")
        report.rows.append(
            Row(
                BENCH,
                f"n={plan.cap_size}: nwcd with adapter {label}, last response",
                last,
                "s",
                compare=f"LNbits alone, {cap} in flight {alone:.3f} s",
            )
        )
    return report


async def collect(workdir: Path, quick: bool) -> Report:
    """The benchmark for ``python -m bench all``, within its time (``quick``: one run,
    three caps; else two runs, four caps; ``main`` does more)."""
    relay = default_relay()
    if quick:
        plan = Plan(runs=1, caps=(1, 8, 100), cap_runs=1, relay=relay)
    else:
        plan = Plan(runs=2, caps=(1, 8, 32, 100), cap_runs=1, relay=relay)
    try:
        server, payer, payee = await start_lnbits(workdir / "lnbits")
    except (PeerMissing, RuntimeError) as exc:
        return Report(failed=[f"{BENCH}: {exc}".splitlines()[0]])
    try:
        results = await run(plan, server, payer, payee, workdir, say=lambda _: None)
    finally:
        await asyncio.to_thread(server.stop)
    return to_report(results, plan)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--caps", default="1,4,8,16,32,100", help="adapter caps to try")
    parser.add_argument("--cap-size", type=int, default=100)
    parser.add_argument("--cap-runs", type=int, default=3)
    parser.add_argument("--relay", default=None, help="nostr-rs-relay (if built), nostr-relay")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds before each batch")
    parser.add_argument("--quick", action="store_true", help="one run; caps 1, 8 and 100")
    parser.add_argument(
        "--keep-history",
        action="store_true",
        help="keep LNbits' payments (its floor then grows with every batch)",
    )
    args = parser.parse_args()
    plan = Plan(
        runs=1 if args.quick else args.runs,
        sizes=tuple(int(s) for s in args.sizes.split(",")),
        caps=(1, 8, 100) if args.quick else tuple(int(c) for c in args.caps.split(",") if c),
        cap_size=args.cap_size,
        cap_runs=1 if args.quick else args.cap_runs,
        relay=args.relay or default_relay(),
        pause=args.pause,
        keep_history=args.keep_history,
    )
    with tempfile.TemporaryDirectory(prefix="nwcd-lnbits-bench-") as tmp:
        root = Path(tmp)
        server, payer, payee = await start_lnbits(root / "lnbits")
        print(f"LNbits up in {server.startup_seconds:.1f} s", flush=True)
        try:
            results = await run(
                plan, server, payer, payee, root, say=lambda s: print(s, flush=True)
            )
        finally:
            await asyncio.to_thread(server.stop)
    print()
    print("\n".join(table(results, plan)))
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")


if __name__ == "__main__":
    asyncio.run(main())
