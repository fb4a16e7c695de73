/* xs_server.c: the xenstore daemon object — its control socket, the
 * in-process API, and persistence scheduling. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "xs_internal.h"
#include "xsim_log.h"

static const struct xs_quota default_guest = {
    .watches = 128,
    .transactions = 10,
    .trans_nodes = 1024,
    .queued_events = 1024,
    .queued_event_bytes = 1u << 20,
    .out_bytes = 256u << 10,
};

static const struct xs_quota default_dom0 = {
    .watches = 65536,
    .transactions = 1024,
    .trans_nodes = 0,
    .queued_events = 65536,
    .queued_event_bytes = 16u << 20,
    .out_bytes = 1u << 20,
};

static void fill_quota(struct xs_quota *q, const struct xs_quota *in, const struct xs_quota *def)
{
    *q = *def;
    if (!in)
        return;
    if (in->watches)
        q->watches = in->watches;
    if (in->transactions)
        q->transactions = in->transactions;
    if (in->trans_nodes)
        q->trans_nodes = in->trans_nodes;
    if (in->queued_events)
        q->queued_events = in->queued_events;
    if (in->queued_event_bytes)
        q->queued_event_bytes = in->queued_event_bytes;
    if (in->out_bytes)
        q->out_bytes = in->out_bytes;
}

static int mkdir_p(const char *path)
{
    char buf[400];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return errno;
    return 0;
}

int xs_listen_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        xsim_err("xenstored: socket path %s is longer than the %zu bytes a Unix socket allows",
                 path, sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        xsim_err("xenstored: socket(): %s", strerror(e));
        return -e;
    }
    struct stat stt;
    if (lstat(path, &stt) == 0) {
        if (!S_ISSOCK(stt.st_mode)) {
            xsim_err("xenstored: %s exists and is not a socket; not replacing it", path);
            close(fd);
            return -EEXIST;
        }
        /* A live daemon answers connect(); a stale file does not. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            close(fd);
            xsim_err("xenstored: %s is in use by a running daemon", path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        xsim_err("xenstored: cannot listen on %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

/* Domain sockets left by a run that did not exit cleanly: no domain is
 * introduced yet, so none of them can be live. */
static void remove_stale_domain_sockets(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISSOCK(st.st_mode)) {
            xsim_debug("xenstored: removing stale domain socket %s", p);
            unlink(p);
        }
    }
    closedir(d);
}

static void control_accept(struct xsim_loop *loop, int fd, short revents, void *arg)
{
    struct xs_server *srv = arg;
    (void)loop;
    (void)revents;
    /* Several per wake-up, bounded so one burst cannot starve others. */
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                xsim_warn("xenstored: accept on %s: %s", srv->sock_path, strerror(errno));
            return;
        }
        if (!xs_conn_new(srv, cfd, &xs_caller_dom0, NULL))
            close(cfd);
    }
}

static void save_timer(struct xsim_loop *loop, void *arg)
{
    struct xs_server *srv = arg;
    (void)loop;
    srv->save_timer = 0;
    xs_server_save(srv);
}

void xs_server_changed(struct xs_server *srv)
{
    if (srv->persist && !srv->save_timer)
        srv->save_timer = xsim_loop_add_timer(srv->loop, srv->save_delay_ms, save_timer, srv);
}

int xs_server_save(struct xs_server *srv)
{
    if (srv->save_timer) {
        xsim_loop_cancel_timer(srv->loop, srv->save_timer);
        srv->save_timer = 0;
    }
    return xs_persist_save(srv->store, srv->tree_path);
}

struct xs_server *xs_server_new(struct xsim_loop *loop, const struct xs_server_opts *o)
{
    if (!o || !o->rundir || !*o->rundir) {
        xsim_err("xenstored: no run directory given");
        return NULL;
    }
    struct xs_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        xsim_err("xenstored: out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->listen_fd = -1;
    srv->persist = o->persist;
    srv->save_delay_ms = o->save_delay_ms ? o->save_delay_ms : 1000;
    fill_quota(&srv->guest_quota, &o->guest, &default_guest);
    fill_quota(&srv->dom0_quota, &o->dom0, &default_dom0);
    if (snprintf(srv->rundir, sizeof(srv->rundir), "%s", o->rundir) >= (int)sizeof(srv->rundir)) {
        xsim_err("xenstored: run directory %s is too long", o->rundir);
        goto fail;
    }
    snprintf(srv->sock_path, sizeof(srv->sock_path), "%s/xenstored/socket", srv->rundir);
    snprintf(srv->tree_path, sizeof(srv->tree_path), "%s/xenstored/tree", srv->rundir);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/xenstored/domain", srv->rundir);
    int e = mkdir_p(dir);
    if (e) {
        xsim_err("xenstored: cannot create %s: %s", dir, strerror(e));
        goto fail;
    }
    srv->store = xs_store_new();
    if (!srv->store) {
        xsim_err("xenstored: out of memory creating the tree");
        goto fail;
    }
    if (srv->persist) {
        e = xs_persist_load(srv->store, srv->tree_path);
        if (e && e != ENOENT)
            goto fail;  /* reason logged */
        if (!e)
            xsim_info("xenstored: loaded %zu nodes from %s", xs_store_node_count(srv->store),
                      srv->tree_path);
    }
    /* xenstored's initial tree: /local/domain, /tool. */
    xs_store_mkdir(srv->store, &xs_caller_dom0, "/local/domain");
    xs_store_mkdir(srv->store, &xs_caller_dom0, "/tool");
    xs_store_set_change_hook(srv->store, xs_watch_on_change, srv);

    srv->listen_fd = xs_listen_unix(srv->sock_path);
    if (srv->listen_fd < 0)
        goto fail;
    remove_stale_domain_sockets(dir);
    int r = xsim_loop_add_fd(loop, srv->listen_fd, POLLIN, control_accept, srv);
    if (r < 0) {
        xsim_err("xenstored: cannot watch %s: %s", srv->sock_path, strerror(-r));
        goto fail;
    }
    xsim_info("xenstored: listening on %s%s", srv->sock_path,
              srv->persist ? " (tree persisted)" : "");
    return srv;
fail:
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        unlink(srv->sock_path);
    }
    xs_store_free(srv->store);
    free(srv);
    return NULL;
}

void xs_server_free(struct xs_server *srv)
{
    if (!srv)
        return;
    while (srv->conns)
        xs_conn_destroy(srv->conns);
    xs_domain_free_all(srv);
    if (srv->listen_fd >= 0) {
        xsim_loop_del_fd(srv->loop, srv->listen_fd);
        close(srv->listen_fd);
        unlink(srv->sock_path);
    }
    if (srv->persist)
        xs_server_save(srv);
    else if (srv->save_timer)
        xsim_loop_cancel_timer(srv->loop, srv->save_timer);
    xs_store_free(srv->store);
    free(srv);
}

struct xs_store *xs_server_store(struct xs_server *srv)
{
    return srv->store;
}

const char *xs_server_socket_path(const struct xs_server *srv)
{
    return srv->sock_path;
}

/* In-process API calls end like a request: send what they queued. */
static int finish(struct xs_server *srv, int e)
{
    xs_server_flush(srv);
    xs_server_reap(srv);
    return e;
}

int xs_server_write(struct xs_server *srv, const char *path, const void *val, size_t len)
{
    return finish(srv, xs_store_write(srv->store, &xs_caller_dom0, path, val, len));
}

int xs_server_write_str(struct xs_server *srv, const char *path, const char *val)
{
    return xs_server_write(srv, path, val, strlen(val));
}

int xs_server_write_perms(struct xs_server *srv, const char *path, const void *val, size_t len,
                          const struct xs_perm *perms, unsigned nperms)
{
    int e = xs_store_write(srv->store, &xs_caller_dom0, path, val, len);
    if (!e)
        e = xs_store_set_perms(srv->store, &xs_caller_dom0, path, perms, nperms);
    return finish(srv, e);
}

int xs_server_rm(struct xs_server *srv, const char *path)
{
    return finish(srv, xs_store_rm(srv->store, &xs_caller_dom0, path));
}

int xs_server_read(struct xs_server *srv, const char *path, char **val, size_t *len)
{
    return xs_store_read(srv->store, &xs_caller_dom0, path, val, len);
}

void xs_server_get_stats(const struct xs_server *srv, struct xs_server_stats *out)
{
    *out = srv->stats;
    out->connections = srv->nconns;
    out->domains = srv->ndomains;
}
