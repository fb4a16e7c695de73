/*
 * Stopping and starting: the hold rules of docs/runstate.md §4–§6, §8.
 * QEMU's order is kept (stop: display, handlers in reverse, STOP, drain and
 * flush; start: RESUME, display, handlers ascending) while the hold set,
 * not the display, decides when the VM may run again.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rs_internal.h"

#define GROUP_MASK_INTERNAL                                                               \
    (RS_HOLD_BIT(RS_FINISH_MIGRATE) | RS_HOLD_BIT(RS_INMIGRATE) | RS_HOLD_BIT(RS_SAVE_VM) |  \
     RS_HOLD_BIT(RS_RESTORE_VM) | RS_HOLD_BIT(RS_COLO))
#define GROUP_MASK_FATAL (RS_HOLD_BIT(RS_SHUTDOWN) | RS_HOLD_BIT(RS_INTERNAL_ERROR))

/* The reasons rs_vm_stop and stop requests accept. */
static bool stoppable(rs_state r)
{
    rs_group g = rs_state_group(r);
    return r != RS_PRELAUNCH &&
           (g == RS_GROUP_USER || g == RS_GROUP_MANAGEMENT || g == RS_GROUP_FATAL);
}

/* §4: R may be displayed from `from`, and, after a stop taken in S3, leads
 * back to suspended (or is fatal, which only a reset leaves). */
static bool eligible(const rs_vm *vm, rs_state from, rs_state r)
{
    if (!rs_transition_allowed(from, r))
        return false;
    return !vm->was_suspended || rs_transition_allowed(r, RS_SUSPENDED) ||
           rs_state_group(r) == RS_GROUP_FATAL;
}

static rs_state pick_display(const rs_vm *vm, rs_state from, const rs_state *cands, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (eligible(vm, from, cands[i]))
            return cands[i];
    return rs_transition_allowed(from, RS_PAUSED) ? RS_PAUSED : from;
}

static int drain_flush(rs_vm *vm)
{
    return vm->hooks.drain_flush ? vm->hooks.drain_flush(vm->hooks.opaque) : 0;
}

static void queue_pending_stops(rs_vm *vm, const rs_state *reasons, size_t n);

int rs_stop_batch(rs_vm *vm, const rs_state *reasons, size_t n, bool send_stop,
                  const char *cause)
{
    if (n == 0)
        return 0;
    if (rs_transient_held(vm)) {
        queue_pending_stops(vm, reasons, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (reasons[i] == RS_PAUSED && rs_held(vm, RS_INMIGRATE))
            vm->autostart = false;

    int ret = 0;
    rs_state d = rs_get_state(vm);
    if (rs_state_is_live(d)) {
        vm->was_suspended = (d == RS_SUSPENDED);
        rs_state newest_first[RS_STATE__MAX];
        size_t nn = 0;
        for (size_t i = n; i-- > 0;) {
            bool dup = false;
            for (size_t j = 0; j < nn; j++)
                dup |= newest_first[j] == reasons[i];
            if (!dup)
                newest_first[nn++] = reasons[i];
        }
        for (size_t i = nn; i-- > 0;)
            rs_hold_add(vm, newest_first[i]);
        rs_state disp = pick_display(vm, d, newest_first, nn);
        rs_state announced = rs_held(vm, disp) ? disp : newest_first[0];
        rs_set_display(vm, disp, cause);
        ret = rs_notify(vm, false, disp);
        if (send_stop)
            rs_emit(vm, RS_EV_STOP, announced);
        for (size_t i = nn; i-- > 0;)
            if (newest_first[i] != announced)
                rs_emit(vm, RS_EV_HOLD_ADDED, newest_first[i]);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (rs_held(vm, reasons[i]))
                continue;
            rs_hold_add(vm, reasons[i]);
            rs_emit(vm, RS_EV_HOLD_ADDED, reasons[i]);
        }
    }
    int fr = drain_flush(vm);
    if (fr < 0)
        rs_log(vm, RS_LOG_ERROR, "flushing block devices on stop failed: %s", strerror(-fr));
    return (ret != 0 || fr < 0) ? -EIO : 0;
}

static void queue_pending_stops(rs_vm *vm, const rs_state *reasons, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rs_request_vmstop(vm, reasons[i]);
}

void rs_start(rs_vm *vm, const char *cause)
{
    rs_state target = vm->was_suspended ? RS_SUSPENDED : RS_RUNNING;
    rs_set_display(vm, target, cause);
    rs_emit(vm, RS_EV_RESUME, RS_STATE__MAX);
    rs_notify(vm, true, target);
    vm->was_suspended = false;
    /* A suspend request waits for a running VM (§10). */
    pthread_mutex_lock(&vm->req_lock);
    bool kick = vm->pending.suspend;
    pthread_mutex_unlock(&vm->req_lock);
    if (kick)
        rs_kick(vm);
}

static bool busy(rs_vm *vm, rs_err *err)
{
    if (vm->busy) {
        rs_seterr(err, -EBUSY, "run-state change requested from a change-state handler or event sink");
        return true;
    }
    return false;
}

#define REQUIRE_MAIN_ERR(vm, err)                                                    \
    do {                                                                             \
        if (!(vm))                                                                   \
            return -EINVAL;                                                          \
        if (!rs_on_main(vm)) {                                                       \
            rs_seterr((err), -EPERM, "%s must be called from the main loop thread", __func__); \
            rs_log((vm), RS_LOG_ERROR, "%s: called outside the main loop thread", __func__); \
            return -EPERM;                                                           \
        }                                                                            \
        if (busy((vm), (err)))                                                       \
            return -EBUSY;                                                           \
    } while (0)

/* A stop whose handlers or flush failed keeps its hold and says why
 * (hacking.md: every error path names what failed). */
static int stop_result(int r, rs_err *err)
{
    if (r < 0)
        rs_seterr(err, r, "a change-state handler or the block flush failed");
    return r;
}

int rs_vm_stop(rs_vm *vm, rs_state reason, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    if ((unsigned)reason >= RS_STATE__MAX || !stoppable(reason)) {
        rs_seterr(err, -EINVAL, "'%s' is not a stop reason",
                  rs_state_name(reason) ? rs_state_name(reason) : "(invalid)");
        return -EINVAL;
    }
    return stop_result(rs_stop_batch(vm, &reason, 1, true, "stop"), err);
}

int rs_vm_shutdown(rs_vm *vm)
{
    REQUIRE_MAIN_ERR(vm, NULL);
    rs_state r = RS_SHUTDOWN;
    return rs_stop_batch(vm, &r, 1, false, "shutdown");
}

int rs_take_pending_stops(rs_vm *vm)
{
    rs_state stops[RS_MAX_PENDING_STOPS];
    pthread_mutex_lock(&vm->req_lock);
    size_t n = vm->pending.nstops;
    memcpy(stops, vm->pending.stops, n * sizeof(stops[0]));
    vm->pending.nstops = 0;
    pthread_mutex_unlock(&vm->req_lock);
    if (n == 0)
        return 0;
    uint64_t batch = ++vm->batch;
    for (size_t i = 0; i < n; i++)
        if (vm->trace_fn)
            vm->trace_fn(vm->trace_opaque, RS_REQ_VMSTOP, (int)stops[i], batch);
    rs_flush_event_queue(vm);
    return rs_stop_batch(vm, stops, n, true, "stop request");
}

static void names_of(const rs_vm *vm, rs_holdset except, char *buf, size_t len)
{
    rs_state order[RS_STATE__MAX];
    size_t n = rs_holds_ordered(vm, order, false), used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (except & RS_HOLD_BIT(order[i]))
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", rs_state_name(order[i]));
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
}

/* Steps 1-2 of cont and retry. */
static int begin_start(rs_vm *vm, rs_err *err)
{
    if (rs_transient_held(vm)) {
        rs_seterr(err, -EBUSY, "VM state is being saved or restored");
        return -EBUSY;
    }
    rs_take_pending_stops(vm);
    return 0;
}

static void release_group(rs_vm *vm, rs_group g)
{
    for (int s = 0; s < RS_STATE__MAX; s++)
        if (rs_held(vm, (rs_state)s) && rs_state_group((rs_state)s) == g)
            rs_hold_del(vm, (rs_state)s);
}

/* The activate hook, just before a start releases its holds. */
static int activate(rs_vm *vm, rs_err *err)
{
    if (!vm->hooks.activate)
        return 0;
    char why[sizeof(err->msg)] = "";
    int r = vm->hooks.activate(vm->hooks.opaque, why, sizeof(why));
    if (r >= 0)
        return 0;
    rs_seterr(err, r, "%s", why[0] ? why : "the devices refused to start");
    return r;
}

int rs_cont(rs_vm *vm, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    int r = begin_start(vm, err);
    if (r < 0)
        return r;
    rs_holdset h = rs_get_holds(vm);
    if (h & GROUP_MASK_FATAL) {
        rs_seterr(err, -EPERM, "Resetting the Virtual Machine is required");
        return -EPERM;
    }
    if (h & RS_HOLD_BIT(RS_FINISH_MIGRATE)) {
        rs_seterr(err, -EBUSY, "Migration is not finalized yet");
        return -EBUSY;
    }
    if (h & RS_HOLD_BIT(RS_INMIGRATE)) {
        vm->autostart = true;
        return 0;
    }
    if (h & RS_HOLD_BIT(RS_COLO)) {
        rs_seterr(err, -EBUSY, "The VM is held by colo");
        return -EBUSY;
    }
    if (h == 0)
        return 0;
    r = activate(vm, err);
    if (r < 0)
        return r;
    release_group(vm, RS_GROUP_USER);
    release_group(vm, RS_GROUP_MANAGEMENT);
    rs_start(vm, "cont");
    return 0;
}

int rs_retry(rs_vm *vm, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    int r = begin_start(vm, err);
    if (r < 0)
        return r;
    if (!rs_held(vm, RS_IO_ERROR)) {
        rs_seterr(err, -ENOENT, "No I/O error is parked");
        return -ENOENT;
    }
    if (rs_get_holds(vm) != RS_HOLD_BIT(RS_IO_ERROR)) {
        char others[200];
        names_of(vm, RS_HOLD_BIT(RS_IO_ERROR), others, sizeof(others));
        rs_seterr(err, -EBUSY, "also held by: %s", others);
        return -EBUSY;
    }
    r = activate(vm, err);
    if (r < 0)
        return r;
    rs_hold_del(vm, RS_IO_ERROR);
    rs_start(vm, "retry");
    return 0;
}

int rs_hold_acquire(rs_vm *vm, rs_state reason, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    if ((unsigned)reason >= RS_STATE__MAX || rs_state_group(reason) != RS_GROUP_INTERNAL) {
        rs_seterr(err, -EINVAL, "'%s' is not an internal hold",
                  rs_state_name(reason) ? rs_state_name(reason) : "(invalid)");
        return -EINVAL;
    }
    if (reason == RS_COLO) {
        rs_seterr(err, -ENOTSUP, "COLO is not supported");
        return -ENOTSUP;
    }
    if (rs_held(vm, reason)) {
        rs_seterr(err, -EBUSY, "'%s' is already held", rs_state_name(reason));
        return -EBUSY;
    }
    if (rs_transient_held(vm)) {
        rs_seterr(err, -EBUSY, "VM state is being saved or restored");
        return -EBUSY;
    }
    /* §8: one internal hold at a time (no outgoing migration during an
     * incoming one). */
    if (rs_get_holds(vm) & GROUP_MASK_INTERNAL) {
        char held[200];
        names_of(vm, ~GROUP_MASK_INTERNAL, held, sizeof(held));
        rs_seterr(err, -EBUSY, "'%s' cannot start while '%s' is held", rs_state_name(reason), held);
        return -EBUSY;
    }
    rs_state d = rs_get_state(vm);
    switch (reason) {
    case RS_SAVE_VM:
    case RS_RESTORE_VM:
        if (!rs_state_is_live(d)) {
            rs_seterr(err, -EBUSY, "'%s' needs a live VM (state is %s)", rs_state_name(reason),
                      rs_state_name(d));
            return -EBUSY;
        }
        return stop_result(rs_stop_batch(vm, &reason, 1, true, rs_state_name(reason)), err);
    case RS_FINISH_MIGRATE:
        if (rs_state_is_live(d))
            return stop_result(rs_stop_batch(vm, &reason, 1, true, "finish-migrate"), err);
        if (!rs_transition_allowed(d, reason)) {
            rs_seterr(err, -EBUSY, "cannot finish a migration from state %s", rs_state_name(d));
            return -EBUSY;
        }
        break;
    case RS_INMIGRATE:
        if (d != RS_PRELAUNCH) {
            rs_seterr(err, -EBUSY, "an incoming migration needs a VM not yet started (state is %s)",
                      rs_state_name(d));
            return -EBUSY;
        }
        break;
    default:
        return -EINVAL;
    }
    rs_hold_add(vm, reason);
    rs_set_display(vm, reason, rs_state_name(reason));
    rs_emit(vm, RS_EV_HOLD_ADDED, reason);
    int fr = reason == RS_FINISH_MIGRATE ? drain_flush(vm) : 0;
    return stop_result(fr < 0 ? -EIO : 0, err);
}

int rs_hold_release(rs_vm *vm, rs_state reason, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    if ((unsigned)reason >= RS_STATE__MAX || rs_state_group(reason) != RS_GROUP_INTERNAL) {
        rs_seterr(err, -EINVAL, "'%s' is not an internal hold",
                  rs_state_name(reason) ? rs_state_name(reason) : "(invalid)");
        return -EINVAL;
    }
    if (!rs_held(vm, reason)) {
        rs_seterr(err, -ENOENT, "'%s' is not held", rs_state_name(reason));
        return -ENOENT;
    }
    bool transient = reason == RS_SAVE_VM || reason == RS_RESTORE_VM;
    rs_state d = rs_get_state(vm);
    rs_hold_del(vm, reason);

    bool converted = false, added_paused = false;
    if (reason == RS_INMIGRATE) {
        if (vm->autostart) {
            vm->autostart = false;
            if (rs_get_holds(vm) & GROUP_MASK_FATAL) {
                rs_log(vm, RS_LOG_WARNING, "incoming migration done, but the VM needs a reset: "
                                           "the remembered cont is dropped");
            } else {
                release_group(vm, RS_GROUP_USER);
                release_group(vm, RS_GROUP_MANAGEMENT);
            }
        } else {
            if (rs_held(vm, RS_PRELAUNCH)) {
                rs_hold_del(vm, RS_PRELAUNCH);
                converted = true;
            }
            if (converted || rs_get_holds(vm) == 0) {
                added_paused = !rs_held(vm, RS_PAUSED);
                rs_hold_add(vm, RS_PAUSED);
            }
        }
    }

    if (rs_get_holds(vm) == 0) {
        rs_start(vm, rs_state_name(reason));
    } else {
        rs_state newest_first[RS_STATE__MAX];
        size_t n = rs_holds_ordered(vm, newest_first, true);
        rs_set_display(vm, pick_display(vm, d, newest_first, n), rs_state_name(reason));
        rs_emit(vm, RS_EV_HOLD_RELEASED, reason);
        if (converted)
            rs_emit(vm, RS_EV_HOLD_RELEASED, RS_PRELAUNCH);
        if (added_paused)
            rs_emit(vm, RS_EV_HOLD_ADDED, RS_PAUSED);
    }
    if (transient) {
        pthread_mutex_lock(&vm->req_lock);
        const rs_pending *p = &vm->pending;
        bool any = p->debug || p->suspend || p->shutdown || p->quit_now || p->reset ||
                   p->wakeup || p->powerdown || p->nstops;
        pthread_mutex_unlock(&vm->req_lock);
        if (any)
            rs_kick(vm);
    }
    return 0;
}

int rs_set_was_suspended(rs_vm *vm, bool suspended)
{
    REQUIRE_MAIN_ERR(vm, NULL);
    if (!rs_held(vm, RS_INMIGRATE))
        return -EBUSY;
    vm->was_suspended = suspended;
    return 0;
}

int rs_vm_stop_force_state(rs_vm *vm, rs_state state, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    if ((unsigned)state >= RS_STATE__MAX || rs_state_is_live(state)) {
        rs_seterr(err, -EINVAL, "cannot force a stop into '%s'",
                  rs_state_name(state) ? rs_state_name(state) : "(invalid)");
        return -EINVAL;
    }
    if (rs_state_group(state) == RS_GROUP_INTERNAL)
        return rs_hold_acquire(vm, state, err);
    rs_state d = rs_get_state(vm);
    if (rs_state_is_live(d))
        return stop_result(rs_stop_batch(vm, &state, 1, true, "force stop"), err);
    if (rs_transient_held(vm)) {
        rs_seterr(err, -EBUSY, "VM state is being saved or restored");
        return -EBUSY;
    }
    if (!rs_held(vm, state)) {
        rs_hold_add(vm, state);
        rs_emit(vm, RS_EV_HOLD_ADDED, state);
    }
    /* §4: while an internal hold is held the display shows it. */
    if (rs_get_holds(vm) & GROUP_MASK_INTERNAL)
        rs_log(vm, RS_LOG_INFO, "display stays %s while it is held", rs_state_name(d));
    else if (!eligible(vm, d, state) || !rs_set_display(vm, state, "force stop"))
        rs_log(vm, RS_LOG_INFO, "display stays %s: no edge to %s", rs_state_name(d),
               rs_state_name(state));
    return stop_result(drain_flush(vm) < 0 ? -EIO : 0, err);
}

int rs_vm_resume(rs_vm *vm, rs_state state, rs_err *err)
{
    REQUIRE_MAIN_ERR(vm, err);
    if ((unsigned)state >= RS_STATE__MAX) {
        rs_seterr(err, -EINVAL, "invalid state");
        return -EINVAL;
    }
    if (rs_state_is_live(state)) {
        if (rs_get_holds(vm) == 0)
            return 0;
        char held[200];
        names_of(vm, 0, held, sizeof(held));
        rs_seterr(err, -EBUSY, "held by: %s", held);
        return -EBUSY;
    }
    rs_state d = rs_get_state(vm);
    if (!rs_held(vm, state) || !eligible(vm, d, state) ||
        ((rs_get_holds(vm) & GROUP_MASK_INTERNAL) && state != d)) {
        rs_seterr(err, -EINVAL, "cannot show '%s' from '%s'", rs_state_name(state), rs_state_name(d));
        return -EINVAL;
    }
    rs_set_display(vm, state, "resume");
    return 0;
}

void rs_do_reset(rs_vm *vm, rs_cause cause)
{
    if (vm->hooks.reset)
        vm->hooks.reset(vm->hooks.opaque, cause);
    if (cause != RS_CAUSE_NONE && cause != RS_CAUSE_SUBSYSTEM_RESET &&
        cause != RS_CAUSE_SNAPSHOT_LOAD) {
        rs_event ev;
        rs_event_init(&ev, RS_EV_RESET);
        ev.cause = cause;
        ev.guest = rs_cause_is_guest(cause);
        rs_emit_ev(vm, &ev);
    }
    vm->was_suspended = false;
    pthread_mutex_lock(&vm->req_lock);
    vm->pending.suspend = false;
    vm->pending.wakeup = RS_WAKEUP_NONE;
    pthread_mutex_unlock(&vm->req_lock);

    rs_state d = rs_get_state(vm);
    bool was_live = rs_state_is_live(d);
    rs_state order[RS_STATE__MAX], released[RS_STATE__MAX];
    size_t n = rs_holds_ordered(vm, order, false), nr = 0;
    /* Internal holds survive a reset, so this is known before the loop; a
     * prelaunch hold stays only when the reset ends in prelaunch.  Released
     * holds are reported in acquisition order (docs/runstate.md §9). */
    bool internal = (rs_get_holds(vm) & GROUP_MASK_INTERNAL) != 0;
    for (size_t i = 0; i < n; i++) {
        rs_group g = rs_state_group(order[i]);
        if ((order[i] == RS_PRELAUNCH && !internal) || g == RS_GROUP_INTERNAL)
            continue;
        rs_hold_del(vm, order[i]);
        released[nr++] = order[i];
    }
    bool add_prelaunch = false;
    if (internal) {
        /* the display stays (QEMU: not from inmigrate / finish-migrate) */
    } else if (!was_live) {
        add_prelaunch = !rs_held(vm, RS_PRELAUNCH);
        rs_hold_add(vm, RS_PRELAUNCH);
        rs_set_display(vm, RS_PRELAUNCH, "reset");
    } else if (d == RS_SUSPENDED) {
        rs_set_display(vm, RS_RUNNING, "reset");
    }
    for (size_t i = 0; i < nr; i++)
        rs_emit(vm, RS_EV_HOLD_RELEASED, released[i]);
    if (add_prelaunch)
        rs_emit(vm, RS_EV_HOLD_ADDED, RS_PRELAUNCH);
}
