"""The ``nwcd`` command line.

Commands (each accepts ``--data-dir`` and ``--config``)::

    nwcd serve [--relay URL ...]                 run the wallet service
    nwcd relay [--host H] [--port N]             run the local relay (for local use only)
    nwcd connection create --name NAME ...       new app connection: prints its URI
    nwcd connection list | show | revoke         manage connections
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
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from nwcd import __version__
from nwcd.config import ConfigError, Settings, load_settings
from nwcd.errors import NwcdError
from nwcd.nip47.uri import ConnectionUri
from nwcd.nostr.keys import SecretKey
from nwcd.policy.grants import BudgetPeriod, Connection, expand_methods

__all__ = ["main"]

log = logging.getLogger("nwcd")


class CliError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="state directory (env NWCD_DATA_DIR; default per user)"
    )
    common.add_argument("--config", type=Path, help="TOML config file (env NWCD_CONFIG)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
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

    connection = commands.add_parser("connection", help="manage app connections")
    conn_commands = connection.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = conn_commands.add_parser(
        "create",
        parents=[common],
        help="create a connection and print its URI",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  nwcd connection create --name shop --methods pay,read --max-amount-msat 1000000\n"
        "  nwcd connection create --name tips --budget-msat 5000000 --budget-period daily\n",
    )
    create.add_argument("--name", required=True)
    create.add_argument("--relay", action="append", default=[], help="relay URL (repeatable)")
    create.add_argument(
        "--methods", default="", help="scopes (pay,receive,read,sign) or method names; default all"
    )
    create.add_argument("--max-amount-msat", type=int)
    create.add_argument("--budget-msat", type=int)
    create.add_argument(
        "--budget-period", choices=[p.value for p in BudgetPeriod], default=BudgetPeriod.NEVER.value
    )
    create.add_argument("--expires-in", help="e.g. 30d, 12h, 90m")
    create.add_argument("--expires-at", help="ISO date/time")
    create.add_argument("--lud16")
    create.add_argument("--qr-png", type=Path, help="also write the QR code to this PNG file")
    create.add_argument("--json", action="store_true", help="machine-readable output only")
    listing = conn_commands.add_parser("list", parents=[common], help="list connections")
    listing.add_argument("--json", action="store_true")
    show = conn_commands.add_parser("show", parents=[common], help="show one connection")
    show.add_argument("key", metavar="NAME|PUBKEY")
    show.add_argument("--json", action="store_true")
    revoke = conn_commands.add_parser("revoke", parents=[common], help="revoke a connection")
    revoke.add_argument("key", metavar="NAME|PUBKEY")

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

    pay = commands.add_parser("pay", parents=[common], help="pay invoices through a wallet")
    pay.add_argument("uri", nargs="?", help="connection URI (or env NWC_URI)")
    pay.add_argument("invoices", nargs="*", metavar="INVOICE")
    pay.add_argument("--amount-msat", type=int, help="for amountless invoices")
    pay.add_argument("--timeout", type=float)
    pay.add_argument("--json", action="store_true")

    demo = commands.add_parser("demo", parents=[common], help="run the whole flow locally")
    demo.add_argument("--invoices", type=int, default=12, help="batch size")
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
    from nwcd.bootstrap import open_backend, open_store, service_settings
    from nwcd.service.daemon import DaemonOptions, WalletDaemon

    settings = _settings(args, args.relay)
    store = await open_store(settings)
    backend = await open_backend(settings)
    try:
        daemon = WalletDaemon(
            store=store,
            backend=backend,
            settings=service_settings(settings),
            options=DaemonOptions(relays=settings.relays),
        )
        await daemon.run()
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

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _expiry(args: argparse.Namespace, now: int) -> int | None:
    if args.expires_in and args.expires_at:
        raise CliError("give --expires-in or --expires-at, not both")
    if args.expires_in:
        match = _DURATION.match(args.expires_in)
        if not match:
            raise CliError("--expires-in takes a number and a unit: 30d, 12h, 90m, 45s, 2w")
        return now + int(match.group(1)) * _UNITS[match.group(2)]
    if args.expires_at:
        try:
            when = datetime.fromisoformat(args.expires_at)
        except ValueError:
            raise CliError("--expires-at must be an ISO date or date-time") from None
        stamp = int(when.timestamp())
        if stamp <= now:
            raise CliError("--expires-at is in the past")
        return stamp
    return None


def _check_relays(relays: Sequence[str]) -> tuple[str, ...]:
    if not relays:
        raise CliError("give at least one --relay (or set relays in the config / NWCD_RELAYS)")
    for relay in relays:
        if not relay.startswith(("ws://", "wss://")):
            raise CliError(f"relay {relay!r} must start with ws:// or wss://")
    return tuple(relays)


async def _connection_create(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    settings = _settings(args, args.relay)
    relays = _check_relays(settings.relays)
    for flag in ("max_amount_msat", "budget_msat"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise CliError(f"--{flag.replace('_', '-')} must be positive")
    try:
        methods = expand_methods(args.methods.split(",")) if args.methods else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    now = int(time.time())
    wallet_key = SecretKey.generate()
    app_secret = SecretKey.generate()  # handed to the app in the URI, never stored
    connection = Connection(
        name=args.name,
        wallet_key=wallet_key,
        app_pubkey=app_secret.public_key.hex,
        relays=relays,
        created_at=now,
        methods=methods,
        max_amount_msat=args.max_amount_msat,
        budget_msat=args.budget_msat,
        budget_period=BudgetPeriod(args.budget_period),
        expires_at=_expiry(args, now),
        lud16=args.lud16,
    )
    uri = ConnectionUri(wallet_key.public_key, relays, app_secret, args.lud16).format()
    store = await open_store(settings)
    try:
        await store.add_connection(connection)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        await store.close()
    if args.qr_png:
        import segno

        segno.make(uri, error="m").save(str(args.qr_png), scale=6)
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
    import segno

    print(f"Connection {connection.name!r} created. Give this URI to the app (shown once):\n")
    print(uri + "\n")
    segno.make(uri, error="m").terminal(compact=True)
    return 0


def _connection_json(c: Connection) -> dict[str, Any]:
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
    }


def _find(connections: Sequence[Connection], key: str) -> Connection:
    for c in connections:
        if key in (c.name, c.wallet_pubkey, c.app_pubkey):
            return c
    raise CliError(f"no connection named or keyed {key!r} (see: nwcd connection list)")


async def _connection_list(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    store = await open_store(_settings(args))
    try:
        connections = await store.connections()
    finally:
        await store.close()
    if args.json:
        print(json.dumps([_connection_json(c) for c in connections]))
        return 0
    if not connections:
        print("no connections yet: nwcd connection create --name NAME --relay URL")
    for c in connections:
        state = "revoked" if c.revoked_at is not None else "active"
        methods = ",".join(sorted(c.methods)) if c.methods is not None else "all"
        print(f"{c.name:20} {state:8} wallet {c.wallet_pubkey[:16]}… methods {methods}")
    return 0


async def _connection_show(args: argparse.Namespace) -> int:
    from nwcd.bootstrap import open_store

    store = await open_store(_settings(args))
    try:
        connection = _find(await store.connections(), args.key)
    finally:
        await store.close()
    print(json.dumps(_connection_json(connection), indent=None if args.json else 2))
    return 0


async def _connection_revoke(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from nwcd.bootstrap import open_store

    store = await open_store(_settings(args))
    try:
        connection = _find(await store.connections(), args.key)
        if connection.revoked_at is None:
            await store.save_connection(replace(connection, revoked_at=int(time.time())))
    finally:
        await store.close()
    print(f"connection {connection.name!r} revoked")
    return 0


# -- simulator -------------------------------------------------------------------------


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

    return await run_demo(data_dir=args.data_dir, count=args.invoices)


_COMMANDS = {
    ("serve", None): _serve,
    ("relay", None): _relay,
    ("connection", "create"): _connection_create,
    ("connection", "list"): _connection_list,
    ("connection", "show"): _connection_show,
    ("connection", "revoke"): _connection_revoke,
    ("sim", "invoice"): _sim_invoice,
    ("sim", "release"): _sim_release,
    ("pay", None): _pay,
    ("demo", None): _demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except (CliError, ConfigError, NwcdError) as exc:
        print(f"nwcd: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
