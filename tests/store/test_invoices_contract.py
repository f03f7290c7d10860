"""InvoiceBook contract: which connection made which invoice, and what each one may see."""

from __future__ import annotations

from nwcd.ports import PaymentState, Reserved, Store
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


async def test_a_failed_payment_stays_visible_to_its_payer(store: Store) -> None:
    failed = hash_of(5)
    [result] = await reserve(store, [intent(payment_hash=failed)])
    assert isinstance(result, Reserved)
    assert await store.settle(result.payment_id, PaymentState.FAILED, now=NOW)
    assert await store.owned_hashes(WALLET) == {failed}
    assert await store.owned_hashes(OTHER_WALLET) == set()
