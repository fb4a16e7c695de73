/*
 * QMP commands against a real rs_vm: query-status through stop/cont and
 * io-error holds, cont's QEMU errors, system_wakeup's two errors,
 * set-action (all-or-nothing, applied fields), quit, the Xen save/load
 * hooks with the save-vm hold, introspection commands.  Commands are
 * dispatched directly (the wire is test_qmp_server's job).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "qmp_commands.h"
#include "runstate.h"

typedef struct fix {
    rs_vm *vm;
    qmp_commands *q;
    int saves;
    bool save_live;
    bool save_fail;
    rs_state state_in_hook;
} fix;

static void quiet(void *o, rs_log_level l, const char *m)
{
    (void)o; (void)l; (void)m;
}

static int setup(void **state)
{
    fix *f = calloc(1, sizeof(*f));
    f->vm = rs_vm_new();
    rs_set_log(f->vm, quiet, NULL);
    f->q = qmp_commands_new(f->vm);
    assert_non_null(f->q);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix *f = *state;
    qmp_commands_free(f->q);
    rs_vm_free(f->vm);
    free(f);
    return 0;
}

/* Run a command; returns the reply ("return" value) or NULL with *err. */
static json_t *run(fix *f, const char *name, const char *args, qmp_error *err)
{
    json_t *a = json_loads(args ? args : "{}", 0, NULL);
    assert_non_null(a);
    json_t *ret = NULL;
    qmp_error e = { 0 };
    int rc = qmp_commands_dispatch(f->q, NULL, name, a, &ret, &e);
    json_decref(a);
    assert_int_not_equal(rc, 1);
    if (err)
        *err = e;
    if (rc < 0) {
        assert_null(ret);
        return NULL;
    }
    return ret ? ret : json_object();
}

static void ok(fix *f, const char *name, const char *args)
{
    qmp_error e;
    json_t *r = run(f, name, args, &e);
    if (!r)
        fail_msg("%s failed: %s", name, e.desc);
    json_decref(r);
}

static void fails(fix *f, const char *name, const char *args, const char *desc)
{
    qmp_error e;
    json_t *r = run(f, name, args, &e);
    if (r)
        fail_msg("%s succeeded", name);
    assert_string_equal(e.cls, "GenericError");
    assert_string_equal(e.desc, desc);
}

static void process(fix *f)
{
    int st;
    rs_process_requests(f->vm, &st);
}

/* status, running, and the x-holds reasons joined by ',' */
static void status_is(fix *f, const char *status, bool running, const char *holds)
{
    json_t *r = run(f, "query-status", NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(r, "status")), status);
    assert_int_equal(json_is_true(json_object_get(r, "running")), running);
    assert_true(json_is_false(json_object_get(r, "singlestep")));
    char got[256] = "";
    json_t *h;
    size_t i;
    json_array_foreach(json_object_get(r, "x-holds"), i, h) {
        if (i)
            strcat(got, ",");
        strcat(got, json_string_value(json_object_get(h, "reason")));
        assert_non_null(json_string_value(json_object_get(h, "group")));
        assert_true(json_integer_value(json_object_get(json_object_get(h, "since"), "seconds")) > 0);
    }
    assert_string_equal(got, holds);
    json_decref(r);
}

static void test_status_stop_cont(void **state)
{
    fix *f = *state;
    status_is(f, "prelaunch", false, "prelaunch");
    ok(f, "cont", NULL);
    status_is(f, "running", true, "");
    ok(f, "stop", NULL);
    status_is(f, "paused", false, "paused");
    /* an I/O error while paused: QEMU would lose it; the hold shows it */
    rs_err re = { 0 };
    assert_int_equal(rs_vm_stop(f->vm, RS_IO_ERROR, &re), 0);
    status_is(f, "paused", false, "paused,io-error");
    json_t *r = run(f, "query-status", NULL, NULL);
    json_t *h = json_array_get(json_object_get(r, "x-holds"), 1);
    assert_string_equal(json_string_value(json_object_get(h, "group")), "management");
    json_decref(r);
    ok(f, "cont", NULL);
    status_is(f, "running", true, "");
    ok(f, "cont", NULL);   /* idempotent, as libxl's resume needs */
    status_is(f, "running", true, "");
}

static void test_cont_errors(void **state)
{
    fix *f = *state;
    ok(f, "cont", NULL);
    rs_err re = { 0 };
    assert_int_equal(rs_hold_acquire(f->vm, RS_FINISH_MIGRATE, &re), 0);
    fails(f, "cont", NULL, "Migration is not finalized yet");
    assert_int_equal(rs_hold_release(f->vm, RS_FINISH_MIGRATE, &re), 0);
    assert_int_equal(rs_vm_stop(f->vm, RS_SHUTDOWN, &re), 0);
    fails(f, "cont", NULL, "Resetting the Virtual Machine is required");
    status_is(f, "shutdown", false, "shutdown");
}

static void test_wakeup(void **state)
{
    fix *f = *state;
    ok(f, "cont", NULL);
    fails(f, "system_wakeup", NULL, "Unable to wake up: guest is not in suspended state");
    assert_int_equal(rs_request_suspend(f->vm), 0);
    process(f);
    status_is(f, "suspended", false, "");
    qmp_commands_set_wakeup_supported(f->q, false);
    fails(f, "system_wakeup", NULL, "wake-up from suspend is not supported by this guest");
    qmp_commands_set_wakeup_supported(f->q, true);
    ok(f, "system_wakeup", NULL);
    process(f);
    status_is(f, "running", true, "");
}

static void test_set_action(void **state)
{
    fix *f = *state;
    rs_actions a;
    fails(f, "set-action", "{\"reboot\":\"shutdown\",\"panic\":\"bogus\"}",
          "Parameter 'panic' does not accept value 'bogus'");
    rs_get_actions(f->vm, &a);
    assert_int_equal(a.reboot, RS_REBOOT_RESET);   /* nothing applied */
    ok(f, "set-action", "{\"reboot\":\"shutdown\",\"shutdown\":\"pause\",\"panic\":\"none\","
                        "\"watchdog\":\"pause\"}");
    rs_get_actions(f->vm, &a);
    assert_int_equal(a.reboot, RS_REBOOT_SHUTDOWN);
    assert_int_equal(a.shutdown, RS_SHUTDOWN_PAUSE);
    assert_int_equal(a.panic, RS_PANIC_NONE);
    assert_int_equal(a.watchdog, RS_WATCHDOG_PAUSE);
    ok(f, "watchdog-set-action", "{\"action\":\"inject-nmi\"}");
    rs_get_actions(f->vm, &a);
    assert_int_equal(a.watchdog, RS_WATCHDOG_INJECT_NMI);
    assert_int_equal(a.reboot, RS_REBOOT_SHUTDOWN);
    fails(f, "watchdog-set-action", "{\"action\":\"explode\"}",
          "Parameter 'action' does not accept value 'explode'");
    fails(f, "set-action", "{\"reboot\":1}", "Invalid parameter type for 'reboot', expected: string");
}

static void test_quit(void **state)
{
    fix *f = *state;
    assert_false(qmp_commands_quit_requested(f->q));
    ok(f, "quit", NULL);
    assert_true(qmp_commands_quit_requested(f->q));
    int st = -1;
    assert_int_equal(rs_process_requests(f->vm, &st), 1);
    assert_int_equal(st, 0);
}

static int save_hook(void *opaque, int fd, bool live, char *err, size_t errlen)
{
    fix *f = opaque;
    f->saves++;
    f->save_live = live;
    f->state_in_hook = rs_get_state(f->vm);
    if (f->save_fail) {
        snprintf(err, errlen, "disk full");
        return -1;
    }
    return write(fd, "RSDMSTATE", 9) == 9 ? 0 : -1;
}

static int load_hook(void *opaque, int fd, char *err, size_t errlen)
{
    (void)opaque;
    char b[16] = "";
    if (read(fd, b, sizeof(b)) != 9 || memcmp(b, "RSDMSTATE", 9)) {
        snprintf(err, errlen, "bad magic");
        return -1;
    }
    return 0;
}

static void test_xen_hooks(void **state)
{
    fix *f = *state;
    char path[64], args[128];
    snprintf(path, sizeof(path), "/tmp/qmp-cmd-%d.state", (int)getpid());
    snprintf(args, sizeof(args), "{\"filename\":\"%s\"}", path);
    fails(f, "xen-save-devices-state", args, "xen-save-devices-state is not available");
    qmp_xen_hooks h = { .save_devices_state = save_hook, .load_devices_state = load_hook,
                        .opaque = f };
    qmp_commands_set_xen_hooks(f->q, &h);
    ok(f, "cont", NULL);
    ok(f, "xen-save-devices-state", args);
    assert_int_equal(f->saves, 1);
    assert_true(f->save_live);
    assert_int_equal(f->state_in_hook, RS_SAVE_VM);
    status_is(f, "running", true, "");
    /* QEMU refuses to load over a running VM. */
    fails(f, "xen-load-devices-state", args, "Cannot update device state while vm is running");
    snprintf(args, sizeof(args), "{\"filename\":\"%s\",\"live\":false}", path);
    ok(f, "stop", NULL);
    ok(f, "xen-save-devices-state", args);
    assert_false(f->save_live);
    status_is(f, "paused", false, "paused");
    snprintf(args, sizeof(args), "{\"filename\":\"%s\"}", path);
    ok(f, "xen-load-devices-state", args);
    snprintf(args, sizeof(args), "{\"filename\":\"%s\",\"live\":false}", path);
    f->save_fail = true;
    fails(f, "xen-save-devices-state", args, "disk full");
    status_is(f, "paused", false, "paused");
    unlink(path);
    fails(f, "xen-load-devices-state", "{\"filename\":\"/dev/null/x\"}",
          "Could not open '/dev/null/x': Not a directory");
}

static void test_introspection(void **state)
{
    fix *f = *state;
    json_t *r = run(f, "query-vnc", NULL, NULL);
    assert_true(json_is_false(json_object_get(r, "enabled")));
    json_decref(r);
    fails(f, "change-vnc-password", "{\"password\":\"x\"}", "Could not set password");
    assert_int_equal(qmp_commands_add_chardev(f->q, "serial0", "pty:/dev/pts/3"), 0);
    r = run(f, "query-chardev", NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "filename")),
                        "pty:/dev/pts/3");
    json_decref(r);
    r = run(f, "query-version", NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "qemu"), "major")), 7);
    json_decref(r);
    r = run(f, "query-commands", NULL, NULL);
    assert_true(json_array_size(r) > 15);
    json_decref(r);
    r = run(f, "query-command-line-options", "{\"option\":\"machine\"}", NULL);
    assert_int_equal(json_array_size(r), 1);
    json_decref(r);
    /* libxl 4.20's probe: run-with with its chroot and user parameters. */
    r = run(f, "query-command-line-options", "{\"option\":\"run-with\"}", NULL);
    json_t *params = json_object_get(json_array_get(r, 0), "parameters");
    assert_int_equal(json_array_size(params), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(params, 0), "name")),
                        "chroot");
    assert_string_equal(json_string_value(json_object_get(json_array_get(params, 1), "name")),
                        "user");
    json_decref(r);
    r = run(f, "query-command-line-options", NULL, NULL);
    assert_true(json_array_size(r) > 20);      /* every qemu-xen option, once */
    json_decref(r);
    fails(f, "query-command-line-options", "{\"option\":\"nope\"}", "Invalid parameter 'option'");
    ok(f, "query-migratable", NULL);
    json_t *a = json_object();
    json_t *ret = NULL;
    qmp_error e;
    assert_int_equal(qmp_commands_dispatch(f->q, NULL, "migrate", a, &ret, &e), 1);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_stop_cont, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cont_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wakeup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xen_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_introspection, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
