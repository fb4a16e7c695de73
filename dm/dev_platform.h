/*
 * Internal to the platform devices (dm_platform.c and dev_*.c of issue 8):
 * the shared state they need — the Xen back-end, the run state, the
 * pending/latched shutdown a reset or S5 write asks for, A20.
 * [main] throughout.
 */
#ifndef DEV_PLATFORM_H
#define DEV_PLATFORM_H
#include "dm_platform.h"

typedef struct dev_i440fx dev_i440fx;
typedef struct dev_piix3 dev_piix3;
typedef struct dev_acpi_pm dev_acpi_pm;
typedef struct dev_xen_platform dev_xen_platform;
typedef struct dev_i8042 dev_i8042;
typedef struct dev_reset dev_reset;

/* What a guest write asked Xen to do.  NONE = nothing pending. */
typedef enum plat_req { PLAT_REQ_NONE, PLAT_REQ_REBOOT, PLAT_REQ_POWEROFF } plat_req;

struct dm_platform {
    dm_platform_cfg cfg;
    rs_handler *h;
    bool sink;
    bool live;
    plat_req pending;     /* to Xen in before_answer (live VM) */
    plat_req latched;     /* written while stopped: acted on at the next start */
    bool a20;
    int64_t rtc_offset;
    dm_platform_stats stats;
    dev_i440fx *i440fx;
    dev_piix3 *piix3;
    dev_acpi_pm *pm;
    dev_xen_platform *xpf;
    dev_i8042 *kbd;
    dev_reset *rst;
};

/* A guest reset (0xCF9, 0x92, i8042 pulse), with librunstate's reboot policy. */
void plat_guest_reset(dm_platform *p, const char *source);
/* A guest power-off (S5), with the shutdown policy. */
void plat_guest_poweroff(dm_platform *p, const char *source);

int dev_i440fx_new(dm_platform *p, dev_i440fx **out);
void dev_i440fx_free(dev_i440fx *d);
int dev_piix3_new(dm_platform *p, dev_piix3 **out);
void dev_piix3_free(dev_piix3 *d);
int dev_acpi_pm_new(dm_platform *p, dev_acpi_pm **out);
void dev_acpi_pm_free(dev_acpi_pm *d);
void dev_acpi_pm_start(dev_acpi_pm *d);       /* acts on a latched S3 write */
void dev_acpi_pm_suspended(dev_acpi_pm *d);  /* SUSPEND event: tell Xen S3 */
void dev_acpi_pm_wakeup(dev_acpi_pm *d, rs_wakeup_reason r);
void dev_acpi_pm_powerdown(dev_acpi_pm *d);
void dev_acpi_pm_reset(dev_acpi_pm *d);
int dev_xen_platform_new(dm_platform *p, dev_xen_platform **out);
void dev_xen_platform_free(dev_xen_platform *d);
int dev_i8042_new(dm_platform *p, dev_i8042 **out);
void dev_i8042_free(dev_i8042 *d);
void dev_i8042_reset(dev_i8042 *d);
int dev_reset_new(dm_platform *p, dev_reset **out);
void dev_reset_free(dev_reset *d);

#endif
