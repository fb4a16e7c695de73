/*
 * xenstored restarts under a running dm: the loss is noticed (probe or the
 * periodic sweep), the connection comes back with bounded back-off, the
 * watches are re-armed (a command written afterwards is acted on), `state`,
 * `runstate` and `error` are republished, a command handled before the
 * restart is not run again, one left pending across the restart is run
 * exactly once, a directory that became guest-writable is fatal, and giving
 * up is reported.  Waits are bounded and wait on events (fds, the layer's
 * own timer, the daemon's pidfd), never on sleeps.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runstate.h"
#include "test_xsc_fixture.h"
#include "xsc_control.h"

#define DOMID 7

typedef struct rctx {
    xsim sim;
    bool skip;
    char skip_why[300];
    struct xs_handle *ts;
    rs_vm *vm;
    xsc *x;
    xsc_paths p;
    int last_rc;          /* last non-zero result of the pump */
    int fd_changes;       /* ops.fd_changed calls */
    int last_fd;
} rctx;

static void on_fd_changed(void *opaque, int fd)
{
    rctx *t = opaque;
    t->fd_changes++;
    t->last_fd = fd;
}

typedef bool (*pred_fn)(rctx *t, const void *arg);

/* The dm's loop, bounded; stops early on a fatal result (kept in last_rc). */
static bool pump_until(rctx *t, pred_fn pred, const void *arg)
{
    int64_t deadline = mono_ms() + XSIM_WAIT_MS;
    t->last_rc = 0;
    for (;;) {
        if (pred(t, arg))
            return true;
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return pred(t, arg);
        struct pollfd pfd = { .fd = xsc_fd(t->x), .events = POLLIN };
        int tmo = xsc_timeout_ms(t->x);
        if (tmo < 0 || tmo > left)
            tmo = (int)left;
        int n = poll(&pfd, 1, tmo);   /* fd -1 while down: only the timer */
        int rc = 0;
        if (n > 0 && (pfd.revents & POLLIN))
            rc = xsc_handle_readable(t->x);
        if (rc == 0 && xsc_timeout_ms(t->x) == 0)
            rc = xsc_handle_timeout(t->x);
        if (rc < 0) {
            t->last_rc = rc;
            return pred(t, arg);
        }
    }
}

static xsc_stats stats(rctx *t)
{
    xsc_stats s;
    xsc_get_stats(t->x, &s);
    return s;
}

static bool p_connected(rctx *t, const void *arg)
{
    (void)arg;
    return xsc_is_connected(t->x);
}

static bool p_disconnected(rctx *t, const void *arg)
{
    (void)arg;
    return !xsc_is_connected(t->x);
}

static bool p_events_at_least(rctx *t, const void *arg)
{
    return stats(t).events >= *(const uint64_t *)arg;
}

static bool p_reads_at_least(rctx *t, const void *arg)
{
    return stats(t).commands_read >= *(const uint64_t *)arg;
}

static bool p_fatal(rctx *t, const void *arg)
{
    (void)arg;
    return t->last_rc < 0;
}

static void send_str(rctx *t, const char *cmd)
{
    uint64_t want = stats(t).commands_read + 1;
    assert_true(ts_write(t->ts, t->p.command, cmd));
    assert_true(pump_until(t, p_reads_at_least, &want));
}

static void expect_node(rctx *t, const char *path, const char *want)
{
    char *v = ts_read(t->ts, path);
    if (!v || strcmp(v, want) != 0)
        fail_msg("%s is \"%s\", expected \"%s\"", path, v ? v : "(absent)", want);
    free(v);
}

static int setup_common(void **state, bool persist, unsigned sweep_ms, unsigned give_up_ms)
{
    rctx *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    *state = t;
    int rc = xsim_setup(&t->sim, persist, t->skip_why, sizeof(t->skip_why));
    if (rc != 0) {
        t->skip = true;
        return rc < 0 ? -1 : 0;
    }
    t->ts = ts_open();
    assert_non_null(t->ts);
    assert_int_equal(xsc_paths_init(&t->p, 0, DOMID), 0);
    assert_true(xs_mkdir(t->ts, XBT_NULL, t->p.dir));
    t->vm = rs_vm_new();
    assert_non_null(t->vm);
    rs_set_log(t->vm, quiet_log, NULL);
    rs_err e;
    assert_int_equal(rs_cont(t->vm, &e), 0);
    xsc_config cfg = {
        .dm_domid = 0,
        .domid = DOMID,
        .vm = t->vm,
        .save_path = "/nonexistent-dir/qemu-save.7",
        .log = quiet_log,
        .conn = { .backoff_min_ms = 1, .backoff_max_ms = 8, .give_up_ms = give_up_ms },
        .sweep_ms = sweep_ms,
        .ops = { .fd_changed = on_fd_changed, .opaque = t },
    };
    char why[512];
    if (xsc_new(&cfg, &t->x, why, sizeof(why)) < 0) {
        fprintf(stderr, "xsc_new: %s\n", why);
        return -1;
    }
    assert_int_equal(xsc_ready(t->x), 0);
    return 0;
}

static int setup_persist(void **state) { return setup_common(state, true, 600000, 0); }
static int setup_volatile(void **state) { return setup_common(state, false, 600000, 0); }
static int setup_sweep(void **state) { return setup_common(state, true, 5, 0); }
static int setup_give_up(void **state) { return setup_common(state, true, 600000, 1); }

static int teardown(void **state)
{
    rctx *t = *state;
    if (!t)
        return 0;
    xsc_free(t->x);
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

/* Stop the daemon; the toolstack's handle dies with it. */
static void daemon_down(rctx *t)
{
    xs_close(t->ts);
    t->ts = NULL;
    assert_int_equal(xsim_stop(&t->sim), 0);
}

static void daemon_up(rctx *t, bool persist)
{
    assert_int_equal(xsim_start(&t->sim, persist), 0);
    t->ts = ts_open();
    assert_non_null(t->ts);
}

/* Notice the loss by probing (a dm would notice at its next request or
 * sweep), check the disconnected interface, fail one attempt. */
static void notice_loss(rctx *t)
{
    assert_int_equal(xsc_probe(t->x), -ENOTCONN);
    assert_false(xsc_is_connected(t->x));
    assert_int_equal(xsc_fd(t->x), -1);
    assert_null(xsc_xs(t->x));
    assert_true(xsc_timeout_ms(t->x) >= 0);
    /* The first attempt is immediate and fails: the daemon is down. */
    assert_int_equal(xsc_handle_timeout(t->x), 0);
    assert_false(xsc_is_connected(t->x));
}

static void test_restart_keeps_tree(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    send_str(t, "stop");
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");
    assert_int_equal(xsc_generation(t->x), 1);
    xsc_stats before = stats(t);

    assert_int_equal(t->fd_changes, 0);
    daemon_down(t);
    notice_loss(t);
    /* A registration-style loop is told to drop the fd... */
    assert_int_equal(t->fd_changes, 1);
    assert_int_equal(t->last_fd, -1);
    /* Nothing is acted on while down; the VM keeps running. */
    assert_int_equal(rs_get_state(t->vm), RS_RUNNING);

    daemon_up(t, true);
    assert_true(pump_until(t, p_connected, NULL));
    /* ...and to register the new one. */
    assert_int_equal(t->fd_changes, 2);
    assert_int_equal(t->last_fd, xsc_fd(t->x));
    assert_true(t->last_fd >= 0);
    assert_int_equal(xsc_generation(t->x), 2);
    assert_int_equal(stats(t).reconnects, 1);
    /* Both re-armed watches fire once; re-reading finds no command. */
    uint64_t want = stats(t).events + 2;
    assert_true(pump_until(t, p_events_at_least, &want));
    xsc_stats after = stats(t);
    assert_int_equal(after.commands_read, before.commands_read);
    assert_int_equal(after.commands_done, before.commands_done);
    assert_int_equal(after.commands_replayed, 0);
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "running holds=");

    /* The watch works on the new connection. */
    send_str(t, "stop");
    expect_node(t, t->p.runstate, "paused holds=paused");
    assert_int_equal(stats(t).commands_done, before.commands_done + 1);
}

static void test_restart_empty_tree_republishes(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    send_str(t, "sav");              /* leaves an `error` to republish */
    send_str(t, "stop");
    expect_node(t, t->p.runstate, "paused holds=paused");
    char *err_before = ts_read(t->ts, t->p.error);
    assert_non_null(err_before);

    daemon_down(t);
    notice_loss(t);
    daemon_up(t, false);
    assert_null(ts_read(t->ts, t->p.state));       /* the new daemon is empty */
    assert_true(pump_until(t, p_connected, NULL));

    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "paused holds=paused");
    expect_node(t, t->p.error, err_before);
    free(err_before);
    /* the directory was recreated private to the dm's domain */
    unsigned n = 0;
    struct xs_permissions *perms = xs_get_permissions(t->ts, XBT_NULL, t->p.dir, &n);
    assert_non_null(perms);
    assert_int_equal(perms[0].id, 0);
    assert_int_equal(perms[0].perms & XS_PERM_WRITE, 0);
    free(perms);
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");
}

static void test_pending_command_runs_once(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    xsc_stats before = stats(t);
    /* Written while the dm is busy; the daemon restarts before the dm's
     * loop gets to it.  Whatever was queued on the dead connection, the
     * command is acted on exactly once. */
    assert_true(ts_write(t->ts, t->p.command, "stop"));
    daemon_down(t);
    assert_int_equal(xsc_handle_readable(t->x), 0);   /* queued event, if any */
    xsc_probe(t->x);
    daemon_up(t, true);
    assert_true(pump_until(t, p_connected, NULL));
    /* pump_until returns right after the reconnect: the two re-armed
     * watches' first events are still to be taken. */
    uint64_t ev = stats(t).events + 2;
    assert_true(pump_until(t, p_events_at_least, &ev));
    xsc_stats after = stats(t);
    assert_int_equal(after.commands_read, before.commands_read + 1);
    assert_int_equal(after.commands_done, before.commands_done + 1);
    expect_node(t, t->p.runstate, "paused holds=paused");
    char *c = ts_read(t->ts, t->p.command);
    assert_null(c);
}

static void test_sweep_notices_loss(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    daemon_down(t);
    /* No probe by the test: the layer's periodic sweep finds it. */
    assert_true(pump_until(t, p_disconnected, NULL));
    daemon_up(t, true);
    assert_true(pump_until(t, p_connected, NULL));
    send_str(t, "stop");
    expect_node(t, t->p.runstate, "paused holds=paused");
}

static void test_unsafe_tree_after_restart_is_fatal(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    daemon_down(t);
    notice_loss(t);
    daemon_up(t, false);
    /* The new daemon's tree has a guest-writable control directory. */
    struct xs_permissions bad[2] = { { 0, XS_PERM_NONE }, { DOMID, XS_PERM_READ | XS_PERM_WRITE } };
    assert_true(xs_mkdir(t->ts, XBT_NULL, t->p.dir));
    assert_true(xs_set_permissions(t->ts, XBT_NULL, t->p.dir, bad, 2));
    assert_true(pump_until(t, p_fatal, NULL));
    assert_int_equal(t->last_rc, -EACCES);
    /* and it stays fatal */
    assert_int_equal(xsc_handle_timeout(t->x), -EACCES);
}

static void test_give_up(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    daemon_down(t);
    assert_int_equal(xsc_probe(t->x), -ENOTCONN);
    assert_true(pump_until(t, p_fatal, NULL));
    assert_int_equal(t->last_rc, -ENOTCONN);
}

static bool p_sweeps_at_least(rctx *t, const void *arg)
{
    return stats(t).sweeps >= *(const uint64_t *)arg;
}

static bool p_ld_reads_at_least(rctx *t, const void *arg)
{
    return stats(t).logdirty_read >= *(const uint64_t *)arg;
}

static void test_sweep_does_not_repeat(void **state)
{
    rctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    /* A bad logdirty value is reported once, not at every sweep. */
    uint64_t one = 1;
    assert_true(ts_write(t->ts, t->p.logdirty_cmd, "bogus"));
    assert_true(pump_until(t, p_ld_reads_at_least, &one));
    xsc_stats before = stats(t);
    uint64_t want = before.sweeps + 5;
    assert_true(pump_until(t, p_sweeps_at_least, &want));
    xsc_stats after = stats(t);
    assert_int_equal(after.logdirty_read, before.logdirty_read);
    assert_int_equal(after.errors_written, before.errors_written);
    /* a new value is still taken */
    uint64_t two = before.logdirty_read + 1;
    assert_true(ts_write(t->ts, t->p.logdirty_cmd, "enable"));
    assert_true(pump_until(t, p_ld_reads_at_least, &two));
    expect_node(t, t->p.logdirty_ret, "enable");
    want = stats(t).sweeps + 5;
    uint64_t done_before = stats(t).logdirty_done;
    assert_true(pump_until(t, p_sweeps_at_least, &want));
    assert_int_equal(stats(t).logdirty_done, done_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restart_keeps_tree, setup_persist, teardown),
        cmocka_unit_test_setup_teardown(test_restart_empty_tree_republishes, setup_volatile,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pending_command_runs_once, setup_persist, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_notices_loss, setup_sweep, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_does_not_repeat, setup_sweep, teardown),
        cmocka_unit_test_setup_teardown(test_unsafe_tree_after_restart_is_fatal, setup_volatile,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_give_up, setup_give_up, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
