"""The ``nwcd`` command line.

Commands (``-v``, ``--data-dir``, ``--config`` and ``--log-format`` also go before the
command)::

    nwcd serve [--relay URL ...] [--log-format json]   run the wallet service
    nwcd relay [--host H] [--port N]             run the local relay (for local use only)
    nwcd connection create --name NAME ...       new app connection: prints its URI
    nwcd connection accept NWA_URI [--yes]       the connection an app asks for (nostr+walletauth)
    nwcd connection list | show | update | revoke   manage connections
    nwcd wallet balance | history                the backend's own view (no relay involved)
    nwcd sim invoice --amount-msat N ...         an invoice the simulator can pay
    nwcd sim release HASH --outcome ...          end a hanging simulated payment
    nwcd sim pay BOLT11 [--amount-msat N]        pay the wallet's invoice from outside
    nwcd sim node NAME | received NAME | lnurl   keysend payees, lightning addresses, zaps
    nwcd pay URI INVOICE...                      pay through a wallet (the client as a CLI)
    nwcd balance | info | invoice | lookup | history | keysend | watch | call URI ...
                                                 the other NIP-47 requests, as an app sends them
    nwcd demo                                    everything, on this machine

Exit codes: 0 done; 1 the wallet refused, or a payment failed or has no known outcome;
2 the command could not run (usage, configuration, relay, no answer); 130 interrupted.
Errors are one line on stderr (``-v`` adds the traceback).

The JSON printed by ``--json`` is a public interface: keep its shape stable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import json
import logging
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from nwcd import __version__
from nwcd.client.commands import DEFAULT_TIMEOUT, CommandError, format_msat, transaction_table
from nwcd.config import ConfigError, Settings, load_settings, parse_listen
from nwcd.datadir import secure_data_dir
from nwcd.errors import NwcdError
from nwcd.logs import LOG_FORMATS, log_handler
from nwcd.policy.grants import (
    SCOPES,
    BudgetPeriod,
    check_name,
    describe_methods,
    expand_methods,
)
from nwcd.service.admin import (
    KEEP,
    AdminError,
    Changes,
    Keep,
    Narrowing,
    NewConnection,
    Usage,
    create_connection,
    find_connection,
    grant_request,
    revoke_connection,
    update_connection,
    usages,
)
from nwcd.text import positive_sats

__all__ = ["main"]

if TYPE_CHECKING:
    from nwcd.ports import LightningBackend, Store
    from nwcd.service.daemon import WalletDaemon

log = logging.getLogger("nwcd")
T = TypeVar("T")

MAX_DEMO_INVOICES = 1000

LISTEN_TIMEOUT = 15.0
"""How long ``connection create`` waits for running services to listen for a new key
(longer than an instance's lease, so a killed instance drops out before it ends)."""


class CliError(CommandError):
    """A user mistake: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr and exit code 2; ``--help`` has the rest."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):
            message += " (a value that starts with '-' is written --option=VALUE)"
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


# -- argument types: each rejects a bad value with a message that says what is expected --


@dataclass(frozen=True, slots=True)
class _Grant:
    """A parsed ``--methods``: ``methods`` None means every method."""

    methods: frozenset[str] | None


def _name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _msat(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of msat (1 sat = 1000 msat)"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of msat, not {value}")
    return value


def _methods(text: str) -> _Grant:
    words = [word.strip() for word in text.split(",") if word.strip()]
    if not words:
        raise argparse.ArgumentTypeError(
            "give scopes (pay, receive, read, sign), method names or 'all', comma-separated"
        )
    if "all" in words:
        if len(words) > 1:
            raise argparse.ArgumentTypeError("'all' cannot be combined with other methods")
        return _Grant(None)
    try:
        return _Grant(expand_methods(words))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a positive number and a unit s, m, h, d or w"
            " (30d, 12h, 90m, 2w)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def _iso_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (2026-01-31, 2026-01-31T18:00,"
            " 2026-01-31T18:00+01:00)"
        ) from None


_LUD16 = re.compile(r"^[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _lud16(text: str) -> str:
    if not _LUD16.match(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a lightning address (name@example.com)")
    return text.strip()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TCP port: give 1 to 65535 (0: any free port)"
        )
    return value


def _count(low: int, high: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{what} must be a whole number from {low} to {high}, not {text}"
            )
        return value

    return parse


def _sat(text: str) -> int:
    try:
        return positive_sats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tlv(text: str) -> tuple[int, str]:
    kind, sep, value = text.partition("=")
    try:
        record_type = int(kind)
        bytes.fromhex(value)
    except ValueError:
        record_type = -1
    if not sep or record_type < 0 or not value or len(value) % 2:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a TLV record: TYPE=HEX, e.g. 696969=77616c6c6574"
        )
    return record_type, value.lower()


_KEY_HELP = "connection name, wallet or app pubkey (or a unique prefix of 8+ hex digits)"
_CONNECTION_EXAMPLES = (
    "examples:\n"
    "  nwcd connection create --name shop --relay wss://relay.example.com --methods pay,read\n"
    "  nwcd connection accept 'nostr+walletauth://...'\n"
    "  nwcd connection list\n"
    "  nwcd connection show shop --json\n"
    "  nwcd connection update shop --budget-msat 5000000 --budget-period daily\n"
    "  nwcd connection revoke shop\n"
)


def _grant_arguments(
    parser: argparse.ArgumentParser, *, updating: bool, accepting: bool = False
) -> None:
    """The options ``create``, ``update`` and ``accept`` share; ``update`` can also remove a
    limit; ``accept`` takes the app's relays and may only narrow what the app asks for."""
    if accepting:
        parser.add_argument(
            "--use-app-relays",
            action="store_true",
            help="use every relay the app names, also ones the service does not use yet"
            " (it then connects to them too); default: only relays it uses already",
        )
    else:
        relay_help = "relay URL (repeatable; default: the configured relays)"
        if updating:
            relay_help = "relay URL (repeatable; replaces the relays)"
        parser.add_argument("--relay", action="append", default=[], metavar="URL", help=relay_help)
    default = " (default: what the app asks for)" if accepting else ""
    parser.add_argument(
        "--methods",
        type=_methods,
        metavar="LIST",
        help="comma-separated scopes (pay, receive, read, sign), method names, or all"
        + ("" if updating else default or " (the default)"),
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--max-amount-msat", type=_msat, metavar="N", help="limit per payment")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-msat", type=_msat, metavar="N", help="most the app may spend per period" + default
    )
    parser.add_argument(
        "--budget-period",
        choices=[p.value for p in BudgetPeriod],
        help="when the budget renews, in the [service] timezone"
        + (default or " (default never)" if not updating else ""),
    )
    expiry = parser.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in", type=_duration, metavar="DURATION", help="e.g. 30d, 12h" + default
    )
    expiry.add_argument(
        "--expires-at",
        type=_iso_time,
        metavar="ISO",
        help="ISO date/time; without an offset, in the [service] timezone",
    )
    lud16 = parser.add_mutually_exclusive_group()
    lud16.add_argument(
        "--lud16", type=_lud16, metavar="ADDRESS", help="lightning address in the URI"
    )
    if updating:
        amount.add_argument("--no-max-amount", action="store_true", help="remove the limit")
        budget.add_argument("--no-budget", action="store_true", help="remove the budget")
        expiry.add_argument("--no-expiry", action="store_true", help="never expire")
        lud16.add_argument("--no-lud16", action="store_true", help="remove the lightning address")


_DATA_DIR_HELP = "state directory (env NWCD_DATA_DIR; default per user)"
_CONFIG_HELP = "TOML config file (env NWCD_CONFIG)"
_VERBOSE_HELP = "debug logging, and the traceback of an error"
_LOG_FORMAT_HELP = "log lines as text (the default) or one JSON object each"


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--data-dir", type=Path, metavar="DIR", help=_DATA_DIR_HELP)
    common.add_argument("--config", type=Path, metavar="FILE", help=_CONFIG_HELP)
    common.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    return common


def _client_common() -> _Parser:
    """What every client command takes: the URI, --json, --timeout, -v."""
    client = _Parser(add_help=False)
    client.add_argument(
        "uri",
        nargs="?",
        metavar="URI",
        help="connection URI, nostr+walletconnect://... (default: env NWC_URI)",
    )
    client.add_argument("--json", action="store_true", help="machine-readable output only")
    client.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    return client


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    """The filters shared by ``nwcd history`` (over NWC) and ``nwcd wallet history``."""
    parser.add_argument(
        "--limit",
        type=_count(1, 10_000, "the limit"),
        default=20,
        metavar="N",
        help="at most N transactions (default 20)",
    )
    parser.add_argument(
        "--type", choices=["incoming", "outgoing"], help="only incoming or only outgoing"
    )
    parser.add_argument(
        "--unpaid", action="store_true", help="also unpaid invoices and failed payments"
    )


def _timeout_argument(parser: argparse.ArgumentParser, default: float | None, what: str) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=default,
        metavar="SECONDS",
        help=what,
    )


def _amount_arguments(parser: argparse.ArgumentParser) -> None:
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--amount-sat", type=_sat, metavar="N", help="amount in sat")
    amount.add_argument(
        "--amount-msat", type=_msat, metavar="N", help="amount in msat (1 sat = 1000 msat)"
    )


def _new_invoice_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``invoice`` and ``hold-invoice`` ask the wallet for."""
    _amount_arguments(parser)
    parser.add_argument("--description", metavar="TEXT", help="what the payment is for")
    parser.add_argument(
        "--expiry",
        type=_count(1, 365 * 86400, "the expiry in seconds"),
        metavar="SECONDS",
        help="how long the invoice can be paid (default: the wallet's)",
    )
    _timeout_argument(parser, DEFAULT_TIMEOUT, _TIMEOUT_HELP)


_TIMEOUT_HELP = (
    f"give up after SECONDS in all: reaching the relay, the wallet's answer"
    f" (default {DEFAULT_TIMEOUT:g})"
)


def _client_commands(commands: Any) -> None:
    """The client commands: ``nwcd balance | budget | info | ... | call | pay``."""

    def add(name: str, help_text: str, examples: str, description: str = "") -> _Parser:
        parser: _Parser = commands.add_parser(
            name,
            parents=[_client_common()],
            help=help_text,
            description=description or help_text[0].upper() + help_text[1:] + ".",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="examples:\n" + examples,
        )
        return parser

    balance = add(
        "balance",
        "the wallet's balance, as this connection sees it",
        '  nwcd balance "$NWC_URI"\n  nwcd balance --json   # URI from NWC_URI\n',
    )
    _timeout_argument(balance, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    budget = add(
        "budget",
        "this connection's budget: used (payments in flight included), total, renewal",
        '  nwcd budget "$NWC_URI"\n  nwcd budget --json\n',
    )
    _timeout_argument(budget, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    info = add(
        "info",
        "what the wallet is and what this connection may do",
        '  nwcd info "$NWC_URI"\n  nwcd info --json\n',
    )
    _timeout_argument(info, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    invoice = add(
        "invoice",
        "ask the wallet for an invoice to receive a payment",
        '  nwcd invoice "$NWC_URI" --amount-sat 21 --description coffee\n'
        "  nwcd invoice --amount-msat 1500 --expiry 600 --json\n",
        description="Ask the wallet for an invoice. The invoice is printed alone on stdout;\n"
        "its amount, expiry and payment hash go to stderr.",
    )
    _new_invoice_arguments(invoice)

    hold = add(
        "hold-invoice",
        "ask the wallet for a hold invoice: the payment waits for you to settle or cancel it",
        '  nwcd hold-invoice "$NWC_URI" --amount-sat 21     # prints the preimage to keep\n'
        "  nwcd hold-invoice --amount-msat 1500 --payment-hash 3f2a...64 hex digits --json\n",
        description="Ask the wallet for a hold invoice. Without --payment-hash a new preimage\n"
        "is made and shown once on stderr (with --json: in the output): settling needs it.\n"
        "When a payer pays, the payment is held (nwcd watch shows hold_invoice_accepted)\n"
        "until `nwcd settle URI PREIMAGE` or `nwcd cancel URI PAYMENT_HASH`.",
    )
    _new_invoice_arguments(hold)
    hold.add_argument(
        "--payment-hash", metavar="HASH", help="the hash of a preimage you keep (64 hex digits)"
    )

    settle = add(
        "settle",
        "take the payment held by a hold invoice (reveals the preimage)",
        '  nwcd settle "$NWC_URI" 9c1e...64 hex digits\n',
    )
    settle.add_argument("preimage", metavar="PREIMAGE", help="the preimage (64 hex digits)")
    _timeout_argument(settle, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    cancel = add(
        "cancel",
        "give the payment held by a hold invoice back to its payer",
        '  nwcd cancel "$NWC_URI" 3f2a...64 hex digits\n',
    )
    cancel.add_argument(
        "payment_hash", metavar="PAYMENT_HASH", help="the hold invoice's payment hash"
    )
    _timeout_argument(cancel, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    lookup = add(
        "lookup",
        "look up an invoice or payment of this connection",
        '  nwcd lookup "$NWC_URI" 3f2a...64 hex digits\n  nwcd lookup lnbc210n1p... --json\n',
    )
    lookup.add_argument(
        "target", metavar="HASH_OR_INVOICE", help="payment hash (64 hex digits) or invoice"
    )
    _timeout_argument(lookup, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    history = add(
        "history",
        "this connection's transactions, newest first",
        '  nwcd history "$NWC_URI" --limit 10\n  nwcd history --type outgoing --unpaid --json\n',
    )
    _history_arguments(history)
    _timeout_argument(history, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    keysend = add(
        "keysend",
        "pay a node directly, without an invoice",
        '  nwcd keysend "$NWC_URI" 02ab...66 hex digits --amount-sat 21\n'
        "  nwcd keysend 03cd... --amount-msat 1500 --tlv 696969=77616c6c6574 --json\n",
    )
    keysend.add_argument("pubkey", metavar="PUBKEY", help="the node's pubkey (66 hex digits)")
    _amount_arguments(keysend)
    keysend.add_argument(
        "--tlv",
        type=_tlv,
        action="append",
        default=[],
        metavar="TYPE=HEX",
        help="a custom TLV record to send along (repeatable)",
    )
    _timeout_argument(keysend, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    watch = add(
        "watch",
        "print the wallet's notifications as they arrive",
        '  nwcd watch "$NWC_URI"\n'
        "  nwcd watch --count 1 --timeout 60 --json   # one JSON line each\n",
        description="Print notifications (payments sent and received, held payments) as they\n"
        "arrive, until Ctrl-C (or --count / --timeout).",
    )
    watch.add_argument(
        "--count",
        type=_count(1, 1_000_000, "the count"),
        metavar="N",
        help="stop after N notifications (exit 1 if --timeout passes first)",
    )
    _timeout_argument(watch, None, "stop after SECONDS (default: run until Ctrl-C)")

    call = add(
        "call",
        "send any NIP-47 request and print the raw result",
        '  nwcd call "$NWC_URI" get_budget\n'
        "  nwcd call make_invoice '{\"amount\": 21000}'   # URI from NWC_URI\n",
    )
    call.add_argument("method", metavar="METHOD", help="the NIP-47 method, e.g. get_info")
    call.add_argument(
        "params", nargs="?", metavar="JSON_PARAMS", help="the params as a JSON object"
    )
    _timeout_argument(call, DEFAULT_TIMEOUT, _TIMEOUT_HELP)

    pay = add(
        "pay",
        "pay invoices, lightning addresses, nodes, splits and podcast value blocks",
        '  nwcd pay "$NWC_URI" lnbc210n1p... lnbc1u1p...\n'
        "  nwcd pay lnbc210n1p... --timeout 30 --json   # URI from NWC_URI\n"
        '  nwcd pay "$NWC_URI" --to alice@example.com=2100 --to bob@example.com=900\n'
        '  nwcd pay "$NWC_URI" --split 10000 alice@example.com=60 bob@example.com=40\n'
        '  nwcd pay "$NWC_URI" --value-block feed.xml --amount-sat 1000 --message "great show"\n'
        '  nwcd pay "$NWC_URI" --to alice@example.com=21 --dry-run\n',
        description="Pay through a wallet in one multi_pay_invoice request (several above\n"
        "100 invoices; keysends in one multi_pay_keysend). Recipients: invoices, lightning\n"
        "addresses (name@host), LNURL-pay (lnurl1...) and node pubkeys (keysend), with an\n"
        "amount each (--to, in sat), a total split by shares (--split) or a podcast's value\n"
        "block (--value-block). Lightning addresses are resolved first, all at once, and\n"
        "each invoice is checked (amount, description hash) before anything is paid.\n"
        "Each recipient is shown by its position as its result arrives (preimages: with\n"
        "--json). Exit 0 when every recipient is paid (or was paid before), else 1.",
    )
    pay.add_argument(
        "invoices",
        nargs="*",
        metavar="INVOICE",
        help="BOLT-11 invoices (lnbc...) to pay",
    )
    pay.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="TARGET[=SATS]",
        help="a recipient: name@host, lnurl1..., a node pubkey or an invoice, and its"
        " amount in sat (an invoice's own amount when left out); repeat for more",
    )
    pay.add_argument(
        "--split",
        nargs="+",
        metavar=("TOTAL_SATS", "TARGET=SHARE"),
        help="split TOTAL_SATS over the TARGET=SHARE pairs after it (whole sats, rounded"
        " down; what is left over goes to the largest share)",
    )
    pay.add_argument(
        "--value-block",
        metavar="FEED",
        help="pay a podcast's value block (<podcast:value>) from a feed's XML file or URL",
    )
    pay.add_argument(
        "--amount-sat", type=_sat, metavar="N", help="with --value-block: the total to pay"
    )
    pay.add_argument(
        "--episode", metavar="GUID", help="with --value-block: the episode (its <guid>)"
    )
    pay.add_argument("--message", metavar="TEXT", help="with --value-block: a boostagram message")
    pay.add_argument(
        "--sender", metavar="NAME", help="with --value-block: your name in the boostagram"
    )
    pay.add_argument(
        "--comment", metavar="TEXT", help="a comment for each lightning address (LUD-12)"
    )
    pay.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve every recipient and show what would be paid; pay nothing",
    )
    pay.add_argument(
        "--amount-msat", type=_msat, metavar="N", help="the amount for invoices without one"
    )

    zap = add(
        "zap",
        "zap a note or a profile (NIP-57), zap splits included",
        '  nwcd zap "$NWC_URI" note1... --amount-sat 21 --comment "nice"\n'
        '  nwcd zap "$NWC_URI" npub1... --amount-sat 1000 --key "$NOSTR_NSEC"\n',
        description="Zap a note or a profile: the note's zap split (zap tags) or its author,\n"
        "or the profile's owner, each through the lightning address of its profile. The\n"
        "zap requests (kind 9734) are signed with --key (env NWCD_ZAP_KEY), else with a\n"
        "new key each time (an anonymous zap); all invoices are paid in one batch. Notes\n"
        "and profiles are read from the connection's relays and --relay.",
    )
    zap.add_argument("target", metavar="NOTE_OR_NPUB", help="note1, nevent1, npub1 or nprofile1")
    zap.add_argument("--amount-sat", type=_sat, required=True, metavar="N", help="amount in sat")
    zap.add_argument("--comment", metavar="TEXT", help="a comment for the zap")
    zap.add_argument(
        "--key", metavar="NSEC", help="your Nostr secret key (default: env NWCD_ZAP_KEY)"
    )
    zap.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="URL",
        help="also read notes and profiles here, and ask for the zap receipt here",
    )
    zap.add_argument(
        "--dry-run", action="store_true", help="resolve and show what would be paid; pay nothing"
    )
    _timeout_argument(zap, None, "give up waiting after SECONDS in all (default: 60 s)")
    _timeout_argument(
        pay,
        None,
        "give up waiting after SECONDS in all; payments still unanswered may complete"
        " later (default: 60 s + 0.5 s per invoice)",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="nwcd",
        description="Nostr Wallet Connect (NIP-47) wallet service, client and tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  nwcd demo\n"
        "  nwcd connection create --name my-app --relay wss://relay.example.com\n"
        "  nwcd serve --relay wss://relay.example.com\n"
        '  nwcd pay "$NWC_URI" lnbc1...                 # as an app would, through the relay\n'
        '  nwcd balance "$NWC_URI"                       # also info, invoice, lookup, history,\n'
        "                                                # keysend, hold-invoice, settle,\n"
        "                                                # cancel, watch, call\n"
        "  nwcd wallet balance                           # the backend itself, no relay\n",
    )
    parser.add_argument("--version", action="version", version=f"nwcd {__version__}")
    # Also accepted before the command (`nwcd -v serve`); after it, they win.
    parser.add_argument(
        "--data-dir", type=Path, dest="global_data_dir", metavar="DIR", help=_DATA_DIR_HELP
    )
    parser.add_argument(
        "--config", type=Path, dest="global_config", metavar="FILE", help=_CONFIG_HELP
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", dest="global_verbose", help=_VERBOSE_HELP
    )
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, dest="global_log_format", help=_LOG_FORMAT_HELP
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the wallet service",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the wallet service. The Lightning backend is [backend] kind in the\n"
        "config file, or NWCD_BACKEND:\n"
        "  simulator  a simulated wallet in the data dir (the default)\n"
        "  lnbits     one LNbits wallet ([backend.lnbits]; NWCD_LNBITS_ADMIN_KEY)\n"
        "  lnd        an LND node over REST ([backend.lnd]; NWCD_LND_MACAROON)\n"
        "  nwc        another NWC wallet, nwcd being one of its apps\n"
        "             ([backend.nwc] uri; NWCD_NWC_URI)",
        epilog="examples:\n"
        "  nwcd serve --relay wss://relay.example.com\n"
        "  NWCD_RELAYS=wss://a.example.com,wss://b.example.com nwcd serve\n"
        "  NWCD_BACKEND=nwc NWCD_NWC_URI='nostr+walletconnect://...' nwcd serve --relay wss://...\n",
    )
    serve.add_argument(
        "--relay",
        action="append",
        default=[],
        metavar="URL",
        help="relay URL to listen on (repeatable; default: NWCD_RELAYS or relays in the config)",
    )
    serve.add_argument("--log-format", choices=LOG_FORMATS, help=_LOG_FORMAT_HELP)

    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve the console, /health and /metrics there (e.g. 127.0.0.1:8420; default:"
        " NWCD_HTTP_LISTEN or [http] listen in the config; off if none)",
    )

    admin = commands.add_parser(
        "admin",
        help="the operator's console login",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nwcd admin set-password\n"
        "  printf '%s' \"$PASSWORD\" | nwcd admin set-password --stdin\n",
    )
    admin_commands = admin.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_password = admin_commands.add_parser(
        "set-password",
        parents=[common],
        help="set the console's admin password (stored as a scrypt hash; logs every session out)",
    )
    set_password.add_argument(
        "--stdin", action="store_true", help="read the password from standard input"
    )

    relay = commands.add_parser(
        "relay", parents=[common], help="run the local relay (for local use only)"
    )
    relay.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; keep it on loopback)",
    )
    relay.add_argument(
        "--port", type=_port, default=7777, help="TCP port (default 7777; 0: any free port)"
    )
    relay.add_argument("--log-format", choices=LOG_FORMATS, help=_LOG_FORMAT_HELP)

    connection = commands.add_parser(
        "connection",
        help="manage app connections",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Each connection is one app: its own wallet key, grant and limits.\n"
        "Changes take effect in a running `nwcd serve` on the same data dir within a second.",
        epilog=_CONNECTION_EXAMPLES,
    )
    conn_commands = connection.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = conn_commands.add_parser(
        "create",
        parents=[common],
        help="create a connection and print its URI and QR code",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create a connection and print the URI to give the app (shown once: the\n"
        "app's secret is not stored) with a QR code for the terminal.",
        epilog="examples:\n"
        "  nwcd connection create --name shop --relay wss://relay.example.com \\\n"
        "      --methods pay,read --max-amount-msat 1000000\n"
        "  nwcd connection create --name tips --budget-msat 5000000 --budget-period daily \\\n"
        "      --expires-in 30d --qr-png tips.png\n"
        "  nwcd connection create --name bot --methods get_balance,make_invoice --json\n"
        "\nscopes: pay (pay_invoice, multi_pay_invoice, pay_keysend, multi_pay_keysend),\n"
        "  receive (make_invoice), read (get_balance, get_info, lookup_invoice,\n"
        "  list_transactions), sign (sign_message); or 'all' (the default)\n",
    )
    create.add_argument("--name", required=True, type=_name, help="unique name of the app")
    _grant_arguments(create, updating=False)
    create.add_argument(
        "--qr-png", type=Path, metavar="FILE", help="also write the QR code to this PNG file"
    )
    create.add_argument("--json", action="store_true", help="machine-readable output only")
    accept = conn_commands.add_parser(
        "accept",
        parents=[common],
        help="create the connection an app asks for with an NWA URI (nostr+walletauth://)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show what the app asks for (methods, budget, expiry, relays), ask, and\n"
        "create the connection for the app's own key: the app keeps its secret, so there is\n"
        "no URI to hand over. The running service publishes the connection's info event on\n"
        "the app's relay, and the app takes the wallet's key from it.\n"
        "The options may only grant less than the app asks for. The app's max_amount is a\n"
        "budget per budget_renewal period, not a limit per payment.",
        epilog="examples:\n"
        "  nwcd connection accept 'nostr+walletauth://...'\n"
        "  nwcd connection accept 'nostr+walletauth://...' --name shop --methods get_info\n"
        "  nwcd connection accept 'nostr+walletauth://...' --budget-msat 1000000 --yes --json\n",
    )
    accept.add_argument("uri", metavar="URI", help="the app's nostr+walletauth:// URI")
    accept.add_argument(
        "--name", type=_name, help="name of the connection (default: the app's own)"
    )
    _grant_arguments(accept, updating=False, accepting=True)
    accept.add_argument("--yes", action="store_true", help="create it without asking")
    accept.add_argument("--json", action="store_true", help="machine-readable output only")

    listing = conn_commands.add_parser(
        "list",
        parents=[common],
        help="list connections with budget use, expiry and last use",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nwcd connection list\n  nwcd connection list --json\n",
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output only")
    show = conn_commands.add_parser(
        "show",
        parents=[common],
        help="show one connection",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nwcd connection show shop\n  nwcd connection show 3b1f9c0e --json\n",
    )
    show.add_argument("key", metavar="NAME|PUBKEY", help=_KEY_HELP)
    show.add_argument("--json", action="store_true", help="machine-readable output only")
    update = conn_commands.add_parser(
        "update",
        parents=[common],
        help="change a connection's grant, limits, expiry or relays",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Change a connection; options not given stay as they are.",
        epilog="examples:\n"
        "  nwcd connection update shop --methods pay,read,receive\n"
        "  nwcd connection update shop --budget-msat 2000000 --budget-period weekly\n"
        "  nwcd connection update shop --no-budget --no-max-amount --no-expiry\n"
        "  nwcd connection update shop --expires-at 2026-01-01T00:00\n",
    )
    update.add_argument("key", metavar="NAME|PUBKEY", help=_KEY_HELP)
    update.add_argument("--name", type=_name, help="rename the connection")
    _grant_arguments(update, updating=True)
    update.add_argument("--json", action="store_true", help="machine-readable output only")
    revoke = conn_commands.add_parser(
        "revoke",
        parents=[common],
        help="revoke a connection (at once, also in a running service)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nwcd connection revoke shop\n",
    )
    revoke.add_argument("key", metavar="NAME|PUBKEY", help=_KEY_HELP)

    sim = commands.add_parser("sim", help="the simulated Lightning network")
    sim_commands = sim.add_subparsers(dest="action", metavar="ACTION", required=True)
    invoice = sim_commands.add_parser(
        "invoice", parents=[common], help="an invoice a simulator-backed service can pay"
    )
    invoice.add_argument(
        "--amount-msat", type=int, required=True, metavar="N", help="the invoice amount in msat"
    )
    invoice.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        metavar="MS",
        help="how long paying it takes (default 0)",
    )
    invoice.add_argument(
        "--outcome",
        choices=["succeed", "fail", "hang"],
        default="succeed",
        help="what paying it does (default succeed; hang: until nwcd sim release)",
    )
    invoice.add_argument(
        "--fee-msat", type=int, default=0, metavar="N", help="the routing fee charged (default 0)"
    )
    invoice.add_argument("--description", metavar="TEXT", help="the invoice's description")
    invoice.add_argument(
        "--description-hash",
        metavar="HEX",
        help="commit to sha256 of a description instead (BOLT-11 h tag, 64 hex digits)",
    )
    invoice.add_argument("--json", action="store_true", help="machine-readable output only")
    release = sim_commands.add_parser("release", parents=[common], help="end a hanging payment")
    release.add_argument(
        "payment_hash", metavar="HASH", help="payment hash of an invoice made with --outcome hang"
    )
    release.add_argument(
        "--outcome", choices=["succeed", "fail"], required=True, help="how the payment ends"
    )
    sim_pay = sim_commands.add_parser(
        "pay",
        parents=[common],
        help="pay one of the wallet's invoices from outside (as a payer would)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pay an invoice the simulated wallet made (make_invoice or\n"
        "make_hold_invoice), as a payer elsewhere on the network would: an ordinary invoice\n"
        "settles at once (the app gets payment_received); a hold invoice's payment is held\n"
        "(hold_invoice_accepted) until the app settles or cancels it.",
        epilog="examples:\n"
        "  nwcd sim pay lnbcrt10u1p...\n"
        "  nwcd sim pay lnbcrt1p... --amount-msat 2100\n",
    )
    sim_pay.add_argument("invoice", metavar="BOLT11", help="an invoice of the simulated wallet")
    sim_pay.add_argument(
        "--amount-msat",
        type=int,
        metavar="N",
        help="the amount to pay (required for an invoice without an amount)",
    )
    outage = sim_commands.add_parser(
        "outage",
        parents=[common],
        help="make the simulated backend fail for a while (chaos testing)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make the simulated backend fail for a while, also in a running `nwcd serve`\n"
        "on the same data dir (from its next backend call): every backend call of the\n"
        "service fails, except the stream of incoming payments.",
        epilog="examples:\n"
        "  nwcd sim outage --mode error --seconds 30\n"
        "  nwcd sim outage --mode hang --seconds 10\n"
        "  nwcd sim outage --end\n",
    )
    _sim_recipient_commands(sim_commands, common)
    outage_action = outage.add_mutually_exclusive_group(required=True)
    outage_action.add_argument(
        "--mode",
        choices=["error", "hang"],
        help="error: calls fail at once (payments are started, their answer is lost);"
        " hang: calls wait until the outage ends, then go on",
    )
    outage_action.add_argument("--end", action="store_true", help="end the outage now")
    outage.add_argument(
        "--seconds", type=_seconds, metavar="N", help="how long the outage lasts (with --mode)"
    )

    _client_commands(commands)

    wallet = commands.add_parser(
        "wallet",
        help="the wallet backend's own view (for the operator; no relay involved)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The configured Lightning backend, opened directly (the [backend] of the\n"
        "config, on the data dir): what the wallet holds, whatever the connections.",
        epilog="examples:\n  nwcd wallet balance\n  nwcd wallet history --limit 50 --json\n",
    )
    wallet_commands = wallet.add_subparsers(dest="action", metavar="ACTION", required=True)
    wallet_balance = wallet_commands.add_parser(
        "balance", parents=[common], help="the backend's spendable balance"
    )
    wallet_balance.add_argument("--json", action="store_true", help="machine-readable output only")
    wallet_history = wallet_commands.add_parser(
        "history", parents=[common], help="the backend's transactions, newest first"
    )
    _history_arguments(wallet_history)
    wallet_history.add_argument("--json", action="store_true", help="machine-readable output only")

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the whole flow locally",
        description="Start a local relay, the wallet service on the simulator and a connection,\n"
        "then pay a batch of invoices through the relay (one set to fail).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nwcd demo\n  nwcd demo --invoices 250\n",
    )
    demo.add_argument(
        "--invoices",
        type=_count(1, MAX_DEMO_INVOICES, "the batch size"),
        default=12,
        metavar="N",
        help=f"how many invoices to pay, 1 to {MAX_DEMO_INVOICES} (default 12; above 100 the"
        " client sends several requests)",
    )
    demo.add_argument(
        "--store",
        metavar="URL",
        help="a postgresql:// store instead of SQLite (default: [store] url / NWCD_STORE_URL)",
    )
    return parser


def _settings(args: argparse.Namespace, relays: Sequence[str] = ()) -> Settings:
    return load_settings(config_file=args.config, data_dir=args.data_dir, relays=tuple(relays))


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        handlers=[log_handler(log_format, sys.stderr)],
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # Neither log format shows threads or processes: not looked up for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


# -- serve / relay ---------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import lock_for_serving, open_backend, open_store, service_settings
    from nwcd.service.daemon import DaemonOptions, LeaseLost, WalletDaemon

    settings = _settings(args, args.relay)
    _check_relays(
        settings.relays,
        where="no relays to serve on: give --relay wss://... (repeatable), set"
        ' NWCD_RELAYS=wss://a,wss://b, or relays = ["wss://..."] in the config file',
    )
    if args.http is not None:
        allow_remote = settings.http is not None and settings.http.remote
        settings = replace(settings, http=parse_listen(args.http, allow_remote=allow_remote))
    with lock_for_serving(settings):
        store = await open_store(settings)
        try:
            backend = await open_backend(settings)
        except BaseException:
            await store.close()
            raise
        try:
            daemon = WalletDaemon(
                store=store,
                backend=backend,
                settings=service_settings(settings),
                options=DaemonOptions(
                    relays=settings.relays,
                    lease=settings.store_lease,
                    heartbeat_interval=settings.store_lease / 5,
                ),
            )
            running = asyncio.current_task()
            assert running is not None
            loop = asyncio.get_running_loop()
            # SIGTERM/SIGINT: stop taking requests, let payments in flight finish (to a
            # deadline), then exit; whatever is left open is resolved on the next start.
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, running.cancel)
            try:
                async with _console(settings, store, backend, daemon):
                    await daemon.run()
            except asyncio.CancelledError:
                log.info("nwcd stopped")
            except LeaseLost:
                # Another instance took this one's work over: a supervisor restarts it.
                return 1
        finally:
            await backend.close()
            await store.close()
    return 0


def _console(
    settings: Settings, store: Store, backend: LightningBackend, daemon: WalletDaemon
) -> contextlib.AbstractAsyncContextManager[object]:
    """The console while the service runs, if ``[http] listen`` (or ``--http``) is set."""
    if settings.http is None:
        return contextlib.nullcontext()
    from nwcd.console.app import ConsoleServices
    from nwcd.console.credentials import Credentials
    from nwcd.console.server import console_server
    from nwcd.service.health import health as service_health

    async def health() -> tuple[bool, dict[str, Any]]:
        report = await service_health(daemon)
        return report.ok, report.as_json()

    services = ConsoleServices(
        store=store,
        backend=backend,
        relays=settings.relays,
        credentials=Credentials(settings.data_dir),
        tz=settings.timezone(),
        health=health,
        metrics=daemon.metrics.render,
    )
    return console_server(settings.http, services)


async def _admin_set_password(args: argparse.Namespace) -> int:
    from nwcd.console.auth import MIN_PASSWORD_LENGTH
    from nwcd.console.credentials import Credentials

    settings = _settings(args)
    if args.stdin:
        password = sys.stdin.read().rstrip("\r\n")
    else:
        password = getpass.getpass("New console password: ")
        if getpass.getpass("Again: ") != password:
            raise CliError("the two passwords differ; nothing was changed")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CliError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    secure_data_dir(settings.data_dir)
    Credentials(settings.data_dir).set_password(password)
    print("console password set; every console session was logged out")
    return 0


async def _relay(args: argparse.Namespace) -> int:
    from nwcd.relay.server import run_relay

    def listening(url: str) -> None:
        print(f"nwcd relay listening on {url} (for local use only)", flush=True)

    try:
        await run_relay(args.host, args.port, on_listening=listening)
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        match exc.errno:
            case errno.EADDRINUSE:
                hint = (
                    "address already in use: another program (an nwcd relay?) listens there;"
                    " stop it or choose another --port"
                )
            case errno.EACCES:
                hint = "permission denied: ports below 1024 need privileges; choose --port 1024+"
            case errno.EADDRNOTAVAIL:
                hint = "address not available: --host must be an address of this machine"
            case _:
                reason = exc.strerror or str(exc)
                hint = f"{reason} (check --host and --port)"
        raise CliError(f"cannot listen on {where}: {hint}") from exc
    return 0


# -- connections -----------------------------------------------------------------------


def _expiry(args: argparse.Namespace, now: int, tz: tzinfo) -> int | None:
    """``--expires-in`` / ``--expires-at`` as a Unix time (None: neither was given)."""
    if args.expires_in is not None:
        return now + int(args.expires_in)
    if args.expires_at is not None:
        when: datetime = args.expires_at
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        stamp = int(when.timestamp())
        if stamp <= now:
            raise CliError(f"--expires-at {when.isoformat()} is in the past")
        return stamp
    return None


def _check_relays(relays: Sequence[str], *, where: str = "") -> tuple[str, ...]:
    if not relays:
        raise CliError(
            where or "give at least one --relay URL (or set relays in the config / NWCD_RELAYS)"
        )
    for relay in relays:
        try:
            parts = urlsplit(relay)
            valid = parts.scheme in ("ws", "wss") and bool(parts.hostname)
            _ = parts.port
        except ValueError:
            valid = False
        if not valid:
            raise CliError(f"relay {relay!r} is not a ws:// or wss:// URL")
    return tuple(dict.fromkeys(relays))


def _check_png_target(path: Path) -> None:
    """Fail before the connection is stored, not after (the URI is shown only once)."""
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise CliError(f"--qr-png: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise CliError(f"--qr-png: {str(path)!r} is a folder")
    if not os.access(folder, os.W_OK):
        raise CliError(f"--qr-png: cannot write into {str(folder)!r}")


async def _connection_create(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    settings = _settings(args, args.relay)
    relays = _check_relays(settings.relays)
    if args.budget_period is not None and args.budget_msat is None:
        raise CliError("--budget-period needs --budget-msat (the amount that renews)")
    if args.qr_png is not None:
        _check_png_target(args.qr_png)
    now = int(time.time())
    new = NewConnection(
        name=args.name,
        relays=relays,
        methods=args.methods.methods if args.methods is not None else None,
        max_amount_msat=args.max_amount_msat,
        budget_msat=args.budget_msat,
        budget_period=BudgetPeriod(args.budget_period or BudgetPeriod.NEVER.value),
        expires_at=_expiry(args, now, settings.timezone()),
        lud16=args.lud16,
    )
    store = await open_store(settings)
    try:
        created = await create_connection(store, new, now=now, listen_timeout=LISTEN_TIMEOUT)
    finally:
        await store.close()
    _warn_behind(created.behind)
    import segno

    assert created.uri is not None  # nwcd made the app's key: the URI carries it
    uri = created.uri.format()
    connection = created.connection
    qr = segno.make(uri, error="m")
    if args.qr_png is not None:
        qr.save(str(args.qr_png), scale=6)
    if args.json:
        print(
            json.dumps(
                {
                    "name": connection.name,
                    "uri": uri,
                    "wallet_pubkey": connection.wallet_pubkey,
                    "app_pubkey": connection.app_pubkey,
                }
            )
        )
        return 0
    print(f"Connection {connection.name!r} created. Give this URI to the app (shown once):\n")
    print(uri + "\n")
    qr.terminal(out=sys.stdout, compact=True)
    if args.qr_png is not None:
        print(f"\nQR code written to {args.qr_png}")
    return 0


def _warn_behind(behind: Sequence[str]) -> None:
    if behind:
        one = len(behind) == 1
        print(
            f"warning: {len(behind)} running nwcd serve"
            f" {'instance did' if one else 'instances did'} not confirm within"
            f" {LISTEN_TIMEOUT:.0f} s that {'it listens' if one else 'they listen'}"
            " for this connection; requests sent before then may get no answer",
            file=sys.stderr,
        )


def _grant_fields(new: NewConnection, tz: tzinfo) -> dict[str, str]:
    """What a new connection is granted, as ``accept`` shows it (labels -> values)."""
    if new.budget_msat is None:
        budget = "none: it may spend the whole balance" if _may_pay(new) else "none"
    else:
        period = new.budget_period
        per = "in all (never renews)" if period is BudgetPeriod.NEVER else period.value
        budget = f"{format_msat(new.budget_msat)} {per}"
    return {
        "name": new.name,
        "methods": "every method"
        if new.methods is None
        else ", ".join(m for m in sorted(new.methods)),
        "budget": budget,
        "max per payment": format_msat(new.max_amount_msat)
        if new.max_amount_msat is not None
        else "none",
        "expires": _when(new.expires_at, tz),
        "relays": " ".join(new.relays),
    }


def _may_pay(new: NewConnection) -> bool:
    return new.methods is None or not new.methods.isdisjoint(SCOPES["pay"])


def _ask(question: str) -> bool:
    """A yes/no question on the terminal (refused without one: ``--yes`` is the way)."""
    if not sys.stdin.isatty():
        raise CliError("not on a terminal to ask: give --yes to accept without asking")
    print(question, end=" ", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def _connection_accept(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store
    from nwcd.nip47.app_request import AppRequestError, parse_nwa_uri

    settings = _settings(args)
    service_relays = _check_relays(settings.relays) if settings.relays else ()
    tz = settings.timezone()
    now = int(time.time())
    try:
        request = parse_nwa_uri(args.uri, now=now)
    except AppRequestError as exc:
        raise CliError(f"cannot accept this request: {exc}") from None
    narrowing = Narrowing(
        name=args.name,
        methods=args.methods.methods if args.methods is not None else None,
        budget_msat=args.budget_msat,
        budget_period=BudgetPeriod(args.budget_period) if args.budget_period else None,
        expires_at=_expiry(args, now, tz),
        max_amount_msat=args.max_amount_msat,
        lud16=args.lud16,
        use_app_relays=args.use_app_relays,
    )
    new = grant_request(request, narrowing, service_relays=service_relays)
    wanted = grant_request(request, Narrowing(use_app_relays=True), service_relays=service_relays)
    asked, granted = _grant_fields(wanted, tz), _grant_fields(new, tz)
    asked["name"] = request.name or "(none given)"
    lines = [f"The app {request.app_pubkey.hex} asks for a connection:"]
    for label, value in asked.items():
        lines.append(f"  {label + ':':17}{value}")
        if label != "name" and granted[label] != value:
            lines.append(f"  {'':17}you grant: {granted[label]}")
    if request.notification_types:
        lines.append(f"  {'notifications:':17}{' '.join(sorted(request.notification_types))}")
    if request.isolated:
        lines.append(
            f"  {'isolated:':17}asked, but nwcd has no separate balances: the app pays from"
            " the wallet's, within its budget"
        )
    if request.return_to:
        lines.append(f"  {'returns to:':17}{request.return_to}")
    lines.append(f"It is named {new.name!r} ({new.name + ' 2'!r}... if that name is taken).")
    # With --json, stdout is the result alone: what is shown before goes to stderr.
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if not args.yes and not _ask("Create this connection? [y/N]"):
        print("not created", file=sys.stderr)
        return 1
    store = await open_store(settings)
    try:
        created = await create_connection(store, new, now=now, listen_timeout=LISTEN_TIMEOUT)
        serving = bool(await store.live_instances(int(time.time())))
    finally:
        await store.close()
    _warn_behind(created.behind)
    connection = created.connection
    if args.json:
        print(
            json.dumps(
                {
                    "name": connection.name,
                    "wallet_pubkey": connection.wallet_pubkey,
                    "app_pubkey": connection.app_pubkey,
                    "relays": list(connection.relays),
                }
            )
        )
        return 0
    print(f"\nConnection {connection.name!r} created for the app.")
    print(f"wallet pubkey: {connection.wallet_pubkey}")
    where = ", ".join(connection.relays)
    if serving:
        print(f"The service publishes its info event on {where}; the app takes it from there.")
    else:
        print(
            f"No nwcd serve is running: once one starts, it publishes the info event on"
            f" {where} and the app takes it from there."
        )
    return 0


def _connection_json(usage: Usage) -> dict[str, Any]:
    c = usage.connection
    return {
        "name": c.name,
        "wallet_pubkey": c.wallet_pubkey,
        "app_pubkey": c.app_pubkey,
        "methods": sorted(c.methods) if c.methods is not None else "all",
        "relays": list(c.relays),
        "max_amount_msat": c.max_amount_msat,
        "budget_msat": c.budget_msat,
        "budget_period": c.budget_period.value,
        "expires_at": c.expires_at,
        "created_at": c.created_at,
        "last_used_at": c.last_used_at,
        "revoked": c.revoked_at is not None,
        # Added later; the keys above keep their meaning.
        "state": usage.state,
        "revoked_at": c.revoked_at,
        "lud16": c.lud16,
        "budget_used_msat": usage.used_msat,
        "budget_remaining_msat": usage.remaining_msat,
        "budget_renews_at": usage.window_end if c.budget_msat is not None else None,
    }


def _when(stamp: int | None, tz: tzinfo, never: str = "never") -> str:
    if stamp is None:
        return never
    return datetime.fromtimestamp(stamp, tz).strftime("%Y-%m-%d %H:%M %Z")


def _budget_text(usage: Usage, tz: tzinfo) -> str:
    c = usage.connection
    if c.budget_msat is None:
        return "none"
    renews = (
        f", renews {_when(usage.window_end, tz)}"
        if usage.window_end is not None
        else ", never renews"
    )
    return (
        f"{c.budget_msat} msat {c.budget_period.value}: {usage.used_msat} used,"
        f" {usage.remaining_msat} left{renews}"
    )


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def _connection_list(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    settings = _settings(args)
    tz = settings.timezone()
    store = await open_store(settings)
    try:
        found = await usages(store, await store.connections(), tz, now=int(time.time()))
    finally:
        await store.close()
    if args.json:
        print(json.dumps([_connection_json(u) for u in found]))
        return 0
    if not found:
        print("no connections yet: nwcd connection create --name NAME --relay URL")
        return 0
    rows = [
        [
            "NAME",
            "STATE",
            "WALLET",
            "APP",
            "METHODS",
            "BUDGET",
            "USED",
            "LEFT",
            "EXPIRES",
            "LAST USED",
        ]
    ]
    for u in found:
        c = u.connection
        rows.append(
            [
                c.name,
                u.state,
                c.wallet_pubkey[:12],
                c.app_pubkey[:12],
                describe_methods(c.methods),
                f"{c.budget_msat}/{c.budget_period.value}" if c.budget_msat is not None else "-",
                str(u.used_msat),
                str(u.remaining_msat) if u.remaining_msat is not None else "-",
                _when(c.expires_at, tz),
                _when(c.last_used_at, tz),
            ]
        )
    print(_table(rows))
    print("\n(amounts in msat; USED counts payments in flight; times in the [service] timezone)")
    return 0


def _print_connection(usage: Usage, tz: tzinfo) -> None:
    c = usage.connection
    methods = describe_methods(c.methods)
    if c.methods is not None and methods != ",".join(sorted(c.methods)):
        methods += f" ({', '.join(m for m in c.allowed_methods(c.methods))})"
    fields = [
        ("name", c.name),
        ("state", usage.state),
        ("wallet pubkey", c.wallet_pubkey),
        ("app pubkey", c.app_pubkey),
        ("methods", methods),
        ("relays", " ".join(c.relays)),
        (
            "max per payment",
            f"{c.max_amount_msat} msat" if c.max_amount_msat is not None else "none",
        ),
        ("budget", _budget_text(usage, tz)),
        ("expires", _when(c.expires_at, tz)),
        ("lud16", c.lud16 or "none"),
        ("created", _when(c.created_at, tz)),
        ("last used", _when(c.last_used_at, tz)),
    ]
    if c.revoked_at is not None:
        fields.insert(2, ("revoked", _when(c.revoked_at, tz)))
    for label, value in fields:
        print(f"{label + ':':17}{value}")


async def _connection_show(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    settings = _settings(args)
    tz = settings.timezone()
    store = await open_store(settings)
    try:
        connection = find_connection(await store.connections(), args.key)
        [usage] = await usages(store, [connection], tz, now=int(time.time()))
    finally:
        await store.close()
    if args.json:
        print(json.dumps(_connection_json(usage)))
    else:
        _print_connection(usage, tz)
    return 0


_UPDATE_FLAGS = (
    "name",
    "relay",
    "methods",
    "max_amount_msat",
    "no_max_amount",
    "budget_msat",
    "no_budget",
    "budget_period",
    "expires_in",
    "expires_at",
    "no_expiry",
    "lud16",
    "no_lud16",
)


def _change(remove: bool, value: T | None) -> T | Keep | None:
    """A ``--no-X`` flag removes (None), a value sets, neither keeps."""
    return None if remove else KEEP if value is None else value


def _changes(args: argparse.Namespace, now: int, tz: tzinfo) -> Changes:
    """The changes the flags ask for."""

    expires: int | Keep | None = KEEP
    if args.no_expiry:
        expires = None
    elif args.expires_in is not None or args.expires_at is not None:
        expires = _expiry(args, now, tz)
    return Changes(
        name=args.name,
        relays=_check_relays(args.relay) if args.relay else None,
        methods=args.methods.methods if args.methods is not None else KEEP,
        max_amount_msat=_change(args.no_max_amount, args.max_amount_msat),
        budget_msat=_change(args.no_budget, args.budget_msat),
        budget_period=BudgetPeriod(args.budget_period) if args.budget_period else None,
        expires_at=expires,
        lud16=_change(args.no_lud16, args.lud16),
    )


async def _connection_update(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    settings = _settings(args)
    tz = settings.timezone()
    now = int(time.time())
    store = await open_store(settings)
    try:
        old, new = await update_connection(
            store, args.key, _changes(args, now, tz), listen_timeout=LISTEN_TIMEOUT
        )
        [usage] = await usages(store, [new], tz, now=now)
    finally:
        await store.close()
    if args.json:
        print(json.dumps(_connection_json(usage)))
        return 0
    print(f"connection {old.name!r} updated (a running service follows within a second)")
    if new.relays != old.relays or new.lud16 != old.lud16:
        print(
            "note: the app's URI still names the old relays / lightning address; tell the app"
            " the new ones (or create a new connection)"
        )
    print()
    _print_connection(usage, tz)
    return 0


async def _connection_revoke(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    store = await open_store(_settings(args))
    try:
        connection, already = await revoke_connection(
            store, args.key, now=int(time.time()), listen_timeout=LISTEN_TIMEOUT
        )
    finally:
        await store.close()
    if already:
        print(f"connection {connection.name!r} was revoked already")
    else:
        print(f"connection {connection.name!r} revoked (a running service follows within a second)")
    return 0


# -- simulator -------------------------------------------------------------------------


def _sim_recipient_commands(sim_commands: Any, common: argparse.ArgumentParser) -> None:
    """``nwcd sim node | received | lnurl``: payees whose side of a payment one can see."""
    node = sim_commands.add_parser(
        "node",
        parents=[common],
        help="a named simulated node (a keysend payee); prints its pubkey",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  nwcd sim node podcast\n"
        '  nwcd keysend "$NWC_URI" $(nwcd sim node podcast) --amount-sat 21\n',
    )
    node.add_argument("name", metavar="NAME", help="a-z, 0-9, '.', '_', '-' (made if new)")
    node.add_argument("--json", action="store_true", help="machine-readable output only")
    received = sim_commands.add_parser(
        "received",
        parents=[common],
        help="what a simulated node received: keysends with their TLV records, paid invoices",
    )
    received.add_argument("node", metavar="NAME|PUBKEY", help="a named node or a payee pubkey")
    received.add_argument("--json", action="store_true", help="machine-readable output only")
    lnurl = sim_commands.add_parser(
        "lnurl",
        parents=[common],
        help="serve lightning addresses (LNURL-pay, zaps) of simulated nodes until Ctrl-C",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve NAME@HOST:PORT lightning addresses in plain HTTP: any NAME is a\n"
        "simulated node, made on first use. A wallet on this data dir pays them; see what\n"
        "arrived with `nwcd sim received NAME`.",
        epilog="examples:\n  nwcd sim lnurl --port 8085\n  nwcd sim lnurl --json\n",
    )
    lnurl.add_argument(
        "--port", type=int, default=0, metavar="P", help="the port (default 0: any free one)"
    )
    lnurl.add_argument("--host", default="127.0.0.1", help="the address (default 127.0.0.1)")
    lnurl.add_argument(
        "--json", action="store_true", help="print one JSON line (url, port, example address)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


async def _sim_invoice(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_simulator

    if args.amount_msat <= 0:
        raise CliError("--amount-msat must be positive")
    async with await open_simulator(_settings(args)) as backend:
        try:
            invoice = await backend.create_invoice(
                args.amount_msat,
                latency_ms=args.latency_ms,
                outcome=args.outcome,
                fee_msat=args.fee_msat,
                description=args.description,
                description_hash=args.description_hash,
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {
                    "invoice": invoice.invoice,
                    "payment_hash": invoice.payment_hash,
                    "amount_msat": invoice.amount_msat,
                }
            )
        )
    else:
        print(invoice.invoice)
        print(f"payment hash {invoice.payment_hash}", file=sys.stderr)
    return 0


async def _sim_release(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_simulator

    async with await open_simulator(_settings(args)) as backend:
        try:
            await backend.release(args.payment_hash, args.outcome)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    print(f"released {args.payment_hash} with outcome {args.outcome}")
    return 0


async def _sim_pay(args: argparse.Namespace) -> int:
    from nwcd import bolt11
    from nwcd.backends.simulator import SimulatorError
    from nwcd.bootstrap import open_simulator
    from nwcd.errors import InvalidInvoice

    try:
        payment_hash = bolt11.decode(args.invoice.strip()).payment_hash
    except InvalidInvoice as exc:
        raise CliError(f"not a valid invoice: {exc}") from None
    async with await open_simulator(_settings(args)) as backend:
        try:
            tx = await backend.receive(payment_hash, args.amount_msat)
        except SimulatorError as exc:
            raise CliError(str(exc)) from None
    held = " (held: the app settles or cancels it)" if tx.state == "accepted" else ""
    print(f"paid {tx.amount_msat} msat to {payment_hash}: {tx.state}{held}")
    return 0


async def _sim_outage(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_simulator

    if args.end and args.seconds is not None:
        raise CliError("--end takes no --seconds")
    if args.mode is not None and args.seconds is None:
        raise CliError("--mode needs --seconds (how long the outage lasts)")
    async with await open_simulator(_settings(args)) as backend:
        await backend.set_outage(None if args.end else args.mode, args.seconds or 0)
    if args.end:
        print("simulated backend outage ended")
    else:
        print(f"simulated backend outage ({args.mode}) for {args.seconds:g} s")
    return 0


async def _sim_node(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_simulator

    async with await open_simulator(_settings(args)) as backend:
        pubkey = await backend.add_node(args.name, existing_ok=True)
    print(json.dumps({"name": args.name, "pubkey": pubkey}) if args.json else pubkey)
    return 0


async def _sim_received(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_simulator

    async with await open_simulator(_settings(args)) as backend:
        received = await backend.received(args.node)
    if args.json:
        print(json.dumps({"received": [_received_json(got) for got in received]}))
    elif not received:
        print(f"{args.node} received nothing yet", file=sys.stderr)
    for got in () if args.json else received:
        print("\n".join(_received_lines(got)))
    return 0


def _received_json(got: Any) -> dict[str, Any]:
    """A :class:`~nwcd.backends.simulator.ReceivedPayment` in ``sim received --json``."""
    return {
        "kind": got.kind,
        "amount_msat": got.amount_msat,
        "payment_hash": got.payment_hash,
        "at": int(got.at),
        "tlv_records": [
            {"type": r.type, "value": r.value, "text": r.text, "json": r.json}
            for r in got.tlv_records
        ],
        "description": got.description,
        "metadata": got.metadata,
    }


def _received_lines(got: Any) -> list[str]:
    """One payment of ``sim received``: a headline, then its TLV records, comment or zap."""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(got.at))
    lines = [f"{at}  {got.kind:<7}  {got.amount_msat} msat  {got.payment_hash}"]
    for record in got.tlv_records:
        if record.text and record.text.isprintable():
            lines.append(f"  tlv {record.type}: {record.text}")
        else:
            lines.append(f"  tlv {record.type} (hex): {record.value}")
    metadata = got.metadata or {}
    if metadata.get("comment"):
        lines.append(f"  comment: {metadata['comment']}")
    zap = metadata.get("zap_request")
    if isinstance(zap, dict):
        lines.append(f"  zap from {zap.get('pubkey')}: {zap.get('content', '')}")
    return lines


async def _sim_lnurl(args: argparse.Namespace) -> int:
    from nwcd.backends.sim_lnurl import lnurl_server
    from nwcd.bootstrap import open_simulator

    if not 0 <= args.port <= 65535:
        raise CliError("--port must be in [0, 65535]")
    async with (
        await open_simulator(_settings(args)) as backend,
        lnurl_server(backend, args.host, args.port) as server,
    ):
        example = server.address("alice")
        if args.json:
            shown = {
                "url": server.url,
                "port": server.port,
                "authority": server.authority,
                "example_address": example,
                "nostr_pubkey": server.nostr_pubkey,
            }
            print(json.dumps(shown), flush=True)
        else:
            print(f"LNURL server on {server.url} (any name is a simulated node)")
            print(f"pay e.g. {example} from a wallet on this data dir, then see it with:")
            print("  nwcd sim received alice")
            print("Ctrl-C stops it", flush=True)
        await asyncio.Event().wait()
    return 0  # pragma: no cover - only Ctrl-C ends it


# -- wallet / demo ----------------------------------------------------------------------


async def _wallet_call(args: argparse.Namespace, ask: Any) -> Any:
    """Open the configured backend, ask it one thing, close it."""
    from nwcd.bootstrap import open_backend
    from nwcd.errors import BackendError

    settings = _settings(args)
    backend = await open_backend(settings)
    try:
        return await ask(backend)
    except BackendError as exc:
        raise CliError(
            f"the {settings.backend_kind} backend failed: {exc or type(exc).__name__}"
        ) from exc
    finally:
        await backend.close()


async def _wallet_balance(args: argparse.Namespace) -> int:
    async def ask(backend: Any) -> int:
        return int(await backend.get_balance())

    msat = await _wallet_call(args, ask)
    if args.json:
        print(json.dumps({"balance": msat}))
    else:
        print(f"balance {format_msat(msat)} ({_settings(args).backend_kind} backend)")
    return 0


async def _wallet_history(args: argparse.Namespace) -> int:
    from nwcd.nip47.methods import ListTransactionsParams

    params = ListTransactionsParams(limit=args.limit, unpaid=args.unpaid, type=args.type)

    async def ask(backend: Any) -> Any:
        return await backend.list_transactions(params)

    transactions = await _wallet_call(args, ask)
    if args.json:
        print(json.dumps({"transactions": [tx.to_json() for tx in transactions]}))
    elif not transactions:
        print("no transactions" + ("" if args.unpaid else " (--unpaid also lists open ones)"))
    else:
        print(transaction_table(transactions))
    return 0


async def _client_command(args: argparse.Namespace) -> int:
    from nwcd.client.commands import HANDLERS

    return await HANDLERS[args.command](args)


async def _demo(args: argparse.Namespace) -> int:
    from nwcd.demo import run_demo

    store_url = args.store or _settings(args).store_url
    if store_url is not None and not store_url.startswith(("postgresql://", "postgres://")):
        raise CliError("--store must be a postgresql:// URL")
    return await run_demo(data_dir=args.data_dir, count=args.invoices, store_url=store_url)


_CLIENT_COMMANDS = (
    "balance",
    "budget",
    "info",
    "invoice",
    "hold-invoice",
    "settle",
    "cancel",
    "lookup",
    "history",
    "keysend",
    "watch",
    "call",
    "pay",
    "zap",
)

_COMMANDS: dict[
    tuple[str, str | None], Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
] = {
    ("serve", None): _serve,
    ("relay", None): _relay,
    ("admin", "set-password"): _admin_set_password,
    ("connection", "create"): _connection_create,
    ("connection", "accept"): _connection_accept,
    ("connection", "list"): _connection_list,
    ("connection", "show"): _connection_show,
    ("connection", "update"): _connection_update,
    ("connection", "revoke"): _connection_revoke,
    ("sim", "invoice"): _sim_invoice,
    ("sim", "release"): _sim_release,
    ("sim", "outage"): _sim_outage,
    ("sim", "pay"): _sim_pay,
    ("sim", "node"): _sim_node,
    ("sim", "received"): _sim_received,
    ("sim", "lnurl"): _sim_lnurl,
    ("wallet", "balance"): _wallet_balance,
    ("wallet", "history"): _wallet_history,
    ("demo", None): _demo,
    **{(name, None): _client_command for name in _CLIENT_COMMANDS},
}


def _merge_global_options(args: argparse.Namespace) -> None:
    """Options given before the command count as given after it (where it takes them)."""
    if getattr(args, "data_dir", None) is None:
        args.data_dir = args.global_data_dir
    if getattr(args, "config", None) is None:
        args.config = args.global_config
    args.verbose = bool(getattr(args, "verbose", False) or args.global_verbose)
    args.log_format = getattr(args, "log_format", None) or args.global_log_format or "text"


def _one_line(exc: BaseException) -> str:
    """The message of an error, with what to do where the error itself does not say."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ConfigError) and message.startswith("data dir "):
        message += " (give a folder you can write to: --data-dir DIR or NWCD_DATA_DIR)"
    elif isinstance(exc, OSError) and not isinstance(exc, CommandError):
        what = exc.strerror or message
        where = f": {exc.filename}" if exc.filename else ""
        message = f"{what}{where}"
    return " ".join(message.split())


def _run(coro: Coroutine[Any, Any, int], *, fast_loop: bool) -> int:
    """Run a command; ``fast_loop``: on uvloop where it is installed (``nwcd serve``:
    measured 7% less CPU per multi_pay_invoice item, 1% per get_balance), else on
    asyncio's own loop."""
    if fast_loop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    _merge_global_options(args)
    handler = _COMMANDS[(args.command, getattr(args, "action", None))]
    if args.command in ("serve", "relay") or args.verbose:
        _setup_logging(args.verbose, args.log_format)

    def fail(exc: BaseException, code: int) -> int:
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"nwcd: error: {_one_line(exc)}", file=sys.stderr)
        return code

    try:
        with contextlib.suppress(KeyboardInterrupt):
            return _run(handler(args), fast_loop=args.command == "serve")
        return 130
    except CommandError as exc:
        return fail(exc, exc.exit_code)
    except (ConfigError, NwcdError, AdminError) as exc:
        return fail(exc, 2)
    except BrokenPipeError:  # e.g. `nwcd connection list | head -1`: the reader left
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes
        return 141
    except OSError as exc:  # the disk, the network: one line, the traceback with -v
        return fail(exc, 2)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
