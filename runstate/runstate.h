/*
 * librunstate: the run-state machine of a device model.
 *
 * QEMU's RunState model (16 states, 85 allowed transitions, change-state
 * handlers, cross-thread requests, action policies) plus what QEMU lacks:
 * the set of active *stop holds*, so no stop reason is ever lost when two
 * arrive at once.  The displayed state stays QEMU-compatible; the holds are
 * the truth.  docs/runstate.md is the specification of every rule here.
 *
 * Threading: an rs_vm belongs to the thread that created it (the main loop).
 * Functions marked [main] must be called from that thread and fail with
 * -EPERM elsewhere; functions marked [any] are safe from any thread.
 * Every function returning int returns 0 or a negative errno.
 */
#ifndef RUNSTATE_H
#define RUNSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ states */

/* QAPI order: the value is the index QEMU uses. */
typedef enum rs_state {
    RS_DEBUG,
    RS_INMIGRATE,
    RS_INTERNAL_ERROR,
    RS_IO_ERROR,
    RS_PAUSED,
    RS_POSTMIGRATE,
    RS_PRELAUNCH,
    RS_FINISH_MIGRATE,
    RS_RESTORE_VM,
    RS_RUNNING,
    RS_SAVE_VM,
    RS_SHUTDOWN,
    RS_SUSPENDED,
    RS_WATCHDOG,
    RS_GUEST_PANICKED,
    RS_COLO,
    RS_STATE__MAX
} rs_state;

/* QAPI name ("io-error"), or NULL when s is out of range. */
const char *rs_state_name(rs_state s);
/* Exact QAPI name to enum: 0, or -EINVAL for unknown or NULL names. */
int rs_state_from_name(const char *name, rs_state *out);

/* QEMU's allowed-transition table.  Out-of-range states are never allowed;
 * a self-transition is allowed (a no-op) for every valid state. */
bool rs_transition_allowed(rs_state from, rs_state to);
/* The table in QEMU's source order: count, and pair i (-EINVAL past end). */
size_t rs_transition_count(void);
int rs_transition_at(size_t i, rs_state *from, rs_state *to);

bool rs_state_is_live(rs_state s);        /* running | suspended */
bool rs_state_needs_reset(rs_state s);    /* shutdown | internal-error */

/* Which rule clears a hold of a given reason (docs/runstate.md, "Groups"). */
typedef enum rs_group {
    RS_GROUP_NONE,        /* not a stop reason: running, suspended */
    RS_GROUP_INTERNAL,    /* finish-migrate, inmigrate, save-vm, restore-vm, colo */
    RS_GROUP_MANAGEMENT,  /* io-error */
    RS_GROUP_USER,        /* paused, prelaunch, postmigrate, watchdog, guest-panicked, debug */
    RS_GROUP_FATAL        /* shutdown, internal-error */
} rs_group;

rs_group rs_state_group(rs_state s);
const char *rs_group_name(rs_group g);

typedef uint32_t rs_holdset;              /* bit (1u << rs_state) per hold */
#define RS_HOLD_BIT(s) ((rs_holdset)1u << (s))

/* ------------------------------------------------------ causes and reasons */

/* QAPI ShutdownCause, in QAPI order ("guest" = value >= GUEST_SHUTDOWN). */
typedef enum rs_cause {
    RS_CAUSE_NONE,
    RS_CAUSE_HOST_ERROR,
    RS_CAUSE_HOST_QMP_QUIT,
    RS_CAUSE_HOST_QMP_SYSTEM_RESET,
    RS_CAUSE_HOST_SIGNAL,
    RS_CAUSE_HOST_UI,
    RS_CAUSE_GUEST_SHUTDOWN,
    RS_CAUSE_GUEST_RESET,
    RS_CAUSE_GUEST_PANIC,
    RS_CAUSE_SUBSYSTEM_RESET,
    RS_CAUSE_SNAPSHOT_LOAD,
    RS_CAUSE__MAX
} rs_cause;

const char *rs_cause_name(rs_cause c);
int rs_cause_from_name(const char *name, rs_cause *out);
bool rs_cause_is_guest(rs_cause c);

typedef enum rs_wakeup_reason {
    RS_WAKEUP_NONE = 0,
    RS_WAKEUP_RTC,
    RS_WAKEUP_PMTIMER,
    RS_WAKEUP_OTHER,
    RS_WAKEUP__MAX
} rs_wakeup_reason;

const char *rs_wakeup_reason_name(rs_wakeup_reason r);

/* ----------------------------------------------------------------- actions */

typedef enum rs_reboot_action { RS_REBOOT_RESET, RS_REBOOT_SHUTDOWN, RS_REBOOT__MAX } rs_reboot_action;
typedef enum rs_shutdown_action { RS_SHUTDOWN_POWEROFF, RS_SHUTDOWN_PAUSE, RS_SHUTDOWN__MAX } rs_shutdown_action;
typedef enum rs_panic_action {
    RS_PANIC_PAUSE, RS_PANIC_SHUTDOWN, RS_PANIC_EXIT_FAILURE, RS_PANIC_NONE, RS_PANIC__MAX
} rs_panic_action;
typedef enum rs_watchdog_action {
    RS_WATCHDOG_RESET, RS_WATCHDOG_SHUTDOWN, RS_WATCHDOG_POWEROFF, RS_WATCHDOG_PAUSE,
    RS_WATCHDOG_DEBUG, RS_WATCHDOG_NONE, RS_WATCHDOG_INJECT_NMI, RS_WATCHDOG__MAX
} rs_watchdog_action;

typedef struct rs_actions {
    rs_reboot_action reboot;      /* default reset */
    rs_shutdown_action shutdown;  /* default poweroff */
    rs_panic_action panic;        /* default shutdown */
    rs_watchdog_action watchdog;  /* default reset */
} rs_actions;

/* An update as QMP set-action takes it: each field applies only if has_*. */
typedef struct rs_action_update {
    bool has_reboot, has_shutdown, has_panic, has_watchdog;
    rs_actions value;
} rs_action_update;

const char *rs_reboot_action_name(rs_reboot_action a);
const char *rs_shutdown_action_name(rs_shutdown_action a);
const char *rs_panic_action_name(rs_panic_action a);
const char *rs_watchdog_action_name(rs_watchdog_action a);
int rs_reboot_action_from_name(const char *n, rs_reboot_action *out);
int rs_shutdown_action_from_name(const char *n, rs_shutdown_action *out);
int rs_panic_action_from_name(const char *n, rs_panic_action *out);
int rs_watchdog_action_from_name(const char *n, rs_watchdog_action *out);

/* ------------------------------------------------------------------ errors */

/* Filled by operations that can be refused; msg is QEMU's text where QEMU
 * has one ("Resetting the Virtual Machine is required"). */
typedef struct rs_err {
    int code;            /* negative errno, 0 when none */
    char msg[256];
} rs_err;

/* ------------------------------------------------------------------ events */

typedef enum rs_event_type {
    RS_EV_STOP,
    RS_EV_RESUME,
    RS_EV_SUSPEND,
    RS_EV_WAKEUP,
    RS_EV_RESET,
    RS_EV_SHUTDOWN,
    RS_EV_POWERDOWN,
    RS_EV_GUEST_PANICKED,
    RS_EV_WATCHDOG,
    RS_EV_BLOCK_IO_ERROR,
    RS_EV_HOLD_ADDED,       /* "x-hold-added": a hold change that did not move live<->stopped */
    RS_EV_HOLD_RELEASED,    /* "x-hold-released" */
    RS_EV__MAX
} rs_event_type;

typedef struct rs_event {
    rs_event_type type;
    int64_t mono_ns;          /* CLOCK_MONOTONIC when emitted */
    int64_t wall_ns;          /* CLOCK_REALTIME when emitted */
    rs_state state;           /* displayed state after the event */
    rs_holdset holds;         /* active holds after the event */
    rs_state hold;            /* STOP, x-hold-*: the hold concerned; else RS_STATE__MAX */
    rs_cause cause;           /* SHUTDOWN, RESET */
    bool guest;               /* SHUTDOWN, RESET */
    rs_wakeup_reason wakeup;  /* WAKEUP */
    char action[16];          /* GUEST_PANICKED, WATCHDOG, BLOCK_IO_ERROR */
    /* BLOCK_IO_ERROR (filled by the device that posts it) */
    char device[64];
    char operation[8];        /* "read" | "write" */
    bool nospace;
    char reason[128];
} rs_event;

/* "STOP", "RESUME", ..., "x-hold-added"; NULL out of range. */
const char *rs_event_name(rs_event_type t);

typedef void (*rs_event_fn)(void *opaque, const rs_event *ev);

/* ------------------------------------------------------------------ hooks */

/* Machine-level notifiers, called from the main loop.  Any may be NULL. */
typedef struct rs_hooks {
    void (*reset)(void *opaque, rs_cause cause);          /* device/machine reset */
    void (*suspend)(void *opaque);                        /* guest entered S3 */
    void (*wakeup)(void *opaque, rs_wakeup_reason r);     /* guest leaves S3 */
    void (*powerdown)(void *opaque);                      /* power button */
    void (*shutdown)(void *opaque, rs_cause cause);       /* before the action applies */
    void (*inject_nmi)(void *opaque);                     /* watchdog inject-nmi */
    void (*watchdog_debug)(void *opaque);                 /* watchdog debug */
    int (*drain_flush)(void *opaque);                     /* end of every stop; <0 on failure */
    /* Before cont/retry start the VM: <0 (a -errno) refuses the start
     * with `why` as the error, nothing released (QEMU's cont failing when
     * it cannot re-take its images). */
    int (*activate)(void *opaque, char *why, size_t why_len);
    void *opaque;
} rs_hooks;

/* ----------------------------------------------------------------- logging */

typedef enum rs_log_level { RS_LOG_ERROR, RS_LOG_WARNING, RS_LOG_INFO, RS_LOG_DEBUG } rs_log_level;
typedef void (*rs_log_fn)(void *opaque, rs_log_level level, const char *msg);

/* --------------------------------------------------------------------- vm */

typedef struct rs_vm rs_vm;

/* A new machine in prelaunch with a prelaunch hold (QEMU's initial state).
 * The calling thread becomes its main loop.  NULL with errno on failure. */
rs_vm *rs_vm_new(void);
void rs_vm_free(rs_vm *vm);                              /* [main] */

void rs_set_log(rs_vm *vm, rs_log_fn fn, void *opaque);  /* [main]; NULL: stderr */
void rs_set_hooks(rs_vm *vm, const rs_hooks *hooks);     /* [main] */

/* Queries.  [any]: the displayed state and holds are read atomically. */
rs_state rs_get_state(const rs_vm *vm);
rs_holdset rs_get_holds(const rs_vm *vm);
bool rs_is_running(const rs_vm *vm);                     /* state == running */
bool rs_is_live(const rs_vm *vm);
bool rs_needs_reset(const rs_vm *vm);
bool rs_was_suspended(const rs_vm *vm);                  /* [main] */
bool rs_autostart_pending(const rs_vm *vm);              /* [main] remembered cont */
uint64_t rs_invalid_transitions(const rs_vm *vm);        /* [any] refused transitions */

typedef struct rs_hold_info {
    rs_state reason;
    rs_group group;
    uint64_t seq;             /* acquisition order */
    int64_t since_mono_ns;
    int64_t since_wall_ns;
} rs_hold_info;

/* Active holds in acquisition order; returns how many exist (may exceed max). */
size_t rs_list_holds(const rs_vm *vm, rs_hold_info *out, size_t max);   /* [main] */

/* Recent displayed-state changes, oldest first (a ring of RS_HISTORY_LEN). */
#define RS_HISTORY_LEN 64
typedef struct rs_transition_rec {
    rs_state from, to;
    int64_t mono_ns, wall_ns;
    char cause[32];           /* the operation that moved it: "stop", "cont", "reset", ... */
} rs_transition_rec;
size_t rs_history(const rs_vm *vm, rs_transition_rec *out, size_t max); /* [main] */

/* ------------------------------------------------ change-state handlers */

typedef void (*rs_handler_fn)(void *opaque, bool running, rs_state state);
typedef int (*rs_handler_ret_fn)(void *opaque, bool running, rs_state state);
typedef struct rs_handler rs_handler;

/* Handlers run in ascending priority on start, descending on stop; ties in
 * registration order; all prepare callbacks of a pass before all main ones.
 * Exactly one of cb / cb_ret must be set; a cb_ret's result is ORed on stop
 * and ignored on start.  NULL with errno = EINVAL on bad arguments.
 * Adding or removing handlers from inside a callback is allowed: a handler
 * removed during a pass is not called later in it, one added is not called
 * until the next pass.  [main] */
rs_handler *rs_handler_add(rs_vm *vm, rs_handler_fn cb, void *opaque, int priority);
rs_handler *rs_handler_add_full(rs_vm *vm, rs_handler_fn cb, rs_handler_fn prepare,
                                rs_handler_ret_fn cb_ret, void *opaque, int priority);
int rs_handler_del(rs_vm *vm, rs_handler *h);            /* -ENOENT if not registered */

/* --------------------------------------------------------------- events */

int rs_event_sink_add(rs_vm *vm, rs_event_fn fn, void *opaque);   /* [main] */
int rs_event_sink_del(rs_vm *vm, rs_event_fn fn, void *opaque);   /* [main] */

/* Emit an event from a device (BLOCK_IO_ERROR).  [any]: events from other
 * threads are queued and delivered by the main loop, in emission order and
 * always before any request posted after them. */
int rs_post_event(rs_vm *vm, const rs_event *ev);

/* ------------------------------------------------- main-loop operations */

/* Stop for `reason` (a stop state that is not internal: paused, io-error,
 * watchdog, guest-panicked, debug, shutdown, internal-error, postmigrate).
 * Adds the hold; a live VM stops (display, handlers, STOP).  Returns 0, a
 * negative errno for a refused request, or -EIO when a handler or the
 * drain/flush hook failed (the hold is kept).  [main] */
int rs_vm_stop(rs_vm *vm, rs_state reason, rs_err *err);

/* QEMU's vm_shutdown(): handlers see (false, shutdown), no STOP.  [main] */
int rs_vm_shutdown(rs_vm *vm);

/* QEMU's vm_stop_force_state(): the hold is added and the display moves to
 * `state` even when already stopped, along a legal edge.  [main] */
int rs_vm_stop_force_state(rs_vm *vm, rs_state state, rs_err *err);

/* QEMU's vm_resume(state): start when `state` is live and nothing holds the
 * VM; otherwise show `state` if it is held.  [main] */
int rs_vm_resume(rs_vm *vm, rs_state state, rs_err *err);

/* QMP cont / traditional continue.  [main] */
int rs_cont(rs_vm *vm, rs_err *err);
/* Clear io-error holds only (rsdm extension).  [main] */
int rs_retry(rs_vm *vm, rs_err *err);

/* Internal holds (finish-migrate, inmigrate, save-vm, restore-vm, colo),
 * taken and released by their owner.  [main] */
int rs_hold_acquire(rs_vm *vm, rs_state reason, rs_err *err);
int rs_hold_release(rs_vm *vm, rs_state reason, rs_err *err);

/* While inmigrate is held: the incoming state says the guest was in S3, so
 * the start after the load goes to suspended.  -EBUSY otherwise.  [main] */
int rs_set_was_suspended(rs_vm *vm, bool suspended);

/* Set the action policies as QMP set-action does (reboot, panic, watchdog,
 * then shutdown).  [main] */
int rs_set_actions(rs_vm *vm, const rs_action_update *u);
void rs_get_actions(const rs_vm *vm, rs_actions *out);

/* Guest panic and watchdog expiry with QEMU's decision tables.  [main] */
int rs_guest_panicked(rs_vm *vm);
int rs_watchdog_expired(rs_vm *vm);

/* ------------------------------------------------ cross-thread requests */

/* vmstop bracketing an event: prepare takes the request lock, the caller may
 * rs_post_event() (e.g. BLOCK_IO_ERROR), commit records the request and
 * releases the lock.  prepare must always be followed by commit.  [any] */
int rs_request_vmstop_prepare(rs_vm *vm);
int rs_request_vmstop_commit(rs_vm *vm, rs_state reason);
int rs_request_vmstop(rs_vm *vm, rs_state reason);
int rs_request_suspend(rs_vm *vm);
/* Fails with QEMU's message when the guest is not suspended; a masked
 * reason is accepted and ignored. */
int rs_request_wakeup(rs_vm *vm, rs_wakeup_reason reason, rs_err *err);
int rs_wakeup_enable(rs_vm *vm, rs_wakeup_reason reason, bool on);
int rs_request_reset(rs_vm *vm, rs_cause cause);
/* exit_code < 0: none recorded. */
int rs_request_shutdown(rs_vm *vm, rs_cause cause, int exit_code);
int rs_request_powerdown(rs_vm *vm);
int rs_request_debug(rs_vm *vm);

/* Readable while requests or events wait for the main loop.  [any] */
int rs_notify_fd(const rs_vm *vm);

/* Process what is pending in QEMU's main-loop order.  Returns 1 when the
 * main loop should exit (then *exit_status is set), 0 otherwise, or a
 * negative errno.  [main] */
int rs_process_requests(rs_vm *vm, int *exit_status);

/* Optional trace for tests and tools: called from the main loop for each
 * request it takes, in the order it takes them.  `arg` is the stop reason
 * (VMSTOP), the cause (RESET, SHUTDOWN), the wakeup reason (WAKEUP), else 0.
 * Stop requests taken together share one `batch` number and are acted on
 * as one stop (docs/runstate.md, "Requests"). */
typedef enum rs_request_kind {
    RS_REQ_DEBUG, RS_REQ_SUSPEND, RS_REQ_SHUTDOWN, RS_REQ_RESET, RS_REQ_WAKEUP,
    RS_REQ_POWERDOWN, RS_REQ_VMSTOP, RS_REQ__MAX
} rs_request_kind;
typedef void (*rs_request_trace_fn)(void *opaque, rs_request_kind kind, int arg, uint64_t batch);
void rs_set_request_trace(rs_vm *vm, rs_request_trace_fn fn, void *opaque);   /* [main] */

#ifdef __cplusplus
}
#endif

#endif /* RUNSTATE_H */
