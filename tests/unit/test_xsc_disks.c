/*
 * vbd discovery against a real xenstore daemon: good disks of each kind are
 * found; every hostile or broken link and value -- written by the toolstack
 * side here and, for the guest-owned frontend, by the guest over its own
 * socket -- makes that one disk be skipped, never followed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_xsc_fixture.h"
#include "xsc_disks.h"

#define DOMID 5

typedef struct dctx {
    xsim sim;
    bool skip;
    char skip_why[300];
    struct xs_handle *ts;
    int warnings;
    char lastlog[512];
} dctx;

static void count_log(void *opaque, rs_log_level level, const char *msg)
{
    dctx *t = opaque;
    if (level == RS_LOG_WARNING)
        t->warnings++;
    snprintf(t->lastlog, sizeof(t->lastlog), "%s", msg);
    if (getenv("XSC_TEST_VERBOSE"))
        fprintf(stderr, "[xsc %d] %s\n", (int)level, msg);
}

static void put(dctx *t, const char *path, const void *v, size_t len)
{
    if (!xs_write(t->ts, XBT_NULL, path, v, (unsigned)len))
        fail_msg("write %s: %s", path, strerror(errno));
}

static void putf(dctx *t, const char *dir, const char *name, const char *v)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    put(t, p, v, strlen(v));
}

typedef struct vbd {
    unsigned bdom, devid;
    const char *dev, *params, *type, *mode, *devtype;
    const char *fe_backend;   /* NULL: the correct link */
    const char *be_frontend;  /* NULL: the correct link */
    const char *fe_backend_id;
    bool no_frontend;
} vbd;

/* The toolstack's layout: backend [n<bdom>, r<domid>], frontend owned by
 * the guest [n<domid>, r<bdom>]. */
static void make_vbd(dctx *t, const vbd *v)
{
    char be[128], fe[128], s[32];
    assert_int_equal(xsc_path_vbd_backend(be, sizeof(be), v->bdom, DOMID, v->devid), 0);
    assert_int_equal(xsc_path_vbd_frontend(fe, sizeof(fe), DOMID, v->devid), 0);
    putf(t, be, "frontend", v->be_frontend ? v->be_frontend : fe);
    snprintf(s, sizeof(s), "%d", DOMID);
    putf(t, be, "frontend-id", s);
    if (v->params)
        putf(t, be, "params", v->params);
    if (v->type)
        putf(t, be, "type", v->type);
    if (v->mode)
        putf(t, be, "mode", v->mode);
    if (v->dev)
        putf(t, be, "dev", v->dev);
    if (v->devtype)
        putf(t, be, "device-type", v->devtype);
    if (v->no_frontend)
        return;
    /* As libxl: the frontend directory first, with its permissions, so the
     * entries written into it inherit them (the guest owns its values). */
    struct xs_permissions fp[2] = { { DOMID, XS_PERM_NONE }, { v->bdom, XS_PERM_READ } };
    assert_true(xs_mkdir(t->ts, XBT_NULL, fe));
    assert_true(xs_set_permissions(t->ts, XBT_NULL, fe, fp, 2));
    putf(t, fe, "backend", v->fe_backend ? v->fe_backend : be);
    snprintf(s, sizeof(s), "%u", v->bdom);
    putf(t, fe, "backend-id", v->fe_backend_id ? v->fe_backend_id : s);
}

static int setup(void **state)
{
    dctx *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    *state = t;
    int rc = xsim_setup(&t->sim, false, t->skip_why, sizeof(t->skip_why));
    if (rc != 0) {
        t->skip = true;
        return rc < 0 ? -1 : 0;
    }
    t->ts = ts_open();
    assert_non_null(t->ts);
    return 0;
}

static int teardown(void **state)
{
    dctx *t = *state;
    if (t->ts)
        xs_close(t->ts);
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

static const xsc_disk *find(const xsc_disk_list *l, unsigned devid)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->disk[i].devid == devid)
            return &l->disk[i];
    return NULL;
}

static void test_good_disks(void **state)
{
    dctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    vbd good[] = {
        { 0, 2064, "sdb", "aio:/images/b.img", "qdisk", "w", "disk", NULL, NULL, NULL, false },
        { 0, 768, "hda", "/dev/vg/guest", "phy", "w", "disk", NULL, NULL, NULL, false },
        { 0, 5632, "hdc", "", "phy", "r", "cdrom", NULL, NULL, NULL, false },
        { 0, 51728, "xvdb", "/dev/vg/data", "phy", "r", "disk", NULL, NULL, NULL, false },
    };
    for (size_t i = 0; i < 4; i++)
        make_vbd(t, &good[i]);
    xsc_logger lg = { count_log, t };
    static xsc_disk_list l;
    assert_int_equal(xsc_disks_read(t->ts, DOMID, NULL, &lg, &l), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.skipped, 0);
    /* IDE first by unit, then SATA */
    assert_int_equal(l.disk[0].devid, 768);
    assert_int_equal(l.disk[1].devid, 51728);
    assert_int_equal(l.disk[2].devid, 5632);
    assert_int_equal(l.disk[3].devid, 2064);
    const xsc_disk *d = find(&l, 768);
    assert_string_equal(d->dev, "hda");
    assert_int_equal(d->bus, XSC_DISK_IDE);
    assert_int_equal(d->unit, 0);
    assert_string_equal(d->path, "/dev/vg/guest");
    assert_string_equal(d->format, "");
    assert_string_equal(d->type, "phy");
    assert_false(d->readonly);
    assert_false(d->cdrom);
    assert_string_equal(d->backend, "/local/domain/0/backend/vbd/5/768");
    assert_string_equal(d->frontend, "/local/domain/5/device/vbd/768");
    d = find(&l, 5632);
    assert_true(d->cdrom);
    assert_true(d->readonly);
    assert_string_equal(d->path, "");
    assert_int_equal(d->unit, 2);
    d = find(&l, 2064);
    assert_int_equal(d->bus, XSC_DISK_SATA);
    assert_int_equal(d->unit, 1);
    assert_string_equal(d->format, "aio");
    assert_string_equal(d->path, "/images/b.img");
    d = find(&l, 51728);
    assert_int_equal(d->bus, XSC_DISK_IDE);
    assert_int_equal(d->unit, 1);
    assert_true(d->readonly);
}

static void test_hostile_values(void **state)
{
    dctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    static char garbage[4000];
    for (size_t i = 0; i < sizeof(garbage) - 1; i++)
        garbage[i] = (char)(1 + (i * 37) % 250);
    vbd v[] = {
        /* the one good disk */
        { 0, 768, "hda", "/dev/vg/guest", "phy", "w", "disk", NULL, NULL, NULL, false },
        /* frontend points at another disk's backend */
        { 0, 832, "hdb", "/dev/vg/b", "phy", "w", "disk",
          "/local/domain/0/backend/vbd/5/768", NULL, NULL, false },
        /* frontend link with 4 KiB of garbage */
        { 0, 51744, "xvdc", "/dev/vg/c", "phy", "w", "disk", garbage, NULL, NULL, false },
        /* backend names another domain's frontend */
        { 0, 51760, "xvdd", "/dev/vg/d", "phy", "w", "disk", NULL,
          "/local/domain/6/device/vbd/51760", NULL, false },
        /* second disk on hda */
        { 0, 2080, "hda", "/dev/vg/dup", "phy", "w", "disk", NULL, NULL, NULL, false },
        /* relative image path */
        { 0, 2096, "sdc", "disk.img", "file", "w", "disk", NULL, NULL, NULL, false },
        /* dev that is not a device name */
        { 0, 2112, "hda; rm -rf /", "/dev/vg/e", "phy", "w", "disk", NULL, NULL, NULL, false },
        /* unknown mode */
        { 0, 2128, "sdd", "/dev/vg/f", "phy", "rw", "disk", NULL, NULL, NULL, false },
        /* frontend claims another backend domain */
        { 0, 2144, "sde", "/dev/vg/g", "phy", "w", "disk", NULL, NULL, "6", false },
        /* no frontend at all */
        { 0, 2160, "sdf", "/dev/vg/h", "phy", "w", "disk", NULL, NULL, NULL, true },
        /* a disk without a medium */
        { 0, 2176, "sdg", "", "phy", "w", "disk", NULL, NULL, NULL, false },
        /* unknown device-type */
        { 0, 2192, "sdh", "/dev/vg/i", "phy", "w", "floppy", NULL, NULL, NULL, false },
        /* no dev node */
        { 0, 2208, NULL, "/dev/vg/j", "phy", "w", "disk", NULL, NULL, NULL, false },
        /* control bytes in params */
        { 0, 2224, "sdi", "/dev/vg/k\n/etc/shadow", "phy", "w", "disk", NULL, NULL, NULL,
          false },
        /* a domain that is not trusted as a backend offers a disk */
        { 6, 2240, "sdj", "/etc/shadow", "phy", "w", "disk", NULL, NULL, NULL, false },
    };
    size_t nv = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < nv; i++)
        make_vbd(t, &v[i]);
    /* embedded NUL in the frontend link: exact bytes differ */
    char link[128];
    int ll = snprintf(link, sizeof(link), "/local/domain/0/backend/vbd/5/2256");
    vbd nul = { 0, 2256, "sdk", "/dev/vg/l", "phy", "w", "disk", NULL, NULL, NULL, false };
    make_vbd(t, &nul);
    memcpy(link + ll, "\0x", 2);
    put(t, "/local/domain/5/device/vbd/2256/backend", link, (size_t)ll + 2);
    /* the backend says it serves another guest */
    vbd other = { 0, 2272, "sdl", "/dev/vg/m", "phy", "w", "disk", NULL, NULL, NULL, false };
    make_vbd(t, &other);
    putf(t, "/local/domain/0/backend/vbd/5/2272", "frontend-id", "6");
    /* a directory entry that is not a device id */
    putf(t, "/local/domain/0/backend/vbd/5/abc", "dev", "hdd");
    putf(t, "/local/domain/0/backend/vbd/5/0768", "dev", "hdd");

    xsc_logger lg = { count_log, t };
    static xsc_disk_list l;
    assert_int_equal(xsc_disks_read(t->ts, DOMID, NULL, &lg, &l), 0);
    for (size_t i = 0; i < l.n; i++)
        if (l.disk[i].devid != 768)
            fail_msg("vbd %u was accepted", l.disk[i].devid);
    assert_int_equal(l.n, 1);
    /* nv - 2 (the good one; dom6's is never looked at) + nul + 2 bad names */
    assert_int_equal(l.skipped, nv - 2 + 1 + 1 + 2);
    assert_int_equal((size_t)t->warnings, l.skipped);
    assert_string_equal(l.disk[0].path, "/dev/vg/guest");

    /* trusting domain 6 too makes its disk visible */
    xsc_disks_opts o = { .trusted = { 0, 6 }, .ntrusted = 2 };
    assert_int_equal(xsc_disks_read(t->ts, DOMID, &o, &lg, &l), 0);
    assert_non_null(find(&l, 2240));
}

static void test_guest_rewrites_its_frontend(void **state)
{
    dctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    /* Introduced first: that builds the guest's home. */
    assert_true(xs_introduce_domain(t->ts, DOMID, 0x1000, 1));
    vbd good = { 0, 768, "hda", "/dev/vg/guest", "phy", "w", "disk", NULL, NULL, NULL, false };
    make_vbd(t, &good);
    /* Another domain (6) controls a backend directory naming our guest. */
    vbd evil = { 6, 768, "hda", "/etc/shadow", "phy", "w", "disk", NULL, NULL, NULL, true };
    make_vbd(t, &evil);
    char gsock[600];
    snprintf(gsock, sizeof(gsock), "%s/xenstored/domain/%d", t->sim.rundir, DOMID);
    setenv("XENSTORED_PATH", gsock, 1);
    struct xs_handle *guest = xs_open(0);
    setenv("XENSTORED_PATH", t->sim.sock, 1);
    assert_non_null(guest);
    /* The guest points its frontend at domain 6's backend. */
    const char *evil_be = "/local/domain/6/backend/vbd/5/768";
    assert_true(xs_write(guest, XBT_NULL, "device/vbd/768/backend", evil_be, strlen(evil_be)));
    assert_true(xs_write(guest, XBT_NULL, "device/vbd/768/backend-id", "6", 1));
    /* ...and cannot touch the backend itself. */
    errno = 0;
    assert_false(xs_write(guest, XBT_NULL, "/local/domain/0/backend/vbd/5/768/params",
                          "/etc/shadow", 11));
    assert_int_equal(errno, EACCES);
    xs_close(guest);

    xsc_logger lg = { count_log, t };
    static xsc_disk_list l;
    assert_int_equal(xsc_disks_read(t->ts, DOMID, NULL, &lg, &l), 0);
    /* The disk is lost to the guest's own tampering, and nothing of
     * domain 6's is used. */
    assert_int_equal(l.n, 0);
    assert_int_equal(l.skipped, 1);
    assert_non_null(strstr(t->lastlog, "does not point back"));
}

static void test_no_disks_and_bad_args(void **state)
{
    dctx *t = *state;
    SKIP_IF_NO_DAEMON(t);
    static xsc_disk_list l;
    assert_int_equal(xsc_disks_read(t->ts, DOMID, NULL, NULL, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.skipped, 0);
    assert_int_equal(xsc_disks_read(NULL, DOMID, NULL, NULL, &l), -EINVAL);
    assert_int_equal(xsc_disks_read(t->ts, 0x8000, NULL, NULL, &l), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_disks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_rewrites_its_frontend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_disks_and_bad_args, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
