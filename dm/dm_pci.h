/*
 * PCI bus 0 of the guest: functions with a 256-byte configuration space,
 * the standard type-0 header, per-byte write masks (read-only fields and
 * write-1-to-clear status bits), BARs (I/O and 32-bit memory) mapped into
 * the dm_io spaces while the command register enables them, INTx through
 * dm_irq, and save/load of configuration space through the state file.
 *
 * Xen turns the guest's CF8/CFC accesses into IOREQ_TYPE_PCI_CONFIG
 * requests for the SBDFs the ioreq server registered, with
 * addr = SBDF << 32 | register.  A listener hears every function added or
 * removed so the ioreq module can call xendevicemodel_map_pcidev_to_ioreq_server
 * for it.  An SBDF with no function here is unclaimed: reads all-ones.
 *
 * [main] throughout.
 */
#ifndef DM_PCI_H
#define DM_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "dm_io.h"
#include "dm_irq.h"
#include "dm_statefile.h"

#define DM_PCI_CFG_SIZE 256
#define DM_PCI_NUM_BARS 6
#define DM_PCI_BAR_UNMAPPED UINT64_MAX

/* Standard header offsets and bits used by the bus and its devices. */
#define DM_PCI_VENDOR_ID 0x00
#define DM_PCI_DEVICE_ID 0x02
#define DM_PCI_COMMAND 0x04
#define DM_PCI_COMMAND_IO 0x0001
#define DM_PCI_COMMAND_MEMORY 0x0002
#define DM_PCI_COMMAND_MASTER 0x0004
#define DM_PCI_COMMAND_INTX_DISABLE 0x0400
#define DM_PCI_STATUS 0x06
#define DM_PCI_STATUS_INTERRUPT 0x0008
#define DM_PCI_REVISION 0x08
#define DM_PCI_CLASS_PROG 0x09
#define DM_PCI_HEADER_TYPE 0x0e
#define DM_PCI_HEADER_MULTIFUNCTION 0x80
#define DM_PCI_BAR0 0x10
#define DM_PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define DM_PCI_SUBSYSTEM_ID 0x2e
#define DM_PCI_INTERRUPT_LINE 0x3c
#define DM_PCI_INTERRUPT_PIN 0x3d

/* seg:bus:dev.fn as Xen packs it (XEN_DMOP_PCI_SBDF). */
static inline uint32_t dm_pci_sbdf(unsigned seg, unsigned bus, unsigned slot, unsigned fn)
{
    return (seg & 0xffffu) << 16 | (bus & 0xffu) << 8 | (slot & 0x1fu) << 3 | (fn & 7u);
}

/* Xen's PCI_CONFIG ioreq: addr = SBDF << 32 | register. */
static inline uint32_t dm_pci_ioreq_sbdf(uint64_t addr) { return (uint32_t)(addr >> 32); }
static inline uint32_t dm_pci_ioreq_reg(uint64_t addr) { return (uint32_t)addr; }
static inline unsigned dm_pci_sbdf_bus(uint32_t sbdf) { return (sbdf >> 8) & 0xff; }
static inline unsigned dm_pci_sbdf_slot(uint32_t sbdf) { return (sbdf >> 3) & 0x1f; }
static inline unsigned dm_pci_sbdf_fn(uint32_t sbdf) { return sbdf & 7; }

typedef struct dm_pci_bus dm_pci_bus;
typedef struct dm_pci_dev dm_pci_dev;

typedef struct dm_pci_id {
    uint16_t vendor, device;
    uint16_t subsys_vendor, subsys_id;
    uint8_t revision;
    uint32_t class_code;        /* base class << 16 | subclass << 8 | prog-if */
    uint8_t int_pin;            /* 0: none, 1..4: INTA..INTD */
    bool multifunction;         /* header bit even when fn 0 is alone (PIIX3) */
} dm_pci_id;

/* Optional device hooks for registers beyond the standard header.
 * config_read gets the stored value of [off, off + size) and returns what
 * the guest reads; config_write runs after the masked write was stored and
 * BARs/command/INTx were updated. */
typedef struct dm_pci_dev_ops {
    uint32_t (*config_read)(void *opaque, dm_pci_dev *d, unsigned off, unsigned size,
                            uint32_t stored);
    void (*config_write)(void *opaque, dm_pci_dev *d, unsigned off, unsigned size, uint32_t val);
} dm_pci_dev_ops;

/* BARs are registered in pio/mmio; irq may be NULL (no INTx). */
dm_pci_bus *dm_pci_bus_new(dm_io_space *pio, dm_io_space *mmio, dm_irq *irq);
/* Removes every function (their BAR ranges leave the io spaces, their
 * state sections the registry).  Free the bus before the io spaces, the
 * dm_irq and the state registry it uses. */
void dm_pci_bus_free(dm_pci_bus *bus);

/* ------------------------------------------------------------ listeners */

/* Told after a function is added and before it is removed.  An add
 * listener's error fails dm_pci_add (the function is removed again). */
typedef int (*dm_pci_listener_fn)(void *opaque, uint32_t sbdf, bool added, const char *name);
int dm_pci_listener_add(dm_pci_bus *bus, dm_pci_listener_fn fn, void *opaque, bool replay);

/* ------------------------------------------------------------ functions */

/* Adds function slot.fn (slot < 32, fn < 8).  -EINVAL for bad numbers or
 * vendor 0xffff/0, -EEXIST if taken, -ENOMEM, or a listener's error. */
int dm_pci_add(dm_pci_bus *bus, const char *name, unsigned slot, unsigned fn,
               const dm_pci_id *id, const dm_pci_dev_ops *ops, void *opaque, dm_pci_dev **out);
void dm_pci_remove(dm_pci_bus *bus, dm_pci_dev *d);

/* Declares BAR n (0..5) before the guest runs: an I/O BAR (size 4..256,
 * power of two) or a 32-bit memory BAR (size 16 bytes..2 GiB, power of
 * two).  The BAR starts unassigned (0); firmware sizes and places it.
 * -EINVAL for a bad index or size, -EEXIST if already declared. */
int dm_pci_bar_init(dm_pci_dev *d, unsigned bar, bool io, uint32_t size, const dm_io_ops *ops,
                    void *opaque);
/* Where BAR n is mapped now, or DM_PCI_BAR_UNMAPPED. */
uint64_t dm_pci_bar_addr(const dm_pci_dev *d, unsigned bar);

/* Raw access for the device's own setup and registers: no masks, no
 * side effects.  Out-of-range offsets are ignored / read 0. */
void dm_pci_cfg_set(dm_pci_dev *d, unsigned off, unsigned size, uint32_t val);
uint32_t dm_pci_cfg_get(const dm_pci_dev *d, unsigned off, unsigned size);
/* Sets which bits of [off, off + size) the guest may write (wmask) and
 * which it clears by writing 1 (w1c).  Bytes 0x40.. default to writable
 * (QEMU's default); the standard header has its fixed masks. */
void dm_pci_set_masks(dm_pci_dev *d, unsigned off, unsigned size, uint32_t wmask, uint32_t w1c);

/* INTx: the device's interrupt level.  Reflected in status bit 3; sent to
 * dm_irq on the function's pin unless the command register disables INTx. */
void dm_pci_set_irq(dm_pci_dev *d, bool level);

uint32_t dm_pci_dev_sbdf(const dm_pci_dev *d);
const char *dm_pci_dev_name(const dm_pci_dev *d);
dm_pci_dev *dm_pci_find(const dm_pci_bus *bus, uint32_t sbdf);

/* ------------------------------------------------------- config access */

/* reg is the register offset (Xen's addr & 0xffffffff), size 1, 2 or 4.
 * Returns 0 when a function claimed it; -ENOENT for an SBDF with no
 * function (segment/bus other than 0:0 included); -ERANGE for an access
 * beyond the 256-byte space; -EINVAL for a bad size.  On non-zero returns a
 * read gives all-ones of the size and a write does nothing. */
int dm_pci_config_read(dm_pci_bus *bus, uint32_t sbdf, uint32_t reg, unsigned size, uint32_t *val);
int dm_pci_config_write(dm_pci_bus *bus, uint32_t sbdf, uint32_t reg, unsigned size, uint32_t val);

/* ----------------------------------------------------------- state file */

/* Registers section "pci-config", instance slot << 3 | fn, for every
 * function now and every function added later (removed ones unregister).
 * The payload is the configuration space and the INTx level; the loader
 * refuses a file whose read-only fields (IDs, class, header type, pin, BAR
 * type bits) differ from this function's, naming the field, and on load
 * remaps the BARs and re-evaluates INTx. */
int dm_pci_bus_set_state_reg(dm_pci_bus *bus, dm_state_reg *reg);

#endif
