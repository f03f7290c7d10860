"""A seeded chaos run: real relays, a real ``nwcd serve``, apps, and faults at random moments.

The world (all on loopback):

* three relays: PyPI ``nostr-relay`` (stores and replays ephemeral events),
  ``nostr-rs-relay`` (a production relay; no ``OK`` for ephemeral kinds), both
  as processes, and ``nwcd relay`` (in this process, for its fault knobs);
* ``nwcd serve`` as a child process on the simulator, whose payees succeed,
  fail, hang (released later, maybe while the service is down) or are slow;
* apps, some with budgets, sending ``pay_invoice``, ``multi_pay_invoice``
  (1-100 items, some invoices shared between requests), ``make_invoice`` and
  reads to every relay, re-sending what gets no answer.

Faults, at seeded moments: ``kill -9`` of the service (at random, or just after
a batch went out) and a restart a moment later; relay kills and restarts;
dropped connections and a slow link on ``nwcd relay``; connections created and
revoked while running; backend outages (errors after the payment started, or
hangs). Then the faults stop, hanging payments are released, and the apps keep
re-sending until everything is answered; :mod:`tests.chaos.checks` judges.

With ``instances`` above one, several ``nwcd serve`` share one PostgreSQL
database (a throwaway server started here) and the killer takes down one
instance at a time or two at once: the others must take the dead one's work
over (after its lease expires), and the same end checks hold.

The seed fixes the plan (what each app sends, which fault comes next and
after how long); the timing of real processes is not reproducible, so a seed
replays the same plan, not the same interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nwcd.backends.simulator import OutageMode, SimInvoice, SimulatedBackend, SimulatorConfig
from nwcd.nip47.uri import ConnectionUri
from nwcd.ports import PaymentRecord, Store
from nwcd.relay.server import LocalRelay
from nwcd.store.postgres import PostgresStore
from nwcd.store.sqlite import SqliteStore
from tests.chaos.apps import ChaosApp
from tests.chaos.checks import Attempt, LedgerPayment, Report, SentRequest, SimPayment, check
from tests.support.postgres import PostgresServer
from tests.support.relays import NostrRelayProcess, NostrRsRelayProcess, free_port
from tests.support.service import ServeProcess

__all__ = ["ChaosPlan", "run"]

log = logging.getLogger("chaos")


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    """How long, how hard."""

    seed: int = 1
    duration: float = 60.0
    min_kills: int = 10
    apps: int = 4
    budget_apps: int = 2
    patient_apps: int = 1
    request_rate: float = 6.0  # requests per second, all apps together
    max_batch: int = 100
    fault_every: tuple[float, float] = (2.0, 6.0)
    settle_timeout: float = 90.0
    resend_after: float = 4.0
    instances: int = 1  # above 1: on PostgreSQL


@dataclass
class Tally:
    kills: int = 0
    relay_restarts: int = 0
    drops: int = 0
    slow_links: int = 0
    outages: int = 0
    created: int = 0
    revoked: int = 0
    releases: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)


class Chaos:
    """One run; use :func:`run`."""

    def __init__(self, plan: ChaosPlan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.tally = Tally()
        self.apps: list[ChaosApp] = []
        self.hanging: list[SimInvoice] = []
        self.shared: list[SimInvoice] = []
        self.batch_sent = asyncio.Event()  # a paced batch went out
        self.paced_due = 0.0
        self.kill_times: list[float] = []
        self.stopping = False
        self.started = time.monotonic()
        self._names = 0

    # -- the world ---------------------------------------------------------------------------

    async def open(self) -> None:
        self.data_dir.mkdir(parents=True)
        (self.workdir / "nostr-relay").mkdir()
        (self.workdir / "nostr-rs-relay").mkdir()
        self.nostr_relay = NostrRelayProcess(self.workdir / "nostr-relay")
        self.rs_relay = NostrRsRelayProcess(self.workdir / "nostr-rs-relay")
        self.local_relay = LocalRelay(port=free_port())
        await asyncio.gather(self.nostr_relay.start(), self.rs_relay.start())
        await self.local_relay.start()
        self.local_relay_up = True
        self.relays = (self.nostr_relay.url, self.rs_relay.url, self.local_relay.url)
        self.sim = await SimulatedBackend.open(SimulatorConfig(self.data_dir / "simulator.sqlite"))
        self.env = {"NWCD_CONFIG": ""}
        self.postgres: PostgresServer | None = None
        if self.plan.instances > 1:
            self.postgres = PostgresServer()
            await asyncio.to_thread(self.postgres.start)
            self.env["NWCD_STORE_URL"] = self.postgres.url()
        self.services = [
            ServeProcess(
                self.data_dir,
                self.relays,
                log_path=self.workdir / f"serve{n}.log",
                env=self.env,
            )
            for n in range(self.plan.instances)
        ]
        for index in range(self.plan.apps):
            budget = 400_000 if index < self.plan.budget_apps else None
            patient = index >= self.plan.apps - self.plan.patient_apps
            await self.add_app(budget, patient=patient)
        await asyncio.gather(*(service.start() for service in self.services))

    async def close(self) -> None:
        for app in self.apps:
            await app.close()
        for service in self.services:
            await service.kill()
        await self.sim.close()
        await self.local_relay.stop()
        await self.nostr_relay.kill()
        await self.rs_relay.kill()
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)

    async def nwcd(self, *args: str) -> str:
        """A CLI command on the data dir, as an operator would run it."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nwcd",
            *args,
            "--data-dir",
            str(self.data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env},
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"nwcd {' '.join(args)}: {err.decode().strip()}")
        return out.decode()

    async def add_app(self, budget_msat: int | None, *, patient: bool = False) -> ChaosApp:
        self._names += 1
        name = f"app{self._names}"
        args = ["connection", "create", "--name", name, "--json"]
        for relay in self.relays:
            args += ["--relay", relay]
        if budget_msat is not None:
            args += ["--budget-msat", str(budget_msat)]
        created = json.loads(await self.nwcd(*args))
        app = ChaosApp(
            name,
            ConnectionUri.parse(created["uri"]),
            budget_msat=budget_msat,
            resend_after=None if patient else self.plan.resend_after,
            # Patient apps publish only to relays that keep no ephemeral events.
            publish_to=(self.rs_relay.url, self.local_relay.url) if patient else None,
        )
        await app.start()
        self.apps.append(app)
        return app

    # -- workload ----------------------------------------------------------------------------

    async def invoice(self, rng: random.Random) -> SimInvoice:
        """A payee invoice: mostly quick successes, some failures, hangs and slow ones."""
        if self.shared and rng.random() < 0.08:
            return rng.choice(self.shared)  # one invoice in several requests
        amount = rng.randrange(1_000, 20_000)
        kind = rng.random()
        if kind < 0.70:
            made = await self.sim.create_invoice(amount, fee_msat=rng.choice((0, 0, 3)))
        elif kind < 0.80:
            made = await self.sim.create_invoice(amount, outcome="fail", latency_ms=50)
        elif kind < 0.88:
            made = await self.sim.create_invoice(amount, outcome="hang")
            self.hanging.append(made)
        else:
            made = await self.sim.create_invoice(amount, latency_ms=rng.randrange(200, 2_000))
        if rng.random() < 0.1:
            self.shared.append(made)
        return made

    async def act(self, app: ChaosApp, rng: random.Random) -> None:
        """One request of a random kind."""
        pick = rng.random()
        if app.patient and pick < 0.3:
            pick = 0.31  # mostly paced batches: a lost answer shows only for apps that wait
        if pick < 0.30:
            made = await self.invoice(rng)
            await app.send("pay_invoice", {"invoice": made.invoice}, [(None, made.payment_hash)])
        elif pick < 0.36:
            await self.paced_batch(app, rng)
        elif pick < 0.50:
            size = min(self.plan.max_batch, max(1, int(rng.paretovariate(1.2))))
            if rng.random() < 0.1:
                size = self.plan.max_batch
            invoices = [await self.invoice(rng) for _ in range(size)]
            unique = list({m.payment_hash: m for m in invoices}.values())
            items = [{"id": f"i{n}", "invoice": m.invoice} for n, m in enumerate(unique)]
            await app.send(
                "multi_pay_invoice",
                {"invoices": items},
                [(f"i{n}", m.payment_hash) for n, m in enumerate(unique)],
            )
        elif pick < 0.65:
            await app.send("make_invoice", {"amount": rng.randrange(1_000, 50_000)}, [(None, None)])
        else:
            method = rng.choice(("get_balance", "get_info", "list_transactions"))
            params = {"limit": 5} if method == "list_transactions" else {}
            await app.send(method, params, [(None, None)])

    async def paced_batch(self, app: ChaosApp, rng: random.Random) -> None:
        """A batch whose payments all end together after 300 ms: the killer aims at the
        moment its answers are being stored and published (for a patient app's)."""
        invoices = [
            await self.sim.create_invoice(rng.randrange(1_000, 5_000), latency_ms=300)
            for _ in range(rng.randrange(20, 61))
        ]
        await app.send(
            "multi_pay_invoice",
            {"invoices": [{"id": f"p{n}", "invoice": m.invoice} for n, m in enumerate(invoices)]},
            [(f"p{n}", m.payment_hash) for n, m in enumerate(invoices)],
        )
        if app.patient:
            self.paced_due = time.monotonic() + 0.3
            self.batch_sent.set()

    async def workload(self, app_index: int) -> None:
        rng = random.Random(f"{self.plan.seed}/app/{app_index}")
        rate = self.plan.request_rate / max(1, self.plan.apps)
        while not self.stopping:
            await asyncio.sleep(rng.expovariate(rate))
            live = [a for a in self.apps if a.revoked_at is None]
            app = self.apps[app_index] if app_index < len(self.apps) else None
            if app is None or (app.revoked_at is not None and rng.random() < 0.7):
                if not live:
                    continue
                app = rng.choice(live)
            try:
                await self.act(app, rng)
            except Exception:
                log.exception("workload step failed")

    # -- faults ------------------------------------------------------------------------------

    async def killer(self) -> None:
        """``kill -9`` often enough for ``min_kills``; half of them as a paced batch's
        answers are being stored and published. With several instances, one at a time or
        (a quarter of the time) two at once."""
        rng = random.Random(f"{self.plan.seed}/kills")
        deadline = self.started + self.plan.duration
        while not self.stopping:
            # Spread the kills still owed over the time left (restarts take time too).
            owed = max(1, self.plan.min_kills + 1 - self.tally.kills)
            interval = max(1.0, (deadline - time.monotonic()) / owed)
            await asyncio.sleep(rng.uniform(0.5, 1.0) * interval)
            if self.stopping:
                return
            if rng.random() < 0.5:
                self.batch_sent.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval / 2):
                        await self.batch_sent.wait()
                aim = self.paced_due + rng.uniform(-0.05, 0.15) - time.monotonic()
                await asyncio.sleep(max(0.0, aim))
            count = 2 if len(self.services) > 2 and rng.random() < 0.25 else 1
            victims = rng.sample(self.services, count)
            killed_at = time.time()
            for victim in victims:
                await victim.kill()
            self.tally.kills += count
            if len(self.services) > 1:
                self.kill_times.append(killed_at)
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            await asyncio.gather(*(victim.start() for victim in victims))

    async def faults(self) -> None:
        rng = random.Random(f"{self.plan.seed}/faults")
        low, high = self.plan.fault_every
        faults: list[tuple[float, Callable[[random.Random], Awaitable[None]]]] = [
            (3, self.restart_relay),
            (2, self.drop_connections),
            (1, self.slow_link),
            (2, self.outage),
            (1, self.create_connection),
            (1, self.revoke_connection),
            (3, self.release_some),
        ]
        weights = [w for w, _ in faults]
        while not self.stopping:
            await asyncio.sleep(rng.uniform(low, high))
            if self.stopping:
                return
            [(_, fault)] = rng.choices(faults, weights)
            try:
                await fault(rng)
            except Exception:
                log.exception("fault %s failed", fault.__name__)

    async def restart_relay(self, rng: random.Random) -> None:
        which = rng.randrange(3)
        down = rng.uniform(0.2, 2.0)
        if which == 2:
            self.local_relay_up = False
            await self.local_relay.stop()
            await asyncio.sleep(down)
            await self.local_relay.start()
            self.local_relay_up = True
        else:
            relay = self.nostr_relay if which == 0 else self.rs_relay
            await relay.kill()
            await asyncio.sleep(down)
            await relay.start()
        self.tally.relay_restarts += 1

    async def drop_connections(self, rng: random.Random) -> None:
        await self.local_relay.drop_connections()
        self.tally.drops += 1

    async def slow_link(self, rng: random.Random) -> None:
        self.local_relay.faults.delay_ms = rng.choice((100, 300))
        await asyncio.sleep(rng.uniform(1, 3))
        self.local_relay.faults.delay_ms = 0
        self.tally.slow_links += 1

    async def outage(self, rng: random.Random) -> None:
        mode: OutageMode = rng.choice(("error", "hang"))
        seconds = rng.uniform(0.5, 3.0)
        await self.sim.set_outage(mode, seconds)
        self.tally.outages += 1
        await asyncio.sleep(seconds)

    async def create_connection(self, rng: random.Random) -> None:
        if len(self.apps) < self.plan.apps + 4:
            await self.add_app(300_000 if rng.random() < 0.3 else None)
            self.tally.created += 1

    async def revoke_connection(self, rng: random.Random) -> None:
        live = [a for a in self.apps if a.revoked_at is None]
        if len(live) <= 2:
            return
        app = rng.choice(live)
        await self.nwcd("connection", "revoke", app.name)
        # The CLI returns once stored; the service follows within a poll interval. From
        # a second on, every request must be refused.
        await asyncio.sleep(1.5)
        app.revoked_at = time.monotonic()
        self.tally.revoked += 1

    async def release_some(self, rng: random.Random) -> None:
        rng.shuffle(self.hanging)
        for _ in range(min(len(self.hanging), rng.randrange(1, 6))):
            made = self.hanging.pop()
            await self.release(made, rng.choice(("succeed", "succeed", "fail")))

    async def release(self, made: SimInvoice, outcome: str) -> None:
        with contextlib.suppress(Exception):  # never paid (denied, say): nothing to release
            await self.sim.release(made.payment_hash, outcome)  # type: ignore[arg-type]
            self.tally.releases += 1

    async def sample_rss(self) -> None:
        while True:
            rss = self.services[0].rss_bytes()
            if rss is not None:
                self.tally.rss.append((time.monotonic() - self.started, rss))
            await asyncio.sleep(1.0)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> Report:
        self.started = time.monotonic()
        tasks = [asyncio.create_task(self.workload(i)) for i in range(self.plan.apps)]
        tasks += [asyncio.create_task(self.killer()), asyncio.create_task(self.faults())]
        sampler = asyncio.create_task(self.sample_rss())
        await asyncio.sleep(self.plan.duration)
        self.stopping = True
        # Let a fault in progress finish (a relay mid-restart), then make the world whole.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await self.heal()
        settled = await self.settle()
        sampler.cancel()
        await asyncio.gather(*(service.stop() for service in self.services))
        report = await self.judge()
        report.line("settled", f"in {settled:.1f} s after the faults stopped")
        return report

    async def heal(self) -> None:
        await self.sim.set_outage(None)
        self.local_relay.faults.delay_ms = 0
        for relay in (self.nostr_relay, self.rs_relay):
            if relay.pid is None:
                await relay.start()
        if not self.local_relay_up:
            await self.local_relay.start()
            self.local_relay_up = True
        await asyncio.gather(*(s.start() for s in self.services if not s.running))
        for made in self.hanging:
            await self.release(made, "succeed")
        self.hanging.clear()

    async def settle(self) -> float:
        """Until every request is answered (apps re-send), or the settle timeout; a patient
        app waits only for requests the service received."""
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.plan.settle_timeout):
                while await self.waiting():  # noqa: ASYNC110 (apps change it)
                    await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def waiting(self) -> bool:
        """Is an answer still to come?"""
        for app in self.apps:
            pending = app.unanswered()
            if pending and not app.patient:
                return True
            if pending and (await self.never_received(pending)) != {r.event_id for r in pending}:
                return True
        return False

    async def open_store(self) -> Store:
        """The service's store, as the services use it."""
        if self.postgres is not None:
            return await PostgresStore.open(self.postgres.url())
        return await SqliteStore.open(self.data_dir / "nwcd.sqlite")

    def takeover_seconds(self) -> list[float]:
        """For each kill, how long until another instance logged taking work over."""
        stamps = sorted(
            datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
            for service in self.services
            if service.log_path.exists()
            for line in service.log_path.read_text(errors="replace").splitlines()
            if "taking over:" in line and "recovery" not in line
        )
        found = []
        for killed in self.kill_times:
            later = [t for t in stamps if killed < t < killed + 60]
            if later:
                found.append(later[0] - killed)
        return found

    async def never_received(self, requests: list[SentRequest]) -> set[str]:
        """Those of ``requests`` the service has no claim of."""
        store = await self.open_store()
        try:
            return {r.event_id for r in requests if await store.request(r.event_id) is None}
        finally:
            await store.close()

    async def judge(self) -> Report:
        requests: list[SentRequest] = [r for app in self.apps for r in app.requests.values()]
        patient = [r for app in self.apps if app.patient for r in app.unanswered()]
        never_received = await self.never_received(patient)
        store = await self.open_store()
        try:
            # The service stopped: whatever work it left open is an orphan now.
            left = await store.take_over("judge", int(time.time()), everyone_else=True)
            undelivered = [event.id for event in left.undelivered]
            open_requests = [r.event_id for r in left.unanswered]
            open_requests += [r.event_id for r, _ in left.unfinished]
            ledger: list[LedgerPayment] = []
            for app in self.apps:
                hashes = [
                    item.payment_hash
                    for r in app.requests.values()
                    for item in r.items.values()
                    if item.payment_hash
                ]
                found = await store.payments_by_hashes(app.wallet_pubkey, hashes)
                ledger += [ledger_payment(p) for p in found.values()]
        finally:
            await store.close()
        attempts = [Attempt(a.payment_hash, a.result) for a in await self.sim.attempts()]
        db = sqlite3.connect(self.data_dir / "simulator.sqlite")
        try:
            sim_payments = [
                SimPayment(*row)
                for row in db.execute(
                    "SELECT payment_hash, status, preimage, amount_msat, fee_msat FROM payments"
                )
            ]
        finally:
            db.close()
        report = check(
            requests=requests,
            attempts=attempts,
            sim_payments=sim_payments,
            ledger=ledger,
            budgets={a.wallet_pubkey: a.budget_msat for a in self.apps if a.budget_msat},
            names={a.wallet_pubkey: a.name for a in self.apps},
            recovery_seconds=[t for s in self.services for t in s.start_seconds[1:]],
            never_received=never_received,
            undelivered=undelivered,
            open_requests=open_requests,
        )
        t = self.tally
        report.figures = {
            "seed": str(self.plan.seed),
            "duration": f"{self.plan.duration:.0f} s of faults",
            "faults": f"{t.kills} kill -9, {t.relay_restarts} relay restarts, {t.drops} dropped"
            f" connection sets, {t.slow_links} slow links, {t.outages} backend outages,"
            f" {t.created} connections created, {t.revoked} revoked, {t.releases} hangs released",
            "requests": f"{len(requests)} ({sum(len(r.items) for r in requests)} items)",
            **report.figures,
        }
        if t.rss:
            peak = max(rss for _, rss in t.rss)
            last = t.rss[-1][1]
            report.line("service RSS", f"max {peak / 2**20:.1f} MB, last {last / 2**20:.1f} MB")
        takeovers = self.takeover_seconds()
        if takeovers:
            report.line(
                "take-over after kill",
                f"{len(takeovers)} kills with work left: p50 {statistics.median(takeovers):.1f} s,"
                f" max {max(takeovers):.1f} s (lease 10 s)",
            )
        if self.postgres is not None:
            report.line("instances", f"{self.plan.instances} on one PostgreSQL")
        if t.kills < self.plan.min_kills:
            report.violations.append(f"only {t.kills} kills (at least {self.plan.min_kills})")
        return report


def ledger_payment(p: PaymentRecord) -> LedgerPayment:
    return LedgerPayment(
        p.wallet_pubkey, p.intent.payment_hash, p.state.value, p.preimage,
        p.intent.amount_msat, p.fee_msat,
    )  # fmt: skip


async def run(plan: ChaosPlan, workdir: Path) -> tuple[Report, dict[str, Any]]:
    """Run one plan in ``workdir``; returns the report and the raw RSS samples."""
    chaos = Chaos(plan, workdir)
    try:
        await chaos.open()
        report = await chaos.run()
    finally:
        await chaos.close()
    return report, {"rss": chaos.tally.rss}
