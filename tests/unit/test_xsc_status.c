/*
 * The `status` node of the xenstore layer (compact JSON for rsdmctl):
 * state, holds with since times, the newest transitions, the event
 * counter, the devices' "disks" fragment.  Runs xensim like
 * test_xsc_control; every wait is bounded and event-driven.
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

#include <jansson.h>

typedef struct tctx {
    xsim sim;
    bool skip;
    char skip_why[300];
    struct xs_handle *ts;
    rs_vm *vm;
    xsc *x;
    xsc_paths p;
    const char *disks;          /* what cb_disks answers; NULL: none */
} tctx;

static int cb_disks(void *opaque, char *buf, size_t len)
{
    tctx *t = opaque;
    if (!t->disks)
        return -1;
    snprintf(buf, len, "%s", t->disks);
    return (int)strlen(t->disks);
}

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

static bool p_rs_requests_idle(tctx *t, const void *arg)
{
    (void)arg;
    struct pollfd pfd = { .fd = rs_notify_fd(t->vm), .events = POLLIN };
    return poll(&pfd, 1, 0) == 0;
}

static void send_str(tctx *t, const char *cmd)
{
    uint64_t want = stats(t).commands_read + 1;
    assert_true(xs_write(t->ts, XBT_NULL, t->p.command, cmd, (unsigned)strlen(cmd)));
    assert_true(pump_until(t, p_reads_at_least, &want));
    assert_true(pump_until(t, p_rs_requests_idle, NULL));
}

/* The status node, parsed; fails the test unless it is a JSON object. */
static json_t *read_status(tctx *t)
{
    char *v = ts_read(t->ts, t->p.status);
    if (!v)
        fail_msg("%s is absent", t->p.status);
    assert_true(strlen(v) < 4096);
    json_error_t err;
    json_t *j = json_loads(v, 0, &err);
    if (!j || !json_is_object(j))
        fail_msg("%s is not a JSON object (%s): %s", t->p.status, err.text, v);
    free(v);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("member %s is not a string", key);
    return json_string_value(v);
}

/* ---------------------------------------------------------------- setup */

static int setup(void **state)
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
    t->vm = rs_vm_new();
    assert_non_null(t->vm);
    rs_set_log(t->vm, quiet_log, NULL);
    rs_err e;
    assert_int_equal(rs_cont(t->vm, &e), 0);

    xsc_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.domid = DOMID;
    cfg.vm = t->vm;
    cfg.ops.status_disks = cb_disks;
    cfg.ops.opaque = t;
    cfg.log = quiet_log;
    cfg.conn.backoff_min_ms = 1;
    cfg.conn.backoff_max_ms = 5;
    cfg.sweep_ms = 600000;
    char why[512];
    if (xsc_new(&cfg, &t->x, why, sizeof(why)) < 0) {
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

static void test_status_running(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    json_t *j = read_status(t);
    assert_string_equal(jstr(j, "status"), "running");
    assert_true(json_is_true(json_object_get(j, "running")));
    assert_true(json_is_array(json_object_get(j, "holds")));
    assert_int_equal(json_array_size(json_object_get(j, "holds")), 0);
    assert_true(json_is_array(json_object_get(j, "transitions")));
    assert_true(json_is_integer(json_object_get(j, "events")));
    assert_null(json_object_get(j, "disks"));
    json_decref(j);
}

static void test_status_stop_cont(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    json_t *j = read_status(t);
    json_int_t ev0 = json_integer_value(json_object_get(j, "events"));
    json_decref(j);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    send_str(t, "stop");
    j = read_status(t);
    assert_string_equal(jstr(j, "status"), "paused");
    assert_true(json_is_false(json_object_get(j, "running")));
    json_t *holds = json_object_get(j, "holds");
    assert_int_equal(json_array_size(holds), 1);
    json_t *h = json_array_get(holds, 0);
    assert_string_equal(jstr(h, "reason"), "paused");
    assert_string_equal(jstr(h, "group"), "user");
    double since = json_number_value(json_object_get(h, "since"));
    assert_true(since >= (double)now.tv_sec - 1 && since <= (double)now.tv_sec + 60);
    json_t *tr = json_object_get(j, "transitions");
    assert_true(json_array_size(tr) >= 1 && json_array_size(tr) <= 8);
    json_t *last = json_array_get(tr, json_array_size(tr) - 1);
    assert_string_equal(jstr(last, "from"), "running");
    assert_string_equal(jstr(last, "to"), "paused");
    assert_true(json_is_number(json_object_get(last, "at")));
    json_int_t ev1 = json_integer_value(json_object_get(j, "events"));
    assert_true(ev1 > ev0);
    json_decref(j);

    send_str(t, "continue");
    j = read_status(t);
    assert_string_equal(jstr(j, "status"), "running");
    assert_true(json_is_true(json_object_get(j, "running")));
    assert_int_equal(json_array_size(json_object_get(j, "holds")), 0);
    tr = json_object_get(j, "transitions");
    last = json_array_get(tr, json_array_size(tr) - 1);
    assert_string_equal(jstr(last, "from"), "paused");
    assert_string_equal(jstr(last, "to"), "running");
    assert_true(json_integer_value(json_object_get(j, "events")) > ev1);
    json_decref(j);
}

/* Many transitions: the list is cut to the newest 8, the JSON stays whole. */
static void test_status_transitions_cut(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    for (int i = 0; i < 12; i++) {
        send_str(t, "stop");
        send_str(t, "continue");
    }
    json_t *j = read_status(t);
    json_t *tr = json_object_get(j, "transitions");
    assert_int_equal(json_array_size(tr), 8);
    double prev = 0;
    for (size_t i = 0; i < json_array_size(tr); i++) {
        double at = json_number_value(json_object_get(json_array_get(tr, i), "at"));
        assert_true(at >= prev);
        prev = at;
    }
    assert_string_equal(jstr(json_array_get(tr, 7), "to"), "running");
    json_decref(j);
}

/* The devices' fragment is included only when it is a complete array. */
static void test_status_disks(void **state)
{
    tctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    t->disks = "[{\"device\":\"hda\",\"operation\":\"write\"}]";
    send_str(t, "stop");
    json_t *j = read_status(t);
    json_t *d = json_object_get(j, "disks");
    assert_true(json_is_array(d));
    assert_string_equal(jstr(json_array_get(d, 0), "device"), "hda");
    json_decref(j);

    t->disks = "{\"not\":\"an array\"}";
    send_str(t, "continue");
    j = read_status(t);
    assert_null(json_object_get(j, "disks"));
    assert_string_equal(jstr(j, "status"), "running");
    json_decref(j);

    t->disks = "[\"unterminated";
    send_str(t, "stop");
    j = read_status(t);
    assert_null(json_object_get(j, "disks"));
    json_decref(j);
}

/* The VM uuid behind /local/domain/<domid>/vm: only a well-formed value in
 * a node the guest cannot write is used. */
static void test_vm_uuid(void **state)
{
    tctx *t = *state;
    if (t->skip)
        skip();
    char path[XSC_PATH_LEN + 8], uuid[40];
    snprintf(path, sizeof(path), "%s/vm", t->p.guest_home);
    assert_int_equal(xsc_read_vm_uuid(t->x, uuid, sizeof(uuid)), -ENOENT);

    static const struct { const char *v; int rc; } cases[] = {
        { "/vm/4f2a6c1e-9b3d-4e55-8a77-0123456789ab", 0 },
        { "/vm/4f2a6c1e-9b3d-4e55-8a77-0123456789ab/x", -EINVAL },
        { "/vm/4f2a6c1e-9b3d-4e55-8a77-0123456789a", -EINVAL },
        { "/vm/4f2a6c1e_9b3d-4e55-8a77-0123456789ab", -EINVAL },
        { "/xx/4f2a6c1e-9b3d-4e55-8a77-0123456789ab", -EINVAL },
        { "", -EINVAL },
    };
    struct xs_permissions ro[2] = { { .id = 0, .perms = XS_PERM_NONE },
                                    { .id = DOMID, .perms = XS_PERM_READ } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(xs_write(t->ts, XBT_NULL, path, cases[i].v, (unsigned)strlen(cases[i].v)));
        assert_true(xs_set_permissions(t->ts, XBT_NULL, path, ro, 2));
        assert_int_equal(xsc_read_vm_uuid(t->x, uuid, sizeof(uuid)), cases[i].rc);
        if (cases[i].rc == 0)
            assert_string_equal(uuid, cases[i].v + 4);
    }
    /* An embedded NUL makes the value longer than what strcmp would see. */
    assert_true(xs_write(t->ts, XBT_NULL, path, "/vm/4f2a6c1e-9b3d-4e55-8a77-0123456789ab\0x", 42));
    assert_int_equal(xsc_read_vm_uuid(t->x, uuid, sizeof(uuid)), -EINVAL);
    /* Well-formed, but the guest may write it. */
    const char *good = cases[0].v;
    struct xs_permissions rw[2] = { { .id = 0, .perms = XS_PERM_NONE },
                                    { .id = DOMID, .perms = XS_PERM_WRITE } };
    assert_true(xs_write(t->ts, XBT_NULL, path, good, (unsigned)strlen(good)));
    assert_true(xs_set_permissions(t->ts, XBT_NULL, path, rw, 2));
    assert_int_equal(xsc_read_vm_uuid(t->x, uuid, sizeof(uuid)), -EACCES);
    struct xs_permissions owned[1] = { { .id = DOMID, .perms = XS_PERM_NONE } };
    assert_true(xs_set_permissions(t->ts, XBT_NULL, path, owned, 1));
    assert_int_equal(xsc_read_vm_uuid(t->x, uuid, sizeof(uuid)), -EACCES);
    /* Too small a buffer is the caller's error, not xenstore's. */
    assert_int_equal(xsc_read_vm_uuid(t->x, uuid, 36), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_stop_cont, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_transitions_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_disks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_uuid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
