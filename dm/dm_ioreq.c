/*
 * The ioreq server (reference xen-ioreq.md §1-§3).  The shared page holds
 * one 32-byte ioreq_t per vCPU; Xen moves a slot NONE -> READY and notifies,
 * we move it INPROCESS -> IORESP_READY and notify back.  A slot's state
 * lives in a bitfield, so it is read and written as the whole byte that
 * holds it, with an acquire fence after reading READY and a release fence
 * before publishing IORESP_READY.
 */
/* dm_ioreq.h brings xenctrl.h, which must precede the public Xen headers
 * (it defines __XEN_TOOLS__ for them). */
#include "dm_ioreq.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "dm_log.h"

#define PAGE_SIZE 4096u
#define STATE_BYTE 30                 /* offset of the byte holding state:4 */
#define MAX_REPS 4096u                /* Xen clips repetitions to this */

struct dm_ioreq {
    dm_xen *x;
    dm_guestmem *gm;
    const dm_ioreq_ops *ops;
    void *opaque;
    ioservid_t id;
    bool created;
    xenforeignmemory_resource_handle *res;
    void *pages;                      /* [0] buffered ring, [1] shared page */
    buffered_iopage_t *buf;
    shared_iopage_t *shared;
    unsigned nr_vcpus;
    evtchn_port_t *local;             /* per vCPU, 0 = not bound */
    bool *ready_seen;                 /* per vCPU: READY at the last rescue pass */
    evtchn_port_t buf_remote, buf_local;
    bool enabled;
    dm_ioreq_stats stats;
};

static uint8_t slot_state(ioreq_t *req)
{
    uint8_t b = atomic_load_explicit((_Atomic uint8_t *)((uint8_t *)req + STATE_BYTE),
                                     memory_order_acquire);
    return b & 0xf;
}

static void set_slot_state(ioreq_t *req, uint8_t state)
{
    _Atomic uint8_t *p = (_Atomic uint8_t *)((uint8_t *)req + STATE_BYTE);
    uint8_t b = atomic_load_explicit(p, memory_order_relaxed);
    atomic_store_explicit(p, (uint8_t)((b & 0xf0) | state), memory_order_release);
}

int dm_ioreq_create(dm_ioreq **out, dm_xen *x, dm_guestmem *gm, const dm_ioreq_ops *ops,
                    void *opaque, char *err, size_t errlen)
{
    dm_ioreq *io = calloc(1, sizeof(*io));
    if (!io) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    io->x = x;
    io->gm = gm;
    io->ops = ops;
    io->opaque = opaque;
    const char *step;
    int e;

    step = "xendevicemodel_nr_vcpus";
    if (xendevicemodel_nr_vcpus(x->dmod, x->domid, &io->nr_vcpus) < 0)
        goto fail;
    if (io->nr_vcpus == 0 || io->nr_vcpus > PAGE_SIZE / sizeof(ioreq_t)) {
        errno = ERANGE;
        goto fail;
    }
    io->local = calloc(io->nr_vcpus, sizeof(*io->local));
    io->ready_seen = calloc(io->nr_vcpus, sizeof(*io->ready_seen));
    if (!io->local || !io->ready_seen) {
        errno = ENOMEM;
        goto fail;
    }
    /* ATOMIC: Xen broadcasts TIMEOFFSET on the buffered ring only. */
    step = "xendevicemodel_create_ioreq_server";
    if (xendevicemodel_create_ioreq_server(x->dmod, x->domid, HVM_IOREQSRV_BUFIOREQ_ATOMIC,
                                           &io->id) < 0)
        goto fail;
    io->created = true;
    step = "xenforeignmemory_map_resource (ioreq pages)";
    io->res = xenforeignmemory_map_resource(x->fmem, x->domid, XENMEM_resource_ioreq_server, io->id,
                                            0, 2, &io->pages, PROT_READ | PROT_WRITE, 0);
    if (!io->res)
        goto fail;
    io->buf = io->pages;
    io->shared = (shared_iopage_t *)((uint8_t *)io->pages + PAGE_SIZE);
    step = "xendevicemodel_get_ioreq_server_info (buffered-ring port)";
    if (xendevicemodel_get_ioreq_server_info(x->dmod, x->domid, io->id, NULL, NULL,
                                             &io->buf_remote) < 0)
        goto fail;
    *out = io;
    return 0;
fail:
    e = errno ? errno : EIO;
    snprintf(err, errlen, "%s failed: %s", step, strerror(e));
    dm_ioreq_destroy(io);
    return -e;
}

int dm_ioreq_map_range(dm_ioreq *io, bool mmio, uint64_t start, uint64_t end)
{
    if (xendevicemodel_map_io_range_to_ioreq_server(io->x->dmod, io->x->domid, io->id, mmio, start,
                                                    end) < 0) {
        int e = errno;
        dm_err("registering %s range 0x%llx-0x%llx with the ioreq server failed: %s",
               mmio ? "MMIO" : "port", (unsigned long long)start, (unsigned long long)end,
               strerror(e));
        return -e;
    }
    return 0;
}

int dm_ioreq_unmap_range(dm_ioreq *io, bool mmio, uint64_t start, uint64_t end)
{
    if (xendevicemodel_unmap_io_range_from_ioreq_server(io->x->dmod, io->x->domid, io->id, mmio,
                                                        start, end) < 0) {
        int e = errno;
        dm_err("dropping %s range 0x%llx-0x%llx from the ioreq server failed: %s",
               mmio ? "MMIO" : "port", (unsigned long long)start, (unsigned long long)end,
               strerror(e));
        return -e;
    }
    return 0;
}

int dm_ioreq_map_pcidev(dm_ioreq *io, uint8_t bus, uint8_t dev, uint8_t fn)
{
    if (xendevicemodel_map_pcidev_to_ioreq_server(io->x->dmod, io->x->domid, io->id, 0, bus, dev,
                                                  fn) < 0) {
        int e = errno;
        dm_err("registering PCI device %02x:%02x.%u with the ioreq server failed: %s", bus, dev, fn,
               strerror(e));
        return -e;
    }
    return 0;
}

int dm_ioreq_unmap_pcidev(dm_ioreq *io, uint8_t bus, uint8_t dev, uint8_t fn)
{
    if (xendevicemodel_unmap_pcidev_from_ioreq_server(io->x->dmod, io->x->domid, io->id, 0, bus,
                                                      dev, fn) < 0) {
        int e = errno;
        dm_err("dropping PCI device %02x:%02x.%u from the ioreq server failed: %s", bus, dev, fn,
               strerror(e));
        return -e;
    }
    return 0;
}

int dm_ioreq_enable(dm_ioreq *io, char *err, size_t errlen)
{
    if (xendevicemodel_set_ioreq_server_state(io->x->dmod, io->x->domid, io->id, 1) < 0) {
        int e = errno;
        snprintf(err, errlen, "enabling the ioreq server failed: %s", strerror(e));
        return -e;
    }
    io->enabled = true;
    /* vp_eport is valid only now: Xen writes it when the server is enabled. */
    for (unsigned i = 0; i < io->nr_vcpus; i++) {
        evtchn_port_t remote = io->shared->vcpu_ioreq[i].vp_eport;
        xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(io->x->xce, io->x->domid, remote);
        if (p < 0) {
            int e = errno;
            snprintf(err, errlen, "binding vCPU %u's event channel (remote port %u) failed: %s", i,
                     remote, strerror(e));
            return -e;
        }
        io->local[i] = (evtchn_port_t)p;
    }
    xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(io->x->xce, io->x->domid,
                                                             io->buf_remote);
    if (p < 0) {
        int e = errno;
        snprintf(err, errlen, "binding the buffered-ring event channel (remote port %u) failed: %s",
                 io->buf_remote, strerror(e));
        return -e;
    }
    io->buf_local = (evtchn_port_t)p;
    return 0;
}

void dm_ioreq_destroy(dm_ioreq *io)
{
    if (!io)
        return;
    if (io->buf_local)
        xenevtchn_unbind(io->x->xce, io->buf_local);
    for (unsigned i = 0; io->local && i < io->nr_vcpus; i++)
        if (io->local[i])
            xenevtchn_unbind(io->x->xce, io->local[i]);
    if (io->enabled &&
        xendevicemodel_set_ioreq_server_state(io->x->dmod, io->x->domid, io->id, 0) < 0)
        dm_warn("disabling the ioreq server failed: %s", strerror(errno));
    if (io->res && xenforeignmemory_unmap_resource(io->x->fmem, io->res) < 0)
        dm_warn("unmapping the ioreq pages failed: %s", strerror(errno));
    if (io->created && xendevicemodel_destroy_ioreq_server(io->x->dmod, io->x->domid, io->id) < 0)
        dm_warn("destroying the ioreq server failed: %s", strerror(errno));
    free(io->local);
    free(io->ready_seen);
    free(io);
}

int dm_ioreq_fd(const dm_ioreq *io)
{
    return xenevtchn_fd(io->x->xce);
}

unsigned dm_ioreq_nr_vcpus(const dm_ioreq *io)
{
    return io->nr_vcpus;
}

void dm_ioreq_get_stats(const dm_ioreq *io, dm_ioreq_stats *out)
{
    *out = io->stats;
}

static uint64_t size_mask(unsigned size)
{
    return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

/* One access to a port or MMIO address; unclaimed reads are all-ones. */
static uint64_t device_access(dm_ioreq *io, bool mmio, uint64_t addr, unsigned size, bool write,
                       uint64_t value)
{
    uint64_t data = value & size_mask(size);
    int r = mmio ? io->ops->mmio(io->opaque, addr, size, write, &data)
                 : io->ops->pio(io->opaque, addr, size, write, &data);
    if (r < 0) {
        io->stats.unclaimed++;
        data = ~0ull;
    }
    return data & size_mask(size);
}

/* rep ins/outs and rep movs between guest RAM and a device (§2.4). */
static void rep_via_guest_ram(dm_ioreq *io, ioreq_t *req, bool mmio)
{
    for (uint32_t i = 0; i < req->count; i++) {
        int64_t step = (int64_t)i * req->size * (req->df ? -1 : 1);
        uint64_t gpa = req->data + (uint64_t)step;
        uint64_t addr = mmio ? req->addr + (uint64_t)step : req->addr;
        uint64_t v = 0;
        if (req->dir == IOREQ_READ) {
            v = device_access(io, mmio, addr, req->size, false, 0);
            if (dm_guestmem_write(io->gm, gpa, &v, req->size) < 0)
                dm_warn("rep read: guest address 0x%llx is not RAM; element dropped",
                        (unsigned long long)gpa);
        } else {
            if (dm_guestmem_read(io->gm, gpa, &v, req->size) < 0) {
                dm_warn("rep write: guest address 0x%llx is not RAM; all-ones written",
                        (unsigned long long)gpa);
                v = ~0ull;
            }
            device_access(io, mmio, addr, req->size, true, v);
        }
    }
}

static void handle_request(dm_ioreq *io, ioreq_t *req)
{
    bool sized = req->size == 1 || req->size == 2 || req->size == 4 || req->size == 8;
    if ((req->type == IOREQ_TYPE_PIO || req->type == IOREQ_TYPE_COPY ||
         req->type == IOREQ_TYPE_PCI_CONFIG) &&
        (!sized || req->count == 0 || req->count > MAX_REPS)) {
        io->stats.bad++;
        dm_warn("malformed ioreq (type %u size %u count %u); answered with all-ones", req->type,
                req->size, req->count);
        req->data = ~0ull;
        return;
    }
    switch (req->type) {
    case IOREQ_TYPE_PIO:
        io->stats.pio++;
        if (req->data_is_ptr)
            rep_via_guest_ram(io, req, false);
        else if (req->dir == IOREQ_READ)
            req->data = device_access(io, false, req->addr, req->size, false, 0);
        else
            device_access(io, false, req->addr, req->size, true, req->data);
        break;
    case IOREQ_TYPE_COPY:
        io->stats.mmio++;
        if (req->data_is_ptr) {
            rep_via_guest_ram(io, req, true);
        } else {
            for (uint32_t i = 0; i < req->count; i++) {
                int64_t step = (int64_t)i * req->size * (req->df ? -1 : 1);
                uint64_t addr = req->addr + (uint64_t)step;
                if (req->dir == IOREQ_READ)
                    req->data = device_access(io, true, addr, req->size, false, 0);
                else
                    device_access(io, true, addr, req->size, true, req->data);
            }
        }
        break;
    case IOREQ_TYPE_PCI_CONFIG: {
        io->stats.pci_config++;
        uint32_t sbdf = (uint32_t)(req->addr >> 32), reg = (uint32_t)req->addr;
        uint64_t data = req->dir == IOREQ_READ ? 0 : req->data & size_mask(req->size);
        if (req->count != 1 || io->ops->pci_config(io->opaque, sbdf, reg, req->size,
                                                   req->dir != IOREQ_READ, &data) < 0) {
            io->stats.unclaimed++;
            data = ~0ull;
        }
        if (req->dir == IOREQ_READ)
            req->data = data & size_mask(req->size);
        break;
    }
    case IOREQ_TYPE_TIMEOFFSET:
        io->stats.timeoffset++;
        if (io->ops->timeoffset)
            io->ops->timeoffset(io->opaque, (int64_t)req->data);
        break;
    case IOREQ_TYPE_INVALIDATE:
        io->stats.invalidate++;
        dm_guestmem_invalidate(io->gm);
        break;
    default:
        io->stats.bad++;
        dm_warn("ioreq of unknown type %u answered without effect", req->type);
        if (req->dir == IOREQ_READ)
            req->data = ~0ull;
        break;
    }
}

/* The buffered ring (§2.3): writes only; an 8-byte entry uses two slots. */
static void drain_buffered(dm_ioreq *io)
{
    _Atomic uint32_t *rp = (_Atomic uint32_t *)&io->buf->read_pointer;
    _Atomic uint32_t *wp = (_Atomic uint32_t *)&io->buf->write_pointer;
    for (;;) {
        uint32_t r = atomic_load_explicit(rp, memory_order_acquire);
        uint32_t w = atomic_load_explicit(wp, memory_order_acquire);
        if (atomic_load_explicit(rp, memory_order_acquire) != r)
            continue;                 /* Xen canonicalised the pair: read again */
        if (r == w)
            return;
        buf_ioreq_t *b = &io->buf->buf_ioreq[r % IOREQ_BUFFER_SLOT_NUM];
        ioreq_t req;
        memset(&req, 0, sizeof(req));
        req.type = b->type;
        req.size = 1u << b->size;
        req.addr = b->addr;
        req.data = b->data;
        req.count = 1;
        req.dir = IOREQ_WRITE;
        uint32_t used = 1;
        if (req.size == 8) {
            if (w - r < 2)
                return;               /* the second half is not published yet */
            req.data |= (uint64_t)io->buf->buf_ioreq[(r + 1) % IOREQ_BUFFER_SLOT_NUM].data << 32;
            used = 2;
        }
        io->stats.buffered++;
        handle_request(io, &req);
        atomic_fetch_add_explicit(rp, used, memory_order_release);
    }
}

static int answer_slot(dm_ioreq *io, unsigned vcpu)
{
    ioreq_t *slot = &io->shared->vcpu_ioreq[vcpu];
    if (slot_state(slot) != STATE_IOREQ_READY)
        return 0;                     /* spurious: nothing to answer */
    set_slot_state(slot, STATE_IOREQ_INPROCESS);
    io->ready_seen[vcpu] = false;
    ioreq_t req;
    memcpy(&req, slot, sizeof(req));
    drain_buffered(io);               /* buffered writes logically precede this request */
    handle_request(io, &req);
    if (io->ops->before_answer)
        io->ops->before_answer(io->opaque);
    slot->data = req.data;
    set_slot_state(slot, STATE_IORESP_READY);
    if (xenevtchn_notify(io->x->xce, io->local[vcpu]) < 0) {
        int e = errno;
        dm_err("notifying vCPU %u of its answer failed: %s", vcpu, strerror(e));
        return -e;
    }
    return 1;
}

int dm_ioreq_handle(dm_ioreq *io)
{
    xenevtchn_port_or_error_t port = xenevtchn_pending(io->x->xce);
    if (port < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        int e = errno;
        dm_err("reading pending event channels failed: %s", strerror(e));
        return -e;
    }
    if (xenevtchn_unmask(io->x->xce, (evtchn_port_t)port) < 0)
        dm_warn("unmasking event channel %d failed: %s", port, strerror(errno));
    if ((evtchn_port_t)port == io->buf_local) {
        drain_buffered(io);
        return 0;
    }
    for (unsigned i = 0; i < io->nr_vcpus; i++)
        if (io->local[i] == (evtchn_port_t)port)
            return answer_slot(io, i);
    dm_warn("notification on unknown event channel %d ignored", port);
    return 0;
}

/* Answers READY slots without waiting for their notification; with
 * `grace`, only those already READY at the previous graced pass. */
static int answer_unnotified(dm_ioreq *io, bool grace)
{
    int answered = 0;
    drain_buffered(io);
    for (unsigned i = 0; i < io->nr_vcpus; i++) {
        if (!io->local[i])
            continue;
        if (grace) {
            bool ready = slot_state(&io->shared->vcpu_ioreq[i]) == STATE_IOREQ_READY;
            /* First sighting: its notification may just not be handled yet. */
            bool first = ready && !io->ready_seen[i];
            io->ready_seen[i] = ready;
            if (!ready || first)
                continue;
        }
        int r = answer_slot(io, i);
        if (r < 0)
            return r;
        if (r > 0)
            io->stats.rescued++;
        answered += r;
    }
    return answered;
}

int dm_ioreq_rescue(dm_ioreq *io)
{
    return answer_unnotified(io, true);
}

int dm_ioreq_scan(dm_ioreq *io)
{
    return answer_unnotified(io, false);
}
