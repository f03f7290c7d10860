"""The service tests run against three relays: two real third-party relay processes
(PyPI nostr-relay, which stores and replays ephemeral events: a free replay attack;
nostr-rs-relay, a production relay that never sends OK for ephemeral events) and
nwcd's own relay."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["nostr-relay", "nostr-rs-relay", "nwcd-relay"])
def relay_url(request: pytest.FixtureRequest) -> str:
    relay = request.getfixturevalue(str(request.param).replace("-", "_"))
    return str(relay.url)
