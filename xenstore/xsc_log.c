/* xsc_log: one formatted line per message to the dm's sink (see xsc_log.h). */
#include "xsc_log.h"

#include <stdarg.h>
#include <stdio.h>

void xsc_logf(const xsc_logger *lg, rs_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    /* A message longer than the buffer is cut, never overflowed: a log line
     * is not worth failing an operation for. */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (lg && lg->fn) {
        lg->fn(lg->opaque, level, msg);
        return;
    }
    static const char *const names[] = { "error", "warning", "info", "debug" };
    const char *name = (unsigned)level < 4 ? names[level] : "?";
    fprintf(stderr, "xsc: %s: %s\n", name, msg);
}
