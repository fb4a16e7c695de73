/*
 * The states, QEMU's allowed-transition table (reference qemu-runstate.md
 * §1.5, kept in QEMU's source order so `rsdmctl graph --pairs` lists it the
 * same way), and the predicates and hold groups derived from a state.
 */
#include <errno.h>
#include <string.h>

#include "rs_internal.h"

static const char *const state_names[RS_STATE__MAX] = {
    [RS_DEBUG] = "debug",
    [RS_INMIGRATE] = "inmigrate",
    [RS_INTERNAL_ERROR] = "internal-error",
    [RS_IO_ERROR] = "io-error",
    [RS_PAUSED] = "paused",
    [RS_POSTMIGRATE] = "postmigrate",
    [RS_PRELAUNCH] = "prelaunch",
    [RS_FINISH_MIGRATE] = "finish-migrate",
    [RS_RESTORE_VM] = "restore-vm",
    [RS_RUNNING] = "running",
    [RS_SAVE_VM] = "save-vm",
    [RS_SHUTDOWN] = "shutdown",
    [RS_SUSPENDED] = "suspended",
    [RS_WATCHDOG] = "watchdog",
    [RS_GUEST_PANICKED] = "guest-panicked",
    [RS_COLO] = "colo",
};

static const struct { rs_state from, to; } transitions[] = {
    { RS_DEBUG, RS_RUNNING },
    { RS_DEBUG, RS_FINISH_MIGRATE },
    { RS_DEBUG, RS_PRELAUNCH },

    { RS_INMIGRATE, RS_INTERNAL_ERROR },
    { RS_INMIGRATE, RS_IO_ERROR },
    { RS_INMIGRATE, RS_PAUSED },
    { RS_INMIGRATE, RS_RUNNING },
    { RS_INMIGRATE, RS_SHUTDOWN },
    { RS_INMIGRATE, RS_SUSPENDED },
    { RS_INMIGRATE, RS_WATCHDOG },
    { RS_INMIGRATE, RS_GUEST_PANICKED },
    { RS_INMIGRATE, RS_FINISH_MIGRATE },
    { RS_INMIGRATE, RS_PRELAUNCH },
    { RS_INMIGRATE, RS_POSTMIGRATE },
    { RS_INMIGRATE, RS_COLO },

    { RS_INTERNAL_ERROR, RS_PAUSED },
    { RS_INTERNAL_ERROR, RS_FINISH_MIGRATE },
    { RS_INTERNAL_ERROR, RS_PRELAUNCH },

    { RS_IO_ERROR, RS_RUNNING },
    { RS_IO_ERROR, RS_FINISH_MIGRATE },
    { RS_IO_ERROR, RS_PRELAUNCH },

    { RS_PAUSED, RS_RUNNING },
    { RS_PAUSED, RS_FINISH_MIGRATE },
    { RS_PAUSED, RS_POSTMIGRATE },
    { RS_PAUSED, RS_PRELAUNCH },
    { RS_PAUSED, RS_COLO },
    { RS_PAUSED, RS_SUSPENDED },

    { RS_POSTMIGRATE, RS_RUNNING },
    { RS_POSTMIGRATE, RS_FINISH_MIGRATE },
    { RS_POSTMIGRATE, RS_PRELAUNCH },

    { RS_PRELAUNCH, RS_RUNNING },
    { RS_PRELAUNCH, RS_FINISH_MIGRATE },
    { RS_PRELAUNCH, RS_INMIGRATE },
    { RS_PRELAUNCH, RS_SUSPENDED },

    { RS_FINISH_MIGRATE, RS_RUNNING },
    { RS_FINISH_MIGRATE, RS_PAUSED },
    { RS_FINISH_MIGRATE, RS_POSTMIGRATE },
    { RS_FINISH_MIGRATE, RS_PRELAUNCH },
    { RS_FINISH_MIGRATE, RS_COLO },
    { RS_FINISH_MIGRATE, RS_INTERNAL_ERROR },
    { RS_FINISH_MIGRATE, RS_IO_ERROR },
    { RS_FINISH_MIGRATE, RS_SHUTDOWN },
    { RS_FINISH_MIGRATE, RS_SUSPENDED },
    { RS_FINISH_MIGRATE, RS_WATCHDOG },
    { RS_FINISH_MIGRATE, RS_GUEST_PANICKED },

    { RS_RESTORE_VM, RS_RUNNING },
    { RS_RESTORE_VM, RS_PRELAUNCH },
    { RS_RESTORE_VM, RS_SUSPENDED },

    { RS_COLO, RS_RUNNING },
    { RS_COLO, RS_PRELAUNCH },
    { RS_COLO, RS_SHUTDOWN },

    { RS_RUNNING, RS_DEBUG },
    { RS_RUNNING, RS_INTERNAL_ERROR },
    { RS_RUNNING, RS_IO_ERROR },
    { RS_RUNNING, RS_PAUSED },
    { RS_RUNNING, RS_FINISH_MIGRATE },
    { RS_RUNNING, RS_RESTORE_VM },
    { RS_RUNNING, RS_SAVE_VM },
    { RS_RUNNING, RS_SHUTDOWN },
    { RS_RUNNING, RS_WATCHDOG },
    { RS_RUNNING, RS_GUEST_PANICKED },
    { RS_RUNNING, RS_COLO },

    { RS_SAVE_VM, RS_RUNNING },
    { RS_SAVE_VM, RS_SUSPENDED },

    { RS_SHUTDOWN, RS_PAUSED },
    { RS_SHUTDOWN, RS_FINISH_MIGRATE },
    { RS_SHUTDOWN, RS_PRELAUNCH },
    { RS_SHUTDOWN, RS_COLO },

    { RS_DEBUG, RS_SUSPENDED },
    { RS_RUNNING, RS_SUSPENDED },
    { RS_SUSPENDED, RS_RUNNING },
    { RS_SUSPENDED, RS_FINISH_MIGRATE },
    { RS_SUSPENDED, RS_PRELAUNCH },
    { RS_SUSPENDED, RS_COLO },
    { RS_SUSPENDED, RS_PAUSED },
    { RS_SUSPENDED, RS_SAVE_VM },
    { RS_SUSPENDED, RS_RESTORE_VM },
    { RS_SUSPENDED, RS_SHUTDOWN },

    { RS_WATCHDOG, RS_RUNNING },
    { RS_WATCHDOG, RS_FINISH_MIGRATE },
    { RS_WATCHDOG, RS_PRELAUNCH },
    { RS_WATCHDOG, RS_COLO },

    { RS_GUEST_PANICKED, RS_RUNNING },
    { RS_GUEST_PANICKED, RS_FINISH_MIGRATE },
    { RS_GUEST_PANICKED, RS_PRELAUNCH },
};

#define NTRANSITIONS (sizeof(transitions) / sizeof(transitions[0]))

/* Bit `to` of allowed[from]; built once from the list above. */
static rs_holdset allowed[RS_STATE__MAX];
static pthread_once_t allowed_once = PTHREAD_ONCE_INIT;

static void build_allowed(void)
{
    for (size_t i = 0; i < NTRANSITIONS; i++)
        allowed[transitions[i].from] |= RS_HOLD_BIT(transitions[i].to);
}

static bool valid(rs_state s)
{
    return (unsigned)s < RS_STATE__MAX;
}

const char *rs_state_name(rs_state s)
{
    return valid(s) ? state_names[s] : NULL;
}

int rs_state_from_name(const char *name, rs_state *out)
{
    if (!name || !out)
        return -EINVAL;
    for (int s = 0; s < RS_STATE__MAX; s++) {
        if (strcmp(state_names[s], name) == 0) {
            *out = (rs_state)s;
            return 0;
        }
    }
    return -EINVAL;
}

bool rs_transition_allowed(rs_state from, rs_state to)
{
    if (!valid(from) || !valid(to))
        return false;
    if (from == to)
        return true;
    pthread_once(&allowed_once, build_allowed);
    return (allowed[from] & RS_HOLD_BIT(to)) != 0;
}

size_t rs_transition_count(void)
{
    return NTRANSITIONS;
}

int rs_transition_at(size_t i, rs_state *from, rs_state *to)
{
    if (i >= NTRANSITIONS || !from || !to)
        return -EINVAL;
    *from = transitions[i].from;
    *to = transitions[i].to;
    return 0;
}

bool rs_state_is_live(rs_state s)
{
    return s == RS_RUNNING || s == RS_SUSPENDED;
}

bool rs_state_needs_reset(rs_state s)
{
    return s == RS_SHUTDOWN || s == RS_INTERNAL_ERROR;
}

rs_group rs_state_group(rs_state s)
{
    switch (s) {
    case RS_FINISH_MIGRATE:
    case RS_INMIGRATE:
    case RS_SAVE_VM:
    case RS_RESTORE_VM:
    case RS_COLO:
        return RS_GROUP_INTERNAL;
    case RS_IO_ERROR:
        return RS_GROUP_MANAGEMENT;
    case RS_PAUSED:
    case RS_PRELAUNCH:
    case RS_POSTMIGRATE:
    case RS_WATCHDOG:
    case RS_GUEST_PANICKED:
    case RS_DEBUG:
        return RS_GROUP_USER;
    case RS_SHUTDOWN:
    case RS_INTERNAL_ERROR:
        return RS_GROUP_FATAL;
    default:
        return RS_GROUP_NONE;
    }
}

const char *rs_group_name(rs_group g)
{
    static const char *const names[] = { "none", "internal", "management", "user", "fatal" };
    return (unsigned)g < sizeof(names) / sizeof(names[0]) ? names[g] : NULL;
}
