"""Settings: one frozen object built once from a TOML file and ``NWCD_*`` variables.

Precedence: command-line flags > environment > TOML file > defaults.
Unknown keys are errors (a typo must not silently fall back to a default).
Example ``nwcd.toml``::

    relays = ["wss://relay.example.com"]

    [service]
    freshness_window = 300          # seconds a request stays payable
    retention = 3600                # seconds a request that moved no money is remembered
    max_batch_items = 100
    max_payments_in_flight = 256
    max_payments_per_connection = 100
    fee_reserve_ppm = 10000         # 1% of the amount ...
    fee_reserve_floor_msat = 10000  # ... but at least 10 sat
    payment_hash_tag = true         # also tag multi_pay responses with payment_hash
    timezone = "UTC"                # budget periods follow this calendar
    cap_balance_to_budget = false   # true: get_balance answers min(balance, budget left)
                                    # for connections with a budget
    app_requests_per_minute = 1200  # per connection, on average (0: no limit) ...
    app_request_burst = 200         # ... and at once; more are answered RATE_LIMITED
    requests_per_second = 1000      # the whole service (each instance), on average ...
    request_burst = 2000            # ... and at once (0 per second: no limit)

    [store]                         # default: SQLite in the data dir (one nwcd serve)
    url = "postgresql://nwcd@db.example.com:5432/nwcd"   # or NWCD_STORE_URL: several
                                    # instances share one PostgreSQL database
    lease = 10                      # seconds without a heartbeat before an instance's
                                    # work is taken over by another

    [backend]
    kind = "simulator"              # the embedded default; or "lnbits", "lnd", "nwc"

    [backend.simulator]
    initial_balance_msat = 100000000000

    [backend.lnbits]                # one LNbits wallet
    url = "https://lnbits.example.com"
    admin_key = "..."               # or NWCD_LNBITS_ADMIN_KEY
    invoice_key = "..."             # optional: used for reads
    max_concurrent_payments = 8     # payments sent to LNbits at once (1-1000)

    [backend.lnd]                   # LND's REST interface
    url = "https://127.0.0.1:8080"
    macaroon_path = "/home/me/.lnd/data/chain/bitcoin/mainnet/admin.macaroon"
    tls_cert = "/home/me/.lnd/tls.cert"   # macaroon = "<hex>" or NWCD_LND_MACAROON also work

    [backend.nwc]                   # another NWC wallet (Alby Hub, another nwcd, ...)
    uri = "nostr+walletconnect://..."   # or NWCD_NWC_URI (a secret: it spends)
    timeout = 30                    # seconds to wait for an answer
    payment_timeout = 60            # seconds to wait for a payment's answer

    [http]                          # the operator's console, /health and /metrics
    listen = "127.0.0.1:8420"       # or NWCD_HTTP_LISTEN, or nwcd serve --http; off if unset
    allow_remote = false            # true: listen on a non-loopback address (plain HTTP:
                                    # put a TLS reverse proxy in front of it)

Environment: ``NWCD_DATA_DIR``, ``NWCD_CONFIG``, ``NWCD_RELAYS`` (comma-separated),
``NWCD_STORE_URL``,
``NWCD_BACKEND`` (backend kind), ``NWCD_LNBITS_ADMIN_KEY``, ``NWCD_LND_MACAROON``,
``NWCD_NWC_URI``, ``NWCD_HTTP_LISTEN``.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs

__all__ = ["ConfigError", "HttpSettings", "Settings", "load_settings", "parse_listen"]

_SERVICE_KEYS = {
    "freshness_window": int,
    "retention": int,
    "max_batch_items": int,
    "max_payments_in_flight": int,
    "max_payments_per_connection": int,
    "fee_reserve_ppm": int,
    "fee_reserve_floor_msat": int,
    "payment_hash_tag": bool,
    "timezone": str,
    "cap_balance_to_budget": bool,
    "app_requests_per_minute": int,
    "app_request_burst": int,
    "requests_per_second": int,
    "request_burst": int,
}
# The allowed range of each integer key of [service] (a zero or negative limit would stall
# every payment or answer nothing).
_SERVICE_RANGES = {
    "freshness_window": (1, 86_400),
    "retention": (0, 10 * 365 * 86_400),
    "max_batch_items": (1, 1_000),
    "max_payments_in_flight": (1, 100_000),
    "max_payments_per_connection": (1, 100_000),
    "fee_reserve_ppm": (0, 1_000_000),
    "fee_reserve_floor_msat": (0, 2_100_000_000_000_000_000),
    "app_requests_per_minute": (0, 10_000_000),
    "app_request_burst": (1, 1_000_000),
    "requests_per_second": (0, 1_000_000),
    "request_burst": (1, 10_000_000),
}
_TYPE_NAMES = {int: "whole number", bool: "boolean (true or false)", str: "string"}
# Each backend's table: key -> accepted types. Secrets may come from the environment
# instead (NWCD_LNBITS_ADMIN_KEY, NWCD_LND_MACAROON, NWCD_NWC_URI), so they stay out of files.
_BACKEND_KEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "simulator": {"initial_balance_msat": (int,)},
    "lnbits": {
        "url": (str,),
        "admin_key": (str,),
        "invoice_key": (str,),
        "timeout": (int, float),
        "network": (str,),
        "max_concurrent_payments": (int,),
    },
    "lnd": {
        "url": (str,),
        "macaroon": (str,),
        "macaroon_path": (str,),
        "tls_cert": (str,),
        "timeout": (int, float),
        "payment_timeout": (int, float),
    },
    "nwc": {
        "uri": (str,),
        "timeout": (int, float),
        "payment_timeout": (int, float),
    },
}
_BACKEND_REQUIRED = {"lnbits": ("url", "admin_key"), "lnd": ("url",), "nwc": ("uri",)}
_SECRET_ENV = {
    "lnbits": ("admin_key", "NWCD_LNBITS_ADMIN_KEY"),
    "lnd": ("macaroon", "NWCD_LND_MACAROON"),
    "nwc": ("uri", "NWCD_NWC_URI"),
}
_BACKEND_KINDS = tuple(_BACKEND_KEYS)


class ConfigError(ValueError):
    """The configuration is invalid; the message says where."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Where the console listens. ``remote``: the address is not a loopback one (allowed
    only with ``allow_remote``; the console speaks plain HTTP)."""

    host: str
    port: int
    remote: bool = False


def parse_listen(text: str, *, allow_remote: bool = False) -> HttpSettings:
    """``host:port`` (``[::1]:8420`` for IPv6) as :class:`HttpSettings`.

    Raises:
        ConfigError: not host:port, a bad port, or a non-loopback address without
            ``allow_remote``.
    """
    host, sep, port_text = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"http.listen: {text!r} is not host:port (e.g. 127.0.0.1:8420)")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not allow_remote:
        raise ConfigError(
            f"http.listen: {host} is not a loopback address; the console has no TLS of its"
            " own: keep it on 127.0.0.1 behind a reverse proxy, or set http.allow_remote ="
            " true to listen there anyway"
        )
    return HttpSettings(host, int(port_text), remote=not loopback)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ``nwcd`` needs to start, validated."""

    data_dir: Path
    relays: tuple[str, ...] = ()
    service: Mapping[str, Any] = field(default_factory=dict)
    backend_kind: str = "simulator"
    backend: Mapping[str, Any] = field(default_factory=dict)
    store_url: str | None = field(default=None, repr=False)  # may hold a password
    store_lease: int = 10
    http: HttpSettings | None = None  # None: no console

    @property
    def store_path(self) -> Path:
        return self.data_dir / "nwcd.sqlite"

    @property
    def simulator_path(self) -> Path:
        return self.data_dir / "simulator.sqlite"

    def timezone(self) -> ZoneInfo:
        name = str(self.service.get("timezone", "UTC"))
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"service.timezone: unknown time zone {name!r}") from None


def default_data_dir() -> Path:
    """The per-user data directory."""
    return Path(platformdirs.user_data_dir("nwcd", appauthor=False))


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


def load_settings(
    *,
    config_file: Path | None = None,
    data_dir: Path | None = None,
    relays: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from flags, environment and the TOML file.

    Raises:
        ConfigError: unreadable file, unknown keys, or values of the wrong type.
    """
    env = os.environ if environ is None else environ
    path = config_file or (Path(env["NWCD_CONFIG"]) if env.get("NWCD_CONFIG") else None)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    _check_keys(data, {"data_dir", "relays", "service", "backend", "store", "http"}, "config")
    store = data.get("store", {})
    if not isinstance(store, dict):
        raise ConfigError("store must be a table")
    _check_keys(store, {"url", "lease"}, "store")
    lease = store.get("lease", 10)
    if type(lease) is not int or not 2 <= lease <= 3600:
        raise ConfigError("store.lease must be a whole number of seconds from 2 to 3600")
    store_url = env.get("NWCD_STORE_URL") or store.get("url")
    postgres = isinstance(store_url, str) and store_url.startswith(("postgresql://", "postgres://"))
    if store_url is not None and not postgres:
        # The value itself is never shown: it may hold a password.
        raise ConfigError("store.url must be a postgresql:// URL (or unset for SQLite)")
    service = data.get("service", {})
    if not isinstance(service, dict):
        raise ConfigError("service must be a table")
    _check_keys(service, set(_SERVICE_KEYS), "service")
    for key, expected in _SERVICE_KEYS.items():
        if key in service and type(service[key]) is not expected:
            raise ConfigError(f"service.{key} must be a {_TYPE_NAMES[expected]}")
        if key in service and key in _SERVICE_RANGES:
            low, high = _SERVICE_RANGES[key]
            if not low <= service[key] <= high:
                raise ConfigError(f"service.{key} must be from {low} to {high}")
    backend = data.get("backend", {})
    if not isinstance(backend, dict):
        raise ConfigError("backend must be a table")
    kind = str(env.get("NWCD_BACKEND") or backend.get("kind", "simulator"))
    if kind not in _BACKEND_KINDS:
        raise ConfigError(f"backend.kind must be one of {', '.join(_BACKEND_KINDS)}")
    _check_keys(backend, {"kind", *_BACKEND_KINDS}, "backend")
    backend_table = dict(backend.get(kind, {}))
    if not isinstance(backend.get(kind, {}), dict):
        raise ConfigError(f"backend.{kind} must be a table")
    allowed = _BACKEND_KEYS[kind]
    _check_keys(backend_table, set(allowed), f"backend.{kind}")
    for key, types in allowed.items():
        value = backend_table.get(key)
        if value is not None and (type(value) not in types):
            # The value itself is never shown: it may be a secret.
            names = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"backend.{kind}.{key} must be a {names}")
    if kind in _SECRET_ENV:
        key, variable = _SECRET_ENV[kind]
        if env.get(variable):
            backend_table[key] = env[variable]
    for key in _BACKEND_REQUIRED.get(kind, ()):
        if not backend_table.get(key):
            raise ConfigError(f"backend.{kind}.{key} is required")
    if kind == "lnd" and not (backend_table.get("macaroon") or backend_table.get("macaroon_path")):
        raise ConfigError("backend.lnd needs macaroon (hex, or NWCD_LND_MACAROON) or macaroon_path")
    chosen_relays = relays
    if not chosen_relays and env.get("NWCD_RELAYS"):
        chosen_relays = tuple(r.strip() for r in env["NWCD_RELAYS"].split(",") if r.strip())
    if not chosen_relays:
        file_relays = data.get("relays", [])
        if not isinstance(file_relays, list) or not all(isinstance(r, str) for r in file_relays):
            raise ConfigError("relays must be a list of URLs")
        chosen_relays = tuple(file_relays)
    directory = data_dir or (
        Path(env["NWCD_DATA_DIR"])
        if env.get("NWCD_DATA_DIR")
        else Path(data["data_dir"]).expanduser()
        if "data_dir" in data
        else default_data_dir()
    )
    settings = Settings(
        http=_http_settings(data.get("http", {}), env),
        data_dir=directory,
        relays=chosen_relays,
        service=service,
        backend_kind=kind,
        backend=backend_table,
        store_url=store_url or None,
        store_lease=lease,
    )
    settings.timezone()  # validate early
    return settings


def _http_settings(table: Any, env: Mapping[str, str]) -> HttpSettings | None:
    if not isinstance(table, dict):
        raise ConfigError("http must be a table")
    _check_keys(table, {"listen", "allow_remote"}, "http")
    allow_remote = table.get("allow_remote", False)
    if type(allow_remote) is not bool:
        raise ConfigError("http.allow_remote must be a boolean (true or false)")
    listen = env.get("NWCD_HTTP_LISTEN") or table.get("listen")
    if listen is None:
        return None
    if not isinstance(listen, str):
        raise ConfigError("http.listen must be a string host:port")
    return parse_listen(listen, allow_remote=allow_remote)
