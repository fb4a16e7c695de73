/*
 * The emulator in another process, as rsdm-sim will be: a forked child
 * uses only the Xen library calls (XENSIM_RUNDIR → the control socket;
 * guest RAM, ioreq pages and eventfds arrive as fds), the parent hosts the
 * hypervisor and the guest's vCPU.  Proves the shared pages, event channels
 * and foreign mappings work across processes, and that the hypervisor
 * notices the emulator's connections going away.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/xsim_emu.h"

#include "hv.h"

#define T XSIM_EMU_WAIT_MS

static void irq_device(struct xsim_emu *e, unsigned int vcpu, ioreq_t *req,
                       void *opaque)
{
    (void)opaque;
    xsim_emu_scratch(e, vcpu, req, NULL);
    if (req->type == IOREQ_TYPE_PIO && req->addr == XSIM_EMU_PORT + 0xff &&
        req->dir == IOREQ_WRITE) {
        xendevicemodel_set_isa_irq_level(e->dm, (domid_t)e->domid, 7, 1);
        xendevicemodel_set_isa_irq_level(e->dm, (domid_t)e->domid, 7, 0);
    }
}

/* The child: set up in Xen's order, write guest RAM through a foreign
 * mapping, say ready, serve until the parent hangs up. */
static int child(uint32_t dom, int ready_fd, int stop_fd)
{
    struct xsim_emu e;
    if (xsim_emu_setup(&e, dom) < 0)
        return 10;
    e.fn = irq_device;
    xen_pfn_t gfn = 5;
    uint8_t *p = xenforeignmemory_map(e.fm, dom, PROT_READ | PROT_WRITE, 1, &gfn, NULL);
    if (!p)
        return 11;
    memcpy(p + 100, "from the dm", 12);
    xenforeignmemory_unmap(e.fm, p, 1);
    if (xendevicemodel_modified_memory(e.dm, (domid_t)dom, 5, 1) < 0)
        return 12;
    e.stop_fd = stop_fd;
    if (write(ready_fd, "R", 1) != 1)
        return 13;
    for (;;) {
        int n = xsim_emu_poll(&e, -1);
        if (n == -ECANCELED)
            break;
        if (n < 0)
            return 14;
    }
    e.stop_fd = -1;
    xsim_emu_close(&e);
    return 0;
}

static void test_emulator_in_other_process(void **state)
{
    (void)state;
    assert_int_equal(xsim_fixture_start(), 0);
    int id = hv_domain_create(0, 2, 16, "xproc");
    assert_true(id > 0);
    uint32_t dom = (uint32_t)id;
    assert_int_equal(hv_logdirty_enable(dom, true), 0);
    int ready[2], stop[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(stop), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(stop[1]);
        _exit(child(dom, ready[1], stop[0]));
    }
    close(ready[1]);
    close(stop[0]);
    struct pollfd pr = { .fd = ready[0], .events = POLLIN };
    assert_int_equal(poll(&pr, 1, T), 1);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'R');

    struct hv_domain *d = hv_domain_get(dom);
    uint64_t size;
    uint8_t *ram = hv_domain_ram(d, &size);
    assert_memory_equal(ram + 5 * 4096 + 100, "from the dm", 12);
    unsigned long bm[4096 / 64];
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 1);
    assert_true(bm[0] & (1ul << 5));

    assert_int_equal(hv_domain_unpause(dom), 0);
    for (unsigned int i = 0; i < 1000; i++) {
        unsigned int v = i % 2;
        uint64_t w = 0x1000 + i, r = 0;
        assert_int_equal(xsim_pio(d, v, true, (uint16_t)(XSIM_EMU_PORT + v), 2, &w), 0);
        assert_int_equal(xsim_pio(d, v, false, (uint16_t)(XSIM_EMU_PORT + v), 2, &r), 0);
        assert_int_equal(r, w);
    }
    uint64_t cfg = 0;
    assert_int_equal(xsim_pci_cfg(d, 0, false, 0, 3, 0, 0, 4, &cfg), 0);
    assert_int_equal(cfg, 0x12345678u);
    struct hv_irq_state s;
    uint64_t one = 1;
    assert_int_equal(xsim_pio(d, 1, true, XSIM_EMU_PORT + 0xff, 1, &one), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.edges[7], 1);
    assert_int_equal(hv_null_hits_total(dom), 0);

    close(stop[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    /* The child destroyed its server on the way out: the guest's accesses
     * now go to the null handler and count as lost on its ranges. */
    uint64_t v = 0;
    assert_int_equal(xsim_pio(d, 0, false, XSIM_EMU_PORT, 1, &v), 0);
    assert_int_equal(v, 0xff);
    assert_int_equal(hv_null_hits_total(dom), 1);
    hv_domain_put(d);
    close(ready[0]);
    xsim_fixture_stop();
}

/* A dm that dies without cleaning up leaves its server (as in Xen); its
 * event-channel bindings go with its connections, so the guest's request
 * stays pending until the domain is destroyed. */
static void test_emulator_dies(void **state)
{
    (void)state;
    assert_int_equal(xsim_fixture_start(), 0);
    int id = hv_domain_create(0, 1, 16, "dies");
    assert_true(id > 0);
    uint32_t dom = (uint32_t)id;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        struct xsim_emu e;
        if (xsim_emu_setup(&e, dom) < 0)
            _exit(10);
        _exit(write(ready[1], "R", 1) == 1 ? 0 : 11);   /* no teardown */
    }
    close(ready[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    struct hv_domain_info info;
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_int_equal(info.nr_servers, 1);
    assert_int_equal(info.nr_enabled_servers, 1);
    assert_int_equal(hv_domain_unpause(dom), 0);
    struct hv_domain *d = hv_domain_get(dom);
    ioreq_t r = { .type = IOREQ_TYPE_PIO, .addr = XSIM_EMU_PORT, .size = 1,
                  .count = 1, .dir = IOREQ_READ };
    hv_log_quiet(true);
    assert_int_equal(hv_vcpu_io(d, 0, &r, 0), -ETIMEDOUT);
    hv_log_quiet(false);
    assert_int_equal(hv_domain_destroy(dom), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), -ESHUTDOWN);
    hv_domain_put(d);
    xsim_fixture_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emulator_in_other_process),
        cmocka_unit_test(test_emulator_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
