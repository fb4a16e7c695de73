/*
 * rsdm core's lifecycle in the qemu-xen dialect, on a real rsdm-sim driven
 * over QMP as libxl 4.17 drives it (a new connection per command, libxl's
 * ids, the fd on the command's first byte): 1,000 stop/cont cycles while a
 * guest vCPU keeps using the UART; libxl's save sequence; a restore into a
 * new process with `-incoming fd:N`; a live migration through a pipe; the
 * source of a same-host migration exiting after the destination bound the
 * same monitor path leaves the destination's socket file alone.
 * Each runs unrestricted and restricted (libxl's dm_restrict: pre-opened
 * socket, -S, -xen-domid-restrict, readiness by query-status, no pause
 * reference, no xenstore).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/rsdm_sim.h"
#include "../lib/xsim_emu.h"
#include "hv.h"

#define CYCLES 1000

typedef struct fixture {
    rsdm_sim sim;
    bool restricted;
    rsdm_sim_guest g;
} fixture;

static fixture fx;

static int setup_common(void **state, bool restricted)
{
    memset(&fx, 0, sizeof(fx));
    fx.restricted = restricted;
    if (rsdm_sim_start_qmp(&fx.sim, restricted ? "qmp-r" : "qmp", 1, restricted) < 0)
        return -1;
    *state = &fx;
    return 0;
}

static int setup_plain(void **state)
{
    return setup_common(state, false);
}

static int setup_restricted(void **state)
{
    return setup_common(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    rsdm_sim_guest_stop(&f->g);
    int st = rsdm_sim_stop_dm(&f->sim);
    rsdm_sim_stop(&f->sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);   /* clean exit on SIGTERM */
    return 0;
}

static void qmp_ok(fixture *f, const char *cmd, json_t *args, int fd, json_t **ret)
{
    if (rsdm_sim_qmp_exec(&f->sim, cmd, args, fd, ret) != 0)
        fail_msg("QMP %s failed (log %s)", cmd, f->sim.log);
}

static void status_is(fixture *f, const char *want)
{
    json_t *ret = NULL;
    qmp_ok(f, "query-status", NULL, -1, &ret);
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (!st || strcmp(st, want) != 0)
        fail_msg("status '%s', expected '%s'", st ? st : "?", want);
    json_decref(ret);
}

static void test_stop_cont_cycles(void **state)
{
    fixture *f = *state;
    assert_int_equal(rsdm_sim_guest_start(&f->g, &f->sim), 0);
    for (int i = 0; i < CYCLES; i++) {
        qmp_ok(f, "stop", NULL, -1, NULL);
        status_is(f, "paused");
        /* DESIGN "Stopping a guest on Xen": one pause reference while the
         * dm's own stop holds, none when restricted (no xenctrl). */
        assert_int_equal(rsdm_sim_pause_count(&f->sim), f->restricted ? 0 : 1);
        qmp_ok(f, "cont", NULL, -1, NULL);
        assert_int_equal(rsdm_sim_pause_count(&f->sim), 0);
        rsdm_sim_guest_step(&f->g);
    }
    status_is(f, "running");
    rsdm_sim_guest_stop(&f->g);
    assert_int_equal(atomic_load(&f->g.failures), 0);
    assert_int_equal(atomic_load(&f->g.mismatches), 0);
    assert_true(atomic_load(&f->g.accesses) >= CYCLES);
    assert_int_equal(hv_null_hits_total(f->sim.dom), 0);
    printf("%s: %d stop/cont cycles over QMP, %lu guest accesses, 0 null-handler hits\n",
           f->restricted ? "restricted" : "unrestricted", CYCLES, atomic_load(&f->g.accesses));
}

static void scr_write(fixture *f, uint8_t v)
{
    uint64_t w = v;
    assert_int_equal(xsim_pio(f->sim.d, 0, true, RSDM_SIM_UART_SCR, 1, &w), 0);
}

static uint8_t scr_read(fixture *f)
{
    uint64_t r = 0;
    assert_int_equal(xsim_pio(f->sim.d, 0, false, RSDM_SIM_UART_SCR, 1, &r), 0);
    return (uint8_t)r;
}

/* libxl__domain_suspend_device_model + the dirty log around it: the state
 * lands in path, opened as libxl opens it (no O_TRUNC). */
static void libxl_save(fixture *f, const char *path, bool live)
{
    qmp_ok(f, "xen-set-global-dirty-log", json_pack("{s:b}", "enable", 1), -1, NULL);
    if (!live)
        qmp_ok(f, "stop", NULL, -1, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    json_t *ret = NULL;
    qmp_ok(f, "add-fd", NULL, fd, &ret);
    close(fd);                                 /* libxl closes its copy */
    char fn[64];
    snprintf(fn, sizeof(fn), "/dev/fdset/%lld",
             (long long)json_integer_value(json_object_get(ret, "fdset-id")));
    json_decref(ret);
    qmp_ok(f, "xen-save-devices-state", json_pack("{s:s,s:b}", "filename", fn, "live", live), -1,
           NULL);
    qmp_ok(f, "xen-set-global-dirty-log", json_pack("{s:b}", "enable", 0), -1, NULL);
}

/* xl save, then xl restore into a new process (-incoming fd:N). */
static void test_save_restore(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/qemu-save", f->sim.dir);
    /* A longer stale file: xen-save-devices-state must truncate. */
    FILE *stale = fopen(path, "w");
    assert_non_null(stale);
    for (int i = 0; i < 100000; i++)
        fputc('x', stale);
    fclose(stale);
    scr_write(f, 0x5a);
    libxl_save(f, path, false);
    status_is(f, "paused");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 0 && st.st_size < 100000);
    assert_int_equal(rsdm_sim_stop_dm(&f->sim) & 0xffff, 0);

    scr_write(f, 0);   /* nobody answers; the new dm must bring 0x5a back */
    int in = open(path, O_RDONLY);     /* inherited by the dm as -incoming fd:N */
    assert_true(in >= 0);
    assert_int_equal(rsdm_sim_spawn_qmp(&f->sim, f->restricted, in), 0);
    status_is(f, "running");
    assert_int_equal(scr_read(f), 0x5a);
    if (!f->restricted)
        assert_int_equal(rsdm_sim_wait_value(&f->sim, f->sim.state, "running", 1000), 0);
    else   /* a restricted dm writes nothing in xenstore */
        assert_int_not_equal(rsdm_sim_wait_value(&f->sim, f->sim.state, "running", 200), 0);
    assert_int_equal(rsdm_sim_pause_count(&f->sim), 0);
}

/* A migration on one host where both dms use the same socket path (the
 * fixture's single domain): the destination starts while the source still
 * runs and binds the path anew; the source's exit must not remove the
 * destination's socket file, or the toolstack cannot reach it again. */
static void test_source_exit_keeps_destination_monitor(void **state)
{
    fixture *f = *state;
    char path[128];
    scr_write(f, 0x3c);
    rsdm_sim_save_path(&f->sim, path, sizeof(path));
    assert_int_equal(rsdm_sim_save_live(&f->sim, path, sizeof(path)), 0);
    pid_t source = f->sim.dm;
    assert_int_equal(rsdm_sim_restore_dm(&f->sim, path, NULL), 0);
    kill(source, SIGTERM);
    int st;
    assert_int_equal(waitpid(source, &st, 0), source);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    status_is(f, "running");           /* a new connection to the path */
    assert_int_equal(scr_read(f), 0x3c);
}

static void *feed_pipe(void *arg)
{
    int *fds = arg;              /* [0] the file, [1] the pipe's write end */
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        if (write(fds[1], buf, (size_t)n) != n)
            break;
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

/* xl migrate --live: the state saved live (the VM keeps running until the
 * toolstack stops it), streamed into a new process through a pipe. */
static void test_live_migrate_through_pipe(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/migrate", f->sim.dir);
    scr_write(f, 0xa5);
    libxl_save(f, path, true);
    status_is(f, "running");         /* a live save of a running VM restarts it */
    qmp_ok(f, "stop", NULL, -1, NULL);
    assert_int_equal(rsdm_sim_stop_dm(&f->sim) & 0xffff, 0);

    int p[2];
    /* Only the read end may reach the dm: a write end it inherited would
     * keep the stream from ever ending. */
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int fds[2] = { open(path, O_RDONLY | O_CLOEXEC), p[1] };
    assert_true(fds[0] >= 0);
    pthread_t feeder;
    assert_int_equal(pthread_create(&feeder, NULL, feed_pipe, fds), 0);
    fcntl(p[0], F_SETFD, 0);
    int r = rsdm_sim_spawn_qmp(&f->sim, f->restricted, p[0]);
    pthread_join(feeder, NULL);
    assert_int_equal(r, 0);
    status_is(f, "running");
    assert_int_equal(scr_read(f), 0xa5);
}

/* A stream cut short: the new dm refuses it and exits non-zero before
 * announcing anything (reference §7, 2 and 17). */
static void test_bad_incoming_refused(void **state)
{
    fixture *f = *state;
    char path[128];
    snprintf(path, sizeof(path), "%s/cut", f->sim.dir);
    libxl_save(f, path, false);
    assert_int_equal(rsdm_sim_stop_dm(&f->sim) & 0xffff, 0);
    assert_int_equal(truncate(path, 40), 0);
    int in = open(path, O_RDONLY);
    assert_true(in >= 0);
    assert_int_not_equal(rsdm_sim_spawn_qmp(&f->sim, f->restricted, in), 0);
    int st = f->sim.dm_status;
    if (!f->sim.dm_exited) {
        assert_int_equal(waitpid(f->sim.dm, &st, 0), f->sim.dm);
        f->sim.dm = 0;
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    unsigned len;
    char *v = xs_read(f->sim.xs, XBT_NULL, f->sim.state, &len);
    assert_null(v);              /* never `running` */
    free(v);
    /* teardown expects a dm to stop: start a fresh one */
    assert_int_equal(rsdm_sim_spawn_qmp(&f->sim, f->restricted, -1), 0);
}

/* Event names seen on one connection, in order. */
typedef struct seen {
    char names[32][32];
    int n;
    long long rtc_offset;
} seen;

static void on_event(void *opaque, json_t *ev)
{
    seen *s = opaque;
    const char *name = json_string_value(json_object_get(ev, "event"));
    if (name && s->n < 32)
        snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", name);
    if (name && !strcmp(name, "RTC_CHANGE"))
        s->rtc_offset = json_integer_value(json_object_get(json_object_get(ev, "data"), "offset"));
    json_decref(ev);
}

/* Pumps c until `name` has been seen (bounded). */
static void wait_event(xlq *c, seen *s, const char *name)
{
    for (int rounds = 0; rounds < 100; rounds++) {
        for (int i = 0; i < s->n; i++)
            if (!strcmp(s->names[i], name))
                return;
        if (xlq_pump(c, 100) < 0)
            fail_msg("monitor connection closed while waiting for %s", name);
    }
    fail_msg("no %s event within 10 s", name);
}

/* Two persistent connections (as xenopsd's event socket and a libxenstat
 * client) see the events that a third, libxl-style one causes, and those
 * the guest and Xen cause. */
static void test_events_reach_every_client(void **state)
{
    fixture *f = *state;
    seen sa = { .n = 0 }, sb = { .n = 0 };
    xlq *a = rsdm_sim_qmp(&f->sim), *b = rsdm_sim_qmp(&f->sim);
    assert_non_null(a);
    assert_non_null(b);
    xlq_set_event_fn(a, on_event, &sa);
    xlq_set_event_fn(b, on_event, &sb);
    qmp_ok(f, "stop", NULL, -1, NULL);
    qmp_ok(f, "cont", NULL, -1, NULL);
    qmp_ok(f, "system_powerdown", NULL, -1, NULL);
    assert_int_equal(hv_send_timeoffset(f->sim.dom, 3600), 0);
    xlq *conns[2] = { a, b };
    seen *ss[2] = { &sa, &sb };
    for (int k = 0; k < 2; k++) {
        wait_event(conns[k], ss[k], "STOP");
        wait_event(conns[k], ss[k], "RESUME");
        wait_event(conns[k], ss[k], "POWERDOWN");
        wait_event(conns[k], ss[k], "RTC_CHANGE");
        assert_int_equal(ss[k]->rtc_offset, 3600);
        assert_string_equal(ss[k]->names[0], "STOP");
        assert_string_equal(ss[k]->names[1], "RESUME");
    }
    xlq_close(a);
    xlq_close(b);
}

#define BOTH(t)                                                                                \
    cmocka_unit_test_setup_teardown(t, setup_plain, teardown),                                \
        cmocka_unit_test_setup_teardown(t, setup_restricted, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_stop_cont_cycles),
        BOTH(test_events_reach_every_client),
        BOTH(test_save_restore),
        BOTH(test_source_exit_keeps_destination_monitor),
        BOTH(test_live_migrate_through_pipe),
        BOTH(test_bad_incoming_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
