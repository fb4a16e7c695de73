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
    /* Held (read) by every access that uses d or ram, (write) by a freeze:
     * a move never happens under an access. */
    pthread_rwlock_t use;
    pthread_mutex_t mu;         /* d changes under it too ... */
    pthread_cond_t moved;       /* ... and this is broadcast */
    atomic_ulong move_waits;
    atomic_bool movable;        /* guest_hv_set_movable */
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

static bool domain_paused(const struct hv_domain *d)
{
    struct hv_domain_info i;
    return hv_domain_info(hv_domain_id(d), &i) == 0 && i.paused;
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

/* One access on domain d: 0, GUEST_FROZEN, or a negative errno.  *paused
 * is set when the vCPU was held paused. */
static int io_on(struct guest_bus *b, struct hv_domain *d, ioreq_t *rq, bool *paused)
{
    struct gh *g = b->priv;
    ioreq_t r = *rq;
    bool freezable = b->resumable && b->completing && g->suspend;
    int slice = freezable ? GH_FREEZE_POLL_MS : b->timeout_ms;
    *paused = *paused || (g->abort && domain_paused(d));   /* the first try may wait it out */
    int rc = hv_vcpu_io(d, g->vcpu, &r, slice);
    if (rc == -EBUSY && g->abort) {
        /* A read this vCPU was frozen in (below) was answered while the
         * domain stayed paused; the vCPU, running again, takes that answer
         * and repeats the read, as the instruction it was in would. */
        ioreq_t old = r;
        if (hv_vcpu_io_wait(d, g->vcpu, &old, b->timeout_ms) == 0)
            rc = hv_vcpu_io(d, g->vcpu, &r, slice);
    }
    /* A paused vCPU simply stays paused (nothing was sent), however long
     * the dm or the toolstack keeps it so; only a runner tearing down
     * gives up, and a suspend freezes it where that is allowed. */
    while (rc == -EAGAIN && g->abort && !aborted(g)) {
        *paused = true;
        /* not sent: a poll's read is simply repeated; a command's start
         * must still be sent, so a write is not frozen here */
        if (r.dir == IOREQ_READ && may_freeze(b, g))
            return GUEST_FROZEN;
        rc = hv_vcpu_io(d, g->vcpu, &r, slice);
    }
    /* Still outstanding: a real vCPU keeps waiting.  While the domain is
     * paused the answer cannot be taken, so that wait is not counted;
     * a running domain gets one more bound.  Sent, the access may be
     * frozen here: a completion poll's read is repeated after the resume,
     * and a command's start (a write, `completing` set around it by the
     * driver) has reached the device, which may even have stopped the VM
     * on that very command before the vCPU took the answer. */
    for (int waited = slice; rc == -ETIMEDOUT && !aborted(g);) {
        bool now_paused = g->abort && domain_paused(d);
        *paused = *paused || now_paused;
        if (now_paused && may_freeze(b, g))
            return GUEST_FROZEN;
        if (!now_paused && waited >= 2 * b->timeout_ms)
            break;
        if (!now_paused)
            waited += slice;
        rc = hv_vcpu_io_wait(d, g->vcpu, &r, slice);
    }
    *rq = r;
    return rc;
}

/* After an access found domain `was` shut down: whether to run it again
 * because the vCPU moved to another domain.  Only a suspended domain's
 * vCPU continues elsewhere (or one whose domain is already gone, as the
 * toolstack destroys the source before the move completes), and only on
 * a movable bus: the wait for the move is bounded by timeout_ms.  A crash
 * or a poweroff ends it. */
static bool await_move(struct gh *g, uint32_t was, int timeout_ms)
{
    struct hv_domain_info i;
    int r = hv_domain_info(was, &i);
    bool movable = atomic_load(&g->movable) &&
                   (r < 0 || (i.shutting_down && !i.crashed && i.shutdown_reason == SHUTDOWN_suspend));
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long ns = end.tv_nsec + (long long)timeout_ms * 1000000;
    end.tv_sec += (time_t)(ns / 1000000000);
    end.tv_nsec = (long)(ns % 1000000000);
    if (movable)
        atomic_fetch_add(&g->move_waits, 1);
    pthread_mutex_lock(&g->mu);
    while (movable && hv_domain_id(g->d) == was)
        if (pthread_cond_timedwait(&g->moved, &g->mu, &end) == ETIMEDOUT)
            break;
    bool moved = hv_domain_id(g->d) != was;
    pthread_mutex_unlock(&g->mu);
    return moved;
}

/* The domain the vCPU runs on, with a reference of the caller's own (for
 * waits made without holding `use`).  NULL: the reason is in b->err. */
static struct hv_domain *current_domain(struct guest_bus *b)
{
    struct gh *g = b->priv;
    pthread_rwlock_rdlock(&g->use);
    uint32_t id = hv_domain_id(g->d);
    struct hv_domain *d = hv_domain_get(id);
    pthread_rwlock_unlock(&g->use);
    if (!d)
        guest_bus_fail(b, "hv: vCPU %u: domain %u is gone", g->vcpu, id);
    return d;
}

static int io(struct guest_bus *b, uint8_t type, uint8_t dir, uint64_t addr, unsigned size,
              uint64_t *data)
{
    struct gh *g = b->priv;
    ioreq_t r;
    int rc;
    int64_t t0 = mono_ms();
    bool paused = false;
    for (;;) {
        memset(&r, 0, sizeof(r));
        r.type = type;
        r.dir = dir;
        r.addr = addr;
        r.size = size;
        r.count = 1;
        r.data = dir == IOREQ_WRITE ? *data : 0;
        pthread_rwlock_rdlock(&g->use);
        uint32_t id = hv_domain_id(g->d);
        rc = io_on(b, g->d, &r, &paused);
        pthread_rwlock_unlock(&g->use);
        if (rc != -ESHUTDOWN || !await_move(g, id, b->timeout_ms))
            break;
    }
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
    pthread_rwlock_rdlock(&g->use);
    int rc = 0;
    if (gpa > g->ram_size || len > g->ram_size - gpa)
        rc = guest_bus_fail(b, "hv: RAM read 0x%llx+%zu beyond %llu bytes",
                            (unsigned long long)gpa, len, (unsigned long long)g->ram_size);
    else
        memcpy(buf, g->ram + gpa, len);
    pthread_rwlock_unlock(&g->use);
    return rc;
}

/* One store through the p2m on the current domain: 0, or a negative errno
 * (*was: the domain's id). */
static int store(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len,
                 uint32_t *was)
{
    struct gh *g = b->priv;
    pthread_rwlock_rdlock(&g->use);
    struct hv_domain *d = g->d;
    *was = hv_domain_id(d);
    int rc = hv_vcpu_wait_runnable(d, g->vcpu, b->timeout_ms);
    if (rc == 0) {
        /* As a store through the p2m: log-dirty sees it (a live
         * migration sends the page again); paused again meanwhile, the
         * vCPU waits once more. */
        pthread_rwlock_rdlock(g->exec);
        rc = hv_guest_write(hv_domain_id(d), gpa, buf, len);
        pthread_rwlock_unlock(g->exec);
    }
    pthread_rwlock_unlock(&g->use);
    return rc;
}

static int gh_mem_write(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len)
{
    struct gh *g = b->priv;
    if (gpa > g->ram_size || len > g->ram_size - gpa)
        return guest_bus_fail(b, "hv: RAM write 0x%llx+%zu beyond %llu bytes",
                              (unsigned long long)gpa, len, (unsigned long long)g->ram_size);
    if (!g->exec) {
        /* Stores between the suspend and the freeze land in the RAM the
         * toolstack copies while frozen: none is lost by a move. */
        pthread_rwlock_rdlock(&g->use);
        memcpy(g->ram + gpa, buf, len);
        pthread_rwlock_unlock(&g->use);
        return 0;
    }
    /* A paused vCPU executes nothing, so it writes no RAM either: whoever
     * holds `exec` for writing (the stopped-dm check) sees only what
     * devices write. */
    for (;;) {
        uint32_t was;
        int rc = store(b, gpa, buf, len, &was);
        if (rc == 0)
            return 0;
        if ((rc == -ETIMEDOUT || rc == -EAGAIN) && !aborted(g))
            continue;
        if (rc == -ESHUTDOWN && await_move(g, was, b->timeout_ms))
            continue;
        return guest_bus_fail(b, "hv: vCPU %u RAM write 0x%llx+%zu: %s", g->vcpu,
                              (unsigned long long)gpa, len, strerror(-rc));
    }
}

/* The wait on domain d: 1, 0, GUEST_FROZEN, or a negative errno. */
static int irq_wait_on(struct guest_bus *b, struct hv_domain *d, unsigned gsi, int timeout_ms)
{
    struct gh *g = b->priv;
    struct hv_irq_state st;
    int rc = hv_irq_state(d, &st);
    if (rc < 0)
        return rc;
    uint64_t seq = st.seq;
    /* A runner's vCPU waits in slices: time while the domain is paused is
     * not the guest's (it does not count against the bound), and a
     * suspend may freeze the vCPU in this wait. */
    int slice = g->abort ? GH_FREEZE_POLL_MS : timeout_ms;
    for (int waited = 0;;) {
        bool paused = g->abort && domain_paused(d);
        if (paused && may_freeze(b, g))
            return GUEST_FROZEN;
        if (st.level[gsi])
            return 1;
        if (aborted(g) || waited >= timeout_ms)
            return 0;
        rc = hv_irq_wait(d, &seq, slice);
        if (rc == -ETIMEDOUT) {
            if (!paused)
                waited += slice;
            continue;
        }
        if (rc < 0 || (rc = hv_irq_state(d, &st)) < 0)
            return rc;
    }
}

/* Without holding `use`: a freeze must not wait for an interrupt.  The
 * source domain destroyed under the wait ends it; on a movable bus the
 * wait goes on on the domain the vCPU moved to. */
static int gh_irq_wait(struct guest_bus *b, unsigned gsi, int timeout_ms)
{
    struct gh *g = b->priv;
    for (;;) {
        struct hv_domain *d = current_domain(b);
        if (!d)
            return -1;
        uint32_t id = hv_domain_id(d);
        int rc = irq_wait_on(b, d, gsi, timeout_ms);
        hv_domain_put(d);
        if (rc >= 0 || rc == GUEST_FROZEN)
            return rc;
        if (rc == -ESHUTDOWN && await_move(g, id, timeout_ms))
            continue;
        return guest_bus_fail(b, "hv: waiting for line %u: %s", gsi, strerror(-rc));
    }
}

static int gh_irq_level(struct guest_bus *b, unsigned gsi)
{
    struct hv_domain *d = current_domain(b);
    if (!d)
        return -1;
    struct hv_irq_state st;
    int rc = hv_irq_state(d, &st);
    hv_domain_put(d);
    if (rc < 0)
        return guest_bus_fail(b, "hv: interrupt state: %s", strerror(-rc));
    return st.level[gsi] ? 1 : 0;
}

static uint64_t gh_irq_count(struct guest_bus *b, unsigned gsi)
{
    struct hv_domain *d = current_domain(b);
    struct hv_irq_state st;
    int rc = d && gsi < HV_NR_GSIS ? hv_irq_state(d, &st) : -1;
    hv_domain_put(d);
    return rc < 0 ? 0 : st.edges[gsi];
}

static void gh_close(struct guest_bus *b)
{
    struct gh *g = b->priv;
    if (!g)
        return;
    hv_domain_put(g->d);
    pthread_rwlock_destroy(&g->use);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->moved);
    free(g);
    b->priv = NULL;
}

unsigned long guest_hv_move_waits(struct guest_bus *b)
{
    struct gh *g = b->priv;
    return atomic_load(&g->move_waits);
}

void guest_hv_set_movable(struct guest_bus *b, bool movable)
{
    struct gh *g = b->priv;
    atomic_store(&g->movable, movable);
}

void guest_hv_freeze(struct guest_bus *b)
{
    struct gh *g = b->priv;
    pthread_rwlock_wrlock(&g->use);
}

int guest_hv_move(struct guest_bus *b, uint32_t domid, char *err, size_t errlen)
{
    struct gh *g = b->priv;
    struct hv_domain *d = hv_domain_get(domid);
    uint64_t size = 0;
    uint8_t *ram = d ? hv_domain_ram(d, &size) : NULL;
    int rc = 0;
    if (!ram || size < g->ram_size) {
        snprintf(err, errlen, "hv: vCPU %u cannot move to domain %u: %s", g->vcpu, domid,
                 !d ? "no such domain" : !ram ? "it has no RAM" : "it has less RAM");
        hv_domain_put(d);
        rc = -1;
    } else {
        struct hv_domain *old = g->d;
        pthread_mutex_lock(&g->mu);
        g->d = d;
        g->ram = ram;
        g->ram_size = size;
        pthread_cond_broadcast(&g->moved);
        pthread_mutex_unlock(&g->mu);
        hv_domain_put(old);
    }
    pthread_rwlock_unlock(&g->use);
    return rc;
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
    pthread_rwlock_init(&g->use, NULL);
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->moved, &ca);
    pthread_condattr_destroy(&ca);
    g->d = d;
    g->vcpu = vcpu;
    g->ram = hv_domain_ram(d, &g->ram_size);
    if (!g->ram || ram_base >= g->ram_size) {
        snprintf(err, errlen, "hv: domain %u has no RAM above 0x%llx", domid,
                 (unsigned long long)ram_base);
        hv_domain_put(d);
        pthread_rwlock_destroy(&g->use);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->moved);
        free(g);
        return -1;
    }
    guest_bus_init(b, &gh_ops, g, ram_base, g->ram_size);
    return 0;
}
