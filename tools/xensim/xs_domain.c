/* xs_domain.c: introduced domains and their sockets.
 *
 * Xen's xenstored talks to a guest through a shared ring; here each
 * introduced domain gets a Unix socket <rundir>/xenstored/domain/<domid>
 * whose connections are that unprivileged domain, so tests and simulated
 * guests can act as it.  Unlike xenstored, introducing a domain also
 * builds its /local/domain/<domid> tree (libxl's layout and permissions)
 * and releasing it removes the tree: there is no toolstack yet to do it. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xs_internal.h"
#include "xsim_log.h"



struct xs_domain *xs_domain_find(const struct xs_server *srv, unsigned domid)
{
    for (struct xs_domain *d = srv->domains; d; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

bool xs_server_is_introduced(const struct xs_server *srv, unsigned domid)
{
    return xs_domain_find(srv, domid) != NULL;
}

bool xs_server_domain_socket_path(const struct xs_server *srv, unsigned domid, char *buf,
                                  size_t size)
{
    int n = snprintf(buf, size, "%s/xenstored/domain/%u", srv->rundir, domid);
    return n > 0 && (size_t)n < size;
}

struct xs_caller xs_server_caller_for(const struct xs_server *srv, unsigned domid)
{
    struct xs_caller c = { .domid = domid, .privileged = domid == 0 };
    struct xs_domain *d = xs_domain_find(srv, domid);
    if (d && d->has_target) {
        c.has_target = true;
        c.target = d->target;
    }
    return c;
}

static void domain_accept(struct xsim_loop *loop, int fd, short revents, void *arg)
{
    struct xs_domain *d = arg;
    struct xs_server *srv = d->srv;
    (void)loop;
    (void)revents;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            xsim_warn("xenstored: accept on %s: %s", d->sock_path, strerror(errno));
        return;
    }
    /* Quotas are per connection; capping a domain's connections keeps
     * its total bounded too (Xen's domain has exactly one ring). */
    unsigned n = 0;
    for (struct xs_conn *c = srv->conns; c; c = c->next)
        if (c->dom == d && !c->dead)
            n++;
    if (n >= XS_DOMAIN_MAX_CONNS) {
        xsim_warn("xenstored: domain %u already has %u connections; refusing another",
                  d->domid, n);
        close(cfd);
        return;
    }
    struct xs_caller c = xs_server_caller_for(srv, d->domid);
    if (!xs_conn_new(srv, cfd, &c, d))
        close(cfd);
}

/* libxl's layout: the home is readable by the guest, a few
 * subdirectories are the guest's own (libxl__domain_make). */
static int build_home(struct xs_server *srv, unsigned domid)
{
    char home[64], path[128], val[16];
    snprintf(home, sizeof(home), "/local/domain/%u", domid);
    const struct xs_perm ro[2] = { { 0, XS_PERM_NONE }, { domid, XS_PERM_READ } };
    const struct xs_perm rw[1] = { { domid, XS_PERM_NONE } };
    static const struct {
        const char *rel;
        bool guest_owned;
    } nodes[] = {
        { "", false },          { "control", false }, { "control/shutdown", true },
        { "device", false },    { "memory", false },  { "data", true },
        { "drivers", true },    { "feature", true },  { "attr", true },
        { "error", true },
    };
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        snprintf(path, sizeof(path), "%s%s%s", home, *nodes[i].rel ? "/" : "", nodes[i].rel);
        if (xs_store_exists(srv->store, path))
            continue;
        int e = nodes[i].guest_owned ? xs_server_write_perms(srv, path, "", 0, rw, 1)
                                     : xs_server_write_perms(srv, path, "", 0, ro, 2);
        if (e)
            return e;
    }
    snprintf(path, sizeof(path), "%s/domid", home);
    if (!xs_store_exists(srv->store, path)) {
        int l = snprintf(val, sizeof(val), "%u", domid);
        int e = xs_server_write_perms(srv, path, val, (size_t)l, ro, 2);
        if (e)
            return e;
    }
    return 0;
}

int xs_server_introduce(struct xs_server *srv, unsigned domid)
{
    if (domid == 0 || domid >= 0x7ff0u)
        return EINVAL;
    if (xs_domain_find(srv, domid))
        return 0;  /* xenstored: re-introduction only re-binds the ring */
    struct xs_domain *d = calloc(1, sizeof(*d));
    if (!d)
        return ENOMEM;
    d->srv = srv;
    d->domid = domid;
    if (!xs_server_domain_socket_path(srv, domid, d->sock_path, sizeof(d->sock_path))) {
        free(d);
        return ENAMETOOLONG;
    }
    int e = build_home(srv, domid);
    if (e) {
        xsim_err("xenstored: introducing domain %u: building /local/domain/%u failed: %s",
                 domid, domid, strerror(e));
        free(d);
        return e;
    }
    d->listen_fd = xs_listen_unix(d->sock_path);
    if (d->listen_fd < 0) {
        e = -d->listen_fd;
        free(d);
        return e == ENAMETOOLONG ? EINVAL : EIO;
    }
    int r = xsim_loop_add_fd(srv->loop, d->listen_fd, POLLIN, domain_accept, d);
    if (r < 0) {
        xsim_err("xenstored: cannot watch %s: %s", d->sock_path, strerror(-r));
        close(d->listen_fd);
        unlink(d->sock_path);
        free(d);
        return EIO;
    }
    d->next = srv->domains;
    srv->domains = d;
    srv->ndomains++;
    xsim_info("xenstored: domain %u introduced (socket %s)", domid, d->sock_path);
    xs_watch_fire_special(srv, "@introduceDomain");
    xs_server_flush(srv);
    return 0;
}

static void domain_close(struct xs_server *srv, struct xs_domain *d)
{
    for (struct xs_conn *c = srv->conns; c; c = c->next)
        if (c->dom == d) {
            xs_conn_kill(c, "domain released");
            c->dom = NULL;
        }
    xsim_loop_del_fd(srv->loop, d->listen_fd);
    close(d->listen_fd);
    unlink(d->sock_path);
    free(d);
}

int xs_server_release(struct xs_server *srv, unsigned domid)
{
    struct xs_domain **pp = &srv->domains;
    while (*pp && (*pp)->domid != domid)
        pp = &(*pp)->next;
    if (!*pp)
        return ENOENT;
    struct xs_domain *d = *pp;
    *pp = d->next;
    srv->ndomains--;
    /* Domains that targeted it lose those rights. */
    for (struct xs_domain *o = srv->domains; o; o = o->next)
        if (o->has_target && o->target == domid)
            o->has_target = false;
    for (struct xs_conn *c = srv->conns; c; c = c->next)
        if (c->caller.has_target && c->caller.target == domid)
            c->caller.has_target = false;
    domain_close(srv, d);
    char home[64];
    snprintf(home, sizeof(home), "/local/domain/%u", domid);
    int e = xs_store_rm(srv->store, &xs_caller_dom0, home);
    if (e && e != ENOENT)
        xsim_warn("xenstored: releasing domain %u: removing %s failed: %s", domid, home,
                  strerror(e));
    xsim_info("xenstored: domain %u released", domid);
    xs_watch_fire_special(srv, "@releaseDomain");
    xs_server_flush(srv);
    return 0;
}

int xs_server_domain_shutdown(struct xs_server *srv, unsigned domid)
{
    struct xs_domain *d = xs_domain_find(srv, domid);
    if (!d)
        return ENOENT;
    /* Once per shutdown, until RESUME re-arms it (xenstored's rule). */
    if (!d->shutdown) {
        d->shutdown = true;
        xs_watch_fire_special(srv, "@releaseDomain");
        xs_server_flush(srv);
    }
    return 0;
}

int xs_domain_resume(struct xs_server *srv, unsigned domid)
{
    struct xs_domain *d = xs_domain_find(srv, domid);
    if (!d)
        return ENOENT;
    d->shutdown = false;
    return 0;
}

int xs_server_set_target(struct xs_server *srv, unsigned domid, unsigned target)
{
    struct xs_domain *d = xs_domain_find(srv, domid);
    if (!d || !xs_domain_find(srv, target))
        return ENOENT;
    d->has_target = true;
    d->target = target;
    for (struct xs_conn *c = srv->conns; c; c = c->next)
        if (c->dom == d) {
            c->caller.has_target = true;
            c->caller.target = target;
        }
    return 0;
}

void xs_domain_free_all(struct xs_server *srv)
{
    while (srv->domains) {
        struct xs_domain *d = srv->domains;
        srv->domains = d->next;
        domain_close(srv, d);
    }
    srv->ndomains = 0;
}
