/*
 * Back-end (a) smoke test: a guest bus on a simulated domain with no ioreq
 * server.  Port, MMIO and PCI config accesses reach Xen's null handler
 * (all-ones, counted by the bus); guest RAM round-trips through the
 * domain's shared memory; an ISA IRQ raised by the hypervisor is seen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hv.h"
#include "guest_hv.h"
#include "../lib/xsim_emu.h"

static void test_null_handler_ram_irq(void **state)
{
    (void)state;
    int id = hv_domain_create(0, 2, 16, NULL);
    assert_true(id > 0);
    assert_int_equal(hv_domain_unpause((uint32_t)id), 0);
    struct guest_bus b;
    char err[256];
    assert_int_equal(guest_hv_open(&b, (uint32_t)id, 1, 1u << 20, err, sizeof(err)), 0);
    uint8_t v8;
    uint32_t v32;
    assert_int_equal(guest_inb(&b, 0x3f8, &v8), 0);
    assert_int_equal(v8, 0xff);
    assert_int_equal(guest_pci_read(&b, GUEST_BDF(0, 1, 0), 0, 4, &v32), 0);
    assert_int_equal(v32, 0xffffffffu);
    assert_int_equal(guest_readl(&b, 0xf0000000u, &v32), 0);
    assert_int_equal(v32, 0xffffffffu);
    assert_int_equal(b.all_ones_reads, 3);
    uint64_t gpa = guest_ram_alloc(&b, 4096, 4096);
    assert_true(gpa >= (1u << 20));
    uint8_t out[4096], in[4096];
    for (unsigned i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 13);
    assert_int_equal(guest_mem_write(&b, gpa, out, sizeof(out)), 0);
    assert_int_equal(guest_mem_read(&b, gpa, in, sizeof(in)), 0);
    assert_memory_equal(in, out, sizeof(out));
    assert_int_equal(guest_mem_read(&b, 16u << 20, in, 1), -1);
    uint64_t edges = guest_irq_count(&b, 4);
    assert_int_equal(hv_set_isa_irq_level((uint32_t)id, 4, 1), 0);
    assert_int_equal(guest_irq_wait(&b, 4, 10000), 1);
    assert_int_equal(guest_irq_count(&b, 4), edges + 1);
    assert_int_equal(hv_set_isa_irq_level((uint32_t)id, 4, 0), 0);
    assert_int_equal(guest_irq_level(&b, 4), 0);
    guest_bus_close(&b);
    assert_int_equal(hv_domain_destroy((uint32_t)id), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_null_handler_ram_irq, xsim_fixture_setup, xsim_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
