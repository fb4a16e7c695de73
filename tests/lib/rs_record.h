/*
 * Test helper for librunstate: one recorder per test that writes, in the
 * order they happen, one text line per
 *
 *   event              "STOP paused", "RESUME", "x-hold-added postmigrate",
 *                      "RESET guest-reset", "WAKEUP rtc", "WATCHDOG pause",
 *                      "BLOCK_IO_ERROR ide0-hd0" ...
 *   handler call       "a(0,paused)"        main callback (running, state)
 *                      "a.prep(1,running)"  prepare callback
 *   hook call          "hook:drain", "hook:reset guest-reset", "hook:suspend",
 *                      "hook:wakeup rtc", "hook:powerdown",
 *                      "hook:shutdown guest-shutdown", "hook:nmi",
 *                      "hook:watchdog-debug" (the activate hook is only
 *                      counted: activate_calls)
 *   request taken      "req:VMSTOP io-error", "req:RESET guest-reset"
 *                      (only with rs_rec_trace; batch[] keeps its batch)
 *
 * so a test states the whole expected sequence in one list.  Events are
 * delivered on the main loop thread only, so the recorder needs no lock.
 * No cmocka here: the benchmark links this file too.
 */
#ifndef RS_RECORD_H
#define RS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runstate.h"

#define RS_REC_LINES 256
#define RS_REC_LINE 96
#define RS_REC_HANDLERS 32

typedef struct rs_rec rs_rec;

/* One recorded handler: its name, what its cb_ret returns on stop and on
 * start, and an optional action run from inside its main callback. */
typedef struct rs_rec_h {
    rs_rec *rec;
    rs_handler *h;
    char name[16];
    int ret_on_stop, ret_on_start;
    void (*inside)(struct rs_rec_h *self, bool running, rs_state state);
    void *arg;
} rs_rec_h;

struct rs_rec {
    rs_vm *vm;
    char line[RS_REC_LINES][RS_REC_LINE];
    uint64_t batch[RS_REC_LINES];   /* request lines: the batch; else 0 */
    size_t n;
    bool overflow;
    rs_event ev[RS_REC_LINES];      /* every event, complete */
    size_t nev;
    int drain_ret;                  /* what the drain/flush hook returns */
    int activate_ret;               /* what the activate hook returns */
    unsigned activate_calls;        /* ... and how often it was asked */
    unsigned bad_events;            /* events whose state/holds break a rule */
    unsigned handler_state_mismatch;/* handler saw rs_get_state() != state */
    rs_rec_h handlers[RS_REC_HANDLERS];
    size_t nhandlers;
    char log_last[256];             /* last library log line */
    unsigned log_errors;
};

/* Registers the event sink, every hook and the log of `vm`.  `rec` is zeroed. */
void rs_rec_attach(rs_rec *rec, rs_vm *vm);
/* A new VM (prelaunch) with a recorder attached; NULL on failure.
 * rs_rec_free frees both. */
rs_rec *rs_rec_new(void);
void rs_rec_free(rs_rec *rec);
/* Also record the requests the main loop takes ("req:..."). */
void rs_rec_trace(rs_rec *rec);
void rs_rec_clear(rs_rec *rec);

/* Handlers that record their calls.  `prepare` adds a prepare callback;
 * rs_rec_handler_ret registers a cb_ret instead of a cb. */
rs_rec_h *rs_rec_handler(rs_rec *rec, const char *name, int priority);
rs_rec_h *rs_rec_handler_full(rs_rec *rec, const char *name, int priority, bool prepare);
rs_rec_h *rs_rec_handler_ret(rs_rec *rec, const char *name, int priority,
                                   int ret_on_stop, int ret_on_start);

/* Append a line of the test's own (a marker between steps). */
void rs_rec_note(rs_rec *rec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when the recorded lines are exactly `expected` (NULL-terminated);
 * otherwise prints both sequences to stderr. */
bool rs_rec_expect_v(const rs_rec *rec, const char *const *expected);
#define rs_rec_expect(rec, ...) rs_rec_expect_v((rec), (const char *const[]){ __VA_ARGS__, NULL })
#define rs_rec_expect_nothing(rec) rs_rec_expect_v((rec), (const char *const[]){ NULL })

/* How many recorded lines equal / start with `s`. */
size_t rs_rec_count(const rs_rec *rec, const char *s);
size_t rs_rec_count_prefix(const rs_rec *rec, const char *prefix);
/* Index of the first line equal to `s`, or -1. */
long rs_rec_index(const rs_rec *rec, const char *s);
/* The last recorded event of `type`, or NULL. */
const rs_event *rs_rec_last_event(const rs_rec *rec, rs_event_type type);

/* "live iff no hold", and no refused transition so far. */
bool rs_rec_invariant(const rs_vm *vm);

/* Holds as a bit set from a list of states (RS_STATE__MAX-terminated). */
rs_holdset rs_rec_holds_v(const rs_state *s);
#define rs_rec_holds(...) rs_rec_holds_v((const rs_state[]){ __VA_ARGS__, RS_STATE__MAX })

#endif /* RS_RECORD_H */
