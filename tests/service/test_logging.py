"""Money rule 4: secrets never appear in logs, even at debug level."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nwcd.client.client import NWCClient
from tests.service.harness import WalletHarness


async def test_no_secret_in_debug_logs(
    tmp_path: Path, nwcd_relay: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        invoice = await wallet.backend.create_invoice(1_000)
        async with NWCClient(uri, timeout=10) as client:
            await client.get_balance()
            await client.pay_invoice(invoice.invoice)
            await client.multi_pay_invoice([invoice.invoice, "lnbcrt1bad"])
        [connection] = await wallet.store.connections()
        secrets = {uri.secret.reveal_hex(), connection.wallet_key.reveal_hex()}
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "request" in text  # the logs did record the flow
    for secret in secrets:
        assert secret not in text
        assert secret not in caplog.text
