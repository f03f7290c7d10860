# Progress of a long step, sourced by setup-peers.sh and setup-lnd.sh: a start line with
# the expected time, "still <step>: N min" every 60 s while it runs, the time taken at its end.
STEP="" STEP_START=0 HEARTBEAT=""
step_start() {  # step_start "building X" ["expected time"] ["with Y into Z"]
    STEP=$1 STEP_START=$(date +%s)
    echo "== $1${3:+ $3}${2:+ ($2)}"
    (   # sleep's output goes nowhere: a leftover sleep must not hold a reader's pipe open
        while sleep 60 >/dev/null 2>&1; do
            kill -0 $$ 2>/dev/null || exit 0
            echo "   still $STEP: $(( ($(date +%s) - STEP_START) / 60 )) min"
        done
    ) &
    HEARTBEAT=$!
}
step_end() {  # step_end ok|FAILED: stop the heartbeat, print the time taken
    [ -n "$HEARTBEAT" ] || return 0
    kill "$HEARTBEAT" 2>/dev/null || true
    wait "$HEARTBEAT" 2>/dev/null || true
    HEARTBEAT=""
    local took=$(( $(date +%s) - STEP_START )) how="done in"
    [ "$1" != FAILED ] || how="FAILED after"
    echo "== $STEP: $how $(( took / 60 )) min $(( took % 60 )) s"
}
