/*
 * A test rig for rsdm's AHCI controller in one thread: the simulated
 * hypervisor in this process provides the domain and its RAM; the dm side
 * is rsdm's real modules (main loop, run state, I/O spaces, PCI bus,
 * interrupts, guest memory, state registry, a block backend on a raw image
 * and the AHCI function); the guest side is xensim's proven AHCI driver
 * and data checker on a guest_bus whose accesses go straight to the dm's
 * I/O spaces, running one pass of the dm's main loop before each access
 * (the rig's thread is both the vCPU and the dm's main loop).
 *
 * The dm side can be torn down and built again over the same domain and
 * image, which is what a restore into a new rsdm process does; a hook
 * called before every register access lets a test act at an exact point
 * (stop the VM before a PxCI write reaches the device, cont once the VM
 * stopped on an error, save and restore while the guest waits).
 */
#ifndef AHCI_RIG_H
#define AHCI_RIG_H

#include <stdbool.h>
#include <stdint.h>

#include "blk.h"
#include "dev_ahci.h"
#include "dm_guestmem.h"
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_loop.h"
#include "dm_pci.h"
#include "dm_statefile.h"
#include "dm_xen.h"
#include "guest_ahci.h"
#include "guest_bus.h"
#include "guest_check.h"
#include "guest_fw.h"
#include "runstate.h"

#define AHCI_RIG_ABAR 0xfebf0000u

typedef struct ahci_rig ahci_rig;

/* Called before each guest register access (write: the value about to be
 * written; read: value 0).  offset is relative to the ABAR. */
typedef void (*ahci_rig_hook)(ahci_rig *r, bool write, uint64_t offset, uint32_t value);

typedef struct ahci_rig_opts {
    uint64_t disk_mib;            /* image size */
    const char *image;            /* an existing raw image to use (kept), or NULL:
                                   * a new sparse one of disk_mib (removed) */
    dm_err_action rerror, werror;
    const char *inject;           /* dm_blk injection rules, or NULL */
    unsigned workers;             /* backend workers, 0 = default */
    bool msi;                     /* give the function an MSI capability */
    int timeout_ms;               /* the guest driver's bound on every wait */
} ahci_rig_opts;

struct ahci_rig {
    ahci_rig_opts o;
    char dir[64], img[4096];
    bool own_img;
    uint32_t dom;
    struct hv_domain *d;
    uint8_t *ram;
    uint64_t ram_size;
    /* the dm side */
    bool up;
    dm_xen xen;
    dm_guestmem *gm;
    dm_loop *loop;
    rs_vm *vm;
    dm_watch *w_req;
    dm_io_space *pio, *mmio;
    dm_irq *irq;
    dm_pci_bus *pci;
    dm_state_reg *state;
    dm_blk *blk;
    dm_ahci *ahci;
    /* what reached the guest */
    bool intx;
    uint64_t intx_raises, msis;
    uint64_t msi_addr;
    uint32_t msi_data;
    bool msi_while_stopped, intx_while_stopped;
    uint64_t io_errors;           /* BLOCK_IO_ERROR events */
    dm_blk_action last_action;
    /* the guest side */
    uint32_t cf8;
    struct guest_bus bus;
    struct guest_fw fw;
    struct guest_ahci hba;
    struct guest_check chk;
    ahci_rig_hook hook;
    void *hook_opaque;
    uint64_t last_read;           /* polling detection */
};

/* Creates the domain and the image, brings the dm side up (VM running),
 * runs the firmware's PCI pass and the driver's init (HBA reset, port
 * start, IDENTIFY) and the checker.  0 or -1 with a message on stderr. */
int ahci_rig_start(ahci_rig *r, const ahci_rig_opts *o);
void ahci_rig_stop(ahci_rig *r);

/* The dm side alone: down frees it (the backend is drained, the image
 * closed); up builds it again, and with `state` loads it under the
 * inmigrate hold, then starts the VM (as rsdm's start-up does). */
void ahci_rig_dm_down(ahci_rig *r);
int ahci_rig_dm_up(ahci_rig *r, const uint8_t *state, size_t len);

/* One pass of the dm's main loop (runs requests, completions, timers). */
void ahci_rig_pump(ahci_rig *r, int timeout_ms);
/* Saves the device state into a new buffer (free it). 0 or -1. */
int ahci_rig_save(ahci_rig *r, uint8_t **buf, size_t *len);

/* Writes n sectors from lba with checker data (one command each of at most
 * 128 sectors), or reads them back and classifies them. */
int ahci_rig_write_checked(ahci_rig *r, uint64_t lba, unsigned n);
int ahci_rig_verify(ahci_rig *r, uint64_t lba, unsigned n);

#endif
