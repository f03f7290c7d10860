"""The data dir holds secrets: it is kept 0700 and its files 0600, and loosened modes are fixed."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nwcd.bootstrap import open_simulator, open_store
from nwcd.config import load_settings
from nwcd.datadir import create_private_file, secure_data_dir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# -- secure_data_dir ----------------------------------------------------------------------------


def test_missing_dir_is_created_0700_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "parent" / "data"
    assert secure_data_dir(data) == []
    assert mode(data) == 0o700
    assert mode(data.parent) == 0o755  # parents are not ours to lock down


def test_loose_dir_is_tightened_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="nwcd"):
        notes = secure_data_dir(data)
    assert mode(data) == 0o700
    assert len(notes) == 1
    assert str(data) in notes[0]
    assert "0755" in notes[0]
    assert "0700" in notes[0]
    assert [r.getMessage() for r in caplog.records if r.name == "nwcd"] == notes
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_loose_file_is_tightened_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    secret = data / "simulator.sqlite"
    secret.write_bytes(b"not for logs")
    secret.chmod(0o644)
    tight = data / "nwcd.sqlite"
    tight.write_bytes(b"")
    tight.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="nwcd"):
        notes = secure_data_dir(data)
    assert mode(secret) == 0o600
    assert mode(tight) == 0o600
    assert notes == [f"data file {secret} had mode 0644; changed it to 0600"]
    assert "not for logs" not in caplog.text
    assert [r.getMessage() for r in caplog.records] == notes


def test_tight_dir_reports_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    for name, bits in (("nwcd.sqlite", 0o600), ("nwcd.sqlite-wal", 0o600), ("ro", 0o400)):
        (data / name).touch()
        (data / name).chmod(bits)
    with caplog.at_level(logging.DEBUG, logger="nwcd"):
        assert secure_data_dir(data) == []
    assert caplog.records == []
    assert mode(data / "ro") == 0o400  # narrowed only, never widened


def test_symlinks_and_subdirectories_are_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    outside = tmp_path / "outside.txt"
    outside.write_text("someone else's")
    outside.chmod(0o644)
    (data / "link").symlink_to(outside)
    (data / "dangling").symlink_to(tmp_path / "missing")
    sub = data / "sub"
    sub.mkdir()
    sub.chmod(0o755)
    (sub / "inner").touch()
    (sub / "inner").chmod(0o644)
    assert secure_data_dir(data) == []
    assert mode(outside) == 0o644
    assert mode(sub) == 0o755
    assert mode(sub / "inner") == 0o644


# -- create_private_file ------------------------------------------------------------------------


def test_create_private_file_is_0600_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "new.sqlite"
    create_private_file(path)
    assert path.read_bytes() == b""
    assert mode(path) == 0o600


def test_create_private_file_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    path.write_bytes(b"data")
    path.chmod(0o640)
    create_private_file(path)
    assert path.read_bytes() == b"data"
    assert mode(path) == 0o640  # secure_data_dir fixes modes, not this


# -- bootstrap ----------------------------------------------------------------------------------


async def test_open_files_and_their_wal_and_shm_are_0600(tmp_path: Path, umask_022: None) -> None:
    """While both databases are open their -wal and -shm files exist: owner-only too."""
    data = tmp_path / "data"
    settings = load_settings(data_dir=data, environ={})
    store = await open_store(settings)
    try:
        backend = await open_simulator(settings)
        try:
            await backend.create_invoice(1_000)
            names = sorted(p.name for p in data.iterdir())
            assert {"nwcd.sqlite-wal", "simulator.sqlite-wal", "simulator.sqlite-shm"} <= set(names)
            modes = {name: oct(mode(data / name)) for name in [".", *names]}
            assert modes == {".": "0o700"} | {name: "0o600" for name in names}
        finally:
            await backend.close()
    finally:
        await store.close()


# -- the real CLI -------------------------------------------------------------------------------


def nwcd(data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m nwcd ARGV --data-dir DATA`` in a child whose umask is 022."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NWCD_DATA_DIR", "NWCD_CONFIG", "NWCD_RELAYS", "NWCD_BACKEND", "NWC_URI")
    }
    return subprocess.run(
        [sys.executable, "-m", "nwcd", *argv, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        preexec_fn=lambda: os.umask(0o022),  # the umask of the child only
    )


SIM_INVOICE = ("sim", "invoice", "--amount-msat", "1000", "--json")
CREATE = ("connection", "create", "--name", "a", "--relay", "ws://127.0.0.1:1", "--json")


@pytest.mark.parametrize("commands", [(SIM_INVOICE, CREATE), (CREATE, SIM_INVOICE)])
def test_cli_creates_an_owner_only_data_dir(
    tmp_path: Path, commands: tuple[tuple[str, ...], ...]
) -> None:
    data = tmp_path / "data"
    for argv in commands:
        done = nwcd(data, *argv)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    names = sorted(p.name for p in data.iterdir())
    assert {"simulator.sqlite", "nwcd.sqlite"} <= set(names)
    modes = {name: oct(mode(data / name)) for name in [".", *names]}
    assert modes == {".": "0o700"} | {name: "0o600" for name in names}


def test_cli_tightens_a_loose_data_dir_with_one_warning_line_each(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    secret = data / "simulator.sqlite"
    assert nwcd(data, *SIM_INVOICE).returncode == 0
    secret.chmod(0o644)
    data.chmod(0o755)

    done = nwcd(data, *SIM_INVOICE)

    assert done.returncode == 0, done.stderr
    assert mode(data) == 0o700
    assert mode(secret) == 0o600
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    dir_line, file_line = lines
    assert str(data) in dir_line
    assert "0755" in dir_line
    assert "0700" in dir_line
    assert str(secret) in file_line
    assert "0644" in file_line
    assert "0600" in file_line
    # Nothing left to fix the next time.
    again = nwcd(data, *SIM_INVOICE)
    assert again.returncode == 0
    assert again.stderr == ""
