/*
 * The hypervisor's control socket: where the Xen library calls of device
 * models (tools/xensim/xenlib/) and the xensim CLI arrive (protocol in
 * hv_proto.h).  One thread polls the listening socket and every connection;
 * each request is handled to completion (none blocks), so a slow client
 * cannot hold up the others beyond its own message.  Partial messages are
 * buffered per connection; answers are sent without blocking, and a client
 * whose socket buffer is full (it stopped reading) is disconnected.
 *
 * A connection remembers the domid it was restricted to
 * (xentoolcore_restrict_all on the library side); every request for another
 * domain then fails with EPERM, which is what IOCTL_PRIVCMD_RESTRICT and
 * IOCTL_EVTCHN_RESTRICT_DOMID do in Linux.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv_internal.h"
#include "hv_proto.h"
#include "hv_server.h"
#include "guest_ctl.h"

#include <xen/memory.h>
#include <xen/hvm/dm_op.h>

struct conn {
    int fd;
    uint64_t id;
    uint32_t kind;
    int32_t restrict_domid;
    struct hv_evtchn_client *evc;
    struct hv_req buf;
    size_t have;
    char *text;                     /* HV_OP_GUEST: the text after the request */
    size_t text_len, text_have;
    bool close;
    uint64_t requests;
};

static struct {
    pthread_mutex_t lock;           /* start/stop only */
    bool running;
    pthread_t thread;
    int listen_fd, wake_fd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct conn **conns;
    unsigned int nconns;
    uint64_t next_id;
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER, .listen_fd = -1, .wake_fd = -1 };

static void conn_free(struct conn *c)
{
    if (c->evc) {
        pthread_mutex_lock(&hv_lock);
        hv_evtchn_client_free(c->evc);
        pthread_mutex_unlock(&hv_lock);
    }
    close(c->fd);
    free(c->text);
    free(c);
}

static bool restricted_out(const struct conn *c, uint32_t domid)
{
    return c->restrict_domid >= 0 && (uint32_t)c->restrict_domid != domid;
}

static void fill_wire_info(const struct hv_domain_info *i,
                           struct hv_wire_dominfo *w)
{
    memset(w, 0, sizeof(*w));
    w->domid = i->domid;
    w->nr_vcpus = i->nr_vcpus;
    w->mem_bytes = i->mem_bytes;
    w->pause_count = i->pause_count;
    w->paused = i->paused;
    w->shutting_down = i->shutting_down;
    w->shut_down = i->shut_down;
    w->dying = i->dying;
    w->crashed = i->crashed;
    w->logdirty = i->logdirty;
    w->shutdown_reason = i->shutdown_reason;
    w->nr_servers = i->nr_servers;
    w->nr_enabled_servers = i->nr_enabled_servers;
    w->vcpus_pending = i->vcpus_pending;
    w->null_reads = i->null_reads;
    w->null_writes = i->null_writes;
    w->null_hits_registered = hv_null_hits_total(i->domid);
    w->ioreqs_sent = i->ioreqs_sent;
    w->resumes = i->resumes;
    w->suspend_cancels = i->suspend_cancels;
    memcpy(w->name, i->name, sizeof(w->name));
}

/* The server-side ops on a domain's ioreq servers take the lock here. */
#define WITH_DOMAIN(domid, expr)                                       \
    do {                                                               \
        pthread_mutex_lock(&hv_lock);                                  \
        struct hv_domain *d_ = hv_domain_find(domid);                  \
        rc = d_ ? (expr) : -ESRCH;                                     \
        pthread_mutex_unlock(&hv_lock);                                \
    } while (0)

static const char *kind_name(uint32_t k)
{
    switch (k) {
    case HV_CLIENT_CLI: return "cli";
    case HV_CLIENT_DEVICEMODEL: return "devicemodel";
    case HV_CLIENT_FOREIGNMEMORY: return "foreignmemory";
    case HV_CLIENT_EVTCHN: return "evtchn";
    case HV_CLIENT_CTRL: return "xenctrl";
    default: return "?";
    }
}

/* Handle one request; fills rsp, fds and payload (malloc'd). */
static void handle(struct conn *c, const struct hv_req *q, struct hv_rsp *r,
                   int *fds, unsigned int *nfds, void **payload)
{
    int rc = 0;
    uint32_t domid = q->domid;
    *nfds = 0;
    *payload = NULL;

    switch (q->op) {
    case HV_OP_HELLO:
    case HV_OP_RESTRICT:
    case HV_OP_EVTCHN_SETUP:
    case HV_OP_EVTCHN_UNBIND:
        break;
    case HV_OP_DOMAIN_CREATE:
    case HV_OP_DOMAIN_LIST:
    case HV_OP_CONN_LIST:
    case HV_OP_FAULT:
    case HV_OP_GUEST:
        if (c->restrict_domid >= 0) {
            r->err = EPERM;
            return;
        }
        break;
    default:
        if (restricted_out(c, domid)) {
            r->err = EPERM;
            return;
        }
    }

    switch (q->op) {
    case HV_OP_HELLO:
        c->kind = q->a32[0];
        break;
    case HV_OP_RESTRICT:
        /* Linux refuses to change an existing restriction. */
        if (c->restrict_domid >= 0 && (uint32_t)c->restrict_domid != domid)
            rc = -EPERM;
        else if (domid >= HV_MAX_DOMID)
            rc = -EINVAL;
        else
            c->restrict_domid = (int32_t)domid;
        if (rc == 0 && c->evc) {
            pthread_mutex_lock(&hv_lock);
            c->evc->restrict_domid = (int32_t)domid;
            pthread_mutex_unlock(&hv_lock);
        }
        break;
    case HV_OP_DOMAIN_CREATE: {
        char name[sizeof(q->name) + 1];
        memcpy(name, q->name, sizeof(q->name));
        name[sizeof(q->name)] = 0;
        rc = hv_domain_create(domid, q->a32[0], q->a32[1],
                              name[0] ? name : NULL);
        if (rc > 0) {
            r->u32[0] = (uint32_t)rc;
            rc = 0;
        }
        break;
    }
    case HV_OP_DOMAIN_DESTROY:
        rc = hv_domain_destroy(domid);
        break;
    case HV_OP_DOMAIN_PAUSE:
        rc = hv_domain_pause(domid);
        break;
    case HV_OP_DOMAIN_UNPAUSE:
        rc = hv_domain_unpause(domid);
        break;
    case HV_OP_DOMAIN_SHUTDOWN:
        rc = hv_domain_shutdown(domid, q->a32[0]);
        break;
    case HV_OP_DOMAIN_RESUME:
        rc = hv_domain_resume(domid, q->a32[0] != 0);
        break;
    case HV_OP_GUEST_WRITE:
        rc = q->a32[0] > sizeof(q->name) ? -EINVAL
                                         : hv_guest_write(domid, q->a64[0], q->name, q->a32[0]);
        break;
    case HV_OP_DOMAIN_INFO: {
        struct hv_domain_info i;
        rc = hv_domain_info(domid, &i);
        if (rc == 0) {
            struct hv_wire_dominfo *w = malloc(sizeof(*w));
            if (!w) {
                rc = -ENOMEM;
                break;
            }
            fill_wire_info(&i, w);
            *payload = w;
            r->len = sizeof(*w);
        }
        break;
    }
    case HV_OP_DOMAIN_LIST: {
        uint32_t ids[HV_MAX_DOMAINS];
        int n = hv_domain_list(ids, (int)HV_MAX_DOMAINS);
        uint32_t max = q->a32[0] ? q->a32[0] : HV_MAX_DOMAINS;
        struct hv_wire_dominfo *w = calloc(HV_MAX_DOMAINS, sizeof(*w));
        if (!w) {
            rc = -ENOMEM;
            break;
        }
        uint32_t k = 0;
        for (int i = 0; i < n && k < max; i++) {
            struct hv_domain_info inf;
            if (ids[i] < domid || hv_domain_info(ids[i], &inf))
                continue;
            fill_wire_info(&inf, &w[k++]);
        }
        *payload = w;
        r->len = k * (uint32_t)sizeof(*w);
        break;
    }
    case HV_OP_NR_VCPUS: {
        struct hv_domain_info i;
        rc = hv_domain_info(domid, &i);
        r->u32[0] = i.nr_vcpus;
        break;
    }
    case HV_OP_SERVER_CREATE: {
        unsigned int id = 0;
        WITH_DOMAIN(domid, hv_ioreq_create(d_, (int)q->a32[0], c->id, &id));
        r->u32[0] = id;
        break;
    }
    case HV_OP_SERVER_INFO: {
        uint32_t port = 0;
        WITH_DOMAIN(domid, hv_ioreq_get_info(d_, q->id, &port));
        r->u32[0] = port;
        break;
    }
    case HV_OP_SERVER_MAP:
        WITH_DOMAIN(domid, hv_ioreq_map_range(d_, q->id, q->a32[1] != 0,
                                              q->a32[0], q->a64[0], q->a64[1]));
        break;
    case HV_OP_SERVER_STATE:
        WITH_DOMAIN(domid, hv_ioreq_set_state(d_, q->id, q->a32[0] != 0));
        break;
    case HV_OP_SERVER_DESTROY: {
        bool shut_down = false;
        WITH_DOMAIN(domid, hv_ioreq_destroy(d_, q->id, &shut_down));
        if (shut_down)
            hv_domain_fire_hook(domid, HV_DOM_SHUTDOWN);
        break;
    }
    case HV_OP_MAP_RESOURCE: {
        if (q->a32[0] != XENMEM_resource_ioreq_server) {
            rc = -EOPNOTSUPP;
            break;
        }
        int fd = -1;
        pthread_mutex_lock(&hv_lock);
        struct hv_domain *d = hv_domain_find(domid);
        rc = d ? hv_ioreq_resource(d, q->id, q->a64[0], q->a64[1], &fd)
               : -ESRCH;
        if (rc == 0) {
            /* dup under the lock: the server may be destroyed right after */
            fds[0] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (fds[0] < 0)
                rc = -errno;
            else
                *nfds = 1;
        }
        pthread_mutex_unlock(&hv_lock);
        break;
    }
    case HV_OP_GET_RAM: {
        uint64_t size = 0;
        pthread_mutex_lock(&hv_lock);
        struct hv_domain *d = hv_domain_find(domid);
        if (d) {
            size = d->mem_bytes;
            fds[0] = fcntl(d->ram_fd, F_DUPFD_CLOEXEC, 0);
            rc = fds[0] < 0 ? -errno : 0;
            if (rc == 0)
                *nfds = 1;
        } else {
            rc = -ESRCH;
        }
        pthread_mutex_unlock(&hv_lock);
        r->u64[0] = size;
        break;
    }
    case HV_OP_ISA_IRQ:
        rc = hv_set_isa_irq_level(domid, q->a32[0], q->a32[1]);
        break;
    case HV_OP_PCI_INTX:
        rc = hv_set_pci_intx_level(domid, q->a32[0], q->a32[1], q->a32[2],
                                   q->a32[3], (unsigned int)q->a64[0]);
        break;
    case HV_OP_LINK_ROUTE:
        rc = hv_set_pci_link_route(domid, q->a32[0], q->a32[1]);
        break;
    case HV_OP_MSI:
        rc = hv_inject_msi(domid, q->a64[0], q->a32[0]);
        break;
    case HV_OP_MODIFIED_MEMORY:
        rc = hv_modified_memory(domid, q->a64[0], q->a64[1]);
        break;
    case HV_OP_SET_MEM_TYPE: {
        /* Accepted and range-checked; xensim has no p2m types. */
        struct hv_domain_info i;
        rc = hv_domain_info(domid, &i);
        if (rc == 0 && (q->a64[0] > i.mem_bytes / HV_PAGE_SIZE ||
                        q->a64[1] > i.mem_bytes / HV_PAGE_SIZE - q->a64[0]))
            rc = -EINVAL;
        break;
    }
    case HV_OP_HVM_PARAM_SET:
        rc = hv_hvm_param_set(domid, q->a32[0], q->a64[0]);
        break;
    case HV_OP_HVM_PARAM_GET:
        rc = hv_hvm_param_get(domid, q->a32[0], &r->u64[0]);
        break;
    case HV_OP_EVTCHN_SETUP:
        if (!c->evc) {
            pthread_mutex_lock(&hv_lock);
            c->evc = hv_evtchn_client_new();
            if (c->evc)
                c->evc->restrict_domid = c->restrict_domid;
            pthread_mutex_unlock(&hv_lock);
        }
        if (!c->evc) {
            rc = -ENOMEM;
            break;
        }
        fds[0] = c->evc->efd;       /* sendmsg duplicates them */
        fds[1] = c->evc->shm_fd;
        *nfds = 2;
        break;
    case HV_OP_EVTCHN_BIND: {
        if (!c->evc) {
            rc = -EBADF;
            break;
        }
        int efd = -1;
        pthread_mutex_lock(&hv_lock);
        rc = hv_evtchn_bind(c->evc, domid, q->a32[0], &efd);
        if (rc > 0) {
            r->u32[0] = (uint32_t)rc;
            rc = 0;
            fds[0] = fcntl(efd, F_DUPFD_CLOEXEC, 0);
            if (fds[0] < 0) {
                rc = -errno;
                hv_evtchn_unbind(c->evc, r->u32[0]);
            } else {
                *nfds = 1;
            }
        }
        pthread_mutex_unlock(&hv_lock);
        break;
    }
    case HV_OP_EVTCHN_UNBIND:
        if (!c->evc) {
            rc = -EBADF;
            break;
        }
        pthread_mutex_lock(&hv_lock);
        rc = hv_evtchn_unbind(c->evc, q->a32[0]);
        pthread_mutex_unlock(&hv_lock);
        break;
    case HV_OP_LOGDIRTY:
        if (q->a32[0] <= 1) {
            rc = hv_logdirty_enable(domid, q->a32[0] == 1);
        } else {
            struct hv_domain_info i;
            rc = hv_domain_info(domid, &i);
            if (rc)
                break;
            uint64_t bits = i.mem_bytes / HV_PAGE_SIZE;
            size_t bytes = (bits + 63) / 64 * 8;
            unsigned long *bm = calloc(1, bytes);
            if (!bm) {
                rc = -ENOMEM;
                break;
            }
            long n = hv_logdirty_peek_clean(domid, bm, bits);
            if (n < 0) {
                free(bm);
                rc = (int)n;
                break;
            }
            r->u64[0] = (uint64_t)n;
            *payload = bm;
            r->len = (uint32_t)bytes;
        }
        break;
    case HV_OP_FAULT:
        switch (q->a32[0]) {
        case HV_FAULT_STALL_VCPU:
        case HV_FAULT_UNSTALL_VCPU:
            rc = hv_fault_stall_vcpu(domid, q->a32[1],
                                     q->a32[0] == HV_FAULT_STALL_VCPU);
            break;
        case HV_FAULT_DROP_EVENTS:
            rc = hv_fault_drop_events(domid, q->a32[1], q->a32[2]);
            break;
        case HV_FAULT_CLOSE_CONN: {
            rc = -ENOENT;
            for (unsigned int i = 0; i < srv.nconns; i++)
                if (srv.conns[i]->id == q->a64[0]) {
                    srv.conns[i]->close = true;
                    hv_log("fault: closing connection %llu (%s)",
                           (unsigned long long)q->a64[0],
                           kind_name(srv.conns[i]->kind));
                    rc = 0;
                }
            break;
        }
        default:
            rc = -EINVAL;
        }
        break;
    case HV_OP_CONN_LIST: {
        size_t cap = 64 + (size_t)srv.nconns * 96, len = 0;
        char *t = malloc(cap);
        if (!t) {
            rc = -ENOMEM;
            break;
        }
        for (unsigned int i = 0; i < srv.nconns; i++) {
            struct conn *k = srv.conns[i];
            int n = snprintf(t + len, cap - len, "%llu %s %s%d %llu\n",
                             (unsigned long long)k->id, kind_name(k->kind),
                             k->restrict_domid >= 0 ? "restricted:" : "",
                             k->restrict_domid >= 0 ? k->restrict_domid : -1,
                             (unsigned long long)k->requests);
            if (n > 0 && (size_t)n < cap - len)
                len += (size_t)n;
        }
        *payload = t;
        r->len = (uint32_t)len;
        break;
    }
    case HV_OP_NULL_HITS: {
        int n = hv_null_hits(domid, NULL, 0);
        if (n < 0) {
            rc = n;
            break;
        }
        struct hv_null_hits *h = calloc((size_t)n + 1, sizeof(*h));
        struct hv_wire_hits *w = calloc((size_t)n + 1, sizeof(*w));
        if (!h || !w) {
            free(h);
            free(w);
            rc = -ENOMEM;
            break;
        }
        n = hv_null_hits(domid, h, n);
        for (int i = 0; i < n; i++)
            w[i] = (struct hv_wire_hits){ h[i].server, h[i].type, h[i].start,
                                          h[i].end, h[i].hits };
        free(h);
        *payload = w;
        r->len = (uint32_t)((size_t)(n > 0 ? n : 0) * sizeof(*w));
        break;
    }
    default:
        rc = -ENOSYS;
    }
    r->err = rc < 0 ? -rc : 0;
}

/* The text that follows an HV_OP_GUEST request; true once all is here. */
static bool collect_text(struct conn *c)
{
    if (c->text_have < c->text_len) {
        ssize_t n = recv(c->fd, c->text + c->text_have, c->text_len - c->text_have,
                         MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            c->close = true;
        if (n > 0)
            c->text_have += (size_t)n;
    }
    if (c->text_have < c->text_len)
        return false;
    c->text[c->text_len] = '\0';
    return true;
}

/* HV_OP_GUEST: the guest-workload commands (guest_ctl.c). */
static void serve_guest(struct conn *c)
{
    struct hv_rsp r;
    memset(&r, 0, sizeof(r));
    r.magic = HV_PROTO_MAGIC;
    void *payload = NULL;
    int deferred = 0;
    if (c->restrict_domid >= 0)
        r.err = EPERM;
    else
        deferred = guest_ctl_handle(c->fd, &c->buf, c->text ? c->text : "", c->text_len, &r,
                                    &payload);
    free(c->text);
    c->text = NULL;
    c->text_len = c->text_have = 0;
    if (deferred)
        return;
    int rc = hv_proto_send(c->fd, &r, sizeof(r), NULL, 0);
    if (rc == 0 && r.len)
        rc = hv_proto_send(c->fd, payload, r.len, NULL, 0);
    free(payload);
    if (rc)
        c->close = true;
}

static void serve(struct conn *c)
{
    if (c->text) {
        if (collect_text(c))
            serve_guest(c);
        return;
    }
    ssize_t n = recv(c->fd, (char *)&c->buf + c->have, sizeof(c->buf) - c->have,
                     MSG_DONTWAIT);
    if (n == 0) {
        c->close = true;
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            c->close = true;
        return;
    }
    c->have += (size_t)n;
    if (c->have < sizeof(c->buf))
        return;
    c->have = 0;
    c->requests++;
    if (c->buf.magic == HV_PROTO_MAGIC && c->buf.op == HV_OP_GUEST) {
        if (c->buf.a64[3] > HV_GUEST_MAX_TEXT) {
            hv_log("connection %llu: guest request with %llu bytes of text; closing",
                   (unsigned long long)c->id, (unsigned long long)c->buf.a64[3]);
            c->close = true;
            return;
        }
        c->text_len = c->buf.a64[3];
        c->text_have = 0;
        c->text = malloc(c->text_len + 1);
        if (!c->text) {
            c->close = true;
            return;
        }
        if (collect_text(c))
            serve_guest(c);
        return;
    }

    struct hv_rsp r;
    memset(&r, 0, sizeof(r));
    r.magic = HV_PROTO_MAGIC;
    int fds[4];
    unsigned int nfds = 0;
    void *payload = NULL;
    if (c->buf.magic != HV_PROTO_MAGIC || c->buf.op == 0 ||
        c->buf.op >= HV_OP_MAX) {
        hv_log("connection %llu: bad request (magic %#x op %u); closing",
               (unsigned long long)c->id, c->buf.magic, c->buf.op);
        c->close = true;
        return;
    }
    handle(c, &c->buf, &r, fds, &nfds, &payload);
    r.nfds = nfds;
    int rc = hv_proto_send(c->fd, &r, sizeof(r), fds, nfds);
    if (rc == 0 && r.len)
        rc = hv_proto_send(c->fd, payload, r.len, NULL, 0);
    /* fds we dup'ed are ours to close; evtchn setup lends its own */
    if (c->buf.op != HV_OP_EVTCHN_SETUP)
        for (unsigned int i = 0; i < nfds; i++)
            close(fds[i]);
    free(payload);
    if (rc == -EAGAIN)
        hv_log("connection %llu does not read its answers; closing",
               (unsigned long long)c->id);
    if (rc)
        c->close = true;
}

static void accept_one(void)
{
    /* Non-blocking: a client that stops reading its answers must not stall
     * the thread every other client depends on (see serve()). */
    int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    struct conn **nc = realloc(srv.conns, (srv.nconns + 1) * sizeof(*nc));
    if (!c || !nc) {
        free(c);
        if (nc)
            srv.conns = nc;
        close(fd);
        hv_log("control socket: out of memory for a connection");
        return;
    }
    srv.conns = nc;
    c->fd = fd;
    c->id = ++srv.next_id;
    c->restrict_domid = -1;
    srv.conns[srv.nconns++] = c;
}

static void *server_main(void *arg)
{
    (void)arg;
    struct pollfd *p = NULL;
    for (;;) {
        struct pollfd *np = realloc(p, (srv.nconns + 2) * sizeof(*np));
        if (!np) {
            hv_log("control socket: out of memory; stopping");
            break;
        }
        p = np;
        p[0] = (struct pollfd){ .fd = srv.wake_fd, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = srv.listen_fd, .events = POLLIN };
        for (unsigned int i = 0; i < srv.nconns; i++)
            p[i + 2] = (struct pollfd){ .fd = srv.conns[i]->fd, .events = POLLIN };
        unsigned int n = srv.nconns;
        if (poll(p, n + 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            hv_log("control socket: poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents)
            break;
        for (unsigned int i = 0; i < n; i++)
            if (p[i + 2].revents)
                serve(srv.conns[i]);
        /* drop closed connections (their evtchn bindings go with them) */
        unsigned int k = 0;
        for (unsigned int i = 0; i < srv.nconns; i++) {
            if (srv.conns[i]->close)
                conn_free(srv.conns[i]);
            else
                srv.conns[k++] = srv.conns[i];
        }
        srv.nconns = k;
        if (p[1].revents)
            accept_one();
    }
    free(p);
    return NULL;
}

int hv_server_start(const char *rundir)
{
    pthread_mutex_lock(&srv.lock);
    if (srv.running) {
        pthread_mutex_unlock(&srv.lock);
        return -EALREADY;
    }
    char dir[sizeof(srv.path)];
    int rc = 0;
    if ((size_t)snprintf(dir, sizeof(dir), "%s/hv", rundir) >= sizeof(dir) ||
        (size_t)snprintf(srv.path, sizeof(srv.path), "%s/%s", rundir,
                         HV_SOCKET_NAME) >= sizeof(srv.path)) {
        hv_log("run directory path too long for a socket: %s", rundir);
        pthread_mutex_unlock(&srv.lock);
        return -ENAMETOOLONG;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        hv_log("cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    unlink(srv.path);
    srv.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, srv.path, strlen(srv.path) + 1);
    if (srv.listen_fd < 0 ||
        bind(srv.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(srv.listen_fd, 64) < 0) {
        rc = -errno;
        hv_log("control socket %s: %s", srv.path, strerror(errno));
        goto fail;
    }
    srv.wake_fd = eventfd(0, EFD_CLOEXEC);
    if (srv.wake_fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = -pthread_create(&srv.thread, NULL, server_main, NULL);
    if (rc) {
        hv_log("control socket thread: %s", strerror(-rc));
        goto fail;
    }
    srv.running = true;
    pthread_mutex_unlock(&srv.lock);
    return 0;
fail:
    if (srv.listen_fd >= 0)
        close(srv.listen_fd);
    if (srv.wake_fd >= 0)
        close(srv.wake_fd);
    srv.listen_fd = srv.wake_fd = -1;
    pthread_mutex_unlock(&srv.lock);
    return rc;
}

void hv_server_stop(void)
{
    pthread_mutex_lock(&srv.lock);
    if (!srv.running) {
        pthread_mutex_unlock(&srv.lock);
        return;
    }
    uint64_t one = 1;
    if (write(srv.wake_fd, &one, sizeof(one)) < 0)
        hv_log("control socket stop: %s", strerror(errno));
    pthread_join(srv.thread, NULL);
    for (unsigned int i = 0; i < srv.nconns; i++)
        conn_free(srv.conns[i]);
    free(srv.conns);
    srv.conns = NULL;
    srv.nconns = 0;
    close(srv.listen_fd);
    close(srv.wake_fd);
    unlink(srv.path);
    srv.listen_fd = srv.wake_fd = -1;
    srv.running = false;
    pthread_mutex_unlock(&srv.lock);
}
