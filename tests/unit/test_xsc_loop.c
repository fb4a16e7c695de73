/*
 * The xenstore layer driven by the dm's own main loop (dm/dm_loop.h), wired
 * the way docs/protocol.md §11 describes: the xsc fd registered as a watch
 * and re-registered through ops.fd_changed, one timer re-armed to
 * xsc_timeout_ms() after every xsc call, librunstate's notify fd watched.
 * Commands act, a xenstored restart is survived with the loop alone, and a
 * command afterwards acts again.  Bounded waits only (loop iterations with
 * a poll timeout, the daemon's pidfd).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dm_loop.h"
#include "runstate.h"
#include "test_xsc_fixture.h"
#include "xsc_control.h"

#define DOMID 11

typedef struct lctx {
    xsim sim;
    bool skip;
    char skip_why[300];
    struct xs_handle *ts;
    rs_vm *vm;
    xsc *x;
    xsc_paths p;
    dm_loop *loop;
    dm_watch *w_xsc, *w_rs;
    dm_timer *t_xsc;
    int fatal;
    int fd_changes;
} lctx;

static void rearm(lctx *t)
{
    dm_timer_arm(t->t_xsc, (int64_t)xsc_timeout_ms(t->x) * 1000000, 0);
}

static void on_xsc(void *opaque, int fd)
{
    lctx *t = opaque;
    (void)fd;
    int rc = xsc_handle_readable(t->x);
    if (rc < 0)
        t->fatal = rc;
    rearm(t);     /* a loss noticed here schedules a reconnect now */
}

static void on_timer(void *opaque)
{
    lctx *t = opaque;
    int rc = xsc_handle_timeout(t->x);
    if (rc < 0)
        t->fatal = rc;
    rearm(t);
}

static void on_fd_changed(void *opaque, int fd)
{
    lctx *t = opaque;
    t->fd_changes++;
    if (t->w_xsc)
        dm_watch_remove(t->w_xsc);
    t->w_xsc = fd >= 0 ? dm_watch_add(t->loop, fd, on_xsc, NULL, t) : NULL;
    if (fd >= 0)
        assert_non_null(t->w_xsc);
}

static void on_requests(void *opaque, int fd)
{
    lctx *t = opaque;
    int st;
    (void)fd;
    rs_process_requests(t->vm, &st);
}

typedef bool (*pred_fn)(lctx *t, const void *arg);

static bool run_until(lctx *t, pred_fn pred, const void *arg)
{
    int64_t deadline = mono_ms() + XSIM_WAIT_MS;
    while (!pred(t, arg) && !t->fatal && mono_ms() < deadline)
        dm_loop_iterate(t->loop, 100);
    return pred(t, arg);
}

static bool p_node_is(lctx *t, const void *arg)
{
    const char *const *pv = arg;
    return t->ts && ts_equals(t->ts, pv[0], pv[1]);
}

static bool p_connected_gen(lctx *t, const void *arg)
{
    return xsc_is_connected(t->x) && xsc_generation(t->x) >= *(const unsigned *)arg;
}

static int setup(void **state)
{
    lctx *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    *state = t;
    int rc = xsim_setup(&t->sim, true, t->skip_why, sizeof(t->skip_why));
    if (rc != 0) {
        t->skip = true;
        return rc < 0 ? -1 : 0;
    }
    t->ts = ts_open();
    assert_non_null(t->ts);
    assert_int_equal(xsc_paths_init(&t->p, 0, DOMID), 0);
    assert_true(xs_mkdir(t->ts, XBT_NULL, t->p.dir));
    t->loop = dm_loop_new();
    assert_non_null(t->loop);
    t->vm = rs_vm_new();
    assert_non_null(t->vm);
    rs_set_log(t->vm, quiet_log, NULL);
    xsc_config cfg = {
        .domid = DOMID,
        .vm = t->vm,
        .save_path = "/nonexistent-dir/qemu-save.11",
        .ops = { .fd_changed = on_fd_changed, .opaque = t },
        .log = quiet_log,
        .conn = { .backoff_min_ms = 1, .backoff_max_ms = 8 },
        .sweep_ms = 20,          /* the loss is found by the sweep */
    };
    char why[512];
    if (xsc_new(&cfg, &t->x, why, sizeof(why)) < 0) {
        fprintf(stderr, "xsc_new: %s\n", why);
        return -1;
    }
    t->w_xsc = dm_watch_add(t->loop, xsc_fd(t->x), on_xsc, NULL, t);
    t->w_rs = dm_watch_add(t->loop, rs_notify_fd(t->vm), on_requests, NULL, t);
    t->t_xsc = dm_timer_new(t->loop, on_timer, t);
    assert_non_null(t->w_xsc);
    assert_non_null(t->w_rs);
    assert_non_null(t->t_xsc);
    rearm(t);
    rs_err e;
    assert_int_equal(rs_cont(t->vm, &e), 0);
    assert_int_equal(xsc_ready(t->x), 0);
    return 0;
}

static int teardown(void **state)
{
    lctx *t = *state;
    if (t->t_xsc)
        dm_timer_free(t->t_xsc);
    xsc_free(t->x);
    if (t->loop)
        dm_loop_free(t->loop);
    if (t->ts)
        xs_close(t->ts);
    if (t->vm)
        rs_vm_free(t->vm);
    xsim_teardown(&t->sim);
    free(t);
    return 0;
}

#define SKIP_IF_NO_DAEMON(t)                                         \
    do {                                                             \
        if ((t)->skip) {                                             \
            fprintf(stderr, "SKIP: %s\n", (t)->skip_why);             \
            skip();                                                  \
        }                                                            \
    } while (0)

static void test_loop_commands_and_restart(void **state)
{
    lctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    const char *rs_paused[2] = { t->p.runstate, "paused holds=paused" };
    const char *rs_running[2] = { t->p.runstate, "running holds=" };

    assert_true(ts_write(t->ts, t->p.command, "stop"));
    assert_true(run_until(t, p_node_is, rs_paused));
    assert_true(ts_write(t->ts, t->p.command, "reset"));   /* a request via notify fd */
    const char *rs_prelaunch[2] = { t->p.runstate, "prelaunch holds=prelaunch" };
    assert_true(run_until(t, p_node_is, rs_prelaunch));
    assert_true(ts_write(t->ts, t->p.command, "continue"));
    assert_true(run_until(t, p_node_is, rs_running));

    /* xenstored restarts; only the loop runs the layer */
    xs_close(t->ts);
    t->ts = NULL;
    assert_int_equal(xsim_stop(&t->sim), 0);
    assert_int_equal(xsim_start(&t->sim, true), 0);
    t->ts = ts_open();
    assert_non_null(t->ts);
    unsigned gen2 = 2;
    assert_true(run_until(t, p_connected_gen, &gen2));
    assert_int_equal(t->fatal, 0);
    assert_int_equal(t->fd_changes, 2);          /* dropped, then the new fd */

    assert_true(ts_write(t->ts, t->p.command, "stop"));
    assert_true(run_until(t, p_node_is, rs_paused));
    xsc_stats s;
    xsc_get_stats(t->x, &s);
    assert_int_equal(s.commands_done, 4);
    assert_int_equal(s.commands_refused, 0);
    assert_int_equal(s.reconnects, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loop_commands_and_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
