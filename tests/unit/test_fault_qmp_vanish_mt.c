/*
 * Issue 13.5: a QMP client vanishing mid-save, against a real rsdm-sim in
 * the qemu-xen dialect while a guest vCPU keeps using the dm's UART.  The
 * VM is stopped; a client negotiates, sends xen-save-devices-state and
 * closes at once (half the time with a reset: SO_LINGER 0).  Each time:
 * rsdm keeps serving (query-status on a new connection says paused), the
 * file is absent or complete (byte for byte what a retry writes), the
 * retry on a new connection succeeds, `cont` runs the guest again, whose
 * accesses all stay answered.  At the end a new rsdm-sim restores the last
 * retried file (-incoming) and runs; the first exits cleanly.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../lib/rsdm_sim.h"

#define TRIALS 30
#define BOUND_MS 10000

typedef struct fixture {
    rsdm_sim sim;
    rsdm_sim_guest g;
} fixture;

static fixture F;

static int setup(void **state)
{
    memset(&F, 0, sizeof(F));
    if (rsdm_sim_start_qmp(&F.sim, "qmp-vanish", 1, false) < 0)
        return -1;
    if (rsdm_sim_guest_start(&F.g, &F.sim) < 0)
        return -1;
    *state = &F;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rsdm_sim_guest_stop(&F.g);
    int st = rsdm_sim_stop_dm(&F.sim);
    rsdm_sim_stop(&F.sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

static json_t *qmp(const char *cmd, json_t *args)
{
    json_t *ret = NULL;
    if (rsdm_sim_qmp_exec(&F.sim, cmd, args, -1, &ret) != 0)
        fail_msg("%s failed on a new connection (see above)", cmd);
    return ret;
}

static void status_is(const char *want)
{
    json_t *ret = qmp("query-status", NULL);
    const char *st = json_string_value(json_object_get(ret, "status"));
    if (!st || strcmp(st, want) != 0)
        fail_msg("status '%s', expected '%s'", st ? st : "?", want);
    json_decref(ret);
}

/* Reads up to the first newline (the greeting, or a reply), bounded. */
static void read_line(int fd)
{
    char c;
    for (int i = 0; i < 65536; i++) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, BOUND_MS) <= 0)
            fail_msg("no message from rsdm within %d ms", BOUND_MS);
        ssize_t n = read(fd, &c, 1);
        assert_true(n == 1);
        if (c == '\n')
            return;
    }
    fail_msg("a line of more than 64 KiB from rsdm");
}

/* Negotiates, sends the save and goes away without reading the reply. */
static void vanish_mid_save(const char *path, bool reset)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, F.sim.qmp_path, strlen(F.sim.qmp_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    read_line(fd);                                              /* greeting */
    const char *caps = "{\"execute\":\"qmp_capabilities\"}\r\n";
    assert_int_equal(send(fd, caps, strlen(caps), MSG_NOSIGNAL), (ssize_t)strlen(caps));
    read_line(fd);
    char cmd[512];
    int n = snprintf(cmd, sizeof(cmd),
                     "{\"execute\":\"xen-save-devices-state\",\"arguments\":{\"filename\":\"%s\"}}\r\n",
                     path);
    assert_int_equal(send(fd, cmd, (size_t)n, MSG_NOSIGNAL), n);
    if (reset) {
        struct linger l = { 1, 0 };
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
    }
    close(fd);
}

/* 1 if path holds exactly what ref holds, 0 if it is absent. */
static int same_or_absent(const char *path, const char *ref)
{
    static uint8_t a[1 << 20], b[1 << 20];
    int fa = open(path, O_RDONLY | O_CLOEXEC);
    if (fa < 0) {
        assert_int_equal(errno, ENOENT);
        return 0;
    }
    int fb = open(ref, O_RDONLY | O_CLOEXEC);
    assert_true(fb >= 0);
    ssize_t na = read(fa, a, sizeof(a)), nb = read(fb, b, sizeof(b));
    close(fa);
    close(fb);
    assert_true(nb > 0 && nb < (ssize_t)sizeof(b));
    if (na != nb || memcmp(a, b, (size_t)nb) != 0)
        fail_msg("%s (%zd bytes) is not the complete state (%zd bytes in %s)", path, na, nb, ref);
    return 1;
}

static void test_client_vanishes_mid_save(void **state)
{
    (void)state;
    char path[256], retry[256];
    unsigned complete = 0, absent = 0;
    for (int t = 0; t < TRIALS; t++) {
        json_decref(qmp("stop", NULL));
        snprintf(path, sizeof(path), "%s/vanish.%d", F.sim.dir, t);
        snprintf(retry, sizeof(retry), "%s/retry.%d", F.sim.dir, t);
        vanish_mid_save(path, t % 2);
        /* rsdm keeps serving; the retry on a new connection works. */
        status_is("paused");
        json_decref(qmp("xen-save-devices-state", json_pack("{s:s}", "filename", retry)));
        if (same_or_absent(path, retry))
            complete++;
        else
            absent++;
        json_decref(qmp("cont", NULL));
        status_is("running");
        rsdm_sim_guest_step(&F.g);
    }
    rsdm_sim_guest_step(&F.g);
    assert_int_equal(atomic_load(&F.g.failures), 0);
    assert_int_equal(atomic_load(&F.g.mismatches), 0);
    printf("%d clients vanished mid-save (%d with a reset): %u files complete, %u absent; every "
           "retry worked and the guest's %lu accesses were all answered\n", TRIALS, TRIALS / 2,
           complete, absent, atomic_load(&F.g.accesses));

    /* The last retried file restores into a new rsdm-sim. */
    rsdm_sim_guest_stop(&F.g);
    json_decref(qmp("stop", NULL));
    int st = rsdm_sim_stop_dm(&F.sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int in = open(retry, O_RDONLY);
    assert_true(in >= 0);
    assert_int_equal(rsdm_sim_spawn_qmp(&F.sim, false, in), 0);
    status_is("running");
    assert_int_equal(rsdm_sim_guest_start(&F.g, &F.sim), 0);
    rsdm_sim_guest_step(&F.g);
    assert_int_equal(atomic_load(&F.g.failures), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_vanishes_mid_save, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
