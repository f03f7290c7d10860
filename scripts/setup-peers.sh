#!/usr/bin/env bash
# Install the third-party peers the tests talk to, cached outside the repo.
#
#   setup-peers.sh           all of them (scripts/test.sh)
#   setup-peers.sh --quick   only nostr-relay: the one peer that needs no native build and no
#                            runtime but $PYTHON (scripts/test.sh --quick)
#   setup-peers.sh --plan    change nothing; print one line per peer, "PEER STATE [DETAIL]",
#                            STATE cached, install or build (PostgreSQL: present, install or
#                            missing; Chromium: present or install): scripts/test.sh checks
#                            the prerequisites with it
#
# A cached peer costs nothing and says so in one line. Long steps print a line when they
# start (with the expected time where known), "still <step>: N min" every minute while they
# run, and the time taken.
set -euo pipefail
MODE=${1:-all}
case $MODE in
    all | --quick | --plan) ;;
    *) echo "usage: setup-peers.sh [--quick | --plan]" >&2; exit 2 ;;
esac
CACHE=${NWCD_CACHE:-$HOME/.cache/nwcd}
HERE=$(cd "$(dirname "$0")" && pwd)

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
nostr_relay_cached() {
    [ "$(cat "$NOSTR_RELAY_VENV/.pins" 2>/dev/null)" = "$NOSTR_RELAY_PINS" ] \
        && [ -x "$NOSTR_RELAY_VENV/bin/nostr-relay" ]
}

# Node peers for tests/interop (Alby JS SDK 8.0.3, ws, nostr-tools), from the committed
# interop/package.json + package-lock.json with `npm ci`, into a directory keyed by the
# lock file's hash (tests/interop/node.py computes the same key), so a cached install is
# reused at no cost and a changed lock gets a fresh one. Node 20 works although
# @getalby/sdk 8 declares node >= 22, hence --engine-strict=false.
INTEROP_SRC="$(cd "$(dirname "$0")/.." && pwd)/interop"
NODE_KEY=$(sha256sum "$INTEROP_SRC/package-lock.json" | cut -c1-16)
NODE_INTEROP="$CACHE/node-interop/$NODE_KEY"
node_interop_cached() { [ -f "$NODE_INTEROP/.installed" ]; }

# LNbits 1.6.2 (PyPI) in its own virtualenv, run by tests/backends/lnbits_server.py with its
# FakeWallet funding source. It needs Python >=3.10,<3.13: pyenv's 3.12.1 by its full path
# (the python3.12 shim is not selected here; override with LNBITS_PYTHON). bitstring<5: its
# bolt11 breaks with bitstring 5. Every version is pinned (from a working install) and the
# stamp file holds the pins, so a cached venv with the same pins is reused at no cost.
LNBITS_VENV="$CACHE/lnbits-1.6.2"
LNBITS_PINS="lnbits==1.6.2 aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0
aiosqlite==0.22.1 annotated-doc==0.0.7 anyio==4.14.2 asn1crypto==1.5.1 asyncpg==0.31.0
attrs==26.1.0 base58==2.1.1 bcrypt==5.0.0 bech32==1.2.0 bip32==5.0.0 bitarray==3.12.3
bitstring==4.4.0 bolt11==2.1.1 certifi==2026.10.19.post1 cffi==2.1.1 charset-normalizer==3.5.2
click==8.3.3 coincurve==20.0.0 coincurve-cp314-fix==22.0.1 cryptography==50.0.2
Deprecated==3.0.1 dnspython==2.9.2 email-validator==2.4.0 embit==0.8.0 fastapi==0.116.2
fastapi-sso==0.19.0 filetype==1.2.0 frozenlist==1.8.0 greenlet==3.3.2 grpcio==1.76.0
h11==0.16.0 http_ece==1.2.1 httpcore==1.0.9 httpx==0.27.2 idna==3.20 itsdangerous==2.2.0
Jinja2==3.1.6 jsonpath-ng==1.7.0 limits==5.8.0 lnurl==0.10.4 loguru==0.7.3
markdown-it-py==4.3.0 MarkupSafe==3.0.4 mdurl==0.1.2 multidict==7.2.1 nostr-sdk==0.44.8
oauthlib==4.0.1 packaging==25.0 pillow==12.3.0 ply==3.11 propcache==0.5.4 protobuf==6.33.6
py-vapid==1.9.6 pycparser==3.12 pycryptodomex==3.23.0 pydantic==1.10.27 Pygments==2.21.0
pyinstrument==5.1.3 PyJWT==2.12.1 pyln-bolt7==1.0.246 pyln-client==25.12 pyln-proto==26.6.9
pynostr==0.7.0 PyQRCode==1.2.1 PySocks==1.7.1 python-crontab==3.3.0 python-dotenv==1.2.4
python-multipart==0.0.34 pywebpush==2.2.1 random-username==1.0.2 requests==2.34.2 rich==15.0.0
shellingham==1.5.4 shortuuid==1.0.13 slowapi==0.1.10 sniffio==1.3.1 socksio==1.0.0
SQLAlchemy==1.4.54 sse-starlette==2.3.6 starlette==0.48.0 tibs==0.5.7 tlv8==0.10.0
tornado==6.6.1 typer==0.28.0 typing_extensions==4.15.0 urllib3==2.8.0 uvicorn==0.40.0
uvloop==0.22.1 wasmtime==50.0.1 websocket-client==1.9.2 websockets==15.0.1 wrapt==2.5.2
yarl==1.25.1"
LNBITS_PYTHON=${LNBITS_PYTHON:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/3.12.1/bin/python3.12}
lnbits_cached() {
    [ "$(cat "$LNBITS_VENV/.pins" 2>/dev/null)" = "$LNBITS_PINS" ] && [ -x "$LNBITS_VENV/bin/lnbits" ]
}

# nostr-rs-relay 0.8.12 (crates.io): a production relay, built once with cargo (~6 min on
# 2 cores) and cached by version. Its lockfile pins a crate that no longer builds on current
# Rust, so no --locked; it needs protoc (Debian protobuf-compiler).
NOSTR_RS_RELAY_ROOT="$CACHE/nostr-rs-relay-0.8.12"
nostr_rs_relay_cached() { [ -x "$NOSTR_RS_RELAY_ROOT/bin/nostr-rs-relay" ]; }

# PostgreSQL 15 (Debian) for the PostgreSQL store tests: the tests start a throwaway server
# themselves (initdb in a temporary directory, loopback, a free port), as the postgres user
# when run as root. NWCD_PG_BIN names another folder of initdb and pg_ctl (never installed).
PG_BIN=${NWCD_PG_BIN:-/usr/lib/postgresql/15/bin}
# Chromium for the console's browser tests: Debian's package, never a browser a tool
# downloads (Playwright drives it at its path).
chromium_state() {
    if command -v chromium >/dev/null; then echo present; else echo install; fi
}

postgres_state() {
    if [ -x "$PG_BIN/initdb" ]; then echo present
    elif [ -n "${NWCD_PG_BIN:-}" ]; then echo missing
    else echo install
    fi
}

if [ "$MODE" = --plan ]; then
    state() { if "$1"; then echo cached; else echo "$2"; fi; }
    echo "nostr-relay $(state nostr_relay_cached install)"
    echo "node-interop $(state node_interop_cached install)"
    bash "$HERE/setup-lnd.sh" --plan
    # The Python LNbits runs on: its venv's when cached, else the one to make the venv with.
    if lnbits_cached; then echo "lnbits cached $LNBITS_VENV/bin/python"
    else echo "lnbits install $LNBITS_PYTHON"
    fi
    echo "nostr-rs-relay $(state nostr_rs_relay_cached build)"
    echo "postgresql $(postgres_state) $PG_BIN"
    echo "chromium $(chromium_state)"
    exit 0
fi

. "$(dirname "$0")/steps.sh"   # step_start / step_end: progress of long steps
trap 'step_end FAILED' EXIT

apt_install() {  # apt_install PACKAGE...: Debian packages, as root or with sudo
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null
}

mkdir -p "$CACHE"

install_nostr_relay() {
    if nostr_relay_cached; then
        echo "== nostr-relay 1.14: cached in $NOSTR_RELAY_VENV"
        return
    fi
    step_start "installing nostr-relay 1.14" "" "with pip into $NOSTR_RELAY_VENV"
    rm -rf "$NOSTR_RELAY_VENV"
    "${PYTHON:-python3}" -m venv "$NOSTR_RELAY_VENV"
    # shellcheck disable=SC2086 # the pins are one word each
    "$NOSTR_RELAY_VENV/bin/python" -m pip install -q --disable-pip-version-check $NOSTR_RELAY_PINS
    printf '%s' "$NOSTR_RELAY_PINS" > "$NOSTR_RELAY_VENV/.pins"
    step_end ok
}

install_node_interop() {
    if node_interop_cached; then
        echo "== Node interop peers (interop/package-lock.json): cached in $NODE_INTEROP"
        return
    fi
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "setup-peers.sh: node and npm (Node >= 20) are needed for tests/interop" >&2
        exit 1
    fi
    step_start "installing the Node interop peers" "" "(npm ci of interop/package-lock.json) into $NODE_INTEROP"
    NODE_TMP=$(mktemp -d "$CACHE/node-interop.tmp.XXXXXX")
    cp "$INTEROP_SRC/package.json" "$INTEROP_SRC/package-lock.json" "$NODE_TMP/"
    (cd "$NODE_TMP" && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)
    touch "$NODE_TMP/.installed"
    rm -rf "$NODE_INTEROP"
    mkdir -p "$CACHE/node-interop"
    mv "$NODE_TMP" "$NODE_INTEROP"
    step_end ok
}

install_lnbits() {
    if lnbits_cached; then
        echo "== LNbits 1.6.2: cached in $LNBITS_VENV"
        return
    fi
    if [ ! -x "$LNBITS_PYTHON" ]; then
        echo "setup-peers.sh: LNbits needs Python 3.12 (pyenv 3.12.1) at $LNBITS_PYTHON;" \
            "set LNBITS_PYTHON to a Python >=3.10,<3.13" >&2
        exit 1
    fi
    step_start "installing LNbits 1.6.2" "" "with pip and $LNBITS_PYTHON into $LNBITS_VENV"
    rm -rf "$LNBITS_VENV"
    "$LNBITS_PYTHON" -m venv "$LNBITS_VENV"
    # shellcheck disable=SC2086 # the pins are one word each
    "$LNBITS_VENV/bin/python" -m pip install -q --disable-pip-version-check $LNBITS_PINS
    printf '%s' "$LNBITS_PINS" > "$LNBITS_VENV/.pins"
    step_end ok
}

build_nostr_rs_relay() {
    if nostr_rs_relay_cached; then
        echo "== nostr-rs-relay 0.8.12: cached in $NOSTR_RS_RELAY_ROOT"
        return
    fi
    if ! command -v cargo >/dev/null; then
        echo "setup-peers.sh: cargo (Rust) is needed to build nostr-rs-relay once:" \
            "https://rustup.rs" >&2
        exit 1
    fi
    if ! command -v protoc >/dev/null; then
        step_start "installing protobuf-compiler" "" "(protoc, for nostr-rs-relay) with apt"
        apt_install protobuf-compiler
        step_end ok
    fi
    step_start "building nostr-rs-relay 0.8.12" "~6 min on 2 cores, once" \
        "with cargo into $NOSTR_RS_RELAY_ROOT"
    cargo install --quiet nostr-rs-relay@0.8.12 --root "$NOSTR_RS_RELAY_ROOT"
    step_end ok
}

install_postgres() {
    case $(postgres_state) in
        present) echo "== PostgreSQL 15: found in $PG_BIN" ;;
        install)
            step_start "installing postgresql-15" "" "with apt, for the PostgreSQL store tests"
            apt_install postgresql-15
            step_end ok
            ;;
        missing)
            echo "setup-peers.sh: NWCD_PG_BIN=$PG_BIN has no initdb (PostgreSQL 15's server" \
                "programs: initdb, pg_ctl)" >&2
            exit 1
            ;;
    esac
}

install_chromium() {
    if [ "$(chromium_state)" = present ]; then
        echo "== Chromium: found at $(command -v chromium)"
        return
    fi
    step_start "installing chromium" "~40 s" "with apt, for the console's browser tests"
    apt_install chromium
    step_end ok
}

install_nostr_relay
if [ "$MODE" = --quick ]; then
    echo "== --quick: not installed: Node interop peers, lnd/btcd, LNbits, nostr-rs-relay, PostgreSQL, Chromium"
    exit 0
fi
install_node_interop
bash "$HERE/setup-lnd.sh"   # btcd + lnd for tests/backends/test_lnd.py; skips without go
install_lnbits
build_nostr_rs_relay
install_postgres
install_chromium
