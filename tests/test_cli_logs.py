"""What ``nwcd serve`` logs for a user to read: counts with the right plural, and one INFO
line per payment request with its method, amount and outcome (never an invoice, preimage
or key)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from nwcd.client.client import NWCClient, NWCError
from tests.service.harness import WalletHarness


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("nwcd.service")]


async def test_ready_line_counts_connections(
    tmp_path: Path, nwcd_relay: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO)
    async with WalletHarness(tmp_path / "one", [url]) as wallet:
        await wallet.connect()
        await wallet.start()
    async with WalletHarness(tmp_path / "two", [url]) as wallet:
        await wallet.connect("a")
        await wallet.connect("b")
        await wallet.start()
    ready = [m for m in messages(caplog) if m.startswith("nwcd ready")]
    assert re.fullmatch(rf"nwcd ready: instance \w{{12}}, 1 connection, relays {url}", ready[0])
    assert re.fullmatch(rf"nwcd ready: instance \w{{12}}, 2 connections, relays {url}", ready[1])


async def test_one_line_per_payment_request(
    tmp_path: Path, nwcd_relay: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        good = await wallet.backend.create_invoice(2_000, fee_msat=5)
        bad = await wallet.backend.create_invoice(3_000, outcome="fail")
        batch = [await wallet.backend.create_invoice(1_000 + i) for i in range(2)]
        payee = wallet.backend.payee_pubkeys[0]
        async with NWCClient(uri, timeout=10) as client:
            await client.pay_invoice(good.invoice)
            with pytest.raises(NWCError):
                await client.pay_invoice(bad.invoice)
            await client.multi_pay_invoice([m.invoice for m in batch])
            keysend = await client.pay_keysend(payee, 4_000)
    answered = [m for m in messages(caplog) if " answered in " in m]
    assert len(answered) == 4
    assert re.fullmatch(
        r"request \w{16} pay_invoice: 1 item answered in [\d.]+ ms: 2000 msat, paid with fee"
        r" 5 msat",
        answered[0],
    )
    assert re.fullmatch(
        r"request \w{16} pay_invoice: 1 item answered in [\d.]+ ms: 3000 msat, PAYMENT_FAILED"
        r" payment failed: rejected by the payee",
        answered[1],
    )
    assert re.fullmatch(
        r"request \w{16} multi_pay_invoice: 2 items answered in [\d.]+ ms", answered[2]
    )
    assert re.fullmatch(
        r"request \w{16} pay_keysend: 1 item answered in [\d.]+ ms: 4000 msat, paid with fee"
        r" 0 msat",
        answered[3],
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (good.invoice, good.preimage, keysend["preimage"], uri.secret.reveal_hex()):
        assert secret not in text
