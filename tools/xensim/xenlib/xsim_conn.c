/*
 * The connection every library handle holds to the simulated hypervisor,
 * and its registration with libxentoolcore for xentoolcore_restrict_all().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "xsim_xenlib.h"

static int restrict_cb(xsim_toolcore_handle *tc, domid_t domid)
{
    struct xsim_conn *c = (struct xsim_conn *)((char *)tc -
                                               offsetof(struct xsim_conn, tc));
    /* libxencall (every xc_interface) is dup2'ed onto /dev/null by the real
     * libraries: the handle is dead afterwards.  The privcmd/evtchn handles
     * are restricted to the domid by the kernel; here the simulator does it. */
    if (c->kind == HV_CLIENT_CTRL)
        return xentoolcore__restrict_by_dup2_null(c->fd);
    return xsim_conn_restrict(c, domid);
}

void xsim_req_init(struct hv_req *q, uint32_t op, uint32_t domid)
{
    memset(q, 0, sizeof(*q));
    q->magic = HV_PROTO_MAGIC;
    q->op = op;
    q->domid = domid;
}

int xsim_conn_open(struct xsim_conn *c, uint32_t kind, const char *libname)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->kind = kind;
    c->restricted = -1;
    const char *rundir = getenv("XENSIM_RUNDIR");
    if (!rundir || !*rundir) {
        fprintf(stderr, "%s (xensim): XENSIM_RUNDIR is not set; it must name "
                "the run directory of `xensim run`\n", libname);
        errno = ENOENT;
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", rundir,
                         HV_SOCKET_NAME) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "%s (xensim): XENSIM_RUNDIR too long for a socket "
                "path: %s\n", libname, rundir);
        errno = ENAMETOOLONG;
        return -1;
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        fprintf(stderr, "%s (xensim): cannot reach the simulated hypervisor "
                "at %s: %s\n", libname, sa.sun_path, strerror(e));
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    pthread_mutex_init(&c->lock, NULL);
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_HELLO, 0);
    q.a32[0] = kind;
    if (xsim_call(c, &q, &r, NULL, 0, NULL) < 0) {
        int e = errno;
        fprintf(stderr, "%s (xensim): hello to %s failed: %s\n", libname,
                sa.sun_path, strerror(e));
        close(c->fd);
        pthread_mutex_destroy(&c->lock);
        c->fd = -1;
        errno = e;
        return -1;
    }
    c->tc.restrict_callback = restrict_cb;
    xentoolcore__register_active_handle(&c->tc);
    return 0;
}

void xsim_conn_close(struct xsim_conn *c)
{
    if (c->fd < 0)
        return;
    xentoolcore__deregister_active_handle(&c->tc);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_destroy(&c->lock);
}

int xsim_call(struct xsim_conn *c, struct hv_req *q, struct hv_rsp *r,
              int *fds, unsigned int maxfds, void **payload)
{
    int got[4];
    unsigned int ngot = 0;
    if (payload)
        *payload = NULL;
    q->magic = HV_PROTO_MAGIC;
    pthread_mutex_lock(&c->lock);
    int rc = hv_proto_send(c->fd, q, sizeof(*q), NULL, 0);
    if (rc == 0)
        rc = hv_proto_recv(c->fd, r, sizeof(*r), got, 4, &ngot);
    void *buf = NULL;
    if (rc == 0 && r->magic != HV_PROTO_MAGIC)
        rc = -EPROTO;
    if (rc == 0 && r->len) {
        if (r->len > HV_MAX_PAYLOAD) {
            rc = -EPROTO;
        } else if (!(buf = malloc(r->len))) {
            rc = -ENOMEM;
        } else {
            rc = hv_proto_recv(c->fd, buf, r->len, NULL, 0, NULL);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (rc == 0 && r->err)
        rc = -r->err;
    if (rc == 0 && ngot < (maxfds < r->nfds ? maxfds : r->nfds))
        rc = -EPROTO;
    for (unsigned int i = 0; i < ngot; i++) {
        if (rc == 0 && i < maxfds)
            fds[i] = got[i];
        else
            close(got[i]);
    }
    if (rc) {
        free(buf);
        /* A dead (restricted xenctrl) handle reads EOF or ENOTSOCK. */
        errno = rc == -ENOTSOCK || rc == -ECONNRESET ? EBADF : -rc;
        return -1;
    }
    if (payload)
        *payload = buf;
    else
        free(buf);
    return 0;
}

int xsim_conn_restrict(struct xsim_conn *c, uint32_t domid)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_RESTRICT, domid);
    if (xsim_call(c, &q, &r, NULL, 0, NULL) < 0)
        return -1;
    c->restricted = (int32_t)domid;
    return 0;
}
