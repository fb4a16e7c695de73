/*
 * xensim guests: the firmware's PCI pass, as hvmloader does it: check the
 * chipset it insists on, route the PCI interrupt links, size every BAR and
 * give it an address, enable decoding.  Fails where hvmloader would.
 */
#ifndef XENSIM_GUEST_FW_H
#define XENSIM_GUEST_FW_H

#include "guest_bus.h"

#define GUEST_FW_MAX_DEVS 64

struct guest_pci_dev {
    unsigned bdf;
    uint16_t vendor, device;
    uint32_t class_rev;
    uint8_t irq_pin, irq_line;
    uint64_t bar[6];      /* assigned base (I/O or MMIO), 0 if none */
    uint64_t bar_size[6];
    uint8_t bar_io[6];
};

struct guest_fw {
    unsigned ndevs;
    struct guest_pci_dev dev[GUEST_FW_MAX_DEVS];
    uint8_t pirq_irq[4];  /* ISA IRQ routed to PIRQA..D */
};

/* require_piix3: fail, like hvmloader, unless 00:01.0 is the PIIX3 ISA
 * bridge (8086:7000).  Returns 0 or -1 with the reason in b->err. */
int guest_fw_scan(struct guest_bus *b, struct guest_fw *fw, bool require_piix3);
const struct guest_pci_dev *guest_fw_find(const struct guest_fw *fw,
                                          uint16_t vendor, uint16_t device);

#endif
