"""The client commands (``nwcd balance | budget | info | invoice | lookup | history | keysend |
watch | call | pay``) against a real wallet service, and their one-line errors.

The CLI runs in-process (``main([...])`` in a thread, since the service runs in the test's
event loop), or as a real subprocess where the process boundary matters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nwcd.cli import main
from nwcd.client.client import NWCClient
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.budget import window_end
from nwcd.policy.grants import BudgetPeriod
from tests.service.harness import WalletHarness

ENV_NAMES = ("NWCD_DATA_DIR", "NWCD_CONFIG", "NWCD_RELAYS", "NWCD_BACKEND", "NWC_URI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    def error_line(self) -> str:
        """The one-line error: nothing on stdout, exactly one line on stderr."""
        assert self.out == "", self.out
        assert self.err.count("\n") == 1, self.err
        assert self.err.endswith("\n"), self.err
        assert self.err.startswith("nwcd"), self.err
        return self.err.strip()


class Cli:
    """``nwcd`` in-process, in a worker thread (it runs its own event loop)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    async def __call__(self, *argv: str) -> Run:
        self.capsys.readouterr()
        started = time.monotonic()
        code = await asyncio.to_thread(main, list(argv))
        seconds = time.monotonic() - started
        out, err = self.capsys.readouterr()
        return Run(code, out, err, seconds)

    async def ok(self, *argv: str) -> str:
        run = await self(*argv)
        assert run.code == 0, run.err
        return run.out

    async def json(self, *argv: str) -> Any:
        return json.loads(await self.ok(*argv, "--json"))

    async def fails(self, *argv: str, code: int = 2) -> str:
        run = await self(*argv)
        assert run.code == code, (run.out, run.err)
        return run.error_line()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
async def wallet(tmp_path: Path, nwcd_relay: object) -> AsyncIterator[WalletHarness]:
    """A wallet service, started by :func:`connect` (it loads its connections at start)."""
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as harness:
        yield harness


async def connect(wallet: WalletHarness, **grant: Any) -> ConnectionUri:
    """A connection, then the service started with it."""
    uri = await wallet.connect(**grant)
    await wallet.start()
    return uri


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_relay() -> Iterator[str]:
    """Accepts TCP connections, never answers the websocket handshake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}"


def uri_for(*relays: str) -> str:
    return ConnectionUri(SecretKey.generate().public_key, relays, SecretKey.generate()).format()


async def nwcd_process(*argv: str, env: dict[str, str] | None = None) -> Run:
    """``python -m nwcd ...`` as a real process."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nwcd", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


# -- the commands ----------------------------------------------------------------------------


async def test_balance(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    assert await cli.ok("balance", uri) == "balance 100,000,000 sat (100,000,000,000 msat)\n"
    assert await cli.json("balance", uri) == {"balance": 100_000_000_000}


async def test_budget(cli: Cli, wallet: WalletHarness) -> None:
    limited = await wallet.connect("limited", budget_msat=50_000, budget_period=BudgetPeriod.DAILY)
    free = await connect(wallet, name="free")
    invoice = await wallet.backend.create_invoice(20_000, fee_msat=7)
    await cli.ok("pay", limited.format(), invoice.invoice)
    report = await cli.json("budget", limited.format())
    assert report == {
        "used_budget": 20_007,
        "total_budget": 50_000,
        "renewal_period": "daily",
        "renews_at": window_end(int(time.time()), BudgetPeriod.DAILY),
    }
    line = await cli.ok("budget", limited.format())
    assert line.startswith("used 20.007 sat (20,007 msat) of 50 sat (50,000 msat), 29.993 sat")
    assert "(daily)" in line
    assert await cli.json("budget", free.format()) == {}
    assert (await cli.ok("budget", free.format())).startswith("no budget")


async def test_the_uri_can_come_from_the_environment(
    cli: Cli, wallet: WalletHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = await connect(wallet)
    monkeypatch.setenv("NWC_URI", uri.format())
    assert await cli.json("balance") == {"balance": 100_000_000_000}
    made = await wallet.backend.create_invoice(1_000)
    out = await cli.ok("pay", made.invoice)
    assert "[1/1]" in out
    assert uri.secret.reveal_hex() not in out
    assert (await cli.json("call", "get_balance")) == {"balance": 99_999_999_000}
    made = await cli.json("call", "make_invoice", '{"amount": 2000}')
    assert made["amount"] == 2_000


async def test_info(cli: Cli, wallet: WalletHarness) -> None:
    uri = await connect(wallet, methods=frozenset({"get_info", "get_balance", "pay_invoice"}))
    out = await cli.ok("info", uri.format())
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["wallet pubkey"].strip() == uri.wallet_pubkey.hex
    assert lines["encryption"].strip() == "nip44_v2"
    assert lines["network"].strip() == "regtest"
    assert lines["methods"].strip() == "pay_invoice, get_balance, get_info, get_budget"
    assert lines["notifications"].strip() == "payment_received, payment_sent"
    shown = await cli.json("info", uri.format())
    assert shown["network"] == "regtest"
    assert shown["wallet_pubkey"] == uri.wallet_pubkey.hex
    assert shown["info_event"]["found"] is True
    assert sorted(shown["methods"]) == ["get_balance", "get_budget", "get_info", "pay_invoice"]


async def test_invoice_and_lookup(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    run = await cli("invoice", uri, "--amount-sat", "21", "--description", "coffee")
    assert run.code == 0, run.err
    invoice = run.out.strip()
    assert invoice.startswith("lnbcrt210n1")  # alone on stdout: $(nwcd invoice ...) works
    assert run.err.startswith("21 sat (21,000 msat), expires ")
    payment_hash = run.err.split("payment hash ")[1].strip()
    made = await cli.json("invoice", uri, "--amount-msat", "1500", "--expiry", "600")
    assert made["amount"] == 1_500
    assert made["expires_at"] - made["created_at"] == 600

    out = await cli.ok("lookup", uri, payment_hash)
    assert "type:         incoming" in out
    assert "state:        pending" in out
    assert "amount:       21 sat (21,000 msat)" in out
    assert "description:  coffee" in out
    assert (await cli.json("lookup", uri, f"lightning:{invoice}"))["payment_hash"] == payment_hash
    assert (await cli.json("lookup", uri, payment_hash.upper()))["invoice"] == invoice


async def test_hold_invoice_settle_and_cancel(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    run = await cli("hold-invoice", uri, "--amount-sat", "8", "--description", "held")
    assert run.code == 0, run.err
    assert run.out.strip().startswith("lnbcrt80n1")
    payment_hash = run.err.split("payment hash ")[1].split()[0]
    preimage = run.err.split("preimage ")[1].split()[0]
    assert hashlib.sha256(bytes.fromhex(preimage)).hexdigest() == payment_hash
    assert "keep it: nwcd settle URI PREIMAGE" in run.err
    await wallet.backend.receive(payment_hash)  # a payer pays: held
    assert await cli.ok("settle", uri, preimage) == f"settled the hold invoice {payment_hash}\n"
    assert (await cli.json("lookup", uri, payment_hash))["state"] == "settled"

    chosen = hashlib.sha256(b"mine").hexdigest()
    made = await cli.json("hold-invoice", uri, "--amount-msat", "1500", "--payment-hash", chosen)
    assert (made["payment_hash"], made["amount"]) == (chosen, 1_500)
    assert "preimage" not in made  # the caller keeps its own
    assert await cli.ok("cancel", uri, chosen) == f"canceled the hold invoice {chosen}\n"
    assert (await cli.json("lookup", uri, chosen))["state"] == "failed"
    err = await cli.fails("settle", uri, "00" * 32, code=1)
    assert err == "nwcd: error: the wallet answered NOT_FOUND: hold invoice not found"
    err = await cli.fails("cancel", uri, "xyz")
    assert err == "nwcd: error: 'xyz' is not a payment hash (64 hex digits)"


async def test_history(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    assert await cli.ok("history", uri) == "no transactions (--unpaid also lists open ones)\n"
    paid = await wallet.backend.create_invoice(4_000, fee_msat=3)
    assert (await cli("pay", uri, paid.invoice)).code == 0
    await cli.ok("invoice", uri, "--amount-sat", "5")
    out = await cli.ok("history", uri)
    header, *rows = out.splitlines()
    assert header.split() == [
        "TIME",
        "TYPE",
        "STATE",
        "AMOUNT",
        "FEE",
        "PAYMENT",
        "HASH",
        "DESCRIPTION",
    ]
    assert len(rows) == 1
    assert "outgoing  settled  4 sat (4,000 msat)  0.003 sat (3 msat)" in rows[0]
    assert paid.payment_hash[:16] in rows[0]
    listed = await cli.json("history", uri, "--unpaid", "--limit", "5")
    assert sorted(tx["type"] for tx in listed["transactions"]) == ["incoming", "outgoing"]
    listed = await cli.json("history", uri, "--unpaid", "--type", "incoming")
    assert [tx["amount"] for tx in listed["transactions"]] == [5_000]
    assert len((await cli.json("history", uri, "--unpaid", "--limit", "1"))["transactions"]) == 1


async def test_keysend(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    payee = wallet.backend.payee_pubkeys[0]
    out = await cli.ok("keysend", uri, payee, "--amount-sat", "2", "--tlv", "696969=77616c")
    assert out == (
        f"paid 2 sat (2,000 msat) by keysend to {payee[:12]}…{payee[-6:]}, fee 0 sat (0 msat)\n"
    )
    result = await cli.json("keysend", uri, payee, "--amount-msat", "1500")
    assert len(result["preimage"]) == 64
    err = await cli.fails("keysend", uri, "02" + "ab" * 32, "--amount-sat", "1", code=1)
    assert err == "nwcd: error: the wallet answered PAYMENT_FAILED: payment failed: no route"


async def test_call_prints_the_raw_result(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    assert json.loads(await cli.ok("call", uri, "get_balance")) == {"balance": 100_000_000_000}
    signed = await cli.json("call", uri, "sign_message", '{"message": "hi"}')
    assert signed["message"] == "hi"
    assert signed["signature"]
    err = await cli.fails("call", uri, "fly_to_the_moon", code=1)
    assert err == (
        "nwcd: error: the wallet answered NOT_IMPLEMENTED: method 'fly_to_the_moon' is not"
        " supported"
    )


async def test_the_wallet_refusing_is_exit_1(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet, methods=frozenset({"get_balance"}))).format()
    err = await cli.fails("invoice", uri, "--amount-sat", "1", code=1)
    assert err == (
        "nwcd: error: the wallet answered RESTRICTED: this connection may not use make_invoice"
    )
    err = await cli.fails("info", uri, code=1)
    assert err == (
        "nwcd: error: the wallet answered RESTRICTED: this connection may not use get_info"
        " (its info event offers: get_balance)"
    )


# -- pay ---------------------------------------------------------------------------------------


async def test_pay_shows_positions_amounts_and_outcomes(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    slow = await wallet.backend.create_invoice(2_000, latency_ms=400, fee_msat=5)
    bad = await wallet.backend.create_invoice(3_000, outcome="fail")
    quick = await wallet.backend.create_invoice(4_500)
    run = await cli("pay", uri, slow.invoice, bad.invoice, quick.invoice)
    assert run.code == 1  # not every invoice was paid
    lines = run.out.splitlines()
    assert len(lines) == 4
    # Printed as they finish (the slow one last), numbered by their place in the input.
    assert [line[:5] for line in lines[:3]] == ["[2/3]", "[3/3]", "[1/3]"]
    assert lines[2] == (
        f"[1/3] {slow.invoice[:14]}…{slow.invoice[-6:]} hash {slow.payment_hash[:8]}"
        " 2 sat (2,000 msat): paid, fee 0.005 sat (5 msat)"
    )
    assert lines[0].startswith(f"[2/3] {bad.invoice[:14]}…")
    assert lines[0].endswith(
        "3 sat (3,000 msat): FAILED PAYMENT_FAILED: payment failed: rejected by the payee"
    )
    assert lines[1].endswith("4.5 sat (4,500 msat): paid, fee 0 sat (0 msat)")
    assert lines[3] == (
        "3 invoices: 2 paid, 1 failed; sent 6.5 sat (6,500 msat) + fees 0.005 sat (5 msat)"
    )
    assert slow.preimage not in run.out  # preimages only with --json


async def test_paying_again_says_the_wallet_answered_from_its_records(
    cli: Cli, wallet: WalletHarness
) -> None:
    uri = (await connect(wallet)).format()
    paid = await wallet.backend.create_invoice(7_000, fee_msat=2)
    fresh = await wallet.backend.create_invoice(1_000)
    assert (await cli("pay", uri, paid.invoice)).code == 0
    balance = await wallet.backend.get_balance()
    run = await cli("pay", uri, paid.invoice, fresh.invoice)
    assert run.code == 0
    [already] = [line for line in run.out.splitlines() if line.startswith("[1/2]")]
    assert already.endswith(
        "7 sat (7,000 msat): already paid earlier: the wallet answered from its records"
        " (no new payment), fee 0.002 sat (2 msat)"
    )
    assert run.out.splitlines()[-1].startswith("2 invoices: 1 paid, 1 already paid; sent 1 sat")
    assert await wallet.backend.get_balance() == balance - 1_000  # only the fresh one moved money
    [result] = await cli.json("pay", uri, paid.invoice)
    assert result["state"] == "already_paid"
    assert result["ok"] is True
    assert result["preimage"] == paid.preimage


async def test_a_payment_without_an_answer_may_still_complete(
    cli: Cli, wallet: WalletHarness
) -> None:
    uri = (await connect(wallet)).format()
    hanging = await wallet.backend.create_invoice(5_000, outcome="hang")
    run = await cli("pay", uri, hanging.invoice, "--timeout", "2")
    assert run.code == 1
    assert run.seconds < 3.5
    assert run.out.splitlines() == [
        f"[1/1] {hanging.invoice[:14]}…{hanging.invoice[-6:]} hash {hanging.payment_hash[:8]}"
        " 5 sat (5,000 msat): no answer within 2 s: the payment may still complete; check"
        f" with: nwcd lookup URI {hanging.payment_hash}",
        "1 invoice: 0 paid, 1 without an answer; sent 0 sat (0 msat) + fees 0 sat (0 msat)",
    ]
    run = await cli("pay", uri, hanging.invoice, "--timeout", "1", "--json")
    assert run.code == 1
    [result] = json.loads(run.out)
    assert (result["state"], result["error"]["code"]) == ("unknown", "TIMEOUT")
    await wallet.backend.release(hanging.payment_hash, "succeed")
    for _ in range(50):
        looked = await cli.json("lookup", uri, hanging.payment_hash)
        if looked["state"] == "settled":
            break
        await asyncio.sleep(0.1)
    assert looked["state"] == "settled"


async def test_pay_more_than_one_request_holds(cli: Cli, wallet: WalletHarness) -> None:
    uri = (await connect(wallet)).format()
    made = [await wallet.backend.create_invoice(1_000 + i) for i in range(101)]
    results = await cli.json("pay", uri, *[m.invoice for m in made])
    assert [r["position"] for r in results] == list(range(1, 102))
    assert [r["preimage"] for r in results] == [m.preimage for m in made]


# -- watch -----------------------------------------------------------------------------------


async def test_watch_prints_notifications(wallet: WalletHarness) -> None:
    uri = await connect(wallet)
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nwcd", "watch", uri.format(), "--count", "1", "--timeout", "30",
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert line.decode() == (
            f"watching notifications for wallet {uri.wallet_pubkey.hex[:12]}"
            " (stops after 1 notification or after 30 s or on Ctrl-C)\n"
        )
        made = await wallet.backend.create_invoice(3_000)
        async with NWCClient(uri, timeout=10) as client:
            await client.pay_invoice(made.invoice)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err
    [note] = [json.loads(line) for line in out.decode().splitlines()]
    assert note["notification_type"] == "payment_sent"
    assert note["notification"]["payment_hash"] == made.payment_hash
    assert note["notification"]["amount"] == 3_000


async def test_watch_human_output_and_count_not_reached(cli: Cli, wallet: WalletHarness) -> None:
    uri = await connect(wallet)
    run = await cli("watch", uri.format(), "--count", "2", "--timeout", "1")
    assert run.code == 1
    assert run.out == ""
    assert run.err.splitlines() == [
        f"watching notifications for wallet {uri.wallet_pubkey.hex[:12]}"
        " (stops after 2 notifications or after 1 s or on Ctrl-C)",
        "nwcd: error: 0 of 2 notifications within 1 s",
    ]
    watching = asyncio.ensure_future(cli("watch", uri.format(), "--count", "1", "--timeout", "20"))
    made = await wallet.backend.create_invoice(2_500)
    async with NWCClient(uri, timeout=10) as client:
        # The watcher subscribes on its own: pay again (one payment per invoice) until it saw one.
        await asyncio.sleep(1.0)
        await client.pay_invoice(made.invoice)
        for i in range(10):
            if watching.done():
                break
            await asyncio.sleep(0.5)
            extra = await wallet.backend.create_invoice(2_500 + i + 1)
            await client.pay_invoice(extra.invoice)
    run = await watching
    assert run.code == 0, run.err
    [line] = run.out.splitlines()
    assert "  payment_sent      2.5" in line
    assert "fee 0 sat (0 msat)  hash " in line


# -- errors ------------------------------------------------------------------------------------


CLIENT_COMMANDS: list[list[str]] = [
    ["balance"],
    ["info"],
    ["invoice", "--amount-sat", "1"],
    ["lookup", "ab" * 32],
    ["history"],
    ["keysend", "02" + "ab" * 32, "--amount-sat", "1"],
    ["watch", "--count", "1"],
    ["call", "get_balance"],
    ["pay", "lnbcrt1invoice"],
    ["pay", "--to", "alice@127.0.0.1:1=21"],
    ["zap", "npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m", "--amount-sat", "1"],
]


@pytest.mark.parametrize("argv", CLIENT_COMMANDS, ids=lambda argv: argv[0])
async def test_a_refused_relay_is_said_at_once(cli: Cli, argv: list[str]) -> None:
    relay = f"ws://127.0.0.1:{closed_port()}"
    run = await cli(argv[0], uri_for(relay), *argv[1:])
    assert run.code == 2
    assert run.error_line() == f"nwcd: error: cannot reach relay {relay}: connection refused"
    assert run.seconds < 2


@pytest.mark.parametrize("argv", CLIENT_COMMANDS, ids=lambda argv: argv[0])
async def test_the_uri_is_checked_first(
    cli: Cli, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await cli.fails(*argv) == (
        "nwcd: error: give the connection URI (nostr+walletconnect://...) as the first argument"
        " or in NWC_URI"
    )
    monkeypatch.setenv("NWC_URI", "nostr+walletconnect://nonsense")
    err = await cli.fails(*argv)
    assert err.startswith("nwcd: error: NWC_URI is not valid: bad wallet pubkey:")


async def test_a_silent_relay_is_given_up_on_within_the_timeout(
    cli: Cli, silent_relay: str
) -> None:
    for argv in (["pay", "lnbcrt1invoice"], ["balance"]):
        run = await cli(argv[0], uri_for(silent_relay), *argv[1:], "--timeout", "2")
        assert run.code == 2
        assert run.error_line() == (
            f"nwcd: error: cannot reach relay {silent_relay}: no connection within 2 s"
        )
        assert 1.9 < run.seconds < 3.0


async def test_no_wallet_service_on_the_relay(cli: Cli, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    run = await cli("balance", uri_for(url), "--timeout", "2")
    assert run.code == 2
    assert run.error_line() == (
        f"nwcd: error: no answer from the wallet within 2 s (relays {url}); the wallet has"
        " published no info event on these relays: is its service (nwcd serve) running with"
        " this connection?"
    )
    assert run.seconds < 3.0


async def test_pay_to_an_unreachable_relay_as_a_process() -> None:
    relay = f"ws://127.0.0.1:{closed_port()}"
    run = await nwcd_process("pay", uri_for(relay), "lnbcrt1invoice", "--timeout", "5")
    assert (run.code, run.error_line()) == (
        2,
        f"nwcd: error: cannot reach relay {relay}: connection refused",
    )
    assert run.seconds < 5


async def test_pay_garbage_says_the_uri_is_not_valid() -> None:
    run = await nwcd_process("pay", "garbage", "lnbcrt1invoice")
    assert (run.code, run.error_line()) == (
        2,
        "nwcd: error: the connection URI is not valid: the URI must start with"
        " nostr+walletconnect:// (it looks like"
        " nostr+walletconnect://WALLET_PUBKEY?relay=wss://...&secret=...)",
    )


async def test_a_bad_uri_is_never_echoed(cli: Cli) -> None:
    secret = "11" * 32
    bad = f"nostr+walletconnect://{'ab' * 32}?relay=http://relay.example.com&secret={secret}"
    err = await cli.fails("balance", bad)
    assert secret not in err
    assert err.startswith("nwcd: error: the connection URI is not valid: ")


BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (["lookup", "nothing"], "'nothing' is neither a payment hash (64 hex digits) nor a BOLT-11"),
    (["keysend", "03abc", "--amount-sat", "1"], "'03abc' is not a node pubkey (66 hex digits"),
    (["keysend", "02" + "ab" * 32, "--amount-sat", "1", "--tlv", "x=zz"], "is not a TLV record"),
    (["keysend", "02" + "ab" * 32, "--amount-sat", "1", "--tlv", "5=abc"], "is not a TLV record"),
    (["keysend", "02" + "ab" * 32], "one of the arguments --amount-sat --amount-msat is required"),
    (["invoice"], "one of the arguments --amount-sat --amount-msat is required"),
    (["invoice", "--amount-sat", "0"], "must be a positive number of sat, not 0"),
    (["invoice", "--amount-sat", "1", "--amount-msat", "5"], "not allowed with argument"),
    (["invoice", "--amount-msat", "1.5"], "'1.5' is not a whole number of msat"),
    (["invoice", "--amount-sat", "1", "--expiry", "0"], "the expiry in seconds must be a whole"),
    (["history", "--limit", "0"], "the limit must be a whole number from 1 to 10000, not 0"),
    (["history", "--type", "sideways"], "invalid choice: 'sideways'"),
    (["balance", "--timeout", "0"], "must be a positive number of seconds, not 0"),
    (["call", "get_info", "{nope"], "JSON_PARAMS is not valid JSON"),
    (["call", "get_info", "[1]"], "JSON_PARAMS must be a JSON object"),
    (["call", "multi_pay_invoice", "{}"], "multi_pay_invoice answers once per item"),
    (["watch", "--count", "0"], "the count must be a whole number from 1 to 1000000, not 0"),
    (["pay"], "give at least one invoice (lnbc...) after the URI"),
    (["pay", "--amount-msat", "-5"], "must be a positive number of msat"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_ARGUMENTS)
async def test_bad_arguments_are_one_line(cli: Cli, argv: list[str], message: str) -> None:
    uri = uri_for("ws://127.0.0.1:1")
    # The URI goes first, where a command takes it; for argparse errors it does not matter.
    err = await cli.fails(argv[0], uri, *argv[1:])
    assert message in err
