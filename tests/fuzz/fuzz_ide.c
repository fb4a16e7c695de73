/*
 * libFuzzer target: the guest-controlled paths of the PIIX3 IDE function
 * -- both channels' task-file and control ports, the bus-master registers
 * of BAR4, its PCI config space, and the PRD tables it walks in guest RAM
 * -- on the real dm modules (main loop, run state, I/O spaces, PCI bus,
 * interrupts, guest memory, a dm_blk backend on a 1 MiB raw image with
 * cache=unsafe) over the in-process hypervisor, in one thread.
 *
 * The input is a sequence of guest operations (fuzz_guest.h); the
 * register selector picks a port, modulo 34: 0-7 0x1f0-0x1f7, 8 0x3f6,
 * 9-16 0x170-0x177, 17 0x376, 18-33 BAR4 + 0..15.  Properties beyond "no
 * crash": every main-loop pass returns (bounded passes only), the device
 * state saves after any sequence and the saved bytes load back into the
 * same device.  Between inputs the device gets a machine reset
 * (dev_ide_reset) and the firmware's BAR4 and command register again, so
 * inputs are independent.  RSDM_FUZZ_STATS=1 prints the device's counters
 * after each input (to see what a seed reaches).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk.h"
#include "dev_ide.h"
#include "dm_guestmem.h"
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_log.h"
#include "dm_pci.h"
#include "dm_xen.h"
#include "fuzz_guest.h"
#include "hv.h"
#include "xsim_emu.h"

#define IDE_RAM_MIB 16
#define IDE_IMAGE_BYTES (1u << 20)
#define IDE_BMDMA 0xc000u
#define IDE_PORTS 34

static struct {
    uint32_t dom;
    struct hv_domain *d;
    dm_xen xen;
    dm_guestmem *gm;
    dm_loop *loop;
    rs_vm *vm;
    dm_io_space *pio;
    dm_irq *irq;
    dm_pci_bus *pci;
    dm_state_reg *state;
    dm_blk *blk;
    dev_ide *ide;
} M;

static fuzz_guest G;

static int irq_isa(void *o, unsigned irq, bool level) { (void)o; (void)irq; (void)level; return 0; }
static int irq_intx(void *o, unsigned s, unsigned i, bool l) { (void)o; (void)s; (void)i; (void)l; return 0; }
static const dm_irq_backend irq_be = { irq_isa, irq_intx };

static void on_requests(void *opaque, int fd)
{
    (void)opaque;
    (void)fd;
    int status;
    rs_process_requests(M.vm, &status);
}

static uint16_t ide_port(uint16_t sel)
{
    unsigned i = sel % IDE_PORTS;
    if (i < 8)
        return (uint16_t)(0x1f0 + i);
    if (i == 8)
        return 0x3f6;
    if (i < 17)
        return (uint16_t)(0x170 + i - 9);
    if (i == 17)
        return 0x376;
    return (uint16_t)(IDE_BMDMA + i - 18);
}

static void ide_reg_write(void *dev, uint16_t sel, unsigned size, uint32_t val)
{
    (void)dev;
    dm_io_write(M.pio, ide_port(sel), size, val);
}

static void ide_reg_read(void *dev, uint16_t sel, unsigned size)
{
    (void)dev;
    uint64_t v;
    dm_io_read(M.pio, ide_port(sel), size, &v);
}

static uint32_t ide_sbdf(void)
{
    return dm_pci_sbdf(0, 0, DEV_IDE_SLOT, DEV_IDE_FN);
}

static void ide_cfg_write(void *dev, uint8_t reg, unsigned size, uint32_t val)
{
    (void)dev;
    dm_pci_config_write(M.pci, ide_sbdf(), reg & ~(size - 1), size, val);
}

/* What the firmware sets up: BAR4, I/O decode and bus mastering. */
static void ide_firmware(void)
{
    dm_pci_config_write(M.pci, ide_sbdf(), DM_PCI_BAR0 + 4 * 4, 4, IDE_BMDMA | 1);
    dm_pci_config_write(M.pci, ide_sbdf(), DM_PCI_COMMAND, 2,
                        DM_PCI_COMMAND_IO | DM_PCI_COMMAND_MASTER);
}

static void machine_build(void)
{
    char err[512] = "";
    if (xsim_fixture_start() < 0)
        fuzz_die("hypervisor", "cannot start the in-process hypervisor");
    hv_log_quiet(true);
    int id = hv_domain_create(0, 1, IDE_RAM_MIB, "fuzz-ide");
    if (id <= 0)
        fuzz_die("domain", "cannot create");
    M.dom = (uint32_t)id;
    M.d = hv_domain_get(M.dom);
    uint64_t ram_size;
    uint8_t *ram = hv_domain_ram(M.d, &ram_size);
    if (hv_domain_unpause(M.dom) < 0)
        fuzz_die("domain", "cannot unpause");
    if (dm_xen_open(&M.xen, (domid_t)M.dom, err, sizeof(err)) < 0)
        fuzz_die("Xen libraries", err);
    if (!(M.gm = dm_guestmem_new(&M.xen)) || !(M.loop = dm_loop_new()) ||
        !(M.vm = rs_vm_new()) || !(M.pio = dm_io_space_new(DM_IO_PORT)) ||
        !(M.irq = dm_irq_new(&irq_be, NULL)) || !(M.state = dm_state_reg_new()))
        fuzz_die("dm modules", strerror(errno));
    dm_io_space *mmio = dm_io_space_new(DM_IO_MMIO);
    rs_set_log(M.vm, NULL, NULL);
    if (!mmio || !dm_watch_add(M.loop, rs_notify_fd(M.vm), on_requests, NULL, NULL) ||
        dm_irq_attach_runstate(M.irq, M.vm, 0) < 0 ||
        !(M.pci = dm_pci_bus_new(M.pio, mmio, M.irq)) ||
        dm_pci_bus_set_state_reg(M.pci, M.state) < 0)
        fuzz_die("dm wiring", strerror(errno));

    const char *dir = fuzz_scratch("ide");
    char img[128];
    snprintf(img, sizeof(img), "%s/hda.img", dir);
    int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, IDE_IMAGE_BYTES) < 0)
        fuzz_die(img, strerror(errno));
    close(fd);
    dm_blk_opts bo = { .path = img, .name = "hda", .cache = DM_CACHE_UNSAFE,
                       .rerror = DM_ERR_REPORT, .werror = DM_ERR_REPORT, .vm = M.vm };
    if (!(M.blk = dm_blk_open(M.loop, &bo, err, sizeof(err))))
        fuzz_die("block backend", err);
    dev_ide_cfg ic = { .loop = M.loop, .pio = M.pio, .pci = M.pci, .irq = M.irq,
                       .vm = M.vm, .gm = M.gm, .state = M.state };
    dev_ide_disk disk = { .blk = M.blk, .model = "RSDM FUZZ DISK", .serial = "FUZZ0" };
    if (dev_ide_new(&ic, &M.ide, err, sizeof(err)) < 0 ||
        dev_ide_attach(M.ide, 0, &disk, err, sizeof(err)) < 0)
        fuzz_die("IDE", err);
    ide_firmware();
    rs_err e = { 0 };
    if (rs_cont(M.vm, &e) < 0)
        fuzz_die("rs_cont", e.msg);
    G = (fuzz_guest){
        .dev = M.ide, .reg_write = ide_reg_write, .reg_read = ide_reg_read,
        .cfg_write = ide_cfg_write, .ram = ram, .ram_size = ram_size,
        .blk = M.blk, .loop = M.loop, .vm = M.vm, .state = M.state,
    };
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dm_log_set_level(DM_LOG_ERROR);
    machine_build();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_guest_run(&G, data, size);
    fuzz_guest_finish(&G);
    if (getenv("RSDM_FUZZ_STATS")) {
        dev_ide_stats st;
        dev_ide_get_stats(M.ide, &st);
        fprintf(stderr, "fuzz_ide: commands %llu aborted %llu dma bytes %llu pio bytes %llu "
                "latched %llu irqs %llu\n",
                (unsigned long long)st.commands, (unsigned long long)st.aborted,
                (unsigned long long)st.dma_bytes, (unsigned long long)st.pio_bytes,
                (unsigned long long)st.latched, (unsigned long long)st.irqs);
    }
    dev_ide_reset(M.ide, "fuzz input done");
    ide_firmware();
    return 0;
}
