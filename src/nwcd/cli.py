"""The ``nwcd`` command line."""

from __future__ import annotations

import argparse
import sys

from nwcd import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nwcd", description="Nostr Wallet Connect daemon")
    parser.add_argument("--version", action="version", version=f"nwcd {__version__}")
    parser.add_subparsers(dest="command")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
