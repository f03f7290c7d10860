#!/usr/bin/env bash
# Install the third-party peers the tests talk to, cached outside the repo.
set -euo pipefail
CACHE=${NWCD_CACHE:-$HOME/.cache/nwcd}
mkdir -p "$CACHE"

# nostr-relay 1.14 (PyPI) in its own virtualenv: a lenient third-party relay for tests.
# Every version is pinned (from a working install) so each machine gets the same relay;
# the stamp file holds the pins, so a cached venv with the same pins is reused at no cost.
NOSTR_RELAY_VENV="$CACHE/nostr-relay-1.14"
NOSTR_RELAY_PINS="nostr-relay==1.14 aionostr==0.20.0 aiodns==4.0.4 aiohappyeyeballs==2.7.1
aiohttp==3.14.5 aiosignal==1.4.0 aiosqlite==0.22.1 alembic==1.20.1 annotated-types==0.8.0
anyio==4.16.0 attrs==26.1.0 backports.zstd==1.8.0 brotli==1.2.1 cffi==2.1.1 click==8.5.1
coincurve==21.0.0 cryptography==50.0.2 falcon==4.4.0 frozenlist==1.8.0 greenlet==3.5.6
gunicorn==27.0.1 h11==0.16.0 httptools==0.9.0 idna==3.20 Mako==1.4.3 MarkupSafe==3.0.4
multidict==7.2.1 propcache==0.5.4 pycares==5.2.1 pycparser==3.12 pydantic==2.14.4
pydantic_core==2.50.5 python-dotenv==1.2.4 python-rapidjson==1.25 PyYAML==6.0.4
setproctitle==1.3.8 SQLAlchemy==2.1.9 typing-inspection==0.4.5 typing_extensions==4.16.0
uvicorn==0.54.0 uvloop==0.23.0 watchfiles==1.3.0 websockets==17.4 yarl==1.25.1"
if [ "$(cat "$NOSTR_RELAY_VENV/.pins" 2>/dev/null)" != "$NOSTR_RELAY_PINS" ] \
    || [ ! -x "$NOSTR_RELAY_VENV/bin/nostr-relay" ]; then
    echo "== installing nostr-relay 1.14 into $NOSTR_RELAY_VENV"
    rm -rf "$NOSTR_RELAY_VENV"
    "${PYTHON:-python3}" -m venv "$NOSTR_RELAY_VENV"
    # shellcheck disable=SC2086 # the pins are one word each
    "$NOSTR_RELAY_VENV/bin/python" -m pip install -q --disable-pip-version-check $NOSTR_RELAY_PINS
    printf '%s' "$NOSTR_RELAY_PINS" > "$NOSTR_RELAY_VENV/.pins"
fi

# Node peers for tests/interop (Alby JS SDK 8.0.3, ws, nostr-tools), from the committed
# interop/package.json + package-lock.json with `npm ci`, into a directory keyed by the
# lock file's hash (tests/interop/node.py computes the same key), so a cached install is
# reused at no cost and a changed lock gets a fresh one. Node 20 works although
# @getalby/sdk 8 declares node >= 22 (shared/docs/peers.md), hence --engine-strict=false.
INTEROP_SRC="$(cd "$(dirname "$0")/.." && pwd)/interop"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup-peers.sh: node and npm (Node >= 20) are needed for tests/interop" >&2
    exit 1
fi
NODE_KEY=$(sha256sum "$INTEROP_SRC/package-lock.json" | cut -c1-16)
NODE_INTEROP="$CACHE/node-interop/$NODE_KEY"
if [ ! -f "$NODE_INTEROP/.installed" ]; then
    echo "== installing interop/package-lock.json (npm ci) into $NODE_INTEROP"
    NODE_TMP=$(mktemp -d "$CACHE/node-interop.tmp.XXXXXX")
    cp "$INTEROP_SRC/package.json" "$INTEROP_SRC/package-lock.json" "$NODE_TMP/"
    (cd "$NODE_TMP" && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)
    touch "$NODE_TMP/.installed"
    rm -rf "$NODE_INTEROP"
    mkdir -p "$CACHE/node-interop"
    mv "$NODE_TMP" "$NODE_INTEROP"
fi

# btcd + lnd for the LND regtest tests (tests/backends/test_lnd.py); skips without go.
"$(dirname "$0")/setup-lnd.sh"
