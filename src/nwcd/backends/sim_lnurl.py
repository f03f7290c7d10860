"""An LNURL-pay server for the simulator's named nodes: lightning addresses on one machine.

``name@127.0.0.1:PORT`` is a lightning address (LUD-16) of simulated node ``name``,
made on first use; its callback (LUD-06) mints a simulator invoice of that node
whose description hash commits to the pay metadata, or to the zap request for a
zap (NIP-57, checked by :func:`nwcd.recipients.zap.check_zap_request`). A wallet
on the same simulator file pays it like any payee invoice, and ``nwcd sim
received NAME`` shows the payment, with the payer's comment or zap request.

When a zap's invoice is paid (by any process sharing the simulator file), the
server publishes its zap receipt (kind 9735, NIP-57 Appendix E) to the relays the
zap request names, signed with the simulator's zapper key (``nostrPubkey``,
stable per file). It remembers the zaps it minted in memory only: a zap paid
after the server stopped gets no receipt.

Plain HTTP, meant for loopback: it exists for tests and for trying things out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from nwcd.backends.simulator import SimulatedBackend, SimulatorError
from nwcd.bolt11 import decode
from nwcd.errors import BackendUnavailable
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import (
    check_amount,
    check_comment,
    description_hash,
    parse_pay_params,
)
from nwcd.recipients.zap import check_zap_request
from nwcd.relay.pool import RelayPool

__all__ = [
    "COMMENT_ALLOWED",
    "MAX_SENDABLE_MSAT",
    "MIN_SENDABLE_MSAT",
    "SimLnurlServer",
    "lnurl_server",
    "pay_metadata",
    "zap_receipt",
]

log = logging.getLogger("nwcd.simulator")

MIN_SENDABLE_MSAT: Final = 1_000
MAX_SENDABLE_MSAT: Final = 100_000_000_000  # 1 BTC
COMMENT_ALLOWED: Final = 255  # LUD-12: the longest comment the callback takes
_RECEIPT_POLL: Final = 0.1  # seconds between looks for paid zap invoices
_PUBLISH_TIMEOUT: Final = 5.0  # seconds to wait for the relays' OK of a receipt

_BACKEND: Final = web.AppKey("backend", SimulatedBackend)
_AUTHORITY: Final = web.AppKey("authority", str)


@dataclass(frozen=True, slots=True)
class SimLnurlServer:
    """A running LNURL server: where it is and whose addresses it serves."""

    host: str
    port: int
    nostr_pubkey: str  # hex: the key a zap receipt would be signed with (NIP-57)

    @property
    def authority(self) -> str:
        """``host:port`` as a lightning address's domain part and a URL's authority."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    def address(self, name: str) -> str:
        """The lightning address of simulated node ``name``."""
        return f"{name}@{self.authority}"


@dataclass(frozen=True, slots=True)
class _Mint:
    """What the callback's invoice is: its amount, and what its description hash commits to."""

    amount_msat: int
    description: str
    metadata: dict[str, Any]

    @property
    def description_hash(self) -> str:
        return description_hash(self.description)


def pay_metadata(name: str, authority: str) -> str:
    """The LUD-06 metadata of ``name``'s pay request: the exact text its invoices hash."""
    return json.dumps(
        [
            ["text/plain", f"Pay {name} on the nwcd simulator"],
            ["text/identifier", f"{name}@{authority}"],
        ]
    )


def _pay_params(name: str, authority: str, nostr_pubkey: str) -> dict[str, Any]:
    """The LUD-06 payRequest answer (LUD-12 comments, NIP-57 zaps)."""
    return {
        "tag": "payRequest",
        "callback": f"http://{authority}/lnurlp/{name}/callback",
        "metadata": pay_metadata(name, authority),
        "minSendable": MIN_SENDABLE_MSAT,
        "maxSendable": MAX_SENDABLE_MSAT,
        "commentAllowed": COMMENT_ALLOWED,
        "allowsNostr": True,
        "nostrPubkey": nostr_pubkey,
    }


def _mint(query: Mapping[str, str], promised: dict[str, Any]) -> _Mint:
    """Decide the callback's invoice from its query, as the pay request ``promised``
    (checked by the same rules a paying client applies to it).

    Raises:
        RecipientError: no valid amount, out of range, a comment too long, a bad zap request.
    """
    params = parse_pay_params(promised)
    amount_text = query.get("amount", "")
    if not amount_text.isascii() or not amount_text.isdigit():
        raise RecipientError("amount (msat) is required, as a whole number")
    amount = int(amount_text)
    check_amount(params, amount)
    comment = query.get("comment", "")
    if comment:
        check_comment(params, comment)
    extra: dict[str, Any] = {"comment": comment} if comment else {}
    metadata = params.metadata
    zap = query.get("nostr")
    if zap is None:
        return _Mint(amount, metadata, extra)
    event = check_zap_request(zap, amount_msat=amount)
    return _Mint(amount, zap, {**extra, "zap_request": event.to_json()})


def zap_receipt(secret: SecretKey, *, zap_json: str, bolt11: str, paid_at: int) -> Event:
    """The kind-9735 receipt of a paid zap (NIP-57 Appendix E), signed by the server's key.

    ``zap_json`` is the zap request exactly as the callback got it (checked there).
    """
    request = json.loads(zap_json)
    tags = [
        list(tag[:2])
        for name in ("p", "e", "a")
        for tag in request["tags"]
        if tag and tag[0] == name and len(tag) > 1
    ]
    tags += [["P", request["pubkey"]], ["bolt11", bolt11], ["description", zap_json]]
    return sign_event(secret, kind=Kind.ZAP_RECEIPT, content="", tags=tags, created_at=paid_at)


@dataclass(frozen=True, slots=True)
class _Zap:
    """A zap invoice the server minted, waiting to be paid."""

    node: str
    bolt11: str
    zap_json: str  # the zap request, as the callback got it
    relays: tuple[str, ...]  # where its receipt goes
    expires_at: int  # unix time: unpaid by then, it never will be


@dataclass(slots=True)
class _Zaps:
    """The zaps minted and not yet paid, and the tasks that publish their receipts."""

    backend: SimulatedBackend
    pending: dict[str, _Zap] = field(default_factory=dict)  # by payment hash
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, payment_hash: str, node: str, bolt11: str, zap_json: str) -> None:
        """Watch a zap invoice; its receipt goes to the request's ws(s):// relays once paid."""
        relays = tuple(
            url
            for tag in json.loads(zap_json)["tags"]
            if tag and tag[0] == "relays"
            for url in tag[1:]
            if url.startswith(("ws://", "wss://"))
        )
        expires_at = decode(bolt11).expires_at
        self.pending[payment_hash] = _Zap(node, bolt11, zap_json, relays, expires_at)
        self.wake.set()

    async def watch(self) -> None:
        """Until cancelled: look for paid zap invoices, publish each one's receipt."""
        while True:
            if not self.pending:
                self.wake.clear()
                await self.wake.wait()
            await asyncio.sleep(_RECEIPT_POLL)
            for node in {zap.node for zap in self.pending.values()}:
                try:
                    received = await self.backend.received(node)
                except (BackendUnavailable, SimulatorError) as exc:
                    log.warning("zap receipts: cannot read the simulator: %s", exc)
                    continue
                for got in received:
                    zap = self.pending.pop(got.payment_hash, None)
                    if zap is not None:
                        self._publish(zap, int(got.at))
            now = time.time()
            self.pending = {h: z for h, z in self.pending.items() if z.expires_at > now}

    def _publish(self, zap: _Zap, paid_at: int) -> None:
        secret = self.backend.zapper_secret()
        receipt = zap_receipt(secret, zap_json=zap.zap_json, bolt11=zap.bolt11, paid_at=paid_at)
        task = asyncio.create_task(_send(receipt, zap.relays))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


_ZAPS: Final = web.AppKey("zaps", _Zaps)


async def _send(receipt: Event, relays: tuple[str, ...]) -> None:
    """Publish a zap receipt to the zap request's relays; a relay that fails is logged."""
    async with RelayPool(relays) as pool:
        result = await pool.publish(receipt, timeout=_PUBLISH_TIMEOUT)
    if not result.ok:
        log.warning("zap receipt %s not accepted by every relay: %s", receipt.id, result)


def _refused(reason: str) -> web.Response:
    return web.json_response({"status": "ERROR", "reason": reason}, status=400)


async def _node(request: web.Request) -> str:
    """The path's node name, the node made on first use.

    Raises:
        SimulatorError: not a valid node name.
    """
    name = request.match_info["name"]
    await request.app[_BACKEND].add_node(name, existing_ok=True)
    return name


async def _well_known(request: web.Request) -> web.Response:
    backend, authority = request.app[_BACKEND], request.app[_AUTHORITY]
    try:
        name = await _node(request)
    except SimulatorError as exc:
        return _refused(str(exc))
    return web.json_response(_pay_params(name, authority, backend.zapper_secret().public_key.hex))


async def _callback(request: web.Request) -> web.Response:
    backend, authority = request.app[_BACKEND], request.app[_AUTHORITY]
    try:
        name = await _node(request)
        promised = _pay_params(name, authority, backend.zapper_secret().public_key.hex)
        mint = _mint(request.query, promised)
        invoice = await backend.create_invoice(
            mint.amount_msat,
            description=mint.description,
            description_hash=mint.description_hash,
            node=name,
            metadata=mint.metadata,
        )
    except (SimulatorError, RecipientError) as exc:
        return _refused(str(exc))
    if "zap_request" in mint.metadata:
        request.app[_ZAPS].add(invoice.payment_hash, name, invoice.invoice, mint.description)
    return web.json_response({"pr": invoice.invoice, "routes": []})


def _app(backend: SimulatedBackend, authority: str, zaps: _Zaps) -> web.Application:
    app = web.Application()
    app[_BACKEND] = backend
    app[_AUTHORITY] = authority
    app[_ZAPS] = zaps
    app.router.add_get("/.well-known/lnurlp/{name}", _well_known)
    app.router.add_get("/lnurlp/{name}/callback", _callback)
    return app


@contextlib.asynccontextmanager
async def lnurl_server(
    backend: SimulatedBackend, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[SimLnurlServer]:
    """Serve LNURL-pay for ``backend``'s named nodes while the block runs (port 0: any free).

    Raises:
        OSError: the address cannot be bound.
    """
    # The callback URLs name the port, known only once bound (port 0): bind first.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    server = SimLnurlServer(host, sock.getsockname()[1], backend.zapper_secret().public_key.hex)
    zaps = _Zaps(backend)
    app = _app(backend, server.authority, zaps)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    watcher = asyncio.create_task(zaps.watch(), name="zap receipts")
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        yield server
    finally:
        await runner.cleanup()
        sock.close()
        for task in (watcher, *zaps.tasks):
            task.cancel()
        for task in (watcher, *zaps.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
