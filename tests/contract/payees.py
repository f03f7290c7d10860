"""Who the backend under contract pays: one small ``Payee`` adapter per backend.

A :class:`Subject` bundles the backend under test with its payee and what the
contract needs to know about it. Each payee makes

* ``payable(n)``: an invoice of ``n`` msat the backend can pay;
* ``failing(n)``: an invoice the backend cannot pay (rejected, or no route);
* ``hold(n)``: an invoice whose payment stays in flight until ``release`` (only
  where the payee can hold one: the simulator's ``hang``, LND's hold invoices).

Subjects:

=========  =======================================  =====================================
backend    payee                                    failing invoice
=========  =======================================  =====================================
simulator  a simulated payee (``create_invoice``)   ``outcome="fail"`` (payee rejects)
lnbits     another wallet of the same LNbits        a mainnet invoice of an unknown node
lnd        node C, two hops (A -> B -> C: a fee)    a regtest invoice of an unknown node
nwc        the upstream nwcd's simulated payee      ``outcome="fail"`` (payee rejects)
=========  =======================================  =====================================

The NWC backend's upstream is nwcd itself: a wallet service on the simulator
(:class:`~tests.service.harness.WalletHarness`) on nwcd's own relay, in the test's
event loop; the backend is one of its apps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, TypeVar

from nwcd import bolt11
from nwcd.backends.lnbits import LnbitsBackend, LnbitsConfig
from nwcd.backends.lnd import LndBackend, LndConfig
from nwcd.backends.nwc import NwcBackend, NwcConfig
from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.bolt11 import Invoice
from nwcd.nip47.methods import Method
from nwcd.ports import BACKEND_METHODS, LightningBackend
from nwcd.relay.server import LocalRelay
from tests.backends.lnbits_server import LnbitsServer
from tests.backends.lnd_network import LndNetwork, LndNode
from tests.service.harness import WalletHarness
from tests.support.relays import free_port

T = TypeVar("T")

# Every method but get_budget, which the service answers from its own ledger.
ALL_METHODS: Final = BACKEND_METHODS
CORE_METHODS: Final = frozenset(
    {
        Method.PAY_INVOICE,
        Method.MAKE_INVOICE,
        Method.LOOKUP_INVOICE,
        Method.LIST_TRANSACTIONS,
        Method.GET_BALANCE,
        Method.GET_INFO,
    }
)
SIMULATOR_FEE_MSAT: Final = 7  # the simulated payee's routing fee, to see fees counted
NETWORKS: Final = {
    "mainnet": bolt11.Network.MAINNET,
    "testnet": bolt11.Network.TESTNET,
    "signet": bolt11.Network.SIGNET,
    "regtest": bolt11.Network.REGTEST,
    "simnet": bolt11.Network.SIMNET,
}


async def eventually(
    what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 15.0
) -> T:
    """Poll ``probe`` until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def foreign_invoice(network: bolt11.Network, amount_msat: int) -> Invoice:
    """A valid invoice of a node no backend here can route to."""
    text = bolt11.encode(
        secret=os.urandom(32),
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        timestamp=int(time.time()),
        network=network,
        amount_msat=amount_msat,
        description="nowhere",
    )
    return bolt11.decode(text)


@dataclass(frozen=True)
class Held:
    """An invoice whose payment the payee holds in flight."""

    invoice: Invoice
    preimage: str
    wait_held: Callable[[], Awaitable[None]]  # returns once the payee holds the payment
    release: Callable[[bool], Awaitable[None]]  # True: settle, False: fail it back


class Payee(Protocol):
    keysend_pubkey: str | None  # a node that accepts keysend, where the backend can send one

    async def payable(self, amount_msat: int) -> Invoice: ...
    async def failing(self, amount_msat: int) -> Invoice: ...
    async def hold(self, amount_msat: int) -> Held: ...


@dataclass
class Subject:
    """A backend under contract, its payee and what the contract needs to know."""

    name: str
    backend: LightningBackend
    payee: Payee
    expected_methods: frozenset[str]
    fee_limit_msat: int
    unreachable: Callable[[], Awaitable[LightningBackend]]  # a backend that cannot be reached
    # A payer elsewhere starts paying one of the backend's invoices (where one can).
    pay_us: Callable[[str], Awaitable[None]] | None = None


# --- simulator ---------------------------------------------------------------------------


class SimulatorPayee:
    def __init__(self, backend: SimulatedBackend) -> None:
        self.backend = backend
        self.keysend_pubkey: str | None = backend.payee_pubkeys[0]

    async def payable(self, amount_msat: int) -> Invoice:
        made = await self.backend.create_invoice(amount_msat, fee_msat=SIMULATOR_FEE_MSAT)
        return bolt11.decode(made.invoice)

    async def failing(self, amount_msat: int) -> Invoice:
        made = await self.backend.create_invoice(amount_msat, outcome="fail")
        return bolt11.decode(made.invoice)

    async def hold(self, amount_msat: int) -> Held:
        made = await self.backend.create_invoice(amount_msat, outcome="hang")

        async def wait_held() -> None:
            return None  # a hanging payee holds every payment at once

        async def release(settle: bool) -> None:
            await self.backend.release(made.payment_hash, "succeed" if settle else "fail")

        return Held(bolt11.decode(made.invoice), made.preimage, wait_held, release)


@asynccontextmanager
async def simulator_subject(tmp_path: Path) -> AsyncIterator[Subject]:
    async def unreachable() -> LightningBackend:
        closed = await SimulatedBackend.open(SimulatorConfig(tmp_path / "closed.sqlite"))
        await closed.close()
        return closed

    async with await SimulatedBackend.open(SimulatorConfig(tmp_path / "sim.sqlite")) as sim:
        yield Subject(
            name="simulator",
            backend=sim,
            payee=SimulatorPayee(sim),
            expected_methods=ALL_METHODS,
            fee_limit_msat=1_000,
            unreachable=unreachable,
            pay_us=lambda invoice: sim.receive(bolt11.decode(invoice).payment_hash),
        )


# --- LNbits ------------------------------------------------------------------------------


class LnbitsPayee:
    """Another wallet of the same LNbits: internal payments, settled at once, no fee."""

    keysend_pubkey: str | None = None  # LNbits' wallet API has no keysend

    def __init__(self, server: LnbitsServer) -> None:
        self.server = server
        self.wallet = server.new_wallet("contract payee")

    async def payable(self, amount_msat: int) -> Invoice:
        assert amount_msat % 1000 == 0, "LNbits makes invoices of whole satoshis"
        made = await asyncio.to_thread(self.server.invoice, self.wallet, amount_msat // 1000)
        return bolt11.decode(made["bolt11"])

    async def failing(self, amount_msat: int) -> Invoice:
        # FakeWallet pays only its own invoices: another node's cannot be routed.
        return foreign_invoice(bolt11.Network.MAINNET, amount_msat)

    async def hold(self, amount_msat: int) -> Held:
        raise NotImplementedError("FakeWallet settles internal payments at once")


@asynccontextmanager
async def lnbits_subject(server: LnbitsServer) -> AsyncIterator[Subject]:
    payer = server.new_wallet("contract payer", fund_sat=100_000)

    def config(url: str, timeout: float) -> LnbitsConfig:
        return LnbitsConfig(
            url, admin_key=payer.admin_key, invoice_key=payer.invoice_key, timeout=timeout
        )

    async def unreachable() -> LightningBackend:
        return await LnbitsBackend.open(config(f"http://127.0.0.1:{free_port()}", 2))

    async with await LnbitsBackend.open(config(server.url, 10)) as backend:
        yield Subject(
            name="lnbits",
            backend=backend,
            payee=LnbitsPayee(server),
            expected_methods=frozenset(
                CORE_METHODS | {Method.MULTI_PAY_INVOICE}  # no keysend, no signing
            ),
            fee_limit_msat=10_000,
            unreachable=unreachable,
        )


# --- LND ---------------------------------------------------------------------------------


class LndPayee:
    """Node C, two hops from A (through B, which charges a routing fee)."""

    def __init__(self, node: LndNode) -> None:
        self.node = node
        self.keysend_pubkey: str | None = node.pubkey

    async def payable(self, amount_msat: int) -> Invoice:
        made = await asyncio.to_thread(self.node.add_invoice, amount_msat, "contract")
        return bolt11.decode(made["payment_request"])

    async def failing(self, amount_msat: int) -> Invoice:
        return foreign_invoice(bolt11.Network.REGTEST, amount_msat)

    async def hold(self, amount_msat: int) -> Held:
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).digest()
        made = await asyncio.to_thread(self.node.add_hold_invoice, payment_hash, amount_msat)

        async def accepted() -> bool:
            invoice = await asyncio.to_thread(self.node.invoice, payment_hash.hex())
            return bool(invoice["state"] == "ACCEPTED")

        async def wait_held() -> None:
            await eventually("the payee holding the HTLC", accepted)

        async def release(settle: bool) -> None:
            if settle:
                await asyncio.to_thread(self.node.settle_hold_invoice, preimage)
            else:
                body = {"payment_hash": base64.b64encode(payment_hash).decode()}
                await asyncio.to_thread(self.node.call, "POST", "/v2/invoices/cancel", body)

        return Held(bolt11.decode(made["payment_request"]), preimage.hex(), wait_held, release)


@asynccontextmanager
async def lnd_subject(network: LndNetwork) -> AsyncIterator[Subject]:
    node = network.a

    async def unreachable() -> LightningBackend:
        closed = LndConfig(
            f"https://127.0.0.1:{free_port()}",
            node.macaroon_path.read_bytes().hex(),
            node.tls_cert,
            timeout=2,
            payment_timeout=5,
        )
        return await LndBackend.open(closed)

    payments: set[asyncio.Task[object]] = set()

    async def pay_us(invoice: str) -> None:
        """Node B pays A's invoice; the payment goes on (a held one until released)."""
        payment = asyncio.create_task(asyncio.to_thread(network.b.pay, invoice))
        payments.add(payment)
        payment.add_done_callback(payments.discard)

    async with await LndBackend.open(node.config(timeout=10, payment_timeout=30)) as backend:
        yield Subject(
            name="lnd",
            backend=backend,
            payee=LndPayee(network.c),
            expected_methods=ALL_METHODS,
            fee_limit_msat=100_000,
            unreachable=unreachable,
            pay_us=pay_us,
        )
        await asyncio.gather(*payments, return_exceptions=True)


# --- NWC (nwcd itself as the upstream wallet) ----------------------------------------------


@asynccontextmanager
async def nwc_subject(tmp_path: Path) -> AsyncIterator[Subject]:
    """The NWC backend in front of nwcd on the simulator; the upstream's payee pays.

    The upstream also listens on a second relay, which ``unreachable`` stops once a
    backend connected through it alone is open.
    """
    upstream_dir = tmp_path / "upstream"
    upstream_dir.mkdir()
    async with (
        LocalRelay() as relay,
        LocalRelay() as doomed,
        WalletHarness(upstream_dir, [relay.url, doomed.url]) as upstream,
    ):
        uri = await upstream.connect("nwcd", relays=(relay.url,))
        spare = await upstream.connect("unreachable", relays=(doomed.url,))
        await upstream.start()

        async def unreachable() -> LightningBackend:
            config = NwcConfig(spare.format(), timeout=2, payment_timeout=2)
            backend = await NwcBackend.open(config)
            await doomed.stop()
            return backend

        config = NwcConfig(uri.format(), timeout=10, payment_timeout=5)
        async with await NwcBackend.open(config) as backend:
            yield Subject(
                name="nwc",
                backend=backend,
                payee=SimulatorPayee(upstream.backend),
                expected_methods=ALL_METHODS,
                fee_limit_msat=1_000,
                unreachable=unreachable,
                pay_us=lambda invoice: upstream.backend.receive(
                    bolt11.decode(invoice).payment_hash
                ),
            )
