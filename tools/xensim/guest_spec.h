/*
 * xensim guests: the workload spec, a line of `key=value` words that says
 * what a simulated guest does (docs/xensim.md, "Guests and workloads"):
 *
 *   devices=uart,testdisk,ide,ahci,pm  fw=hvmloader|any|none  vcpus=N
 *   qd=N  ide=dma|pio|mixed  sizes=A-B  writes=N  sectors=N  lines=N  gap_ms=N  duration=S
 *   console=PATH  console_log=PATH  action=none|s3|s5|reset  after=N  seed=N
 *
 * Parsing is strict: an unknown key, a value out of range or a device
 * named twice is an error that names the word.
 */
#ifndef XENSIM_GUEST_SPEC_H
#define XENSIM_GUEST_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_SPEC_MAX 1024      /* bytes of spec text */
#define GUEST_SPEC_PATH 256

enum guest_dev {
    GUEST_DEV_UART = 1u << 0,
    GUEST_DEV_TESTDISK = 1u << 1,
    GUEST_DEV_IDE = 1u << 2,
    GUEST_DEV_AHCI = 1u << 3,
    GUEST_DEV_PM = 1u << 4,
};
#define GUEST_DEV_DISKS (GUEST_DEV_TESTDISK | GUEST_DEV_IDE | GUEST_DEV_AHCI)

enum guest_fw_mode { GUEST_FW_HVMLOADER, GUEST_FW_ANY, GUEST_FW_NONE };
/* How the IDE load transfers data: DMA, PIO, or each request picks. */
enum guest_ide_mode { GUEST_IDE_DMA, GUEST_IDE_PIO, GUEST_IDE_MIXED };
enum guest_action { GUEST_ACT_NONE, GUEST_ACT_S3, GUEST_ACT_S5, GUEST_ACT_RESET, GUEST_ACT_RESET92,
                    GUEST_ACT_RESETKBD };

struct guest_spec {
    unsigned devices;            /* GUEST_DEV_* */
    enum guest_fw_mode fw;
    unsigned vcpus;              /* 0: one per domain vCPU */
    unsigned qd;                 /* AHCI commands in flight (NCQ when > 1) */
    enum guest_ide_mode ide_mode;
    unsigned size_min, size_max; /* sectors per disk request */
    uint64_t writes;             /* disk writes over all vCPUs; 0: until stopped */
    uint64_t sectors;            /* checked sectors per disk */
    uint64_t lines;              /* UART lines guest -> host; 0: until stopped */
    unsigned gap_ms;             /* guest idle time between UART lines */
    unsigned duration_s;         /* stop after; 0: no limit */
    char console[GUEST_SPEC_PATH];      /* the dm's chardev (unix socket) */
    char console_log[GUEST_SPEC_PATH];  /* what the guest wrote, as received */
    enum guest_action action;
    uint64_t after;              /* UART lines before the action */
    uint64_t seed;
};

void guest_spec_default(struct guest_spec *s);
/* Parse text over the defaults.  0, or -1 with the reason in err. */
int guest_spec_parse(const char *text, struct guest_spec *s, char *err, size_t errlen);
/* The canonical text (parses back to the same spec); -1 if too small. */
int guest_spec_format(const struct guest_spec *s, char *buf, size_t len);
const char *guest_action_name(enum guest_action a);

#endif
