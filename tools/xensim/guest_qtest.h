/*
 * xensim guests: back-end (b), QEMU's qtest protocol.  The same driver code
 * that runs against rsdm runs here against QEMU's own PIIX3 IDE, ICH9 AHCI,
 * i440FX/PIIX4 and 16550, so a misreading of the hardware shows up first
 * against a reference implementation.
 */
#ifndef XENSIM_GUEST_QTEST_H
#define XENSIM_GUEST_QTEST_H

#include "guest_bus.h"

struct guest_qtest_cfg {
    const char *qemu;        /* binary; NULL: $QEMU or qemu-system-x86_64 */
    const char *machine;     /* "pc" or "q35" */
    unsigned memory_mib;     /* 0: 64 */
    const char *disk;        /* raw image on the machine's first disk, or NULL */
    const char *serial_sock; /* COM1: QEMU listens here, or NULL */
    const char *serial_file; /* COM1 output to this file, or NULL */
    const char *workdir;     /* where the qtest socket goes */
};

/* Start QEMU and connect; 0 or -1 with the reason in err. */
int guest_qtest_open(struct guest_bus *b, const struct guest_qtest_cfg *cfg,
                     char *err, size_t errlen);
/* The QEMU binary that would be used, or NULL when none is installed. */
const char *guest_qtest_find_qemu(void);

#endif
