/* xsc_conn: a xenstore connection with reconnect and re-armed watches
 * (see xsc_conn.h for why loss detection works the way it does). */
#include "xsc_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xenstore.h>

#define XSC_MAX_WATCHES 16

struct xsc_watch {
    char *path;
    char *token;
};

struct xsc_conn {
    xsc_conn_opts opts;
    xsc_logger log;
    xsc_conn_up_fn up;
    void *opaque;

    struct xs_handle *xs;
    int fd;
    unsigned generation;
    uint64_t losses;

    /* while down */
    int64_t lost_since_ms;
    int64_t next_attempt_ms;
    unsigned delay_ms;
    unsigned attempts;

    struct xsc_watch watches[XSC_MAX_WATCHES];
    size_t nwatches;

    xsc_conn_fd_fn fd_cb;
    void *fd_opaque;
};

int64_t xsc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

xsc_conn *xsc_conn_new(const xsc_conn_opts *opts, const xsc_logger *lg,
                       xsc_conn_up_fn up, void *opaque)
{
    xsc_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    if (opts)
        c->opts = *opts;
    if (!c->opts.backoff_min_ms)
        c->opts.backoff_min_ms = 20;
    if (!c->opts.backoff_max_ms)
        c->opts.backoff_max_ms = 2000;
    if (c->opts.backoff_max_ms < c->opts.backoff_min_ms)
        c->opts.backoff_max_ms = c->opts.backoff_min_ms;
    if (lg)
        c->log = *lg;
    c->up = up;
    c->opaque = opaque;
    c->fd = -1;
    return c;
}

void xsc_conn_set_fd_cb(xsc_conn *c, xsc_conn_fd_fn fn, void *opaque)
{
    c->fd_cb = fn;
    c->fd_opaque = opaque;
}

static void drop_handle(xsc_conn *c)
{
    bool had = c->xs != NULL;

    if (c->xs)
        xs_close(c->xs);   /* joins libxenstore's reader thread */
    c->xs = NULL;
    c->fd = -1;
    if (had && c->fd_cb)
        c->fd_cb(c->fd_opaque, -1);
}

void xsc_conn_free(xsc_conn *c)
{
    if (!c)
        return;
    c->fd_cb = NULL;       /* the owner is going away too */
    drop_handle(c);
    for (size_t i = 0; i < c->nwatches; i++) {
        free(c->watches[i].path);
        free(c->watches[i].token);
    }
    free(c);
}

static const char *socket_name(void)
{
    const char *p = getenv("XENSTORED_PATH");
    return p ? p : "the default xenstored socket";
}

/* One attempt: open, take the fd, arm every watch, tell the owner. */
static int try_open(xsc_conn *c, char *why, size_t why_len, bool *refused)
{
    *refused = false;
    struct xs_handle *xs = xs_open(0);
    int rc;

    if (!xs) {
        rc = -errno;
        snprintf(why, why_len, "cannot open xenstore (%s): %s", socket_name(),
                 strerror(errno));
        return rc ? rc : -EIO;
    }
    int fd = xs_fileno(xs);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, why_len, "cannot get the xenstore watch fd: %s", strerror(errno));
        xs_close(xs);
        return rc ? rc : -EIO;
    }
    for (size_t i = 0; i < c->nwatches; i++) {
        if (!xs_watch(xs, c->watches[i].path, c->watches[i].token)) {
            rc = -errno;
            snprintf(why, why_len, "cannot watch %s: %s", c->watches[i].path,
                     strerror(errno));
            xs_close(xs);
            return rc ? rc : -EIO;
        }
    }
    c->xs = xs;
    c->fd = fd;
    c->generation++;
    if (c->up) {
        rc = c->up(c->opaque, xs, c->generation);
        if (rc < 0) {
            snprintf(why, why_len, "the connection was refused after it opened (%s)",
                     strerror(-rc));
            /* Never announced: close quietly. */
            xs_close(c->xs);
            c->xs = NULL;
            c->fd = -1;
            *refused = rc != -EAGAIN;
            return rc;
        }
    }
    if (c->fd_cb)
        c->fd_cb(c->fd_opaque, fd);
    return 0;
}

int xsc_conn_connect(xsc_conn *c, char *why, size_t why_len)
{
    char tmp[256];

    if (!why || !why_len) {
        why = tmp;
        why_len = sizeof(tmp);
    }
    why[0] = '\0';
    if (c->xs)
        return 0;
    bool refused;
    return try_open(c, why, why_len, &refused);
}

int xsc_conn_watch(xsc_conn *c, const char *path, const char *token)
{
    if (!c || !path || !token)
        return -EINVAL;
    if (c->nwatches == XSC_MAX_WATCHES)
        return -ENOSPC;
    struct xsc_watch *w = &c->watches[c->nwatches];
    w->path = strdup(path);
    w->token = strdup(token);
    if (!w->path || !w->token) {
        free(w->path);
        free(w->token);
        w->path = w->token = NULL;
        return -ENOMEM;
    }
    c->nwatches++;
    if (c->xs && !xs_watch(c->xs, path, token)) {
        int err = errno;
        xsc_logf(&c->log, RS_LOG_ERROR, "cannot watch %s: %s", path, strerror(err));
        /* Kept in the list: a reconnect arms it. */
        xsc_conn_failed(c, "watch", err);
        return -err;
    }
    return 0;
}

struct xs_handle *xsc_conn_xs(const xsc_conn *c) { return c ? c->xs : NULL; }
int xsc_conn_fd(const xsc_conn *c) { return c ? c->fd : -1; }
bool xsc_conn_is_up(const xsc_conn *c) { return c && c->xs; }
unsigned xsc_conn_generation(const xsc_conn *c) { return c ? c->generation : 0; }
uint64_t xsc_conn_losses(const xsc_conn *c) { return c ? c->losses : 0; }

static void mark_lost(xsc_conn *c, const char *what, int err)
{
    if (!c->xs)
        return;
    xsc_logf(&c->log, RS_LOG_WARNING,
             "xenstore connection lost (%s: %s); reconnecting with back-off",
             what, strerror(err));
    drop_handle(c);
    c->losses++;
    c->lost_since_ms = xsc_now_ms();
    c->delay_ms = c->opts.backoff_min_ms;
    c->attempts = 0;
    /* The first attempt is immediate: a restarted daemon is often back. */
    c->next_attempt_ms = c->lost_since_ms;
}

/* A cheap round trip: 0, or the errno it failed with. */
static int probe_errno(xsc_conn *c)
{
    char *home = xs_get_domain_path(c->xs, 0);
    if (!home)
        return errno ? errno : EIO;
    free(home);
    return 0;
}

int xsc_conn_probe(xsc_conn *c)
{
    if (!c->xs)
        return -ENOTCONN;
    int err = probe_errno(c);
    if (err) {
        mark_lost(c, "probe", err);
        return -ENOTCONN;
    }
    return 0;
}

bool xsc_conn_failed(xsc_conn *c, const char *what, int err)
{
    if (!c->xs)
        return true;
    switch (err) {
    /* The daemon answered: the connection works. */
    case ENOENT: case EACCES: case EEXIST: case EISDIR: case ENOTEMPTY:
    case ENOSPC: case E2BIG: case EAGAIN: case EPERM: case EROFS:
    case EBUSY: case ENOSYS: case ENOMEM:
        return false;
    default:
        break;
    }
    if (probe_errno(c) == 0)
        return false;
    mark_lost(c, what, err);     /* name the request that noticed it */
    return true;
}

int xsc_conn_next_event(xsc_conn *c, char ***vec)
{
    *vec = NULL;
    if (!c->xs)
        return -ENOTCONN;
    char **v = xs_check_watch(c->xs);
    if (v) {
        *vec = v;
        return 1;
    }
    /* EAGAIN: nothing queued.  Anything else: the reader thread found the
     * socket closed (libxenstore answers EINVAL once its fd is gone). */
    if (errno == EAGAIN)
        return 0;
    mark_lost(c, "reading watch events", errno);
    return -ENOTCONN;
}

int xsc_conn_timeout_ms(const xsc_conn *c)
{
    if (c->xs)
        return -1;
    int64_t d = c->next_attempt_ms - xsc_now_ms();
    if (d <= 0)
        return 0;
    return d > 60000 ? 60000 : (int)d;
}

int xsc_conn_tick(xsc_conn *c)
{
    char why[256];
    int64_t now = xsc_now_ms();

    if (c->xs || now < c->next_attempt_ms)
        return 0;
    c->attempts++;
    bool refused;
    int rc = try_open(c, why, sizeof(why), &refused);
    if (rc == 0) {
        xsc_logf(&c->log, RS_LOG_INFO,
                 "xenstore reconnected after %u attempt(s), %lld ms (generation %u)",
                 c->attempts, (long long)(now - c->lost_since_ms), c->generation);
        return 0;
    }
    if (refused) {
        /* The owner refused the new connection (e.g. an unsafe tree): fatal. */
        xsc_logf(&c->log, RS_LOG_ERROR, "xenstore reconnect: %s", why);
        return rc;
    }
    if (c->opts.give_up_ms && now - c->lost_since_ms >= (int64_t)c->opts.give_up_ms) {
        xsc_logf(&c->log, RS_LOG_ERROR,
                 "xenstore still unreachable after %lld ms and %u attempts (%s): giving up",
                 (long long)(now - c->lost_since_ms), c->attempts, why);
        return -ENOTCONN;
    }
    if (c->attempts == 1 || (c->attempts & (c->attempts - 1)) == 0)
        xsc_logf(&c->log, RS_LOG_WARNING, "xenstore reconnect attempt %u failed: %s",
                 c->attempts, why);
    c->next_attempt_ms = now + c->delay_ms;
    c->delay_ms = c->delay_ms * 2 > c->opts.backoff_max_ms ? c->opts.backoff_max_ms
                                                           : c->delay_ms * 2;
    return 0;
}
