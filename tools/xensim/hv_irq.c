/*
 * Interrupt lines as the x86 HVM DMOPs drive them (xen/arch/x86/hvm/irq.c):
 * ISA IRQ levels (ISA IRQ 0 is GSI 2), PCI INTx wired-OR onto the
 * "barber-pole" GSI ((dev<<2) + (dev>>3) + intx) % 32 + 16 and onto PCI link
 * (dev + intx) & 3, links routed to ISA IRQs by set_pci_link_route, and
 * MSIs.  The guest side sees line levels, a rising-edge count per line and
 * an MSI FIFO, and can block on a sequence number that moves on every edge.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "hv_internal.h"

static unsigned int isa_to_gsi(unsigned int isa)
{
    return isa ? isa : 2;
}

/* Recompute every line level from its sources; count rising edges. */
static void update_lines(struct hv_domain *d)
{
    uint8_t nl[HV_NR_GSIS];
    memset(nl, 0, sizeof(nl));
    for (unsigned int isa = 0; isa < 16; isa++) {
        bool up = d->isa_level[isa];
        for (unsigned int l = 0; l < 4; l++)
            if (d->link_route[l] == isa && isa != 0 && d->link_assert[l])
                up = true;
        if (up)
            nl[isa_to_gsi(isa)] = 1;
    }
    for (unsigned int g = 16; g < HV_NR_GSIS; g++)
        if (d->gsi_assert[g])
            nl[g] = 1;
    bool moved = false;
    for (unsigned int g = 0; g < HV_NR_GSIS; g++) {
        if (nl[g] && !d->level[g]) {
            d->edges[g]++;
            d->irq_seq++;
            moved = true;
        }
        d->level[g] = nl[g];
    }
    if (moved)
        pthread_cond_broadcast(&d->cond);
}

void hv_irq_reset(struct hv_domain *d)
{
    memset(d->isa_level, 0, sizeof(d->isa_level));
    memset(d->gsi_assert, 0, sizeof(d->gsi_assert));
    memset(d->intx_level, 0, sizeof(d->intx_level));
    memset(d->link_assert, 0, sizeof(d->link_assert));
    update_lines(d);
}

int hv_set_isa_irq_level(uint32_t domid, unsigned int irq, unsigned int level)
{
    if (irq > 15 || level > 1)
        return -EINVAL;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d) {
        d->isa_level[irq] = (uint8_t)level;
        update_lines(d);
    }
    pthread_mutex_unlock(&hv_lock);
    return d ? 0 : -ESRCH;
}

int hv_set_pci_intx_level(uint32_t domid, unsigned int seg, unsigned int bus,
                          unsigned int dev, unsigned int intx,
                          unsigned int level)
{
    /* Xen's dm.c: segment 0, bus 0, device <= 31, INTA..INTD */
    if (seg != 0 || bus != 0 || dev > 31 || intx > 3 || level > 1)
        return -EINVAL;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d && d->intx_level[dev][intx] != level) {
        unsigned int gsi = (((dev << 2) + (dev >> 3) + intx) & 31) + 16;
        unsigned int link = (dev + intx) & 3;
        d->intx_level[dev][intx] = (uint8_t)level;
        if (level) {
            d->gsi_assert[gsi]++;
            d->link_assert[link]++;
        } else {
            d->gsi_assert[gsi]--;
            d->link_assert[link]--;
        }
        update_lines(d);
    }
    pthread_mutex_unlock(&hv_lock);
    return d ? 0 : -ESRCH;
}

int hv_set_pci_link_route(uint32_t domid, unsigned int link, unsigned int irq)
{
    if (link > 3 || irq > 15)
        return -EINVAL;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d) {
        d->link_route[link] = (uint8_t)irq;
        update_lines(d);
    }
    pthread_mutex_unlock(&hv_lock);
    return d ? 0 : -ESRCH;
}

int hv_inject_msi(uint32_t domid, uint64_t addr, uint32_t data)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        rc = 0;
        if (d->msi_len == HV_MSI_QUEUE) {
            /* the guest is not consuming; keep the newest */
            d->msi_head = (d->msi_head + 1) % HV_MSI_QUEUE;
            d->msi_len--;
        }
        unsigned int i = (d->msi_head + d->msi_len) % HV_MSI_QUEUE;
        d->msi[i].addr = addr;
        d->msi[i].data = data;
        d->msi_len++;
        d->msi_count++;
        d->irq_seq++;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_irq_state(struct hv_domain *d, struct hv_irq_state *out)
{
    pthread_mutex_lock(&hv_lock);
    memcpy(out->level, d->level, sizeof(out->level));
    memcpy(out->edges, d->edges, sizeof(out->edges));
    memcpy(out->link_route, d->link_route, sizeof(out->link_route));
    out->msi_count = d->msi_count;
    out->seq = d->irq_seq;
    bool dying = d->dying;
    pthread_mutex_unlock(&hv_lock);
    return dying ? -ESHUTDOWN : 0;
}

int hv_irq_wait(struct hv_domain *d, uint64_t *seq, int timeout_ms)
{
    struct timespec dl;
    hv_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&hv_lock);
    int rc = 0;
    while (d->irq_seq == *seq) {
        if (d->dying) {
            rc = -ESHUTDOWN;
            break;
        }
        if (hv_cond_wait_ms(d, &dl) == -ETIMEDOUT && d->irq_seq == *seq) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    *seq = d->irq_seq;
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_msi_pop(struct hv_domain *d, uint64_t *addr, uint32_t *data)
{
    pthread_mutex_lock(&hv_lock);
    int got = 0;
    if (d->msi_len) {
        *addr = d->msi[d->msi_head].addr;
        *data = d->msi[d->msi_head].data;
        d->msi_head = (d->msi_head + 1) % HV_MSI_QUEUE;
        d->msi_len--;
        got = 1;
    }
    pthread_mutex_unlock(&hv_lock);
    return got;
}
