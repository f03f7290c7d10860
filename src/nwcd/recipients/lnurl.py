"""LNURL-pay without I/O: recipient forms, the server's answers and the checks a wallet owes.

What a user may type as a recipient: a lightning address (LUD-16), a bech32 ``lnurl1...``
(LUD-01), an ``lnurlp://`` or ``https://`` LNURL-pay URL (LUD-17), a BOLT-11 invoice or a
node public key (keysend). The pay flow (LUD-06) is two GETs; this module validates the
first answer (:func:`parse_pay_params`), builds the second request (:func:`callback_url`,
with LUD-12 comments and NIP-57 zaps) and checks the invoice it returns
(:func:`check_invoice`): the wallet, not the server, makes sure that the invoice is for the
asked amount and commits to the metadata the user saw. Success actions are LUD-09/10.
Specs: https://github.com/lnurl/luds
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import coincurve
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nwcd import bech32, bolt11
from nwcd.clock import SYSTEM_CLOCK
from nwcd.errors import InvalidInvoice
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.zap import is_nostr_pubkey

__all__ = [
    "MAX_COMMENT_LENGTH",
    "AesAction",
    "InvoiceTarget",
    "KeysendTarget",
    "LnurlTarget",
    "MessageAction",
    "PayParams",
    "SuccessAction",
    "Target",
    "UrlAction",
    "aes_action",
    "callback_url",
    "check_amount",
    "check_invoice",
    "check_pay_answer",
    "check_url",
    "decode_lnurl",
    "description_hash",
    "encode_lnurl",
    "is_local_host",
    "is_node_pubkey",
    "parse_pay_params",
    "parse_success_action",
    "parse_target",
    "reveal",
    "server_reason",
]

# Longer comments are refused whatever the server allows: they end up in URLs and logs.
MAX_COMMENT_LENGTH: Final = 2000
_MAX_TEXT: Final = 144  # LUD-09/10: message and description
_MAX_CIPHERTEXT: Final = 4096  # LUD-10: characters of base64
_IV_LENGTH: Final = 24  # LUD-10: base64 of 16 bytes
_MAX_REASON: Final = 200
# LUD-16: the name part of a lightning address.
_NAME_RE: Final = re.compile(r"[a-z0-9\-_.+]+")
_HOST_RE: Final = re.compile(r"(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)*[a-z0-9\-]{1,63}")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_INVOICE_RE: Final = re.compile(r"ln(?:bc|tb|tbs|bcrt|sb)[0-9a-z]*1[0-9a-z]+")
_NODE_RE: Final = re.compile(r"0[23][0-9a-f]{64}")


# --- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceTarget:
    """A BOLT-11 invoice to pay as is."""

    invoice: str


@dataclass(frozen=True, slots=True)
class KeysendTarget:
    """A node to pay by keysend: its 33-byte compressed public key in hex."""

    pubkey: str


@dataclass(frozen=True, slots=True)
class LnurlTarget:
    """An LNURL-pay endpoint; ``identifier`` is the lightning address it came from, if any."""

    url: str
    identifier: str | None = None


Target = InvoiceTarget | KeysendTarget | LnurlTarget


def is_node_pubkey(text: str) -> bool:
    """Whether ``text`` is a Lightning node id: a compressed secp256k1 point, lowercase hex."""
    if not _NODE_RE.fullmatch(text):
        return False
    try:
        coincurve.PublicKey(bytes.fromhex(text))
    except ValueError:
        return False
    return True


def is_local_host(host: str) -> bool:
    """Loopback and Tor hosts, where TLS adds nothing and plain ``http`` is allowed."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".onion"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    """Refuse URLs a wallet must not call: anything but ``https``, bar local and Tor hosts.

    Raises:
        RecipientError: not an absolute http(s) URL, or ``http`` to a public host.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise RecipientError(f"{url!r} is not a valid URL") from None
    if not host:
        raise RecipientError(f"{url!r} is not an absolute URL")
    if parts.scheme == "https" or (parts.scheme == "http" and is_local_host(host)):
        return
    if parts.scheme == "http":
        raise RecipientError(f"{url!r} is plain http: LNURL servers must use https")
    raise RecipientError(f"{url!r} is not an https URL")


def _scheme_for(host: str) -> str:
    return "http" if is_local_host(host) else "https"


def decode_lnurl(text: str) -> str:
    """The URL inside a bech32 ``lnurl1...`` string (LUD-01; any case, no length limit).

    Raises:
        RecipientError: not bech32, another prefix, or not a UTF-8 text.
    """
    text = text.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :]
    try:
        hrp, data, _ = bech32.decode(text, max_length=None)
        raw = bytes(bech32.convert_bits(data, 5, 8, pad=False))
    except bech32.Bech32Error as exc:
        raise RecipientError(f"not a valid LNURL: {exc}") from None
    if hrp != "lnurl":
        raise RecipientError(f"not an LNURL: the prefix is {hrp!r}, not 'lnurl'")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipientError("not a valid LNURL: the URL inside is not UTF-8") from None


def encode_lnurl(url: str) -> str:
    """The bech32 ``lnurl1...`` form of ``url`` (lower case, as NIP-57's ``lnurl`` tag)."""
    return bech32.encode("lnurl", bech32.convert_bits(url.encode("utf-8"), 8, 5, pad=True))


def _address_target(text: str) -> LnurlTarget:
    """``name@host[:port]`` (LUD-16), names and hosts folded to lower case."""
    name, _, hostport = text.lower().rpartition("@")
    if not _NAME_RE.fullmatch(name):
        raise RecipientError(
            f"{text!r} is not a lightning address: the name may hold only a-z 0-9 - _ . +"
        )
    host, port = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise RecipientError(f"{text!r} is not a lightning address: bad host")
        valid_host = is_local_host(host)
        host_part = f"[{host}]"
    else:
        if ":" in hostport:
            host, port = hostport.split(":", 1)
        valid_host = (bool(_HOST_RE.fullmatch(host)) and "." in host) or host == "localhost"
        host_part = host
    if not valid_host or (port is not None and not _PORT_RE.fullmatch(port)):
        raise RecipientError(f"{text!r} is not a lightning address: bad host")
    netloc = host_part if port is None else f"{host_part}:{port}"
    url = f"{_scheme_for(host)}://{netloc}/.well-known/lnurlp/{name}"
    return LnurlTarget(url=url, identifier=f"{name}@{netloc}")


def _url_target(url: str) -> LnurlTarget:
    """An LNURL-pay URL; a LUD-01 fallback link ``?lightning=lnurl1...`` is unwrapped."""
    lower = url.lower()
    if lower.startswith("lnurlp://"):  # LUD-17
        host = urlsplit("https://" + url[len("lnurlp://") :]).hostname or ""
        url = f"{_scheme_for(host)}://{url[len('lnurlp://') :]}"
    else:
        for key, value in parse_qsl(urlsplit(url).query):
            if key.lower() == "lightning" and value.lower().startswith("lnurl1"):
                url = decode_lnurl(value)
                break
    check_url(url)
    return LnurlTarget(url=url)


def parse_target(text: str) -> Target:
    """What a recipient string means (see the module docstring for the accepted forms).

    Raises:
        RecipientError: none of the forms, or a malformed one.
    """
    text = text.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :].lstrip("/")
    lower = text.lower()
    if lower.startswith("lnurl1"):
        return _url_target(decode_lnurl(text))
    if lower.startswith(("lnurlp://", "https://", "http://")):
        return _url_target(text)
    if _INVOICE_RE.fullmatch(lower):
        try:
            bolt11.decode(text)
        except InvalidInvoice as exc:
            raise RecipientError(f"not a valid invoice: {exc}") from None
        return InvoiceTarget(invoice=text)
    if _NODE_RE.fullmatch(lower):
        if not is_node_pubkey(lower):
            raise RecipientError(f"{text!r} is not a valid node public key")
        return KeysendTarget(pubkey=lower)
    if "@" in text:
        return _address_target(text)
    raise RecipientError(f"{text!r} is not a lightning address, LNURL, invoice or node public key")


# --- the LNURL-pay answers -----------------------------------------------------------------------


def server_reason(data: object) -> str | None:
    """The reason of a ``{"status": "ERROR", "reason": ...}`` answer, tamed for display."""
    if not isinstance(data, dict) or str(data.get("status", "")).upper() != "ERROR":
        return None
    reason = data.get("reason")
    text = reason if isinstance(reason, str) else "no reason given"
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return (text[:_MAX_REASON] + "…") if len(text) > _MAX_REASON else text or "no reason given"


def _refused(data: object) -> None:
    reason = server_reason(data)
    if reason is not None:
        raise RecipientError(f"the recipient's LNURL server refused: {reason}")


def _whole_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class PayParams:
    """A validated LUD-06 ``payRequest``; zaps need ``allows_nostr`` and ``nostr_pubkey``."""

    callback: str
    min_sendable_msat: int
    max_sendable_msat: int
    metadata: str
    comment_allowed: int = 0
    allows_nostr: bool = False
    nostr_pubkey: str | None = None

    @property
    def description(self) -> str | None:
        """The metadata's ``text/plain`` entry: what the user is paying for."""
        for entry in json.loads(self.metadata):
            if len(entry) >= 2 and entry[0] == "text/plain" and isinstance(entry[1], str):
                return str(entry[1])
        return None


def _check_metadata(metadata: object) -> str:
    if not isinstance(metadata, str):
        raise RecipientError("the LNURL-pay metadata is not a string")
    try:
        entries = json.loads(metadata)
    except ValueError:
        raise RecipientError("the LNURL-pay metadata is not JSON") from None
    if not isinstance(entries, list) or not all(
        isinstance(entry, list) and entry and isinstance(entry[0], str) for entry in entries
    ):
        raise RecipientError("the LNURL-pay metadata is not an array of [type, value] arrays")
    return metadata


def parse_pay_params(data: object) -> PayParams:
    """Validate the first LNURL-pay answer (LUD-06, with LUD-12 and NIP-57 fields).

    A server that sets ``allowsNostr`` with a malformed ``nostrPubkey`` takes plain payments
    but no zaps (NIP-57: use the key only when it is a valid public key).

    Raises:
        RecipientError: an ``ERROR`` status (its reason), another tag, a missing or
            malformed field, amounts out of order, a callback that fails :func:`check_url`.
    """
    _refused(data)
    if not isinstance(data, dict):
        raise RecipientError("the LNURL-pay answer is not a JSON object")
    if data.get("tag") != "payRequest":
        raise RecipientError(f"not an LNURL-pay endpoint (tag {data.get('tag')!r})")
    callback = data.get("callback")
    if not isinstance(callback, str):
        raise RecipientError("the LNURL-pay answer has no callback URL")
    check_url(callback)
    low = _whole_number(data.get("minSendable"))
    high = _whole_number(data.get("maxSendable"))
    if low is None or high is None:
        raise RecipientError("the LNURL-pay answer lacks whole minSendable and maxSendable")
    if not 1 <= low <= high:
        raise RecipientError(
            f"the LNURL-pay range is invalid: minSendable {low}, maxSendable {high}"
        )
    metadata = _check_metadata(data.get("metadata"))
    comment_allowed = _whole_number(data.get("commentAllowed", 0))
    if comment_allowed is None or comment_allowed < 0:
        raise RecipientError("the LNURL-pay commentAllowed is not a non-negative integer")
    pubkey = data.get("nostrPubkey")
    zaps = is_nostr_pubkey(pubkey) and data.get("allowsNostr") is True
    nostr_pubkey = pubkey if zaps and isinstance(pubkey, str) else None
    return PayParams(
        callback=callback,
        min_sendable_msat=low,
        max_sendable_msat=high,
        metadata=metadata,
        comment_allowed=comment_allowed,
        allows_nostr=nostr_pubkey is not None,
        nostr_pubkey=nostr_pubkey,
    )


def check_amount(params: PayParams, amount_msat: int) -> None:
    """Refuse an amount outside the server's range.

    Raises:
        RecipientError: below ``minSendable`` or above ``maxSendable``.
    """
    low, high = params.min_sendable_msat, params.max_sendable_msat
    if not low <= amount_msat <= high:
        raise RecipientError(
            f"{amount_msat} msat is outside what the recipient accepts ({low} to {high} msat)"
        )


def check_comment(params: PayParams, comment: str) -> None:
    """Refuse a comment the server does not take (LUD-12).

    Raises:
        RecipientError: the server takes no comments, or fewer characters.
    """
    if params.comment_allowed == 0:
        raise RecipientError("the recipient's server does not accept comments")
    limit = min(params.comment_allowed, MAX_COMMENT_LENGTH)
    if len(comment) > limit:
        raise RecipientError(
            f"the comment has {len(comment)} characters, the recipient accepts {limit}"
        )


def callback_url(
    params: PayParams,
    amount_msat: int,
    *,
    comment: str | None = None,
    zap_request: str | None = None,
    lnurl: str | None = None,
) -> str:
    """The second LNURL-pay request: the callback with ``amount`` (and ``comment``, ``nostr``,
    ``lnurl``) appended; the callback's own query is kept byte for byte.

    Raises:
        RecipientError: the amount is out of range, the comment is refused (LUD-12: the
            server allows none, or fewer characters), or the server takes no zaps.
    """
    check_amount(params, amount_msat)
    extra: list[tuple[str, str]] = [("amount", str(amount_msat))]
    if comment:
        check_comment(params, comment)
        extra.append(("comment", comment))
    if zap_request is not None:
        if not params.allows_nostr:
            raise RecipientError("the recipient's server does not support zaps")
        extra.append(("nostr", zap_request))
    if lnurl is not None:
        extra.append(("lnurl", lnurl))
    parts = urlsplit(params.callback)
    query = urlencode(extra, quote_via=quote)
    query = f"{parts.query}&{query}" if parts.query else query
    return parts._replace(query=query, fragment="").geturl()


def description_hash(text: str) -> str:
    """The hex ``sha256`` an invoice's ``h`` field must hold for ``text``: the pay
    metadata (LUD-06), or a zap request's JSON exactly as sent (NIP-57)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_invoice(
    invoice: str,
    *,
    amount_msat: int,
    description_hash: str,
    network: bolt11.Network | None = None,
    now: float | None = None,
) -> bolt11.Invoice:
    """Decode the server's invoice and check what LUD-06 asks of the wallet.

    The amount must be exactly the one asked for, the description hash the expected one
    (``sha256`` of the metadata, or of the zap request for a zap), the network the wallet's,
    and the invoice not expired at ``now`` (default: the system clock).

    Raises:
        RecipientError: the first failed check, as a sentence.
    """
    try:
        decoded = bolt11.decode(invoice)
    except InvalidInvoice as exc:
        raise RecipientError(f"the recipient's server sent an invalid invoice: {exc}") from None
    if network is not None and decoded.network != network:
        raise RecipientError(
            f"the invoice is for the network {decoded.network.value!r}, not {network.value!r}"
        )
    if decoded.amount_msat is None:
        raise RecipientError("the recipient's invoice has no amount")
    if decoded.amount_msat != amount_msat:
        raise RecipientError(
            f"the recipient's invoice is for {decoded.amount_msat} msat, not {amount_msat}"
        )
    if decoded.description_hash is None:
        raise RecipientError("the recipient's invoice has no description hash")
    if decoded.description_hash != description_hash.lower():
        raise RecipientError(
            "the recipient's invoice does not commit to the expected description hash"
        )
    if decoded.is_expired(int(SYSTEM_CLOCK.now() if now is None else now)):
        raise RecipientError("the recipient's invoice has already expired")
    return decoded


def check_pay_answer(
    data: object,
    *,
    params: PayParams,
    amount_msat: int,
    description_hash: str,
    network: bolt11.Network | None = None,
    now: float | None = None,
) -> tuple[bolt11.Invoice, SuccessAction | None]:
    """Validate the callback's answer ``{"pr", "successAction", "routes"}`` (LUD-06 step 5).

    The invoice goes through :func:`check_invoice`; the success action, checked against
    the callback's domain, through :func:`parse_success_action`.

    Raises:
        RecipientError: an ``ERROR`` status (its reason), no invoice, or a failed check.
    """
    _refused(data)
    if not isinstance(data, dict):
        raise RecipientError("the LNURL-pay callback's answer is not a JSON object")
    invoice = data.get("pr")
    if not isinstance(invoice, str) or not invoice:
        raise RecipientError("the LNURL-pay callback's answer has no invoice")
    decoded = check_invoice(
        invoice,
        amount_msat=amount_msat,
        description_hash=description_hash,
        network=network,
        now=now,
    )
    action = parse_success_action(data.get("successAction"), callback=params.callback)
    return decoded, action


# --- success actions (LUD-09, LUD-10) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageAction:
    """Text to show once paid."""

    message: str


@dataclass(frozen=True, slots=True)
class UrlAction:
    """A link to offer once paid (same host as the callback)."""

    description: str
    url: str


@dataclass(frozen=True, slots=True)
class AesAction:
    """A secret only the payment preimage opens (AES-256-CBC, base64 fields)."""

    description: str
    ciphertext: str
    iv: str


SuccessAction = MessageAction | UrlAction | AesAction


def _text(data: dict[str, object], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise RecipientError(f"the success action's {key!r} is not a string")
    if len(value) > limit:
        raise RecipientError(f"the success action's {key!r} is longer than {limit} characters")
    return value


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RecipientError(f"the success action's {what} is not base64") from None


def parse_success_action(data: object, *, callback: str | None = None) -> SuccessAction | None:
    """Validate a ``successAction``; None when the server sent none.

    LUD-09: a wallet must not pay when it cannot show the action, so unknown tags fail;
    a ``url`` action must be on the callback's host (checked when ``callback`` is given).

    Raises:
        RecipientError: unknown tag, missing field, over-long text, bad base64 or URL.
    """
    if data is None:
        return None
    if not isinstance(data, dict):
        raise RecipientError("the success action is not a JSON object")
    tag = data.get("tag")
    if tag == "message":
        return MessageAction(_text(data, "message", _MAX_TEXT))
    if tag == "url":
        url = _text(data, "url", MAX_COMMENT_LENGTH)
        check_url(url)
        if callback is not None and urlsplit(url).hostname != urlsplit(callback).hostname:
            raise RecipientError("the success action's url is not on the callback's domain")
        return UrlAction(_text(data, "description", _MAX_TEXT), url)
    if tag == "aes":
        description = _text(data, "description", _MAX_TEXT)
        ciphertext = _text(data, "ciphertext", _MAX_CIPHERTEXT)
        iv = _text(data, "iv", _IV_LENGTH)
        if len(_base64(iv, "iv")) != 16:
            raise RecipientError("the success action's iv is not 16 bytes")
        raw = _base64(ciphertext, "ciphertext")
        if not raw or len(raw) % 16:
            raise RecipientError("the success action's ciphertext is not whole AES blocks")
        return AesAction(description, ciphertext, iv)
    raise RecipientError(f"unsupported success action {tag!r}: not paying blind")


def _key(preimage_hex: str) -> bytes:
    try:
        key = bytes.fromhex(preimage_hex)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise RecipientError("the payment preimage is not 32 bytes of hex")
    return key


def aes_action(
    description: str, plaintext: str, preimage_hex: str, iv: bytes | None = None
) -> AesAction:
    """Encrypt ``plaintext`` under the preimage, as a server does (LUD-10)."""
    iv = os.urandom(16) if iv is None else iv
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_key(preimage_hex)), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return AesAction(
        description, base64.b64encode(ciphertext).decode("ascii"), base64.b64encode(iv).decode()
    )


def reveal(action: SuccessAction, preimage_hex: str) -> dict[str, str]:
    """What to show once paid; an ``aes`` action is decrypted with the preimage.

    Raises:
        RecipientError: the preimage does not open the ciphertext into UTF-8 text.
    """
    if isinstance(action, MessageAction):
        return {"tag": "message", "message": action.message}
    if isinstance(action, UrlAction):
        return {"tag": "url", "description": action.description, "url": action.url}
    decryptor = Cipher(
        algorithms.AES(_key(preimage_hex)), modes.CBC(base64.b64decode(action.iv))
    ).decryptor()
    padded = decryptor.update(base64.b64decode(action.ciphertext)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plaintext = (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except ValueError:
        raise RecipientError("the payment preimage does not open the success action") from None
    return {"tag": "aes", "description": action.description, "plaintext": plaintext}
