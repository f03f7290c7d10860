"""Thousands of connections: the service's subscription to their requests fits a real
relay's limits, so the last connection is answered as well as the first.

5,000 ``#p`` values do not fit one REQ: as one (10 filters of 500 values, ~335 kB)
nostr-rs-relay drops it ("message too large", over its 256 kB websocket message
limit) and no connection is answered. They go as 5 REQs of 2 filters (~68 kB
each); with 2 subscriptions per socket here (nostr-rs-relay allows 32, the
default is 16) they need 3 sockets to the relay, which this covers too.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import Connection
from nwcd.relay.pool import PoolOptions, RelayPool
from nwcd.service.daemon import DaemonOptions
from tests.service.harness import RawApp, WalletHarness
from tests.support.relays import NostrRsRelayProcess

CONNECTIONS = 5_000


async def test_the_last_of_thousands_of_connections_is_answered(
    tmp_path: Path, nostr_rs_relay: NostrRsRelayProcess
) -> None:
    relay = nostr_rs_relay.url
    options = DaemonOptions(relays=(relay,), pool=PoolOptions(max_subscriptions=2))
    async with WalletHarness(tmp_path, [relay], options=options) as wallet:
        app_secret = SecretKey.generate()
        wallet_keys = [SecretKey.generate() for _ in range(CONNECTIONS)]
        now = int(time.time())
        await asyncio.gather(
            *(
                wallet.store.add_connection(
                    Connection(
                        name=f"app {i}",
                        wallet_key=key,
                        app_pubkey=app_secret.public_key.hex,
                        relays=(relay,),
                        created_at=now,
                    )
                )
                for i, key in enumerate(wallet_keys)
            )
        )
        await wallet.start()
        parts = next(iter(wallet.daemon.pool._subscriptions.values())).parts
        assert len(parts) == 5
        async with RelayPool([relay]) as pool:
            await pool.wait_connected(10)
            for key in (wallet_keys[-1], wallet_keys[0]):
                app = RawApp(ConnectionUri(key.public_key, (relay,), app_secret), pool)
                [(_, response)] = await app.send(app.request("get_balance"), timeout=10)
                assert response.result == {"balance": 100_000_000_000}
