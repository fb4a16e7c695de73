/*
 * libxenevtchn on xensim.  The handle owns one eventfd (xenevtchn_fd) and a
 * page shared with the simulator holding, per local port, a pending byte
 * and a mask byte (hv_proto.h).  Xen's side sets pending and, if the port is
 * unmasked, writes the eventfd; xenevtchn_pending() then returns one port
 * and masks it, like the Linux evtchn driver.  xenevtchn_notify() writes the
 * eventfd of the remote port directly: no message to the simulator.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xsim_xenlib.h"

#include <xenevtchn.h>

struct xenevtchn_handle {
    struct xsim_conn c;
    int efd;
    uint8_t *shm;
    int notify_fd[HV_EVTCHN_PORTS];   /* -1: not bound */
    pthread_mutex_t lock;             /* notify_fd table */
    unsigned int max_port;            /* highest local port ever bound */
};

static uint8_t *pending_b(xenevtchn_handle *x, evtchn_port_t p)
{
    return &x->shm[p];
}

static uint8_t *mask_b(xenevtchn_handle *x, evtchn_port_t p)
{
    return &x->shm[HV_EVTCHN_PORTS + p];
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
                                 unsigned int open_flags)
{
    (void)logger;
    (void)open_flags;
    xenevtchn_handle *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->efd = -1;
    for (unsigned int i = 0; i < HV_EVTCHN_PORTS; i++)
        x->notify_fd[i] = -1;
    if (xsim_conn_open(&x->c, HV_CLIENT_EVTCHN, "xenevtchn") < 0)
        goto fail_free;
    struct hv_req q;
    struct hv_rsp r;
    int fds[2] = { -1, -1 };
    xsim_req_init(&q, HV_OP_EVTCHN_SETUP, 0);
    if (xsim_call(&x->c, &q, &r, fds, 2, NULL) < 0)
        goto fail_conn;
    x->efd = fds[0];
    x->shm = mmap(NULL, HV_EVTCHN_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  fds[1], 0);
    int e = errno;
    close(fds[1]);
    if (x->shm == MAP_FAILED) {
        close(x->efd);
        errno = e;
        goto fail_conn;
    }
    pthread_mutex_init(&x->lock, NULL);
    return x;
fail_conn:
    e = errno;
    xsim_conn_close(&x->c);
    errno = e;
fail_free:
    e = errno;
    free(x);
    errno = e;
    return NULL;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd,
                                   unsigned int open_flags)
{
    (void)logger; (void)fd; (void)open_flags;
    errno = EOPNOTSUPP;
    return NULL;
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    if (!xce)
        return 0;
    for (unsigned int i = 0; i < HV_EVTCHN_PORTS; i++)
        if (xce->notify_fd[i] >= 0)
            close(xce->notify_fd[i]);
    xsim_conn_close(&xce->c);
    munmap(xce->shm, HV_EVTCHN_SHM_SIZE);
    close(xce->efd);
    pthread_mutex_destroy(&xce->lock);
    free(xce);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce ? xce->efd : -1;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    if (!xce || port == 0 || port >= HV_EVTCHN_PORTS) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&xce->lock);
    int fd = xce->notify_fd[port];
    uint64_t one = 1;
    /* the write under the lock: an unbind cannot close fd meanwhile */
    int rc = fd < 0 ? -1 : (int)write(fd, &one, sizeof(one));
    int e = fd < 0 ? EINVAL : errno;
    pthread_mutex_unlock(&xce->lock);
    if (rc < 0) {
        errno = e;
        return -1;
    }
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce,
                                                      uint32_t domid)
{
    (void)xce; (void)domid;
    errno = EOPNOTSUPP;
    return -1;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce,
                                                     uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    if (!xce) {
        errno = EBADF;
        return -1;
    }
    struct hv_req q;
    struct hv_rsp r;
    int fd = -1;
    xsim_req_init(&q, HV_OP_EVTCHN_BIND, domid);
    q.a32[0] = remote_port;
    if (xsim_call(&xce->c, &q, &r, &fd, 1, NULL) < 0)
        return -1;
    uint32_t local = r.u32[0];
    if (local == 0 || local >= HV_EVTCHN_PORTS) {
        close(fd);
        errno = EPROTO;
        return -1;
    }
    pthread_mutex_lock(&xce->lock);
    if (xce->notify_fd[local] >= 0)
        close(xce->notify_fd[local]);
    xce->notify_fd[local] = fd;
    if (local > xce->max_port)
        __atomic_store_n(&xce->max_port, local, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&xce->lock);
    return (xenevtchn_port_or_error_t)local;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce,
                                              unsigned int virq)
{
    (void)xce; (void)virq;
    errno = EOPNOTSUPP;
    return -1;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    if (!xce || port == 0 || port >= HV_EVTCHN_PORTS) {
        errno = EINVAL;
        return -1;
    }
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_EVTCHN_UNBIND, 0);
    q.a32[0] = port;
    int rc = xsim_call(&xce->c, &q, &r, NULL, 0, NULL);
    pthread_mutex_lock(&xce->lock);
    if (xce->notify_fd[port] >= 0)
        close(xce->notify_fd[port]);
    xce->notify_fd[port] = -1;
    pthread_mutex_unlock(&xce->lock);
    return rc;
}

/* One pending, unmasked port, masked on the way out (the Linux driver
 * masks a port when it queues it).  If more are pending the eventfd is
 * re-armed so poll() reports the fd readable again.  A wake-up that finds
 * nothing (possible when an unmask and an event race) returns -1/EAGAIN
 * instead of blocking; a call without any wake-up waits, as the blocking
 * driver does. */
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    if (!xce) {
        errno = EBADF;
        return -1;
    }
    for (;;) {
        /* the simulator made the eventfd non-blocking: one read drains it */
        uint64_t cnt;
        bool woke = read(xce->efd, &cnt, sizeof(cnt)) == (ssize_t)sizeof(cnt);
        int found = -1;
        bool more = false;
        unsigned int top = __atomic_load_n(&xce->max_port, __ATOMIC_RELAXED);
        for (unsigned int port = 1; port <= top; port++) {
            if (!__atomic_load_n(pending_b(xce, port), __ATOMIC_SEQ_CST) ||
                __atomic_load_n(mask_b(xce, port), __ATOMIC_SEQ_CST))
                continue;
            if (found >= 0) {
                more = true;
                break;
            }
            __atomic_store_n(mask_b(xce, port), 1, __ATOMIC_SEQ_CST);
            if (__atomic_exchange_n(pending_b(xce, port), 0, __ATOMIC_SEQ_CST))
                found = (int)port;
            else
                __atomic_store_n(mask_b(xce, port), 0, __ATOMIC_SEQ_CST);
        }
        if (more) {
            uint64_t one = 1;
            if (write(xce->efd, &one, sizeof(one)) < 0)
                return -1;
        }
        if (found >= 0)
            return found;
        if (woke) {
            errno = EAGAIN;
            return -1;
        }
        /* called without a wake-up: block as the blocking driver does */
        struct pollfd p = { .fd = xce->efd, .events = POLLIN };
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return -1;
    }
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    if (!xce || port == 0 || port >= HV_EVTCHN_PORTS) {
        errno = EINVAL;
        return -1;
    }
    __atomic_store_n(mask_b(xce, port), 0, __ATOMIC_SEQ_CST);
    /* an event that arrived while masked is delivered now */
    if (__atomic_load_n(pending_b(xce, port), __ATOMIC_SEQ_CST)) {
        uint64_t one = 1;
        if (write(xce->efd, &one, sizeof(one)) < 0)
            return -1;
    }
    return 0;
}

int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
    if (!xce) {
        errno = EBADF;
        return -1;
    }
    return xsim_conn_restrict(&xce->c, domid);
}
