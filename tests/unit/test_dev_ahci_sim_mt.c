/*
 * ICH9 AHCI on a real rsdm-sim: the guest's vbd `sda` becomes AHCI port 0
 * (tests/lib/rsdm_sim writes the vbd nodes as `xl create` does); a guest on
 * two vCPUs, each through its own ioreq slot, drives the port with xensim's
 * AHCI driver (proven against QEMU's ICH9 AHCI): NCQ batches of 32 writes
 * and reads, READ/WRITE DMA EXT of mixed sizes and FLUSH CACHE EXT, every
 * sector carrying the data checker's header; then everything is read back
 * through the device and the image file is checked from the host.  Save
 * and restore into a new rsdm-sim (traditional `save`, -loadvm) with 32 NCQ
 * writes at a slow backend, and with an NCQ write halted by an EIO with
 * werror=stop: every command completes after the restore, the data is
 * right and the guest never re-initialises the controller.  A PxCI write
 * rsdm has not answered when the domain is paused and saved is part of the
 * saved state (the write is done after the restore, not lost).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/rsdm_sim.h"
#include "guest_ahci.h"
#include "guest_check.h"
#include "guest_fw.h"
#include "guest_hv.h"
#include "hv.h"

#define SECTORS 8192u
#define VCPUS 2
#define OPS_PER_VCPU 60
#define RAM_BASE (1u << 20)
#define RAM_PER_VCPU (6u << 20)
#define DEPTH 32

typedef struct fixture {
    rsdm_sim sim;
    char img[300];
    struct guest_bus bus[VCPUS];
    bool bus_open[VCPUS];
    struct guest_fw fw;
    struct guest_ahci hba[VCPUS];     /* port 0 as each vCPU drives it */
    struct guest_check chk;
    bool chk_open;
    pthread_mutex_t port;             /* the guest OS's port lock */
} fixture;

static fixture F;

/* A config file for rsdm-sim in the fixture's directory, or NULL. */
static const char *write_config(const char *name, const char *text)
{
    static char path[2][400];
    char *p = path[name[0] == 'b'];
    snprintf(p, sizeof(path[0]), "%s.%s.conf", F.img, name);
    FILE *f = fopen(p, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        return NULL;
    return p;
}

static int start(void **state, const char *config)
{
    memset(&F, 0, sizeof(F));
    pthread_mutex_init(&F.port, NULL);
    snprintf(F.img, sizeof(F.img), "/tmp/rsdm-ahci-%d.img", (int)getpid());
    int fd = open(F.img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)SECTORS * 512) < 0) {
        perror("ahci image");
        return -1;
    }
    close(fd);
    rsdm_sim_disk disk = { "sda", F.img };
    const char *cfg = config ? write_config("a", config) : NULL;
    if (config && !cfg)
        return -1;
    rsdm_sim_opts o = { .name = "ahci", .vcpus = VCPUS, .disks = &disk, .ndisks = 1,
                        .config = cfg };
    if (rsdm_sim_start_opts(&F.sim, &o) < 0)
        return -1;
    char err[256];
    for (unsigned v = 0; v < VCPUS; v++) {
        if (guest_hv_open(&F.bus[v], F.sim.dom, v, RAM_BASE + v * RAM_PER_VCPU, err,
                          sizeof(err)) < 0) {
            fprintf(stderr, "ahci test: %s\n", err);
            return -1;
        }
        F.bus_open[v] = true;
        F.bus[v].timeout_ms = 30000;
    }
    if (guest_fw_scan(&F.bus[0], &F.fw, true) < 0 ||
        guest_ahci_init(&F.hba[0], &F.bus[0], &F.fw) < 0) {
        fprintf(stderr, "ahci test: %s\n", guest_bus_error(&F.bus[0]));
        return -1;
    }
    for (unsigned v = 1; v < VCPUS; v++) {
        F.hba[v] = F.hba[0];
        F.hba[v].bus = &F.bus[v];
    }
    /* The firmware pass probes empty slots, which read all-ones by design. */
    for (unsigned v = 0; v < VCPUS; v++)
        F.bus[v].all_ones_reads = 0;
    if (guest_check_init(&F.chk, &F.bus[0], F.hba[0].sectors) < 0) {
        fprintf(stderr, "ahci test: %s\n", guest_bus_error(&F.bus[0]));
        return -1;
    }
    F.chk_open = true;
    *state = &F;
    return 0;
}

static int setup(void **state)
{
    return start(state, NULL);
}

/* A slow disk: every write takes 300 ms. */
static int setup_slow(void **state)
{
    return start(state, "[disk sda]\ninject = op=write delay=300ms\n");
}

/* Writes to sector 300 fail with EIO and stop the VM. */
static int setup_failing(void **state)
{
    return start(state, "[disk sda]\nwerror = stop\ninject = op=write errno=EIO sectors=300-300\n");
}

static int teardown(void **state)
{
    (void)state;
    int st = rsdm_sim_stop_dm(&F.sim);
    if (F.chk_open)
        guest_check_destroy(&F.chk);
    for (unsigned v = 0; v < VCPUS; v++)
        if (F.bus_open[v])
            guest_bus_close(&F.bus[v]);
    rsdm_sim_stop(&F.sim);
    char p[400];
    snprintf(p, sizeof(p), "%s.a.conf", F.img);
    unlink(p);
    snprintf(p, sizeof(p), "%s.b.conf", F.img);
    unlink(p);
    unlink(F.img);
    pthread_mutex_destroy(&F.port);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

typedef struct worker {
    unsigned v;
    uint64_t rng;
    int failures;
    char err[512];
    uint8_t buf[DEPTH][16 * 512];
    uint64_t seq[DEPTH][16];
} worker;

/* One NCQ batch of DEPTH commands, one per stride of the vCPU's half. */
static int ncq_op(worker *w, bool write, uint64_t base, uint64_t half)
{
    struct guest_ahci_io io[DEPTH];
    uint64_t stride = half / DEPTH;
    for (unsigned t = 0; t < DEPTH; t++) {
        unsigned count = 1 + (unsigned)(next(&w->rng) % 16);
        io[t] = (struct guest_ahci_io){
            .write = write, .count = count, .buf = w->buf[t],
            .lba = base + t * stride + next(&w->rng) % (stride - count),
        };
        if (write)
            for (unsigned s = 0; s < count; s++)
                w->seq[t][s] = guest_check_fill(&F.chk, io[t].lba + s, w->buf[t] + 512 * s);
    }
    pthread_mutex_lock(&F.port);
    int r = guest_ahci_ncq(&F.hba[w->v], io, DEPTH);
    pthread_mutex_unlock(&F.port);
    if (r < 0)
        return -1;
    GUEST_CHECK_ADD(&F.chk, reads, write ? 0 : DEPTH);
    for (unsigned t = 0; t < DEPTH; t++)
        for (unsigned s = 0; s < io[t].count; s++) {
            if (write)
                guest_check_acked(&F.chk, io[t].lba + s, w->seq[t][s]);
            else
                guest_check_count(&F.chk, guest_check_classify(&F.chk, io[t].lba + s,
                                                               w->buf[t] + 512 * s));
        }
    return 0;
}

static int dma_op(worker *w, bool write, uint64_t base, uint64_t half)
{
    unsigned count = 1 + (unsigned)(next(&w->rng) % 128);
    uint64_t lba = base + next(&w->rng) % (half - count);
    static __thread uint8_t buf[128 * 512];
    uint64_t seq[128];
    if (write)
        for (unsigned s = 0; s < count; s++)
            seq[s] = guest_check_fill(&F.chk, lba + s, buf + 512 * s);
    pthread_mutex_lock(&F.port);
    int r = guest_ahci_rw(&F.hba[w->v], write, lba, count, buf);
    pthread_mutex_unlock(&F.port);
    if (r < 0)
        return -1;
    GUEST_CHECK_ADD(&F.chk, reads, write ? 0 : 1);
    for (unsigned s = 0; s < count; s++) {
        if (write)
            guest_check_acked(&F.chk, lba + s, seq[s]);
        else
            guest_check_count(&F.chk, guest_check_classify(&F.chk, lba + s, buf + 512 * s));
    }
    return 0;
}

/* Each vCPU owns half of the disk, so the ledger never races. */
static void *vcpu_main(void *arg)
{
    worker *w = arg;
    uint64_t half = F.hba[0].sectors / VCPUS, base = w->v * half;
    for (int i = 0; i < OPS_PER_VCPU && !w->failures; i++) {
        unsigned op = (unsigned)(next(&w->rng) % 5);
        int r;
        if (op == 4) {
            pthread_mutex_lock(&F.port);
            r = guest_ahci_flush(&F.hba[w->v]);
            pthread_mutex_unlock(&F.port);
            GUEST_CHECK_ADD(&F.chk, flushes, r == 0);
        } else if (op < 2) {
            r = ncq_op(w, op == 0, base, half);
        } else {
            r = dma_op(w, op == 2, base, half);
        }
        if (r < 0) {
            w->failures++;
            snprintf(w->err, sizeof(w->err), "%s", guest_bus_error(&F.bus[w->v]));
        }
    }
    return NULL;
}

static long check_image(void)
{
    int fd = open(F.img, O_RDONLY);
    if (fd < 0)
        return -1;
    long bad = 0;
    uint8_t sec[512];
    for (uint64_t lba = 0; lba < SECTORS; lba++) {
        if (pread(fd, sec, sizeof(sec), (off_t)(lba * 512)) != (ssize_t)sizeof(sec)) {
            close(fd);
            return -1;
        }
        enum guest_check_verdict v = guest_check_classify(&F.chk, lba, sec);
        if (v != GUEST_CHECK_OK) {
            bad++;
            guest_check_count(&F.chk, v);
        }
    }
    close(fd);
    return bad;
}

static void test_two_vcpu_workload(void **state)
{
    (void)state;
    assert_int_equal(F.hba[0].sectors, SECTORS);
    assert_int_equal(F.hba[0].nslots, 32);
    assert_true(F.hba[0].ncq);
    static worker w[VCPUS];
    pthread_t t[VCPUS];
    for (unsigned i = 0; i < VCPUS; i++) {
        w[i] = (worker){ .v = i, .rng = 0x1234567u + 7919u * i };
        assert_int_equal(pthread_create(&t[i], NULL, vcpu_main, &w[i]), 0);
    }
    for (unsigned i = 0; i < VCPUS; i++)
        pthread_join(t[i], NULL);
    for (unsigned i = 0; i < VCPUS; i++)
        if (w[i].failures)
            fail_msg("vCPU %u: %s", i, w[i].err);
    static uint8_t buf[128 * 512];
    for (uint64_t lba = 0; lba < SECTORS; lba += 128) {
        if (guest_ahci_rw(&F.hba[1], false, lba, 128, buf) < 0)
            fail_msg("%s", guest_bus_error(&F.bus[1]));
        for (unsigned s = 0; s < 128; s++)
            guest_check_count(&F.chk, guest_check_classify(&F.chk, lba + s, buf + 512 * s));
    }
    assert_int_equal(guest_ahci_flush(&F.hba[0]), 0);
    assert_int_equal(check_image(), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&F.chk, &c);
    printf("workload: %llu sectors written, %llu read commands, %llu flushes; lost %llu stale %llu corrupted %llu; "
           "driver timeouts %llu errors %llu\n",
           (unsigned long long)c.writes, (unsigned long long)c.reads,
           (unsigned long long)c.flushes, (unsigned long long)c.lost_writes, (unsigned long long)c.stale_overwrites,
           (unsigned long long)c.corrupted_reads,
           (unsigned long long)(F.hba[0].timeouts + F.hba[1].timeouts),
           (unsigned long long)(F.hba[0].errors + F.hba[1].errors));
    assert_true(c.writes > 0 && c.reads > 0 && c.flushes > 0);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
    /* (All-ones reads are no sign of trouble here: PxCI and PxSACT read so
     * with 32 tags busy; the driver fails any other register reading so.) */
    assert_int_equal(F.hba[0].timeouts + F.hba[1].timeouts, 0);
    assert_int_equal(F.hba[0].errors + F.hba[1].errors, 0);
}

/* ------------------------------------------------------- save/restore */

typedef struct batch {
    worker w;
    uint64_t lba;
    int rc;
} batch;

/* vCPU 0: one NCQ batch of DEPTH writes of 8 sectors from b->lba. */
static void *batch_main(void *arg)
{
    batch *b = arg;
    struct guest_ahci_io io[DEPTH];
    for (unsigned t = 0; t < DEPTH; t++) {
        io[t] = (struct guest_ahci_io){ .write = true, .lba = b->lba + 8 * t, .count = 8,
                                        .buf = b->w.buf[t] };
        for (unsigned s = 0; s < 8; s++)
            b->w.seq[t][s] = guest_check_fill(&F.chk, io[t].lba + s, b->w.buf[t] + 512 * s);
    }
    b->rc = guest_ahci_ncq(&F.hba[0], io, DEPTH);
    if (b->rc == 0)
        for (unsigned t = 0; t < DEPTH; t++)
            for (unsigned s = 0; s < 8; s++)
                guest_check_acked(&F.chk, io[t].lba + s, b->w.seq[t][s]);
    else
        snprintf(b->w.err, sizeof(b->w.err), "%s", guest_bus_error(&F.bus[0]));
    return NULL;
}

static uint32_t port0_reg(unsigned reg)
{
    uint32_t v = 0;
    assert_int_equal(guest_readl(&F.bus[1], F.hba[1].port + reg, &v), 0);
    return v;
}

/* `save` in the traditional dialect, the dm exits, a new rsdm-sim restores
 * the file (-loadvm) with `config` and runs. */
static void save_and_restore(const char *config)
{
    /* As libxl: the domain stays paused from before the save until the
     * restored device model runs. */
    assert_int_equal(hv_domain_pause(F.sim.dom), 0);
    assert_int_equal(xs_write(F.sim.xs, XBT_NULL, F.sim.command, "save", 4) ? 0 : -1, 0);
    assert_int_equal(rsdm_sim_wait_value(&F.sim, F.sim.state, "paused", 30000), 0);
    char file[512];
    rsdm_sim_save_path(&F.sim, file, sizeof(file));
    int st = rsdm_sim_stop_dm(&F.sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(rsdm_sim_restore_dm(&F.sim, file, config), 0);
    assert_int_equal(hv_domain_unpause(F.sim.dom), 0);
}

static void read_back(uint64_t lba, unsigned n)
{
    static uint8_t buf[128 * 512];
    for (unsigned done = 0; done < n; done += 128) {
        unsigned c = n - done < 128 ? n - done : 128;
        if (guest_ahci_rw(&F.hba[1], false, lba + done, c, buf) < 0)
            fail_msg("%s", guest_bus_error(&F.bus[1]));
        for (unsigned s = 0; s < c; s++)
            guest_check_count(&F.chk, guest_check_classify(&F.chk, lba + done + s, buf + 512 * s));
    }
}

static void assert_clean(void)
{
    struct guest_check_counters c;
    guest_check_snapshot(&F.chk, &c);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
    assert_int_equal(check_image(), 0);
}

/* `save` arrives while 32 NCQ writes are at the backend (a slow disk:
 * 300 ms each): the stop drains them, the file is written, a new
 * rsdm-sim restores it and the guest sees every command complete without
 * re-initialising the controller.  (A command issued while rsdm is stopped
 * cannot happen here: rsdm holds a domain pause reference, so the vCPUs
 * are frozen; tests/unit/test_dev_ahci.c covers latched commands.) */
static void test_save_restore_in_flight(void **state)
{
    (void)state;
    uint64_t resets = F.hba[0].resets;
    static batch b = { .lba = 1000 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, batch_main, &b), 0);
    /* vCPU 1 watches the port until all 32 tags are outstanding (bounded). */
    uint32_t sact = 0;
    for (int i = 0; i < 100000 && sact != 0xffffffffu; i++)
        sact = port0_reg(0x34);
    assert_int_equal(sact, 0xffffffffu);
    save_and_restore(NULL);
    pthread_join(t, NULL);
    if (b.rc)
        fail_msg("%s", b.w.err);
    read_back(1000, 8 * DEPTH);
    assert_clean();
    assert_int_equal(F.hba[0].resets, resets); /* no controller re-init */
}

/* One write of an NCQ batch fails with `stop` while the others are at the
 * backend: the VM stops in io-error with the slot halted; saved and
 * restored into a new rsdm-sim on a healthy disk, the halted command is
 * re-issued there and the batch completes. */
static void test_save_restore_halted(void **state)
{
    (void)state;
    uint64_t resets = F.hba[0].resets;
    static batch b = { .lba = 100 };   /* tag 25 covers sector 300 */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, batch_main, &b), 0);
    assert_int_equal(rsdm_sim_wait_value(&F.sim, F.sim.runstate, "io-error holds=io-error", 30000),
                     0);
    const char *healthy = write_config("b", "[disk sda]\nwerror = stop\n");
    assert_non_null(healthy);
    save_and_restore(healthy);
    pthread_join(t, NULL);
    if (b.rc)
        fail_msg("%s", b.w.err);
    read_back(100, 8 * DEPTH);
    assert_clean();
    assert_int_equal(F.hba[0].resets, resets);
}

/* vCPU 1 writes PxCI for a WRITE DMA EXT and libxl pauses the domain and
 * saves before rsdm handled the access (its notification lost: only the
 * 100 ms ioreq scan would answer it).  rsdm answers it before writing the
 * file, so the command is in the state and the new rsdm-sim does it; were it
 * answered after the save, the new rsdm-sim's PxCI would read 0 and the
 * guest would take the write as done with nothing written (a lost write
 * seen by the soak).  Each round first writes the sectors with the driver,
 * so slot 0's header and FIS describe that write from the same buffer: the
 * raw PxCI write repeats it with new data. */
static void test_save_with_unanswered_ci_write(void **state)
{
    (void)state;
    enum { N = 8, ROUNDS = 3 };
    const uint64_t lba = 3000;
    static uint8_t buf[N * 512];
    uint64_t seq[N];
    struct hv_domain *d = hv_domain_get(F.sim.dom);
    assert_non_null(d);
    for (unsigned round = 0; round < ROUNDS; round++) {
        for (unsigned s = 0; s < N; s++)
            seq[s] = guest_check_fill(&F.chk, lba + s, buf + 512 * s);
        if (guest_ahci_rw(&F.hba[1], true, lba, N, buf) < 0)
            fail_msg("%s", guest_bus_error(&F.bus[1]));
        for (unsigned s = 0; s < N; s++)
            assert_int_equal(guest_check_acked(&F.chk, lba + s, seq[s]), 0);
        for (unsigned s = 0; s < N; s++)
            seq[s] = guest_check_fill(&F.chk, lba + s, buf + 512 * s);
        assert_int_equal(guest_mem_write(&F.bus[1], F.hba[1].data[0], buf, sizeof(buf)), 0);
        ioreq_t r = { .type = IOREQ_TYPE_COPY, .dir = IOREQ_WRITE, .addr = F.hba[1].port + 0x38,
                      .size = 4, .count = 1, .data = 1 };
        assert_int_equal(hv_fault_drop_events(F.sim.dom, 0, 1), 0);
        assert_int_equal(hv_vcpu_io_submit(d, 1, &r, 30000), 0);
        assert_int_equal(hv_fault_drop_events(F.sim.dom, 0, 0), 0);
        save_and_restore(NULL);
        assert_int_equal(hv_vcpu_io_wait(d, 1, &r, 30000), 0);
        uint32_t ci = 1;
        for (int i = 0; i < 100000 && ci; i++)
            ci = port0_reg(0x38) & 1;
        assert_int_equal(ci, 0);
        assert_int_equal(port0_reg(0x20) & 0x89, 0x00);  /* PxTFD: no BSY, DRQ or ERR */
        for (unsigned s = 0; s < N; s++)
            assert_int_equal(guest_check_acked(&F.chk, lba + s, seq[s]), 0);
        read_back(lba, N);
        assert_clean();
    }
    hv_domain_put(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_vcpu_workload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore_in_flight, setup_slow, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore_halted, setup_failing, teardown),
        cmocka_unit_test_setup_teardown(test_save_with_unanswered_ci_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
