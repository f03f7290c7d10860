"""Shared test helpers: where the vendored official vectors live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"


def load_vectors(name: str) -> Any:
    """Parse one of the vendored vector files (copies of ../shared/vectors)."""
    return json.loads((VECTORS / name).read_text())


from tests.support.fixtures import (  # noqa: E402
    nostr_relay,
    nostr_rs_relay,
    nwcd_relay,
    postgres_server,
    sdk_relay,
)

__all__ = [
    "VECTORS",
    "load_vectors",
    "nostr_relay",
    "nostr_rs_relay",
    "nwcd_relay",
    "postgres_server",
    "sdk_relay",
]
