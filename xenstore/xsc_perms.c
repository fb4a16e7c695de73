/* xsc_perms: refusing guest-writable control nodes; creating private ones
 * (see xsc_perms.h for the permission model). */
#include "xsc_perms.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char perm_letter(unsigned p)
{
    switch (p & (XS_PERM_READ | XS_PERM_WRITE)) {
    case XS_PERM_READ: return 'r';
    case XS_PERM_WRITE: return 'w';
    case XS_PERM_READ | XS_PERM_WRITE: return 'b';
    default: return 'n';
    }
}

void xsc_perms_format(char *out, size_t size, const struct xs_permissions *perms,
                      unsigned n)
{
    size_t o = 0;

    if (!out || !size)
        return;
    out[0] = '\0';
    for (unsigned i = 0; i < n && o < size; i++) {
        int k = snprintf(out + o, size - o, "%s%c%u", i ? "," : "",
                         perm_letter(perms[i].perms), perms[i].id);
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

bool xsc_perms_safe(const struct xs_permissions *perms, unsigned n, unsigned owner,
                    char *why, size_t why_len)
{
    char tmp[8];

    if (!why || !why_len) {
        why = tmp;
        why_len = sizeof(tmp);
    }
    why[0] = '\0';
    if (!perms || n == 0) {
        snprintf(why, why_len, "has no permission list");
        return false;
    }
    if (perms[0].id != owner) {
        /* The owner always has full access, whatever its letter says. */
        snprintf(why, why_len, "is owned by domain %u, not by the device model's domain %u",
                 perms[0].id, owner);
        return false;
    }
    if (perms[0].perms & XS_PERM_WRITE) {
        snprintf(why, why_len, "is writable by every domain (default %c%u)",
                 perm_letter(perms[0].perms), perms[0].id);
        return false;
    }
    for (unsigned i = 1; i < n; i++) {
        if (perms[i].id != owner && (perms[i].perms & XS_PERM_WRITE)) {
            snprintf(why, why_len, "is writable by domain %u (%c%u)", perms[i].id,
                     perm_letter(perms[i].perms), perms[i].id);
            return false;
        }
    }
    return true;
}

int xsc_perms_check(struct xs_handle *xs, const char *path, unsigned owner,
                    char *why, size_t why_len)
{
    unsigned n = 0;
    char reason[160], list[128];
    struct xs_permissions *perms = xs_get_permissions(xs, XBT_NULL, path, &n);

    if (!perms) {
        int err = errno ? errno : EIO;
        snprintf(why, why_len, "cannot read the permissions of %s: %s", path,
                 strerror(err));
        return -err;
    }
    if (xsc_perms_safe(perms, n, owner, reason, sizeof(reason))) {
        free(perms);
        return 0;
    }
    xsc_perms_format(list, sizeof(list), perms, n);
    snprintf(why, why_len,
             "%s %s (permissions %s): a guest could send commands to the device model",
             path, reason, list);
    free(perms);
    return -EACCES;
}

static int set_private(struct xs_handle *xs, xs_transaction_t t, const char *path,
                       unsigned owner, int reader)
{
    struct xs_permissions perms[2] = {
        { .id = owner, .perms = XS_PERM_NONE },
        { .id = reader >= 0 ? (unsigned)reader : 0, .perms = XS_PERM_READ },
    };
    return xs_set_permissions(xs, t, path, perms, reader >= 0 ? 2 : 1) ? 0 : -errno;
}

/* Run op inside a transaction, redone on EAGAIN (a bounded number of times:
 * a livelock would otherwise hang the main loop). */
static int in_transaction(struct xs_handle *xs, const char *path, const void *value,
                          size_t len, bool write, unsigned owner, int reader)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return errno ? -errno : -EIO;
        bool ok = write ? xs_write(xs, t, path, value, (unsigned)len)
                        : xs_mkdir(xs, t, path);
        int rc = ok ? set_private(xs, t, path, owner, reader) : (errno ? -errno : -EIO);
        if (rc < 0) {
            int saved = rc;
            xs_transaction_end(xs, t, true);
            return saved;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return errno ? -errno : -EIO;
    }
    return -EAGAIN;
}

int xsc_perms_mkdir_private(struct xs_handle *xs, const char *path, unsigned owner,
                            int reader)
{
    if (!xs || !path)
        return -EINVAL;
    return in_transaction(xs, path, NULL, 0, false, owner, reader);
}

int xsc_perms_write_private(struct xs_handle *xs, const char *path, const void *value,
                            size_t len, unsigned owner, int reader)
{
    if (!xs || !path || (!value && len) || len > 4096)
        return -EINVAL;
    return in_transaction(xs, path, value ? value : "", len, true, owner, reader);
}
