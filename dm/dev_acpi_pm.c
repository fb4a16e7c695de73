/*
 * PIIX4 power management at 00:01.3 (8086:7113): the ACPI registers Xen
 * leaves to the device model.  hvmloader's FADT puts PM1a_EVT at 0xb000,
 * PM1a_CNT at 0xb004 and PM_TMR at 0xb008.  Xen's hvm/pmtimer.c emulates
 * PM1a status/enable and the timer itself, so by default only PM1a_CNT
 * (sleep requests, SCI_EN) and the APM command port 0xb2 (hvmloader's
 * acpi_enable_sci writes ACPI_ENABLE there) are ours; cfg.pm1_evt adds the
 * PM1 status/enable block for hosts that do not emulate it (xensim), which
 * is what lets the power button and the wakeup bits reach the guest.
 *
 * SLP_TYP follows QEMU's acpi_pm1_cnt_write (Xen's SSDTs are written for
 * it): 0 = S5 (power off), 1 = S3, 2 = S4 (treated as power off).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev_platform.h"
#include "dm_log.h"

#define PM_BASE 0xb000
#define PM1_STS 0x0
#define PM1_EN 0x2
#define PM1_CNT 0x4
#define APM_CNT_PORT 0xb2         /* + APM_STS at 0xb3 */

#define STS_TMR (1u << 0)
#define STS_PWRBTN (1u << 8)
#define STS_RTC (1u << 10)
#define STS_WAK (1u << 15)
#define EN_MASK (STS_TMR | STS_PWRBTN | STS_RTC | (1u << 5))   /* + GBL_EN */
#define STS_MASK (EN_MASK | STS_WAK | (1u << 4) | (1u << 11))

#define CNT_SCI_EN (1u << 0)
#define CNT_SLP_TYP_SHIFT 10
#define CNT_SLP_EN (1u << 13)
#define CNT_MASK 0x1c07u          /* SCI_EN, BM_RLD, GBL_RLS, SLP_TYP: what reads back */

#define APM_ACPI_DISABLE 0xf0
#define APM_ACPI_ENABLE 0xf1

#define SCI_IRQ 9
#define STATE_VERSION 1

struct dev_acpi_pm {
    dm_platform *p;
    dm_pci_dev *dev;
    dm_io_range *r_cnt, *r_evt, *r_apm;
    uint16_t sts, en, cnt;
    uint8_t apm_cnt, apm_sts;
    bool latched_s3;              /* S3 written while stopped */
    bool sci;
};

static void update_sci(dev_acpi_pm *d)
{
    bool level = d->p->cfg.pm1_evt && (d->cnt & CNT_SCI_EN) && (d->sts & d->en & EN_MASK);
    if (level == d->sci)
        return;
    d->sci = level;
    if (d->p->cfg.irq)
        dm_irq_isa_set(d->p->cfg.irq, SCI_IRQ, level);
}

static void sleep_request(dev_acpi_pm *d, unsigned typ)
{
    dm_platform *p = d->p;
    switch (typ) {
    case 0:
        plat_guest_poweroff(p, "ACPI S5 (PM1a_CNT)");
        break;
    case 1:
        if (!p->live) {
            d->latched_s3 = true;
            dm_info("acpi-pm: S3 written while stopped: entered at the next start");
            break;
        }
        p->stats.suspends++;
        rs_request_suspend(p->cfg.vm);
        break;
    case 2:
        /* S4 is suspend-to-disk done by the guest; then the machine is off. */
        plat_guest_poweroff(p, "ACPI S4 (PM1a_CNT)");
        break;
    default:
        p->stats.bad_writes++;
        dm_warn("acpi-pm: SLP_EN with sleep type %u, which no _Sx names: ignored", typ);
        break;
    }
}

static void cnt_write(dev_acpi_pm *d, uint16_t v)
{
    d->cnt = (uint16_t)(v & CNT_MASK);
    if (v & CNT_SLP_EN)
        sleep_request(d, (v >> CNT_SLP_TYP_SHIFT) & 7);
    update_sci(d);
}

/* Byte or word access at any offset of a 16-bit register. */
static uint16_t merge16(uint16_t old, uint64_t off, uint64_t val, unsigned size)
{
    if (size >= 2)
        return (uint16_t)val;
    unsigned sh = (unsigned)(off & 1) * 8;
    return (uint16_t)((old & ~(0xffu << sh)) | ((val & 0xff) << sh));
}

static uint64_t cnt_read(void *opaque, uint64_t off, unsigned size)
{
    dev_acpi_pm *d = opaque;
    (void)size;
    return (uint64_t)d->cnt >> ((off & 1) * 8);
}

static void cnt_io_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_acpi_pm *d = opaque;
    if (size == 2 && off != 0) {
        d->p->stats.bad_writes++;
        return;
    }
    cnt_write(d, merge16(d->cnt, off, val, size));
}

static const dm_io_ops cnt_ops = {
    .read = cnt_read, .write = cnt_io_write, .sizes = DM_IO_SIZE_1 | DM_IO_SIZE_2,
};

/* PM1 status (W1C) and enable, only when the host leaves them to us.  A
 * 32-bit access at 0xb000 covers both (Linux reads them that way). */
static uint64_t evt_read(void *opaque, uint64_t off, unsigned size)
{
    dev_acpi_pm *d = opaque;
    uint32_t both = (uint32_t)d->sts | (uint32_t)d->en << 16;
    (void)size;
    return both >> (off * 8);
}

static void evt_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_acpi_pm *d = opaque;
    for (unsigned i = 0; i < size; i++) {
        unsigned o = (unsigned)off + i;
        uint16_t b = (uint16_t)(((val >> (i * 8)) & 0xff) << ((o & 1) * 8));
        if (o < 2)
            d->sts &= (uint16_t)~(b & STS_MASK);
        else
            d->en = (uint16_t)((d->en & ~(0xffu << ((o & 1) * 8))) | (b & EN_MASK));
    }
    /* Enable bits mask RTC and PM-timer wakeups, as QEMU's acpi_pm1_evt_write. */
    rs_wakeup_enable(d->p->cfg.vm, RS_WAKEUP_RTC, d->en & STS_RTC);
    rs_wakeup_enable(d->p->cfg.vm, RS_WAKEUP_PMTIMER, d->en & STS_TMR);
    update_sci(d);
}

static const dm_io_ops evt_ops = { .read = evt_read, .write = evt_write, .sizes = 0 };

static uint64_t apm_read(void *opaque, uint64_t off, unsigned size)
{
    dev_acpi_pm *d = opaque;
    (void)size;
    return off == 0 ? d->apm_cnt : d->apm_sts;
}

static void apm_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_acpi_pm *d = opaque;
    (void)size;
    if (off == 1) {
        d->apm_sts = (uint8_t)val;
        return;
    }
    d->apm_cnt = (uint8_t)val;
    if (d->apm_cnt == APM_ACPI_ENABLE)
        d->cnt |= CNT_SCI_EN;
    else if (d->apm_cnt == APM_ACPI_DISABLE)
        d->cnt &= (uint16_t)~CNT_SCI_EN;
    update_sci(d);
}

static const dm_io_ops apm_ops = { .read = apm_read, .write = apm_write, .sizes = DM_IO_SIZE_1 };

/* ------------------------------------------------------------ run state */

void dev_acpi_pm_start(dev_acpi_pm *d)
{
    if (d->latched_s3) {
        d->latched_s3 = false;
        d->p->stats.suspends++;
        rs_request_suspend(d->p->cfg.vm);
    }
}

void dev_acpi_pm_suspended(dev_acpi_pm *d)
{
    dm_platform *p = d->p;
    /* Xen stops the vCPUs and resets them to the firmware's wakeup vector. */
    if (p->cfg.be->set_s_state) {
        int r = p->cfg.be->set_s_state(p->cfg.be_opaque, 3);
        if (r < 0)
            dm_warn("acpi-pm: HVM_PARAM_ACPI_S_STATE=3 not set (%s): the domain's vCPUs stay "
                    "as the guest left them", strerror(-r));
    }
}

void dev_acpi_pm_wakeup(dev_acpi_pm *d, rs_wakeup_reason r)
{
    dm_platform *p = d->p;
    if (p->cfg.be->set_s_state) {
        int e = p->cfg.be->set_s_state(p->cfg.be_opaque, 0);
        if (e < 0)
            dm_warn("acpi-pm: HVM_PARAM_ACPI_S_STATE=0 not set (%s)", strerror(-e));
    }
    uint16_t why = r == RS_WAKEUP_RTC ? STS_RTC : r == RS_WAKEUP_PMTIMER ? STS_TMR : STS_PWRBTN;
    d->sts |= (uint16_t)(STS_WAK | why);
    update_sci(d);
}

void dev_acpi_pm_powerdown(dev_acpi_pm *d)
{
    if (!d->p->cfg.pm1_evt) {
        dm_warn("acpi-pm: power button: PM1 status is Xen's here; use xl trigger power");
        return;
    }
    d->sts |= STS_PWRBTN;
    update_sci(d);
}

void dev_acpi_pm_reset(dev_acpi_pm *d)
{
    d->sts = d->en = 0;
    d->cnt = 0;
    d->apm_cnt = d->apm_sts = 0;
    d->latched_s3 = false;
    update_sci(d);
}

/* ----------------------------------------------------------- state file */

static int save(void *opaque, dm_state_wr *w)
{
    dev_acpi_pm *d = opaque;
    dm_state_put_u16(w, d->sts);
    dm_state_put_u16(w, d->en);
    dm_state_put_u16(w, d->cnt);
    dm_state_put_u8(w, d->apm_cnt);
    dm_state_put_u8(w, d->apm_sts);
    dm_state_put_u8(w, d->latched_s3);
    return 0;
}

static int validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    (void)version;
    dm_state_get_u16(r, "pm1_sts");
    dm_state_get_u16(r, "pm1_en");
    uint16_t cnt = dm_state_get_u16(r, "pm1_cnt");
    dm_state_check(r, (cnt & ~CNT_MASK) == 0, "pm1_cnt", cnt, "has write-only bits set");
    dm_state_get_u8(r, "apm_cnt");
    dm_state_get_u8(r, "apm_sts");
    uint8_t l = dm_state_get_u8(r, "latched_s3");
    dm_state_check(r, l <= 1, "latched_s3", l, "is not 0 or 1");
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_acpi_pm *d = opaque;
    (void)version;
    d->sts = dm_state_get_u16(r, "pm1_sts");
    d->en = dm_state_get_u16(r, "pm1_en");
    d->cnt = dm_state_get_u16(r, "pm1_cnt");
    d->apm_cnt = dm_state_get_u8(r, "apm_cnt");
    d->apm_sts = dm_state_get_u8(r, "apm_sts");
    d->latched_s3 = dm_state_get_u8(r, "latched_s3") != 0;
    d->sci = false;
    update_sci(d);
}

/* ------------------------------------------------------------ init/free */

int dev_acpi_pm_new(dm_platform *p, dev_acpi_pm **out)
{
    static const dm_pci_id id = {
        .vendor = 0x8086, .device = 0x7113, .revision = 0x03, .class_code = 0x068000,
        .int_pin = 1,
    };
    int r;
    dev_acpi_pm *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->p = p;
    if ((r = dm_pci_add(p->cfg.pci, "piix4-pm", 1, 3, &id, NULL, d, &d->dev)) < 0)
        goto fail;
    /* SCI is hard-wired to IRQ 9 (hvmloader writes the same). */
    dm_pci_cfg_set(d->dev, DM_PCI_INTERRUPT_LINE, 1, SCI_IRQ);
    if ((r = dm_io_register(p->cfg.pio, "acpi-pm1a-cnt", PM_BASE + PM1_CNT, 2, &cnt_ops, d,
                            &d->r_cnt)) < 0)
        goto fail;
    if ((r = dm_io_register(p->cfg.pio, "apm", APM_CNT_PORT, 2, &apm_ops, d, &d->r_apm)) < 0)
        goto fail;
    if (p->cfg.pm1_evt &&
        (r = dm_io_register(p->cfg.pio, "acpi-pm1a-evt", PM_BASE, 4, &evt_ops, d, &d->r_evt)) < 0)
        goto fail;
    if (p->cfg.state &&
        (r = dm_state_register(p->cfg.state, "acpi-pm", 0, STATE_VERSION, save, validate, load,
                               d)) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    dev_acpi_pm_free(d);
    return r;
}

void dev_acpi_pm_free(dev_acpi_pm *d)
{
    if (!d)
        return;
    dm_platform *p = d->p;
    if (p->cfg.state)
        dm_state_unregister(p->cfg.state, "acpi-pm", 0);
    if (d->sci && p->cfg.irq)
        dm_irq_isa_set(p->cfg.irq, SCI_IRQ, false);
    dm_io_unregister(p->cfg.pio, d->r_evt);
    dm_io_unregister(p->cfg.pio, d->r_apm);
    dm_io_unregister(p->cfg.pio, d->r_cnt);
    if (d->dev)
        dm_pci_remove(p->cfg.pci, d->dev);
    free(d);
}
