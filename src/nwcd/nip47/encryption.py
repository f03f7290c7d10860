"""Which encryption a NIP-47 event uses, and sealing/opening content with it.

A request names its scheme in an ``encryption`` tag; no tag means NIP-04
(backward compatibility). The response uses the request's scheme. An unknown
scheme is ``UNSUPPORTED_ENCRYPTION``.
"""

from __future__ import annotations

from enum import StrEnum

from nwcd.errors import ErrorCode, RequestError
from nwcd.nostr import nip04, nip44
from nwcd.nostr.event import Event
from nwcd.nostr.keys import PublicKey, SecretKey

__all__ = ["SUPPORTED", "Scheme", "open_content", "scheme_of", "seal_content"]


class Scheme(StrEnum):
    """Encryption schemes, in order of preference."""

    NIP44_V2 = "nip44_v2"
    NIP04 = "nip04"


SUPPORTED: tuple[Scheme, ...] = (Scheme.NIP44_V2, Scheme.NIP04)


def scheme_of(event: Event) -> Scheme:
    """The scheme a request asks for.

    Raises:
        RequestError: ``UNSUPPORTED_ENCRYPTION`` when the tag names no scheme we have.
    """
    tag = event.tag_value("encryption")
    if tag is None:
        return Scheme.NIP04
    offered = tag.split()
    for scheme in SUPPORTED:
        if scheme.value in offered:
            return scheme
    raise RequestError(
        ErrorCode.UNSUPPORTED_ENCRYPTION,
        f"encryption {tag[:40]!r} is not supported; use one of: "
        + " ".join(s.value for s in SUPPORTED),
    )


def seal_content(secret: SecretKey, peer: PublicKey, scheme: Scheme, plaintext: str) -> str:
    """Encrypt ``plaintext`` from ``secret`` to ``peer``."""
    shared = secret.shared_x(peer)
    if scheme is Scheme.NIP44_V2:
        return nip44.encrypt(nip44.conversation_key_from_shared_x(shared), plaintext)
    return nip04.encrypt(shared, plaintext)


def open_content(secret: SecretKey, peer: PublicKey, scheme: Scheme, payload: str) -> str:
    """Decrypt ``payload`` sent by ``peer`` to ``secret``.

    Raises:
        DecryptionError: the payload does not open with this scheme and key.
    """
    shared = secret.shared_x(peer)
    if scheme is Scheme.NIP44_V2:
        return nip44.decrypt(nip44.conversation_key_from_shared_x(shared), payload)
    return nip04.decrypt(shared, payload)
