"""Run the console inside the service's event loop (aiohttp's low-level runner)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from nwcd.config import HttpSettings
from nwcd.console.app import ConsoleServices, build_app

__all__ = ["console_server"]

log = logging.getLogger("nwcd.console")


@contextlib.asynccontextmanager
async def console_server(http: HttpSettings, services: ConsoleServices) -> AsyncIterator[str]:
    """Serve the console on ``http`` while the block runs; yields its base URL.

    Raises:
        OSError: the address cannot be bound (in use, not this machine's).
    """
    runner = web.AppRunner(build_app(services), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, http.host, http.port)
        await site.start()
        host = f"[{http.host}]" if ":" in http.host else http.host
        port = runner.addresses[0][1] if runner.addresses else http.port  # port 0: chosen
        url = f"http://{host}:{port}"
        if http.remote:
            log.warning(
                "the console listens on %s, not a loopback address, in plain HTTP: put a"
                " TLS reverse proxy in front of it and keep this port off the internet",
                url,
            )
        credentials = services.credentials
        initial = credentials.ensure_password()
        if initial is not None:
            log.warning(
                "console: no admin password was set; a random one is in %s (only you can"
                " read it); choose your own with: nwcd admin set-password",
                initial,
            )
        log.info("console on %s", url)
        yield url
    finally:
        await runner.cleanup()
