/*
 * Ioreq servers with Xen 4.17's rules (xen/common/ioreq.c,
 * xen/arch/x86/hvm/ioreq.c, emulate.c), and the vCPU side of the handshake.
 *
 *  - at most 8 servers per domain, lowest free id first (-ENOSPC);
 *  - each server: one unbound event channel per vCPU (+1 for the buffered
 *    ring) created with the server; pages exist as a resource (frame 0 the
 *    buffered ring, only with bufioreq; frame 1 the shared ioreq page);
 *    vp_eport is written only on enable, and only if the pages were mapped;
 *  - ranges per type: start > end -EINVAL, overlap within the server
 *    -EEXIST, unmap needs containment -ENOENT, 256 per type -ENOSPC;
 *  - dispatch: the CF8 latch turns 0xCFC-0xCFF into PCI_CONFIG for a
 *    registered SBDF; enabled servers are scanned from the highest id; no
 *    match → the null handler (reads all-ones, writes dropped);
 *  - send: slot must be NONE with the right vp_eport, the request is written
 *    with state NONE, then state READY (release), then the event;
 *  - wait: IORESP_READY → NONE and take data; a backwards move or an unknown
 *    state crashes the domain; the request survives a disable; a destroy
 *    ends the wait (and so a shutdown deferral).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv_internal.h"

#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>

#define SRV_PAGES 2u
#define HV_MAX_KNOWN_RANGES 4096u

static unsigned int hv_nknown(const struct hv_domain *d)
{
    return d->nknown < HV_MAX_KNOWN_RANGES ? d->nknown : HV_MAX_KNOWN_RANGES;
}

static ioreq_t *slot(struct hv_ioreq_server *s, unsigned int vcpu)
{
    shared_iopage_t *p = (shared_iopage_t *)(s->pages + HV_PAGE_SIZE);
    return &p->vcpu_ioreq[vcpu];
}

static uint8_t slot_state(ioreq_t *r)
{
    /* state is a 4-bit field in the byte at offset 30; read the whole byte
     * atomically and pick the bits (bitfields cannot be atomic). */
    uint8_t b = __atomic_load_n((uint8_t *)r + 30, __ATOMIC_ACQUIRE);
    ioreq_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    memcpy((uint8_t *)&tmp + 30, &b, 1);
    return tmp.state;
}

static void slot_set_state(ioreq_t *r, uint8_t st)
{
    uint8_t b = __atomic_load_n((uint8_t *)r + 30, __ATOMIC_RELAXED);
    ioreq_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    memcpy((uint8_t *)&tmp + 30, &b, 1);
    tmp.state = st & 0xf;
    memcpy(&b, (uint8_t *)&tmp + 30, 1);
    __atomic_store_n((uint8_t *)r + 30, b, __ATOMIC_RELEASE);
}

static void server_free(struct hv_domain *d, unsigned int id)
{
    struct hv_ioreq_server *s = &d->srv[id];
    for (unsigned int i = 0; i < d->nr_vcpus; i++)
        hv_port_free(d, s->vcpu_port[i]);
    if (s->buf_port)
        hv_port_free(d, s->buf_port);
    for (unsigned int t = 0; t < 3; t++)
        hv_rangeset_free(&s->range[t]);
    if (s->pages)
        munmap(s->pages, SRV_PAGES * HV_PAGE_SIZE);
    if (s->pages_fd >= 0)
        close(s->pages_fd);
    memset(s, 0, sizeof(*s));
    s->pages_fd = -1;
}

int hv_ioreq_create(struct hv_domain *d, int bufioreq, uint64_t owner,
                    unsigned int *id)
{
    if (bufioreq < HVM_IOREQSRV_BUFIOREQ_OFF ||
        bufioreq > HVM_IOREQSRV_BUFIOREQ_ATOMIC)
        return -EINVAL;
    unsigned int i;
    for (i = 0; i < HV_MAX_SERVERS && d->srv[i].used; i++)
        ;
    if (i == HV_MAX_SERVERS)
        return -ENOSPC;
    struct hv_ioreq_server *s = &d->srv[i];
    memset(s, 0, sizeof(*s));
    s->pages_fd = memfd_create("xensim-ioreq-pages", MFD_CLOEXEC);
    if (s->pages_fd < 0 ||
        ftruncate(s->pages_fd, SRV_PAGES * HV_PAGE_SIZE) < 0) {
        int e = errno;
        hv_log("domain %u: ioreq server pages: %s", d->domid, strerror(e));
        server_free(d, i);
        return -e;
    }
    s->pages = mmap(NULL, SRV_PAGES * HV_PAGE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_SHARED, s->pages_fd, 0);
    if (s->pages == MAP_FAILED) {
        int e = errno;
        s->pages = NULL;
        hv_log("domain %u: ioreq server pages: %s", d->domid, strerror(e));
        server_free(d, i);
        return -e;
    }
    s->used = true;
    s->bufioreq = bufioreq;
    s->owner = owner;
    for (unsigned int v = 0; v < d->nr_vcpus; v++) {
        int p = hv_port_alloc(d, (int)v, d->vcpu[v].efd);
        if (p < 0) {
            server_free(d, i);
            return p;
        }
        s->vcpu_port[v] = (uint32_t)p;
    }
    if (bufioreq != HVM_IOREQSRV_BUFIOREQ_OFF) {
        int p = hv_port_alloc(d, -1, -1);
        if (p < 0) {
            server_free(d, i);
            return p;
        }
        s->buf_port = (uint32_t)p;
    }
    *id = i;
    return 0;
}

static struct hv_ioreq_server *get_server(struct hv_domain *d, unsigned int id)
{
    if (id >= HV_MAX_SERVERS || !d->srv[id].used)
        return NULL;
    return &d->srv[id];
}

/* Xen's destroy (hvm_ioreq_server_deinit) frees the server's per-vCPU
 * state, pending flag included: a vCPU waiting on it resumes and completes
 * its access, and its shutdown deferral ends.  Kept pending here, the
 * vCPU would wait forever and a shutdown the emulator asked for just
 * before exiting (rsdm on the guest's S5) would never complete.  An answer
 * already in the slot is taken (the vCPU would have had it, had it run
 * before the destroy); without one, a read completes as all-ones, as for a
 * slot reset to NONE. */
static void end_waits(struct hv_domain *d, unsigned int id)
{
    struct hv_ioreq_server *s = &d->srv[id];
    for (unsigned int i = 0; i < d->nr_vcpus; i++) {
        struct hv_vcpu *v = &d->vcpu[i];
        if (v->state != HV_VCPU_PENDING || !(v->pending & (1u << id)))
            continue;
        ioreq_t *p = slot(s, i);
        if (slot_state(p) == STATE_IORESP_READY)
            v->data = __atomic_load_n(&p->data, __ATOMIC_ACQUIRE);
        else
            hv_log("domain %u vcpu %u: server %u destroyed without answering; "
                   "completing as all-ones", d->domid, i, id);
        v->pending &= ~(1u << id);
        if (v->pending == 0)
            v->state = HV_VCPU_DONE;
    }
}

int hv_ioreq_destroy(struct hv_domain *d, unsigned int id, bool *shut_down)
{
    *shut_down = false;
    if (!get_server(d, id))
        return -ENOENT;
    end_waits(d, id);
    server_free(d, id);
    *shut_down = hv_domain_check_shut_down(d);
    hv_domain_kick(d);   /* a vCPU sleeping in hv_vcpu_io_wait takes its completion */
    return 0;
}

void hv_ioreq_destroy_all(struct hv_domain *d)
{
    for (unsigned int i = 0; i < HV_MAX_SERVERS; i++)
        if (d->srv[i].used)
            server_free(d, i);
}

int hv_ioreq_get_info(struct hv_domain *d, unsigned int id, uint32_t *bufport)
{
    struct hv_ioreq_server *s = get_server(d, id);
    if (!s)
        return -ENOENT;
    *bufport = s->bufioreq != HVM_IOREQSRV_BUFIOREQ_OFF ? s->buf_port : 0;
    return 0;
}

static void remember_range(struct hv_domain *d, unsigned int id,
                           unsigned int type, uint64_t s, uint64_t e)
{
    for (unsigned int i = 0; i < hv_nknown(d); i++) {
        struct hv_known_range *k = &d->known[i];
        if (k->server == id && k->type == type && k->start == s && k->end == e)
            return;
    }
    /* A dm remapping ever-new BARs must not grow this without bound. */
    if (d->nknown >= HV_MAX_KNOWN_RANGES) {
        if (d->nknown == HV_MAX_KNOWN_RANGES) {
            hv_log("domain %u: more than %u distinct ranges registered; "
                   "null hits on newer ones are not counted per range",
                   d->domid, HV_MAX_KNOWN_RANGES);
            d->nknown++;        /* log once; never indexed beyond the cap */
        }
        return;
    }
    if (d->nknown == d->known_cap) {
        unsigned int cap = d->known_cap ? d->known_cap * 2 : 16;
        struct hv_known_range *n = realloc(d->known, cap * sizeof(*n));
        if (!n)
            return;             /* only statistics are lost */
        d->known = n;
        d->known_cap = cap;
    }
    d->known[d->nknown++] = (struct hv_known_range){ id, type, s, e, 0 };
}

int hv_ioreq_map_range(struct hv_domain *d, unsigned int id, bool map,
                       unsigned int type, uint64_t s, uint64_t e)
{
    if (s > e)
        return -EINVAL;
    struct hv_ioreq_server *srv = get_server(d, id);
    if (!srv)
        return -ENOENT;
    if (type > XEN_DMOP_IO_RANGE_PCI)
        return -EINVAL;
    struct hv_rangeset *r = &srv->range[type];
    if (map) {
        if (hv_rangeset_overlaps(r, s, e))
            return -EEXIST;
        int rc = hv_rangeset_add(r, s, e);
        if (rc == 0)
            remember_range(d, id, type, s, e);
        return rc;
    }
    if (!hv_rangeset_contains(r, s, e))
        return -ENOENT;
    return hv_rangeset_remove(r, s, e);
}

int hv_ioreq_set_state(struct hv_domain *d, unsigned int id, bool enabled)
{
    struct hv_ioreq_server *s = get_server(d, id);
    if (!s)
        return -ENOENT;
    if (enabled && !s->enabled && s->mapped) {
        /* ioreq_server_update_evtchn: only with the page present. */
        for (unsigned int v = 0; v < d->nr_vcpus; v++)
            slot(s, v)->vp_eport = s->vcpu_port[v];
    }
    s->enabled = enabled;
    pthread_cond_broadcast(&d->cond);
    return 0;
}

int hv_ioreq_resource(struct hv_domain *d, unsigned int id,
                      unsigned long frame, unsigned long nr, int *fd)
{
    struct hv_ioreq_server *s = get_server(d, id);
    if (!s)
        return -ENOENT;
    if (nr == 0 || frame >= SRV_PAGES || nr > SRV_PAGES - frame)
        return -EINVAL;
    /* frame 0 is the buffered ring, which exists only with bufioreq */
    if (frame == XENMEM_resource_ioreq_server_frame_bufioreq &&
        s->bufioreq == HVM_IOREQSRV_BUFIOREQ_OFF)
        return -ENOENT;
    if (!s->mapped && s->enabled)
        /* Xen allocates the pages on first acquire; a server enabled before
         * that never got its vp_eport values (enable must come after). */
        hv_log("domain %u: ioreq server %u mapped after enable: vp_eport "
               "stays 0 until the next enable", d->domid, id);
    s->mapped = true;
    *fd = s->pages_fd;
    return 0;
}

/* ------------------------------------------------------------ dispatch */

#define CF8_ENABLED(cf8)   (!!((cf8) & 0x80000000u))
#define CF8_BDF(cf8)       (((cf8) & 0x00ffff00u) >> 8)
#define CF8_ADDR_LO(cf8)   ((cf8) & 0x000000fcu)

static void null_hit(struct hv_domain *d, unsigned int type, uint64_t s,
                     uint64_t e, bool read)
{
    if (read)
        d->null_reads++;
    else
        d->null_writes++;
    for (unsigned int i = 0; i < hv_nknown(d); i++) {
        struct hv_known_range *k = &d->known[i];
        if (k->type == type && k->start <= e && s <= k->end)
            k->hits++;
    }
}

static uint64_t ones(unsigned int size)
{
    return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

/* Xen's null_handler: reads give all-ones (into guest memory for rep
 * data_is_ptr reads), writes vanish. */
static void null_complete(struct hv_domain *d, ioreq_t *req)
{
    if (req->dir != IOREQ_READ)
        return;
    if (req->data_is_ptr) {
        uint64_t len = (uint64_t)req->size * req->count;
        uint64_t a = req->df ? req->data - (uint64_t)req->size * (req->count - 1)
                             : req->data;
        if (a < d->mem_bytes && len <= d->mem_bytes - a)
            memset(d->ram + a, 0xff, len);
    } else {
        req->data = ones(req->size);
    }
}

static int validate(const struct hv_domain *d, const ioreq_t *r)
{
    if (r->type != IOREQ_TYPE_PIO && r->type != IOREQ_TYPE_COPY)
        return -EINVAL;
    if (r->size != 1 && r->size != 2 && r->size != 4 && r->size != 8)
        return -EINVAL;
    if (r->count < 1 || r->count > 4096)
        return -EINVAL;
    if (r->type == IOREQ_TYPE_PIO && (r->addr > 0xffff || r->size > 4))
        return -EINVAL;
    if (r->data_is_ptr) {
        uint64_t len = (uint64_t)r->size * r->count;
        uint64_t a = r->df ? r->data - (uint64_t)r->size * (r->count - 1)
                           : r->data;
        if (a >= d->mem_bytes || len > d->mem_bytes - a)
            return -EFAULT;
    }
    return 0;
}

/* Select the server (highest enabled id first); may rewrite req into
 * PCI_CONFIG.  Returns the id or -1 for the null handler, with the range
 * type/extent used for the null-hit counters. */
static int select_server(struct hv_domain *d, ioreq_t *req, unsigned int *type,
                         uint64_t *s, uint64_t *e)
{
    uint64_t addr = req->addr;
    uint32_t cf8 = d->pci_cf8;
    bool pci = false;
    if (req->type == IOREQ_TYPE_PIO && (req->addr & ~3ull) == 0xcfc &&
        CF8_ENABLED(cf8)) {
        uint32_t sbdf = CF8_BDF(cf8);        /* segment 0 */
        addr = ((uint64_t)sbdf << 32) | CF8_ADDR_LO(cf8) | (req->addr & 3);
        pci = true;
        *type = XEN_DMOP_IO_RANGE_PCI;
        *s = *e = sbdf;
    } else if (req->type == IOREQ_TYPE_PIO) {
        *type = XEN_DMOP_IO_RANGE_PORT;
        *s = addr;
        *e = addr + req->size - 1;
    } else {
        *type = XEN_DMOP_IO_RANGE_MEMORY;
        uint64_t span = (uint64_t)req->size * req->count;
        *s = req->df ? addr - span + req->size : addr;
        *e = req->df ? addr + req->size - 1 : addr + span - 1;
    }
    for (int id = (int)HV_MAX_SERVERS - 1; id >= 0; id--) {
        struct hv_ioreq_server *srv = &d->srv[id];
        if (!srv->used || !srv->enabled)
            continue;
        if (!hv_rangeset_contains(&srv->range[*type], *s, *e))
            continue;
        if (pci) {
            req->type = IOREQ_TYPE_PCI_CONFIG;
            req->addr = addr;
        }
        return id;
    }
    return -1;
}

/* Put req into server id's slot for vcpu and notify (ioreq_send).  Caller
 * holds the lock.  0, or -EIO for Xen's "bad IO state/event channel". */
static int send_to(struct hv_domain *d, unsigned int id, unsigned int vcpu,
                   const ioreq_t *req)
{
    struct hv_ioreq_server *srv = &d->srv[id];
    ioreq_t *p = slot(srv, vcpu);
    uint32_t port = srv->vcpu_port[vcpu];
    uint8_t st = slot_state(p);
    if (st != STATE_IOREQ_NONE) {
        hv_log("domain %u vcpu %u: device model set bad IO state %u "
               "(server %u)", d->domid, vcpu, st, id);
        return -EIO;
    }
    if (p->vp_eport != port) {
        hv_log("domain %u vcpu %u: device model set bad event channel %u "
               "(server %u expects %u; page not mapped before enable?)",
               d->domid, vcpu, p->vp_eport, id, port);
        return -EIO;
    }
    ioreq_t r = *req;
    r.state = STATE_IOREQ_NONE;
    r.vp_eport = port;
    *p = r;
    slot_set_state(p, STATE_IOREQ_READY);
    d->ioreqs_sent++;
    hv_port_send(d, port);
    return 0;
}

static int wait_runnable_locked(struct hv_domain *d, unsigned int vcpu,
                                const struct timespec *dl)
{
    while (!d->dying && !d->shutting_down && !hv_vcpu_runnable(d, vcpu))
        if (hv_cond_wait_ms(d, dl) == -ETIMEDOUT && !hv_vcpu_runnable(d, vcpu))
            return -ETIMEDOUT;
    if (d->dying || d->shutting_down)
        return -ESHUTDOWN;
    return 0;
}

int hv_vcpu_wait_runnable(struct hv_domain *d, unsigned int vcpu,
                          int timeout_ms)
{
    if (vcpu >= d->nr_vcpus)
        return -EINVAL;
    struct timespec dl;
    hv_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&hv_lock);
    int rc = wait_runnable_locked(d, vcpu, &dl);
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_vcpu_io_submit(struct hv_domain *d, unsigned int vcpu, ioreq_t *req,
                      int timeout_ms)
{
    if (vcpu >= d->nr_vcpus)
        return -EINVAL;
    struct timespec dl;
    hv_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&hv_lock);
    struct hv_vcpu *v = &d->vcpu[vcpu];
    int rc;
    if (v->state != HV_VCPU_IDLE) {
        rc = -EBUSY;
        goto out;
    }
    rc = wait_runnable_locked(d, vcpu, &dl);
    if (rc == -ETIMEDOUT)
        rc = -EAGAIN;           /* paused all along: nothing was sent */
    if (rc)
        goto out;
    rc = validate(d, req);
    if (rc)
        goto out;
    /* hvm_access_cf8: a 4-byte write to 0xCF8 is latched, then still goes
     * to whichever server claims port 0xCF8. */
    bool latched = req->type == IOREQ_TYPE_PIO && req->addr == 0xcf8 && req->size == 4 &&
                   req->dir == IOREQ_WRITE && !req->data_is_ptr;
    if (latched)
        d->pci_cf8 = (uint32_t)req->data;

    unsigned int type;
    uint64_t s, e;
    int id = select_server(d, req, &type, &s, &e);
    if (id < 0) {
        /* Xen took the latched CF8 write; nobody claiming it as well is
         * not a lost access, even where it overlaps a byte-wide range such
         * as the reset register at 0xCF9. */
        if (latched)
            d->null_writes++;
        else
            null_hit(d, type, s, e, req->dir == IOREQ_READ);
        null_complete(d, req);
        rc = 1;
        goto out;
    }
    rc = send_to(d, (unsigned int)id, vcpu, req);
    if (rc)
        goto out;
    v->state = HV_VCPU_PENDING;
    v->pending = 1u << id;
    v->prev_state[id] = STATE_IOREQ_READY;
    v->req = *req;
    v->data = ~0ull;
out:
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

/* Look at every server the vCPU waits for (wait_for_io).  Caller holds the
 * lock.  Returns true if the domain crashed. */
static bool collect(struct hv_domain *d, unsigned int vcpu)
{
    struct hv_vcpu *v = &d->vcpu[vcpu];
    for (unsigned int id = 0; id < HV_MAX_SERVERS; id++) {
        if (!(v->pending & (1u << id)) || !d->srv[id].used)
            continue;
        ioreq_t *p = slot(&d->srv[id], vcpu);
        uint8_t st = slot_state(p);
        uint8_t prev = v->prev_state[id];
        if (st == STATE_IOREQ_NONE) {
            /* Xen's loop ends on NONE without complaint (an emulator dying
             * races with I/O) and the access completes as all-ones. */
            hv_log("domain %u vcpu %u: server %u reset the slot to NONE "
                   "without answering; completing as all-ones",
                   d->domid, vcpu, id);
            v->pending &= ~(1u << id);
            continue;
        }
        if (st < prev || st > STATE_IORESP_READY) {
            char why[96];
            snprintf(why, sizeof(why), "Weird HVM ioreq state transition "
                     "%u -> %u (vcpu %u, server %u)", prev, st, vcpu, id);
            hv_domain_crash_locked(d, why);
            return true;
        }
        v->prev_state[id] = st;
        if (st == STATE_IORESP_READY) {
            v->data = __atomic_load_n(&p->data, __ATOMIC_ACQUIRE);
            slot_set_state(p, STATE_IOREQ_NONE);
            v->pending &= ~(1u << id);
        }
    }
    return false;
}

int hv_vcpu_io_wait(struct hv_domain *d, unsigned int vcpu, ioreq_t *req,
                    int timeout_ms)
{
    if (vcpu >= d->nr_vcpus)
        return -EINVAL;
    struct timespec dl;
    hv_deadline(&dl, timeout_ms);
    struct hv_vcpu *v = &d->vcpu[vcpu];
    pthread_mutex_lock(&hv_lock);
    int rc = 0;
    bool fire_shutdown = false, fire_crash = false;
    bool answered = false;   /* the dm answered; the paused vCPU cannot take it */
    for (;;) {
        if (v->state == HV_VCPU_IDLE) {
            rc = d->crashed || d->dying ? -ESHUTDOWN : -EINVAL;
            break;
        }
        if (v->state == HV_VCPU_PENDING) {
            if (d->dying) {
                rc = -ESHUTDOWN;
                break;
            }
            if (collect(d, vcpu)) {
                fire_crash = true;
                rc = -ESHUTDOWN;
                break;
            }
            if (v->pending == 0) {
                v->state = HV_VCPU_DONE;
                fire_shutdown = hv_domain_check_shut_down(d);
            }
        }
        if (v->state == HV_VCPU_DONE) {
            /* A paused or stalled vCPU does not resume the guest. */
            if (!d->dying && !d->shutting_down && !hv_vcpu_runnable(d, vcpu)) {
                if (hv_cond_wait_ms(d, &dl) == -ETIMEDOUT &&
                    !hv_vcpu_runnable(d, vcpu)) {
                    rc = -ETIMEDOUT;
                    answered = true;
                    break;
                }
                continue;
            }
            /* Only a plain read takes data back (ioreq_needs_completion). */
            if (v->req.dir == IOREQ_READ && !v->req.data_is_ptr &&
                v->req.type != IOREQ_TYPE_INVALIDATE)
                req->data = v->data;
            v->state = HV_VCPU_IDLE;
            rc = 0;
            break;
        }
        /* Still pending: sleep on the vCPU's wake fd (every server's port
         * for this vCPU writes it), without the lock. */
        int left = hv_ms_left(&dl);
        if (left == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        int efd = v->efd;
        pthread_mutex_unlock(&hv_lock);
        struct pollfd pfd = { .fd = efd, .events = POLLIN };
        int n = poll(&pfd, 1, left);
        if (n > 0) {
            uint64_t cnt;
            if (read(efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
                hv_log("vcpu wake fd: %s", strerror(errno));
        }
        pthread_mutex_lock(&hv_lock);
    }
    uint32_t domid = d->domid;
    pthread_mutex_unlock(&hv_lock);
    if (fire_shutdown || fire_crash)
        hv_domain_fire_hook(domid, HV_DOM_SHUTDOWN);
    if (rc == -ETIMEDOUT && timeout_ms > 0 && !answered)
        hv_log("domain %u vcpu %u: no ioreq answer within %d ms",
               domid, vcpu, timeout_ms);
    return rc;
}

int hv_vcpu_io(struct hv_domain *d, unsigned int vcpu, ioreq_t *req,
               int timeout_ms)
{
    struct timespec dl;
    hv_deadline(&dl, timeout_ms);
    int rc = hv_vcpu_io_submit(d, vcpu, req, timeout_ms);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return rc;
    return hv_vcpu_io_wait(d, vcpu, req, hv_ms_left(&dl));
}

int hv_vcpu_invalidate(struct hv_domain *d, unsigned int vcpu, int timeout_ms)
{
    if (vcpu >= d->nr_vcpus)
        return -EINVAL;
    struct timespec dl;
    hv_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&hv_lock);
    struct hv_vcpu *v = &d->vcpu[vcpu];
    int rc = v->state != HV_VCPU_IDLE ? -EBUSY
                                      : wait_runnable_locked(d, vcpu, &dl);
    if (rc == -ETIMEDOUT)
        rc = -EAGAIN;
    if (rc) {
        pthread_mutex_unlock(&hv_lock);
        return rc;
    }
    ioreq_t req;
    memset(&req, 0, sizeof(req));
    req.type = IOREQ_TYPE_INVALIDATE;
    req.size = 4;
    req.dir = IOREQ_WRITE;
    req.data = ~0ull;
    req.count = 0;
    unsigned int mask = 0;
    for (unsigned int id = 0; id < HV_MAX_SERVERS; id++) {
        if (!d->srv[id].used || !d->srv[id].enabled)
            continue;
        if (send_to(d, id, vcpu, &req) == 0) {
            mask |= 1u << id;
            v->prev_state[id] = STATE_IOREQ_READY;
        }
    }
    if (mask == 0) {
        pthread_mutex_unlock(&hv_lock);
        return 0;
    }
    v->state = HV_VCPU_PENDING;
    v->pending = mask;
    v->req = req;
    pthread_mutex_unlock(&hv_lock);
    return hv_vcpu_io_wait(d, vcpu, &req, hv_ms_left(&dl));
}

/* ------------------------------------------------------------ buffered */

int hv_send_timeoffset(uint32_t domid, uint64_t offset)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (!d) {
        pthread_mutex_unlock(&hv_lock);
        return -ESRCH;
    }
    unsigned int failed = 0;
    for (unsigned int id = 0; id < HV_MAX_SERVERS; id++) {
        struct hv_ioreq_server *s = &d->srv[id];
        if (!s->used || !s->enabled || s->bufioreq == HVM_IOREQSRV_BUFIOREQ_OFF)
            continue;
        buffered_iopage_t *pg = (buffered_iopage_t *)s->pages;
        uint32_t rp = __atomic_load_n(&pg->read_pointer, __ATOMIC_ACQUIRE);
        uint32_t wp = pg->write_pointer;
        /* 8-byte data takes two slots (ioreq_send_buffered) */
        if (wp - rp > IOREQ_BUFFER_SLOT_NUM - 2) {
            failed++;
            continue;
        }
        buf_ioreq_t lo = { .type = IOREQ_TYPE_TIMEOFFSET, .dir = IOREQ_WRITE,
                           .size = 3, .addr = 0, .data = (uint32_t)offset };
        buf_ioreq_t hi = lo;
        hi.data = (uint32_t)(offset >> 32);
        pg->buf_ioreq[wp % IOREQ_BUFFER_SLOT_NUM] = lo;
        pg->buf_ioreq[(wp + 1) % IOREQ_BUFFER_SLOT_NUM] = hi;
        __atomic_store_n(&pg->write_pointer, wp + 2, __ATOMIC_RELEASE);
        if (s->bufioreq == HVM_IOREQSRV_BUFIOREQ_ATOMIC) {
            /* canonicalise both pointers once read_pointer passed a ring */
            uint64_t *pair = (uint64_t *)pg;
            uint64_t old = __atomic_load_n(pair, __ATOMIC_ACQUIRE);
            uint32_t r = (uint32_t)old, w = (uint32_t)(old >> 32);
            if (r >= IOREQ_BUFFER_SLOT_NUM) {
                uint32_t k = r - r % IOREQ_BUFFER_SLOT_NUM;
                uint64_t nw = ((uint64_t)(w - k) << 32) | (r - k);
                __atomic_compare_exchange_n(pair, &old, nw, false,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            }
        }
        hv_port_send(d, s->buf_port);
    }
    pthread_mutex_unlock(&hv_lock);
    if (failed)
        hv_log("domain %u: Unsuccessful timeoffset update (%u rings full)",
               domid, failed);
    return failed ? -EAGAIN : 0;
}

/* ------------------------------------------------------------ null hits */

int hv_null_hits(uint32_t domid, struct hv_null_hits *out, int max)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int n = -ESRCH;
    if (d) {
        n = (int)hv_nknown(d);
        for (int i = 0; i < n && i < max; i++)
            out[i] = (struct hv_null_hits){ d->known[i].server,
                                            d->known[i].type,
                                            d->known[i].start,
                                            d->known[i].end,
                                            d->known[i].hits };
    }
    pthread_mutex_unlock(&hv_lock);
    return n;
}

uint64_t hv_null_hits_total(uint32_t domid)
{
    uint64_t t = 0;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d)
        for (unsigned int i = 0; i < hv_nknown(d); i++)
            t += d->known[i].hits;
    pthread_mutex_unlock(&hv_lock);
    return t;
}
