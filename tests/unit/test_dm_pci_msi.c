/*
 * dm_pci_msi on a real dm_pci bus: the capability is linked from the
 * capability pointer with the status bit set, only address, data and the
 * enable bit are guest-writable, a notification sends exactly the
 * programmed message (none while disabled or with bus mastering off), a
 * failing inject is counted, and the capability travels with config space
 * through the state file.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm_pci_msi.h"

#define SLOT 5
#define CAP 0x80

typedef struct fixture {
    dm_io_space *pio, *mmio;
    dm_pci_bus *bus;
    dm_pci_dev *dev;
    dm_pci_msi msi;
    unsigned sent;
    uint64_t addr;
    uint32_t data;
    int fail;
} fixture;

static fixture F;

static int inject(void *opaque, uint64_t addr, uint32_t data)
{
    fixture *f = opaque;
    if (f->fail)
        return f->fail;
    f->sent++;
    f->addr = addr;
    f->data = data;
    return 0;
}

static const dm_pci_id id = { .vendor = 0x8086, .device = 0x2922, .class_code = 0x010601,
                              .int_pin = 1 };

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    F.pio = dm_io_space_new(DM_IO_PORT);
    F.mmio = dm_io_space_new(DM_IO_MMIO);
    F.bus = dm_pci_bus_new(F.pio, F.mmio, NULL);
    assert_int_equal(dm_pci_add(F.bus, "msi-dev", SLOT, 0, &id, NULL, NULL, &F.dev), 0);
    assert_int_equal(dm_pci_msi_init(&F.msi, F.dev, CAP, inject, &F), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dm_pci_bus_free(F.bus);
    dm_io_space_free(F.mmio);
    dm_io_space_free(F.pio);
    return 0;
}

static uint32_t cfg_rd(unsigned reg, unsigned size)
{
    uint32_t v = 0;
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 0, SLOT, 0), reg, size, &v), 0);
    return v;
}

static void cfg_wr(unsigned reg, unsigned size, uint32_t v)
{
    assert_int_equal(dm_pci_config_write(F.bus, dm_pci_sbdf(0, 0, SLOT, 0), reg, size, v), 0);
}

static void test_layout(void **state)
{
    (void)state;
    assert_true(cfg_rd(DM_PCI_STATUS, 2) & DM_PCI_STATUS_CAP_LIST);
    assert_int_equal(cfg_rd(DM_PCI_CAPABILITY_LIST, 1), CAP);
    assert_int_equal(cfg_rd(CAP, 1), DM_PCI_CAP_ID_MSI);
    assert_int_equal(cfg_rd(CAP + 1, 1), 0);           /* end of the list */
    assert_int_equal(cfg_rd(CAP + 2, 2), DM_PCI_MSI_CTRL_64BIT);
    /* The guest cannot rewrite the ID, the link, the 64-bit bit or ask
     * for more vectors (MME). */
    cfg_wr(CAP, 4, 0xffffffffu);
    assert_int_equal(cfg_rd(CAP, 1), DM_PCI_CAP_ID_MSI);
    assert_int_equal(cfg_rd(CAP + 1, 1), 0);
    assert_int_equal(cfg_rd(CAP + 2, 2), DM_PCI_MSI_CTRL_64BIT | DM_PCI_MSI_CTRL_ENABLE);
    /* Address bits 1:0 are reserved. */
    cfg_wr(CAP + 4, 4, 0xfee00003u);
    assert_int_equal(cfg_rd(CAP + 4, 4), 0xfee00000u);
}

static void test_bad_init(void **state)
{
    (void)state;
    dm_pci_msi m;
    assert_int_equal(dm_pci_msi_init(&m, F.dev, 0x30, inject, &F), -EINVAL);
    assert_int_equal(dm_pci_msi_init(&m, F.dev, 0x82, inject, &F), -EINVAL);
    assert_int_equal(dm_pci_msi_init(&m, F.dev, 0xf8, inject, &F), -EINVAL);
    assert_int_equal(dm_pci_msi_init(&m, F.dev, 0x90, NULL, &F), -EINVAL);
}

static void test_notify(void **state)
{
    (void)state;
    assert_false(dm_pci_msi_enabled(&F.msi));
    assert_int_equal(dm_pci_msi_notify(&F.msi), 0);
    cfg_wr(CAP + 4, 4, 0xfee01000u);
    cfg_wr(CAP + 8, 4, 0x1);
    cfg_wr(CAP + 12, 2, 0x4041);
    cfg_wr(CAP + 2, 2, DM_PCI_MSI_CTRL_ENABLE);
    assert_true(dm_pci_msi_enabled(&F.msi));
    /* Bus mastering off: the function may not write the message. */
    assert_int_equal(dm_pci_msi_notify(&F.msi), 0);
    assert_int_equal(F.sent, 0);
    cfg_wr(DM_PCI_COMMAND, 2, DM_PCI_COMMAND_MASTER);
    assert_int_equal(dm_pci_msi_notify(&F.msi), 1);
    assert_int_equal(F.sent, 1);
    assert_int_equal(F.addr, 0x1fee01000ull);
    assert_int_equal(F.data, 0x4041);
    F.fail = -EIO;
    assert_int_equal(dm_pci_msi_notify(&F.msi), -EIO);
    assert_int_equal(F.msi.failed, 1);
    assert_int_equal(F.msi.sent, 1);
}

static void test_state(void **state)
{
    (void)state;
    dm_state_reg *reg = dm_state_reg_new();
    assert_non_null(reg);
    assert_int_equal(dm_pci_bus_set_state_reg(F.bus, reg), 0);
    cfg_wr(DM_PCI_COMMAND, 2, DM_PCI_COMMAND_MASTER);
    cfg_wr(CAP + 4, 4, 0xfee02000u);
    cfg_wr(CAP + 12, 2, 0x31);
    cfg_wr(CAP + 2, 2, DM_PCI_MSI_CTRL_ENABLE);
    uint8_t *buf;
    size_t len;
    char err[256];
    assert_int_equal(dm_state_save_mem(reg, &buf, &len, err, sizeof(err)), 0);
    cfg_wr(CAP + 2, 2, 0);
    cfg_wr(CAP + 12, 2, 0);
    assert_false(dm_pci_msi_enabled(&F.msi));
    assert_int_equal(dm_state_load_mem(reg, buf, len, err, sizeof(err)), 0);
    assert_true(dm_pci_msi_enabled(&F.msi));
    assert_int_equal(dm_pci_msi_notify(&F.msi), 1);
    assert_int_equal(F.addr, 0xfee02000u);
    assert_int_equal(F.data, 0x31);
    free(buf);
    dm_pci_bus_free(F.bus);      /* before the registry it uses */
    F.bus = dm_pci_bus_new(F.pio, F.mmio, NULL);
    dm_state_reg_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_init, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
