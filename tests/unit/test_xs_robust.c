/* test_xs_robust: hostile and heavy clients against xensim's xenstore
 * daemon.  Raw sockets send what libxenstore never would (truncated
 * headers, oversize lengths, unknown types, unterminated strings, clients
 * that vanish mid-request or never read); after each, the daemon must
 * still answer a well-behaved client.  Load: 1000 watches on one path, a
 * transaction storm with conflicts, a reader that never reads. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <xenstore.h>
#include <xen/io/xs_wire.h>

#include "xs_testd.h"

static struct xs_testd daemon_;

struct reply {
    uint32_t type, req_id, tx_id, len;
    char body[XENSTORE_PAYLOAD_MAX + 1];
};

static int raw_connect_to(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static int raw_connect(void)
{
    return raw_connect_to(daemon_.sock);
}

static void send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len) {
        ssize_t w = send(fd, c, len, MSG_NOSIGNAL);
        assert_true(w > 0);
        c += w;
        len -= (size_t)w;
    }
}

static void send_msg(int fd, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
                     size_t len)
{
    struct xsd_sockmsg h = { type, req_id, tx_id, (uint32_t)len };
    send_all(fd, &h, sizeof(h));
    if (len)
        send_all(fd, payload, len);
}

/* Reads exactly len bytes within timeout_ms; returns bytes read (0 at EOF). */
static size_t read_full(int fd, void *p, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd pf = { fd, POLLIN, 0 };
        int r = poll(&pf, 1, timeout_ms);
        assert_true(r > 0);   /* a hang is a failure */
        ssize_t n = read(fd, (char *)p + got, len - got);
        if (n == 0)
            return got;
        if (n < 0 && errno == ECONNRESET)
            return got;
        assert_true(n > 0);
        got += (size_t)n;
    }
    return got;
}

static void recv_msg(int fd, struct reply *r)
{
    struct xsd_sockmsg h;
    assert_int_equal(read_full(fd, &h, sizeof(h), 5000), sizeof(h));
    assert_true(h.len <= XENSTORE_PAYLOAD_MAX);
    r->type = h.type;
    r->req_id = h.req_id;
    r->tx_id = h.tx_id;
    r->len = h.len;
    assert_int_equal(read_full(fd, r->body, h.len, 5000), h.len);
    r->body[h.len] = '\0';
}

/* Skips watch events. */
static void recv_reply(int fd, struct reply *r)
{
    do
        recv_msg(fd, r);
    while (r->type == XS_WATCH_EVENT);
}

static void expect_error(int fd, const char *err)
{
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_ERROR);
    assert_string_equal(r.body, err);
}

/* The daemon was closed on us: EOF within the bound. */
static void expect_closed(int fd)
{
    char c;
    assert_int_equal(read_full(fd, &c, 1, 5000), 0);
}

/* A well-behaved client still gets served. */
static void assert_daemon_serves(void)
{
    int fd = raw_connect();
    send_msg(fd, XS_WRITE, 42, 0, "/alive\0yes", 10);
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_WRITE);
    assert_int_equal(r.req_id, 42);
    send_msg(fd, XS_READ, 43, 0, "/alive", 7);
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_READ);
    assert_int_equal(r.len, 3);
    assert_memory_equal(r.body, "yes", 3);
    close(fd);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("XENSIM_LOG", "error", 1);
    signal(SIGPIPE, SIG_IGN);
    return xs_testd_start(&daemon_, XS_TESTD_FORK, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return xs_testd_stop(&daemon_, false) == 0 ? 0 : -1;
}

static void test_truncated_header(void **state)
{
    (void)state;
    /* Half a header, then silence: others are not blocked meanwhile. */
    int bad = raw_connect();
    send_all(bad, "\x02\x00\x00", 3);
    assert_daemon_serves();
    close(bad);
    /* Half a header, then gone. */
    bad = raw_connect();
    send_all(bad, "\x02\x00\x00\x00\x00\x00\x00", 7);
    close(bad);
    assert_daemon_serves();
}

static void test_oversize_length(void **state)
{
    (void)state;
    int bad = raw_connect();
    struct xsd_sockmsg h = { XS_READ, 1, 0, XENSTORE_PAYLOAD_MAX + 1 };
    send_all(bad, &h, sizeof(h));
    expect_closed(bad);   /* dropped, as xenstored does */
    close(bad);
    bad = raw_connect();
    struct xsd_sockmsg h2 = { XS_WRITE, 1, 0, 0xffffffffu };
    send_all(bad, &h2, sizeof(h2));
    expect_closed(bad);
    close(bad);
    assert_daemon_serves();
    /* Exactly the limit is fine. */
    int fd = raw_connect();
    char big[XENSTORE_PAYLOAD_MAX];
    memset(big, 'v', sizeof(big));
    memcpy(big, "/maxed", 7);
    send_msg(fd, XS_WRITE, 7, 0, big, sizeof(big));
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_WRITE);
    send_msg(fd, XS_READ, 8, 0, "/maxed", 7);
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_READ);
    assert_int_equal(r.len, XENSTORE_PAYLOAD_MAX - 7);
    close(fd);
}

static void test_unknown_types(void **state)
{
    (void)state;
    int fd = raw_connect();
    const uint32_t types[] = { 20, XS_TYPE_COUNT, 999, XS_INVALID, XS_WATCH_EVENT, XS_ERROR };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        send_msg(fd, types[i], (uint32_t)i, 0, "x", 2);
        struct reply r;
        recv_reply(fd, &r);
        assert_int_equal(r.type, XS_ERROR);
        assert_int_equal(r.req_id, (uint32_t)i);
        assert_string_equal(r.body, "ENOSYS");
    }
    /* The same connection still works. */
    send_msg(fd, XS_READ, 50, 0, "/", 2);
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_READ);
    close(fd);
}

static void test_malformed_payloads(void **state)
{
    (void)state;
    int fd = raw_connect();
    send_msg(fd, XS_READ, 1, 0, "/a", 2);             /* no NUL */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_READ, 1, 0, "/a\0/b", 6);         /* two strings */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_READ, 1, 0, NULL, 0);             /* empty */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_WRITE, 1, 0, "/nonul", 6);        /* path never ends */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_WATCH, 1, 0, "/w\0", 3);          /* token missing */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_SET_PERMS, 1, 0, "/\0q7\0", 5);  /* bad perm letter */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_SET_PERMS, 1, 0, "/\0r99999\0", 9); /* domid out of range */
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_TRANSACTION_END, 1, 0, "T", 2);   /* no transaction */
    expect_error(fd, "ENOENT");
    send_msg(fd, XS_READ, 1, 77, "/", 2);             /* unknown tx id */
    expect_error(fd, "ENOENT");
    send_msg(fd, XS_INTRODUCE, 1, 0, "abc\0" "1\0" "1", 8);
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_GET_DOMAIN_PATH, 1, 0, "-1", 3);
    expect_error(fd, "EINVAL");
    send_msg(fd, XS_DIRECTORY_PART, 1, 0, "/\0x", 4);
    expect_error(fd, "EINVAL");
    /* Over-long path. */
    char longp[XENSTORE_ABS_PATH_MAX + 16];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    send_msg(fd, XS_WRITE, 1, 0, longp, sizeof(longp));
    expect_error(fd, "EINVAL");
    /* Still served on the same connection. */
    send_msg(fd, XS_GET_DOMAIN_PATH, 9, 0, "3", 2);
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_GET_DOMAIN_PATH);
    assert_string_equal(r.body, "/local/domain/3");
    close(fd);
    assert_daemon_serves();
}

static void test_vanish_mid_request(void **state)
{
    (void)state;
    /* Header says 100 bytes, 10 arrive, the client is gone. */
    int bad = raw_connect();
    struct xsd_sockmsg h = { XS_WRITE, 1, 0, 100 };
    send_all(bad, &h, sizeof(h));
    send_all(bad, "/vanish\0ab", 10);
    close(bad);
    /* Many requests, then gone without reading a reply; with a
     * transaction and a watch open. */
    bad = raw_connect();
    send_msg(bad, XS_TRANSACTION_START, 1, 0, "", 1);
    send_msg(bad, XS_WATCH, 2, 0, "/\0tok", 6);
    for (int i = 0; i < 500; i++)
        send_msg(bad, XS_WRITE, 3, 0, "/vanish/x\0data", 14);
    close(bad);
    assert_daemon_serves();
}

static void test_thousand_watches(void **state)
{
    (void)state;
    int w = raw_connect();
    char p[64];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(p, sizeof(p), "/many%ctok%d", '\0', i);
        send_msg(w, XS_WATCH, (uint32_t)i, 0, p, (size_t)n + 1);
    }
    int oks = 0, events = 0;
    while (oks < 1000 || events < 1000) {
        struct reply r;
        recv_msg(w, &r);
        if (r.type == XS_WATCH)
            oks++;
        else if (r.type == XS_WATCH_EVENT)
            events++;
        else
            fail_msg("unexpected reply type %u (%s)", r.type, r.body);
    }
    /* One write: 1000 events, each token once. */
    int fd = raw_connect();
    send_msg(fd, XS_WRITE, 1, 0, "/many/x\0v", 9);
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_WRITE);
    static char seen[1000];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 1000; i++) {
        recv_msg(w, &r);
        assert_int_equal(r.type, XS_WATCH_EVENT);
        assert_string_equal(r.body, "/many/x");
        int tok = atoi(r.body + strlen(r.body) + 1 + 3);
        assert_true(tok >= 0 && tok < 1000);
        assert_int_equal(seen[tok], 0);
        seen[tok] = 1;
    }
    close(w);
    close(fd);
    assert_daemon_serves();
}

/* K handles start transactions on one counter, all read it, all write,
 * then commit in turn: exactly one wins per round, the rest get EAGAIN
 * and retry — a deterministic conflict storm. */
static void test_transaction_storm_deterministic(void **state)
{
    (void)state;
    enum { K = 8 };
    setenv("XENSTORED_PATH", daemon_.sock, 1);
    struct xs_handle *h[K];
    for (int i = 0; i < K; i++) {
        h[i] = xs_open(0);
        assert_non_null(h[i]);
    }
    assert_true(xs_write(h[0], XBT_NULL, "/storm/n", "0", 1));
    int done[K] = { 0 }, remaining = K, conflicts = 0;
    while (remaining) {
        xs_transaction_t t[K];
        for (int i = 0; i < K; i++) {
            if (done[i])
                continue;
            t[i] = xs_transaction_start(h[i]);
            assert_true(t[i] != XBT_NULL);
            unsigned len;
            char *v = xs_read(h[i], t[i], "/storm/n", &len);
            assert_non_null(v);
            char buf[16];
            snprintf(buf, sizeof(buf), "%d", atoi(v) + 1);
            free(v);
            assert_true(xs_write(h[i], t[i], "/storm/n", buf, strlen(buf)));
        }
        int winners = 0;
        for (int i = 0; i < K; i++) {
            if (done[i])
                continue;
            if (xs_transaction_end(h[i], t[i], false)) {
                winners++;
                done[i] = 1;
                remaining--;
            } else {
                assert_int_equal(errno, EAGAIN);
                conflicts++;
            }
        }
        assert_int_equal(winners, 1);
    }
    assert_int_equal(conflicts, K * (K - 1) / 2);
    unsigned len;
    char *v = xs_read(h[0], XBT_NULL, "/storm/n", &len);
    assert_int_equal(atoi(v), K);
    free(v);
    for (int i = 0; i < K; i++)
        xs_close(h[i]);
}

/* Concurrent clients in separate processes, each incrementing a counter
 * with the retry loop: no increment may be lost or doubled. */
static void test_transaction_storm_concurrent(void **state)
{
    (void)state;
    enum { PROCS = 6, ITER = 150 };
    setenv("XENSTORED_PATH", daemon_.sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_non_null(h);
    assert_true(xs_write(h, XBT_NULL, "/cstorm/n", "0", 1));
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        fflush(NULL);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            struct xs_handle *c = xs_open(0);
            if (!c)
                _exit(2);
            for (int i = 0; i < ITER; i++) {
                for (int tries = 0;; tries++) {
                    if (tries > 10000)
                        _exit(3);
                    xs_transaction_t t = xs_transaction_start(c);
                    if (t == XBT_NULL)
                        _exit(4);
                    unsigned len;
                    char *v = xs_read(c, t, "/cstorm/n", &len);
                    if (!v)
                        _exit(5);
                    char buf[16];
                    snprintf(buf, sizeof(buf), "%d", atoi(v) + 1);
                    free(v);
                    char own[32];
                    snprintf(own, sizeof(own), "/cstorm/p%d", p);
                    if (!xs_write(c, t, "/cstorm/n", buf, strlen(buf)) ||
                        !xs_write(c, t, own, buf, strlen(buf)))
                        _exit(6);
                    if (xs_transaction_end(c, t, false))
                        break;
                    if (errno != EAGAIN)
                        _exit(7);
                }
            }
            xs_close(c);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    unsigned len;
    char *v = xs_read(h, XBT_NULL, "/cstorm/n", &len);
    assert_int_equal(atoi(v), PROCS * ITER);
    free(v);
    xs_close(h);
    assert_daemon_serves();
}

static long dropped_events(struct xs_handle *h)
{
    char *stats = xs_control_command(h, "stats", NULL, 0);
    assert_non_null(stats);
    const char *d = strstr(stats, "dropped-events ");
    assert_non_null(d);
    long n = atol(d + strlen("dropped-events "));
    free(stats);
    return n;
}

/* A guest that registers a watch and never reads: the writer is not
 * slowed down to its pace; the daemon queues up to the guest's quota and
 * drops the rest (the kernel socket buffer takes the first few hundred). */
static void test_slow_reader(void **state)
{
    (void)state;
    setenv("XENSTORED_PATH", daemon_.sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_non_null(h);
    assert_true(xs_introduce_domain(h, 32, 1, 1));
    char sock[400];
    xs_testd_domain_sock(&daemon_, 32, sock, sizeof(sock));
    int lazy = raw_connect_to(sock);
    send_msg(lazy, XS_WATCH, 1, 0, "data\0t", 7);
    /* And a pipeline of requests whose replies it never reads. */
    for (int i = 0; i < 3000; i++)
        send_msg(lazy, XS_READ, 2, 0, "domid", 6);
    char path[300];
    int n = snprintf(path, sizeof(path), "/local/domain/32/data/");
    memset(path + n, 'p', 200);
    path[n + 200] = '\0';
    /* Write until the daemon reports drops: however large the kernel's
     * socket buffer is, the guest's 1024-event quota is reached; bounded. */
    long before = dropped_events(h), dropped = before;
    for (int round = 0; round < 100 && dropped == before; round++) {
        for (int i = 0; i < 1000; i++)
            assert_true(xs_write(h, XBT_NULL, path, "v", 1));
        dropped = dropped_events(h);
    }
    assert_true(dropped > before);
    close(lazy);
    assert_true(xs_release_domain(h, 32));
    xs_close(h);
    assert_daemon_serves();
}

static void test_guest_quotas(void **state)
{
    (void)state;
    setenv("XENSTORED_PATH", daemon_.sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_true(xs_introduce_domain(h, 31, 1, 1));
    char sock[400];
    xs_testd_domain_sock(&daemon_, 31, sock, sizeof(sock));
    int g = raw_connect_to(sock);
    /* Xen's defaults: 10 transactions, 128 watches per guest. */
    struct reply r;
    for (int i = 0; i < 10; i++) {
        send_msg(g, XS_TRANSACTION_START, 1, 0, "", 1);
        recv_reply(g, &r);
        assert_int_equal(r.type, XS_TRANSACTION_START);
    }
    send_msg(g, XS_TRANSACTION_START, 1, 0, "", 1);
    expect_error(g, "ENOSPC");
    char p[64];
    for (int i = 0; i < 128; i++) {
        int n = snprintf(p, sizeof(p), "data%ct%d", '\0', i);
        send_msg(g, XS_WATCH, 1, 0, p, (size_t)n + 1);
        recv_reply(g, &r);
        assert_int_equal(r.type, XS_WATCH);
    }
    send_msg(g, XS_WATCH, 1, 0, "data\0over", 10);
    expect_error(g, "ENOSPC");
    /* RESET_WATCHES frees both. */
    send_msg(g, XS_RESET_WATCHES, 1, 0, "", 1);
    recv_reply(g, &r);
    assert_int_equal(r.type, XS_RESET_WATCHES);
    send_msg(g, XS_TRANSACTION_START, 1, 0, "", 1);
    recv_reply(g, &r);
    assert_int_equal(r.type, XS_TRANSACTION_START);
    /* Guest-only limits: value size, privileged types. */
    char big[2100];
    memset(big, 'b', sizeof(big));
    memcpy(big, "data/big", 9);
    send_msg(g, XS_WRITE, 1, 0, big, sizeof(big));
    expect_error(g, "ENOSPC");
    send_msg(g, XS_RELEASE, 1, 0, "31", 3);
    expect_error(g, "EACCES");
    close(g);
    assert_true(xs_release_domain(h, 31));
    xs_close(h);
}

/* A client pipelining far more replies than the socket holds: the daemon
 * stops reading it while its replies pile up, and resumes as it reads. */
static void test_pipelined_backpressure(void **state)
{
    (void)state;
    int fd = raw_connect();
    char big[4000];
    memset(big, 'q', sizeof(big));
    memcpy(big, "/pipe/big", 10);
    send_msg(fd, XS_WRITE, 0, 0, big, sizeof(big));
    struct reply r;
    recv_reply(fd, &r);
    assert_int_equal(r.type, XS_WRITE);
    enum { N = 3000 };   /* ~12 MB of replies */
    /* Send from a child so this process can read at the same time. */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (uint32_t i = 0; i < N; i++) {
            struct xsd_sockmsg h = { XS_READ, i, 0, 10 };
            if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h) ||
                send(fd, "/pipe/big", 10, MSG_NOSIGNAL) != 10)
                _exit(1);
        }
        _exit(0);
    }
    for (uint32_t i = 0; i < N; i++) {
        recv_reply(fd, &r);
        assert_int_equal(r.type, XS_READ);
        assert_int_equal(r.req_id, i);
        assert_int_equal(r.len, sizeof(big) - 10);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(fd);
    assert_daemon_serves();
}

/* Many clients at once, all served by the one poll loop: each sends its
 * request before any reply is read. */
static void test_many_clients(void **state)
{
    (void)state;
    enum { N = 300 };
    static int fds[N];
    char msg[64];
    for (int i = 0; i < N; i++)
        fds[i] = raw_connect();
    for (int i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof(msg), "/crowd/c%d%cv%d", i, '\0', i);
        send_msg(fds[i], XS_WRITE, (uint32_t)i, 0, msg, (size_t)n);
    }
    for (int i = N - 1; i >= 0; i--) {
        struct reply r;
        recv_reply(fds[i], &r);
        assert_int_equal(r.type, XS_WRITE);
        assert_int_equal(r.req_id, (uint32_t)i);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof(msg), "/crowd/c%d", (N - 1) - i);
        send_msg(fds[i], XS_READ, 1, 0, msg, (size_t)n + 1);
        struct reply r;
        recv_reply(fds[i], &r);
        assert_int_equal(r.type, XS_READ);
        char want[16];
        snprintf(want, sizeof(want), "v%d", (N - 1) - i);
        assert_int_equal(r.len, strlen(want));
        assert_memory_equal(r.body, want, r.len);
        close(fds[i]);
    }
}

/* A domain may hold a bounded number of connections; others are unaffected. */
static void test_domain_connection_cap(void **state)
{
    (void)state;
    setenv("XENSTORED_PATH", daemon_.sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_true(xs_introduce_domain(h, 33, 1, 1));
    char sock[400];
    xs_testd_domain_sock(&daemon_, 33, sock, sizeof(sock));
    enum { N = 70 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = raw_connect_to(sock);
    int served = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        /* A refused connection may already be closed: the send can fail. */
        char req[sizeof(struct xsd_sockmsg) + 6];
        struct xsd_sockmsg rh = { XS_READ, 1, 0, 6 };
        memcpy(req, &rh, sizeof(rh));
        memcpy(req + sizeof(rh), "domid", 6);
        if (send(fds[i], req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
            refused++;
            continue;
        }
        struct xsd_sockmsg hd;
        size_t got = read_full(fds[i], &hd, sizeof(hd), 5000);
        if (got == sizeof(hd)) {
            char body[16];
            assert_int_equal(read_full(fds[i], body, hd.len, 5000), hd.len);
            served++;
        } else {
            refused++;
        }
    }
    assert_int_equal(served, 64);
    assert_int_equal(refused, N - 64);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    assert_true(xs_release_domain(h, 33));
    xs_close(h);
    assert_daemon_serves();
}

/* Requests that arrive together with an INTRODUCE or RELEASE (whose
 * handlers flush the daemon) are answered once each, in order.  Found by
 * fuzz_xs_wire: the flush re-entered the connection's input processing,
 * which dispatched the not yet consumed requests a second time and, with
 * enough RELEASEs queued, recursed until the stack overflowed. */
static void test_pipelined_domain_ops_answered_once(void **state)
{
    (void)state;
    int fd = raw_connect();
    static const char intro[] = "57\0" "4096\0" "3";
    static const char val[] = "/pipelined\0v";
    unsigned char buf[1024];
    size_t n = 0;
#define PUT(type, id, p, len)                                                                      \
    do {                                                                                           \
        struct xsd_sockmsg h_ = { type, id, 0, (uint32_t)(len) };                                  \
        memcpy(buf + n, &h_, sizeof(h_));                                                          \
        memcpy(buf + n + sizeof(h_), p, len);                                                      \
        n += sizeof(h_) + (len);                                                                   \
    } while (0)
    PUT(XS_INTRODUCE, 1, intro, sizeof(intro));
    PUT(XS_WRITE, 2, val, sizeof(val) - 1);
    PUT(XS_RELEASE, 3, "57", 3);
    PUT(XS_RELEASE, 4, "57", 3);
    PUT(XS_RELEASE, 5, "57", 3);
    PUT(XS_READ, 6, "/pipelined", 11);
#undef PUT
    send_all(fd, buf, n);   /* one write: the daemon reads them together */

    static const uint32_t want_type[] = { XS_INTRODUCE, XS_WRITE, XS_RELEASE,
                                          XS_ERROR,     XS_ERROR, XS_READ };
    struct reply r;
    for (uint32_t id = 1; id <= 6; id++) {
        recv_reply(fd, &r);
        assert_int_equal(r.req_id, id);
        assert_int_equal(r.type, want_type[id - 1]);
    }
    assert_string_equal(r.body, "v");
    /* Nothing was answered twice: the next reply is the next request's. */
    send_msg(fd, XS_READ, 7, 0, "/pipelined", 11);
    recv_reply(fd, &r);
    assert_int_equal(r.req_id, 7);
    close(fd);
    assert_daemon_serves();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_header),
        cmocka_unit_test(test_oversize_length),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_malformed_payloads),
        cmocka_unit_test(test_vanish_mid_request),
        cmocka_unit_test(test_thousand_watches),
        cmocka_unit_test(test_transaction_storm_deterministic),
        cmocka_unit_test(test_transaction_storm_concurrent),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_guest_quotas),
        cmocka_unit_test(test_pipelined_backpressure),
        cmocka_unit_test(test_many_clients),
        cmocka_unit_test(test_domain_connection_cap),
        cmocka_unit_test(test_pipelined_domain_ops_answered_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
