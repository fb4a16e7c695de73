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

# migrate_checked FROM TO DOMID [--live]: migrates while the writer runs and
# checks both hosts afterwards (hosts.sh), then the acknowledged stores.
# Sets migrated_domid and rounds.
migrate_checked() {
    migrate_begin "$1" "$3"
    xl_migrate "$@"
    writer_wait 30
    migrate_end "$@"
    check_writes "$2" "$migrated_domid"
}
