/* xsc_control: the traditional control dialect (see xsc_control.h and
 * docs/protocol.md). */
#include "xsc_control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "xsc_log.h"
#include "xsc_perms.h"
#include "xsc_save.h"
#include "xsc_text.h"

#define TOKEN_COMMAND  "rsdm-dm-command"
#define TOKEN_LOGDIRTY "rsdm-logdirty"

/* Events taken per xsc_handle_readable call: the rest wait for the next
 * poll round (the watch pipe stays readable), so a flood of writes cannot
 * starve the ioreq server. */
#define EVENTS_PER_CALL 256
/* Transaction retries for read+delete of `command` before falling back to
 * a plain read and delete. */
#define TX_RETRIES 16

struct xsc {
    xsc_config cfg;
    xsc_logger log;
    xsc_paths paths;
    char save_path[XSC_ABS_PATH_MAX + 1];
    xsc_conn *conn;
    bool ready;
    bool disable_pf;
    bool logdirty;              /* last logdirty value applied */
    bool ld_seen_valid;         /* last logdirty/cmd value read (hash, length) */
    uint64_t ld_seen_hash;
    size_t ld_seen_len;
    bool ld_sweep_ahead;        /* the sweep applied that value before its watch event came */
    bool owe_running;           /* continue accepted, VM not live yet */
    bool tree_gone;             /* the toolstack removed the control directory */
    bool sink_added;

    /* What we publish, to republish after a reconnect. */
    char state_pub[32];         /* "" until written: running | paused */
    char runstate_pub[256];
    char error_pub[512];
    char *status_pub;           /* NULL until written; heap, XSC_STATUS_MAX */
    uint64_t status_events;     /* run-state events seen (the `events` member) */
    uint64_t error_seq;

    /* Refusal log lines are rate-limited (the `error` node is not): a
     * toolstack stuck in a loop must not flood the dm's log. */
    int64_t log_window_ms;
    unsigned log_in_window;
    uint64_t log_suppressed;

    xsc_last_cmd last;
    int64_t next_sweep_ms;
    int fatal;                  /* sticky negative errno once fatal */
    xsc_stats st;
};

/* ------------------------------------------------------------- helpers */

bool xsc_cmd_is_replay(const xsc_last_cmd *last, const void *value, size_t len,
                       unsigned generation)
{
    if (!last || !last->valid || last->rm_confirmed)
        return false;
    /* Same connection: a value equal to the last one is a new write by the
     * toolstack (our delete went through this very connection). */
    if (last->generation == generation)
        return false;
    if (len != last->len || len > sizeof(last->value))
        return false;
    return memcmp(value, last->value, len) == 0;
}

static struct xs_handle *H(const xsc *x) { return xsc_conn_xs(x->conn); }

/* Write a node; a failure that means the connection died is left to the
 * republish after the reconnect. */
static int put(xsc *x, const char *path, const char *value, size_t len)
{
    struct xs_handle *xs = H(x);

    if (!xs)
        return -ENOTCONN;
    /* libxl removes the directory before it kills the dm; writing into it
     * now would recreate a stale tree for the next dm of this domid. */
    if (x->tree_gone && strncmp(path, x->paths.dir, strlen(x->paths.dir)) == 0)
        return -ENOENT;
    if (xs_write(xs, XBT_NULL, path, value, (unsigned)len))
        return 0;
    int err = errno ? errno : EIO;
    if (!xsc_conn_failed(x->conn, "write", err))
        xsc_logf(&x->log, RS_LOG_ERROR, "cannot write %s: %s", path, strerror(err));
    return -err;
}

static int put_str(xsc *x, const char *path, const char *value)
{
    return put(x, path, value, strlen(value));
}

static void write_state(xsc *x, const char *value, bool remember)
{
    if (remember)
        snprintf(x->state_pub, sizeof(x->state_pub), "%s", value);
    if (put_str(x, x->paths.state, value) == 0)
        xsc_logf(&x->log, RS_LOG_INFO, "state = %s", value);
}

/* Record a refusal: log line and the `error` node.  Every value read that
 * is not acted on ends here. */
static void report(xsc *x, const char *source, const void *value, size_t len,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void report(xsc *x, const char *source, const void *value, size_t len,
                   const char *fmt, ...)
{
    char why[300], shown[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    xsc_escape(shown, sizeof(shown), value, len, 48);
    x->error_seq++;
    snprintf(x->error_pub, sizeof(x->error_pub), "%llu %s \"%s\": %s",
             (unsigned long long)x->error_seq, source, shown, why);
    int64_t now = xsc_now_ms();
    if (now - x->log_window_ms >= 1000) {
        if (x->log_suppressed)
            xsc_logf(&x->log, RS_LOG_WARNING, "%llu more refusals were not logged",
                     (unsigned long long)x->log_suppressed);
        x->log_window_ms = now;
        x->log_in_window = 0;
        x->log_suppressed = 0;
    }
    if (x->log_in_window++ < 20)
        xsc_logf(&x->log, RS_LOG_WARNING, "%s \"%s\" refused: %s", source, shown, why);
    else
        x->log_suppressed++;
    x->st.errors_written++;
    put_str(x, x->paths.error, x->error_pub);
}

/* ------------------------------------------------------------ runstate */

static void publish_runstate(xsc *x)
{
    rs_hold_info info[RS_STATE__MAX];
    rs_state holds[RS_STATE__MAX];
    char text[sizeof(x->runstate_pub)];
    size_t n = rs_list_holds(x->cfg.vm, info, RS_STATE__MAX);

    if (n > RS_STATE__MAX)
        n = RS_STATE__MAX;
    for (size_t i = 0; i < n; i++)
        holds[i] = info[i].reason;
    if (xsc_runstate_format(text, sizeof(text), rs_get_state(x->cfg.vm), holds, n) < 0)
        return;
    if (strcmp(text, x->runstate_pub) == 0)
        return;
    snprintf(x->runstate_pub, sizeof(x->runstate_pub), "%s", text);
    put_str(x, x->paths.runstate, text);
}

/* ------------------------------------------------------------- status */

/* xenstore's value limit is 4096 bytes; the JSON stays well below it. */
#define XSC_STATUS_MAX 3072
#define XSC_STATUS_TRANSITIONS 8

typedef struct jbuf {
    char *p;
    size_t len, cap;
    bool full;
} jbuf;

static void jb_add(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_add(jbuf *b, const char *fmt, ...)
{
    va_list ap;

    if (b->full)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->full = true;
        b->p[b->len] = '\0';
        return;
    }
    b->len += (size_t)n;
}

/* A JSON string of printable ASCII only (causes are short names; anything
 * else becomes '?'). */
static void jb_str(jbuf *b, const char *s)
{
    char tmp[80];
    size_t j = 0;

    for (size_t i = 0; s && s[i] && j + 1 < sizeof(tmp); i++) {
        unsigned char c = (unsigned char)s[i];
        tmp[j++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    tmp[j] = '\0';
    jb_add(b, "\"%s\"", tmp);
}

static void jb_time(jbuf *b, int64_t wall_ns)
{
    jb_add(b, "%lld.%06lld", (long long)(wall_ns / 1000000000),
           (long long)((wall_ns % 1000000000) / 1000));
}

/* Build the status JSON into out (cap bytes).  List members are cut to what
 * fits with room for the closing brackets; the JSON is always complete. */
static size_t format_status(xsc *x, char *out, size_t cap)
{
    rs_hold_info info[RS_STATE__MAX];
    rs_transition_rec hist[XSC_STATUS_TRANSITIONS];
    size_t nh = rs_list_holds(x->cfg.vm, info, RS_STATE__MAX);
    size_t nt = rs_history(x->cfg.vm, hist, XSC_STATUS_TRANSITIONS);
    rs_state st = rs_get_state(x->cfg.vm);
    const size_t reserve = 160;     /* closing text: events, disks, brackets */
    jbuf b = { out, 0, cap - reserve, false };

    if (nh > RS_STATE__MAX)
        nh = RS_STATE__MAX;
    if (nt > XSC_STATUS_TRANSITIONS)
        nt = XSC_STATUS_TRANSITIONS;
    jb_add(&b, "{\"status\":");
    jb_str(&b, rs_state_name(st));
    jb_add(&b, ",\"running\":%s,\"holds\":[", rs_state_is_live(st) ? "true" : "false");
    for (size_t i = 0; i < nh; i++) {
        size_t mark = b.len;
        jb_add(&b, "%s{\"reason\":", i ? "," : "");
        jb_str(&b, rs_state_name(info[i].reason));
        jb_add(&b, ",\"group\":");
        jb_str(&b, rs_group_name(info[i].group));
        jb_add(&b, ",\"since\":");
        jb_time(&b, info[i].since_wall_ns);
        jb_add(&b, "}");
        if (b.full) {
            b.len = mark;
            break;
        }
    }
    b.full = false;
    out[b.len] = '\0';
    jb_add(&b, "],\"transitions\":[");
    /* rs_history gives the oldest first; if fewer fit, keep the newest. */
    size_t first = 0;
    for (;;) {
        size_t mark = b.len;
        bool ok = true;
        for (size_t i = first; i < nt && ok; i++) {
            jb_add(&b, "%s{\"from\":", i > first ? "," : "");
            jb_str(&b, rs_state_name(hist[i].from));
            jb_add(&b, ",\"to\":");
            jb_str(&b, rs_state_name(hist[i].to));
            jb_add(&b, ",\"cause\":");
            jb_str(&b, hist[i].cause);
            jb_add(&b, ",\"at\":");
            jb_time(&b, hist[i].wall_ns);
            jb_add(&b, "}");
            ok = !b.full;
        }
        if (ok || first >= nt)
            break;
        b.len = mark;
        b.full = false;
        out[b.len] = '\0';
        first++;
    }
    b.cap = cap;            /* the reserve is for the rest */
    b.full = false;
    jb_add(&b, "],\"events\":%llu", (unsigned long long)x->status_events);
    if (x->cfg.ops.status_disks) {
        char disks[1024];
        int n = x->cfg.ops.status_disks(x->cfg.ops.opaque, disks, sizeof(disks));
        if (n >= 2 && (size_t)n < sizeof(disks) && disks[0] == '[' && disks[n - 1] == ']' &&
            memchr(disks, '\0', (size_t)n) == NULL && b.len + (size_t)n + 16 < cap) {
            disks[n] = '\0';
            jb_add(&b, ",\"disks\":%s", disks);
        }
    }
    jb_add(&b, "}");
    return b.len;
}

static void publish_status(xsc *x)
{
    char text[XSC_STATUS_MAX];
    size_t len = format_status(x, text, sizeof(text));

    if (!x->status_pub) {
        x->status_pub = calloc(1, XSC_STATUS_MAX);
        if (!x->status_pub)
            return;
    }
    memcpy(x->status_pub, text, len + 1);
    if (put(x, x->paths.status, text, len) == 0)
        x->st.status_writes++;
}

static void event_sink(void *opaque, const rs_event *ev)
{
    xsc *x = opaque;

    x->status_events++;
    publish_runstate(x);
    publish_status(x);
    /* qemu-xen: QEMU's run-state hook writes `running` on every start. */
    if (x->cfg.dialect == XSC_DIALECT_QMP) {
        if (ev->type == RS_EV_RESUME && x->ready)
            write_state(x, "running", true);
        return;
    }
    /* A continue accepted while an internal hold kept the VM stopped is
     * acknowledged when the VM really starts. */
    if (ev->type == RS_EV_RESUME && x->owe_running) {
        x->owe_running = false;
        write_state(x, "running", true);
    }
}

/* -------------------------------------------------------------- commands */

static void done(xsc *x, xsc_cmd c)
{
    x->st.commands_done++;
    xsc_logf(&x->log, RS_LOG_INFO, "command %s done", xsc_cmd_name(c));
}

static void refuse_rs(xsc *x, xsc_cmd c, int rc, const rs_err *e)
{
    const char *cn = xsc_cmd_name(c);
    x->st.commands_refused++;
    report(x, "command", cn, strlen(cn), "%s",
           e && e->msg[0] ? e->msg : strerror(rc < 0 ? -rc : EIO));
}

/* The dm writes the file; docs/runstate.md §8: finish-migrate around it,
 * postmigrate held behind it. */
static void cmd_save(xsc *x)
{
    char why[300];
    rs_err e = { 0 };
    int rc;

    /* The old file goes first, whatever happens next: a stale file must
     * never be taken for this save's result. */
    rc = xsc_save_unlink_old(x->save_path, why, sizeof(why));
    if (rc < 0)
        goto failed;
    if (!x->cfg.ops.save_state) {
        rc = -ENOSYS;
        snprintf(why, sizeof(why), "this device model has no device-state writer");
        goto failed;
    }
    rc = rs_hold_acquire(x->cfg.vm, RS_FINISH_MIGRATE, &e);
    if (rc < 0) {
        snprintf(why, sizeof(why), "cannot stop the VM for the save: %s",
                 e.msg[0] ? e.msg : strerror(-rc));
        /* A stop handler that failed leaves the hold taken (-EIO): give it
         * back, or the VM would stay in finish-migrate for good. */
        if (rs_get_holds(x->cfg.vm) & RS_HOLD_BIT(RS_FINISH_MIGRATE)) {
            rs_err e4 = { 0 };
            if (rs_hold_release(x->cfg.vm, RS_FINISH_MIGRATE, &e4) < 0)
                xsc_logf(&x->log, RS_LOG_ERROR, "save: cannot release finish-migrate: %s",
                         e4.msg);
        }
        goto failed;
    }
    xsc_logf(&x->log, RS_LOG_INFO, "saving device state to %s", x->save_path);
    rc = xsc_save_file(x->save_path, x->cfg.ops.save_state, x->cfg.ops.opaque,
                       why, sizeof(why));
    if (rc == 0) {
        rs_err e2 = { 0 };
        int r2 = rs_vm_stop(x->cfg.vm, RS_POSTMIGRATE, &e2);
        /* -EIO means a stop handler failed but the hold is kept: the file is
         * complete and the VM stopped, so the save still succeeded. */
        if (r2 < 0 && r2 != -EIO)
            xsc_logf(&x->log, RS_LOG_WARNING, "save: cannot hold postmigrate: %s",
                     e2.msg[0] ? e2.msg : strerror(-r2));
    }
    rs_err e3 = { 0 };
    int r3 = rs_hold_release(x->cfg.vm, RS_FINISH_MIGRATE, &e3);
    if (r3 < 0)
        xsc_logf(&x->log, RS_LOG_ERROR, "save: cannot release finish-migrate: %s",
                 e3.msg[0] ? e3.msg : strerror(-r3));
    if (rc < 0)
        goto failed;
    x->st.saves_ok++;
    done(x, XSC_CMD_SAVE);
    /* The acknowledgement libxl waits for, written only now. */
    write_state(x, "paused", true);
    return;

failed:
    x->st.saves_failed++;
    x->st.commands_refused++;
    report(x, "command", "save", 4, "save failed, no file written: %s", why);
}

static void cmd_pci(xsc *x, xsc_cmd c)
{
    char param[200] = "";
    unsigned len = 0;
    struct xs_handle *xs = H(x);
    char *p = xs ? xs_read(xs, XBT_NULL, x->paths.parameter, &len) : NULL;
    char text[300];

    if (p)
        xsc_escape(param, sizeof(param), p, len, 64);
    free(p);
    snprintf(text, sizeof(text),
             "error: PCI passthrough is not supported by this device model (%s \"%s\")",
             xsc_cmd_name(c), param);
    /* libxl reads `parameter` once it sees the state, so parameter first. */
    put_str(x, x->paths.parameter, text);
    if (c == XSC_CMD_PCI_INS)
        write_state(x, "pci-insert-failed", false);
    /* pci-rem has no failure state in libxl's protocol (it waits for
     * pci-removed); the parameter text and `error` say why. */
    x->st.commands_refused++;
    report(x, "command", xsc_cmd_name(c), strlen(xsc_cmd_name(c)),
           "PCI passthrough is not supported (parameter \"%s\")", param);
}

static void act(xsc *x, const char *value, size_t len)
{
    xsc_cmd c = xsc_cmd_parse(value, len);
    rs_err e = { 0 };
    int rc;

    switch (c) {
    case XSC_CMD_SAVE:
        cmd_save(x);
        return;
    case XSC_CMD_CONTINUE:
        rc = rs_cont(x->cfg.vm, &e);
        if (rc < 0)
            break;
        done(x, c);
        if (rs_is_live(x->cfg.vm))
            write_state(x, "running", true);
        else
            x->owe_running = true;
        return;
    case XSC_CMD_RETRY:
        rc = rs_retry(x->cfg.vm, &e);
        if (rc < 0)
            break;
        done(x, c);
        if (rs_is_live(x->cfg.vm))
            write_state(x, "running", true);
        return;
    case XSC_CMD_STOP:
        rc = rs_vm_stop(x->cfg.vm, RS_PAUSED, &e);
        /* -EIO: a stop handler failed, the hold is kept: stopped anyway. */
        if (rc < 0 && rc != -EIO)
            break;
        x->owe_running = false;
        done(x, c);
        return;
    case XSC_CMD_RESET:
        rc = rs_request_reset(x->cfg.vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET);
        if (rc < 0)
            break;
        done(x, c);
        return;
    case XSC_CMD_POWERDOWN:
        rc = rs_request_powerdown(x->cfg.vm);
        if (rc < 0)
            break;
        done(x, c);
        return;
    case XSC_CMD_WAKEUP:
        rc = rs_request_wakeup(x->cfg.vm, RS_WAKEUP_OTHER, &e);
        if (rc < 0)
            break;
        done(x, c);
        return;
    case XSC_CMD_PCI_INS:
    case XSC_CMD_PCI_REM:
        cmd_pci(x, c);
        return;
    default:
        x->st.commands_refused++;
        report(x, "command", value, len,
               len == 0 ? "empty command" : "unknown command (exact match required)");
        return;
    }
    refuse_rs(x, c, rc, &e);
}

/* Read and delete `command` atomically, so a write racing our delete is
 * never lost: it either is the value we read or fires a new event.  1 with
 * *out (malloc'd) and *len, 0 when there is no command, <0 on error. */
static int take_command(xsc *x, char **out, unsigned *len, bool *rm_confirmed)
{
    struct xs_handle *xs = H(x);

    *out = NULL;
    *rm_confirmed = false;
    for (int attempt = 0; xs && attempt < TX_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            break;                       /* no transactions: plain path */
        char *v = xs_read(xs, t, x->paths.command, len);
        if (!v) {
            int err = errno;
            xs_transaction_end(xs, t, true);
            if (err == ENOENT)
                return 0;
            if (xsc_conn_failed(x->conn, "read command", err))
                return -ENOTCONN;
            xsc_logf(&x->log, RS_LOG_ERROR, "cannot read %s: %s", x->paths.command,
                     strerror(err));
            return -err;
        }
        if (!xs_rm(xs, t, x->paths.command)) {
            int err = errno;
            xs_transaction_end(xs, t, true);
            if (xsc_conn_failed(x->conn, "delete command", err)) {
                /* Read, deletion unknown: acted on now, and recognised as
                 * already handled if the value is still there after the
                 * reconnect (xsc_cmd_is_replay). */
                *out = v;
                return 1;
            }
            free(v);
            break;                       /* try the plain path */
        }
        if (xs_transaction_end(xs, t, false)) {
            *out = v;
            *rm_confirmed = true;
            return 1;
        }
        int err = errno;
        if (err == EAGAIN) {
            free(v);
            continue;                    /* someone wrote meanwhile: re-read */
        }
        if (xsc_conn_failed(x->conn, "commit", err)) {
            /* The commit may or may not have happened: as above. */
            *out = v;
            return 1;
        }
        free(v);
        break;
    }
    if (!xs)
        return -ENOTCONN;
    /* Fallback, as qemu-traditional: read, then delete. */
    char *v = xs_read(xs, XBT_NULL, x->paths.command, len);
    if (!v) {
        int err = errno;
        if (err == ENOENT)
            return 0;
        return xsc_conn_failed(x->conn, "read command", err) ? -ENOTCONN : -err;
    }
    if (xs_rm(xs, XBT_NULL, x->paths.command))
        *rm_confirmed = true;
    else
        xsc_logf(&x->log, RS_LOG_WARNING, "cannot delete %s: %s", x->paths.command,
                 strerror(errno));
    *out = v;
    return 1;
}

/* After a watch event found no command: was the whole directory removed? */
static void check_dir_gone(xsc *x)
{
    struct xs_handle *xs = H(x);
    unsigned len;

    if (!xs || x->tree_gone)
        return;
    char *v = xs_read(xs, XBT_NULL, x->paths.dir, &len);
    if (v) {
        free(v);
        return;
    }
    if (errno == ENOENT) {
        x->tree_gone = true;
        xsc_logf(&x->log, RS_LOG_INFO,
                 "%s was removed by the toolstack; no longer writing into it",
                 x->paths.dir);
    }
}

static void process_command(xsc *x, bool from_event)
{
    char *v;
    unsigned len;
    bool rm_ok;
    unsigned gen = xsc_conn_generation(x->conn);

    if (!x->ready)
        return;
    int rc = take_command(x, &v, &len, &rm_ok);
    if (rc == 0 && from_event)
        check_dir_gone(x);
    if (rc <= 0)
        return;
    /* A command: the directory is (back) in use. */
    x->tree_gone = false;
    x->st.commands_read++;
    if (xsc_cmd_is_replay(&x->last, v, len, gen)) {
        char shown[100];
        xsc_escape(shown, sizeof(shown), v, len, 32);
        xsc_logf(&x->log, RS_LOG_WARNING,
                 "command \"%s\" was already handled before xenstore reconnected; "
                 "deleted, not run again", shown);
        x->st.commands_replayed++;
        x->last.rm_confirmed = rm_ok;
        free(v);
        return;
    }
    x->last.valid = true;
    x->last.rm_confirmed = rm_ok;
    x->last.generation = gen;
    x->last.len = len;
    memcpy(x->last.value, v, len < sizeof(x->last.value) ? len : sizeof(x->last.value));
    act(x, v, len);
    free(v);
}

/* -------------------------------------------------------------- logdirty */

static void process_logdirty(xsc *x, bool from_sweep)
{
    struct xs_handle *xs = H(x);
    unsigned len;
    char why[200] = "";

    if (!x->ready || !xs)
        return;
    char *v = xs_read(xs, XBT_NULL, x->paths.logdirty_cmd, &len);
    if (!v) {
        int err = errno;
        if (err == ENOENT)
            x->ld_seen_valid = false;   /* libxl removed it: the next one is new */
        if (err != ENOENT && !xsc_conn_failed(x->conn, "read logdirty/cmd", err))
            xsc_logf(&x->log, RS_LOG_ERROR, "cannot read %s: %s",
                     x->paths.logdirty_cmd, strerror(err));
        return;
    }
    int on = xsc_logdirty_parse(v, len);
    /* The sweep only catches a lost event; it does not re-apply or re-report
     * a value this connection has already seen (FNV-1a of the bytes). */
    uint64_t hsh = 1469598103934665603ull;
    for (unsigned i = 0; i < len; i++)
        hsh = (hsh ^ (unsigned char)v[i]) * 1099511628211ull;
    bool seen = x->ld_seen_valid && x->ld_seen_hash == hsh && x->ld_seen_len == len;
    x->ld_seen_valid = true;
    x->ld_seen_hash = hsh;
    x->ld_seen_len = len;
    /* A sweep can read a new value before the watch event of that very
     * write arrives; the event then has nothing left to do.  (Two writes of
     * the same value that both arrive after one sweep collapse into one
     * application, which is what an idempotent enable/disable needs.) */
    bool ahead = x->ld_sweep_ahead;
    x->ld_sweep_ahead = from_sweep && !seen;
    if (seen && (from_sweep || ahead)) {
        free(v);
        return;
    }
    x->st.logdirty_read++;
    if (on < 0) {
        x->st.logdirty_refused++;
        /* qemu-traditional exit(1)s here (reference §7.8); rsdm reports it
         * and leaves logdirty/ret alone, so libxl fails cleanly. */
        report(x, "logdirty/cmd", v, len, "expected \"enable\" or \"disable\"");
        free(v);
        return;
    }
    int rc = 0;
    if (x->cfg.ops.set_logdirty)
        rc = x->cfg.ops.set_logdirty(x->cfg.ops.opaque, on, why, sizeof(why));
    if (rc < 0) {
        x->st.logdirty_refused++;
        report(x, "logdirty/cmd", v, len, "cannot %s log-dirty tracking: %s",
               on ? "enable" : "disable", why[0] ? why : strerror(-rc));
        free(v);
        return;
    }
    x->logdirty = on;
    x->st.logdirty_done++;
    xsc_logf(&x->log, RS_LOG_INFO, "log-dirty tracking %s", on ? "enabled" : "disabled");
    put(x, x->paths.logdirty_ret, v, len);
    free(v);
}

/* ------------------------------------------------------------ connection */

/* Make sure the control directory exists and nobody but the dm's domain
 * can write it or the nodes commands come from. */
static int check_tree(xsc *x, struct xs_handle *xs, char *why, size_t why_len)
{
    int rc = xsc_perms_check(xs, x->paths.dir, x->paths.dm_domid, why, why_len);

    if (rc == -ENOENT) {
        xsc_logf(&x->log, RS_LOG_INFO, "%s does not exist; creating it private to domain %u",
                 x->paths.dir, x->paths.dm_domid);
        rc = xsc_perms_mkdir_private(xs, x->paths.dir, x->paths.dm_domid, -1);
        if (rc < 0) {
            snprintf(why, why_len, "cannot create %s: %s", x->paths.dir, strerror(-rc));
            return rc;
        }
        rc = xsc_perms_check(xs, x->paths.dir, x->paths.dm_domid, why, why_len);
    }
    if (rc < 0)
        return rc;
    /* Nodes that already exist may carry their own lists. */
    const char *nodes[] = { x->paths.command, x->paths.parameter, x->paths.logdirty_dir,
                            x->paths.logdirty_cmd };
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        rc = xsc_perms_check(xs, nodes[i], x->paths.dm_domid, why, why_len);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return 0;
}

static int conn_up(void *opaque, struct xs_handle *xs, unsigned generation)
{
    xsc *x = opaque;
    char why[512];

    (void)xs;
    if (generation == 1)
        return 0;           /* xsc_new does the first checks itself */
    int rc = check_tree(x, xs, why, sizeof(why));
    if (rc < 0) {
        if (rc == -EACCES) {
            xsc_logf(&x->log, RS_LOG_ERROR, "after reconnecting: %s", why);
            x->fatal = rc;
            return rc;
        }
        xsc_logf(&x->log, RS_LOG_WARNING, "after reconnecting: %s", why);
        return -EAGAIN;
    }
    x->st.reconnects++;
    x->ld_seen_valid = false;
    x->tree_gone = false;       /* check_tree recreated or found it */
    /* Republish what we own; the re-armed watches fire once each, so
     * `command` and `logdirty/cmd` are re-read by the next event round. */
    if (x->state_pub[0])
        put_str(x, x->paths.state, x->state_pub);
    if (x->runstate_pub[0])
        put_str(x, x->paths.runstate, x->runstate_pub);
    if (x->error_pub[0])
        put_str(x, x->paths.error, x->error_pub);
    if (x->status_pub)
        put_str(x, x->paths.status, x->status_pub);
    xsc_logf(&x->log, RS_LOG_INFO, "republished state \"%s\", runstate \"%s\"",
             x->state_pub, x->runstate_pub);
    return 0;
}

static void read_disable_pf(xsc *x)
{
    unsigned len;
    char *v = xs_read(H(x), XBT_NULL, x->paths.disable_pf, &len);

    x->disable_pf = false;
    if (!v) {
        if (errno != ENOENT)
            xsc_logf(&x->log, RS_LOG_WARNING, "cannot read %s: %s (platform device kept)",
                     x->paths.disable_pf, strerror(errno));
        return;
    }
    if (xsc_value_is(v, len, "1"))
        x->disable_pf = true;
    else if (!xsc_value_is(v, len, "0"))
        report(x, "disable_pf", v, len, "expected \"0\" or \"1\"; the platform device is kept");
    free(v);
}

int xsc_new(const xsc_config *cfg, xsc **out, char *why, size_t why_len)
{
    char tmp[512];
    int rc;

    if (!why || !why_len) {
        why = tmp;
        why_len = sizeof(tmp);
    }
    why[0] = '\0';
    *out = NULL;
    if (!cfg || !cfg->vm) {
        snprintf(why, why_len, "xsc_new: no configuration or no rs_vm");
        return -EINVAL;
    }
    xsc *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    x->cfg = *cfg;
    x->cfg.save_path = NULL;
    x->log.fn = cfg->log;
    x->log.opaque = cfg->log_opaque;
    if (!x->cfg.sweep_ms)
        x->cfg.sweep_ms = 1000;
    rc = xsc_paths_init(&x->paths, cfg->dm_domid, cfg->domid);
    if (rc < 0) {
        snprintf(why, why_len, "bad domain ids (dm %u, guest %u)", cfg->dm_domid, cfg->domid);
        goto fail;
    }
    rc = cfg->save_path
             ? xsc_path_fmt(x->save_path, sizeof(x->save_path), "%s", cfg->save_path)
             : xsc_path_fmt(x->save_path, sizeof(x->save_path),
                            "/var/lib/xen/qemu-save.%u", cfg->domid);
    if (rc < 0 || !x->save_path[0]) {
        snprintf(why, why_len, "save file path is empty or too long");
        rc = rc < 0 ? rc : -EINVAL;
        goto fail;
    }
    x->conn = xsc_conn_new(&cfg->conn, &x->log, conn_up, x);
    if (!x->conn) {
        rc = -ENOMEM;
        snprintf(why, why_len, "out of memory");
        goto fail;
    }
    if (cfg->dialect == XSC_DIALECT_TRADITIONAL &&
        ((rc = xsc_conn_watch(x->conn, x->paths.command, TOKEN_COMMAND)) < 0 ||
         (rc = xsc_conn_watch(x->conn, x->paths.logdirty_cmd, TOKEN_LOGDIRTY)) < 0)) {
        snprintf(why, why_len, "cannot register watches: %s", strerror(-rc));
        goto fail;
    }
    if (cfg->dialect != XSC_DIALECT_TRADITIONAL && cfg->dialect != XSC_DIALECT_QMP) {
        rc = -EINVAL;
        snprintf(why, why_len, "unknown control dialect %d", (int)cfg->dialect);
        goto fail;
    }
    rc = xsc_conn_connect(x->conn, why, why_len);
    if (rc < 0)
        goto fail;
    rc = check_tree(x, H(x), why, why_len);
    if (rc < 0)
        goto fail;
    /* A refusal recorded by an earlier dm of this domid is not ours. */
    if (!xs_rm(H(x), XBT_NULL, x->paths.error) && errno != ENOENT)
        xsc_logf(&x->log, RS_LOG_WARNING, "cannot remove a stale %s: %s", x->paths.error,
                 strerror(errno));
    read_disable_pf(x);
    rc = rs_event_sink_add(cfg->vm, event_sink, x);
    if (rc < 0) {
        snprintf(why, why_len, "cannot add the runstate event sink: %s", strerror(-rc));
        goto fail;
    }
    x->sink_added = true;
    publish_runstate(x);
    publish_status(x);
    if (cfg->ops.fd_changed)
        xsc_conn_set_fd_cb(x->conn, cfg->ops.fd_changed, cfg->ops.opaque);
    x->next_sweep_ms = xsc_now_ms() + x->cfg.sweep_ms;
    if (x->cfg.dialect == XSC_DIALECT_QMP)
        xsc_logf(&x->log, RS_LOG_INFO, "xenstore at %s: state and status only (commands over QMP)",
                 x->paths.dir);
    else
        xsc_logf(&x->log, RS_LOG_INFO, "xenstore control at %s (save file %s)", x->paths.dir,
                 x->save_path);
    *out = x;
    return 0;

fail:
    xsc_free(x);
    return rc < 0 ? rc : -EIO;
}

void xsc_free(xsc *x)
{
    if (!x)
        return;
    if (x->sink_added)
        rs_event_sink_del(x->cfg.vm, event_sink, x);
    xsc_conn_free(x->conn);
    free(x->status_pub);
    free(x);
}

int xsc_ready(xsc *x)
{
    if (!x)
        return -EINVAL;
    x->ready = true;
    if (x->cfg.dialect == XSC_DIALECT_QMP) {
        if (rs_is_live(x->cfg.vm))
            write_state(x, "running", true);
        return x->fatal;
    }
    write_state(x, "running", true);
    /* A command written before we were ready is acted on now, like the
     * first watch event qemu-traditional processes when its loop starts. */
    process_command(x, false);
    process_logdirty(x, false);
    return x->fatal;
}

int xsc_fd(const xsc *x) { return x ? xsc_conn_fd(x->conn) : -1; }

int xsc_timeout_ms(const xsc *x)
{
    int t = xsc_conn_timeout_ms(x->conn);
    if (t >= 0)
        return t;
    int64_t d = x->next_sweep_ms - xsc_now_ms();
    return d <= 0 ? 0 : (d > 60000 ? 60000 : (int)d);
}

int xsc_handle_readable(xsc *x)
{
    for (int i = 0; i < EVENTS_PER_CALL && !x->fatal; i++) {
        char **vec;
        int rc = xsc_conn_next_event(x->conn, &vec);
        if (rc <= 0)
            break;        /* none queued, or lost: the timer reconnects */
        x->st.events++;
        const char *token = vec[XS_WATCH_TOKEN];
        if (strcmp(token, TOKEN_COMMAND) == 0)
            process_command(x, true);
        else if (strcmp(token, TOKEN_LOGDIRTY) == 0)
            process_logdirty(x, false);
        free(vec);
    }
    return x->fatal;
}

int xsc_probe(xsc *x)
{
    return xsc_conn_probe(x->conn);
}

int xsc_handle_timeout(xsc *x)
{
    if (x->fatal)
        return x->fatal;
    int rc = xsc_conn_tick(x->conn);
    if (rc < 0) {
        x->fatal = rc;
        return rc;
    }
    int64_t now = xsc_now_ms();
    if (xsc_conn_is_up(x->conn) && now >= x->next_sweep_ms) {
        x->next_sweep_ms = now + x->cfg.sweep_ms;
        x->st.sweeps++;
        if (x->ready && x->cfg.dialect == XSC_DIALECT_TRADITIONAL) {
            /* Re-reading is the liveness probe, and it catches an event
             * the daemon dropped. */
            process_command(x, false);
            process_logdirty(x, true);
        } else {
            xsc_conn_probe(x->conn);
        }
    }
    return x->fatal;
}

bool xsc_disable_pf(const xsc *x) { return x && x->disable_pf; }
bool xsc_logdirty_enabled(const xsc *x) { return x && x->logdirty; }
bool xsc_is_connected(const xsc *x) { return x && xsc_conn_is_up(x->conn); }
unsigned xsc_generation(const xsc *x) { return x ? xsc_conn_generation(x->conn) : 0; }
struct xs_handle *xsc_xs(const xsc *x) { return x ? H(x) : NULL; }
const xsc_paths *xsc_get_paths(const xsc *x) { return x ? &x->paths : NULL; }

void xsc_get_stats(const xsc *x, xsc_stats *out)
{
    *out = x->st;
}

int xsc_publish_serial_tty(xsc *x, const char *pty_path)
{
    if (!x || !pty_path || !*pty_path)
        return -EINVAL;
    if (!H(x))
        return -ENOTCONN;
    int rc = xsc_perms_write_private(H(x), x->paths.serial_tty, pty_path, strlen(pty_path),
                                     x->paths.dm_domid, (int)x->paths.domid);
    if (rc < 0)
        xsc_logf(&x->log, RS_LOG_ERROR, "cannot write %s: %s", x->paths.serial_tty,
                 strerror(-rc));
    return rc;
}

int xsc_publish_rtc_timeoffset(xsc *x, const char *uuid, long long offset)
{
    char path[XSC_PATH_LEN], val[24];

    if (!x)
        return -EINVAL;
    int rc = xsc_path_rtc_timeoffset(path, sizeof(path), uuid);
    if (rc < 0) {
        xsc_logf(&x->log, RS_LOG_ERROR, "not writing the RTC offset: bad VM uuid");
        return rc;
    }
    snprintf(val, sizeof(val), "%lld", offset);
    return put_str(x, path, val);
}

int xsc_read_vm_uuid(xsc *x, char *uuid, size_t len)
{
    char path[XSC_PATH_LEN], why[300];
    unsigned vlen = 0;

    if (!x || !uuid || len < 37)
        return -EINVAL;
    int rc = xsc_path_fmt(path, sizeof(path), "%s/vm", x->paths.guest_home);
    if (rc < 0)
        return rc;
    char *v = xs_read(H(x), XBT_NULL, path, &vlen);
    if (!v) {
        int err = errno ? errno : EIO;
        if (err != ENOENT)
            xsc_logf(&x->log, RS_LOG_WARNING, "cannot read %s: %s", path, strerror(err));
        return -err;
    }
    unsigned np = 0;
    struct xs_permissions *perms = xs_get_permissions(H(x), XBT_NULL, path, &np);
    bool safe = perms && xsc_perms_safe(perms, np, x->paths.dm_domid, why, sizeof(why));
    if (!perms)
        snprintf(why, sizeof(why), "its permissions cannot be read: %s", strerror(errno));
    free(perms);
    if (!safe) {
        xsc_logf(&x->log, RS_LOG_ERROR, "not using the VM uuid in %s: it %s", path, why);
        free(v);
        return -EACCES;
    }
    /* "/vm/" + 36 characters, nothing else (no NUL inside, no suffix). */
    if (vlen != 40 || memchr(v, '\0', vlen) || strncmp(v, "/vm/", 4) != 0 ||
        !xsc_uuid_valid(v + 4)) {
        xsc_logf(&x->log, RS_LOG_ERROR, "%s is not /vm/<uuid>: not using it", path);
        free(v);
        return -EINVAL;
    }
    memcpy(uuid, v + 4, 37);
    free(v);
    return 0;
}
