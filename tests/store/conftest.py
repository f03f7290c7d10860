"""Store adapters under test: every contract suite runs once per entry of ``ADAPTERS``.

An adapter is an async opener taking a folder: opening twice with the same folder
must give two store objects on the same database (that is how the multi-store
tests share one), a new folder a fresh, empty database. An adapter that needs a
server it cannot reach should ``pytest.skip`` from its opener.

Adding an adapter is one line in ``ADAPTERS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from nwcd.ports import Store
from nwcd.store.postgres import PostgresStore
from nwcd.store.sqlite import SqliteStore
from tests.support.postgres import PostgresServer

Opener = Callable[[Path], Awaitable[Store]]
"""Open (creating and migrating) the adapter's database belonging to a folder."""

SharedStores = Callable[[Path, int], AbstractAsyncContextManager[list[Store]]]
"""``async with shared(folder, n) as stores``: ``n`` stores open on one database."""


async def open_sqlite(folder: Path) -> Store:
    return await SqliteStore.open(folder / "store.sqlite")


def postgres_opener(server: PostgresServer) -> Opener:
    """One schema per folder in the session's PostgreSQL server."""

    async def open_postgres(folder: Path) -> Store:
        schema = "t" + hashlib.sha256(str(folder).encode()).hexdigest()[:20]
        admin = await asyncpg.connect(server.url())
        try:
            await admin.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        finally:
            await admin.close()
        return await PostgresStore.open(server.url(schema), min_size=1, max_size=4)

    return open_postgres


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], Opener]] = {
    "sqlite": lambda _: open_sqlite,
    "postgres": lambda request: postgres_opener(request.getfixturevalue("postgres_server")),
}


@pytest.fixture(scope="session", params=list(ADAPTERS), ids=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Opener:
    """The opener of the adapter under test (session-scoped: usable from hypothesis tests)."""
    return ADAPTERS[request.param](request)


@pytest.fixture
async def store(adapter: Opener, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, empty store of the adapter under test."""
    opened = await adapter(tmp_path)
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
def shared_stores(adapter: Opener) -> SharedStores:
    """Open several stores on one database of the adapter under test (two processes, say)."""

    @asynccontextmanager
    async def shared(folder: Path, count: int) -> AsyncIterator[list[Store]]:
        async with AsyncExitStack() as stack:
            stores: list[Store] = []
            for _ in range(count):
                opened = await adapter(folder)
                stack.push_async_callback(opened.close)
                stores.append(opened)
            yield stores

    return shared
