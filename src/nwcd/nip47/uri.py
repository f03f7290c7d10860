"""The NWC connection URI.

``nostr+walletconnect://<wallet pubkey hex>?relay=<url>&relay=<url>&secret=<hex>&lud16=<addr>``

``relay`` is required and repeatable (URL-encoded or raw), ``secret`` is the
client's 32-byte secret key (hex), ``lud16`` is optional. The forms
``nostr+walletconnect:``, ``nostrwalletconnect://`` and ``nostrwalletconnect:``
are accepted too, as the Alby JS SDK does. Unknown parameters are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, quote, urlsplit

from nwcd.errors import InvalidKey, InvalidUri
from nwcd.nostr.keys import PublicKey, SecretKey

__all__ = ["SCHEME", "ConnectionUri", "check_relay"]

SCHEME: Final = "nostr+walletconnect"
_SCHEMES: Final = ("nostr+walletconnect", "nostrwalletconnect")
_RELAY_SCHEMES: Final = ("ws", "wss")


def check_relay(url: str) -> str:
    """``url`` if it is a ws:// or wss:// URL with a host.

    Raises:
        InvalidUri: it is not.
    """
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        _ = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:  # e.g. "wss://[::1" (unbalanced IPv6 bracket)
        raise InvalidUri(f"relay {url!r} is not a valid URL") from None
    if parts.scheme not in _RELAY_SCHEMES or not hostname:
        raise InvalidUri(f"relay {url!r} is not a ws:// or wss:// URL")
    return url


@dataclass(frozen=True, slots=True)
class ConnectionUri:
    """A parsed connection URI. ``repr`` hides the secret."""

    wallet_pubkey: PublicKey
    relays: tuple[str, ...]
    secret: SecretKey
    lud16: str | None = None

    def __post_init__(self) -> None:
        if not self.relays:
            raise InvalidUri("a connection needs at least one relay")
        for relay in self.relays:
            check_relay(relay)

    @classmethod
    def parse(cls, text: str) -> ConnectionUri:
        """Parse a URI string.

        Raises:
            InvalidUri: wrong scheme, bad pubkey, missing or bad relay or secret.
        """
        if not isinstance(text, str):
            raise InvalidUri("a connection URI is a string")
        scheme, sep, rest = text.strip().partition(":")
        if not sep or scheme.lower() not in _SCHEMES:
            raise InvalidUri(f"the URI must start with {SCHEME}://")
        rest = rest.removeprefix("//")
        pubkey_text, _, query = rest.partition("?")
        pubkey_text = pubkey_text.rstrip("/")
        try:
            wallet_pubkey = PublicKey.parse(pubkey_text)
        except InvalidKey as exc:
            raise InvalidUri(f"bad wallet pubkey: {exc}") from None
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False)
        relays = tuple(params.get("relay", ()))
        if not relays:
            raise InvalidUri("the URI has no relay parameter")
        secrets = params.get("secret", ())
        if len(secrets) != 1:
            raise InvalidUri("the URI needs exactly one secret parameter")
        try:
            secret = SecretKey.parse(secrets[0])
        except InvalidKey as exc:
            raise InvalidUri(f"bad secret: {exc}") from None
        lud16s = params.get("lud16", ())
        lud16 = lud16s[0] if lud16s and lud16s[0] else None
        return cls(wallet_pubkey, relays, secret, lud16)

    def format(self) -> str:
        """The URI string, relays URL-encoded (as the spec example does)."""
        query = [f"relay={quote(relay, safe='')}" for relay in self.relays]
        query.append(f"secret={self.secret.reveal_hex()}")
        if self.lud16:
            query.append(f"lud16={quote(self.lud16, safe='@')}")
        return f"{SCHEME}://{self.wallet_pubkey.hex}?{'&'.join(query)}"

    @property
    def client_pubkey(self) -> PublicKey:
        """The app's public key (derived from ``secret``)."""
        return self.secret.public_key

    def __repr__(self) -> str:
        return (
            f"ConnectionUri(wallet_pubkey={self.wallet_pubkey.hex}, relays={self.relays!r}, "
            f"secret=<hidden>, lud16={self.lud16!r})"
        )
