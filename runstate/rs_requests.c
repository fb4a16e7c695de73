/*
 * Requests from any thread, and the main loop's processing of them in
 * QEMU's order (reference qemu-runstate.md §4.2).  Posting only records the
 * request and wakes the main loop through an eventfd; every state change
 * happens in rs_process_requests on the main loop thread.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rs_internal.h"

int rs_requests_init(rs_vm *vm)
{
    if (pthread_mutex_init(&vm->req_lock, NULL) != 0)
        return -ENOMEM;
    vm->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vm->notify_fd < 0) {
        int e = errno;
        pthread_mutex_destroy(&vm->req_lock);
        return -e;
    }
    return 0;
}

void rs_requests_free(rs_vm *vm)
{
    if (vm->notify_fd >= 0)
        close(vm->notify_fd);
    vm->notify_fd = -1;
    pthread_mutex_destroy(&vm->req_lock);
}

int rs_notify_fd(const rs_vm *vm)
{
    return vm ? vm->notify_fd : -EINVAL;
}

void rs_kick(rs_vm *vm)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the fd is readable anyway. */
    ssize_t w = write(vm->notify_fd, &one, sizeof(one));
    (void)w;
}

static void drain_kick(rs_vm *vm)
{
    uint64_t v;
    ssize_t r = read(vm->notify_fd, &v, sizeof(v));
    (void)r;
}

static bool valid_stop_reason(rs_state r)
{
    rs_group g = rs_state_group(r);
    return (unsigned)r < RS_STATE__MAX && r != RS_PRELAUNCH &&
           (g == RS_GROUP_USER || g == RS_GROUP_MANAGEMENT || g == RS_GROUP_FATAL);
}

int rs_request_vmstop_prepare(rs_vm *vm)
{
    if (!vm)
        return -EINVAL;
    pthread_mutex_lock(&vm->req_lock);
    atomic_store(&vm->stop_prepared, true);
    return 0;
}

/* A reason posted again moves to the end: the order of last postings is
 * what decides the display (QEMU's last writer wins). */
static void append_stop(rs_pending *p, rs_state reason)
{
    size_t j = 0;
    for (size_t i = 0; i < p->nstops; i++)
        if (p->stops[i] != reason)
            p->stops[j++] = p->stops[i];
    p->nstops = j;
    p->stops[p->nstops++] = reason;
}

int rs_request_vmstop_commit(rs_vm *vm, rs_state reason)
{
    if (!vm)
        return -EINVAL;
    if (!atomic_load(&vm->stop_prepared))
        return -EINVAL;
    int r = 0;
    if (valid_stop_reason(reason))
        append_stop(&vm->pending, reason);
    else
        r = -EINVAL;
    atomic_store(&vm->stop_prepared, false);
    pthread_mutex_unlock(&vm->req_lock);
    if (r == 0)
        rs_kick(vm);
    return r;
}

int rs_request_vmstop(rs_vm *vm, rs_state reason)
{
    if (!vm)
        return -EINVAL;
    if (!valid_stop_reason(reason))
        return -EINVAL;
    rs_request_vmstop_prepare(vm);
    return rs_request_vmstop_commit(vm, reason);
}

/* Lock, let `set` fill the pending record, unlock, wake the main loop. */
#define POST(vm, body)                         \
    do {                                       \
        if (!(vm))                             \
            return -EINVAL;                    \
        pthread_mutex_lock(&(vm)->req_lock);   \
        body;                                  \
        pthread_mutex_unlock(&(vm)->req_lock); \
        rs_kick(vm);                           \
        return 0;                              \
    } while (0)

int rs_request_suspend(rs_vm *vm)
{
    POST(vm, vm->pending.suspend = true);
}

int rs_request_debug(rs_vm *vm)
{
    POST(vm, vm->pending.debug = true);
}

int rs_request_powerdown(rs_vm *vm)
{
    POST(vm, vm->pending.powerdown = true);
}

int rs_request_shutdown(rs_vm *vm, rs_cause cause, int exit_code)
{
    if ((unsigned)cause >= RS_CAUSE__MAX)
        return -EINVAL;
    POST(vm, {
        vm->pending.shutdown = true;
        vm->pending.shutdown_cause = cause;
        vm->pending.shutdown_code = exit_code;
    });
}

int rs_request_reset(rs_vm *vm, rs_cause cause)
{
    if ((unsigned)cause >= RS_CAUSE__MAX)
        return -EINVAL;
    POST(vm, {
        /* reboot=shutdown turns every reset but a subsystem reset into a
         * shutdown with the same cause, when posted, as QEMU does. */
        if (vm->actions.reboot == RS_REBOOT_SHUTDOWN && cause != RS_CAUSE_SUBSYSTEM_RESET) {
            vm->pending.shutdown = true;
            vm->pending.shutdown_cause = cause;
            vm->pending.shutdown_code = -1;
        } else {
            vm->pending.reset = true;
            vm->pending.reset_cause = cause;
        }
    });
}

int rs_request_wakeup(rs_vm *vm, rs_wakeup_reason reason, rs_err *err)
{
    if (!vm || reason <= RS_WAKEUP_NONE || reason >= RS_WAKEUP__MAX) {
        rs_seterr(err, -EINVAL, "invalid wakeup reason");
        return -EINVAL;
    }
    if (rs_get_state(vm) != RS_SUSPENDED) {
        rs_seterr(err, -EBUSY, "Unable to wake up: guest is not in suspended state");
        return -EBUSY;
    }
    if (!(atomic_load(&vm->wakeup_mask) & (1u << reason)))
        return 0;
    POST(vm, vm->pending.wakeup = reason);
}

int rs_wakeup_enable(rs_vm *vm, rs_wakeup_reason reason, bool on)
{
    if (!vm || reason <= RS_WAKEUP_NONE || reason >= RS_WAKEUP__MAX)
        return -EINVAL;
    if (reason == RS_WAKEUP_OTHER && !on)
        return -EINVAL;    /* QEMU never masks OTHER: system_wakeup must always work */
    if (on)
        atomic_fetch_or(&vm->wakeup_mask, 1u << reason);
    else
        atomic_fetch_and(&vm->wakeup_mask, ~(1u << reason));
    return 0;
}

void rs_set_request_trace(rs_vm *vm, rs_request_trace_fn fn, void *opaque)
{
    if (!vm || !rs_on_main(vm))
        return;
    vm->trace_fn = fn;
    vm->trace_opaque = opaque;
}

static void trace(rs_vm *vm, rs_request_kind kind, int arg, uint64_t batch)
{
    if (vm->trace_fn)
        vm->trace_fn(vm->trace_opaque, kind, arg, batch);
}

static void process_suspend(rs_vm *vm)
{
    rs_state d = rs_get_state(vm);
    if (d == RS_SUSPENDED)
        return;
    if (d != RS_RUNNING) {
        /* §10: waits for a running VM; rs_start wakes the loop again. */
        pthread_mutex_lock(&vm->req_lock);
        vm->pending.suspend = true;
        pthread_mutex_unlock(&vm->req_lock);
        return;
    }
    rs_set_display(vm, RS_SUSPENDED, "suspend");
    if (vm->hooks.suspend)
        vm->hooks.suspend(vm->hooks.opaque);
    rs_emit(vm, RS_EV_SUSPEND, RS_STATE__MAX);
}

static void process_wakeup(rs_vm *vm, rs_wakeup_reason reason)
{
    if (rs_get_state(vm) == RS_SUSPENDED) {
        rs_set_display(vm, RS_RUNNING, "wakeup");
    } else if (vm->was_suspended) {
        vm->was_suspended = false;
    } else {
        rs_log(vm, RS_LOG_INFO, "wakeup (%s) dropped: the guest is no longer suspended",
               rs_wakeup_reason_name(reason));
        return;
    }
    if (vm->hooks.wakeup)
        vm->hooks.wakeup(vm->hooks.opaque, reason);
    rs_event ev;
    rs_event_init(&ev, RS_EV_WAKEUP);
    ev.wakeup = reason;
    rs_emit_ev(vm, &ev);
}

/* Returns true when the main loop should exit. */
static bool process_shutdown(rs_vm *vm, rs_cause cause, int code, int *exit_status)
{
    rs_event ev;
    rs_event_init(&ev, RS_EV_SHUTDOWN);
    ev.cause = cause;
    ev.guest = rs_cause_is_guest(cause);
    rs_emit_ev(vm, &ev);
    if (vm->hooks.shutdown)
        vm->hooks.shutdown(vm->hooks.opaque, cause);
    bool forced = cause == RS_CAUSE_HOST_QMP_QUIT || cause == RS_CAUSE_HOST_SIGNAL;
    if (vm->actions.shutdown == RS_SHUTDOWN_PAUSE && !forced) {
        rs_state r = RS_SHUTDOWN;
        rs_stop_batch(vm, &r, 1, true, "shutdown");
        return false;
    }
    if (code >= 0)
        *exit_status = code;
    else if (cause == RS_CAUSE_GUEST_PANIC && vm->actions.panic == RS_PANIC_EXIT_FAILURE)
        *exit_status = 1;
    else
        *exit_status = 0;
    return true;
}

int rs_process_requests(rs_vm *vm, int *exit_status)
{
    RS_REQUIRE_MAIN(vm);
    if (vm->busy)
        return -EBUSY;
    int dummy;
    if (!exit_status)
        exit_status = &dummy;
    drain_kick(vm);
    if (rs_transient_held(vm))
        return 0;    /* §8: everything waits for the release, which kicks again */

    pthread_mutex_lock(&vm->req_lock);
    rs_pending take = vm->pending;
    memset(&vm->pending, 0, sizeof(vm->pending));
    vm->pending.shutdown_code = -1;
    pthread_mutex_unlock(&vm->req_lock);

    rs_flush_event_queue(vm);
    uint64_t batch = ++vm->batch;

    if (take.quit_now) {
        *exit_status = 0;
        return 1;
    }
    if (take.debug) {
        trace(vm, RS_REQ_DEBUG, 0, batch);
        rs_state r = RS_DEBUG;
        rs_stop_batch(vm, &r, 1, true, "debug");
    }
    if (take.suspend) {
        trace(vm, RS_REQ_SUSPEND, 0, batch);
        process_suspend(vm);
    }
    if (take.shutdown) {
        trace(vm, RS_REQ_SHUTDOWN, (int)take.shutdown_cause, batch);
        if (process_shutdown(vm, take.shutdown_cause, take.shutdown_code, exit_status))
            return 1;
    }
    if (take.reset) {
        trace(vm, RS_REQ_RESET, (int)take.reset_cause, batch);
        rs_do_reset(vm, take.reset_cause);
    }
    if (take.wakeup != RS_WAKEUP_NONE) {
        trace(vm, RS_REQ_WAKEUP, (int)take.wakeup, batch);
        process_wakeup(vm, take.wakeup);
    }
    if (take.powerdown) {
        trace(vm, RS_REQ_POWERDOWN, 0, batch);
        rs_emit(vm, RS_EV_POWERDOWN, RS_STATE__MAX);
        if (vm->hooks.powerdown)
            vm->hooks.powerdown(vm->hooks.opaque);
    }
    if (take.nstops) {
        for (size_t i = 0; i < take.nstops; i++)
            trace(vm, RS_REQ_VMSTOP, (int)take.stops[i], batch);
        rs_stop_batch(vm, take.stops, take.nstops, true, "stop request");
    }
    return 0;
}

void rs_request_quit_now(rs_vm *vm)
{
    pthread_mutex_lock(&vm->req_lock);
    vm->pending.quit_now = true;
    pthread_mutex_unlock(&vm->req_lock);
    rs_kick(vm);
}
