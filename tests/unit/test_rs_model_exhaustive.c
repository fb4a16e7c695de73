/*
 * Model check (a): every sequence of up to RSM_DEPTH (5) operations from
 * prelaunch and from running, implementation vs the independent model of
 * tests/lib/rs_model.c.  No seed.  Each sequence is replayed from a fresh
 * rs_vm (no pruning: exhaustive by construction).  After every operation:
 * return code, display, holds in acquisition order, W, the exact events
 * (type, hold), live iff no hold, every display change an allowed edge in
 * the model's own table, rs_invalid_transitions() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../lib/rs_model.h"
#include "runstate.h"

typedef struct op op;
static int model_apply(rsm *m, const op *o);

struct op { const char *name; int kind; const char *a, *b; };
enum { O_STOP, O_CONT, O_RETRY, O_ACQ, O_REL, O_RESET, O_BATCH, O_SUSPEND, O_WAKEUP, O_WDOG, O_PANIC };
static const op ops[] = {
    { "stop paused", O_STOP, "paused", 0 }, { "stop io-error", O_STOP, "io-error", 0 },
    { "stop watchdog", O_STOP, "watchdog", 0 }, { "stop guest-panicked", O_STOP, "guest-panicked", 0 },
    { "stop debug", O_STOP, "debug", 0 }, { "stop shutdown", O_STOP, "shutdown", 0 },
    { "stop internal-error", O_STOP, "internal-error", 0 }, { "stop postmigrate", O_STOP, "postmigrate", 0 },
    { "cont", O_CONT, 0, 0 }, { "retry", O_RETRY, 0, 0 },
    { "acquire finish-migrate", O_ACQ, "finish-migrate", 0 }, { "release finish-migrate", O_REL, "finish-migrate", 0 },
    { "acquire inmigrate", O_ACQ, "inmigrate", 0 }, { "release inmigrate", O_REL, "inmigrate", 0 },
    { "acquire save-vm", O_ACQ, "save-vm", 0 }, { "release save-vm", O_REL, "save-vm", 0 },
    { "reset", O_RESET, 0, 0 },
    { "batch paused+io-error", O_BATCH, "paused", "io-error" },
    { "acquire restore-vm", O_ACQ, "restore-vm", 0 }, { "release restore-vm", O_REL, "restore-vm", 0 },
    { "suspend", O_SUSPEND, 0, 0 }, { "wakeup", O_WAKEUP, 0, 0 },
    { "watchdog (pause)", O_WDOG, "pause", 0 }, { "watchdog (reset)", O_WDOG, "reset", 0 },
    { "guest panic (pause)", O_PANIC, "pause", 0 },
};
#define NOPS ((int)(sizeof(ops) / sizeof(ops[0])))
#define MAXEV 64

static rs_event got[MAXEV];
static int ngot;
/* Millions of runs: the library's log lines (e.g. "Guest crashed") would
 * drown the test log; the checks above are what matters. */
static void quiet(void *o, rs_log_level l, const char *msg) { (void)o; (void)l; (void)msg; }

static void sink(void *o, const rs_event *e) { (void)o; if (ngot < MAXEV) got[ngot++] = *e; }

static rs_state st(const char *n) { rs_state s; if (rs_state_from_name(n, &s)) fail_msg("bad name %s", n); return s; }

static int seq[8], depth;
static char trail[1024];
static void describe(int upto)
{
    trail[0] = 0;
    for (int i = 0; i <= upto; i++) {
        strcat(trail, ops[seq[i]].name);
        if (i < upto) strcat(trail, " ; ");
    }
}

static void dump(const rsm *m)
{
    fprintf(stderr, "  implementation events:");
    for (int i = 0; i < ngot; i++)
        fprintf(stderr, " [%s %s -> %s]", rs_event_name(got[i].type),
                got[i].hold < RS_STATE__MAX ? rs_state_name(got[i].hold) : "",
                rs_state_name(got[i].state));
    fprintf(stderr, "\n  model events:         ");
    for (int i = 0; i < m->nev; i++)
        fprintf(stderr, " [%s %s -> %s]", m->ev[i].type, m->ev[i].hold, m->ev[i].display);
    fprintf(stderr, "\n  model holds:");
    for (int i = 0; i < m->nholds; i++)
        fprintf(stderr, " %s", m->holds[i]);
    fprintf(stderr, "\n");
}

#define MISMATCH(...) do { describe(step); dump(&m); char m_[512]; snprintf(m_, sizeof m_, __VA_ARGS__); \
    fail_msg("from %s, sequence [%s]: %s", start_running ? "running" : "prelaunch", trail, m_); } while (0)

static void run_one(bool start_running, int n)
{
    rs_vm *vm = rs_vm_new();
    assert_non_null(vm);
    rs_set_log(vm, quiet, NULL);
    rsm m;
    rsm_init(&m);
    rs_err err;
    if (start_running) {
        assert_int_equal(rs_cont(vm, &err), 0);
        assert_int_equal(rsm_cont(&m), 0);
    }
    assert_int_equal(rs_event_sink_add(vm, sink, NULL), 0);
    size_t hist_seen = rs_history(vm, NULL, 0);
    for (int step = 0; step < n; step++) {
        const op *o = &ops[seq[step]];
        char before[RSM_NAME];
        snprintf(before, sizeof before, "%s", m.display);
        ngot = 0;
        m.nev = 0;
        int ri = 0, rm = 0, ex;
        switch (o->kind) {
        case O_STOP: ri = rs_vm_stop(vm, st(o->a), &err); rm = rsm_stop(&m, o->a); break;
        case O_CONT: ri = rs_cont(vm, &err); rm = rsm_cont(&m); break;
        case O_RETRY: ri = rs_retry(vm, &err); rm = rsm_retry(&m); break;
        case O_ACQ: ri = rs_hold_acquire(vm, st(o->a), &err); rm = rsm_acquire(&m, o->a); break;
        case O_REL: ri = rs_hold_release(vm, st(o->a), &err); rm = rsm_release(&m, o->a); break;
        case O_RESET:
            rs_request_reset(vm, RS_CAUSE_GUEST_RESET);
            ri = rs_process_requests(vm, &ex);
            rsm_process(&m, true);
            break;
        case O_BATCH:
            rs_request_vmstop(vm, st(o->a));
            rs_request_vmstop(vm, st(o->b));
            ri = rs_process_requests(vm, &ex);
            rsm_post_stop(&m, o->a);
            rsm_post_stop(&m, o->b);
            rsm_process(&m, false);
            break;
        case O_SUSPEND:
            rs_request_suspend(vm);
            ri = rs_process_requests(vm, &ex);
            rsm_request_suspend(&m);
            rsm_process(&m, false);
            break;
        case O_WAKEUP:
            /* the poster's answer: compared as accepted / refused */
            ri = rs_request_wakeup(vm, RS_WAKEUP_OTHER, &err) < 0;
            rm = rsm_request_wakeup(&m) < 0;
            if (ri != rm)
                MISMATCH("wakeup request %s, model %s", ri ? "refused" : "accepted", rm ? "refused" : "accepted");
            ri = rs_process_requests(vm, &ex);
            rsm_process(&m, false);
            rm = 0;
            break;
        case O_WDOG: {
            rs_action_update u;
            memset(&u, 0, sizeof u);
            u.has_watchdog = true;
            assert_int_equal(rs_watchdog_action_from_name(o->a, &u.value.watchdog), 0);
            assert_int_equal(rs_set_actions(vm, &u), 0);
            ri = rs_watchdog_expired(vm);
            if (ri == 0)
                ri = rs_process_requests(vm, &ex);
            rm = model_apply(&m, o);
            break;
        }
        case O_PANIC: {
            rs_action_update u;
            memset(&u, 0, sizeof u);
            u.has_panic = true;
            assert_int_equal(rs_panic_action_from_name(o->a, &u.value.panic), 0);
            assert_int_equal(rs_set_actions(vm, &u), 0);
            ri = rs_guest_panicked(vm);
            rm = model_apply(&m, o);
            break;
        }
        }
        if (ri != rm)
            MISMATCH("return %d, model %d", ri, rm);
        if (strcmp(rs_state_name(rs_get_state(vm)), m.display))
            MISMATCH("display %s, model %s", rs_state_name(rs_get_state(vm)), m.display);
        rs_hold_info hi[RS_STATE__MAX];
        size_t nh = rs_list_holds(vm, hi, RS_STATE__MAX);
        if ((int)nh != m.nholds)
            MISMATCH("%zu holds, model %d", nh, m.nholds);
        for (size_t i = 0; i < nh; i++)
            if (strcmp(rs_state_name(hi[i].reason), m.holds[i]))
                MISMATCH("hold %zu is %s, model %s", i, rs_state_name(hi[i].reason), m.holds[i]);
        if (rs_was_suspended(vm) != m.W)
            MISMATCH("W %d, model %d", rs_was_suspended(vm), m.W);
        if (ngot != m.nev)
            MISMATCH("%d events, model %d (first: %s)", ngot, m.nev,
                     ngot ? rs_event_name(got[0].type) : (m.nev ? m.ev[0].type : "-"));
        for (int i = 0; i < ngot; i++) {
            const char *h = got[i].hold < RS_STATE__MAX ? rs_state_name(got[i].hold) : "";
            if (strcmp(rs_event_name(got[i].type), m.ev[i].type) ||
                ((got[i].type == RS_EV_STOP || got[i].type >= RS_EV_HOLD_ADDED) && strcmp(h, m.ev[i].hold)) ||
                strcmp(rs_state_name(got[i].state), m.ev[i].display))
                MISMATCH("event %d: %s %s -> %s, model %s %s -> %s", i, rs_event_name(got[i].type), h,
                         rs_state_name(got[i].state), m.ev[i].type, m.ev[i].hold, m.ev[i].display);
        }
        if (rsm_live(&m) != (m.nholds == 0))
            MISMATCH("live iff no hold broken");
        (void)before;
        /* every displayed change of this step (the library's history) is an
         * edge of the model's own table */
        rs_transition_rec hist[RS_HISTORY_LEN];
        size_t nhist = rs_history(vm, hist, RS_HISTORY_LEN);
        for (size_t i = hist_seen; i < nhist; i++)
            if (!rsm_allowed(rs_state_name(hist[i].from), rs_state_name(hist[i].to)))
                MISMATCH("illegal displayed edge %s -> %s", rs_state_name(hist[i].from),
                         rs_state_name(hist[i].to));
        hist_seen = nhist;
        if (rs_invalid_transitions(vm))
            MISMATCH("rs_invalid_transitions %llu", (unsigned long long)rs_invalid_transitions(vm));
    }
    rs_vm_free(vm);
}

/* Pruning.  The model's state after a prefix (display, holds in order, W, A,
 * pending requests) is its signature; seen[] remembers (signature, depth
 * left).  A prefix reaching a signature already explored with the same
 * number of operations left has the same futures in the model, and the
 * implementation matched the model on every step of both prefixes, so its
 * extensions are counted, not run again (the prefix itself always runs, so
 * every operation from every reachable state is checked): every distinct behaviour within 5
 * operations is still enumerated.  RSM_NOPRUNE=1 runs every sequence. */
static int model_apply(rsm *m, const op *o)
{
    int r = 0;
    switch (o->kind) {
    case O_STOP: (void)rsm_stop(m, o->a); break;
    case O_CONT: (void)rsm_cont(m); break;
    case O_RETRY: (void)rsm_retry(m); break;
    case O_ACQ: (void)rsm_acquire(m, o->a); break;
    case O_REL: (void)rsm_release(m, o->a); break;
    case O_RESET: rsm_process(m, true); break;
    case O_BATCH: rsm_post_stop(m, o->a); rsm_post_stop(m, o->b); rsm_process(m, false); break;
    case O_SUSPEND: rsm_request_suspend(m); rsm_process(m, false); break;
    case O_WAKEUP: (void)rsm_request_wakeup(m); rsm_process(m, false); break;
    case O_WDOG:    /* §12: WATCHDOG first, then the action as a request */
        rsm_emit(m, "WATCHDOG", NULL);
        if (!strcmp(o->a, "pause"))
            rsm_post_stop(m, "watchdog");
        rsm_process(m, !strcmp(o->a, "reset"));
        break;
    case O_PANIC:   /* GUEST_PANICKED first, then (pause) a stop */
        rsm_emit(m, "GUEST_PANICKED", NULL);
        r = rsm_stop(m, "guest-panicked");
        break;
    }
    return r;
}

static uint64_t signature(const rsm *m, int left, bool start_running)
{
    uint64_t h = 1469598103934665603ull;
#define MIX(p, n) do { const unsigned char *q_ = (const unsigned char *)(p); \
        for (size_t i_ = 0; i_ < (n); i_++) { h ^= q_[i_]; h *= 1099511628211ull; } } while (0)
    MIX(m->display, strlen(m->display));
    for (int i = 0; i < m->nholds; i++) { MIX("|", 1); MIX(m->holds[i], strlen(m->holds[i])); }
    for (int i = 0; i < m->npending; i++) { MIX("#", 1); MIX(m->pending[i], strlen(m->pending[i])); }
    bool f[8] = { m->W, m->A, m->reset_pending, m->debug_pending, m->powerdown_pending,
                  m->suspend_pending, m->wakeup_pending, start_running };
    MIX(f, sizeof f);
    MIX(&left, sizeof left);
    return h | 1;
#undef MIX
}

#define SEEN_SIZE (1u << 22)
static uint64_t *seen;
static bool prune = true;
static bool seen_insert(uint64_t k)
{
    for (uint32_t i = (uint32_t)k & (SEEN_SIZE - 1);; i = (i + 1) & (SEEN_SIZE - 1)) {
        if (seen[i] == k)
            return false;
        if (!seen[i]) {
            seen[i] = k;
            return true;
        }
    }
}

static unsigned long count, ran;
static unsigned long subtree(int left)   /* sequences in a subtree, its root included */
{
    unsigned long n = 0, p = 1;
    for (int k = 0; k <= left; k++) { n += p; p *= NOPS; }
    return n;
}

static void walk(bool start_running, int d, const rsm *m)
{
    if (d > 0) {
        /* the sequence itself always runs: its last operation is checked */
        run_one(start_running, d);
        count++;
        ran++;
        if (prune && !seen_insert(signature(m, depth - d, start_running))) {
            count += subtree(depth - d) - 1;
            return;
        }
    }
    if (d == depth)
        return;
    for (int i = 0; i < NOPS; i++) {
        seq[d] = i;
        rsm next = *m;
        model_apply(&next, &ops[i]);
        next.nev = 0;
        walk(start_running, d + 1, &next);
    }
}

static void test_exhaustive(void **state)
{
    (void)state;
    assert_int_equal(rsm_table_size(), 85);
    const char *e = getenv("RSM_DEPTH");
    depth = e ? atoi(e) : 5;
    if (depth < 1 || depth > 5) depth = 5;
    prune = !getenv("RSM_NOPRUNE");
    seen = calloc(SEEN_SIZE, sizeof(*seen));
    assert_non_null(seen);
    count = ran = 0;
    rsm m0;
    rsm_init(&m0);
    walk(false, 0, &m0);
    (void)rsm_cont(&m0);
    m0.nev = 0;
    walk(true, 0, &m0);
    free(seen);
    unsigned long expect = 0, p = 1;
    for (int d = 1; d <= depth; d++) { p *= NOPS; expect += p; }
    expect *= 2;
    printf("model check: %lu sequences of up to %d operations (%d-op alphabet), "
           "%lu run, the rest in subtrees of a state already explored\n", count, depth, NOPS, ran);
    assert_int_equal(count, expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_exhaustive) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
