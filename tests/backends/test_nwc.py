"""The NWC backend against a real upstream: nwcd itself on the simulator, over nwcd's relay.

What the contract suite cannot show: a payment whose answer never comes (the upstream
stops mid-payment) is Pending and then resolved by ``payment_status``; a request
that never reached the upstream stays Pending until its expiration has passed; the
upstream's notifications become incoming payments; the URI never shows. Then the
whole chain, an app of nwcd in front of the upstream: a lost answer still reaches the
app once known, and the upstream's incoming payments reach it as notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nwcd import bolt11
from nwcd.backends import nwc
from nwcd.backends.nwc import NwcBackend, NwcConfig
from nwcd.client.client import NWCClient
from nwcd.errors import BackendError, BackendUnavailable
from nwcd.nip47.methods import MakeHoldInvoiceParams, MakeInvoiceParams
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.ports import NOT_FOUND, Failed, PaymentOutcome, PaymentState, Pending, Succeeded
from nwcd.relay.server import LocalRelay
from nwcd.service.daemon import DaemonOptions
from tests.contract.payees import eventually
from tests.service.harness import WalletHarness
from tests.support.relays import free_port

pytestmark = pytest.mark.timeout(120)

AMOUNT_MSAT = 21_000


@dataclass
class Upstream:
    """nwcd on the simulator, serving one connection: the URI the backend is given."""

    wallet: WalletHarness
    uri: ConnectionUri
    relay: LocalRelay

    @property
    def text(self) -> str:
        return self.uri.format()


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[Upstream]:
    async with LocalRelay() as relay:
        options = DaemonOptions(
            relays=(relay.url,), connections_poll_interval=0.2, shutdown_grace=0.5
        )
        async with WalletHarness(tmp_path, [relay.url], options=options) as wallet:
            uri = await wallet.connect("nwcd")
            await wallet.start()
            yield Upstream(wallet, uri, relay)


async def settled(backend: NwcBackend, payment_hash: str) -> PaymentOutcome | None:
    status = await backend.payment_status(payment_hash)
    return None if isinstance(status, Pending) else status


async def test_no_answer_is_pending_and_payment_status_resolves_it(upstream: Upstream) -> None:
    """The upstream stops while it pays: no answer. Once it is back (and the payment
    went through), the lookup tells."""
    sim = upstream.wallet.backend
    made = await sim.create_invoice(AMOUNT_MSAT, outcome="hang")
    invoice = bolt11.decode(made.invoice)
    config = NwcConfig(upstream.text, timeout=5, payment_timeout=3)
    async with await NwcBackend.open(config) as backend:
        paying = asyncio.create_task(
            backend.pay_invoice(invoice, amount_msat=AMOUNT_MSAT, fee_limit_msat=1_000)
        )

        async def in_flight() -> bool:
            status = await backend.payment_status(invoice.payment_hash)
            return isinstance(status, Pending) and "state" in status.reason

        await eventually("the upstream paying", in_flight)
        await upstream.wallet.stop()  # mid-payment: the answer never comes
        outcome = await paying
        assert isinstance(outcome, Pending), outcome
        with pytest.raises(BackendError):  # nobody answers the lookup either
            await backend.payment_status(invoice.payment_hash)

        await sim.release(invoice.payment_hash, "succeed")
        await upstream.wallet.start()  # its recovery settles its own payment
        resolved = await eventually("the outcome", lambda: settled(backend, made.payment_hash))
        assert resolved == Succeeded(made.preimage, resolved.fee_msat)
        assert [a for a in await sim.attempts() if a.payment_hash == made.payment_hash]
        assert len(await sim.attempts()) == 1  # paid once, never retried


async def test_a_request_the_upstream_never_saw_stays_pending_until_it_expires(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not found means nothing while our request may still reach the upstream; once its
    ``expiration`` (plus the clock skew) has passed, it is final."""
    monkeypatch.setattr(nwc, "CLOCK_SKEW", 3)
    sim = upstream.wallet.backend
    made = await sim.create_invoice(AMOUNT_MSAT)
    invoice = bolt11.decode(made.invoice)
    config = NwcConfig(upstream.text, timeout=5, payment_timeout=1)
    async with await NwcBackend.open(config) as backend:
        await upstream.wallet.stop()
        outcome = await backend.pay_invoice(invoice, amount_msat=AMOUNT_MSAT, fee_limit_msat=1_000)
        assert isinstance(outcome, Pending), outcome
        await upstream.wallet.start()
        early = await backend.payment_status(invoice.payment_hash)
        assert isinstance(early, Pending), early
        final = await eventually("not found", lambda: settled(backend, made.payment_hash))
        assert final == Failed(NOT_FOUND)
        assert await sim.attempts() == []  # the expired request was never carried out


async def test_upstream_notifications_are_incoming_payments(upstream: Upstream) -> None:
    sim = upstream.wallet.backend
    async with await NwcBackend.open(NwcConfig(upstream.text, timeout=5)) as backend:
        incoming = backend.incoming_payments()
        first = asyncio.ensure_future(anext(incoming))
        await asyncio.sleep(0.5)  # the notification subscription is on the relay
        tx = await backend.make_invoice(MakeInvoiceParams(AMOUNT_MSAT, description="in"))
        await sim.receive(tx.payment_hash)
        received = await asyncio.wait_for(first, 10)
        assert (received.payment_hash, received.state) == (tx.payment_hash, "settled")

        before = upstream.relay.connection_count
        await upstream.relay.drop_connections()  # both pools reconnect and resubscribe

        async def reconnected() -> bool:
            if upstream.relay.connection_count < before:
                return False
            with contextlib.suppress(BackendError):  # a request sent before it resubscribed
                return await backend.get_balance() > 0
            return False

        await eventually("the upstream and the backend back on the relay", reconnected)
        again = await backend.make_invoice(MakeInvoiceParams(AMOUNT_MSAT, description="again"))
        await sim.receive(again.payment_hash)
        after_loss = await asyncio.wait_for(anext(incoming), 10)
        assert (after_loss.payment_hash, after_loss.state) == (again.payment_hash, "settled")

        preimage = os.urandom(32).hex()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        await backend.make_hold_invoice(MakeHoldInvoiceParams(AMOUNT_MSAT, payment_hash))
        await sim.receive(payment_hash)
        held = await asyncio.wait_for(anext(incoming), 10)
        assert (held.payment_hash, held.state) == (payment_hash, "accepted")
        await backend.settle_hold_invoice(preimage)
        taken = await asyncio.wait_for(anext(incoming), 10)
        assert (taken.payment_hash, taken.state) == (payment_hash, "settled")

        waiting = asyncio.ensure_future(anext(incoming, None))
        await backend.close()
        assert await asyncio.wait_for(waiting, 5) is None  # closing ends the stream


async def test_the_uri_never_shows_in_logs_or_reprs(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    secret = upstream.uri.secret.reveal_hex()
    caplog.set_level(logging.DEBUG)
    config = NwcConfig(upstream.text, timeout=2, payment_timeout=2)
    async with await NwcBackend.open(config) as backend:
        failing = await upstream.wallet.backend.create_invoice(AMOUNT_MSAT, outcome="fail")
        invoice = bolt11.decode(failing.invoice)
        outcome = await backend.pay_invoice(invoice, amount_msat=AMOUNT_MSAT, fee_limit_msat=0)
        assert isinstance(outcome, Failed), outcome
        texts = [repr(backend), repr(config), str(config), outcome.reason]
        await upstream.wallet.stop()
        outcome = await backend.pay_invoice(invoice, amount_msat=AMOUNT_MSAT, fee_limit_msat=0)
        assert isinstance(outcome, Pending)
        texts.append(outcome.reason)
    dead = ConnectionUri(
        SecretKey.generate().public_key, (f"ws://127.0.0.1:{free_port()}",), SecretKey.generate()
    )
    with pytest.raises(BackendUnavailable) as unreachable:
        await NwcBackend.open(NwcConfig(dead.format(), connect_timeout=2))
    texts.append(str(unreachable.value))
    assert caplog.records  # the run was logged, at DEBUG
    for text in [caplog.text, *texts]:
        assert secret not in text
        assert dead.secret.reveal_hex() not in text
        assert "secret=" not in text


# --- the whole chain: an app, nwcd on the NWC backend, nwcd upstream --------------------------


async def test_an_app_paying_through_nwcd_in_front_gets_the_outcome_of_a_lost_answer(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The upstream stops mid-payment: the front keeps the payment unknown, asks until
    the upstream is back and knows, then answers the app; the invoice is paid once."""
    sim = upstream.wallet.backend
    made = await sim.create_invoice(AMOUNT_MSAT, outcome="hang")
    (tmp_path / "front").mkdir()
    config = NwcConfig(upstream.text, timeout=3, payment_timeout=2)
    async with (
        await NwcBackend.open(config) as backend,
        WalletHarness(tmp_path / "front", [upstream.relay.url], serving=backend) as front,
    ):
        uri = await front.connect("app")
        await front.start()
        async with NWCClient(uri, timeout=90) as app:
            paying = asyncio.ensure_future(app.pay_invoice(made.invoice))

            async def unknown() -> bool:
                wallet = uri.wallet_pubkey.hex
                found = await front.store.payments_by_hashes(wallet, [made.payment_hash])
                record = found.get(made.payment_hash)
                return record is not None and record.state is PaymentState.UNKNOWN

            await eventually("the upstream paying", sim.attempts)
            await upstream.wallet.stop()
            await eventually("the front not knowing", unknown)
            await sim.release(made.payment_hash, "succeed")
            await upstream.wallet.start()
            result = await asyncio.wait_for(paying, 60)
    assert result["preimage"] == made.preimage
    assert len(await sim.attempts()) == 1


async def test_an_app_of_nwcd_in_front_is_told_of_payments_the_upstream_received(
    upstream: Upstream, tmp_path: Path
) -> None:
    (tmp_path / "front").mkdir()
    async with (
        await NwcBackend.open(NwcConfig(upstream.text, timeout=5)) as backend,
        WalletHarness(tmp_path / "front", [upstream.relay.url], serving=backend) as front,
    ):
        uri = await front.connect("app")
        await front.start()
        async with NWCClient(uri, timeout=10) as app:
            subscribed = asyncio.Event()
            notifications = app.notifications(on_subscribed=subscribed.set)
            first = asyncio.ensure_future(anext(notifications))
            await asyncio.wait_for(subscribed.wait(), 10)
            tx = await app.make_invoice(AMOUNT_MSAT, description="through the front")
            await upstream.wallet.backend.receive(tx.payment_hash)
            note = await asyncio.wait_for(first, 15)
            await notifications.aclose()
    assert (note.type, note.transaction.payment_hash) == ("payment_received", tx.payment_hash)
