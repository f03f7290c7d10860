"""Third-party relays for interop tests: PyPI ``nostr-relay`` 1.14 and nostr-sdk's LocalRelay.

``nostr-relay`` lives in its own virtualenv, installed by ``scripts/setup-peers.sh``
under ``${NWCD_CACHE:-~/.cache/nwcd}/nostr-relay-1.14``, since its pins clash
with ours. It is lenient: it stores ephemeral kinds for a while and replays
them for a while. It runs as a gunicorn master plus one worker in
its own process group, so :meth:`NostrRelayProcess.kill` takes both down at once
and the port is free again for :meth:`NostrRelayProcess.restart`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

NOSTR_RELAY_VERSION: Final = "1.14"
STARTUP_TIMEOUT: Final = 30.0
_POLL_INTERVAL: Final = 0.05


class PeerMissing(RuntimeError):
    """A third-party peer is not installed where the tests expect it."""


def cache_dir() -> Path:
    """Where scripts/setup-peers.sh caches peers (``$NWCD_CACHE`` or ~/.cache/nwcd)."""
    return Path(os.environ.get("NWCD_CACHE") or Path.home() / ".cache" / "nwcd")


def nostr_relay_executable() -> Path:
    """The ``nostr-relay`` script of the cached venv.

    Raises:
        PeerMissing: the venv is not there; the message says how to install it.
    """
    path = cache_dir() / f"nostr-relay-{NOSTR_RELAY_VERSION}" / "bin" / "nostr-relay"
    if not os.access(path, os.X_OK):
        raise PeerMissing(
            f"nostr-relay {NOSTR_RELAY_VERSION} is not installed at {path}: "
            "run scripts/setup-peers.sh (it installs the test peers into $NWCD_CACHE)"
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _config(port: int, database: Path) -> str:
    # JSON is YAML: no PyYAML needed on our side.
    return f"""{{
  "DEBUG": false,
  "storage": {{
    "sqlalchemy.url": "sqlite+aiosqlite:///{database}",
    "validators": [
      "nostr_relay.validators.is_not_too_large",
      "nostr_relay.validators.is_signed",
      "nostr_relay.validators.is_recent"
    ]
  }},
  "gunicorn": {{"bind": "127.0.0.1:{port}", "workers": 1, "loglevel": "warning"}},
  "authentication": {{"enabled": false}},
  "verification": {{"nip05_verification": "disabled"}},
  "max_event_size": 131072,
  "subscription_limit": 256
}}
"""


class NostrRelayProcess:
    """``nostr-relay -c config.yaml serve`` on 127.0.0.1, its data in ``workdir``.

    Args:
        workdir: a private directory for config.yaml, the SQLite file and relay.log.
        port: the port to bind; a free one by default. :meth:`restart` keeps it.
    """

    def __init__(
        self, workdir: Path, port: int | None = None, *, executable: Path | None = None
    ) -> None:
        self.executable = executable or nostr_relay_executable()
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.log_path = workdir / "relay.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The gunicorn master's pid while running."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Launch the relay and return once it completes a websocket handshake.

        Raises:
            RuntimeError: it exited or did not answer within ``STARTUP_TIMEOUT``.
        """
        if self._process is not None:
            raise RuntimeError("the relay is already running")
        self._process = self._spawn()
        try:
            await self._wait_ready()
        except BaseException:
            await self.kill()
            raise

    def _command(self) -> tuple[list[str], dict[str, str]]:
        """Write the config; return the command line and its environment."""
        config = self.workdir / "config.yaml"
        config.write_text(_config(self.port, self.workdir / "relay.sqlite3"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return [str(self.executable), "-c", str(config), "serve"], env

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Plain Popen, not asyncio's: the process then outlives no particular event loop."""
        command, env = self._command()
        self._log = self.log_path.open("ab")
        return subprocess.Popen(
            command,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: every child dies with it
        )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"nostr-relay exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                async with connect(self.url, open_timeout=1, compression=None):
                    return
            except (OSError, TimeoutError, WebSocketException) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nostr-relay did not accept websockets on {self.url} within "
                        f"{STARTUP_TIMEOUT} s ({exc!r}):\n{self.log_tail()}"
                    ) from None
            await asyncio.sleep(_POLL_INTERVAL)

    async def kill(self) -> None:
        """SIGKILL the relay (master and worker) and wait until its port is free."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _port_is_free(self.port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {self.port} still busy after killing nostr-relay")
                await asyncio.sleep(_POLL_INTERVAL)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def restart(self) -> None:
        """Kill and start again on the same port, keeping the stored events."""
        await self.kill()
        await self.start()

    async def stop(self) -> None:
        """Same as :meth:`kill`: SIGTERM can take ~30 s with open websockets."""
        await self.kill()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def __aenter__(self) -> NostrRelayProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.kill()


NOSTR_RS_RELAY_VERSION: Final = "0.8.12"


def nostr_rs_relay_executable() -> Path:
    """The cached ``nostr-rs-relay`` binary (built by scripts/setup-peers.sh with cargo).

    Raises:
        PeerMissing: not built; the message says how to build it.
    """
    path = cache_dir() / f"nostr-rs-relay-{NOSTR_RS_RELAY_VERSION}" / "bin" / "nostr-rs-relay"
    if not os.access(path, os.X_OK):
        raise PeerMissing(
            f"nostr-rs-relay {NOSTR_RS_RELAY_VERSION} is not built at {path}: "
            "run scripts/setup-peers.sh (it builds it with cargo into $NWCD_CACHE)"
        )
    return path


class NostrRsRelayProcess(NostrRelayProcess):
    """nostr-rs-relay, a production relay, on 127.0.0.1 with SQLite in ``workdir``.

    It sends no ``OK`` at all for ephemeral kinds (20000-29999), yet forwards them.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port, executable=nostr_rs_relay_executable())

    def _command(self) -> tuple[list[str], dict[str, str]]:
        config = self.workdir / "config.toml"
        config.write_text(
            f'[info]\nrelay_url = "{self.url}/"\nname = "nwcd tests"\n'
            f'[database]\ndata_directory = "{self.workdir}"\n'
            f'[network]\naddress = "127.0.0.1"\nport = {self.port}\n'
            "[limits]\nmax_event_bytes = 262144\nmax_ws_message_bytes = 262144\n"
            "max_ws_frame_bytes = 262144\n"
        )
        command = [str(self.executable), "--config", str(config), "--db", str(self.workdir)]
        return command, {**os.environ, "RUST_LOG": "warn"}


class SdkLocalRelay:
    """nostr-sdk's in-process ``LocalRelay`` (strict, fast) on a random port.

    The default rate limit rejects bursts, so it is raised. nostr-sdk does not
    set TCP_NODELAY: a client that waits for ``OK`` and then an ``EVENT`` on one
    socket pays ~40 ms unless it sets TCP_NODELAY itself (websockets does).
    """

    def __init__(self, *, auth_required: bool = False) -> None:
        from nostr_sdk import (  # type: ignore[import-untyped]
            LocalRelayBuilder,
            LocalRelayBuilderNip42,
            LocalRelayBuilderNip42Mode,
            RateLimit,
        )

        builder = (
            LocalRelayBuilder()
            .addr("127.0.0.1")
            .rate_limit(RateLimit(max_reqs=1000, notes_per_minute=100_000_000))
        )
        if auth_required:
            builder = builder.nip42(LocalRelayBuilderNip42(mode=LocalRelayBuilderNip42Mode.BOTH))
        self._relay = builder.build()
        self.url = ""

    async def start(self) -> None:
        await self._relay.run()
        self.url = str(await self._relay.url())

    def stop(self) -> None:
        self._relay.shutdown()

    async def __aenter__(self) -> SdkLocalRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
