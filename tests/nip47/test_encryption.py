"""Encryption negotiation (the ``encryption`` tag) and sealing/opening content with it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nwcd.errors import DecryptionError, ErrorCode, RequestError
from nwcd.nip47.encryption import SUPPORTED, Scheme, open_content, scheme_of, seal_content
from nwcd.nostr.event import Event, sign_event
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind

CLIENT = SecretKey.generate()
WALLET = SecretKey.generate()


def request_with(tags: list[list[str]]) -> Event:
    return sign_event(CLIENT, kind=Kind.NWC_REQUEST, content="x", tags=tags, created_at=1)


def test_preference_order() -> None:
    assert SUPPORTED == (Scheme.NIP44_V2, Scheme.NIP04)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], Scheme.NIP04),
        ([["p", WALLET.public_key.hex]], Scheme.NIP04),
        ([["encryption", "nip44_v2"]], Scheme.NIP44_V2),
        ([["encryption", "nip04"]], Scheme.NIP04),
        ([["encryption", "nip44_v2 nip04"]], Scheme.NIP44_V2),
        ([["encryption", "nip04 nip44_v2"]], Scheme.NIP44_V2),
        ([["encryption", "  nip44_v2  "]], Scheme.NIP44_V2),
        ([["encryption", "nip99 nip04"]], Scheme.NIP04),
        ([["encryption"]], Scheme.NIP04),  # a tag without a value names nothing
        ([["encryption", "nip04"], ["encryption", "nip44_v2"]], Scheme.NIP04),  # first tag
    ],
)
def test_scheme_of(tags: list[list[str]], expected: Scheme) -> None:
    assert scheme_of(request_with(tags)) is expected


@pytest.mark.parametrize("value", ["nip44", "nip44_v3", "NIP44_V2", "", "nip04,nip44_v2"])
def test_unknown_scheme_is_unsupported_encryption(value: str) -> None:
    with pytest.raises(RequestError) as info:
        scheme_of(request_with([["encryption", value]]))
    assert info.value.code is ErrorCode.UNSUPPORTED_ENCRYPTION
    assert "nip44_v2 nip04" in info.value.message


def test_unsupported_message_truncates_long_values() -> None:
    with pytest.raises(RequestError) as info:
        scheme_of(request_with([["encryption", "z" * 1000]]))
    assert "z" * 41 not in info.value.message


@pytest.mark.parametrize("scheme", list(Scheme))
@pytest.mark.parametrize("plaintext", ["x", '{"method":"get_info"}', "ünïcødé ⚡" * 50])
def test_seal_open_round_trip(scheme: Scheme, plaintext: str) -> None:
    payload = seal_content(CLIENT, WALLET.public_key, scheme, plaintext)
    assert payload != plaintext
    assert open_content(WALLET, CLIENT.public_key, scheme, payload) == plaintext
    # Symmetric: the sender can open its own message too.
    assert open_content(CLIENT, WALLET.public_key, scheme, payload) == plaintext


def test_payload_shapes_differ_by_scheme() -> None:
    nip04_payload = seal_content(CLIENT, WALLET.public_key, Scheme.NIP04, "hello")
    nip44_payload = seal_content(CLIENT, WALLET.public_key, Scheme.NIP44_V2, "hello")
    assert "?iv=" in nip04_payload
    assert "?iv=" not in nip44_payload


@pytest.mark.parametrize("scheme", list(Scheme))
def test_opening_with_the_wrong_scheme_fails(scheme: Scheme) -> None:
    payload = seal_content(CLIENT, WALLET.public_key, scheme, '{"method":"get_balance"}')
    other = next(s for s in Scheme if s is not scheme)
    with pytest.raises(DecryptionError):
        open_content(WALLET, CLIENT.public_key, other, payload)


def test_nip44_with_the_wrong_key_fails() -> None:
    payload = seal_content(CLIENT, WALLET.public_key, Scheme.NIP44_V2, "secret")
    with pytest.raises(DecryptionError):
        open_content(SecretKey.generate(), CLIENT.public_key, Scheme.NIP44_V2, payload)


@settings(max_examples=25)
@given(st.sampled_from(list(Scheme)), st.text(min_size=1, max_size=300))
def test_round_trip_property(scheme: Scheme, plaintext: str) -> None:
    payload = seal_content(WALLET, CLIENT.public_key, scheme, plaintext)
    assert open_content(CLIENT, WALLET.public_key, scheme, payload) == plaintext
