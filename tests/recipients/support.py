"""Invoices for the recipients tests, signed by a throwaway node key."""

from __future__ import annotations

import hashlib
import os
import time

import coincurve

from nwcd import bolt11

NODE_KEY = hashlib.sha256(b"nwcd recipients test node").digest()
NODE_PUBKEY = coincurve.PrivateKey(NODE_KEY).public_key.format().hex()


def mint(
    amount_msat: int | None,
    description_hash: str,
    *,
    preimage: bytes | None = None,
    timestamp: int | None = None,
    expiry: int = bolt11.DEFAULT_EXPIRY,
    network: bolt11.Network = bolt11.Network.MAINNET,
) -> str:
    """A valid invoice; the payment hash is of ``preimage`` (random when not given)."""
    preimage = os.urandom(32) if preimage is None else preimage
    return bolt11.encode(
        secret=NODE_KEY,
        payment_hash=hashlib.sha256(preimage).digest(),
        payment_secret=os.urandom(32),
        timestamp=int(time.time()) if timestamp is None else timestamp,
        network=network,
        amount_msat=amount_msat,
        description_hash=description_hash,
        expiry=expiry,
    )
