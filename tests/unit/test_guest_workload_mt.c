/*
 * The workload runner over the real ioreq path: the xensim test disk
 * emulated by a minimal in-test emulator (tests/lib/xsim_emu: its own
 * ioreq server, guest RAM through a foreign mapping, completion interrupts
 * through the ISA IRQ DMOP), driven by the runner's vCPU threads through
 * hv_vcpu_io().  100,000 writes on 2 vCPUs with 0 lost; a stop in the
 * middle and a resume from the state the guest keeps in RAM (no re-init,
 * the full read-back after it checks every write from before the stop);
 * an emulator that drops one write is caught; an interrupt and a device
 * write to guest RAM while the dm's xenstore run state says stopped are
 * counted (and an interrupt while running is not); the runner's errors.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>
#include <jansson.h>
#include <xenstore.h>

#include "hv.h"
#include "guest_testdisk.h"
#include "guest_wl_internal.h"
#include "guest_workload.h"
#include "xs_testd.h"
#include "../lib/xsim_emu.h"

#define NSECT 1024u
#define MEM_MIB 16u

struct td_emu {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint8_t *ram;                 /* guest RAM, foreign-mapped */
    size_t ram_size;
    uint8_t disk[NSECT][512];
    uint32_t lba[8], gpa[8];
    uint8_t status[8];
    uint64_t ops;
    uint64_t drop_at;             /* 0: never; else the write to drop */
    uint64_t writes;
    uint32_t domid;
};

static struct td_emu T;
static struct xsim_emu E;

static void td_cmd(struct xsim_emu *e, unsigned v, uint8_t cmd)
{
    uint32_t lba = T.lba[v], gpa = T.gpa[v];
    T.status[v] = 1;
    if (lba >= NSECT || gpa > T.ram_size - 512)
        return;
    if (cmd == GUEST_TD_WRITE) {
        if (++T.writes != T.drop_at)   /* a dropped write is still acknowledged */
            memcpy(T.disk[lba], T.ram + gpa, 512);
    } else if (cmd == GUEST_TD_READ) {
        memcpy(T.ram + gpa, T.disk[lba], 512);
    } else if (cmd != GUEST_TD_FLUSH) {
        return;
    }
    T.status[v] = 0;
    T.ops++;
    pthread_cond_broadcast(&T.cond);
    /* Edge on the test disk's line, as the device raises it. */
    xendevicemodel_set_isa_irq_level(e->dm, (domid_t)T.domid, GUEST_TESTDISK_GSI, 1);
    xendevicemodel_set_isa_irq_level(e->dm, (domid_t)T.domid, GUEST_TESTDISK_GSI, 0);
}

static void td_fn(struct xsim_emu *e, unsigned int vcpu, ioreq_t *req, void *opaque)
{
    (void)vcpu;
    (void)opaque;
    if (req->type != IOREQ_TYPE_PIO || req->data_is_ptr)
        return;
    unsigned v = (unsigned)(req->addr - GUEST_TESTDISK_PORT) / 16;
    unsigned reg = (unsigned)(req->addr - GUEST_TESTDISK_PORT) % 16;
    pthread_mutex_lock(&T.lock);
    if (v >= 8) {
        req->data = ~0ull;
    } else if (req->dir == IOREQ_READ) {
        req->data = reg == 12 ? T.status[v] : ~0ull;
    } else if (reg == 0) {
        T.lba[v] = (uint32_t)req->data;
    } else if (reg == 4) {
        T.gpa[v] = (uint32_t)req->data;
    } else if (reg == 8) {
        td_cmd(e, v, (uint8_t)req->data);
    }
    pthread_mutex_unlock(&T.lock);
}

static uint32_t boot(uint64_t drop_at)
{
    memset(&T, 0, sizeof(T));
    pthread_mutex_init(&T.lock, NULL);
    pthread_cond_init(&T.cond, NULL);
    T.drop_at = drop_at;
    int id = hv_domain_create(0, 2, MEM_MIB, NULL);
    assert_true(id > 0);
    T.domid = (uint32_t)id;
    memset(&E, 0, sizeof(E));
    assert_int_equal(xsim_emu_setup(&E, T.domid), 0);
    size_t npages = (size_t)MEM_MIB << 8;
    xen_pfn_t *pfns = calloc(npages, sizeof(*pfns));
    assert_non_null(pfns);
    for (size_t i = 0; i < npages; i++)
        pfns[i] = i;
    T.ram = xenforeignmemory_map(E.fm, T.domid, PROT_READ | PROT_WRITE, npages, pfns, NULL);
    free(pfns);
    assert_non_null(T.ram);
    T.ram_size = npages * 4096;
    E.fn = td_fn;
    assert_int_equal(xsim_emu_start_thread(&E), 0);
    assert_int_equal(hv_domain_unpause(T.domid), 0);
    return T.domid;
}

static void shut(void)
{
    guest_wl_shutdown();
    if (!E.dm)
        return;   /* already shut */
    xsim_emu_stop_thread(&E);
    if (T.ram)
        xenforeignmemory_unmap(E.fm, T.ram, T.ram_size / 4096);
    T.ram = NULL;
    xsim_emu_close(&E);
    hv_domain_destroy(T.domid);
}

/* Until the emulator has completed `n` commands (bounded). */
static void wait_ops(uint64_t n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 120;
    pthread_mutex_lock(&T.lock);
    int rc = 0;
    while (T.ops < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&T.cond, &T.lock, &dl);
    uint64_t ops = T.ops;
    pthread_mutex_unlock(&T.lock);
    assert_true(ops >= n);
}

static json_t *status(uint32_t domid)
{
    char buf[16384];
    int n = guest_wl_status(domid, buf, sizeof(buf));
    assert_true(n > 0);
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    if (!j)
        fail_msg("status is not JSON (%s): %s", je.text, buf);
    return j;
}

static uint64_t counter(json_t *j, const char *name)
{
    json_t *v = json_object_get(json_object_get(j, "counters"), name);
    assert_non_null(v);
    return (uint64_t)json_integer_value(v);
}

static void assert_state(json_t *j, const char *want)
{
    const char *st = json_string_value(json_object_get(j, "state"));
    if (!st || strcmp(st, want) != 0)
        fail_msg("state %s (reason: %s), expected %s", st ? st : "?",
                 json_string_value(json_object_get(j, "reason")), want);
}

static int setup(void **state)
{
    (void)state;
    hv_log_quiet(true);
    return xsim_fixture_start();
}

static int teardown(void **state)
{
    (void)state;
    shut();   /* a failed test leaves its workload and emulator running */
    xsim_fixture_stop();
    return 0;
}

static void test_100k_writes_two_vcpus(void **state)
{
    (void)state;
    uint32_t d = boot(0);
    char err[512];
    assert_int_equal(guest_wl_start(d, "devices=testdisk fw=none vcpus=2 writes=100000 "
                                    "sectors=1024", false, err, sizeof(err)), 0);
    assert_int_equal(guest_wl_wait_ended(d, 600000), 0);
    json_t *j = status(d);
    assert_state(j, "done");
    assert_int_equal(counter(j, "writes"), 100000);
    assert_true(counter(j, "reads") >= 100000 + NSECT);
    assert_int_equal(counter(j, "flushes"), 2);
    assert_int_equal(counter(j, "lost_writes"), 0);
    assert_int_equal(counter(j, "stale_overwrites"), 0);
    assert_int_equal(counter(j, "corrupted_reads"), 0);
    assert_int_equal(counter(j, "all_ones_reads"), 0);
    assert_int_equal(counter(j, "reinits"), 0);
    json_decref(j);
    /* every command went through an ioreq server, none through the null handler */
    assert_int_equal(hv_null_hits_total(d), 0);
    shut();
}

static void test_stop_then_resume_from_guest_ram(void **state)
{
    (void)state;
    uint32_t d = boot(0);
    char err[512];
    assert_int_equal(guest_wl_start(d, "devices=testdisk fw=none writes=6000", false, err,
                                    sizeof(err)), 0);
    wait_ops(3000);
    assert_int_equal(guest_wl_stop(d, 30000, err, sizeof(err)), 0);
    json_t *j = status(d);
    assert_state(j, "stopped");
    uint64_t before = counter(j, "writes");
    json_decref(j);
    assert_true(before > 0 && before < 6000);
    /* Same RAM, as after a restore: the runner resumes from it. */
    assert_int_equal(guest_wl_start(d, "", true, err, sizeof(err)), 0);
    assert_int_equal(guest_wl_wait_ended(d, 600000), 0);
    j = status(d);
    assert_state(j, "done");
    assert_true(json_is_true(json_object_get(j, "resumed")));
    /* The budget carried over: the two runs wrote 6000 together, and the
     * full read-back classified every sector against the ledger kept in
     * guest RAM across the stop. */
    assert_int_equal(before + counter(j, "writes"), 6000);
    assert_int_equal(counter(j, "lost_writes"), 0);
    assert_int_equal(counter(j, "stale_overwrites"), 0);
    assert_int_equal(counter(j, "corrupted_reads"), 0);
    assert_int_equal(counter(j, "reinits"), 0);
    json_decref(j);
    shut();
}

static void test_dropped_write_is_caught(void **state)
{
    (void)state;
    uint32_t d = boot(500);
    char err[512];
    assert_int_equal(guest_wl_start(d, "devices=testdisk fw=none vcpus=1 writes=2000 sectors=64",
                                    false, err, sizeof(err)), 0);
    assert_int_equal(guest_wl_wait_ended(d, 600000), 0);
    json_t *j = status(d);
    assert_state(j, "done");
    assert_true(counter(j, "lost_writes") >= 1);
    json_decref(j);
    shut();
}

/* Until a status field (dm.<name> or counters.<name>) reaches n (bounded;
 * the counters have no event to wait on). */
static void poll_field(uint32_t d, const char *group, const char *name, uint64_t n)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        json_t *j = status(d);
        uint64_t v = (uint64_t)json_integer_value(json_object_get(json_object_get(j, group), name));
        json_decref(j);
        if (v >= n)
            return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 60)
            fail_msg("%s.%s stayed at %llu, expected %llu", group, name,
                     (unsigned long long)v, (unsigned long long)n);
        struct timespec ts = { 0, 10 * 1000000 };
        nanosleep(&ts, NULL);
    }
}

static struct xs_testd xd;

/* With a xenstore daemon (forked) for the dm-state watch; the teardown
 * stops it even when the test fails. */
static int setup_xs(void **state)
{
    if (xs_testd_start(&xd, XS_TESTD_FORK, NULL) < 0)
        return -1;
    guest_wl_init(xd.rundir);
    return setup(state);
}

static int teardown_xs(void **state)
{
    guest_wl_shutdown();
    guest_wl_init(NULL);
    unsetenv("XENSTORED_PATH");
    int rc = teardown(state);
    xs_testd_stop(&xd, false);
    return rc;
}

static void test_device_activity_while_stopped_counted(void **state)
{
    (void)state;
    uint32_t d = boot(0);
    char err[512], path[128];
    assert_int_equal(guest_wl_start(d, "devices=testdisk fw=none vcpus=1", false, err,
                                    sizeof(err)), 0);
    wait_ops(200);
    struct xs_handle *xs = xs_open(0);
    assert_non_null(xs);
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/runstate", d);
    /* running: an interrupt is no fault */
    assert_true(xs_write(xs, XBT_NULL, path, "running holds=", 14));
    assert_int_equal(hv_set_isa_irq_level(d, 5, 1), 0);
    assert_int_equal(hv_set_isa_irq_level(d, 5, 0), 0);
    /* stopped, as a dm reports it: it holds a pause and stops serving
     * (a request in flight stays pending), then says so */
    assert_int_equal(hv_domain_pause(d), 0);
    xsim_emu_stop_thread(&E);
    assert_true(xs_write(xs, XBT_NULL, path, "paused holds=paused", 19));
    poll_field(d, "dm", "stopped_checks", 2);
    const struct wl_hdr *h = (const struct wl_hdr *)(T.ram + WL_HDR_GPA);
    uint64_t buf = h->td[0].buf;
    assert_true(buf > WL_HDR_GPA && buf < T.ram_size);
    assert_int_equal(hv_set_isa_irq_level(d, 5, 1), 0);   /* a device that did not stop */
    assert_int_equal(hv_set_isa_irq_level(d, 5, 0), 0);
    T.ram[buf] ^= 0xff;                                   /* and its DMA */
    poll_field(d, "counters", "irqs_while_stopped", 1);
    poll_field(d, "counters", "ram_writes_while_stopped", 1);
    /* says running before its devices run again */
    assert_true(xs_write(xs, XBT_NULL, path, "running holds=", 14));
    assert_int_equal(xsim_emu_start_thread(&E), 0);
    assert_int_equal(hv_domain_unpause(d), 0);
    assert_int_equal(guest_wl_stop(d, 30000, err, sizeof(err)), 0);
    json_t *j = status(d);
    assert_int_equal(counter(j, "irqs_while_stopped"), 1);
    assert_int_equal(counter(j, "ram_writes_while_stopped"), 1);
    json_decref(j);
    xs_close(xs);
    shut();
}

static void test_errors(void **state)
{
    (void)state;
    uint32_t d = boot(0);
    char err[512];
    assert_int_equal(guest_wl_start(9999, "devices=uart", false, err, sizeof(err)), -ESRCH);
    assert_int_equal(guest_wl_start(d, "devices=floppy", false, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "floppy"));
    assert_int_equal(guest_wl_start(d, "vcpus=3", false, err, sizeof(err)), -EINVAL);
    assert_int_equal(guest_wl_start(d, "qd", false, err, sizeof(err)), -EINVAL);
    assert_int_equal(guest_wl_start(d, "", true, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no workload state"));
    assert_int_equal(guest_wl_stop(d, 1000, err, sizeof(err)), -ENOENT);
    assert_int_equal(guest_wl_start(d, "devices=testdisk fw=none", false, err, sizeof(err)), 0);
    assert_int_equal(guest_wl_start(d, "devices=testdisk fw=none", false, err, sizeof(err)),
                     -EEXIST);
    assert_non_null(strstr(err, "already running"));
    assert_int_equal(guest_wl_stop(d, 30000, err, sizeof(err)), 0);
    /* No chipset behind the ioreq server: the firmware fails as hvmloader. */
    assert_int_equal(guest_wl_start(d, "devices=uart", false, err, sizeof(err)), 0);
    assert_int_equal(guest_wl_wait_ended(d, 60000), 0);
    json_t *j = status(d);
    assert_state(j, "failed");
    assert_non_null(strstr(json_string_value(json_object_get(j, "reason")), "8086:7000"));
    json_decref(j);
    shut();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_100k_writes_two_vcpus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_then_resume_from_guest_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_write_is_caught, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_activity_while_stopped_counted, setup_xs,
                                        teardown_xs),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
