"""nwcd.filewatch: another connection's commit to a SQLite file wakes the watcher, with the
kernel's events on Linux and with the stat fallback; nothing else does."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from nwcd import filewatch
from nwcd.filewatch import file_changes, file_mark

SEEN_WITHIN = 10.0  # generous: only a broken watcher waits this long


@pytest.fixture(params=["inotify", "stat"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "inotify" and not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux's")
    if request.param == "stat":
        monkeypatch.setattr(filewatch, "_inotify_watcher", lambda *args: None)
    return str(request.param)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE t (x)")
    db.close()
    return path


def commit(path: Path, value: int) -> None:
    """A commit by another connection (as another process would)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("INSERT INTO t VALUES (?)", (value,))
    finally:
        db.close()


async def test_a_commit_wakes_the_watcher(database: Path, mode: str) -> None:
    wake = asyncio.Event()
    async with file_changes(database, wake, interval=0.01):
        await asyncio.sleep(0.05)
        assert not wake.is_set()  # nothing changed: nothing to say
        for value in range(3):  # every commit is seen, also after a wake was taken
            await asyncio.to_thread(commit, database, value)
            await asyncio.wait_for(wake.wait(), SEEN_WITHIN)
            wake.clear()


async def test_other_files_in_the_directory_do_not_wake_it(database: Path, mode: str) -> None:
    wake = asyncio.Event()
    async with file_changes(database, wake, interval=0.01):
        (database.parent / "other.sqlite-wal").write_bytes(b"x" * 100)
        (database.parent / "notes.txt").write_text("hello")
        await asyncio.sleep(0.2)
        assert not wake.is_set()
        await asyncio.to_thread(commit, database, 1)
        await asyncio.wait_for(wake.wait(), SEEN_WITHIN)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
async def test_linux_uses_the_kernels_events_not_a_poll(database: Path) -> None:
    """An idle watcher has no timer: it costs nothing until the file changes."""
    wake = asyncio.Event()
    async with file_changes(database, wake, interval=0.01):
        loop = asyncio.get_running_loop()
        timers = len(getattr(loop, "_scheduled", []))
        await asyncio.sleep(0.1)
        assert len(getattr(loop, "_scheduled", [])) <= timers  # no poll was scheduled


def test_file_mark_changes_with_a_commit(database: Path) -> None:
    before = file_mark(database)
    commit(database, 1)
    assert file_mark(database) != before
    assert file_mark(database.parent / "missing.sqlite") == (-1, -1, -1, -1)
