"""Notifications go out in the encryption the app uses: one relay event per payment, not
two; both kinds only while the app's scheme is unknown (see nip47.info.notification_kinds)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from nwcd.nip47.encryption import Scheme, open_content
from nwcd.nostr.event import Event
from nwcd.nostr.filters import Filter
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool, Subscription
from nwcd.relay.server import LocalRelay
from tests.service.harness import RawApp, WalletHarness

KIND_OF = {Scheme.NIP44_V2: Kind.NWC_NOTIFICATION, Scheme.NIP04: Kind.NWC_NOTIFICATION_NIP04}


async def notifications(subscription: Subscription, settle: float = 1.0) -> list[Event]:
    """Every notification that arrives until none came for ``settle`` seconds."""
    got: list[Event] = []
    with contextlib.suppress(TimeoutError):
        while True:
            async with asyncio.timeout(settle):
                got.append(await subscription.get())
    return got


@pytest.mark.parametrize("scheme", [Scheme.NIP44_V2, Scheme.NIP04])
async def test_an_app_is_notified_in_its_own_encryption_only(
    tmp_path: Path, nwcd_relay: LocalRelay, scheme: Scheme
) -> None:
    async with WalletHarness(tmp_path, [nwcd_relay.url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        async with RelayPool([nwcd_relay.url]) as pool:
            await pool.wait_connected(10)
            app = RawApp(uri, pool)
            watched = await pool.subscribe(
                [
                    Filter(
                        kinds=(Kind.NWC_NOTIFICATION, Kind.NWC_NOTIFICATION_NIP04),
                        authors=(uri.wallet_pubkey.hex,),
                        tags={"p": (uri.secret.public_key.hex,)},
                    )
                ]
            )
            made = []
            for amount in (21_000, 9_000):
                [(_, response)] = await app.send(
                    app.request("make_invoice", {"amount": amount}, scheme=scheme)
                )
                assert response.result is not None
                made.append(str(response.result["payment_hash"]))
            await wallet.backend.receive(made[0])  # payment_received
            paid = await wallet.backend.create_invoice(5_000)
            [(_, sent)] = await app.send(
                app.request("pay_invoice", {"invoice": paid.invoice}, scheme=scheme)
            )
            assert sent.error is None
            known = await notifications(watched)
            # A new instance has not seen the app yet: both kinds, whatever it uses.
            await wallet.stop()
            await wallet.start()
            await wallet.backend.receive(made[1])
            unknown = await notifications(watched)
    types = [
        json.loads(open_content(uri.secret, uri.wallet_pubkey, scheme, e.content))[
            "notification_type"
        ]
        for e in known
    ]
    assert sorted(types) == ["payment_received", "payment_sent"]
    assert {e.kind for e in known} == {KIND_OF[scheme]}
    assert sorted(e.kind for e in unknown) == sorted(KIND_OF.values())
