"""NIP-01 subscription filters: build, parse, serialize, and match events.

Lists inside a filter are OR; fields are AND; several filters are OR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from nwcd.errors import InvalidMessage
from nwcd.nostr.event import Event

__all__ = ["Filter", "split_values"]

_PLAIN_KEYS: Final = frozenset(("ids", "authors", "kinds", "since", "until", "limit"))


@dataclass(frozen=True, slots=True)
class Filter:
    """One filter of a ``REQ``. ``tags`` maps a letter (``"p"``) to its values."""

    ids: tuple[str, ...] | None = None
    authors: tuple[str, ...] | None = None
    kinds: tuple[int, ...] | None = None
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    since: int | None = None
    until: int | None = None
    limit: int | None = None
    # The tag values as sets, made on the first match: a filter with one ``#p`` per wallet
    # connection (100,000 of them) must not be copied into a set for every event.
    _tag_sets: dict[str, frozenset[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def to_json(self) -> dict[str, Any]:
        """The wire form."""
        out: dict[str, Any] = {}
        if self.ids is not None:
            out["ids"] = list(self.ids)
        if self.authors is not None:
            out["authors"] = list(self.authors)
        if self.kinds is not None:
            out["kinds"] = list(self.kinds)
        for letter, values in self.tags.items():
            out["#" + letter] = list(values)
        if self.since is not None:
            out["since"] = self.since
        if self.until is not None:
            out["until"] = self.until
        if self.limit is not None:
            out["limit"] = self.limit
        return out

    @classmethod
    def from_json(cls, data: object) -> Filter:
        """Parse a filter object.

        Raises:
            InvalidMessage: unknown keys or values of the wrong type.
        """
        if not isinstance(data, dict):
            raise InvalidMessage("a filter is a JSON object")
        tags: dict[str, tuple[str, ...]] = {}
        for key, value in data.items():
            if key.startswith("#") and len(key) == 2:
                tags[key[1]] = _strings(value, key)
            elif key not in _PLAIN_KEYS:
                raise InvalidMessage(f"unknown filter key {key!r}")
        kinds = data.get("kinds")
        if kinds is not None and (
            not isinstance(kinds, list) or not all(type(k) is int for k in kinds)
        ):
            raise InvalidMessage("kinds must be a list of integers")
        return cls(
            ids=_strings(data["ids"], "ids") if "ids" in data else None,
            authors=_strings(data["authors"], "authors") if "authors" in data else None,
            kinds=tuple(kinds) if kinds is not None else None,
            tags=tags,
            since=_int_or_none(data.get("since"), "since"),
            until=_int_or_none(data.get("until"), "until"),
            limit=_int_or_none(data.get("limit"), "limit"),
        )

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes this filter (``limit`` is not considered)."""
        if self.ids is not None and event.id not in self.ids:
            return False
        if self.authors is not None and event.pubkey not in self.authors:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.since is not None and event.created_at < self.since:
            return False
        if self.until is not None and event.created_at > self.until:
            return False
        sets = self._tag_sets
        if sets is None:
            sets = {letter: frozenset(values) for letter, values in self.tags.items()}
            object.__setattr__(self, "_tag_sets", sets)
        for letter, wanted in sets.items():
            if not any(len(t) >= 2 and t[0] == letter and t[1] in wanted for t in event.tags):
                return False
        return True


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidMessage(f"{key} must be a list of strings")
    return tuple(value)


def _int_or_none(value: object, key: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise InvalidMessage(f"{key} must be a non-negative integer")
    return value


def split_values(values: list[str], chunk_size: int) -> list[list[str]]:
    """Cut a long value list (many ``#p`` keys) into chunks relays accept."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    return [values[i : i + chunk_size] for i in range(0, len(values), chunk_size)]
