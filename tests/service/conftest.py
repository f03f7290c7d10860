"""The service tests run against two relays: a real third-party relay process
(PyPI nostr-relay, which also stores and replays ephemeral events: a free replay
attack) and nwcd's own relay."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["nostr-relay", "nwcd-relay"])
def relay_url(request: pytest.FixtureRequest) -> str:
    name = "nostr_relay" if request.param == "nostr-relay" else "nwcd_relay"
    relay = request.getfixturevalue(name)
    return str(relay.url)
