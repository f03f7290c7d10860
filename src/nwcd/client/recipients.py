"""Pay many recipients in one call: lightning addresses, LNURL-pay, invoices and keysend
nodes, mixed.

Two steps, so that ``--dry-run`` is the first one alone:

1. :func:`plan` resolves every recipient concurrently (an LNURL-pay recipient: its pay
   parameters, then an invoice for the amount, checked before anything is paid; see
   :mod:`nwcd.recipients.resolve`). A recipient that cannot be resolved gets its failed
   result at once and never holds the others up.
2. :func:`pay_planned` pays what was resolved in **one** ``multi_pay_invoice`` (and one
   ``multi_pay_keysend`` for the keysend recipients, at the same time); the client falls
   back to concurrent single payments when the wallet lacks the batch method.

The result is one :class:`RecipientResult` per recipient, in input order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nwcd import bolt11
from nwcd.client.client import TIMEOUT_CODE, InvoiceRequest, KeysendRequest
from nwcd.errors import InvalidInvoice
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import (
    InvoiceTarget,
    KeysendTarget,
    LnurlTarget,
    PayParams,
    SuccessAction,
    encode_lnurl,
    parse_target,
    reveal,
)
from nwcd.recipients.resolve import new_http_client, pay_params, resolve
from nwcd.recipients.split import split_total
from nwcd.recipients.value_block import ValueBlock, boostagram, tlv_records, value_amounts
from nwcd.recipients.zap import zap_request

if TYPE_CHECKING:
    import httpx

    from nwcd.client.client import NWCClient, PaymentResult
    from nwcd.nostr.event import Event
    from nwcd.nostr.keys import SecretKey

__all__ = [
    "Planned",
    "Recipient",
    "RecipientResult",
    "ZapAsk",
    "dry_run",
    "pay_planned",
    "pay_recipients",
    "plan",
    "split_recipients",
    "value_block_recipients",
]

Status = Literal["paid", "failed", "unknown", "resolved", "skipped"]


@dataclass(frozen=True, slots=True)
class ZapAsk:
    """Make a recipient's payment a NIP-57 zap: the zap request is signed with ``secret``
    (the zapper's Nostr key) once the recipient's LNURL endpoint says it takes zaps."""

    secret: SecretKey
    recipient_pubkey: str
    relays: tuple[str, ...]
    event_id: str | None = None
    created_at: int | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who to pay and how much: ``target`` as the user gave it (``name@host``,
    ``lnurl1...``, a BOLT-11 invoice or a node pubkey). ``amount_msat`` None takes an
    invoice's own amount. ``tlv_records`` go with a keysend (e.g. a boostagram)."""

    target: str
    amount_msat: int | None = None
    comment: str | None = None
    tlv_records: tuple[tuple[int, str], ...] = ()
    zap: ZapAsk | None = None
    skip_below_minimum: bool = False
    """A value-block share below the server's ``minSendable`` is not sent (``skipped``,
    not ``failed``); its part is not given to the others."""


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient. ``status``: ``paid``; ``failed`` (``error`` says
    why; nothing was paid); ``unknown`` (no answer in time: the payment may still
    complete); ``resolved`` (a dry run: it would be paid ``invoice``); ``skipped`` (a
    value-block share below what the recipient accepts: not sent, ``error`` says why)."""

    recipient: str
    amount_msat: int | None
    status: Status
    invoice: str | None = None
    payment_hash: str | None = None
    fee_msat: int | None = None
    preimage: str | None = None
    error: str | None = None
    success_action: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "paid"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "recipient": self.recipient,
            "amount_msat": self.amount_msat,
            "ok": self.ok,
            "status": self.status,
            "invoice": self.invoice,
            "payment_hash": self.payment_hash,
        }
        if self.ok:
            data.update(preimage=self.preimage, fee_msat=self.fee_msat)
        elif self.status != "resolved":
            data["error"] = self.error
        if self.success_action is not None:
            data["success_action"] = self.success_action
        return data


@dataclass(frozen=True, slots=True)
class Planned:
    """A recipient ready to pay: an invoice (``pubkey`` None) or a keysend.
    ``amountless``: the invoice names no amount, so the request must (``amount_msat``)."""

    recipient: Recipient
    amount_msat: int
    invoice: str | None = None
    payment_hash: str | None = None
    pubkey: str | None = None
    success_action: SuccessAction | None = None
    amountless: bool = False

    def result(self, status: Status, **fields: Any) -> RecipientResult:
        return RecipientResult(
            self.recipient.target,
            self.amount_msat,
            status,
            invoice=self.invoice,
            payment_hash=self.payment_hash,
            **fields,
        )


def split_recipients(
    total_msat: int, shares: Sequence[tuple[str, float]], *, comment: str | None = None
) -> list[Recipient]:
    """``total_msat`` split over ``(target, share)`` pairs by the rule of
    :func:`nwcd.recipients.split.split_total` (whole sats; the remainder to the largest
    share). Recipients whose part rounds to nothing are left out."""
    amounts = split_total(total_msat, [share for _, share in shares])
    return [
        Recipient(target, amount, comment)
        for (target, _), amount in zip(shares, amounts, strict=True)
        if amount > 0
    ]


def _failed(recipient: Recipient, reason: str) -> RecipientResult:
    return RecipientResult(recipient.target, recipient.amount_msat, "failed", error=reason)


def _invoice_plan(recipient: Recipient, target: InvoiceTarget) -> Planned:
    try:
        decoded = bolt11.decode(target.invoice)
    except InvalidInvoice as exc:
        raise RecipientError(f"not a valid invoice: {exc}") from exc
    amount = decoded.amount_msat
    if amount is None:
        if recipient.amount_msat is None:
            raise RecipientError("the invoice has no amount: give one")
        amount = recipient.amount_msat
    elif recipient.amount_msat is not None and recipient.amount_msat != amount:
        raise RecipientError(
            f"the invoice asks {amount} msat, not the {recipient.amount_msat} msat given"
        )
    return Planned(
        recipient,
        amount,
        invoice=target.invoice,
        payment_hash=decoded.payment_hash,
        amountless=decoded.amount_msat is None,
    )


def _zap_request(
    params: PayParams, target: LnurlTarget, recipient: Recipient, amount: int
) -> Event | None:
    """The signed kind-9734 request that makes this payment a zap (the comment goes in
    its content), or None for a plain payment."""
    zap = recipient.zap
    if zap is None:
        return None
    if not params.allows_nostr or not params.nostr_pubkey:
        raise RecipientError("this recipient's lightning address does not take zaps")
    return zap_request(
        zap.secret,
        recipient_pubkey=zap.recipient_pubkey,
        amount_msat=amount,
        relays=zap.relays,
        lnurl=encode_lnurl(target.url),
        event_id=zap.event_id,
        comment=recipient.comment or "",
        created_at=int(time.time()) if zap.created_at is None else zap.created_at,
    )


async def _plan_one(
    recipient: Recipient | RecipientResult, http: httpx.AsyncClient
) -> Planned | RecipientResult:
    if isinstance(recipient, RecipientResult):
        return recipient
    try:
        target = parse_target(recipient.target)
        if isinstance(target, InvoiceTarget):
            return _invoice_plan(recipient, target)
        amount = recipient.amount_msat
        if amount is None or amount <= 0:
            raise RecipientError("give an amount for this recipient")
        if isinstance(target, KeysendTarget):
            return Planned(recipient, amount, pubkey=target.pubkey)
        params = await pay_params(http, target)
        if recipient.skip_below_minimum and amount < params.min_sendable_msat:
            return RecipientResult(
                recipient.target,
                amount,
                "skipped",
                error=f"below the {params.min_sendable_msat} msat the recipient accepts",
            )
        zap = _zap_request(params, target, recipient, amount)
        comment = None if zap is not None else recipient.comment
        resolved = await resolve(
            http, target, amount, comment=comment, zap_request=zap, params=params
        )
    except RecipientError as exc:
        return _failed(recipient, exc.reason)
    return Planned(
        recipient,
        amount,
        invoice=resolved.invoice,
        payment_hash=resolved.payment_hash,
        success_action=resolved.success_action,
    )


@contextlib.asynccontextmanager
async def _http(http: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if http is not None:
        yield http
        return
    async with new_http_client() as client:
        yield client


async def plan(
    recipients: Sequence[Recipient | RecipientResult], *, http: httpx.AsyncClient | None = None
) -> list[Planned | RecipientResult]:
    """Resolve every recipient at once; a failed one is its :class:`RecipientResult` (and
    a result given in ``recipients``, e.g. a zapped pubkey without an address, stays)."""
    async with _http(http) as client:
        return list(await asyncio.gather(*(_plan_one(r, client) for r in recipients)))


def _paid(planned: Planned, result: PaymentResult) -> RecipientResult:
    if result.ok:
        action = planned.success_action
        return planned.result(
            "paid",
            preimage=result.preimage,
            fee_msat=result.fees_paid_msat,
            success_action=reveal(action, result.preimage or "") if action else None,
        )
    error = result.error
    reason = f"{error.code}: {error.message}" if error else "payment failed"
    status: Status = "unknown" if error is not None and error.code == TIMEOUT_CODE else "failed"
    return planned.result(status, error=reason)


async def pay_planned(
    client: NWCClient,
    planned: Sequence[Planned | RecipientResult],
    *,
    timeout: float | None = None,
    on_result: Callable[[int, RecipientResult], None] | None = None,
) -> list[RecipientResult]:
    """Pay the resolved recipients in one batch per kind; results in input order.
    ``on_result(index, result)`` is called as each arrives (failed plans first)."""
    results: dict[int, RecipientResult] = {}

    def done(index: int, result: RecipientResult) -> None:
        results[index] = result
        if on_result is not None:
            on_result(index, result)

    invoices: list[InvoiceRequest] = []
    keysends: list[KeysendRequest] = []
    for index, item in enumerate(planned):
        if isinstance(item, RecipientResult):
            done(index, item)
        elif item.pubkey is not None:
            keysends.append(
                KeysendRequest(
                    item.pubkey,
                    item.amount_msat,
                    id=str(index),
                    tlv_records=item.recipient.tlv_records,
                )
            )
        else:
            assert item.invoice is not None
            amount = item.amount_msat if item.amountless else None
            invoices.append(InvoiceRequest(item.invoice, amount, id=str(index)))

    async def drain(stream: AsyncIterator[PaymentResult]) -> None:
        async for result in stream:
            index = int(result.id)
            item = planned[index]
            assert isinstance(item, Planned)
            done(index, _paid(item, result))

    batches = []
    if invoices:
        batches.append(drain(client.multi_pay_invoice_iter(invoices, timeout=timeout)))
    if keysends:
        batches.append(drain(client.multi_pay_keysend_iter(keysends, timeout=timeout)))
    await asyncio.gather(*batches)
    return [results[index] for index in range(len(planned))]


def dry_run(planned: Sequence[Planned | RecipientResult]) -> list[RecipientResult]:
    """What :func:`pay_planned` would pay, paying nothing."""
    return [
        item if isinstance(item, RecipientResult) else item.result("resolved") for item in planned
    ]


async def pay_recipients(
    client: NWCClient,
    recipients: Sequence[Recipient],
    *,
    http: httpx.AsyncClient | None = None,
    timeout: float | None = None,
) -> list[RecipientResult]:
    """Resolve and pay every recipient: one result per recipient, in input order."""
    planned = await plan(recipients, http=http)
    return await pay_planned(client, planned, timeout=timeout)


def value_block_recipients(
    block: ValueBlock,
    total_msat: int,
    *,
    app_name: str = "nwcd",
    action: str = "boost",
    message: str | None = None,
    sender_name: str | None = None,
) -> list[Recipient]:
    """A podcast value block's recipients for ``total_msat``, split by the value spec's
    rule (:func:`nwcd.recipients.value_block.value_amounts`): a node gets a keysend with
    the boostagram record (TLV 7629169) and its own custom record; a lightning address is
    paid through LNURL-pay with the message as its comment, and skipped when its part is
    below the server's minimum. Zero parts are left out."""
    record = boostagram(
        block.podcast,
        block.episode,
        action,
        app_name,
        total_msat,
        sender_name=sender_name,
        message=message,
        podcast_guid=block.podcast_guid,
        episode_guid=block.episode_guid,
    )
    recipients = []
    for who, amount in zip(block.recipients, value_amounts(block, total_msat), strict=True):
        if amount <= 0:
            continue
        if who.type == "node":
            tlvs = tlv_records(who, record, value_msat=amount)
            pairs = tuple((int(tlv["type"]), str(tlv["value"])) for tlv in tlvs)
            recipients.append(Recipient(who.address, amount, tlv_records=pairs))
        else:
            recipients.append(Recipient(who.address, amount, message, skip_below_minimum=True))
    return recipients
