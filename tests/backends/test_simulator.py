"""The simulated Lightning backend: payments, behaviours, shared state, crash recovery."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import coincurve
import pytest

from nwcd.backends.simulator import (
    PAYEE_COUNT,
    SCHEMA_VERSION,
    Attempt,
    ReceivedPayment,
    ReceivedTlv,
    SimInvoice,
    SimulatedBackend,
    SimulatorConfig,
    SimulatorError,
    zbase32,
)
from nwcd.bolt11 import Network, decode, encode
from nwcd.errors import BackendUnavailable, ErrorCode, RequestError
from nwcd.nip47.methods import (
    ListTransactionsParams,
    MakeHoldInvoiceParams,
    MakeInvoiceParams,
    Method,
    TlvRecord,
)
from nwcd.nip47.results import Transaction
from nwcd.ports import Failed, LightningBackend, PaymentOutcome, Pending, Succeeded

ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"
NO_LIMIT = 10**12


class ShiftedClock:
    """The real clock, moved by ``shift`` seconds."""

    def __init__(self) -> None:
        self.shift = 0.0

    def now(self) -> float:
        return time.time() + self.shift

    def monotonic(self) -> float:
        return time.monotonic() + self.shift


@pytest.fixture
def config(tmp_path: Path) -> SimulatorConfig:
    return SimulatorConfig(tmp_path / "sim.sqlite3")


@pytest.fixture
async def sim(config: SimulatorConfig) -> AsyncIterator[SimulatedBackend]:
    backend = await SimulatedBackend.open(config)
    yield backend
    await backend.close()


@contextlib.asynccontextmanager
async def opened(config: SimulatorConfig, **kwargs: object) -> AsyncIterator[SimulatedBackend]:
    backend = await SimulatedBackend.open(config, **kwargs)  # type: ignore[arg-type]
    try:
        yield backend
    finally:
        await backend.close()


async def pay(
    sim: SimulatedBackend,
    invoice: SimInvoice,
    amount_msat: int | None = None,
    fee_limit_msat: int = NO_LIMIT,
) -> PaymentOutcome:
    decoded = decode(invoice.invoice)
    amount = amount_msat if amount_msat is not None else decoded.amount_msat
    assert amount is not None
    return await sim.pay_invoice(decoded, amount_msat=amount, fee_limit_msat=fee_limit_msat)


async def until_in_flight(sim: SimulatedBackend, payment_hash: str) -> None:
    """Wait until a payment started in another task is stored as in flight."""
    for _ in range(200):
        if isinstance(await sim.payment_status(payment_hash), Pending):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the payment never went in flight")


async def keysend(
    sim: SimulatedBackend,
    preimage: str,
    pubkey: str | None = None,
    *,
    amount_msat: int = 500,
    tlv_records: tuple[TlvRecord, ...] = (),
) -> PaymentOutcome:
    return await sim.pay_keysend(
        pubkey=pubkey or sim.payee_pubkeys[0],
        amount_msat=amount_msat,
        preimage=preimage,
        tlv_records=tlv_records,
        fee_limit_msat=0,
    )


def zbase32_decode(text: str) -> bytes:
    value = 0
    for char in text:
        value = value << 5 | ZBASE32.index(char)
    size = len(text) * 5 // 8
    return (value >> (len(text) * 5 - size * 8)).to_bytes(size, "big")


# --- the network and its invoices -----------------------------------------------------------


async def test_invoice_is_a_signed_regtest_invoice_of_a_payee(sim: SimulatedBackend) -> None:
    invoice = await sim.create_invoice(21_000, description="coffee", payee_index=2)
    decoded = decode(invoice.invoice)
    assert invoice.invoice.startswith("lnbcrt")
    assert decoded.network is Network.REGTEST
    assert decoded.amount_msat == invoice.amount_msat == 21_000
    assert decoded.payment_hash == invoice.payment_hash
    assert hashlib.sha256(bytes.fromhex(invoice.preimage)).hexdigest() == invoice.payment_hash
    assert decoded.payee == sim.payee_pubkeys[2]
    assert decoded.description == "coffee"
    assert len(set(sim.payee_pubkeys)) == PAYEE_COUNT
    assert sim.node_pubkey not in sim.payee_pubkeys


async def test_create_invoice_refuses_bad_arguments(sim: SimulatedBackend) -> None:
    with pytest.raises(ValueError, match="amount"):
        await sim.create_invoice(0)
    with pytest.raises(ValueError, match="outcome"):
        await sim.create_invoice(1000, outcome="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payee_index"):
        await sim.create_invoice(1000, payee_index=PAYEE_COUNT)
    with pytest.raises(ValueError, match="latency_ms"):
        await sim.create_invoice(1000, latency_ms=-1)


async def test_keys_and_balance_survive_reopening(config: SimulatorConfig) -> None:
    async with opened(config) as first:
        node, payees = first.node_pubkey, first.payee_pubkeys
        await pay(first, await first.create_invoice(1000))
    other = SimulatorConfig(config.path, initial_balance_msat=5)
    async with opened(other) as second:
        assert (second.node_pubkey, second.payee_pubkeys) == (node, payees)
        assert await second.get_balance() == config.initial_balance_msat - 1000
        db = sqlite3.connect(config.path)
        try:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            db.close()


async def test_separate_files_are_separate_networks(tmp_path: Path) -> None:
    async with (
        opened(SimulatorConfig(tmp_path / "a")) as one,
        opened(SimulatorConfig(tmp_path / "b")) as two,
    ):
        assert one.node_pubkey != two.node_pubkey
        assert await pay(one, await two.create_invoice(1000)) == Failed("no route")


async def test_backend_serves_every_method_without_a_cap(sim: SimulatedBackend) -> None:
    port: LightningBackend = sim  # mypy checks the structural match
    assert port.methods == {m.value for m in Method} - {"get_budget"}  # the service answers it
    assert port.max_concurrent_payments is None


# --- paying invoices ------------------------------------------------------------------------


async def test_pays_and_returns_the_real_preimage_and_fee(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    invoice = await sim.create_invoice(5_000, fee_msat=7)
    assert await pay(sim, invoice) == Succeeded(invoice.preimage, 7)
    assert await sim.payment_status(invoice.payment_hash) == Succeeded(invoice.preimage, 7)
    assert await sim.get_balance() == before - 5_007


async def test_amountless_invoice_pays_the_given_amount(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    invoice = await sim.create_invoice(None)
    assert decode(invoice.invoice).amount_msat is None
    assert await pay(sim, invoice, amount_msat=1_234) == Succeeded(invoice.preimage, 0)
    assert await sim.get_balance() == before - 1_234


async def test_unknown_invoices_have_no_route(sim: SimulatedBackend) -> None:
    foreign = encode(
        secret=hashlib.sha256(b"some other node").digest(),
        payment_hash="ab" * 32,
        payment_secret="cd" * 32,
        timestamp=int(time.time()),
        network=Network.REGTEST,
        amount_msat=1000,
        description="elsewhere",
    )
    decoded = decode(foreign)
    assert await sim.pay_invoice(decoded, amount_msat=1000, fee_limit_msat=0) == Failed("no route")
    assert await sim.payment_status(decoded.payment_hash) == Failed("not found")
    own = await sim.make_invoice(MakeInvoiceParams(1000, "to myself"))
    assert own.invoice is not None
    assert await pay(sim, SimInvoice(own.invoice, own.payment_hash, "", 1000)) == Failed("no route")


async def test_fee_over_the_limit_fails_before_paying(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    invoice = await sim.create_invoice(1_000, fee_msat=11)
    assert await pay(sim, invoice, fee_limit_msat=10) == Failed("fee limit exceeded")
    assert await sim.payment_status(invoice.payment_hash) == Failed("not found")
    assert await sim.get_balance() == before
    assert await pay(sim, invoice, fee_limit_msat=11) == Succeeded(invoice.preimage, 11)


async def test_insufficient_balance_raises_before_paying(tmp_path: Path) -> None:
    async with opened(SimulatorConfig(tmp_path / "s", initial_balance_msat=1_000)) as sim:
        invoice = await sim.create_invoice(1_000, fee_msat=1)
        with pytest.raises(RequestError) as caught:
            await pay(sim, invoice)
        assert caught.value.code is ErrorCode.INSUFFICIENT_BALANCE
        assert await sim.payment_status(invoice.payment_hash) == Failed("not found")
        assert await sim.get_balance() == 1_000


async def test_second_payment_of_a_paid_invoice_fails(sim: SimulatedBackend) -> None:
    invoice = await sim.create_invoice(1_000)
    await pay(sim, invoice)
    before = await sim.get_balance()
    assert await pay(sim, invoice) == Failed("invoice already paid")
    assert await sim.get_balance() == before


async def test_wrong_amount_fails(sim: SimulatedBackend) -> None:
    invoice = await sim.create_invoice(1_000)
    assert await pay(sim, invoice, amount_msat=999) == Failed("incorrect payment amount")
    assert await sim.payment_status(invoice.payment_hash) == Failed("not found")


async def test_expired_invoice_fails(config: SimulatorConfig) -> None:
    clock = ShiftedClock()
    async with opened(config, clock=clock) as sim:
        invoice = await sim.create_invoice(1_000, expiry=60)
        clock.shift = 61
        assert await pay(sim, invoice) == Failed("invoice expired")


async def test_success_waits_for_the_latency(sim: SimulatedBackend) -> None:
    invoice = await sim.create_invoice(1_000, latency_ms=80)
    started = time.monotonic()
    assert await pay(sim, invoice) == Succeeded(invoice.preimage, 0)
    assert time.monotonic() - started >= 0.08


async def test_failure_at_payee_releases_the_money(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    invoice = await sim.create_invoice(1_000, latency_ms=50, outcome="fail", fee_msat=3)
    task = asyncio.create_task(pay(sim, invoice))
    await until_in_flight(sim, invoice.payment_hash)
    assert await sim.get_balance() == before - 1_003  # reserved while in flight
    assert await task == Failed("rejected by the payee")
    assert await sim.payment_status(invoice.payment_hash) == Failed("rejected by the payee")
    assert await sim.get_balance() == before
    # A failed payment may be tried again; this payee fails again.
    assert await pay(sim, invoice) == Failed("rejected by the payee")


async def test_payment_in_flight_is_pending_for_a_second_attempt(sim: SimulatedBackend) -> None:
    invoice = await sim.create_invoice(1_000, outcome="hang")
    task = asyncio.create_task(pay(sim, invoice))
    await until_in_flight(sim, invoice.payment_hash)
    assert await pay(sim, invoice) == Pending("payment in transition")
    await sim.release(invoice.payment_hash, "succeed")
    assert await task == Succeeded(invoice.preimage, 0)


# --- hanging payments and release -----------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("succeed", "succeeded"), ("fail", "failed")],
)
async def test_release_ends_a_hanging_payment(
    sim: SimulatedBackend, outcome: str, expected: str
) -> None:
    before = await sim.get_balance()
    invoice = await sim.create_invoice(2_000, outcome="hang", fee_msat=5)
    task = asyncio.create_task(pay(sim, invoice))
    await until_in_flight(sim, invoice.payment_hash)
    await asyncio.sleep(0.06)
    assert not task.done()
    assert await sim.get_balance() == before - 2_005
    await sim.release(invoice.payment_hash, outcome)  # type: ignore[arg-type]
    result = await asyncio.wait_for(task, 0.5)
    if expected == "succeeded":
        assert result == Succeeded(invoice.preimage, 5)
        assert await sim.get_balance() == before - 2_005
    else:
        assert result == Failed("rejected by the payee")
        assert await sim.get_balance() == before


async def test_release_before_paying_presets_the_outcome(sim: SimulatedBackend) -> None:
    invoice = await sim.create_invoice(1_000, outcome="hang")
    await sim.release(invoice.payment_hash, "succeed")
    assert await asyncio.wait_for(pay(sim, invoice), 0.5) == Succeeded(invoice.preimage, 0)


async def test_release_refuses_what_it_cannot_release(sim: SimulatedBackend) -> None:
    with pytest.raises(SimulatorError, match="no simulated invoice"):
        await sim.release("00" * 32, "succeed")
    plain = await sim.create_invoice(1_000)
    with pytest.raises(SimulatorError, match="does not hang"):
        await sim.release(plain.payment_hash, "fail")
    hanging = await sim.create_invoice(1_000, outcome="hang")
    await sim.release(hanging.payment_hash, "fail")
    await sim.release(hanging.payment_hash, "fail")  # the same again: nothing to do
    with pytest.raises(SimulatorError, match="already released"):
        await sim.release(hanging.payment_hash, "succeed")


async def test_release_from_another_process(config: SimulatorConfig) -> None:
    async with opened(config) as server, opened(config) as cli:
        invoice = await cli.create_invoice(3_000, outcome="hang")
        task = asyncio.create_task(pay(server, invoice))
        await until_in_flight(cli, invoice.payment_hash)
        await asyncio.sleep(0.05)
        assert not task.done()
        await cli.release(invoice.payment_hash, "succeed")
        assert await asyncio.wait_for(task, 0.5) == Succeeded(invoice.preimage, 0)


async def test_release_while_the_payer_is_down(config: SimulatorConfig) -> None:
    async with opened(config) as server:
        invoice = await server.create_invoice(3_000, outcome="hang")
        task = asyncio.create_task(pay(server, invoice))
        await until_in_flight(server, invoice.payment_hash)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with opened(config) as cli:
        await cli.release(invoice.payment_hash, "fail")
    async with opened(config) as restarted:
        assert await restarted.payment_status(invoice.payment_hash) == Failed(
            "rejected by the payee"
        )
        assert await restarted.get_balance() == config.initial_balance_msat


# --- shared state, concurrency, crash recovery ----------------------------------------------


async def test_concurrent_payments_never_overdraw(tmp_path: Path) -> None:
    config = SimulatorConfig(tmp_path / "s", initial_balance_msat=10_000)
    async with opened(config) as one, opened(config) as two:
        invoices = [await one.create_invoice(3_000, latency_ms=40) for _ in range(6)]
        results = await asyncio.gather(
            *(pay(one if i % 2 else two, inv) for i, inv in enumerate(invoices)),
            return_exceptions=True,
        )
        paid = [r for r in results if isinstance(r, Succeeded)]
        refused = [r for r in results if isinstance(r, RequestError)]
        assert len(paid) == 3
        assert len(refused) == 3
        assert all(r.code is ErrorCode.INSUFFICIENT_BALANCE for r in refused)
        assert await one.get_balance() == await two.get_balance() == 1_000


async def test_crash_mid_payment_is_recovered_from_stored_state(config: SimulatorConfig) -> None:
    async with opened(config) as crashed:
        invoice = await crashed.create_invoice(4_000, latency_ms=150, fee_msat=2)
        task = asyncio.create_task(pay(crashed, invoice))
        await until_in_flight(crashed, invoice.payment_hash)
        task.cancel()  # the process dies mid-sleep
        with pytest.raises(asyncio.CancelledError):
            await task
    async with opened(config) as recovered:
        assert await recovered.payment_status(invoice.payment_hash) == Pending()
        assert await recovered.get_balance() == config.initial_balance_msat - 4_002
        await asyncio.sleep(0.16)
        assert await recovered.payment_status(invoice.payment_hash) == Succeeded(
            invoice.preimage, 2
        )
        assert await recovered.get_balance() == config.initial_balance_msat - 4_002
        assert await pay(recovered, invoice) == Failed("invoice already paid")


async def test_unknown_payment_status_is_not_found(sim: SimulatedBackend) -> None:
    assert await sim.payment_status("12" * 32) == Failed("not found")


# --- keysend ---------------------------------------------------------------------------------


async def test_keysend_to_a_payee_uses_the_callers_preimage(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    preimage = "42" * 32
    outcome = await sim.pay_keysend(
        pubkey=sim.payee_pubkeys[1],
        amount_msat=2_500,
        preimage=preimage,
        tlv_records=(),
        fee_limit_msat=0,
    )
    assert outcome == Succeeded(preimage, 0)
    payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    assert await sim.payment_status(payment_hash) == Succeeded(preimage, 0)
    assert await sim.get_balance() == before - 2_500
    again = await sim.pay_keysend(
        pubkey=sim.payee_pubkeys[1],
        amount_msat=2_500,
        preimage=preimage,
        tlv_records=(),
        fee_limit_msat=0,
    )
    assert again == Failed("invoice already paid")
    found = await sim.lookup_invoice(payment_hash=payment_hash, invoice=None)
    assert found is not None
    assert (found.type, found.state, found.preimage) == ("outgoing", "settled", preimage)


async def test_keysend_elsewhere_has_no_route(sim: SimulatedBackend) -> None:
    for pubkey in ("02" + "11" * 32, sim.node_pubkey):
        outcome = await sim.pay_keysend(
            pubkey=pubkey, amount_msat=1, preimage="42" * 32, tlv_records=(), fee_limit_msat=0
        )
        assert outcome == Failed("no route")


async def test_keysend_over_the_balance_raises(tmp_path: Path) -> None:
    async with opened(SimulatorConfig(tmp_path / "s", initial_balance_msat=100)) as sim:
        with pytest.raises(RequestError) as caught:
            await sim.pay_keysend(
                pubkey=sim.payee_pubkeys[0],
                amount_msat=101,
                preimage="42" * 32,
                tlv_records=(),
                fee_limit_msat=0,
            )
        assert caught.value.code is ErrorCode.INSUFFICIENT_BALANCE


# --- named nodes: what a keysend payee or an LNURL user received -----------------------------


async def test_named_nodes_have_stable_keys(config: SimulatorConfig, tmp_path: Path) -> None:
    async with opened(config) as sim:
        alice = await sim.add_node("alice")
        assert len(alice) == 66
        assert alice[:2] in ("02", "03")
        assert await sim.add_node("alice", existing_ok=True) == alice
        with pytest.raises(SimulatorError, match="exists already"):
            await sim.add_node("alice")
        for bad in ("", "Alice", "a b", "x" * 65, "bob@host"):
            with pytest.raises(SimulatorError, match="node name"):
                await sim.add_node(bad)
        bob = await sim.add_node("bob")
        zapper = sim.zapper_secret().public_key.hex
        assert [(n.name, n.pubkey) for n in await sim.nodes()] == [("alice", alice), ("bob", bob)]
        assert len({alice, bob, sim.node_pubkey, *sim.payee_pubkeys}) == PAYEE_COUNT + 3
    async with opened(config) as again:  # the file's seed decides the keys
        assert await again.add_node("alice", existing_ok=True) == alice
        assert again.zapper_secret().public_key.hex == zapper
    async with opened(SimulatorConfig(tmp_path / "other")) as other:
        assert await other.add_node("alice") != alice
        assert other.zapper_secret().public_key.hex != zapper


async def test_invoice_of_a_node_with_a_description_hash(sim: SimulatedBackend) -> None:
    pubkey = await sim.add_node("carol")
    metadata = '[["text/plain","Pay carol"]]'
    digest = hashlib.sha256(metadata.encode()).hexdigest()
    invoice = await sim.create_invoice(
        5_000, description=metadata, description_hash=digest, node="carol", metadata={"c": 1}
    )
    decoded = decode(invoice.invoice)
    assert (decoded.payee, decoded.description, decoded.description_hash) == (pubkey, None, digest)
    plain = decode((await sim.create_invoice(1_000, description_hash="AB" * 32)).invoice)
    assert (plain.payee, plain.description_hash) == (sim.payee_pubkeys[0], "ab" * 32)
    assert decode((await sim.create_invoice(1_000)).invoice).description == (
        "nwcd simulated payment"
    )
    with pytest.raises(SimulatorError, match="no simulated node"):
        await sim.create_invoice(1_000, node="nobody")
    with pytest.raises(ValueError, match="description_hash"):
        await sim.create_invoice(1_000, description_hash="12")
    with pytest.raises(ValueError, match="not both"):
        await sim.create_invoice(1_000, node="carol", payee_index=1)
    assert await sim.received("carol") == []
    assert await pay(sim, invoice) == Succeeded(invoice.preimage, 0)
    [got] = await sim.received(pubkey)
    assert got == ReceivedPayment(
        kind="invoice",
        amount_msat=5_000,
        payment_hash=invoice.payment_hash,
        at=got.at,
        description=metadata,
        metadata={"c": 1},
    )
    assert abs(got.at - time.time()) < 60


async def test_keysend_to_a_node_keeps_its_tlv_records(sim: SimulatedBackend) -> None:
    pubkey = await sim.add_node("podcast")
    boost = '{"action":"boost","message":"Great show ⚡"}'
    records = (
        TlvRecord(7629169, boost.encode().hex()),
        TlvRecord(34349334, b"Hello".hex()),
        TlvRecord(696969, "FF00"),  # not UTF-8
        TlvRecord(5482373484, "ab" * 32),
    )
    outcome = await keysend(sim, "11" * 32, pubkey, amount_msat=21_000, tlv_records=records)
    assert outcome == Succeeded("11" * 32, 0)
    invoice = await sim.create_invoice(3_000, node="podcast")
    await pay(sim, invoice)
    await pay(sim, await sim.create_invoice(1_000, outcome="fail", node="podcast"))
    await keysend(sim, "22" * 32, await sim.add_node("other"))  # not listed: another node's
    sent, paid = await sim.received("podcast")
    assert (sent.kind, sent.amount_msat, sent.description, sent.metadata) == (
        "keysend",
        21_000,
        None,
        None,
    )
    assert sent.payment_hash == hashlib.sha256(bytes.fromhex("11" * 32)).hexdigest()
    assert sent.tlv_records == (
        ReceivedTlv(
            7629169, boost.encode().hex(), boost, {"action": "boost", "message": "Great show ⚡"}
        ),
        ReceivedTlv(34349334, "48656c6c6f", "Hello", None),
        ReceivedTlv(696969, "ff00"),
        ReceivedTlv(5482373484, "ab" * 32),
    )
    assert (paid.kind, paid.amount_msat, paid.payment_hash, paid.tlv_records) == (
        "invoice",
        3_000,
        invoice.payment_hash,
        (),
    )
    assert sent.at <= paid.at


async def test_received_of_a_fixed_payee_and_of_nobody(sim: SimulatedBackend) -> None:
    await keysend(sim, "33" * 32, sim.payee_pubkeys[2], tlv_records=(TlvRecord(1, "00"),))
    [got] = await sim.received(sim.payee_pubkeys[2].upper())
    assert got.tlv_records == (ReceivedTlv(1, "00", "\x00", None),)
    for unknown in ("nobody", "02" + "11" * 32):
        with pytest.raises(SimulatorError, match="no simulated node"):
            await sim.received(unknown)


# --- the wallet's own invoices --------------------------------------------------------------


async def test_make_invoice_lookup_and_receive(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    made = await sim.make_invoice(MakeInvoiceParams(7_000, "pizza", metadata={"order": 7}))
    assert (made.type, made.state, made.amount_msat) == ("incoming", "pending", 7_000)
    assert made.preimage is None
    assert made.metadata == {"order": 7}
    assert made.invoice is not None
    decoded = decode(made.invoice)
    assert decoded.network is Network.REGTEST
    assert decoded.amount_msat == 7_000
    assert decoded.payee == sim.node_pubkey == (await sim.get_info()).pubkey
    assert made.expires_at == decoded.timestamp + 3600
    by_hash = await sim.lookup_invoice(payment_hash=made.payment_hash, invoice=None)
    by_invoice = await sim.lookup_invoice(payment_hash=None, invoice=made.invoice.upper())
    assert by_hash == by_invoice == made

    settled = await sim.receive(made.payment_hash)
    assert settled.state == "settled"
    assert settled.preimage is not None
    assert hashlib.sha256(bytes.fromhex(settled.preimage)).hexdigest() == made.payment_hash
    assert await sim.get_balance() == before + 7_000
    assert await sim.lookup_invoice(payment_hash=made.payment_hash, invoice=None) == settled
    with pytest.raises(SimulatorError, match="already paid"):
        await sim.receive(made.payment_hash)


async def test_make_invoice_with_description_hash_and_no_amount(sim: SimulatedBackend) -> None:
    made = await sim.make_invoice(MakeInvoiceParams(0, "shown", "ee" * 32, expiry=60))
    assert made.invoice is not None
    decoded = decode(made.invoice)
    assert (decoded.amount_msat, decoded.description_hash, decoded.expiry) == (None, "ee" * 32, 60)
    with pytest.raises(SimulatorError, match="cannot be paid"):
        await sim.receive(made.payment_hash)
    assert (await sim.receive(made.payment_hash, 123)).amount_msat == 123


async def test_receive_refuses_what_no_payer_could_pay(config: SimulatorConfig) -> None:
    clock = ShiftedClock()
    async with opened(config, clock=clock) as sim:
        payee = await sim.create_invoice(1_000)
        with pytest.raises(SimulatorError, match="no invoice"):
            await sim.receive(payee.payment_hash)
        made = await sim.make_invoice(MakeInvoiceParams(1_000, expiry=60))
        clock.shift = 61
        found = await sim.lookup_invoice(payment_hash=made.payment_hash, invoice=None)
        assert found is not None
        assert found.state == "expired"
        with pytest.raises(SimulatorError, match="expired"):
            await sim.receive(made.payment_hash)


async def test_lookup_of_unknown_is_none(sim: SimulatedBackend) -> None:
    assert await sim.lookup_invoice(payment_hash="34" * 32, invoice=None) is None
    payee = await sim.create_invoice(1_000)  # not the wallet's until it pays it
    assert await sim.lookup_invoice(payment_hash=None, invoice=payee.invoice) is None


async def test_incoming_stream_sees_payments_from_another_process(
    config: SimulatorConfig,
) -> None:
    async with opened(config) as server, opened(config) as cli:
        old = await cli.make_invoice(MakeInvoiceParams(1_000))
        await cli.receive(old.payment_hash)  # settled before the stream started
        stream = server.incoming_payments()

        async def next_payment() -> Transaction:
            return await anext(stream)

        first = asyncio.create_task(next_payment())
        made = await server.make_invoice(MakeInvoiceParams(9_000, "tip"))
        await asyncio.sleep(0.03)
        assert not first.done()
        await cli.receive(made.payment_hash)
        got = await asyncio.wait_for(first, 0.5)
        assert (got.payment_hash, got.state, got.amount_msat) == (
            made.payment_hash,
            "settled",
            9_000,
        )
        second = await server.make_invoice(MakeInvoiceParams(500))
        await server.receive(second.payment_hash)  # in-process: wakes the stream at once
        assert (await asyncio.wait_for(anext(stream), 0.5)).payment_hash == second.payment_hash
        await server.close()
        assert await anext(stream, None) is None  # the stream ends with the backend


# --- hold invoices ------------------------------------------------------------------------------


def hold_params(amount_msat: int = 5_000, **extra: Any) -> tuple[MakeHoldInvoiceParams, str]:
    preimage = os.urandom(32).hex()
    digest = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
    return MakeHoldInvoiceParams(amount_msat, digest, **extra), preimage


async def test_a_hold_invoice_holds_the_payment_until_settled(sim: SimulatedBackend) -> None:
    params, preimage = hold_params(5_000, description="held", min_cltv_expiry_delta=40)
    made = await sim.make_hold_invoice(params)
    assert (made.payment_hash, made.state, made.amount_msat) == (
        params.payment_hash,
        "pending",
        5_000,
    )
    assert made.invoice is not None
    decoded = decode(made.invoice)
    assert (decoded.payment_hash, decoded.min_final_cltv_expiry) == (params.payment_hash, 40)
    assert made.preimage is None
    before = await sim.get_balance()
    with pytest.raises(RequestError, match="no payment yet"):
        await sim.settle_hold_invoice(preimage)

    held = await sim.receive(made.payment_hash)
    height = (await sim.get_info()).block_height
    assert (held.state, held.settle_deadline, held.preimage) == ("accepted", height + 40, None)
    assert await sim.get_balance() == before  # held, not received
    with pytest.raises(SimulatorError, match="already paid"):
        await sim.receive(made.payment_hash)

    await sim.settle_hold_invoice(preimage.upper())
    settled = await sim.lookup_invoice(payment_hash=made.payment_hash, invoice=None)
    assert settled is not None
    assert (settled.state, settled.preimage, settled.settle_deadline) == ("settled", preimage, None)
    assert await sim.get_balance() == before + 5_000
    with pytest.raises(RequestError, match="already settled"):
        await sim.settle_hold_invoice(preimage)
    with pytest.raises(RequestError, match="already settled") as refused:
        await sim.cancel_hold_invoice(made.payment_hash)
    assert refused.value.code is ErrorCode.OTHER


async def test_a_canceled_hold_invoice_fails_and_takes_no_payment(sim: SimulatedBackend) -> None:
    params, preimage = hold_params()
    made = await sim.make_hold_invoice(params)
    await sim.receive(made.payment_hash)
    before = await sim.get_balance()
    await sim.cancel_hold_invoice(made.payment_hash)
    await sim.cancel_hold_invoice(made.payment_hash)  # twice is no error
    found = await sim.lookup_invoice(payment_hash=made.payment_hash, invoice=None)
    assert found is not None
    assert found.state == "failed"
    with pytest.raises(RequestError, match="canceled"):
        await sim.settle_hold_invoice(preimage)
    assert await sim.get_balance() == before

    unpaid = await sim.make_hold_invoice(hold_params()[0])
    await sim.cancel_hold_invoice(unpaid.payment_hash)
    with pytest.raises(SimulatorError, match="canceled"):
        await sim.receive(unpaid.payment_hash)


async def test_hold_invoice_errors(sim: SimulatedBackend) -> None:
    params, preimage = hold_params()
    with pytest.raises(RequestError) as unknown:
        await sim.settle_hold_invoice(preimage)
    assert unknown.value.code is ErrorCode.NOT_FOUND
    ordinary = await sim.make_invoice(MakeInvoiceParams(1_000))
    with pytest.raises(RequestError) as not_hold:
        await sim.cancel_hold_invoice(ordinary.payment_hash)
    assert not_hold.value.code is ErrorCode.NOT_FOUND
    await sim.make_hold_invoice(params)
    with pytest.raises(RequestError, match="already exists"):
        await sim.make_hold_invoice(params)


async def test_incoming_stream_reports_held_then_settled(config: SimulatorConfig) -> None:
    async with opened(config) as server, opened(config) as cli:
        stream = server.incoming_payments()
        params, preimage = hold_params(3_000)
        made = await server.make_hold_invoice(params)
        await cli.receive(made.payment_hash)
        held = await asyncio.wait_for(anext(stream), 1)
        assert (held.payment_hash, held.state, held.amount_msat) == (
            made.payment_hash,
            "accepted",
            3_000,
        )
        assert held.settle_deadline is not None
        await server.settle_hold_invoice(preimage)
        settled = await asyncio.wait_for(anext(stream), 1)
        assert (settled.payment_hash, settled.state, settled.preimage) == (
            made.payment_hash,
            "settled",
            preimage,
        )


def as_version_3(path: Path) -> None:
    """Turn a simulator file back into version 3: no named nodes, no TLVs kept."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(
            "DROP TABLE nodes; DROP INDEX payments_destination;"
            " ALTER TABLE payments DROP COLUMN tlv_records;"
            " ALTER TABLE invoices DROP COLUMN payee_pubkey; PRAGMA user_version = 3;"
        )
    finally:
        db.close()


def as_version_2(path: Path) -> None:
    """Turn a simulator file back into version 2: the same invoices, without hold invoices."""
    as_version_3(path)
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT payment_hash, invoice, node, payee_index, preimage, payment_secret,"
            " amount_msat, created_at, expires_at, outcome, received_msat, settled_at,"
            " event_seq FROM invoices"
        ).fetchall()
        db.executescript(
            "DROP VIEW wallet_transactions; DROP TABLE invoices;"
            "CREATE TABLE invoices (payment_hash TEXT PRIMARY KEY, invoice TEXT NOT NULL UNIQUE,"
            " node TEXT NOT NULL, payee_index INTEGER, preimage TEXT NOT NULL,"
            " payment_secret TEXT NOT NULL, amount_msat INTEGER, description TEXT,"
            " description_hash TEXT, metadata TEXT, created_at REAL NOT NULL,"
            " expires_at INTEGER NOT NULL, latency_ms INTEGER NOT NULL DEFAULT 0,"
            " outcome TEXT NOT NULL DEFAULT 'succeed', fee_msat INTEGER NOT NULL DEFAULT 0,"
            " release_outcome TEXT, released_at REAL, received_msat INTEGER, settled_at REAL,"
            " settle_seq INTEGER UNIQUE);"
            "CREATE VIEW wallet_transactions AS SELECT 1;"
            "PRAGMA user_version = 2;"
        )
        db.executemany(
            "INSERT INTO invoices (payment_hash, invoice, node, payee_index, preimage,"
            " payment_secret, amount_msat, created_at, expires_at, outcome, received_msat,"
            " settled_at, settle_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.commit()
    finally:
        db.close()


async def test_a_version_2_file_is_upgraded_with_its_invoices(config: SimulatorConfig) -> None:
    async with opened(config) as sim:
        paid = await sim.make_invoice(MakeInvoiceParams(1_000))
        await sim.receive(paid.payment_hash)
        open_invoice = await sim.make_invoice(MakeInvoiceParams(2_000))
        balance = await sim.get_balance()
    as_version_2(config.path)
    async with opened(config) as sim:
        assert await sim.get_balance() == balance
        found = await sim.lookup_invoice(payment_hash=paid.payment_hash, invoice=None)
        assert found is not None
        assert found.state == "settled"
        assert (
            await sim.lookup_invoice(payment_hash=open_invoice.payment_hash, invoice=None)
            == open_invoice
        )
        await sim.receive(open_invoice.payment_hash)
        assert await sim.get_balance() == balance + 2_000


# --- listing ----------------------------------------------------------------------------------


async def test_list_transactions_filters_and_orders(config: SimulatorConfig) -> None:
    clock = ShiftedClock()
    async with opened(config, clock=clock) as sim:
        t0 = int(clock.now())
        received = await sim.make_invoice(MakeInvoiceParams(1_000, "in"))
        await sim.receive(received.payment_hash)
        clock.shift = 100
        unpaid = await sim.make_invoice(MakeInvoiceParams(2_000, "unpaid"))
        clock.shift = 200
        paid = await sim.create_invoice(3_000, fee_msat=1)
        await pay(sim, paid)
        clock.shift = 300
        failed = await sim.create_invoice(4_000, outcome="fail")
        await pay(sim, failed)

        async def hashes(**kwargs: object) -> list[str]:
            params = ListTransactionsParams(**kwargs)  # type: ignore[arg-type]
            return [tx.payment_hash for tx in await sim.list_transactions(params)]

        assert await hashes() == [paid.payment_hash, received.payment_hash]
        everything = [
            failed.payment_hash,
            paid.payment_hash,
            unpaid.payment_hash,
            received.payment_hash,
        ]
        assert await hashes(unpaid=True) == everything
        assert await hashes(unpaid=True, limit=2, offset=1) == everything[1:3]
        assert await hashes(unpaid=True, type="incoming") == everything[2:]
        assert await hashes(unpaid=True, type="outgoing") == everything[:2]
        # the window's edges sit mid-way between the shifts: the wall clock may tick meanwhile
        assert await hashes(unpaid=True, from_time=t0 + 50, until=t0 + 250) == everything[1:3]

        listed = await sim.list_transactions(ListTransactionsParams(unpaid=True))
        states = [(tx.type, tx.state, tx.fees_paid_msat) for tx in listed]
        assert states == [
            ("outgoing", "failed", 0),
            ("outgoing", "settled", 1),
            ("incoming", "pending", 0),
            ("incoming", "settled", 0),
        ]
        assert listed[1].preimage == paid.preimage
        assert listed[0].preimage is None


# --- info and signing -------------------------------------------------------------------------


async def test_get_info(sim: SimulatedBackend) -> None:
    info = await sim.get_info()
    assert info.alias == "nwcd simulator"
    assert info.network == "regtest"
    assert info.pubkey == sim.node_pubkey
    assert info.block_height >= 101
    assert len(info.block_hash) == 64


def test_zbase32_matches_the_spec_examples() -> None:
    assert zbase32(bytes.fromhex("f0bfc7")) == "6n9hq"
    assert zbase32(bytes.fromhex("d47a04")) == "4t7ye"
    assert zbase32(b"\x00") == "yy"


async def test_sign_message_is_lnd_style_and_recovers_the_node_key(sim: SimulatedBackend) -> None:
    message = "hello, nwcd"
    signature = await sim.sign_message(message)
    raw = zbase32_decode(signature)
    assert len(raw) == 65
    assert 31 <= raw[0] <= 34  # compressed key, recovery id 0..3
    digest = hashlib.sha256(
        hashlib.sha256(b"Lightning Signed Message:" + message.encode()).digest()
    ).digest()
    recovered = coincurve.PublicKey.from_signature_and_message(
        raw[1:] + bytes((raw[0] - 31,)), digest, hasher=None
    )
    assert recovered.format(compressed=True).hex() == sim.node_pubkey


# --- failures at the SQLite edge --------------------------------------------------------------


async def test_unreachable_file_is_backend_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable):
        await SimulatedBackend.open(SimulatorConfig(tmp_path / "missing" / "dir" / "sim"))
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendUnavailable):
        await SimulatedBackend.open(SimulatorConfig(garbage))


async def test_newer_schema_is_refused(config: SimulatorConfig) -> None:
    db = sqlite3.connect(config.path)
    try:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    finally:
        db.close()
    with pytest.raises(BackendUnavailable, match="newer"):
        await SimulatedBackend.open(config)


async def test_closed_backend_is_unavailable(config: SimulatorConfig) -> None:
    sim = await SimulatedBackend.open(config)
    await sim.close()
    await sim.close()  # idempotent
    with pytest.raises(BackendUnavailable):
        await sim.get_balance()
    with pytest.raises(BackendUnavailable):
        await sim.payment_status("00" * 32)


async def test_locked_file_is_backend_unavailable(tmp_path: Path) -> None:
    config = SimulatorConfig(tmp_path / "s", busy_timeout=0.05)
    async with opened(config) as sim:
        invoice = await sim.create_invoice(1_000)
        blocker = sqlite3.connect(config.path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(BackendUnavailable, match="locked"):
                await pay(sim, invoice)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert await pay(sim, invoice) == Succeeded(invoice.preimage, 0)


def test_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="network"):
        SimulatorConfig(tmp_path / "s", network="moon")
    with pytest.raises(ValueError, match="initial_balance"):
        SimulatorConfig(tmp_path / "s", initial_balance_msat=-1)


# --- batched starts, the shared poller, the cached balance ----------------------------------


async def test_concurrent_starts_in_one_process_are_checked_one_by_one(tmp_path: Path) -> None:
    config = SimulatorConfig(tmp_path / "s", initial_balance_msat=10_000)
    async with opened(config) as sim:
        invoices = [await sim.create_invoice(3_000) for _ in range(5)]
        failing = await sim.create_invoice(3_000, outcome="fail")
        same = await sim.create_invoice(1_000, latency_ms=30)
        results = await asyncio.gather(
            pay(sim, failing),  # fails at once: reserves nothing
            *(pay(sim, invoice) for invoice in invoices),
            pay(sim, same),
            pay(sim, same),  # the same invoice again, in the same batch
            return_exceptions=True,
        )
        assert results[0] == Failed("rejected by the payee")
        paid = results[1:6]
        assert paid[:3] == [Succeeded(invoice.preimage, 0) for invoice in invoices[:3]]
        assert all(
            isinstance(r, RequestError) and r.code is ErrorCode.INSUFFICIENT_BALANCE
            for r in paid[3:]
        )
        assert results[6:] == [Succeeded(same.preimage, 0), Pending("payment in transition")]
        assert await sim.get_balance() == 0


async def test_balance_sees_writes_of_another_process(config: SimulatorConfig) -> None:
    async with opened(config) as one, opened(config) as two:
        start = await one.get_balance()
        await pay(two, await two.create_invoice(1_500, fee_msat=5))
        assert await one.get_balance() == start - 1_505
        made = await two.make_invoice(MakeInvoiceParams(700))
        await two.receive(made.payment_hash)
        assert await one.get_balance() == await two.get_balance() == start - 805


async def test_many_hanging_payments_share_one_poller(sim: SimulatedBackend) -> None:
    before = await sim.get_balance()
    invoices = [await sim.create_invoice(1_000, outcome="hang") for _ in range(20)]
    tasks = [asyncio.create_task(pay(sim, invoice)) for invoice in invoices]
    for invoice in invoices:
        await until_in_flight(sim, invoice.payment_hash)
    assert sim._poller is not None
    assert await sim.get_balance() == before - 20_000
    for index, invoice in enumerate(invoices):
        await sim.release(invoice.payment_hash, "succeed" if index % 2 else "fail")
    results = await asyncio.wait_for(asyncio.gather(*tasks), 0.5)
    for index, (invoice, result) in enumerate(zip(invoices, results, strict=True)):
        expected = Succeeded(invoice.preimage, 0) if index % 2 else Failed("rejected by the payee")
        assert result == expected
    assert await sim.get_balance() == before - 10_000
    await asyncio.sleep(0)
    assert sim._poller is None  # nothing left to watch


async def test_close_ends_waiting_payments(config: SimulatorConfig) -> None:
    sim = await SimulatedBackend.open(config)
    invoice = await sim.create_invoice(1_000, outcome="hang")
    task = asyncio.create_task(pay(sim, invoice))
    await until_in_flight(sim, invoice.payment_hash)
    await sim.close()
    with pytest.raises(BackendUnavailable, match="closed"):
        await task


# --- outages ----------------------------------------------------------------------------------


def port_calls(sim: SimulatedBackend, payment_hash: str) -> list[Callable[[], Awaitable[object]]]:
    """Every port method but the payments and ``incoming_payments``, as calls to make."""
    return [
        sim.get_balance,
        lambda: sim.payment_status(payment_hash),
        lambda: sim.make_invoice(MakeInvoiceParams(1_000)),
        lambda: sim.lookup_invoice(payment_hash=payment_hash, invoice=None),
        lambda: sim.list_transactions(ListTransactionsParams()),
        sim.get_info,
        lambda: sim.sign_message("hi"),
    ]


async def test_error_outage_starts_payments_and_loses_their_answer(
    config: SimulatorConfig,
) -> None:
    clock = ShiftedClock()
    async with opened(config, clock=clock) as server, opened(config, clock=clock) as cli:
        before = await server.get_balance()  # the server has read the file: it must see writes
        paid = await cli.create_invoice(1_000, fee_msat=2)
        hanging = await cli.create_invoice(2_000, outcome="hang")
        await cli.set_outage("error", 60)  # another process, as `nwcd sim outage`
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await pay(server, paid)
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await pay(server, hanging)
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await keysend(server, "42" * 32)
        for call in port_calls(server, paid.payment_hash):
            with pytest.raises(BackendUnavailable, match="simulated outage"):
                await call()
        # The simulator's own commands go on.
        assert [a.result for a in await server.attempts()] == ["started"] * 3
        await server.release(hanging.payment_hash, "succeed")
        await server.create_invoice(1_000)

        clock.shift = 61  # the outage is over
        assert await server.payment_status(paid.payment_hash) == Succeeded(paid.preimage, 2)
        assert await server.payment_status(hanging.payment_hash) == Succeeded(hanging.preimage, 0)
        keysent = hashlib.sha256(bytes.fromhex("42" * 32)).hexdigest()
        assert await server.payment_status(keysent) == Succeeded("42" * 32, 0)
        assert await server.get_balance() == before - 3_502
        for call in port_calls(server, paid.payment_hash):
            await call()


async def test_error_outage_is_ended_at_once_by_another_process(config: SimulatorConfig) -> None:
    async with opened(config) as server, opened(config) as cli:
        hanging = await cli.create_invoice(2_000, outcome="hang")
        await cli.set_outage("error", 60)
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await pay(server, hanging)
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await server.get_balance()
        await cli.set_outage(None)
        assert await server.payment_status(hanging.payment_hash) == Pending()
        assert await server.get_balance() == config.initial_balance_msat - 2_000
        # Set and ended in this process: the backend's own cache follows at once.
        await server.set_outage("error", 60)
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await server.make_invoice(MakeInvoiceParams(1_000))
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await cli.get_balance()
        await server.set_outage(None)
        await server.make_invoice(MakeInvoiceParams(1_000))
        await cli.get_balance()


async def test_error_outage_loses_the_answer_of_a_payment_in_flight(
    config: SimulatorConfig,
) -> None:
    async with opened(config) as server, opened(config) as cli:
        invoice = await cli.create_invoice(1_000, latency_ms=200)
        task = asyncio.create_task(pay(server, invoice))
        await until_in_flight(cli, invoice.payment_hash)
        await cli.set_outage("error", 60)
        with pytest.raises(BackendUnavailable, match="simulated outage"):
            await asyncio.wait_for(task, 1.0)
        await cli.set_outage(None)
        assert await server.payment_status(invoice.payment_hash) == Succeeded(invoice.preimage, 0)


async def test_hang_outage_holds_calls_until_it_ends(config: SimulatorConfig) -> None:
    loop = asyncio.get_running_loop()
    async with opened(config) as server, opened(config) as cli:
        balance = await server.get_balance()
        await cli.set_outage("hang", 0.5)
        started = loop.time()
        assert await server.get_balance() == balance
        assert loop.time() - started >= 0.4

        await cli.set_outage("hang", 60)
        task = asyncio.create_task(server.get_balance())
        await asyncio.sleep(0.15)
        assert not task.done()
        ended = loop.time()
        await cli.set_outage(None)  # early, from the other process
        assert await asyncio.wait_for(task, 2.0) == balance
        assert loop.time() - ended < 0.5


async def test_hang_outage_holds_payments_before_they_start(config: SimulatorConfig) -> None:
    async with opened(config) as server, opened(config) as cli:
        kept = await cli.create_invoice(1_000)
        given_up = await cli.create_invoice(1_000)
        await cli.set_outage("hang", 60)
        task = asyncio.create_task(pay(server, kept))
        gone = asyncio.create_task(pay(server, given_up))
        status = asyncio.create_task(server.payment_status(kept.payment_hash))
        await asyncio.sleep(0.15)
        assert not any(t.done() for t in (task, gone, status))
        assert await cli.attempts() == []  # nothing reached the node
        gone.cancel()  # the caller gives up while the connection hangs
        with pytest.raises(asyncio.CancelledError):
            await gone
        await cli.set_outage(None)
        assert await asyncio.wait_for(task, 2.0) == Succeeded(kept.preimage, 0)
        assert await asyncio.wait_for(status, 2.0) in (
            Failed("not found"),
            Succeeded(kept.preimage, 0),
        )
        assert [a.payment_hash for a in await cli.attempts()] == [kept.payment_hash]
        assert await server.payment_status(given_up.payment_hash) == Failed("not found")
        assert await server.get_balance() == config.initial_balance_msat - 1_000


async def test_set_outage_refuses_bad_arguments(sim: SimulatedBackend) -> None:
    with pytest.raises(ValueError, match="mode"):
        await sim.set_outage("flaky", 5)  # type: ignore[arg-type]
    for seconds in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="seconds"):
            await sim.set_outage("error", seconds)
    await sim.set_outage(None)  # no outage to end: nothing happens
    await sim.get_balance()


# --- the attempts log -------------------------------------------------------------------------


async def test_attempts_log_what_the_node_did_with_every_payment(tmp_path: Path) -> None:
    clock = ShiftedClock()
    config = SimulatorConfig(tmp_path / "s", initial_balance_msat=10_000)
    async with opened(config, clock=clock) as sim, opened(config, clock=clock) as other:
        paid = await sim.create_invoice(1_000)
        hanging = await sim.create_invoice(1_000, outcome="hang")
        failing = await sim.create_invoice(1_000, outcome="fail")
        too_big = await sim.create_invoice(20_000)
        costly = await sim.create_invoice(1_000, fee_msat=5)
        exact = await sim.create_invoice(1_000)
        expiring = await sim.create_invoice(1_000, expiry=60)
        own = await sim.make_invoice(MakeInvoiceParams(1_000))
        assert own.invoice is not None
        t0 = clock.now()

        assert await pay(sim, paid) == Succeeded(paid.preimage, 0)
        assert await pay(other, paid) == Failed("invoice already paid")
        task = asyncio.create_task(pay(sim, hanging))
        await until_in_flight(sim, hanging.payment_hash)
        assert await pay(sim, hanging) == Pending("payment in transition")
        assert await pay(sim, failing) == Failed("rejected by the payee")
        with pytest.raises(RequestError):
            await pay(sim, too_big)
        assert await pay(sim, costly, fee_limit_msat=4) == Failed("fee limit exceeded")
        assert await pay(sim, exact, amount_msat=999) == Failed("incorrect payment amount")
        assert await pay(sim, SimInvoice(own.invoice, own.payment_hash, "", 1_000)) == Failed(
            "no route"
        )
        assert await keysend(sim, "42" * 32) == Succeeded("42" * 32, 0)
        assert await keysend(sim, "42" * 32) == Failed("invoice already paid")
        assert await keysend(sim, "43" * 32, pubkey=sim.node_pubkey) == Failed("no route")
        assert await keysend(sim, "not hex") == Failed("invalid preimage")
        with pytest.raises(RequestError):
            await sim.pay_keysend(
                pubkey=sim.payee_pubkeys[0],
                amount_msat=10**9,
                preimage="44" * 32,
                tlv_records=(),
                fee_limit_msat=0,
            )
        clock.shift = 61
        assert await pay(sim, expiring) == Failed("invoice expired")
        await sim.release(hanging.payment_hash, "succeed")
        await task

        def sha(preimage: str) -> str:
            return hashlib.sha256(bytes.fromhex(preimage)).hexdigest()

        attempts = await other.attempts()  # the log is in the file: any process reads it
        assert [(a.payment_hash, a.kind, a.result) for a in attempts] == [
            (paid.payment_hash, "invoice", "started"),
            (paid.payment_hash, "invoice", "already_paid"),
            (hanging.payment_hash, "invoice", "started"),
            (hanging.payment_hash, "invoice", "in_transition"),
            (failing.payment_hash, "invoice", "started"),
            (too_big.payment_hash, "invoice", "refused"),
            (costly.payment_hash, "invoice", "refused"),
            (exact.payment_hash, "invoice", "refused"),
            (own.payment_hash, "invoice", "refused"),
            (sha("42" * 32), "keysend", "started"),
            (sha("42" * 32), "keysend", "already_paid"),
            (sha("43" * 32), "keysend", "refused"),
            ("", "keysend", "refused"),
            (sha("44" * 32), "keysend", "refused"),
            (expiring.payment_hash, "invoice", "refused"),
        ]
        assert all(isinstance(a, Attempt) for a in attempts)
        times = [a.at for a in attempts]
        assert times == sorted(times)
        assert t0 <= times[0]
        assert times[-1] >= t0 + 61


async def test_attempts_of_one_batch_are_logged_in_queue_order(tmp_path: Path) -> None:
    config = SimulatorConfig(tmp_path / "s", initial_balance_msat=2_000)
    async with opened(config) as sim:
        invoices = [await sim.create_invoice(1_000) for _ in range(3)]
        await asyncio.gather(
            pay(sim, invoices[0]),
            pay(sim, invoices[0]),
            *(pay(sim, invoice) for invoice in invoices[1:]),
            return_exceptions=True,
        )
        assert [(a.payment_hash, a.result) for a in await sim.attempts()] == [
            (invoices[0].payment_hash, "started"),
            (invoices[0].payment_hash, "already_paid"),
            (invoices[1].payment_hash, "started"),
            (invoices[2].payment_hash, "refused"),  # insufficient balance
        ]


async def test_a_version_3_file_is_upgraded_keeping_its_data(config: SimulatorConfig) -> None:
    async with opened(config) as sim:
        invoice = await sim.create_invoice(1_000, payee_index=1)
        made = await sim.make_invoice(MakeInvoiceParams(2_000, description_hash="cd" * 32))
        assert await keysend(sim, "44" * 32) == Succeeded("44" * 32, 0)
        assert await pay(sim, invoice) == Succeeded(invoice.preimage, 0)
        balance = await sim.get_balance()
    as_version_3(config.path)
    async with opened(config) as sim:
        assert await sim.get_balance() == balance
        assert await sim.lookup_invoice(payment_hash=made.payment_hash, invoice=None) == made
        assert await pay(sim, invoice) == Failed("invoice already paid")
        assert [r.payment_hash for r in await sim.received(sim.payee_pubkeys[1])] == [
            invoice.payment_hash
        ]
        [old_keysend] = await sim.received(sim.payee_pubkeys[0])
        assert (old_keysend.amount_msat, old_keysend.tlv_records) == (500, ())
        await keysend(sim, "55" * 32, await sim.add_node("dave"), tlv_records=(TlvRecord(7, "61"),))
        [got] = await sim.received("dave")
        assert got.tlv_records == (ReceivedTlv(7, "61", "a"),)


async def test_version_1_file_is_migrated(config: SimulatorConfig) -> None:
    async with opened(config) as sim:
        node = sim.node_pubkey
        invoice = await sim.create_invoice(1_000)
        await pay(sim, invoice)
    as_version_2(config.path)
    db = sqlite3.connect(config.path, isolation_level=None)
    try:  # back to version 1: version 2 without the attempts log
        db.execute("DROP TABLE attempts")
        db.execute("PRAGMA user_version = 1")
    finally:
        db.close()
    async with opened(config) as sim:
        assert sim.node_pubkey == node
        assert await sim.payment_status(invoice.payment_hash) == Succeeded(invoice.preimage, 0)
        assert await sim.get_balance() == config.initial_balance_msat - 1_000
        assert await sim.attempts() == []
        assert await pay(sim, invoice) == Failed("invoice already paid")
        assert [a.result for a in await sim.attempts()] == ["already_paid"]
        await sim.set_outage("error", 60)
        with pytest.raises(BackendUnavailable):
            await sim.get_balance()
    db = sqlite3.connect(config.path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    finally:
        db.close()
