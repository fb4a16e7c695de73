/* xsc_disks: vbd discovery with links validated both ways (xsc_disks.h). */
#include "xsc_disks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "xsc_text.h"

/* Directory entries looked at per backend directory: a toolstack writes a
 * handful; anything beyond is refused rather than walked. */
#define SCAN_MAX 256

bool xsc_disk_value_ok(const char *v, size_t len, size_t max)
{
    if (!v || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return false;     /* NUL, newline, escape sequences for logs */
    }
    return true;
}

int xsc_disk_parse_dev(const char *dev, size_t len, xsc_disk_bus *bus, unsigned *unit)
{
    if (!dev)
        return -EINVAL;
    /* libxl names an HVM guest's emulated disks hdX or xvdX (xvda is the
     * primary master, as hda), and sdX for SCSI/SATA. */
    if (len == 3 && dev[0] == 'h' && dev[1] == 'd' && dev[2] >= 'a' && dev[2] <= 'd') {
        *bus = XSC_DISK_IDE;
        *unit = (unsigned)(dev[2] - 'a');
        return 0;
    }
    if (len == 4 && memcmp(dev, "xvd", 3) == 0 && dev[3] >= 'a' && dev[3] <= 'd') {
        *bus = XSC_DISK_IDE;
        *unit = (unsigned)(dev[3] - 'a');
        return 0;
    }
    if (len == 3 && dev[0] == 's' && dev[1] == 'd' && dev[2] >= 'a' && dev[2] <= 'z') {
        *bus = XSC_DISK_SATA;
        *unit = (unsigned)(dev[2] - 'a');
        return 0;
    }
    return -EINVAL;
}

static bool is_prefix_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int xsc_disk_parse_params(const char *params, size_t len, bool cdrom, char *format,
                          size_t format_len, char *path, size_t path_len)
{
    size_t i = 0;

    format[0] = '\0';
    path[0] = '\0';
    if (!xsc_disk_value_ok(params, len, path_len - 1))
        return -EINVAL;
    /* "[fmt:][fmt:]/path" (xend's "tap:aio:/x", libxl's "aio:/x"): strip
     * every lower-case prefix, the innermost is the format. */
    for (;;) {
        size_t j = i;
        while (j < len && is_prefix_char(params[j]) && j - i < 16)
            j++;
        if (j > i && j < len && params[j] == ':' && j - i < format_len) {
            memcpy(format, params + i, j - i);
            format[j - i] = '\0';
            i = j + 1;
            continue;
        }
        break;
    }
    if (i == len) {
        /* An empty CD-ROM drive has no medium; a disk must have one. */
        return cdrom ? 0 : -EINVAL;
    }
    if (params[i] != '/')
        return -EINVAL;       /* relative paths depend on the dm's cwd */
    memcpy(path, params + i, len - i);
    path[len - i] = '\0';
    return 0;
}

/* Read a node into a NUL-terminated copy; 1 read, 0 absent, <0 error. */
static int read_node(struct xs_handle *xs, const char *dir, const char *name, char **out,
                     unsigned *len)
{
    char p[XSC_ABS_PATH_MAX + 1];

    *out = NULL;
    if (xsc_path_fmt(p, sizeof(p), "%s/%s", dir, name) < 0)
        return -ENAMETOOLONG;
    *out = xs_read(xs, XBT_NULL, p, len);
    if (*out)
        return 1;
    return errno == ENOENT ? 0 : -(errno ? errno : EIO);
}

static bool parse_devid(const char *s, unsigned *out)
{
    unsigned long v = 0;

    if (!s || !*s || (s[0] == '0' && s[1]) || strlen(s) > 9)
        return false;   /* canonical decimal only: "007" is not 7 */
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *out = (unsigned)v;
    return true;
}

#define SKIP(...) do { \
        char _s[512]; \
        snprintf(_s, sizeof(_s), __VA_ARGS__); \
        xsc_logf(lg, RS_LOG_WARNING, "vbd %s skipped: %s", bpath, _s); \
        goto skip; \
    } while (0)

static void read_one(struct xs_handle *xs, unsigned domid, unsigned bdom, unsigned devid,
                     const xsc_logger *lg, xsc_disk_list *out)
{
    char bpath[XSC_PATH_LEN], fpath[XSC_PATH_LEN], shown[128];
    char *v = NULL;
    unsigned len;
    int rc;
    xsc_disk d;

    memset(&d, 0, sizeof(d));
    if (xsc_path_vbd_backend(bpath, sizeof(bpath), bdom, domid, devid) < 0 ||
        xsc_path_vbd_frontend(fpath, sizeof(fpath), domid, devid) < 0)
        return;
    d.devid = devid;
    d.backend_domid = bdom;
    memcpy(d.backend, bpath, sizeof(bpath));
    memcpy(d.frontend, fpath, sizeof(fpath));

    /* backend -> frontend */
    rc = read_node(xs, bpath, "frontend", &v, &len);
    if (rc <= 0)
        SKIP("no frontend link (%s)", rc < 0 ? strerror(-rc) : "absent");
    if (!xsc_value_is(v, len, fpath)) {
        xsc_escape(shown, sizeof(shown), v, len, 64);
        SKIP("its frontend link \"%s\" is not %s", shown, fpath);
    }
    free(v);
    v = NULL;
    rc = read_node(xs, bpath, "frontend-id", &v, &len);
    if (rc > 0) {
        char want[16];
        snprintf(want, sizeof(want), "%u", domid);
        if (!xsc_value_is(v, len, want)) {
            xsc_escape(shown, sizeof(shown), v, len, 32);
            SKIP("its frontend-id \"%s\" is not %s", shown, want);
        }
    }
    free(v);
    v = NULL;

    /* frontend -> backend: guest-owned, compared only */
    rc = read_node(xs, fpath, "backend", &v, &len);
    if (rc <= 0)
        SKIP("the frontend has no backend link (%s)", rc < 0 ? strerror(-rc) : "absent");
    if (!xsc_value_is(v, len, bpath)) {
        xsc_escape(shown, sizeof(shown), v, len, 64);
        SKIP("the frontend's backend link \"%s\" does not point back", shown);
    }
    free(v);
    v = NULL;
    rc = read_node(xs, fpath, "backend-id", &v, &len);
    if (rc > 0) {
        char want[16];
        snprintf(want, sizeof(want), "%u", bdom);
        if (!xsc_value_is(v, len, want)) {
            xsc_escape(shown, sizeof(shown), v, len, 32);
            SKIP("the frontend's backend-id \"%s\" is not %s", shown, want);
        }
    }
    free(v);
    v = NULL;

    /* device-type before params: an empty params is fine for a CD-ROM */
    rc = read_node(xs, bpath, "device-type", &v, &len);
    if (rc > 0) {
        if (xsc_value_is(v, len, "cdrom"))
            d.cdrom = true;
        else if (!xsc_value_is(v, len, "disk")) {
            xsc_escape(shown, sizeof(shown), v, len, 32);
            SKIP("device-type \"%s\" is neither disk nor cdrom", shown);
        }
    }
    free(v);
    v = NULL;

    rc = read_node(xs, bpath, "dev", &v, &len);
    if (rc <= 0)
        SKIP("no dev node");
    if (xsc_disk_parse_dev(v, len, &d.bus, &d.unit) < 0) {
        xsc_escape(shown, sizeof(shown), v, len, 32);
        SKIP("dev \"%s\" is not hd[a-d], xvd[a-d] or sd[a-z]", shown);
    }
    memcpy(d.dev, v, len);
    free(v);
    v = NULL;

    rc = read_node(xs, bpath, "mode", &v, &len);
    if (rc > 0) {
        if (xsc_value_is(v, len, "r"))
            d.readonly = true;
        else if (!xsc_value_is(v, len, "w")) {
            xsc_escape(shown, sizeof(shown), v, len, 32);
            SKIP("mode \"%s\" is neither r nor w", shown);
        }
    } else {
        d.readonly = d.cdrom;   /* libxl always writes it; be safe without */
    }
    free(v);
    v = NULL;

    rc = read_node(xs, bpath, "type", &v, &len);
    if (rc > 0) {
        if (!xsc_disk_value_ok(v, len, sizeof(d.type) - 1) || len == 0) {
            xsc_escape(shown, sizeof(shown), v, len, 32);
            SKIP("type \"%s\" is not a short name", shown);
        }
        memcpy(d.type, v, len);
    }
    free(v);
    v = NULL;

    rc = read_node(xs, bpath, "params", &v, &len);
    if (rc < 0)
        SKIP("cannot read params: %s", strerror(-rc));
    if (xsc_disk_parse_params(v ? v : "", rc > 0 ? len : 0, d.cdrom, d.format,
                              sizeof(d.format), d.path, sizeof(d.path)) < 0) {
        xsc_escape(shown, sizeof(shown), v, rc > 0 ? len : 0, 64);
        SKIP("params \"%s\" is not [format:]/absolute/path", shown);
    }
    free(v);
    v = NULL;

    for (size_t i = 0; i < out->n; i++)
        if (out->disk[i].bus == d.bus && out->disk[i].unit == d.unit)
            SKIP("dev %s is already taken by vbd %u", d.dev, out->disk[i].devid);
    if (out->n == XSC_DISKS_MAX)
        SKIP("more than %d disks", XSC_DISKS_MAX);
    out->disk[out->n++] = d;
    return;

skip:
    free(v);
    out->skipped++;
}

static int cmp_disk(const void *a, const void *b)
{
    const xsc_disk *x = a, *y = b;
    if (x->bus != y->bus)
        return x->bus < y->bus ? -1 : 1;
    return x->unit < y->unit ? -1 : x->unit > y->unit;
}

int xsc_disks_read(struct xs_handle *xs, unsigned domid, const xsc_disks_opts *opts,
                   const xsc_logger *lg, xsc_disk_list *out)
{
    static const unsigned dom0_only[1] = { 0 };
    const unsigned *trusted = dom0_only;
    size_t ntrusted = 1;

    if (!xs || !out || domid > XSC_DOMID_MAX)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (opts && opts->ntrusted) {
        trusted = opts->trusted;
        ntrusted = opts->ntrusted > XSC_DISK_TRUSTED_MAX ? XSC_DISK_TRUSTED_MAX
                                                         : opts->ntrusted;
    }
    for (size_t b = 0; b < ntrusted; b++) {
        char dir[XSC_PATH_LEN];
        unsigned n = 0;

        if (xsc_path_vbd_backend_dir(dir, sizeof(dir), trusted[b], domid) < 0)
            continue;
        char **names = xs_directory(xs, XBT_NULL, dir, &n);
        if (!names) {
            if (errno == ENOENT)
                continue;
            int err = errno ? errno : EIO;
            xsc_logf(lg, RS_LOG_ERROR, "cannot list %s: %s", dir, strerror(err));
            return -err;
        }
        if (n > SCAN_MAX) {
            xsc_logf(lg, RS_LOG_WARNING, "%s has %u entries; only the first %d are read",
                     dir, n, SCAN_MAX);
            out->skipped += n - SCAN_MAX;
            n = SCAN_MAX;
        }
        for (unsigned i = 0; i < n; i++) {
            unsigned devid;
            if (!parse_devid(names[i], &devid)) {
                char shown[64];
                xsc_escape(shown, sizeof(shown), names[i], strlen(names[i]), 24);
                xsc_logf(lg, RS_LOG_WARNING, "%s/%s skipped: not a vbd device id", dir, shown);
                out->skipped++;
                continue;
            }
            read_one(xs, domid, trusted[b], devid, lg, out);
        }
        free(names);
    }
    qsort(out->disk, out->n, sizeof(out->disk[0]), cmp_disk);
    return 0;
}
