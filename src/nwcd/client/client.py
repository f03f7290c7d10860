"""``NWCClient``: call a wallet over Nostr Wallet Connect from a Python app.

::

    async with NWCClient.from_uri("nostr+walletconnect://...") as wallet:
        balance = await wallet.get_balance()
        async for result in wallet.multi_pay_invoice_iter([inv1, inv2]):
            print(result.invoice, result.ok)

How it talks (protocol.md sections 4, 5 and 9.5): it reads the wallet's info
event first and picks NIP-44 when offered, else NIP-04; it subscribes for the
response (``#e`` = request id) before publishing the request to every relay of
the URI. ``multi_pay_invoice`` always sends a unique ``id`` per item and keys
results by the ``d`` tag (falling back to the ``payment_hash`` tag); one failed
item never hides the others; if the wallet does not offer the method, it pays
with concurrent ``pay_invoice`` requests instead, with the same result shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nwcd import bolt11
from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.errors import (
    DecryptionError,
    ErrorCode,
    InvalidInvoice,
    InvalidMessage,
    NwcdError,
    RequestError,
)
from nwcd.nip47.encryption import Scheme, open_content, seal_content
from nwcd.nip47.info import parse_info_event
from nwcd.nip47.methods import encode_request
from nwcd.nip47.results import Budget, ErrorPayload, Response, Transaction, decode_response
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool, Subscription

__all__ = [
    "InvoiceRequest",
    "KeysendRequest",
    "NWCClient",
    "NWCError",
    "Notification",
    "PaymentResult",
    "RelayUnreachable",
    "WalletInfo",
]

log = logging.getLogger("nwcd.client")

TIMEOUT_CODE = "TIMEOUT"

MAX_BATCH_ITEMS = 100
"""Items per ``multi_pay_*`` request (nwcd's default ``[service] max_batch_items``): larger
batches are sent as several requests."""

_PROBE_AFTER = 0.25
"""Seconds without a relay connection after which the client checks, with a plain TCP
connect, whether the relays can be reached at all (a refused port fails at once)."""


class RelayUnreachable(NwcdError):
    """No relay of the connection could be reached; ``reasons`` says why, per relay."""

    def __init__(self, reasons: Mapping[str, str]) -> None:
        self.reasons = dict(reasons)
        if len(self.reasons) == 1:
            [(url, reason)] = self.reasons.items()
            message = f"cannot reach relay {url}: {reason}"
        else:
            message = "cannot reach any relay: " + "; ".join(
                f"{url}: {reason}" for url, reason in self.reasons.items()
            )
        super().__init__(message)


async def connect_relays(pool: RelayPool, timeout: float) -> None:
    """Wait for one relay of ``pool``; fail as soon as every relay is known to be unreachable.

    Raises:
        RelayUnreachable: why, per relay.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waiting = asyncio.ensure_future(pool.wait_connected(timeout))
    probes: dict[str, asyncio.Future[str | None]] = {}
    reasons: dict[str, str] = {}
    try:
        await asyncio.wait({waiting}, timeout=min(_PROBE_AFTER, timeout))
        if not waiting.done():
            probes = {
                url: asyncio.ensure_future(_probe(url, deadline - loop.time()))
                for url in pool.relays
            }
            pending: set[asyncio.Future[Any]] = {waiting, *probes.values()}
            while not waiting.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for url, probe in probes.items():
                    if probe in done and (reason := probe.result()) is not None:
                        reasons[url] = reason
                if probes and len(reasons) == len(probes) and not waiting.done():
                    raise RelayUnreachable(reasons)
        if waiting.result():
            return
        raise RelayUnreachable(
            {
                url: reasons.get(url, f"no connection within {_seconds(timeout)} s")
                for url in pool.relays
            }
        )
    finally:
        futures: list[asyncio.Future[Any]] = [waiting, *probes.values()]
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)


class NWCError(RequestError):
    """The wallet answered with an error; ``wallet_code`` is its code exactly as sent."""

    def __init__(self, wallet_code: str, message: str) -> None:
        try:
            code = ErrorCode(wallet_code)
        except ValueError:
            code = ErrorCode.OTHER
        super().__init__(code, message)
        self.wallet_code = wallet_code

    def __str__(self) -> str:
        return f"{self.wallet_code}: {self.message}"


@dataclass(frozen=True, slots=True)
class WalletInfo:
    """What the wallet's info event (kind 13194) advertises."""

    methods: frozenset[str]
    schemes: tuple[Scheme, ...]
    found: bool


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """One invoice of a batch; ``amount_msat`` only for amountless invoices."""

    invoice: str
    amount_msat: int | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class KeysendRequest:
    """One keysend of a batch: ``tlv_records`` as ``(type, hex value)`` pairs."""

    pubkey: str
    amount_msat: int
    id: str | None = None
    preimage: str | None = None
    tlv_records: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The result of one invoice (or keysend: ``invoice`` is then the destination pubkey).

    ``preimage`` when ``ok``, else ``error``.
    """

    invoice: str
    id: str
    ok: bool
    preimage: str | None = None
    fees_paid_msat: int | None = None
    error: ErrorPayload | None = None

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {
                "invoice": self.invoice,
                "id": self.id,
                "ok": True,
                "preimage": self.preimage,
                "fees_paid": self.fees_paid_msat,
            }
        assert self.error is not None
        return {"invoice": self.invoice, "id": self.id, "ok": False, "error": self.error.to_json()}


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification: ``type`` is e.g. ``payment_received`` or ``hold_invoice_accepted``."""

    type: str
    transaction: Transaction


class NWCClient:
    """A connection to one wallet (use as an async context manager)."""

    def __init__(
        self,
        uri: ConnectionUri,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        info_timeout: float = 5.0,
        max_batch_items: int = MAX_BATCH_ITEMS,
        request_expiration: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``request_expiration``: seconds after which a request must not be executed
        (NIP-47's ``expiration`` tag): with it no longer than ``timeout``, a payment the
        client stopped waiting for cannot happen later (e.g. a wallet that was offline)."""
        if max_batch_items < 1:
            raise ValueError("max_batch_items must be positive")
        if request_expiration is not None and request_expiration <= 0:
            raise ValueError("request_expiration must be positive")
        self.request_expiration = request_expiration
        self.uri = uri
        self.timeout = timeout
        self.max_batch_items = max_batch_items
        self._connect_timeout = connect_timeout
        self._info_timeout = info_timeout
        self._clock = clock
        self._pool = RelayPool(uri.relays, clock=clock)
        self._secret = uri.secret
        self._wallet = uri.wallet_pubkey
        self.info = WalletInfo(frozenset(), (Scheme.NIP04,), found=False)
        self.scheme = Scheme.NIP04
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_uri(cls, uri: str | ConnectionUri, **options: Any) -> NWCClient:
        """Build a client from a ``nostr+walletconnect://`` URI."""
        parsed = uri if isinstance(uri, ConnectionUri) else ConnectionUri.parse(uri)
        return cls(parsed, **options)

    async def __aenter__(self) -> NWCClient:
        """Connect to the relays and read the wallet's info event.

        Raises:
            RelayUnreachable: no relay connected within ``connect_timeout`` seconds, or
                every relay refused at once (no waiting out the timeout then).
        """
        self._pool.start()
        try:
            await self._connect()
            self.info = await self._read_info()
            self.scheme = self.info.schemes[0]
        except BaseException:
            await self._pool.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pool.close()

    async def _connect(self) -> None:
        await connect_relays(self._pool, self._connect_timeout)

    async def _read_info(self) -> WalletInfo:
        subscription = await self._pool.subscribe(
            [Filter(kinds=(Kind.NWC_INFO,), authors=(self._wallet.hex,))]
        )
        try:
            event = await _first_or_eose(subscription, self._info_timeout)
        finally:
            await subscription.close()
        if event is None:
            log.info("wallet %s publishes no info event; assuming NIP-04", self._wallet.hex)
            return WalletInfo(frozenset(), (Scheme.NIP04,), found=False)
        methods, schemes = parse_info_event(event)
        return WalletInfo(methods, schemes, found=True)

    # -- requests ------------------------------------------------------------------------

    def _request_event(
        self, method: str, params: Mapping[str, Any], expiration: int | None = None
    ) -> Event:
        """``expiration`` (unix seconds) for this request, else ``request_expiration``."""
        now = int(self._clock.now())
        if expiration is None and self.request_expiration is not None:
            expiration = now + math.ceil(self.request_expiration)
        tags = [["p", self._wallet.hex]]
        if self.scheme is Scheme.NIP44_V2:
            tags.append(["encryption", self.scheme.value])
        if expiration is not None:
            tags.append(["expiration", str(expiration)])
        return sign_event(
            self._secret,
            kind=Kind.NWC_REQUEST,
            content=seal_content(
                self._secret, self._wallet, self.scheme, encode_request(method, params)
            ),
            tags=tags,
            created_at=now,
        )

    def _open(self, event: Event) -> Response | None:
        try:
            return decode_response(
                open_content(self._secret, self._wallet, self.scheme, event.content)
            )
        except (DecryptionError, InvalidMessage) as exc:
            log.info("ignoring an unreadable response %s: %s", event.id, exc)
            return None

    async def _send(
        self, method: str, params: Mapping[str, Any], expiration: int | None = None
    ) -> AsyncGenerator[Event, None]:
        """Subscribe for the responses, publish the request, and yield the response events.

        Never waits for the relays' ``OK`` before listening (some relays never send
        one for ephemeral kinds), but fails at once if every relay refuses the request.
        """
        request = self._request_event(method, params, expiration)
        subscription = await self._pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(self._wallet.hex,),
                    tags={"e": (request.id,)},
                )
            ]
        )
        publishing = asyncio.create_task(self._pool.publish(request, timeout=self._connect_timeout))
        self._background.add(publishing)
        publishing.add_done_callback(self._background.discard)
        try:
            while not publishing.done():
                get = asyncio.ensure_future(subscription.get())
                await asyncio.wait({get, publishing}, return_when=asyncio.FIRST_COMPLETED)
                if get.done():
                    yield get.result()
                    continue
                get.cancel()
                result = publishing.result()
                if not result.ok and not result.unconfirmed:
                    raise NWCError("OTHER", f"no relay accepted the request: {result.rejected}")
            while True:
                yield await subscription.get()
        finally:
            await subscription.close()

    async def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        expiration: int | None = None,
    ) -> Mapping[str, Any]:
        """Send one request and return its ``result``.

        ``expiration`` (unix seconds) is sent as the NIP-47 ``expiration`` tag: a wallet
        that honours it never acts on the request after then, so a request whose answer
        was lost cannot be carried out later than that.

        Raises:
            NWCError: the wallet answered with an error.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        responses = self._send(method, params or {}, expiration)
        try:
            async with asyncio.timeout(timeout or self.timeout):
                async for event in responses:
                    response = self._open(event)
                    if response is None:
                        continue
                    if response.error is not None:
                        raise NWCError(response.error.code, response.error.message)
                    return response.result or {}
        finally:
            await responses.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_info(self, *, timeout: float | None = None) -> Mapping[str, Any]:
        return await self.call("get_info", timeout=timeout)

    async def get_balance(self, *, timeout: float | None = None) -> int:
        """Balance in msat."""
        return int((await self.call("get_balance", timeout=timeout))["balance"])

    async def get_budget(self, *, timeout: float | None = None) -> Budget | None:
        """This connection's budget and what is used of it; None: it has no budget."""
        return Budget.from_json(await self.call("get_budget", timeout=timeout))

    async def pay_invoice(
        self,
        invoice: str,
        *,
        amount_msat: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """Pay an invoice; ``metadata`` (yours, at most 4096 characters of JSON) is kept
        with the payment and comes back in lookups and lists."""
        params: dict[str, Any] = {"invoice": invoice}
        if amount_msat is not None:
            params["amount"] = amount_msat
        if metadata is not None:
            params["metadata"] = dict(metadata)
        return await self.call("pay_invoice", params, timeout=timeout)

    async def pay_keysend(
        self,
        pubkey: str,
        amount_msat: int,
        *,
        preimage: str | None = None,
        tlv_records: Sequence[tuple[int, str]] = (),
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """A keysend; ``tlv_records`` as ``(type, hex value)`` pairs."""
        params: dict[str, Any] = {"pubkey": pubkey, "amount": amount_msat}
        if preimage is not None:
            params["preimage"] = preimage
        if tlv_records:
            params["tlv_records"] = [{"type": t, "value": v} for t, v in tlv_records]
        if metadata is not None:
            params["metadata"] = dict(metadata)
        return await self.call("pay_keysend", params, timeout=timeout)

    async def make_invoice(
        self,
        amount_msat: int,
        *,
        description: str | None = None,
        expiry: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Transaction:
        params: dict[str, Any] = {"amount": amount_msat}
        if description is not None:
            params["description"] = description
        if expiry is not None:
            params["expiry"] = expiry
        if metadata is not None:
            params["metadata"] = dict(metadata)
        return Transaction.from_json(await self.call("make_invoice", params, timeout=timeout))

    async def make_hold_invoice(
        self,
        amount_msat: int,
        payment_hash: str,
        *,
        description: str | None = None,
        expiry: int | None = None,
        min_cltv_expiry_delta: int | None = None,
        timeout: float | None = None,
    ) -> Transaction:
        """An invoice for ``payment_hash`` (you keep its preimage): its payment is held
        (a ``hold_invoice_accepted`` notification) until you settle or cancel it."""
        params: dict[str, Any] = {"amount": amount_msat, "payment_hash": payment_hash}
        if description is not None:
            params["description"] = description
        if expiry is not None:
            params["expiry"] = expiry
        if min_cltv_expiry_delta is not None:
            params["min_cltv_expiry_delta"] = min_cltv_expiry_delta
        result = await self.call("make_hold_invoice", params, timeout=timeout)
        return Transaction.from_json(result)

    async def settle_hold_invoice(self, preimage: str, *, timeout: float | None = None) -> None:
        """Take the held payment of a hold invoice by revealing its preimage."""
        await self.call("settle_hold_invoice", {"preimage": preimage}, timeout=timeout)

    async def cancel_hold_invoice(self, payment_hash: str, *, timeout: float | None = None) -> None:
        """Give a held payment back to its payer (or make the invoice unpayable)."""
        await self.call("cancel_hold_invoice", {"payment_hash": payment_hash}, timeout=timeout)

    async def lookup_invoice(
        self,
        *,
        payment_hash: str | None = None,
        invoice: str | None = None,
        timeout: float | None = None,
    ) -> Transaction:
        params = {"payment_hash": payment_hash} if payment_hash else {"invoice": invoice}
        return Transaction.from_json(await self.call("lookup_invoice", params, timeout=timeout))

    async def list_transactions(
        self, *, timeout: float | None = None, **params: Any
    ) -> list[Transaction]:
        result = await self.call("list_transactions", params, timeout=timeout)
        return [Transaction.from_json(tx) for tx in result.get("transactions", [])]

    async def sign_message(self, message: str) -> str:
        return str((await self.call("sign_message", {"message": message}))["signature"])

    # -- batches -------------------------------------------------------------------------

    def batch_timeout(self, count: int) -> float:
        """A batch may take longer than one payment: grow the timeout with its size."""
        return self.timeout + 0.5 * count

    async def multi_pay_invoice(
        self, invoices: Sequence[str | InvoiceRequest], *, timeout: float | None = None
    ) -> list[PaymentResult]:
        """Pay several invoices; one result per invoice, in input order."""
        items = _invoice_items(invoices)
        results = {r.id: r async for r in self._batch(items, timeout)}
        return [results[item.id] for item in items]

    def multi_pay_invoice_iter(
        self, invoices: Sequence[str | InvoiceRequest], *, timeout: float | None = None
    ) -> AsyncIterator[PaymentResult]:
        """Pay several invoices; yield each result as it arrives (then timeouts)."""
        return self._batch(_invoice_items(invoices), timeout)

    async def multi_pay_keysend(
        self, keysends: Sequence[KeysendRequest], *, timeout: float | None = None
    ) -> list[PaymentResult]:
        """Several keysends; one result per keysend (``invoice`` holds the pubkey), in order."""
        items = _keysend_items(keysends)
        results = {r.id: r async for r in self._batch(items, timeout)}
        return [results[item.id] for item in items]

    def multi_pay_keysend_iter(
        self, keysends: Sequence[KeysendRequest], *, timeout: float | None = None
    ) -> AsyncIterator[PaymentResult]:
        """Several keysends; yield each result as it arrives (then timeouts)."""
        return self._batch(_keysend_items(keysends), timeout)

    async def _batch(
        self, items: list[_BatchItem], timeout: float | None
    ) -> AsyncIterator[PaymentResult]:
        limit = timeout if timeout is not None else self.batch_timeout(len(items))
        method = items[0].batch_method if items else "multi_pay_invoice"
        stream: AsyncIterator[PaymentResult]
        if method not in self.info.methods:
            stream = self._one_by_one(items, limit)
        elif len(items) <= self.max_batch_items:
            stream = self._multi(method, items, limit)
        else:
            # Above the service's item limit: several requests at once (the ids are unique
            # over the whole batch, each request's answers are matched on their own).
            size = self.max_batch_items
            chunks = [items[i : i + size] for i in range(0, len(items), size)]
            stream = _merge([self._multi(method, chunk, limit) for chunk in chunks])
        async for result in stream:
            yield result

    async def _multi(
        self, method: str, items: list[_BatchItem], limit: float
    ) -> AsyncIterator[PaymentResult]:
        list_key = "invoices" if method == "multi_pay_invoice" else "keysends"
        responses = self._send(method, {list_key: [item.params for item in items]})
        pending = {item.id: item for item in items}
        # A wallet that ignores ids tags with the payment hash (or keysend pubkey).
        aliases = {item.alias: item.id for item in items if item.alias}
        try:
            async with asyncio.timeout(limit):
                async for event in responses:
                    response = self._open(event)
                    if response is None:
                        continue
                    d_tag = event.tag_value("d")
                    item_id = next(
                        (
                            key
                            for key in (d_tag, aliases.get(d_tag or ""),
                                        aliases.get(event.tag_value("payment_hash") or ""))
                            if key in pending
                        ),
                        None,
                    )  # fmt: skip
                    if item_id is not None:
                        yield pending.pop(item_id).result(response)
                    elif d_tag is None and response.error is not None:
                        # A whole-request error answers every remaining item.
                        for rest in list(pending):
                            yield pending.pop(rest).result(response)
                    if not pending:
                        break
        except TimeoutError:
            pass
        finally:
            await responses.aclose()
        for item in pending.values():
            yield item.timed_out(limit)

    async def _one_by_one(
        self, items: list[_BatchItem], limit: float
    ) -> AsyncIterator[PaymentResult]:
        """The wallet lacks the batch method: the same results from single requests."""
        queue: asyncio.Queue[PaymentResult] = asyncio.Queue()

        async def pay(item: _BatchItem) -> None:
            try:
                result = await self.call(item.single_method, item.single_params, timeout=limit)
                outcome = item.result(Response(item.single_method, result))
            except NWCError as exc:
                outcome = item.result(
                    Response(item.single_method, error=ErrorPayload(exc.wallet_code, exc.message))
                )
            except TimeoutError:
                outcome = item.timed_out(limit)
            await queue.put(outcome)

        tasks = [asyncio.create_task(pay(item)) for item in items]
        try:
            for _ in items:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    # -- notifications -------------------------------------------------------------------

    async def notifications(
        self, *, on_subscribed: Callable[[], object] | None = None
    ) -> AsyncGenerator[Notification, None]:
        """Notifications (``payment_received``, ``payment_sent``, ``hold_invoice_accepted``)
        from now on.

        ``on_subscribed`` is called once the relays confirmed the subscription (their
        end of stored events), or after ``info_timeout``: notifications sent from then
        on arrive.
        """
        kind = (
            Kind.NWC_NOTIFICATION if self.scheme is Scheme.NIP44_V2 else Kind.NWC_NOTIFICATION_NIP04
        )
        subscription = await self._pool.subscribe(
            [
                Filter(
                    kinds=(kind,),
                    authors=(self._wallet.hex,),
                    tags={"p": (self._secret.public_key.hex,)},
                    since=int(self._clock.now()),
                )
            ]
        )
        try:
            if on_subscribed is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._info_timeout):
                        await subscription.eose.wait()
                on_subscribed()
            async for event in subscription:
                try:
                    data = json.loads(
                        open_content(self._secret, self._wallet, self.scheme, event.content)
                    )
                    yield Notification(
                        str(data["notification_type"]),
                        Transaction.from_json(data["notification"]),
                    )
                except (DecryptionError, InvalidMessage, ValueError, KeyError, TypeError):
                    log.info("ignoring an unreadable notification %s", event.id)
        finally:
            await subscription.close()


@dataclass(frozen=True, slots=True)
class _BatchItem:
    """One item of a batch, with what is needed to send it either way and match its answer."""

    id: str
    target: str  # the invoice, or the keysend destination
    params: dict[str, Any]  # the item inside the multi_* request
    single_method: str
    single_params: dict[str, Any]
    alias: str | None  # payment hash (invoices) or pubkey (keysends)

    @property
    def batch_method(self) -> str:
        return "multi_" + self.single_method

    def result(self, response: Response) -> PaymentResult:
        if response.error is not None:
            return PaymentResult(self.target, self.id, False, error=response.error)
        result = response.result or {}
        return PaymentResult(
            self.target,
            self.id,
            True,
            str(result.get("preimage", "")),
            _optional_int(result.get("fees_paid")),
        )

    def timed_out(self, limit: float) -> PaymentResult:
        return PaymentResult(
            self.target,
            self.id,
            False,
            error=ErrorPayload(TIMEOUT_CODE, f"no answer from the wallet within {limit:.0f} s"),
        )


def _unique_ids(wanted: Sequence[str | None]) -> list[str]:
    """The caller's ids where unique, else the item's index: every item needs its own."""
    used: set[str] = set()
    ids: list[str] = []
    for index, item_id in enumerate(wanted):
        chosen = item_id if item_id and item_id not in used else str(index)
        while chosen in used:
            chosen = f"{chosen}.{index}"
        used.add(chosen)
        ids.append(chosen)
    return ids


def _invoice_items(invoices: Sequence[str | InvoiceRequest]) -> list[_BatchItem]:
    requests = [e if isinstance(e, InvoiceRequest) else InvoiceRequest(e) for e in invoices]
    items = []
    for request, item_id in zip(requests, _unique_ids([r.id for r in requests]), strict=True):
        single: dict[str, Any] = {"invoice": request.invoice}
        if request.amount_msat is not None:
            single["amount"] = request.amount_msat
        try:
            alias: str | None = bolt11.decode(request.invoice).payment_hash
        except InvalidInvoice:
            alias = None
        items.append(
            _BatchItem(
                item_id, request.invoice, {"id": item_id, **single}, "pay_invoice", single, alias
            )
        )
    return items


def _keysend_items(keysends: Sequence[KeysendRequest]) -> list[_BatchItem]:
    items = []
    for request, item_id in zip(keysends, _unique_ids([k.id for k in keysends]), strict=True):
        single: dict[str, Any] = {"pubkey": request.pubkey, "amount": request.amount_msat}
        if request.preimage is not None:
            single["preimage"] = request.preimage
        if request.tlv_records:
            single["tlv_records"] = [{"type": t, "value": v} for t, v in request.tlv_records]
        items.append(
            _BatchItem(
                item_id, request.pubkey, {"id": item_id, **single}, "pay_keysend", single,
                request.pubkey,
            )
        )  # fmt: skip
    return items


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(value: float) -> str:
    """``2``, ``1.5``: seconds as people write them."""
    return f"{value:.1f}".removesuffix(".0")


async def _merge(streams: Sequence[AsyncIterator[PaymentResult]]) -> AsyncIterator[PaymentResult]:
    """The results of several streams, as they arrive; an error in one is raised."""
    queue: asyncio.Queue[PaymentResult | BaseException | None] = asyncio.Queue()

    async def drain(stream: AsyncIterator[PaymentResult]) -> None:
        try:
            async for result in stream:
                queue.put_nowait(result)
        except Exception as exc:
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(drain(stream)) for stream in streams]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _probe(url: str, timeout: float) -> str | None:
    """Why a relay cannot be reached over TCP, or None (it can, or no answer in time)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        return "not a valid URL"
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(max(timeout, 0.01)):
            try:
                addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror:
                return f"unknown host {host!r}"
            failures: list[OSError] = []
            for _, _, _, _, address in addresses:
                try:
                    _, writer = await asyncio.open_connection(str(address[0]), int(address[1]))
                except OSError as exc:
                    failures.append(exc)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return None
    except TimeoutError:
        return None  # cannot tell yet: the connect timeout decides
    if not failures:
        return f"no address for {host!r}"
    if all(exc.errno == errno.ECONNREFUSED for exc in failures):
        return "connection refused"
    first = failures[0]
    return (first.strerror or str(first) or type(first).__name__).lower()


async def _first_or_eose(subscription: Subscription, timeout: float) -> Event | None:
    """The first event, or None once every relay sent EOSE (or on timeout)."""
    get = asyncio.ensure_future(subscription.get())
    eose = asyncio.ensure_future(subscription.eose.wait())
    try:
        done, _ = await asyncio.wait({get, eose}, timeout=timeout, return_when="FIRST_COMPLETED")
        if get in done:
            return get.result()
        # EOSE may race with the event itself: take it if it is already queued.
        return subscription.get_nowait()
    finally:
        for future in (get, eose):
            future.cancel()
        await asyncio.gather(get, eose, return_exceptions=True)
