"""Knowing that another process committed to a SQLite file, without polling it.

SQLite cannot tell one process that another committed. Every commit writes the file's
write-ahead log (``<file>-wal``), or the file itself when a checkpoint copies the log
back, so a change of either is the sign to look. On Linux the kernel says so (inotify
on the file's directory): an idle service wakes for nothing. Elsewhere, or when inotify
is unavailable (no instance left, a file system without it), the files' size and
modification time are compared every ``interval`` (4 times less often after a quiet
second). Either way a sign only says "look": readers still query, and also after a
bound of their choosing, so a missed sign costs latency, never a missed change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

__all__ = ["file_changes", "file_mark"]

log = logging.getLogger("nwcd.filewatch")

QUIET_AFTER: Final = 1.0
"""Seconds without a change after which the stat fallback checks 4 times less often."""
QUIET_SLOWDOWN: Final = 4


def file_mark(path: Path) -> tuple[int, ...]:
    """What changes when any process commits to the file: the WAL's and the database's
    size and modification time (a checkpoint may reset the WAL)."""
    mark: list[int] = []
    for name in (f"{path}-wal", str(path)):
        try:
            status = os.stat(name)
        except FileNotFoundError:
            mark += (-1, -1)
        else:
            mark += (status.st_mtime_ns, status.st_size)
    return tuple(mark)


@contextlib.asynccontextmanager
async def file_changes(path: Path, wake: asyncio.Event, *, interval: float) -> AsyncIterator[None]:
    """Set ``wake`` whenever the SQLite file at ``path`` may have changed, while inside.

    At most once per ``interval`` seconds: under load, many commits make one wake-up.
    """
    watcher = _inotify_watcher(path, wake, interval)
    if watcher is not None:
        try:
            yield
        finally:
            watcher.close()
        return
    poller = asyncio.create_task(_poll(path, wake, interval))
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller


class _InotifyWatcher:
    """Reads the kernel's events when they come; then rests ``interval`` seconds, so a
    burst of writes is read as one batch."""

    def __init__(self, inotify: Any, names: frozenset[str], wake: asyncio.Event, interval: float):
        self._inotify = inotify
        self._names = names
        self._wake = wake
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._rest: asyncio.TimerHandle | None = None
        self._loop.add_reader(inotify.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            events = self._inotify.read(timeout=0)
        except OSError:  # pragma: no cover - the kernel's queue is gone; wake and retry later
            events = None
        if events is None or any(event.name in self._names for event in events):
            self._wake.set()
        self._loop.remove_reader(self._inotify.fileno())
        self._rest = self._loop.call_later(self._interval, self._rearm)

    def _rearm(self) -> None:
        self._rest = None
        self._loop.add_reader(self._inotify.fileno(), self._readable)

    def close(self) -> None:
        if self._rest is not None:
            self._rest.cancel()
        else:
            self._loop.remove_reader(self._inotify.fileno())
        self._inotify.close()


def _inotify_watcher(path: Path, wake: asyncio.Event, interval: float) -> _InotifyWatcher | None:
    try:
        from inotify_simple import INotify, flags
    except ImportError:  # not Linux
        return None
    try:
        inotify = INotify()
    except OSError as exc:  # e.g. max_user_instances reached
        log.debug("inotify unavailable (%s): checking %s by its stat", exc, path.name)
        return None
    try:
        # The directory, not the files: the WAL is created and removed as SQLite goes.
        mask = flags.MODIFY | flags.CREATE | flags.DELETE | flags.MOVED_TO
        inotify.add_watch(path.parent, mask)
    except OSError as exc:
        inotify.close()
        log.debug("inotify cannot watch %s (%s): checking by stat", path.parent, exc)
        return None
    return _InotifyWatcher(inotify, frozenset({path.name, f"{path.name}-wal"}), wake, interval)


async def _poll(path: Path, wake: asyncio.Event, interval: float) -> None:
    loop = asyncio.get_running_loop()
    mark, changed_at = file_mark(path), loop.time()
    while True:
        quiet = loop.time() - changed_at >= QUIET_AFTER
        await asyncio.sleep(interval * (QUIET_SLOWDOWN if quiet else 1))
        seen = file_mark(path)
        if seen != mark:
            mark, changed_at = seen, loop.time()
            wake.set()
