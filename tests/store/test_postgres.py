"""PostgreSQL-only behaviour: migrating once when instances start together, secrets in URLs."""

from __future__ import annotations

import asyncio

import asyncpg

from nwcd.store.postgres import PostgresStore, describe, redact
from tests.support.postgres import PostgresServer


async def test_instances_starting_together_migrate_once(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.new_schema())
    stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(6)))
    try:
        assert {await store.connections_version() for store in stores} == {0}
        db = await asyncpg.connect(url)
        try:
            versions = [row[0] for row in await db.fetch("SELECT version FROM schema_version")]
        finally:
            await db.close()
        assert sorted(versions) == sorted(set(versions))  # each migration applied once
        assert versions
    finally:
        for store in stores:
            await store.close()


def test_a_password_never_leaves_the_url() -> None:
    url = "postgresql://nwcd:s3cret@db.example.com:5432/nwcd?sslmode=require"
    assert redact(url) == "postgresql://nwcd:***@db.example.com:5432/nwcd?sslmode=require"
    assert redact("postgresql://nwcd@db/nwcd") == "postgresql://nwcd@db/nwcd"
    error = OSError("could not connect with s3cret")
    assert "s3cret" not in describe(error, url)
    assert describe(error, url).startswith("OSError:")
