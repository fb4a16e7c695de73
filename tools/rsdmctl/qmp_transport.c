/*
 * rsdmctl's QMP transport (--qmp PATH): QEMU's QMP over a Unix socket
 * (greeting, qmp_capabilities, then one command at a time; asynchronous
 * events are counted and skipped while waiting for a return).  Maps the
 * operations onto query-status (with rsdm's "x-holds"), stop, cont,
 * system_reset, system_powerdown, system_wakeup, x-retry and
 * xen-save-devices-state.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rsdmctl.h"

#define QMP_LINE_MAX 65536

typedef struct qmp_tr {
    ctl_transport ops;
    int fd;
    char buf[QMP_LINE_MAX];
    size_t len;
    long long events;             /* asynchronous events seen */
} qmp_tr;

/* One JSON message, waiting at most until deadline (ms, monotonic). */
static json_t *recv_msg(qmp_tr *q, int64_t deadline, char *why, size_t why_len)
{
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        if (nl) {
            size_t n = (size_t)(nl - q->buf) + 1;
            json_error_t e;
            json_t *j = json_loadb(q->buf, n, 0, &e);
            memmove(q->buf, q->buf + n, q->len - n);
            q->len -= n;
            if (!j || !json_is_object(j)) {
                json_decref(j);
                snprintf(why, why_len, "malformed QMP message");
                return NULL;
            }
            return j;
        }
        if (q->len == sizeof(q->buf)) {
            snprintf(why, why_len, "QMP message too long");
            return NULL;
        }
        int left = (int)(deadline - ctl_mono_ms());
        if (left <= 0) {
            snprintf(why, why_len, "no answer from the device model");
            errno = ETIMEDOUT;
            return NULL;
        }
        struct pollfd p = { .fd = q->fd, .events = POLLIN };
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t got = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            snprintf(why, why_len, "the QMP connection was closed");
            return NULL;
        }
        q->len += (size_t)got;
    }
}

/* Execute: 0 with *ret (caller owns), -EPERM with the dm's error desc. */
static int execute(qmp_tr *q, const char *cmd, json_t *args, json_t **ret, int timeout_ms,
                   char *why, size_t why_len)
{
    int64_t deadline = ctl_mono_ms() + timeout_ms;
    json_t *m = json_pack("{s:s}", "execute", cmd);

    if (args)
        json_object_set(m, "arguments", args);
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!text) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    size_t n = strlen(text);
    ssize_t w = send(q->fd, text, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n)
        w = send(q->fd, "\n", 1, MSG_NOSIGNAL);
    free(text);
    if (w < 0) {
        snprintf(why, why_len, "QMP send: %s", strerror(errno));
        return -EIO;
    }
    for (;;) {
        json_t *r = recv_msg(q, deadline, why, why_len);
        if (!r)
            return errno == ETIMEDOUT ? -ETIMEDOUT : -EIO;
        if (json_object_get(r, "event")) {
            q->events++;
            json_decref(r);
            continue;
        }
        json_t *err = json_object_get(r, "error");
        if (err) {
            const char *d = json_string_value(json_object_get(err, "desc"));
            snprintf(why, why_len, "%s", d ? d : "error without a description");
            json_decref(r);
            return -EPERM;
        }
        json_t *v = json_object_get(r, "return");
        if (!v) {
            json_decref(r);
            continue;
        }
        if (ret)
            *ret = json_incref(v);
        json_decref(r);
        return 0;
    }
}

static json_t *qmp_get_status(ctl_transport *ct, char *why, size_t why_len)
{
    qmp_tr *q = (qmp_tr *)ct;
    json_t *r = NULL, *holds = json_array(), *h;
    size_t i;
    double now = ctl_now();

    if (execute(q, "query-status", NULL, &r, RSDMCTL_TIMEOUT_S * 1000, why, why_len) < 0) {
        json_decref(holds);
        return NULL;
    }
    json_array_foreach(json_object_get(r, "x-holds"), i, h) {
        json_t *o;
        if (json_is_string(h))
            o = json_pack("{s:O, s:s, s:f}", "reason", h, "group", "?", "since", now);
        else if (json_is_object(h))
            o = json_deep_copy(h);
        else
            continue;
        /* rsdm gives `since` as QMP's timestamp object (docs/qmp.md). */
        json_t *since = o ? json_object_get(o, "since") : NULL;
        if (json_is_object(since)) {
            json_t *sec = json_object_get(since, "seconds"), *us = json_object_get(since, "microseconds");
            if (!json_is_integer(sec) || !json_is_integer(us)) {
                json_decref(o);
                json_decref(holds);
                json_decref(r);
                snprintf(why, why_len, "query-status: x-holds[%zu].since is malformed", i);
                return NULL;
            }
            json_object_set_new(o, "since", json_real((double)json_integer_value(sec) +
                                                      (double)json_integer_value(us) / 1e6));
        }
        if (o && !json_object_get(o, "since"))
            json_object_set_new(o, "since", json_real(now));
        if (o)
            json_array_append_new(holds, o);
    }
    json_t *s = json_pack("{s:O?, s:O?, s:o, s:[], s:I}", "status", json_object_get(r, "status"),
                          "running", json_object_get(r, "running"), "holds", holds,
                          "transitions", "events", (json_int_t)q->events);
    json_decref(r);
    if (!s) {
        snprintf(why, why_len, "malformed query-status answer");
        return NULL;
    }
    char *text = json_dumps(s, JSON_COMPACT);
    json_decref(s);
    s = ctl_status_parse(text, why, why_len);       /* the same shape check */
    free(text);
    return s;
}

static int qmp_command(ctl_transport *ct, const char *cmd, bool idempotent,
                       bool (*done)(json_t *status, void *arg), void *arg,
                       int timeout_ms, char *why, size_t why_len)
{
    static const struct { const char *word, *qmp; } map[] = {
        { "stop", "stop" }, { "continue", "cont" }, { "retry", "x-retry" },
        { "reset", "system_reset" }, { "powerdown", "system_powerdown" },
        { "wakeup", "system_wakeup" },
    };
    (void)idempotent;
    (void)done;
    (void)arg;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].word, cmd) == 0)
            return execute((qmp_tr *)ct, map[i].qmp, NULL, NULL, timeout_ms, why, why_len);
    snprintf(why, why_len, "no QMP command for '%s'", cmd);
    return -EINVAL;
}

static int qmp_save_state(ctl_transport *ct, const char *file, const char *save_path,
                          int timeout_ms, char *why, size_t why_len)
{
    json_t *s = qmp_get_status(ct, why, why_len);

    (void)save_path;
    if (!s)
        return -EIO;
    bool running = json_is_true(json_object_get(s, "running"));
    json_decref(s);
    if (running) {
        snprintf(why, why_len, "the VM is running: save-state needs it stopped first");
        return -EBUSY;
    }
    json_t *args = json_pack("{s:s}", "filename", file);
    int rc = execute((qmp_tr *)ct, "xen-save-devices-state", args, NULL, timeout_ms, why, why_len);
    json_decref(args);
    return rc;
}

static int qmp_wait_change(ctl_transport *ct, int timeout_ms, char *why, size_t why_len)
{
    qmp_tr *q = (qmp_tr *)ct;
    json_t *m = recv_msg(q, ctl_mono_ms() + timeout_ms, why, why_len);

    if (!m)
        return errno == ETIMEDOUT ? 0 : -EIO;
    if (json_object_get(m, "event"))
        q->events++;
    json_decref(m);
    return 1;
}

static void qmp_close(ctl_transport *ct)
{
    qmp_tr *q = (qmp_tr *)ct;

    if (q->fd >= 0)
        close(q->fd);
    free(q);
}

ctl_transport *ctl_qmp_open(const char *path, int timeout_ms, char *why, size_t why_len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    qmp_tr *q = calloc(1, sizeof(*q));

    if (!q) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    q->ops = (ctl_transport){ .name = "qmp", .get_status = qmp_get_status,
                              .command = qmp_command, .save_state = qmp_save_state,
                              .wait_change = qmp_wait_change, .close = qmp_close };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(why, why_len, "socket path too long: %s", path);
        free(q);
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(why, why_len, "cannot connect to %s: %s", path, strerror(errno));
        qmp_close(&q->ops);
        return NULL;
    }
    json_t *g = recv_msg(q, ctl_mono_ms() + timeout_ms, why, why_len);
    if (!g || !json_object_get(g, "QMP")) {
        if (g)
            snprintf(why, why_len, "%s: no QMP greeting", path);
        json_decref(g);
        qmp_close(&q->ops);
        return NULL;
    }
    json_decref(g);
    if (execute(q, "qmp_capabilities", NULL, NULL, timeout_ms, why, why_len) < 0) {
        qmp_close(&q->ops);
        return NULL;
    }
    return &q->ops;
}
