/* xsim_log.h: one place for xensim's diagnostics.
 *
 * Every message names the component and what failed; the level is set once
 * (xensim run --verbose, or XENSIM_LOG=debug|info|warn|error|quiet) so tests
 * can keep the daemon quiet without losing real errors. */
#ifndef XSIM_LOG_H
#define XSIM_LOG_H

enum xsim_log_level {
    XSIM_LOG_DEBUG,
    XSIM_LOG_INFO,
    XSIM_LOG_WARN,
    XSIM_LOG_ERROR,
    XSIM_LOG_QUIET,
};

void xsim_log_set_level(enum xsim_log_level level);
/* Reads XENSIM_LOG; unknown values are ignored (with a warning). */
void xsim_log_init_from_env(void);
enum xsim_log_level xsim_log_get_level(void);
void xsim_log(enum xsim_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define xsim_debug(...) xsim_log(XSIM_LOG_DEBUG, __VA_ARGS__)
#define xsim_info(...)  xsim_log(XSIM_LOG_INFO, __VA_ARGS__)
#define xsim_warn(...)  xsim_log(XSIM_LOG_WARN, __VA_ARGS__)
#define xsim_err(...)   xsim_log(XSIM_LOG_ERROR, __VA_ARGS__)

#endif
