#!/usr/bin/env bash
# Install the third-party peers the tests talk to, cached outside the repo.
set -euo pipefail
CACHE=${NWCD_CACHE:-$HOME/.cache/nwcd}
mkdir -p "$CACHE"
