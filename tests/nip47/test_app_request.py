"""An app asks for a connection: NWA URIs and authorization URLs exactly as the Alby SDK
writes them, the older draft's spellings, one clear error per bad field, and round trips."""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nwcd.nip47.app_request import (
    KNOWN_NOTIFICATION_TYPES,
    MAX_APP_RELAYS,
    AppRequest,
    AppRequestError,
    format_nwa_uri,
    parse_authorization_query,
    parse_nwa_uri,
)
from nwcd.nip47.methods import MAX_METADATA_CHARS, Method
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import BudgetPeriod

NOW = 1_764_000_000  # 2025-11-24
APP = SecretKey.from_hex("71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c")
APP_HEX = "3ba6db4896124383fdaa5f7d42c25f9df1b128a280928baeb3f3fa36d25506f9"

# Written by @getalby/sdk 8.0.3 (NWAClient.connectionUri / getConnectionUri("alby") /
# NWCClient.getAuthorizationUrl) with the app secret above, copied verbatim.
SDK_NWA = (
    f"nostr+walletauth://{APP_HEX}?request_methods=pay_invoice%20get_balance%20get_info"
    "&name=Zap%20Caf%C3%A9%20%26%20Co&icon=https%3A%2F%2Fexample.com%2Ficon.png%3Fsize%3D64"
    "&return_to=https%3A%2F%2Fexample.com%2Fdone%3Fx%3D1%26y%3D2"
    "&notification_types=payment_received%20payment_sent&max_amount=21000000"
    "&budget_renewal=monthly&expires_at=1893456000&isolated=true"
    "&metadata=%7B%22app_store_app_id%22%3A%22zapcafe%22%2C%22note%22%3A%22a%2Bb%20c%22%7D"
    "&relay=wss%3A%2F%2Frelay.getalby.com%2Fv1&relay=wss%3A%2F%2Fnos.lol"
)
SDK_NWA_MINIMAL = (
    f"nostr+walletauth://{APP_HEX}?request_methods=get_info&relay=ws%3A%2F%2F127.0.0.1%3A7777"
)
SDK_AUTHORIZATION_URL = (
    "https://hub.example.com/apps/new?name=Zap+Caf%C3%A9+%26+Co"
    f"&pubkey={APP_HEX}&return_to=https%3A%2F%2Fexample.com%2Fdone%3Fx%3D1"
    "&budget_renewal=weekly&expires_at=1893456000&max_amount=5000000"
    "&request_methods=pay_invoice+get_balance&notification_types=payment_received"
    "&isolated=true&metadata=%7B%22a%22%3A%5B1%2C%22two%22%5D%7D"
)
SDK_AUTHORIZATION_URL_NAME_ONLY = f"https://hub.example.com/apps/new?name=x&pubkey={APP_HEX}"


def nwa(query: str, *, pubkey: str = APP_HEX, scheme: str = "nostr+walletauth://") -> str:
    return f"{scheme}{pubkey}?{query}"


GOOD = "request_methods=get_info&relay=wss://r.example"


def query_of(url: str) -> dict[str, list[str]]:
    """What a web framework hands the console: the query, decoded, repeated keys kept."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


# -- what the Alby SDK writes ------------------------------------------------------------------


def test_the_sdk_nwa_uri_with_every_field() -> None:
    assert APP.public_key.hex == APP_HEX
    assert parse_nwa_uri(SDK_NWA, now=NOW) == AppRequest(
        app_pubkey=APP.public_key,
        name="Zap Café & Co",
        relays=("wss://relay.getalby.com/v1", "wss://nos.lol"),
        methods=frozenset({"pay_invoice", "get_balance", "get_info"}),
        notification_types=frozenset({"payment_received", "payment_sent"}),
        budget_msat=21_000_000,
        budget_period=BudgetPeriod.MONTHLY,
        expires_at=1_893_456_000,
        isolated=True,
        metadata={"app_store_app_id": "zapcafe", "note": "a+b c"},
        return_to="https://example.com/done?x=1&y=2",
        icon="https://example.com/icon.png?size=64",
    )


def test_a_wallet_specific_scheme_and_no_slashes_are_the_same_request() -> None:
    expected = parse_nwa_uri(SDK_NWA, now=NOW)
    alby = SDK_NWA.replace("nostr+walletauth://", "nostr+walletauth+alby://")
    assert parse_nwa_uri(alby, now=NOW) == expected
    assert parse_nwa_uri(SDK_NWA.replace("://", ":"), now=NOW) == expected
    assert parse_nwa_uri(" NOSTR+WalletAuth" + SDK_NWA[16:] + "\n", now=NOW) == expected


def test_the_sdk_minimal_nwa_uri() -> None:
    request = parse_nwa_uri(SDK_NWA_MINIMAL, now=NOW)
    assert request == AppRequest(
        app_pubkey=APP.public_key, relays=("ws://127.0.0.1:7777",), methods=frozenset({"get_info"})
    )
    # No max_amount: no budget, whatever the renewal says.
    assert request.budget_msat is None
    assert request.budget_period is BudgetPeriod.NEVER


def test_the_sdk_authorization_url() -> None:
    request = parse_authorization_query(query_of(SDK_AUTHORIZATION_URL), now=NOW)
    assert request == AppRequest(
        app_pubkey=APP.public_key,
        name="Zap Café & Co",  # "+" is a space
        relays=(),  # the wallet chooses
        methods=frozenset({"pay_invoice", "get_balance"}),
        notification_types=frozenset({"payment_received"}),
        budget_msat=5_000_000,
        budget_period=BudgetPeriod.WEEKLY,
        expires_at=1_893_456_000,
        isolated=True,
        metadata={"a": [1, "two"]},
        return_to="https://example.com/done?x=1",
    )


def test_an_authorization_url_without_methods_asks_for_every_method() -> None:
    request = parse_authorization_query(query_of(SDK_AUTHORIZATION_URL_NAME_ONLY), now=NOW)
    assert request == AppRequest(app_pubkey=APP.public_key, name="x", methods=None)


def test_an_authorization_query_as_a_plain_mapping_or_multidict_items() -> None:
    plain = {"pubkey": APP_HEX, "request_methods": "get_info get_balance", "relay": "wss://x"}
    assert parse_authorization_query(plain, now=NOW).methods == frozenset(
        {"get_info", "get_balance"}
    )
    assert parse_authorization_query(plain, now=NOW).relays == ()  # ignored

    class MultiDict:  # items() repeats keys, as aiohttp's MultiDictProxy does
        def items(self) -> list[tuple[str, str]]:
            return [("pubkey", APP_HEX), ("request_methods", "get_info"), ("name", "a")]

    assert parse_authorization_query(MultiDict(), now=NOW).name == "a"  # type: ignore[arg-type]


# -- spellings ---------------------------------------------------------------------------------


def test_plus_and_percent_20_are_both_spaces() -> None:
    plus = nwa("request_methods=get_info+get_balance&name=My+App&relay=wss://r.example")
    pct = nwa("request_methods=get_info%20get_balance&name=My%20App&relay=wss://r.example")
    assert parse_nwa_uri(plus, now=NOW) == parse_nwa_uri(pct, now=NOW)
    assert parse_nwa_uri(plus, now=NOW).name == "My App"


def test_relays_repeat_raw_or_encoded_and_duplicates_collapse() -> None:
    uri = nwa(
        "request_methods=get_info&relay=wss://a.example&relay=wss%3A%2F%2Fb.example%2Fpath"
        "&relay=wss://a.example"
    )
    assert parse_nwa_uri(uri, now=NOW).relays == ("wss://a.example", "wss://b.example/path")


def test_older_draft_commands_count_as_methods_and_unknown_keys_are_ignored() -> None:
    uri = nwa(
        "required_commands=pay_invoice&optional_commands=get_balance%20get_info"
        "&secret=abc&budget=10000%2Fdaily&max_amount=5000&foo=bar&relay=wss://r.example"
    )
    request = parse_nwa_uri(uri, now=NOW)
    assert request.methods == frozenset({"pay_invoice", "get_balance", "get_info"})
    assert request.budget_msat == 5000  # max_amount wins over the old budget


def test_commas_separate_methods_too_and_pubkeys_may_be_uppercase_or_npub() -> None:
    uri = nwa("request_methods=get_info,get_balance&relay=wss://r.example")
    assert parse_nwa_uri(uri, now=NOW).methods == frozenset({"get_info", "get_balance"})
    upper = parse_nwa_uri(
        nwa("request_methods=get_info&relay=wss://r.example", pubkey=APP_HEX.upper()), now=NOW
    )
    npub = parse_nwa_uri(
        nwa("request_methods=get_info&relay=wss://r.example", pubkey=APP.public_key.npub()), now=NOW
    )
    assert upper.app_pubkey == npub.app_pubkey == APP.public_key


# -- one clear error per bad field -------------------------------------------------------------

TOO_MANY_RELAYS = "&".join(f"relay=wss://r{i}.example" for i in range(MAX_APP_RELAYS + 1))
HUGE_METADATA = quote('{"a":"' + "x" * MAX_METADATA_CHARS + '"}')
NOT_A_LINK = "return_to must be an http(s) URL or an app's link"
NOT_A_NAME = "the name must be at most 64 printable characters"
PERIODS = "budget_renewal must be one of daily, weekly, monthly, yearly, never"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"nostr+walletconnect://{APP_HEX}?{GOOD}", "an NWA URI starts with nostr+walletauth://"),
        (f"https://{APP_HEX}?{GOOD}", "an NWA URI starts with nostr+walletauth://"),
        (nwa(GOOD, pubkey=""), "the app's pubkey is missing"),
        (nwa(GOOD, pubkey=APP_HEX[:-1]), "bad app pubkey"),
        (nwa(GOOD, pubkey="00" * 32), "bad app pubkey"),
        (nwa("relay=wss://r.example"), "the URI names no methods (request_methods=...)"),
        (nwa("request_methods=&relay=wss://r.example"), "names no methods"),
        (
            nwa("request_methods=get_info%20fly%20create_connection&relay=wss://r.example"),
            "the app asks for methods nwcd does not know: create_connection, fly (known: pay_",
        ),
        (nwa("request_methods=get_info"), "the URI names no relay (relay=wss://...)"),
        (nwa("request_methods=get_info&relay=https://r.example"), "not a ws:// or wss:// URL"),
        (nwa("request_methods=get_info&relay=wss://"), "not a ws:// or wss:// URL"),
        (nwa("request_methods=get_info&" + TOO_MANY_RELAYS), "relays; at most 10"),
        (nwa(GOOD + "&max_amount=abc"), "max_amount must be a whole number of msat from 1 to"),
        (nwa(GOOD + "&max_amount=0"), "max_amount must be a whole number of msat from 1 to"),
        (nwa(GOOD + "&max_amount=-5"), "not '-5'"),
        (nwa(GOOD + "&max_amount=1e3"), "not '1e3'"),
        (nwa(GOOD + "&max_amount=21000.5"), "not '21000.5'"),
        (nwa(GOOD + "&max_amount=" + "9" * 5000), "max_amount must be a whole number"),
        (nwa(GOOD + "&max_amount=1000&max_amount=2000"), "max_amount is given 2 times"),
        (nwa(GOOD + "&max_amount=1000&budget_renewal=hourly"), PERIODS + ", not 'hourly'"),
        (nwa(GOOD + "&budget=10000%2Fdaily"), "'budget' (an older draft), which nwcd does not"),
        (nwa(GOOD + f"&expires_at={NOW}"), "a connection that expired already (2025-11-24"),
        (nwa(GOOD + "&expires_at=1893456000000"), "(seconds, not milliseconds)"),
        (nwa(GOOD + "&name=" + "x" * 65), NOT_A_NAME),
        (nwa(GOOD + "&name=a%0Ab"), NOT_A_NAME),
        (nwa(GOOD + "&isolated=yes"), "isolated must be true or false, not 'yes'"),
        (nwa(GOOD + "&metadata=%7Bnope"), "metadata must be JSON"),
        (nwa(GOOD + "&metadata=%5B1%5D"), "metadata must be a JSON object"),
        (nwa(GOOD + "&metadata=" + HUGE_METADATA), "characters of JSON; at most 4096"),
        (nwa(GOOD + "&return_to=javascript%3Aalert(1)"), NOT_A_LINK),
        (nwa(GOOD + "&return_to=data%3Atext%2Fhtml%2Cx"), NOT_A_LINK),
        (nwa(GOOD + "&return_to=https%3A%2F%2F"), NOT_A_LINK),
        (nwa(GOOD + "&icon=myapp%3A%2F%2Fx"), "icon must be an http(s) URL"),
        (
            nwa(GOOD + "&notification_types=payment_received%20payment_exploded"),
            "notifications nwcd does not send: payment_exploded",
        ),
        (nwa(GOOD + "&" + "&".join(f"k{i}=v" for i in range(300))), "more than 200 fields"),
    ],
)
def test_bad_requests_get_one_clear_error(uri: str, message: str) -> None:
    with pytest.raises(AppRequestError) as caught:
        parse_nwa_uri(uri, now=NOW)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert len(str(caught.value)) < 600  # a bad value is quoted shortened, never whole


def test_an_authorization_query_needs_a_pubkey_and_text() -> None:
    with pytest.raises(AppRequestError, match="the request has no pubkey"):
        parse_authorization_query({"name": "x"}, now=NOW)
    with pytest.raises(AppRequestError, match="name must be text"):
        parse_authorization_query({"pubkey": APP_HEX, "name": [1]}, now=NOW)  # type: ignore[list-item]
    with pytest.raises(AppRequestError, match="a method nwcd does not know: fly "):
        parse_authorization_query({"pubkey": APP_HEX, "request_methods": "fly"}, now=NOW)


def test_an_app_link_is_a_fine_place_to_return_to() -> None:
    uri = nwa(GOOD + "&return_to=" + quote("myapp://nwc/done?ok=1", safe=""))
    assert parse_nwa_uri(uri, now=NOW).return_to == "myapp://nwc/done?ok=1"


# -- properties --------------------------------------------------------------------------------

_names = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"]),
    min_size=1,
    max_size=64,
).filter(lambda t: t == t.strip() and t.isprintable() and "\x00" not in t)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_paths = st.text(alphabet=string.ascii_letters + string.digits + "-._~/?=&%+", max_size=30)


_relays = st.sampled_from(
    ["wss://relay.example.com", "ws://127.0.0.1:7777", "wss://r.example/a?b=c&d=e", "wss://nos.lol"]
)
_links = _paths.map(lambda p: "myapp://cb/" + p) | _paths.map(lambda p: "https://example.com/" + p)


@st.composite
def requests(draw: st.DrawFn) -> AppRequest:
    budget = draw(st.none() | st.integers(1, 2_100_000_000_000_000_000))
    period = draw(st.sampled_from(BudgetPeriod)) if budget is not None else BudgetPeriod.NEVER
    methods = draw(st.sets(st.sampled_from([m.value for m in Method]), min_size=1))
    notifications = draw(st.sets(st.sampled_from(sorted(KNOWN_NOTIFICATION_TYPES))))
    return AppRequest(
        app_pubkey=draw(
            st.sampled_from([APP.public_key, SecretKey.from_hex("11" * 32).public_key])
        ),
        name=draw(st.none() | _names),
        relays=tuple(draw(st.lists(_relays, min_size=1, max_size=4, unique=True))),
        methods=frozenset(methods),
        notification_types=frozenset(notifications),
        budget_msat=budget,
        budget_period=period,
        expires_at=draw(st.none() | st.integers(NOW + 1, 2**40)),
        isolated=draw(st.booleans()),
        metadata=draw(st.none() | st.dictionaries(st.text(max_size=8), _json, max_size=4)),
        return_to=draw(st.none() | _links),
        icon=draw(st.none() | _paths.map(lambda p: "https://example.com/" + p)),
    )


@given(requests())
def test_format_then_parse_is_the_same_request(request: AppRequest) -> None:
    text = format_nwa_uri(request)
    assert parse_nwa_uri(text, now=NOW) == request
    # Spaces written as "+" (URLSearchParams without the SDK's replace) read the same.
    assert parse_nwa_uri(text.replace("%20", "+"), now=NOW) == request


@given(requests())
def test_an_authorization_query_reads_the_same_fields(request: AppRequest) -> None:
    query = query_of(format_nwa_uri(request)) | {"pubkey": [request.app_pubkey.hex]}
    assert parse_authorization_query(query, now=NOW) == replace(request, relays=())


def _request_or_error(parse: Callable[[], AppRequest]) -> AppRequest | None:
    """The request, or None for one clear error (a one-line message); anything else fails."""
    try:
        return parse()
    except AppRequestError as exc:
        message = str(exc)
    assert message
    assert "\n" not in message
    return None


@given(st.text(max_size=300))
def test_any_text_is_a_request_or_one_clear_error(query: str) -> None:
    for text in (nwa(query), nwa(GOOD + "&" + query), query):
        request = _request_or_error(functools.partial(parse_nwa_uri, text, now=NOW))
        if request is not None:
            assert request.relays
            assert request.methods


_AUTHORIZATION_KEYS = st.sampled_from(
    [
        *("pubkey", "name", "max_amount", "expires_at", "request_methods", "metadata"),
        *("return_to", "icon", "isolated", "budget_renewal", "notification_types"),
    ]
)


@given(st.dictionaries(_AUTHORIZATION_KEYS, st.text(max_size=40)))
def test_any_authorization_query_is_a_request_or_one_clear_error(query: dict[str, str]) -> None:
    params = {"pubkey": APP_HEX} | query
    request = _request_or_error(lambda: parse_authorization_query(params, now=NOW))
    if request is not None:
        assert request.relays == ()


def test_formatting_needs_relays_and_methods() -> None:
    with pytest.raises(ValueError, match="relays and methods"):
        format_nwa_uri(AppRequest(APP.public_key, methods=frozenset({"get_info"})))
    with pytest.raises(ValueError, match="relays and methods"):
        format_nwa_uri(AppRequest(APP.public_key, relays=("wss://r.example",)))
