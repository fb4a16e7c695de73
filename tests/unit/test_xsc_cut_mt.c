/*
 * Exactly-once across a connection cut at the worst moment.  A small proxy
 * thread sits between the xsc object and xensim, forwards whole xenstore
 * messages, and on request cuts the connection once:
 *   - after xensim answered the TRANSACTION_END that deletes `command`
 *     (the delete happened, the dm never hears so), or
 *   - instead of forwarding that TRANSACTION_END (the delete never
 *     happened: xensim drops the transaction with the connection).
 * Either way the command is acted on exactly once: in the first case the
 * node is gone after the reconnect, in the second the value still there is
 * recognised as already handled (xsc_cmd_is_replay) and deleted unrun.
 * Threaded (the proxy), hence _mt.
 */
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runstate.h"
#include "test_xsc_fixture.h"
#include "xsc_control.h"

#define DOMID 9
#define MAX_PAIRS 8

enum { CUT_NONE, CUT_AFTER_COMMIT_REPLY, CUT_INSTEAD_OF_COMMIT };

struct wire_hdr {
    uint32_t type, req_id, tx_id, len;
};
#define WIRE_TX_END 7
#define WIRE_PAYLOAD_MAX 4096

typedef struct proxy {
    char path[400];
    char upstream[600];
    int lfd;
    int stop[2];
    pthread_t thr;
    atomic_int mode;
    atomic_int cuts;
    atomic_int accepted;
    int cl[MAX_PAIRS], sv[MAX_PAIRS];
} proxy;

static bool read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void close_pair(proxy *px, int i)
{
    close(px->cl[i]);
    close(px->sv[i]);
    px->cl[i] = px->sv[i] = -1;
}

/* Move one whole message from `from` to `to`; false to close the pair. */
static bool relay(proxy *px, int i, bool from_client)
{
    int from = from_client ? px->cl[i] : px->sv[i];
    int to = from_client ? px->sv[i] : px->cl[i];
    struct wire_hdr h;
    static char body[WIRE_PAYLOAD_MAX];

    if (!read_full(from, &h, sizeof(h)) || h.len > WIRE_PAYLOAD_MAX ||
        !read_full(from, body, h.len))
        return false;
    int mode = atomic_load(&px->mode);
    if (h.type == WIRE_TX_END && h.len >= 1 && body[0] == 'T') {
        if (from_client && mode == CUT_INSTEAD_OF_COMMIT) {
            atomic_store(&px->mode, CUT_NONE);
            atomic_fetch_add(&px->cuts, 1);
            return false;
        }
    }
    if (!from_client && h.type == WIRE_TX_END && mode == CUT_AFTER_COMMIT_REPLY) {
        atomic_store(&px->mode, CUT_NONE);
        atomic_fetch_add(&px->cuts, 1);
        return false;
    }
    return write_full(to, &h, sizeof(h)) && write_full(to, body, h.len);
}

static int connect_upstream(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(a.sun_path)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void *proxy_main(void *arg)
{
    proxy *px = arg;
    for (;;) {
        struct pollfd pfd[2 + 2 * MAX_PAIRS];
        int map[2 + 2 * MAX_PAIRS];
        int n = 0;
        pfd[n] = (struct pollfd){ .fd = px->stop[0], .events = POLLIN };
        map[n++] = -1;
        pfd[n] = (struct pollfd){ .fd = px->lfd, .events = POLLIN };
        map[n++] = -2;
        for (int i = 0; i < MAX_PAIRS; i++) {
            if (px->cl[i] < 0)
                continue;
            pfd[n] = (struct pollfd){ .fd = px->cl[i], .events = POLLIN };
            map[n++] = i * 2;
            pfd[n] = (struct pollfd){ .fd = px->sv[i], .events = POLLIN };
            map[n++] = i * 2 + 1;
        }
        if (poll(pfd, (nfds_t)n, -1) < 0)
            continue;
        if (pfd[0].revents)
            break;
        if (pfd[1].revents & POLLIN) {
            int c = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
            int s = c >= 0 ? connect_upstream(px->upstream) : -1;
            int slot = -1;
            for (int i = 0; i < MAX_PAIRS && slot < 0; i++)
                if (px->cl[i] < 0)
                    slot = i;
            if (c >= 0 && s >= 0 && slot >= 0) {
                px->cl[slot] = c;
                px->sv[slot] = s;
                atomic_fetch_add(&px->accepted, 1);
            } else {
                if (c >= 0)
                    close(c);
                if (s >= 0)
                    close(s);
            }
            continue;      /* the pair set changed: rebuild */
        }
        for (int k = 2; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            int i = map[k] / 2;
            if (px->cl[i] < 0)
                continue;
            if (!relay(px, i, map[k] % 2 == 0))
                close_pair(px, i);
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        if (px->cl[i] >= 0)
            close_pair(px, i);
    return NULL;
}

static int proxy_start(proxy *px, const char *dir, const char *upstream)
{
    memset(px, 0, sizeof(*px));
    for (int i = 0; i < MAX_PAIRS; i++)
        px->cl[i] = px->sv[i] = -1;
    snprintf(px->path, sizeof(px->path), "%s/proxy.sock", dir);
    snprintf(px->upstream, sizeof(px->upstream), "%s", upstream);
    px->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(px->path) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    memcpy(a.sun_path, px->path, strlen(px->path) + 1);
    if (px->lfd < 0 || bind(px->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(px->lfd, 16) < 0 || pipe(px->stop) < 0)
        return -errno;
    return pthread_create(&px->thr, NULL, proxy_main, px) == 0 ? 0 : -EAGAIN;
}

static void proxy_stop(proxy *px)
{
    if (write(px->stop[1], "x", 1) != 1)
        return;
    pthread_join(px->thr, NULL);
    close(px->lfd);
    close(px->stop[0]);
    close(px->stop[1]);
    unlink(px->path);
}

/* ---------------------------------------------------------------- fixture */

typedef struct cctx {
    xsim sim;
    bool skip;
    char skip_why[300];
    proxy px;
    struct xs_handle *ts;
    rs_vm *vm;
    xsc *x;
    xsc_paths p;
} cctx;

typedef bool (*pred_fn)(cctx *t, const void *arg);

static bool pump_until(cctx *t, pred_fn pred, const void *arg)
{
    int64_t deadline = mono_ms() + XSIM_WAIT_MS;
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
        int n = poll(&pfd, 1, tmo);
        if (n > 0 && (pfd.revents & POLLIN))
            assert_int_equal(xsc_handle_readable(t->x), 0);
        if (xsc_timeout_ms(t->x) == 0)
            assert_int_equal(xsc_handle_timeout(t->x), 0);
    }
}

static xsc_stats stats(cctx *t)
{
    xsc_stats s;
    xsc_get_stats(t->x, &s);
    return s;
}

static bool p_settled(cctx *t, const void *arg)
{
    (void)arg;
    /* reconnected, and both re-armed watches' first events taken */
    xsc_stats s = stats(t);
    return xsc_is_connected(t->x) && s.reconnects == 1 && s.events >= *(const uint64_t *)arg;
}

static int setup(void **state)
{
    cctx *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    *state = t;
    int rc = xsim_setup(&t->sim, false, t->skip_why, sizeof(t->skip_why));
    if (rc != 0) {
        t->skip = true;
        return rc < 0 ? -1 : 0;
    }
    t->ts = ts_open();                       /* straight to xensim */
    assert_non_null(t->ts);
    assert_int_equal(xsc_paths_init(&t->p, 0, DOMID), 0);
    assert_true(xs_mkdir(t->ts, XBT_NULL, t->p.dir));
    assert_int_equal(proxy_start(&t->px, t->sim.rundir, t->sim.sock), 0);
    setenv("XENSTORED_PATH", t->px.path, 1);  /* the dm goes through the proxy */
    t->vm = rs_vm_new();
    assert_non_null(t->vm);
    rs_set_log(t->vm, quiet_log, NULL);
    rs_err e;
    assert_int_equal(rs_cont(t->vm, &e), 0);
    xsc_config cfg = {
        .domid = DOMID,
        .vm = t->vm,
        .save_path = "/nonexistent-dir/qemu-save.9",
        .log = quiet_log,
        .conn = { .backoff_min_ms = 1, .backoff_max_ms = 8 },
        .sweep_ms = 600000,
    };
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
    cctx *t = *state;
    xsc_free(t->x);
    if (t->ts)
        xs_close(t->ts);
    if (t->vm)
        rs_vm_free(t->vm);
    if (!t->skip)
        proxy_stop(&t->px);
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

static void expect_node(cctx *t, const char *path, const char *want)
{
    char *v = ts_read(t->ts, path);
    if (!v || strcmp(v, want) != 0)
        fail_msg("%s is \"%s\", expected \"%s\"", path, v ? v : "(absent)", want);
    free(v);
}

static void run_cut(cctx *t, int mode)
{
    rs_transition_rec hist[RS_HISTORY_LEN];
    size_t h0 = rs_history(t->vm, hist, RS_HISTORY_LEN);
    xsc_stats before = stats(t);

    atomic_store(&t->px.mode, mode);
    assert_true(ts_write(t->ts, t->p.command, "stop"));
    /* The reconnect's watches fire twice after the reconnect itself; the
     * original command event, the cut and the reconnect come first. */
    uint64_t want = before.events + 3;
    assert_true(pump_until(t, p_settled, &want));
    assert_int_equal(atomic_load(&t->px.cuts), 1);

    xsc_stats s = stats(t);
    assert_int_equal(s.commands_done - before.commands_done, 1);   /* exactly once */
    assert_int_equal(s.commands_refused, before.commands_refused);
    size_t h1 = rs_history(t->vm, hist, RS_HISTORY_LEN);
    assert_int_equal(h1, h0 + 1);
    assert_int_equal(hist[h1 - 1].to, RS_PAUSED);
    expect_node(t, t->p.runstate, "paused holds=paused");
    char *c = ts_read(t->ts, t->p.command);
    assert_null(c);
    assert_int_equal(xsc_generation(t->x), 2);
    assert_true(atomic_load(&t->px.accepted) >= 2);
    if (mode == CUT_INSTEAD_OF_COMMIT)
        assert_int_equal(s.commands_replayed - before.commands_replayed, 1);
    else
        assert_int_equal(s.commands_replayed, before.commands_replayed);
    assert_int_equal(s.commands_read - before.commands_read,
                     (s.commands_done - before.commands_done) +
                     (s.commands_replayed - before.commands_replayed));
}

static void test_cut_after_commit(void **state)
{
    cctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    run_cut(t, CUT_AFTER_COMMIT_REPLY);
}

static void test_cut_before_commit(void **state)
{
    cctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    run_cut(t, CUT_INSTEAD_OF_COMMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cut_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_before_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
