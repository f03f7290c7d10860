"""The request pipeline: one kind-23194 event in, its response events out.

The steps, in order, each in one place::

    event (signature already verified by the relay pool)
    -> route: the ``p`` tag names one of our wallet keys, else drop
    -> ``expiration`` passed: drop (NIP-47); oversized content: drop
    -> durable claim of the event id (a repeat re-publishes stored responses)
    -> freshness window, app key, encryption scheme
    -> decrypt -> rate limits (answered RATE_LIMITED) -> decode params -> authorize
    -> execute (payments through :mod:`nwcd.service.payments`)
    -> encode, encrypt, sign -> store -> publish
    -> finished: marked done with what it finished as, one log line, metrics

A request finishes in one place, :meth:`Pipeline._finished`: the pure
:func:`finished_request` decides what it is recorded as (:class:`~nwcd.ports.RequestOutcome`),
then one store write marks it done with that, and it is logged and counted.

Errors are answered, never raised: a :class:`~nwcd.errors.RequestError`
becomes its code and message; anything else is our fault and becomes
``INTERNAL`` with a generic message (the exception text is logged, not sent).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from typing import Any, Protocol

from nwcd import bolt11
from nwcd.clock import Clock
from nwcd.errors import BackendError, DecryptionError, ErrorCode, InvalidInvoice, RequestError
from nwcd.logs import FIELDS
from nwcd.nip47.encryption import Scheme, open_content, scheme_of, seal_content
from nwcd.nip47.info import notification_types
from nwcd.nip47.methods import (
    CancelHoldInvoiceParams,
    GetBalanceParams,
    GetBudgetParams,
    GetInfoParams,
    InvoiceItem,
    KeysendItem,
    ListTransactionsParams,
    LookupInvoiceParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
    MultiPayInvoiceParams,
    MultiPayKeysendParams,
    PayInvoiceParams,
    PayKeysendParams,
    Request,
    SettleHoldInvoiceParams,
    SignMessageParams,
    UnknownMethod,
    decode_request,
    metadata_text,
)
from nwcd.nip47.results import PayResult, Transaction, encode_response, error_response
from nwcd.nostr import jsontext
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import PublicKey
from nwcd.nostr.kinds import Kind
from nwcd.policy.authorize import authorize
from nwcd.policy.budget import FeeReserve, budget_status, window_start
from nwcd.policy.grants import SERVICE_METHODS, Connection
from nwcd.policy.rate import APP_RATE, SERVICE_RATE, RateLimit, RateLimiter
from nwcd.ports import (
    OK,
    Claim,
    LightningBackend,
    NotOwner,
    PaymentState,
    RequestOutcome,
    RequestRecord,
    Store,
)
from nwcd.service.metrics import Metrics
from nwcd.service.payments import (
    ItemResult,
    PaymentEngine,
    PaymentLimits,
    PlannedPayment,
    plan_invoices,
    plan_keysends,
)
from nwcd.text import count

__all__ = [
    "EventSink",
    "Pipeline",
    "RequestContext",
    "ServiceSettings",
    "finished_line",
    "finished_request",
    "item_outcome",
]

log = logging.getLogger("nwcd.service")

_NETWORKS = {
    "mainnet": bolt11.Network.MAINNET,
    "testnet": bolt11.Network.TESTNET,
    "signet": bolt11.Network.SIGNET,
    "regtest": bolt11.Network.REGTEST,
}
_PAY_BATCH = {Method.MULTI_PAY_INVOICE.value, Method.MULTI_PAY_KEYSEND.value}


class EventSink(Protocol):
    """Where the pipeline's output goes: the daemon publishes and runs background work."""

    def publish(self, event: Event, relays: Iterable[str]) -> None:
        """Publish in the background; never blocks the pipeline."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a small background job."""
        ...

    def payment_sent(self, ctx: RequestContext, item: PlannedPayment, result: PayResult) -> None:
        """A payment succeeded: notify the app."""
        ...


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Behaviour of the wallet service (design.md sections 1 and 2)."""

    freshness_window: int = 300
    max_batch_items: int = 100
    max_content_chars: int = 256 * 1024
    limits: PaymentLimits = field(default_factory=PaymentLimits)
    fee_reserve: FeeReserve = field(default_factory=FeeReserve)
    payment_hash_tag: bool = True
    timezone: tzinfo = UTC
    resolve_interval: float = 1.0
    touch_interval: int = 60
    cap_balance_to_budget: bool = False
    subscribe_margin: int = 60
    retention: int = 3600
    app_rate: RateLimit = APP_RATE
    service_rate: RateLimit = SERVICE_RATE

    @property
    def horizon(self) -> int:
        """How far back (seconds) the service listens: twice the freshness window plus a
        margin, so a stale request is answered "too old" instead of vanishing. Older
        requests are not delivered by relays; one that arrives anyway (a re-send) gets
        its stored answers if it was handled before, and is dropped otherwise."""
        return 2 * self.freshness_window + self.subscribe_margin

    @property
    def keep_for(self) -> int:
        """How long a request that moved no money is remembered (at least the horizon:
        a re-delivery of a forgotten request must be too old to be handled again)."""
        return max(self.retention, self.horizon)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asked, how to answer: fixed once the request is claimed. ``received``: the
    clock's monotonic time of receipt (None: not known), for the request's latency."""

    event: Event
    connection: Connection
    app_key: PublicKey
    scheme: Scheme
    method: str = ""
    received: float | None = None

    def with_method(self, method: str) -> RequestContext:
        # Not dataclasses.replace: that inspects the fields on every call (twice a request).
        return RequestContext(
            self.event, self.connection, self.app_key, self.scheme, method, self.received
        )


class Pipeline:
    """Handles request events for a set of connections."""

    def __init__(
        self,
        *,
        store: Store,
        backend: LightningBackend,
        sink: EventSink,
        clock: Clock,
        settings: ServiceSettings,
        instance_id: str = "",
        metrics: Metrics | None = None,
    ) -> None:
        self.instance_id = instance_id
        # The encryption each connection's app has used here: its notifications go out
        # in those only (see nwcd.nip47.info.notification_kinds).
        self.schemes_used: dict[str, set[Scheme]] = {}
        self._metrics = metrics or Metrics()
        self._store = store
        self._backend = backend
        self._sink = sink
        self._clock = clock
        self._settings = settings
        self.connections: dict[str, Connection] = {}
        self._touched: dict[str, int] = {}
        self._network: bolt11.Network | None = None
        self._rate = RateLimiter(settings.app_rate, settings.service_rate)
        self.payments = PaymentEngine(
            store,
            backend,
            clock,
            limits=settings.limits,
            fee_reserve=settings.fee_reserve,
            resolve_interval=settings.resolve_interval,
            owner=instance_id,
            metrics=self._metrics,
        )

    def _now(self) -> int:
        return int(self._clock.now())

    # -- intake --------------------------------------------------------------------------

    async def handle(self, event: Event, *, live: bool = True) -> None:
        """Process one request event; never raises (except cancellation).

        ``live``: it arrived live, not replayed by a relay from its storage. A replay of
        a request handled before is ignored: its answers went out through the outbox,
        and only an app's re-send asks for them again.
        """
        received = self._clock.monotonic()
        try:
            await self._handle(event, live, received)
        except Exception:
            log.exception("request %s: unexpected error", event.id)
        finally:
            log.debug(
                "request %s handled in %.1f ms",
                event.id,
                1e3 * (self._clock.monotonic() - received),
            )

    async def _handle(self, event: Event, live: bool, received: float) -> None:
        if event.kind != Kind.NWC_REQUEST:
            return
        connection = self.connections.get(event.tag_value("p") or "")
        if connection is None:
            return  # not addressed to any of our wallet keys
        now = self._now()
        expiration = event.tag_value("expiration")
        if expiration is not None and expiration.isdigit() and int(expiration) <= now:
            log.info("request %s: expired, ignored", event.id)
            return
        if len(event.content) > self._settings.max_content_chars:
            log.info("request %s: content too large, dropped", event.id)
            return
        if now - event.created_at > self._settings.horizon:
            # Beyond what we listen for: answered again if it was handled, else dropped
            # (its claim may be pruned, so handling it now could answer it twice).
            if live and await self._store.request(event.id) is not None:
                await self.republish(event.id, connection)
            else:
                log.info("request %s: older than the horizon, dropped", event.id)
            return
        try:
            app_key = PublicKey.from_hex(event.pubkey)
        except ValueError:
            return
        try:
            scheme = scheme_of(event)
            scheme_error = None
        except RequestError as exc:
            # We cannot answer in a scheme we lack: answer in our preferred one.
            scheme, scheme_error = Scheme.NIP44_V2, exc
        if event.pubkey != connection.app_pubkey:
            # Anyone can write to a wallet key: answer, but store nothing for strangers
            # (their events would otherwise fill the disk).
            stranger = RequestContext(event, connection, app_key, scheme)
            denial = error_response("", ErrorCode.UNAUTHORIZED, "this key has no wallet connected")
            self._sink.publish(self.build_response(stranger, denial), connection.relays)
            return
        claim = await self._store.claim(
            RequestRecord(
                event_id=event.id,
                wallet_pubkey=connection.wallet_pubkey,
                app_pubkey=event.pubkey,
                scheme=scheme.value,
                event_json=jsontext.dumps(event.to_json()),
                received_at=now,
                created_at=event.created_at,
            ),
            self.instance_id,
        )
        if not claim.won:
            if live and answer_again(claim, self.instance_id, now):
                await self.republish(event.id, connection)
            return
        ctx = RequestContext(event, connection, app_key, scheme, received=received)
        if scheme_error is None:
            self.schemes_used.setdefault(connection.wallet_pubkey, set()).add(scheme)
        limited = self._rate.check(connection.wallet_pubkey, self._clock.monotonic())
        await self.process(ctx, scheme_error, limited=limited)

    async def republish(self, request_id: str, connection: Connection) -> None:
        """A repeated request: send the stored responses again, do nothing else."""
        responses = await self._store.responses_for(request_id)
        log.info(
            "request %s: repeat, re-publishing %s",
            request_id,
            count(len(responses), "response"),
        )
        for response in responses:
            self._sink.publish(response, connection.relays)

    async def process(
        self,
        ctx: RequestContext,
        scheme_error: RequestError | None = None,
        *,
        limited: RequestError | None = None,
    ) -> None:
        """Everything after the claim (also used to finish requests after a restart);
        ``limited``: answer this (``RATE_LIMITED``) instead of serving the request."""
        event, connection = ctx.event, ctx.connection
        now = self._now()
        try:
            if scheme_error is not None:
                raise scheme_error
            if event.pubkey != connection.app_pubkey:
                raise RequestError(ErrorCode.UNAUTHORIZED, "this key has no wallet connected")
            age = now - event.created_at
            if age > self._settings.freshness_window:
                raise RequestError(ErrorCode.OTHER, f"request is too old ({age} s); send it again")
            if -age > self._settings.freshness_window:
                raise RequestError(ErrorCode.OTHER, "request is dated in the future")
            try:
                plaintext = open_content(
                    connection.wallet_key, ctx.app_key, ctx.scheme, event.content
                )
            except DecryptionError:
                raise RequestError(
                    ErrorCode.OTHER, f"cannot decrypt the request with {ctx.scheme.value}"
                ) from None
            ctx = ctx.with_method(_method_name(plaintext))
            if limited is not None:
                raise limited
            request = decode_request(plaintext, max_items=self._settings.max_batch_items)
            ctx = ctx.with_method(request.method)
            await self._execute(ctx, request)
        except RequestError as exc:
            await self._answer_error(ctx, exc.code, exc.message)
        except NotOwner:
            _left_to_heir(event.id)
            return
        except BackendError as exc:
            log.warning(
                "request %s %s: backend error %s; answered INTERNAL",
                event.id,
                ctx.method or "(method unknown)",
                type(exc).__name__,
            )
            await self._answer_error(ctx, ErrorCode.INTERNAL, "the wallet backend failed")
        except Exception:
            log.exception(
                "request %s %s: internal error; answered INTERNAL",
                event.id,
                ctx.method or "(method unknown)",
            )
            await self._answer_error(ctx, ErrorCode.INTERNAL, "internal error")
        self._touch(connection, now)

    async def finish(self, ctx: RequestContext, handled: set[int]) -> None:
        """After a restart: answer the items of a started batch that were never answered
        (the process died between reserving and answering them). Items with a payment or
        an answer are left alone; no freshness check, the request was accepted before."""
        try:
            plaintext = open_content(
                ctx.connection.wallet_key, ctx.app_key, ctx.scheme, ctx.event.content
            )
            request = decode_request(plaintext, max_items=self._settings.max_batch_items)
        except Exception:  # it was readable before; if not now, there is nothing to redo
            await self._finished(ctx, None)
            return
        ctx = ctx.with_method(request.method)
        params = request.params
        if not isinstance(
            params,
            PayInvoiceParams | MultiPayInvoiceParams | PayKeysendParams | MultiPayKeysendParams,
        ):
            await self._finished(ctx, None)  # its answer was stored before the restart
            return
        # The items still to pay are checked against the backend's network: wait for the
        # backend rather than give up on them (answering them is this instance's job now).
        delay = self._settings.resolve_interval
        while True:
            try:
                await self.network()
                break
            except BackendError as exc:
                log.info(
                    "request %s %s: backend unavailable (%s); will retry",
                    ctx.event.id,
                    request.method,
                    type(exc).__name__,
                )
                await asyncio.sleep(delay)
                delay = min(2 * delay, 30.0)
        # Revoked or expired since it was accepted: what was not started is not paid now.
        denial = authorize(ctx.connection, request.method, self._now())
        try:
            await self._pay(
                ctx,
                params,
                handled=frozenset(handled),
                refuse=RequestError(denial.code, denial.message) if denial else None,
            )
        except RequestError:  # the request's own error, answered before the restart
            await self._finished(ctx, None)
        except NotOwner:
            _left_to_heir(ctx.event.id)

    def _touch(self, connection: Connection, now: int) -> None:
        wallet = connection.wallet_pubkey
        if now - self._touched.get(wallet, 0) >= self._settings.touch_interval:
            self._touched[wallet] = now
            self._sink.spawn(self._store.touch_connection(wallet, now))

    # -- responses -----------------------------------------------------------------------

    def build_response(
        self,
        ctx: RequestContext,
        plaintext: str,
        *,
        d_tag: str | None = None,
        payment_hash: str | None = None,
    ) -> Event:
        """Encrypt and sign one response event."""
        tags = [["p", ctx.app_key.hex], ["e", ctx.event.id]]
        if d_tag is not None:
            tags.append(["d", d_tag])
            if payment_hash is not None and self._settings.payment_hash_tag:
                tags.append(["payment_hash", payment_hash])
        wallet_key = ctx.connection.wallet_key
        return sign_event(
            wallet_key,
            kind=Kind.NWC_RESPONSE,
            content=seal_content(wallet_key, ctx.app_key, ctx.scheme, plaintext),
            tags=tags,
            created_at=self._now(),
        )

    async def _answer(self, ctx: RequestContext, plaintext: str, outcome: str) -> None:
        """Answer the whole request (``outcome``: OK or the answer's error code): its
        answer is stored and the request marked done in one write, then it is sent off."""
        response = self.build_response(ctx, plaintext)
        done = self._outcome(ctx, outcome)
        if not await self._save(ctx, [(None, response)], done=done):
            return
        self._sink.publish(response, ctx.connection.relays)
        self._report(ctx, done)

    async def _answer_error(self, ctx: RequestContext, code: ErrorCode, message: str) -> None:
        await self._answer(ctx, error_response(ctx.method, code, message), code.value)

    async def _finished(
        self,
        ctx: RequestContext,
        answer: str | None,
        *,
        amount_msat: int | None = None,
        items: int = 0,
        detail: str = "",
    ) -> None:
        """The one place a request finishes, once its last answer is stored and sent off:
        one store write marks it done with what it finished as, then it is logged and
        counted (see :func:`finished_request` for ``answer``). A request answered as a
        whole (:meth:`_answer`) is marked done in the write that stores its answer."""
        outcome = self._outcome(ctx, answer, amount_msat=amount_msat, items=items)
        await self._store.mark_done(ctx.event.id, outcome)
        self._report(ctx, outcome, detail)

    def _outcome(
        self,
        ctx: RequestContext,
        answer: str | None,
        *,
        amount_msat: int | None = None,
        items: int = 0,
    ) -> RequestOutcome:
        return finished_request(
            ctx,
            answer,
            now=self._now(),
            monotonic=self._clock.monotonic(),
            amount_msat=amount_msat,
            items=items,
        )

    def _report(self, ctx: RequestContext, outcome: RequestOutcome, detail: str = "") -> None:
        """A finished request: its log line and metrics."""
        message, fields = finished_line(ctx, outcome, detail)
        log.info(message, extra={FIELDS: fields})
        self._metrics.request_finished(outcome)

    async def _save(
        self,
        ctx: RequestContext,
        responses: list[tuple[int | None, Event]],
        *,
        done: RequestOutcome | None = None,
    ) -> bool:
        """Store responses to publish (with ``done``: and mark the request done); False if
        another instance took the request over."""
        try:
            await self._store.save_responses(
                ctx.event.id, responses, owner=self.instance_id, now=self._now(), done=done
            )
        except NotOwner:
            _left_to_heir(ctx.event.id)
            return False
        return True

    def item_answerer(self, ctx: RequestContext, items: int = 0) -> Any:
        """The ``answer`` callback of the payment engine for this request: the request
        finishes with its ``items``-th answer (0: never, recovery answers single items)."""
        batch = ctx.method in _PAY_BATCH
        answered = 0
        amount_msat = 0

        async def answer(
            item: PlannedPayment,
            result: ItemResult,
            state: PaymentState | None,
            payment_id: int | None,
        ) -> None:
            if isinstance(result, PayResult):
                plaintext = encode_response(ctx.method, result=result.to_json())
            else:
                plaintext = error_response(ctx.method, result.code, result.message)
            response = self.build_response(
                ctx, plaintext, d_tag=item.d_tag, payment_hash=item.payment_hash
            )
            now = self._now()
            if payment_id is not None and state is not None:
                kwargs: dict[str, Any] = {}
                if isinstance(result, PayResult):
                    kwargs = {"preimage": result.preimage, "fee_msat": result.fees_paid_msat}
                else:
                    kwargs = {"error_code": result.code.value, "error_message": result.message}
                settled = await self._store.settle(
                    payment_id,
                    state,
                    now=now,
                    response=(ctx.event.id, item.index, response),
                    **kwargs,
                )
                if not settled:
                    return  # settled and answered already (by another instance's recovery)
            elif not await self._save(ctx, [(item.index, response)]):
                return
            self._sink.publish(response, ctx.connection.relays)
            if isinstance(result, PayResult) and state is PaymentState.SUCCEEDED:
                self._sink.payment_sent(ctx, item, result)
            if batch:
                self._metrics.item_answered(item_outcome(result))
            nonlocal answered, amount_msat
            answered += 1
            amount_msat += item.amount_msat
            if answered == items:
                await self._finished(
                    ctx,
                    OK if batch else item_outcome(result),
                    amount_msat=amount_msat,
                    items=items,
                    detail="" if batch or isinstance(result, PayResult) else result.message,
                )

        return answer

    # -- methods -------------------------------------------------------------------------

    async def _execute(self, ctx: RequestContext, request: Request) -> None:
        params = request.params
        served = self._backend.methods | SERVICE_METHODS
        if isinstance(params, UnknownMethod) or request.method not in served:
            raise RequestError(
                ErrorCode.NOT_IMPLEMENTED, f"method {request.method[:64]!r} is not supported"
            )
        denial = authorize(ctx.connection, request.method, self._now())
        if denial is not None:
            raise RequestError(denial.code, denial.message)
        match params:
            case (
                PayInvoiceParams()
                | MultiPayInvoiceParams()
                | PayKeysendParams()
                | (MultiPayKeysendParams())
            ):
                await self._pay(ctx, params)
            case GetBalanceParams():
                balance = await self._backend.get_balance()
                await self._ok(ctx, {"balance": await self._capped(ctx.connection, balance)})
            case GetBudgetParams():
                await self._ok(ctx, await self._budget(ctx.connection))
            case GetInfoParams():
                info = await self._backend.get_info()
                result = info.to_json()
                result["methods"] = ctx.connection.allowed_methods(self._backend.methods)
                result["notifications"] = list(notification_types(result["methods"]))
                await self._ok(ctx, result)
            case MakeInvoiceParams():
                await self._made(ctx, await self._backend.make_invoice(params), params.metadata)
            case MakeHoldInvoiceParams():
                tx = await self._backend.make_hold_invoice(params)
                await self._made(ctx, tx, params.metadata)
            case SettleHoldInvoiceParams():
                await self._own_hold_invoice(ctx, params.payment_hash)
                await self._backend.settle_hold_invoice(params.preimage)
                await self._ok(ctx, {})
            case CancelHoldInvoiceParams():
                await self._own_hold_invoice(ctx, params.payment_hash)
                await self._backend.cancel_hold_invoice(params.payment_hash)
                await self._ok(ctx, {})
            case LookupInvoiceParams():
                await self._lookup(ctx, params)
            case ListTransactionsParams():
                await self._list(ctx, params)
            case SignMessageParams():
                signature = await self._backend.sign_message(params.message)
                await self._ok(ctx, {"message": params.message, "signature": signature})

    async def _made(
        self, ctx: RequestContext, tx: Transaction, metadata: Mapping[str, Any] | None
    ) -> None:
        """A new invoice belongs to the connection that made it (lookups, notifications,
        settling a hold invoice), with the app's metadata: recorded before the app can
        learn of it."""
        text = None if metadata is None else metadata_text(metadata)
        wallet = ctx.connection.wallet_pubkey
        await self._store.add_invoice(tx.payment_hash, wallet, self._now(), text)
        await self._ok(ctx, replace(tx, metadata=metadata).to_json())

    async def _with_metadata(
        self, connection: Connection, txs: list[Transaction]
    ) -> list[Transaction]:
        """The app's own metadata on its transactions, whatever the backend keeps."""
        stored = await self._store.metadata_of(
            connection.wallet_pubkey, [tx.payment_hash for tx in txs]
        )
        return [
            replace(tx, metadata=json.loads(stored[tx.payment_hash]))
            if tx.payment_hash in stored
            else tx
            for tx in txs
        ]

    async def _own_hold_invoice(self, ctx: RequestContext, payment_hash: str) -> None:
        """Only the connection that made a hold invoice may settle or cancel it; to any
        other it does not exist."""
        if await self._store.invoice_owner(payment_hash) != ctx.connection.wallet_pubkey:
            raise RequestError(ErrorCode.NOT_FOUND, "hold invoice not found")

    async def _capped(self, connection: Connection, balance: int) -> int:
        """With ``cap_balance_to_budget``: at most what this app may still spend."""
        if not self._settings.cap_balance_to_budget or connection.budget_msat is None:
            return balance
        return max(0, min(balance, connection.budget_msat - await self._used(connection)))

    async def _budget(self, connection: Connection) -> dict[str, Any]:
        status = budget_status(
            connection, await self._used(connection), self._now(), self._settings.timezone
        )
        return {} if status is None else status.to_json()

    async def _used(self, connection: Connection) -> int:
        """Spent and held (in flight, with fee reserve) in the current budget window."""
        since = window_start(self._now(), connection.budget_period, self._settings.timezone)
        return await self._store.budget_used(connection.wallet_pubkey, since)

    async def _ok(self, ctx: RequestContext, result: Mapping[str, Any]) -> None:
        await self._answer(ctx, encode_response(ctx.method, result=result), OK)

    async def network(self) -> bolt11.Network:
        """The backend's network (asked once)."""
        if self._network is None:
            info = await self._backend.get_info()
            self._network = _NETWORKS.get(info.network, bolt11.Network.MAINNET)
        return self._network

    async def _pay(
        self,
        ctx: RequestContext,
        params: PayInvoiceParams | MultiPayInvoiceParams | PayKeysendParams | MultiPayKeysendParams,
        *,
        handled: frozenset[int] = frozenset(),
        refuse: RequestError | None = None,
    ) -> None:
        """Plan and pay; items in ``handled`` are left alone, and with ``refuse`` every
        other item is answered with that error instead of being paid."""
        connection = ctx.connection
        batch = ctx.method in _PAY_BATCH
        now = self._now()
        planned: list[PlannedPayment]
        match params:
            case PayInvoiceParams():
                items = (InvoiceItem(0, None, params.invoice, params.amount_msat, params.metadata),)
                planned = plan_invoices(
                    items,
                    network=await self.network(),
                    now=now,
                    max_amount_msat=connection.max_amount_msat,
                    with_d_tags=False,
                )
            case MultiPayInvoiceParams():
                planned = plan_invoices(
                    params.invoices,
                    network=await self.network(),
                    now=now,
                    max_amount_msat=connection.max_amount_msat,
                    with_d_tags=True,
                )
            case PayKeysendParams():
                keysends = (
                    KeysendItem(
                        0,
                        None,
                        params.pubkey,
                        params.amount_msat,
                        params.preimage,
                        params.tlv_records,
                        metadata=params.metadata,
                    ),
                )
                planned = plan_keysends(
                    keysends, max_amount_msat=connection.max_amount_msat, with_d_tags=False
                )
            case MultiPayKeysendParams():
                planned = plan_keysends(
                    params.keysends, max_amount_msat=connection.max_amount_msat, with_d_tags=True
                )
        if not batch and planned[0].error is not None:
            raise planned[0].error
        planned = [item for item in planned if item.index not in handled]
        if refuse is not None:
            planned = [replace(item, error=refuse) for item in planned]
        if not planned:  # after a restart: every item was paid or answered before
            await self._finished(ctx, None)
            return
        await self.payments.run(
            request_id=ctx.event.id,
            result_type=ctx.method,
            connection=connection,
            planned=planned,
            answer=self.item_answerer(ctx, len(planned)),
            window_start=window_start(now, connection.budget_period, self._settings.timezone),
        )

    async def _lookup(self, ctx: RequestContext, params: LookupInvoiceParams) -> None:
        payment_hash = params.payment_hash
        if payment_hash is None and params.invoice is not None:
            try:
                payment_hash = bolt11.decode(params.invoice).payment_hash
            except InvalidInvoice as exc:
                raise RequestError(ErrorCode.OTHER, f"invalid invoice: {exc}") from None
        assert payment_hash is not None
        owned = await self._store.owned_hashes(ctx.connection.wallet_pubkey)
        tx = None
        if payment_hash in owned:
            tx = await self._backend.lookup_invoice(payment_hash=payment_hash, invoice=None)
        if tx is None:
            raise RequestError(ErrorCode.NOT_FOUND, "invoice not found")
        [tx] = await self._with_metadata(ctx.connection, [tx])
        await self._ok(ctx, tx.to_json())

    async def _list(self, ctx: RequestContext, params: ListTransactionsParams) -> None:
        owned = await self._store.owned_hashes(ctx.connection.wallet_pubkey)
        everything = await self._backend.list_transactions(
            ListTransactionsParams(
                params.from_time, params.until, None, 0, params.unpaid, params.type
            )
        )
        mine = [tx for tx in everything if tx.payment_hash in owned]
        limit = params.limit if params.limit is not None else 50
        page = await self._with_metadata(
            ctx.connection, mine[params.offset : params.offset + limit]
        )
        await self._ok(ctx, {"transactions": [tx.to_json() for tx in page]})


STAND_BACK = 10
"""Seconds during which another instance's fresh claim is left alone: it is a copy that
reached several instances at once, and the claimant is answering it."""


def answer_again(claim: Claim, me: str, now: int) -> bool:
    """A request claimed before arrived again: publish the stored answers, unless another
    instance claimed it a moment ago (it is answering: this is the same sending)."""
    return claim.owner == me or now - claim.received_at >= STAND_BACK


def item_outcome(result: ItemResult) -> str:
    """How one payment was answered: OK, or its error code."""
    return OK if isinstance(result, PayResult) else result.code.value


def finished_request(
    ctx: RequestContext,
    answer: str | None,
    *,
    now: int,
    monotonic: float,
    amount_msat: int | None = None,
    items: int = 0,
) -> RequestOutcome:
    """What a request finished as.

    ``answer``: OK or the error code of the request's own answer (a batch whose items
    were answered: OK); None when finishing it answered nothing (after a restart, its
    answers were stored before): a batch was handled (OK), anything else stays unknown.
    ``monotonic``: the clock's monotonic time now, for the latency since receipt.
    """
    latency = None if ctx.received is None else max(0.0, 1e3 * (monotonic - ctx.received))
    return RequestOutcome(
        method=ctx.method,
        outcome=OK if answer is None and ctx.method in _PAY_BATCH else answer,
        finished_at=now,
        amount_msat=amount_msat,
        items=items,
        latency_ms=latency,
    )


def finished_line(
    ctx: RequestContext, outcome: RequestOutcome, detail: str = ""
) -> tuple[str, dict[str, Any]]:
    """The log line of a finished request, and its fields for structured logs.

    Only what the operator needs and nothing secret: the request id (public), the
    connection's name, method, outcome (``detail``: a failed payment's reason), amount,
    items and latency; never the request's content, an invoice or a preimage.
    """
    method = outcome.method if outcome.method.isprintable() else repr(outcome.method)
    said = outcome.outcome or "answered before a restart"
    parts = [f"{said} ({detail[:120]})" if detail else said]
    if outcome.items:
        parts.append(count(outcome.items, "item"))
    if outcome.amount_msat is not None:
        parts.append(f"{outcome.amount_msat} msat")
    if outcome.latency_ms is not None:
        parts.append(f"{outcome.latency_ms:.1f} ms")
    message = (
        f"request {ctx.event.id[:16]} {method or '(method unknown)'}"
        f" for {ctx.connection.name!r}: {', '.join(parts)}"
    )
    fields: dict[str, Any] = {
        "request_id": ctx.event.id,
        "connection": ctx.connection.name,
        "method": outcome.method,
        "outcome": outcome.outcome,
        "amount_msat": outcome.amount_msat,
        "items": outcome.items,
        "latency_ms": None if outcome.latency_ms is None else round(outcome.latency_ms, 1),
    }
    if detail:
        fields["detail"] = detail[:120]
    return message, fields


def _method_name(plaintext: str) -> str:
    """The method named in a request, for the ``result_type`` of an early error."""
    try:
        method = jsontext.loads(plaintext).get("method")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return method[:64] if isinstance(method, str) else ""


def _left_to_heir(request_id: str) -> None:
    """This instance stalled and another took the request over: that one answers."""
    log.warning("request %s: taken over by another instance; left to it", request_id)
