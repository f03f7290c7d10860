"""The pure core does no I/O: its modules import no network, database or process module.

Pure modules: everything under ``nwcd/nostr/``, ``nwcd/nip47/``, ``nwcd/policy/``,
``nwcd/bolt11.py`` and ``nwcd/recipients/`` but its HTTP edge ``resolve.py``. They may import
the standard library (minus the I/O modules listed below), third-party crypto and parsers,
and only the pure ``nwcd`` modules. The whole ``nwcd.recipients`` package, its HTTP edge
included, stays below the service: it imports none of the service, store, relay, console,
backend or CLI layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "nwcd"

FORBIDDEN_TOP_LEVEL = frozenset(
    {
        "asyncio",
        "websockets",
        "aiosqlite",
        "sqlite3",
        "httpx",
        "socket",
        "subprocess",
        "sqlalchemy",
        "asyncpg",
    }
)
PURE_NWCD = frozenset(
    {
        "nwcd.nostr",
        "nwcd.nip47",
        "nwcd.policy",
        "nwcd.errors",
        "nwcd.bech32",
        "nwcd.bolt11",
        "nwcd.units",
        "nwcd.clock",
        "nwcd.recipients.errors",
        "nwcd.recipients.lnurl",
        "nwcd.recipients.split",
        "nwcd.recipients.value_block",
        "nwcd.recipients.zap",
    }
)
RECIPIENTS_IO = frozenset({"resolve.py"})
UPPER_LAYERS = (
    "nwcd.service",
    "nwcd.store",
    "nwcd.relay",
    "nwcd.console",
    "nwcd.backends",
    "nwcd.client",
    "nwcd.cli",
    "nwcd.bootstrap",
    "nwcd.demo",
)


def pure_module_files() -> list[Path]:
    files: list[Path] = []
    for package in ("nostr", "nip47", "policy"):
        if (PACKAGE / package).is_dir():
            files.extend(sorted((PACKAGE / package).rglob("*.py")))
    if (PACKAGE / "bolt11.py").is_file():
        files.append(PACKAGE / "bolt11.py")
    files.extend(
        path
        for path in sorted((PACKAGE / "recipients").glob("*.py"))
        if path.name not in RECIPIENTS_IO
    )
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_BEYOND_TOP = "<relative import beyond the top-level package>"


def _is_allowed(target: str) -> bool:
    if target == _BEYOND_TOP or target.split(".")[0] in FORBIDDEN_TOP_LEVEL:
        return False
    if target == "nwcd" or not target.startswith("nwcd."):
        return True
    return any(target == pure or target.startswith(pure + ".") for pure in PURE_NWCD)


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(package):
        return _BEYOND_TOP
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Every module ``source`` may import, as absolute names.

    ``from x import y`` yields both ``x`` and ``x.y`` (``y`` may be a submodule);
    relative imports are resolved against ``module``; ``importlib.import_module("x")``
    and ``__import__("x")`` with a literal name count too.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            first = node.args[0]
            if (
                name in ("__import__", "import_module")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append(first.value)
    return found


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """The imports of ``source`` (a module named ``module``) that break the contract."""
    return sorted(
        {t for t in imported_modules(source, module, is_package=is_package) if not _is_allowed(t)}
    )


# --- the contract -----------------------------------------------------------


def test_the_scan_covers_the_pure_core() -> None:
    names = {module_name(p) for p in pure_module_files()}
    expected = {
        "nwcd.nostr.keys",
        "nwcd.nostr.event",
        "nwcd.nostr.messages",
        "nwcd.nip47.uri",
        "nwcd.recipients.lnurl",
        "nwcd.recipients.zap",
    }
    assert expected <= names
    assert "nwcd.recipients.resolve" not in names


@pytest.mark.parametrize("path", sorted((PACKAGE / "recipients").glob("*.py")), ids=module_name)
def test_recipients_stay_below_the_service(path: Path) -> None:
    imported = imported_modules(path.read_text(), module_name(path))
    bad = sorted(
        {t for t in imported for upper in UPPER_LAYERS if t == upper or t.startswith(upper + ".")}
    )
    assert not bad, f"{module_name(path)} imports {bad}"


@pytest.mark.parametrize("path", pure_module_files(), ids=module_name)
def test_pure_module_imports_no_io(path: Path) -> None:
    bad = violations(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
    assert not bad, f"{module_name(path)} imports {bad}"


# --- the checker catches what it should --------------------------------------

MODULE = "nwcd.nostr.example"


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import asyncio.subprocess",
        "import os, socket",
        "import websockets.client as ws",
        "from asyncio import sleep",
        "from subprocess import run",
        "from sqlite3 import connect",
        "import aiosqlite",
        "import httpx",
        "from sqlalchemy.orm import Session",
        "import asyncpg",
        "import nwcd.service",
        "import nwcd.store.db",
        "from nwcd.relay import connection",
        "from nwcd import service",
        "from nwcd import errors, store",
        "from nwcd import *",
        "from nwcd.lru import LRU",
        "from .. import service",
        "from ..relay.connection import RelayConnection",
        "from ...nwcd_other import x",
        "def f():\n    import asyncio\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nwcd.service import S\n",
        "try:\n    import websockets\nexcept ImportError:\n    pass\n",
        "import importlib\nimportlib.import_module('socket')",
        "__import__('subprocess')",
        "import importlib\nimportlib.import_module('nwcd.store')",
    ],
)
def test_checker_flags(source: str) -> None:
    assert violations(source, MODULE)


@pytest.mark.parametrize(
    "source",
    [
        "import os, json, hashlib, hmac, base64",
        "import coincurve",
        "from cryptography.hazmat.primitives.ciphers import Cipher",
        "import nwcd",
        "import nwcd.errors",
        "from nwcd.errors import InvalidKey",
        "from nwcd import bech32, errors",
        "from nwcd.nostr.keys import SecretKey",
        "from nwcd.nip47.uri import ConnectionUri",
        "from nwcd.policy.rules import Budget",
        "from nwcd.bolt11 import decode",
        "from nwcd.units import Msat",
        "from nwcd.clock import Clock",
        "from . import keys",
        "from .keys import SecretKey",
        "from ..errors import InvalidEvent",
        "from ..nip47 import uri",
        "import asynciox",  # a different top-level name
        "socket = 1\nasyncio = socket",
    ],
)
def test_checker_allows(source: str) -> None:
    assert violations(source, MODULE) == []


def test_relative_imports_resolve_against_the_module() -> None:
    assert imported_modules("from . import keys", "nwcd.nostr.event") == [
        "nwcd.nostr",
        "nwcd.nostr.keys",
    ]
    assert imported_modules("from . import keys", "nwcd.nostr", is_package=True) == [
        "nwcd.nostr",
        "nwcd.nostr.keys",
    ]
    assert imported_modules("from .. import store", "nwcd.nostr", is_package=True) == [
        "nwcd",
        "nwcd.store",
    ]
    assert violations("from .. import store", "nwcd.nip47.uri") == ["nwcd.store"]
    # From a top-level module, ".." leaves nwcd entirely.
    assert violations("from .. import x", "nwcd.bolt11") == [_BEYOND_TOP]
    assert violations("from . import errors", "nwcd.bolt11") == []


def test_module_name() -> None:
    assert module_name(PACKAGE / "nostr" / "keys.py") == "nwcd.nostr.keys"
    assert module_name(PACKAGE / "nostr" / "__init__.py") == "nwcd.nostr"
