/*
 * Model check (b): random multi-threaded sequences.  Poster threads post
 * requests (vmstop with several reasons, suspend, wakeup, io-error bracketed by prepare /
 * BLOCK_IO_ERROR / commit, reset, debug, powerdown) while the main thread
 * interleaves cont, stop, retry, finish-migrate acquire/release and
 * rs_process_requests when the notify fd is readable.  The main loop logs
 * its own operations and, through rs_set_request_trace, the requests it took
 * in the order it took them; the log is then replayed through the
 * independent model (tests/lib/rs_model.c) and every event (type, hold,
 * display after), every state after a main-loop operation and every return
 * code must agree.  Seeded: the seed is printed, RSM_SEED reproduces a run,
 * RSM_MT_SEQS lowers the count (default 100000) e.g. under TSan.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "../lib/rs_model.h"
#include "runstate.h"

#define NPOSTERS 2
#define NPOST 3
#define NMAIN 6
#define MAXLOG 128
#define MAXEV 128

/* log entry: a main-loop operation, or a request it took */
enum { L_OP, L_REQ };
enum { M_CONT, M_STOP, M_RETRY, M_ACQ, M_REL, M_PROCESS, M_N };
typedef struct logent {
    int what, op, ret;            /* L_OP: op and its return code */
    rs_request_kind kind;         /* L_REQ */
    int arg;
    char display[RSM_NAME];       /* L_OP: state after */
    rs_holdset holds;
} logent;

static logent lg[MAXLOG];
static int nlg;
static rs_event evs[MAXEV];
static int nev;

/* Millions of runs: the library's log lines (e.g. "Guest crashed") would
 * drown the test log; the checks above are what matters. */
static void quiet(void *o, rs_log_level l, const char *msg) { (void)o; (void)l; (void)msg; }

static void sink(void *o, const rs_event *e) { (void)o; if (nev < MAXEV) evs[nev++] = *e; }
static void tracer(void *o, rs_request_kind k, int arg, uint64_t batch)
{
    (void)o; (void)batch;
    if (nlg < MAXLOG) { lg[nlg].what = L_REQ; lg[nlg].kind = k; lg[nlg].arg = arg; nlg++; }
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

typedef struct poster { rs_vm *vm; uint64_t seed; pthread_barrier_t *go; } poster;

static void *post_main(void *arg)
{
    poster *p = arg;
    pthread_barrier_wait(p->go);
    for (int i = 0; i < NPOST; i++) {
        switch (rng_next(&p->seed) % 9) {
        case 7: rs_request_suspend(p->vm); break;
        case 8: {
            rs_err err;     /* refused unless suspended: a race, not compared */
            (void)rs_request_wakeup(p->vm, RS_WAKEUP_OTHER, &err);
            break;
        }
        case 0: rs_request_vmstop(p->vm, RS_PAUSED); break;
        case 1: rs_request_vmstop(p->vm, RS_WATCHDOG); break;
        case 2: {
            rs_request_vmstop_prepare(p->vm);
            rs_event e;
            memset(&e, 0, sizeof e);
            e.type = RS_EV_BLOCK_IO_ERROR;
            e.hold = RS_STATE__MAX;
            snprintf(e.device, sizeof e.device, "disk0");
            rs_post_event(p->vm, &e);
            rs_request_vmstop_commit(p->vm, RS_IO_ERROR);
            break;
        }
        case 3: rs_request_reset(p->vm, RS_CAUSE_GUEST_RESET); break;
        case 4: rs_request_debug(p->vm); break;
        case 5: rs_request_powerdown(p->vm); break;
        default: rs_request_vmstop(p->vm, RS_SHUTDOWN); break;
        }
    }
    return NULL;
}

static bool readable(rs_vm *vm, int ms)
{
    struct pollfd p = { .fd = rs_notify_fd(vm), .events = POLLIN };
    return poll(&p, 1, ms) == 1;
}

/* The entry is reserved before the operation runs, so that the requests it
 * takes (logged by the trace during the call) follow it in the log. */
static void main_op(rs_vm *vm, int op)
{
    rs_err err;
    int ex, r = 0;
    if (nlg >= MAXLOG)
        fail_msg("log full");
    logent *l = &lg[nlg++];
    l->what = L_OP;
    l->op = op;
    switch (op) {
    case M_CONT: r = rs_cont(vm, &err); break;
    case M_STOP: r = rs_vm_stop(vm, RS_PAUSED, &err); break;
    case M_RETRY: r = rs_retry(vm, &err); break;
    case M_ACQ: r = rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err); break;
    case M_REL: r = rs_hold_release(vm, RS_FINISH_MIGRATE, &err); break;
    case M_PROCESS: r = rs_process_requests(vm, &ex); break;
    }
    l->ret = r;
    snprintf(l->display, RSM_NAME, "%s", rs_state_name(rs_get_state(vm)));
    l->holds = rs_get_holds(vm);
}

static rs_holdset model_holds(const rsm *m)
{
    rs_holdset h = 0;
    for (int i = 0; i < m->nholds; i++) {
        rs_state s;
        if (rs_state_from_name(m->holds[i], &s) == 0)
            h |= RS_HOLD_BIT(s);
    }
    return h;
}

static const char *opname[] = { "cont", "stop paused", "retry", "acquire finish-migrate",
                                "release finish-migrate", "process" };

static void print_log(void)
{
    for (int i = 0; i < nlg; i++) {
        if (lg[i].what == L_OP)
            fprintf(stderr, "  op %s -> %d, %s\n", opname[lg[i].op], lg[i].ret, lg[i].display);
        else
            fprintf(stderr, "    took request kind %d arg %d\n", lg[i].kind, lg[i].arg);
    }
}

/* Replay: requests logged after an operation were taken by it; set them
 * pending in the model before running the operation. */
static void replay(uint64_t seed, unsigned long n)
{
    rsm m;
    rsm_init(&m);
    (void)rsm_cont(&m);             /* the sequence starts running */
    m.nev = 0;
    rsm_event all[MAXEV];
    int nall = 0;
    for (int i = 0; i < nlg; i++) {
        if (lg[i].what != L_OP)
            continue;
        int j = i + 1;
        bool reset = false;
        for (; j < nlg && lg[j].what == L_REQ; j++) {
            switch (lg[j].kind) {
            case RS_REQ_VMSTOP: rsm_post_stop(&m, rs_state_name((rs_state)lg[j].arg)); break;
            case RS_REQ_RESET: reset = true; break;
            case RS_REQ_DEBUG: m.debug_pending = true; break;
            case RS_REQ_POWERDOWN: m.powerdown_pending = true; break;
            case RS_REQ_SUSPEND: m.suspend_pending = true; break;
            case RS_REQ_WAKEUP: m.wakeup_pending = true; break;
            default: fail_msg("seed %llu seq %lu: unexpected request kind %d",
                              (unsigned long long)seed, n, lg[j].kind);
            }
        }
        m.nev = 0;
        int r = 0;
        switch (lg[i].op) {
        case M_CONT: r = rsm_cont(&m); break;
        case M_STOP: r = rsm_stop(&m, "paused"); break;
        case M_RETRY: r = rsm_retry(&m); break;
        case M_ACQ: r = rsm_acquire(&m, "finish-migrate"); break;
        case M_REL: r = rsm_release(&m, "finish-migrate"); break;
        case M_PROCESS: rsm_process(&m, reset); break;
        }
        if (lg[i].op != M_PROCESS && r != lg[i].ret) {
            print_log();
            fail_msg("seed %llu seq %lu op %d (%s): return %d, model %d",
                     (unsigned long long)seed, n, i, opname[lg[i].op], lg[i].ret, r);
        }
        if (strcmp(lg[i].display, m.display) || lg[i].holds != model_holds(&m)) {
            print_log();
            fail_msg("seed %llu seq %lu op %d (%s): display %s holds %#x, model %s %#x",
                     (unsigned long long)seed, n, i, opname[lg[i].op], lg[i].display,
                     (unsigned)lg[i].holds, m.display, (unsigned)model_holds(&m));
        }
        if (rsm_live(&m) != (m.nholds == 0))
            fail_msg("seed %llu seq %lu: model breaks live iff no hold", (unsigned long long)seed, n);
        for (int k = 0; k < m.nev && nall < MAXEV; k++)
            all[nall++] = m.ev[k];
        i = j - 1;
    }
    /* the implementation's events, without the devices' BLOCK_IO_ERROR */
    int k = 0;
    for (int e = 0; e < nev; e++) {
        if (evs[e].type == RS_EV_BLOCK_IO_ERROR)
            continue;
        const char *h = evs[e].hold < RS_STATE__MAX ? rs_state_name(evs[e].hold) : "";
        const char *d = rs_state_name(evs[e].state);
        bool holdful = evs[e].type == RS_EV_STOP || evs[e].type >= RS_EV_HOLD_ADDED;
        if (k >= nall || strcmp(rs_event_name(evs[e].type), all[k].type) ||
            (holdful && strcmp(h, all[k].hold)) || strcmp(d, all[k].display)) {
            print_log();
            fail_msg("seed %llu seq %lu: event %d is %s %s -> %s, model %s", (unsigned long long)seed, n,
                     k, rs_event_name(evs[e].type), h, d,
                     k < nall ? all[k].type : "(none)");
        }
        k++;
    }
    if (k != nall)
        fail_msg("seed %llu seq %lu: %d events, model %d", (unsigned long long)seed, n, k, nall);
}

/* BLOCK_IO_ERROR precedes the STOP io-error it causes. */
static void check_io_error_order(uint64_t seed, unsigned long n)
{
    int pending_io = 0;
    for (int e = 0; e < nev; e++) {
        if (evs[e].type == RS_EV_BLOCK_IO_ERROR)
            pending_io++;
        if ((evs[e].type == RS_EV_STOP || evs[e].type == RS_EV_HOLD_ADDED) && evs[e].hold == RS_IO_ERROR &&
            pending_io == 0)
            fail_msg("seed %llu seq %lu: io-error hold announced before its BLOCK_IO_ERROR",
                     (unsigned long long)seed, n);
    }
}

static void test_random_mt(void **state)
{
    (void)state;
    const char *e = getenv("RSM_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + 1;
    if (!seed)
        seed = 1;
    e = getenv("RSM_MT_SEQS");
    unsigned long nseq = e ? strtoul(e, NULL, 0) : 100000;
    printf("model check (mt): seed %llu (RSM_SEED to reproduce), %lu sequences\n",
           (unsigned long long)seed, nseq);
    uint64_t s = seed;
    unsigned long done = 0;
    for (unsigned long n = 0; n < nseq; n++) {
        rs_vm *vm = rs_vm_new();
        assert_non_null(vm);
        rs_set_log(vm, quiet, NULL);
        rs_err err;
        assert_int_equal(rs_cont(vm, &err), 0);
        nlg = 0;
        nev = 0;
        assert_int_equal(rs_event_sink_add(vm, sink, NULL), 0);
        rs_set_request_trace(vm, tracer, NULL);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, NPOSTERS + 1);
        pthread_t th[NPOSTERS];
        poster ps[NPOSTERS];
        for (int i = 0; i < NPOSTERS; i++) {
            ps[i].vm = vm;
            ps[i].seed = rng_next(&s) | 1;
            ps[i].go = &go;
            assert_int_equal(pthread_create(&th[i], NULL, post_main, &ps[i]), 0);
        }
        pthread_barrier_wait(&go);
        for (int i = 0; i < NMAIN; i++) {
            int op = (int)(rng_next(&s) % (M_N + 1));
            if (op >= M_PROCESS) {
                if (readable(vm, 0))
                    main_op(vm, M_PROCESS);
            } else {
                main_op(vm, op);
            }
        }
        for (int i = 0; i < NPOSTERS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&go);
        /* drain: everything posted is taken (release finish-migrate first so
         * that nothing stays behind it) */
        main_op(vm, M_REL);
        for (int guard = 0; readable(vm, 0) && guard < 16; guard++)
            main_op(vm, M_PROCESS);
        assert_false(readable(vm, 0));
        assert_int_equal(rs_invalid_transitions(vm), 0);
        check_io_error_order(seed, n);
        /* every displayed change (the library's history) is an edge of the
         * model's own table */
        rs_transition_rec hist[RS_HISTORY_LEN];
        size_t nh = rs_history(vm, hist, RS_HISTORY_LEN);
        if (nh > RS_HISTORY_LEN)
            nh = RS_HISTORY_LEN;
        for (size_t i = 0; i < nh; i++)
            if (!rsm_allowed(rs_state_name(hist[i].from), rs_state_name(hist[i].to)))
                fail_msg("seed %llu seq %lu: illegal displayed edge %s -> %s", (unsigned long long)seed, n,
                         rs_state_name(hist[i].from), rs_state_name(hist[i].to));
        replay(seed, n);
        rs_vm_free(vm);
        done++;
    }
    printf("model check (mt): %lu sequences agree with the model\n", done);
    assert_int_equal(done, nseq);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_random_mt) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
