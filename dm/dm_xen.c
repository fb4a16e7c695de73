/*
 * Opening the Xen libraries.  The libraries print to stderr through a
 * default logger unless given one; ours forwards to the dm's log with the
 * library's own message, so a missing /dev/xen is reported once, clearly.
 */
/* First: xenctrl.h defines __XEN_TOOLS__ for the public headers others pull. */
#include "dm_xen.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xentoolcore.h>

#include "dm_log.h"

__attribute__((format(printf, 5, 0)))
static void logger_vmessage(struct xentoollog_logger *logger, xentoollog_level level, int errnoval,
                            const char *context, const char *format, va_list al)
{
    (void)logger;
    char msg[512];
    vsnprintf(msg, sizeof(msg), format, al);
    dm_log_level lv = level >= XTL_ERROR ? DM_LOG_ERROR : level >= XTL_WARN ? DM_LOG_WARNING
                                                                             : DM_LOG_DEBUG;
    if (errnoval >= 0)
        dm_log(lv, "%s: %s: %s", context ? context : "xen", msg, strerror(errnoval));
    else
        dm_log(lv, "%s: %s", context ? context : "xen", msg);
}

static void logger_progress(struct xentoollog_logger *logger, const char *context,
                            const char *doing_what, int percent, unsigned long done,
                            unsigned long total)
{
    (void)logger; (void)context; (void)doing_what; (void)percent; (void)done; (void)total;
}

static void logger_destroy(struct xentoollog_logger *logger)
{
    (void)logger;
}

static struct xentoollog_logger logger = {
    .vmessage = logger_vmessage,
    .progress = logger_progress,
    .destroy = logger_destroy,
};

struct xentoollog_logger *dm_xen_logger(void)
{
    return &logger;
}

int dm_xen_open(dm_xen *x, domid_t domid, char *err, size_t errlen)
{
    memset(x, 0, sizeof(*x));
    x->domid = domid;
    const char *what;
    x->dmod = xendevicemodel_open(&logger, 0);
    if (!x->dmod) {
        what = "libxendevicemodel (xendevicemodel_open)";
        goto fail;
    }
    x->fmem = xenforeignmemory_open(&logger, 0);
    if (!x->fmem) {
        what = "libxenforeignmemory (xenforeignmemory_open)";
        goto fail;
    }
    x->xce = xenevtchn_open(&logger, 0);
    if (!x->xce) {
        what = "libxenevtchn (xenevtchn_open)";
        goto fail;
    }
    x->xch = xc_interface_open(&logger, &logger, 0);
    if (!x->xch) {
        what = "libxenctrl (xc_interface_open)";
        goto fail;
    }
    return 0;
fail:;
    int e = errno ? errno : EIO;
    snprintf(err, errlen, "cannot open %s: %s", what, strerror(e));
    dm_xen_close(x);
    return -e;
}

void dm_xen_close(dm_xen *x)
{
    if (x->xch)
        xc_interface_close(x->xch);
    if (x->xce)
        xenevtchn_close(x->xce);
    if (x->fmem)
        xenforeignmemory_close(x->fmem);
    if (x->dmod)
        xendevicemodel_close(x->dmod);
    x->xch = NULL;
    x->xce = NULL;
    x->fmem = NULL;
    x->dmod = NULL;
}

int dm_xen_restrict(dm_xen *x, char *err, size_t errlen)
{
    if (x->xch) {
        xc_interface_close(x->xch);
        x->xch = NULL;
    }
    if (xentoolcore_restrict_all(x->domid) < 0) {
        int e = errno ? errno : EIO;
        snprintf(err, errlen, "xentoolcore_restrict_all(%u) failed: %s", x->domid, strerror(e));
        return -e;
    }
    x->restricted = true;
    return 0;
}
