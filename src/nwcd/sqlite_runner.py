"""Running SQLite work from asyncio: on the event loop when it cannot wait, on the
connection's own thread when it must.

A store or simulator call is a few tens of microseconds of SQLite work, while handing
it to a worker thread and back costs more CPU than the work itself (a queue put, a
thread wake-up, a self-pipe write, a loop wake-up, futures on both sides). So a call
given ``inline=True`` runs on the loop's thread, synchronously, when:

* nothing is queued on or running in the connection's thread: the connection is never
  used by two threads at once, and calls keep their order (a call made while earlier
  ones wait for the thread goes to the thread too); and
* it does not have to wait for a lock. Inline, the connection's busy timeout is 0: a
  write lock held by another process makes SQLite answer ``SQLITE_BUSY`` at once, and
  the call is run again on the thread, where the busy timeout applies, instead of
  blocking the loop. So an inline call must be one whose ``SQLITE_BUSY`` leaves nothing
  done: a read, or one transaction that begins with ``BEGIN IMMEDIATE`` (rolled back
  on any error), or idempotent writes.

Checkpoints write and sync the database file, which must not block the loop either:
the connection's automatic checkpoints are off, and one runs on the thread (passive:
it never waits for readers) after every ``checkpoint_every`` inline writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["NOT_NOW", "NotNow", "SqliteRunner", "is_busy"]

T = TypeVar("T")


class NotNow:
    """What :meth:`SqliteRunner.try_inline` returns when the call must go to the thread."""


NOT_NOW = NotNow()


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLite answered ``SQLITE_BUSY`` (or one of its extended codes): a lock was held."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY


class SqliteRunner:
    """Runs functions on one SQLite connection, inline or on its single thread.

    Set :attr:`db` with :meth:`attach` once the connection is open (until then every
    call goes to the thread); close it with :meth:`close`.
    """

    def __init__(
        self, executor: ThreadPoolExecutor, *, busy_timeout_ms: int, checkpoint_every: int = 1000
    ) -> None:
        self.db: sqlite3.Connection | None = None
        self._executor = executor
        self._busy_timeout_ms = busy_timeout_ms
        self._checkpoint_every = checkpoint_every
        self._lock = threading.Lock()
        self._queued = 0  # jobs submitted to the thread and not finished
        self._writes = 0

    def attach(self, db: sqlite3.Connection) -> None:
        """Use ``db`` (call while no job uses it): busy timeout 0, checkpoints ours."""
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("PRAGMA busy_timeout = 0")
        self.db = db

    @property
    def idle(self) -> bool:
        """Nothing waits for or runs on the thread: a call may run inline now."""
        return self._queued == 0 and self.db is not None

    async def run(self, fn: Callable[[], T], *, inline: bool = False, writes: bool = False) -> T:
        """``fn()``'s result: inline if allowed and possible, else on the thread.

        ``writes``: ``fn`` commits writes (counted towards the next checkpoint).
        """
        if inline:
            value = self.try_inline(fn, writes=writes)
            if not isinstance(value, NotNow):
                return value
        return await asyncio.wrap_future(self.submit(fn))

    def try_inline(self, fn: Callable[[], T], *, writes: bool = False) -> T | NotNow:
        """``fn()`` on the loop's thread now, or :data:`NOT_NOW` if the thread is busy or
        another process holds the lock (then ``fn`` left nothing done: see the module)."""
        if not self.idle:
            return NOT_NOW
        try:
            value = fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return NOT_NOW
        if writes:
            self.wrote()
        return value

    def wrote(self) -> None:
        """An inline write committed: every ``checkpoint_every`` of them, a checkpoint."""
        self._writes += 1
        if self._writes >= self._checkpoint_every:
            self._writes = 0
            self.submit(self._checkpoint)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the thread, with the busy timeout in force."""
        with self._lock:
            self._queued += 1
        try:
            return self._executor.submit(self._patient, fn)
        except BaseException:
            with self._lock:
                self._queued -= 1
            raise

    async def close(self) -> None:
        """Close the connection on the thread, after the jobs before."""

        def close() -> None:
            db, self.db = self.db, None
            if db is not None:
                db.close()

        await asyncio.wrap_future(self.submit(close))

    def _patient(self, fn: Callable[[], T]) -> T:
        try:
            db = self.db
            if db is not None:
                db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            try:
                return fn()
            finally:
                if db is not None and self.db is db:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("PRAGMA busy_timeout = 0")
        finally:
            with self._lock:
                self._queued -= 1

    def _checkpoint(self) -> None:
        db = self.db
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
