"""Small helpers for text people read (log lines, CLI output)."""

from __future__ import annotations

__all__ = ["count"]


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "item")`` is "1 item", ``count(3, "batch", "batches")`` "3 batches"."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
