"""Helpers for ``interop/alby_wallet_service.mjs``: the Alby JS SDK's wallet service on a
fake wallet, which pays only the outside invoices it was told about."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from nwcd import bolt11
from tests.interop.node import NodeProcess

__all__ = ["payee_invoice", "requests_seen"]


async def payee_invoice(
    service: NodeProcess, amount_msat: int | None, outcome: str = "succeed"
) -> tuple[str, str]:
    """A real signed regtest invoice the fake wallet knows how to pay: (invoice, preimage)."""
    preimage = os.urandom(32)
    invoice = bolt11.encode(
        secret=os.urandom(32),
        payment_hash=hashlib.sha256(preimage).digest(),
        payment_secret=os.urandom(32),
        timestamp=int(time.time()),
        network=bolt11.Network.REGTEST,
        amount_msat=amount_msat,
        description="alby payee",
    )
    await service.send(
        {"op": "payee", "invoice": invoice, "preimage": preimage.hex(), "outcome": outcome}
    )
    await service.wait_for(lambda m: m.get("payee") == invoice, 10)
    return invoice, preimage.hex()


def requests_seen(service: NodeProcess) -> list[dict[str, Any]]:
    """Every request the SDK's service decrypted so far: ``{"request", "params", ...}``."""
    return service.seen("request")
