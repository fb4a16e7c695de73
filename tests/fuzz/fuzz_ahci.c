/*
 * libFuzzer target: the guest-controlled paths of the ICH9 AHCI function
 * -- ABAR registers (HBA and the six ports), its PCI config space, and the
 * command lists, FIS and command tables it reads from guest RAM -- on the
 * real dm modules over the in-process hypervisor (tests/lib/ahci_rig: one
 * thread, a 1 MiB raw image, guest RAM of a real domain).
 *
 * The input is a sequence of guest operations (fuzz_guest.h); the
 * register selector is an ABAR offset (below 0x1000).  Properties beyond
 * "no crash": every main-loop pass returns (bounded passes only), the
 * device state saves after any sequence and the saved bytes load back
 * into the same device, the controller comes back from an HBA reset.
 * Between inputs the HBA is reset (GHC.HR, the guest's own path) and the
 * firmware's BAR and command register are restored, so inputs are
 * independent.  RSDM_FUZZ_STATS=1 prints the controller's counters after
 * each input (to see what a seed reaches).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ahci_rig.h"
#include "dev_ahci.h"
#include "dm_log.h"
#include "fuzz_guest.h"

#define ABAR_SIZE 0x1000u
#define GHC 0x04u
#define GHC_HR 1u
#define GHC_AE 0x80000000u
#define RESET_PASSES 64

static ahci_rig R;
static fuzz_guest G;

static uint32_t ahci_sbdf(void)
{
    return dm_pci_sbdf(0, 0, DM_AHCI_PCI_SLOT, 0);
}

static void ahci_reg_write(void *dev, uint16_t sel, unsigned size, uint32_t val)
{
    ahci_rig *r = dev;
    dm_io_write(r->mmio, AHCI_RIG_ABAR + (sel % ABAR_SIZE), size, val);
}

static void ahci_reg_read(void *dev, uint16_t sel, unsigned size)
{
    ahci_rig *r = dev;
    uint64_t v;
    dm_io_read(r->mmio, AHCI_RIG_ABAR + (sel % ABAR_SIZE), size, &v);
}

static void ahci_cfg_write(void *dev, uint8_t reg, unsigned size, uint32_t val)
{
    ahci_rig *r = dev;
    dm_pci_config_write(r->pci, ahci_sbdf(), reg & ~(size - 1), size, val);
}

/* What the firmware set up, then an HBA reset through GHC.HR, which the
 * device must complete. */
static void ahci_reset(void)
{
    dm_pci_config_write(R.pci, ahci_sbdf(), DM_PCI_BAR0 + 4 * 5, 4, AHCI_RIG_ABAR);
    dm_pci_config_write(R.pci, ahci_sbdf(), DM_PCI_COMMAND, 2,
                        DM_PCI_COMMAND_MEMORY | DM_PCI_COMMAND_MASTER);
    dm_io_write(R.mmio, AHCI_RIG_ABAR + GHC, 4, GHC_AE | GHC_HR);
    uint64_t ghc = GHC_HR;
    for (int i = 0; i < RESET_PASSES && (ghc & GHC_HR); i++) {
        ahci_rig_pump(&R, 0);
        dm_io_read(R.mmio, AHCI_RIG_ABAR + GHC, 4, &ghc);
    }
    if (ghc & GHC_HR)
        fuzz_die("HBA reset", "GHC.HR never cleared");
    dm_io_write(R.mmio, AHCI_RIG_ABAR + GHC, 4, GHC_AE);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dm_log_set_level(DM_LOG_ERROR);
    ahci_rig_opts o = { .disk_mib = 1, .rerror = DM_ERR_REPORT, .werror = DM_ERR_REPORT,
                        .timeout_ms = 2000 };
    if (ahci_rig_start(&R, &o) < 0)
        fuzz_die("ahci rig", "cannot start");
    G = (fuzz_guest){
        .dev = &R, .reg_write = ahci_reg_write, .reg_read = ahci_reg_read,
        .cfg_write = ahci_cfg_write, .ram = R.ram, .ram_size = R.ram_size,
        .blk = R.blk, .loop = R.loop, .vm = R.vm, .state = R.state,
    };
    ahci_reset();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_guest_run(&G, data, size);
    fuzz_guest_finish(&G);
    if (getenv("RSDM_FUZZ_STATS")) {
        dm_ahci_stats st;
        dm_ahci_get_stats(R.ahci, &st);
        fprintf(stderr, "fuzz_ahci: commands %llu (ncq %llu) completed %llu failed %llu latched %llu "
                "discarded %llu irqs %llu port resets %llu\n",
                (unsigned long long)st.commands, (unsigned long long)st.ncq_commands,
                (unsigned long long)st.completed, (unsigned long long)st.failed,
                (unsigned long long)st.latched, (unsigned long long)st.discarded,
                (unsigned long long)st.irqs, (unsigned long long)st.port_resets);
    }
    ahci_reset();
    return 0;
}
