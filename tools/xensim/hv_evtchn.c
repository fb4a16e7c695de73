/*
 * Event channels between the simulated Xen and device-model handles.
 *
 * Xen side: per-domain ports (hv_port) allocated unbound to the dm domain,
 * as ioreq_server_create does for each vCPU and the buffered ring.  dm side:
 * each xenevtchn handle is a client with one eventfd (what xenevtchn_fd()
 * returns) and a shared page of pending/mask bytes indexed by local port.
 *
 *   Xen -> dm:  pending[local] = 1; if not masked, write the client eventfd.
 *   dm -> Xen:  xenevtchn_notify writes the port's eventfd directly (the dm
 *               holds a dup), which is the vCPU's wake fd for ioreq ports.
 *
 * Neither direction goes through the control socket, so a notification costs
 * one eventfd write.  Local ports are allocated from one space for all
 * handles, as dom0's ports are in Linux.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hv_proto.h"
#include "hv_internal.h"

struct dm_port {
    struct hv_evtchn_client *c;     /* NULL: free */
    uint32_t domid, remote;
    bool remote_gone;
};
static struct dm_port dm_ports[HV_EVTCHN_PORTS];

int hv_port_alloc(struct hv_domain *d, int vcpu, int efd)
{
    for (uint32_t p = 1; p < HV_MAX_PORTS; p++) {
        struct hv_port *hp = &d->port[p];
        if (hp->used)
            continue;
        memset(hp, 0, sizeof(*hp));
        if (efd < 0) {
            hp->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (hp->efd < 0) {
                int e = errno;
                hv_log("domain %u: eventfd for an event channel: %s",
                       d->domid, strerror(e));
                return -e;
            }
            hp->efd_owned = true;
        } else {
            hp->efd = efd;
        }
        hp->used = true;
        hp->vcpu = vcpu;
        return (int)p;
    }
    hv_log("domain %u: out of event channels (%u)", d->domid, HV_MAX_PORTS);
    return -ENOSPC;
}

void hv_port_free(struct hv_domain *d, uint32_t port)
{
    if (port == 0 || port >= HV_MAX_PORTS || !d->port[port].used)
        return;
    struct hv_port *hp = &d->port[port];
    if (hp->peer && hp->peer_port < HV_EVTCHN_PORTS) {
        dm_ports[hp->peer_port].remote_gone = true;
        hp->peer->nbound--;
    }
    if (hp->efd_owned)
        close(hp->efd);
    memset(hp, 0, sizeof(*hp));
}

static void client_raise(struct hv_evtchn_client *c, uint32_t local)
{
    __atomic_store_n(&c->shm[local], 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&c->shm[HV_EVTCHN_PORTS + local], __ATOMIC_SEQ_CST)) {
        uint64_t one = 1;
        if (write(c->efd, &one, sizeof(one)) < 0)
            hv_log("event channel notify: %s", strerror(errno));
    }
}

void hv_port_send(struct hv_domain *d, uint32_t port)
{
    if (port == 0 || port >= HV_MAX_PORTS || !d->port[port].used)
        return;
    struct hv_port *hp = &d->port[port];
    if (hp->drop) {
        hp->drop--;
        hp->dropped++;
        hv_log("domain %u: fault: dropped event on port %u", d->domid, port);
        return;
    }
    hp->sent++;
    if (hp->peer)
        client_raise(hp->peer, hp->peer_port);
}

int hv_fault_drop_events(uint32_t domid, uint32_t port, unsigned int n)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        rc = 0;
        if (port == 0) {
            for (uint32_t p = 1; p < HV_MAX_PORTS; p++)
                if (d->port[p].used)
                    d->port[p].drop = n;
        } else if (port < HV_MAX_PORTS && d->port[port].used) {
            d->port[port].drop = n;
        } else {
            rc = -ENOENT;
        }
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

struct hv_evtchn_client *hv_evtchn_client_new(void)
{
    struct hv_evtchn_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->restrict_domid = -1;
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->shm_fd = memfd_create("xensim-evtchn", MFD_CLOEXEC);
    if (c->efd < 0 || c->shm_fd < 0 ||
        ftruncate(c->shm_fd, HV_EVTCHN_SHM_SIZE) < 0) {
        hv_log("event channel handle: %s", strerror(errno));
        goto fail;
    }
    c->shm = mmap(NULL, HV_EVTCHN_SHM_SIZE, PROT_READ | PROT_WRITE,
                  MAP_SHARED, c->shm_fd, 0);
    if (c->shm == MAP_FAILED) {
        c->shm = NULL;
        hv_log("event channel handle: mmap: %s", strerror(errno));
        goto fail;
    }
    return c;
fail:
    if (c->efd >= 0)
        close(c->efd);
    if (c->shm_fd >= 0)
        close(c->shm_fd);
    free(c);
    return NULL;
}

int hv_evtchn_unbind(struct hv_evtchn_client *c, uint32_t local)
{
    if (local == 0 || local >= HV_EVTCHN_PORTS || dm_ports[local].c != c)
        return -ENOENT;
    struct dm_port *dp = &dm_ports[local];
    if (!dp->remote_gone) {
        struct hv_domain *d = hv_domain_find(dp->domid);
        if (d && dp->remote < HV_MAX_PORTS && d->port[dp->remote].peer == c) {
            d->port[dp->remote].peer = NULL;
            c->nbound--;
        }
    }
    memset(dp, 0, sizeof(*dp));
    __atomic_store_n(&c->shm[local], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&c->shm[HV_EVTCHN_PORTS + local], 0, __ATOMIC_SEQ_CST);
    return 0;
}

void hv_evtchn_client_free(struct hv_evtchn_client *c)
{
    if (!c)
        return;
    for (uint32_t p = 1; p < HV_EVTCHN_PORTS; p++)
        if (dm_ports[p].c == c)
            hv_evtchn_unbind(c, p);
    munmap(c->shm, HV_EVTCHN_SHM_SIZE);
    close(c->shm_fd);
    close(c->efd);
    free(c);
}

int hv_evtchn_bind(struct hv_evtchn_client *c, uint32_t domid,
                   uint32_t remote, int *efd_out)
{
    if (c->restrict_domid >= 0 && (uint32_t)c->restrict_domid != domid)
        return -EPERM;
    struct hv_domain *d = hv_domain_find(domid);
    if (!d)
        return -ESRCH;
    /* Xen: the remote port must be unbound and offered to us. */
    if (remote == 0 || remote >= HV_MAX_PORTS || !d->port[remote].used ||
        d->port[remote].peer)
        return -EINVAL;
    uint32_t lp;
    for (lp = 1; lp < HV_EVTCHN_PORTS && dm_ports[lp].c; lp++)
        ;
    if (lp == HV_EVTCHN_PORTS)
        return -ENOSPC;
    dm_ports[lp].c = c;
    dm_ports[lp].domid = domid;
    dm_ports[lp].remote = remote;
    dm_ports[lp].remote_gone = false;
    __atomic_store_n(&c->shm[lp], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&c->shm[HV_EVTCHN_PORTS + lp], 0, __ATOMIC_SEQ_CST);
    d->port[remote].peer = c;
    d->port[remote].peer_port = lp;
    c->nbound++;
    *efd_out = d->port[remote].efd;
    return (int)lp;
}
