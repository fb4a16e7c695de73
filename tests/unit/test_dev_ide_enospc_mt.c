/*
 * A real disk-full error under PIIX3 IDE: the guest's image lives on a
 * small tmpfs (RSDM_IDE_ENOSPC_DIR, mounted by
 * tests/integration/test_ide_enospc in a mount namespace of its own), the
 * disk has werror=enospc, and the guest writes more than fits.  The VM
 * stops in io-error with the failing DMA write parked; the guest sees no
 * error and no all-ones read; between the stop and `continue` there is no
 * interrupt, no DMA into guest RAM and no write to the image.  The tmpfs
 * is then grown (mount -o remount,size=) and `continue` re-issues the
 * write: every sector the guest wrote is on the image.
 *
 * It runs in both dialects, traditional and qemu-xen (libxl's `-drive
 * if=ide`, QMP `cont`; there the stop also shows on QMP as BLOCK_IO_ERROR
 * with action stop, then STOP); the tmpfs is shrunk back to 1 MiB before
 * each run.
 *
 * Without RSDM_IDE_ENOSPC_DIR the test is skipped (it needs the mount).
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

#include "../lib/ide_guest.h"

#define SECTORS 8192u                 /* a 4 MiB disk on a 1 MiB tmpfs */
#define CHUNK 128u
#define WAIT_MS 10000

typedef struct fixture {
    ide_guest g;
    const char *dir;
    char img[300], conf[300];
} fixture;

static fixture fx;

static int setup(void **state)
{
    fixture *f = &fx;
    memset(f, 0, sizeof(*f));
    f->dir = getenv("RSDM_IDE_ENOSPC_DIR");
    *state = f;
    if (!f->dir)
        return 0;
    snprintf(f->img, sizeof(f->img), "%s/disk.img", f->dir);
    /* small again for this dialect's run (the last one grew it) */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "mount -o remount,size=1m '%s'", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "%s failed\n", cmd);
        return -1;
    }
    snprintf(f->conf, sizeof(f->conf), "/tmp/rsdm-ide-enospc-%d.conf", (int)getpid());
    FILE *c = fopen(f->conf, "w");
    if (!c)
        return -1;
    fputs("[disk hda]\nwerror = enospc\n", c);
    fclose(c);
    if (ide_guest_image(f->img, SECTORS) < 0)
        return -1;
    rsdm_sim_disk disk = { "hda", f->img };
    rsdm_sim_opts o = { .name = "ide-enospc", .vcpus = 2, .disks = &disk, .ndisks = 1,
                        .config = f->conf, .dialect = ide_guest_dialect };
    return ide_guest_start(&f->g, &o);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f->dir)
        return 0;
    int st = rsdm_sim_stop_dm(&f->g.sim);
    ide_guest_stop(&f->g);
    unlink(f->img);
    unlink(f->conf);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

typedef struct writer {
    fixture *f;
    int rc;
    atomic_uint written;
    atomic_bool done;
    char err[512];
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (uint32_t lba = 0; lba < SECTORS && w->rc == 0; lba += CHUNK) {
        w->rc = ide_guest_write(&w->f->g, 0, true, lba, CHUNK);
        if (w->rc == 0)
            atomic_fetch_add(&w->written, CHUNK);
    }
    if (w->rc < 0)
        snprintf(w->err, sizeof(w->err), "%s", guest_bus_error(&w->f->g.bus[0]));
    atomic_store(&w->done, true);
    return NULL;
}

static uint32_t image_hash(fixture *f)
{
    uint32_t h = ide_guest_image_hash(f->img, SECTORS);
    assert_int_not_equal(h, 0);
    return h;
}

static void dma_buffers(fixture *f, uint8_t *out)
{
    for (unsigned v = 0; v < f->g.nvcpus; v++)
        assert_int_equal(guest_mem_read(&f->g.bus[v], f->g.ide[v].buf, out + v * 65536, 65536), 0);
}

static void test_real_enospc_parks_and_continues(void **state)
{
    fixture *f = *state;
    if (!f->dir)
        skip();                       /* needs tests/integration/test_ide_enospc's tmpfs */
    ide_guest *g = &f->g;
    bool qmp = g->sim.dialect == RSDM_SIM_QEMU_XEN;
    ide_guest_events ev = { 0 };
    if (qmp)
        assert_int_equal(ide_guest_events_open(g, &ev), 0);
    writer w = { .f = f };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    if (ide_guest_wait_runstate(g, "io-error holds=io-error", WAIT_MS) < 0)
        fail_msg("the tmpfs never filled up: no io-error stop (%u sectors written)",
                 atomic_load(&w.written));
    if (qmp) {
        int stop = ide_guest_events_wait(&ev, "STOP", 1, WAIT_MS);
        int bio = ide_guest_events_find(&ev, "BLOCK_IO_ERROR hda write stop", 0);
        if (stop < 0 || bio < 0 || bio > stop)
            fail_msg("QMP: BLOCK_IO_ERROR (at %d) then STOP (at %d) expected, %u events", bio,
                     stop, ev.n);
        ide_guest_events_close(&ev);
    }
    static uint8_t before[2 * 65536], after[2 * 65536];
    uint64_t irqs = guest_irq_count(&g->bus[0], 14);
    uint32_t img = image_hash(f);
    dma_buffers(f, before);
    /* A bounded wait for an interrupt that must not come. */
    assert_int_equal(guest_irq_wait(&g->bus[0], 14, 300), 0);
    assert_false(atomic_load(&w.done));
    assert_int_equal(guest_irq_count(&g->bus[0], 14), irqs);
    assert_int_equal(image_hash(f), img);
    dma_buffers(f, after);
    assert_memory_equal(before, after, sizeof(before));
    printf("%s: disk full after %u sectors: parked in io-error; no interrupt, DMA or image "
           "write while stopped\n", rsdm_sim_dialect_name(&g->sim), atomic_load(&w.written));
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "mount -o remount,size=64m '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ide_guest_command(g, "continue"), 0);
    pthread_join(t, NULL);
    if (w.rc < 0)
        fail_msg("the guest saw an error: %s", w.err);
    assert_int_equal(atomic_load(&w.written), SECTORS);
    assert_int_equal(ide_guest_wait_runstate(g, "running holds=", WAIT_MS), 0);
    for (uint32_t lba = 0; lba < SECTORS; lba += CHUNK)
        if (ide_guest_read(g, 1, true, lba, CHUNK) < 0)
            fail_msg("%s", guest_bus_error(&g->bus[1]));
    assert_int_equal(ide_guest_check_image(g), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&g->chk, &c);
    assert_int_equal(c.lost_writes + c.stale_overwrites + c.corrupted_reads, 0);
    assert_int_equal(ide_guest_all_ones(g), 0);
    assert_int_equal(ide_guest_null_hits(g), 0);
    printf("after growing the tmpfs and continue: %u sectors written, 0 lost\n", SECTORS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_real_enospc_parks_and_continues, setup, teardown),
    };
    return IDE_GUEST_RUN_DIALECTS(tests);
}
