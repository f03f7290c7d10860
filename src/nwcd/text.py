"""Small helpers for text people read (log lines, CLI output)."""

from __future__ import annotations

__all__ = ["count", "positive_sats"]


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "item")`` is "1 item", ``count(3, "batch", "batches")`` "3 batches"."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def positive_sats(text: str) -> int:
    """A positive whole number of sats as people type it (``2100``, ``2_100``).

    Raises:
        ValueError: anything else, with a message to show.
    """
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number of sat") from None
    if value <= 0:
        raise ValueError(f"must be a positive number of sat, not {value}")
    return value
