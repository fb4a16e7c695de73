/*
 * QMP server wire: greeting, negotiation, ids, framing across splits and
 * concatenations, QEMU's error texts and classes, limits (1 MiB object,
 * 10,000-deep nesting) without losing the monitor, SCM_RIGHTS fds, a
 * burst of 1,000 connections, a client that never reads, a client that
 * vanishes mid-command, events to every client.  Single-threaded: the test
 * pumps the server with qmp_server_poll_once between client steps; every
 * wait is bounded by an iteration count.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "qmp_commands.h"
#include "qmp_server.h"
#include "runstate.h"

typedef struct fix {
    rs_vm *vm;
    qmp_commands *cmds;
    qmp_server *srv;
} fix;

typedef struct cli {
    int fd;
    char buf[1 << 16];
    size_t len;
} cli;

static int setup(void **state)
{
    fix *f = calloc(1, sizeof(*f));
    f->vm = rs_vm_new();
    f->cmds = qmp_commands_new(f->vm);
    f->srv = qmp_server_new(qmp_commands_dispatch, f->cmds);
    qmp_commands_set_server(f->cmds, f->srv);
    assert_non_null(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix *f = *state;
    qmp_server_free(f->srv);
    qmp_commands_free(f->cmds);
    rs_vm_free(f->vm);
    free(f);
    return 0;
}

static void pump(fix *f)
{
    qmp_server_poll_once(f->srv, 0);
}

/* Next CRLF-terminated line as JSON (bounded wait). */
static json_t *next(fix *f, cli *c)
{
    for (int i = 0; i < 5000; i++) {
        char *eol = memmem(c->buf, c->len, "\r\n", 2);
        if (eol) {
            json_error_t je;
            size_t n = (size_t)(eol - c->buf);
            json_t *v = json_loadb(c->buf, n, 0, &je);
            if (!v)
                fail_msg("bad reply line: %.*s (%s)", (int)n, c->buf, je.text);
            memmove(c->buf, eol + 2, c->len - n - 2);
            c->len -= n + 2;
            return v;
        }
        qmp_server_poll_once(f->srv, 1);
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
        if (r > 0)
            c->len += (size_t)r;
    }
    fail_msg("no reply");
    return NULL;
}

static void sendstr(cli *c, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(c->fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

static cli *connect_pair(fix *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cli *c = calloc(1, sizeof(*c));
    c->fd = sv[0];
    assert_non_null(qmp_server_add_client_fd(f->srv, sv[1]));
    return c;
}

static void cli_close(cli *c)
{
    close(c->fd);
    free(c);
}

/* Greeting, then qmp_capabilities. */
static cli *ready(fix *f)
{
    cli *c = connect_pair(f);
    json_t *g = next(f, c);
    json_decref(g);
    sendstr(c, "{\"execute\":\"qmp_capabilities\"}");
    json_t *r = next(f, c);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    return c;
}

static void expect_error(json_t *r, const char *cls, const char *desc)
{
    json_t *e = json_object_get(r, "error");
    if (!e)
        fail_msg("expected error %s: %s", cls, json_dumps(r, 0));
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    if (desc)
        assert_string_equal(json_string_value(json_object_get(e, "desc")), desc);
    json_decref(r);
}

static void expect_ok(json_t *r)
{
    if (!json_object_get(r, "return"))
        fail_msg("expected return: %s", json_dumps(r, 0));
    json_decref(r);
}

static void test_greeting_negotiation(void **state)
{
    fix *f = *state;
    cli *c = connect_pair(f);
    /* raw bytes: CRLF-terminated */
    json_t *g = next(f, c);
    json_t *v = json_object_get(json_object_get(json_object_get(g, "QMP"), "version"), "qemu");
    assert_int_equal(json_integer_value(json_object_get(v, "major")), 7);
    assert_int_equal(json_integer_value(json_object_get(v, "minor")), 2);
    assert_true(json_is_array(json_object_get(json_object_get(g, "QMP"), "capabilities")));
    json_decref(g);
    sendstr(c, "{\"execute\":\"query-status\"}");
    expect_error(next(f, c), "CommandNotFound",
                 "Expecting capabilities negotiation with 'qmp_capabilities'");
    sendstr(c, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}");
    expect_error(next(f, c), "GenericError", "Capability 'oob' not available");
    sendstr(c, "{\"execute\":\"qmp_capabilities\"}");
    expect_ok(next(f, c));
    sendstr(c, "{\"execute\":\"qmp_capabilities\"}");
    expect_error(next(f, c), "CommandNotFound",
                 "Capabilities negotiation is already complete, command ignored");
    sendstr(c, "{\"execute\":\"query-status\"}");
    expect_ok(next(f, c));
    cli_close(c);
}

static void test_crlf(void **state)
{
    fix *f = *state;
    cli *c = connect_pair(f);
    for (int i = 0; i < 1000 && !memmem(c->buf, c->len, "\n", 1); i++) {
        pump(f);
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
        if (r > 0)
            c->len += (size_t)r;
    }
    char *nl = memchr(c->buf, '\n', c->len);
    assert_non_null(nl);
    assert_true(nl > c->buf && nl[-1] == '\r');
    cli_close(c);
}

static void test_ids(void **state)
{
    fix *f = *state;
    cli *c = ready(f);
    const char *ids[] = { "42", "\"abc\"", "{\"a\":[1,2]}", "null", "1.5" };
    for (size_t i = 0; i < 5; i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "{\"execute\":\"query-version\",\"id\":%s}", ids[i]);
        sendstr(c, cmd);
        json_t *r = next(f, c);
        json_t *want = json_loads(ids[i], JSON_DECODE_ANY, NULL);
        assert_true(json_equal(json_object_get(r, "id"), want));
        json_decref(want);
        json_decref(r);
    }
    /* errors echo the id too */
    sendstr(c, "{\"execute\":\"nope\",\"id\":7}");
    json_t *r = next(f, c);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    expect_error(r, "CommandNotFound", "The command nope has not been found");
    cli_close(c);
}

static void test_split_concat(void **state)
{
    fix *f = *state;
    cli *c = ready(f);
    const char *cmd = "{\"execute\": \"query-status\", \"id\": \"x}{\\\"\"}";
    for (const char *p = cmd; *p; p++) {
        assert_int_equal(send(c->fd, p, 1, 0), 1);
        pump(f);
    }
    json_t *r = next(f, c);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "x}{\"");
    expect_ok(r);
    sendstr(c, "{\"execute\":\"query-version\",\"id\":1}{\"execute\":\"query-vnc\",\"id\":2}\r\n"
               "  {\"execute\":\"query-fdsets\",\"id\":3}");
    for (int i = 1; i <= 3; i++) {
        r = next(f, c);
        assert_int_equal(json_integer_value(json_object_get(r, "id")), i);
        expect_ok(r);
    }
    cli_close(c);
}

static void test_malformed(void **state)
{
    fix *f = *state;
    cli *c = ready(f);
    sendstr(c, "{\"execute\": foo}");
    json_t *r = next(f, c);
    json_t *e = json_object_get(r, "error");
    assert_string_equal(json_string_value(json_object_get(e, "class")), "GenericError");
    assert_memory_equal(json_string_value(json_object_get(e, "desc")), "JSON parse error, ", 18);
    json_decref(r);
    sendstr(c, "[1,2] ");
    expect_error(next(f, c), "GenericError", "QMP input must be a JSON object");
    sendstr(c, "42 ");
    expect_error(next(f, c), "GenericError", "QMP input must be a JSON object");
    sendstr(c, "{\"arguments\":{}}");
    expect_error(next(f, c), "GenericError", "QMP input lacks member 'execute'");
    sendstr(c, "{\"execute\":1}");
    expect_error(next(f, c), "GenericError", "QMP input member 'execute' must be a string");
    sendstr(c, "{\"execute\":\"stop\",\"arguments\":[]}");
    expect_error(next(f, c), "GenericError", "QMP input member 'arguments' must be an object");
    sendstr(c, "{\"execute\":\"stop\",\"foo\":1}");
    expect_error(next(f, c), "GenericError", "QMP input member 'foo' is unexpected");
    sendstr(c, "{\"execute\":\"stop\",\"arguments\":{\"x\":1}}");
    expect_error(next(f, c), "GenericError", "Parameter 'x' is unexpected");
    sendstr(c, "{\"execute\":\"xen-save-devices-state\",\"arguments\":{\"filename\":1}}");
    expect_error(next(f, c), "GenericError",
                 "Invalid parameter type for 'filename', expected: string");
    sendstr(c, "{\"execute\":\"xen-save-devices-state\",\"arguments\":{}}");
    expect_error(next(f, c), "GenericError", "Parameter 'filename' is missing");
    sendstr(c, "{\"execute\":\"xen-set-global-dirty-log\",\"arguments\":{\"enable\":\"yes\"}}");
    expect_error(next(f, c), "GenericError",
                 "Invalid parameter type for 'enable', expected: boolean");
    sendstr(c, "{\"execute\":\"migrate\"}");
    expect_error(next(f, c), "CommandNotFound", "The command migrate has not been found");
    sendstr(c, "}");
    r = next(f, c);
    assert_non_null(json_object_get(r, "error"));
    json_decref(r);
    /* still serving */
    sendstr(c, "{\"execute\":\"query-status\"}");
    expect_ok(next(f, c));
    cli_close(c);
}

static void send_all(fix *f, cli *c, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        pump(f);
    }
}

static void test_limits(void **state)
{
    fix *f = *state;
    cli *c = ready(f);
    /* 1 MiB string inside a command */
    size_t big = 1024 * 1024 + 100;
    char *b = malloc(big + 64);
    int k = snprintf(b, 64, "{\"execute\":\"stop\",\"id\":\"");
    memset(b + k, 'a', big);
    strcpy(b + k + big, "\"}");
    send_all(f, c, b, strlen(b));
    free(b);
    expect_error(next(f, c), "GenericError", "JSON token size limit exceeded");
    sendstr(c, "{\"execute\":\"query-status\",\"id\":1}");
    json_t *r = next(f, c);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    expect_ok(r);
    /* 10,000-deep nesting */
    size_t d = 10000;
    b = malloc(2 * d + 1);
    memset(b, '[', d);
    memset(b + d, ']', d);
    b[2 * d] = 0;
    send_all(f, c, b, 2 * d);
    free(b);
    expect_error(next(f, c), "GenericError", "JSON nesting depth limit exceeded");
    sendstr(c, "{\"execute\":\"query-status\",\"id\":2}");
    r = next(f, c);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 2);
    expect_ok(r);
    cli_close(c);
}

static void send_with_fd(int sock, const char *data, size_t len, int fd)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cb;
    memset(&cb, 0, sizeof(cb));
    struct iovec iov = { (void *)data, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
                        .msg_controllen = sizeof(cb.b) };
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof(int));
    assert_int_equal(sendmsg(sock, &m, 0), (ssize_t)len);
}

static void test_fds(void **state)
{
    fix *f = *state;
    cli *c = ready(f);
    int p[2];
    assert_int_equal(pipe(p), 0);
    sendstr(c, "{\"execute\":\"add-fd\"}");
    expect_error(next(f, c), "GenericError", "No file descriptor supplied via SCM_RIGHTS");
    /* attached to the command */
    const char *cmd = "{\"execute\":\"add-fd\",\"arguments\":{\"opaque\":\"w\"}}";
    send_with_fd(c->fd, cmd, strlen(cmd), p[1]);
    json_t *r = next(f, c);
    json_t *ret = json_object_get(r, "return");
    assert_int_equal(json_integer_value(json_object_get(ret, "fdset-id")), 0);
    int fd0 = (int)json_integer_value(json_object_get(ret, "fd"));
    assert_true(fd0 >= 0);
    json_decref(r);
    /* one-byte message, then the command (QEMU's getfd way) */
    send_with_fd(c->fd, " ", 1, p[0]);
    pump(f);
    sendstr(c, "{\"execute\":\"add-fd\",\"arguments\":{\"fdset-id\":5}}");
    r = next(f, c);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "fdset-id")), 5);
    json_decref(r);
    sendstr(c, "{\"execute\":\"query-fdsets\"}");
    r = next(f, c);
    json_t *sets = json_object_get(r, "return");
    assert_int_equal(json_array_size(sets), 2);
    json_t *s0 = json_array_get(sets, 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "fdset-id")), 0);
    json_t *fd = json_array_get(json_object_get(s0, "fds"), 0);
    assert_string_equal(json_string_value(json_object_get(fd, "opaque")), "w");
    assert_int_equal(json_integer_value(json_object_get(fd, "fd")), fd0);
    json_decref(r);
    /* /dev/fdset/0 opens the write end; a read-only open fails */
    int w = qmp_commands_open(f->cmds, "/dev/fdset/0", O_WRONLY);
    assert_true(w >= 0);
    assert_int_equal(write(w, "hi", 2), 2);
    close(w);
    assert_int_equal(qmp_commands_open(f->cmds, "/dev/fdset/0", O_RDONLY), -EACCES);
    assert_int_equal(qmp_commands_open(f->cmds, "/dev/fdset/9", O_RDONLY), -ENOENT);
    sendstr(c, "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":0}}");
    expect_ok(next(f, c));
    sendstr(c, "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":0}}");
    expect_error(next(f, c), "GenericError", "File descriptor named 'fdset-id:0' not found");
    sendstr(c, "{\"execute\":\"remove-fd\",\"arguments\":{\"fdset-id\":5,\"fd\":9999}}");
    expect_error(next(f, c), "GenericError",
                 "File descriptor named 'fdset-id:5, fd:9999' not found");
    /* getfd / closefd: named fds, one-byte message then the command */
    send_with_fd(c->fd, " ", 1, p[1]);
    pump(f);
    sendstr(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"mig\"}}");
    expect_ok(next(f, c));
    sendstr(c, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"other\"}}");
    expect_error(next(f, c), "GenericError", "No file descriptor supplied via SCM_RIGHTS");
    sendstr(c, "{\"execute\":\"closefd\",\"arguments\":{\"fdname\":\"mig\"}}");
    expect_ok(next(f, c));
    sendstr(c, "{\"execute\":\"closefd\",\"arguments\":{\"fdname\":\"mig\"}}");
    expect_error(next(f, c), "GenericError", "File descriptor named 'mig' not found");
    close(p[0]);
    close(p[1]);
    cli_close(c);
}

static void test_burst(void **state)
{
    fix *f = *state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/qmp-test-%d.sock", (int)getpid());
    assert_int_equal(qmp_server_listen_path(f->srv, path), 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        int rc;
        for (int k = 0; (rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 && k < 100; k++) {
            assert_int_equal(errno, EAGAIN);
            pump(f);
        }
        assert_int_equal(rc, 0);
        cli c = { .fd = fd };
        cli *cp = malloc(sizeof(cli));
        *cp = c;
        json_decref(next(f, cp));
        sendstr(cp, "{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-status\"}");
        expect_ok(next(f, cp));
        expect_ok(next(f, cp));
        cli_close(cp);
    }
    for (int i = 0; i < 100 && qmp_server_client_count(f->srv) > 0; i++)
        pump(f);
    assert_int_equal(qmp_server_client_count(f->srv), 0);
    unlink(path);
}

static int connect_path(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Out of fds (RLIMIT_NOFILE reached), a pending connection must not keep
 * the listener readable forever (a busy loop): the server takes it off the
 * queue and closes it; once fds are free, clients are served again. */
static void test_out_of_fds(void **state)
{
    fix *f = *state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/qmp-test-emfile-%d.sock", (int)getpid());
    assert_int_equal(qmp_server_listen_path(f->srv, path), 0);
    struct pollfd lp[4];
    assert_int_equal(qmp_server_pollfds(f->srv, lp, 4), 1);      /* the listener */

    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[256], nfill = 0;
    while (nfill < 256 && (fill[nfill] = open("/dev/null", O_RDONLY)) >= 0)
        nfill++;
    assert_int_equal(errno, EMFILE);
    assert_true(nfill > 1);
    close(fill[--nfill]);                        /* room for the client's socket only */
    int c = connect_path(path);
    pump(f);                                      /* accept: EMFILE */
    /* The client was refused (EOF, no greeting) and the listener is quiet. */
    char b[64];
    struct pollfd cp = { c, POLLIN, 0 };
    assert_int_equal(poll(&cp, 1, 5000), 1);
    assert_int_equal(recv(c, b, sizeof(b), 0), 0);
    lp[0].revents = 0;
    assert_int_equal(poll(lp, 1, 0), 0);
    assert_int_equal(qmp_server_client_count(f->srv), 0);
    close(c);

    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    cli *ok = calloc(1, sizeof(*ok));
    ok->fd = connect_path(path);
    json_decref(next(f, ok));                     /* the greeting: served again */
    sendstr(ok, "{\"execute\":\"qmp_capabilities\"}");
    expect_ok(next(f, ok));
    cli_close(ok);
    unlink(path);
}

/* libxl's dm_restrict: it binds and listens (backlog 1) and passes the fd. */
static void test_inherited_fd(void **state)
{
    fix *f = *state;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/qmp-inh-%d.sock", (int)getpid());
    unlink(sa.sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(qmp_server_listen_fd(f->srv, l), 0);
    for (int i = 0; i < 3; i++) {   /* sequential short connections */
        cli *c = calloc(1, sizeof(*c));
        c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        json_t *g = next(f, c);
        assert_non_null(json_object_get(g, "QMP"));
        json_decref(g);
        cli_close(c);
    }
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(qmp_server_listen_fd(f->srv, p[0]), -ENOTSOCK);   /* refused, logged */
    close(p[0]);
    close(p[1]);
    unlink(sa.sun_path);
}

static void test_never_reads(void **state)
{
    fix *f = *state;
    cli *slow = ready(f);
    cli *ok = ready(f);
    int small = 4096;
    setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    const char *cmd = "{\"execute\":\"query-commands\"}";
    size_t before = qmp_server_client_count(f->srv);
    assert_int_equal(before, 2);
    int i;
    for (i = 0; i < 20000 && qmp_server_client_count(f->srv) == 2; i++) {
        send(slow->fd, cmd, strlen(cmd), MSG_DONTWAIT | MSG_NOSIGNAL);
        pump(f);
    }
    assert_int_equal(qmp_server_client_count(f->srv), 1);   /* dropped, not blocking */
    sendstr(ok, "{\"execute\":\"query-status\",\"id\":9}");
    json_t *r = next(f, ok);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
    expect_ok(r);
    cli_close(slow);
    cli_close(ok);
}

static void test_vanish(void **state)
{
    fix *f = *state;
    cli *a = ready(f);
    cli *b = ready(f);
    sendstr(a, "{\"execute\":\"query-sta");
    pump(f);
    int p[2];
    assert_int_equal(pipe(p), 0);
    send_with_fd(a->fd, " ", 1, p[0]);   /* an fd never taken: closed with the client */
    close(p[0]);
    pump(f);
    cli_close(a);
    for (int i = 0; i < 100 && qmp_server_client_count(f->srv) > 1; i++)
        pump(f);
    assert_int_equal(qmp_server_client_count(f->srv), 1);
    /* the pipe's read end is closed: writing fails with EPIPE */
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(write(p[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    close(p[1]);
    sendstr(b, "{\"execute\":\"query-status\"}");
    expect_ok(next(f, b));
    cli_close(b);
}

static void test_events_all(void **state)
{
    fix *f = *state;
    cli *a = ready(f);
    cli *b = ready(f);
    cli *neg = connect_pair(f);   /* still negotiating: gets no events */
    json_decref(next(f, neg));
    qmp_server_event(f->srv, "TEST", json_pack("{s:i}", "x", 1), 0);
    json_t *ea = next(f, a), *eb = next(f, b);
    assert_string_equal(json_string_value(json_object_get(ea, "event")), "TEST");
    assert_true(json_equal(ea, eb));
    json_t *ts = json_object_get(ea, "timestamp");
    assert_true(json_integer_value(json_object_get(ts, "seconds")) > 1000000000);
    assert_true(json_integer_value(json_object_get(ts, "microseconds")) < 1000000);
    json_decref(ea);
    json_decref(eb);
    /* a librunstate event reaches both: cont from prelaunch -> RESUME */
    sendstr(a, "{\"execute\":\"cont\"}");
    int got_ok = 0, got_ev = 0;
    for (int i = 0; i < 2; i++) {
        json_t *r = next(f, a);
        if (json_object_get(r, "return"))
            got_ok++;
        else if (!strcmp(json_string_value(json_object_get(r, "event")), "RESUME"))
            got_ev++;
        json_decref(r);
    }
    assert_int_equal(got_ok, 1);
    assert_int_equal(got_ev, 1);
    json_t *r = next(f, b);
    assert_string_equal(json_string_value(json_object_get(r, "event")), "RESUME");
    json_decref(r);
    pump(f);
    assert_int_equal(recv(neg->fd, neg->buf, sizeof(neg->buf), MSG_DONTWAIT), -1);
    /* stop, then an I/O error while paused: x-hold-added names the hold */
    sendstr(a, "{\"execute\":\"stop\"}");
    r = next(f, a);
    assert_string_equal(json_string_value(json_object_get(r, "event")), "STOP");
    json_decref(r);
    expect_ok(next(f, a));
    json_decref(next(f, b));   /* STOP */
    rs_err re = { 0 };
    assert_int_equal(rs_vm_stop(f->vm, RS_IO_ERROR, &re), 0);
    r = next(f, b);
    assert_string_equal(json_string_value(json_object_get(r, "event")), "x-hold-added");
    json_t *d = json_object_get(r, "data");
    assert_string_equal(json_string_value(json_object_get(d, "hold")), "io-error");
    assert_string_equal(json_string_value(json_object_get(d, "status")), "paused");
    json_decref(r);
    cli_close(a);
    cli_close(b);
    cli_close(neg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_greeting_negotiation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_concat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inherited_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vanish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_all, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
