"""An instance that stalls past its lease, wakes up and goes on with a request another
instance took over in between: it answers nothing (the heir answers), so no item of a
request is ever answered twice, differently."""

from __future__ import annotations

import json
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

import pytest

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.clock import SystemClock
from nwcd.nip47.encryption import Scheme
from nwcd.nip47.results import PayResult
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import Connection
from nwcd.ports import RequestRecord
from nwcd.service.payments import PlannedPayment
from nwcd.service.pipeline import Pipeline, RequestContext, ServiceSettings
from nwcd.store.sqlite import SqliteStore
from tests.service.harness import RawApp


class Published:
    """An event sink that records what the pipeline publishes."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event, relays: Iterable[str]) -> None:
        self.events.append(event)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        coro.close()  # bookkeeping (last seen) only

    def payment_sent(self, ctx: RequestContext, item: PlannedPayment, result: PayResult) -> None:
        pass


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("get_balance", {}),  # answered as a whole
        ("multi_pay_invoice", {"invoices": [{"id": "bad", "invoice": "lnbc1nonsense"}]}),  # items
    ],
)
async def test_a_stalled_instance_leaves_what_was_taken_over_to_the_heir(
    tmp_path: Path, method: str, params: dict[str, Any]
) -> None:
    wallet_key, app_secret = SecretKey.generate(), SecretKey.generate()
    connection = Connection(
        name="app",
        wallet_key=wallet_key,
        app_pubkey=app_secret.public_key.hex,
        relays=("ws://127.0.0.1:1",),
        created_at=int(time.time()),
    )
    uri = ConnectionUri(wallet_key.public_key, connection.relays, app_secret)
    request = RawApp(uri, pool=None).request(method, params)  # type: ignore[arg-type]
    sink = Published()
    store = await SqliteStore.open(tmp_path / "nwcd.sqlite")
    async with await SimulatedBackend.open(
        SimulatorConfig(tmp_path / "simulator.sqlite")
    ) as backend:
        await store.add_connection(connection)
        stalled = Pipeline(
            store=store,
            backend=backend,
            sink=sink,
            clock=SystemClock(),
            settings=ServiceSettings(),
            instance_id="stalled",
        )
        record = RequestRecord(
            request.id,
            connection.wallet_pubkey,
            request.pubkey,
            Scheme.NIP44_V2.value,
            json.dumps(request.to_json()),
            request.created_at,
            request.created_at,
        )
        assert (await store.claim(record, "stalled")).won
        # It stalls here; its lease runs out and the heir takes the request over.
        assert (await store.take_over("heir", request.created_at)).unanswered == [record]
        await stalled.process(
            RequestContext(request, connection, uri.client_pubkey, Scheme.NIP44_V2)
        )
        assert sink.events == []
        assert await store.responses_for(request.id) == []
    await store.close()
