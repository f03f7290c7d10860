"""Shared test helpers: where the vendored official vectors live; asyncio debug mode."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"

# The event loops of the tests run in asyncio's debug mode (``asyncio_debug`` in
# pyproject.toml). The processes the tests start (nwcd serve, the CLI) run as users run
# them: a PYTHONASYNCIODEBUG inherited from the environment would mix debug warnings into
# the output the tests read.
os.environ.pop("PYTHONASYNCIODEBUG", None)


def load_vectors(name: str) -> Any:
    """Parse one of the vendored vector files (copies of the official test vectors)."""
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
