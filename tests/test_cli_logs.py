"""What ``nwcd serve`` logs for a user to read: counts with the right plural, and one INFO
line per finished request with its method, amount and outcome (never an invoice, preimage
or key), as text or as one JSON object per line (``--log-format json``)."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from pathlib import Path

import pytest

from nwcd.cli import _merge_global_options, build_parser, main
from nwcd.client.client import NWCClient, NWCError
from nwcd.logs import FIELDS, JsonFormatter, log_handler
from tests.service.harness import WalletHarness


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("nwcd.service")]


async def test_ready_line_counts_connections(
    tmp_path: Path, nwcd_relay: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO)
    async with WalletHarness(tmp_path / "one", [url]) as wallet:
        await wallet.connect()
        await wallet.start()
    async with WalletHarness(tmp_path / "two", [url]) as wallet:
        await wallet.connect("a")
        await wallet.connect("b")
        await wallet.start()
    ready = [m for m in messages(caplog) if m.startswith("nwcd ready")]
    assert re.fullmatch(rf"nwcd ready: instance \w{{12}}, 1 connection, relays {url}", ready[0])
    assert re.fullmatch(rf"nwcd ready: instance \w{{12}}, 2 connections, relays {url}", ready[1])


async def test_one_line_per_finished_request(
    tmp_path: Path, nwcd_relay: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = nwcd_relay.url  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    async with WalletHarness(tmp_path, [url]) as wallet:
        uri = await wallet.connect()
        await wallet.start()
        good = await wallet.backend.create_invoice(2_000, fee_msat=5)
        bad = await wallet.backend.create_invoice(3_000, outcome="fail")
        batch = [await wallet.backend.create_invoice(1_000 + i) for i in range(2)]
        payee = wallet.backend.payee_pubkeys[0]
        async with NWCClient(uri, timeout=10) as client:
            await client.pay_invoice(good.invoice)
            with pytest.raises(NWCError):
                await client.pay_invoice(bad.invoice)
            await client.multi_pay_invoice([m.invoice for m in batch])
            keysend = await client.pay_keysend(payee, 4_000)
    answered = [m for m in messages(caplog) if " for 'app': " in m]
    assert len(answered) == 4
    assert re.fullmatch(
        r"request \w{16} pay_invoice for 'app': ok, 1 item, 2000 msat, [\d.]+ ms", answered[0]
    )
    assert re.fullmatch(
        r"request \w{16} pay_invoice for 'app': PAYMENT_FAILED \(payment failed: rejected by"
        r" the payee\), 1 item, 3000 msat, [\d.]+ ms",
        answered[1],
    )
    assert re.fullmatch(
        r"request \w{16} multi_pay_invoice for 'app': ok, 2 items, 2001 msat, [\d.]+ ms",
        answered[2],
    )
    assert re.fullmatch(
        r"request \w{16} pay_keysend for 'app': ok, 1 item, 4000 msat, [\d.]+ ms", answered[3]
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (good.invoice, good.preimage, keysend["preimage"], uri.secret.reveal_hex()):
        assert secret not in text


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("nwcd.service", logging.INFO, __file__, 1, message, (), None)


def test_json_lines_carry_the_fields_of_a_finished_request() -> None:
    fields = {"request_id": "ab" * 32, "method": "get_balance", "outcome": "ok", "items": 0}
    entry = record("request abab get_balance for 'app': ok, 3.0 ms")
    setattr(entry, FIELDS, fields)
    line = JsonFormatter().format(entry)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed == {
        "time": parsed["time"],
        "level": "INFO",
        "logger": "nwcd.service",
        "message": "request abab get_balance for 'app': ok, 3.0 ms",
        **fields,
    }
    assert parsed["time"].endswith("+00:00")


def test_every_json_line_is_one_object_even_with_a_traceback() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        entry = logging.LogRecord(
            "nwcd.relay", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info()
        )
    [line] = JsonFormatter().format(entry).splitlines()
    parsed = json.loads(line)
    assert (parsed["level"], parsed["message"]) == ("ERROR", "failed: x")
    assert "ValueError: bad" in parsed["exception"]
    # A field never overwrites what the line itself says.
    entry = record("plain")
    setattr(entry, FIELDS, {"message": "forged", "level": "DEBUG", "extra": 1})
    parsed = json.loads(JsonFormatter().format(entry))
    assert (parsed["message"], parsed["level"], parsed["extra"]) == ("plain", "INFO", 1)


def test_text_lines_say_it_in_words() -> None:
    stream = io.StringIO()
    handler = log_handler("text", stream)
    entry = record("request abab get_balance for 'app': ok, 3.0 ms")
    setattr(entry, FIELDS, {"request_id": "ab" * 32})
    handler.handle(entry)
    assert re.fullmatch(
        r"\S+ \S+ INFO nwcd.service: request abab get_balance for 'app': ok, 3.0 ms\n",
        stream.getvalue(),
    )
    with pytest.raises(ValueError, match="unknown log format"):
        log_handler("xml", stream)


@pytest.mark.parametrize(
    ("argv", "chosen"),
    [
        (["serve"], "text"),
        (["--log-format", "json", "serve"], "json"),
        (["serve", "--log-format", "json"], "json"),
        (["--log-format", "text", "serve", "--log-format", "json"], "json"),
        (["--log-format", "json", "relay"], "json"),
        (["--log-format", "json", "connection", "list"], "json"),
    ],
)
def test_log_format_is_a_global_option_and_one_of_serve(argv: list[str], chosen: str) -> None:
    args = build_parser().parse_args(argv)
    _merge_global_options(args)
    assert args.log_format == chosen


def test_an_unknown_log_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--log-format", "xml"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
