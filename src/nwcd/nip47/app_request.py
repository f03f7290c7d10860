"""An app asks for a connection: NWA URIs and authorization URLs, checked once.

In both ways the app makes its own key pair and keeps the secret; the wallet never sees it.
The operator looks at what the app asks for and accepts it, or grants less.

- **NWA** (Nostr Wallet Auth, nostr-protocol/nips PR 851). The app shows
  ``nostr+walletauth://<app pubkey hex>?relay=<url>&request_methods=<m1 m2>&name=...``
  (also ``nostr+walletauth+<wallet>://``, with or without ``//``). Once the connection
  exists, the wallet service publishes its info event (kind 13194) with a ``p`` tag of the
  app's key on the app's relays. The app subscribes to ``{"kinds": [13194], "#p": [its
  key]}`` and takes the wallet pubkey from the event's author.
- **The authorization URL** (Alby Hub's ``/apps/new``, the Alby SDK's
  ``getAuthorizationUrl``). The same fields, as the query of a page of the wallet, with
  ``pubkey`` for the app's key and no relay: the wallet chooses its relays and tells the
  app (the SDK waits for a ``nwc:success`` message with ``relayUrls`` and ``walletPubkey``).

The fields: ``request_methods`` (space-separated; ``required_commands`` and
``optional_commands`` of the older draft count too), ``name``, ``icon``, ``return_to``,
``max_amount`` (msat), ``budget_renewal``, ``expires_at`` (Unix seconds),
``notification_types`` (space-separated), ``isolated`` and ``metadata`` (JSON). Spaces
may come as ``%20`` or ``+``; unknown keys are ignored.

``max_amount`` is a **budget**: the most the app may spend in each ``budget_renewal``
period (Alby Hub makes it the app's budget), not a limit per payment.

Every check is here, so the CLI and the web console refuse the same things with the
same message, written for the operator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from nwcd.errors import InvalidKey, InvalidUri
from nwcd.nip47.info import HOLD_INVOICE_ACCEPTED, NOTIFICATION_TYPES
from nwcd.nip47.methods import (
    MAX_AMOUNT_MSAT,
    MAX_METADATA_CHARS,
    MAX_UNIX_TIME,
    Method,
    metadata_text,
)
from nwcd.nip47.uri import check_relay
from nwcd.nostr.keys import PublicKey
from nwcd.policy.grants import BudgetPeriod, check_name

__all__ = [
    "KNOWN_NOTIFICATION_TYPES",
    "MAX_APP_RELAYS",
    "NWA_SCHEME",
    "AppRequest",
    "AppRequestError",
    "format_nwa_uri",
    "parse_authorization_query",
    "parse_nwa_uri",
]

NWA_SCHEME: Final = "nostr+walletauth"
_NWA_SCHEME: Final = re.compile(r"nostr\+walletauth(\+[a-z0-9][a-z0-9.-]*)?", re.IGNORECASE)
KNOWN_NOTIFICATION_TYPES: Final = frozenset({*NOTIFICATION_TYPES, HOLD_INVOICE_ACCEPTED})
_KNOWN_METHODS: Final = tuple(m.value for m in Method)
_METHOD_KEYS: Final = ("request_methods", "required_commands", "optional_commands")

MAX_APP_RELAYS: Final = 10
"""Relays one app may name: each one is a connection the service may have to keep open."""
MAX_URL_CHARS: Final = 2048
MAX_REQUEST_CHARS: Final = 32_768
"""A whole NWA URI: room for 4096 characters of metadata, percent-encoded."""
_MAX_FIELDS: Final = 200
# Schemes a browser runs or reads locally instead of opening an app: never a return_to.
_UNSAFE_SCHEMES: Final = frozenset({"javascript", "data", "vbscript", "file", "blob", "about"})
_SHOWN: Final = 80  # characters of a bad value quoted back in an error


class AppRequestError(ValueError):
    """An app's request that cannot be accepted; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class AppRequest:
    """A connection an app asks for, checked.

    ``methods`` None: every method (an authorization URL that names none).
    ``budget_msat``: the most the app may spend per ``budget_period`` (the ask's
    ``max_amount``; a budget, not a limit per payment); None: it asks for no budget.
    ``relays``: where the app listens (NWA); empty for an authorization URL, where the
    wallet chooses. ``isolated``: the app asks for a balance of its own (Alby Hub's
    sub-wallets); nwcd has none, so it can only be shown to the operator.
    """

    app_pubkey: PublicKey
    name: str | None = None
    relays: tuple[str, ...] = ()
    methods: frozenset[str] | None = None
    notification_types: frozenset[str] = frozenset()
    budget_msat: int | None = None
    budget_period: BudgetPeriod = BudgetPeriod.NEVER
    expires_at: int | None = None
    isolated: bool = False
    metadata: Mapping[str, Any] | None = None
    return_to: str | None = None
    icon: str | None = None


def parse_nwa_uri(text: str, *, now: int) -> AppRequest:
    """Read a ``nostr+walletauth://`` URI (``now``: Unix seconds, for the expiry check).

    Raises:
        AppRequestError: not an NWA URI, or a field is missing or wrong (the message
            names it).
    """
    if not isinstance(text, str):
        raise AppRequestError("an NWA URI is a string")
    text = text.strip()
    if len(text) > MAX_REQUEST_CHARS:
        raise AppRequestError(f"the URI is longer than {MAX_REQUEST_CHARS} characters")
    scheme, sep, rest = text.partition(":")
    if not sep or not _NWA_SCHEME.fullmatch(scheme):
        raise AppRequestError(f"an NWA URI starts with {NWA_SCHEME}://, not {text[:_SHOWN]!r}")
    pubkey, _, query = rest.removeprefix("//").partition("?")
    try:
        values = parse_qs(
            query.partition("#")[0], keep_blank_values=True, max_num_fields=_MAX_FIELDS
        )
    except ValueError:
        raise AppRequestError(f"the URI has more than {_MAX_FIELDS} fields") from None
    relays = _relays(values.get("relay", []))
    if not relays:
        raise AppRequestError(
            "the URI names no relay (relay=wss://...): the app waits there for the wallet"
        )
    methods = _methods(values)
    if methods is None:
        raise AppRequestError("the URI names no methods (request_methods=...)")
    return _request(pubkey.rstrip("/"), values, relays, methods, now)


def parse_authorization_query(params: Mapping[str, str | Sequence[str]], *, now: int) -> AppRequest:
    """Read the query of an authorization URL (``/apps/new?pubkey=...&name=...``).

    ``params`` maps each key to its value or values (a multidict's ``items()`` may repeat
    keys). No ``request_methods``: every method, as in Alby Hub. ``relay`` is ignored:
    the wallet chooses its relays.

    Raises:
        AppRequestError: no pubkey, or a field is wrong (the message names it).
    """
    values: dict[str, list[str]] = {}
    for key, value in params.items():
        found = [value] if isinstance(value, str) else list(value)
        if not all(isinstance(v, str) for v in found):
            raise AppRequestError(f"{key} must be text")
        values.setdefault(key, []).extend(found)
    pubkey = _single(values, "pubkey")
    if pubkey is None:
        raise AppRequestError("the request has no pubkey (the app's public key, 64 hex)")
    return _request(pubkey, values, (), _methods(values), now)


def format_nwa_uri(request: AppRequest) -> str:
    """The NWA URI of ``request``, as the Alby SDK writes it (spaces as ``%20``).

    Raises:
        ValueError: the request has no relay or names no methods (an NWA URI needs both).
    """
    if not request.relays or request.methods is None:
        raise ValueError("an NWA URI needs relays and methods")
    pairs = [("request_methods", " ".join(m for m in _KNOWN_METHODS if m in request.methods))]
    for key, value in (("name", request.name), ("icon", request.icon)):
        if value:
            pairs.append((key, value))
    if request.return_to:
        pairs.append(("return_to", request.return_to))
    if request.notification_types:
        pairs.append(("notification_types", " ".join(sorted(request.notification_types))))
    if request.budget_msat is not None:
        pairs.append(("max_amount", str(request.budget_msat)))
        pairs.append(("budget_renewal", request.budget_period.value))
    if request.expires_at is not None:
        pairs.append(("expires_at", str(request.expires_at)))
    if request.isolated:
        pairs.append(("isolated", "true"))
    if request.metadata is not None:
        pairs.append(("metadata", metadata_text(request.metadata)))
    pairs += [("relay", relay) for relay in request.relays]
    return f"{NWA_SCHEME}://{request.app_pubkey.hex}?{urlencode(pairs, quote_via=quote)}"


# -- fields ------------------------------------------------------------------------------------


def _request(
    pubkey: str,
    values: Mapping[str, list[str]],
    relays: tuple[str, ...],
    methods: frozenset[str] | None,
    now: int,
) -> AppRequest:
    budget = _whole(values, "max_amount", 1, MAX_AMOUNT_MSAT, "msat")
    if budget is None and _single(values, "budget") is not None:
        # The older draft's "budget" is not read: ignoring it would grant no budget at all.
        raise AppRequestError(
            "the request gives its budget as 'budget' (an older draft), which nwcd does not"
            " read: ask the app for max_amount (msat) and budget_renewal"
        )
    return AppRequest(
        app_pubkey=_pubkey(pubkey),
        name=_name(values),
        relays=relays,
        methods=methods,
        notification_types=_notification_types(values),
        budget_msat=budget,
        budget_period=_period(values) if budget is not None else BudgetPeriod.NEVER,
        expires_at=_expiry(values, now),
        isolated=_isolated(values),
        metadata=_metadata(values),
        return_to=_link(values, "return_to", web_only=False),
        icon=_link(values, "icon", web_only=True),
    )


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _single(values: Mapping[str, list[str]], key: str) -> str | None:
    """One field's value, stripped (None: absent or blank); two different ones are an error."""
    found = list(dict.fromkeys(v.strip() for v in values.get(key, []) if v.strip()))
    if len(found) > 1:
        raise AppRequestError(f"{key} is given {len(found)} times, with different values")
    return found[0] if found else None


def _words(values: Mapping[str, list[str]], keys: Iterable[str]) -> list[str]:
    """Space-separated words of ``keys`` (commas too, as some apps write lists)."""
    return [
        word
        for key in keys
        for value in values.get(key, [])
        for word in value.replace(",", " ").split()
    ]


def _pubkey(text: str) -> PublicKey:
    if not text:
        raise AppRequestError("the app's pubkey is missing")
    try:
        return PublicKey.parse(text.strip().lower())
    except InvalidKey as exc:
        raise AppRequestError(f"bad app pubkey {_shown(text)}: {exc}") from None


def _name(values: Mapping[str, list[str]]) -> str | None:
    name = _single(values, "name")
    if name is None:
        return None
    try:
        return check_name(name)
    except ValueError as exc:
        raise AppRequestError(f"the app's name {_shown(name)}: {exc}") from None


def _relays(found: Sequence[str]) -> tuple[str, ...]:
    relays = tuple(dict.fromkeys(r.strip() for r in found if r.strip()))
    if len(relays) > MAX_APP_RELAYS:
        raise AppRequestError(f"the app names {len(relays)} relays; at most {MAX_APP_RELAYS}")
    for relay in relays:
        if len(relay) > MAX_URL_CHARS:
            raise AppRequestError(
                f"relay {_shown(relay)} is longer than {MAX_URL_CHARS} characters"
            )
        try:
            check_relay(relay)
        except InvalidUri as exc:
            raise AppRequestError(str(exc)) from None
    return relays


def _methods(values: Mapping[str, list[str]]) -> frozenset[str] | None:
    """The methods asked for (None: none named); unknown names are refused, all listed."""
    words = _words(values, _METHOD_KEYS)
    if not words:
        return None
    unknown = sorted(set(words) - set(_KNOWN_METHODS))
    if unknown:
        raise AppRequestError(
            f"the app asks for {'a method' if len(unknown) == 1 else 'methods'} nwcd does"
            f" not know: {', '.join(unknown)} (known: {', '.join(_KNOWN_METHODS)})"
        )
    return frozenset(words)


def _notification_types(values: Mapping[str, list[str]]) -> frozenset[str]:
    words = frozenset(_words(values, ("notification_types",)))
    unknown = sorted(words - KNOWN_NOTIFICATION_TYPES)
    if unknown:
        raise AppRequestError(
            f"the app asks for notifications nwcd does not send: {', '.join(unknown)}"
            f" (it sends: {', '.join(sorted(KNOWN_NOTIFICATION_TYPES))})"
        )
    return words


def _whole(
    values: Mapping[str, list[str]], key: str, low: int, high: int, unit: str, hint: str = ""
) -> int | None:
    """A whole number from ``low`` to ``high`` (plain digits: no sign, point or exponent)."""
    text = _single(values, key)
    if text is None:
        return None
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(high))
    if not digits or not low <= int(text) <= high:
        raise AppRequestError(
            f"{key} must be a whole number of {unit} from {low} to {high}{hint}, not {_shown(text)}"
        )
    return int(text)


def _period(values: Mapping[str, list[str]]) -> BudgetPeriod:
    """``budget_renewal``; none given: the budget never renews (as Alby Hub reads it)."""
    text = _single(values, "budget_renewal")
    if text is None:
        return BudgetPeriod.NEVER
    try:
        return BudgetPeriod(text.lower())
    except ValueError:
        raise AppRequestError(
            f"budget_renewal must be one of {', '.join(p.value for p in BudgetPeriod)},"
            f" not {_shown(text)}"
        ) from None


def _expiry(values: Mapping[str, list[str]], now: int) -> int | None:
    expires = _whole(
        values, "expires_at", 1, MAX_UNIX_TIME, "Unix seconds", " (seconds, not milliseconds)"
    )
    if expires is not None and expires <= now:
        when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise AppRequestError(f"the app asks for a connection that expired already ({when})")
    return expires


def _isolated(values: Mapping[str, list[str]]) -> bool:
    text = _single(values, "isolated")
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise AppRequestError(f"isolated must be true or false, not {_shown(text)}")
    return text.lower() == "true"


def _metadata(values: Mapping[str, list[str]]) -> Mapping[str, Any] | None:
    text = _single(values, "metadata")
    if text is None:
        return None
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError):
        raise AppRequestError("metadata must be JSON (URL-encoded)") from None
    if not isinstance(metadata, dict):
        raise AppRequestError("metadata must be a JSON object")
    size = len(metadata_text(metadata))
    if size > MAX_METADATA_CHARS:
        raise AppRequestError(
            f"metadata is {size} characters of JSON; at most {MAX_METADATA_CHARS}"
        )
    return metadata


def _link(values: Mapping[str, list[str]], key: str, *, web_only: bool) -> str | None:
    """``icon``: an http(s) URL. ``return_to``: an http(s) URL or an app's own scheme
    (``myapp://...``), never one a browser runs or reads locally (``javascript:``,
    ``data:``...): the console may send the operator's browser there."""
    text = _single(values, key)
    if text is None:
        return None
    if len(text) > MAX_URL_CHARS:
        raise AppRequestError(f"{key} is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(text)
        web = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        raise AppRequestError(f"{key} {_shown(text)} is not a URL") from None
    app = parts.scheme not in ("", "http", "https", *_UNSAFE_SCHEMES)
    clean = text.isprintable() and not any(ch.isspace() for ch in text)
    if web_only and not (clean and web):
        raise AppRequestError(f"{key} must be an http(s) URL, not {_shown(text)}")
    if not (clean and (web or app)):
        raise AppRequestError(
            f"{key} must be an http(s) URL or an app's link (myapp://...), not {_shown(text)}"
        )
    return text
