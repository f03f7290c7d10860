#!/usr/bin/env bash
# scripts/test.sh: install what the tests need and run every check. README command 2;
# .ci/run runs it without options.
#
# Usage: bash scripts/test.sh [--quick] [--check] [--list-quick] [-h | --help] [PYTEST ARGS]
#
#   (no option)   Check the prerequisites (below), then install nwcd[test] into .venv and
#                 every test peer into ${NWCD_CACHE:-~/.cache/nwcd} (scripts/setup-peers.sh),
#                 then run ruff, ruff format --check, mypy --strict and the whole pytest suite.
#   --quick       The same with no native build and no runtime but your Python: it installs
#                 only what pip puts into virtualenvs of Python 3.11+ (nwcd[test] into .venv,
#                 nostr-relay into the cache), so it needs nothing else. It leaves out these
#                 peers and every test that needs one (`--list-quick` lists them):
#                   nostr-rs-relay  cargo build (Rust, protoc), ~6 min: the chaos suite
#                   lnd, btcd       go build, 7-12 min: the LND tests, the contract suite on LND
#                   LNbits          a second Python (3.12): the LNbits server tests, the
#                                   contract suite on LNbits
#                   Node peers      Node.js + npm ci: the Alby JS SDK interop tests
#                   PostgreSQL 15   apt, as root: the store suites on PostgreSQL, the
#                                   multi-instance tests
#                   Chromium        apt, as root: the console's browser tests
#                 LNbits, Node, PostgreSQL and Chromium build nothing, but need another
#                 runtime or root. ruff, ruff format --check and mypy run as in the full run.
#   --check       Only check the prerequisites (of --quick, with --quick): print what is
#                 missing and how to get it and exit 1, or what a run will install and exit 0.
#   --list-quick  Print the tests --quick leaves out, each with its peer (needs .venv).
#   -h, --help    Print this text.
#   PYTEST ARGS   Everything else goes to pytest, e.g. `bash scripts/test.sh -k budget` or
#                 `bash scripts/test.sh --quick tests/store`; after `--` everything does.
#
# Prerequisites of the full run, all checked before anything is installed. The build tools
# are needed only while their peer is not cached yet:
#   Python 3.11+ with venv (PYTHON, default python3)    Debian: apt install python3-venv
#   Node.js >= 20 (npm too until interop is cached)     https://nodejs.org (Debian 12 has 18)
#   Python 3.10-3.12 for LNbits: pyenv's 3.12.1 or LNBITS_PYTHON
#   cargo (Rust) and protoc, to build nostr-rs-relay    https://rustup.rs; protobuf-compiler
#   Go >= 1.21, to build lnd and btcd                   https://go.dev/dl (Debian 12 has 1.19)
#   PostgreSQL 15's initdb and pg_ctl, psql             postgresql-15, or NWCD_PG_BIN
#   Chromium (the console's browser tests)              Debian: apt install chromium
# protoc, PostgreSQL and Chromium are installed with apt-get when it can run (as root, or
# with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

QUICK="" CHECK_ONLY="" LIST_QUICK="" PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help)  # ours before any pytest argument, pytest's after one
            [ ${#PYTEST_ARGS[@]} -gt 0 ] || { usage; exit 0; }
            PYTEST_ARGS+=("$1") ;;
        --quick) QUICK=1 ;;          # pytest has no options of these names: they are ours
        --check) CHECK_ONLY=1 ;;     # wherever they are (before a --)
        --list-quick) LIST_QUICK=1 ;;
        --) shift; PYTEST_ARGS+=("$@"); break ;;
        *) PYTEST_ARGS+=("$1") ;;
    esac
    shift
done

# ---------------------------------------------------------------------------- prerequisites
MISSING=() APT=()
missing() { MISSING+=("$1"); }
can_apt() { command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; }
# apt_or_missing PACKAGE "WHAT: HOW": apt-get installs it later, or it is missing
apt_or_missing() { if can_apt; then APT+=("$1"); else missing "$2"; fi; }
on_path() {  # on_path TOOL "WHAT: HOW" [FOLDER it is usually installed in]: found, or missing
    command -v "$1" >/dev/null && return 0
    if [ -n "${3:-}" ] && [ -x "$3/$1" ]; then
        missing "${2%%:*}: it is in $3, which is not on PATH: export PATH=\"$3:\$PATH\""
    else
        missing "$2"
    fi
    return 1
}
todo() { [ "$(plan_of "$1" state)" != cached ]; }  # the peer is not cached: it is installed now
plan_of() {  # plan_of PEER state|detail: from `setup-peers.sh --plan`
    awk -v peer="$1" -v field="$2" '$1 == peer {
        if (field == "state") print $2; else { $1 = ""; $2 = ""; sub(/^ +/, ""); print } }' <<<"$PLAN"
}

check_python() {  # Python 3.11+ with venv: .venv and the nostr-relay venv are made with it
    on_path "$PY" "$PY (Python 3.11+): Debian: apt install python3 python3-venv" || return 0
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || { missing "Python 3.11+ ($PY is $("$PY" -V 2>&1)): set PYTHON to a newer one"; return 0; }
    "$PY" -c 'import ensurepip, venv' 2>/dev/null \
        || missing "the venv module of $PY: Debian: apt install python3-venv"
}
check_node() {  # node runs the interop scripts; npm installs them
    local version
    on_path node "node (Node.js >= 20, with npm): https://nodejs.org or NodeSource (Debian 12's apt nodejs is 18)" || return 0
    version=$(node --version 2>/dev/null || echo "?")
    [ "$(printf '%s' "${version#v}" | cut -d. -f1)" -ge 20 ] 2>/dev/null \
        || missing "Node.js >= 20 (node is $version): https://nodejs.org or NodeSource (Debian 12's apt nodejs is 18)"
    if todo node-interop; then
        on_path npm "npm (installs interop/package-lock.json): it comes with Node.js; Debian: apt install npm" || true
    fi
}
check_lnbits_python() {  # the Python of the cached LNbits venv, or the one to make it with
    local python
    python=$(plan_of lnbits detail)
    if [ ! -x "$python" ]; then
        missing "Python 3.12 for LNbits (none at $python): pyenv install 3.12.1, or set LNBITS_PYTHON to a Python >=3.10,<3.13 (Debian 12: LNBITS_PYTHON=/usr/bin/python3.11)"
    elif ! "$python" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 13))' 2>/dev/null; then
        missing "a Python >=3.10,<3.13 for LNbits ($python is $("$python" -V 2>&1)): set LNBITS_PYTHON"
    fi
}
check_go() {  # go >= 1.21 fetches the newer toolchain lnd's go.mod asks for by itself
    local version
    on_path go "go (Go >= 1.21, builds lnd and btcd once): https://go.dev/dl (Debian 12's golang-go is 1.19: too old)" /usr/local/go/bin || return 0
    version=$(go env GOVERSION 2>/dev/null || echo "?")
    if ! [[ $version =~ ^go1\.([0-9]+) ]] || [ "${BASH_REMATCH[1]}" -lt 21 ]; then
        missing "Go >= 1.21 (go is $version): https://go.dev/dl (Debian 12's golang-go is 1.19: too old)"
    fi
}
check_postgres() {  # the tests start a throwaway server with initdb and pg_ctl, then use psql
    local dir
    dir=$(plan_of postgresql detail)
    case $(plan_of postgresql state) in
        present) on_path psql "psql (PostgreSQL client): Debian: apt install postgresql-client-15" || true ;;
        install) apt_or_missing postgresql-15 "PostgreSQL 15 (no $dir/initdb): apt install postgresql-15 as root, or set NWCD_PG_BIN to the folder of initdb and pg_ctl" ;;
        *) missing "PostgreSQL 15: NWCD_PG_BIN=$dir has no initdb: point it at the folder of initdb and pg_ctl, or unset it (then postgresql-15 comes from apt)" ;;
    esac
}

# Every prerequisite, in one list: a full run needs all of these, --quick only the first.
check_prerequisites() {
    check_python
    [ -z "$QUICK" ] || return 0
    check_node
    check_lnbits_python
    if todo nostr-rs-relay; then
        on_path cargo "cargo (Rust, builds nostr-rs-relay once): https://rustup.rs (Debian 12's apt cargo is too old)" "$HOME/.cargo/bin" || true
        command -v protoc >/dev/null || apt_or_missing protobuf-compiler "protoc (for nostr-rs-relay): apt install protobuf-compiler"
    fi
    if todo lnd; then check_go; fi
    check_postgres
    [ "$(plan_of chromium state)" = present ] \
        || apt_or_missing chromium "Chromium (for the console's browser tests): apt install chromium"
}

# ------------------------------------------------------------------------- --quick selection
# The peers --quick does not install, and the tests that need them: a test needs a peer when
# it uses one of the peer's fixtures (directly or through other fixtures, as listed by
# `pytest --setup-plan`), or when its node id matches the peer's pattern (an extended regexp,
# for tests that reach the peer some other way: by a parameter, or without a fixture).
# A test that needs a left-out peer and matches neither fails in --quick with the peer's
# "not installed" message: add its fixture or id here.
#   peer                            fixtures (a|b)    node ids (ERE)
QUICK_LEAVES_OUT=(
    "nostr-rs-relay (cargo build)"  nostr_rs_relay    '^tests/chaos/test_chaos\.py::'
    "lnd and btcd (go build)"       network           '\[lnd[]-]'
    "LNbits (Python 3.12)"          lnbits            '\[lnbits[]-]'
    "Node peers (npm ci)"           scripts           '^tests/interop/test_node_setup\.py::test_(install_is_keyed|pinned_sdk)'
    "PostgreSQL 15 (apt)"           postgres_server   '\[postgres[]-]'
    "Chromium (apt)"                browser_console   '^tests/console/test_browser\.py::'
)

quick_leaves_out() {  # "PEER<TAB>NODE ID" for each test --quick leaves out (one peer per test)
    local plan tests ids i
    plan=$(PYTEST_ADDOPTS="" .venv/bin/pytest --setup-plan -q 2>&1) || {
        printf '%s\n' "$plan" >&2
        echo "test.sh: pytest --setup-plan failed: cannot tell which tests --quick leaves out" >&2
        return 1
    }
    tests=$(sed -nE 's/^[[:space:]]*([^[:space:]]+\.py::.*)$/\1/p' <<<"$plan")
    ids=$(sed -E 's/ \(fixtures used: [^()]*\)$//' <<<"$tests")
    for ((i = 0; i < ${#QUICK_LEAVES_OUT[@]}; i += 3)); do
        {
            grep -E " \(fixtures used: ([^()]*, )?(${QUICK_LEAVES_OUT[i + 1]})(, [^()]*)?\)$" <<<"$tests" \
                | sed -E 's/ \(fixtures used: [^()]*\)$//' || true
            grep -E -- "${QUICK_LEAVES_OUT[i + 2]}" <<<"$ids" || true
        } | awk -v peer="${QUICK_LEAVES_OUT[i]}" 'NF { print peer "\t" $0 }'
    done | awk -F'\t' '!seen[$2]++'
}

# ------------------------------------------------------------------------------ the checks
if [ -n "$LIST_QUICK" ]; then
    [ -x .venv/bin/pytest ] || { echo "test.sh: no .venv yet: run bash scripts/test.sh --quick first" >&2; exit 1; }
    quick_leaves_out
    exit 0
fi

PLAN=$(bash scripts/setup-peers.sh --plan) || { echo "test.sh: setup-peers.sh --plan failed" >&2; exit 1; }
check_prerequisites
if [ ${#MISSING[@]} -gt 0 ]; then
    {
        echo "test.sh: missing prerequisites (nothing was installed or run):"
        printf '  - %s\n' "${MISSING[@]}"
        [ ${#APT[@]} -eq 0 ] || echo "  (apt-get will install ${APT[*]} itself)"
        [ -n "$QUICK" ] || echo "Or run \`bash scripts/test.sh --quick\`: it needs Python 3.11+ only (see --help)."
    } >&2
    exit 1
fi
TODO=$(awk '$2 != "cached" && $2 != "present" && !($1 != "nostr-relay" && quick) { print $1 }' \
    quick="$QUICK" <<<"$PLAN" | paste -sd, - | sed 's/,/, /g')
echo "== prerequisites: all present${QUICK:+ (--quick)}"
[ -z "$TODO" ] || echo "   not cached yet, so this run installs or builds: $TODO"
[ ${#APT[@]} -eq 0 ] || [ -n "$QUICK" ] || echo "   apt-get will install: ${APT[*]}"
[ -z "$CHECK_ONLY" ] || exit 0

# ----------------------------------------------------------------------------------- the run
START=$(date +%s)
echo "== .venv: installing nwcd[test] with pip"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
bash scripts/setup-peers.sh ${QUICK:+--quick}
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== ruff format"; .venv/bin/ruff format --check src tests bench
echo "== mypy --strict"; .venv/bin/mypy
DESELECT=()
if [ -n "$QUICK" ]; then
    LEFT_OUT=$(quick_leaves_out)
    echo "== --quick leaves out (bash scripts/test.sh --list-quick lists them):"
    for ((i = 0; i < ${#QUICK_LEAVES_OUT[@]}; i += 3)); do
        echo "   $(grep -cF "${QUICK_LEAVES_OUT[i]}"$'\t' <<<"$LEFT_OUT" || true) tests that need ${QUICK_LEAVES_OUT[i]}"
    done
    while IFS=$'\t' read -r _ id; do
        [ -z "$id" ] || DESELECT+=(--deselect "$id")  # an empty prefix would deselect all
    done <<<"$LEFT_OUT"
fi
echo "== pytest${QUICK:+ (--quick)}"
status=0
.venv/bin/pytest ${DESELECT[@]+"${DESELECT[@]}"} \
    ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"} || status=$?
took=$(( $(date +%s) - START ))
echo "== test.sh${QUICK:+ --quick}: pytest exit $status, $(( took / 60 )) min $(( took % 60 )) s in all"
exit "$status"
