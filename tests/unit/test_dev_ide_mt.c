/*
 * PIIX3 IDE on a real rsdm-sim: a guest on two vCPUs drives the primary
 * channel with xensim's ATA driver (PIO and bus-master DMA reads and
 * writes of mixed sizes, FLUSH CACHE), every sector carrying the data
 * checker's header; then every sector is read back through the device and
 * the image file is checked from the host.  Also: IDENTIFY's words, an
 * unimplemented command and an out-of-range LBA are aborted, and SRST
 * gives the ATA signature.  Every case runs in both dialects: traditional
 * (disks from xenstore) and qemu-xen (libxl's `-drive if=ide`, QMP).
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
#include <sys/wait.h>

#include <cmocka.h>

#include "../lib/ide_guest.h"
#include "hv.h"

#define SECTORS 4096u
#define OPS_PER_VCPU 200

typedef struct fixture {
    ide_guest g;
    char img[300];
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    snprintf(f.img, sizeof(f.img), "/tmp/rsdm-ide-%d.img", (int)getpid());
    if (ide_guest_image(f.img, SECTORS) < 0)
        return -1;
    rsdm_sim_disk disk = { "hda", f.img };
    rsdm_sim_opts o = { .name = "ide", .vcpus = 2, .disks = &disk, .ndisks = 1,
                        .dialect = ide_guest_dialect };
    if (ide_guest_start(&f.g, &o) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st = rsdm_sim_stop_dm(&f->g.sim);
    ide_guest_stop(&f->g);
    unlink(f->img);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

typedef struct worker {
    fixture *f;
    unsigned v;
    uint64_t rng;
    int failures;
    char err[512];
} worker;

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Each vCPU owns half of the disk, so the ledger never races. */
static void *vcpu_main(void *arg)
{
    worker *w = arg;
    ide_guest *g = &w->f->g;
    uint32_t half = (uint32_t)(g->sectors / 2), base = w->v * half;
    for (int i = 0; i < OPS_PER_VCPU && !w->failures; i++) {
        unsigned op = (unsigned)(next(&w->rng) % 5);
        bool dma = op >= 2;
        unsigned count = dma ? 1 + (unsigned)(next(&w->rng) % GUEST_IDE_MAX_SECTORS)
                             : 1 + (unsigned)(next(&w->rng) % 4);
        uint32_t lba = base + (uint32_t)(next(&w->rng) % (half - count));
        int r;
        if (op == 4)
            r = ide_guest_flush(g, w->v);
        else if (op % 2 == 0)
            r = ide_guest_write(g, w->v, dma, lba, count);
        else
            r = ide_guest_read(g, w->v, dma, lba, count);
        if (r < 0) {
            w->failures++;
            snprintf(w->err, sizeof(w->err), "%s", guest_bus_error(&g->bus[w->v]));
        }
    }
    return NULL;
}

static void test_two_vcpu_workload(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    assert_int_equal(g->sectors, SECTORS);
    assert_string_equal(g->ide[0].model, "RSDM HARDDISK");
    worker w[2] = { { f, 0, 0x1234567, 0, "" }, { f, 1, 0x7654321, 0, "" } };
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, vcpu_main, &w[i]), 0);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (unsigned i = 0; i < 2; i++)
        if (w[i].failures)
            fail_msg("vCPU %u: %s", i, w[i].err);
    /* Read everything back through the device, then check the image. */
    for (uint32_t lba = 0; lba < SECTORS; lba += GUEST_IDE_MAX_SECTORS)
        if (ide_guest_read(g, 0, true, lba, GUEST_IDE_MAX_SECTORS) < 0)
            fail_msg("%s", guest_bus_error(&g->bus[0]));
    assert_int_equal(ide_guest_flush(g, 1), 0);
    assert_int_equal(ide_guest_check_image(g), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&g->chk, &c);
    printf("workload (%s): %llu writes, %llu reads, %llu flushes; lost %llu stale %llu corrupted %llu "
           "all-ones %llu\n",
           rsdm_sim_dialect_name(&g->sim), (unsigned long long)c.writes,
           (unsigned long long)c.reads, (unsigned long long)c.flushes,
           (unsigned long long)c.lost_writes,
           (unsigned long long)c.stale_overwrites, (unsigned long long)c.corrupted_reads,
           (unsigned long long)ide_guest_all_ones(g));
    assert_true(c.writes > 0 && c.reads > 0 && c.flushes > 0);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
    assert_int_equal(ide_guest_all_ones(g), 0);
    assert_int_equal(ide_guest_null_hits(g), 0);
}

static uint8_t inb(ide_guest *g, uint16_t port)
{
    uint8_t v = 0;
    assert_int_equal(guest_inb(&g->bus[0], port, &v), 0);
    return v;
}

static void outb(ide_guest *g, uint16_t port, uint8_t v)
{
    assert_int_equal(guest_outb(&g->bus[0], port, v), 0);
}

/* Issues a non-data command and waits for its interrupt; returns status. */
static uint8_t nondata(ide_guest *g, uint8_t cmd, uint8_t feature, uint8_t nsect)
{
    outb(g, 0x1f6, 0xe0);
    outb(g, 0x1f1, feature);
    outb(g, 0x1f2, nsect);
    outb(g, 0x1f7, cmd);
    assert_int_equal(guest_irq_wait(&g->bus[0], 14, 5000), 1);
    return inb(g, 0x1f7);
}

static void test_identify_and_aborts(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    uint16_t id[256];
    assert_int_equal(guest_ide_identify(&g->ide[0], id), 0);
    assert_true(id[49] & (1u << 9));
    assert_true(id[83] & (1u << 10));
    assert_int_equal((uint64_t)id[100] | (uint64_t)id[101] << 16, SECTORS);
    /* SMART (0xB0) is not implemented: ERR with ABRT. */
    uint8_t st = nondata(g, 0xb0, 0, 0);
    assert_true(st & 0x01);
    assert_int_equal(inb(g, 0x1f1), 0x04);
    /* SET FEATURES: MWDMA2 accepted, UDMA5 refused on PIIX3. */
    assert_false(nondata(g, 0xef, 0x03, 0x22) & 0x01);
    assert_true(nondata(g, 0xef, 0x03, 0x45) & 0x01);
    assert_int_equal(guest_ide_identify(&g->ide[0], id), 0);
    assert_int_equal(id[63], 0x0407);
    /* A DMA read past the end is aborted before any I/O. */
    uint8_t buf[1024];
    g->ide[0].sectors = SECTORS + 16;          /* let the driver send it */
    assert_int_equal(guest_ide_dma(&g->ide[0], false, SECTORS - 1, 2, buf), -1);
    g->ide[0].sectors = SECTORS;
    assert_int_equal(inb(g, 0x1f1) & 0x14, 0x14);  /* ABRT | IDNF */
    /* The slave position is empty: its status reads 0. */
    outb(g, 0x1f6, 0xf0);
    assert_int_equal(inb(g, 0x1f7), 0);
    outb(g, 0x1f6, 0xe0);
    /* SRST: the ATA disk signature, then normal commands again. */
    assert_int_equal(guest_ide_srst(&g->ide[0]), 0);
    assert_int_equal(ide_guest_write(g, 0, true, 10, 3), 0);
    assert_int_equal(ide_guest_read(g, 0, false, 10, 3), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&g->chk, &c);
    assert_int_equal(c.lost_writes + c.stale_overwrites + c.corrupted_reads, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_vcpu_workload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identify_and_aborts, setup, teardown),
    };
    return IDE_GUEST_RUN_DIALECTS(tests);
}
