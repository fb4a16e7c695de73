/*
 * librunstate internals shared by its files.  Not installed.
 */
#ifndef RS_INTERNAL_H
#define RS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>

#include "runstate.h"

#define RS_MAX_SINKS 16
#define RS_MAX_PENDING_STOPS 64

struct rs_handler {
    rs_handler_fn cb;
    rs_handler_fn prepare;
    rs_handler_ret_fn cb_ret;
    void *opaque;
    int priority;
    bool dead;                /* removed during a pass; freed when it ends */
    uint64_t added_pass;      /* pass counter when added: skip in that pass */
    struct rs_handler *prev, *next;
};

typedef struct rs_sink {
    rs_event_fn fn;
    void *opaque;
} rs_sink;

typedef struct rs_hold {
    bool held;
    uint64_t seq;
    int64_t since_mono_ns, since_wall_ns;
} rs_hold;

/* What other threads posted and the main loop has not taken yet. */
typedef struct rs_pending {
    bool debug;
    bool suspend;
    bool shutdown;
    rs_cause shutdown_cause;
    int shutdown_code;
    bool quit_now;            /* watchdog poweroff: exit 0, no SHUTDOWN */
    bool reset;
    rs_cause reset_cause;
    rs_wakeup_reason wakeup;
    bool powerdown;
    size_t nstops;
    rs_state stops[RS_MAX_PENDING_STOPS];
} rs_pending;

struct rs_vm {
    pthread_t owner;

    /* Published state: written by the main loop only, read anywhere. */
    _Atomic int display;
    _Atomic rs_holdset holdset;
    _Atomic uint64_t invalid_transitions;

    rs_hold holds[RS_STATE__MAX];
    uint64_t hold_seq;
    bool was_suspended;       /* W */
    bool autostart;           /* A: cont remembered during inmigrate */
    rs_actions actions;
    _Atomic unsigned wakeup_mask;  /* bit per rs_wakeup_reason */

    rs_hooks hooks;
    rs_log_fn log_fn;
    void *log_opaque;

    /* Handlers: sorted by priority, ascending. */
    rs_handler *head, *tail;
    unsigned notify_depth;
    uint64_t pass;
    unsigned busy;            /* >0 while handlers or sinks run */

    rs_sink sinks[RS_MAX_SINKS];
    size_t nsinks;

    /* Events posted by other threads, delivered by the main loop. */
    pthread_mutex_t ev_lock;
    rs_event *evq;
    size_t evq_len, evq_cap;

    /* Requests: prepare takes req_lock, commit releases it. */
    pthread_mutex_t req_lock;
    rs_pending pending;
    atomic_bool stop_prepared;
    int notify_fd;
    uint64_t batch;

    rs_request_trace_fn trace_fn;
    void *trace_opaque;

    rs_transition_rec history[RS_HISTORY_LEN];
    size_t history_next, history_len;
};

/* rs_vm.c */
bool rs_on_main(const rs_vm *vm);
void rs_log(rs_vm *vm, rs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rs_seterr(rs_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t rs_now_mono(void);
int64_t rs_now_wall(void);
/* Move the display along a legal edge; refuses (logs, counts) otherwise. */
bool rs_set_display(rs_vm *vm, rs_state to, const char *cause);
void rs_hold_add(rs_vm *vm, rs_state reason);
void rs_hold_del(rs_vm *vm, rs_state reason);
bool rs_held(const rs_vm *vm, rs_state reason);
bool rs_transient_held(const rs_vm *vm);
/* Held reasons of a group mask, in acquisition order. */
size_t rs_holds_ordered(const rs_vm *vm, rs_state *out, bool newest_first);

/* rs_handlers.c */
int rs_notify(rs_vm *vm, bool running, rs_state state);
void rs_handlers_free(rs_vm *vm);

/* rs_events.c */
void rs_emit(rs_vm *vm, rs_event_type type, rs_state hold);
void rs_emit_ev(rs_vm *vm, rs_event *ev);
void rs_flush_event_queue(rs_vm *vm);
void rs_events_free(rs_vm *vm);
void rs_event_init(rs_event *ev, rs_event_type type);

/* rs_machine.c */
int rs_stop_batch(rs_vm *vm, const rs_state *reasons, size_t n, bool send_stop,
                  const char *cause);
void rs_start(rs_vm *vm, const char *cause);
void rs_do_reset(rs_vm *vm, rs_cause cause);
int rs_take_pending_stops(rs_vm *vm);

/* rs_requests.c */
void rs_kick(rs_vm *vm);
/* The watchdog's poweroff: the main loop exits at its next iteration. */
void rs_request_quit_now(rs_vm *vm);
int rs_requests_init(rs_vm *vm);
void rs_requests_free(rs_vm *vm);

#define RS_REQUIRE_MAIN(vm)                                                  \
    do {                                                                     \
        if (!(vm))                                                           \
            return -EINVAL;                                                  \
        if (!rs_on_main(vm)) {                                               \
            rs_log((vm), RS_LOG_ERROR, "%s: called outside the main loop thread", __func__); \
            return -EPERM;                                                   \
        }                                                                    \
    } while (0)

#endif /* RS_INTERNAL_H */
