/*
 * rsdmctl's xenstore transport: reads the dm's `status` and `error` nodes
 * and writes `command` under /local/domain/0/device-model/<domid>/
 * (docs/protocol.md).  Every wait is bounded and driven by watch events.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "rsdmctl.h"

typedef struct xs_tr {
    ctl_transport ops;
    struct xs_handle *xs;
    unsigned domid;
    bool watching;
    char dir[128], status[160], error[160], command[160], state[160];
} xs_tr;

static char *rd(xs_tr *t, const char *path)
{
    unsigned len = 0;
    char *v = xs_read(t->xs, XBT_NULL, path, &len);

    if (v && memchr(v, '\0', len)) {    /* an embedded NUL: not ours */
        free(v);
        errno = EINVAL;
        return NULL;
    }
    return v;
}

static json_t *xs_get_status(ctl_transport *ct, char *why, size_t why_len)
{
    xs_tr *t = (xs_tr *)ct;
    char *v = rd(t, t->status);
    json_t *j;

    if (!v) {
        if (errno == ENOENT) {
            char *d = rd(t, t->dir);
            if (!d)
                snprintf(why, why_len, "no device model for domain %u (%s absent)",
                         t->domid, t->dir);
            else
                snprintf(why, why_len, "the dm of domain %u publishes no status "
                         "(not rsdm, or too old)", t->domid);
            free(d);
        } else {
            snprintf(why, why_len, "cannot read %s: %s", t->status, strerror(errno));
        }
        return NULL;
    }
    j = ctl_status_parse(v, why, why_len);
    free(v);
    return j;
}

static int arm(xs_tr *t, char *why, size_t why_len)
{
    if (t->watching)
        return 0;
    if (!xs_watch(t->xs, t->status, "status") || !xs_watch(t->xs, t->error, "error") ||
        !xs_watch(t->xs, t->state, "state")) {
        snprintf(why, why_len, "cannot watch %s: %s", t->dir, strerror(errno));
        return -EIO;
    }
    t->watching = true;
    return 0;
}

/* Wait for a watch event, at most ms: 1 event(s) taken, 0 timeout. */
static int wait_watch(xs_tr *t, int ms, char *why, size_t why_len)
{
    struct pollfd p = { .fd = xs_fileno(t->xs), .events = POLLIN };
    int n = 0;
    char **vec;

    /* Drain what is queued first. */
    while ((vec = xs_check_watch(t->xs)) != NULL) {
        free(vec);
        n = 1;
    }
    if (n)
        return 1;
    if (errno != EAGAIN) {
        snprintf(why, why_len, "lost the connection to xenstore: %s", strerror(errno));
        return -EIO;
    }
    int r = poll(&p, 1, ms < 0 ? 0 : ms);
    if (r < 0 && errno != EINTR) {
        snprintf(why, why_len, "poll: %s", strerror(errno));
        return -EIO;
    }
    if (r <= 0)
        return 0;
    while ((vec = xs_check_watch(t->xs)) != NULL) {
        free(vec);
        n = 1;
    }
    if (!n && errno != EAGAIN) {
        snprintf(why, why_len, "lost the connection to xenstore: %s", strerror(errno));
        return -EIO;
    }
    return 1;
}

static int xs_wait_change(ctl_transport *ct, int timeout_ms, char *why, size_t why_len)
{
    xs_tr *t = (xs_tr *)ct;
    int rc = arm(t, why, why_len);

    return rc < 0 ? rc : wait_watch(t, timeout_ms, why, why_len);
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The dm's reason from an `error` value "<seq> <source> "<value>": <why>". */
static void refusal(const char *err, char *why, size_t why_len)
{
    const char *r = strstr(err, "\": ");
    snprintf(why, why_len, "%s", r ? r + 3 : err);
}

static json_int_t events_of(json_t *s)
{
    return s ? json_integer_value(json_object_get(s, "events")) : -1;
}

static int xs_command(ctl_transport *ct, const char *cmd, bool idempotent,
                      bool (*done)(json_t *status, void *arg), void *arg,
                      int timeout_ms, char *why, size_t why_len)
{
    xs_tr *t = (xs_tr *)ct;
    int64_t deadline = ctl_mono_ms() + timeout_ms;
    json_t *s0 = xs_get_status(ct, why, why_len);
    int rc;

    if (!s0)
        return -ENOENT;
    json_int_t ev0 = events_of(s0);
    bool noop_ok = idempotent && done(s0, arg);
    json_decref(s0);
    char *err0 = rd(t, t->error);
    if ((rc = arm(t, why, why_len)) < 0)
        goto out;
    if (!xs_write(t->xs, XBT_NULL, t->command, cmd, (unsigned)strlen(cmd))) {
        snprintf(why, why_len, "cannot write %s: %s", t->command, strerror(errno));
        rc = -EIO;
        goto out;
    }
    for (;;) {
        char *err = rd(t, t->error);
        if (!same(err, err0) && err) {
            refusal(err, why, why_len);
            free(err);
            rc = -EPERM;
            goto out;
        }
        free(err);
        json_t *s = xs_get_status(ct, why, why_len);
        if (s) {
            bool ok = done(s, arg) && events_of(s) > ev0;
            json_decref(s);
            if (ok) {
                rc = 0;
                goto out;
            }
        }
        if (noop_ok) {      /* already so: done once the dm has taken it */
            char *c = rd(t, t->command);
            if (!c && errno == ENOENT) {
                rc = 0;
                goto out;
            }
            free(c);
        }
        int left = (int)(deadline - ctl_mono_ms());
        if (left <= 0) {
            snprintf(why, why_len, "no answer from the device model within %d s",
                     (timeout_ms + 999) / 1000);
            rc = -ETIMEDOUT;
            goto out;
        }
        if ((rc = wait_watch(t, left, why, why_len)) < 0)
            goto out;
    }
out:
    free(err0);
    return rc;
}

static int copy_file(const char *from, const char *to, char *why, size_t why_len)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;

    if (in < 0) {
        snprintf(why, why_len, "cannot open the dm's save file %s: %s", from, strerror(errno));
        return -errno;
    }
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = -errno;
        snprintf(why, why_len, "cannot create %s: %s", to, strerror(errno));
        close(in);
        return rc;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            snprintf(why, why_len, "reading %s: %s", from, strerror(errno));
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -(w < 0 ? errno : EIO);
                snprintf(why, why_len, "writing %s: %s", to, strerror(-rc));
                goto done;
            }
            off += w;
        }
    }
done:
    if (rc == 0 && fsync(out) < 0) {
        rc = -errno;
        snprintf(why, why_len, "fsync %s: %s", to, strerror(errno));
    }
    if (close(out) < 0 && rc == 0) {
        rc = -errno;
        snprintf(why, why_len, "close %s: %s", to, strerror(errno));
    }
    close(in);
    if (rc < 0)
        unlink(to);
    return rc;
}

/* The traditional `save`: the dm writes its save path and acknowledges with
 * `state` = `paused`; then the file is copied.  The stale `state` is removed
 * first (as the toolstack, which owns that node too) so an old `paused`
 * cannot pass for the acknowledgement. */
static int xs_save_state(ctl_transport *ct, const char *file, const char *save_path,
                         int timeout_ms, char *why, size_t why_len)
{
    xs_tr *t = (xs_tr *)ct;
    int64_t deadline = ctl_mono_ms() + timeout_ms;
    json_t *s = xs_get_status(ct, why, why_len);
    int rc;

    if (!s)
        return -ENOENT;
    bool running = json_is_true(json_object_get(s, "running"));
    char st[64];
    snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(s, "status")));
    json_decref(s);
    if (running) {
        snprintf(why, why_len, "domain %u is %s: save-state needs it stopped first "
                 "(rsdmctl stop %u)", t->domid, st, t->domid);
        return -EBUSY;
    }
    char *err0 = rd(t, t->error);
    if ((rc = arm(t, why, why_len)) < 0)
        goto out;
    if (!xs_rm(t->xs, XBT_NULL, t->state) && errno != ENOENT) {
        snprintf(why, why_len, "cannot reset %s: %s", t->state, strerror(errno));
        rc = -EIO;
        goto out;
    }
    if (!xs_write(t->xs, XBT_NULL, t->command, "save", 4)) {
        snprintf(why, why_len, "cannot write %s: %s", t->command, strerror(errno));
        rc = -EIO;
        goto out;
    }
    for (;;) {
        char *err = rd(t, t->error);
        if (err && !same(err, err0)) {
            refusal(err, why, why_len);
            free(err);
            rc = -EPERM;
            goto out;
        }
        free(err);
        char *v = rd(t, t->state);
        bool acked = v && strcmp(v, "paused") == 0;
        free(v);
        if (acked)
            break;
        int left = (int)(deadline - ctl_mono_ms());
        if (left <= 0) {
            snprintf(why, why_len, "no save acknowledgement within %d s",
                     (timeout_ms + 999) / 1000);
            rc = -ETIMEDOUT;
            goto out;
        }
        if ((rc = wait_watch(t, left, why, why_len)) < 0)
            goto out;
    }
    rc = copy_file(save_path, file, why, why_len);
out:
    free(err0);
    return rc;
}

static void xs_tr_close(ctl_transport *ct)
{
    xs_tr *t = (xs_tr *)ct;

    if (!t)
        return;
    if (t->xs)
        xs_close(t->xs);
    free(t);
}

ctl_transport *ctl_xs_open(unsigned domid, char *why, size_t why_len)
{
    xs_tr *t = calloc(1, sizeof(*t));

    if (!t) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    t->ops = (ctl_transport){ .name = "xenstore", .get_status = xs_get_status,
                              .command = xs_command, .save_state = xs_save_state,
                              .wait_change = xs_wait_change, .close = xs_tr_close };
    t->domid = domid;
    snprintf(t->dir, sizeof(t->dir), "/local/domain/0/device-model/%u", domid);
    snprintf(t->status, sizeof(t->status), "%s/status", t->dir);
    snprintf(t->error, sizeof(t->error), "%s/error", t->dir);
    snprintf(t->command, sizeof(t->command), "%s/command", t->dir);
    snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
    t->xs = xs_open(0);
    if (!t->xs) {
        snprintf(why, why_len, "cannot connect to xenstore: %s", strerror(errno));
        free(t);
        return NULL;
    }
    return &t->ops;
}
