"""Bad input gets the designed error or is dropped, and the service keeps serving."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nwcd.nip47.encryption import Scheme
from nwcd.nostr.keys import SecretKey
from nwcd.relay.pool import RelayPool
from tests.service.harness import RawApp, WalletHarness


@pytest.fixture
async def served(tmp_path: Path, relay_url: str) -> AsyncIterator[tuple[WalletHarness, RawApp]]:
    async with WalletHarness(tmp_path, [relay_url]) as wallet, RelayPool([relay_url]) as pool:
        uri = await wallet.connect()
        await wallet.start()
        await pool.wait_connected(10)
        yield wallet, RawApp(uri, pool)


async def still_serving(app: RawApp) -> None:
    [(_, response)] = await app.send(app.request("get_balance"))
    assert response.result == {"balance": 100_000_000_000}


async def test_request_to_an_unknown_wallet_key_is_dropped(
    served: tuple[WalletHarness, RawApp],
) -> None:
    _, app = served
    stranger = SecretKey.generate().public_key.hex
    event = app.request("get_balance", tags=[["p", stranger], ["encryption", "nip44_v2"]])
    assert await app.send(event, expect=1, timeout=1.0) == []
    await still_serving(app)


async def test_unknown_app_key_is_unauthorized(served: tuple[WalletHarness, RawApp]) -> None:
    _, app = served
    intruder = SecretKey.generate()
    event = app.request("get_balance", secret=intruder)
    app_as_intruder = RawApp(app.uri, app.pool)
    app_as_intruder.secret = intruder
    [(_, response)] = await app_as_intruder.send(event)
    assert response.error is not None
    assert response.error.code == "UNAUTHORIZED"
    await still_serving(app)


async def test_expired_request_is_ignored(served: tuple[WalletHarness, RawApp]) -> None:
    _, app = served
    past = str(int(time.time()) - 1)
    event = app.request(
        "get_balance",
        tags=[["p", app.uri.wallet_pubkey.hex], ["encryption", "nip44_v2"], ["expiration", past]],
    )
    assert await app.send(event, expect=1, timeout=1.0) == []
    await still_serving(app)


@pytest.mark.parametrize(("offset", "text"), [(-400, "too old"), (3600, "future")])
async def test_stale_or_future_requests_are_refused(
    served: tuple[WalletHarness, RawApp], offset: int, text: str
) -> None:
    wallet, app = served
    invoice = await wallet.backend.create_invoice(1_000)
    event = app.request(
        "pay_invoice", {"invoice": invoice.invoice}, created_at=int(time.time()) + offset
    )
    [(_, response)] = await app.send(event)
    assert response.error is not None
    assert text in response.error.message
    assert await wallet.backend.get_balance() == 100_000_000_000


async def test_garbage_content(served: tuple[WalletHarness, RawApp]) -> None:
    _, app = served
    [(_, response)] = await app.send(app.request("get_balance", content="not encrypted at all"))
    assert response.error is not None
    assert response.error.code == "OTHER"
    assert "decrypt" in response.error.message
    await still_serving(app)


async def test_unsupported_encryption(served: tuple[WalletHarness, RawApp]) -> None:
    _, app = served
    event = app.request(
        "get_balance", tags=[["p", app.uri.wallet_pubkey.hex], ["encryption", "nip99"]]
    )
    [(_, response)] = await app.send(event)
    assert response.error is not None
    assert response.error.code == "UNSUPPORTED_ENCRYPTION"


async def test_nip04_request_gets_a_nip04_answer(served: tuple[WalletHarness, RawApp]) -> None:
    _, app = served
    [(event, response)] = await app.send(app.request("get_balance", scheme=Scheme.NIP04))
    assert "?iv=" in event.content
    assert response.result == {"balance": 100_000_000_000}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"invoice": "lnbcrt1x", "amount": "100"}, "amount"),
        ({"invoice": "lnbcrt1x", "amount": 1.5}, "amount"),
        ({"invoice": 12}, "invoice"),
        ({}, "invoice"),
    ],
)
async def test_malformed_params(
    served: tuple[WalletHarness, RawApp], params: dict[str, object], message: str
) -> None:
    _, app = served
    [(_, response)] = await app.send(app.request("pay_invoice", params))
    assert response.error is not None
    assert response.error.code == "OTHER"
    assert message in response.error.message
    assert response.result_type == "pay_invoice"


async def test_huge_integers_are_bad_requests_not_internal_errors(
    served: tuple[WalletHarness, RawApp],
) -> None:
    # Found by fuzzing: these reached SQLite, raised OverflowError and were answered INTERNAL.
    wallet, app = served
    for method, params, field in [
        ("make_invoice", {"amount": 1000, "expiry": 2**70}, "expiry"),
        ("make_invoice", {"amount": 2**63}, "amount"),
        ("list_transactions", {"from": 2**70}, "from"),
    ]:
        [(_, response)] = await app.send(app.request(method, params))
        assert response.error is not None, (method, params)
        assert response.error.code == "OTHER", (method, params, response.error)
        assert f"{field} must be " in response.error.message
        assert response.result_type == method
    assert await wallet.backend.get_balance() == 100_000_000_000
    await still_serving(app)


async def test_unknown_method(served: tuple[WalletHarness, RawApp]) -> None:
    _, app = served
    [(_, response)] = await app.send(app.request("fly_to_the_moon"))
    assert response.error is not None
    assert response.error.code == "NOT_IMPLEMENTED"
    assert response.result_type == "fly_to_the_moon"


async def test_thousand_item_batch_is_refused_whole(served: tuple[WalletHarness, RawApp]) -> None:
    wallet, app = served
    # Short placeholders keep the event under relay size limits: the count is what is refused.
    items = [{"id": str(i), "invoice": f"lnbcrt{i}"} for i in range(1_000)]
    [(event, response)] = await app.send(
        app.request("multi_pay_invoice", {"invoices": items}), settle=0.5
    )
    assert event.tag_value("d") is None
    assert response.error is not None
    assert "too many" in response.error.message
    assert await wallet.backend.get_balance() == 100_000_000_000
    await still_serving(app)


async def test_revoked_connection_is_answered_unauthorized(
    served: tuple[WalletHarness, RawApp],
) -> None:
    from dataclasses import replace

    wallet, app = served
    [connection] = await wallet.store.connections()
    await wallet.store.save_connection(replace(connection, revoked_at=int(time.time()) - 1))
    # The running service picks the change up from the store without a restart.
    for _ in range(50):
        current = wallet.daemon.pipeline.connections[connection.wallet_pubkey]
        if current.revoked_at is not None:
            break
        await __import__("asyncio").sleep(0.1)
    [(_, response)] = await app.send(app.request("get_balance"))
    assert response.error is not None
    assert response.error.code == "UNAUTHORIZED"
    assert "revoked" in response.error.message


async def test_oversized_event_is_dropped(served: tuple[WalletHarness, RawApp]) -> None:
    wallet, app = served
    invoice = await wallet.backend.create_invoice(1_000)
    items = [{"id": str(i), "invoice": invoice.invoice} for i in range(1_000)]
    event = app.request("multi_pay_invoice", {"invoices": items})
    assert len(event.content) > 256 * 1024
    assert await app.send(event, expect=1, timeout=1.0) == []
    assert await wallet.backend.get_balance() == 100_000_000_000
    await still_serving(app)
