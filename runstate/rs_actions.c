/*
 * Action policies (reference qemu-runstate.md §5): the four knobs, QMP
 * set-action's order, and the guest-panic and watchdog decision tables.
 * The event always precedes the stop it causes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rs_internal.h"

int rs_set_actions(rs_vm *vm, const rs_action_update *u)
{
    RS_REQUIRE_MAIN(vm);
    if (!u)
        return -EINVAL;
    if ((u->has_reboot && (unsigned)u->value.reboot >= RS_REBOOT__MAX) ||
        (u->has_shutdown && (unsigned)u->value.shutdown >= RS_SHUTDOWN__MAX) ||
        (u->has_panic && (unsigned)u->value.panic >= RS_PANIC__MAX) ||
        (u->has_watchdog && (unsigned)u->value.watchdog >= RS_WATCHDOG__MAX))
        return -EINVAL;
    /* Posters read the reboot action under this lock. */
    pthread_mutex_lock(&vm->req_lock);
    if (u->has_reboot)
        vm->actions.reboot = u->value.reboot;
    if (u->has_panic)
        vm->actions.panic = u->value.panic;
    if (u->has_watchdog)
        vm->actions.watchdog = u->value.watchdog;
    if (u->has_shutdown)
        vm->actions.shutdown = u->value.shutdown;
    pthread_mutex_unlock(&vm->req_lock);
    return 0;
}

void rs_get_actions(const rs_vm *vm, rs_actions *out)
{
    if (vm && out)
        *out = vm->actions;
}

int rs_guest_panicked(rs_vm *vm)
{
    RS_REQUIRE_MAIN(vm);
    if (vm->busy)
        return -EBUSY;
    const char *shown;
    bool stop = true, shutdown = false;
    switch (vm->actions.panic) {
    case RS_PANIC_PAUSE:
        shown = "pause";
        break;
    case RS_PANIC_SHUTDOWN:
        shutdown = vm->actions.shutdown == RS_SHUTDOWN_POWEROFF;
        shown = shutdown ? "poweroff" : "pause";
        break;
    case RS_PANIC_EXIT_FAILURE:
        shown = "poweroff";
        shutdown = true;
        break;
    default:
        shown = "run";
        stop = false;
        break;
    }
    rs_log(vm, RS_LOG_WARNING, "Guest crashed");
    rs_event ev;
    rs_event_init(&ev, RS_EV_GUEST_PANICKED);
    snprintf(ev.action, sizeof(ev.action), "%s", shown);
    rs_emit_ev(vm, &ev);
    int r = 0;
    if (stop) {
        rs_state s = RS_GUEST_PANICKED;
        r = rs_stop_batch(vm, &s, 1, true, "guest panic");
    }
    if (shutdown)
        rs_request_shutdown(vm, RS_CAUSE_GUEST_PANIC, -1);
    return r;
}

int rs_watchdog_expired(rs_vm *vm)
{
    RS_REQUIRE_MAIN(vm);
    if (vm->busy)
        return -EBUSY;
    rs_watchdog_action a = vm->actions.watchdog;
    rs_event ev;
    rs_event_init(&ev, RS_EV_WATCHDOG);
    snprintf(ev.action, sizeof(ev.action), "%s", rs_watchdog_action_name(a));
    rs_emit_ev(vm, &ev);
    switch (a) {
    case RS_WATCHDOG_RESET:
        return rs_request_reset(vm, RS_CAUSE_GUEST_RESET);
    case RS_WATCHDOG_SHUTDOWN:
        return rs_request_powerdown(vm);
    case RS_WATCHDOG_POWEROFF:
        rs_request_quit_now(vm);
        return 0;
    case RS_WATCHDOG_PAUSE:
        return rs_request_vmstop(vm, RS_WATCHDOG);
    case RS_WATCHDOG_DEBUG:
        if (vm->hooks.watchdog_debug)
            vm->hooks.watchdog_debug(vm->hooks.opaque);
        else
            rs_log(vm, RS_LOG_WARNING, "watchdog: timer fired");
        return 0;
    case RS_WATCHDOG_INJECT_NMI:
        if (vm->hooks.inject_nmi)
            vm->hooks.inject_nmi(vm->hooks.opaque);
        else
            rs_log(vm, RS_LOG_WARNING, "watchdog: inject-nmi requested but no NMI path");
        return 0;
    default:
        return 0;
    }
}
