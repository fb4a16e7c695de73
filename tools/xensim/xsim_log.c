/* xsim_log.c: leveled logging to stderr with a "xensim:" prefix. */
#include "xsim_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Written once at start-up (before any thread exists); read everywhere. */
static enum xsim_log_level cur_level = XSIM_LOG_INFO;

void xsim_log_set_level(enum xsim_log_level level)
{
    cur_level = level;
}

enum xsim_log_level xsim_log_get_level(void)
{
    return cur_level;
}

void xsim_log_init_from_env(void)
{
    static const char *const names[] = { "debug", "info", "warn", "error", "quiet" };
    const char *v = getenv("XENSIM_LOG");
    if (!v || !*v)
        return;
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(v, names[i]) == 0) {
            cur_level = (enum xsim_log_level)i;
            return;
        }
    }
    xsim_warn("XENSIM_LOG=%s is not one of debug, info, warn, error, quiet; keeping the default", v);
}

void xsim_log(enum xsim_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = { "debug", "info", "warning", "error", "" };
    if (level < cur_level || level >= XSIM_LOG_QUIET)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* One fprintf per line, so lines from threads do not interleave. */
    fprintf(stderr, "xensim: %s: %s\n", tags[level], buf);
}
