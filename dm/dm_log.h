/*
 * The dm's log: one line per message on stderr (libxl sends the dm's
 * stderr to /var/log/xen/qemu-dm-<name>.log), prefixed with the time, the
 * domain and the level.  The first error line of a failed start names the
 * domid and the failing step.
 */
#ifndef DM_LOG_H
#define DM_LOG_H

typedef enum dm_log_level { DM_LOG_ERROR, DM_LOG_WARNING, DM_LOG_INFO, DM_LOG_DEBUG } dm_log_level;

void dm_log_set_domid(int domid);
void dm_log_set_level(dm_log_level level);
/* "error", "warning", "info", "debug" -> 0, or -1 for an unknown name. */
int dm_log_level_from_name(const char *name, dm_log_level *out);
void dm_log(dm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dm_err(...) dm_log(DM_LOG_ERROR, __VA_ARGS__)
#define dm_warn(...) dm_log(DM_LOG_WARNING, __VA_ARGS__)
#define dm_info(...) dm_log(DM_LOG_INFO, __VA_ARGS__)
#define dm_debug(...) dm_log(DM_LOG_DEBUG, __VA_ARGS__)

#endif
