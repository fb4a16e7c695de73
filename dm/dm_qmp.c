/*
 * QMP monitors in the dm's main loop (dm_qmp.h).
 */
#include "dm_qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dm_log.h"

typedef struct tracked {
    int fd;
    dm_watch *w;
    unsigned seen;           /* sync generation it was last listed in */
    bool want_write;
} tracked;

struct dm_qmp {
    dm_loop *loop;
    rs_vm *vm;
    qmp_server *srv;
    qmp_commands *cmds;
    dm_timer *t_sync;
    tracked *t;              /* the watched fds */
    size_t nt, capt;
    size_t *slot;            /* by fd: index in t + 1, 0 when not watched */
    size_t nslot;
    struct pollfd *pfds;
    size_t cap_pfds;
    unsigned gen;
    char paths[DM_ARGS_MAX_MONITORS][DM_ARGS_PATH_MAX];   /* socket files we made */
    ino_t inos[DM_ARGS_MAX_MONITORS];                     /* ... so we remove only those */
    bool sink;
};

static void on_ready(dm_qmp *q, int fd, short revents);

static void on_read(void *opaque, int fd)
{
    on_ready(opaque, fd, POLLIN);
}

static void on_write(void *opaque, int fd)
{
    on_ready(opaque, fd, POLLOUT);
}

static tracked *find_tracked(dm_qmp *q, int fd)
{
    return (size_t)fd < q->nslot && q->slot[fd] ? &q->t[q->slot[fd] - 1] : NULL;
}

/* Room for fd in the index and one more entry in t. */
static bool reserve(dm_qmp *q, int fd)
{
    if ((size_t)fd >= q->nslot) {
        size_t n = (size_t)fd * 2 + 16;
        size_t *ns = realloc(q->slot, n * sizeof(*ns));
        if (!ns)
            return false;
        memset(ns + q->nslot, 0, (n - q->nslot) * sizeof(*ns));
        q->slot = ns;
        q->nslot = n;
    }
    if (q->nt == q->capt) {
        size_t cap = q->capt ? q->capt * 2 : 16;
        tracked *nt = realloc(q->t, cap * sizeof(*nt));
        if (!nt)
            return false;
        q->t = nt;
        q->capt = cap;
    }
    return true;
}

/* Makes the loop's watches match the server's fd set.  Called after every
 * server callback and (deferred) after every broadcast. */
static void sync_watches(dm_qmp *q)
{
    size_t n = qmp_server_pollfds(q->srv, q->pfds, q->cap_pfds);
    if (n > q->cap_pfds) {
        struct pollfd *p = realloc(q->pfds, n * 2 * sizeof(*p));
        if (!p) {
            dm_err("qmp: out of memory tracking %zu monitor fds", n);
            return;
        }
        q->pfds = p;
        q->cap_pfds = n * 2;
        n = qmp_server_pollfds(q->srv, q->pfds, q->cap_pfds);
    }
    q->gen++;
    for (size_t i = 0; i < n; i++) {
        tracked *t = find_tracked(q, q->pfds[i].fd);
        if (!t) {
            if (!reserve(q, q->pfds[i].fd)) {
                dm_err("qmp: out of memory watching fd %d", q->pfds[i].fd);
                continue;
            }
            dm_watch *w = dm_watch_add(q->loop, q->pfds[i].fd, on_read, on_write, q);
            if (!w) {
                dm_err("qmp: watching fd %d: %s", q->pfds[i].fd, strerror(errno));
                continue;
            }
            t = &q->t[q->nt++];
            *t = (tracked){ .fd = q->pfds[i].fd, .w = w };
            q->slot[t->fd] = q->nt;
        }
        t->seen = q->gen;
        bool ww = (q->pfds[i].events & POLLOUT) != 0;
        if (ww != t->want_write) {
            dm_watch_want_write(t->w, ww);
            t->want_write = ww;
        }
    }
    for (size_t i = 0; i < q->nt;) {
        if (q->t[i].seen != q->gen) {
            dm_watch_remove(q->t[i].w);
            q->slot[q->t[i].fd] = 0;
            q->t[i] = q->t[--q->nt];
            if (i < q->nt)
                q->slot[q->t[i].fd] = i + 1;
        } else {
            i++;
        }
    }
}

static void on_ready(dm_qmp *q, int fd, short revents)
{
    qmp_server_handle(q->srv, fd, revents);
    sync_watches(q);
}

static void on_sync_timer(void *opaque)
{
    sync_watches(opaque);
}

/* A broadcast may have queued output on clients whose socket was full:
 * their watches need POLLOUT, checked on the next loop pass. */
static void on_rs_event(void *opaque, const rs_event *ev)
{
    dm_qmp *q = opaque;
    (void)ev;
    dm_timer_arm(q->t_sync, 0, 0);
}

void dm_qmp_event(dm_qmp *q, const char *name, json_t *data)
{
    qmp_server_event(q->srv, name, data, 0);
    dm_timer_arm(q->t_sync, 0, 0);
}

static int open_monitor(dm_qmp *q, const dm_monitor *mon, char *why, size_t len)
{
    int r;
    if (mon->fd >= 0) {
        if (fcntl(mon->fd, F_GETFD) < 0) {
            r = -errno;
            snprintf(why, len, "monitor '%s': fd %d is not open (%s)", mon->id, mon->fd,
                     strerror(errno));
            return r;
        }
        r = qmp_server_listen_fd(q->srv, mon->fd);
        if (r < 0)
            snprintf(why, len, "monitor '%s': fd %d is not a listening socket: %s", mon->id,
                     mon->fd, strerror(-r));
        else
            dm_info("qmp: monitor '%s' on inherited fd %d", mon->id, mon->fd);
        return r;
    }
    r = qmp_server_listen_path(q->srv, mon->path);
    if (r < 0) {
        snprintf(why, len, "monitor '%s': cannot listen on %s: %s", mon->id, mon->path,
                 strerror(-r));
        return r;
    }
    struct stat st;
    for (size_t i = 0; i < DM_ARGS_MAX_MONITORS; i++)
        if (!q->paths[i][0]) {
            memcpy(q->paths[i], mon->path, sizeof(q->paths[i]));
            q->inos[i] = lstat(mon->path, &st) == 0 ? st.st_ino : 0;
            break;
        }
    dm_info("qmp: monitor '%s' on %s", mon->id, mon->path);
    return 0;
}

int dm_qmp_new(dm_loop *loop, rs_vm *vm, const dm_args *args, dm_qmp **out, char *why,
               size_t why_len)
{
    *out = NULL;
    dm_qmp *q = calloc(1, sizeof(*q));
    if (!q || !(q->cmds = qmp_commands_new(vm)) ||
        !(q->srv = qmp_server_new(qmp_commands_dispatch, q->cmds)) ||
        !(q->t_sync = dm_timer_new(loop, on_sync_timer, q))) {
        snprintf(why, why_len, "creating the QMP server: out of memory");
        dm_qmp_free(q);
        return -ENOMEM;
    }
    q->loop = loop;
    q->vm = vm;
    qmp_commands_set_server(q->cmds, q->srv);
    int r = rs_event_sink_add(vm, on_rs_event, q);
    if (r < 0) {
        snprintf(why, why_len, "registering the QMP event sink: %s", strerror(-r));
        dm_qmp_free(q);
        return r;
    }
    q->sink = true;
    for (unsigned i = 0; i < args->nmonitors; i++) {
        r = open_monitor(q, &args->monitors[i], why, why_len);
        if (r < 0) {
            dm_qmp_free(q);
            return r;
        }
    }
    sync_watches(q);
    *out = q;
    return 0;
}

void dm_qmp_free(dm_qmp *q)
{
    if (!q)
        return;
    if (q->sink)
        rs_event_sink_del(q->vm, on_rs_event, q);
    for (size_t i = 0; i < q->nt; i++)
        dm_watch_remove(q->t[i].w);
    if (q->t_sync)
        dm_timer_free(q->t_sync);
    qmp_server_free(q->srv);
    qmp_commands_free(q->cmds);
    /* QEMU removes its socket files on exit; a restricted dm inside a
     * chroot cannot reach them, and the toolstack removes them then.  A
     * file another dm has bound since (the next dm of the same domain,
     * started while this one still ran) is that dm's monitor. */
    struct stat st;
    for (size_t i = 0; i < DM_ARGS_MAX_MONITORS; i++) {
        if (!q->paths[i][0] || lstat(q->paths[i], &st) < 0)
            continue;
        if (st.st_ino != q->inos[i]) {
            dm_debug("qmp: %s is another process's socket now; left in place", q->paths[i]);
            continue;
        }
        if (unlink(q->paths[i]) < 0 && errno != ENOENT)
            dm_debug("qmp: removing %s: %s", q->paths[i], strerror(errno));
    }
    free(q->t);
    free(q->slot);
    free(q->pfds);
    free(q);
}

qmp_commands *dm_qmp_commands(dm_qmp *q)
{
    return q->cmds;
}

qmp_server *dm_qmp_server(dm_qmp *q)
{
    return q->srv;
}
