"""Paying: from checked batch items to settled payments, concurrently and exactly once.

Theory of operation (design.md sections 1 and 2). For a ``pay_*`` request or
each item of a ``multi_pay_*`` request:

1. :func:`plan_invoices` / :func:`plan_keysends` (pure) decode and check every
   item: a problem with one item becomes that item's error and never touches
   the others; only an untrustworthy list (duplicate correlation keys) fails
   the whole request.
2. :class:`PaymentEngine` answers items this connection already paid from the
   store, joins items already in flight, and reserves the rest (amount + fee
   reserve, against the budget) in one store transaction, in request order.
3. Each reserved item waits for a slot (per connection, then service-wide,
   then the backend's own cap), is marked ``in_flight`` in the store, and is
   paid. Its outcome is settled in the store together with its signed
   response, which is then published at once.
4. An outcome that is not known (backend error, timeout, still in flight)
   stays reserved as ``unknown``; a resolver asks the backend until it knows,
   then settles and answers. Unknown is never failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nwcd import bolt11
from nwcd.clock import Clock
from nwcd.errors import BackendError, ErrorCode, InvalidInvoice, RequestError
from nwcd.nip47.methods import InvoiceItem, KeysendItem, TlvRecord, metadata_text
from nwcd.nip47.results import PayResult
from nwcd.policy.authorize import Deny
from nwcd.policy.budget import FeeReserve
from nwcd.policy.grants import Connection
from nwcd.ports import (
    NOT_FOUND,
    Failed,
    LightningBackend,
    PaymentIntent,
    PaymentOutcome,
    PaymentRecord,
    PaymentState,
    Pending,
    Reserved,
    Store,
    Succeeded,
)
from nwcd.service.metrics import Metrics

__all__ = [
    "AnswerFn",
    "ItemResult",
    "PaymentEngine",
    "PaymentLimits",
    "PlannedPayment",
    "plan_invoices",
    "plan_keysends",
]

log = logging.getLogger("nwcd.service")

ItemResult = PayResult | RequestError


@dataclass(frozen=True, slots=True)
class PlannedPayment:
    """One payment to make, or (``error`` set) one item already answered with an error.

    ``d_tag`` is None for a single ``pay_*`` request (its response has no ``d``).
    """

    index: int
    d_tag: str | None
    payment_hash: str | None
    amount_msat: int = 0
    invoice: bolt11.Invoice | None = None
    keysend_pubkey: str | None = None
    keysend_preimage: str | None = None
    tlv_records: tuple[TlvRecord, ...] = ()
    error: RequestError | None = None
    metadata: Mapping[str, Any] | None = None  # the app's, kept with the payment


def _item_error(message: str, code: ErrorCode = ErrorCode.OTHER) -> RequestError:
    return RequestError(code, message)


def _over_maximum(amount_msat: int, max_amount_msat: int | None) -> RequestError | None:
    """``QUOTA_EXCEEDED`` when one payment is above the connection's per-payment limit."""
    if max_amount_msat is None or amount_msat <= max_amount_msat:
        return None
    return _item_error(
        f"payment of {amount_msat} msat exceeds this connection's maximum of"
        f" {max_amount_msat} msat per payment",
        ErrorCode.QUOTA_EXCEEDED,
    )


def plan_invoices(
    items: Sequence[InvoiceItem],
    *,
    network: bolt11.Network,
    now: int,
    max_amount_msat: int | None,
    with_d_tags: bool,
) -> list[PlannedPayment]:
    """Decode and check invoices; raise only for an untrustworthy item list.

    Raises:
        RequestError: ``OTHER`` when two items share a correlation key (the same
            ``id``, or without ids the same payment hash or invoice).
    """
    planned: list[PlannedPayment] = []
    keys: set[str] = set()
    for item in items:
        decoded: bolt11.Invoice | None = None
        error: RequestError | None = None
        try:
            decoded = bolt11.decode(item.invoice)
        except InvalidInvoice as exc:
            error = _item_error(f"invalid invoice: {exc}")
        payment_hash = decoded.payment_hash if decoded is not None else None
        d_tag = item.id or payment_hash or item.invoice
        if with_d_tags:
            if d_tag in keys:
                what = "id" if item.id else "invoice"
                raise RequestError(
                    ErrorCode.OTHER,
                    f"invalid params: two items share the {what} {d_tag[:80]!r};"
                    " give each item a unique id",
                )
            keys.add(d_tag)
        amount = 0
        if error is None and decoded is not None:
            error, amount = _check_invoice(item, decoded, network, now, max_amount_msat)
        planned.append(
            PlannedPayment(
                index=item.index,
                d_tag=d_tag if with_d_tags else None,
                payment_hash=payment_hash,
                amount_msat=amount,
                invoice=decoded,
                error=error,
                metadata=item.metadata,
            )
        )
    return planned


def _check_invoice(
    item: InvoiceItem,
    invoice: bolt11.Invoice,
    network: bolt11.Network,
    now: int,
    max_amount_msat: int | None,
) -> tuple[RequestError | None, int]:
    if item.problem is not None:
        return _item_error(item.problem), 0
    if invoice.network is not network:
        return (
            _item_error(
                f"invoice is for network {invoice.network.value!r}, this wallet is on"
                f" {network.value!r}"
            ),
            0,
        )
    if invoice.is_expired(now):
        return _item_error("invoice has expired"), 0
    if invoice.amount_msat is None:
        if not item.amount_msat:
            return _item_error("invoice has no amount: give a positive amount in msat"), 0
        amount = item.amount_msat
    else:
        if item.amount_msat is not None and item.amount_msat != invoice.amount_msat:
            return (
                _item_error(
                    f"amount {item.amount_msat} msat does not match the invoice amount"
                    f" {invoice.amount_msat} msat"
                ),
                0,
            )
        amount = invoice.amount_msat
    over = _over_maximum(amount, max_amount_msat)
    return (over, 0) if over is not None else (None, amount)


def plan_keysends(
    items: Sequence[KeysendItem], *, max_amount_msat: int | None, with_d_tags: bool
) -> list[PlannedPayment]:
    """Check keysends; ``d`` is the item id, else the destination pubkey.

    Raises:
        RequestError: ``OTHER`` when two items share a correlation key.
    """
    planned: list[PlannedPayment] = []
    keys: set[str] = set()
    for item in items:
        d_tag = item.id or item.pubkey
        if with_d_tags:
            if d_tag in keys:
                raise RequestError(
                    ErrorCode.OTHER,
                    f"invalid params: two keysends share the key {d_tag[:80]!r};"
                    " give each item a unique id",
                )
            keys.add(d_tag)
        error: RequestError | None = None
        if item.problem is not None:
            error = _item_error(item.problem)
        else:
            error = _over_maximum(item.amount_msat, max_amount_msat)
        preimage = item.preimage or os.urandom(32).hex()
        planned.append(
            PlannedPayment(
                index=item.index,
                d_tag=d_tag if with_d_tags else None,
                payment_hash=hashlib.sha256(bytes.fromhex(preimage)).hexdigest(),
                amount_msat=item.amount_msat,
                keysend_pubkey=item.pubkey,
                keysend_preimage=preimage,
                tlv_records=item.tlv_records,
                error=error,
                metadata=item.metadata,
            )
        )
    return planned


@dataclass(frozen=True, slots=True)
class PaymentLimits:
    """Bounds that protect the backend and keep apps fair (design.md section 1)."""

    in_flight: int = 256
    per_connection: int = 100


class _Slots:
    """Per-connection, service-wide and backend slots, taken in that order.

    ``asyncio.Semaphore`` wakes waiters in FIFO order, so items start in
    request order as slots free up; a batch waits on its own connection's
    semaphore first, so it never holds service-wide slots another app needs.
    """

    def __init__(self, limits: PaymentLimits, backend_cap: int | None) -> None:
        self._limits = limits
        self._global = asyncio.Semaphore(limits.in_flight)
        self._backend = asyncio.Semaphore(backend_cap) if backend_cap else None
        self._per_connection: dict[str, asyncio.Semaphore] = {}

    def take(self, wallet_pubkey: str) -> _Taken:
        """``async with slots.take(wallet):`` holds one slot of each kind."""
        own = self._per_connection.get(wallet_pubkey)
        if own is None:
            own = self._per_connection[wallet_pubkey] = asyncio.Semaphore(
                self._limits.per_connection
            )
        if self._backend is None:
            return _Taken((own, self._global))
        return _Taken((own, self._global, self._backend))


class _Taken:
    """Semaphores acquired in order and released in reverse (a plain class: an
    ``asynccontextmanager`` builds an async generator and its wrapper for every item)."""

    __slots__ = ("_semaphores",)

    def __init__(self, semaphores: tuple[asyncio.Semaphore, ...]) -> None:
        self._semaphores = semaphores

    async def __aenter__(self) -> None:
        taken: list[asyncio.Semaphore] = []
        try:
            for semaphore in self._semaphores:
                await semaphore.acquire()
                taken.append(semaphore)
        except BaseException:  # cancelled while waiting: give back what was taken
            for semaphore in reversed(taken):
                semaphore.release()
            raise

    async def __aexit__(self, *_: object) -> None:
        for semaphore in reversed(self._semaphores):
            semaphore.release()


AnswerFn = Callable[[PlannedPayment, ItemResult, PaymentState | None, int | None], Awaitable[None]]
"""``answer(item, result, state, payment_id)``: settle ``payment_id`` to ``state`` (when
set) atomically with storing the item's signed response, then publish it."""


class PaymentEngine:
    """Runs planned payments through the store and the backend."""

    def __init__(
        self,
        store: Store,
        backend: LightningBackend,
        clock: Clock,
        *,
        limits: PaymentLimits,
        fee_reserve: FeeReserve,
        resolve_interval: float = 1.0,
        not_found_grace: float = 120.0,
        owner: str = "",
        metrics: Metrics | None = None,
    ) -> None:
        self.owner = owner
        self._metrics = metrics or Metrics()
        self._store = store
        self._backend = backend
        self._clock = clock
        self._fee_reserve = fee_reserve
        self._slots = _Slots(limits, backend.max_concurrent_payments)
        self._resolve_interval = resolve_interval
        self._not_found_grace = not_found_grace
        self._in_flight: dict[tuple[str, str], asyncio.Future[ItemResult]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()

    def _now(self) -> int:
        return int(self._clock.now())

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(
        self,
        *,
        request_id: str,
        result_type: str,
        connection: Connection,
        planned: Sequence[PlannedPayment],
        answer: AnswerFn,
        window_start: int,
    ) -> None:
        """Pay every planned item; ``answer`` is called once per item with its result.

        Returns once every item is reserved and started (or answered); results
        arrive through ``answer`` as payments finish.
        """
        wallet = connection.wallet_pubkey
        loop = asyncio.get_running_loop()
        # 1. Without any await in between, join payments of the same hash already running
        #    in this process and register ours, so no concurrent request can slip past.
        errors: list[PlannedPayment] = []
        joined: list[tuple[PlannedPayment, asyncio.Future[ItemResult]]] = []
        mine: list[PlannedPayment] = []
        for item in planned:
            if item.error is not None:
                errors.append(item)
                continue
            assert item.payment_hash is not None
            future = self._in_flight.get((wallet, item.payment_hash))
            if future is not None:
                joined.append((item, future))
            else:
                self._in_flight[(wallet, item.payment_hash)] = loop.create_future()
                mine.append(item)
        # 2. Payments this connection made before (or another instance is making) come
        #    from the store, never from the backend again.
        to_pay: list[PlannedPayment] = []
        try:
            hashes = [item.payment_hash or "" for item in mine]
            known = await self._store.payments_by_hashes(wallet, hashes) if hashes else {}
            for item in mine:
                record = known.get(item.payment_hash or "")
                if record is not None:
                    self._spawn(self._adopt(wallet, item, record, answer))
                else:
                    to_pay.append(item)
            reservations = await self._reserve(
                request_id, result_type, connection, to_pay, window_start
            )
        except BaseException:
            for item in to_pay:
                self._release(wallet, item, None)
            raise
        # 3. Pay (each waits for its slot), then answer what was decided without paying.
        denied: list[tuple[PlannedPayment, RequestError]] = []
        for item, reservation in zip(to_pay, reservations, strict=True):
            if isinstance(reservation, Deny):
                error = RequestError(reservation.code, reservation.message)
                self._release(wallet, item, error)
                denied.append((item, error))
            else:
                task = self._spawn(self._pay(connection, item, reservation, answer))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        for item, future in joined:
            self._spawn(self._join(item, future, answer))
        for item in errors:
            assert item.error is not None
            await answer(item, item.error, None, None)
        for item, error in denied:
            await answer(item, error, None, None)

    async def _reserve(
        self,
        request_id: str,
        result_type: str,
        connection: Connection,
        items: Sequence[PlannedPayment],
        window_start: int,
    ) -> list[Reserved | Deny]:
        if not items:
            return []
        intents = [
            PaymentIntent(
                item_index=item.index,
                result_type=result_type,
                d_tag=item.d_tag,
                payment_hash=item.payment_hash or "",
                invoice=item.invoice.bolt11 if item.invoice else None,
                amount_msat=item.amount_msat,
                fee_reserve_msat=self._fee_reserve.for_amount(item.amount_msat),
                metadata=None if item.metadata is None else metadata_text(item.metadata),
            )
            for item in items
        ]
        return await self._store.reserve(
            request_id,
            connection.wallet_pubkey,
            intents,
            owner=self.owner,
            budget_msat=connection.budget_msat,
            window_start=window_start,
            now=self._now(),
        )

    async def _adopt(
        self, wallet: str, item: PlannedPayment, record: PaymentRecord, answer: AnswerFn
    ) -> None:
        """An earlier payment of this hash: its outcome answers this item too."""
        try:
            result = await self._wait_record(record)
        except Exception:
            log.exception("payment %s: cannot read the earlier outcome", item.payment_hash)
            result = RequestError(ErrorCode.INTERNAL, "internal error; ask again")
        self._release(wallet, item, result)
        await answer(item, result, None, None)

    def _release(self, wallet: str, item: PlannedPayment, result: ItemResult | None) -> None:
        future = self._in_flight.pop((wallet, item.payment_hash or ""), None)
        if future is not None and not future.done():
            if result is None:
                future.set_result(RequestError(ErrorCode.INTERNAL, "payment was not started"))
            else:
                future.set_result(result)

    async def _join(
        self, item: PlannedPayment, source: asyncio.Future[ItemResult], answer: AnswerFn
    ) -> None:
        """Answer an item whose invoice this connection is paying already, in this process."""
        result = await asyncio.shield(source)
        await answer(item, result, None, None)

    async def _wait_record(self, record: PaymentRecord) -> ItemResult:
        while True:
            if record.state is PaymentState.SUCCEEDED:
                return PayResult(record.preimage or "", record.fee_msat or 0)
            if record.state is PaymentState.FAILED:
                try:
                    code = ErrorCode(record.error_code or "PAYMENT_FAILED")
                except ValueError:
                    code = ErrorCode.PAYMENT_FAILED
                return RequestError(code, record.error_message or "payment failed")
            await asyncio.sleep(self._resolve_interval)
            fresh = await self._store.payment(record.id)
            assert fresh is not None
            record = fresh

    async def _pay(
        self,
        connection: Connection,
        item: PlannedPayment,
        reservation: Reserved,
        answer: AnswerFn,
    ) -> None:
        wallet = connection.wallet_pubkey
        payment_id = reservation.payment_id
        outcome: PaymentOutcome | RequestError
        try:
            async with self._slots.take(wallet):
                moved = await self._store.mark_in_flight([payment_id], self._now())
                if payment_id not in moved:
                    # Another instance's recovery settled it while it waited for a slot:
                    # that instance answers; paying now could pay what it called failed.
                    self._release(wallet, item, None)
                    return
                sent_at = time.monotonic()
                with self._metrics.payment_in_flight():
                    outcome = await self._attempt(item, reservation.fee_reserve_msat)
            await self._finish(wallet, item, payment_id, outcome, answer, sent_at=sent_at)
        except Exception:
            # A store failure (disk, lock timeout): the row stays open and the next start
            # resolves it with the backend. Whoever waits on this hash is told to ask again.
            log.exception("payment %s: left open for recovery", item.payment_hash)
            self._release(wallet, item, None)

    async def _attempt(
        self, item: PlannedPayment, fee_limit_msat: int
    ) -> PaymentOutcome | RequestError:
        try:
            if item.invoice is not None:
                return await self._backend.pay_invoice(
                    item.invoice,
                    amount_msat=item.amount_msat,
                    fee_limit_msat=fee_limit_msat,
                )
            assert item.keysend_pubkey is not None
            assert item.keysend_preimage is not None
            return await self._backend.pay_keysend(
                pubkey=item.keysend_pubkey,
                amount_msat=item.amount_msat,
                preimage=item.keysend_preimage,
                tlv_records=item.tlv_records,
                fee_limit_msat=fee_limit_msat,
            )
        except RequestError as exc:
            return exc  # a refusal before anything was sent (e.g. insufficient balance)
        except BackendError as exc:
            return Pending(f"backend error: {type(exc).__name__}")
        except Exception:
            log.exception("payment %s: unexpected error; outcome unknown", item.payment_hash)
            return Pending("internal error")

    async def _finish(
        self,
        wallet: str,
        item: PlannedPayment,
        payment_id: int,
        outcome: PaymentOutcome | RequestError,
        answer: AnswerFn,
        *,
        sent_at: float | None = None,
    ) -> None:
        result: ItemResult
        match outcome:
            case Succeeded(preimage, fee_msat):
                result = PayResult(preimage, fee_msat)
                state = PaymentState.SUCCEEDED
            case Failed(reason):
                result = RequestError(ErrorCode.PAYMENT_FAILED, f"payment failed: {reason}")
                state = PaymentState.FAILED
            case RequestError():
                result = outcome
                state = PaymentState.FAILED
            case Pending(reason):
                log.info(
                    "payment %s of %d msat: outcome unknown (%s); asking the backend until known",
                    item.payment_hash,
                    item.amount_msat,
                    reason,
                )
                await self._store.settle(payment_id, PaymentState.UNKNOWN, now=self._now())
                self._spawn(self._resolve(wallet, item, payment_id, answer, sent_at=sent_at))
                return
        await answer(item, result, state, payment_id)
        self._release(wallet, item, result)

    async def _resolve(
        self,
        wallet: str,
        item: PlannedPayment,
        payment_id: int,
        answer: AnswerFn,
        *,
        sent_at: float | None,
    ) -> None:
        """Ask the backend until the outcome is known (never guess failed).

        Right after an ambiguous send (a timeout, a dropped stream), the backend may
        not know the payment *yet*: "not found" then means nothing until
        ``not_found_grace`` seconds have passed. ``sent_at`` None (after a restart,
        when no send of ours can still be on its way) accepts it at once.
        """
        assert item.payment_hash is not None
        delay = self._resolve_interval
        while True:
            await asyncio.sleep(delay)
            try:
                outcome = await self._backend.payment_status(item.payment_hash)
            except Exception as exc:  # any failure to ask is "still unknown"
                outcome = Pending(f"cannot ask the backend: {type(exc).__name__}")
            if (
                isinstance(outcome, Failed)
                and outcome.reason == NOT_FOUND
                and sent_at is not None
                and time.monotonic() - sent_at < self._not_found_grace
            ):
                outcome = Pending("not known to the backend yet")
            if not isinstance(outcome, Pending):
                try:
                    await self._finish(wallet, item, payment_id, outcome, answer)
                except Exception:
                    log.exception("payment %s: cannot settle yet", item.payment_hash)
                else:
                    return
            delay = min(delay * 2, 30.0)

    def resume(
        self,
        wallet: str,
        item: PlannedPayment,
        payment_id: int,
        answer: AnswerFn,
        *,
        maybe_sending: bool = False,
    ) -> None:
        """After a restart or a take-over: keep resolving a payment whose outcome is still
        unknown. ``maybe_sending``: a stalled instance may still be sending it, so "not
        found" means nothing for the grace period (as right after an ambiguous send)."""
        if item.payment_hash is not None:
            self._in_flight.setdefault(
                (wallet, item.payment_hash), asyncio.get_running_loop().create_future()
            )
        sent_at = time.monotonic() if maybe_sending else None
        self._spawn(self._resolve(wallet, item, payment_id, answer, sent_at=sent_at))

    async def finish_recovered(
        self,
        wallet: str,
        item: PlannedPayment,
        payment_id: int,
        outcome: PaymentOutcome,
        answer: AnswerFn,
    ) -> None:
        """After a restart: settle a payment whose outcome the backend now knows."""
        await self._finish(wallet, item, payment_id, outcome, answer)

    async def close(self) -> None:
        """Stop resolvers and payment tasks (their state is in the store)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, timeout: float) -> None:
        """Wait for payments being sent, up to ``timeout`` seconds (not for resolvers,
        which poll for as long as the backend does not know: they resume after a restart)."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout)
