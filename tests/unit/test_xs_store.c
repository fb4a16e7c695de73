/* test_xs_store: the xenstore tree, permissions, paths, transactions and
 * persistence of xensim, in-process (no sockets). */
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

#include "xs_internal.h"
#include "xs_store.h"
#include "xs_testd.h"
#include "xs_trans.h"
#include "xsim_log.h"

static const struct xs_caller dom5 = { .domid = 5 };
static const struct xs_caller dom6 = { .domid = 6 };

/* Recorded change-hook calls. */
struct event {
    char path[128];
    enum xs_match match;
    unsigned owner;
    int had_old;
};
static struct event events[64];
static int nevents;

static void record(void *arg, const char *path, enum xs_match m, const struct xs_perm *perms,
                   unsigned nperms, const struct xs_perm *old, unsigned nold)
{
    (void)arg;
    (void)nperms;
    (void)old;
    if (nevents < 64) {
        snprintf(events[nevents].path, sizeof(events[nevents].path), "%s", path);
        events[nevents].match = m;
        events[nevents].owner = perms[0].domid;
        events[nevents].had_old = nold > 0;
    }
    nevents++;
}

static struct xs_store *new_store(void)
{
    struct xs_store *st = xs_store_new();
    assert_non_null(st);
    nevents = 0;
    xs_store_set_change_hook(st, record, NULL);
    return st;
}

static void read_is_n(struct xs_store *st, const struct xs_caller *c, const char *path,
                      const char *want, size_t wantlen)
{
    char *v;
    size_t len;
    assert_int_equal(xs_store_read(st, c, path, &v, &len), 0);
    assert_int_equal(len, wantlen);
    assert_memory_equal(v, want, len);
    free(v);
}

static void read_is(struct xs_store *st, const struct xs_caller *c, const char *path,
                    const char *want)
{
    char *v;
    size_t len;
    assert_int_equal(xs_store_read(st, c, path, &v, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    free(v);
}

static void set_perms(struct xs_store *st, const char *path, const char *const *strs, unsigned n)
{
    struct xs_perm p[8];
    for (unsigned i = 0; i < n; i++)
        assert_true(xs_perm_parse(strs[i], &p[i]));
    assert_int_equal(xs_store_set_perms(st, &xs_caller_dom0, path, p, n), 0);
}

static void test_paths(void **state)
{
    (void)state;
    char out[XS_PATH_BUF];
    bool rel;
    assert_int_equal(xs_path_canonical(&dom5, "data/x", false, out, &rel), 0);
    assert_true(rel);
    assert_string_equal(out, "/local/domain/5/data/x");
    assert_int_equal(xs_path_canonical(&xs_caller_dom0, "x", false, out, &rel), 0);
    assert_string_equal(out, "/local/domain/0/x");
    assert_int_equal(xs_path_canonical(&dom5, "/", false, out, &rel), 0);
    assert_false(rel);
    const char *bad[] = { "", "/a//b", "/a/", "/a b", "/a\tb", "/ä", "a/../b" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(xs_path_canonical(&dom5, bad[i], false, out, &rel), EINVAL);
    assert_int_equal(xs_path_canonical(&dom5, "@releaseDomain", false, out, &rel), EINVAL);
    assert_int_equal(xs_path_canonical(&dom5, "@releaseDomain", true, out, &rel), 0);
    /* 3072 absolute for dom0; 2048 below the home for a guest. */
    char p[3100];
    memset(p, 'a', sizeof(p));
    p[0] = '/';
    p[3072] = '\0';
    assert_int_equal(xs_path_canonical(&xs_caller_dom0, p, false, out, &rel), 0);
    p[3072] = 'a';
    p[3073] = '\0';
    assert_int_equal(xs_path_canonical(&xs_caller_dom0, p, false, out, &rel), EINVAL);
    memset(p, 'b', sizeof(p));
    p[2048] = '\0';
    assert_int_equal(xs_path_canonical(&dom5, p, false, out, &rel), 0);
    p[2048] = 'b';
    p[2049] = '\0';
    assert_int_equal(xs_path_canonical(&dom5, p, false, out, &rel), EINVAL);
}

static void test_perm_rules(void **state)
{
    (void)state;
    struct xs_perm p[3];
    assert_true(xs_perm_parse("n7", &p[0]));
    assert_true(xs_perm_parse("r5", &p[1]));
    assert_true(xs_perm_parse("w6", &p[2]));
    assert_false(xs_perm_parse("x5", &p[0]) || xs_perm_parse("r", &p[0]) ||
                 xs_perm_parse("r-1", &p[0]) || xs_perm_parse("r65536", &p[0]) ||
                 xs_perm_parse("r5x", &p[0]));
    assert_true(xs_perm_parse("n7", &p[0]));
    /* Owner: everything; listed: its entry; others: the first entry. */
    struct xs_caller c7 = { .domid = 7 }, c9 = { .domid = 9 };
    assert_int_equal(xs_perm_for(&c7, p, 3), XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER);
    assert_int_equal(xs_perm_for(&dom5, p, 3), XS_PERM_READ);
    assert_int_equal(xs_perm_for(&dom6, p, 3), XS_PERM_WRITE);
    assert_int_equal(xs_perm_for(&c9, p, 3), XS_PERM_NONE);
    assert_int_equal(xs_perm_for(&xs_caller_dom0, p, 3) & XS_PERM_OWNER, XS_PERM_OWNER);
    /* Target: the target's owner rights and grants. */
    struct xs_caller stub = { .domid = 9, .has_target = true, .target = 7 };
    assert_int_equal(xs_perm_for(&stub, p, 3) & XS_PERM_OWNER, XS_PERM_OWNER);
    stub.target = 5;
    assert_int_equal(xs_perm_for(&stub, p, 3), XS_PERM_READ);
    char buf[16];
    xs_perm_format(&p[2], buf, sizeof(buf));
    assert_string_equal(buf, "w6");
}

static void test_write_inherits(void **state)
{
    (void)state;
    struct xs_store *st = new_store();
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/g", "", 0), 0);
    set_perms(st, "/g", (const char *const[]){ "n0", "b5" }, 2);
    nevents = 0;
    /* dom5 may write below /g; it becomes owner of what it creates, the
     * rest of the list is inherited. */
    assert_int_equal(xs_store_write(st, &dom5, "/g/a/b", "v", 1), 0);
    assert_int_equal(nevents, 1);  /* one event, for the written path */
    assert_string_equal(events[0].path, "/g/a/b");
    struct xs_perm *p;
    unsigned n;
    assert_int_equal(xs_store_get_perms(st, &xs_caller_dom0, "/g/a", &p, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].domid, 5);
    assert_int_equal(p[1].domid, 5);
    free(p);
    /* dom6 may not: EACCES; and a missing node below an unreadable
     * parent is EACCES too (no information leak). */
    char *v;
    size_t len;
    assert_int_equal(xs_store_write(st, &dom6, "/g/c", "v", 1), EACCES);
    assert_int_equal(xs_store_read(st, &dom6, "/g/zz", &v, &len), EACCES);
    assert_int_equal(xs_store_read(st, &dom5, "/g/zz", &v, &len), ENOENT);
    /* Unprivileged SET_PERMS: owner only, owner kept. */
    struct xs_perm np[2] = { { 5, XS_PERM_NONE }, { 6, XS_PERM_READ } };
    assert_int_equal(xs_store_set_perms(st, &dom5, "/g/a/b", np, 2), 0);
    read_is(st, &dom6, "/g/a/b", "v");
    np[0].domid = 6;
    assert_int_equal(xs_store_set_perms(st, &dom5, "/g/a/b", np, 2), EPERM);
    assert_int_equal(xs_store_set_perms(st, &dom6, "/g/a/b", np, 2), EACCES);
    /* Quota: at most 5 entries for a guest. */
    struct xs_perm six[6] = { { 5, 0 }, { 1, 1 }, { 2, 1 }, { 3, 1 }, { 4, 1 }, { 6, 1 } };
    assert_int_equal(xs_store_set_perms(st, &dom5, "/g/a/b", six, 6), ENOSPC);
    xs_store_free(st);
}

static void test_rm(void **state)
{
    (void)state;
    struct xs_store *st = new_store();
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/r/a/b", "1", 1), 0);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/r/a/c", "2", 1), 0);
    nevents = 0;
    assert_int_equal(xs_store_rm(st, &xs_caller_dom0, "/r/a"), 0);
    /* Children first, exact; the removed node last, subtree. */
    assert_int_equal(nevents, 3);
    assert_string_equal(events[0].path, "/r/a/b");
    assert_int_equal(events[0].match, XS_MATCH_EXACT);
    assert_string_equal(events[2].path, "/r/a");
    assert_int_equal(events[2].match, XS_MATCH_SUBTREE);
    assert_false(xs_store_exists(st, "/r/a/b"));
    assert_int_equal(xs_store_rm(st, &xs_caller_dom0, "/r/a"), 0);
    assert_int_equal(xs_store_rm(st, &xs_caller_dom0, "/r/a/b"), ENOENT);
    assert_int_equal(xs_store_rm(st, &xs_caller_dom0, "/"), EINVAL);
    size_t before = xs_store_node_count(st);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/r/x/y/z", "", 0), 0);
    assert_int_equal(xs_store_node_count(st), before + 3);
    assert_int_equal(xs_store_rm(st, &xs_caller_dom0, "/r/x"), 0);
    assert_int_equal(xs_store_node_count(st), before);
    xs_store_free(st);
}

static void test_node_quota(void **state)
{
    (void)state;
    struct xs_store *st = new_store();
    struct xs_store_limits lim = *xs_store_limits(st);
    lim.nodes_per_domain = 10;
    xs_store_set_limits(st, &lim);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/q", "", 0), 0);
    set_perms(st, "/q", (const char *const[]){ "n0", "b5" }, 2);
    char p[32];
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof(p), "/q/n%d", i);
        assert_int_equal(xs_store_write(st, &dom5, p, "", 0), 0);
    }
    assert_int_equal(xs_store_write(st, &dom5, "/q/one-too-many", "", 0), ENOSPC);
    assert_int_equal(xs_store_rm(st, &dom5, "/q/n0"), 0);
    assert_int_equal(xs_store_write(st, &dom5, "/q/again", "", 0), 0);
    /* Value size for a guest. */
    char big[2049];
    memset(big, 'x', sizeof(big));
    assert_int_equal(xs_store_write(st, &dom5, "/q/n1", big, sizeof(big)), ENOSPC);
    assert_int_equal(xs_store_write(st, &dom5, "/q/n1", big, 2048), 0);
    xs_store_free(st);
}

static void test_transactions(void **state)
{
    (void)state;
    struct xs_store *st = new_store();
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/t/a", "1", 1), 0);
    /* Creating several nodes under a new parent must not conflict with
     * itself (the transaction's own nodes are not conflicts). */
    struct xs_trans *t = xs_trans_start(st, 1, 0);
    assert_int_equal(xs_trans_write(t, &xs_caller_dom0, "/t/new/x", "1", 1), 0);
    assert_int_equal(xs_trans_write(t, &xs_caller_dom0, "/t/new/y", "2", 1), 0);
    assert_int_equal(xs_trans_rm(t, &xs_caller_dom0, "/t/new/x"), 0);
    nevents = 0;
    assert_false(xs_store_exists(st, "/t/new"));
    assert_int_equal(xs_trans_end(t, &xs_caller_dom0, true), 0);
    assert_true(xs_store_exists(st, "/t/new/y"));
    assert_false(xs_store_exists(st, "/t/new/x"));
    assert_true(nevents >= 3);  /* events only now, at commit */

    /* A read node changed outside: EAGAIN, nothing applied. */
    t = xs_trans_start(st, 2, 0);
    read_is(st, &xs_caller_dom0, "/t/a", "1");
    char *v;
    size_t len;
    assert_int_equal(xs_store_read(xs_trans_store(t), &xs_caller_dom0, "/t/a", &v, &len), 0);
    free(v);
    assert_int_equal(xs_trans_write(t, &xs_caller_dom0, "/t/b", "x", 1), 0);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/t/a", "2", 1), 0);
    assert_int_equal(xs_trans_end(t, &xs_caller_dom0, true), EAGAIN);
    assert_false(xs_store_exists(st, "/t/b"));

    /* A node created outside where the transaction saw none: EAGAIN. */
    t = xs_trans_start(st, 3, 0);
    assert_int_equal(xs_store_read(xs_trans_store(t), &xs_caller_dom0, "/t/c", &v, &len), ENOENT);
    assert_int_equal(xs_trans_write(t, &xs_caller_dom0, "/t/d", "x", 1), 0);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/t/c", "now", 3), 0);
    assert_int_equal(xs_trans_end(t, &xs_caller_dom0, true), EAGAIN);

    /* Unrelated changes outside do not conflict. */
    t = xs_trans_start(st, 4, 0);
    assert_int_equal(xs_trans_write(t, &xs_caller_dom0, "/t/a", "3", 1), 0);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/elsewhere", "x", 1), 0);
    assert_int_equal(xs_trans_end(t, &xs_caller_dom0, true), 0);
    read_is(st, &xs_caller_dom0, "/t/a", "3");

    /* Node quota of a transaction: ENOSPC, and the commit fails. */
    t = xs_trans_start(st, 5, 4);
    int e = 0;
    char p[32];
    for (int i = 0; i < 10 && !e; i++) {
        snprintf(p, sizeof(p), "/t/a%d", i);
        e = xs_store_read(xs_trans_store(t), &xs_caller_dom0, p, &v, &len);
        if (e == ENOENT)
            e = xs_trans_check(t);
    }
    assert_int_equal(e, ENOSPC);
    assert_int_equal(xs_trans_end(t, &xs_caller_dom0, true), ENOSPC);
    xs_store_free(st);
}

static char tmpdir[256];

static void test_persistence(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/xs-store-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char file[300];
    snprintf(file, sizeof(file), "%s/tree", tmpdir);
    struct xs_store *st = new_store();
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/p/bin", "a\0b", 3), 0);
    assert_int_equal(xs_store_write(st, &xs_caller_dom0, "/p/x/y", "deep", 4), 0);
    set_perms(st, "/p/x", (const char *const[]){ "r3", "b4" }, 2);
    set_perms(st, "@introduceDomain", (const char *const[]){ "n0", "r8" }, 2);
    assert_int_equal(xs_persist_save(st, file), 0);
    size_t count = xs_store_node_count(st);

    struct xs_store *st2 = xs_store_new();
    assert_int_equal(xs_persist_load(st2, file), 0);
    assert_int_equal(xs_store_node_count(st2), count);
    read_is_n(st2, &xs_caller_dom0, "/p/bin", "a\0b", 3);
    read_is(st2, &xs_caller_dom0, "/p/x/y", "deep");
    struct xs_perm *p;
    unsigned n;
    assert_int_equal(xs_store_get_perms(st2, &xs_caller_dom0, "/p/x", &p, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(p[0].domid, 3);
    assert_int_equal(p[0].perms, XS_PERM_READ);
    free(p);
    assert_int_equal(xs_store_get_perms(st2, &xs_caller_dom0, "@introduceDomain", &p, &n), 0);
    assert_int_equal(n, 2);
    free(p);
    xs_store_free(st2);

    /* Damaged files are refused, whole. */
    xsim_log_set_level(XSIM_LOG_QUIET);
    int fd = open(file, O_RDWR);
    assert_true(fd >= 0);
    off_t size = lseek(fd, 0, SEEK_END);
    char byte;
    assert_int_equal(pread(fd, &byte, 1, 40), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, 40), 1);
    st2 = xs_store_new();
    assert_int_equal(xs_persist_load(st2, file), EINVAL);
    xs_store_free(st2);
    assert_int_equal(ftruncate(fd, size / 2), 0);
    st2 = xs_store_new();
    assert_int_equal(xs_persist_load(st2, file), EINVAL);
    xs_store_free(st2);
    assert_int_equal(pwrite(fd, "NOTATREE", 8, 0), 8);
    st2 = xs_store_new();
    assert_int_equal(xs_persist_load(st2, file), EINVAL);
    xs_store_free(st2);
    close(fd);
    st2 = xs_store_new();
    char missing[320];
    snprintf(missing, sizeof(missing), "%s/none", tmpdir);
    assert_int_equal(xs_persist_load(st2, missing), ENOENT);
    xs_store_free(st2);
    xsim_log_set_level(XSIM_LOG_WARN);
    xs_store_free(st);
    xs_testd_rmtree(tmpdir);
}

int main(void)
{
    xsim_log_set_level(XSIM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_perm_rules),
        cmocka_unit_test(test_write_inherits),
        cmocka_unit_test(test_rm),
        cmocka_unit_test(test_node_quota),
        cmocka_unit_test(test_transactions),
        cmocka_unit_test(test_persistence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
