/*
 * QAPI names of causes, wakeup reasons, actions and events, and the
 * reverse look-ups the QMP and xenstore front ends need.
 */
#include <errno.h>
#include <string.h>

#include "rs_internal.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_at(const char *const *names, size_t n, unsigned i)
{
    return i < n ? names[i] : NULL;
}

static int index_of(const char *const *names, size_t n, const char *name, int *out)
{
    if (!name || !out)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (names[i] && strcmp(names[i], name) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return -EINVAL;
}

static const char *const cause_names[RS_CAUSE__MAX] = {
    "none", "host-error", "host-qmp-quit", "host-qmp-system-reset", "host-signal",
    "host-ui", "guest-shutdown", "guest-reset", "guest-panic", "subsystem-reset",
    "snapshot-load",
};

const char *rs_cause_name(rs_cause c)
{
    return name_at(cause_names, COUNT(cause_names), (unsigned)c);
}

int rs_cause_from_name(const char *name, rs_cause *out)
{
    int i, r = index_of(cause_names, COUNT(cause_names), name, &i);
    if (r == 0 && out)
        *out = (rs_cause)i;
    return r;
}

bool rs_cause_is_guest(rs_cause c)
{
    return c >= RS_CAUSE_GUEST_SHUTDOWN && c < RS_CAUSE__MAX;
}

static const char *const wakeup_names[RS_WAKEUP__MAX] = { "none", "rtc", "pmtimer", "other" };

const char *rs_wakeup_reason_name(rs_wakeup_reason r)
{
    return name_at(wakeup_names, COUNT(wakeup_names), (unsigned)r);
}

static const char *const reboot_names[] = { "reset", "shutdown" };
static const char *const shutdown_names[] = { "poweroff", "pause" };
static const char *const panic_names[] = { "pause", "shutdown", "exit-failure", "none" };
static const char *const watchdog_names[] = {
    "reset", "shutdown", "poweroff", "pause", "debug", "none", "inject-nmi",
};

const char *rs_reboot_action_name(rs_reboot_action a)
{
    return name_at(reboot_names, COUNT(reboot_names), (unsigned)a);
}

const char *rs_shutdown_action_name(rs_shutdown_action a)
{
    return name_at(shutdown_names, COUNT(shutdown_names), (unsigned)a);
}

const char *rs_panic_action_name(rs_panic_action a)
{
    return name_at(panic_names, COUNT(panic_names), (unsigned)a);
}

const char *rs_watchdog_action_name(rs_watchdog_action a)
{
    return name_at(watchdog_names, COUNT(watchdog_names), (unsigned)a);
}

#define FROM_NAME(fn, type, names)                                      \
    int fn(const char *n, type *out)                                    \
    {                                                                   \
        int i, r = index_of(names, COUNT(names), n, &i);                \
        if (r == 0 && out)                                              \
            *out = (type)i;                                             \
        return r;                                                       \
    }

FROM_NAME(rs_reboot_action_from_name, rs_reboot_action, reboot_names)
FROM_NAME(rs_shutdown_action_from_name, rs_shutdown_action, shutdown_names)
FROM_NAME(rs_panic_action_from_name, rs_panic_action, panic_names)
FROM_NAME(rs_watchdog_action_from_name, rs_watchdog_action, watchdog_names)

static const char *const event_names[RS_EV__MAX] = {
    [RS_EV_STOP] = "STOP",
    [RS_EV_RESUME] = "RESUME",
    [RS_EV_SUSPEND] = "SUSPEND",
    [RS_EV_WAKEUP] = "WAKEUP",
    [RS_EV_RESET] = "RESET",
    [RS_EV_SHUTDOWN] = "SHUTDOWN",
    [RS_EV_POWERDOWN] = "POWERDOWN",
    [RS_EV_GUEST_PANICKED] = "GUEST_PANICKED",
    [RS_EV_WATCHDOG] = "WATCHDOG",
    [RS_EV_BLOCK_IO_ERROR] = "BLOCK_IO_ERROR",
    [RS_EV_HOLD_ADDED] = "x-hold-added",
    [RS_EV_HOLD_RELEASED] = "x-hold-released",
};

const char *rs_event_name(rs_event_type t)
{
    return name_at(event_names, COUNT(event_names), (unsigned)t);
}
