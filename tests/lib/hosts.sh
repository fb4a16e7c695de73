# Two simulated hosts for cross-host migration tests (source after sim.sh).
# Each host is a xensim daemon with its own rundir, in its own network
# namespace, the two joined by a veth pair (hosts_mode=netns, addresses
# 10.77.0.1 and 10.77.0.2); where namespaces cannot be made (no root, no
# iproute2, a container without CAP_SYS_ADMIN) both use loopback
# (hosts_mode=loopback) and say so.  on_host H CMD... runs CMD in host H's
# namespace with H's XENSIM_RUNDIR/XENSTORED_PATH.  RSDM_HOSTS=loopback
# forces the loopback mode.
#
# The device model is a wrapper that gives rsdm-sim the save directory of
# the host it runs on (xl sets XENSIM_RUNDIR for the dm), as every real
# host has its own /var/lib/xen: the guest's config travels with it.
hosts_mode=""
hosts_ns_a="rsdm-mig-a-$$"
hosts_ns_b="rsdm-mig-b-$$"

# pid_exited PID SECONDS: the process has exited (a zombie counts: the dm's
# parent, xl, is gone and init may reap late), waited on its pidfd.
pid_exited() {
    python3 -c '
import os, select, sys
try:
    fd = os.pidfd_open(int(sys.argv[1]))
except ProcessLookupError:
    sys.exit(0)
sys.exit(0 if select.select([fd], [], [], float(sys.argv[2]))[0] else 1)' "$1" "$2"
}

hosts_cleanup() {
    [ "$BASHPID" = "$$" ] || return 0
    local h d p pids=""
    for h in A B; do
        [ -f "$sim_tmp/$h.pid" ] || continue
        # The device models first: they outlive their xenstored (waiting to
        # reconnect), and xl, their parent, is gone.
        for d in $(on_host "$h" xenstore-list /local/domain 2>/dev/null); do
            p=$(on_host "$h" xenstore-read "/local/domain/$d/image/device-model-pid" 2>/dev/null) &&
                kill "$p" 2>/dev/null
        done
        pids="$pids $(cat "$sim_tmp/$h.pid")"
    done
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do pid_exited "$p" 10; done
    if [ "$hosts_mode" = netns ]; then
        ip netns del "$hosts_ns_a" 2>/dev/null
        ip netns del "$hosts_ns_b" 2>/dev/null
    fi
    sim_cleanup
}
trap hosts_cleanup EXIT

hosts_netns() {
    [ "${RSDM_HOSTS:-}" = loopback ] && return 1
    command -v ip >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || return 1
    ip netns add "$hosts_ns_a" 2>/dev/null || return 1
    ip netns add "$hosts_ns_b" 2>/dev/null || { ip netns del "$hosts_ns_a"; return 1; }
    hosts_mode=netns   # from here on the cleanup deletes them
    ip -n "$hosts_ns_a" link add veth0 type veth peer name veth1 netns "$hosts_ns_b" &&
        ip -n "$hosts_ns_a" addr add 10.77.0.1/24 dev veth0 &&
        ip -n "$hosts_ns_b" addr add 10.77.0.2/24 dev veth1 &&
        ip -n "$hosts_ns_a" link set lo up && ip -n "$hosts_ns_b" link set lo up &&
        ip -n "$hosts_ns_a" link set veth0 up && ip -n "$hosts_ns_b" link set veth1 up &&
        # entering one (it remounts /sys) can still be refused in a container
        ip netns exec "$hosts_ns_a" true 2>/dev/null
}

host_addr() {   # H
    if [ "$hosts_mode" = netns ]; then
        [ "$1" = A ] && echo 10.77.0.1 || echo 10.77.0.2
    else
        echo 127.0.0.1
    fi
}

on_host() {   # H CMD...
    local h=$1; shift
    local run="$sim_tmp/$h"
    if [ "$hosts_mode" = netns ]; then
        local ns=$hosts_ns_a
        [ "$h" = B ] && ns=$hosts_ns_b
        ip netns exec "$ns" env XENSIM_RUNDIR="$run" XENSTORED_PATH="$run/xenstored/socket" "$@"
    else
        XENSIM_RUNDIR="$run" XENSTORED_PATH="$run/xenstored/socket" "$@"
    fi
}

# hosts_start: both daemons and the dm wrapper.
hosts_start() {
    if ! hosts_netns; then
        [ "$hosts_mode" = netns ] && { ip netns del "$hosts_ns_a"; ip netns del "$hosts_ns_b"; }
        hosts_mode=loopback
        if [ "${RSDM_HOSTS:-}" = loopback ]; then
            echo "hosts: two rundirs over loopback (RSDM_HOSTS=loopback)"
        else
            echo "hosts: network namespaces not available; two rundirs over loopback"
        fi
    else
        echo "hosts: two network namespaces joined by a veth pair (10.77.0.1 <-> 10.77.0.2)"
    fi
    local h
    for h in A B; do
        on_host "$h" "$bin/xensim" run --rundir "$sim_tmp/$h" --daemon \
            --pidfile "$sim_tmp/$h.pid" >>"$sim_tmp/xensim-$h.log" 2>&1 ||
            fail "xensim for host $h did not start"
    done
    cat >"$sim_tmp/dm" <<EOF
#!/bin/sh
exec "$bin/rsdm-sim" --save-dir "\$XENSIM_RUNDIR/xl/lib" --log-level warning "\$@"
EOF
    chmod +x "$sim_tmp/dm"
}

# guest_cfg NAME DIALECT [MEMORY EXTRA]: $sim_tmp/NAME.cfg, MEMORY MiB
# (default 8) and 2 vCPUs, the dm in DIALECT (traditional or qemu-xen:
# libxl's device_model_version), then the lines EXTRA.  By default no
# simulated guest workload: the writer of migrate_check.sh is the guest,
# and the runner's state page at 1 MiB would overwrite its records.
guest_cfg() {
    cat >"$sim_tmp/$1.cfg" <<EOF
name = "$1"
memory = ${3:-8}
vcpus = 2
serial = "null"
device_model_version = "$([ "$2" = qemu-xen ] && echo qemu-xen || echo qemu-xen-traditional)"
device_model_override = "$sim_tmp/dm"
${4:-xensim_workload = \"none\"}
EOF
}

# xl_migrate FROM TO DOMID [--live]: the receiver on TO listening on its
# address (port picked by the kernel), the sender on FROM connecting to it.
# Sets migrated_domid; the sender's stderr goes to $sim_tmp/migrate.err.
xl_migrate() {
    local from=$1 to=$2 dom=$3 live=${4:-} port="" line rx
    coproc RX { on_host "$to" "$bin/xensim" xl --timeout 60 migrate-receive \
                    --listen "$(host_addr "$to"):0" 2>&1; }
    rx=$RX_PID
    # bash closes a coproc's fds once it has exited; keep our own copy.
    local fd
    exec {fd}<&"${RX[0]}"
    while read -t 30 -u "$fd" line; do
        echo "$line" >>"$sim_tmp/receiver.log"
        case $line in
        *"Listening on "*) port=${line##*:}; break ;;
        esac
    done
    [ -n "$port" ] || fail "migrate-receive on host $to never listened"
    on_host "$from" "$bin/xensim" xl --timeout 60 migrate $live "$dom" \
        --to "$(host_addr "$to"):$port" >"$sim_tmp/migrate.out" 2>"$sim_tmp/migrate.err" ||
        { cat "$sim_tmp/migrate.err" >&2; fail "migrate of domain $dom from host $from to $to"; }
    # The receiver's last line on its stdout is the new domid.
    migrated_domid=""
    while read -t 30 -u "$fd" line; do
        echo "$line" >>"$sim_tmp/receiver.log"
        case $line in
        [0-9]*) migrated_domid=$line ;;
        esac
    done
    exec {fd}<&-
    wait "$rx" || fail "migrate-receive on host $to failed (see receiver.log)"
    [ -n "$migrated_domid" ] || fail "migrate-receive printed no domid"
}

# qmp_call SOCKET COMMAND: COMMAND's return as JSON, over QMP as libxl
# speaks it (greeting, capabilities, then the reply whose id is ours;
# events in between are skipped); an error reply fails.
qmp_call() {
    python3 - "$1" "$2" <<'EOF'
import json, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.settimeout(10)
conn.connect(sys.argv[1])
lines = conn.makefile("rwb")
lines.readline()
for n, command in enumerate(("qmp_capabilities", sys.argv[2])):
    lines.write(json.dumps({"execute": command, "id": n}).encode() + b"\r\n")
    lines.flush()
    while True:
        reply = json.loads(lines.readline())
        if reply.get("id") == n:
            break
    if "error" in reply:
        sys.exit("%s: %s" % (command, reply["error"]))
print(json.dumps(reply["return"]))
EOF
}

# qmp_run_state SOCKET: the dm's run state by QMP query-status, as libxl
# reads it in the qemu-xen dialect.
qmp_run_state() {
    qmp_call "$1" query-status | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])'
}

veth_tx() {   # H: bytes host H sent over its end of the veth pair
    local ns=$hosts_ns_a dev=veth0
    [ "$1" = B ] && ns=$hosts_ns_b dev=veth1
    ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/tx_bytes"
}

# xl_migrate_checked FROM TO DOMID [--live]: xl_migrate, then both hosts
# checked: the sender reported success (and logged >= 2 memory rounds
# with --live), the source domain and its dm are gone, the destination's
# domain runs under guest_name with its dm `running` (xenstore; in the
# qemu-xen dialect also QMP query-status, as libxl asks), and in netns
# mode the stream crossed the veth pair.  Sets migrated_domid and rounds.
# In two halves for callers with work in between: migrate_begin FROM
# DOMID, xl_migrate, migrate_end FROM TO DOMID [--live].
xl_migrate_checked() {
    migrate_begin "$1" "$3"
    xl_migrate "$@"
    migrate_end "$@"
}

mig_dmpid="" mig_tx0=0
migrate_begin() {
    mig_dmpid=$(on_host "$1" xenstore-read "/local/domain/$2/image/device-model-pid") ||
        fail "no device-model-pid for domain $2 on host $1"
    mig_tx0=0
    [ "$hosts_mode" = netns ] && mig_tx0=$(veth_tx "$1")
}

migrate_end() {
    local from=$1 to=$2 d=$3 live=${4:-} dmpid=$mig_dmpid tx0=$mig_tx0 tx1 n v
    n=$migrated_domid
    grep -q "Migration successful." "$sim_tmp/migrate.err" ||
        fail "sender did not report success: $(cat "$sim_tmp/migrate.err")"
    rounds=$(grep -c "memory round" "$sim_tmp/migrate.err")
    if [ -n "$live" ] && [ "$rounds" -lt 2 ]; then
        fail "migrate --live logged $rounds memory rounds"
    fi
    on_host "$from" "$bin/xensim" domain info "$d" >/dev/null 2>&1 &&
        fail "domain $d still exists on host $from after the migration"
    pid_exited "$dmpid" 10 || fail "rsdm-sim $dmpid of the migrated domain still runs on host $from"
    v=$(on_host "$to" xenstore-read "/local/domain/$n/name") || fail "no name for domain $n"
    [ "$v" = "$guest_name" ] || fail "domain $n on host $to is named '$v', not $guest_name"
    v=$(on_host "$to" xenstore-read "/local/domain/0/device-model/$n/state")
    [ "$v" = running ] || fail "rsdm-sim of domain $n on host $to is '$v', not running"
    # mig_dest_stopped=io-error: the destination's storage fails too, so its
    # rsdm stops in io-error again (libxl's `state` stays `running`) and
    # holds the domain paused.
    local want=${mig_dest_stopped:-running} dom=running
    if [ "$want" != running ]; then
        dom=paused
        ( export XENSIM_RUNDIR="$sim_tmp/$to" XENSTORED_PATH="$sim_tmp/$to/xenstored/socket"
          wait_value "/local/domain/0/device-model/$n/runstate" "$want holds=$want" 10 ) || exit 1
    fi
    if [ "$(on_host "$to" xenstore-read "/libxl/$n/dm-version")" = qemu_xen ]; then
        v=$(qmp_run_state "$sim_tmp/$to/xl/run/qmp-libxl-$n") ||
            fail "query-status of domain $n on host $to"
        [ "$v" = "$want" ] || fail "rsdm-sim of domain $n on host $to reports '$v' over QMP, not $want"
    fi
    on_host "$to" "$bin/xensim" domain info "$n" | grep -q "^state: $dom$" ||
        fail "domain $n on host $to is not $dom"
    if [ "$hosts_mode" = netns ]; then
        local pages
        pages=$(sed -n 's/.*memory round [0-9]*: \([0-9]*\) pages sent.*/\1/p' "$sim_tmp/migrate.err" |
                awk '{ s += $1 } END { print s + 0 }')
        tx1=$(veth_tx "$from")
        [ $((tx1 - tx0)) -ge $((pages * 4096)) ] ||
            fail "host $from sent $((tx1 - tx0)) bytes over the veth pair for $pages pages"
    fi
}
