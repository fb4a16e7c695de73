/*
 * The traditional control dialect against a real xenstore daemon (xensim):
 * every command and its exact-match rejections, hostile values and a burst
 * of writes, the save acknowledgement, logdirty, pci-ins/pci-rem, the
 * permission refusal at start-up, and a guest's write to `command`.
 *
 * The test is both sides: a toolstack connection writes nodes, the xsc
 * object under test is pumped like the dm's poll loop would.  Every wait is
 * bounded and waits on an event (the xsc fd, the librunstate notify fd, the
 * layer's own timer), never on a sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runstate.h"
#include "test_xsc_fixture.h"
#include "xsc_control.h"
#include "xsc_perms.h"
#include "xsc_text.h"

#define DOMID 5

typedef struct tctx {
    xsim sim;
    bool skip;
    char skip_why[300];
    struct xs_handle *ts;
    rs_vm *vm;
    xsc *x;
    xsc_paths p;
    char savedir[300];
    char save_path[400];
    /* save callback */
    int save_rc;
    int saves;
    bool acked_early;          /* `state` was paused while the file was being written */
    bool final_during_write;   /* the final file existed while writing */
    /* logdirty callback */
    int ld_calls;
    bool ld_on;
    int ld_rc;
    /* hooks */
    int resets, powerdowns;
} tctx;

/* ------------------------------------------------------------ callbacks */

static int cb_save(void *opaque, int fd, char *why, size_t why_len)
{
    tctx *t = opaque;
    struct stat st;
    t->saves++;
    t->acked_early = ts_equals(t->ts, t->p.state, "paused");
    t->final_during_write = stat(t->save_path, &st) == 0;
    if (t->save_rc < 0) {
        snprintf(why, why_len, "simulated failure writing device state");
        if (write(fd, "partial", 7) != 7)
            return -EIO;
        return t->save_rc;
    }
    static const char data[] = "RSDM device state v1";
    return write(fd, data, sizeof(data) - 1) == (ssize_t)(sizeof(data) - 1) ? 0 : -EIO;
}

static int cb_logdirty(void *opaque, bool enable, char *why, size_t why_len)
{
    tctx *t = opaque;
    t->ld_calls++;
    if (t->ld_rc < 0) {
        snprintf(why, why_len, "simulated log-dirty failure");
        return t->ld_rc;
    }
    t->ld_on = enable;
    return 0;
}

static void hook_reset(void *opaque, rs_cause cause)
{
    (void)cause;
    ((tctx *)opaque)->resets++;
}

static void hook_powerdown(void *opaque)
{
    ((tctx *)opaque)->powerdowns++;
}

/* ---------------------------------------------------------------- pump */

typedef bool (*pred_fn)(tctx *t, const void *arg);

/* Run the dm side, as its poll loop would, until pred holds (bounded). */
static bool pump_until(tctx *t, pred_fn pred, const void *arg)
{
    int64_t deadline = mono_ms() + XSIM_WAIT_MS;
    for (;;) {
        if (pred(t, arg))
            return true;
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return pred(t, arg);
        struct pollfd pfd[2] = {
            { .fd = xsc_fd(t->x), .events = POLLIN },
            { .fd = rs_notify_fd(t->vm), .events = POLLIN },
        };
        int tmo = xsc_timeout_ms(t->x);
        if (tmo < 0 || tmo > left)
            tmo = (int)left;
        int n = poll(pfd, 2, tmo);
        if (n < 0)
            continue;
        if (pfd[0].revents & POLLIN)
            assert_int_equal(xsc_handle_readable(t->x), 0);
        if (pfd[1].revents & POLLIN) {
            int st;
            rs_process_requests(t->vm, &st);
        }
        if (xsc_timeout_ms(t->x) == 0)
            assert_int_equal(xsc_handle_timeout(t->x), 0);
    }
}

static xsc_stats stats(tctx *t)
{
    xsc_stats s;
    xsc_get_stats(t->x, &s);
    return s;
}

static bool p_reads_at_least(tctx *t, const void *arg)
{
    return stats(t).commands_read >= *(const uint64_t *)arg;
}

static bool p_ld_reads_at_least(tctx *t, const void *arg)
{
    return stats(t).logdirty_read >= *(const uint64_t *)arg;
}

static bool p_node_is(tctx *t, const void *arg)
{
    const char *const *pv = arg;
    return ts_equals(t->ts, pv[0], pv[1]);
}

static bool p_rs_requests_idle(tctx *t, const void *arg)
{
    (void)arg;
    struct pollfd pfd = { .fd = rs_notify_fd(t->vm), .events = POLLIN };
    return poll(&pfd, 1, 0) == 0;
}

/* Write `command` as the toolstack and wait until the dm has read it. */
static void send_cmd(tctx *t, const void *value, size_t len)
{
    uint64_t want = stats(t).commands_read + 1;
    assert_true(xs_write(t->ts, XBT_NULL, t->p.command, value, (unsigned)len));
    assert_true(pump_until(t, p_reads_at_least, &want));
    /* Requests it posted (reset, powerdown) are taken by the "main loop". */
    assert_true(pump_until(t, p_rs_requests_idle, NULL));
}

static void send_str(tctx *t, const char *cmd)
{
    send_cmd(t, cmd, strlen(cmd));
}

static void expect_node(tctx *t, const char *path, const char *want)
{
    char *v = ts_read(t->ts, path);
    if (!v || strcmp(v, want) != 0)
        fail_msg("%s is \"%s\", expected \"%s\"", path, v ? v : "(absent)", want);
    free(v);
}

static void expect_node_contains(tctx *t, const char *path, const char *needle)
{
    char *v = ts_read(t->ts, path);
    if (!v || !strstr(v, needle))
        fail_msg("%s is \"%s\", expected it to contain \"%s\"", path, v ? v : "(absent)",
                 needle);
    free(v);
}

static void expect_absent(tctx *t, const char *path)
{
    char *v = ts_read(t->ts, path);
    if (v)
        fail_msg("%s exists (\"%s\"), expected absent", path, v);
    assert_int_equal(errno, ENOENT);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------- setup */

static void make_cfg(tctx *t, xsc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dm_domid = 0;
    cfg->domid = DOMID;
    cfg->vm = t->vm;
    cfg->save_path = t->save_path;
    cfg->ops.save_state = cb_save;
    cfg->ops.set_logdirty = cb_logdirty;
    cfg->ops.opaque = t;
    cfg->log = quiet_log;
    cfg->conn.backoff_min_ms = 1;
    cfg->conn.backoff_max_ms = 5;
    /* No sweep during a test: every read must come from a watch event. */
    cfg->sweep_ms = 600000;
}

/* Everything but the xsc object: daemon, toolstack handle, a running VM,
 * the control directory as libxl makes it (plain mkdir, inherits n0). */
static int setup_base(void **state)
{
    tctx *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    *state = t;
    int rc = xsim_setup(&t->sim, false, t->skip_why, sizeof(t->skip_why));
    if (rc != 0) {
        t->skip = true;
        if (rc < 0)
            fprintf(stderr, "setup failed: %s\n", t->skip_why);
        return rc < 0 ? -1 : 0;
    }
    t->ts = ts_open();
    assert_non_null(t->ts);
    assert_int_equal(xsc_paths_init(&t->p, 0, DOMID), 0);
    assert_true(xs_mkdir(t->ts, XBT_NULL, t->p.dir));
    snprintf(t->savedir, sizeof(t->savedir), "%s/lib", t->sim.rundir);
    assert_int_equal(mkdir(t->savedir, 0700), 0);
    snprintf(t->save_path, sizeof(t->save_path), "%s/qemu-save.%d", t->savedir, DOMID);
    t->vm = rs_vm_new();
    assert_non_null(t->vm);
    rs_set_log(t->vm, quiet_log, NULL);
    rs_hooks h = { .reset = hook_reset, .powerdown = hook_powerdown, .opaque = t };
    rs_set_hooks(t->vm, &h);
    rs_err e;
    assert_int_equal(rs_cont(t->vm, &e), 0);
    assert_int_equal(rs_get_state(t->vm), RS_RUNNING);
    return 0;
}

static int setup_ready(void **state)
{
    if (setup_base(state) < 0)
        return -1;
    tctx *t = *state;
    if (t->skip)
        return 0;
    xsc_config cfg;
    char why[512];
    make_cfg(t, &cfg);
    int rc = xsc_new(&cfg, &t->x, why, sizeof(why));
    if (rc < 0) {
        fprintf(stderr, "xsc_new: %s\n", why);
        return -1;
    }
    assert_int_equal(xsc_ready(t->x), 0);
    return 0;
}

static int teardown(void **state)
{
    tctx *t = *state;
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

/* ---------------------------------------------------------------- tests */

static void test_ready_publishes(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "running holds=");
    expect_absent(t, t->p.error);
    assert_false(xsc_disable_pf(t->x));
    assert_true(xsc_is_connected(t->x));
    assert_true(xsc_fd(t->x) >= 0);
}

static void test_exact_match_rejections(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    struct { const char *v; size_t len; const char *shown; } bad[] = {
        { "", 0, "command \"\": empty command" },
        { "c", 1, "command \"c\": unknown" },
        { "sav", 3, "command \"sav\": unknown" },
        { "save ", 5, "command \"save \": unknown" },
        { "Save", 4, "command \"Save\": unknown" },
        { "save\0", 5, "command \"save\\x00\": unknown" },
        { "\0save", 5, "command \"\\x00save\": unknown" },
        { "continue\0stop", 13, "command \"continue\\x00stop\": unknown" },
        { "usb-add", 7, "command \"usb-add\": unknown" },
        { "continue\n", 9, "command \"continue\\x0a\": unknown" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        xsc_stats before = stats(t);
        send_cmd(t, bad[i].v, bad[i].len);
        xsc_stats after = stats(t);
        assert_int_equal(after.commands_refused, before.commands_refused + 1);
        assert_int_equal(after.commands_done, before.commands_done);
        expect_node_contains(t, t->p.error, bad[i].shown);
        expect_absent(t, t->p.command);
        expect_node(t, t->p.state, "running");
        expect_node(t, t->p.runstate, "running holds=");
        assert_int_equal(rs_get_state(t->vm), RS_RUNNING);
        assert_int_equal(t->saves, 0);
    }
    /* 4 KiB of random bytes (as much as one xenstore message carries). */
    unsigned char big[4096];
    size_t max = 4096 - strlen(t->p.command) - 1;
    srand(12345);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)rand();
    xsc_stats before = stats(t);
    send_cmd(t, big, max);
    assert_int_equal(stats(t).commands_refused, before.commands_refused + 1);
    char want[64];
    snprintf(want, sizeof(want), "...(%zu bytes)\": unknown command", max);
    expect_node_contains(t, t->p.error, want);
    expect_node(t, t->p.runstate, "running holds=");
    assert_int_equal(rs_invalid_transitions(t->vm), 0);
}

static void test_stop_continue(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    send_str(t, "stop");
    expect_node(t, t->p.runstate, "paused holds=paused");
    /* `paused` is only ever the save ack: stop leaves `state` alone. */
    expect_node(t, t->p.state, "running");
    /* stop again: idempotent, no new hold */
    send_str(t, "stop");
    expect_node(t, t->p.runstate, "paused holds=paused");
    assert_true(ts_write(t->ts, t->p.state, "libxl-wrote-this"));
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");
    expect_node(t, t->p.state, "running");
    /* continue on a running VM: success, `running` again (libxl waits for it) */
    assert_true(ts_write(t->ts, t->p.state, "paused"));
    send_str(t, "continue");
    expect_node(t, t->p.state, "running");
    xsc_stats s = stats(t);
    assert_int_equal(s.commands_done, 4);
    assert_int_equal(s.commands_refused, 0);
    expect_absent(t, t->p.error);
}

static void test_extensions(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    rs_err e;

    /* retry with nothing parked: refused with librunstate's reason */
    send_str(t, "retry");
    expect_node_contains(t, t->p.error, "command \"retry\": No I/O error is parked");
    expect_node(t, t->p.runstate, "running holds=");

    /* retry after an I/O-error stop: running again, `running` written */
    assert_int_equal(rs_vm_stop(t->vm, RS_IO_ERROR, &e), 0);
    expect_node(t, t->p.runstate, "io-error holds=io-error");
    assert_true(ts_write(t->ts, t->p.state, "x"));
    send_str(t, "retry");
    expect_node(t, t->p.runstate, "running holds=");
    expect_node(t, t->p.state, "running");

    /* retry while also paused: refused, naming the other hold */
    assert_int_equal(rs_vm_stop(t->vm, RS_IO_ERROR, &e), 0);
    send_str(t, "stop");
    expect_node(t, t->p.runstate, "io-error holds=io-error,paused");
    send_str(t, "retry");
    expect_node_contains(t, t->p.error, "also held by: paused");
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");

    /* reset and powerdown are requests taken by the main loop */
    send_str(t, "reset");
    assert_int_equal(t->resets, 1);
    send_str(t, "powerdown");
    assert_int_equal(t->powerdowns, 1);
    expect_node(t, t->p.runstate, "running holds=");

    /* wakeup of a guest that is not in S3: refused */
    send_str(t, "wakeup");
    expect_node_contains(t, t->p.error, "command \"wakeup\": Unable to wake up");

    /* continue with a fatal hold: QEMU's message, state untouched */
    assert_int_equal(rs_vm_stop(t->vm, RS_SHUTDOWN, &e), 0);
    assert_true(ts_write(t->ts, t->p.state, "before"));
    send_str(t, "continue");
    expect_node_contains(t, t->p.error,
                         "command \"continue\": Resetting the Virtual Machine is required");
    expect_node(t, t->p.state, "before");
    expect_node(t, t->p.runstate, "shutdown holds=shutdown");
    /* reset clears it (→ prelaunch), continue starts */
    send_str(t, "reset");
    assert_int_equal(t->resets, 2);
    expect_node(t, t->p.runstate, "prelaunch holds=prelaunch");
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");
    expect_node(t, t->p.state, "running");
    xsc_stats s = stats(t);
    assert_int_equal(s.commands_read, s.commands_done + s.commands_refused);
    assert_int_equal(s.errors_written, s.commands_refused);
    assert_int_equal(rs_invalid_transitions(t->vm), 0);
}

static void write_old_file(tctx *t)
{
    FILE *f = fopen(t->save_path, "w");
    assert_non_null(f);
    fputs("STALE STATE FROM AN EARLIER SAVE", f);
    fclose(f);
}

static void test_save_ack(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    write_old_file(t);
    send_str(t, "save");
    assert_int_equal(t->saves, 1);
    /* While the state was written: no ack yet, the old file already gone. */
    assert_false(t->acked_early);
    assert_false(t->final_during_write);
    /* After: complete file at the final path, no temporary, then `paused`. */
    expect_node(t, t->p.state, "paused");
    char buf[64] = "";
    FILE *f = fopen(t->save_path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "RSDM device state v1");
    char tmp[500];
    snprintf(tmp, sizeof(tmp), "%s.tmp", t->save_path);
    assert_false(file_exists(tmp));
    expect_node(t, t->p.runstate, "postmigrate holds=postmigrate");
    expect_absent(t, t->p.error);
    assert_int_equal(stats(t).saves_ok, 1);

    /* `xl save -c`: continue resumes the guest */
    send_str(t, "continue");
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "running holds=");

    /* save while stopped by the user: the paused hold stays behind */
    send_str(t, "stop");
    send_str(t, "save");
    expect_node(t, t->p.state, "paused");
    expect_node(t, t->p.runstate, "postmigrate holds=paused,postmigrate");
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");
    assert_int_equal(rs_invalid_transitions(t->vm), 0);
}

static void test_save_failure(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    write_old_file(t);
    t->save_rc = -ENOSPC;
    send_str(t, "save");
    assert_int_equal(t->saves, 1);
    /* no file at all: not the old one, not a partial one */
    assert_false(file_exists(t->save_path));
    char tmp[500];
    snprintf(tmp, sizeof(tmp), "%s.tmp", t->save_path);
    assert_false(file_exists(tmp));
    expect_node_contains(t, t->p.error, "command \"save\": save failed, no file written");
    expect_node_contains(t, t->p.error, "simulated failure");
    /* state untouched, the VM back where it was */
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "running holds=");
    assert_int_equal(rs_get_state(t->vm), RS_RUNNING);
    xsc_stats s = stats(t);
    assert_int_equal(s.saves_failed, 1);
    assert_int_equal(s.commands_refused, 1);

    /* the next save succeeds */
    t->save_rc = 0;
    send_str(t, "save");
    expect_node(t, t->p.state, "paused");
    assert_true(file_exists(t->save_path));
}

static void test_save_unwritable(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    /* The save directory vanishes: a clear error naming the file. */
    assert_int_equal(rmdir(t->savedir), 0);
    send_str(t, "save");
    assert_int_equal(t->saves, 0);
    expect_node_contains(t, t->p.error, "save failed, no file written: cannot create");
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "running holds=");
}

static void test_logdirty(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    const char *ret_enable[2] = { t->p.logdirty_ret, "enable" };
    const char *ret_disable[2] = { t->p.logdirty_ret, "disable" };

    assert_true(ts_write(t->ts, t->p.logdirty_cmd, "enable"));
    assert_true(pump_until(t, p_node_is, ret_enable));
    assert_true(t->ld_on);
    assert_true(xsc_logdirty_enabled(t->x));

    /* Bad values: reported, the dm stays up, ret untouched. */
    const char *bad[] = { "bogus", "enabl", "enable ", "" };
    for (size_t i = 0; i < 4; i++) {
        uint64_t want = stats(t).logdirty_read + 1;
        int calls = t->ld_calls;
        assert_true(ts_write(t->ts, t->p.logdirty_cmd, bad[i]));
        assert_true(pump_until(t, p_ld_reads_at_least, &want));
        assert_int_equal(t->ld_calls, calls);
        char needle[64];
        snprintf(needle, sizeof(needle), "logdirty/cmd \"%s\": expected", bad[i]);
        expect_node_contains(t, t->p.error, needle);
        expect_node(t, t->p.logdirty_ret, "enable");
    }
    assert_true(ts_write(t->ts, t->p.logdirty_cmd, "disable"));
    assert_true(pump_until(t, p_node_is, ret_disable));
    assert_false(t->ld_on);

    /* The dm cannot switch: reported, ret not written. */
    t->ld_rc = -EIO;
    uint64_t want = stats(t).logdirty_read + 1;
    assert_true(ts_write(t->ts, t->p.logdirty_cmd, "enable"));
    assert_true(pump_until(t, p_ld_reads_at_least, &want));
    expect_node_contains(t, t->p.error, "cannot enable log-dirty tracking");
    expect_node(t, t->p.logdirty_ret, "disable");
    xsc_stats s = stats(t);
    assert_int_equal(s.logdirty_read, s.logdirty_done + s.logdirty_refused);
    expect_node(t, t->p.runstate, "running holds=");
}

static void test_pci(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    assert_true(ts_write(t->ts, t->p.parameter, "0000:00:02.0,msitranslate=0,power_mgmt=0"));
    send_str(t, "pci-ins");
    expect_node(t, t->p.state, "pci-insert-failed");
    expect_node_contains(t, t->p.parameter, "error: PCI passthrough is not supported");
    expect_node_contains(t, t->p.error, "command \"pci-ins\": PCI passthrough is not supported");
    /* libxl writes the previous state back */
    assert_true(ts_write(t->ts, t->p.state, "running"));
    assert_true(ts_write(t->ts, t->p.parameter, "0000:00:02.0"));
    send_str(t, "pci-rem");
    expect_node(t, t->p.state, "running");
    expect_node_contains(t, t->p.parameter, "error:");
    expect_node_contains(t, t->p.error, "command \"pci-rem\"");
    expect_node(t, t->p.runstate, "running holds=");
}

static void test_burst(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    rs_transition_rec hist[RS_HISTORY_LEN];
    size_t hist_before = rs_history(t->vm, hist, RS_HISTORY_LEN);
    xsc_stats before = stats(t);
    static const char *const words[] = { "", "c", "sav", "save ", "cont", "continu",
                                         "stopp", "STOP", "pci", "reset\n" };
    srand(4242);
    for (int i = 0; i < 10000; i++) {
        char v[64];
        size_t len;
        if (i % 3 == 0) {
            len = strlen(words[i % 10]);
            memcpy(v, words[i % 10], len);
        } else {
            len = (size_t)(rand() % (int)sizeof(v));
            for (size_t k = 0; k < len; k++)
                v[k] = (char)rand();
            /* random bytes are never a valid word, but make sure */
            if (xsc_cmd_parse(v, len) != XSC_CMD_UNKNOWN)
                v[0] = '#';
        }
        assert_true(xs_write(t->ts, XBT_NULL, t->p.command, v, (unsigned)len));
        /* The dm's loop runs between some of the writes, as it would. */
        if (i % 10 == 9) {
            struct pollfd pfd = { .fd = xsc_fd(t->x), .events = POLLIN };
            if (poll(&pfd, 1, 0) == 1)
                assert_int_equal(xsc_handle_readable(t->x), 0);
        }
    }
    /* A last valid command: once it has acted, every earlier value has been
     * read or overwritten. */
    const char *rs_paused[2] = { t->p.runstate, "paused holds=paused" };
    assert_true(xs_write(t->ts, XBT_NULL, t->p.command, "stop", 4));
    assert_true(pump_until(t, p_node_is, rs_paused));
    expect_absent(t, t->p.command);
    xsc_stats s = stats(t);
    uint64_t read = s.commands_read - before.commands_read;
    uint64_t done = s.commands_done - before.commands_done;
    uint64_t refused = s.commands_refused - before.commands_refused;
    /* every value read was acted on or reported in `error` */
    assert_true(read >= 1 && read <= 10001);
    assert_int_equal(read, done + refused);
    assert_int_equal(s.errors_written - before.errors_written, refused);
    /* the only state change is the one valid command */
    assert_int_equal(done, 1);
    size_t hist_after = rs_history(t->vm, hist, RS_HISTORY_LEN);
    assert_int_equal(hist_after, hist_before + 1);
    assert_int_equal(hist[hist_after - 1].from, RS_RUNNING);
    assert_int_equal(hist[hist_after - 1].to, RS_PAUSED);
    expect_node(t, t->p.state, "running");
    assert_int_equal(t->saves, 0);
    assert_int_equal(t->resets, 0);
    fprintf(stderr, "burst: 10001 writes, %llu values read, %llu refused\n",
            (unsigned long long)read, (unsigned long long)refused);
}

static void test_command_before_ready(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    xsc_config cfg;
    char why[512];
    make_cfg(t, &cfg);
    assert_int_equal(xsc_new(&cfg, &t->x, why, sizeof(why)), 0);
    expect_node(t, t->p.runstate, "running holds=");
    expect_absent(t, t->p.state);
    assert_true(ts_write(t->ts, t->p.command, "stop"));
    /* Not ready: events are taken but no command is acted on. */
    const char *never[2] = { t->p.runstate, "paused holds=paused" };
    struct pollfd pfd = { .fd = xsc_fd(t->x), .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, XSIM_WAIT_MS), 1);
    assert_int_equal(xsc_handle_readable(t->x), 0);
    assert_false(p_node_is(t, never));
    assert_int_equal(stats(t).commands_read, 0);
    /* Ready: `running` first, then the pending command acts. */
    assert_int_equal(xsc_ready(t->x), 0);
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "paused holds=paused");
    expect_absent(t, t->p.command);
}

static void try_new_expect_refusal(tctx *t, const char *path, const char *perms_str,
                                   const char *needle)
{
    struct xs_permissions perms[4];
    unsigned n = 0;
    const char *s = perms_str;
    /* "n0 w5" -> list */
    while (*s && n < 4) {
        char letter = *s++;
        unsigned id = (unsigned)strtoul(s, (char **)&s, 10);
        perms[n].id = id;
        perms[n].perms = letter == 'r' ? XS_PERM_READ : letter == 'w' ? XS_PERM_WRITE
                         : letter == 'b' ? XS_PERM_READ | XS_PERM_WRITE : XS_PERM_NONE;
        n++;
        while (*s == ' ')
            s++;
    }
    assert_true(xs_set_permissions(t->ts, XBT_NULL, path, perms, n));
    xsc_config cfg;
    char why[512] = "";
    make_cfg(t, &cfg);
    xsc *x = NULL;
    int rc = xsc_new(&cfg, &x, why, sizeof(why));
    if (!needle) {
        if (rc != 0)
            fail_msg("xsc_new refused %s (%s): %s", path, perms_str, why);
        xsc_free(x);
        return;
    }
    assert_int_equal(rc, -EACCES);
    assert_null(x);
    if (!strstr(why, needle))
        fail_msg("refusal \"%s\" does not say \"%s\"", why, needle);
    assert_non_null(strstr(why, path));
}

static void test_perms_refusal(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    try_new_expect_refusal(t, t->p.dir, "n0 w5", "writable by domain 5 (w5)");
    try_new_expect_refusal(t, t->p.dir, "n0 b5", "writable by domain 5 (b5)");
    try_new_expect_refusal(t, t->p.dir, "n5", "owned by domain 5");
    try_new_expect_refusal(t, t->p.dir, "w0", "writable by every domain");
    try_new_expect_refusal(t, t->p.dir, "b0 r5", "writable by every domain");
    /* the stub-domain layout: guest may read */
    try_new_expect_refusal(t, t->p.dir, "n0 r5", NULL);
    /* a safe directory with a guest-writable command node */
    assert_true(ts_write(t->ts, t->p.command, ""));
    try_new_expect_refusal(t, t->p.command, "n0 b5", "writable by domain 5");
    assert_true(xs_rm(t->ts, XBT_NULL, t->p.command));
    try_new_expect_refusal(t, t->p.dir, "n0", NULL);
}

static void test_dir_created_private(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    /* No directory (not libxl): created owned by the dm's domain only. */
    assert_true(xs_rm(t->ts, XBT_NULL, t->p.dir));
    xsc_config cfg;
    char why[512];
    make_cfg(t, &cfg);
    assert_int_equal(xsc_new(&cfg, &t->x, why, sizeof(why)), 0);
    unsigned n = 0;
    struct xs_permissions *perms = xs_get_permissions(t->ts, XBT_NULL, t->p.dir, &n);
    assert_non_null(perms);
    assert_int_equal(n, 1);
    assert_int_equal(perms[0].id, 0);
    assert_int_equal(perms[0].perms, XS_PERM_NONE);
    free(perms);
}

static void test_guest_cannot_write_command(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    assert_true(xs_introduce_domain(t->ts, DOMID, 0x1000, 1));
    char gsock[600];
    snprintf(gsock, sizeof(gsock), "%s/xenstored/domain/%d", t->sim.rundir, DOMID);
    setenv("XENSTORED_PATH", gsock, 1);
    struct xs_handle *guest = xs_open(0);
    setenv("XENSTORED_PATH", t->sim.sock, 1);
    assert_non_null(guest);
    /* the guest's own home works (the connection really is the guest's) */
    assert_true(xs_write(guest, XBT_NULL, "data/probe", "1", 1));
    errno = 0;
    assert_false(xs_write(guest, XBT_NULL, t->p.command, "save", 4));
    assert_int_equal(errno, EACCES);
    errno = 0;
    assert_false(xs_write(guest, XBT_NULL, t->p.logdirty_cmd, "enable", 6));
    assert_int_equal(errno, EACCES);
    unsigned len;
    errno = 0;
    assert_null(xs_read(guest, XBT_NULL, t->p.state, &len));
    assert_int_equal(errno, EACCES);
    xs_close(guest);
    /* nothing reached the dm */
    expect_absent(t, t->p.command);
    assert_int_equal(stats(t).commands_read, 0);
    expect_node(t, t->p.runstate, "running holds=");
}

static void test_disable_pf(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    xsc_config cfg;
    char why[512];
    make_cfg(t, &cfg);
    assert_true(ts_write(t->ts, t->p.disable_pf, "1"));
    assert_int_equal(xsc_new(&cfg, &t->x, why, sizeof(why)), 0);
    assert_true(xsc_disable_pf(t->x));
    xsc_free(t->x);
    t->x = NULL;
    assert_true(ts_write(t->ts, t->p.disable_pf, "yes please"));
    assert_true(ts_write(t->ts, t->p.error, "99 command \"x\": stale, from an earlier dm"));
    assert_int_equal(xsc_new(&cfg, &t->x, why, sizeof(why)), 0);
    assert_false(xsc_disable_pf(t->x));
    expect_node_contains(t, t->p.error, "1 disable_pf \"yes please\": expected");
}

static void test_serial_tty(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    assert_int_equal(xsc_publish_serial_tty(t->x, "/dev/pts/7"), 0);
    expect_node(t, t->p.serial_tty, "/dev/pts/7");
    unsigned n = 0;
    struct xs_permissions *perms = xs_get_permissions(t->ts, XBT_NULL, t->p.serial_tty, &n);
    assert_non_null(perms);
    assert_int_equal(n, 2);
    assert_int_equal(perms[0].id, 0);
    assert_int_equal(perms[0].perms, XS_PERM_NONE);
    assert_int_equal(perms[1].id, DOMID);
    assert_int_equal(perms[1].perms, XS_PERM_READ);
    free(perms);
    assert_int_equal(xsc_publish_serial_tty(t->x, ""), -EINVAL);
    /* the RTC offset under /vm/<uuid> */
    const char *uuid = "0a1b2c3d-0000-4000-8000-00112233aabb";
    assert_int_equal(xsc_publish_rtc_timeoffset(t->x, uuid, -3600), 0);
    expect_node(t, "/vm/0a1b2c3d-0000-4000-8000-00112233aabb/rtc/timeoffset", "-3600");
    assert_int_equal(xsc_publish_rtc_timeoffset(t->x, "../../local", 1), -EINVAL);
}

static bool p_events_at_least(tctx *t, const void *arg)
{
    return stats(t).events >= *(const uint64_t *)arg;
}

static void test_tree_removed_not_recreated(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    /* libxl's destroy removes the tree, then signals the dm. */
    uint64_t want = stats(t).events + 2;     /* both watched nodes fire */
    assert_true(xs_rm(t->ts, XBT_NULL, t->p.dir));
    assert_true(pump_until(t, p_events_at_least, &want));
    rs_err e;
    assert_int_equal(rs_vm_stop(t->vm, RS_PAUSED, &e), 0);   /* a runstate change */
    expect_absent(t, t->p.dir);
    expect_absent(t, t->p.runstate);
    /* A toolstack that writes a command again brings it back into use. */
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "running holds=");
    expect_node(t, t->p.state, "running");
}

static void test_s3_save_continue_wakeup(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    int st;
    /* The guest enters S3. */
    assert_int_equal(rs_request_suspend(t->vm), 0);
    assert_int_equal(rs_process_requests(t->vm, &st), 0);
    expect_node(t, t->p.runstate, "suspended holds=");
    /* save from S3, continue: back to S3 (legal edges only), `running` acked */
    send_str(t, "save");
    expect_node(t, t->p.state, "paused");
    /* QEMU has no postmigrate -> suspended edge, so the display falls back
     * to paused (docs/runstate.md §4); the hold tells the truth. */
    expect_node(t, t->p.runstate, "paused holds=postmigrate");
    send_str(t, "continue");
    expect_node(t, t->p.runstate, "suspended holds=");
    expect_node(t, t->p.state, "running");
    /* the wakeup extension brings it out of S3 */
    send_str(t, "wakeup");
    expect_node(t, t->p.runstate, "running holds=");
    assert_int_equal(rs_invalid_transitions(t->vm), 0);
    xsc_stats s = stats(t);
    assert_int_equal(s.commands_refused, 0);
}

static int failing_stop_handler(void *opaque, bool running, rs_state st)
{
    (void)opaque;
    (void)st;
    return running ? 0 : -EIO;
}

static void test_save_stop_handler_fails(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    write_old_file(t);
    rs_handler *h = rs_handler_add_full(t->vm, NULL, NULL, failing_stop_handler, t, 0);
    assert_non_null(h);
    send_str(t, "save");
    /* The device could not quiesce: no state written, no file, no ack, and
     * the VM is not left in finish-migrate. */
    assert_int_equal(t->saves, 0);
    assert_false(file_exists(t->save_path));
    expect_node_contains(t, t->p.error, "save failed, no file written: cannot stop the VM");
    expect_node(t, t->p.state, "running");
    expect_node(t, t->p.runstate, "running holds=");
    assert_int_equal(rs_handler_del(t->vm, h), 0);
}

static void test_new_errors(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    xsc_config cfg;
    char why[512];
    xsc *x = (xsc *)1;
    make_cfg(t, &cfg);
    /* no daemon at the socket: a message naming it */
    char nowhere[600];
    snprintf(nowhere, sizeof(nowhere), "%s/no-such-socket", t->sim.rundir);
    setenv("XENSTORED_PATH", nowhere, 1);
    int rc = xsc_new(&cfg, &x, why, sizeof(why));
    setenv("XENSTORED_PATH", t->sim.sock, 1);
    assert_true(rc < 0);
    assert_null(x);
    assert_non_null(strstr(why, "cannot open xenstore"));
    assert_non_null(strstr(why, "no-such-socket"));
    /* bad arguments */
    cfg.domid = 0x8000;
    assert_int_equal(xsc_new(&cfg, &x, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "bad domain ids"));
    make_cfg(t, &cfg);
    cfg.vm = NULL;
    assert_int_equal(xsc_new(&cfg, &x, why, sizeof(why)), -EINVAL);
    make_cfg(t, &cfg);
    cfg.save_path = "";
    assert_int_equal(xsc_new(&cfg, &x, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "save file path"));
    /* and nothing was written by the failed attempts */
    expect_absent(t, t->p.runstate);
}

static void test_qmp_dialect(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    /* A dm started with -S: prelaunch, nothing written until `cont`. */
    rs_vm *vm = rs_vm_new();
    assert_non_null(vm);
    rs_set_log(vm, quiet_log, NULL);
    xsc_config cfg;
    char why[512];
    make_cfg(t, &cfg);
    cfg.vm = vm;
    cfg.dialect = XSC_DIALECT_QMP;
    xsc *x;
    assert_int_equal(xsc_new(&cfg, &x, why, sizeof(why)), 0);
    assert_int_equal(xsc_ready(x), 0);
    expect_absent(t, t->p.state);
    expect_node(t, t->p.runstate, "prelaunch holds=prelaunch");
    rs_err e;
    assert_int_equal(rs_cont(vm, &e), 0);          /* QMP cont */
    expect_node(t, t->p.state, "running");
    /* QEMU writes `running` on every start, never `paused` */
    assert_int_equal(rs_vm_stop(vm, RS_PAUSED, &e), 0);
    assert_true(ts_write(t->ts, t->p.state, "libxl"));
    expect_node(t, t->p.runstate, "paused holds=paused");
    expect_node(t, t->p.state, "libxl");
    assert_int_equal(rs_cont(vm, &e), 0);
    expect_node(t, t->p.state, "running");
    /* `command` is not part of this dialect: not read, not deleted */
    assert_true(ts_write(t->ts, t->p.command, "stop"));
    assert_int_equal(xsc_handle_readable(x), 0);
    assert_int_equal(xsc_handle_timeout(x), 0);
    expect_node(t, t->p.command, "stop");
    assert_int_equal(rs_get_state(vm), RS_RUNNING);
    xsc_stats st;
    xsc_get_stats(x, &st);
    assert_int_equal(st.commands_read, 0);
    xsc_free(x);
    rs_vm_free(vm);
    /* an unknown dialect is refused */
    make_cfg(t, &cfg);
    cfg.dialect = (xsc_dialect)7;
    assert_int_equal(xsc_new(&cfg, &x, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "dialect"));
}

static void test_save_in_any_state(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    static const rs_state reasons[] = { RS_PAUSED, RS_IO_ERROR, RS_WATCHDOG,
                                        RS_GUEST_PANICKED, RS_DEBUG, RS_SHUTDOWN,
                                        RS_INTERNAL_ERROR };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        rs_err e;
        int st;
        assert_int_equal(rs_vm_stop(t->vm, reasons[i], &e), 0);
        assert_true(ts_write(t->ts, t->p.state, "running"));
        int saves = t->saves;
        send_str(t, "save");
        /* qemu-traditional ignored save while its VM was stopped (§7.5) */
        assert_int_equal(t->saves, saves + 1);
        expect_node(t, t->p.state, "paused");
        rs_holdset h = rs_get_holds(t->vm);
        assert_true(h & RS_HOLD_BIT(reasons[i]));
        assert_true(h & RS_HOLD_BIT(RS_POSTMIGRATE));
        assert_false(h & RS_HOLD_BIT(RS_FINISH_MIGRATE));
        if (rs_state_needs_reset(reasons[i])) {
            assert_int_equal(rs_request_reset(t->vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET), 0);
            assert_int_equal(rs_process_requests(t->vm, &st), 0);
        }
        send_str(t, "continue");
        expect_node(t, t->p.runstate, "running holds=");
    }
    assert_int_equal(rs_invalid_transitions(t->vm), 0);
    xsc_stats s = stats(t);
    assert_int_equal(s.commands_refused, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_publishes, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_exact_match_rejections, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_stop_continue, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_extensions, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_save_ack, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_save_failure, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_save_in_any_state, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_save_unwritable, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_save_stop_handler_fails, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_logdirty, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_pci, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_burst, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_command_before_ready, setup_base, teardown),
        cmocka_unit_test_setup_teardown(test_perms_refusal, setup_base, teardown),
        cmocka_unit_test_setup_teardown(test_new_errors, setup_base, teardown),
        cmocka_unit_test_setup_teardown(test_qmp_dialect, setup_base, teardown),
        cmocka_unit_test_setup_teardown(test_dir_created_private, setup_base, teardown),
        cmocka_unit_test_setup_teardown(test_guest_cannot_write_command, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_disable_pf, setup_base, teardown),
        cmocka_unit_test_setup_teardown(test_serial_tty, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_tree_removed_not_recreated, setup_ready, teardown),
        cmocka_unit_test_setup_teardown(test_s3_save_continue_wakeup, setup_ready, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
