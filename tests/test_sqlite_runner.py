"""nwcd.sqlite_runner: inline on the loop when the thread is idle and no lock is held,
else on the connection's thread, in order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nwcd.sqlite_runner import SqliteRunner, is_busy


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[SqliteRunner]:
    executor = ThreadPoolExecutor(max_workers=1)
    runner = SqliteRunner(executor, busy_timeout_ms=10_000, checkpoint_every=3)
    db = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE t (v INTEGER)")
    runner.attach(db)
    yield runner
    await runner.close()
    executor.shutdown(wait=True)


def insert(runner: SqliteRunner, value: int) -> int:
    assert runner.db is not None
    runner.db.execute("BEGIN IMMEDIATE")
    runner.db.execute("INSERT INTO t VALUES (?)", (value,))
    runner.db.execute("COMMIT")
    return threading.get_ident()


async def test_idle_calls_run_inline_and_queued_ones_in_order_on_the_thread(
    runner: SqliteRunner,
) -> None:
    loop_thread = threading.get_ident()
    assert await runner.run(lambda: insert(runner, 1), inline=True) == loop_thread
    release = threading.Event()
    held = asyncio.wrap_future(runner.submit(release.wait))
    assert not runner.idle
    later = asyncio.ensure_future(runner.run(lambda: insert(runner, 2), inline=True))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not later.done()  # behind the held job, not beside it
    release.set()
    await held
    assert await later != loop_thread
    assert runner.idle
    assert runner.db is not None
    assert [v for (v,) in runner.db.execute("SELECT v FROM t")] == [1, 2]


async def test_a_lock_held_elsewhere_sends_the_call_to_the_thread_to_wait(
    runner: SqliteRunner, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        call = asyncio.ensure_future(runner.run(lambda: insert(runner, 3), inline=True))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not call.done()
        assert not runner.idle
        other.execute("COMMIT")
    finally:
        other.close()
    assert await call != threading.get_ident()


async def test_other_errors_are_raised_not_retried(runner: SqliteRunner) -> None:
    def broken() -> None:
        assert runner.db is not None
        runner.db.execute("INSERT INTO missing VALUES (1)")

    with pytest.raises(sqlite3.OperationalError) as caught:
        await runner.run(broken, inline=True)
    assert not is_busy(caught.value)
    assert runner.idle


async def test_a_checkpoint_runs_on_the_thread_after_every_few_inline_writes(
    runner: SqliteRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints: list[int] = []
    monkeypatch.setattr(runner, "_checkpoint", lambda: checkpoints.append(threading.get_ident()))
    for value in range(7):
        await runner.run(lambda value=value: insert(runner, value), inline=True, writes=True)  # type: ignore[misc]
        await asyncio.wrap_future(runner.submit(lambda: None))  # after any checkpoint queued
    assert len(checkpoints) == 2
    assert threading.get_ident() not in checkpoints
