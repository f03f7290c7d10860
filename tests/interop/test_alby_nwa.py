"""The Alby JS SDK's ``NWAClient`` (@getalby/sdk 8.0.3, Node) asks nwcd for a connection.

The SDK makes the app's key and the ``nostr+walletauth://`` URI and subscribes to its info
event; nwcd reads the URI, the operator accepts it (the admin functions the CLI and the
console use) and the running service publishes the info event. The SDK's ``onSuccess``
gets a client for the wallet key it found there, and that client is answered, on two
third-party relays.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nwcd.nip47.app_request import parse_nwa_uri
from nwcd.policy.grants import BudgetPeriod
from nwcd.service.admin import create_connection, grant_request
from tests.interop.node import NodeProcess, ok
from tests.service.harness import WalletHarness

pytestmark = pytest.mark.relay


async def test_the_sdk_nwa_client_gets_a_connection(
    tmp_path: Path, relay_url: str, scripts: Path
) -> None:
    options = {
        "relayUrls": [relay_url],
        "requestMethods": ["get_info", "get_balance", "get_budget", "pay_invoice"],
        "name": "Alby NWA app",
        "maxAmount": 21_000,
        "budgetRenewal": "weekly",
        "notificationTypes": ["payment_received"],
        "metadata": {"app": "interop"},
    }
    async with WalletHarness(tmp_path, [relay_url]) as wallet:
        await wallet.start()
        async with NodeProcess(scripts, "alby_nwa.mjs", json.dumps(options)) as app:
            request = parse_nwa_uri(app.ready["uri"], now=int(time.time()))
            assert request.app_pubkey.hex == app.ready["appPubkey"]
            assert request.name == "Alby NWA app"
            assert (request.budget_msat, request.budget_period) == (21_000, BudgetPeriod.WEEKLY)
            assert request.metadata == {"app": "interop"}
            new = grant_request(request, service_relays=[relay_url])
            now = int(time.time())
            created = await create_connection(wallet.store, new, now=now, listen_timeout=10)
            assert created.behind == []
            connected = await app.wait_for(lambda m: "connected" in m, 20)
            assert connected["connected"]["walletPubkey"] == created.connection.wallet_pubkey
            assert ok(await app.call("getBalance"))["balance"] == 100_000_000_000
            budget = ok(await app.call("getBudget"))
            assert (budget["total_budget"], budget["renewal_period"]) == (21_000, "weekly")
            info = ok(await app.call("getInfo"))
            assert set(info["methods"]) == {"get_info", "get_balance", "get_budget", "pay_invoice"}
