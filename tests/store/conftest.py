"""Store adapters under test: every contract suite runs once per entry of ``ADAPTERS``.

An adapter is an async opener taking a folder: opening twice with the same folder
must give two store objects on the same database (that is how the multi-store
tests share one), a new folder a fresh, empty database. An adapter that needs a
server it cannot reach should ``pytest.skip`` from its opener.

Adding an adapter is one line in ``ADAPTERS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest

from nwcd.ports import Store
from nwcd.store.sqlite import SqliteStore

Opener = Callable[[Path], Awaitable[Store]]
"""Open (creating and migrating) the adapter's database belonging to a folder."""

SharedStores = Callable[[Path, int], AbstractAsyncContextManager[list[Store]]]
"""``async with shared(folder, n) as stores``: ``n`` stores open on one database."""


async def open_sqlite(folder: Path) -> Store:
    return await SqliteStore.open(folder / "store.sqlite")


ADAPTERS: dict[str, Opener] = {
    "sqlite": open_sqlite,
}


@pytest.fixture(scope="session", params=list(ADAPTERS), ids=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Opener:
    """The opener of the adapter under test (session-scoped: usable from hypothesis tests)."""
    return ADAPTERS[request.param]


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
