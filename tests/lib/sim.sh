# Shell helpers for integration tests on a simulated host: start xensim in
# a temporary rundir, wait for xenstore values on watch events (never by
# sleeping), and clean everything up on exit.  Source it; needs RSDM_BUILD.
bin=${RSDM_BUILD:?}/bin
sim_tmp=$(mktemp -d /tmp/rsdm-test.XXXXXX)
sim_pids=""

sim_cleanup() {
    for p in $sim_pids; do kill "$p" 2>/dev/null; done
    for p in $sim_pids; do wait "$p" 2>/dev/null; done
    rm -rf "$sim_tmp"
}
trap sim_cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$sim_tmp"/*.log; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
    done
    exit 1
}

# sim_start: xensim on $sim_tmp/host; exports the variables clients use.
sim_start() {
    "$bin/xensim" run --rundir "$sim_tmp/host" >"$sim_tmp/xensim.log" 2>&1 &
    sim_pids="$sim_pids $!"
    export XENSIM_RUNDIR="$sim_tmp/host" XENSTORED_PATH="$sim_tmp/host/xenstored/socket"
    i=0
    # The socket appears once the daemon listens; bounded, not a timing guess.
    until [ -S "$XENSTORED_PATH" ] && xenstore-exists / 2>/dev/null; do
        i=$((i + 1)); [ $i -le 1000 ] || fail "xensim did not start"
        sleep 0.01
    done
}

# wait_value PATH VALUE [SECONDS]: until PATH reads VALUE, woken by watch events.
wait_value() {
    end=$(( $(date +%s) + ${3:-10} ))
    while :; do
        v=$(xenstore-read "$1" 2>/dev/null) && [ "$v" = "$2" ] && return 0
        [ "$(date +%s)" -lt "$end" ] || fail "$1 is '${v:-<absent>}', expected '$2'"
        # Blocks until the next change of PATH (the first event is the
        # registration's own); the timeout only bounds a lost wake-up.
        timeout 2 xenstore-watch -n 2 "$1" >/dev/null 2>&1
    done
}

# wait_exit PID SECONDS: the process ends within the bound; prints its status.
wait_exit() {
    end=$(( $(date +%s) + $2 ))
    while kill -0 "$1" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || fail "process $1 still running after $2 s"
        sleep 0.05
    done
    wait "$1"
}
