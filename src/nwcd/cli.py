"""The ``nwcd`` command line.

Commands (each accepts ``--data-dir`` and ``--config``)::

    nwcd serve [--relay URL ...]                 run the wallet service
    nwcd relay [--host H] [--port N]             run the local relay (for local use only)
    nwcd connection create --name NAME ...       new app connection: prints its URI
    nwcd connection list | show | update | revoke   manage connections
    nwcd sim invoice --amount-msat N ...         an invoice the simulator can pay
    nwcd sim release HASH --outcome ...          end a hanging simulated payment
    nwcd pay URI INVOICE...                      pay through a wallet (the client as a CLI)
    nwcd demo                                    everything, on this machine

The JSON printed by ``--json`` is a public interface: keep its shape stable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

from nwcd import __version__
from nwcd.config import ConfigError, Settings, load_settings
from nwcd.errors import NwcdError
from nwcd.nip47.uri import ConnectionUri
from nwcd.policy.grants import BudgetPeriod, describe_methods, expand_methods
from nwcd.service.admin import (
    KEEP,
    AdminError,
    Changes,
    Keep,
    NewConnection,
    Usage,
    create_connection,
    find_connection,
    revoke_connection,
    update_connection,
    usages,
)

__all__ = ["main"]

log = logging.getLogger("nwcd")
T = TypeVar("T")

LISTEN_TIMEOUT = 15.0
"""How long ``connection create`` waits for running services to listen for a new key
(longer than an instance's lease, so a killed instance drops out before it ends)."""


class CliError(Exception):
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
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("the name must not be empty")
    if len(name) > 64 or not name.isprintable():
        raise argparse.ArgumentTypeError("the name must be at most 64 printable characters")
    return name


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


_KEY_HELP = "connection name, wallet or app pubkey (or a unique prefix of 8+ hex digits)"
_CONNECTION_EXAMPLES = (
    "examples:\n"
    "  nwcd connection create --name shop --relay wss://relay.example.com --methods pay,read\n"
    "  nwcd connection list\n"
    "  nwcd connection show shop --json\n"
    "  nwcd connection update shop --budget-msat 5000000 --budget-period daily\n"
    "  nwcd connection revoke shop\n"
)


def _grant_arguments(parser: argparse.ArgumentParser, *, updating: bool) -> None:
    """The options ``create`` and ``update`` share; ``update`` can also remove a limit."""
    relay_help = "relay URL (repeatable; default: the configured relays)"
    if updating:
        relay_help = "relay URL (repeatable; replaces the relays)"
    parser.add_argument("--relay", action="append", default=[], metavar="URL", help=relay_help)
    parser.add_argument(
        "--methods",
        type=_methods,
        metavar="LIST",
        help="comma-separated scopes (pay, receive, read, sign), method names, or all"
        + ("" if updating else " (the default)"),
    )
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--max-amount-msat", type=_msat, metavar="N", help="limit per payment")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--budget-msat", type=_msat, metavar="N", help="most the app may spend per period"
    )
    parser.add_argument(
        "--budget-period",
        choices=[p.value for p in BudgetPeriod],
        help="when the budget renews, in the [service] timezone"
        + (" (default never)" if not updating else ""),
    )
    expiry = parser.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=_duration, metavar="DURATION", help="e.g. 30d, 12h")
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


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="state directory (env NWCD_DATA_DIR; default per user)"
    )
    common.add_argument("--config", type=Path, help="TOML config file (env NWCD_CONFIG)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="nwcd",
        description="Nostr Wallet Connect (NIP-47) wallet service, client and tools.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  nwcd demo\n"
        "  nwcd connection create --name my-app --relay wss://relay.example.com\n"
        "  nwcd serve --relay wss://relay.example.com\n",
    )
    parser.add_argument("--version", action="version", version=f"nwcd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the wallet service")
    serve.add_argument("--relay", action="append", default=[], help="relay URL (repeatable)")

    relay = commands.add_parser("relay", parents=[common], help="run the local relay")
    relay.add_argument("--host", default="127.0.0.1")
    relay.add_argument("--port", type=int, default=7777)

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
    invoice.add_argument("--amount-msat", type=int, required=True)
    invoice.add_argument("--latency-ms", type=int, default=0)
    invoice.add_argument("--outcome", choices=["succeed", "fail", "hang"], default="succeed")
    invoice.add_argument("--fee-msat", type=int, default=0)
    invoice.add_argument("--json", action="store_true")
    release = sim_commands.add_parser("release", parents=[common], help="end a hanging payment")
    release.add_argument("payment_hash")
    release.add_argument("--outcome", choices=["succeed", "fail"], required=True)
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

    pay = commands.add_parser("pay", parents=[common], help="pay invoices through a wallet")
    pay.add_argument("uri", nargs="?", help="connection URI (or env NWC_URI)")
    pay.add_argument("invoices", nargs="*", metavar="INVOICE")
    pay.add_argument("--amount-msat", type=int, help="for amountless invoices")
    pay.add_argument("--timeout", type=float)
    pay.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", parents=[common], help="run the whole flow locally")
    demo.add_argument("--invoices", type=int, default=12, help="batch size")
    demo.add_argument(
        "--store",
        metavar="URL",
        help="a postgresql:// store instead of SQLite (default: [store] url / NWCD_STORE_URL)",
    )
    return parser


def _settings(args: argparse.Namespace, relays: Sequence[str] = ()) -> Settings:
    return load_settings(config_file=args.config, data_dir=args.data_dir, relays=tuple(relays))


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)


# -- serve / relay ---------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import lock_for_serving, open_backend, open_store, service_settings
    from nwcd.service.daemon import DaemonOptions, LeaseLost, WalletDaemon

    settings = _settings(args, args.relay)
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


async def _relay(args: argparse.Namespace) -> int:
    from nwcd.relay.server import run_relay

    def listening(url: str) -> None:
        print(f"nwcd relay listening on {url} (for local use only)", flush=True)

    await run_relay(args.host, args.port, on_listening=listening)
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
    if created.behind:
        print(
            f"warning: {len(created.behind)} running nwcd serve instance(s) did not confirm"
            f" within {LISTEN_TIMEOUT:.0f} s that they listen for this connection; requests"
            " sent before they do may get no answer",
            file=sys.stderr,
        )
    import segno

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
        old, new = await update_connection(store, args.key, _changes(args, now, tz))
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
        connection, already = await revoke_connection(store, args.key, now=int(time.time()))
    finally:
        await store.close()
    if already:
        print(f"connection {connection.name!r} was revoked already")
    else:
        print(f"connection {connection.name!r} revoked (a running service follows within a second)")
    return 0


# -- simulator -------------------------------------------------------------------------


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
    backend = await open_simulator(_settings(args))
    try:
        invoice = await backend.create_invoice(
            args.amount_msat,
            latency_ms=args.latency_ms,
            outcome=args.outcome,
            fee_msat=args.fee_msat,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        await backend.close()
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

    backend = await open_simulator(_settings(args))
    try:
        await backend.release(args.payment_hash, args.outcome)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        await backend.close()
    print(f"released {args.payment_hash} with outcome {args.outcome}")
    return 0


async def _sim_outage(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_simulator

    if args.end and args.seconds is not None:
        raise CliError("--end takes no --seconds")
    if args.mode is not None and args.seconds is None:
        raise CliError("--mode needs --seconds (how long the outage lasts)")
    backend = await open_simulator(_settings(args))
    try:
        await backend.set_outage(None if args.end else args.mode, args.seconds or 0)
    finally:
        await backend.close()
    if args.end:
        print("simulated backend outage ended")
    else:
        print(f"simulated backend outage ({args.mode}) for {args.seconds:g} s")
    return 0


# -- pay / demo ------------------------------------------------------------------------


async def _pay(args: argparse.Namespace) -> int:
    from nwcd.client.client import InvoiceRequest, NWCClient

    text = args.uri
    invoices = list(args.invoices)
    if text and not text.startswith(("nostr+walletconnect:", "nostrwalletconnect:")):
        invoices.insert(0, text)
        text = None
    text = text or os.environ.get("NWC_URI")
    if not text:
        raise CliError("give the connection URI as the first argument or in NWC_URI")
    if not invoices:
        raise CliError("give at least one invoice")
    uri = ConnectionUri.parse(text)
    requests = [InvoiceRequest(inv, args.amount_msat) for inv in invoices]
    results = {}
    async with NWCClient(uri) as client:
        async for result in client.multi_pay_invoice_iter(requests, timeout=args.timeout):
            results[result.id] = result
            if not args.json:
                status = (
                    f"paid, preimage {result.preimage}, fee {result.fees_paid_msat} msat"
                    if result.ok
                    else f"FAILED {result.error.code if result.error else ''}: "
                    f"{result.error.message if result.error else ''}"
                )
                print(f"[{len(results)}/{len(requests)}] {result.invoice[:24]}… {status}")
    ordered = [results[str(i)] for i in range(len(requests))]
    if args.json:
        print(json.dumps([r.to_json() for r in ordered]))
    return 0 if all(r.ok for r in ordered) else 1


async def _demo(args: argparse.Namespace) -> int:
    from nwcd.demo import run_demo

    store_url = args.store or _settings(args).store_url
    if store_url is not None and not store_url.startswith(("postgresql://", "postgres://")):
        raise CliError("--store must be a postgresql:// URL")
    return await run_demo(data_dir=args.data_dir, count=args.invoices, store_url=store_url)


_COMMANDS = {
    ("serve", None): _serve,
    ("relay", None): _relay,
    ("connection", "create"): _connection_create,
    ("connection", "list"): _connection_list,
    ("connection", "show"): _connection_show,
    ("connection", "update"): _connection_update,
    ("connection", "revoke"): _connection_revoke,
    ("sim", "invoice"): _sim_invoice,
    ("sim", "release"): _sim_release,
    ("sim", "outage"): _sim_outage,
    ("pay", None): _pay,
    ("demo", None): _demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    handler = _COMMANDS[(args.command, getattr(args, "action", None))]
    if args.command in ("serve", "relay") or args.verbose:
        _setup_logging(args.verbose)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(handler(args))
        return 130
    except (CliError, ConfigError, NwcdError, AdminError) as exc:
        print(f"nwcd: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `nwcd connection list | head -1`: the reader left
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
