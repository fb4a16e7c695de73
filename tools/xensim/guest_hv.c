/*
 * xensim guests: the hypervisor back-end (see guest_hv.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hv.h"
#include "guest_hv.h"

struct gh {
    struct hv_domain *d;
    unsigned vcpu;
    uint8_t *ram;
    uint64_t ram_size;
    const atomic_bool *abort;   /* set: stop waiting for a paused vCPU */
    const atomic_bool *suspend; /* set: the toolstack suspends the guest */
    pthread_rwlock_t *exec;     /* held (read) while this vCPU writes RAM */
};

/* How often a waiting vCPU that may be frozen looks at the suspend
 * request and the domain's pause (a wait itself is woken by its event). */
#define GH_FREEZE_POLL_MS 50

void guest_hv_set_guest(struct guest_bus *b, const atomic_bool *abort,
                        const atomic_bool *suspend, pthread_rwlock_t *exec)
{
    struct gh *g = b->priv;
    g->abort = abort;
    g->suspend = suspend;
    g->exec = exec;
}

static bool aborted(const struct gh *g)
{
    return g->abort && atomic_load(g->abort);
}

static bool domain_paused(const struct gh *g)
{
    struct hv_domain_info i;
    return hv_domain_info(hv_domain_id(g->d), &i) == 0 && i.paused;
}

/* A toolstack suspend freezes a vCPU only where its caller can continue
 * (guest_bus.h: a command's completion wait) and only while the domain is
 * paused: a running vCPU finishes what it does, as with every stop. */
static bool may_freeze(const struct guest_bus *b, const struct gh *g)
{
    return b->resumable && b->completing && g->suspend && atomic_load(g->suspend);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The access after its first try: rc as the hypervisor answered, or
 * GUEST_FROZEN.  *paused is set when the vCPU was held paused. */
static int io_wait(struct guest_bus *b, struct gh *g, ioreq_t *r, int slice, int rc,
                   bool *paused)
{
    if (rc == -EBUSY && g->abort) {
        /* A read this vCPU was frozen in (below) was answered while the
         * domain stayed paused; the vCPU, running again, takes that answer
         * and repeats the read, as the instruction it was in would. */
        ioreq_t old = *r;
        if (hv_vcpu_io_wait(g->d, g->vcpu, &old, b->timeout_ms) == 0)
            rc = hv_vcpu_io(g->d, g->vcpu, r, slice);
    }
    /* A paused vCPU simply stays paused (nothing was sent), however long
     * the dm or the toolstack keeps it so; only a runner tearing down
     * gives up, and a suspend freezes it where that is allowed. */
    while (rc == -EAGAIN && g->abort && !aborted(g)) {
        *paused = true;
        /* not sent: a poll's read is simply repeated; a command's start
         * must still be sent, so a write is not frozen here */
        if (r->dir == IOREQ_READ && may_freeze(b, g))
            return GUEST_FROZEN;
        rc = hv_vcpu_io(g->d, g->vcpu, r, slice);
    }
    /* Still outstanding: a real vCPU keeps waiting.  While the domain is
     * paused the answer cannot be taken, so that wait is not counted;
     * a running domain gets one more bound.  Sent, the access may be
     * frozen here: a completion poll's read is repeated after the resume,
     * and a command's start (a write, `completing` set around it by the
     * driver) has reached the device, which may even have stopped the VM
     * on that very command before the vCPU took the answer. */
    for (int waited = slice; rc == -ETIMEDOUT && !aborted(g);) {
        bool now_paused = g->abort && domain_paused(g);
        *paused = *paused || now_paused;
        if (now_paused && may_freeze(b, g))
            return GUEST_FROZEN;
        if (!now_paused && waited >= 2 * b->timeout_ms)
            break;
        if (!now_paused)
            waited += slice;
        rc = hv_vcpu_io_wait(g->d, g->vcpu, r, slice);
    }
    return rc;
}

static int io(struct guest_bus *b, uint8_t type, uint8_t dir, uint64_t addr, unsigned size,
              uint64_t *data)
{
    struct gh *g = b->priv;
    ioreq_t r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.dir = dir;
    r.addr = addr;
    r.size = size;
    r.count = 1;
    r.data = dir == IOREQ_WRITE ? *data : 0;
    bool freezable = b->resumable && b->completing && g->suspend;
    int slice = freezable ? GH_FREEZE_POLL_MS : b->timeout_ms;
    int64_t t0 = mono_ms();
    bool paused = g->abort && domain_paused(g);   /* the first try may wait it out */
    int rc = io_wait(b, g, &r, slice, hv_vcpu_io(g->d, g->vcpu, &r, slice), &paused);
    if (paused || rc == -EAGAIN)
        b->paused_ms += (uint64_t)(mono_ms() - t0);
    if (rc == GUEST_FROZEN)
        return rc;
    if (rc < 0)
        return guest_bus_fail(b, "hv: vCPU %u %s %s 0x%llx size %u: %s", g->vcpu,
                              type == IOREQ_TYPE_PIO ? "port" : "MMIO",
                              dir == IOREQ_READ ? "read" : "write", (unsigned long long)addr,
                              size, strerror(-rc));
    if (dir == IOREQ_READ)
        *data = size >= 8 ? r.data : r.data & ((1ull << (size * 8)) - 1);
    return 0;
}

static int gh_pio_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val)
{
    uint64_t v = 0;
    if (io(b, IOREQ_TYPE_PIO, IOREQ_READ, port, size, &v) < 0)
        return -1;
    *val = (uint32_t)v;
    return 0;
}

static int gh_pio_out(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val)
{
    uint64_t v = val;
    return io(b, IOREQ_TYPE_PIO, IOREQ_WRITE, port, size, &v);
}

static int gh_mmio_read(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t *val)
{
    return io(b, IOREQ_TYPE_COPY, IOREQ_READ, addr, size, val);
}

static int gh_mmio_write(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t val)
{
    return io(b, IOREQ_TYPE_COPY, IOREQ_WRITE, addr, size, &val);
}

static int gh_mem_read(struct guest_bus *b, uint64_t gpa, void *buf, size_t len)
{
    struct gh *g = b->priv;
    if (gpa > g->ram_size || len > g->ram_size - gpa)
        return guest_bus_fail(b, "hv: RAM read 0x%llx+%zu beyond %llu bytes",
                              (unsigned long long)gpa, len, (unsigned long long)g->ram_size);
    memcpy(buf, g->ram + gpa, len);
    return 0;
}

static int gh_mem_write(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len)
{
    struct gh *g = b->priv;
    if (gpa > g->ram_size || len > g->ram_size - gpa)
        return guest_bus_fail(b, "hv: RAM write 0x%llx+%zu beyond %llu bytes",
                              (unsigned long long)gpa, len, (unsigned long long)g->ram_size);
    if (!g->exec) {
        memcpy(g->ram + gpa, buf, len);
        return 0;
    }
    /* A paused vCPU executes nothing, so it writes no RAM either: whoever
     * holds `exec` for writing (the stopped-dm check) sees only what
     * devices write. */
    for (;;) {
        int rc = hv_vcpu_wait_runnable(g->d, g->vcpu, b->timeout_ms);
        if (rc == -ETIMEDOUT && !aborted(g))
            continue;
        if (rc < 0)
            return guest_bus_fail(b, "hv: vCPU %u cannot run to write RAM: %s", g->vcpu,
                                  strerror(-rc));
        /* As a store through the p2m: log-dirty sees it (a live
         * migration sends the page again); paused again meanwhile, the
         * vCPU waits once more. */
        pthread_rwlock_rdlock(g->exec);
        rc = hv_guest_write(hv_domain_id(g->d), gpa, buf, len);
        pthread_rwlock_unlock(g->exec);
        if (rc == 0)
            return 0;
        if (rc != -EAGAIN || aborted(g))
            return guest_bus_fail(b, "hv: vCPU %u RAM write 0x%llx+%zu: %s", g->vcpu,
                                  (unsigned long long)gpa, len, strerror(-rc));
    }
}

static int gh_irq_wait(struct guest_bus *b, unsigned gsi, int timeout_ms)
{
    struct gh *g = b->priv;
    struct hv_irq_state st;
    int rc = hv_irq_state(g->d, &st);
    if (rc < 0)
        return guest_bus_fail(b, "hv: interrupt state: %s", strerror(-rc));
    uint64_t seq = st.seq;
    /* A runner's vCPU waits in slices: time while the domain is paused is
     * not the guest's (it does not count against the bound), and a
     * suspend may freeze the vCPU in this wait. */
    int slice = g->abort ? GH_FREEZE_POLL_MS : timeout_ms;
    for (int waited = 0;;) {
        bool paused = g->abort && domain_paused(g);
        if (paused && may_freeze(b, g))
            return GUEST_FROZEN;
        if (st.level[gsi])
            return 1;
        if (aborted(g) || waited >= timeout_ms)
            return 0;
        rc = hv_irq_wait(g->d, &seq, slice);
        if (rc == -ETIMEDOUT) {
            if (!paused)
                waited += slice;
            continue;
        }
        if (rc < 0 || (rc = hv_irq_state(g->d, &st)) < 0)
            return guest_bus_fail(b, "hv: waiting for line %u: %s", gsi, strerror(-rc));
    }
}

static int gh_irq_level(struct guest_bus *b, unsigned gsi)
{
    struct gh *g = b->priv;
    struct hv_irq_state st;
    int rc = hv_irq_state(g->d, &st);
    if (rc < 0)
        return guest_bus_fail(b, "hv: interrupt state: %s", strerror(-rc));
    return st.level[gsi] ? 1 : 0;
}

static uint64_t gh_irq_count(struct guest_bus *b, unsigned gsi)
{
    struct gh *g = b->priv;
    struct hv_irq_state st;
    if (gsi >= HV_NR_GSIS || hv_irq_state(g->d, &st) < 0)
        return 0;
    return st.edges[gsi];
}

static void gh_close(struct guest_bus *b)
{
    struct gh *g = b->priv;
    if (!g)
        return;
    hv_domain_put(g->d);
    free(g);
    b->priv = NULL;
}

static const struct guest_bus_ops gh_ops = {
    .pio_in = gh_pio_in, .pio_out = gh_pio_out,
    .mmio_read = gh_mmio_read, .mmio_write = gh_mmio_write,
    .mem_read = gh_mem_read, .mem_write = gh_mem_write,
    .irq_wait = gh_irq_wait, .irq_level = gh_irq_level, .irq_count = gh_irq_count,
    .close = gh_close,
};

int guest_hv_open(struct guest_bus *b, uint32_t domid, unsigned vcpu, uint64_t ram_base,
                  char *err, size_t errlen)
{
    struct hv_domain *d = hv_domain_get(domid);
    if (!d) {
        snprintf(err, errlen, "hv: no domain %u", domid);
        return -1;
    }
    struct gh *g = calloc(1, sizeof(*g));
    if (!g) {
        hv_domain_put(d);
        snprintf(err, errlen, "hv: out of memory");
        return -1;
    }
    g->d = d;
    g->vcpu = vcpu;
    g->ram = hv_domain_ram(d, &g->ram_size);
    if (!g->ram || ram_base >= g->ram_size) {
        snprintf(err, errlen, "hv: domain %u has no RAM above 0x%llx", domid,
                 (unsigned long long)ram_base);
        hv_domain_put(d);
        free(g);
        return -1;
    }
    guest_bus_init(b, &gh_ops, g, ram_base, g->ram_size);
    return 0;
}
