/*
 * PIIX3 IDE error policies on a real rsdm-sim, with I/O errors injected by
 * the block backend (the `inject` key of the disk's config section):
 *
 *  - stop: for a DMA write, DMA read, PIO read, PIO write and a flush, the
 *    VM stops in io-error, the guest sees no error, and between the stop
 *    and `continue` there is no interrupt, no DMA into guest RAM and no
 *    image write; `continue` re-issues the command, which then completes
 *    with the right data;
 *  - report: the guest sees ERR with ABRT, the VM keeps running;
 *  - ignore: the command completes as if it had succeeded;
 *  - a guest reset (SRST) of the device while a write is parked discards
 *    it: newer data written after the reset is never overwritten;
 *  - a write delayed by 1 s on the backend does not hold up another
 *    vCPU's register accesses: they are answered while it is held (their
 *    latency is a figure of bench_ide).
 *
 * Every case runs in both dialects: traditional (`continue` in xenstore)
 * and qemu-xen (libxl's `-drive if=ide`, the config file by `--config`,
 * QMP `cont`), where each stop also shows on QMP as BLOCK_IO_ERROR (disk,
 * operation, action stop) and then STOP, and each reported or ignored
 * error as a BLOCK_IO_ERROR with that action and no STOP.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/bench_util.h"
#include "../lib/ide_guest.h"
#include "hv.h"

#define SECTORS 2048u
#define WAIT_MS 10000
#define LBA_DMA_W 100u
#define LBA_DMA_R 200u
#define LBA_PIO_R 300u
#define LBA_PIO_W 400u
#define LBA_RESET 500u
#define LBA_DELAY 600u
#define N 8u                          /* sectors per command */

typedef struct fixture {
    ide_guest g;
    char img[128], conf[128];
} fixture;

static fixture fx;

/* The rules that fail one command of each kind, once. */
static void op_rules(FILE *c)
{
    fprintf(c,
            "inject = op=write errno=EIO sectors=%u-%u once\n"
            "inject = op=read errno=EIO sectors=%u-%u once\n"
            "inject = op=read errno=EIO sectors=%u-%u once\n"
            "inject = op=write errno=EIO sectors=%u-%u once\n"
            "inject = op=flush errno=EIO once\n",
            LBA_DMA_W, LBA_DMA_W + N - 1, LBA_DMA_R, LBA_DMA_R + N - 1, LBA_PIO_R,
            LBA_PIO_R + N - 1, LBA_PIO_W, LBA_PIO_W + N - 1);
}

static int start(fixture *f, const char *policy, const char *rule)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->img, sizeof(f->img), "/tmp/rsdm-ide-err-%d.img", (int)getpid());
    snprintf(f->conf, sizeof(f->conf), "/tmp/rsdm-ide-err-%d.conf", (int)getpid());
    FILE *c = fopen(f->conf, "w");
    if (!c)
        return -1;
    fprintf(c, "[disk hda]\nwerror = %s\nrerror = %s\n", policy, policy);
    if (rule)
        fprintf(c, "inject = %s\n", rule);
    else
        op_rules(c);
    fclose(c);
    if (ide_guest_image(f->img, SECTORS) < 0)
        return -1;
    rsdm_sim_disk disk = { "hda", f->img };
    rsdm_sim_opts o = { .name = "ide-err", .vcpus = 2, .disks = &disk, .ndisks = 1,
                        .config = f->conf, .dialect = ide_guest_dialect };
    return ide_guest_start(&f->g, &o);
}

static int setup_stop(void **state)
{
    *state = &fx;
    return start(&fx, "stop", NULL);
}

static int setup_report(void **state)
{
    *state = &fx;
    return start(&fx, "report", NULL);
}

static int setup_ignore(void **state)
{
    *state = &fx;
    return start(&fx, "ignore", NULL);
}

static int setup_reset(void **state)
{
    char rule[64];
    snprintf(rule, sizeof(rule), "op=write errno=EIO sectors=%u once", LBA_RESET);
    *state = &fx;
    return start(&fx, "stop", rule);
}

static int setup_delay(void **state)
{
    char rule[64];
    snprintf(rule, sizeof(rule), "op=write delay=1000ms sectors=%u once", LBA_DELAY);
    *state = &fx;
    return start(&fx, "stop", rule);
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st = rsdm_sim_stop_dm(&f->g.sim);
    ide_guest_stop(&f->g);
    unlink(f->img);
    unlink(f->conf);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

/* ------------------------------------------------------- guest commands */

typedef enum kind { DMA_WRITE, DMA_READ, PIO_READ, PIO_WRITE, FLUSH } kind;
static const char *const kind_name[] = { "DMA write", "DMA read", "PIO read", "PIO write",
                                         "flush" };
static const uint32_t kind_lba[] = { LBA_DMA_W, LBA_DMA_R, LBA_PIO_R, LBA_PIO_W, 0 };
/* QEMU's BLOCK_IO_ERROR `operation`: a flush counts as a write. */
static const char *const kind_qmp_op[] = { "write", "read", "read", "write", "write" };

typedef struct op {
    fixture *f;
    kind k;
    uint32_t lba;
    int rc;
    atomic_bool done;
    char err[512];
} op;

static int run(fixture *f, kind k, uint32_t lba)
{
    switch (k) {
    case DMA_WRITE:
        return ide_guest_write(&f->g, 0, true, lba, N);
    case DMA_READ:
        return ide_guest_read(&f->g, 0, true, lba, N);
    case PIO_READ:
        return ide_guest_read(&f->g, 0, false, lba, N);
    case PIO_WRITE:
        return ide_guest_write(&f->g, 0, false, lba, N);
    case FLUSH:
        return ide_guest_flush(&f->g, 0);
    }
    return -1;
}

static void *op_main(void *arg)
{
    op *o = arg;
    o->rc = run(o->f, o->k, o->lba);
    if (o->rc < 0)
        snprintf(o->err, sizeof(o->err), "%s", guest_bus_error(&o->f->g.bus[0]));
    atomic_store(&o->done, true);
    return NULL;
}

static uint32_t image_hash(fixture *f)
{
    uint32_t h = ide_guest_image_hash(f->img, SECTORS);
    assert_int_not_equal(h, 0);
    return h;
}

static void read_dma_buffer(fixture *f, uint8_t *out)
{
    assert_int_equal(guest_mem_read(&f->g.bus[0], f->g.ide[0].buf, out, N * 512), 0);
}

static void check_data(fixture *f)
{
    ide_guest *g = &f->g;
    for (uint32_t lba = 0; lba < SECTORS; lba += 64)
        if (ide_guest_read(g, 1, true, lba, 64) < 0)
            fail_msg("%s", guest_bus_error(&g->bus[1]));
    assert_int_equal(ide_guest_check_image(g), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&g->chk, &c);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
    assert_int_equal(ide_guest_all_ones(g), 0);
    assert_int_equal(ide_guest_null_hits(g), 0);
}

/* Data the read commands find. */
static void prefill(fixture *f)
{
    assert_int_equal(ide_guest_write(&f->g, 0, true, LBA_DMA_R, N), 0);
    assert_int_equal(ide_guest_write(&f->g, 0, true, LBA_PIO_R, N), 0);
}

/* ------------------------------------------------------------------ stop */

static void test_stop_parks_and_retries(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    prefill(f);
    for (kind k = DMA_WRITE; k <= FLUSH; k++) {
        op o = { .f = f, .k = k, .lba = kind_lba[k] };
        uint8_t before[N * 512], after[N * 512];
        uint64_t irqs_before_op = guest_irq_count(&g->bus[0], 14);
        ide_guest_events ev = { 0 };
        bool qmp = g->sim.dialect == RSDM_SIM_QEMU_XEN;
        if (qmp)
            assert_int_equal(ide_guest_events_open(g, &ev), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, op_main, &o), 0);
        if (ide_guest_wait_runstate(g, "io-error holds=io-error", WAIT_MS) < 0)
            fail_msg("%s: the VM did not stop in io-error", kind_name[k]);
        if (qmp) {
            /* QEMU's order: the error event, then the stop it caused */
            char want[96];
            snprintf(want, sizeof(want), "BLOCK_IO_ERROR hda %s stop", kind_qmp_op[k]);
            int stop = ide_guest_events_wait(&ev, "STOP", 1, WAIT_MS);
            int bio = ide_guest_events_find(&ev, "BLOCK_IO_ERROR", 0);
            if (stop < 0 || bio < 0 || bio > stop || strcmp(ev.ev[bio], want) != 0)
                fail_msg("%s: QMP events %u: first '%s', want '%s' before STOP (at %d)",
                         kind_name[k], ev.n, ev.n ? ev.ev[0] : "", want, stop);
        }
        /* Stopped: from here to `continue`, nothing may move. */
        uint64_t irqs = guest_irq_count(&g->bus[0], 14);
        uint32_t img = image_hash(f);
        read_dma_buffer(f, before);
        /* A bounded wait for an interrupt that must not come. */
        assert_int_equal(guest_irq_wait(&g->bus[0], 14, 200), 0);
        assert_false(atomic_load(&o.done));
        assert_int_equal(guest_irq_count(&g->bus[0], 14), irqs);
        assert_int_equal(image_hash(f), img);
        read_dma_buffer(f, after);
        assert_memory_equal(before, after, sizeof(before));
        assert_int_equal(ide_guest_command(g, "continue"), 0);
        pthread_join(t, NULL);
        if (o.rc < 0)
            fail_msg("%s after continue: %s", kind_name[k], o.err);
        assert_true(guest_irq_count(&g->bus[0], 14) > irqs_before_op);
        assert_int_equal(ide_guest_wait_runstate(g, "running holds=", WAIT_MS), 0);
        if (qmp) {
            assert_true(ide_guest_events_wait(&ev, "RESUME", 1, WAIT_MS) > 0);
            ide_guest_events_close(&ev);
        }
        printf("%s (%s): parked in io-error%s, retried after continue\n", kind_name[k],
               rsdm_sim_dialect_name(&g->sim), qmp ? " (QMP: BLOCK_IO_ERROR, STOP)" : "");
    }
    check_data(f);
}

/* --------------------------------------------------------------- report */

static uint8_t error_reg(fixture *f)
{
    uint8_t v = 0;
    assert_int_equal(guest_inb(&f->g.bus[0], 0x1f1, &v), 0);
    return v;
}

/* qemu-xen: a BLOCK_IO_ERROR per failed command, with its operation and
 * the policy's action, and no STOP (the VM kept running). */
static void check_error_events(ide_guest_events *ev, const char *action)
{
    if (!ev->c)
        return;
    int last = ide_guest_events_wait(ev, "BLOCK_IO_ERROR", FLUSH + 1, WAIT_MS);
    assert_true(last >= 0);
    int at = -1;
    for (kind k = DMA_WRITE; k <= FLUSH; k++) {
        char want[96];
        snprintf(want, sizeof(want), "BLOCK_IO_ERROR hda %s %s", kind_qmp_op[k], action);
        at = ide_guest_events_find(ev, "BLOCK_IO_ERROR", (unsigned)(at + 1));
        assert_true(at >= 0);
        if (strcmp(ev->ev[at], want) != 0)
            fail_msg("%s: QMP event '%s', want '%s'", kind_name[k], ev->ev[at], want);
    }
    assert_int_equal(ide_guest_events_find(ev, "STOP", 0), -1);
    ide_guest_events_close(ev);
}

static void test_report_fails_the_command(void **state)
{
    fixture *f = *state;
    ide_guest_events ev = { 0 };
    if (f->g.sim.dialect == RSDM_SIM_QEMU_XEN)
        assert_int_equal(ide_guest_events_open(&f->g, &ev), 0);
    prefill(f);
    for (kind k = DMA_WRITE; k <= FLUSH; k++) {
        if (run(f, k, kind_lba[k]) == 0)
            fail_msg("%s succeeded despite the injected EIO", kind_name[k]);
        assert_int_equal(error_reg(f), 0x04);           /* ABRT */
        assert_int_equal(ide_guest_wait_runstate(&f->g, "running holds=", WAIT_MS), 0);
        /* The same command again succeeds (the rule fired once). */
        assert_int_equal(run(f, k, kind_lba[k]), 0);
    }
    check_error_events(&ev, "report");
    check_data(f);
}

/* --------------------------------------------------------------- ignore */

static void test_ignore_completes(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    ide_guest_events ev = { 0 };
    if (g->sim.dialect == RSDM_SIM_QEMU_XEN)
        assert_int_equal(ide_guest_events_open(g, &ev), 0);
    prefill(f);
    uint8_t sec[N * 512];
    /* The failed writes did no I/O: the guest believes them done, so they
     * are written directly, not through the checker. */
    assert_int_equal(guest_ide_dma(&g->ide[0], true, LBA_DMA_W, N, sec), 0);
    assert_int_equal(guest_ide_dma(&g->ide[0], false, LBA_DMA_R, N, sec), 0);
    assert_int_equal(guest_ide_pio(&g->ide[0], false, LBA_PIO_R, N, sec), 0);
    assert_int_equal(guest_ide_pio(&g->ide[0], true, LBA_PIO_W, N, sec), 0);
    assert_int_equal(guest_ide_flush(&g->ide[0]), 0);
    assert_int_equal(ide_guest_wait_runstate(g, "running holds=", WAIT_MS), 0);
    check_error_events(&ev, "ignore");
    /* Nothing the checker wrote was touched by the ignored failures. */
    assert_int_equal(ide_guest_read(g, 0, true, LBA_PIO_R, N), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&g->chk, &c);
    assert_int_equal(c.lost_writes + c.stale_overwrites + c.corrupted_reads, 0);
}

/* ------------------------------------------------- reset while parked */

static void test_reset_discards_parked_write(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    /* The guest OS gives up after 1 s and resets the device, as an OS does
     * on a command timeout. */
    g->bus[0].timeout_ms = 1000;
    op o = { .f = f, .k = DMA_WRITE, .lba = LBA_RESET };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, op_main, &o), 0);
    assert_int_equal(ide_guest_wait_runstate(g, "io-error holds=io-error", WAIT_MS), 0);
    /* Let the guest run while rsdm is stopped (what a restricted rsdm,
     * which holds no pause reference, lives with). */
    assert_int_equal(hv_domain_unpause(g->sim.dom), 0);
    pthread_join(t, NULL);
    assert_int_equal(o.rc, -1);                        /* timed out */
    g->bus[0].err[0] = 0;
    if (guest_ide_srst(&g->ide[0]) < 0)
        fail_msg("SRST: %s", guest_bus_error(&g->bus[0]));
    /* The reset dropped the parked write and with it the io-error hold. */
    assert_int_equal(ide_guest_wait_runstate(g, "running holds=", WAIT_MS), 0);
    g->bus[0].timeout_ms = 30000;
    assert_int_equal(ide_guest_write(g, 0, true, LBA_RESET, N), 0);
    assert_int_equal(ide_guest_command(g, "continue"), 0);
    assert_int_equal(ide_guest_flush(g, 0), 0);
    assert_int_equal(ide_guest_read(g, 0, true, LBA_RESET, N), 0);
    check_data(f);
}

/* ------------------------------------------------- delayed write */

static void test_delayed_write_keeps_registers_answered(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    op o = { .f = f, .k = DMA_WRITE, .lba = LBA_DELAY };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, op_main, &o), 0);
    /* vCPU 1 sees the command in progress (bus master active) ... */
    uint8_t bst = 0;
    for (int i = 0; i < 100000 && !(bst & 1); i++)
        assert_int_equal(guest_inb(&g->bus[1], g->ide[1].bmdma + 2, &bst), 0);
    assert_true(bst & 1);
    /* ... and its register reads are answered while the write sleeps:
     * each read is counted when the write is still in flight after its
     * answer.  A main loop held by the write would answer the first read
     * only when the write ends (at most one or two would count).  How fast
     * they are answered is measured by bench_ide (issue 10 point 7's
     * 10 ms), not asserted here. */
    unsigned n = 0, during = 0;
    uint64_t worst = 0;
    while (!atomic_load(&o.done) && n < 200) {
        uint64_t t0 = bench_now_ns();
        uint8_t st;
        assert_int_equal(guest_inb(&g->bus[1], 0x3f6, &st), 0);
        uint64_t dt = bench_now_ns() - t0;
        if (dt > worst)
            worst = dt;
        during += !atomic_load(&o.done);
        n++;
        /* One answer per 2 ms is plenty to see a blocked main loop. */
        if (guest_irq_wait(&g->bus[1], 15, 2) < 0)
            fail_msg("%s", guest_bus_error(&g->bus[1]));
    }
    pthread_join(t, NULL);
    assert_int_equal(o.rc, 0);
    printf("delayed write: %u register reads answered while it was held (worst %.3f ms)\n",
           during, worst / 1e6);
    assert_true(during >= 5);
    check_data(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stop_parks_and_retries, setup_stop, teardown),
        cmocka_unit_test_setup_teardown(test_report_fails_the_command, setup_report, teardown),
        cmocka_unit_test_setup_teardown(test_ignore_completes, setup_ignore, teardown),
        cmocka_unit_test_setup_teardown(test_reset_discards_parked_write, setup_reset, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_write_keeps_registers_answered, setup_delay,
                                        teardown),
    };
    return IDE_GUEST_RUN_DIALECTS(tests);
}
