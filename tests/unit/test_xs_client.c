/* test_xs_client: xensim's xenstore daemon driven by the real libxenstore
 * (Debian's), the way rsdm, libxl and the xenstore-* tools use it.
 * The daemon runs in a forked child on a temporary run directory; handles
 * connect through XENSTORED_PATH (dom0) or a domain's socket (a guest). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <xenstore.h>

#include "xs_testd.h"

static struct xs_testd daemon_;

static struct xs_handle *open_at(const char *sock)
{
    setenv("XENSTORED_PATH", sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_non_null(h);
    return h;
}

static struct xs_handle *open_dom0(void)
{
    return open_at(daemon_.sock);
}

static struct xs_handle *open_guest(unsigned domid)
{
    char p[400];
    xs_testd_domain_sock(&daemon_, domid, p, sizeof(p));
    return open_at(p);
}

static void introduce(struct xs_handle *h, unsigned domid)
{
    assert_true(xs_introduce_domain(h, domid, 0x1234, 7));
}

/* Next watch event within timeout_ms; NULL if none came. */
static char **wait_watch(struct xs_handle *h, int timeout_ms)
{
    int fd = xs_fileno(h);
    assert_true(fd >= 0);
    for (;;) {
        char **v = xs_check_watch(h);
        if (v)
            return v;
        assert_int_equal(errno, EAGAIN);
        struct pollfd p = { fd, POLLIN, 0 };
        int r = poll(&p, 1, timeout_ms);
        if (r == 0)
            return NULL;
        assert_true(r > 0);
    }
}

/* An event already queued (the daemon sends events before the reply to a
 * later request on the same connection, so after a round trip this is
 * deterministic). */
static char **queued_watch(struct xs_handle *h)
{
    free(xs_read(h, XBT_NULL, "/", NULL));  /* round trip */
    char **v = xs_check_watch(h);
    if (!v)
        assert_int_equal(errno, EAGAIN);
    return v;
}

static void expect_event(struct xs_handle *h, const char *path, const char *token)
{
    char **v = wait_watch(h, 5000);
    assert_non_null(v);
    assert_string_equal(v[XS_WATCH_PATH], path);
    assert_string_equal(v[XS_WATCH_TOKEN], token);
    free(v);
}

static int group_setup(void **state)
{
    (void)state;
    setenv("XENSIM_LOG", "warn", 1);
    return xs_testd_start(&daemon_, XS_TESTD_FORK, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    /* The daemon must exit cleanly on SIGTERM. */
    return xs_testd_stop(&daemon_, false) == 0 ? 0 : -1;
}

static void test_read_write_directory(void **state)
{
    (void)state;
    struct xs_handle *h = open_dom0();
    assert_true(xs_write(h, XBT_NULL, "/rw/a/b", "hello", 5));
    unsigned len = 99;
    char *v = xs_read(h, XBT_NULL, "/rw/a/b", &len);
    assert_non_null(v);
    assert_int_equal(len, 5);
    assert_memory_equal(v, "hello", 5);
    free(v);
    /* Parents were created, empty. */
    v = xs_read(h, XBT_NULL, "/rw/a", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);
    free(v);
    /* Values are bytes: embedded NULs survive. */
    assert_true(xs_write(h, XBT_NULL, "/rw/bin", "a\0b\0", 4));
    v = xs_read(h, XBT_NULL, "/rw/bin", &len);
    assert_int_equal(len, 4);
    assert_memory_equal(v, "a\0b\0", 4);
    free(v);
    assert_true(xs_write(h, XBT_NULL, "/rw/a/c", "", 0));
    unsigned n = 0;
    char **d = xs_directory(h, XBT_NULL, "/rw/a", &n);
    assert_non_null(d);
    assert_int_equal(n, 2);
    assert_string_equal(d[0], "b");
    assert_string_equal(d[1], "c");
    free(d);
    /* Missing node: ENOENT. */
    assert_null(xs_read(h, XBT_NULL, "/rw/nope", &len));
    assert_int_equal(errno, ENOENT);
    /* Invalid paths: EINVAL. */
    assert_false(xs_write(h, XBT_NULL, "/rw//x", "1", 1));
    assert_int_equal(errno, EINVAL);
    assert_false(xs_write(h, XBT_NULL, "/rw/x/", "1", 1));
    assert_int_equal(errno, EINVAL);
    assert_false(xs_write(h, XBT_NULL, "/rw/a b", "1", 1));
    assert_int_equal(errno, EINVAL);
    /* RM is recursive; an absent node with an existing parent is fine,
     * with an absent parent it is ENOENT. */
    assert_true(xs_rm(h, XBT_NULL, "/rw/a"));
    assert_null(xs_read(h, XBT_NULL, "/rw/a/b", &len));
    assert_true(xs_rm(h, XBT_NULL, "/rw/a"));
    assert_false(xs_rm(h, XBT_NULL, "/rw/a/b"));
    assert_int_equal(errno, ENOENT);
    /* MKDIR keeps an existing value. */
    assert_true(xs_write(h, XBT_NULL, "/rw/m", "keep", 4));
    assert_true(xs_mkdir(h, XBT_NULL, "/rw/m"));
    v = xs_read(h, XBT_NULL, "/rw/m", &len);
    assert_int_equal(len, 4);
    free(v);
    /* A relative path on a dom0 socket resolves below /local/domain/0. */
    assert_true(xs_write(h, XBT_NULL, "relnode", "r", 1));
    v = xs_read(h, XBT_NULL, "/local/domain/0/relnode", &len);
    assert_non_null(v);
    free(v);
    xs_close(h);
}

static void test_large_directory(void **state)
{
    (void)state;
    /* > 4096 bytes of names: DIRECTORY answers E2BIG and libxenstore
     * switches to DIRECTORY_PART. */
    struct xs_handle *h = open_dom0();
    char p[128];
    for (int i = 0; i < 400; i++) {
        snprintf(p, sizeof(p), "/big/entry-with-a-long-name-%04d", i);
        assert_true(xs_write(h, XBT_NULL, p, "x", 1));
    }
    unsigned n = 0;
    char **d = xs_directory(h, XBT_NULL, "/big", &n);
    assert_non_null(d);
    assert_int_equal(n, 400);
    assert_string_equal(d[0], "entry-with-a-long-name-0000");
    assert_string_equal(d[399], "entry-with-a-long-name-0399");
    free(d);
    xs_close(h);
}

static void test_watch(void **state)
{
    (void)state;
    struct xs_handle *w = open_dom0(), *h = open_dom0();
    assert_true(xs_write(h, XBT_NULL, "/wt/a/b", "1", 1));
    assert_true(xs_watch(w, "/wt/a", "tok"));
    /* Fires once on registration, with the watched path. */
    expect_event(w, "/wt/a", "tok");
    /* A change below fires with the changed path. */
    assert_true(xs_write(h, XBT_NULL, "/wt/a/b", "2", 1));
    expect_event(w, "/wt/a/b", "tok");
    assert_true(xs_write(h, XBT_NULL, "/wt/a/new/deep", "3", 1));
    expect_event(w, "/wt/a/new/deep", "tok");
    /* A sibling does not fire. */
    assert_true(xs_write(h, XBT_NULL, "/wt/ab", "3", 1));
    assert_null(queued_watch(w));
    /* Duplicate watch: EEXIST. */
    assert_false(xs_watch(w, "/wt/a", "tok"));
    assert_int_equal(errno, EEXIST);
    /* A watch on a node below a removed parent fires with its own path. */
    assert_true(xs_watch(w, "/wt/a/b", "deep"));
    expect_event(w, "/wt/a/b", "deep");
    assert_true(xs_rm(h, XBT_NULL, "/wt/a"));
    int seen_deep = 0, seen_top = 0;
    for (int i = 0; i < 2; i++) {
        char **v = wait_watch(w, 5000);
        assert_non_null(v);
        if (strcmp(v[XS_WATCH_TOKEN], "deep") == 0) {
            assert_string_equal(v[XS_WATCH_PATH], "/wt/a/b");
            seen_deep++;
        } else {
            seen_top++;
        }
        free(v);
    }
    assert_int_equal(seen_deep, 1);
    assert_int_equal(seen_top, 1);
    /* Drain the remaining events of the removal (the other children). */
    while (queued_watch(w))
        ;
    /* Unwatch stops events. */
    assert_true(xs_unwatch(w, "/wt/a", "tok"));
    assert_true(xs_unwatch(w, "/wt/a/b", "deep"));
    assert_true(xs_write(h, XBT_NULL, "/wt/a/x", "1", 1));
    assert_null(queued_watch(w));
    assert_false(xs_unwatch(w, "/wt/a", "tok"));
    assert_int_equal(errno, ENOENT);
    xs_close(w);
    xs_close(h);
}

static void test_transactions(void **state)
{
    (void)state;
    struct xs_handle *h1 = open_dom0(), *h2 = open_dom0(), *w = open_dom0();
    assert_true(xs_write(h1, XBT_NULL, "/tx/a", "1", 1));
    assert_true(xs_watch(w, "/tx", "t"));
    expect_event(w, "/tx", "t");

    /* A transaction sees a snapshot. */
    xs_transaction_t t = xs_transaction_start(h1);
    assert_true(t != XBT_NULL);
    unsigned len;
    char *v = xs_read(h1, t, "/tx/a", &len);
    assert_memory_equal(v, "1", 1);
    free(v);
    assert_true(xs_write(h2, XBT_NULL, "/tx/a", "2", 1));   /* conflicting */
    expect_event(w, "/tx/a", "t");
    v = xs_read(h1, t, "/tx/a", &len);
    assert_memory_equal(v, "1", 1);                      /* still the snapshot */
    free(v);
    assert_true(xs_write(h1, t, "/tx/b", "from-t", 6));
    /* Not visible outside, and no event before commit. */
    assert_null(xs_read(h2, XBT_NULL, "/tx/b", &len));
    assert_null(queued_watch(w));
    assert_false(xs_transaction_end(h1, t, false));
    assert_int_equal(errno, EAGAIN);
    assert_null(xs_read(h2, XBT_NULL, "/tx/b", &len));      /* nothing applied */

    /* The usual retry loop: succeeds once nobody interferes. */
    int tries = 0;
    for (;;) {
        tries++;
        t = xs_transaction_start(h1);
        assert_true(t != XBT_NULL);
        v = xs_read(h1, t, "/tx/a", &len);
        assert_non_null(v);
        int n = atoi(v);
        free(v);
        char buf[16];
        snprintf(buf, sizeof(buf), "%d", n + 1);
        assert_true(xs_write(h1, t, "/tx/a", buf, strlen(buf)));
        assert_true(xs_write(h1, t, "/tx/c/d", "x", 1));
        if (tries == 1)   /* interfere once more */
            assert_true(xs_write(h2, XBT_NULL, "/tx/a", "10", 2));
        if (xs_transaction_end(h1, t, false))
            break;
        assert_int_equal(errno, EAGAIN);
        assert_true(tries < 5);
    }
    assert_int_equal(tries, 2);
    v = xs_read(h2, XBT_NULL, "/tx/a", &len);
    assert_string_equal(v, "11");
    free(v);
    /* The commit fired the watches of its changes. */
    int got_a = 0, got_d = 0;
    char **e;
    while ((e = wait_watch(w, 2000))) {
        if (strcmp(e[XS_WATCH_PATH], "/tx/a") == 0)
            got_a++;
        if (strcmp(e[XS_WATCH_PATH], "/tx/c/d") == 0)
            got_d++;
        free(e);
        if (got_d)
            break;
    }
    assert_true(got_a >= 1);
    assert_int_equal(got_d, 1);

    /* Abort discards. */
    t = xs_transaction_start(h1);
    assert_true(xs_write(h1, t, "/tx/aborted", "x", 1));
    assert_true(xs_transaction_end(h1, t, true));
    assert_null(xs_read(h2, XBT_NULL, "/tx/aborted", &len));
    /* A removed transaction id is gone: ENOENT. */
    assert_null(xs_read(h1, t, "/tx/a", &len));
    assert_int_equal(errno, ENOENT);
    xs_close(h1);
    xs_close(h2);
    xs_close(w);
}

static void test_perms(void **state)
{
    (void)state;
    struct xs_handle *h = open_dom0();
    assert_true(xs_write(h, XBT_NULL, "/pm/a", "v", 1));
    unsigned n = 0;
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, "/pm/a", &n);
    assert_non_null(p);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].id, 0);
    assert_int_equal(p[0].perms, XS_PERM_NONE);
    free(p);
    struct xs_permissions np[3] = {
        { .id = 0, .perms = XS_PERM_NONE },
        { .id = 5, .perms = XS_PERM_READ },
        { .id = 6, .perms = XS_PERM_READ | XS_PERM_WRITE },
    };
    assert_true(xs_set_permissions(h, XBT_NULL, "/pm/a", np, 3));
    p = xs_get_permissions(h, XBT_NULL, "/pm/a", &n);
    assert_int_equal(n, 3);
    assert_int_equal(p[1].id, 5);
    assert_int_equal(p[1].perms, XS_PERM_READ);
    assert_int_equal(p[2].perms, XS_PERM_READ | XS_PERM_WRITE);
    free(p);
    /* Children inherit the parent's permissions. */
    assert_true(xs_write(h, XBT_NULL, "/pm/a/child", "c", 1));
    p = xs_get_permissions(h, XBT_NULL, "/pm/a/child", &n);
    assert_int_equal(n, 3);
    free(p);
    /* Special nodes have permissions too. */
    p = xs_get_permissions(h, XBT_NULL, "@releaseDomain", &n);
    assert_non_null(p);
    free(p);
    /* Domain paths. */
    char *dp = xs_get_domain_path(h, 7);
    assert_string_equal(dp, "/local/domain/7");
    free(dp);
    xs_close(h);
}

static void test_guest_permissions(void **state)
{
    (void)state;
    struct xs_handle *h = open_dom0();
    introduce(h, 5);
    assert_true(xs_is_domain_introduced(h, 5));
    assert_true(xs_write(h, XBT_NULL, "/secret/dm/command", "save", 4));   /* n0 */
    struct xs_handle *g = open_guest(5);
    unsigned len;
    /* n0: no read, no write, no create below it — EACCES, no hang. */
    assert_null(xs_read(g, XBT_NULL, "/secret/dm/command", &len));
    assert_int_equal(errno, EACCES);
    assert_false(xs_write(g, XBT_NULL, "/secret/dm/command", "continue", 8));
    assert_int_equal(errno, EACCES);
    assert_false(xs_write(g, XBT_NULL, "/secret/dm/new", "x", 1));
    assert_int_equal(errno, EACCES);
    assert_false(xs_rm(g, XBT_NULL, "/secret/dm"));
    assert_int_equal(errno, EACCES);
    /* A missing node under an unreadable parent is EACCES, not ENOENT. */
    assert_null(xs_read(g, XBT_NULL, "/secret/nothing", &len));
    assert_int_equal(errno, EACCES);
    unsigned n;
    assert_null(xs_directory(g, XBT_NULL, "/secret", &n));
    assert_int_equal(errno, EACCES);
    char *v = xs_read(h, XBT_NULL, "/secret/dm/command", &len);
    assert_string_equal(v, "save");
    free(v);
    /* Its home: readable, and its own subdirectories writable, relative
     * paths included. */
    v = xs_read(g, XBT_NULL, "/local/domain/5/domid", &len);
    assert_string_equal(v, "5");
    free(v);
    assert_true(xs_write(g, XBT_NULL, "data/x", "mine", 4));
    v = xs_read(h, XBT_NULL, "/local/domain/5/data/x", &len);
    assert_string_equal(v, "mine");
    free(v);
    /* The guest owns what it creates. */
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, "/local/domain/5/data/x", &n);
    assert_int_equal(p[0].id, 5);
    free(p);
    /* The home itself is read-only for it (libxl's layout). */
    assert_false(xs_write(g, XBT_NULL, "/local/domain/5/name", "evil", 4));
    assert_int_equal(errno, EACCES);
    /* Privileged operations: EACCES. */
    assert_false(xs_introduce_domain(g, 9, 1, 1));
    assert_int_equal(errno, EACCES);
    /* SET_PERMS: the owner may, but not give the node away. */
    struct xs_permissions mine[2] = { { 5, XS_PERM_NONE }, { 0, XS_PERM_READ } };
    assert_true(xs_set_permissions(g, XBT_NULL, "data/x", mine, 2));
    struct xs_permissions away[1] = { { 6, XS_PERM_NONE } };
    assert_false(xs_set_permissions(g, XBT_NULL, "data/x", away, 1));
    assert_int_equal(errno, EPERM);
    /* Not the owner: EACCES (even with a write grant). */
    struct xs_permissions grant[2] = { { 0, XS_PERM_NONE }, { 5, XS_PERM_READ | XS_PERM_WRITE } };
    assert_true(xs_set_permissions(h, XBT_NULL, "/secret/shared", grant, 2) ||
                (xs_write(h, XBT_NULL, "/secret/shared", "", 0) &&
                 xs_set_permissions(h, XBT_NULL, "/secret/shared", grant, 2)));
    assert_true(xs_write(g, XBT_NULL, "/secret/shared", "ok", 2));
    assert_false(xs_set_permissions(g, XBT_NULL, "/secret/shared", grant, 2));
    assert_int_equal(errno, EACCES);
    /* A relative watch gets relative event paths. */
    assert_true(xs_watch(g, "data", "rel"));
    expect_event(g, "data", "rel");
    assert_true(xs_write(h, XBT_NULL, "/local/domain/5/data/y", "1", 1));
    expect_event(g, "data/y", "rel");
    /* Watches do not reveal unreadable nodes. */
    assert_true(xs_watch(g, "/secret", "s"));
    expect_event(g, "/secret", "s");   /* registration always fires */
    assert_true(xs_write(h, XBT_NULL, "/secret/dm/command", "x", 1));
    assert_true(xs_write(h, XBT_NULL, "/secret/shared", "y", 1));
    expect_event(g, "/secret/shared", "s");  /* readable: seen; the n0 one was not */
    assert_null(queued_watch(g));
    xs_close(g);
    assert_true(xs_release_domain(h, 5));
    xs_close(h);
}

static void test_target(void **state)
{
    (void)state;
    struct xs_handle *h = open_dom0();
    introduce(h, 11);   /* a guest */
    introduce(h, 12);   /* its stub domain */
    assert_true(xs_set_target(h, 12, 11));
    struct xs_handle *stub = open_guest(12);
    /* Owner rights on the target's nodes. */
    struct xs_permissions p11[1] = { { 11, XS_PERM_NONE } };
    assert_true(xs_write(h, XBT_NULL, "/tg/of11", "v", 1));
    assert_true(xs_set_permissions(h, XBT_NULL, "/tg/of11", p11, 1));
    unsigned len;
    char *v = xs_read(stub, XBT_NULL, "/tg/of11", &len);
    assert_non_null(v);
    free(v);
    assert_true(xs_write(stub, XBT_NULL, "/tg/of11", "w", 1));
    /* And the target's grants. */
    struct xs_permissions g11[2] = { { 0, XS_PERM_NONE }, { 11, XS_PERM_READ } };
    assert_true(xs_write(h, XBT_NULL, "/tg/grant", "v", 1));
    assert_true(xs_set_permissions(h, XBT_NULL, "/tg/grant", g11, 2));
    v = xs_read(stub, XBT_NULL, "/tg/grant", &len);
    assert_non_null(v);
    free(v);
    assert_false(xs_write(stub, XBT_NULL, "/tg/grant", "w", 1));
    assert_int_equal(errno, EACCES);
    xs_close(stub);
    assert_true(xs_release_domain(h, 12));
    assert_true(xs_release_domain(h, 11));
    xs_close(h);
}

static void test_introduce_release(void **state)
{
    (void)state;
    struct xs_handle *h = open_dom0(), *w = open_dom0();
    assert_true(xs_watch(w, "@introduceDomain", "intro"));
    expect_event(w, "@introduceDomain", "intro");
    assert_true(xs_watch(w, "@releaseDomain", "rel"));
    expect_event(w, "@releaseDomain", "rel");
    assert_false(xs_is_domain_introduced(h, 21));
    introduce(h, 21);
    expect_event(w, "@introduceDomain", "intro");
    assert_true(xs_is_domain_introduced(h, 21));
    unsigned n;
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, "/local/domain/21", &n);
    assert_non_null(p);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].id, 0);
    assert_int_equal(p[1].id, 21);
    assert_int_equal(p[1].perms, XS_PERM_READ);
    free(p);
    /* Introducing again is harmless. */
    introduce(h, 21);
    assert_true(xs_resume_domain(h, 21));
    /* The guest is connected until released. */
    struct xs_handle *g = open_guest(21);
    assert_true(xs_write(g, XBT_NULL, "data/k", "v", 1));
    assert_true(xs_release_domain(h, 21));
    expect_event(w, "@releaseDomain", "rel");
    assert_false(xs_is_domain_introduced(h, 21));
    unsigned len;
    assert_null(xs_read(h, XBT_NULL, "/local/domain/21", &len));
    assert_int_equal(errno, ENOENT);
    /* Its connection is gone: requests fail instead of hanging. */
    assert_null(xs_read(g, XBT_NULL, "data/k", &len));
    xs_close(g);
    assert_false(xs_release_domain(h, 21));
    assert_int_equal(errno, ENOENT);
    /* Bad domids. */
    assert_false(xs_introduce_domain(h, 0, 1, 1));
    assert_int_equal(errno, EINVAL);
    xs_close(h);
    xs_close(w);
}

static void test_control(void **state)
{
    (void)state;
    struct xs_handle *h = open_dom0();
    char *r = xs_control_command(h, "check", NULL, 0);
    assert_non_null(r);
    assert_string_equal(r, "OK");
    free(r);
    r = xs_control_command(h, "no-such-command", NULL, 0);
    assert_null(r);
    assert_int_equal(errno, EINVAL);
    xs_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_write_directory),
        cmocka_unit_test(test_large_directory),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_perms),
        cmocka_unit_test(test_guest_permissions),
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_introduce_release),
        cmocka_unit_test(test_control),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
