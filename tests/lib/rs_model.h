/*
 * An independent model of librunstate's hold rules, written from
 * docs/runstate.md and QEMU's transition table alone (no runstate/ code or
 * table).  States are QAPI names as strings; holds an ordered list of names
 * with sequence numbers.  Each operation returns 0 or a negative errno and
 * appends the events it expects (type name, hold concerned, display after).
 */
#ifndef RS_MODEL_H
#define RS_MODEL_H

#include <stdbool.h>

#define RSM_MAX 24
#define RSM_NAME 20

typedef struct rsm_event {
    char type[RSM_NAME];      /* "STOP", "RESUME", "RESET", "x-hold-added", ... */
    char hold[RSM_NAME];      /* "" when none */
    char display[RSM_NAME];
} rsm_event;

typedef struct rsm {
    char display[RSM_NAME];
    int nholds;
    char holds[RSM_MAX][RSM_NAME];   /* acquisition order */
    unsigned long seq[RSM_MAX];
    unsigned long next_seq;
    bool W, A;
    bool reset_pending;              /* a reset request not yet taken */
    bool debug_pending, powerdown_pending, suspend_pending, wakeup_pending;
    int npending;                    /* pending stop requests, posting order */
    char pending[RSM_MAX][RSM_NAME];
    int nev;
    rsm_event ev[64];
} rsm;

void rsm_init(rsm *m);                        /* prelaunch, prelaunch hold */
bool rsm_allowed(const char *from, const char *to);
int rsm_table_size(void);
bool rsm_held(const rsm *m, const char *r);
bool rsm_live(const rsm *m);

int rsm_stop(rsm *m, const char *reason);
int rsm_cont(rsm *m);
int rsm_retry(rsm *m);
int rsm_acquire(rsm *m, const char *reason);
int rsm_release(rsm *m, const char *reason);
/* Post a stop request (not yet taken). */
void rsm_post_stop(rsm *m, const char *reason);
/* rs_process_requests with an optional reset request (guest-reset cause)
 * and the pending stop requests. */
void rsm_process(rsm *m, bool reset);
/* Post a suspend request (taken by rsm_process). */
void rsm_request_suspend(rsm *m);
/* Post a wakeup request: refused unless the display is suspended. */
int rsm_request_wakeup(rsm *m);
/* Append an expected event (for operations composed by a harness). */
void rsm_emit(rsm *m, const char *type, const char *hold);

#endif
