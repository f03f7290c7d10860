"""The client's batch calls against our service: keysends, ids, input order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nwcd.client.client import InvoiceRequest, KeysendRequest, NWCClient
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.relay.pool import RelayPool
from tests.service.harness import WalletHarness


async def test_multi_pay_keysend(tmp_path: Path, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        payees = wallet.backend.payee_pubkeys
        keysends = [
            KeysendRequest(payees[0], 1_000, tlv_records=((696969, "77616c"),)),
            KeysendRequest(payees[1], 2_000, id="mine"),
            KeysendRequest("02" + "ab" * 32, 3_000),
        ]
        async with NWCClient(uri, timeout=10) as client:
            results = await client.multi_pay_keysend(keysends)
    assert [r.invoice for r in results] == [k.pubkey for k in keysends]
    assert [r.id for r in results] == ["0", "mine", "2"]
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].error is not None
    assert results[2].error.code == "PAYMENT_FAILED"


async def test_duplicate_caller_ids_are_made_unique(tmp_path: Path, nwcd_relay: object) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        made = [await wallet.backend.create_invoice(1_000 + i) for i in range(3)]
        requests = [InvoiceRequest(m.invoice, id="same") for m in made]
        async with NWCClient(uri, timeout=10) as client:
            results = await client.multi_pay_invoice(requests)
    assert [r.id for r in results] == ["same", "1", "2"]
    assert [r.preimage for r in results] == [m.preimage for m in made]


async def test_relays_that_never_ok_ephemeral_events_do_not_stall_calls(
    tmp_path: Path, nwcd_relay: object
) -> None:
    """nostr-rs-relay sends no OK for kinds 20000-29999: the client must not wait for one."""
    relay = nwcd_relay
    async with WalletHarness(tmp_path, [relay.url]) as wallet:  # type: ignore[attr-defined]
        uri = await wallet.connect()
        await wallet.start()
        relay.faults.no_ok_for_ephemeral = True  # type: ignore[attr-defined]
        made = await wallet.backend.create_invoice(1_000)
        # An OK-wait would take connect_timeout (60 s) and overrun the 10 s call timeout.
        async with NWCClient(uri, timeout=10, connect_timeout=60) as client:
            assert await client.get_balance() == 100_000_000_000
            [result] = await client.multi_pay_invoice([made.invoice], timeout=10)
        assert result.preimage == made.preimage


async def test_keysends_fall_back_to_single_requests(tmp_path: Path, nwcd_relay: object) -> None:
    """A connection without multi_pay_keysend (its info event lists only pay_keysend):
    the client sends one pay_keysend per item, TLVs and ids kept, results in order."""
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect(methods=frozenset({"pay_keysend", "get_info"}))
        await wallet.start()
        payees = wallet.backend.payee_pubkeys
        keysends = [
            KeysendRequest(payees[0], 1_000, tlv_records=((696969, "77616c"),)),
            KeysendRequest(payees[1], 2_000, preimage="cd" * 32, id="mine"),
            KeysendRequest("02" + "ab" * 32, 3_000),
        ]
        async with NWCClient(uri, timeout=10) as client:
            assert "multi_pay_keysend" not in client.info.methods
            results = await client.multi_pay_keysend(keysends)
        sent = await wallet.backend.attempts()
    assert [r.invoice for r in results] == [k.pubkey for k in keysends]
    assert [r.id for r in results] == ["0", "mine", "2"]
    assert [r.ok for r in results] == [True, True, False]
    assert results[1].preimage == "cd" * 32
    assert results[2].error is not None
    assert results[2].error.code == "PAYMENT_FAILED"
    assert sorted(a.kind for a in sent) == ["keysend"] * 3


async def test_requests_carry_the_expiration_the_wallet_honours(
    tmp_path: Path, nwcd_relay: object
) -> None:
    """With ``request_expiration`` every request says until when it may run (NIP-47's
    ``expiration`` tag, checked by the service: see test_bad_input); without, none."""
    url = nwcd_relay.url  # type: ignore[attr-defined]
    async with WalletHarness(tmp_path, [url]) as wallet, RelayPool([url]) as watcher:
        uri = await wallet.connect()
        await wallet.start()
        await watcher.wait_connected(10)
        seen = await watcher.subscribe(
            [Filter(kinds=(Kind.NWC_REQUEST,), authors=(uri.secret.public_key.hex,))]
        )
        async with NWCClient(uri, timeout=10, request_expiration=30) as careful:
            assert await careful.get_balance() > 0
        async with NWCClient(uri, timeout=10) as plain:
            assert await plain.get_balance() > 0
        async with asyncio.timeout(10):
            first, second = await seen.get(), await seen.get()
        await seen.close()
    assert first.tag_value("expiration") == str(first.created_at + 30)
    assert second.tag_value("expiration") is None


def test_request_expiration_must_be_positive() -> None:
    uri = ConnectionUri(
        SecretKey.generate().public_key, ("ws://127.0.0.1:1",), SecretKey.generate()
    )
    with pytest.raises(ValueError, match="request_expiration"):
        NWCClient(uri, request_expiration=0)
