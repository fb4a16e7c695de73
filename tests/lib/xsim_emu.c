/*
 * The in-process hypervisor fixture and the minimal emulator of
 * xsim_emu.h.  The emulator follows the handshake of reference §2.2:
 * pending → unmask → acquire-load READY → INPROCESS → handle → release
 * IORESP_READY → notify.
 */
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xsim_emu.h"

#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>

#include "hv.h"
#include "hv_server.h"

/* ------------------------------------------------------------ fixture */

static char rundir[256];

const char *xsim_fixture_rundir(void)
{
    return rundir;
}

int xsim_fixture_start(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(rundir, sizeof(rundir), "%s/xsim-hv-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(rundir)) {
        int e = errno;
        fprintf(stderr, "mkdtemp %s: %s\n", rundir, strerror(e));
        return -e;
    }
    setenv("XENSIM_RUNDIR", rundir, 1);
    hv_init();
    return hv_server_start(rundir);
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

void xsim_fixture_stop(void)
{
    hv_reset();
    hv_server_stop();
    if (rundir[0])
        nftw(rundir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    rundir[0] = 0;
}

/* ------------------------------------------------------------ slot access */

static ioreq_t *slot(struct xsim_emu *e, unsigned int vcpu)
{
    return &e->shared->vcpu_ioreq[vcpu];
}

/* state is a bitfield: operate on its byte atomically */
uint8_t xsim_emu_slot_state(struct xsim_emu *e, unsigned int vcpu)
{
    uint8_t b = __atomic_load_n((uint8_t *)slot(e, vcpu) + 30, __ATOMIC_ACQUIRE);
    return b & 0xf;
}

static void set_state(struct xsim_emu *e, unsigned int vcpu, uint8_t st)
{
    uint8_t *p = (uint8_t *)slot(e, vcpu) + 30;
    uint8_t b = __atomic_load_n(p, __ATOMIC_RELAXED);
    __atomic_store_n(p, (uint8_t)((b & 0xf0) | (st & 0xf)), __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------ setup */

static int fail(const char *what, int e)
{
    fprintf(stderr, "xsim_emu: %s: %s\n", what, strerror(e));
    return -e;
}

int xsim_emu_open(struct xsim_emu *e, uint32_t domid, int bufioreq)
{
    memset(e, 0, sizeof(*e));
    e->domid = domid;
    e->bufioreq = bufioreq;
    e->stop_fd = -1;
    e->fn = xsim_emu_scratch;
    if (!(e->dm = xendevicemodel_open(NULL, 0)))
        return fail("xendevicemodel_open", errno);
    if (!(e->fm = xenforeignmemory_open(NULL, 0)))
        return fail("xenforeignmemory_open", errno);
    if (!(e->xce = xenevtchn_open(NULL, 0)))
        return fail("xenevtchn_open", errno);
    if (xendevicemodel_nr_vcpus(e->dm, (domid_t)domid, &e->nr_vcpus) < 0)
        return fail("nr_vcpus", errno);
    if (xendevicemodel_create_ioreq_server(e->dm, (domid_t)domid, bufioreq,
                                           &e->id) < 0)
        return fail("create_ioreq_server", errno);
    unsigned long frame = bufioreq ? 0 : XENMEM_resource_ioreq_server_frame_ioreq(0);
    unsigned long nr = bufioreq ? 2 : 1;
    e->pages = NULL;
    e->res = xenforeignmemory_map_resource(e->fm, (domid_t)domid,
                                           XENMEM_resource_ioreq_server, e->id,
                                           frame, nr, &e->pages,
                                           PROT_READ | PROT_WRITE, 0);
    if (!e->res)
        return fail("map_resource", errno);
    e->shared = (shared_iopage_t *)((char *)e->pages + (bufioreq ? 4096 : 0));
    return 0;
}

int xsim_emu_set_state(struct xsim_emu *e, bool enabled)
{
    if (xendevicemodel_set_ioreq_server_state(e->dm, (domid_t)e->domid, e->id,
                                              enabled) < 0)
        return fail("set_ioreq_server_state", errno);
    return 0;
}

int xsim_emu_bind(struct xsim_emu *e)
{
    for (unsigned int v = 0; v < e->nr_vcpus && v < 128; v++) {
        evtchn_port_t rp = slot(e, v)->vp_eport;
        int lp = xenevtchn_bind_interdomain(e->xce, e->domid, rp);
        if (lp < 0)
            return fail("bind_interdomain", errno);
        e->local[v] = (evtchn_port_t)lp;
    }
    return 0;
}

int xsim_emu_setup(struct xsim_emu *e, uint32_t domid)
{
    int rc = xsim_emu_open(e, domid, HVM_IOREQSRV_BUFIOREQ_OFF);
    if (rc)
        return rc;
    if (xendevicemodel_map_io_range_to_ioreq_server(e->dm, (domid_t)domid, e->id, 0,
                                                    XSIM_EMU_PORT,
                                                    XSIM_EMU_PORT + 0xff) < 0 ||
        xendevicemodel_map_io_range_to_ioreq_server(e->dm, (domid_t)domid, e->id, 1,
                                                    XSIM_EMU_MMIO,
                                                    XSIM_EMU_MMIO + 0x7ff) < 0 ||
        xendevicemodel_map_pcidev_to_ioreq_server(e->dm, (domid_t)domid, e->id,
                                                  0, 0, 3, 0) < 0)
        return fail("map ranges", errno);
    rc = xsim_emu_set_state(e, true);
    if (rc)
        return rc;
    return xsim_emu_bind(e);
}

void xsim_emu_close(struct xsim_emu *e)
{
    xsim_emu_stop_thread(e);
    for (unsigned int v = 0; v < 128; v++)
        if (e->local[v])
            xenevtchn_unbind(e->xce, e->local[v]);
    if (e->dm) {
        xendevicemodel_set_ioreq_server_state(e->dm, (domid_t)e->domid, e->id, 0);
    }
    if (e->res)
        xenforeignmemory_unmap_resource(e->fm, e->res);
    if (e->dm) {
        xendevicemodel_destroy_ioreq_server(e->dm, (domid_t)e->domid, e->id);
        xendevicemodel_close(e->dm);
    }
    if (e->fm)
        xenforeignmemory_close(e->fm);
    if (e->xce)
        xenevtchn_close(e->xce);
    memset(e, 0, sizeof(*e));
}

/* ------------------------------------------------------------ device */

void xsim_emu_scratch(struct xsim_emu *e, unsigned int vcpu, ioreq_t *req,
                      void *opaque)
{
    (void)vcpu; (void)opaque;
    unsigned int idx;
    switch (req->type) {
    case IOREQ_TYPE_PIO:
        idx = (unsigned int)(req->addr - XSIM_EMU_PORT) & 0xff;
        break;
    case IOREQ_TYPE_COPY:
        idx = (unsigned int)((req->addr - XSIM_EMU_MMIO) / 8) & 0xff;
        break;
    case IOREQ_TYPE_PCI_CONFIG:
        if ((req->addr & 0xffffffffu) == 0 && req->dir == IOREQ_READ) {
            req->data = 0x12345678u;
            return;
        }
        idx = (unsigned int)((req->addr & 0xff) / 4);
        break;
    default:
        return;                 /* INVALIDATE etc.: nothing to do, answered */
    }
    if (req->data_is_ptr)
        return;
    if (req->dir == IOREQ_WRITE)
        e->scratch[idx] = req->data;
    else
        req->data = e->scratch[idx];
}

/* ------------------------------------------------------------ handshake */

static int vcpu_of(struct xsim_emu *e, evtchn_port_t lp)
{
    for (unsigned int v = 0; v < e->nr_vcpus && v < 128; v++)
        if (e->local[v] == lp)
            return (int)v;
    return -1;
}

/* Wait for an event; returns the vCPU whose port fired, -ETIMEDOUT, or
 * -EAGAIN for an event that was not a vCPU's. */
static int wait_event(struct xsim_emu *e, int timeout_ms)
{
    struct pollfd p[2] = { { .fd = xenevtchn_fd(e->xce), .events = POLLIN },
                           { .fd = e->stop_fd, .events = POLLIN } };
    int n = poll(p, e->stop_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    if (e->stop_fd >= 0 && p[1].revents)
        return -ECANCELED;
    int port = xenevtchn_pending(e->xce);
    if (port < 0)
        return -EAGAIN;
    xenevtchn_unmask(e->xce, (evtchn_port_t)port);
    int v = vcpu_of(e, (evtchn_port_t)port);
    return v < 0 ? -EAGAIN : v;
}

static void answer(struct xsim_emu *e, unsigned int v)
{
    set_state(e, v, STATE_IORESP_READY);
    xenevtchn_notify(e->xce, e->local[v]);
}

int xsim_emu_poll(struct xsim_emu *e, int timeout_ms)
{
    int v = wait_event(e, timeout_ms);
    if (v == -ETIMEDOUT || v == -EAGAIN)
        return 0;
    if (v < 0)
        return v;
    /* Any slot may be READY (events can coalesce): look at all. */
    int n = 0;
    for (unsigned int i = 0; i < e->nr_vcpus && i < 128; i++) {
        if (xsim_emu_slot_state(e, i) != STATE_IOREQ_READY)
            continue;
        ioreq_t req = *slot(e, i);
        set_state(e, i, STATE_IOREQ_INPROCESS);
        e->fn(e, i, &req, e->opaque);
        slot(e, i)->data = req.data;
        answer(e, i);
        e->handled++;
        n++;
    }
    return n;
}

int xsim_emu_take(struct xsim_emu *e, int timeout_ms, ioreq_t *out)
{
    for (;;) {
        for (unsigned int i = 0; i < e->nr_vcpus && i < 128; i++) {
            if (xsim_emu_slot_state(e, i) != STATE_IOREQ_READY)
                continue;
            *out = *slot(e, i);
            set_state(e, i, STATE_IOREQ_INPROCESS);
            return (int)i;
        }
        int v = wait_event(e, timeout_ms);
        if (v == -ETIMEDOUT || v == -ECANCELED)
            return v;
    }
}

int xsim_emu_answer(struct xsim_emu *e, unsigned int vcpu, uint64_t data)
{
    slot(e, vcpu)->data = data;
    answer(e, vcpu);
    return 0;
}

int xsim_emu_force_state(struct xsim_emu *e, unsigned int vcpu, uint8_t st)
{
    set_state(e, vcpu, st);
    return xenevtchn_notify(e->xce, e->local[vcpu]) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------ thread */

static void *emu_thread(void *arg)
{
    struct xsim_emu *e = arg;
    for (;;) {
        int n = xsim_emu_poll(e, -1);
        if (n == -ECANCELED)
            break;
        if (n < 0) {
            fprintf(stderr, "xsim_emu thread: %s\n", strerror(-n));
            break;
        }
    }
    return NULL;
}

int xsim_emu_start_thread(struct xsim_emu *e)
{
    e->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (e->stop_fd < 0)
        return -errno;
    pthread_t t;
    int rc = pthread_create(&t, NULL, emu_thread, e);
    if (rc)
        return -rc;
    e->thread = (unsigned long)t;
    e->thread_running = true;
    return 0;
}

void xsim_emu_stop_thread(struct xsim_emu *e)
{
    if (!e->thread_running)
        return;
    uint64_t one = 1;
    if (write(e->stop_fd, &one, sizeof(one)) < 0)
        perror("xsim_emu stop");
    pthread_join((pthread_t)e->thread, NULL);
    close(e->stop_fd);
    e->stop_fd = -1;
    e->thread_running = false;
}

/* ------------------------------------------------------------ guest side */

static int io(struct hv_domain *d, unsigned int vcpu, uint8_t type, bool write,
              uint64_t addr, unsigned int size, uint64_t *val)
{
    ioreq_t r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.addr = addr;
    r.size = size;
    r.count = 1;
    r.dir = write ? IOREQ_WRITE : IOREQ_READ;
    r.data = write ? *val : 0;
    int rc = hv_vcpu_io(d, vcpu, &r, XSIM_EMU_WAIT_MS);
    if (rc == 0 && !write)
        *val = r.data;
    return rc;
}

int xsim_pio(struct hv_domain *d, unsigned int vcpu, bool write, uint16_t port,
             unsigned int size, uint64_t *val)
{
    return io(d, vcpu, IOREQ_TYPE_PIO, write, port, size, val);
}

int xsim_mmio(struct hv_domain *d, unsigned int vcpu, bool write,
              uint64_t addr, unsigned int size, uint64_t *val)
{
    return io(d, vcpu, IOREQ_TYPE_COPY, write, addr, size, val);
}

int xsim_pci_cfg(struct hv_domain *d, unsigned int vcpu, bool write,
                 unsigned int bus, unsigned int dev, unsigned int fn,
                 unsigned int reg, unsigned int size, uint64_t *val)
{
    uint64_t cf8 = 0x80000000u | (bus << 16) | (dev << 11) | (fn << 8) |
                   (reg & 0xfc);
    int rc = xsim_pio(d, vcpu, true, 0xcf8, 4, &cf8);
    if (rc)
        return rc;
    return xsim_pio(d, vcpu, write, (uint16_t)(0xcfc + (reg & 3)), size, val);
}

int xsim_fixture_setup(void **state)
{
    (void)state;
    return xsim_fixture_start();
}

int xsim_fixture_teardown(void **state)
{
    (void)state;
    xsim_fixture_stop();
    return 0;
}
