"""The Node peers' install: found where setup-peers.sh puts it, a clear failure otherwise."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.interop.node import INTEROP_SRC, node_install_dir
from tests.support.relays import PeerMissing


def test_install_is_keyed_by_the_lock_file_like_setup_peers() -> None:
    lock = INTEROP_SRC / "package-lock.json"
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    assert node_install_dir().name == key
    script = (INTEROP_SRC.parent / "scripts" / "setup-peers.sh").read_text()
    assert 'sha256sum "$INTEROP_SRC/package-lock.json" | cut -c1-16' in script


def test_pinned_sdk_version_is_installed() -> None:
    version = subprocess.run(
        ["node", "-p", "require('./node_modules/@getalby/sdk/package.json').version"],
        cwd=node_install_dir(),
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout.strip()
    assert version == "8.0.3"


def test_missing_node_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(PeerMissing, match=r"node \(Node\.js >= 20\) is not on PATH"):
        node_install_dir()


def test_missing_install_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NWCD_CACHE", str(tmp_path))
    with pytest.raises(PeerMissing, match=r"run scripts/setup-peers\.sh"):
        node_install_dir()
