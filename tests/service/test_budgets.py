"""Grants and budgets end to end: several apps with different grants hit one running service.

Every app here keeps one response subscription and has many requests in flight at
once. Limits are checked on the answers and on the money: the simulator's balance and
the store's budget accounting must agree with the answers to the msat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.cli import main
from nwcd.client.client import NWCClient
from nwcd.nip47.info import parse_info_event
from nwcd.nip47.results import Response
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.policy.budget import FeeReserve, window_end, window_start
from nwcd.policy.grants import SCOPES, BudgetPeriod
from nwcd.ports import Failed
from nwcd.relay.pool import RelayPool, Subscription
from nwcd.service.pipeline import ServiceSettings
from tests.service.harness import RawApp, WalletHarness

INITIAL = 100_000_000_000
# A small fee reserve keeps the arithmetic readable: each payment holds amount + 100 msat.
FEES = FeeReserve(ppm=0, floor_msat=100)
PAY, READ = SCOPES["pay"], SCOPES["read"]


@pytest.fixture
async def wallet(tmp_path: Path, relay_url: str) -> AsyncIterator[WalletHarness]:
    async with WalletHarness(tmp_path, [relay_url], ServiceSettings(fee_reserve=FEES)) as harness:
        yield harness


@pytest.fixture
async def pool(relay_url: str) -> AsyncIterator[RelayPool]:
    async with RelayPool([relay_url]) as relays:
        await relays.wait_connected(10)
        yield relays


class App:
    """An app with one response subscription, so hundreds of requests can be in flight."""

    def __init__(self, uri: ConnectionUri, pool: RelayPool) -> None:
        self.uri = uri
        self.raw = RawApp(uri, pool)
        self.pool = pool
        self.answers: dict[str, list[tuple[Event, Response]]] = {}
        self._seen: set[str] = set()
        self._changed = asyncio.Condition()
        self._subscription: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> App:
        self._subscription = await self.pool.subscribe(
            [
                Filter(
                    kinds=(Kind.NWC_RESPONSE,),
                    authors=(self.uri.wallet_pubkey.hex,),
                    tags={"p": (self.uri.client_pubkey.hex,)},
                )
            ],
            queue_size=4096,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._reader is not None
        assert self._subscription is not None
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._subscription.close()

    async def _read(self) -> None:
        assert self._subscription is not None
        while True:
            event = await self._subscription.get()
            request_id = event.tag_value("e")
            if event.id in self._seen or request_id not in self.answers:
                continue
            self._seen.add(event.id)
            self.answers[request_id].append(self.raw.open(event))
            async with self._changed:
                self._changed.notify_all()

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Event:
        return await self.publish(self.raw.request(method, params))

    async def publish(self, event: Event) -> Event:
        self.answers[event.id] = []
        # Do not wait for the OK (some relays never send one for ephemeral kinds), but a
        # relay that did answer must have accepted the request.
        result = await self.pool.publish(event, timeout=0.05)
        assert not result.rejected, result
        return event

    async def wait(self, request: Event, count: int = 1, timeout: float = 20) -> list[Response]:
        answers = self.answers[request.id]
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(answers) >= count)
        return [response for _, response in answers]

    def by_d(self, request: Event) -> dict[str, Response]:
        return {
            event.tag_value("d") or "": response for event, response in self.answers[request.id]
        }

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Response:
        [response] = await self.wait(await self.send(method, params))
        return response


def code(response: Response) -> str | None:
    return response.error.code if response.error is not None else None


def message(response: Response) -> str:
    assert response.error is not None
    return response.error.message


async def used(wallet: WalletHarness, uri: ConnectionUri, period: BudgetPeriod) -> int:
    since = window_start(int(time.time()), period)
    return await wallet.store.budget_used(uri.wallet_pubkey.hex, since)


async def info_methods(
    pool: RelayPool, uri: ConnectionUri, until: Callable[[set[str]], bool]
) -> set[str]:
    """The newest info event's words, waiting until ``until`` holds for them."""
    subscription = await pool.subscribe(
        [Filter(kinds=(Kind.NWC_INFO,), authors=(uri.wallet_pubkey.hex,))]
    )
    try:
        async with asyncio.timeout(10):
            while True:
                methods, _ = parse_info_event(await subscription.get())
                if until(set(methods)):
                    return set(methods)
    finally:
        await subscription.close()


async def next_second() -> None:
    """Wait for the next whole second of wall-clock time.

    Info events are replaceable and NIP-01 keeps, of two with the same ``created_at``,
    the one with the lower id: the daemon stamps a changed connection's info event with
    the current second, so a change in the same second as the previous info event of
    that wallet may be dropped by the relay. Until the daemon stamps
    ``max(now, previous + 1)``, changes observed through info events wait a second.
    """
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)


async def eventually(check: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (polls state another task changes)
            await asyncio.sleep(0.02)


async def cli(wallet: WalletHarness, *argv: str) -> None:
    """``nwcd ...`` on the running service's data dir, as another process would."""
    exit_code = await asyncio.to_thread(main, [*argv, "--data-dir", str(wallet.data_dir)])
    assert exit_code == 0


# -- three apps, one service --------------------------------------------------------------------


async def test_three_apps_hit_one_service_concurrently_and_every_limit_holds(
    wallet: WalletHarness, pool: RelayPool
) -> None:
    budget = 50_000
    tipper_uri = await wallet.connect(
        "tipper", methods=PAY, budget_msat=budget, budget_period=BudgetPeriod.DAILY
    )
    reader_uri = await wallet.connect("reader", methods=READ)
    shopper_uri = await wallet.connect("shopper", methods=PAY | READ, max_amount_msat=5_000)
    await wallet.start()
    sim = wallet.backend

    # The info event of each connection lists only its methods.
    for uri, grant in ((tipper_uri, PAY), (reader_uri, READ), (shopper_uri, PAY | READ)):
        async with NWCClient.from_uri(uri, timeout=10) as client:
            # get_budget comes with payments (policy/grants.py).
            implied = {"get_budget"} if grant & PAY else set()
            assert client.info.methods == grant | implied | {"notifications"}

    tips = [await sim.create_invoice(1_000, fee_msat=10, latency_ms=i % 20) for i in range(120)]
    small = [await sim.create_invoice(3_000, fee_msat=3, latency_ms=i % 15) for i in range(40)]
    big = [await sim.create_invoice(8_000) for _ in range(20)]
    batch_ok, batch_big = (
        await sim.create_invoice(4_000, fee_msat=4),
        await sim.create_invoice(6_000),
    )
    not_for_reader = [await sim.create_invoice(1_000) for _ in range(20)]

    async with (
        App(tipper_uri, pool) as tipper,
        App(reader_uri, pool) as reader,
        App(shopper_uri, pool) as shopper,
    ):

        async def tipper_requests() -> list[Response]:
            sent = await asyncio.gather(
                *(tipper.send("pay_invoice", {"invoice": t.invoice}) for t in tips),
                tipper.send("get_balance"),
            )
            return [r for event in sent for r in await tipper.wait(event)]

        async def reader_requests() -> dict[str, list[Response]]:
            plan = (
                [("get_balance", {})] * 40
                + [("get_info", {})] * 20
                + [("list_transactions", {})] * 10
                + [("pay_invoice", {"invoice": i.invoice}) for i in not_for_reader]
                + [("make_invoice", {"amount": 1_000})] * 10
                + [("multi_pay_invoice", {"invoices": [{"invoice": not_for_reader[0].invoice}]})]
            )
            sent = await asyncio.gather(*(reader.send(m, p) for m, p in plan))
            by_method: dict[str, list[Response]] = {}
            for (method, _), event in zip(plan, sent, strict=True):
                by_method.setdefault(method, []).extend(await reader.wait(event))
            return by_method

        async def shopper_requests() -> tuple[list[Response], list[Response], list[Response]]:
            sent_small = [shopper.send("pay_invoice", {"invoice": s.invoice}) for s in small]
            sent_big = [shopper.send("pay_invoice", {"invoice": b.invoice}) for b in big]
            batch = shopper.send(
                "multi_pay_invoice",
                {
                    "invoices": [
                        {"id": "ok", "invoice": batch_ok.invoice},
                        {"id": "big", "invoice": batch_big.invoice},
                    ]
                },
            )
            events = await asyncio.gather(*sent_small, *sent_big, batch)
            answers = [(await shopper.wait(e, 2 if e is events[-1] else 1)) for e in events]
            return (
                [r for a in answers[: len(small)] for r in a],
                [r for a in answers[len(small) : -1] for r in a],
                answers[-1],
            )

        started = time.perf_counter()
        (
            tipper_answers,
            reader_answers,
            (small_answers, big_answers, batch_answers),
        ) = await asyncio.gather(tipper_requests(), reader_requests(), shopper_requests())
        elapsed = time.perf_counter() - started
        total = (
            len(tipper_answers)
            + sum(map(len, reader_answers.values()))
            + len(small_answers)
            + len(big_answers)
            + len(batch_answers)
        )
        assert total == 121 + 101 + 62
        print(f"{total} answers in {elapsed:.2f} s")

        # Tipper: pay only, budget never exceeded; denials are budget denials.
        *tip_answers, tipper_balance = tipper_answers
        assert code(tipper_balance) == "RESTRICTED"
        assert "may not use get_balance" in message(tipper_balance)
        paid_tips = [r for r in tip_answers if r.error is None]
        assert {code(r) for r in tip_answers} <= {None, "QUOTA_EXCEEDED"}
        assert all("exceeds the remaining budget" in message(r) for r in tip_answers if r.error)
        # At least what fits while every payment still holds its fee reserve, at most
        # what fits at the real cost (amount + 10 msat fee).
        assert budget // 1_100 <= len(paid_tips) <= budget // 1_010
        spent_tips = len(paid_tips) * 1_010
        assert await used(wallet, tipper_uri, BudgetPeriod.DAILY) == spent_tips
        # One at a time, the rest of the budget is usable up to one reservation.
        while True:
            extra = await sim.create_invoice(1_000, fee_msat=10)
            answer = await tipper.call("pay_invoice", {"invoice": extra.invoice})
            if answer.error is not None:
                assert code(answer) == "QUOTA_EXCEEDED"
                break
            spent_tips += 1_010
        assert spent_tips <= budget < spent_tips + 1_100
        assert await used(wallet, tipper_uri, BudgetPeriod.DAILY) == spent_tips

        # Reader: reads answer, everything else is RESTRICTED.
        assert all(r.error is None for r in reader_answers["get_balance"])
        assert all(0 < r.result["balance"] <= INITIAL for r in reader_answers["get_balance"])  # type: ignore[index]
        for r in reader_answers["get_info"]:
            assert r.error is None
            assert r.result is not None
            assert sorted(r.result["methods"]) == sorted(READ)
        assert all(r.error is None for r in reader_answers["list_transactions"])
        for method in ("pay_invoice", "make_invoice", "multi_pay_invoice"):
            assert {code(r) for r in reader_answers[method]} == {"RESTRICTED"}
            assert all(f"may not use {method}" in message(r) for r in reader_answers[method])
        assert len(reader_answers["multi_pay_invoice"]) == 1  # one whole-request error

        # Shopper: no budget, but nothing above 5000 msat per payment.
        assert [code(r) for r in small_answers] == [None] * 40
        assert {code(r) for r in big_answers} == {"QUOTA_EXCEEDED"}
        assert all("maximum of 5000 msat" in message(r) for r in big_answers)
        batch_codes = sorted(code(r) or "" for r in batch_answers)
        assert batch_codes == ["", "QUOTA_EXCEEDED"]
        assert await used(wallet, shopper_uri, BudgetPeriod.NEVER) == 40 * 3_003 + 4_004

        # The money: exactly what the answers say was paid, nothing else.
        assert await sim.get_balance() == INITIAL - spent_tips - 40 * 3_003 - 4_004
        for invoice in [*big, batch_big, *not_for_reader]:
            assert isinstance(await sim.payment_status(invoice.payment_hash), Failed)


# -- multi_pay over budget ----------------------------------------------------------------------


async def test_batch_over_budget_pays_early_items_and_denies_later_ones_in_order(
    wallet: WalletHarness, pool: RelayPool
) -> None:
    uri = await wallet.connect(
        "batch", methods=PAY, budget_msat=10_000, budget_period=BudgetPeriod.DAILY
    )
    await wallet.start()
    sim = wallet.backend
    ok = await sim.create_invoice(3_000, latency_ms=10)
    failing = await sim.create_invoice(3_000, outcome="fail", latency_ms=10)
    hanging = await sim.create_invoice(2_000, outcome="hang")
    late = [await sim.create_invoice(3_000) for _ in range(2)]
    small = await sim.create_invoice(500)
    items = [
        {"id": "ok", "invoice": ok.invoice},
        {"id": "failing", "invoice": failing.invoice},
        {"id": "hanging", "invoice": hanging.invoice},
        {"id": "late1", "invoice": late[0].invoice},
        {"id": "late2", "invoice": late[1].invoice},
        {"id": "small", "invoice": small.invoice},
    ]
    async with App(uri, pool) as app:
        request = await app.send("multi_pay_invoice", {"invoices": items})
        # Reserved in request order: 3100 + 3100 + 2100 = 8300; the 3000s do not fit
        # (11400 > 10000); the 500 does (8900). Everything but the hanging one answers.
        await app.wait(request, 5)
        codes = {d: code(r) for d, r in app.by_d(request).items()}
        assert codes == {
            "ok": None,
            "failing": "PAYMENT_FAILED",
            "late1": "QUOTA_EXCEEDED",
            "late2": "QUOTA_EXCEEDED",
            "small": None,
        }
        # The failure released its reservation; the hanging payment keeps its own.
        assert await used(wallet, uri, BudgetPeriod.DAILY) == 3_000 + 2_100 + 500
        for invoice in late:
            assert isinstance(await sim.payment_status(invoice.payment_hash), Failed)

        # The released 3100 is available again: 5600 + 4100 = 9700.
        four = await sim.create_invoice(4_000)
        assert code(await app.call("pay_invoice", {"invoice": four.invoice})) is None
        assert await used(wallet, uri, BudgetPeriod.DAILY) == 9_600
        one = await sim.create_invoice(401)
        denied = await app.call("pay_invoice", {"invoice": one.invoice})
        assert code(denied) == "QUOTA_EXCEEDED"
        assert "remaining budget of 400 msat" in message(denied)
        # 301 fits what is left: its fee reserve is capped to the 99 after it, not refused.
        fits = await sim.create_invoice(301)
        assert code(await app.call("pay_invoice", {"invoice": fits.invoice})) is None
        assert await used(wallet, uri, BudgetPeriod.DAILY) == 9_901

        # The hanging payment fails in the end: its 2100 come back.
        await sim.release(hanging.payment_hash, "fail")
        [*_, last] = await app.wait(request, 6, timeout=15)
        assert code(last) == "PAYMENT_FAILED"
        assert await used(wallet, uri, BudgetPeriod.DAILY) == 7_801
        assert code(await app.call("pay_invoice", {"invoice": one.invoice})) is None
        assert await used(wallet, uri, BudgetPeriod.DAILY) == 8_202
    assert await sim.get_balance() == INITIAL - 8_202


# -- changes without a restart ------------------------------------------------------------------


async def test_updates_and_revocation_take_effect_in_the_running_service(
    wallet: WalletHarness, pool: RelayPool, relay_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reader_uri = await wallet.connect("reader", methods=READ)
    shopper_uri = await wallet.connect("shopper", methods=PAY | READ, max_amount_msat=5_000)
    await wallet.start()
    sim = wallet.backend
    pipeline = wallet.daemon.pipeline
    reader_wallet = reader_uri.wallet_pubkey.hex
    shopper_wallet = shopper_uri.wallet_pubkey.hex

    async with App(reader_uri, pool) as reader, App(shopper_uri, pool) as shopper:
        invoice = await sim.create_invoice(3_000)
        assert code(await reader.call("pay_invoice", {"invoice": invoice.invoice})) == "RESTRICTED"

        # Grant pay with a budget: the info event follows, then the payment goes through.
        await next_second()
        await cli(
            wallet, "connection", "update", "reader", "--methods", "read,pay",
            "--budget-msat", "5000", "--budget-period", "daily",
        )  # fmt: skip
        methods = await info_methods(pool, reader_uri, lambda m: "pay_invoice" in m)
        assert methods == READ | PAY | {"get_budget", "notifications"}
        await eventually(lambda: pipeline.connections[reader_wallet].budget_msat == 5_000)
        assert code(await reader.call("pay_invoice", {"invoice": invoice.invoice})) is None
        second = await sim.create_invoice(3_000)
        over = await reader.call("pay_invoice", {"invoice": second.invoice})
        assert code(over) == "QUOTA_EXCEEDED"
        assert "remaining budget of 2000 msat" in message(over)

        # Lower the shopper's maximum per payment.
        await cli(wallet, "connection", "update", "shopper", "--max-amount-msat", "2000")
        await eventually(lambda: pipeline.connections[shopper_wallet].max_amount_msat == 2_000)
        too_big = await shopper.call("pay_invoice", {"invoice": second.invoice})
        assert code(too_big) == "QUOTA_EXCEEDED"
        assert "maximum of 2000 msat" in message(too_big)

        # Revoke the shopper: its info event lists nothing, and it is still answered.
        await next_second()
        await cli(wallet, "connection", "revoke", "shopper")
        assert await info_methods(pool, shopper_uri, lambda m: not m) == set()
        for method in ("get_balance", "pay_invoice"):
            revoked = await shopper.call(method, {"invoice": second.invoice})
            assert code(revoked) == "UNAUTHORIZED"
            assert message(revoked) == "this connection was revoked"

        # Let the reader expire.
        await cli(wallet, "connection", "update", "reader", "--expires-in", "1s")
        await eventually(lambda: pipeline.connections[reader_wallet].expires_at is not None)
        await asyncio.sleep(max(0.0, pipeline.connections[reader_wallet].expires_at - time.time()))  # type: ignore[operator]
        expired = await reader.call("get_info")
        assert code(expired) == "UNAUTHORIZED"
        assert message(expired) == "this connection has expired"

        # A key that is not the connection's app key.
        stranger = RawApp(
            ConnectionUri(reader_uri.wallet_pubkey, reader_uri.relays, SecretKey.generate()), pool
        )
        [(_, unknown)] = await stranger.send(stranger.request("get_info"))
        assert code(unknown) == "UNAUTHORIZED"
        assert "no wallet connected" in message(unknown)

    # A connection created while the service runs is served at once.
    capsys.readouterr()
    await cli(
        wallet, "connection", "create", "--name", "late", "--relay", relay_url,
        "--methods", "receive", "--json",
    )  # fmt: skip
    created = json.loads(capsys.readouterr().out)
    late_uri = ConnectionUri.parse(created["uri"])
    await info_methods(pool, late_uri, lambda m: "make_invoice" in m)
    async with NWCClient.from_uri(late_uri, timeout=10) as client:
        assert client.info.methods == {"make_invoice", "notifications"}
        tx = await client.make_invoice(1_234)
        assert tx.amount_msat == 1_234
        with pytest.raises(Exception, match="RESTRICTED"):
            await client.get_balance()
    assert await sim.get_balance() == INITIAL - 3_000


# -- balance ------------------------------------------------------------------------------------


async def test_balance_capped_to_the_remaining_budget_when_configured(
    tmp_path: Path, relay_url: str, pool: RelayPool
) -> None:
    settings = ServiceSettings(fee_reserve=FEES, cap_balance_to_budget=True)
    async with WalletHarness(tmp_path, [relay_url], settings) as wallet:
        capped = await wallet.connect(
            "capped", methods=PAY | READ, budget_msat=20_000, budget_period=BudgetPeriod.WEEKLY
        )
        free = await wallet.connect("free", methods=PAY | READ)
        await wallet.start()
        sim = wallet.backend
        async with App(capped, pool) as app, App(free, pool) as other:
            assert (await app.call("get_balance")).result == {"balance": 20_000}
            paid = await sim.create_invoice(5_000, fee_msat=5)
            assert code(await app.call("pay_invoice", {"invoice": paid.invoice})) is None
            assert (await app.call("get_balance")).result == {"balance": 14_995}
            hanging = await sim.create_invoice(4_000, outcome="hang")
            pending = await app.send("pay_invoice", {"invoice": hanging.invoice})
            await _until_used(wallet, capped, 5_005 + 4_100)
            assert (await app.call("get_balance")).result == {"balance": 10_895}
            await sim.release(hanging.payment_hash, "succeed")
            await app.wait(pending)
            assert (await app.call("get_balance")).result == {"balance": 10_995}
            # Without a budget the balance is the wallet's.
            assert (await other.call("get_balance")).result == {"balance": INITIAL - 9_005}


async def _until_used(wallet: WalletHarness, uri: ConnectionUri, amount: int) -> None:
    async with asyncio.timeout(5):
        while await used(wallet, uri, BudgetPeriod.WEEKLY) != amount:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


# -- get_budget ---------------------------------------------------------------------------------


async def test_get_budget_reports_spent_and_held_money_to_apps_that_may_pay(
    wallet: WalletHarness, pool: RelayPool
) -> None:
    budgeted = await wallet.connect(
        "budgeted", methods=PAY | READ, budget_msat=20_000, budget_period=BudgetPeriod.WEEKLY
    )
    unlimited = await wallet.connect("unlimited", methods=PAY | READ)
    reader = await wallet.connect("reader", methods=READ, budget_msat=20_000)
    await wallet.start()
    sim = wallet.backend
    async with App(budgeted, pool) as app, App(unlimited, pool) as free, App(reader, pool) as ro:
        renews_at = window_end(int(time.time()), BudgetPeriod.WEEKLY)
        fresh = (await app.call("get_budget")).result
        assert fresh == {
            "used_budget": 0,
            "total_budget": 20_000,
            "renewal_period": "weekly",
            "renews_at": renews_at,
        }
        paid = await sim.create_invoice(5_000, fee_msat=5)
        assert code(await app.call("pay_invoice", {"invoice": paid.invoice})) is None
        hanging = await sim.create_invoice(4_000, outcome="hang")
        pending = await app.send("pay_invoice", {"invoice": hanging.invoice})
        await _until_used(wallet, budgeted, 5_005 + 4_100)
        # In flight: the amount and its fee reserve count as used until it settles.
        held = (await app.call("get_budget")).result
        assert held is not None
        assert held["used_budget"] == 5_005 + 4_100
        await sim.release(hanging.payment_hash, "succeed")
        await app.wait(pending)
        settled = (await app.call("get_budget")).result
        assert settled is not None
        assert settled["used_budget"] == 9_005
        # No budget: an empty result, as NIP-47 clients expect.
        assert (await free.call("get_budget")).result == {}
        # A grant without payments has nothing to budget: get_budget is not part of it.
        assert code(await ro.call("get_budget")) == "RESTRICTED"
        assert "get_budget" in (await app.call("get_info")).result["methods"]
        assert "get_budget" not in (await ro.call("get_info")).result["methods"]
    assert "get_budget" in await info_methods(pool, budgeted, lambda words: "pay_invoice" in words)
    assert "get_budget" not in await info_methods(pool, reader, lambda words: "get_info" in words)


async def test_balance_is_the_wallets_by_default_and_backend_shortfall_is_its_own_error(
    tmp_path: Path, relay_url: str, pool: RelayPool
) -> None:
    async with WalletHarness(tmp_path, [relay_url], ServiceSettings(fee_reserve=FEES)) as wallet:
        await wallet.backend.close()
        wallet.backend = await SimulatedBackend.open(
            SimulatorConfig(tmp_path / "poor.sqlite", initial_balance_msat=10_000)
        )
        uri = await wallet.connect("app", budget_msat=1_000_000, budget_period=BudgetPeriod.DAILY)
        await wallet.start()
        async with App(uri, pool) as app:
            assert (await app.call("get_balance")).result == {"balance": 10_000}
            invoice = await wallet.backend.create_invoice(20_000)
            poor = await app.call("pay_invoice", {"invoice": invoice.invoice})
            assert code(poor) == "INSUFFICIENT_BALANCE"
            # Refused before anything was sent: no budget is held for it.
            assert await used(wallet, uri, BudgetPeriod.DAILY) == 0


async def test_the_fee_reserve_never_eats_a_budget_the_payments_fit(
    tmp_path: Path, relay_url: str, pool: RelayPool
) -> None:
    # The default reserve: 1%, at least 10 sat. A 500 sat budget pays five 100 sat
    # invoices: the fifth's reserve is capped to the 0 left after it (and that is its fee
    # limit) instead of being refused forever.
    async with WalletHarness(tmp_path / "w", [relay_url]) as wallet:
        uri = await wallet.connect("five", budget_msat=500_000, budget_period=BudgetPeriod.NEVER)
        await wallet.start()
        sim = wallet.backend
        async with App(uri, pool) as app:
            for _ in range(4):
                invoice = await sim.create_invoice(100_000)
                assert code(await app.call("pay_invoice", {"invoice": invoice.invoice})) is None
            # A route that needs a fee the capped reserve cannot carry fails: never above
            # the budget. Its reservation comes back.
            costly = await sim.create_invoice(100_000, fee_msat=5)
            failed = await app.call("pay_invoice", {"invoice": costly.invoice})
            assert code(failed) == "PAYMENT_FAILED"
            fifth = await sim.create_invoice(100_000)
            assert code(await app.call("pay_invoice", {"invoice": fifth.invoice})) is None
            assert await used(wallet, uri, BudgetPeriod.NEVER) == 500_000
            sixth = await sim.create_invoice(1_000)
            denied = await app.call("pay_invoice", {"invoice": sixth.invoice})
            assert code(denied) == "QUOTA_EXCEEDED"
            assert "remaining budget of 0 msat" in message(denied)
            found = await wallet.store.payments_by_hashes(
                uri.wallet_pubkey.hex, [fifth.payment_hash]
            )
            assert found[fifth.payment_hash].intent.fee_reserve_msat == 0
        assert await sim.get_balance() == INITIAL - 500_000
