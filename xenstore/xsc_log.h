/*
 * xsc_log: how the xenstore layer reports what it did and what failed.
 *
 * The layer logs through the same callback type as librunstate, so the dm
 * hands both one sink and gets one stream of lines.  Without a sink, lines
 * go to stderr with an "xsc:" prefix.
 */
#ifndef XSC_LOG_H
#define XSC_LOG_H

#include "runstate.h"

typedef struct xsc_logger {
    rs_log_fn fn;        /* NULL: stderr */
    void *opaque;
} xsc_logger;

void xsc_logf(const xsc_logger *lg, rs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* XSC_LOG_H */
