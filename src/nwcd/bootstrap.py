"""The composition root: settings in, concrete adapters out.

The only module that imports adapters by name; everything else sees ports.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.config import ConfigError, Settings
from nwcd.datadir import create_private_file, secure_data_dir
from nwcd.policy.budget import FeeReserve
from nwcd.policy.rate import RateLimit
from nwcd.ports import LightningBackend, Store
from nwcd.service.payments import PaymentLimits
from nwcd.service.pipeline import ServiceSettings
from nwcd.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from nwcd.backends.lnd import LndConfig

__all__ = [
    "lock_for_serving",
    "open_backend",
    "open_simulator",
    "open_store",
    "service_settings",
]


async def open_store(settings: Settings) -> Store:
    """PostgreSQL when ``[store] url`` is set, else SQLite in the data dir (dir ``0700``,
    files ``0600``: it holds wallet keys).

    Raises:
        ConfigError: the database cannot be reached or used (the message names the
            database without its password).
    """
    if settings.store_url is None:
        _prepare(settings, settings.store_path)
        try:
            return await SqliteStore.open(settings.store_path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    try:
        from nwcd.store.postgres import PostgresStore, describe, redact
    except ImportError:
        raise ConfigError(
            "store.url is PostgreSQL, but its driver is missing: pip install 'nwcd[postgres]'"
        ) from None
    try:
        return await PostgresStore.open(settings.store_url)
    except Exception as exc:
        raise ConfigError(
            f"cannot use the store at {redact(settings.store_url)}:"
            f" {describe(exc, settings.store_url)}"
        ) from None


def lock_for_serving(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """One ``nwcd serve`` per SQLite data dir (an exclusive lock on ``serve.lock``): a
    second one would take the first one's work over. PostgreSQL needs no lock.

    Raises:
        ConfigError: another ``nwcd serve`` holds the lock.
    """
    if settings.store_url is not None:
        return contextlib.nullcontext()
    _prepare(settings, settings.data_dir / "serve.lock")
    return _exclusive(settings.data_dir / "serve.lock")


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    with path.open("r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another nwcd serve is running on the data dir {path.parent}; several"
                " instances need a shared store ([store] url = postgresql://...)"
            ) from None
        yield


async def open_simulator(settings: Settings) -> SimulatedBackend:
    """The simulated wallet whose state file (seed, preimages) lives in the data dir."""
    _prepare(settings, settings.simulator_path)
    balance = settings.backend.get("initial_balance_msat")
    config = SimulatorConfig(path=settings.simulator_path)
    if isinstance(balance, int):
        config = SimulatorConfig(path=settings.simulator_path, initial_balance_msat=balance)
    return await SimulatedBackend.open(config)


async def open_backend(settings: Settings) -> LightningBackend:
    """The configured Lightning backend.

    Raises:
        ConfigError: its table holds a value the backend refuses (a URL without a
            scheme, a timeout of zero, ...); the message says which.
    """
    try:
        return await _open_backend(settings)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"backend.{settings.backend_kind}: {exc}") from None


async def _open_backend(settings: Settings) -> LightningBackend:
    table = settings.backend
    match settings.backend_kind:
        case "simulator":
            return await open_simulator(settings)
        case "lnbits":
            from nwcd.backends.lnbits import MAX_CONCURRENT_PAYMENTS, LnbitsBackend, LnbitsConfig

            return await LnbitsBackend.open(
                LnbitsConfig(
                    url=str(table["url"]),
                    admin_key=str(table["admin_key"]),
                    invoice_key=table.get("invoice_key"),
                    timeout=float(table.get("timeout", 30.0)),
                    network=table.get("network"),
                    max_concurrent_payments=int(
                        table.get("max_concurrent_payments", MAX_CONCURRENT_PAYMENTS)
                    ),
                )
            )
        case "lnd":
            from nwcd.backends.lnd import LndBackend

            return await LndBackend.open(_lnd_config(table))
        case "nwc":
            from nwcd.backends.nwc import NwcBackend, NwcConfig

            return await NwcBackend.open(
                NwcConfig(
                    uri=str(table["uri"]),
                    timeout=float(table.get("timeout", 30.0)),
                    payment_timeout=float(table.get("payment_timeout", 60.0)),
                )
            )
    raise ConfigError(f"unknown backend {settings.backend_kind!r}")  # pragma: no cover


def _prepare(settings: Settings, database: Path) -> None:
    """Lock down the data dir and create ``database`` there ``0600`` if it is new.

    SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file.
    """
    try:
        secure_data_dir(settings.data_dir)
        create_private_file(database)
    except OSError as exc:
        raise ConfigError(f"data dir {settings.data_dir}: {exc.strerror or exc}") from None


def service_settings(settings: Settings) -> ServiceSettings:
    """Service tuning from the ``[service]`` table."""
    s = settings.service
    defaults = ServiceSettings()
    return ServiceSettings(
        freshness_window=int(s.get("freshness_window", defaults.freshness_window)),
        retention=int(s.get("retention", defaults.retention)),
        max_batch_items=int(s.get("max_batch_items", defaults.max_batch_items)),
        limits=PaymentLimits(
            in_flight=int(s.get("max_payments_in_flight", defaults.limits.in_flight)),
            per_connection=int(
                s.get("max_payments_per_connection", defaults.limits.per_connection)
            ),
        ),
        fee_reserve=FeeReserve(
            ppm=int(s.get("fee_reserve_ppm", defaults.fee_reserve.ppm)),
            floor_msat=int(s.get("fee_reserve_floor_msat", defaults.fee_reserve.floor_msat)),
        ),
        payment_hash_tag=bool(s.get("payment_hash_tag", defaults.payment_hash_tag)),
        cap_balance_to_budget=bool(s.get("cap_balance_to_budget", defaults.cap_balance_to_budget)),
        timezone=settings.timezone(),
        app_rate=RateLimit(
            per_second=int(s.get("app_requests_per_minute", defaults.app_rate.per_second * 60))
            / 60,
            burst=int(s.get("app_request_burst", defaults.app_rate.burst)),
        ),
        service_rate=RateLimit(
            per_second=int(s.get("requests_per_second", defaults.service_rate.per_second)),
            burst=int(s.get("request_burst", defaults.service_rate.burst)),
        ),
    )


def _lnd_config(table: Mapping[str, Any]) -> LndConfig:
    """The ``[backend.lnd]`` table as an ``LndConfig`` (reads the macaroon file, once)."""
    from nwcd.backends.lnd import LndConfig

    timeout = float(table.get("timeout", 30.0))
    payment_timeout = float(table.get("payment_timeout", 60.0))
    cert = Path(str(table["tls_cert"])).expanduser() if table.get("tls_cert") else None
    if table.get("macaroon"):
        return LndConfig(
            url=str(table["url"]),
            macaroon=str(table["macaroon"]),
            tls_cert=cert,
            timeout=timeout,
            payment_timeout=payment_timeout,
        )
    try:
        return LndConfig.from_files(
            str(table["url"]),
            Path(str(table["macaroon_path"])).expanduser(),
            cert,
            timeout=timeout,
            payment_timeout=payment_timeout,
        )
    except OSError as exc:
        raise ConfigError(f"backend.lnd: cannot read {exc.filename}") from None
