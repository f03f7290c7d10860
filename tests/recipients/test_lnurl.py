"""LNURL-pay without I/O: targets, LUD-01 bech32, pay params, callbacks, invoices, actions."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from nwcd import bech32, bolt11
from nwcd.bolt11 import Network
from nwcd.recipients.errors import RecipientError
from nwcd.recipients.lnurl import (
    AesAction,
    InvoiceTarget,
    KeysendTarget,
    LnurlTarget,
    MessageAction,
    PayParams,
    UrlAction,
    aes_action,
    callback_url,
    check_invoice,
    check_url,
    decode_lnurl,
    description_hash,
    encode_lnurl,
    parse_pay_params,
    parse_success_action,
    parse_target,
    reveal,
    server_reason,
)
from tests.recipients.support import NODE_KEY, NODE_PUBKEY, mint

# LUD-01's example.
LUD01_URL = (
    "https://service.com/api?q=3fc3645b439ce8e7f2553a69e5267081d96dcd340693afabe04be7b0ccd178df"
)
LUD01_LNURL = (
    "LNURL1DP68GURN8GHJ7UM9WFMXJCM99E3K7MF0V9CXJ0M385EKVCENXC6R2C35XVUKXEFCV5MKVV34X5EKZD3EV56"
    "NYD3HXQURZEPEXEJXXEPNXSCRVWFNV9NXZCN9XQ6XYEFHVGCXXCMYXYMNSERXFQ5FNS"
)
METADATA = json.dumps([["text/plain", "Pay alice"], ["text/identifier", "alice@example.com"]])
PREIMAGE = "0f" * 32


def pay_request(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tag": "payRequest",
        "callback": "https://example.com/lnurlp/alice/callback?k=v%2Bw",
        "minSendable": 1000,
        "maxSendable": 100_000_000,
        "metadata": METADATA,
        "commentAllowed": 20,
        "allowsNostr": True,
        "nostrPubkey": "ab" * 32,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


PARAMS = parse_pay_params(pay_request())


# --- targets ---------------------------------------------------------------------------------


def test_lightning_addresses() -> None:
    assert parse_target("Alice@Example.com") == LnurlTarget(
        "https://example.com/.well-known/lnurlp/alice", "alice@example.com"
    )
    assert parse_target("lightning:bob.smith+tips@pay.example.org") == LnurlTarget(
        "https://pay.example.org/.well-known/lnurlp/bob.smith+tips",
        "bob.smith+tips@pay.example.org",
    )
    assert parse_target("a@127.0.0.1:8080") == LnurlTarget(
        "http://127.0.0.1:8080/.well-known/lnurlp/a", "a@127.0.0.1:8080"
    )
    assert parse_target("a@localhost") == LnurlTarget(
        "http://localhost/.well-known/lnurlp/a", "a@localhost"
    )
    assert parse_target("a@[::1]:9") == LnurlTarget(
        "http://[::1]:9/.well-known/lnurlp/a", "a@[::1]:9"
    )
    onion = "x" * 56 + ".onion"
    assert parse_target(f"a@{onion}").url == f"http://{onion}/.well-known/lnurlp/a"


@pytest.mark.parametrize(
    "text",
    [
        "al ice@example.com",
        "al/ice@example.com",
        "@example.com",
        "alice@",
        "alice@example",
        "alice@exa_mple.com",
        "alice@example.com:port",
        "alice@example.com:123456",
        "alice@[2001:db8::1]",
        "alice@[::1]x",
        "nothing",
        "",
        "lightning:",
    ],
)
def test_bad_targets(text: str) -> None:
    with pytest.raises(RecipientError, match="not a lightning address"):
        parse_target(text)


def test_bech32_lnurls() -> None:
    assert decode_lnurl(LUD01_LNURL) == LUD01_URL
    assert decode_lnurl("lightning:" + LUD01_LNURL.lower()) == LUD01_URL
    assert parse_target(LUD01_LNURL) == LnurlTarget(LUD01_URL)
    assert parse_target("LIGHTNING:" + LUD01_LNURL) == LnurlTarget(LUD01_URL)
    assert encode_lnurl(LUD01_URL) == LUD01_LNURL.lower()
    long_url = "https://example.com/" + "a" * 500
    assert decode_lnurl(encode_lnurl(long_url)) == long_url


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (LUD01_LNURL[:-1] + "Q", "not a valid LNURL: invalid checksum"),
        ("lnurl1" + LUD01_LNURL[6:].lower().upper(), "mixed case"),
        ("npub1" + "q" * 58, "not a valid LNURL"),
    ],
)
def test_bad_lnurls(text: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        decode_lnurl(text)


def test_lnurl_of_another_prefix() -> None:
    text = bech32.encode("lnurlx", bech32.convert_bits(b"https://x.example", 8, 5, pad=True))
    with pytest.raises(RecipientError, match="the prefix is 'lnurlx'"):
        decode_lnurl(text)


def test_lnurl_holding_plain_http_is_refused() -> None:
    with pytest.raises(RecipientError, match="plain http"):
        parse_target(encode_lnurl("http://example.com/pay"))


def test_url_targets() -> None:
    assert parse_target("lnurlp://example.com/pay?x=1") == LnurlTarget(
        "https://example.com/pay?x=1"
    )
    assert parse_target("lnurlp://127.0.0.1:5000/p") == LnurlTarget("http://127.0.0.1:5000/p")
    assert parse_target("https://example.com/p") == LnurlTarget("https://example.com/p")
    # LUD-01 fallback: the LNURL rides in a "lightning" query parameter.
    assert parse_target(f"https://wallet.example/?lightning={LUD01_LNURL}") == LnurlTarget(
        LUD01_URL
    )
    with pytest.raises(RecipientError, match="plain http"):
        parse_target("http://example.com/p")


def test_invoice_and_keysend_targets() -> None:
    invoice = mint(5000, "00" * 32)
    assert parse_target(invoice) == InvoiceTarget(invoice)
    assert parse_target(f"lightning:{invoice.upper()}") == InvoiceTarget(invoice.upper())
    assert parse_target(NODE_PUBKEY.upper()) == KeysendTarget(NODE_PUBKEY)
    with pytest.raises(RecipientError, match="not a valid invoice"):
        parse_target(invoice[:-2] + "qq")
    with pytest.raises(RecipientError, match="not a valid node public key"):
        parse_target("02" + "00" * 32)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/x",
        "http://127.0.0.1:1234/x",
        "http://127.8.9.10/x",
        "http://localhost/x",
        "http://[::1]:80/x",
        "http://abc.onion/x",
    ],
)
def test_check_url_allows(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/x", "plain http"),
        ("http://10.0.0.1/x", "plain http"),
        ("http://localhost.example.com/x", "plain http"),
        ("ftp://example.com/x", "not an https URL"),
        ("javascript:alert(1)", "not an absolute URL"),
        ("/relative", "not an absolute URL"),
        ("https://example.com:99999/x", "not a valid URL"),
        ("https://[::1/x", "not a valid URL"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        check_url(url)


# --- pay params --------------------------------------------------------------------------------


def test_pay_params() -> None:
    assert (
        PayParams(
            callback="https://example.com/lnurlp/alice/callback?k=v%2Bw",
            min_sendable_msat=1000,
            max_sendable_msat=100_000_000,
            metadata=METADATA,
            comment_allowed=20,
            allows_nostr=True,
            nostr_pubkey="ab" * 32,
        )
        == PARAMS
    )
    assert PARAMS.description == "Pay alice"
    plain = parse_pay_params(pay_request(commentAllowed=None, allowsNostr=None, minSendable=1e3))
    assert (plain.comment_allowed, plain.allows_nostr, plain.nostr_pubkey) == (0, False, None)
    assert plain.min_sendable_msat == 1000
    assert parse_pay_params(pay_request(metadata="[]")).description is None


def test_a_bad_nostr_pubkey_means_no_zaps() -> None:
    params = parse_pay_params(pay_request(nostrPubkey="AB" * 32))
    assert (params.allows_nostr, params.nostr_pubkey) == (False, None)
    params = parse_pay_params(pay_request(allowsNostr="true"))
    assert (params.allows_nostr, params.nostr_pubkey) == (False, None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"status": "ERROR", "reason": "user\nunknown"}, "server refused: user unknown"),
        ({"status": "error"}, "server refused: no reason given"),
        ({"status": "ERROR", "reason": "x" * 300}, "x{200}…$"),
        ([1], "not a JSON object"),
        (pay_request(tag="withdrawRequest"), "not an LNURL-pay endpoint"),
        (pay_request(callback=None), "no callback URL"),
        (pay_request(callback="http://example.com/cb"), "plain http"),
        (pay_request(minSendable="1000"), "lacks whole minSendable"),
        (pay_request(maxSendable=True), "lacks whole minSendable"),
        (pay_request(minSendable=1000.5), "lacks whole minSendable"),
        (pay_request(minSendable=0), "range is invalid"),
        (pay_request(minSendable=5000, maxSendable=4000), "range is invalid"),
        (pay_request(metadata=None), "metadata is not a string"),
        (pay_request(metadata="[["), "metadata is not JSON"),
        (pay_request(metadata='{"a": 1}'), "not an array of"),
        (pay_request(metadata="[[]]"), "not an array of"),
        (pay_request(metadata='[[1, "x"]]'), "not an array of"),
        (pay_request(commentAllowed=-1), "commentAllowed"),
        (pay_request(commentAllowed="many"), "commentAllowed"),
    ],
)
def test_bad_pay_params(data: object, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        parse_pay_params(data)


def test_server_reason_only_for_errors() -> None:
    assert server_reason({"status": "OK"}) is None
    assert server_reason("ERROR") is None
    assert server_reason({"status": "ERROR", "reason": 5}) == "no reason given"


# --- callback ----------------------------------------------------------------------------------


def query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def test_callback_keeps_the_servers_query_and_adds_ours() -> None:
    url = callback_url(PARAMS, 21_000, comment="thanks & more ⚡")
    assert url.startswith("https://example.com/lnurlp/alice/callback?k=v%2Bw&amount=21000&")
    assert query(url) == [("k", "v+w"), ("amount", "21000"), ("comment", "thanks & more ⚡")]
    bare = parse_pay_params(pay_request(callback="https://example.com/cb"))
    assert callback_url(bare, 1000) == "https://example.com/cb?amount=1000"


def test_callback_for_a_zap() -> None:
    url = callback_url(PARAMS, 1000, zap_request='{"kind":9734}', lnurl="lnurl1xyz")
    assert query(url)[-2:] == [("nostr", '{"kind":9734}'), ("lnurl", "lnurl1xyz")]
    plain = parse_pay_params(pay_request(allowsNostr=False))
    with pytest.raises(RecipientError, match="does not support zaps"):
        callback_url(plain, 1000, zap_request="{}")


@pytest.mark.parametrize(
    ("amount", "comment", "changes", "reason"),
    [
        (999, None, {}, "999 msat is outside what the recipient accepts \\(1000 to 100000000"),
        (100_000_001, None, {}, "outside what the recipient accepts"),
        (1000, "x" * 21, {}, "the comment has 21 characters, the recipient accepts 20"),
        (1000, "hi", {"commentAllowed": 0}, "does not accept comments"),
        (1000, "x" * 2001, {"commentAllowed": 5000}, "accepts 2000"),
    ],
)
def test_callback_refuses(
    amount: int, comment: str | None, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(RecipientError, match=reason):
        callback_url(parse_pay_params(pay_request(**changes)), amount, comment=comment)


def test_an_empty_comment_is_no_comment() -> None:
    no_comments = parse_pay_params(pay_request(commentAllowed=0))
    assert "comment" not in callback_url(no_comments, 1000, comment="")


# --- invoices ----------------------------------------------------------------------------------

HASH = description_hash(METADATA)


def test_description_hash_is_sha256_of_the_utf8_metadata() -> None:
    assert description_hash("ä") == hashlib.sha256("ä".encode()).hexdigest()


def test_a_good_invoice_passes() -> None:
    invoice = mint(21_000, HASH)
    decoded = check_invoice(invoice, amount_msat=21_000, description_hash=HASH)
    assert decoded.amount_msat == 21_000
    assert (
        check_invoice(
            invoice, amount_msat=21_000, description_hash=HASH.upper(), network=Network.MAINNET
        ).payee
        == NODE_PUBKEY
    )


@pytest.mark.parametrize(
    ("invoice", "reason"),
    [
        ("lnbc1xyz", "sent an invalid invoice"),
        (mint(21_001, HASH), "is for 21001 msat, not 21000"),
        (mint(None, HASH), "has no amount"),
        (mint(21_000, "00" * 32), "does not commit to the expected description hash"),
        (mint(21_000, HASH, timestamp=int(time.time()) - 7200), "already expired"),
        (mint(21_000, HASH, network=Network.REGTEST), "network 'bcrt', not 'bc'"),
    ],
)
def test_bad_invoices(invoice: str, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        check_invoice(invoice, amount_msat=21_000, description_hash=HASH, network=Network.MAINNET)


def test_an_invoice_with_a_description_instead_of_a_hash() -> None:
    invoice = bolt11.encode(
        secret=NODE_KEY,
        payment_hash="11" * 32,
        payment_secret="22" * 32,
        timestamp=int(time.time()),
        amount_msat=1000,
        description="plain",
    )
    with pytest.raises(RecipientError, match="has no description hash"):
        check_invoice(invoice, amount_msat=1000, description_hash=HASH)


def test_expiry_uses_the_given_time() -> None:
    invoice = mint(1000, HASH, timestamp=1_000_000, expiry=60)
    assert check_invoice(invoice, amount_msat=1000, description_hash=HASH, now=1_000_059)
    with pytest.raises(RecipientError, match="expired"):
        check_invoice(invoice, amount_msat=1000, description_hash=HASH, now=1_000_060)


# --- success actions ---------------------------------------------------------------------------

CALLBACK = "https://example.com/cb"


def test_message_and_url_actions() -> None:
    message = parse_success_action({"tag": "message", "message": "Thanks!"})
    assert message == MessageAction("Thanks!")
    assert reveal(message, PREIMAGE) == {"tag": "message", "message": "Thanks!"}
    data = {"tag": "url", "description": "Your order", "url": "https://example.com/o/1"}
    url = parse_success_action(data, callback=CALLBACK)
    assert url == UrlAction("Your order", "https://example.com/o/1")
    assert reveal(url, PREIMAGE) == {
        "tag": "url",
        "description": "Your order",
        "url": "https://example.com/o/1",
    }
    assert parse_success_action(None) is None


def test_aes_round_trip() -> None:
    action = aes_action("Your code", "PIN 1234 ⚡", PREIMAGE, iv=bytes(range(16)))
    assert len(action.iv) == 24
    data = {"tag": "aes", "description": action.description, "ciphertext": action.ciphertext}
    parsed = parse_success_action({**data, "iv": action.iv})
    assert parsed == action
    assert reveal(action, PREIMAGE) == {
        "tag": "aes",
        "description": "Your code",
        "plaintext": "PIN 1234 ⚡",
    }
    random_iv = aes_action("d", "secret", PREIMAGE)
    assert random_iv.iv != action.iv
    assert reveal(random_iv, PREIMAGE)["plaintext"] == "secret"


def test_aes_known_answer() -> None:
    # AES-256-CBC of "hello" under key 0x0f * 32, iv 0..15, PKCS7: fixed by the cipher.
    action = aes_action("d", "hello", PREIMAGE, iv=bytes(range(16)))
    assert action.iv == "AAECAwQFBgcICQoLDA0ODw=="

    decryptor = Cipher(algorithms.AES(bytes([15] * 32)), modes.CBC(bytes(range(16)))).decryptor()
    raw = decryptor.update(base64.b64decode(action.ciphertext)) + decryptor.finalize()
    assert raw == b"hello" + bytes([11] * 11)


def test_the_wrong_preimage_does_not_open_it() -> None:
    action = aes_action("d", "secret", PREIMAGE, iv=bytes(16))
    with pytest.raises(RecipientError, match="does not open"):
        reveal(action, "1e" * 32)
    with pytest.raises(RecipientError, match="not 32 bytes of hex"):
        reveal(action, "xyz")
    with pytest.raises(RecipientError, match="not 32 bytes of hex"):
        aes_action("d", "secret", "00" * 16)


GOOD_AES = aes_action("d", "secret", PREIMAGE, iv=bytes(16))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("message", "not a JSON object"),
        ({"tag": "upload"}, "unsupported success action 'upload'"),
        ({"message": "x"}, "unsupported success action None"),
        ({"tag": "message"}, "'message' is not a string"),
        ({"tag": "message", "message": "x" * 145}, "longer than 144"),
        ({"tag": "url", "description": "d", "url": "https://evil.example/x"}, "callback's domain"),
        ({"tag": "url", "description": "d", "url": "http://example.com/x"}, "plain http"),
        ({"tag": "url", "description": "x" * 145, "url": "https://example.com/"}, "longer than"),
        ({"tag": "aes", "description": "d", "ciphertext": GOOD_AES.ciphertext}, "'iv'"),
        (
            {"tag": "aes", "description": "d", "ciphertext": GOOD_AES.ciphertext, "iv": "A" * 25},
            "longer than 24",
        ),
        (
            {"tag": "aes", "description": "d", "ciphertext": GOOD_AES.ciphertext, "iv": "AAAA"},
            "iv is not 16 bytes",
        ),
        (
            {"tag": "aes", "description": "d", "ciphertext": GOOD_AES.ciphertext, "iv": "!" * 24},
            "iv is not base64",
        ),
        (
            {"tag": "aes", "description": "d", "ciphertext": "AAAA", "iv": GOOD_AES.iv},
            "not whole AES blocks",
        ),
        (
            {"tag": "aes", "description": "d", "ciphertext": "A" * 4100, "iv": GOOD_AES.iv},
            "longer than 4096",
        ),
    ],
)
def test_bad_success_actions(data: object, reason: str) -> None:
    with pytest.raises(RecipientError, match=reason):
        parse_success_action(data, callback=CALLBACK)


def test_url_action_domain_is_not_checked_without_a_callback() -> None:
    data = {"tag": "url", "description": "d", "url": "https://other.example/x"}
    assert isinstance(parse_success_action(data), UrlAction)
    assert isinstance(GOOD_AES, AesAction)
