"""A wallet service running in the test's event loop, on the simulator, against real relays.

Nothing of ours is mocked: the service, store, simulator, relay pool and
client are the real ones; only the process boundary is skipped (the crash
tests run ``nwcd serve`` as a real subprocess instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.nip47.encryption import Scheme, open_content, seal_content
from nwcd.nip47.methods import encode_request
from nwcd.nip47.results import Response, decode_response
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.policy.grants import Connection
from nwcd.ports import LightningBackend
from nwcd.relay.pool import RelayPool
from nwcd.service.daemon import DaemonOptions, WalletDaemon
from nwcd.service.pipeline import ServiceSettings
from nwcd.store.sqlite import SqliteStore


@dataclass
class WalletHarness:
    """``async with WalletHarness(tmp_path, [relay_url]) as wallet: ...``.

    ``serving``: a backend the service runs on instead of the simulator (its owner
    closes it; ``backend`` is then the simulator nobody pays through).
    """

    data_dir: Path
    relays: Sequence[str]
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    options: DaemonOptions | None = None
    serving: LightningBackend | None = None
    store: SqliteStore = field(init=False)
    backend: SimulatedBackend = field(init=False)
    daemon: WalletDaemon = field(init=False)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    async def __aenter__(self) -> WalletHarness:
        self.store = await SqliteStore.open(self.data_dir / "nwcd.sqlite")
        self.backend = await SimulatedBackend.open(
            SimulatorConfig(self.data_dir / "simulator.sqlite")
        )
        return self

    async def start(self) -> None:
        options = self.options or DaemonOptions(
            relays=tuple(self.relays), connections_poll_interval=0.2
        )
        self.daemon = WalletDaemon(
            store=self.store,
            backend=self.serving or self.backend,
            settings=self.settings,
            options=options,
        )
        ready = asyncio.Event()
        self._task = asyncio.create_task(self.daemon.run(ready.set))
        await asyncio.wait_for(ready.wait(), 20)
        await self.daemon.pool.wait_connected(10, count=len(self.relays))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        await self.backend.close()
        await self.store.close()

    async def connect(self, name: str = "app", **grant: Any) -> ConnectionUri:
        """A new connection; returns the URI an app would get."""
        wallet_key, app_secret = SecretKey.generate(), SecretKey.generate()
        relays = tuple(grant.pop("relays", self.relays))
        await self.store.add_connection(
            Connection(
                name=name,
                wallet_key=wallet_key,
                app_pubkey=app_secret.public_key.hex,
                relays=relays,
                created_at=int(time.time()),
                **grant,
            )
        )
        return ConnectionUri(wallet_key.public_key, relays, app_secret)


class RawApp:
    """An app that writes requests by hand, to send exactly what a test wants."""

    def __init__(self, uri: ConnectionUri, pool: RelayPool) -> None:
        self.uri = uri
        self.pool = pool
        self.secret = uri.secret
        self.collected: set[str] = set()

    def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        scheme: Scheme = Scheme.NIP44_V2,
        content: str | None = None,
        tags: list[list[str]] | None = None,
        created_at: int | None = None,
        secret: SecretKey | None = None,
    ) -> Event:
        signer = secret or self.secret
        body = encode_request(method, params or {})
        if tags is None:
            tags = [["p", self.uri.wallet_pubkey.hex]]
            if scheme is Scheme.NIP44_V2:
                tags.append(["encryption", "nip44_v2"])
        return sign_event(
            signer,
            kind=Kind.NWC_REQUEST,
            content=content
            if content is not None
            else seal_content(signer, self.uri.wallet_pubkey, scheme, body),
            tags=tags,
            created_at=created_at if created_at is not None else int(time.time()),
        )

    async def send(
        self, event: Event, *, expect: int = 1, timeout: float = 10.0, settle: float = 0.0
    ) -> list[tuple[Event, Response]]:
        """Publish ``event`` and collect ``expect`` responses (and any more within ``settle``)."""
        subscription = await self.pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(self.uri.wallet_pubkey.hex,),
                    tags={"e": (event.id,)},
                )
            ]
        )
        try:
            # Do not wait for the OK: some relays never send one for ephemeral kinds.
            await self.pool.publish(event, timeout=0.05)
            return await self.collect(subscription, expect, timeout, settle, event.pubkey)
        finally:
            await subscription.close()

    async def collect(
        self,
        subscription: Any,
        expect: int,
        timeout: float,
        settle: float,
        author: str,
        *,
        new_only: bool = False,
    ) -> list[tuple[Event, Response]]:
        """``expect`` responses (and any more within ``settle``); with ``new_only``, an
        event collected before (a stored answer published again, say) does not count."""
        got: list[tuple[Event, Response]] = []

        async def next_one() -> None:
            while True:
                event = await subscription.get()
                if not (new_only and event.id in self.collected):
                    self.collected.add(event.id)
                    got.append(self.open(event))
                    return

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(got) < expect:
                    await next_one()
        if settle:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settle):
                    while True:
                        await next_one()
        return got

    def open(self, event: Event, scheme: Scheme | None = None) -> tuple[Event, Response]:
        chosen = scheme or (Scheme.NIP44_V2 if "?iv=" not in event.content else Scheme.NIP04)
        return event, decode_response(
            open_content(self.secret, self.uri.wallet_pubkey, chosen, event.content)
        )
