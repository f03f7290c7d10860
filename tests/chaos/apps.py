"""Client apps of a chaos run: they send requests, collect answers and re-send like real apps.

Each app has its own relay pool to every relay and one subscription for its
answers. A request not fully answered is re-published every
``resend_after`` seconds (what real clients do when they see no answer), and
every answer is recorded per item, so the end checks can tell unanswered
items and items answered two different ways apart.

A *patient* app (``resend_after`` None) sends each request once, and only to
``publish_to`` (relays that keep no ephemeral events, like most production
relays), so no relay replays it to a restarted service: every request the
service claimed must reach it anyway, from the service's own outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

from nwcd.errors import DecryptionError
from nwcd.nip47.encryption import Scheme, open_content, seal_content
from nwcd.nip47.methods import encode_request
from nwcd.nip47.results import decode_response
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool, Subscription
from tests.chaos.checks import Item, SentRequest

__all__ = ["ChaosApp"]


class ChaosApp:
    """One app with one connection URI."""

    def __init__(
        self,
        name: str,
        uri: ConnectionUri,
        *,
        budget_msat: int | None = None,
        resend_after: float | None = 5.0,
        publish_to: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.uri = uri
        self.budget_msat = budget_msat
        self.resend_after = resend_after
        self.publish_to = tuple(publish_to) if publish_to is not None else None
        self.revoked_at: float | None = None
        self.requests: dict[str, SentRequest] = {}
        self._events: dict[str, tuple[Event, float]] = {}  # id -> (request, last sent)
        self._pool = RelayPool(uri.relays)
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._publishing: set[asyncio.Task[Any]] = set()

    @property
    def wallet_pubkey(self) -> str:
        return self.uri.wallet_pubkey.hex

    async def start(self) -> None:
        self._pool.start()
        self._subscription = await self._pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(self.wallet_pubkey,),
                    tags={"p": (self.uri.client_pubkey.hex,)},
                )
            ],
            queue_size=8192,
        )
        self._tasks = [asyncio.create_task(self._read(), name=f"{self.name} reader")]
        if self.resend_after is not None:
            self._tasks.append(asyncio.create_task(self._resend(), name=f"{self.name} resender"))

    @property
    def patient(self) -> bool:
        return self.resend_after is None

    async def close(self) -> None:
        for task in [*self._tasks, *self._publishing]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pool.close()

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self, method: str, params: dict[str, Any], items: Sequence[tuple[str | None, str | None]]
    ) -> SentRequest:
        """Publish a request; ``items`` are its (d tag, payment hash) pairs."""
        secret = self.uri.secret
        event = sign_event(
            secret,
            kind=Kind.NWC_REQUEST,
            content=seal_content(
                secret, self.uri.wallet_pubkey, Scheme.NIP44_V2, encode_request(method, params)
            ),
            tags=[["p", self.wallet_pubkey], ["encryption", "nip44_v2"]],
            created_at=int(time.time()),
        )
        sent = SentRequest(
            event_id=event.id,
            app=self.name,
            wallet_pubkey=self.wallet_pubkey,
            method=method,
            items={d: Item(d, payment_hash) for d, payment_hash in items},
            sent_after_revoke=self.revoked_at is not None,
        )
        self.requests[event.id] = sent
        self._events[event.id] = (event, time.monotonic())
        await self._publish(event)
        return sent

    async def resend(self, request_id: str) -> None:
        """Publish a request again (the same event), as an app that lost its answer."""
        event, _ = self._events[request_id]
        self._events[request_id] = (event, time.monotonic())
        self.requests[request_id].sends += 1
        await self._publish(event)

    async def _publish(self, event: Event) -> None:
        # Never wait for OKs (nostr-rs-relay sends none for ephemeral kinds), but let the
        # pool wait for them in the background, so it stops re-sending what relays took.
        # A relay that is down gets the event from the pool on reconnect.
        task = asyncio.create_task(self._pool.publish(event, timeout=5, relays=self.publish_to))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def unanswered(self) -> list[SentRequest]:
        return [r for r in self.requests.values() if not r.answered]

    async def _resend(self) -> None:
        assert self.resend_after is not None
        while True:
            await asyncio.sleep(self.resend_after / 4)
            now = time.monotonic()
            for request in self.unanswered():
                _, last = self._events[request.event_id]
                if now - last >= self.resend_after:
                    await self.resend(request.event_id)

    # -- answers ---------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._subscription is not None
        while True:
            event = await self._subscription.get()
            self.record(event)

    def record(self, event: Event) -> None:
        request = self.requests.get(event.tag_value("e") or "")
        if request is None:
            return
        try:
            plaintext = open_content(
                self.uri.secret, self.uri.wallet_pubkey, Scheme.NIP44_V2, event.content
            )
            response = decode_response(plaintext)
        except (DecryptionError, ValueError):
            return
        answer = json.dumps(
            {
                "result": response.result,
                "error": [response.error.code, response.error.message] if response.error else None,
            },
            sort_keys=True,
        )
        d = event.tag_value("d")
        # A multi_pay answer without d answers the whole request (an untrustworthy list).
        targets = [request.items[d]] if d in request.items else list(request.items.values())
        for item in targets:
            item.answers.add(answer)
            if response.error is not None:
                item.error_code = response.error.code
            elif isinstance(response.result, dict) and "preimage" in response.result:
                item.preimage = str(response.result["preimage"])
