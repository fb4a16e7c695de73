/*
 * xensim guests: ACPI PM and the resets (0xCF9, port 0x92, i8042).
 */
#include <string.h>

#include "guest_pm.h"

#define PM1_STS 0
#define PM1_EN 2
#define PM1_CNT 4
#define CNT_SCI_EN 0x0001u
#define CNT_SLP_EN 0x2000u

int guest_pm_init(struct guest_pm *pm, struct guest_bus *b, const struct guest_fw *fw)
{
    memset(pm, 0, sizeof(*pm));
    pm->bus = b;
    const struct guest_pci_dev *d = guest_fw_find(fw, 0x8086, 0x7113);
    if (!d)
        return guest_bus_fail(b, "pm: no PIIX4 PM function (8086:7113)");
    /* PMBA (0x40) holds the base, PMREGMISC (0x80) bit 0 turns decoding on. */
    uint32_t v;
    if (guest_pci_write(b, d->bdf, 0x40, 4, GUEST_PM_BASE | 1u) < 0 ||
        guest_pci_write(b, d->bdf, 0x80, 1, 1) < 0 ||
        guest_pci_read(b, d->bdf, 0x40, 4, &v) < 0)
        return -1;
    if ((v & 0xffc0u) != GUEST_PM_BASE)
        return guest_bus_fail(b, "pm: PMBA reads 0x%08x after writing 0x%04x", v, GUEST_PM_BASE);
    pm->base = GUEST_PM_BASE;
    uint16_t cnt;
    if (guest_inw(b, pm->base + PM1_CNT, &cnt) < 0)
        return -1;
    if (cnt == 0xffff)
        return guest_bus_fail(b, "pm: PM1a_CNT reads all-ones: the PM block does not decode");
    if (guest_outw(b, pm->base + PM1_CNT, (uint16_t)(cnt | CNT_SCI_EN)) < 0 ||
        guest_inw(b, pm->base + PM1_CNT, &cnt) < 0)
        return -1;
    if (!(cnt & CNT_SCI_EN))
        return guest_bus_fail(b, "pm: SCI_EN does not stick (PM1a_CNT 0x%04x)", cnt);
    /* Power-button events enabled, stale status cleared (write 1 clears). */
    if (guest_outw(b, pm->base + PM1_STS, 0xffff) < 0 ||
        guest_outw(b, pm->base + PM1_EN, 0x0100) < 0)
        return -1;
    return 0;
}

int guest_pm_sleep(struct guest_pm *pm, unsigned slp_typ)
{
    if (slp_typ > 7)
        return guest_bus_fail(pm->bus, "pm: SLP_TYP %u out of range", slp_typ);
    uint16_t cnt;
    if (guest_inw(pm->bus, pm->base + PM1_CNT, &cnt) < 0)
        return -1;
    cnt = (uint16_t)((cnt & ~(7u << 10)) | (slp_typ << 10) | CNT_SLP_EN);
    return guest_outw(pm->bus, pm->base + PM1_CNT, cnt);
}

int guest_reset_cf9(struct guest_bus *b)
{
    /* Set "hard reset" first, then the reset bit's rising edge. */
    if (guest_outb(b, 0xcf9, 0x02) < 0 || guest_outb(b, 0xcf9, 0x06) < 0)
        return -1;
    return 0;
}

int guest_reset_port92(struct guest_bus *b)
{
    /* System Control Port A: keep A20 as it is, set the fast-reset bit. */
    uint8_t v;
    if (guest_inb(b, 0x92, &v) < 0)
        return -1;
    return guest_outb(b, 0x92, (uint8_t)((v & 0x02) | 0x01));
}

int guest_reset_i8042(struct guest_bus *b)
{
    /* The keyboard controller's "pulse output line 0" command: the
     * classic reset when 0xCF9 and port 0x92 are not used. */
    return guest_outb(b, 0x64, 0xfe);
}
