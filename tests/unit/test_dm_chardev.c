/*
 * dm_chardev: -serial parsing (good and bad), and each back-end for real:
 * a socketpair (short writes and the writable callback, input flow
 * control), file: (appending), unix: server (held output until the first
 * client, nowait discarding, client leaving), unix: client, pty (discard
 * without a reader, raw bytes once one attaches), null.
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
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dm_chardev.h"

/* A peer that records what it receives and how often it was unblocked. */
typedef struct peer {
    size_t room;
    uint8_t got[8192];
    size_t ngot;
    int writable;
} peer;

static size_t p_can_receive(void *opaque)
{
    peer *p = opaque;
    return p->room;
}

static void p_receive(void *opaque, const uint8_t *buf, size_t len)
{
    peer *p = opaque;
    assert_true(len <= p->room);
    memcpy(p->got + p->ngot, buf, len);
    p->ngot += len;
    p->room -= len;
}

static void p_writable(void *opaque)
{
    ((peer *)opaque)->writable++;
}

static const dm_chardev_peer peer_ops = { p_can_receive, p_receive, p_writable };

/* Runs the loop until cond holds, at most ~5 s; no sleeps. */
#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); i_++)                                                \
            assert_true(dm_loop_iterate(loop, 10) >= 0);                                           \
        assert_true(cond);                                                                         \
    } while (0)

static void test_parse(void **state)
{
    (void)state;
    dm_chardev_spec s;
    char err[256];
    assert_int_equal(dm_chardev_parse("pty", &s, err, sizeof(err)), 0);
    assert_int_equal(s.kind, DM_CHR_PTY);
    assert_int_equal(dm_chardev_parse("file:/var/log/x", &s, err, sizeof(err)), 0);
    assert_int_equal(s.kind, DM_CHR_FILE);
    assert_string_equal(s.path, "/var/log/x");
    assert_int_equal(dm_chardev_parse("unix:/run/s,server,nowait", &s, err, sizeof(err)), 0);
    assert_true(s.server && s.nowait);
    assert_string_equal(s.path, "/run/s");
    assert_int_equal(dm_chardev_parse("unix:/run/s,server=on,wait=off", &s, err, sizeof(err)), 0);
    assert_true(s.server && s.nowait);
    assert_int_equal(dm_chardev_parse("unix:/run/s", &s, err, sizeof(err)), 0);
    assert_false(s.server);
    assert_int_equal(dm_chardev_parse("null", &s, err, sizeof(err)), 0);
    assert_int_equal(dm_chardev_parse("stdio", &s, err, sizeof(err)), 0);

    static const struct { const char *spec, *msg; } bad[] = {
        { "", "empty" },
        { "vc", "not supported" },
        { "tcp:127.0.0.1:4555", "not supported" },
        { "PTY", "not supported" },
        { "file:", "path is empty" },
        { "file:/a,append=on", "no options" },
        { "unix:", "path is empty" },
        { "unix:/x,bogus", "unknown option 'bogus'" },
        { "unix:/x,nowait", "nowait needs server" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_int_equal(dm_chardev_parse(bad[i].spec, &s, err, sizeof(err)), -EINVAL);
        if (!strstr(err, bad[i].msg))
            fail_msg("'%s': message \"%s\" lacks \"%s\"", bad[i].spec, err, bad[i].msg);
    }
    assert_non_null(strstr(err, "nowait"));
    assert_int_equal(dm_chardev_parse(NULL, &s, err, sizeof(err)), -EINVAL);
    char longspec[200] = "unix:/";
    memset(longspec + 6, 'a', 150);
    longspec[156] = 0;
    assert_int_equal(dm_chardev_parse(longspec, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than"));
}

static void test_socketpair_flow_control(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    dm_loop *loop = dm_loop_new();
    dm_chardev *chr;
    assert_int_equal(dm_chardev_from_fd(loop, sv[0], "test", &chr), 0);
    peer p = { .room = 0 };
    dm_chardev_set_peer(chr, &peer_ops, &p);

    /* Output: keep writing until the socket refuses, then drain it. */
    uint8_t chunk[1024];
    memset(chunk, 'x', sizeof(chunk));
    size_t total = 0, n;
    while ((n = dm_chardev_write(chr, chunk, sizeof(chunk))) == sizeof(chunk))
        total += n;
    total += n;
    /* Blocked: nothing more is taken until writable(). */
    assert_int_equal(dm_chardev_write(chr, chunk, 1), 0);
    assert_int_equal(p.writable, 0);
    size_t drained = 0;
    uint8_t buf[65536];
    while (drained < total) {
        ssize_t k = read(sv[1], buf, sizeof(buf));
        assert_true(k > 0);
        drained += (size_t)k;
    }
    RUN_UNTIL(loop, p.writable == 1);
    assert_int_equal(dm_chardev_write(chr, chunk, 10), 10);
    dm_chardev_stats st;
    dm_chardev_get_stats(chr, &st);
    assert_true(st.short_writes >= 1);
    assert_int_equal(st.written, total + 10);
    assert_int_equal(st.discarded, 0);

    /* Input: nothing read while the peer has no room, then only as much
     * as it has. */
    assert_int_equal(write(sv[1], "abcdefgh", 8), 8);
    for (int i = 0; i < 5; i++)
        dm_loop_iterate(loop, 0);
    assert_int_equal(p.ngot, 0);
    p.room = 3;
    dm_chardev_accept_input(chr);
    RUN_UNTIL(loop, p.ngot == 3);
    for (int i = 0; i < 5; i++)
        dm_loop_iterate(loop, 0);
    assert_int_equal(p.ngot, 3);
    p.room = 100;
    dm_chardev_accept_input(chr);
    RUN_UNTIL(loop, p.ngot == 8);
    assert_memory_equal(p.got, "abcdefgh", 8);

    /* The other end goes away: later output is discarded, not an error. */
    close(sv[1]);
    RUN_UNTIL(loop, !dm_chardev_connected(chr));
    assert_int_equal(dm_chardev_write(chr, chunk, 5), 5);
    dm_chardev_get_stats(chr, &st);
    assert_int_equal(st.discarded, 5);
    dm_chardev_close(chr);
    dm_loop_free(loop);
}

static void test_file_appends(void **state)
{
    (void)state;
    char path[] = "/tmp/dmchrXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "old\n", 4), 4);
    close(fd);
    char spec[64];
    snprintf(spec, sizeof(spec), "file:%s", path);
    dm_loop *loop = dm_loop_new();
    dm_chardev *chr;
    char err[256];
    assert_int_equal(dm_chardev_open(loop, spec, &chr, err, sizeof(err)), 0);
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"new\n", 4), 4);
    dm_chardev_close(chr);
    char buf[16] = { 0 };
    fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, buf, sizeof(buf)), 8);
    assert_string_equal(buf, "old\nnew\n");
    close(fd);
    unlink(path);
    /* A directory that does not exist. */
    assert_int_equal(dm_chardev_open(loop, "file:/nonexistent/dir/x", &chr, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/dir/x"));
    assert_null(chr);
    dm_loop_free(loop);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void test_unix_server(void **state)
{
    (void)state;
    char dir[] = "/tmp/dmchrXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64], spec[96];
    snprintf(path, sizeof(path), "%s/s", dir);
    snprintf(spec, sizeof(spec), "unix:%s,server", path);
    dm_loop *loop = dm_loop_new();
    dm_chardev *chr;
    char err[256];
    assert_int_equal(dm_chardev_open(loop, spec, &chr, err, sizeof(err)), 0);
    peer p = { .room = 100 };
    dm_chardev_set_peer(chr, &peer_ops, &p);
    /* No client yet: output is held (not taken, not discarded). */
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"hi", 2), 0);
    int c = connect_unix(path);
    RUN_UNTIL(loop, p.writable == 1);
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"hi", 2), 2);
    char buf[8];
    assert_int_equal(read(c, buf, sizeof(buf)), 2);
    assert_int_equal(write(c, "in", 2), 2);
    RUN_UNTIL(loop, p.ngot == 2);
    /* The client leaves; a second one is served. */
    close(c);
    RUN_UNTIL(loop, !dm_chardev_connected(chr));
    c = connect_unix(path);
    RUN_UNTIL(loop, dm_chardev_connected(chr));
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"again", 5), 5);
    assert_int_equal(read(c, buf, sizeof(buf)), 5);
    close(c);
    dm_chardev_close(chr);
    assert_int_not_equal(access(path, F_OK), 0);      /* socket removed */

    /* Same-host migration: the restored dm binds the path while the old
     * one still runs (replacing its socket); the old one's close must not
     * remove the new one's socket. */
    dm_chardev *old_chr, *new_chr;
    assert_int_equal(dm_chardev_open(loop, spec, &old_chr, err, sizeof(err)), 0);
    assert_int_equal(dm_chardev_open(loop, spec, &new_chr, err, sizeof(err)), 0);
    dm_chardev_close(old_chr);
    assert_int_equal(access(path, F_OK), 0);          /* the new one's, kept */
    c = connect_unix(path);
    assert_true(c >= 0);
    RUN_UNTIL(loop, dm_chardev_connected(new_chr));
    close(c);
    dm_chardev_close(new_chr);
    assert_int_not_equal(access(path, F_OK), 0);      /* its own, removed */

    /* nowait: output without a client is discarded. */
    snprintf(spec, sizeof(spec), "unix:%s,server,nowait", path);
    assert_int_equal(dm_chardev_open(loop, spec, &chr, err, sizeof(err)), 0);
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"lost", 4), 4);
    dm_chardev_stats st;
    dm_chardev_get_stats(chr, &st);
    assert_int_equal(st.discarded, 4);
    dm_chardev_close(chr);

    /* Client mode: connects to a listening socket; refused without one. */
    snprintf(spec, sizeof(spec), "unix:%s", path);
    assert_int_equal(dm_chardev_open(loop, spec, &chr, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "connect"));
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(dm_chardev_open(loop, spec, &chr, err, sizeof(err)), 0);
    c = accept(l, NULL, NULL);
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"cli", 3), 3);
    assert_int_equal(read(c, buf, sizeof(buf)), 3);
    close(c);
    close(l);
    dm_chardev_close(chr);
    unlink(path);
    rmdir(dir);
    dm_loop_free(loop);
}

static void test_pty(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    dm_chardev *chr;
    char err[256];
    assert_int_equal(dm_chardev_open(loop, "pty", &chr, err, sizeof(err)), 0);
    const char *path = dm_chardev_pty_path(chr);
    assert_non_null(path);
    assert_int_equal(strncmp(path, "/dev/pts/", 9), 0);
    peer p = { .room = 100 };
    dm_chardev_set_peer(chr, &peer_ops, &p);
    /* No reader: discarded, like QEMU. */
    assert_false(dm_chardev_connected(chr));
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"gone", 4), 4);
    /* `xl console` opens the slave. */
    int s = open(path, O_RDWR | O_NOCTTY);
    assert_true(s >= 0);
    RUN_UNTIL(loop, dm_chardev_connected(chr));
    /* Raw mode: "\n" stays "\n", bytes >= 0x80 pass unchanged. */
    const uint8_t out[] = { 'o', 'k', '\n', 0x80, 0xff, 0x03 };
    assert_int_equal(dm_chardev_write(chr, out, sizeof(out)), sizeof(out));
    uint8_t buf[16];
    size_t got = 0;
    while (got < sizeof(out)) {
        struct pollfd pf = { .fd = s, .events = POLLIN };
        assert_int_equal(poll(&pf, 1, 5000), 1);
        ssize_t k = read(s, buf + got, sizeof(buf) - got);
        assert_true(k > 0);
        got += (size_t)k;
    }
    assert_int_equal(got, sizeof(out));
    assert_memory_equal(buf, out, sizeof(out));
    assert_int_equal(write(s, "in\r", 3), 3);
    RUN_UNTIL(loop, p.ngot == 3);
    assert_memory_equal(p.got, "in\r", 3);
    /* The reader leaves: disconnected again. */
    close(s);
    RUN_UNTIL(loop, !dm_chardev_connected(chr) ||
                        (dm_chardev_write(chr, (const uint8_t *)"x", 1), !dm_chardev_connected(chr)));
    dm_chardev_close(chr);
    dm_loop_free(loop);
}

static void test_null(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    dm_chardev *chr;
    char err[256];
    assert_int_equal(dm_chardev_open(loop, "null", &chr, err, sizeof(err)), 0);
    assert_int_equal(dm_chardev_write(chr, (const uint8_t *)"abc", 3), 3);
    assert_null(dm_chardev_pty_path(chr));
    assert_int_equal(dm_chardev_get_kind(chr), DM_CHR_NULL);
    dm_chardev_close(chr);
    assert_int_equal(dm_chardev_open(loop, "bogus", &chr, err, sizeof(err)), -EINVAL);
    assert_int_equal(dm_chardev_from_fd(loop, -1, "x", &chr), -EBADF);
    dm_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_socketpair_flow_control),
        cmocka_unit_test(test_file_appends),
        cmocka_unit_test(test_unix_server),
        cmocka_unit_test(test_pty),
        cmocka_unit_test(test_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
