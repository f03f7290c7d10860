"""Relays the service tests run against."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nwcd.relay.server import LocalRelay


@pytest.fixture
async def relay_url() -> AsyncIterator[str]:
    async with LocalRelay() as relay:
        yield relay.url
