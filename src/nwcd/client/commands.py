"""The client as commands: ``nwcd balance | info | invoice | hold-invoice | settle | cancel |
lookup | history | keysend | watch | call | pay``, each against a wallet given by a
connection URI.

Each handler takes the parsed arguments (see ``nwcd.cli``) and returns the exit code:
0 done; 1 the wallet refused, or a payment failed or has no known outcome yet;
2 the command could not run (usage, URI, relay, no answer). Failures are one line
(:class:`CommandError`). Human output gives amounts in sat and msat and never shows
secrets or preimages (``--json`` has the preimages: it is the wallet's answer); the
JSON printed by ``--json`` is a public interface: fields are only ever added.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import os
import re
import sys
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nwcd import bolt11
from nwcd.errors import InvalidInvoice, InvalidMessage, InvalidUri
from nwcd.nip47.results import Budget, Transaction
from nwcd.nip47.uri import ConnectionUri
from nwcd.text import count, positive_sats

if TYPE_CHECKING:
    import argparse

    from nwcd.client.client import NWCClient, PaymentResult
    from nwcd.client.recipients import Recipient, RecipientResult

__all__ = [
    "DEFAULT_TIMEOUT",
    "HANDLERS",
    "CommandError",
    "format_msat",
    "looks_like_uri",
    "transaction_table",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds a single-request command waits in all (relay, info event and answer)."""

_URI_PREFIXES = ("nostr+walletconnect:", "nostrwalletconnect:")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NODE_PUBKEY = re.compile(r"^0[23][0-9a-fA-F]{64}$")


class CommandError(Exception):
    """A failure shown as one line; ``exit_code`` 2 (could not run) or 1 (refused/failed)."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- small helpers ---------------------------------------------------------------------------


def format_msat(msat: int) -> str:
    """``21 sat (21,000 msat)``; fractions of a sat keep their digits (``1.5 sat``)."""
    sats = f"{msat // 1000:,}" if msat % 1000 == 0 else f"{msat / 1000:,.3f}".rstrip("0")
    return f"{sats} sat ({msat:,} msat)"


def _when(stamp: int | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def looks_like_uri(text: str) -> bool:
    return text.strip().lower().startswith(_URI_PREFIXES)


def _looks_like_invoice(text: str) -> bool:
    return _strip_invoice(text).lower().startswith("ln")


def _strip_invoice(text: str) -> str:
    text = text.strip()
    return text[len("lightning:") :] if text.lower().startswith("lightning:") else text


def _short(invoice: str) -> str:
    """A readable short form of an invoice: its start (network and amount) and end."""
    return invoice if len(invoice) <= 24 else f"{invoice[:14]}…{invoice[-6:]}"


def connection_uri(text: str | None) -> ConnectionUri:
    """The URI given, else ``NWC_URI``; never echoes it (it holds the app's secret)."""
    where = "the connection URI"
    if not text:
        text = os.environ.get("NWC_URI")
        where = "NWC_URI"
    if not text:
        raise CommandError(
            "give the connection URI (nostr+walletconnect://...) as the first argument"
            " or in NWC_URI"
        )
    try:
        return ConnectionUri.parse(text)
    except InvalidUri as exc:
        raise CommandError(
            f"{where} is not valid: {exc} (it looks like"
            " nostr+walletconnect://WALLET_PUBKEY?relay=wss://...&secret=...)"
        ) from None


class _Deadline:
    """All of a command's waiting (relay, info event, answers) within ``total`` seconds."""

    def __init__(self, total: float) -> None:
        importlib.import_module("nwcd.client.client")  # not on the clock: it takes a while
        self.total = total
        self._end = time.monotonic() + total

    def left(self) -> float:
        return max(0.001, self._end - time.monotonic())


@contextlib.asynccontextmanager
async def _wallet(
    uri: ConnectionUri, deadline: _Deadline | None, **options: Any
) -> AsyncIterator[NWCClient]:
    from nwcd.client.client import NWCClient

    if deadline is not None:
        options.setdefault("timeout", deadline.total)
        options.setdefault("connect_timeout", deadline.left())
        options.setdefault("info_timeout", min(5.0, deadline.left()))
    async with NWCClient(uri, **options) as client:
        yield client


def _no_answer(client: NWCClient, seconds: float, what: str = "") -> CommandError:
    hint = ""
    if not client.info.found:
        hint = (
            "; the wallet has published no info event on these relays: is its service"
            " (nwcd serve) running with this connection?"
        )
    return CommandError(
        f"no answer from the wallet within {seconds:g} s{what}"
        f" (relays {', '.join(client.uri.relays)}){hint}"
    )


@contextlib.contextmanager
def _answers(client: NWCClient, deadline: _Deadline) -> Iterator[None]:
    """The wallet's error answers (exit 1), no answer in time and malformed answers (2)."""
    from nwcd.client.client import NWCError

    try:
        yield
    except NWCError as exc:
        raise CommandError(f"the wallet answered {exc}", exit_code=1) from None
    except TimeoutError:
        raise _no_answer(client, deadline.total) from None
    except InvalidMessage as exc:
        raise CommandError(f"the wallet's answer is malformed: {exc}") from None


def _dump(data: Any) -> None:
    print(json.dumps(data, separators=(",", ":"), ensure_ascii=False))


# -- transactions ----------------------------------------------------------------------------


def transaction_table(transactions: Sequence[Transaction]) -> str:
    """A table of transactions (newest first, as wallets list them)."""
    rows = [["TIME", "TYPE", "STATE", "AMOUNT", "FEE", "PAYMENT HASH", "DESCRIPTION"]]
    for tx in transactions:
        description = (tx.description or "").replace("\n", " ")
        rows.append(
            [
                _when(tx.settled_at or tx.created_at),
                tx.type,
                tx.state or "-",
                format_msat(tx.amount_msat),
                format_msat(tx.fees_paid_msat),
                tx.payment_hash[:16],
                description if len(description) <= 40 else description[:39] + "…",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _transaction_lines(tx: Transaction) -> list[str]:
    fields = [
        ("type", tx.type),
        ("state", tx.state or "-"),
        ("amount", format_msat(tx.amount_msat)),
        ("fee", format_msat(tx.fees_paid_msat)),
        ("payment hash", tx.payment_hash),
        ("description", tx.description or "-"),
        ("created", _when(tx.created_at)),
    ]
    if tx.settled_at is not None:
        fields.append(("settled", _when(tx.settled_at)))
    if tx.expires_at is not None:
        fields.append(("expires", _when(tx.expires_at)))
    if tx.invoice:
        fields.append(("invoice", tx.invoice))
    return [f"{label + ':':14}{value}" for label, value in fields]


# -- single requests -------------------------------------------------------------------------


async def balance(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            msat = await client.get_balance(timeout=deadline.left())
    if args.json:
        _dump({"balance": msat})
    else:
        print(f"balance {format_msat(msat)}")
    return 0


async def budget(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            status = await client.get_budget(timeout=deadline.left())
    if args.json:
        _dump({} if status is None else status.to_json())
    else:
        print(_budget_line(status))
    return 0


def _budget_line(status: Budget | None) -> str:
    if status is None:
        return "no budget: this connection's payments are limited only by the wallet"
    left = max(0, status.total_msat - status.used_msat)
    renews = (
        "never renews"
        if status.renews_at is None
        else f"renews {_when(status.renews_at)} ({status.renewal_period})"
    )
    return (
        f"used {format_msat(status.used_msat)} of {format_msat(status.total_msat)}, "
        f"{format_msat(left)} left; {renews}"
    )


async def info(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        offered = sorted(m for m in client.info.methods if m != "notifications")
        try:
            with _answers(client, deadline):
                result = dict(await client.get_info(timeout=deadline.left()))
        except CommandError as exc:
            if exc.exit_code == 1 and offered:
                raise CommandError(
                    f"{exc} (its info event offers: {', '.join(offered)})", exit_code=1
                ) from None
            raise
        scheme = client.scheme.value
        found = client.info.found
        schemes = [s.value for s in client.info.schemes]
    if args.json:
        _dump(
            {
                **result,
                "wallet_pubkey": uri.wallet_pubkey.hex,
                "relays": list(uri.relays),
                "encryption": scheme,
                "info_event": {"found": found, "methods": offered, "encryption": schemes},
            }
        )
        return 0
    block = result.get("block_height")
    fields = [
        ("wallet pubkey", uri.wallet_pubkey.hex),
        ("relays", " ".join(uri.relays)),
        ("encryption", scheme + ("" if found else " (no info event found: assumed)")),
        ("alias", str(result.get("alias") or "-")),
        ("network", str(result.get("network") or "-")),
        ("node pubkey", str(result.get("pubkey") or "-")),
        ("block height", str(block) if block is not None else "-"),
        ("methods", ", ".join(result.get("methods") or offered) or "-"),
        ("notifications", ", ".join(result.get("notifications") or []) or "-"),
    ]
    for label, value in fields:
        print(f"{label + ':':15}{value}")
    return 0


def _amount_msat(args: argparse.Namespace) -> int:
    if args.amount_msat is not None:
        return int(args.amount_msat)
    return int(args.amount_sat) * 1000


async def invoice(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    deadline = _Deadline(args.timeout)
    amount = _amount_msat(args)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            tx = await client.make_invoice(
                amount,
                description=args.description,
                expiry=args.expiry,
                timeout=deadline.left(),
            )
    if args.json:
        _dump(tx.to_json())
        return 0
    print(tx.invoice or "(the wallet sent no invoice string)")
    expires = f", expires {_when(tx.expires_at)}" if tx.expires_at is not None else ""
    print(
        f"{format_msat(tx.amount_msat)}{expires}, payment hash {tx.payment_hash}", file=sys.stderr
    )
    return 0


def _hex64(text: str, what: str) -> str:
    value = text.strip().lower()
    if not _HEX64.match(value):
        raise CommandError(f"{text[:80]!r} is not a {what} (64 hex digits)")
    return value


async def hold_invoice(args: argparse.Namespace) -> int:
    """A hold invoice: for ``--payment-hash``, else for a new preimage printed once (the
    only way to settle it later)."""
    uri = connection_uri(args.uri)
    preimage = None
    if args.payment_hash is None:
        preimage = os.urandom(32).hex()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    else:
        payment_hash = _hex64(args.payment_hash, "payment hash")
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            tx = await client.make_hold_invoice(
                _amount_msat(args),
                payment_hash,
                description=args.description,
                expiry=args.expiry,
                timeout=deadline.left(),
            )
    if args.json:
        _dump({**tx.to_json(), **({"preimage": preimage} if preimage else {})})
        return 0
    print(tx.invoice or "(the wallet sent no invoice string)")
    print(f"{format_msat(tx.amount_msat)}, payment hash {payment_hash}", file=sys.stderr)
    if preimage is not None:
        print(f"preimage {preimage} (keep it: nwcd settle URI PREIMAGE)", file=sys.stderr)
    return 0


async def settle(args: argparse.Namespace) -> int:
    preimage = _hex64(args.preimage, "preimage")
    payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()

    async def end(client: NWCClient, timeout: float) -> None:
        await client.settle_hold_invoice(preimage, timeout=timeout)

    return await _end_hold(args, end, f"settled the hold invoice {payment_hash}")


async def cancel(args: argparse.Namespace) -> int:
    payment_hash = _hex64(args.payment_hash, "payment hash")

    async def end(client: NWCClient, timeout: float) -> None:
        await client.cancel_hold_invoice(payment_hash, timeout=timeout)

    return await _end_hold(args, end, f"canceled the hold invoice {payment_hash}")


async def _end_hold(
    args: argparse.Namespace, end: Callable[[NWCClient, float], Awaitable[None]], done: str
) -> int:
    """Settle or cancel a hold invoice (``end``), then say ``done``."""
    uri = connection_uri(args.uri)
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            await end(client, deadline.left())
    print(done)
    return 0


async def lookup(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    target = _strip_invoice(args.target)
    if _HEX64.match(target):
        query: dict[str, str] = {"payment_hash": target.lower()}
    elif _looks_like_invoice(target):
        query = {"invoice": target}
    else:
        raise CommandError(
            f"{args.target[:80]!r} is neither a payment hash (64 hex digits) nor a"
            " BOLT-11 invoice (lnbc...)"
        )
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            tx = await client.lookup_invoice(**query, timeout=deadline.left())
    if args.json:
        _dump(tx.to_json())
    else:
        print("\n".join(_transaction_lines(tx)))
    return 0


async def history(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    deadline = _Deadline(args.timeout)
    params: dict[str, Any] = {"limit": args.limit}
    if args.type is not None:
        params["type"] = args.type
    if args.unpaid:
        params["unpaid"] = True
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            transactions = await client.list_transactions(timeout=deadline.left(), **params)
    if args.json:
        _dump({"transactions": [tx.to_json() for tx in transactions]})
    elif not transactions:
        print("no transactions" + ("" if args.unpaid else " (--unpaid also lists open ones)"))
    else:
        print(transaction_table(transactions))
    return 0


async def keysend(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    pubkey = args.pubkey.strip().lower()
    if not _NODE_PUBKEY.match(pubkey):
        raise CommandError(
            f"{args.pubkey[:80]!r} is not a node pubkey (66 hex digits starting 02 or 03)"
        )
    amount = _amount_msat(args)
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        try:
            with _answers(client, deadline):
                result = await client.pay_keysend(
                    pubkey, amount, tlv_records=args.tlv, timeout=deadline.left()
                )
        except CommandError as exc:
            if exc.exit_code == 2 and str(exc).startswith("no answer"):
                raise CommandError(
                    f"no answer from the wallet within {deadline.total:g} s: the keysend may"
                    " still complete; check with: nwcd history URI --type outgoing",
                    exit_code=1,
                ) from None
            raise
    if args.json:
        _dump(dict(result))
        return 0
    fee = result.get("fees_paid")
    fee_text = f", fee {format_msat(fee)}" if isinstance(fee, int) else ""
    print(f"paid {format_msat(amount)} by keysend to {pubkey[:12]}…{pubkey[-6:]}{fee_text}")
    return 0


async def call(args: argparse.Namespace) -> int:
    method, params_text, uri_text = args.method, args.params, args.uri
    if (
        uri_text is not None
        and params_text is None
        and not looks_like_uri(uri_text)
        and method.lstrip().startswith("{")
    ):
        # `nwcd call METHOD JSON` with the URI in NWC_URI.
        uri_text, method, params_text = None, uri_text, method
    uri = connection_uri(uri_text)
    params: Any = {}
    if params_text is not None:
        try:
            params = json.loads(params_text)
        except ValueError as exc:
            raise CommandError(f"JSON_PARAMS is not valid JSON: {exc}") from None
        if not isinstance(params, dict):
            raise CommandError("JSON_PARAMS must be a JSON object, e.g. '{\"amount\": 1000}'")
    if method.startswith("multi_"):
        raise CommandError(
            f"{method} answers once per item, call prints one answer: use nwcd pay for"
            " several invoices"
        )
    deadline = _Deadline(args.timeout)
    async with _wallet(uri, deadline) as client:
        with _answers(client, deadline):
            result = await client.call(method, params, timeout=deadline.left())
    if args.json:
        _dump(dict(result))
    else:
        print(json.dumps(dict(result), indent=2, ensure_ascii=False))
    return 0


# -- notifications ---------------------------------------------------------------------------


async def watch(args: argparse.Namespace) -> int:
    uri = connection_uri(args.uri)
    connect = min(args.timeout, 10.0) if args.timeout is not None else 10.0
    seen = 0

    def subscribed() -> None:
        ends = []
        if args.count:
            ends.append(f"after {args.count} notification{'s' if args.count != 1 else ''}")
        if args.timeout is not None:
            ends.append(f"after {args.timeout:g} s")
        ends.append("on Ctrl-C")
        print(
            f"watching notifications for wallet {uri.wallet_pubkey.hex[:12]}"
            f" (stops {' or '.join(ends)})",
            file=sys.stderr,
            flush=True,
        )

    async def run(client: NWCClient) -> None:
        nonlocal seen
        async for note in client.notifications(on_subscribed=subscribed):
            seen += 1
            if args.json:
                _dump({"notification_type": note.type, "notification": note.transaction.to_json()})
            else:
                tx = note.transaction
                print(
                    f"{_when(tx.settled_at or tx.created_at)}  {note.type:16}"
                    f"  {format_msat(tx.amount_msat)}  fee {format_msat(tx.fees_paid_msat)}"
                    f"  hash {tx.payment_hash[:16]}"
                    + (f"  {tx.description!r}" if tx.description else "")
                )
            sys.stdout.flush()
            if args.count and seen >= args.count:
                return

    async with _wallet(
        uri, None, connect_timeout=connect, info_timeout=min(5.0, connect)
    ) as client:
        if args.timeout is None:
            await run(client)
            return 0
        try:
            async with asyncio.timeout(args.timeout):
                await run(client)
        except TimeoutError:
            if args.count:
                raise CommandError(
                    f"{seen} of {args.count} notifications within {args.timeout:g} s",
                    exit_code=1,
                ) from None
    return 0


# -- pay -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Item:
    position: int  # 1-based, in the input
    invoice: str
    payment_hash: str | None
    amount_msat: int | None


def _items(invoices: Sequence[str], amount_msat: int | None) -> list[_Item]:
    items = []
    for position, text in enumerate(invoices, 1):
        try:
            decoded: bolt11.Invoice | None = bolt11.decode(text)
        except InvalidInvoice:
            decoded = None
        amount = decoded.amount_msat if decoded is not None else None
        items.append(
            _Item(
                position,
                text,
                decoded.payment_hash if decoded is not None else None,
                amount if amount is not None else amount_msat,
            )
        )
    return items


async def _earlier_payments(
    client: NWCClient, invoices: Sequence[str], seconds: float
) -> dict[str, str]:
    """Payment hash -> state of this connection's earlier payments of these invoices.

    One ``list_transactions`` (outgoing, since the oldest invoice was made), when the
    connection may list; nothing when it may not or the wallet is slow to answer.
    """
    from nwcd.client.client import NWCError

    decoded = []
    for text in invoices:
        with contextlib.suppress(InvalidInvoice):
            decoded.append(bolt11.decode(text))
    if not decoded or "list_transactions" not in client.info.methods:
        return {}
    wanted = {d.payment_hash for d in decoded}
    since = max(0, min(d.timestamp for d in decoded) - 600)  # allow for clock skew
    found: dict[str, str] = {}
    page = 1000
    try:
        async with asyncio.timeout(seconds):
            for offset in range(0, 5 * page, page):
                batch = await client.list_transactions(
                    type="outgoing", unpaid=True, limit=page, offset=offset, **{"from": since}
                )
                for tx in batch:
                    if tx.payment_hash in wanted and tx.state:
                        found.setdefault(tx.payment_hash, tx.state)
                if len(batch) < page:
                    break
    except (NWCError, TimeoutError, InvalidMessage):
        return {}
    return found


def _state(result: PaymentResult, earlier: str | None) -> str:
    from nwcd.client.client import TIMEOUT_CODE

    if result.ok:
        return "already_paid" if earlier in ("settled", "succeeded") else "paid"
    if result.error is not None and result.error.code == TIMEOUT_CODE:
        return "unknown"
    return "failed"


def _pay_line(item: _Item, count: int, result: PaymentResult, state: str, seconds: float) -> str:
    width = len(str(count))
    where = f"[{item.position:>{width}}/{count}] {_short(item.invoice)}"
    if item.payment_hash is not None:
        where += f" hash {item.payment_hash[:8]}"
    amount = format_msat(item.amount_msat) if item.amount_msat is not None else "amount ?"
    fee = format_msat(result.fees_paid_msat or 0)
    if state == "already_paid":
        status = (
            f"already paid earlier: the wallet answered from its records (no new payment),"
            f" fee {fee}"
        )
    elif state == "paid":
        status = f"paid, fee {fee}"
    elif state == "unknown":
        check = f"nwcd lookup URI {item.payment_hash}" if item.payment_hash else "nwcd history URI"
        status = (
            f"no answer within {seconds:g} s: the payment may still complete; check with: {check}"
        )
    else:
        error = result.error
        status = f"FAILED {error.code}: {error.message}" if error else "FAILED"
    return f"{where} {amount}: {status}"


def _summary(items: Sequence[_Item], results: Sequence[PaymentResult], states: list[str]) -> str:
    counts = {s: states.count(s) for s in ("paid", "already_paid", "failed", "unknown")}
    parts = [
        f"{counts[key]} {label}"
        for key, label in (
            ("paid", "paid"),
            ("already_paid", "already paid"),
            ("failed", "failed"),
            ("unknown", "without an answer"),
        )
        if counts[key] or key == "paid"
    ]
    sent = sum(
        item.amount_msat or 0 for item, state in zip(items, states, strict=True) if state == "paid"
    )
    fees = sum(
        result.fees_paid_msat or 0
        for result, state in zip(results, states, strict=True)
        if state == "paid"
    )
    return (
        f"{count(len(items), 'invoice')}: {', '.join(parts)}; sent {format_msat(sent)}"
        f" + fees {format_msat(fees)}"
    )


async def pay(args: argparse.Namespace) -> int:
    from nwcd.client.client import InvoiceRequest

    uri_text: str | None = args.uri
    invoices = list(args.invoices)
    if uri_text is not None and not looks_like_uri(uri_text) and _looks_like_invoice(uri_text):
        invoices.insert(0, uri_text)  # the URI comes from NWC_URI
        uri_text = None
    if args.to or args.split is not None or args.value_block is not None:
        return await _pay_recipients(args, uri_text, invoices)
    uri = connection_uri(uri_text)
    if not invoices:
        raise CommandError("give at least one invoice (lnbc...) after the URI")
    invoices = [_strip_invoice(text) for text in invoices]
    items = _items(invoices, args.amount_msat)
    deadline = _Deadline(args.timeout) if args.timeout is not None else None
    requests = [
        InvoiceRequest(item.invoice, args.amount_msat, id=str(item.position - 1)) for item in items
    ]
    results: dict[int, PaymentResult] = {}
    states: dict[int, str] = {}
    async with _wallet(uri, deadline) as client:
        check = min(5.0, deadline.left() / 4) if deadline is not None else 5.0
        earlier = await _earlier_payments(client, invoices, check)
        limit = deadline.left() if deadline is not None else client.batch_timeout(len(items))
        shown = deadline.total if deadline is not None else limit
        async for result in client.multi_pay_invoice_iter(requests, timeout=limit):
            index = int(result.id)
            item = items[index]
            results[index] = result
            states[index] = _state(result, earlier.get(item.payment_hash or ""))
            if not args.json:
                print(_pay_line(item, len(items), result, states[index], shown), flush=True)
    ordered = [results[i] for i in range(len(items))]
    ordered_states = [states[i] for i in range(len(items))]
    if args.json:
        _dump(
            [
                {
                    **result.to_json(),
                    # Added later; the keys above keep their meaning.
                    "position": item.position,
                    "payment_hash": item.payment_hash,
                    "amount_msat": item.amount_msat,
                    "state": state,
                }
                for item, result, state in zip(items, ordered, ordered_states, strict=True)
            ]
        )
    else:
        print(_summary(items, ordered, ordered_states))
    return 0 if all(r.ok for r in ordered) else 1


# -- pay: recipients, splits, value blocks, zaps -----------------------------------------


def _sats(text: str, where: str) -> int:
    try:
        return positive_sats(text)
    except ValueError as exc:
        raise CommandError(f"{where}: {exc}") from None


def _sats_after(text: str) -> tuple[str, int | None]:
    """``--to TARGET=SATS``, or a bare ``TARGET`` (an invoice's own amount)."""
    target, sep, number = text.rpartition("=")
    if not sep:
        return text.strip(), None
    if not target.strip():
        raise CommandError(f"--to {text!r}: give TARGET=SATS")
    return target.strip(), _sats(number, f"--to {text!r}")


def recipients_of(args: argparse.Namespace, invoices: Sequence[str]) -> list[Recipient]:
    """The recipients a ``nwcd pay`` command line asks for (amounts given in sat): the
    invoices, each ``--to``, then the ``--split`` shares."""
    from nwcd.client.recipients import Recipient, split_recipients
    from nwcd.recipients.errors import RecipientError
    from nwcd.recipients.split import parse_share_args

    recipients = [Recipient(_strip_invoice(text)) for text in invoices]
    for text in args.to:
        target, sats = _sats_after(text)
        recipients.append(Recipient(target, sats * 1000 if sats else None, args.comment))
    if args.split is not None:
        total, *pairs = args.split
        if not pairs:
            raise CommandError("give --split TOTAL_SATS TARGET=SHARE [TARGET=SHARE ...]")
        try:
            shares = parse_share_args(pairs)
            total_msat = _sats(total, "--split") * 1000
            recipients += split_recipients(total_msat, shares, comment=args.comment)
        except RecipientError as exc:
            raise CommandError(exc.reason) from None
    return recipients


def _recipient_line(position: int, total: int, result: RecipientResult) -> str:
    width = len(str(total))
    amount = format_msat(result.amount_msat) if result.amount_msat is not None else "amount ?"
    where = f"[{position:>{width}}/{total}] {result.recipient} {amount}"
    if result.status == "paid":
        line = f"{where}: paid, fee {format_msat(result.fee_msat or 0)}"
        action = result.success_action or {}
        note = action.get("message") or action.get("plaintext") or action.get("url")
        return f"{line}; the recipient says: {note}" if note else line
    if result.status == "resolved":
        return (
            f"{where}: would pay {_short(result.invoice or '')}"
            if result.invoice
            else (f"{where}: would keysend")
        )
    if result.status == "skipped":
        return f"{where}: skipped, {result.error}"
    if result.status == "unknown":
        return f"{where}: no answer in time: the payment may still complete ({result.error})"
    return f"{where}: FAILED {result.error}"


async def _pay_and_show(
    args: argparse.Namespace,
    uri_text: str | None,
    recipients: Sequence[Recipient | RecipientResult],
    *,
    dry_run: bool,
) -> int:
    """Resolve, then pay (or only show, ``dry_run``); print per recipient; the exit code."""
    from nwcd.client.recipients import dry_run as dry_results
    from nwcd.client.recipients import pay_planned, plan

    deadline = _Deadline(args.timeout) if args.timeout is not None else None
    total = len(recipients)

    def show(index: int, result: RecipientResult) -> None:
        if not args.json:
            print(_recipient_line(index + 1, total, result), flush=True)

    uri = None if dry_run else connection_uri(uri_text)
    planning = asyncio.ensure_future(plan(recipients))
    try:
        if uri is None:
            results = dry_results(await planning)
            for index, result in enumerate(results):
                show(index, result)
        else:
            async with _wallet(uri, deadline) as client:  # connects while resolving
                planned = await planning
                limit = deadline.left() if deadline is not None else client.batch_timeout(total)
                results = await pay_planned(client, planned, timeout=limit, on_result=show)
    finally:
        planning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await planning
    wanted = "resolved" if dry_run else "paid"
    if args.json:
        _dump([result.to_json() for result in results])
    else:
        done = sum(r.status == wanted for r in results)
        sent = sum(r.amount_msat or 0 for r in results if r.status == wanted)
        fees = sum(r.fee_msat or 0 for r in results if r.status == wanted)
        verb = "resolved (nothing paid)" if dry_run else "paid"
        print(
            f"{count(total, 'recipient')}: {done} {verb}, {total - done} not;"
            f" {format_msat(sent)}" + ("" if dry_run else f" + fees {format_msat(fees)}")
        )
    settled = (wanted, "skipped")  # a skipped value-block share is not a failure
    return 0 if results and all(r.status in settled for r in results) else 1


_FEED_LIMIT = 8 << 20  # bytes: feeds with many episodes are large, but not this large


async def _read_feed(source: str) -> bytes:
    """A podcast feed's XML from a file or an http(s) URL (bounded in size)."""
    if not source.startswith(("http://", "https://")):
        try:
            body = await asyncio.to_thread(Path(source).read_bytes)
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror}") from None
        if len(body) > _FEED_LIMIT:
            raise CommandError(f"{source}: the feed is over {_FEED_LIMIT >> 20} MiB")
        return body
    import httpx

    from nwcd.http_transport import http_transport
    from nwcd.recipients.errors import RecipientError
    from nwcd.recipients.resolve import read_bounded

    transport = http_transport()  # feeds may be plain HTTP: not the LNURL client
    async with httpx.AsyncClient(timeout=20, follow_redirects=True, transport=transport) as http:
        try:
            async with http.stream("GET", source) as response:
                response.raise_for_status()
                return await read_bounded(response, source, _FEED_LIMIT)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot fetch {source}: {exc}") from None
        except RecipientError as exc:
            raise CommandError(exc.reason) from None


async def _value_block_recipients(args: argparse.Namespace) -> list[Recipient]:
    """``--value-block FEED``: the feed's value block split over ``--amount-sat``."""
    from nwcd.client.recipients import value_block_recipients
    from nwcd.recipients.errors import RecipientError
    from nwcd.recipients.value_block import parse_value_block

    if args.amount_sat is None:
        raise CommandError("--value-block needs --amount-sat, the total to split")
    try:
        block = parse_value_block(await _read_feed(args.value_block), episode_guid=args.episode)
    except RecipientError as exc:
        raise CommandError(f"{args.value_block}: {exc.reason}") from None
    recipients = value_block_recipients(
        block, args.amount_sat * 1000, message=args.message, sender_name=args.sender
    )
    if not recipients:
        raise CommandError(f"{args.value_block}: no recipient gets a whole sat of this amount")
    return recipients


async def _pay_recipients(
    args: argparse.Namespace, uri_text: str | None, invoices: list[str]
) -> int:
    recipients: list[Recipient] = []
    if args.value_block is not None:
        recipients = await _value_block_recipients(args)
    recipients += recipients_of(args, invoices)
    if not recipients:
        raise CommandError("no one to pay: give --to, --split or --value-block recipients")
    return await _pay_and_show(args, uri_text, recipients, dry_run=args.dry_run)


async def zap(args: argparse.Namespace) -> int:
    from nwcd.client.client import connect_relays
    from nwcd.client.zaps import zap_recipients
    from nwcd.nostr.keys import SecretKey
    from nwcd.nostr.nip19 import Nip19Error, parse_pointer
    from nwcd.recipients.errors import RecipientError
    from nwcd.relay.pool import RelayPool

    uri = connection_uri(args.uri)
    try:
        pointer = parse_pointer(args.target)
    except Nip19Error as exc:
        raise CommandError(
            f"{args.target!r}: {exc} (give note1..., nevent1..., npub1...)"
        ) from None
    key_text = args.key or os.environ.get("NWCD_ZAP_KEY")
    try:
        secret = SecretKey.parse(key_text) if key_text else SecretKey.generate()
    except ValueError:
        raise CommandError(
            "--key (or NWCD_ZAP_KEY) is not a Nostr secret key (nsec1... or hex)"
        ) from None
    relays = tuple(dict.fromkeys([*uri.relays, *args.relay, *pointer.relays]))
    seconds = args.timeout if args.timeout is not None else 10.0
    async with RelayPool(relays) as pool:
        await connect_relays(pool, min(10.0, seconds))
        try:
            recipients = await zap_recipients(
                pool,
                pointer,
                args.amount_sat * 1000,
                secret=secret,
                relays=relays,
                comment=args.comment,
                timeout=min(10.0, seconds),
            )
        except RecipientError as exc:
            raise CommandError(exc.reason, exit_code=1) from None
    return await _pay_and_show(args, args.uri, recipients, dry_run=args.dry_run)


HANDLERS: Mapping[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "balance": balance,
    "budget": budget,
    "info": info,
    "invoice": invoice,
    "hold-invoice": hold_invoice,
    "settle": settle,
    "cancel": cancel,
    "lookup": lookup,
    "history": history,
    "keysend": keysend,
    "watch": watch,
    "call": call,
    "pay": pay,
    "zap": zap,
}
