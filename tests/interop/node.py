"""Node.js peers for the interop tests: the scripts in ``interop/`` run as subprocesses.

``scripts/setup-peers.sh`` installs ``interop/package-lock.json`` with ``npm ci`` into
``$NWCD_CACHE/node-interop/<first 16 hex of the lock file's sha256>``. Node resolves an
ES module's bare imports from the module's own location, not from NODE_PATH nor the cwd,
so :func:`node_scripts` copies the scripts into a temporary directory next to a
``node_modules`` symlink to that install.

Each script talks JSON lines: requests on stdin, results on stdout; its stderr (the
SDK's console output) is kept for failure messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from tests.support.relays import PeerMissing, cache_dir

__all__ = ["INTEROP_SRC", "NodeProcess", "NodeScriptError", "node_install_dir", "node_scripts"]

INTEROP_SRC: Final = Path(__file__).resolve().parents[2] / "interop"
START_TIMEOUT: Final = 20.0
_LINE_LIMIT: Final = 1 << 22


class NodeScriptError(RuntimeError):
    """A Node script exited, timed out or broke its JSON-lines protocol."""


def node_install_dir() -> Path:
    """Where setup-peers.sh put the ``npm ci`` of the committed lock file.

    Raises:
        PeerMissing: node is not on PATH, or the install is missing (message says why).
    """
    if shutil.which("node") is None:
        raise PeerMissing(
            "node (Node.js >= 20) is not on PATH: the interop tests run the Alby JS SDK; "
            "install Node.js 20+ and npm, then run scripts/setup-peers.sh"
        )
    key = hashlib.sha256((INTEROP_SRC / "package-lock.json").read_bytes()).hexdigest()[:16]
    path = cache_dir() / "node-interop" / key
    if not (path / ".installed").is_file():
        raise PeerMissing(
            f"the Node peers of interop/package-lock.json are not installed at {path}: "
            "run scripts/setup-peers.sh (npm ci into $NWCD_CACHE)"
        )
    return path


def node_scripts(workdir: Path) -> Path:
    """A directory with the ``interop/*.mjs`` scripts and ``node_modules`` of the install."""
    install = node_install_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    for script in INTEROP_SRC.glob("*.mjs"):
        shutil.copy2(script, workdir / script.name)
    link = workdir / "node_modules"
    if not link.exists():
        link.symlink_to(install / "node_modules", target_is_directory=True)
    return workdir


class NodeProcess:
    """``node SCRIPT ARGS...`` speaking JSON lines; use as an async context manager."""

    def __init__(self, scripts: Path, script: str, *args: str) -> None:
        self.argv = ["node", str(scripts / script), *args]
        self.cwd = scripts
        self.name = script
        self.stderr_lines: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._seen: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ready: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> NodeProcess:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]
        try:
            self.ready = await self.wait_for(lambda m: m.get("ready") is True, START_TIMEOUT)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close stdin (the scripts exit on EOF); kill after 5 s."""
        process = self._process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def pid(self) -> int:
        """The Node process's id (for CPU figures in the benchmarks)."""
        assert self._process is not None, "not started"
        return self._process.pid

    # -- reading -------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.stderr_lines.append(f"(stdout, not JSON) {line}")
                continue
            reply = self._replies.pop(message.get("id"), None) if "id" in message else None
            if reply is not None:
                if not reply.done():
                    reply.set_result(message)
            else:
                self._seen.append(message)
                await self._messages.put(message)
        await self._messages.put(None)  # EOF
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(NodeScriptError(self._died()))

    async def _read_stderr(self) -> None:
        assert self._process is not None
        assert self._process.stderr is not None
        async for raw in self._process.stderr:
            self.stderr_lines.append(raw.decode(errors="replace").rstrip())

    def _died(self) -> str:
        code = self._process.returncode if self._process is not None else None
        return f"{self.name} ended (exit {code}); stderr:\n{self.stderr()}"

    def stderr(self, lines: int = 40) -> str:
        return "\n".join(self.stderr_lines[-lines:])

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """The next unsolicited message (not a reply) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(self._messages.get(), max(remaining, 0))
            except TimeoutError:
                raise NodeScriptError(
                    f"{self.name}: nothing matching within {timeout} s; stderr:\n{self.stderr()}"
                ) from None
            if message is None:
                await self._messages.put(None)
                raise NodeScriptError(self._died())
            if predicate(message):
                return message

    def seen(self, key: str) -> list[dict[str, Any]]:
        """Every unsolicited message so far that has ``key``."""
        return [m for m in self._seen if key in m]

    # -- writing -------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        await self._process.stdin.drain()

    async def call(self, op: str, params: Any = None, *, timeout: float = 20.0) -> dict[str, Any]:
        """Run one operation: ``{"ok": True, "result": ...}`` or ``{"ok": False, "error"}``."""
        request_id = next(self._ids)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        message: dict[str, Any] = {"id": request_id, "op": op}
        if params is not None:
            message["params"] = params
        await self.send(message)
        try:
            return await asyncio.wait_for(reply, timeout)
        except TimeoutError:
            self._replies.pop(request_id, None)
            raise NodeScriptError(
                f"{self.name}: {op} gave no reply within {timeout} s; stderr:\n{self.stderr()}"
            ) from None


# -- the Alby SDK client script (alby_client.mjs) ---------------------------------------------


def ok(reply: dict[str, Any]) -> Any:
    assert reply["ok"], f"the SDK call failed: {reply.get('error')}"
    return reply["result"]


def failed(reply: dict[str, Any]) -> dict[str, Any]:
    assert not reply["ok"], f"expected an error, got {reply.get('result')}"
    error: dict[str, Any] = reply["error"]
    return error


async def notified(alby: NodeProcess, kind: str, payment_hash: str) -> dict[str, Any]:
    """The notification of type ``kind`` about ``payment_hash`` the SDK handed its callback."""
    message = await alby.wait_for(
        lambda m: (
            m.get("notification", {}).get("notification_type") == kind
            and m["notification"].get("notification", {}).get("payment_hash") == payment_hash
        ),
        10,
    )
    body: dict[str, Any] = message["notification"]["notification"]
    return body
