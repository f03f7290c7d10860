"""A real LNbits 1.6.2 (PyPI) with its FakeWallet funding source, for the LNbits backend tests.

LNbits lives in its own virtualenv under ``${NWCD_CACHE:-~/.cache/nwcd}/lnbits-1.6.2``,
installed by ``scripts/setup-peers.sh`` (it needs Python < 3.13 and pins that clash
with ours). Started this way:

* from a directory holding a symlink ``lnbits -> <site-packages>/lnbits`` (it opens
  ``lnbits/static`` relative to the cwd and reads ``.env`` from the cwd);
* on a free 127.0.0.1 port, data in a temporary directory, SQLite;
* with the env vars that keep it offline (no price feeds, no extension manifests):
  zero outbound connections at startup;
* it forks a uvicorn child: :meth:`LnbitsServer.stop` stops the child first, then the
  parent (SIGTERM to the parent alone leaves the child running).

Internal payments (one LNbits wallet paying another's invoice) are real payments
there: balances move, preimages are released. FakeWallet pays only its own invoices.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import httpx

from tests.support.relays import PeerMissing, cache_dir, free_port

LNBITS_VERSION: Final = "1.6.2"
STARTUP_TIMEOUT: Final = 120.0  # ~10 s idle, 30-75 s on a busy machine
_HEALTH_INTERVAL: Final = 0.5  # 120 polls a minute: LNbits answers 429 beyond 200
_STOP_TIMEOUT: Final = 15.0


def lnbits_venv() -> Path:
    """The cached LNbits virtualenv.

    Raises:
        PeerMissing: it is not installed; the message says how to install it.
    """
    venv = cache_dir() / f"lnbits-{LNBITS_VERSION}"
    if not os.access(venv / "bin" / "lnbits", os.X_OK):
        raise PeerMissing(
            f"LNbits {LNBITS_VERSION} is not installed at {venv}: run scripts/setup-peers.sh"
            " (it installs the test peers into $NWCD_CACHE)"
        )
    return venv


@dataclass(frozen=True)
class LnbitsWallet:
    """One LNbits wallet and its keys."""

    id: str
    admin_key: str
    invoice_key: str


class LnbitsServer:
    """``lnbits`` on 127.0.0.1 with FakeWallet; sync API (setup runs outside the test loop).

    Args:
        workdir: a private directory for the data, the cwd symlink and lnbits.log.
    """

    def __init__(self, workdir: Path) -> None:
        self.venv = lnbits_venv()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "lnbits.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._token = ""
        self._user_id = ""
        self.startup_seconds = 0.0

    # --- process ------------------------------------------------------------------------

    def start(self) -> None:
        """Start LNbits, wait for it, create the super user and one user.

        Raises:
            RuntimeError: it exited or did not answer within ``STARTUP_TIMEOUT``.
        """
        site = next((self.venv / "lib").glob("python3*/site-packages/lnbits"))
        run = self.workdir / "run"
        run.mkdir(exist_ok=True)
        link = run / "lnbits"
        if not link.is_symlink():
            link.symlink_to(site)
        data = self.workdir / "data"
        extensions = self.workdir / "extensions"
        data.mkdir(exist_ok=True)
        extensions.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LNBITS_DATA_FOLDER": str(data),
            "LNBITS_EXTENSIONS_PATH": str(extensions),
            "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
            "FAKE_WALLET_SECRET": secrets.token_hex(16),
            "LNBITS_ADMIN_UI": "true",
            "AUTH_SECRET_KEY": secrets.token_hex(16),
            "AUTH_ALLOWED_METHODS": '["user-id-only", "username-password"]',
            "LNBITS_PRICE_AGGREGATOR_ENABLED": "false",
            "LNBITS_EXCHANGE_RATE_PROVIDERS": "[]",
            "LNBITS_EXTENSIONS_MANIFESTS": "[]",
            "LNBITS_WASM_EXTENSIONS_MANIFESTS": "[]",
            "LNBITS_EXTENSIONS_DEACTIVATE_ALL": "true",
            "ENABLE_LOG_TO_FILE": "false",
            "LNBITS_RATE_LIMIT_NO": "100000",
        }
        self._log = self.log_path.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [str(self.venv / "bin" / "lnbits"), "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=run,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a last-resort killpg takes parent and child
        )
        try:
            self._wait_ready()
            self.startup_seconds = time.monotonic() - started
            self._first_install()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=5, trust_env=False) as client:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"LNbits exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    # Before the first install it redirects (307) to /first_install: up.
                    if client.get("/api/v1/health").status_code in (200, 307):
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"LNbits did not answer on {self.url} within {STARTUP_TIMEOUT} s:\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(_HEALTH_INTERVAL)

    def _children(self) -> list[int]:
        assert self._process is not None
        pid = self._process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(child) for child in text.split()]

    def pids(self) -> list[int]:
        """The LNbits parent process and its uvicorn child (empty when stopped)."""
        if self._process is None:
            return []
        return [self._process.pid, *self._children()]

    def stop(self) -> None:
        """SIGTERM the uvicorn child and wait, then the parent; SIGKILL what is left."""
        process, self._process = self._process, None
        if process is not None:
            self._process = process
            children = self._children()
            self._process = None
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT
            while any(_alive(child) for child in children) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # anything left of its session
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- accounts -------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as client:
            response = client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"LNbits {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def _first_install(self) -> None:
        password = secrets.token_hex(12)
        body = {"username": "nwcdadmin", "password": password, "password_repeat": password}
        self._token = self._call("PUT", "/api/v1/auth/first_install", json=body)["access_token"]
        user_password = secrets.token_hex(12)
        user = self._call(
            "POST",
            "/users/api/v1/user",
            headers=self._bearer,
            json={
                "username": "nwcdtests",
                "password": user_password,
                "password_repeat": user_password,
            },
        )
        self._user_id = user["id"]

    @property
    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def new_wallet(self, name: str, *, fund_sat: int = 0) -> LnbitsWallet:
        """A new wallet of the test user, credited ``fund_sat`` by the super user."""
        wallet = self._call(
            "POST",
            f"/users/api/v1/user/{self._user_id}/wallet",
            headers=self._bearer,
            json={"name": name},
        )
        if fund_sat:
            self._call(
                "PUT",
                "/users/api/v1/balance",
                headers=self._bearer,
                json={"id": wallet["id"], "amount": fund_sat},
            )
        return LnbitsWallet(wallet["id"], wallet["adminkey"], wallet["inkey"])

    def invoice(self, wallet: LnbitsWallet, amount_sat: int, memo: str = "test") -> dict[str, Any]:
        """An invoice of ``wallet`` (the LNbits payment object)."""
        result: dict[str, Any] = self._call(
            "POST",
            "/api/v1/payments",
            headers={"X-Api-Key": wallet.invoice_key},
            json={"out": False, "amount": amount_sat, "memo": memo},
        )
        return result

    def pay(self, wallet: LnbitsWallet, bolt11: str) -> dict[str, Any]:
        """``wallet`` pays ``bolt11`` (as an outside payer, not through nwcd)."""
        result: dict[str, Any] = self._call(
            "POST",
            "/api/v1/payments",
            headers={"X-Api-Key": wallet.admin_key},
            json={"out": True, "bolt11": bolt11},
        )
        return result

    def balance_msat(self, wallet: LnbitsWallet) -> int:
        data = self._call("GET", "/api/v1/wallet", headers={"X-Api-Key": wallet.invoice_key})
        return int(data["balance"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of the (still running) parent counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
