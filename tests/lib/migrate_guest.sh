# The xensim guest workload as the checker of cross-host migrations (source
# after hosts.sh).  The guest drives disks through rsdm-sim's PIIX3 IDE
# (`hda`) and, in the traditional dialect, ICH9 AHCI (`sda`, NCQ depth 4):
# every write is sequence-numbered, acknowledged into a ledger in guest
# RAM, read back and classified (tools/xensim/guest_check.c); the ledger
# and the runner's state travel in guest RAM, so the workload resumes on
# the destination without re-initialising anything.
#
# The disk images are shared storage: one file each, at the same path for
# both hosts (network namespaces separate only the network, as two real
# hosts share a SAN or NFS path).  rsdm-sim's config file (--config,
# passed through device_model_args_hvm as an operator would) is also one
# path; a host's own copy is modelled by rewriting it: the source's rsdm
# keeps the rules it loaded (it re-reads them only on SIGUSR1), the
# destination's reads the file as it is when it starts.
#
# In the qemu-xen dialect the guest has the IDE disk only: libxl passes
# `sdX` disks as if=scsi (which rsdm refuses), and `hdtype = "ahci"` names
# the AHCI drives `ahcidisk-N`, which a `[disk NAME]` section cannot name,
# so they could not get werror=stop.

# on_rundir H CMD...: CMD with host H's rundir, outside its namespace: for
# commands that only use the rundir's unix sockets (quicker than entering
# the namespace, for the many status polls).
on_rundir() {
    local h=$1; shift
    XENSIM_RUNDIR="$sim_tmp/$h" XENSTORED_PATH="$sim_tmp/$h/xenstored/socket" "$@"
}

# wl_get H DOMID EXPR: EXPR (python, over the status object `s`) of the
# guest's `xensim guest status --json` on host H.
wl_get() {
    local json
    json=$(on_rundir "$1" "$bin/xensim" guest status "$2" --json) ||
        fail "guest status of domain $2 on host $1"
    python3 -c 'import json, sys; s = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' \
        "$json" "$3"
}

# wl_wait H DOMID EXPR WHAT [SECONDS]: until EXPR holds (the counters have
# no event to wait on: polled, bounded); a failed or shut-down workload
# fails at once.
wl_wait() {
    local h=$1 d=$2 expr=$3 what=$4 end=$((SECONDS + ${5:-30})) v
    while :; do
        v=$(wl_get "$h" "$d" "'fail: ' + s['state'] + ' ' + s['reason'] \
                if s['state'] in ('failed', 'shutdown') else ($expr)")
        case $v in
        True) return 0 ;;
        fail:*) fail "guest on host $h domain $d: $v" ;;
        esac
        [ "$SECONDS" -lt "$end" ] || fail "guest on host $h domain $d: no $what within ${5:-30} s"
        sleep 0.05
    done
}

# wl_clean H DOMID WHAT [noted]: the run's checker counters are all 0;
# with `noted`, interrupts and RAM writes while the dm said stopped are
# printed instead of failing (see the caller).
wl_clean() {
    local v stopped="'irqs_while_stopped', 'ram_writes_while_stopped'"
    [ "${4:-}" = noted ] && stopped=""
    v=$(wl_get "$1" "$2" "' '.join('%s=%d' % (k, s['counters'][k]) for k in \
        ('lost_writes', 'stale_overwrites', 'corrupted_reads', 'timeouts', 'reinits', \
         $stopped) if s['counters'][k])")
    [ -z "$v" ] || fail "$3 (host $1 domain $2): $v"
    [ "${4:-}" = noted ] || return 0
    v=$(wl_get "$1" "$2" "' '.join('%s=%d' % (k, s['counters'][k]) for k in \
        ('irqs_while_stopped', 'ram_writes_while_stopped') if s['counters'][k])")
    [ -z "$v" ] || echo "note: $3 (host $1 domain $2): $v"
}

# guest_conf NAME DIALECT [DISK [WERROR [INJECT]]]: the rsdm-sim config of
# guest NAME: werror=stop on every disk; DISK gets WERROR (default stop)
# and the injection rule INJECT (default: every write fails with EIO).
guest_conf() {
    local disks=hda d
    [ "$2" = traditional ] && disks="hda sda"
    for d in $disks; do
        printf '[disk %s]\n' "$d"
        if [ "$d" = "${3:-}" ]; then
            printf 'werror = %s\ninject = %s\n' "${4:-stop}" "${5:-op=write errno=EIO always}"
        else
            printf 'werror = stop\n'
        fi
    done >"$sim_tmp/$1.conf"
}

# disk_guest_cfg NAME DIALECT: $sim_tmp/NAME.cfg with its images and
# config; 32 MiB, 2 vCPUs, the workload on vCPU 0 (one vCPU: the one a
# suspend can freeze in a parked command, docs/xensim.md "Frozen in a
# command"), requests of 1-32 sectors over 2048 checked sectors per disk.
disk_guest_cfg() {
    local disks spec
    truncate -s 8M "$sim_tmp/$1-hda.img"
    disks="\"$sim_tmp/$1-hda.img,raw,hda,rw\""
    spec="devices=ide vcpus=1 sizes=1-32 sectors=2048 writes=0"
    if [ "$2" = traditional ]; then
        truncate -s 8M "$sim_tmp/$1-sda.img"
        disks="$disks, \"$sim_tmp/$1-sda.img,raw,sda,rw\""
        spec="devices=ide,ahci vcpus=1 qd=4 sizes=1-32 sectors=2048 writes=0"
    fi
    guest_conf "$1" "$2"
    guest_cfg "$1" "$2" 32 "device_model_args_hvm = [ \"--config=$sim_tmp/$1.conf\" ]
disk = [ $disks ]
xensim_workload = \"$spec\""
}

# host_wait_value H PATH VALUE [SECONDS]: sim.sh's wait_value on host H's
# xenstore (its socket is a path: reachable from any namespace).
host_wait_value() {
    ( export XENSIM_RUNDIR="$sim_tmp/$1" XENSTORED_PATH="$sim_tmp/$1/xenstored/socket"
      wait_value "$2" "$3" "${4:-10}" ) || exit 1
}

# park_in_io_error H DOMID NAME DIALECT DISK: DISK's writes fail with EIO
# (config + SIGUSR1 to the dm) until the VM stops in io-error with the
# guest's command parked; then the config is healthy again for the next
# rsdm that starts (the parked one keeps its rule).
park_in_io_error() {
    local h=$1 d=$2 pid
    pid=$(on_host "$h" xenstore-read "/local/domain/$d/image/device-model-pid") ||
        fail "no device-model-pid for domain $d on host $h"
    guest_conf "$3" "$4" "$5"
    kill -USR1 "$pid" || fail "SIGUSR1 to rsdm-sim $pid"
    host_wait_value "$h" "/local/domain/0/device-model/$d/runstate" "io-error holds=io-error"
    guest_conf "$3" "$4"
}

# ledger_verdict H DOMID NAME KIND: ledger_check.py's verdicts for the
# guest's KIND (ide or ahci) disk: its image read from the host against
# the ledger in guest RAM (the guest stopped, so nothing is in flight).
ledger_verdict() {
    local h=$1 d=$2 ledger n img=$sim_tmp/$3-hda.img
    [ "$4" = ahci ] && img=$sim_tmp/$3-sda.img
    read -r ledger n < <(wl_get "$h" "$d" \
        "'%d %d' % (s['ledgers']['$4']['ledger'], s['ledgers']['$4']['sectors'])") || return 1
    on_rundir "$h" "$bin/xensim" domain peek "$d" "$ledger" $((16 * n)) >"$sim_tmp/ledger" ||
        return 1
    python3 "$RSDM_SRCDIR/tests/lib/ledger_check.py" "$img" "$sim_tmp/ledger" "$n"
}

# check_images H DOMID NAME DIALECT: the guest stopped, every sector it
# saw acknowledged holds that write in its image (each disk); adds the
# acknowledged sectors to images_acked.
check_images() {
    local k r
    on_rundir "$1" "$bin/xensim" guest stop "$2" >/dev/null || fail "guest stop on host $1"
    for k in ide $([ "$4" = traditional ] && echo ahci); do
        r=$(ledger_verdict "$1" "$2" "$3" "$k") || fail "ledger check of $3's $k disk: $r"
        echo "$r" | python3 -c 'import json, sys; r = json.load(sys.stdin)
sys.exit(0 if r["acked"] > 0 and r["ok"] == r["acked"] else 1)' ||
            fail "$k image of $3 against the guest's ledger: $r"
        images_acked=$((images_acked + $(echo "$r" | python3 -c \
            'import json, sys; print(json.load(sys.stdin)["acked"])')))
    done
}

# dm_continue H DOMID: what an operator sends once the storage is fixed:
# `continue` through xenstore (traditional) or QMP `cont` on libxl's socket
# (qemu-xen; xl itself has no such command).
dm_continue() {
    if [ "$(on_host "$1" xenstore-read "/libxl/$2/dm-version")" = qemu_xen ]; then
        qmp_call "$sim_tmp/$1/xl/run/qmp-libxl-$2" cont >/dev/null || fail "QMP cont"
    else
        on_host "$1" xenstore-write "/local/domain/0/device-model/$2/command" continue ||
            fail "xenstore continue"
    fi
}
