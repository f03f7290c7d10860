"""NWA end to end: a running ``nwcd serve``, an app that made its own key and shows its
``nostr+walletauth://`` URI, and ``nwcd connection accept`` in another process. The app
learns the wallet's key only from the info event (``#p`` = its key, the wallet's key is the
author) and is answered at once, with its own secret."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from nwcd.client.client import NWCClient
from nwcd.nip47.app_request import AppRequest, format_nwa_uri
from nwcd.nip47.info import parse_info_event
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import PublicKey, SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.policy.grants import BudgetPeriod
from nwcd.relay.pool import RelayPool
from nwcd.relay.server import LocalRelay
from tests.support.service import ServeProcess


def nwcd(data_dir: Path, relays: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, configured with the service's relays."""
    return subprocess.run(
        [sys.executable, "-m", "nwcd", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NWCD_CONFIG": "", "NWCD_RELAYS": relays},
    )


class App:
    """An NWA app: its own key, its relays, and a subscription to its info event."""

    def __init__(self, relays: tuple[str, ...], **asks: object) -> None:
        self.secret = SecretKey.generate()
        self.relays = relays
        self.request = AppRequest(
            app_pubkey=self.secret.public_key,
            relays=relays,
            methods=frozenset({"get_info", "get_balance", "pay_invoice"}),
            **asks,  # type: ignore[arg-type]
        )
        self.uri = format_nwa_uri(self.request)

    async def wallet_info_event(self, pool: RelayPool) -> Event:
        """The first info event for this app's key (the Alby SDK's NWAClient.subscribe)."""
        found = await pool.subscribe(
            [Filter(kinds=(Kind.NWC_INFO,), tags={"p": (self.secret.public_key.hex,)})]
        )
        try:
            return await asyncio.wait_for(found.get(), 20)
        finally:
            await found.close()

    def client(self, wallet_pubkey: str) -> NWCClient:
        uri = ConnectionUri(PublicKey.from_hex(wallet_pubkey), self.relays, self.secret)
        return NWCClient(uri, timeout=10)


async def test_an_nwa_app_is_accepted_and_answered_with_its_own_secret(
    tmp_path: Path, nwcd_relay: LocalRelay
) -> None:
    service = ServeProcess(tmp_path, [nwcd_relay.url])
    app = App((nwcd_relay.url,), name="Zap", budget_msat=50_000, budget_period=BudgetPeriod.DAILY)
    try:
        await service.start()
        async with RelayPool([nwcd_relay.url]) as pool:
            await pool.wait_connected(10)
            # The app waits for its info event before the operator accepts, as apps do.
            waiting = asyncio.create_task(app.wallet_info_event(pool))
            accepted = await asyncio.to_thread(
                nwcd, tmp_path, nwcd_relay.url, "connection", "accept", app.uri, "--yes", "--json"
            )
            assert accepted.returncode == 0, accepted.stderr
            created = json.loads(accepted.stdout)
            assert created["app_pubkey"] == app.secret.public_key.hex
            info = await waiting
            # The wallet's key is the info event's author: nothing else tells the app.
            assert info.pubkey == created["wallet_pubkey"]
            methods, _ = parse_info_event(info)
            assert methods == {
                "get_info",
                "get_balance",
                "pay_invoice",
                "get_budget",
                "notifications",
            }
            async with app.client(info.pubkey) as wallet:
                assert (await wallet.get_info())["methods"]
                assert await wallet.get_balance() == 100_000_000_000
                budget = await wallet.get_budget()
                assert budget is not None
                assert (budget.total_msat, budget.renewal_period) == (50_000, "daily")
    finally:
        await service.stop()


async def test_an_app_relay_the_service_does_not_use(tmp_path: Path) -> None:
    """Refused by default (the error names the service's relays); with --use-app-relays the
    running service connects to the app's relay, publishes the info event there and
    answers there."""
    async with LocalRelay() as ours, LocalRelay() as theirs:
        service = ServeProcess(tmp_path, [ours.url])
        app = App((theirs.url,), name="Elsewhere")
        try:
            await service.start()
            refused = await asyncio.to_thread(
                nwcd, tmp_path, ours.url, "connection", "accept", app.uri, "--yes"
            )
            assert refused.returncode == 2
            assert refused.stdout == ""
            assert refused.stderr == (
                f"nwcd: error: the app waits on {theirs.url}, a relay the service does not use"
                f" (it uses: {ours.url}); add one of the app's relays to the service's relays,"
                " or accept with the app's relays (--use-app-relays) and the service connects"
                " to them too\n"
            )
            async with RelayPool([theirs.url]) as pool:
                await pool.wait_connected(10)
                waiting = asyncio.create_task(app.wallet_info_event(pool))
                accepted = await asyncio.to_thread(
                    nwcd, tmp_path, ours.url, "connection", "accept", app.uri, "--yes",
                    "--use-app-relays",
                )  # fmt: skip
                assert accepted.returncode == 0, accepted.stderr
                assert "Connection 'Elsewhere' created for the app." in accepted.stdout
                info = await waiting
                async with app.client(info.pubkey) as wallet:
                    assert await wallet.get_balance() == 100_000_000_000
        finally:
            await service.stop()
