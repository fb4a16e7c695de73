/* test_xs_server_mt: the daemon on a thread of this process, driven both
 * through its in-process API (xsim_loop_call, as the simulated hypervisor
 * and xl will) and by a libxenstore client; persistence across restarts. */
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

#include "xs_server.h"
#include "xs_testd.h"

struct call {
    struct xs_testd *d;
    const char *what;
    const char *path;
    const char *value;
    unsigned domid;
    int result;
};

static void on_loop(struct xsim_loop *loop, void *arg)
{
    struct call *c = arg;
    (void)loop;
    struct xs_server *srv = c->d->srv;
    if (strcmp(c->what, "write") == 0)
        c->result = xs_server_write_str(srv, c->path, c->value);
    else if (strcmp(c->what, "introduce") == 0)
        c->result = xs_server_introduce(srv, c->domid);
    else if (strcmp(c->what, "release") == 0)
        c->result = xs_server_release(srv, c->domid);
    else if (strcmp(c->what, "shutdown") == 0)
        c->result = xs_server_domain_shutdown(srv, c->domid);
}

static int run(struct xs_testd *d, const char *what, const char *path, const char *value,
               unsigned domid)
{
    struct call c = { d, what, path, value, domid, -1 };
    assert_int_equal(xsim_loop_call(d->loop, on_loop, &c), 0);
    return c.result;
}

static char **wait_watch(struct xs_handle *h, int timeout_ms)
{
    int fd = xs_fileno(h);
    for (;;) {
        char **v = xs_check_watch(h);
        if (v)
            return v;
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, timeout_ms) <= 0)
            return NULL;
    }
}

static void expect_event(struct xs_handle *h, const char *path)
{
    char **v = wait_watch(h, 5000);
    assert_non_null(v);
    assert_string_equal(v[XS_WATCH_PATH], path);
    free(v);
}

static void test_inprocess_api(void **state)
{
    (void)state;
    struct xs_testd d;
    assert_int_equal(xs_testd_start(&d, XS_TESTD_THREAD, NULL), 0);
    assert_int_equal(run(&d, "write", "/inproc/a", "1", 0), 0);
    setenv("XENSTORED_PATH", d.sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_non_null(h);
    unsigned len;
    char *v = xs_read(h, XBT_NULL, "/inproc/a", &len);
    assert_string_equal(v, "1");
    free(v);
    /* In-process writes fire watches like a client's. */
    assert_true(xs_watch(h, "/inproc", "t"));
    expect_event(h, "/inproc");
    assert_int_equal(run(&d, "write", "/inproc/b", "2", 0), 0);
    expect_event(h, "/inproc/b");
    assert_int_equal(run(&d, "write", "not-absolute//", "x", 0), EINVAL);
    /* Domains. */
    assert_true(xs_watch(h, "@releaseDomain", "r"));
    expect_event(h, "@releaseDomain");
    assert_int_equal(run(&d, "introduce", NULL, NULL, 40), 0);
    assert_true(xs_is_domain_introduced(h, 40));
    /* A shutdown fires @releaseDomain once until RESUME. */
    assert_int_equal(run(&d, "shutdown", NULL, NULL, 40), 0);
    expect_event(h, "@releaseDomain");
    assert_int_equal(run(&d, "shutdown", NULL, NULL, 40), 0);
    assert_true(xs_resume_domain(h, 40));
    assert_int_equal(run(&d, "shutdown", NULL, NULL, 40), 0);
    expect_event(h, "@releaseDomain");
    assert_int_equal(run(&d, "release", NULL, NULL, 40), 0);
    expect_event(h, "@releaseDomain");
    assert_int_equal(run(&d, "release", NULL, NULL, 40), ENOENT);
    xs_close(h);
    assert_int_equal(xs_testd_stop(&d, false), 0);
}

static void test_persistence_across_restart(void **state)
{
    (void)state;
    char dir[] = "/tmp/xs-persist-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct xs_server_opts o = { .rundir = dir, .persist = true };
    struct xs_testd d;
    assert_int_equal(xs_testd_start(&d, XS_TESTD_THREAD, &o), 0);
    setenv("XENSTORED_PATH", d.sock, 1);
    struct xs_handle *h = xs_open(0);
    assert_true(xs_write(h, XBT_NULL, "/kept/v", "x\0y", 3));
    struct xs_permissions p[2] = { { 3, XS_PERM_NONE }, { 4, XS_PERM_READ } };
    assert_true(xs_set_permissions(h, XBT_NULL, "/kept/v", p, 2));
    xs_close(h);
    assert_int_equal(xs_testd_stop(&d, true), 0);

    assert_int_equal(xs_testd_start(&d, XS_TESTD_THREAD, &o), 0);
    h = xs_open(0);
    unsigned len, n;
    char *v = xs_read(h, XBT_NULL, "/kept/v", &len);
    assert_non_null(v);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "x\0y", 3);
    free(v);
    struct xs_permissions *got = xs_get_permissions(h, XBT_NULL, "/kept/v", &n);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].id, 3);
    free(got);
    xs_close(h);
    assert_int_equal(xs_testd_stop(&d, true), 0);

    /* Without persistence the saved tree is ignored. */
    o.persist = false;
    assert_int_equal(xs_testd_start(&d, XS_TESTD_THREAD, &o), 0);
    h = xs_open(0);
    assert_null(xs_read(h, XBT_NULL, "/kept/v", &len));
    assert_int_equal(errno, ENOENT);
    xs_close(h);
    assert_int_equal(xs_testd_stop(&d, true), 0);
    xs_testd_rmtree(dir);
}

int main(void)
{
    setenv("XENSIM_LOG", "warn", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inprocess_api),
        cmocka_unit_test(test_persistence_across_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
