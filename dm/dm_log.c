/*
 * Logging for the dm.  A line is formatted whole and written with one
 * write() so lines from different threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dm_log.h"

static int log_domid = -1;
static dm_log_level log_level = DM_LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void dm_log_set_domid(int domid)
{
    log_domid = domid;
}

void dm_log_set_level(dm_log_level level)
{
    if (level >= DM_LOG_ERROR && level <= DM_LOG_DEBUG)
        log_level = level;
}

int dm_log_level_from_name(const char *name, dm_log_level *out)
{
    for (int i = 0; i <= DM_LOG_DEBUG; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (dm_log_level)i;
            return 0;
        }
    }
    return -1;
}

void dm_log(dm_log_level level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ rsdm", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000);
    if (log_domid >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[dom%d]", log_domid);
    n += snprintf(line + n, sizeof(line) - (size_t)n, " %s: ", level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
