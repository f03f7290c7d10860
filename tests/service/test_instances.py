"""Several ``nwcd serve`` processes on one PostgreSQL database (and never two on one SQLite
data dir): every request answered by one of them, and a dead one's work taken over."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool
from nwcd.relay.server import LocalRelay
from tests.service.harness import RawApp
from tests.support.postgres import PostgresServer
from tests.support.service import ServeProcess

pytestmark = pytest.mark.slow


def nwcd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nwcd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NWCD_CONFIG": "", **env},
    )


@pytest.fixture
def store_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url(postgres_server.new_schema())


async def test_two_instances_answer_each_request_once_and_survive_a_kill(
    tmp_path: Path, nwcd_relay: LocalRelay, store_url: str
) -> None:
    env = {"NWCD_STORE_URL": store_url}
    config = tmp_path / "nwcd.toml"
    config.write_text("[store]\nlease = 2\n")  # a dead instance's work moves after 2 s
    created = nwcd(
        "connection", "create", "--name", "app", "--relay", nwcd_relay.url, "--json",
        "--data-dir", str(tmp_path), env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    uri = ConnectionUri.parse(json.loads(created.stdout)["uri"])
    first, second = (
        ServeProcess(
            tmp_path,
            [nwcd_relay.url],
            log_path=tmp_path / f"serve{n}.log",
            extra_args=("--config", str(config)),
            env=env,
        )
        for n in range(2)
    )
    try:
        await asyncio.gather(first.start(), second.start())
        async with (
            RelayPool([nwcd_relay.url]) as pool,
            await SimulatedBackend.open(SimulatorConfig(tmp_path / "simulator.sqlite")) as sim,
        ):
            await pool.wait_connected(10)
            app = RawApp(uri, pool)
            answers = await pool.subscribe(
                [Filter(kinds=(Kind.NWC_RESPONSE,), authors=(uri.wallet_pubkey.hex,))],
                queue_size=1000,
            )
            # Both instances receive every request; each is answered once.
            reads = [app.request("get_balance") for _ in range(20)]
            for request in reads:
                await pool.publish(request, timeout=0.05)
            got = await app.collect(answers, 20, 20, 0.5, uri.client_pubkey.hex)
            per_request = Counter(event.tag_value("e") for event, _ in got)
            assert per_request == Counter({request.id: 1 for request in reads})

            # A batch whose payments take 2 s; the instance holding it dies 0.3 s in.
            invoices = [await sim.create_invoice(1_000, latency_ms=2_000) for _ in range(10)]
            batch = app.request(
                "multi_pay_invoice",
                {
                    "invoices": [
                        {"id": str(i), "invoice": m.invoice} for i, m in enumerate(invoices)
                    ]
                },
            )
            await pool.publish(batch, timeout=0.05)
            holder = await owner_of(store_url, batch.id, first, second)
            await asyncio.sleep(0.3)
            await holder.kill()
            survivor = second if holder is first else first
            # The survivor takes the work over once the lease expires, resolves the payments
            # with the backend (paid once each) and answers every item.
            paid = await app.collect(answers, 10, 30, 0.5, uri.client_pubkey.hex)
            assert {event.tag_value("d") for event, _ in paid} == {str(i) for i in range(10)}
            assert all(response.error is None for _, response in paid)
            assert "taking over" in survivor.log_path.read_text()
            assert await sim.get_balance() == 100_000_000_000 - 10 * 1_000
            attempts = Counter(a.payment_hash for a in await sim.attempts())
            assert set(attempts.values()) == {1}  # no payment was tried twice

            # And it keeps serving alone.
            [(_, alone)] = await app.send(app.request("get_info"), timeout=10)
            assert alone.error is None
    finally:
        await first.kill()
        await second.kill()


async def owner_of(store_url: str, request_id: str, *services: ServeProcess) -> ServeProcess:
    """The process whose instance claimed a request (its ready line names the instance)."""
    db = await asyncpg.connect(store_url)
    try:
        async with asyncio.timeout(10):
            while not (  # noqa: ASYNC110 (another process writes it)
                owner := await db.fetchval(
                    "SELECT owner FROM requests WHERE event_id = $1", request_id
                )
            ):
                await asyncio.sleep(0.05)
    finally:
        await db.close()
    [holder] = [s for s in services if f"instance {owner[:12]}" in s.log_path.read_text()]
    return holder


async def test_a_second_serve_on_one_sqlite_data_dir_is_refused(
    tmp_path: Path, nwcd_relay: LocalRelay
) -> None:
    running = ServeProcess(tmp_path, [nwcd_relay.url])
    await running.start()
    try:
        second = await asyncio.to_thread(
            nwcd, "serve", "--relay", nwcd_relay.url, "--data-dir", str(tmp_path), env={}
        )
        assert second.returncode != 0
        assert "another nwcd serve is running" in second.stderr
        assert "postgresql" in second.stderr
        assert "Traceback" not in second.stderr
        assert running.running
    finally:
        await running.kill()


def test_a_password_in_the_store_url_is_never_shown(tmp_path: Path) -> None:
    url = "postgresql://nwcd:sekret-password@127.0.0.1:1/nwcd"
    done = nwcd("connection", "list", "--data-dir", str(tmp_path), env={"NWCD_STORE_URL": url})
    assert done.returncode != 0
    assert "sekret" not in done.stderr + done.stdout
    assert "127.0.0.1:1" in done.stderr  # but it says which database it could not reach
    assert "Traceback" not in done.stderr


def test_demo_runs_on_postgresql(tmp_path: Path, store_url: str) -> None:
    done = nwcd("demo", "--store", store_url, "--data-dir", str(tmp_path), env={})
    assert done.returncode == 0, done.stderr
    assert "demo ran as designed" in done.stdout
