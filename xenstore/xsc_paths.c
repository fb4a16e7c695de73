/* xsc_paths: bounded construction of the dm's xenstore paths (xsc_paths.h). */
#include "xsc_paths.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int xsc_path_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!buf || size == 0 || !fmt)
        return -EINVAL;
    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    /* A truncated path would silently name another node: refuse it. */
    if (n < 0 || (size_t)n >= size || n > XSC_ABS_PATH_MAX) {
        buf[0] = '\0';
        return n < 0 ? -EINVAL : -ENAMETOOLONG;
    }
    return 0;
}

int xsc_paths_init(xsc_paths *p, unsigned dm_domid, unsigned domid)
{
    int rc = 0;

    if (!p || dm_domid > XSC_DOMID_MAX || domid > XSC_DOMID_MAX)
        return -EINVAL;
    memset(p, 0, sizeof(*p));
    p->dm_domid = dm_domid;
    p->domid = domid;
    rc |= xsc_path_fmt(p->dir, sizeof(p->dir), "/local/domain/%u/device-model/%u",
                       dm_domid, domid);
    rc |= xsc_path_fmt(p->command, sizeof(p->command), "%s/command", p->dir);
    rc |= xsc_path_fmt(p->state, sizeof(p->state), "%s/state", p->dir);
    rc |= xsc_path_fmt(p->parameter, sizeof(p->parameter), "%s/parameter", p->dir);
    rc |= xsc_path_fmt(p->logdirty_dir, sizeof(p->logdirty_dir), "%s/logdirty", p->dir);
    rc |= xsc_path_fmt(p->logdirty_cmd, sizeof(p->logdirty_cmd), "%s/logdirty/cmd", p->dir);
    rc |= xsc_path_fmt(p->logdirty_ret, sizeof(p->logdirty_ret), "%s/logdirty/ret", p->dir);
    rc |= xsc_path_fmt(p->disable_pf, sizeof(p->disable_pf), "%s/disable_pf", p->dir);
    rc |= xsc_path_fmt(p->runstate, sizeof(p->runstate), "%s/runstate", p->dir);
    rc |= xsc_path_fmt(p->error, sizeof(p->error), "%s/error", p->dir);
    rc |= xsc_path_fmt(p->status, sizeof(p->status), "%s/status", p->dir);
    rc |= xsc_path_fmt(p->serial_tty, sizeof(p->serial_tty),
                       "/local/domain/%u/serial/0/tty", domid);
    rc |= xsc_path_fmt(p->guest_home, sizeof(p->guest_home), "/local/domain/%u", domid);
    /* With domids bounded every path fits; this guards the arithmetic. */
    return rc ? -ENAMETOOLONG : 0;
}

bool xsc_uuid_valid(const char *s)
{
    static const unsigned groups[] = { 8, 4, 4, 4, 12 };

    if (!s)
        return false;
    for (size_t g = 0; g < 5; g++) {
        for (unsigned i = 0; i < groups[g]; i++, s++) {
            char c = *s;
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F')))
                return false;
        }
        if (g < 4 && *s++ != '-')
            return false;
    }
    return *s == '\0';
}

int xsc_path_rtc_timeoffset(char *buf, size_t size, const char *uuid)
{
    /* The uuid comes from the toolstack's argv or /vm; a '/' or ".." in it
     * would escape /vm/<uuid>, so only the canonical form is accepted. */
    if (!xsc_uuid_valid(uuid)) {
        if (buf && size)
            buf[0] = '\0';
        return -EINVAL;
    }
    return xsc_path_fmt(buf, size, "/vm/%s/rtc/timeoffset", uuid);
}

int xsc_path_vbd_frontend(char *buf, size_t size, unsigned domid, unsigned devid)
{
    if (domid > XSC_DOMID_MAX)
        return -EINVAL;
    return xsc_path_fmt(buf, size, "/local/domain/%u/device/vbd/%u", domid, devid);
}

int xsc_path_vbd_backend(char *buf, size_t size, unsigned backend_domid,
                         unsigned domid, unsigned devid)
{
    if (domid > XSC_DOMID_MAX || backend_domid > XSC_DOMID_MAX)
        return -EINVAL;
    return xsc_path_fmt(buf, size, "/local/domain/%u/backend/vbd/%u/%u",
                        backend_domid, domid, devid);
}

int xsc_path_vbd_backend_dir(char *buf, size_t size, unsigned backend_domid,
                             unsigned domid)
{
    if (domid > XSC_DOMID_MAX || backend_domid > XSC_DOMID_MAX)
        return -EINVAL;
    return xsc_path_fmt(buf, size, "/local/domain/%u/backend/vbd/%u",
                        backend_domid, domid);
}
