"""Pytest fixtures for relays and PostgreSQL; import them into a conftest.py to use them.

Every relay fixture is function-scoped: each test gets a fresh relay with no stored
events (nostr-relay replays stored ephemeral events, which would leak between
tests). PostgreSQL is one server per session; tests isolate themselves in schemas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nwcd.relay.server import LocalRelay
from tests.support.postgres import PostgresServer
from tests.support.relays import (
    NostrRelayProcess,
    NostrRsRelayProcess,
    PeerMissing,
    SdkLocalRelay,
)

__all__ = ["nostr_relay", "nostr_rs_relay", "nwcd_relay", "postgres_server", "sdk_relay"]


@pytest.fixture
async def nwcd_relay() -> AsyncIterator[LocalRelay]:
    """nwcd's own in-memory relay; change ``.faults`` to inject failures."""
    async with LocalRelay() as relay:
        yield relay


@pytest.fixture
async def nostr_relay(tmp_path: Path) -> AsyncIterator[NostrRelayProcess]:
    """PyPI nostr-relay 1.14 as a subprocess (``.url``, ``.kill()``, ``.restart()``).

    Fails (does not skip) when scripts/setup-peers.sh has not installed it.
    """
    try:
        process = NostrRelayProcess(tmp_path)
    except PeerMissing as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    async with process:
        yield process


@pytest.fixture
async def nostr_rs_relay(tmp_path: Path) -> AsyncIterator[NostrRsRelayProcess]:
    """nostr-rs-relay 0.8.12 (crates.io), a production relay, as a subprocess.

    Fails (does not skip) when scripts/setup-peers.sh has not built it.
    """
    try:
        process = NostrRsRelayProcess(tmp_path)
    except PeerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    async with process:
        yield process


@pytest.fixture
async def sdk_relay() -> AsyncIterator[SdkLocalRelay]:
    """nostr-sdk 0.45.1's in-process LocalRelay (``.url``), with bursts allowed."""
    async with SdkLocalRelay() as relay:
        yield relay


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 server for the whole session (``.url(schema)``, ``.new_schema()``).

    Fails (does not skip) when PostgreSQL is not installed.
    """
    try:
        server = PostgresServer()
    except PeerMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server
