/*
 * xsc_text: the exact texts of the traditional dialect, and how untrusted
 * bytes are matched and shown.
 *
 * Values in xenstore are byte strings of a known length that may contain
 * NULs (reference §6.3).  Matching therefore compares length and bytes;
 * qemu-traditional's strncmp(value, keyword, strlen(value)) made "" mean
 * `save` and "c" mean `continue` (reference §7.3).
 */
#ifndef XSC_TEXT_H
#define XSC_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "runstate.h"

typedef enum xsc_cmd {
    XSC_CMD_UNKNOWN = 0,
    XSC_CMD_SAVE,
    XSC_CMD_CONTINUE,
    XSC_CMD_PCI_INS,
    XSC_CMD_PCI_REM,
    XSC_CMD_STOP,        /* rsdm extension */
    XSC_CMD_RETRY,       /* rsdm extension */
    XSC_CMD_RESET,       /* rsdm extension */
    XSC_CMD_POWERDOWN,   /* rsdm extension */
    XSC_CMD_WAKEUP,      /* rsdm extension */
    XSC_CMD__MAX
} xsc_cmd;

/* The command word exactly as written to `command`; XSC_CMD_UNKNOWN for
 * anything else (a prefix, trailing blank, embedded NUL, other case). */
xsc_cmd xsc_cmd_parse(const void *value, size_t len);
/* "save", ...; "unknown" out of range. */
const char *xsc_cmd_name(xsc_cmd c);

/* Exact `logdirty/cmd` values: 1 enable, 0 disable, -EINVAL otherwise. */
int xsc_logdirty_parse(const void *value, size_t len);

/* Render untrusted bytes for a log line or the `error` node: printable
 * ASCII stays (with '"' and '\\' escaped), everything else becomes \xHH;
 * at most max_in input bytes are shown, then "...(N bytes)".  Always
 * NUL-terminates out (size > 0); returns strlen(out). */
size_t xsc_escape(char *out, size_t size, const void *value, size_t len, size_t max_in);

/* The `runstate` node: "<state> holds=<h1>,<h2>" with the holds in
 * acquisition order ("running holds=" when nothing holds the VM).
 * Returns 0 or -ENOSPC. */
int xsc_runstate_format(char *out, size_t size, rs_state state,
                        const rs_state *holds, size_t nholds);

/* The length-aware equality every comparison of a read value uses. */
bool xsc_value_is(const void *value, size_t len, const char *word);

#endif /* XSC_TEXT_H */
