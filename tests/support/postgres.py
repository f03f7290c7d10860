"""A throwaway PostgreSQL 15 server for tests: ``initdb`` in a temporary directory, on
loopback, on a free port, stopped at the end.

``initdb`` refuses to run as root, so when the tests run as root the server runs as the
``postgres`` user (Debian's package creates it). Each test gets its own schema in one
database (``url(schema)``: asyncpg passes ``search_path`` as a server setting), which is
much faster than a database per test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.relays import PeerMissing, free_port

__all__ = ["PostgresServer", "postgres_bin"]

DATABASE = "nwcd_test"


def postgres_bin() -> Path:
    """Where PostgreSQL 15's server programs are (Debian's layout, or ``$NWCD_PG_BIN``).

    Raises:
        PeerMissing: not installed; the message says how to install it.
    """
    folder = Path(os.environ.get("NWCD_PG_BIN") or "/usr/lib/postgresql/15/bin")
    if not (folder / "initdb").exists():
        raise PeerMissing(
            f"PostgreSQL 15 is not installed ({folder}/initdb): run scripts/setup-peers.sh"
            " (it installs Debian's postgresql-15)"
        )
    return folder


class PostgresServer:
    """``with PostgresServer() as server: server.url(schema)``."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="nwcd-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run(
            [*prefix, *command], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets}"
            " -c fsync=off -c max_connections=300"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"),
            "-w", "-o", options, "start",
        )  # fmt: skip
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q",
             "-c", f"CREATE DATABASE {DATABASE}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, schema: str | None = None) -> str:
        """A URL of the test database; with ``schema``, every name resolves in it."""
        base = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        return f"{base}?search_path={schema}" if schema else base

    def new_schema(self) -> str:
        """A fresh, empty schema; its URL is ``url(schema)``."""
        name = "t" + uuid.uuid4().hex[:16]
        subprocess.run(
            ["psql", self.url(), "-q", "-c", f"CREATE SCHEMA {name}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return name

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
