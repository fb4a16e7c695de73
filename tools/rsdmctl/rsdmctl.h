/* rsdmctl: the operator's command-line tool.  One file per subcommand. */
#ifndef RSDMCTL_H
#define RSDMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* Exit codes in the manner of xl: 0 success, 1 failure, 2 usage. */
enum { RSDMCTL_OK = 0, RSDMCTL_FAIL = 1, RSDMCTL_USAGE = 2 };

/* Default bound on waiting for a dm's answer, as libxl waits for qemu. */
#define RSDMCTL_TIMEOUT_S 60

int rsdmctl_graph(int argc, char **argv);
int rsdmctl_status(int argc, char **argv);
int rsdmctl_list(int argc, char **argv);
int rsdmctl_control(int argc, char **argv);   /* stop cont retry reset powerdown wakeup */
int rsdmctl_save_state(int argc, char **argv);
int rsdmctl_events(int argc, char **argv);
int rsdmctl_timeline(int argc, char **argv);

void ctl_print_status(FILE *f, unsigned domid, json_t *s);

/* ------------------------------------------------------------ common */

void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A domid argument (0..32751); false with a message otherwise. */
bool ctl_parse_domid(const char *s, unsigned *out);
/* A positive number of seconds; false with a message otherwise. */
bool ctl_parse_timeout(const char *s, int *ms_out);
double ctl_now(void);                       /* wall clock, Unix seconds */
int64_t ctl_mono_ms(void);
/* "2026-11-22 13:21:06.123" (local time) */
void ctl_fmt_time(char *buf, size_t len, double t);

/* The dm's status node, checked against docs/protocol.md §4a.  The value is
 * input: anything of another shape is refused (NULL, why filled). */
json_t *ctl_status_parse(const char *text, char *why, size_t why_len);

/* ------------------------------------------------------------ transport */

/* How rsdmctl talks to one dm.  The xenstore transport (traditional and
 * qemu-xen dialects' status node) exists today; a QMP transport (--qmp
 * PATH) fills the same table. */
typedef struct ctl_transport ctl_transport;
struct ctl_transport {
    const char *name;
    /* The current status object (docs/protocol.md §4a shape); caller owns. */
    json_t *(*get_status)(ctl_transport *t, char *why, size_t why_len);
    /* Issue a command word and wait (bounded) until done(status) holds
     * after an event of the dm, or the dm reports a refusal (why = the dm's
     * reason).  idempotent: when done() already holds, the dm taking the
     * command is enough (stop while stopped, cont while running).  0,
     * -ETIMEDOUT, -EPERM for a refusal, or another negative errno. */
    int (*command)(ctl_transport *t, const char *cmd, bool idempotent,
                   bool (*done)(json_t *status, void *arg), void *arg,
                   int timeout_ms, char *why, size_t why_len);
    /* Write the device state to file (VM stopped); 0 or -errno + why. */
    int (*save_state)(ctl_transport *t, const char *file, const char *save_path,
                      int timeout_ms, char *why, size_t why_len);
    /* Wait until the status may have changed: 1 changed, 0 timeout, <0 error. */
    int (*wait_change)(ctl_transport *t, int timeout_ms, char *why, size_t why_len);
    void (*close)(ctl_transport *t);
};

/* Connect to the dm of domid over xenstore (XENSTORED_PATH is honoured);
 * NULL with why filled. */
ctl_transport *ctl_xs_open(unsigned domid, char *why, size_t why_len);
/* Connect to a QMP monitor socket (greeting, qmp_capabilities). */
ctl_transport *ctl_qmp_open(const char *path, int timeout_ms, char *why, size_t why_len);

/* Common options of the per-domain commands: --qmp PATH, --timeout S. */
typedef struct ctl_target {
    unsigned domid;
    const char *qmp_path;
    int timeout_ms;
} ctl_target;
ctl_transport *ctl_open(const ctl_target *tg);

/* Options of a subcommand: --json, --timeout S, --qmp PATH, --svg FILE,
 * --from FILE, --save-path PATH, --count N, --help, and positionals. */
typedef struct ctl_args {
    bool json;
    ctl_target tg;
    const char *svg, *from, *save_path;
    long count;               /* events: stop after N (0: until killed) */
    bool timeout_set;         /* --timeout given */
    int npos;
    char *pos[4];
} ctl_args;
/* allowed: a string of option letters accepted ("jtqsfpc"); usage is
 * printed for --help (stdout) or errors (stderr).  Returns RSDMCTL_OK to
 * go on, RSDMCTL_USAGE on a usage error, -1 after --help. */
int ctl_parse_args(int argc, char **argv, const char *allowed, int min_pos, int max_pos,
                   const char *usage, ctl_args *a);

#endif
