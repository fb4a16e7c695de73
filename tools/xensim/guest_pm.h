/*
 * xensim guests: ACPI PM (PIIX4 PM function 8086:7113: PM I/O base, SCI
 * enable, sleep states through PM1a_CNT) and the reset control register at
 * 0xCF9, port 0x92 and the i8042, as an OS uses them to suspend, power off
 * and reboot.
 */
#ifndef XENSIM_GUEST_PM_H
#define XENSIM_GUEST_PM_H

#include "guest_fw.h"

#define GUEST_PM_BASE 0xb000u   /* where the driver puts the PM block */

struct guest_pm {
    struct guest_bus *bus;
    uint16_t base;
};

/* Find PIIX4 PM, place and enable its I/O block, set SCI_EN. */
int guest_pm_init(struct guest_pm *pm, struct guest_bus *b, const struct guest_fw *fw);
/* Write SLP_TYP=typ with SLP_EN (PIIX4: 0 is S5 soft-off, 1 is S3). */
int guest_pm_sleep(struct guest_pm *pm, unsigned slp_typ);
/* Hard reset through the reset control register (0x02 then 0x06). */
int guest_reset_cf9(struct guest_bus *b);
/* Fast reset through port 0x92 (System Control Port A, A20 kept). */
int guest_reset_port92(struct guest_bus *b);
/* Reset through the i8042's pulse command (0xFE to port 0x64). */
int guest_reset_i8042(struct guest_bus *b);

#endif
