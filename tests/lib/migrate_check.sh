# The guest-store checker of the cross-host migration tests (source after
# hosts.sh).  A writer process is the guest: it stores numbered 8-byte
# records into guest RAM through the hypervisor (`xensim domain
# guest-write`: a running vCPU's store, refused while the domain is paused
# or suspended, dirty-logged), record i at 0x100000 + 64*i, and appends
# each acknowledged i to $sim_tmp/acked.  After a migration, every
# acknowledged record must be in the destination's RAM.  guest_name is the
# name the migrated domain must keep.
writer_pid="" guest_name=""
: >"$sim_tmp/acked"
mkfifo "$sim_tmp/writer.fifo"

record_hex() { printf '5ca1%012x' "$1"; }

# writer_start H DOMID: the writer on host H's domain; returns once it has
# made its first 5 stores (bounded).  It ends by itself when the domain is
# gone, or on writer_stop.
writer_start() {
    local h=$1 d=$2 fd line
    rm -f "$sim_tmp/writer.stop"
    exec {fd}<>"$sim_tmp/writer.fifo"
    (
        trap - EXIT
        i=$(($(wc -l <"$sim_tmp/acked") + 1)) n=0
        while [ ! -e "$sim_tmp/writer.stop" ]; do
            if err=$(XENSIM_RUNDIR="$sim_tmp/$h" "$bin/xensim" domain guest-write "$d" \
                     $((0x100000 + 64 * i)) "$(record_hex "$i")" 2>&1); then
                echo "$i" >>"$sim_tmp/acked"
                i=$((i + 1)) n=$((n + 1))
                [ "$n" = 5 ] && echo started >&"$fd"
            else
                case $err in
                *"no such domain"*) exit 0 ;;
                esac
            fi
        done
        exit 0
    ) &
    writer_pid=$!
    sim_pids="$sim_pids $writer_pid"
    read -t 30 -u "$fd" line || fail "the guest writer made no stores on host $h domain $d"
    exec {fd}>&-
}

writer_wait() {   # SECONDS: the writer has ended (its domain gone, or stopped)
    wait_exit "$writer_pid" "$1" || fail "guest writer failed"
    sim_pids=${sim_pids/ $writer_pid/}
}

writer_stop() {
    touch "$sim_tmp/writer.stop"
    writer_wait 30
}

# check_writes H DOMID: every acknowledged record is in the domain's RAM.
check_writes() {
    local n
    n=$(tail -n 1 "$sim_tmp/acked")
    [ -n "$n" ] || fail "no guest store was ever acknowledged"
    on_host "$1" "$bin/xensim" domain peek "$2" 0x100000 $((64 * (n + 1))) >"$sim_tmp/peek" ||
        fail "peek of host $1 domain $2"
    python3 - "$sim_tmp/acked" "$sim_tmp/peek" <<'EOF' || fail "guest stores lost on host $1 domain $2"
import sys
acked = [int(x) for x in open(sys.argv[1]).read().split()]
ram = bytes.fromhex(open(sys.argv[2]).read().strip())
lost = [i for i in acked if ram[64 * i:64 * i + 8].hex() != "5ca1%012x" % i]
if lost:
    print("%d of %d acknowledged stores lost, first %s" % (len(lost), len(acked), lost[:10]))
    sys.exit(1)
EOF
}

# qmp_run_state SOCKET: the dm's run state by QMP query-status, as libxl
# reads it in the qemu-xen dialect (greeting, capabilities, then the reply
# whose id is ours; events in between are skipped).
qmp_run_state() {
    python3 - "$1" <<'EOF'
import json, socket, sys
conn = socket.socket(socket.AF_UNIX)
conn.settimeout(10)
conn.connect(sys.argv[1])
lines = conn.makefile("rwb")
lines.readline()
for n, command in enumerate(("qmp_capabilities", "query-status")):
    lines.write(json.dumps({"execute": command, "id": n}).encode() + b"\r\n")
    lines.flush()
    while True:
        reply = json.loads(lines.readline())
        if reply.get("id") == n:
            break
print(reply["return"]["status"])
EOF
}

veth_tx() {   # H: bytes host H sent over its end of the veth pair
    local ns=$hosts_ns_a dev=veth0
    [ "$1" = B ] && ns=$hosts_ns_b dev=veth1
    ip netns exec "$ns" cat "/sys/class/net/$dev/statistics/tx_bytes"
}

# migrate_checked FROM TO DOMID [--live]: migrates while the writer runs and
# checks both hosts afterwards.  Sets migrated_domid and rounds.
migrate_checked() {
    local from=$1 to=$2 d=$3 live=${4:-} dmpid tx0=0 tx1 n v
    dmpid=$(on_host "$from" xenstore-read "/local/domain/$d/image/device-model-pid") ||
        fail "no device-model-pid for domain $d on host $from"
    [ "$hosts_mode" = netns ] && tx0=$(veth_tx "$from")
    xl_migrate "$from" "$to" "$d" $live
    n=$migrated_domid
    writer_wait 30
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
    if [ "$(on_host "$to" xenstore-read "/libxl/$n/dm-version")" = qemu_xen ]; then
        v=$(qmp_run_state "$sim_tmp/$to/xl/run/qmp-libxl-$n") ||
            fail "query-status of domain $n on host $to"
        [ "$v" = running ] || fail "rsdm-sim of domain $n on host $to reports '$v' over QMP"
    fi
    on_host "$to" "$bin/xensim" domain info "$n" | grep -q "^state: running$" ||
        fail "domain $n on host $to is not running"
    if [ "$hosts_mode" = netns ]; then
        local pages
        pages=$(sed -n 's/.*memory round [0-9]*: \([0-9]*\) pages sent.*/\1/p' "$sim_tmp/migrate.err" |
                awk '{ s += $1 } END { print s + 0 }')
        tx1=$(veth_tx "$from")
        [ $((tx1 - tx0)) -ge $((pages * 4096)) ] ||
            fail "host $from sent $((tx1 - tx0)) bytes over the veth pair for $pages pages"
    fi
    check_writes "$to" "$n"
}
