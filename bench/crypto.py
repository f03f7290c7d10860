"""Crypto micro-benchmarks: secp256k1 bindings, and the crypto cost of one NWC request.

Run: ``.venv/bin/python bench/crypto.py [--quick]``. Prints microseconds per
operation: the median over several runs of the mean of each run.

(a) BIP-340 sign, BIP-340 verify and raw ECDH x with ``coincurve``, with the
    ``secp256k1`` PyPI package (optional: ``pip install secp256k1==0.14.0``;
    its column is skipped when it is not installed) and with nwcd's own
    :class:`~nwcd.nostr.keys.SecretKey` / :class:`~nwcd.nostr.keys.PublicKey`.
(b) What the wallet service spends on crypto per NWC request: verify the
    request event, decrypt it, encrypt the response, sign the response event,
    for NIP-44 and NIP-04, with the ECDH result cached (the usual case) and on
    first contact with an app (ECDH included).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Report, Row
from nwcd.nostr import nip04, nip44
from nwcd.nostr.event import Event, parse_event, sign_event
from nwcd.nostr.keys import PublicKey, SecretKey

REQUEST_PAYLOAD = {
    "method": "pay_invoice",
    "params": {
        "invoice": (
            "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqc"
            "yq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl"
            "77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tu"
            "zyz2kc7kpflcqd4gkwy"
        ),
        "amount": 250000000,
    },
}
RESPONSE_PAYLOAD = {
    "result_type": "pay_invoice",
    "error": None,
    "result": {
        "preimage": "0123456789abcdef" * 4,
        "fees_paid": 1000,
        "payment_hash": "fedcba9876543210" * 4,
        "settled_at": 1700000003,
        "description": "1 cup coffee, 1 croissant, and a tip for the barista: thank you",
    },
}


def measure(fn: Callable[[], object], *, number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``fn``, in microseconds."""
    fn()  # warm up (and fail early)
    runs = timeit.Timer(fn).repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def uncached_shared_x(secret: SecretKey, peer: PublicKey) -> bytes:
    """ECDH as on first contact: empty the key's cache first."""
    secret._shared.clear()
    return secret.shared_x(peer)


def _load_secp256k1() -> Any | None:
    try:
        return importlib.import_module("secp256k1")
    except ImportError:
        return None


def bench_bindings(number: int, repeat: int) -> None:
    secp: Any | None = _load_secp256k1()
    raw_secret = os.urandom(32)
    peer_secret = SecretKey.generate()
    message = os.urandom(32)
    aux = os.urandom(32)

    ours = SecretKey(raw_secret)
    ours_public = ours.public_key
    peer = peer_secret.public_key
    signature = ours.sign(message, aux)

    cc_secret = coincurve.PrivateKey(raw_secret)
    cc_xonly = coincurve.PublicKeyXOnly(ours_public.raw)
    cc_peer = coincurve.PublicKey(b"\x02" + peer.raw)

    rows: dict[str, dict[str, Callable[[], object]]] = {
        "BIP-340 sign": {
            "coincurve": lambda: cc_secret.sign_schnorr(message, aux),
            "nwcd": lambda: ours.sign(message, aux),
        },
        "BIP-340 verify": {
            "coincurve": lambda: cc_xonly.verify(signature, message),
            "nwcd": lambda: ours_public.verify(signature, message),
        },
        "BIP-340 verify, key parsed each time": {
            "coincurve": lambda: coincurve.PublicKeyXOnly(ours_public.raw).verify(
                signature, message
            ),
            "nwcd": lambda: PublicKey(ours_public.raw).verify(signature, message),
        },
        "ECDH raw x": {
            "coincurve": lambda: cc_peer.multiply(raw_secret).format()[1:],
            "nwcd": lambda: uncached_shared_x(ours, peer),
        },
        "ECDH raw x, cached": {"nwcd": lambda: ours.shared_x(peer)},
    }

    secp_note = ""
    if secp is None:
        secp_note = (
            "note: the `secp256k1` package is not installed, its column is skipped "
            "(pip install secp256k1==0.14.0)"
        )
    else:
        ffi = secp.ffi
        secp_secret = secp.PrivateKey(raw_secret, raw=True)
        secp_xonly = secp.PublicKey(b"\x02" + ours_public.raw, raw=True)
        secp_peer = secp.PublicKey(b"\x02" + peer.raw, raw=True)

        def _copy_x(output: Any, x32: Any, _y32: Any, _data: Any) -> int:
            ffi.memmove(output, x32, 32)
            return 1

        copy_x: Any = ffi.callback(
            "int(unsigned char *, const unsigned char *, const unsigned char *, void *)", _copy_x
        )

        assert secp_secret.schnorr_sign(message, None, raw=True) is not None
        assert secp_xonly.schnorr_verify(message, signature, None, raw=True)
        assert secp_peer.ecdh(raw_secret, hashfn=copy_x) == ours.shared_x(peer)
        rows["BIP-340 sign"]["secp256k1"] = lambda: secp_secret.schnorr_sign(
            message, None, raw=True
        )
        rows["BIP-340 verify"]["secp256k1"] = lambda: secp_xonly.schnorr_verify(
            message, signature, None, raw=True
        )
        rows["BIP-340 verify, key parsed each time"]["secp256k1"] = lambda: secp.PublicKey(
            b"\x02" + ours_public.raw, raw=True
        ).schnorr_verify(message, signature, None, raw=True)
        rows["ECDH raw x"]["secp256k1"] = lambda: secp_peer.ecdh(raw_secret, hashfn=copy_x)
        secp_note = (
            "note: secp256k1 0.14.0 signs with aux_rand = NULL (no fresh randomness); "
            "its ECDH uses a Python callback to return the raw x"
        )

    columns = ["coincurve", "secp256k1", "nwcd"]
    print(f"(a) secp256k1 bindings, us per operation (coincurve {coincurve.__version__})")
    print(f"{'':40}" + "".join(f"{c:>12}" for c in columns))
    for name, cells in rows.items():
        line = f"{name:40}"
        for column in columns:
            fn = cells.get(column)
            line += f"{measure(fn, number=number, repeat=repeat):12.1f}" if fn else f"{'-':>12}"
        print(line)
    print("  nwcd sign = coincurve's libsecp256k1 with a key pair built once, fresh aux_rand given")
    print(
        "  nwcd ECDH (uncached) also lifts the x-only key to a point and clears/fills its cache;"
        " coincurve = the same multiply on an already parsed point"
    )
    print(f"  {secp_note}")


def _request(app: SecretKey, wallet: SecretKey, content: str) -> str:
    event = sign_event(
        app,
        kind=23194,
        content=content,
        tags=[["p", wallet.public_key.hex], ["encryption", "nip44_v2"]],
        created_at=1_700_000_000,
    )
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))


def bench_request(number: int, repeat: int) -> dict[str, tuple[float, float]]:
    """Print, and return, microseconds per step: ``{step: (NIP-44, NIP-04)}``."""
    wallet, app = SecretKey.generate(), SecretKey.generate()
    request_text = json.dumps(REQUEST_PAYLOAD, separators=(",", ":"))
    response_text = json.dumps(RESPONSE_PAYLOAD, separators=(",", ":"))

    conv_key = nip44.conversation_key(app, wallet.public_key)
    shared = app.shared_x(wallet.public_key)
    wire44 = _request(app, wallet, nip44.encrypt(conv_key, request_text))
    wire04 = _request(app, wallet, nip04.encrypt(shared, request_text))
    event44, event04 = parse_event(json.loads(wire44)), parse_event(json.loads(wire04))
    wallet_conv = nip44.conversation_key(wallet, app.public_key)
    wallet_shared = wallet.shared_x(app.public_key)
    response44 = nip44.encrypt(wallet_conv, response_text)
    response04 = nip04.encrypt(wallet_shared, response_text)

    def respond(request: Event, content: str) -> Event:
        return sign_event(
            wallet,
            kind=23195,
            content=content,
            tags=[["p", request.pubkey], ["e", request.id]],
            created_at=1_700_000_001,
        )

    def full44() -> Event:
        request = parse_event(json.loads(wire44))
        request.verify()
        nip44.decrypt(wallet_conv, request.content)
        return respond(request, nip44.encrypt(wallet_conv, response_text))

    def full04() -> Event:
        request = parse_event(json.loads(wire04))
        request.verify()
        nip04.decrypt(wallet_shared, request.content)
        return respond(request, nip04.encrypt(wallet_shared, response_text))

    def first_contact44() -> Event:
        wallet._shared.clear()
        request = parse_event(json.loads(wire44))
        request.verify()
        key = nip44.conversation_key(wallet, PublicKey.from_hex(request.pubkey))
        nip44.decrypt(key, request.content)
        return respond(request, nip44.encrypt(key, response_text))

    def first_contact04() -> Event:
        wallet._shared.clear()
        request = parse_event(json.loads(wire04))
        request.verify()
        key = wallet.shared_x(PublicKey.from_hex(request.pubkey))
        nip04.decrypt(key, request.content)
        return respond(request, nip04.encrypt(key, response_text))

    steps: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "parse request JSON + shape check",
            lambda: parse_event(json.loads(wire44)),
            lambda: parse_event(json.loads(wire04)),
        ),
        ("verify request (id + signature)", event44.verify, event04.verify),
        (
            "decrypt request (cached key)",
            lambda: nip44.decrypt(wallet_conv, event44.content),
            lambda: nip04.decrypt(wallet_shared, event04.content),
        ),
        (
            "encrypt response (cached key)",
            lambda: nip44.encrypt(wallet_conv, response_text),
            lambda: nip04.encrypt(wallet_shared, response_text),
        ),
        (
            "sign response event",
            lambda: respond(event44, response44),
            lambda: respond(event04, response04),
        ),
        ("= whole request, key cached", full44, full04),
        (
            "ECDH (+ HKDF for NIP-44) alone",
            lambda: nip44.conversation_key_from_shared_x(uncached_shared_x(wallet, app.public_key)),
            lambda: uncached_shared_x(wallet, app.public_key),
        ),
        ("= whole request, first contact", first_contact44, first_contact04),
    ]

    print()
    print(
        f"(b) wallet-side crypto per NWC request, us (request payload {len(request_text)} bytes, "
        f"response payload {len(response_text)} bytes; "
        f"event on the wire {len(wire44)} / {len(wire04)} bytes)"
    )
    print(f"{'':40}{'NIP-44':>12}{'NIP-04':>12}")
    costs = {}
    for name, fn44, fn04 in steps:
        costs[name] = (
            measure(fn44, number=number, repeat=repeat),
            measure(fn04, number=number, repeat=repeat),
        )
        print(f"{name:40}{costs[name][0]:12.1f}{costs[name][1]:12.1f}")
    return costs


async def collect(workdir: Path, quick: bool) -> Report:
    """The floor the service's CPU figures are compared with (NIP-44, keys cached)."""
    costs = bench_request(*((300, 3) if quick else (1000, 5)))
    request = costs["= whole request, key cached"][0] / 1000
    # A paid batch item: its response and one notification, each encrypted and signed.
    item = 2 * (costs["encrypt response (cached key)"][0] + costs["sign response event"][0]) / 1000
    return Report(
        rows=[
            Row("crypto", "floor per request: verify, decrypt, encrypt, sign (NIP-44)", request,
                "ms", "", None, "the service's CPU per get_balance is compared with this"),
            Row("crypto", "floor per batch item: encrypt + sign response and notification",
                item, "ms", "", None, "the service's CPU per item is compared with this"),
        ]
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    number, repeat = (100, 3) if args.quick else (1000, 7)
    print(f"python {sys.version.split()[0]}, {number} calls x {repeat} runs, median of runs")
    bench_bindings(number, repeat)
    bench_request(number, repeat)


if __name__ == "__main__":
    main()
