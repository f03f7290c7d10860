"""InvoiceBook contract: which connection made which invoice, and what each one may see."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from nwcd.nip47.info import HOLD_INVOICE_ACCEPTED as HELD
from nwcd.nip47.info import PAYMENT_RECEIVED as RECEIVED
from nwcd.ports import PaymentState, Reserved, Store
from tests.store.conftest import SharedStores
from tests.store.helpers import NOW, OTHER_WALLET, WALLET, hash_of, intent, reserve


async def test_invoice_ownership(store: Store) -> None:
    made, paid, foreign = hash_of(1), hash_of(2), hash_of(3)
    await store.add_invoice(made, WALLET, NOW)
    await store.add_invoice(made, OTHER_WALLET, NOW)  # the first owner keeps it
    await store.add_invoice(foreign, OTHER_WALLET, NOW)
    await reserve(store, [intent(payment_hash=paid)])
    assert await store.invoice_owner(made) == WALLET
    assert await store.invoice_owner(foreign) == OTHER_WALLET
    assert await store.invoice_owner(paid) is None  # paid, not made
    assert await store.owned_hashes(WALLET) == {made, paid}
    assert await store.owned_hashes(OTHER_WALLET) == {foreign}
    assert await store.owned_hashes(hash_of(9)) == set()


async def test_adding_an_invoice_twice_is_harmless(store: Store) -> None:
    made = hash_of(4)
    await store.add_invoice(made, WALLET, NOW)
    await store.add_invoice(made, WALLET, NOW + 1)
    assert await store.invoice_owner(made) == WALLET
    assert await store.owned_hashes(WALLET) == {made}


async def test_metadata_is_kept_per_connection_and_the_latest_payment_wins(
    store: Store,
) -> None:
    made, paid, retried, bare, theirs = (hash_of(i) for i in range(300, 305))
    await store.add_invoice(made, WALLET, NOW, '{"order":1}')
    await store.add_invoice(bare, WALLET, NOW)
    await store.add_invoice(theirs, OTHER_WALLET, NOW, '{"secret":true}')
    await reserve(store, [replace(intent(payment_hash=paid), metadata='{"tip":2}')])
    [first] = await reserve(store, [replace(intent(payment_hash=retried), metadata='{"try":1}')])
    assert isinstance(first, Reserved)
    await store.settle(first.payment_id, PaymentState.FAILED, now=NOW)
    await reserve(store, [replace(intent(payment_hash=retried), metadata='{"try":2}')])
    everything = [made, paid, retried, bare, theirs, hash_of(399)]
    assert await store.metadata_of(WALLET, everything) == {
        made: '{"order":1}',
        paid: '{"tip":2}',
        retried: '{"try":2}',
    }
    assert await store.metadata_of(OTHER_WALLET, everything) == {theirs: '{"secret":true}'}
    assert await store.metadata_of(WALLET, []) == {}
    [record] = (await store.payments_by_hashes(WALLET, [paid])).values()
    assert record.intent.metadata == '{"tip":2}'


async def test_a_failed_payment_stays_visible_to_its_payer(store: Store) -> None:
    failed = hash_of(5)
    [result] = await reserve(store, [intent(payment_hash=failed)])
    assert isinstance(result, Reserved)
    assert await store.settle(result.payment_id, PaymentState.FAILED, now=NOW)
    assert await store.owned_hashes(WALLET) == {failed}
    assert await store.owned_hashes(OTHER_WALLET) == set()


# -- settlement notifications -------------------------------------------------------------------


async def test_each_notification_of_an_invoice_is_claimed_once(store: Store) -> None:
    made, other = hash_of(6), hash_of(7)
    await store.add_invoice(made, WALLET, NOW)
    await store.add_invoice(other, OTHER_WALLET, NOW)
    assert await store.claim_notification(made, HELD) is True
    assert await store.claim_notification(made, HELD) is False
    assert await store.claim_notification(made, RECEIVED) is True  # each type on its own
    assert await store.claim_notification(made, RECEIVED) is False
    assert await store.claim_notification(made, HELD) is False
    assert await store.claim_notification(other, RECEIVED) is True  # each invoice on its own
    await store.add_invoice(made, WALLET, NOW + 1)  # added again: still notified
    assert await store.claim_notification(made, RECEIVED) is False
    assert await store.claim_notification(other, HELD) is True
    assert await store.invoice_owner(made) == WALLET


async def test_the_settlement_of_an_unknown_invoice_is_not_claimed(store: Store) -> None:
    assert await store.claim_notification(hash_of(8), RECEIVED) is False
    [paid] = await reserve(store, [intent(payment_hash=hash_of(9))])
    assert isinstance(paid, Reserved)
    assert await store.claim_notification(hash_of(9), RECEIVED) is False  # paid, not made here


async def test_concurrent_settlement_claims_have_one_winner(
    shared_stores: SharedStores, tmp_path: Path
) -> None:
    async with shared_stores(tmp_path, 4) as stores:
        hashes = [hash_of(10**20 + i) for i in range(20)]
        for payment_hash in hashes:
            await stores[0].add_invoice(payment_hash, WALLET, NOW)
        claims = await asyncio.gather(
            *(s.claim_notification(h, RECEIVED) for h in hashes for s in stores for _ in range(2))
        )
        per_hash = [claims[i : i + 8] for i in range(0, len(claims), 8)]
        assert [sum(c) for c in per_hash] == [1] * len(hashes)
