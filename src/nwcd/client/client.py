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
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nwcd.clock import SYSTEM_CLOCK, Clock
from nwcd.errors import DecryptionError, ErrorCode, InvalidMessage, RequestError
from nwcd.nip47.encryption import Scheme, open_content, seal_content
from nwcd.nip47.info import parse_info_event
from nwcd.nip47.methods import encode_request
from nwcd.nip47.results import ErrorPayload, Response, Transaction, decode_response
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool, Subscription

__all__ = [
    "InvoiceRequest",
    "NWCClient",
    "NWCError",
    "Notification",
    "PaymentResult",
    "WalletInfo",
]

log = logging.getLogger("nwcd.client")

TIMEOUT_CODE = "TIMEOUT"


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
class PaymentResult:
    """The result of one invoice: ``preimage`` when ``ok``, else ``error``."""

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
    """A ``payment_received`` / ``payment_sent`` notification."""

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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.uri = uri
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._info_timeout = info_timeout
        self._clock = clock
        self._pool = RelayPool(uri.relays, clock=clock)
        self._secret = uri.secret
        self._wallet = uri.wallet_pubkey
        self.info = WalletInfo(frozenset(), (Scheme.NIP04,), found=False)
        self.scheme = Scheme.NIP04

    @classmethod
    def from_uri(cls, uri: str | ConnectionUri, **options: Any) -> NWCClient:
        """Build a client from a ``nostr+walletconnect://`` URI."""
        parsed = uri if isinstance(uri, ConnectionUri) else ConnectionUri.parse(uri)
        return cls(parsed, **options)

    async def __aenter__(self) -> NWCClient:
        self._pool.start()
        try:
            await self._pool.wait_connected(self._connect_timeout)
            self.info = await self._read_info()
            self.scheme = self.info.schemes[0]
        except BaseException:
            await self._pool.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pool.close()

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

    def _request_event(self, method: str, params: Mapping[str, Any]) -> Event:
        tags = [["p", self._wallet.hex]]
        if self.scheme is Scheme.NIP44_V2:
            tags.append(["encryption", self.scheme.value])
        return sign_event(
            self._secret,
            kind=Kind.NWC_REQUEST,
            content=seal_content(
                self._secret, self._wallet, self.scheme, encode_request(method, params)
            ),
            tags=tags,
            created_at=int(self._clock.now()),
        )

    def _open(self, event: Event) -> Response | None:
        try:
            return decode_response(
                open_content(self._secret, self._wallet, self.scheme, event.content)
            )
        except (DecryptionError, InvalidMessage) as exc:
            log.info("ignoring an unreadable response %s: %s", event.id, exc)
            return None

    async def _send(self, method: str, params: Mapping[str, Any]) -> tuple[Event, Subscription]:
        """Subscribe for responses, then publish the request (never the other way round)."""
        request = self._request_event(method, params)
        subscription = await self._pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(self._wallet.hex,),
                    tags={"e": (request.id,)},
                )
            ]
        )
        result = await self._pool.publish(request, timeout=self._connect_timeout)
        if not result.ok and not result.unconfirmed:
            await subscription.close()
            raise NWCError("OTHER", f"no relay accepted the request: {result.rejected}")
        return request, subscription

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Mapping[str, Any]:
        """Send one request and return its ``result``.

        Raises:
            NWCError: the wallet answered with an error.
            TimeoutError: no answer within ``timeout`` seconds.
        """
        _, subscription = await self._send(method, params or {})
        try:
            async with asyncio.timeout(timeout or self.timeout):
                async for event in subscription:
                    response = self._open(event)
                    if response is None:
                        continue
                    if response.error is not None:
                        raise NWCError(response.error.code, response.error.message)
                    return response.result or {}
        finally:
            await subscription.close()
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_info(self) -> Mapping[str, Any]:
        return await self.call("get_info")

    async def get_balance(self) -> int:
        """Balance in msat."""
        return int((await self.call("get_balance"))["balance"])

    async def pay_invoice(
        self, invoice: str, *, amount_msat: int | None = None, timeout: float | None = None
    ) -> Mapping[str, Any]:
        params: dict[str, Any] = {"invoice": invoice}
        if amount_msat is not None:
            params["amount"] = amount_msat
        return await self.call("pay_invoice", params, timeout=timeout)

    async def pay_keysend(
        self, pubkey: str, amount_msat: int, *, preimage: str | None = None
    ) -> Mapping[str, Any]:
        params: dict[str, Any] = {"pubkey": pubkey, "amount": amount_msat}
        if preimage is not None:
            params["preimage"] = preimage
        return await self.call("pay_keysend", params)

    async def make_invoice(
        self, amount_msat: int, *, description: str | None = None, expiry: int | None = None
    ) -> Transaction:
        params: dict[str, Any] = {"amount": amount_msat}
        if description is not None:
            params["description"] = description
        if expiry is not None:
            params["expiry"] = expiry
        return Transaction.from_json(await self.call("make_invoice", params))

    async def lookup_invoice(
        self, *, payment_hash: str | None = None, invoice: str | None = None
    ) -> Transaction:
        params = {"payment_hash": payment_hash} if payment_hash else {"invoice": invoice}
        return Transaction.from_json(await self.call("lookup_invoice", params))

    async def list_transactions(self, **params: Any) -> list[Transaction]:
        result = await self.call("list_transactions", params)
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
        items = _items(invoices)
        results = {r.id: r async for r in self.multi_pay_invoice_iter(items, timeout=timeout)}
        return [results[item.id or ""] for item in items]

    async def multi_pay_invoice_iter(
        self, invoices: Sequence[str | InvoiceRequest], *, timeout: float | None = None
    ) -> AsyncIterator[PaymentResult]:
        """Pay several invoices; yield each result as it arrives (then timeouts)."""
        items = _items(invoices)
        limit = timeout if timeout is not None else self.batch_timeout(len(items))
        if "multi_pay_invoice" in self.info.methods:
            stream = self._multi_pay(items, limit)
        else:
            stream = self._pay_each(items, limit)
        async for result in stream:
            yield result

    async def _multi_pay(
        self, items: list[InvoiceRequest], limit: float
    ) -> AsyncIterator[PaymentResult]:
        by_id = {item.id or "": item for item in items}
        params = {"invoices": [_invoice_params(item) for item in items]}
        _, subscription = await self._send("multi_pay_invoice", params)
        pending = dict(by_id)
        hash_to_id: dict[str, str] = {}
        try:
            async with asyncio.timeout(limit):
                while pending:
                    event = await subscription.get()
                    response = self._open(event)
                    if response is None:
                        continue
                    item_id = event.tag_value("d")
                    if item_id not in pending:
                        item_id = hash_to_id.get(event.tag_value("payment_hash") or "")
                    if item_id is None or item_id not in pending:
                        if event.tag_value("d") is None and response.error is not None:
                            # A whole-request error: it answers every remaining item.
                            for rest in list(pending):
                                yield _result(pending.pop(rest), response)
                        continue
                    yield _result(pending.pop(item_id), response)
        except TimeoutError:
            pass
        finally:
            await subscription.close()
        for item in pending.values():
            yield _timed_out(item, limit)

    async def _pay_each(
        self, items: list[InvoiceRequest], limit: float
    ) -> AsyncIterator[PaymentResult]:
        queue: asyncio.Queue[PaymentResult] = asyncio.Queue()

        async def pay(item: InvoiceRequest) -> None:
            try:
                result = await self.pay_invoice(
                    item.invoice, amount_msat=item.amount_msat, timeout=limit
                )
                outcome = PaymentResult(
                    item.invoice,
                    item.id or "",
                    True,
                    str(result.get("preimage", "")),
                    _optional_int(result.get("fees_paid")),
                )
            except NWCError as exc:
                outcome = PaymentResult(
                    item.invoice,
                    item.id or "",
                    False,
                    error=ErrorPayload(exc.wallet_code, exc.message),
                )
            except TimeoutError:
                outcome = _timed_out(item, limit)
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

    async def notifications(self) -> AsyncIterator[Notification]:
        """``payment_received`` / ``payment_sent`` notifications from now on."""
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


def _items(invoices: Sequence[str | InvoiceRequest]) -> list[InvoiceRequest]:
    """Give every item a unique id (keeping the caller's where unique)."""
    items: list[InvoiceRequest] = []
    used: set[str] = set()
    for index, entry in enumerate(invoices):
        item = entry if isinstance(entry, InvoiceRequest) else InvoiceRequest(entry)
        item_id = item.id if item.id and item.id not in used else str(index)
        while item_id in used:
            item_id = f"{item_id}.{index}"
        used.add(item_id)
        items.append(InvoiceRequest(item.invoice, item.amount_msat, item_id))
    return items


def _invoice_params(item: InvoiceRequest) -> dict[str, Any]:
    params: dict[str, Any] = {"id": item.id, "invoice": item.invoice}
    if item.amount_msat is not None:
        params["amount"] = item.amount_msat
    return params


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _result(item: InvoiceRequest, response: Response) -> PaymentResult:
    if response.error is not None:
        return PaymentResult(item.invoice, item.id or "", False, error=response.error)
    result = response.result or {}
    return PaymentResult(
        item.invoice,
        item.id or "",
        True,
        str(result.get("preimage", "")),
        _optional_int(result.get("fees_paid")),
    )


def _timed_out(item: InvoiceRequest, limit: float) -> PaymentResult:
    return PaymentResult(
        item.invoice,
        item.id or "",
        False,
        error=ErrorPayload(TIMEOUT_CODE, f"no answer from the wallet within {limit:.0f} s"),
    )


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
