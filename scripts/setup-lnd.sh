#!/usr/bin/env bash
# Build btcd + btcctl + lnd + lncli for the LND regtest tests, cached outside the repo.
#
#   setup-lnd.sh          build them unless cached
#   setup-lnd.sh --plan   change nothing; print "lnd cached" or "lnd build" (setup-peers.sh --plan)
#
# The binaries go to ${NWCD_CACHE:-$HOME/.cache/nwcd}/lnd-<ver>-btcd-<ver>/bin (keyed by
# version, so a cached build costs nothing). Built from the Go module proxy with the Go
# toolchain: lnd's go.mod has replace directives,
# so the module is downloaded and built inside its own directory. Without `go` this prints
# why and exits 0: the LND tests then skip with that reason (scripts/test.sh checks for go
# first, so its full run never skips them).
set -euo pipefail
LND_VERSION=v0.21.3-beta
BTCD_VERSION=v0.26.2
CACHE=${NWCD_CACHE:-$HOME/.cache/nwcd}
DEST="$CACHE/lnd-$LND_VERSION-btcd-$BTCD_VERSION"
BIN="$DEST/bin"

built() { [ -x "$BIN/lnd" ] && [ -x "$BIN/lncli" ] && [ -x "$BIN/btcd" ] && [ -x "$BIN/btcctl" ]; }
case ${1:-} in
    "") ;;
    --plan) if built; then echo "lnd cached"; else echo "lnd build"; fi; exit 0 ;;
    *) echo "usage: setup-lnd.sh [--plan]" >&2; exit 2 ;;
esac

. "$(dirname "$0")/steps.sh"   # step_start / step_end: progress of long steps

if built; then
    echo "== lnd $LND_VERSION and btcd $BTCD_VERSION: cached in $BIN"
    exit 0
fi
if ! command -v go >/dev/null; then
    echo "setup-lnd.sh: the Go toolchain (go) is not installed; skipping the lnd/btcd build" \
        "(the LND tests will be skipped)"
    exit 0
fi

# One build at a time: a second run (another checkout, setup-peers.sh) waits for the first.
mkdir -p "$CACHE"
exec 9>"$DEST.lock"
trap 'step_end FAILED' EXIT
if command -v flock >/dev/null && ! flock -n 9; then
    step_start "waiting for another build of lnd and btcd" "7-12 min cold"
    flock 9
    step_end ok
fi
if built; then
    echo "== lnd $LND_VERSION and btcd $BTCD_VERSION: cached in $BIN"
    exit 0
fi

step_start "building lnd $LND_VERSION and btcd $BTCD_VERSION" "7-12 min cold, once" "with go into $BIN"
mkdir -p "$DEST"
TMP_BIN=$(mktemp -d "$DEST/bin.tmp.XXXXXX")
trap 'step_end FAILED; rm -rf "$TMP_BIN"' EXIT
export CGO_ENABLED=0 GOFLAGS=-modcacherw

module_dir() {  # the module's directory in the module cache, downloading it if needed
    go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

BTCD_DIR=$(module_dir github.com/btcsuite/btcd "$BTCD_VERSION")
[ -n "$BTCD_DIR" ] || { echo "setup-lnd.sh: could not download btcd $BTCD_VERSION" >&2; exit 1; }
(cd "$BTCD_DIR" && go build -trimpath -o "$TMP_BIN/" . ./cmd/btcctl)

LND_DIR=$(module_dir github.com/lightningnetwork/lnd "$LND_VERSION")
[ -n "$LND_DIR" ] || { echo "setup-lnd.sh: could not download lnd $LND_VERSION" >&2; exit 1; }
(cd "$LND_DIR" && go build -trimpath \
    -tags "signrpc walletrpc chainrpc invoicesrpc peersrpc routerrpc lowscrypt" \
    -o "$TMP_BIN/" ./cmd/lnd ./cmd/lncli)

for b in btcd btcctl lnd lncli; do
    [ -x "$TMP_BIN/$b" ] || { echo "setup-lnd.sh: $b was not built" >&2; exit 1; }
done
chmod 755 "$TMP_BIN"
rm -rf "$BIN"
mv "$TMP_BIN" "$BIN"
trap - EXIT
step_end ok
echo "   built: $(ls "$BIN" | tr '\n' ' ')"
