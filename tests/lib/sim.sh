# Bash helpers for integration tests on a simulated host: start xensim in a
# temporary rundir, wait for xenstore values on watch events (never by
# sleeping), wait for processes with a bound, clean up on exit.
# Source it from bash; needs RSDM_BUILD.
bin=${RSDM_BUILD:?}/bin
sim_tmp=$(mktemp -d /tmp/rsdm-test.XXXXXX)
sim_pids=""

sim_cleanup() {
    # Subshells (coprocs, guards) inherit this trap; a signal can reach one
    # before it execs or resets it.  Only the test's own shell cleans up.
    # The pid comes from /proc/self (read by the shell itself, no fork):
    # $BASHPID, read in a subshell killed just after its fork, can still
    # give the parent's pid, and such a guard then removed the test's
    # directory and stopped xensim under the running test.
    local me
    read -r me _ </proc/self/stat
    [ "$me" = "$$" ] || return 0
    for p in $sim_pids; do kill "$p" 2>/dev/null; done
    for p in $sim_pids; do wait "$p" 2>/dev/null; done
    [ -f "$sim_tmp/xensim.pid" ] && kill "$(cat "$sim_tmp/xensim.pid")" 2>/dev/null
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

# sim_start: xensim on $sim_tmp/host, returning once it serves clients.
sim_start() {
    "$bin/xensim" run --rundir "$sim_tmp/host" --daemon --pidfile "$sim_tmp/xensim.pid" \
        >"$sim_tmp/xensim.log" 2>&1 || fail "xensim did not start"
    export XENSIM_RUNDIR="$sim_tmp/host" XENSTORED_PATH="$sim_tmp/host/xenstored/socket"
}

# wait_value PATH VALUE [SECONDS]: until PATH reads VALUE.  The watch is
# registered before the first read, so no change can slip between them; the
# bound only limits a failure.
wait_value() {
    local path=$1 want=$2 bound=${3:-10} v="" line left end wpid
    coproc W { exec xenstore-watch "$path" 2>/dev/null; }
    wpid=${W_PID:-}
    [ -n "$wpid" ] || fail "cannot start xenstore-watch on $path"
    read -t "$bound" -u "${W[0]}" line || { kill "$wpid" 2>/dev/null; fail "cannot watch $path"; }
    end=$((SECONDS + bound))
    while :; do
        if v=$(xenstore-read "$path" 2>/dev/null) && [ "$v" = "$want" ]; then
            kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
            return 0
        fi
        left=$((end - SECONDS))
        if [ "$left" -le 0 ]; then
            kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
            fail "$path is '${v:-<absent>}', expected '$want'"
        fi
        read -t "$left" -u "${W[0]}" line || true
    done
}

# wait_exit PID SECONDS: waits for a child; kills it and fails past the bound.
# Returns the child's exit status.
wait_exit() {
    local pid=$1 bound=$2 rc
    # The guard must not inherit the EXIT trap: it would clean up the test's
    # directory when the guard itself is killed.
    ( trap - EXIT; sleep "$bound"; kill -9 "$pid" 2>/dev/null && touch "$sim_tmp/killed.$pid" ) &
    local guard=$!
    wait "$pid"; rc=$?
    kill "$guard" 2>/dev/null; wait "$guard" 2>/dev/null
    [ -e "$sim_tmp/killed.$pid" ] && fail "process $pid still running after $bound s"
    return $rc
}
