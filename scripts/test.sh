#!/usr/bin/env bash
# Install everything the tests need (into .venv and ~/.cache/nwcd) and run every check.
# This is README command 2 and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
bash scripts/setup-peers.sh
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== ruff format"; .venv/bin/ruff format --check src tests bench
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"; PYTHONASYNCIODEBUG=1 .venv/bin/pytest "$@"
