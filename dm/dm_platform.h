/*
 * The platform devices firmware and a guest OS need before any disk:
 * i440FX host bridge (00:00.0), PIIX3 ISA bridge (00:01.0, PIRQ routes),
 * PIIX4 ACPI PM (00:01.3, PM1a_CNT: S3/S5), the Xen platform device
 * (00:02.0, unplug port 0x10, log port 0x12), an i8042 sufficient for
 * firmware (self test, A20, reset pulse) and the reset ports (0xCF9, 0x92).
 *
 * Everything that must reach Xen goes through dm_platform_backend so unit
 * tests can record it; dm_platform_xen_backend() is the real one.
 * [main] throughout.
 */
#ifndef DM_PLATFORM_H
#define DM_PLATFORM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_pci.h"
#include "dm_statefile.h"
#include "runstate.h"

typedef enum dm_platform_shutdown { DM_PLAT_POWEROFF, DM_PLAT_REBOOT } dm_platform_shutdown;

typedef struct dm_platform_backend {
    /* PIIX3 PIRQ register link (0..3) now routes to ISA irq (0 = disabled). */
    int (*set_link_route)(void *opaque, unsigned link, unsigned irq);
    /* xendevicemodel_shutdown: called before the triggering ioreq is answered. */
    int (*shutdown)(void *opaque, dm_platform_shutdown why);
    /* HVM_PARAM_ACPI_S_STATE (3 on S3 entry, 0 on wakeup); NULL when restricted. */
    int (*set_s_state)(void *opaque, unsigned s);
} dm_platform_backend;

/* The real back-end; its opaque is a dm_xen *.  set_s_state fails with
 * -EPERM once rsdm is restricted (xenctrl is closed then). */
const dm_platform_backend *dm_platform_xen_backend(void);

typedef struct dm_platform_cfg {
    dm_io_space *pio;
    dm_pci_bus *pci;
    dm_irq *irq;
    rs_vm *vm;
    dm_state_reg *state;          /* may be NULL: no save/load */
    const dm_platform_backend *be;
    void *be_opaque;
    bool disable_pf;              /* no Xen platform device */
    bool no_isa_bridge;           /* tests: what hvmloader does without PIIX3 */
    bool pm1_evt;                 /* dm owns PM1 status/enable (Xen's pmtimer normally does) */
    /* RTC_CHANGE: told the guest's new RTC offset from UTC (seconds). */
    void (*on_rtc_change)(void *opaque, int64_t offset);
    void *rtc_opaque;
} dm_platform_cfg;

typedef struct dm_platform dm_platform;

/* Creates every device.  Negative errno, and a message in err, on failure. */
int dm_platform_init(const dm_platform_cfg *cfg, dm_platform **out, char *err, size_t errlen);
void dm_platform_free(dm_platform *p);

/* Wakeup, powerdown and reset reach the devices through a run-state event
 * sink the platform adds itself (rs_hooks is one set, owned by the machine). */
/* IOREQ_TYPE_TIMEOFFSET: accumulated RTC offset; remembered for RTC_CHANGE. */
void dm_platform_timeoffset(dm_platform *p, int64_t offset);
int64_t dm_platform_rtc_offset(const dm_platform *p);
/* dm_ioreq_ops.before_answer: pushes a pending reset/poweroff to Xen. */
void dm_platform_before_answer(dm_platform *p);

typedef struct dm_platform_stats {
    uint64_t resets, poweroffs, suspends, unplugs, link_routes, bad_writes;
    unsigned unplug_mask;         /* Xen platform unplug bits seen */
} dm_platform_stats;
void dm_platform_get_stats(const dm_platform *p, dm_platform_stats *out);

#endif
