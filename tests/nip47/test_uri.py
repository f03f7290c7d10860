"""The NWC connection URI: parse/format, the accepted variants, clear errors, rust-nostr interop."""

from __future__ import annotations

from urllib.parse import quote

import nostr_sdk  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.errors import InvalidUri
from nwcd.nip47.uri import SCHEME, ConnectionUri
from nwcd.nostr.keys import PublicKey, SecretKey

# The example of NIP-47 ("Example connection string").
SPEC_EXAMPLE = (
    "nostr+walletconnect://b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
    "?relay=wss%3A%2F%2Frelay.damus.io"
    "&secret=71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"
)
WALLET_HEX = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
SECRET_HEX = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"
WALLET = PublicKey.from_hex(WALLET_HEX)
SECRET = SecretKey.from_hex(SECRET_HEX)
RELAYS = (
    "wss://relay.damus.io",
    "wss://relay.example.com:4443/nwc?token=a&b=c",
    "ws://127.0.0.1:7777",
)


def _uri(query: str, *, scheme: str = "nostr+walletconnect://", pubkey: str = WALLET_HEX) -> str:
    return f"{scheme}{pubkey}?{query}"


def test_spec_example() -> None:
    uri = ConnectionUri.parse(SPEC_EXAMPLE)
    assert uri.wallet_pubkey == WALLET
    assert uri.relays == ("wss://relay.damus.io",)
    assert uri.secret == SECRET
    assert uri.lud16 is None
    assert uri.client_pubkey == SECRET.public_key
    assert uri.format() == SPEC_EXAMPLE


def test_round_trip_with_several_relays_and_lud16() -> None:
    uri = ConnectionUri(WALLET, RELAYS, SECRET, "alice+nwc@getalby.com")
    text = uri.format()
    assert text.startswith(f"{SCHEME}://{WALLET_HEX}?relay=wss%3A%2F%2F")
    # Every relay is fully encoded, so a relay's own query cannot leak into ours.
    assert "token=a" not in text
    assert text.count("relay=") == 3
    parsed = ConnectionUri.parse(text)
    assert parsed == uri
    assert parsed.relays == RELAYS
    assert parsed.lud16 == "alice+nwc@getalby.com"


def test_raw_and_encoded_relays_are_both_accepted() -> None:
    query = f"relay=wss://raw.example&relay={quote('wss://enc.example/x', safe='')}"
    uri = ConnectionUri.parse(_uri(f"{query}&secret={SECRET_HEX}"))
    assert uri.relays == ("wss://raw.example", "wss://enc.example/x")


def test_parameter_order_and_unknown_parameters_do_not_matter() -> None:
    text = _uri(f"secret={SECRET_HEX}&foo=bar&lud16=a%40b.c&relay=wss%3A%2F%2Fr.example&pubkey=x")
    uri = ConnectionUri.parse(text)
    assert uri == ConnectionUri(WALLET, ("wss://r.example",), SECRET, "a@b.c")


def test_empty_lud16_is_none() -> None:
    uri = ConnectionUri.parse(_uri(f"relay=wss://r.example&secret={SECRET_HEX}&lud16="))
    assert uri.lud16 is None
    assert "lud16" not in uri.format()


@pytest.mark.parametrize(
    "scheme",
    [
        "nostr+walletconnect://",
        "nostr+walletconnect:",
        "nostrwalletconnect://",
        "nostrwalletconnect:",
        "NOSTR+WALLETCONNECT://",
        "Nostrwalletconnect://",
    ],
)
def test_alternative_schemes(scheme: str) -> None:
    uri = ConnectionUri.parse(_uri(f"relay=wss://r.example&secret={SECRET_HEX}", scheme=scheme))
    assert uri.wallet_pubkey == WALLET
    # We always write the standard form.
    assert uri.format().startswith(f"nostr+walletconnect://{WALLET_HEX}?")


def test_npub_pubkey_and_nsec_secret() -> None:
    text = _uri(f"relay=wss://r.example&secret={SECRET.reveal_nsec()}", pubkey=WALLET.npub())
    uri = ConnectionUri.parse(text)
    assert uri.wallet_pubkey == WALLET
    assert uri.secret == SECRET
    assert WALLET_HEX in uri.format()


def test_surrounding_whitespace_and_trailing_slash() -> None:
    uri = ConnectionUri.parse(
        f"  {_uri('relay=wss://r.example&secret=' + SECRET_HEX, pubkey=WALLET_HEX + '/')}\n"
    )
    assert uri.wallet_pubkey == WALLET


# --- errors -----------------------------------------------------------------

GOOD_QUERY = f"relay=wss://r.example&secret={SECRET_HEX}"

MALFORMED = {
    "no relay": (_uri(f"secret={SECRET_HEX}"), "no relay"),
    "empty relay": (_uri(f"relay=&secret={SECRET_HEX}"), "relay"),
    "no query": (f"nostr+walletconnect://{WALLET_HEX}", "no relay"),
    "no secret": (_uri("relay=wss://r.example"), "exactly one secret"),
    "two secrets": (_uri(f"{GOOD_QUERY}&secret={'22' * 32}"), "exactly one secret"),
    "short secret": (_uri(f"relay=wss://r.example&secret={SECRET_HEX[:-2]}"), "bad secret"),
    "zero secret": (_uri(f"relay=wss://r.example&secret={'00' * 32}"), "bad secret"),
    "upper-case secret": (_uri(f"relay=wss://r.example&secret={SECRET_HEX.upper()}"), "bad secret"),
    "npub as secret": (_uri(f"relay=wss://r.example&secret={WALLET.npub()}"), "bad secret"),
    "empty secret": (_uri("relay=wss://r.example&secret="), "bad secret"),
    "short pubkey": (_uri(GOOD_QUERY, pubkey=WALLET_HEX[:-1]), "bad wallet pubkey"),
    "no pubkey": (_uri(GOOD_QUERY, pubkey=""), "bad wallet pubkey"),
    "pubkey off curve": (_uri(GOOD_QUERY, pubkey="00" * 32), "bad wallet pubkey"),
    "nsec as pubkey": (_uri(GOOD_QUERY, pubkey=SECRET.reveal_nsec()), "bad wallet pubkey"),
    "https relay": (_uri(f"relay=https://r.example&secret={SECRET_HEX}"), "ws:// or wss://"),
    "relay without scheme": (_uri(f"relay=r.example&secret={SECRET_HEX}"), "ws:// or wss://"),
    "relay without host": (_uri(f"relay=wss://&secret={SECRET_HEX}"), "ws:// or wss://"),
    "relay broken ipv6": (_uri(f"relay=wss://[::1&secret={SECRET_HEX}"), "not a valid URL"),
    "relay bad port": (_uri(f"relay=wss://r.example:99999&secret={SECRET_HEX}"), "valid URL"),
    "relay port not a number": (_uri(f"relay=wss://r.example:ab&secret={SECRET_HEX}"), "valid URL"),
    "second relay bad": (_uri(f"{GOOD_QUERY}&relay=http://x"), "ws:// or wss://"),
    "http scheme": (_uri(GOOD_QUERY, scheme="http://"), "must start with"),
    "nostr scheme": (_uri(GOOD_QUERY, scheme="nostr:"), "must start with"),
    "no scheme": (f"{WALLET_HEX}?{GOOD_QUERY}", "must start with"),
    "empty": ("", "must start with"),
}


@pytest.mark.parametrize(("text", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_uris(text: str, message: str) -> None:
    with pytest.raises(InvalidUri, match=message):
        ConnectionUri.parse(text)


@pytest.mark.parametrize("value", [None, b"nostr+walletconnect://x", 42, [SPEC_EXAMPLE]])
def test_not_a_string(value: object) -> None:
    with pytest.raises(InvalidUri, match="is a string"):
        ConnectionUri.parse(value)  # type: ignore[arg-type]


def test_constructor_checks_relays() -> None:
    with pytest.raises(InvalidUri, match="at least one relay"):
        ConnectionUri(WALLET, (), SECRET)
    with pytest.raises(InvalidUri, match="ws:// or wss://"):
        ConnectionUri(WALLET, ("wss://ok.example", "tcp://bad"), SECRET)


def test_errors_do_not_echo_the_secret() -> None:
    bad = SECRET_HEX[:-2]
    with pytest.raises(InvalidUri) as info:
        ConnectionUri.parse(_uri(f"relay=wss://r.example&secret={bad}"))
    assert bad not in str(info.value)


def test_repr_hides_the_secret() -> None:
    uri = ConnectionUri.parse(SPEC_EXAMPLE)
    for text in (repr(uri), str(uri), f"{uri}", repr([uri])):
        assert SECRET_HEX not in text
        assert SECRET.reveal_nsec() not in text
        assert "<hidden>" in text
        assert WALLET_HEX in text
    assert SECRET_HEX in uri.format()


# --- rust-nostr interop -----------------------------------------------------


@pytest.mark.parametrize("lud16", [None, "alice@getalby.com"])
def test_nostr_sdk_parses_ours(lud16: str | None) -> None:
    relays = ("wss://relay.damus.io", "wss://nos.lol", "ws://127.0.0.1:7777")
    ours = ConnectionUri(WALLET, relays, SECRET, lud16)
    theirs = nostr_sdk.NostrWalletConnectUri.parse(ours.format())
    assert theirs.public_key().to_hex() == WALLET_HEX
    assert theirs.secret().to_hex() == SECRET_HEX
    assert [str(r) for r in theirs.relays()] == list(relays)
    assert theirs.lud16() == lud16


@pytest.mark.parametrize("lud16", [None, "alice@getalby.com"])
def test_we_parse_nostr_sdks(lud16: str | None) -> None:
    suffix = f"&lud16={quote(lud16)}" if lud16 else ""
    relays = "&".join(
        f"relay={quote(r, safe='')}" for r in ("wss://relay.damus.io", "wss://nos.lol")
    )
    theirs = nostr_sdk.NostrWalletConnectUri.parse(_uri(f"{relays}&secret={SECRET_HEX}{suffix}"))
    # nostr-sdk writes secret before relay and percent-encodes "@" in lud16.
    text = str(theirs)
    assert text.startswith(f"nostr+walletconnect://{WALLET_HEX}?secret=")
    ours = ConnectionUri.parse(text)
    assert ours.wallet_pubkey == WALLET
    assert ours.secret == SECRET
    assert ours.relays == ("wss://relay.damus.io", "wss://nos.lol")
    assert ours.lud16 == lud16


@given(
    st.lists(
        st.builds(
            "{}://{}.example{}".format,
            st.sampled_from(["ws", "wss"]),
            st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True),
            st.sampled_from(["", ":7777", "/nwc", ":443/a/b"]),
        ),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    st.none() | st.from_regex(r"[a-z0-9._+-]{1,10}@[a-z0-9-]{1,10}\.[a-z]{2,5}", fullmatch=True),
)
def test_random_uris_round_trip_through_both(relays: list[str], lud16: str | None) -> None:
    ours = ConnectionUri(WALLET, tuple(relays), SECRET, lud16)
    assert ConnectionUri.parse(ours.format()) == ours
    theirs = nostr_sdk.NostrWalletConnectUri.parse(ours.format())
    assert theirs.lud16() == lud16
    assert ConnectionUri.parse(str(theirs)).secret == SECRET


# --- property tests ---------------------------------------------------------

_fragments = st.sampled_from(
    [
        "nostr+walletconnect://",
        "nostrwalletconnect:",
        WALLET_HEX,
        WALLET.npub(),
        "?",
        "&",
        "=",
        "relay=",
        "secret=",
        "lud16=",
        SECRET_HEX,
        "wss://",
        "wss%3A%2F%2F",
        "r.example",
        "[",
        ":",
        "%",
        "/",
    ]
)


@given(st.text(max_size=200) | st.lists(_fragments | st.text(max_size=5), max_size=12).map("".join))
def test_random_strings_are_a_uri_or_invalid_uri(text: str) -> None:
    try:
        uri = ConnectionUri.parse(text)
    except InvalidUri:
        return
    assert ConnectionUri.parse(uri.format()) == uri
