"""The composition root: settings in, concrete adapters out.

The only module that imports adapters by name; everything else sees ports.
"""

from __future__ import annotations

from nwcd.backends.simulator import SimulatedBackend, SimulatorConfig
from nwcd.config import ConfigError, Settings
from nwcd.policy.budget import FeeReserve
from nwcd.ports import LightningBackend
from nwcd.service.payments import PaymentLimits
from nwcd.service.pipeline import ServiceSettings
from nwcd.store.sqlite import SqliteStore

__all__ = ["open_backend", "open_simulator", "open_store", "service_settings"]


async def open_store(settings: Settings) -> SqliteStore:
    """The store in the data dir."""
    return await SqliteStore.open(settings.store_path)


async def open_simulator(settings: Settings) -> SimulatedBackend:
    """The simulated wallet whose state file lives in the data dir."""
    balance = settings.backend.get("initial_balance_msat")
    config = SimulatorConfig(path=settings.simulator_path)
    if isinstance(balance, int):
        config = SimulatorConfig(path=settings.simulator_path, initial_balance_msat=balance)
    return await SimulatedBackend.open(config)


async def open_backend(settings: Settings) -> LightningBackend:
    """The configured Lightning backend."""
    if settings.backend_kind == "simulator":
        return await open_simulator(settings)
    raise ConfigError(f"unknown backend {settings.backend_kind!r}")  # pragma: no cover


def service_settings(settings: Settings) -> ServiceSettings:
    """Service tuning from the ``[service]`` table."""
    s = settings.service
    defaults = ServiceSettings()
    return ServiceSettings(
        freshness_window=int(s.get("freshness_window", defaults.freshness_window)),
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
    )
