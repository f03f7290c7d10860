"""``nwcd serve`` as a real child process: started, killed with SIGKILL, restarted.

Used by the crash tests and the chaos suite. The process's stderr (its log)
is copied to ``log_path``; :meth:`ServeProcess.start` returns once the
service logs that it is ready, and records how long that took (recovery
included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ServeProcess"]


class ServeProcess:
    """``nwcd serve --relay ... --data-dir DIR`` in a child process."""

    def __init__(
        self,
        data_dir: Path,
        relays: Sequence[str],
        *,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.relays = tuple(relays)
        self.log_path = log_path or data_dir / "serve.log"
        self.extra_args = tuple(extra_args)
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.start_seconds: list[float] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process is not None else None

    async def start(self, timeout: float = 60) -> float:
        """Start and wait for "nwcd ready"; returns the seconds that took."""
        relay_args = [arg for relay in self.relays for arg in ("--relay", relay)]
        started = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nwcd",
            "serve",
            *relay_args,
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NWCD_CONFIG": "", **(self.env or {})},
        )
        ready = asyncio.get_running_loop().create_future()
        self._drain = asyncio.create_task(self._copy_log(ready))
        try:
            async with asyncio.timeout(timeout):
                await ready
        except BaseException:
            await self.kill()
            raise
        elapsed = time.monotonic() - started
        self.start_seconds.append(elapsed)
        return elapsed

    async def _copy_log(self, ready: asyncio.Future[None]) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        with self.log_path.open("ab") as log:
            while line := await self.process.stderr.readline():
                log.write(line)
                log.flush()  # readable at once by tests that look for a line
                if b"nwcd ready" in line and not ready.done():
                    ready.set_result(None)
        if not ready.done():
            ready.set_exception(
                RuntimeError(f"nwcd serve exited before it was ready: see {self.log_path}")
            )

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._drain
            self._drain = None
        self.process = None

    async def stop(self, timeout: float = 20) -> None:
        """SIGTERM, and SIGKILL if it does not exit in time."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.process.wait()
        await self.kill()

    def rss_bytes(self) -> int | None:
        """Resident memory of the running process (Linux ``/proc``), or None."""
        pid = self.pid
        if pid is None:
            return None
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None
