"""``nwcd pay``: the client SDK as a command, against a running service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.service.harness import WalletHarness


async def nwcd_pay(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await nwcd_command("pay", *args, env=env)


async def nwcd_command(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``nwcd ARGS`` as a process: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nwcd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_pay_json_in_input_order(tmp_path: Path, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        good = await wallet.backend.create_invoice(2_000, latency_ms=200, fee_msat=5)
        bad = await wallet.backend.create_invoice(3_000, outcome="fail")
        quick = await wallet.backend.create_invoice(4_000)
        code, out, _ = await nwcd_pay(
            uri.format(), good.invoice, bad.invoice, quick.invoice, "--json"
        )
        results = json.loads(out)
        assert code == 1  # not every invoice was paid
        assert [r["invoice"] for r in results] == [good.invoice, bad.invoice, quick.invoice]
        # The original keys keep their meaning; fields are only ever added.
        assert {k: results[0][k] for k in ("invoice", "id", "ok", "preimage", "fees_paid")} == {
            "invoice": good.invoice,
            "id": "0",
            "ok": True,
            "preimage": good.preimage,
            "fees_paid": 5,
        }
        assert results[0]["position"] == 1
        assert results[0]["payment_hash"] == good.payment_hash
        assert results[0]["amount_msat"] == 2_000
        assert results[0]["state"] == "paid"
        assert results[1]["ok"] is False
        assert results[1]["error"]["code"] == "PAYMENT_FAILED"
        assert set(results[1]) == {
            "invoice", "id", "ok", "error", "position", "payment_hash", "amount_msat", "state"
        }  # fmt: skip
        assert results[1]["state"] == "failed"
        assert results[2]["preimage"] == quick.preimage

        # The URI from the environment, one invoice, human output: exit 0.
        single = await wallet.backend.create_invoice(1_000)
        code, out, _ = await nwcd_pay(single.invoice, env={"NWC_URI": uri.format()})
        assert code == 0
        assert "paid" in out
        assert uri.secret.reveal_hex() not in out


async def test_pay_without_uri_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NWC_URI"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nwcd", "pay", "lnbcrt1x",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode() == (
        "nwcd: error: give the connection URI (nostr+walletconnect://...) as the first"
        " argument or in NWC_URI\n"
    )
