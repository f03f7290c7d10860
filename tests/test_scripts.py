"""scripts/test.sh in isolation: the prerequisite check (``--check``), ``--help`` and the
tests ``--quick`` leaves out (``--list-quick``).

The check runs on a PATH of symlinks to the system's own programs with every toolchain the
check looks for taken out (cargo, go, node, npm, protoc, psql, apt-get, sudo, pyenv, every
python); a test puts back the ones it wants as stubs, so the outcome does not depend on
what this machine has installed. HOME and NWCD_CACHE are empty temporary folders, so no
peer is cached unless a test says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.backends.lnd_network import bin_dir as lnd_bin_dir
from tests.support.relays import NOSTR_RS_RELAY_VERSION

REPO = Path(__file__).resolve().parents[1]
SYSTEM_BIN = ("/usr/local/bin", "/usr/bin", "/bin")
TOOLCHAINS = {
    "apt-get", "cargo", "go", "initdb", "node", "nodejs", "npm", "npx", "pg_ctl", "protoc",
    "psql", "pyenv", "rustc", "rustup", "sudo",
}  # fmt: skip
STUBS = {  # what each stub prints, whatever it is asked (test.sh reads versions only)
    "cargo": "cargo 1.95.0",
    "go": "go1.26.0",  # `go env GOVERSION`
    "node": "v22.1.0",
    "npm": "10.9.0",
    "protoc": "libprotoc 3.21.12",
    "psql": "psql (PostgreSQL) 15.20",
    "apt-get": "apt 2.6.1",
    "sudo": "",
}
HEADER = "missing prerequisites"

Run = Callable[..., subprocess.CompletedProcess[str]]


def stub(path: Path, output: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def toolbox(tmp_path: Path) -> Path:
    """A PATH folder: the system's programs minus the toolchains, plus a real Python 3.11+."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for system in SYSTEM_BIN:
        if not os.path.isdir(system):
            continue
        for entry in os.scandir(system):
            name = entry.name
            if name in TOOLCHAINS or name.startswith("python") or os.path.lexists(folder / name):
                continue
            if os.access(entry.path, os.X_OK):
                (folder / name).symlink_to(entry.path)
    (folder / "python3").symlink_to(Path(sys.executable).resolve())
    return folder


@pytest.fixture
def run(tmp_path: Path, toolbox: Path) -> Run:
    """``run(*args, stubs=[...], repo=REPO, **env)``: scripts/test.sh on the toolbox PATH."""
    pg_bin = tmp_path / "pg-bin"
    stub(pg_bin / "initdb")
    lnbits_python = stub(tmp_path / "python3.12" / "python3.12")  # exit 0: "in range"
    home = tmp_path / "home"
    home.mkdir()

    def run_test_sh(
        *args: str, stubs: Sequence[str] = (), repo: Path = REPO, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        for name in stubs:
            stub(toolbox / name, STUBS[name])
        env = {
            "PATH": str(toolbox),
            "HOME": str(home),
            "NWCD_CACHE": str(tmp_path / "cache"),
            "NWCD_PG_BIN": str(pg_bin),
            "LNBITS_PYTHON": str(lnbits_python),
            "LANG": "C.UTF-8",
            **extra,
        }
        return subprocess.run(
            ["bash", "scripts/test.sh", *args],
            env=env,
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run_test_sh


EVERYTHING = ["cargo", "go", "node", "npm", "protoc", "psql"]


def missing_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("  - ")]


def test_check_passes_when_every_prerequisite_is_there(run: Run, tmp_path: Path) -> None:
    done = run("--check", stubs=EVERYTHING)
    assert done.returncode == 0, done.stderr
    assert "prerequisites: all present" in done.stdout
    assert re.search(r"not cached yet.*lnd.*nostr-rs-relay", done.stdout)
    assert not (tmp_path / "cache").exists()  # a check installs nothing


def test_missing_cargo_is_one_message_naming_it_and_how_to_get_it(run: Run, tmp_path: Path) -> None:
    done = run("--check", stubs=[s for s in EVERYTHING if s != "cargo"])
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert output.count(HEADER) == 1
    [line] = missing_lines(done.stderr)
    assert "cargo" in line
    assert "rustup.rs" in line
    assert "installing" not in output
    assert not (tmp_path / "cache").exists()


def test_everything_missing_is_named_in_one_message(run: Run, tmp_path: Path) -> None:
    (tmp_path / "no-pg").mkdir()
    done = run("--check", NWCD_PG_BIN=str(tmp_path / "no-pg"), LNBITS_PYTHON=str(tmp_path / "none"))
    assert done.returncode == 1
    assert done.stderr.count(HEADER) == 1
    lines = missing_lines(done.stderr)
    for what, how in [
        (r"^  - node ", r"nodejs\.org"),
        (r"^  - Python 3\.12 for LNbits ", r"LNBITS_PYTHON"),
        (r"^  - cargo ", r"rustup\.rs"),
        (r"^  - protoc ", r"apt install protobuf-compiler"),
        (r"^  - go ", r"go\.dev/dl|/usr/local/go/bin"),  # or: it is there, not on PATH
        (r"^  - PostgreSQL 15", r"NWCD_PG_BIN"),
    ]:
        assert [x for x in lines if re.search(what, x) and re.search(how, x)], (what, lines)
    assert len(lines) == 6, lines
    assert "--quick" in done.stderr  # the way out that needs none of them


def test_apt_installs_protoc_and_is_not_missing(run: Run) -> None:
    done = run("--check", stubs=[s for s in EVERYTHING if s != "protoc"] + ["apt-get", "sudo"])
    assert done.returncode == 0, done.stderr
    assert "apt-get will install: protobuf-compiler" in done.stdout


def test_cached_builds_need_no_build_tools(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the tests look for the built peers (so the scripts must agree with the tests).
    monkeypatch.setenv("NWCD_CACHE", str(tmp_path / "cache"))
    stub(tmp_path / "cache" / f"nostr-rs-relay-{NOSTR_RS_RELAY_VERSION}" / "bin" / "nostr-rs-relay")
    for name in ("btcd", "btcctl", "lnd", "lncli"):
        stub(lnd_bin_dir() / name)
    done = run("--check", stubs=["node", "npm", "psql"])  # no cargo, protoc nor go
    assert done.returncode == 0, done.stderr
    assert "nostr-rs-relay" not in done.stdout
    assert "lnd" not in done.stdout


def test_quick_needs_only_python(run: Run) -> None:
    done = run("--check", "--quick")
    assert done.returncode == 0, done.stderr
    assert "all present (--quick)" in done.stdout


def test_a_missing_prerequisite_stops_a_real_run_before_anything_is_installed(
    run: Run, tmp_path: Path
) -> None:
    # A copy of the scripts, so that a check that wrongly passed could not touch this checkout.
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    shutil.copytree(REPO / "interop", repo / "interop", ignore=shutil.ignore_patterns("node_*"))
    done = run(stubs=[s for s in EVERYTHING if s != "cargo"], repo=repo)
    assert done.returncode == 1
    assert "cargo" in done.stderr
    assert "installing" not in done.stdout + done.stderr
    assert not (repo / ".venv").exists()
    assert not (tmp_path / "cache").exists()


def test_help_describes_quick_and_check(run: Run) -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "--quick" in done.stdout
    assert "--check" in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_leaves_out_the_tests_of_the_peers_it_does_not_install() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        ["bash", "scripts/test.sh", "--list-quick"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stderr
    by_peer: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        peer, _, test = line.partition("\t")
        by_peer.setdefault(peer.split(" (")[0], []).append(test)
    left_out = {test for tests in by_peer.values() for test in tests}

    def some(peer: str, pattern: str) -> bool:
        return any(re.search(pattern, test) for test in by_peer.get(peer, []))

    # Every row of the table still finds its tests (a renamed file or fixture would not).
    assert some("nostr-rs-relay", r"^tests/chaos/test_chaos\.py::"), by_peer.keys()
    assert some("lnd and btcd", r"^tests/backends/test_lnd\.py::")  # by fixture
    assert some("lnd and btcd", r"^tests/contract/.*\[lnd\]")  # by parameter
    assert some("LNbits", r"^tests/backends/test_lnbits\.py::")
    assert some("LNbits", r"^tests/contract/.*\[lnbits\]")
    assert some("Node peers", r"^tests/interop/test_alby_client\.py::")
    assert some("Node peers", r"^tests/interop/test_node_setup\.py::test_pinned_sdk")
    assert some("PostgreSQL 15", r"^tests/store/.*\[postgres\]")
    assert some("PostgreSQL 15", r"^tests/service/test_instances\.py::test_demo_runs_on_postgresql")
    # ... and only those: what needs no left-out peer stays in.
    for kept in (
        r"\[sqlite\]",
        r"\[simulator\]",
        r"^tests/chaos/test_checks\.py::",
        r"^tests/interop/test_nostr_sdk_client\.py::",  # nostr-relay and nostr-sdk: pip
        r"^tests/interop/test_node_setup\.py::test_missing_",
        r"^tests/backends/test_lnbits\.py::test_config_",
        r"^tests/store/test_postgres\.py::test_a_password_never_leaves_the_url",
        r"^tests/test_scripts\.py::",
    ):
        assert not [t for t in left_out if re.search(kept, t)], kept
