/*
 * PIIX3 IDE across save and restore into a new rsdm-sim, as libxl does it,
 * in both dialects: traditional (`save`, then a new device model with
 * -loadvm) and qemu-xen (QMP stop + xen-save-devices-state, then a new
 * device model with -incoming fd:N and `cont`):
 *
 *  - a DMA write in flight, an interrupt pending on the secondary channel
 *    and the bus-master BAR moved by the guest: after the restore the
 *    guest's write completes, the interrupt is still there and is
 *    acknowledged by reading Status, the BAR is where the guest put it,
 *    and the guest goes on without re-initialising the device;
 *  - a write parked in io-error: the saved state carries it, and the new
 *    rsdm re-issues it at the first start; the image lock, released by the
 *    stopped source after the save (qemu-xen: a save with `live: true`,
 *    the last step of a migration), is taken by the destination while the
 *    source still runs; in qemu-xen, a `cont` of the source while another
 *    process holds the image fails naming the disk (QEMU's cont).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/ide_guest.h"
#include "hv.h"

#define SECTORS 2048u
#define WAIT_MS 10000
#define LBA_FLIGHT 300u
#define LBA_PARK 400u
#define N 8u
#define NEW_BMDMA 0xd000u

typedef struct fixture {
    ide_guest g;
    char img[128], img2[128], conf[128], conf2[128];
} fixture;

static fixture fx;

static void write_conf(const char *path, const char *text)
{
    FILE *c = fopen(path, "w");
    assert_non_null(c);
    fputs(text, c);
    fclose(c);
}

static int setup(void **state)
{
    fixture *f = &fx;
    memset(f, 0, sizeof(*f));
    int pid = (int)getpid();
    snprintf(f->img, sizeof(f->img), "/tmp/rsdm-ide-save-%d.img", pid);
    snprintf(f->img2, sizeof(f->img2), "/tmp/rsdm-ide-save-%d-2.img", pid);
    snprintf(f->conf, sizeof(f->conf), "/tmp/rsdm-ide-save-%d.conf", pid);
    snprintf(f->conf2, sizeof(f->conf2), "/tmp/rsdm-ide-save-%d-2.conf", pid);
    char text[512];
    snprintf(text, sizeof(text),
             "[disk hda]\nwerror = stop\n"
             "inject = op=write delay=1000ms sectors=%u once\n"
             "inject = op=write errno=EIO sectors=%u once\n",
             LBA_FLIGHT, LBA_PARK);
    write_conf(f->conf, text);
    /* The destination: same policies, no injection. */
    write_conf(f->conf2, "[disk hda]\nwerror = stop\n");
    if (ide_guest_image(f->img, SECTORS) < 0 || ide_guest_image(f->img2, SECTORS) < 0)
        return -1;
    rsdm_sim_disk disks[2] = { { "hda", f->img }, { "hdc", f->img2 } };
    rsdm_sim_opts o = { .name = "ide-save", .vcpus = 2, .disks = disks, .ndisks = 2,
                        .config = f->conf, .dialect = ide_guest_dialect };
    *state = f;
    return ide_guest_start(&f->g, &o);
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st = rsdm_sim_stop_dm(&f->g.sim);
    ide_guest_stop(&f->g);
    unlink(f->img);
    unlink(f->img2);
    unlink(f->conf);
    unlink(f->conf2);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

typedef struct op {
    fixture *f;
    uint32_t lba;
    int rc;
    char err[512];
} op;

static void *write_main(void *arg)
{
    op *o = arg;
    o->rc = ide_guest_write(&o->f->g, 0, true, o->lba, N);
    if (o->rc < 0)
        snprintf(o->err, sizeof(o->err), "%s", guest_bus_error(&o->f->g.bus[0]));
    return NULL;
}

static uint8_t inb1(fixture *f, uint16_t port)
{
    uint8_t v = 0;
    assert_int_equal(guest_inb(&f->g.bus[1], port, &v), 0);
    return v;
}

/* The dialect's save (traditional: `save` acknowledged by `paused`;
 * qemu-xen: stop, add-fd, xen-save-devices-state), `live` as the last step
 * of a migration, which also gives up the image locks in qemu-xen. */
static void save(fixture *f, bool live, char *path, size_t len)
{
    if (live)
        assert_int_equal(rsdm_sim_save_live(&f->g.sim, path, len), 0);
    else
        assert_int_equal(rsdm_sim_save(&f->g.sim, path, len), 0);
    assert_int_equal(access(path, R_OK), 0);
}

static void check_all(fixture *f)
{
    ide_guest *g = &f->g;
    for (uint32_t lba = 0; lba < SECTORS; lba += 128)
        if (ide_guest_read(g, 1, true, lba, 128) < 0)
            fail_msg("%s", guest_bus_error(&g->bus[1]));
    assert_int_equal(ide_guest_flush(g, 0), 0);
    assert_int_equal(ide_guest_check_image(g), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&g->chk, &c);
    assert_int_equal(c.lost_writes + c.stale_overwrites + c.corrupted_reads, 0);
    assert_int_equal(ide_guest_all_ones(g), 0);
}

static void test_save_mid_dma_irq_pending_bar_moved(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    assert_int_equal(ide_guest_write(g, 0, true, 0, 64), 0);
    /* The guest moves the bus-master BAR. */
    const unsigned bdf = GUEST_BDF(0, 1, 1);
    assert_int_equal(guest_pci_write(&g->bus[0], bdf, 0x20, 4, NEW_BMDMA | 1), 0);
    for (unsigned v = 0; v < g->nvcpus; v++)
        g->ide[v].bmdma = NEW_BMDMA;
    /* An interrupt left pending on the secondary channel (hdc): SET
     * FEATURES (write cache on), Status not read. */
    assert_int_equal(guest_outb(&g->bus[1], 0x176, 0xe0), 0);
    assert_int_equal(guest_outb(&g->bus[1], 0x171, 0x02), 0);
    assert_int_equal(guest_outb(&g->bus[1], 0x177, 0xef), 0);
    assert_int_equal(guest_irq_wait(&g->bus[1], 15, WAIT_MS), 1);
    /* A DMA write the backend holds for a second. */
    uint64_t resets = g->ide[0].resets;
    op o = { .f = f, .lba = LBA_FLIGHT };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_main, &o), 0);
    uint8_t bst = 0;
    for (int i = 0; i < 100000 && !(bst & 1); i++)
        bst = inb1(f, NEW_BMDMA + 2);
    assert_true(bst & 1);
    /* libxl: pause the domain, save, start the new device model. */
    assert_int_equal(hv_domain_pause(g->sim.dom), 0);
    char path[256];
    save(f, false, path, sizeof(path));
    int st = rsdm_sim_stop_dm(&g->sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(rsdm_sim_restore_dm(&g->sim, path, f->conf2), 0);
    assert_int_equal(hv_domain_unpause(g->sim.dom), 0);
    pthread_join(t, NULL);
    if (o.rc < 0)
        fail_msg("the DMA write in flight at the save: %s", o.err);
    /* The BAR stayed where the guest put it. */
    uint32_t bar = 0;
    assert_int_equal(guest_pci_read(&g->bus[1], bdf, 0x20, 4, &bar), 0);
    assert_int_equal(bar, NEW_BMDMA | 1);
    /* The secondary channel's interrupt survived: its bus-master bit is set
     * and reading Status acknowledges it. */
    assert_true(inb1(f, NEW_BMDMA + 8 + 2) & 0x04);
    assert_int_equal(guest_irq_level(&g->bus[1], 15), 1);
    assert_int_equal(inb1(f, 0x177) & 0xc9, 0x40);     /* DRDY, not BSY/DRQ/ERR */
    assert_int_equal(guest_irq_level(&g->bus[1], 15), 0);
    /* The guest goes on without re-initialising its driver. */
    assert_int_equal(ide_guest_write(g, 1, true, LBA_FLIGHT + 100, 16), 0);
    check_all(f);
    assert_int_equal(g->ide[0].resets, resets);
    printf("%s: saved mid-DMA with an interrupt pending and BAR4 moved; restored, 0 re-inits\n",
           rsdm_sim_dialect_name(&g->sim));
}

static void test_save_in_io_error(void **state)
{
    fixture *f = *state;
    ide_guest *g = &f->g;
    op o = { .f = f, .lba = LBA_PARK };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_main, &o), 0);
    assert_int_equal(ide_guest_wait_runstate(g, "io-error holds=io-error", WAIT_MS), 0);
    assert_int_equal(hv_domain_pause(g->sim.dom), 0);       /* libxl's own pause */
    char path[256];
    save(f, true, path, sizeof(path));
    if (g->sim.dialect == RSDM_SIM_QEMU_XEN) {
        /* Another process takes the image meanwhile: the source's `cont`
         * (a failed migration's resume) cannot take it back and fails,
         * naming the disk, as QEMU's does; the source stays stopped. */
        int other = open(f->img, O_RDWR);
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        assert_true(other >= 0);
        assert_int_equal(fcntl(other, F_OFD_SETLK, &fl), 0);
        json_t *ret = NULL;
        xlq *c = rsdm_sim_qmp(&g->sim);
        assert_non_null(c);
        char err[512] = "";
        assert_int_equal(xlq_exec(c, "cont", NULL, -1, &ret, WAIT_MS, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "hda"));
        assert_int_equal(xlq_exec(c, "query-status", NULL, -1, &ret, WAIT_MS, err, sizeof(err)), 0);
        assert_string_equal(json_string_value(json_object_get(ret, "status")), "io-error");
        json_decref(ret);
        xlq_close(c);
        close(other);
    }
    /* The stopped source released the image lock: the destination opens
     * and locks it while the source still runs. */
    pid_t source = g->sim.dm;
    assert_int_equal(rsdm_sim_restore_dm(&g->sim, path, f->conf2), 0);
    kill(source, SIGTERM);
    int st;
    assert_int_equal(waitpid(source, &st, 0), source);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(ide_guest_command(g, "continue"), 0);
    assert_int_equal(ide_guest_wait_runstate(g, "running holds=", WAIT_MS), 0);
    assert_int_equal(hv_domain_unpause(g->sim.dom), 0);
    pthread_join(t, NULL);
    if (o.rc < 0)
        fail_msg("the write parked at the save: %s", o.err);
    check_all(f);
    printf("%s: saved in io-error, restored while the source ran, the parked write "
           "completed\n", rsdm_sim_dialect_name(&g->sim));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_mid_dma_irq_pending_bar_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_in_io_error, setup, teardown),
    };
    return IDE_GUEST_RUN_DIALECTS(tests);
}
