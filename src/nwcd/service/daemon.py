"""The running wallet service: lifespan, recovery, subscriptions, info and notifications.

Start-up order matters for exactly-once payment:

1. Recovery first: every payment left ``reserved``/``in_flight``/``unknown`` by
   a previous run is looked up in the backend before anything else happens;
   settled ones are answered, open ones keep being resolved. Requests claimed
   but never started are processed now.
   Responses stored but never delivered (the process died between storing
   and publishing) are published again.
2. Then the subscription opens (``#p`` = every wallet key, ``since`` the
   horizon before now), and the info event of each connection is published:
   the first ``info_batch`` before "ready", the rest (a service with 100,000
   connections) after it, ``info_batch`` at a time, so neither memory nor the
   relay sockets hold 100,000 events at once and answers do not queue behind them.
3. Each request runs in its own task, bounded by ``max_concurrent_requests``,
   so no request ever waits behind another request's payments.

A watcher polls the store's connection version, so connections created,
changed or revoked by ``nwcd connection ...`` in another process take effect
at once: the subscription and the info events follow. The instance's
heartbeat in the store says which version it listens for (its relays
confirmed the subscription), so ``nwcd connection create`` shows a new URI
only once the service will answer it.

The daemon owns the instance's :class:`~nwcd.service.metrics.Metrics`
(``daemon.metrics``), which the pipeline, the payment engine and the publisher
feed; :func:`nwcd.service.health.health` reports whether it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.errors import BackendError
from nwcd.nip47.encryption import Scheme, seal_content
from nwcd.nip47.info import (
    build_info_event,
    incoming_notification,
    notification_kinds,
    notification_types,
)
from nwcd.nip47.results import PayResult, Transaction
from nwcd.nostr import jsontext
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import PublicKey
from nwcd.nostr.kinds import Kind
from nwcd.policy.grants import Connection
from nwcd.ports import (
    NOT_FOUND,
    Failed,
    InstanceRecord,
    LightningBackend,
    Orphans,
    PaymentRecord,
    PaymentState,
    Pending,
    RequestRecord,
    Store,
)
from nwcd.relay.pool import PoolOptions, RelayPool, Subscription
from nwcd.service.metrics import Metrics, RecoveryAction
from nwcd.service.payments import PlannedPayment
from nwcd.service.pipeline import Pipeline, RequestContext, ServiceSettings
from nwcd.service.publisher import Publisher, PublishPolicy
from nwcd.store.sql import event_from_json
from nwcd.text import count

__all__ = ["DaemonOptions", "LeaseLost", "WalletDaemon"]

log = logging.getLogger("nwcd.service")

RECOVERY_LOOKUPS = 16
"""Open payments looked up in the backend at once during start-up recovery."""


InfoFingerprint = tuple[tuple[str, ...], bool, tuple[str, ...]]
"""What a connection's info event says: its methods, whether it is active, its relays."""


class LeaseLost(Exception):
    """This instance's lease expired and another instance took its work over."""


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Relay and lifecycle tuning of the running service."""

    relays: tuple[str, ...] = ()
    connections_poll_interval: float = 0.5
    heartbeat_interval: float = 2.0
    lease: int = 10
    confirm_timeout: float = 5.0
    prune_interval: float = 60.0
    takeover_interval: float = 1.0
    max_concurrent_requests: int = 1024
    info_batch: int = 500
    shutdown_grace: float = 10.0
    publish: PublishPolicy = field(default_factory=PublishPolicy)
    pool: PoolOptions = field(default_factory=PoolOptions)


class WalletDaemon:
    """``nwcd serve``: call :meth:`run` and cancel it to stop."""

    def __init__(
        self,
        *,
        store: Store,
        backend: LightningBackend,
        settings: ServiceSettings | None = None,
        options: DaemonOptions | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._backend = backend
        self._settings = settings or ServiceSettings()
        self._options = options or DaemonOptions()
        self._clock = clock
        self._pool = RelayPool(self._options.relays, options=self._options.pool, clock=clock)
        self.metrics = Metrics()
        self.metrics.watch_relays(self.relay_states)
        self._publisher = Publisher(self._pool, self._options.publish, self.metrics)
        self._tasks: set[asyncio.Task[None]] = set()
        self._request_slots = asyncio.Semaphore(self._options.max_concurrent_requests)
        now = self._now()
        self._instance = InstanceRecord(uuid.uuid4().hex, now, now, now + self._options.lease, -1)
        self.pipeline = Pipeline(
            store=store,
            backend=backend,
            sink=self,
            clock=clock,
            settings=self._settings,
            instance_id=self._instance.instance_id,
            metrics=self.metrics,
        )
        self._subscription: Subscription | None = None
        self._version = -1
        self._published_info: dict[str, tuple[Any, ...]] = {}
        self._info_stamps: dict[str, int] = {}
        self._lease_lost = False
        self._delivered: list[str] = []
        self._marking: asyncio.Task[None] | None = None

    @property
    def pool(self) -> RelayPool:
        return self._pool

    @property
    def store(self) -> Store:
        return self._store

    @property
    def backend(self) -> LightningBackend:
        return self._backend

    def relay_states(self) -> dict[str, bool]:
        """Each relay of the pool: is its socket connected?"""
        connected = set(self._pool.connected_relays)
        return {url: url in connected for url in self._pool.relays}

    def _now(self) -> int:
        return int(self._clock.now())

    # -- EventSink -----------------------------------------------------------------------

    def publish(self, event: Event, relays: Iterable[str]) -> None:
        relays = tuple(relays) or tuple(self._pool.relays)
        self._publisher.publish(event, relays, self._on_delivered)

    def _on_delivered(self, event: Event) -> None:
        """A response reached a relay: mark it published, batched per loop turn."""
        self._delivered.append(event.id)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._mark_delivered())

    async def _mark_delivered(self) -> None:
        await asyncio.sleep(0)  # let the responses delivered in this turn join the batch
        while self._delivered:
            ids, self._delivered = self._delivered, []
            try:
                await self._store.mark_published(ids)
            except Exception:
                # Not fatal: they are published again after a restart (same event ids).
                log.exception("could not mark %s published", count(len(ids), "response"))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception:
            log.exception("background task failed")

    def payment_sent(self, ctx: RequestContext, item: PlannedPayment, result: PayResult) -> None:
        tx = Transaction(
            type="outgoing",
            state="settled",
            payment_hash=item.payment_hash or "",
            amount_msat=item.amount_msat,
            fees_paid_msat=result.fees_paid_msat,
            preimage=result.preimage,
            invoice=item.invoice.bolt11 if item.invoice else None,
            description=item.invoice.description if item.invoice else None,
            created_at=self._now(),
            settled_at=self._now(),
        )
        self._notify(ctx.connection, "payment_sent", tx, (ctx.scheme,))

    def _notify(
        self,
        connection: Connection,
        kind: str,
        tx: Transaction,
        schemes: Iterable[Scheme] | None = None,
    ) -> None:
        """Send a notification to one app after the answers: in ``schemes`` (default: those
        its requests used here), or NIP-44 (23197) and NIP-04 (23196) when none is known."""
        if schemes is None:
            schemes = self.pipeline.schemes_used.get(connection.wallet_pubkey, ())
        kinds = notification_kinds(schemes)

        def build() -> list[Event]:
            app_key = PublicKey.from_hex(connection.app_pubkey)
            plaintext = jsontext.dumps({"notification_type": kind, "notification": tx.to_json()})
            return [
                sign_event(
                    connection.wallet_key,
                    kind=event_kind,
                    content=seal_content(connection.wallet_key, app_key, scheme, plaintext),
                    tags=[["p", connection.app_pubkey]],
                    created_at=self._now(),
                )
                for scheme, event_kind in kinds
            ]

        self._publisher.publish_later(build, connection.relays or self._pool.relays)

    # -- lifespan ------------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._instance.instance_id

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        """Serve until cancelled.

        Raises:
            LeaseLost: another instance found this one's lease expired and took its
                work over (it stalled too long): it stopped at once, to do nothing twice.
        """
        self._pool.start()
        await self._store.register(self._instance)
        running = asyncio.current_task()
        assert running is not None
        # Beat from the start: taking a lot of work over must not let this lease lapse.
        self.spawn(self._heartbeat(running))
        try:
            await self._load_connections()
            # Work a stopped instance left: all of it when the store has one instance at
            # a time; else only that of instances whose lease expired.
            exclusive = not self._store.shared
            orphans = await self._store.take_over(
                self.instance_id, self._now(), everyone_else=exclusive
            )
            await self._adopt(orphans, exclusive=exclusive)
            self._subscription = await self._pool.subscribe(self._filters())
            # Apps discover us by the info events: have them on the relays before "ready"
            # (past ``info_batch`` connections, the first batch; the rest follows).
            changes = self._info_changes()
            batch = max(1, self._options.info_batch)
            await asyncio.gather(
                self._confirm_listening(self._version), self._announce(changes[:batch])
            )
            if len(changes) > batch:
                self.spawn(self._announce_rest(changes[batch:], batch))
            if self._store.shared:
                self.spawn(self._take_over_stopped())
            self.spawn(self._watch_connections())
            self.spawn(self._watch_incoming())
            self.spawn(self._prune())
            if ready is not None:
                ready()
            log.info(
                "nwcd ready: instance %s, %s, relays %s",
                self.instance_id[:12],
                count(len(self.pipeline.connections), "connection"),
                ", ".join(self._pool.relays) or "none",
            )
            while True:
                event, live = await self._subscription.next_delivery()
                await self._request_slots.acquire()
                task = asyncio.create_task(self._handle(event, live))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            await self._shutdown()
            if self._lease_lost:
                raise LeaseLost(self.instance_id)

    async def _handle(self, event: Event, live: bool) -> None:
        try:
            await self.pipeline.handle(event, live=live)
        finally:
            self._request_slots.release()

    async def _shutdown(self) -> None:
        # Stop intake first (request tasks and watchers), give running payments and
        # publishes a grace period, then cancel what is left; open payments are resolved
        # with the backend on the next start.
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        with contextlib.suppress(Exception):
            await self.pipeline.payments.drain(self._options.shutdown_grace)
            await self._publisher.drain(min(2.0, self._options.shutdown_grace))
        await self.pipeline.payments.close()
        await self._publisher.close()
        with contextlib.suppress(Exception):
            await self._mark_delivered()
            if not self._lease_lost:
                await self._store.retire(self.instance_id)
        await self._pool.close()

    # -- connections ---------------------------------------------------------------------

    def _filters(self) -> list[Filter]:
        # In the store's order (oldest first), not sorted: a new connection then changes
        # the last REQ only, and the pool sends only REQs that changed.
        wallets = list(self.pipeline.connections)
        since = self._now() - self._settings.horizon
        return [Filter(kinds=(Kind.NWC_REQUEST,), tags={"p": tuple(wallets)}, since=since)]

    async def _confirm_listening(self, version: int) -> None:
        """Once the relays confirm the subscription (EOSE; or none is connected, and it
        goes out on connect), say in the store that this instance listens for ``version``."""
        subscription = self._subscription
        if subscription is not None and self._pool.connected_relays:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._options.confirm_timeout):
                    await subscription.eose.wait()
        self._instance = replace(self._instance, listening_version=version)
        await self._beat()

    async def _beat(self) -> bool:
        now = self._now()
        self._instance = replace(
            self._instance, heartbeat_at=now, lease_expires_at=now + self._options.lease
        )
        return await self._store.heartbeat(self._instance)

    async def _heartbeat(self, running: asyncio.Task[None]) -> None:
        """Renew this instance's lease; a failed beat is tried again next round. A lease
        another instance found expired (its work is taken over) stops this one."""
        while True:
            await asyncio.sleep(self._options.heartbeat_interval)
            try:
                renewed = await self._beat()
            except Exception:
                log.exception("heartbeat failed: will retry")
                continue
            if not renewed:
                log.error("lease lost: another instance took this one's work over; stopping")
                self._lease_lost = True
                running.cancel()
                return

    async def _take_over_stopped(self) -> None:
        """Finish the work of instances that stopped (their lease expired)."""
        while True:
            await asyncio.sleep(self._options.takeover_interval)
            try:
                orphans = await self._store.take_over(self.instance_id, self._now())
                await self._adopt(orphans, exclusive=False)
            except Exception:
                log.exception("taking over stopped instances' work failed: will retry")

    async def _prune(self) -> None:
        """Forget requests that moved no money once they are past what is kept."""
        while True:
            await asyncio.sleep(self._options.prune_interval)
            try:
                pruned = await self._store.prune(before=self._now() - self._settings.keep_for)
                if pruned:
                    log.info("pruned %s", count(pruned, "old request"))
            except Exception:
                log.exception("pruning failed: will retry")

    async def _load_connections(self, version: int | None = None) -> bool:
        """Load the connections if their version changed; True if it did."""
        if version is None:
            version = await self._store.connections_version()
        if version == self._version:
            return False
        connections = await self._store.connections()
        self._version = version
        self.pipeline.connections = {c.wallet_pubkey: c for c in connections}
        for connection in connections:
            for relay in connection.relays:
                self._pool.add_relay(relay)
        return True

    async def _watch_connections(self) -> None:
        """Follow connection changes (from any process; pushed by the store where it can);
        a failed round is tried again, since a watcher that stopped would keep serving
        revoked connections."""
        while True:
            try:
                async for version in self._store.connection_changes(
                    self._options.connections_poll_interval
                ):
                    before = set(self.pipeline.connections)
                    if not await self._load_connections(version):
                        continue
                    if set(self.pipeline.connections) != before and self._subscription:
                        await self._subscription.update(self._filters())
                    self._publish_info()
                    await self._confirm_listening(self._version)
            except Exception:
                self._version = -1  # reload everything next round
                log.exception("connection watcher: will retry")
            await asyncio.sleep(self._options.connections_poll_interval)

    def _publish_info(self) -> None:
        for connection, fingerprint in self._info_changes():
            event, relays = self._info_event(connection, fingerprint)
            self._publisher.publish(event, relays)

    def _info_changes(self) -> list[tuple[Connection, InfoFingerprint]]:
        """Connections whose info event is new or changed since last published (now
        counted as published: the caller publishes them)."""
        changes: list[tuple[Connection, InfoFingerprint]] = []
        allowed: dict[frozenset[str] | None, tuple[str, ...]] = {}  # grants repeat: ~1 s/100k
        for connection in self.pipeline.connections.values():
            methods = allowed.get(connection.methods)
            if methods is None:
                methods = tuple(connection.allowed_methods(self._backend.methods))
                allowed[connection.methods] = methods
            fingerprint = (methods, connection.revoked_at is None, connection.relays)
            if self._published_info.get(connection.wallet_pubkey) != fingerprint:
                self._published_info[connection.wallet_pubkey] = fingerprint
                changes.append((connection, fingerprint))
        return changes

    def _info_event(
        self, connection: Connection, fingerprint: InfoFingerprint
    ) -> tuple[Event, tuple[str, ...]]:
        """A connection's info event (signed now), and the relays it goes to."""
        methods, active, _ = fingerprint
        # A replaceable event with the same created_at as the one it replaces may
        # lose the tie on a relay (NIP-01 keeps the lowest id): always move forward.
        stamp = max(self._now(), self._info_stamps.get(connection.wallet_pubkey, 0) + 1)
        self._info_stamps[connection.wallet_pubkey] = stamp
        event = build_info_event(
            connection.wallet_key,
            list(methods) if active else [],
            created_at=stamp,
            notifications=notification_types(methods) if active else (),
            app_pubkey=connection.app_pubkey,
        )
        return event, connection.relays or tuple(self._pool.relays)

    async def _announce(self, changes: list[tuple[Connection, InfoFingerprint]]) -> None:
        """Publish these info events and wait for the relays' OKs (5 s at most)."""
        events: list[tuple[Event, tuple[str, ...]]] = []
        for i, (c, fingerprint) in enumerate(changes, 1):
            events.append(self._info_event(c, fingerprint))
            if i % 50 == 0:
                await asyncio.sleep(0)  # signing 500 takes ~50 ms: let requests through
        await asyncio.gather(
            *(self._pool.publish(event, timeout=5, relays=relays) for event, relays in events)
        )

    async def _announce_rest(
        self, changes: list[tuple[Connection, InfoFingerprint]], batch: int
    ) -> None:
        """The info events left after "ready", ``batch`` at a time. One that changed
        meanwhile is skipped: the connection watcher published the new one."""
        for start in range(0, len(changes), batch):
            await self._announce(
                [
                    (c, fingerprint)
                    for c, fingerprint in changes[start : start + batch]
                    if self._published_info.get(c.wallet_pubkey) == fingerprint
                ]
            )
        log.info("published the info events of %s", count(len(changes), "more connection"))

    async def _watch_incoming(self) -> None:
        """``payment_received`` and ``hold_invoice_accepted`` go only to the app that made
        the invoice."""
        delay = 1.0
        while True:
            try:
                async for tx in self._backend.incoming_payments():
                    delay = 1.0
                    notification = incoming_notification(tx)
                    if notification is None:
                        continue
                    owner = await self._store.invoice_owner(tx.payment_hash)
                    connection = self.pipeline.connections.get(owner or "")
                    if connection is None or connection.revoked_at is not None:
                        continue
                    # Every instance sees the payment; one of them tells the app.
                    if await self._store.claim_notification(tx.payment_hash, notification):
                        self._notify(connection, notification, tx)
                return  # the backend closed its stream: it is shutting down
            except Exception:
                log.exception("incoming payments watcher: will retry")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    # -- recovery ------------------------------------------------------------------------

    async def _adopt(self, orphans: Orphans, *, exclusive: bool) -> None:
        """Finish work a stopped instance left, through the same path as new work: send
        the answers it stored but never delivered, resolve every payment it left open
        with the backend first, then finish its batches and answer what it never started."""
        if not orphans:
            return
        self.metrics.recovered(RecoveryAction.TAKEN_OVER)
        self.metrics.recovered(RecoveryAction.REPUBLISHED, len(orphans.undelivered))
        log.info(
            "taking over: %s to deliver, %s to resolve, %s to finish, %s to answer",
            count(len(orphans.undelivered), "answer"),
            count(len(orphans.unresolved), "payment"),
            count(len(orphans.unfinished), "batch", "batches"),
            count(len(orphans.unanswered), "request"),
        )
        for response in orphans.undelivered:
            connection = self.pipeline.connections.get(response.pubkey)
            self.publish(response, connection.relays if connection is not None else ())
        lookups = asyncio.Semaphore(RECOVERY_LOOKUPS)

        async def recover(record: PaymentRecord) -> None:
            async with lookups:
                try:
                    await self._recover_payment(record, exclusive=exclusive)
                except Exception:
                    # One bad record must not keep the service from starting; it stays
                    # open and is tried again on the next start.
                    log.exception("recovery of payment %d failed; left open", record.id)

        await asyncio.gather(*(recover(record) for record in orphans.unresolved))
        for request, handled in orphans.unfinished:
            if (ctx := self._stored_context(request)) is not None:
                self.metrics.recovered(RecoveryAction.CONTINUED)
                self.spawn(self.pipeline.finish(ctx, handled))
        for request in orphans.unanswered:
            if (ctx := self._stored_context(request)) is not None:
                self.metrics.recovered(RecoveryAction.PROCESSED)
                self.spawn(self.pipeline.process(ctx))

    def _stored_context(
        self, request: RequestRecord | None, method: str = ""
    ) -> RequestContext | None:
        """The context of a claimed request, rebuilt from the store (None if its
        connection is gone); its receipt on the monotonic clock, from when it was stored."""
        if request is None:
            return None
        connection = self.pipeline.connections.get(request.wallet_pubkey)
        if connection is None:
            return None
        age = max(0.0, self._clock.now() - request.received_at)
        return RequestContext(
            event_from_json(request.event_json),
            connection,
            PublicKey.from_hex(request.app_pubkey),
            Scheme(request.scheme),
            method,
            received=self._clock.monotonic() - age,
        )

    async def _recover_payment(self, record: PaymentRecord, *, exclusive: bool) -> None:
        """Ask the backend about one payment a stopped instance left open, and act on it.

        ``exclusive``: the instance that left it is surely dead (one instance at a time).
        Otherwise it may only have stalled and still be sending: a reserved payment is
        fenced first (no instance sends it after), and "not found" for one that may be in
        flight waits for the grace period, as right after an ambiguous send.
        """
        request = await self._store.request(record.request_id)
        ctx = self._stored_context(request, record.intent.result_type)
        if ctx is None:
            return
        connection = ctx.connection
        item = PlannedPayment(
            index=record.intent.item_index,
            d_tag=record.intent.d_tag,
            payment_hash=record.intent.payment_hash,
            amount_msat=record.intent.amount_msat,
        )
        answer = self.pipeline.item_answerer(ctx)
        never_sent = record.state is PaymentState.RESERVED and await self._store.fence(
            record.id, self._now()
        )
        self.metrics.recovered(RecoveryAction.LOOKED_UP)
        try:
            outcome = await self._backend.payment_status(record.intent.payment_hash)
        except BackendError:
            outcome = Pending("backend unavailable during recovery")
        if isinstance(outcome, Failed) and (
            never_sent or (exclusive and outcome.reason == NOT_FOUND)
        ):
            outcome = Failed("the service stopped before the payment reached the wallet")
        elif isinstance(outcome, Failed) and outcome.reason == NOT_FOUND:
            outcome = Pending("not known to the backend yet")
        if isinstance(outcome, Pending):
            self.metrics.recovered(RecoveryAction.RESUMED)
            self.pipeline.payments.resume(
                connection.wallet_pubkey, item, record.id, answer, maybe_sending=not exclusive
            )
        else:
            await self.pipeline.payments.finish_recovered(
                connection.wallet_pubkey, item, record.id, outcome, answer
            )
            self.metrics.recovered(RecoveryAction.ANSWERED)
