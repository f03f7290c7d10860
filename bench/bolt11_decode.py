"""Decode speed of ``nwcd.bolt11`` against the ``bolt11`` package, on the same invoices.

Run: ``python bench/bolt11_decode.py``. The invoices are the valid BOLT-11 spec
examples plus a few freshly encoded regtest ones (route hints, hashed
description, an ``n`` field). Prints the median microseconds per decode over
several repeats, for each decoder, and the ratio.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bolt11

from nwcd.bolt11 import Network, RouteHop, decode, encode

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "bolt11.examples.json"
REPEATS = 7


def invoices() -> list[str]:
    """The spec's valid examples and four regtest invoices encoded here."""
    found = [case["invoice"] for case in json.loads(VECTORS.read_text())["valid"]]
    key = hashlib.sha256(b"bench node").digest()
    node = "02" + "11" * 32
    common: dict[str, Any] = {
        "secret": key,
        "network": Network.REGTEST,
        "payment_secret": "22" * 32,
        "timestamp": 1_750_000_000,
    }
    for n in range(4):
        found.append(
            encode(
                **common,
                payment_hash=hashlib.sha256(bytes([n])).hexdigest(),
                amount_msat=[None, 1_000, 21_000_000, 123_456_789][n],
                description=None if n == 1 else f"nwcd bench invoice {n}",
                description_hash=hashlib.sha256(b"x").hexdigest() if n == 1 else None,
                expiry=86_400,
                route_hints=[[RouteHop(node, f"{700_000 + n}x{n}x1", 1_000, 100, 40)]] * (n % 3),
                include_payee=n == 3,
            )
        )
    return found


def per_decode_us(decoder: Callable[[str], object], texts: list[str], loops: int) -> float:
    """Median over REPEATS of the mean microseconds per decode."""
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(loops):
            for text in texts:
                decoder(text)
        samples.append((time.perf_counter() - start) / (loops * len(texts)) * 1e6)
    return statistics.median(samples)


def main() -> None:
    texts = invoices()
    for text in texts:  # both decoders accept every invoice and agree on the payee
        assert decode(text).payee == bolt11.decode(text).payee
    ours = per_decode_us(decode, texts, loops=20)
    theirs = per_decode_us(bolt11.decode, texts, loops=1)
    print(f"{len(texts)} invoices, median of {REPEATS} repeats")
    print(f"nwcd.bolt11.decode: {ours:8.1f} us per decode")
    print(f"bolt11.decode:      {theirs:8.1f} us per decode")
    print(f"ratio:              {theirs / ours:8.1f}x")


if __name__ == "__main__":
    main()
