/*
 * Bad QMP input against a real rsdm-sim (qemu-xen dialect) while a guest
 * vCPU keeps using the dm's UART: broken JSON, a 1 MiB object, 10,000-deep
 * nesting, wrong types, missing ids, 1,000 connections in a burst, clients
 * that vanish mid-command and one that never reads its replies.  Each bad
 * input gets QEMU's error class, the monitor keeps serving, rsdm never
 * exits, and the guest's accesses keep being answered throughout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../lib/rsdm_sim.h"
#include "hv.h"

#define BURST 1000
#define BOUND_MS 10000

typedef struct fixture {
    rsdm_sim sim;
    rsdm_sim_guest g;
} fixture;

static fixture fx;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int setup(void **state)
{
    /* Room for the burst in both processes (the dm inherits the limit). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4 * BURST &&
        rl.rlim_max >= 4 * BURST) {
        rl.rlim_cur = 4 * BURST;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&fx, 0, sizeof(fx));
    if (rsdm_sim_start_qmp(&fx.sim, "robust", 1, false) < 0)
        return -1;
    if (rsdm_sim_guest_start(&fx.g, &fx.sim) < 0)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rsdm_sim_guest_stop(&f->g);
    assert_int_equal(atomic_load(&f->g.failures), 0);
    assert_int_equal(atomic_load(&f->g.mismatches), 0);
    assert_int_equal(hv_null_hits_total(f->sim.dom), 0);
    int st = rsdm_sim_stop_dm(&f->sim);
    rsdm_sim_stop(&f->sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

/* The guest is answered: its access count grows by `n` within the bound. */
static void guest_progresses(fixture *f, unsigned long n)
{
    unsigned long start = atomic_load(&f->g.accesses);
    long long deadline = now_ms() + BOUND_MS;
    while (atomic_load(&f->g.accesses) < start + n) {
        if (now_ms() > deadline)
            fail_msg("the guest made %lu of %lu accesses in %d ms",
                     atomic_load(&f->g.accesses) - start, n, BOUND_MS);
        sched_yield();
    }
}

static int raw_connect(fixture *f)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, f->sim.qmp_path, strlen(f->sim.qmp_path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

typedef struct conn {
    int fd;
    char buf[8192];
    size_t len;
} conn;

static json_t *read_msg(conn *c)
{
    long long deadline = now_ms() + BOUND_MS;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf) + 1;
            json_t *j = json_loadb(c->buf, n, 0, NULL);
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            assert_non_null(j);
            return j;
        }
        assert_true(c->len < sizeof(c->buf));
        struct pollfd p = { c->fd, POLLIN, 0 };
        int left = (int)(deadline - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            fail_msg("no message from rsdm within %d ms", BOUND_MS);
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n <= 0)
            fail_msg("rsdm closed the monitor connection");
        c->len += (size_t)n;
    }
}

/* A negotiated raw connection. */
static void open_conn(fixture *f, conn *c)
{
    c->fd = raw_connect(f);
    c->len = 0;
    json_decref(read_msg(c));                                  /* greeting */
    const char *caps = "{\"execute\":\"qmp_capabilities\"}\r\n";
    assert_int_equal(write(c->fd, caps, strlen(caps)), (ssize_t)strlen(caps));
    json_t *r = read_msg(c);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* The next non-event message must be an error of class cls whose text
 * contains desc. */
static void expect_error(conn *c, const char *cls, const char *desc)
{
    json_t *r;
    while (json_object_get(r = read_msg(c), "event"))
        json_decref(r);
    json_t *e = json_object_get(r, "error");
    if (!e)
        fail_msg("expected an error %s", cls);
    const char *gc = json_string_value(json_object_get(e, "class"));
    const char *gd = json_string_value(json_object_get(e, "desc"));
    if (!gc || strcmp(gc, cls) != 0 || !gd || !strstr(gd, desc))
        fail_msg("got %s \"%s\", expected %s \"...%s...\"", gc ? gc : "?", gd ? gd : "?", cls,
                 desc);
    json_decref(r);
}

static void still_serving(conn *c)
{
    const char *q = "{\"execute\":\"query-status\",\"id\":\"alive\"}\r\n";
    send_all(c->fd, q, strlen(q));
    json_t *r;
    while (json_object_get(r = read_msg(c), "event"))
        json_decref(r);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "alive");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "return"), "status")), "running");
    json_decref(r);
}

static void test_bad_input_gets_qemu_errors(void **state)
{
    fixture *f = *state;
    conn c;
    open_conn(f, &c);

    const char *broken = "{\"execute\": \"query-status\", \"id\": 1,, }\r\n";
    send_all(c.fd, broken, strlen(broken));
    expect_error(&c, "GenericError", "JSON parse error");
    still_serving(&c);
    guest_progresses(f, 100);

    /* 1 MiB (and a bit) in one string value */
    size_t big = 1024 * 1024 + 64;
    char *obj = malloc(big + 128);
    assert_non_null(obj);
    int k = snprintf(obj, 128, "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"");
    memset(obj + k, 'A', big);
    strcpy(obj + k + big, "\"}}\r\n");
    send_all(c.fd, obj, strlen(obj));
    free(obj);
    expect_error(&c, "GenericError", "JSON token size limit exceeded");
    still_serving(&c);
    guest_progresses(f, 100);

    /* 10,000-deep nesting */
    size_t depth = 10000;
    char *nest = malloc(2 * depth + 4);
    assert_non_null(nest);
    memset(nest, '[', depth);
    memset(nest + depth, ']', depth);
    strcpy(nest + 2 * depth, "\r\n");
    send_all(c.fd, nest, strlen(nest));
    free(nest);
    expect_error(&c, "GenericError", "JSON nesting depth limit exceeded");
    still_serving(&c);

    /* wrong types and shapes */
    static const struct { const char *in, *cls, *desc; } bad[] = {
        { "[1,2]", "GenericError", "QMP input must be a JSON object" },
        { "{\"id\":7}", "GenericError", "QMP input lacks member 'execute'" },
        { "{\"execute\":5}", "GenericError", "QMP input member 'execute' must be a string" },
        { "{\"execute\":\"stop\",\"arguments\":[]}", "GenericError",
          "QMP input member 'arguments' must be an object" },
        { "{\"execute\":\"stop\",\"arguments\":{\"x\":1}}", "GenericError",
          "Parameter 'x' is unexpected" },
        { "{\"execute\":\"xen-save-devices-state\",\"arguments\":{\"filename\":5}}",
          "GenericError", "Invalid parameter type for 'filename', expected: string" },
        { "{\"execute\":\"xen-set-global-dirty-log\"}", "GenericError",
          "Parameter 'enable' is missing" },
        { "{\"execute\":\"no-such-command\"}", "CommandNotFound",
          "The command no-such-command has not been found" },
        { "{\"execute\":\"qmp_capabilities\"}", "CommandNotFound",
          "Capabilities negotiation is already complete" },
        { "{\"execute\":\"set-action\",\"arguments\":{\"panic\":\"explode\"}}", "GenericError",
          "does not accept value 'explode'" },
        { "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":99}}", "GenericError",
          "not found" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        send_all(c.fd, bad[i].in, strlen(bad[i].in));
        send_all(c.fd, "\r\n", 2);
        expect_error(&c, bad[i].cls, bad[i].desc);
    }
    /* no id: a reply without one */
    const char *noid = "{\"execute\":\"query-status\"}\r\n";
    send_all(c.fd, noid, strlen(noid));
    json_t *r = read_msg(&c);
    assert_non_null(json_object_get(r, "return"));
    assert_null(json_object_get(r, "id"));
    json_decref(r);
    still_serving(&c);
    close(c.fd);
    guest_progresses(f, 100);
}

static int dm_fd_count(fixture *f)
{
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "ls /proc/%ld/fd | wc -l", (long)f->sim.dm);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

static void test_burst_of_connections(void **state)
{
    fixture *f = *state;
    static int fds[BURST];
    int base = dm_fd_count(f);
    assert_true(base > 0);
    for (int i = 0; i < BURST; i++)
        fds[i] = raw_connect(f);
    /* Every one is greeted; half send a command and vanish before the
     * reply, half vanish mid-object. */
    for (int i = 0; i < BURST; i++) {
        conn c = { .fd = fds[i] };
        json_t *g = read_msg(&c);
        assert_non_null(json_object_get(g, "QMP"));
        json_decref(g);
        const char *cut = i % 2 ? "{\"execute\":\"qmp_capabilities\"}\r\n{\"execute\":\"stop\""
                                : "{\"execute\":\"qmp_capabilities\"}\r\n{\"execute\":\"query-st";
        send_all(fds[i], cut, strlen(cut));
        close(fds[i]);
    }
    guest_progresses(f, 1000);
    /* Every dropped client is closed on rsdm's side too (each round trip
     * below is a loop pass in which the hang-ups are handled). */
    int n = -1;
    for (long long deadline = now_ms() + BOUND_MS; now_ms() < deadline;) {
        conn c;
        open_conn(f, &c);
        still_serving(&c);              /* no half-sent `stop` ran */
        close(c.fd);
        if ((n = dm_fd_count(f)) <= base + 1)
            break;
    }
    if (n > base + 1)
        fail_msg("rsdm holds %d fds after the burst, %d before", n, base);
    printf("%d connections in a burst, each greeted and dropped; rsdm serving\n", BURST);
}

/* A client that sends commands and never reads: its queue overflows and it
 * is dropped; nobody else waits for it. */
static void test_client_that_never_reads(void **state)
{
    fixture *f = *state;
    conn slow;
    open_conn(f, &slow);
    const char *q = "{\"execute\":\"query-status\"}\r\n";
    size_t ql = strlen(q), n = 200000;
    char *many = malloc(ql * n);
    assert_non_null(many);
    for (size_t i = 0; i < n; i++)
        memcpy(many + i * ql, q, ql);
    fcntl(slow.fd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    long long deadline = now_ms() + BOUND_MS;
    /* Write until rsdm stops reading us (our side fills) or drops us. */
    while (off < ql * n && now_ms() < deadline) {
        ssize_t w = send(slow.fd, many + off, ql * n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EPIPE)
            break;                                  /* dropped */
        if (w < 0 && errno != EAGAIN && errno != ECONNRESET)
            fail_msg("send: %s", strerror(errno));
        if (w < 0 && errno == ECONNRESET)
            break;
        struct pollfd p = { slow.fd, POLLOUT, 0 };
        poll(&p, 1, 100);
    }
    free(many);
    /* It was dropped: draining what rsdm sent ends in EOF, not a wait. */
    fcntl(slow.fd, F_SETFL, 0);
    struct timeval tv = { BOUND_MS / 1000, 0 };
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char sink[65536];
    ssize_t got;
    while ((got = read(slow.fd, sink, sizeof(sink))) > 0)
        ;
    assert_true(got == 0 || errno == ECONNRESET);
    /* Meanwhile others are served and the guest runs. */
    conn c;
    open_conn(f, &c);
    still_serving(&c);
    close(c.fd);
    guest_progresses(f, 1000);
    close(slow.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_input_gets_qemu_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_of_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_that_never_reads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
