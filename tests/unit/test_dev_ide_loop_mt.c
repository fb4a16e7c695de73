/*
 * PIIX3 IDE in-process, driven register by register with the main loop
 * stepped by the test, so that orderings a guest cannot force are
 * deterministic: real dm_disks/dev_ide/dm_blk/librunstate, guest RAM on
 * the in-process simulated hypervisor, interrupts recorded.
 *
 *  - `cont` racing a still-pending io-error stop: the parked DMA write
 *    completes (BLOCK_IO_ERROR, STOP, RESUME, then the write);
 *  - a retry that fails again parks again; the next `cont` completes it;
 *  - a PIO write's retry redoes its current block, a DMA write's the whole
 *    command from its first sector;
 *  - a command and a bus-master start written while the VM is paused do
 *    no I/O, DMA or interrupt until the VM runs;
 *  - a PRD table shorter than the transfer ends the command without an
 *    interrupt; a PRD naming memory outside guest RAM fails it;
 *  - DEVICE RESET while a flush is parked discards it; SRST while a write
 *    is parked discards it and releases the io-error hold, and a command
 *    latched on the other channel meanwhile runs;
 *  - a machine reset discards a parked write with the io-error hold;
 *  - the state section refuses a file for another disk layout;
 *  - the image lock, released after a save of the stopped VM, is taken
 *    again before the VM runs, and a VM whose image is locked elsewhere
 *    does not run (QMP `cont` fails then, naming the disk, as QEMU's).
 *
 * The cases that stop and continue the VM run twice: with the run-state
 * calls the traditional dialect's `stop`/`continue` make, and with QMP
 * `stop`/`cont` sent by a client on the QMP server and command layer of
 * the qemu-xen dialect (dm/qmp_server, dm/qmp_commands, over a
 * socketpair), whose event stream must carry BLOCK_IO_ERROR, STOP and
 * RESUME in that order for the race.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../lib/proc_util.h"
#include "../lib/xsim_emu.h"
#include "dm_disks.h"
#include "dm_log.h"
#include "dm_xen.h"
#include "hv.h"
#include "qmp_commands.h"
#include "qmp_server.h"

#define SECTORS 8192u
#define BMDMA 0xc000u
#define PRDT 0x10000u
#define BUF 0x20000u
#define CMD 0x1f0u
#define CTL 0x3f6u
#define LOOP_BOUND 2000

typedef struct fixture {
    uint32_t dom;
    struct hv_domain *d;
    uint8_t *ram;
    dm_xen xen;
    dm_guestmem *gm;
    dm_loop *loop;
    rs_vm *vm;
    dm_io_space *pio, *mmio;
    dm_irq *irq;
    dm_pci_bus *pci;
    dm_state_reg *state;
    dm_config cfg;
    dm_disks *disks;
    char img[128], img2[160];
    unsigned raises[16];
    bool level[16];
    char events[32][16];
    unsigned nevents;
    /* qemu-xen: a QMP client on a socketpair, and the events it received */
    qmp_commands *qc;
    qmp_server *qs;
    int qfd;
    char qbuf[65536];
    size_t qlen;
    char qev[32][16];
    unsigned nqev;
    char qerr[512];        /* the last command's error description */
} fixture;

static fixture fx;
/* Whether stop/continue go through QMP (the qemu-xen group). */
static bool qmp_dialect;

static int rec_isa(void *opaque, unsigned irq, bool level)
{
    fixture *f = opaque;
    if (level && !f->level[irq])
        f->raises[irq]++;
    f->level[irq] = level;
    return 0;
}

static int rec_intx(void *opaque, unsigned slot, unsigned intx, bool level)
{
    (void)opaque;
    (void)slot;
    (void)intx;
    (void)level;
    return 0;
}

static const dm_irq_backend rec = { rec_isa, rec_intx };

static void on_event(void *opaque, const rs_event *ev)
{
    fixture *f = opaque;
    if (f->nevents < 32)
        snprintf(f->events[f->nevents++], 16, "%s", rs_event_name(ev->type));
}

/* ------------------------------------------------------------- QMP */

/* The next line from the server (events recorded and skipped unless
 * want_event), pumping the server in between; bounded. */
static json_t *qmp_read(fixture *f, bool want_event)
{
    for (int i = 0; i < LOOP_BOUND; i++) {
        char *nl = memchr(f->qbuf, '\n', f->qlen);
        if (nl) {
            size_t n = (size_t)(nl - f->qbuf) + 1;
            json_error_t je;
            json_t *m = json_loadb(f->qbuf, n, 0, &je);
            memmove(f->qbuf, f->qbuf + n, f->qlen - n);
            f->qlen -= n;
            if (!m)
                fail_msg("QMP: bad JSON from the server: %s", je.text);
            const char *ev = json_string_value(json_object_get(m, "event"));
            if (ev && f->nqev < 32)
                snprintf(f->qev[f->nqev++], 16, "%s", ev);
            if (!ev || want_event)
                return m;
            json_decref(m);
            continue;
        }
        qmp_server_poll_once(f->qs, 10);
        struct pollfd p = { .fd = f->qfd, .events = POLLIN };
        if (poll(&p, 1, 0) == 1) {
            ssize_t r = read(f->qfd, f->qbuf + f->qlen, sizeof(f->qbuf) - f->qlen);
            assert_true(r > 0);
            f->qlen += (size_t)r;
        }
    }
    fail_msg("QMP: no answer from the server");
    return NULL;
}

/* One QMP command; 0 on `return`, -1 on `error` (its text in f->qerr). */
static int qmp(fixture *f, const char *cmd)
{
    char line[128];
    int n = snprintf(line, sizeof(line), "{\"execute\": \"%s\"}\r\n", cmd);
    assert_int_equal(write(f->qfd, line, (size_t)n), n);
    json_t *m = qmp_read(f, false);
    int rc = json_object_get(m, "return") ? 0 : -1;
    const char *desc = json_string_value(json_object_get(json_object_get(m, "error"), "desc"));
    snprintf(f->qerr, sizeof(f->qerr), "%s", desc ? desc : "");
    json_decref(m);
    return rc;
}

/* As rsdm's machine wires it (librunstate's activate hook): `cont` takes
 * the images back before the VM may start, or fails with the reason. */
static int activate_disks(void *opaque, char *err, size_t errlen)
{
    fixture *f = opaque;
    return dm_disks_lock_acquire(f->disks, err, errlen);
}

static void qmp_open(fixture *f)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_non_null(f->qc = qmp_commands_new(f->vm));
    assert_non_null(f->qs = qmp_server_new(qmp_commands_dispatch, f->qc));
    qmp_commands_set_server(f->qc, f->qs);
    rs_set_hooks(f->vm, &(rs_hooks){ .activate = activate_disks, .opaque = f });
    assert_non_null(qmp_server_add_client_fd(f->qs, sv[0]));
    f->qfd = sv[1];
    json_t *greeting = qmp_read(f, false);
    assert_non_null(json_object_get(greeting, "QMP"));
    json_decref(greeting);
    assert_int_equal(qmp(f, "qmp_capabilities"), 0);
}

static void qmp_close(fixture *f)
{
    if (!f->qs)
        return;
    close(f->qfd);
    qmp_server_free(f->qs);
    qmp_commands_free(f->qc);
    f->qs = NULL;
    f->qc = NULL;
}

/* The index of the first event called name at or after from in a list of
 * event names (the run state's or the QMP client's); fails the test when
 * there is none. */
static unsigned index_of(char (*list)[16], unsigned n, const char *name, unsigned from)
{
    for (unsigned i = from; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return i;
    fail_msg("no %s event after #%u", name, from);
    return 0;
}

static unsigned qmp_event_index(fixture *f, const char *name, unsigned from)
{
    return index_of(f->qev, f->nqev, name, from);
}

/* `continue` / `stop` of the dialect under test: the run-state calls the
 * traditional commands make, or QMP cont / stop. */
static int vm_cont(fixture *f)
{
    rs_err e = { 0 };
    return qmp_dialect ? qmp(f, "cont") : rs_cont(f->vm, &e);
}

static int vm_stop(fixture *f)
{
    rs_err e = { 0 };
    return qmp_dialect ? qmp(f, "stop") : rs_vm_stop(f->vm, RS_PAUSED, &e);
}

static void start(fixture *f, const char *config)
{
    memset(f, 0, sizeof(*f));
    dm_log_set_level(DM_LOG_ERROR);
    assert_int_equal(xsim_fixture_start(), 0);
    hv_log_quiet(true);
    int id = hv_domain_create(0, 1, 16, "ide-unit");
    assert_true(id > 0);
    f->dom = (uint32_t)id;
    f->d = hv_domain_get(f->dom);
    uint64_t size;
    f->ram = hv_domain_ram(f->d, &size);
    char err[512] = "";
    assert_int_equal(dm_xen_open(&f->xen, (domid_t)f->dom, err, sizeof(err)), 0);
    assert_non_null(f->gm = dm_guestmem_new(&f->xen));
    assert_non_null(f->loop = dm_loop_new());
    assert_non_null(f->vm = rs_vm_new());
    assert_int_equal(rs_event_sink_add(f->vm, on_event, f), 0);
    assert_non_null(f->pio = dm_io_space_new(DM_IO_PORT));
    assert_non_null(f->mmio = dm_io_space_new(DM_IO_MMIO));
    assert_non_null(f->irq = dm_irq_new(&rec, f));
    assert_int_equal(dm_irq_attach_runstate(f->irq, f->vm, 0), 0);
    assert_non_null(f->pci = dm_pci_bus_new(f->pio, f->mmio, f->irq));
    assert_non_null(f->state = dm_state_reg_new());
    dm_config_init(&f->cfg);
    assert_int_equal(dm_config_parse(&f->cfg, config, strlen(config), "test.conf", err, sizeof(err)), 0);
    snprintf(f->img, sizeof(f->img), "/tmp/rsdm-ide-unit-%d.img", (int)getpid());
    int fd = open(f->img, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, SECTORS * 512), 0);
    close(fd);
    dm_disks_cfg dc = { .loop = f->loop, .pio = f->pio, .pci = f->pci, .irq = f->irq,
                        .vm = f->vm, .gm = f->gm, .state = f->state, .config = &f->cfg };
    assert_int_equal(dm_disks_new(&dc, &f->disks, err, sizeof(err)), 0);
    static dm_disk_list list;
    memset(&list, 0, sizeof(list));
    list.n = 1;
    snprintf(list.disk[0].name, sizeof(list.disk[0].name), "hda");
    snprintf(list.disk[0].path, sizeof(list.disk[0].path), "%s", f->img);
    if (dm_disks_attach(f->disks, &list, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    /* Firmware: BAR4, I/O decode and bus mastering. */
    uint32_t sbdf = dm_pci_sbdf(0, 0, 1, 1);
    assert_int_equal(dm_pci_config_write(f->pci, sbdf, 0x20, 4, BMDMA | 1), 0);
    assert_int_equal(dm_pci_config_write(f->pci, sbdf, 0x04, 2, 0x0005), 0);
    rs_err e = { 0 };
    assert_int_equal(rs_cont(f->vm, &e), 0);
    if (qmp_dialect)
        qmp_open(f);
}

static void stop_fixture(fixture *f)
{
    qmp_close(f);
    dm_disks_free(f->disks);
    dm_pci_bus_free(f->pci);
    dm_state_reg_free(f->state);
    dm_irq_free(f->irq);
    dm_io_space_free(f->mmio);
    dm_io_space_free(f->pio);
    rs_vm_free(f->vm);
    dm_loop_free(f->loop);
    dm_guestmem_free(f->gm);
    dm_xen_close(&f->xen);
    hv_domain_put(f->d);
    xsim_fixture_stop();
    unlink(f->img);
    if (f->img2[0])
        unlink(f->img2);
}

static int teardown(void **state)
{
    stop_fixture(*state);
    return 0;
}

/* ------------------------------------------------------------- helpers */

static uint8_t inb(fixture *f, uint16_t port)
{
    uint64_t v = 0;
    assert_int_equal(dm_io_read(f->pio, port, 1, &v), 0);
    return (uint8_t)v;
}

static void outb(fixture *f, uint16_t port, uint8_t v)
{
    assert_int_equal(dm_io_write(f->pio, port, 1, v), 0);
}

static void outl(fixture *f, uint16_t port, uint32_t v)
{
    assert_int_equal(dm_io_write(f->pio, port, 4, v), 0);
}

static void prd(fixture *f, unsigned i, uint32_t addr, uint32_t len, bool eot)
{
    uint32_t e[2] = { addr, (len & 0xffff) | (eot ? 0x80000000u : 0) };
    memcpy(f->ram + PRDT + 8 * i, e, 8);
}

static void taskfile(fixture *f, uint32_t lba, uint8_t count, uint8_t cmd)
{
    outb(f, CMD + 6, (uint8_t)(0xe0 | (lba >> 24)));
    outb(f, CMD + 2, count);
    outb(f, CMD + 3, (uint8_t)lba);
    outb(f, CMD + 4, (uint8_t)(lba >> 8));
    outb(f, CMD + 5, (uint8_t)(lba >> 16));
    outb(f, CMD + 7, cmd);
}

static void dma_command(fixture *f, bool write, uint32_t lba, uint8_t count)
{
    outl(f, BMDMA + 4, PRDT);
    outb(f, BMDMA + 2, 0x06);
    outb(f, BMDMA, write ? 0 : 0x08);
    taskfile(f, lba, count, write ? 0xca : 0xc8);
    outb(f, BMDMA, write ? 0x01 : 0x09);
}

/* Runs the main loop (and, unless told not to, the run-state requests)
 * until the predicate holds; bounded. */
typedef bool (*pred)(fixture *f);
static bool step_until(fixture *f, pred p, bool requests)
{
    for (int i = 0; i < LOOP_BOUND; i++) {
        if (p(f))
            return true;
        int st;
        if (requests)
            rs_process_requests(f->vm, &st);
        dm_loop_iterate(f->loop, 10);
    }
    return p(f);
}

static bool irq_raised(fixture *f)
{
    return f->level[14];
}

static bool parked(fixture *f)
{
    return dm_disks_parked(f->disks) > 0;
}

static bool in_io_error(fixture *f)
{
    return rs_get_state(f->vm) == RS_IO_ERROR;
}

static void fill(fixture *f, uint32_t addr, uint8_t seed, size_t len)
{
    for (size_t i = 0; i < len; i++)
        f->ram[addr + i] = (uint8_t)(seed + i * 7);
}

static void image_has(fixture *f, uint32_t lba, uint8_t seed, size_t len)
{
    int fd = open(f->img, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t buf[8192];
    assert_true(len <= sizeof(buf));
    assert_int_equal(pread(fd, buf, len, (off_t)lba * 512), (ssize_t)len);
    close(fd);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (uint8_t)(seed + i * 7))
            fail_msg("image byte %zu of sector %u is 0x%02x", i, lba, buf[i]);
}

static void ack(fixture *f)
{
    uint8_t st = inb(f, CMD + 7);
    assert_int_equal(st & 0x89, 0x00);          /* not BSY, no DRQ, no ERR */
    assert_false(f->level[14]);
    outb(f, BMDMA, 0);
}

static unsigned event_index(fixture *f, const char *name, unsigned from)
{
    return index_of(f->events, f->nevents, name, from);
}

/* A second small disk on `unit` (its image removed at teardown). */
static void attach_extra(fixture *f, const char *name, unsigned unit)
{
    char err[512];
    static dm_disk_list list;
    memset(&list, 0, sizeof(list));
    list.n = 1;
    snprintf(list.disk[0].name, sizeof(list.disk[0].name), "%s", name);
    snprintf(f->img2, sizeof(f->img2), "%s.%s", f->img, name);
    snprintf(list.disk[0].path, sizeof(list.disk[0].path), "%s", f->img2);
    list.disk[0].unit = unit;
    int fd = open(f->img2, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 512 * 64), 0);
    close(fd);
    if (dm_disks_attach(f->disks, &list, err, sizeof(err)) < 0)
        fail_msg("%s", err);
}

/* --------------------------------------------------------------- tests */

static int setup_twice(void **state)
{
    start(&fx, "[disk hda]\nwerror = stop\ninject = op=write errno=EIO once\n"
               "inject = op=write errno=EIO once\n");
    *state = &fx;
    return 0;
}

static void test_cont_races_pending_stop(void **state)
{
    fixture *f = *state;
    fill(f, BUF, 0x11, 4096);
    prd(f, 0, BUF, 4096, true);
    dma_command(f, true, 8, 8);
    /* The backend fails the write: the command parks and the io-error
     * stop is requested, but the main loop has not taken it yet. */
    assert_true(step_until(f, parked, false));
    assert_int_equal(rs_get_state(f->vm), RS_RUNNING);
    assert_false(f->level[14]);
    /* `cont` arrives first: it takes the pending stop, then starts. */
    assert_int_equal(vm_cont(f), 0);
    unsigned err_ev = event_index(f, "BLOCK_IO_ERROR", 0);
    unsigned stop_ev = event_index(f, "STOP", err_ev);
    event_index(f, "RESUME", stop_ev);
    if (qmp_dialect)   /* and so the QMP client saw them, before cont's answer */
        qmp_event_index(f, "RESUME", qmp_event_index(f, "STOP",
                                                     qmp_event_index(f, "BLOCK_IO_ERROR", 0)));
    /* The retry fails again (second rule): parked again, io-error again. */
    assert_true(step_until(f, in_io_error, true));
    assert_false(f->level[14]);
    assert_int_equal(inb(f, CMD + 7) & 0x89, 0x08);   /* DRQ kept, no ERR */
    assert_int_equal(vm_cont(f), 0);
    assert_true(step_until(f, irq_raised, true));
    assert_int_equal(inb(f, BMDMA + 2) & 0x07, 0x04); /* done, interrupt */
    ack(f);
    image_has(f, 8, 0x11, 4096);
}

static int setup_plain(void **state)
{
    start(&fx, "[disk hda]\nwerror = stop\n");
    *state = &fx;
    return 0;
}

/* Gives what must not happen 200 ms of main loop to happen anyway. */
static void settle(fixture *f, bool requests)
{
    for (int i = 0; i < 20; i++) {
        int st;
        if (requests)
            rs_process_requests(f->vm, &st);
        dm_loop_iterate(f->loop, 10);
    }
}

static void test_latched_while_paused(void **state)
{
    fixture *f = *state;
    assert_int_equal(vm_stop(f), 0);
    fill(f, BUF, 0x22, 2048);
    prd(f, 0, BUF, 2048, true);
    unsigned raises = f->raises[14];
    dma_command(f, true, 16, 4);
    assert_true(inb(f, CTL) & 0x80);                  /* BSY: latched */
    /* The command block is ignored while busy (QEMU): selecting the absent
     * slave cannot move the latched command to it.  (Before, the start
     * ran it on the slave, and the state saved meanwhile named a drive
     * that is not attached, which the loader refuses: fuzz_ide.) */
    outb(f, CMD + 6, 0xf0);
    assert_true(inb(f, CTL) & 0x80);                  /* still the master's BSY */
    uint8_t *saved = NULL;
    size_t saved_len = 0;
    char err[256];
    assert_int_equal(dm_state_save_mem(f->state, &saved, &saved_len, err, sizeof(err)), 0);
    assert_int_equal(dm_state_load_mem(f->state, saved, saved_len, err, sizeof(err)), 0);
    free(saved);
    settle(f, false);
    dm_blk_stats st;
    dm_blk_get_stats(dm_disks_blk(f->disks, 0), &st);
    assert_int_equal(st.writes, 0);
    assert_int_equal(f->raises[14], raises);
    assert_int_equal(vm_cont(f), 0);
    assert_true(step_until(f, irq_raised, true));
    ack(f);
    image_has(f, 16, 0x22, 2048);
    /* A DMA read started while paused moves nothing into guest RAM. */
    assert_int_equal(vm_stop(f), 0);
    memset(f->ram + BUF, 0xee, 2048);
    dma_command(f, false, 16, 4);
    settle(f, false);
    assert_int_equal(f->ram[BUF], 0xee);
    assert_int_equal(vm_cont(f), 0);
    assert_true(step_until(f, irq_raised, true));
    ack(f);
    assert_int_equal(f->ram[BUF + 5], (uint8_t)(0x22 + 5 * 7));
}

static void test_prd_short_and_fault(void **state)
{
    fixture *f = *state;
    /* 2 KiB of PRDs for a 4 KiB transfer: active cleared, no interrupt. */
    prd(f, 0, BUF, 2048, true);
    unsigned raises = f->raises[14];
    dma_command(f, false, 0, 8);
    settle(f, true);
    assert_int_equal(f->raises[14], raises);
    assert_int_equal(inb(f, BMDMA + 2) & 0x01, 0);
    outb(f, BMDMA, 0);
    /* A buffer beyond guest RAM: the bus master reports an error and the
     * command fails with ABRT. */
    prd(f, 0, 0xf0000000u, 512, true);
    dma_command(f, false, 0, 1);
    assert_true(step_until(f, irq_raised, true));
    assert_true(inb(f, BMDMA + 2) & 0x02);
    assert_true(inb(f, CMD + 7) & 0x01);
    assert_int_equal(inb(f, CMD + 1), 0x04);
    outb(f, BMDMA, 0);
}

static int setup_flush(void **state)
{
    start(&fx, "[disk hda]\nwerror = stop\ninject = op=flush errno=EIO once\n");
    *state = &fx;
    return 0;
}

static void test_device_reset_discards_parked_flush(void **state)
{
    fixture *f = *state;
    taskfile(f, 0, 0, 0xe7);
    assert_true(step_until(f, in_io_error, true));
    assert_true(inb(f, CTL) & 0x80);                  /* flush parked: BSY */
    /* DEVICE RESET is accepted while busy and drops the flush; with
     * nothing parked the io-error hold goes too. */
    outb(f, CMD + 7, 0x08);
    assert_false(parked(f));
    assert_int_equal(inb(f, CMD + 2), 1);             /* signature */
    assert_int_equal(inb(f, CMD + 3), 1);
    settle(f, true);
    assert_false(f->level[14]);
    assert_int_equal(rs_get_state(f->vm), RS_RUNNING);
    dm_blk_stats st;
    dm_blk_get_stats(dm_disks_blk(f->disks, 0), &st);
    assert_int_equal(st.flushes, 0);
}

static void test_state_refuses_other_layout(void **state)
{
    fixture *f = *state;
    uint8_t *buf;
    size_t len;
    char err[512];
    assert_int_equal(dm_state_save_mem(f->state, &buf, &len, err, sizeof(err)), 0);
    /* The same file loads into the same layout... */
    assert_int_equal(dm_state_load_mem(f->state, buf, len, err, sizeof(err)), 0);
    /* ... but not into a dm whose primary slave is attached too. */
    attach_extra(f, "hdb", 1);
    assert_int_equal(dm_state_load_mem(f->state, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "drives"));
    free(buf);
}

static void test_disk_specs_refused(void **state)
{
    fixture *f = *state;
    static dm_disk_list list;
    char err[512];
    memset(&list, 0, sizeof(list));
    list.n = 1;
    snprintf(list.disk[0].name, sizeof(list.disk[0].name), "hdc");
    snprintf(list.disk[0].path, sizeof(list.disk[0].path), "%s", f->img);
    snprintf(list.disk[0].format, sizeof(list.disk[0].format), "qcow2");
    list.disk[0].unit = 2;
    assert_int_equal(dm_disks_attach(f->disks, &list, err, sizeof(err)), -ENOTSUP);
    assert_non_null(strstr(err, "qcow2"));
    list.disk[0].format[0] = 0;
    list.disk[0].cdrom = true;
    assert_int_equal(dm_disks_attach(f->disks, &list, err, sizeof(err)), -ENOTSUP);
    assert_non_null(strstr(err, "ATAPI"));
    list.disk[0].cdrom = false;
    list.disk[0].unit = 0;
    assert_int_equal(dm_disks_attach(f->disks, &list, err, sizeof(err)), -EEXIST);
    list.disk[0].unit = 6;
    list.disk[0].bus = DM_DISK_AHCI;
    assert_int_equal(dm_disks_attach(f->disks, &list, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "AHCI port 6"));
    assert_int_equal(dm_disks_count(f->disks), 1);
    /* Policies: the spec's own, else the config's, else QEMU's. */
    dm_err_action r, w;
    dm_cache_mode c;
    dm_disk_spec s = { .name = "hda" };
    dm_disks_resolve(&s, &f->cfg, &r, &w, &c);
    assert_int_equal(w, DM_ERR_STOP);
    assert_int_equal(r, DM_ERR_REPORT);
    s.has_werror = true;
    s.werror = DM_ERR_IGNORE;
    dm_disks_resolve(&s, &f->cfg, &r, &w, &c);
    assert_int_equal(w, DM_ERR_IGNORE);
    snprintf(s.name, sizeof(s.name), "hdd");
    s.has_werror = false;
    dm_disks_resolve(&s, NULL, &r, &w, &c);
    assert_int_equal(w, DM_ERR_ENOSPC);
    assert_int_equal(c, DM_CACHE_WRITEBACK);
}

static bool running(fixture *f)
{
    return rs_get_state(f->vm) == RS_RUNNING;
}

static bool irq15(fixture *f)
{
    return f->level[15];
}

static int setup_once(void **state)
{
    start(&fx, "[disk hda]\nwerror = stop\ninject = op=write errno=EIO once\n");
    *state = &fx;
    return 0;
}

static void test_srst_releases_io_error_hold(void **state)
{
    fixture *f = *state;
    attach_extra(f, "hdc", 2);
    /* A DMA write on hda parks in io-error. */
    fill(f, BUF, 0x33, 512);
    prd(f, 0, BUF, 512, true);
    dma_command(f, true, 40, 1);
    assert_true(step_until(f, in_io_error, true));
    assert_int_equal(dm_disks_parked(f->disks), 1);
    /* The guest (not paused: a restricted rsdm holds no pause reference)
     * issues a flush on the secondary channel: latched. */
    outb(f, 0x176, 0xe0);
    outb(f, 0x177, 0xe7);
    assert_true(inb(f, 0x376) & 0x80);
    /* It gives up on the primary and resets it: the parked write is gone,
     * and with nothing else parked the io-error hold is released. */
    outb(f, CTL, 0x04);
    outb(f, CTL, 0x00);
    assert_int_equal(dm_disks_parked(f->disks), 0);
    assert_true(step_until(f, running, true));
    /* The latched flush runs now; the discarded write never does. */
    assert_true(step_until(f, irq15, true));
    assert_int_equal(inb(f, 0x177) & 0x89, 0);
    dm_blk_stats st;
    dm_blk_get_stats(dm_disks_blk(f->disks, 0), &st);
    assert_int_equal(st.writes, 0);
    assert_int_equal(inb(f, CMD + 2), 1);             /* signature after SRST */
}

static void test_machine_reset_discards_parked(void **state)
{
    fixture *f = *state;
    fill(f, BUF, 0x55, 512);
    prd(f, 0, BUF, 512, true);
    dma_command(f, true, 50, 1);
    assert_true(step_until(f, in_io_error, true));
    assert_int_equal(dm_disks_parked(f->disks), 1);
    /* A reset (the `reset` command, QMP system_reset) clears the io-error
     * hold; the parked write must go with it, not run at the next start. */
    if (qmp_dialect)
        assert_int_equal(qmp(f, "system_reset"), 0);
    else
        assert_int_equal(rs_request_reset(f->vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET), 0);
    int st;
    rs_process_requests(f->vm, &st);
    assert_int_equal(dm_disks_parked(f->disks), 0);
    assert_false(rs_get_holds(f->vm) & RS_HOLD_BIT(RS_IO_ERROR));
    if (!rs_is_live(f->vm))
        assert_int_equal(vm_cont(f), 0);
    settle(f, true);
    dm_blk_stats bs;
    dm_blk_get_stats(dm_disks_blk(f->disks, 0), &bs);
    assert_int_equal(bs.writes, 0);
    assert_int_equal(inb(f, BMDMA + 2) & 0x01, 0);     /* bus master idle */
    assert_int_equal(inb(f, CMD + 7) & 0x89, 0);        /* drive idle */
    assert_int_equal(inb(f, CMD + 2), 1);               /* power-on signature */
}

static bool irq_or_stop(fixture *f)
{
    return f->level[14] || rs_get_state(f->vm) == RS_IO_ERROR;
}

static int setup_granularity(void **state)
{
    start(&fx, "[disk hda]\nwerror = stop\n"
               "inject = op=write errno=EIO sectors=202 once\n"
               "inject = op=write errno=EIO sectors=4000 once\n");
    *state = &fx;
    return 0;
}

/* What a retry redoes (reference §6.3-§6.6): a PIO write its current
 * block only, a DMA write the whole command from its first sector. */
static void test_retry_granularity(void **state)
{
    fixture *f = *state;
    dm_blk *b = dm_disks_blk(f->disks, 0);
    /* WRITE SECTORS, 4 one-sector blocks at 200; sector 202 fails once. */
    taskfile(f, 200, 4, 0x30);
    for (unsigned blk = 0; blk < 4; blk++) {
        if (blk > 0) {
            assert_true(step_until(f, irq_or_stop, true));
            if (rs_get_state(f->vm) == RS_IO_ERROR) {
                assert_int_equal(blk, 3);          /* the third block failed */
                assert_int_equal(vm_cont(f), 0);
                assert_true(step_until(f, irq_raised, true));
            }
        }
        assert_int_equal(inb(f, CMD + 7) & 0x89, 0x08);
        for (unsigned w = 0; w < 256; w++)
            assert_int_equal(dm_io_write(f->pio, CMD, 2, (uint16_t)(blk * 1000 + w)), 0);
    }
    assert_true(step_until(f, irq_raised, true));
    assert_int_equal(inb(f, CMD + 7) & 0x89, 0);
    dm_blk_stats st;
    dm_blk_get_stats(b, &st);
    assert_int_equal(st.writes, 4);                /* blocks 1, 2, 3 (again), 4 */
    assert_int_equal(st.errors, 1);
    /* WRITE DMA EXT of 4096 sectors at 1000 (two 1 MiB requests); sector
     * 4000, in the second, fails once: the retry starts at sector 1000. */
    for (unsigned i = 0; i < 32; i++)
        prd(f, i, BUF + i * 65536u, 0, i == 31);
    fill(f, BUF, 0x77, 2u << 20);
    outl(f, BMDMA + 4, PRDT);
    outb(f, BMDMA + 2, 0x06);
    outb(f, BMDMA, 0);
    outb(f, CMD + 6, 0x40);
    outb(f, CMD + 2, 0x10);                        /* count 0x1000, high byte first */
    outb(f, CMD + 3, 0);
    outb(f, CMD + 4, 0);
    outb(f, CMD + 5, 0);
    outb(f, CMD + 2, 0x00);
    outb(f, CMD + 3, 1000 & 0xff);
    outb(f, CMD + 4, 1000 >> 8);
    outb(f, CMD + 5, 0);
    outb(f, CMD + 7, 0x35);
    outb(f, BMDMA, 0x01);
    assert_true(step_until(f, in_io_error, true));
    dm_blk_get_stats(b, &st);
    assert_int_equal(st.writes, 4 + 1);            /* the first 1 MiB went through */
    assert_int_equal(vm_cont(f), 0);
    assert_true(step_until(f, irq_raised, true));
    ack(f);
    dm_blk_get_stats(b, &st);
    assert_int_equal(st.writes, 4 + 1 + 2);        /* the whole command again */
    assert_int_equal(st.errors, 2);
    image_has(f, 1000, 0x77, 4096);
    image_has(f, 1000 + 2048, (uint8_t)(0x77 + (2048 * 512) * 7), 4096);
}

/* Another process's OFD lock on the whole image; returns the fd or -1 when
 * the lock is held elsewhere. */
static int lock_image(fixture *f)
{
    int fd = proc_lock_image(f->img);
    assert_true(fd != -2);
    return fd;
}

static void test_lock_released_after_save_and_retaken(void **state)
{
    fixture *f = *state;
    dm_blk *b = dm_disks_blk(f->disks, 0);
    assert_true(dm_blk_locked(b));
    assert_int_equal(lock_image(f), -1);
    /* A save of the stopped VM hands the image over... */
    assert_int_equal(vm_stop(f), 0);
    dm_disks_lock_release(f->disks);
    assert_false(dm_blk_locked(b));
    dm_blk_stats fs;
    dm_blk_get_stats(b, &fs);
    assert_int_equal(fs.flushes, 1);                 /* flushed before the hand-over */
    int other = lock_image(f);
    assert_true(other >= 0);
    /* ... and while the destination holds it this VM does not run: the
     * start is undone at once (paused again). */
    char err[512];
    assert_true(dm_disks_lock_acquire(f->disks, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "hda"));
    /* A write the guest issued before: it must not reach the image. */
    fill(f, BUF, 0x66, 512);
    prd(f, 0, BUF, 512, true);
    dma_command(f, true, 60, 1);
    if (qmp_dialect) {
        /* QMP `cont` takes the images back first, as QEMU's
         * bdrv_activate_all, and fails with the reason: the management
         * learns the VM did not start. */
        assert_int_equal(vm_cont(f), -1);
        assert_non_null(strstr(f->qerr, "hda"));
        assert_non_null(strstr(f->qerr, "in use"));
    } else {
        assert_int_equal(vm_cont(f), 0);             /* undone by the start handler */
    }
    dm_loop_iterate(f->loop, 0);                     /* the restart timer first */
    int st;
    rs_process_requests(f->vm, &st);
    assert_int_equal(rs_get_state(f->vm), RS_PAUSED);
    assert_false(dm_blk_locked(b));
    settle(f, false);
    dm_blk_stats bs;
    dm_blk_get_stats(b, &bs);
    assert_int_equal(bs.writes, 0);
    /* Once it is free again, `cont` takes it before the VM runs. */
    close(other);
    assert_int_equal(vm_cont(f), 0);
    assert_int_equal(rs_get_state(f->vm), RS_RUNNING);
    assert_true(dm_blk_locked(b));
    assert_true(step_until(f, irq_raised, true));
    ack(f);
    image_has(f, 60, 0x66, 512);
    assert_int_equal(lock_image(f), -1);
}

/* Guest input is untrusted: a long random storm of register accesses of
 * every size to both channels and the bus master, random PRD tables (in
 * and out of guest RAM), stops and starts, SRSTs and saves and loads, with
 * the loop running in between.  Nothing may crash (the sanitizer passes
 * run this too), and afterwards the device still works normally. */
static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Until the channel is not busy (a stopped VM stays busy: bounded). */
static void storm_wait(fixture *f, uint16_t base)
{
    for (int k = 0; k < 20; k++) {
        uint64_t st = 0;
        dm_io_read(f->pio, base + 0x206, 1, &st);
        if (!(st & 0x80) || !rs_is_live(f->vm))
            return;
        int status;
        rs_process_requests(f->vm, &status);
        dm_loop_iterate(f->loop, 1);
    }
}

/* A well-formed command with random parameters on a random channel; the
 * data phase of a PIO command is moved through the data port. */
static void storm_command(fixture *f, uint64_t *x)
{
    uint64_t r = rnd(x);
    unsigned ch = r & 1;
    uint16_t base = ch ? 0x170 : 0x1f0, bm = (uint16_t)(BMDMA + 8 * ch);
    uint32_t buf = BUF + ch * 0x8000;
    unsigned count = 1 + (unsigned)((r >> 8) % 8);
    uint32_t lba = (uint32_t)((r >> 16) % 60);
    static const uint8_t cmds[] = { 0x20, 0x30, 0xc8, 0xca, 0xe7, 0xec, 0x24, 0x35 };
    uint8_t cmd = cmds[(r >> 24) % 8];
    bool dma = cmd == 0xc8 || cmd == 0xca || cmd == 0x35;
    bool ext = cmd == 0x24 || cmd == 0x35;
    prd(f, 0, (r >> 32) % 16 ? buf : 0xfff00000u, count * 512, true);
    uint64_t v;
    dm_io_write(f->pio, base + 0x206, 1, 0);     /* out of any SRST the storm left */
    dm_io_write(f->pio, bm, 1, (cmd == 0xc8) ? 0x08 : 0);
    dm_io_write(f->pio, bm + 4, 4, PRDT);
    dm_io_write(f->pio, base + 6, 1, ext ? 0x40 : 0xe0);
    if (ext) {
        dm_io_write(f->pio, base + 2, 1, 0);
        dm_io_write(f->pio, base + 3, 1, 0);
        dm_io_write(f->pio, base + 4, 1, 0);
        dm_io_write(f->pio, base + 5, 1, 0);
    }
    dm_io_write(f->pio, base + 2, 1, count);
    dm_io_write(f->pio, base + 3, 1, lba);
    dm_io_write(f->pio, base + 4, 1, 0);
    dm_io_write(f->pio, base + 5, 1, 0);
    dm_io_write(f->pio, base + 7, 1, cmd);
    if (dma) {
        dm_io_write(f->pio, bm, 1, (cmd == 0xc8 ? 0x08 : 0) | 1);
        return;
    }
    /* Let the first block arrive, then move up to the whole transfer. */
    storm_wait(f, base);
    for (unsigned w = 0; w < count * 256 + ((r >> 40) % 3 == 0 ? 7 : 0); w++) {
        if (cmd == 0x30)
            dm_io_write(f->pio, base, 2, w);
        else
            dm_io_read(f->pio, base, 2, &v);
        if (w % 256 == 255)
            storm_wait(f, base);
    }
}

static void test_random_register_storm(void **state)
{
    fixture *f = *state;
    attach_extra(f, "hdc", 2);
    static const uint16_t ports[] = { 0x1f0, 0x1f1, 0x1f2, 0x1f3, 0x1f4, 0x1f5, 0x1f6, 0x1f7,
                                      0x3f6, 0x170, 0x171, 0x172, 0x173, 0x174, 0x175, 0x176,
                                      0x177, 0x376 };
    uint64_t x = 0x9e3779b97f4a7c15ull;
    rs_err e = { 0 };
    char err[512];
    for (int i = 0; i < 8000; i++) {
        uint64_t r = rnd(&x);
        unsigned what = r % 100;
        uint16_t port = (r >> 8) & 1 ? (uint16_t)(BMDMA + ((r >> 9) & 15))
                                     : ports[(r >> 9) % (sizeof(ports) / sizeof(ports[0]))];
        unsigned size = 1u << ((r >> 16) % 3);
        if (port + size > BMDMA + 16 && port >= BMDMA)
            size = 1;
        uint64_t v = rnd(&x);
        if (what >= 30 && what < 45) {
            storm_command(f, &x);
        } else if (what < 45) {
            /* Bias towards commands the device implements. */
            if (port == 0x1f7 || port == 0x177)
                v = (r >> 24) & 1 ? (uint8_t)v : (uint8_t[]){ 0x20, 0x30, 0xc8, 0xca, 0x25, 0x35,
                                                              0xe7, 0xec, 0xef, 0xc4, 0xc5, 0xc6,
                                                              0x08, 0x90 }[(r >> 25) % 14];
            if (port == 0x1f2 || port == 0x172)
                v &= 0x0f;
            /* Mostly addresses on the disk, mostly the master. */
            if ((port & 0x37f) >= 0x173 && (port & 0x37f) <= 0x175 && (r >> 30) % 8)
                v &= 0x03;
            if ((port == 0x1f6 || port == 0x176) && (r >> 30) % 8)
                v = 0xe0;
            if ((port == 0x1f0 || port == 0x170) && size == 1)
                size = 2;
            dm_io_write(f->pio, port, size, v);
        } else if (what < 75) {
            uint64_t got;
            dm_io_read(f->pio, port, size, &got);
        } else if (what < 80) {
            /* A PRD table: entries in guest RAM, or wild. */
            for (unsigned k = 0; k < 4; k++) {
                uint64_t a = rnd(&x);
                prd(f, k, (a & 1) ? (uint32_t)a : BUF + (uint32_t)(a % 0x8000),
                    (uint32_t)(a >> 32), (a >> 40) % 4 == 0);
            }
            outl(f, BMDMA + 4, PRDT);
        } else if (what < 92) {
            int st;
            rs_process_requests(f->vm, &st);
            dm_loop_iterate(f->loop, 0);
        } else if (what < 96) {
            if (rs_is_live(f->vm))
                rs_vm_stop(f->vm, RS_PAUSED, &e);
            else
                rs_cont(f->vm, &e);
        } else if (what < 98) {
            uint8_t *buf;
            size_t len;
            if (dm_state_save_mem(f->state, &buf, &len, err, sizeof(err)) == 0) {
                if (!rs_is_live(f->vm) && dm_state_load_mem(f->state, buf, len, err, sizeof(err)) != 0)
                    fail_msg("a state the device saved does not load: %s", err);
                free(buf);
            }
        } else {
            outb(f, (r >> 8) & 1 ? CTL : 0x376, 0x04);
            outb(f, (r >> 8) & 1 ? CTL : 0x376, 0x00);
        }
    }
    dm_blk_stats a, c;
    dm_blk_get_stats(dm_disks_blk(f->disks, 0), &a);
    dm_blk_get_stats(dm_disks_blk(f->disks, 1), &c);
    printf("storm: hda %llu reads %llu writes %llu flushes, hdc %llu/%llu/%llu, %u interrupts\n",
           (unsigned long long)a.reads, (unsigned long long)a.writes,
           (unsigned long long)a.flushes, (unsigned long long)c.reads,
           (unsigned long long)c.writes, (unsigned long long)c.flushes,
           f->raises[14] + f->raises[15]);
    /* The storm reached the I/O paths, not only the registers. */
    assert_true(a.reads + a.writes > 0 && c.reads + c.writes > 0);
    /* Back to normal: running, both channels reset, a DMA round trip. */
    if (!rs_is_live(f->vm))
        rs_cont(f->vm, &e);
    settle(f, true);
    if (!rs_is_live(f->vm))
        assert_int_equal(rs_cont(f->vm, &e), 0);
    outb(f, BMDMA, 0);
    outb(f, CTL, 0x04);
    outb(f, CTL, 0x00);
    outb(f, 0x376, 0x04);
    outb(f, 0x376, 0x00);
    f->level[14] = false;
    fill(f, BUF, 0x44, 1024);
    prd(f, 0, BUF, 1024, true);
    dma_command(f, true, 100, 2);
    assert_true(step_until(f, irq_raised, true));
    ack(f);
    image_has(f, 100, 0x44, 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cont_races_pending_stop, setup_twice, teardown),
        cmocka_unit_test_setup_teardown(test_latched_while_paused, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_prd_short_and_fault, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_device_reset_discards_parked_flush, setup_flush,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_state_refuses_other_layout, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_disk_specs_refused, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_lock_released_after_save_and_retaken, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_srst_releases_io_error_hold, setup_once, teardown),
        cmocka_unit_test_setup_teardown(test_random_register_storm, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_machine_reset_discards_parked, setup_once, teardown),
        cmocka_unit_test_setup_teardown(test_retry_granularity, setup_granularity, teardown),
    };
    /* qemu-xen: the cases that stop, continue or reset the VM, with QMP */
    const struct CMUnitTest qmp_tests[] = {
        cmocka_unit_test_setup_teardown(test_cont_races_pending_stop, setup_twice, teardown),
        cmocka_unit_test_setup_teardown(test_latched_while_paused, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_lock_released_after_save_and_retaken, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_machine_reset_discards_parked, setup_once, teardown),
        cmocka_unit_test_setup_teardown(test_retry_granularity, setup_granularity, teardown),
    };
    int failed = cmocka_run_group_tests_name("traditional", tests, NULL, NULL);
    qmp_dialect = true;
    return failed + cmocka_run_group_tests_name("qemu-xen", qmp_tests, NULL, NULL);
}
