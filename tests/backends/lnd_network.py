"""A real regtest Lightning network for the LND tests: btcd + three LND nodes A -> B -> C.

Built from the binaries of ``scripts/setup-lnd.sh`` (cached under
``${NWCD_CACHE:-~/.cache/nwcd}``). Everything runs on 127.0.0.1 free ports in a
temporary directory. Bring-up:

1. a throwaway btcd + node A, only to learn an address of A's wallet (btcd v0.26.2
   has no working ``generatetoaddress``; it mines to ``--miningaddr``), both stopped;
2. btcd again with ``--miningaddr`` = that address, 110 blocks (segwit is active from
   block 1 on btcd regtest; 10 coinbases are mature), then A, B, C fresh processes;
3. A sends coins to B and opens A -> B; one block; B opens B -> C; six blocks;
4. every wait is a poll with a deadline: synced to chain, channels active, A finds a
   route to B and to C.

Teardown stops the LND nodes first, then btcd (lnd hangs retrying a vanished btcd).
The only allowed skip: the binaries are missing because ``go`` is not installed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest

from nwcd.backends.lnd import LndBackend, LndConfig
from nwcd.store.sqlite import SqliteStore
from tests.service.harness import WalletHarness

LND_VERSION = "v0.21.3-beta"
BTCD_VERSION = "v0.26.2"
RPC_USER = RPC_PASS = "nwcd"
MATURE_BLOCKS = 110
AB_CHANNEL_SAT = 2_000_000
AB_PUSH_SAT = 300_000  # so B can pay A's invoices
BC_CHANNEL_SAT = 1_000_000
B_ONCHAIN_SAT = 3_000_000

T = TypeVar("T")


def bin_dir() -> Path:
    cache = Path(os.environ.get("NWCD_CACHE") or Path.home() / ".cache" / "nwcd")
    return cache / f"lnd-{LND_VERSION}-btcd-{BTCD_VERSION}" / "bin"


def require_binaries() -> Path:
    """The binary directory; skip (no ``go``) or fail (not built) when it is missing."""
    directory = bin_dir()
    if all((directory / name).is_file() for name in ("btcd", "lnd")):
        return directory
    if shutil.which("go") is None:
        pytest.skip(
            "lnd/btcd binaries are not built and the Go toolchain is not installed "
            "(scripts/setup-lnd.sh needs go to build them)"
        )
    pytest.fail(
        f"lnd/btcd binaries missing in {directory}: run scripts/setup-lnd.sh", pytrace=False
    )


def connections_to(port: int) -> set[int]:
    """Local ports of the established TCP connections to ``port`` (``/proc/net``)."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, remote, state = line.split()[1:4]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                found.add(int(local.rsplit(":", 1)[1], 16))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``probe`` until it returns something truthy; its errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: BaseException | None = None
    while True:
        try:
            value = probe()
        except (httpx.HTTPError, OSError, ValueError, KeyError, RuntimeError) as exc:
            last, value = exc, None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what} (last error: {last!r})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class _Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def spawn(self, args: list[str]) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "HOME": str(self.log_path.parent)},  # nothing into ~
        )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


class Btcd(_Process):
    def __init__(self, binaries: Path, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__("btcd", workdir / "btcd.out")
        self.binaries = binaries
        self.workdir = workdir
        self.rpc_port = free_port()
        self.cert = workdir / "rpc.cert"
        self._client: httpx.Client | None = None

    def start(self, mining_address: str | None = None) -> None:
        config = self.workdir / "btcd.conf"
        config.touch()
        args = [
            str(self.binaries / "btcd"),
            f"--configfile={config}",
            "--regtest",
            f"--datadir={self.workdir / 'data'}",
            f"--logdir={self.workdir / 'logs'}",
            f"--rpccert={self.cert}",
            f"--rpckey={self.workdir / 'rpc.key'}",
            f"--rpcuser={RPC_USER}",
            f"--rpcpass={RPC_PASS}",
            f"--rpclisten=127.0.0.1:{self.rpc_port}",
            "--nolisten",
            "--txindex",
        ]
        if mining_address:
            args.append(f"--miningaddr={mining_address}")
        self.spawn(args)
        wait_for("btcd rpc cert", self.cert.exists, 30)
        wait_for("btcd rpc", lambda: self.rpc("getblockcount") is not None, 30)

    def rpc(self, method: str, *params: Any) -> Any:
        self.check_alive()
        if self._client is None:
            self._client = httpx.Client(
                verify=ssl.create_default_context(cafile=str(self.cert)),
                auth=(RPC_USER, RPC_PASS),
                timeout=60,
            )
        response = self._client.post(
            f"https://127.0.0.1:{self.rpc_port}",
            json={"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)},
        )
        body = response.json()
        if body.get("error"):
            raise RuntimeError(f"btcd {method}: {body['error']}")
        return body["result"]

    def mine(self, blocks: int) -> None:
        self.rpc("generate", blocks)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.terminate()
        self.wait_stopped(15)


class LndNode(_Process):
    def __init__(self, name: str, binaries: Path, workdir: Path, btcd: Btcd) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(f"lnd {name}", workdir / "lnd.out")
        self.alias = name
        self.binaries = binaries
        self.workdir = workdir
        self.btcd = btcd
        self.p2p_port, self.rpc_port, self.rest_port = free_port(), free_port(), free_port()
        self.tls_cert = workdir / "tls.cert"
        self.macaroon_path = workdir / "data/chain/bitcoin/regtest/admin.macaroon"
        self._client: httpx.Client | None = None
        self.pubkey = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.rest_port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    def start(self) -> None:
        self.spawn(
            [
                str(self.binaries / "lnd"),
                f"--lnddir={self.workdir}",
                "--noseedbackup",
                "--bitcoin.regtest",
                "--bitcoin.node=btcd",
                f"--btcd.rpchost=127.0.0.1:{self.btcd.rpc_port}",
                f"--btcd.rpcuser={RPC_USER}",
                f"--btcd.rpcpass={RPC_PASS}",
                f"--btcd.rpccert={self.btcd.cert}",
                f"--listen=127.0.0.1:{self.p2p_port}",
                f"--rpclisten=127.0.0.1:{self.rpc_port}",
                f"--restlisten=127.0.0.1:{self.rest_port}",
                "--tlsextraip=127.0.0.1",
                "--nobootstrap",
                "--accept-keysend",
                f"--alias={self.alias}",
                "--trickledelay=50",
                "--maxpendingchannels=10",
                "--debuglevel=info",
            ]
        )

    def wait_ready(self) -> None:
        def ready() -> bool:
            self.check_alive()
            if not (self.tls_cert.exists() and self.macaroon_path.exists()):
                return False
            self.pubkey = self.call("GET", "/v1/getinfo")["identity_pubkey"]
            return True

        wait_for(f"{self.name} REST", ready, 60)

    def config(self, **overrides: Any) -> LndConfig:
        return LndConfig.from_files(self.url, self.macaroon_path, self.tls_cert, **overrides)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One REST call; raises RuntimeError with LND's message on an error status."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.url,
                verify=ssl.create_default_context(cafile=str(self.tls_cert)),
                headers={"Grpc-Metadata-macaroon": self.macaroon_path.read_bytes().hex()},
                timeout=60,
            )
        response = self._client.request(method, path, json=body, params=params)
        if response.status_code != 200:
            raise RuntimeError(
                f"{self.name} {method} {path}: {response.status_code} {response.text}"
            )
        result: dict[str, Any] = response.json()
        return result

    def pay(self, payment_request: str) -> dict[str, Any]:
        """Pay through ``/v2/router/send`` (a stream) and return the final ``Payment``."""
        self.call("GET", "/v1/getinfo")  # makes the client
        assert self._client is not None
        body = {
            "payment_request": payment_request,
            "fee_limit_msat": "100000",
            "timeout_seconds": 30,
        }
        with self._client.stream("POST", "/v2/router/send", json=body) as response:
            for line in response.iter_lines():
                result = json.loads(line).get("result") if line.strip() else None
                if result and result["status"] in ("SUCCEEDED", "FAILED"):
                    return dict(result)
        raise RuntimeError(f"{self.name}: payment stream ended without a final state")

    def height(self) -> int:
        return int(self.call("GET", "/v1/getinfo")["block_height"])

    def synced_at(self, height: int) -> bool:
        info = self.call("GET", "/v1/getinfo")
        return bool(info.get("synced_to_chain")) and int(info["block_height"]) >= height

    def new_address(self) -> str:
        return str(
            self.call("GET", "/v1/newaddress", params={"type": "WITNESS_PUBKEY_HASH"})["address"]
        )

    def add_invoice(
        self, value_msat: int, memo: str = "", expiry: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"value_msat": str(value_msat), "memo": memo}
        if expiry is not None:
            body["expiry"] = str(expiry)
        return self.call("POST", "/v1/invoices", body)

    def add_hold_invoice(self, payment_hash: bytes, value_msat: int) -> dict[str, Any]:
        return self.call(
            "POST",
            "/v2/invoices/hodl",
            {"hash": base64.b64encode(payment_hash).decode(), "value_msat": str(value_msat)},
        )

    def settle_hold_invoice(self, preimage: bytes) -> None:
        self.call("POST", "/v2/invoices/settle", {"preimage": base64.b64encode(preimage).decode()})

    def invoice(self, payment_hash: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/invoice/{payment_hash}")

    def connect(self, other: LndNode) -> None:
        self.call(
            "POST",
            "/v1/peers",
            {"addr": {"pubkey": other.pubkey, "host": other.host}, "perm": False},
        )

    def open_channel(self, other: LndNode, sat: int, push_sat: int = 0) -> None:
        self.call(
            "POST",
            "/v1/channels",
            {
                "node_pubkey": base64.b64encode(bytes.fromhex(other.pubkey)).decode(),
                "local_funding_amount": str(sat),
                "push_sat": str(push_sat),
                "spend_unconfirmed": False,
            },
        )

    def active_channels(self) -> int:
        channels = self.call("GET", "/v1/channels", params={"active_only": "true"})["channels"]
        return len(channels)

    def routable(self, other: LndNode, sat: int = 1_000) -> bool:
        routes = self.call("GET", f"/v1/graph/routes/{other.pubkey}/{sat}")
        return bool(routes.get("routes"))

    def payments_for(self, payment_hash: str) -> list[dict[str, Any]]:
        payments = self.call(
            "GET", "/v1/payments", params={"include_incomplete": "true", "max_payments": "100000"}
        )["payments"]
        return [p for p in payments if p["payment_hash"] == payment_hash]

    def stop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass
class LndNetwork:
    """The running network; ``a`` pays, ``b`` is one hop away, ``c`` two."""

    btcd: Btcd
    a: LndNode
    b: LndNode
    c: LndNode
    workdir: Path
    bringup_seconds: float = 0.0
    expired_invoice: str = ""  # an invoice of B that expired during the bring-up
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def nodes(self) -> tuple[LndNode, LndNode, LndNode]:
        return self.a, self.b, self.c

    def stop(self) -> None:
        """LND nodes first (all at once), then btcd."""
        for node in self.nodes:
            node.stop_client()
            node.terminate()
        for node in self.nodes:
            node.wait_stopped(30)
        self.btcd.stop()


def bring_up(binaries: Path, workdir: Path) -> LndNetwork:
    start = time.monotonic()
    timings: dict[str, float] = {}
    btcd = Btcd(binaries, workdir / "btcd")
    a = LndNode("A", binaries, workdir / "a", btcd)
    b = LndNode("B", binaries, workdir / "b", btcd)
    c = LndNode("C", binaries, workdir / "c", btcd)
    network = LndNetwork(btcd, a, b, c, workdir, timings=timings)
    try:
        # 1. A's mining address, from a throwaway btcd + A (gotchas 1 and 2).
        btcd.start()
        a.start()
        a.wait_ready()
        address = wait_for("an address of A", a.new_address, 30)
        a.stop_client()
        a.terminate()
        a.wait_stopped(30)
        btcd.stop()
        timings["address"] = time.monotonic() - start

        # 2. btcd mining to A; A, B, C fresh.
        btcd.start(mining_address=address)
        btcd.mine(MATURE_BLOCKS)
        for node in network.nodes:
            node.start()
        for node in network.nodes:
            node.wait_ready()
        for node in network.nodes:
            wait_for(f"{node.name} synced", lambda n=node: n.synced_at(MATURE_BLOCKS), 60)
        network.expired_invoice = b.add_invoice(10_000, "expires at once", expiry=1)[
            "payment_request"
        ]
        timings["nodes"] = time.monotonic() - start

        # 3. Channels A -> B -> C.
        wait_for(
            "A's mature funds",
            lambda: int(a.call("GET", "/v1/balance/blockchain")["confirmed_balance"]) > 0,
            30,
        )
        b_address = b.new_address()
        a.call("POST", "/v1/transactions", {"addr": b_address, "amount": str(B_ONCHAIN_SAT)})
        a.connect(b)
        b.connect(c)
        a.open_channel(b, AB_CHANNEL_SAT, push_sat=AB_PUSH_SAT)
        btcd.mine(1)
        wait_for(
            "B's on-chain funds",
            lambda: (
                int(b.call("GET", "/v1/balance/blockchain")["confirmed_balance"]) >= B_ONCHAIN_SAT
            ),
            30,
        )
        b.open_channel(c, BC_CHANNEL_SAT)
        btcd.mine(6)
        height = MATURE_BLOCKS + 7
        for node in network.nodes:
            wait_for(f"{node.name} synced", lambda n=node: n.synced_at(height), 30)
        wait_for("A's channel active", lambda: a.active_channels() == 1, 30)
        wait_for("B's channels active", lambda: b.active_channels() == 2, 30)
        wait_for("C's channel active", lambda: c.active_channels() == 1, 30)
        wait_for("a route A -> B", lambda: a.routable(b), 30)
        wait_for("a route A -> C", lambda: a.routable(c), 60)
        timings["channels"] = time.monotonic() - start
    except Exception as exc:
        tails = "\n".join(
            f"--- {p.name}\n{p.log_tail()}" for p in (btcd, a, b, c) if p.log_path.exists()
        )
        network.stop()
        raise RuntimeError(f"LND network bring-up failed: {exc!r}; logs:\n{tails}") from exc
    network.bringup_seconds = time.monotonic() - start
    return network


@contextlib.contextmanager
def lnd_network() -> Iterator[LndNetwork]:
    """The network for the duration of the block, in a fresh temporary directory."""
    binaries = require_binaries()
    with tempfile.TemporaryDirectory(prefix="nwcd-lnd-") as tmp:
        network = bring_up(binaries, Path(tmp))
        try:
            yield network
        finally:
            network.stop()


@dataclass
class LndHarness(WalletHarness):
    """The in-process service of ``WalletHarness`` with node A as its backend."""

    lnd: LndConfig | None = None

    async def __aenter__(self) -> LndHarness:
        assert self.lnd is not None
        self.store = await SqliteStore.open(self.data_dir / "nwcd.sqlite")
        self.backend = await LndBackend.open(self.lnd)  # type: ignore[assignment]
        return self

    async def crash_and_reopen(self, while_down: Callable[[], Awaitable[None]]) -> None:
        """Cancel the daemon, drop backend and store, run ``while_down``, start again."""
        await self.stop()
        await self.backend.close()
        await self.store.close()
        await while_down()
        await self.__aenter__()
        await self.start()
