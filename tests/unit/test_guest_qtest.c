/*
 * The guest drivers against QEMU's own devices through qtest: the firmware
 * PCI pass on i440FX/PIIX3 (and its refusal on Q35, like hvmloader), the
 * 16550 with a numbered byte stream both ways, ATA PIO and bus-master DMA on
 * PIIX3 IDE with SRST and FLUSH, and the image file checked afterwards.
 * Skipped (exit 77) only when qemu-system-x86_64 is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>

#include "guest_ahci.h"
#include "guest_diskload.h"
#include "guest_fw.h"
#include "guest_ide.h"
#include "guest_pm.h"
#include "guest_qtest.h"
#include "guest_uart.h"

#define DISK_SECTORS 8192u

struct fx {
    char dir[64];
    char disk[128];
    char serial[128];
    int serial_lfd, serial_fd;
    struct guest_bus bus;
    bool open;
};

static int make_dir(struct fx *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/guest-qtest-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->disk, sizeof(f->disk), "%s/disk.img", f->dir);
    snprintf(f->serial, sizeof(f->serial), "%s/com1.out", f->dir);
    int fd = open(f->disk, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)DISK_SECTORS * 512) < 0)
        return -1;
    close(fd);
    return 0;
}

static int start(struct fx *f, const char *machine, bool serial)
{
    struct guest_qtest_cfg cfg = {
        .machine = machine, .disk = f->disk, .workdir = f->dir,
        .serial_file = serial ? f->serial : NULL,
    };
    f->serial_lfd = f->serial_fd = -1;
    char err[512];
    if (guest_qtest_open(&f->bus, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    f->open = true;
    return 0;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(make_dir(f), 0);
    f->serial_lfd = f->serial_fd = -1;
    *state = f;
    return 0;
}

static void stop(struct fx *f)
{
    if (f->open)
        guest_bus_close(&f->bus);
    f->open = false;
    if (f->serial_fd >= 0)
        close(f->serial_fd);
    if (f->serial_lfd >= 0)
        close(f->serial_lfd);
    f->serial_fd = f->serial_lfd = -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    stop(f);
    unlink(f->disk);
    unlink(f->serial);
    rmdir(f->dir);
    free(f);
    return 0;
}

#define BUS_OK(f, call)                                                        \
    do {                                                                       \
        if ((call) < 0)                                                        \
            fail_msg("%s: %s", #call, guest_bus_error(&(f)->bus));             \
    } while (0)

static void test_fw_scan_pc(void **state)
{
    struct fx *f = *state;
    assert_int_equal(start(f, "pc", false), 0);
    struct guest_fw fw;
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, true));
    const struct guest_pci_dev *isa = guest_fw_find(&fw, 0x8086, 0x7000);
    assert_non_null(isa);
    assert_int_equal(isa->bdf, GUEST_BDF(0, 1, 0));
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x1237));  /* i440FX host bridge */
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x7113));  /* PIIX4 PM */
    const struct guest_pci_dev *ide = guest_fw_find(&fw, 0x8086, 0x7010);
    assert_non_null(ide);
    assert_true(ide->bar_io[4]);
    assert_int_equal(ide->bar_size[4], 16);
    assert_true(ide->bar[4] >= 0xc000 && ide->bar[4] % 16 == 0);
    /* The addresses really decode: BMDMA status is not all-ones. */
    uint8_t v;
    BUS_OK(f, guest_inb(&f->bus, (uint16_t)(ide->bar[4] + 2), &v));
    assert_int_not_equal(v, 0xff);
    /* Command register has I/O and bus mastering on. */
    uint32_t cmd;
    BUS_OK(f, guest_pci_read(&f->bus, ide->bdf, 4, 2, &cmd));
    assert_int_equal(cmd & 5, 5);
    /* The PIRQ routing hvmloader programs is in the ISA bridge. */
    uint32_t route;
    BUS_OK(f, guest_pci_read(&f->bus, GUEST_BDF(0, 1, 0), 0x60, 4, &route));
    assert_int_equal(route, 0x050b0a05);
    /* Nothing at an empty slot: all-ones vendor, counted. */
    uint32_t id;
    uint64_t ones = f->bus.all_ones_reads;
    BUS_OK(f, guest_pci_read(&f->bus, GUEST_BDF(0, 0x1e, 0), 0, 4, &id));
    assert_int_equal(id, 0xffffffffu);
    assert_int_equal(f->bus.all_ones_reads, ones + 1);
}

static void test_fw_refuses_q35(void **state)
{
    struct fx *f = *state;
    assert_int_equal(start(f, "q35", false), 0);
    struct guest_fw fw;
    assert_int_equal(guest_fw_scan(&f->bus, &fw, true), -1);
    assert_non_null(strstr(guest_bus_error(&f->bus), "8086:7000"));
    /* SeaBIOS-style (no PIIX3 requirement) scans Q35 and finds ICH9 AHCI. */
    f->bus.err[0] = '\0';
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, false));
    const struct guest_pci_dev *ahci = guest_fw_find(&fw, 0x8086, 0x2922);
    assert_non_null(ahci);
    assert_int_equal(ahci->bdf, GUEST_BDF(0, 0x1f, 2));
    assert_false(ahci->bar_io[5]);
    assert_true(ahci->bar[5] >= 0xf0000000u);
}

static void test_uart_numbered_stream(void **state)
{
    struct fx *f = *state;
    assert_int_equal(start(f, "pc", true), 0);
    struct guest_uart u;
    BUS_OK(f, guest_uart_init(&u, &f->bus, 0x3f8));
    /* Guest -> host: 2000 numbered bytes, all arrive in order. */
    enum { N = 2000 };
    for (unsigned i = 0; i < N; i++)
        BUS_OK(f, guest_uart_put(&u, (uint8_t)(i * 7 + 3)));
    assert_int_equal(u.timeouts, 0);
    /* QEMU has written every byte to the file once it has exited. */
    stop(f);
    int fd = open(f->serial, O_RDONLY);
    assert_true(fd >= 0);
    static uint8_t got[N + 1];
    assert_int_equal(read(fd, got, sizeof(got)), N);
    close(fd);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(got[i], (uint8_t)(i * 7 + 3));
    /* TODO(next session): host -> guest through a socket chardev. */
}

static void fill_pattern(uint8_t *buf, uint32_t lba, unsigned count, uint32_t tag)
{
    for (unsigned s = 0; s < count; s++)
        for (unsigned i = 0; i < 512; i++)
            buf[s * 512 + i] = (uint8_t)((lba + s) * 131 + i * 7 + tag);
}

static void test_ide_pio_dma(void **state)
{
    struct fx *f = *state;
    assert_int_equal(start(f, "pc", false), 0);
    struct guest_fw fw;
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, true));
    struct guest_ide d;
    BUS_OK(f, guest_ide_init(&d, &f->bus, &fw));
    assert_int_equal(d.sectors, DISK_SECTORS);
    assert_non_null(strstr(d.model, "QEMU"));

    static uint8_t out[GUEST_IDE_MAX_SECTORS * 512], in[GUEST_IDE_MAX_SECTORS * 512];
    uint64_t irqs = guest_irq_count(&f->bus, 14);
    /* PIO write 4 sectors at 100, read back by PIO and by DMA. */
    fill_pattern(out, 100, 4, 1);
    BUS_OK(f, guest_ide_pio(&d, true, 100, 4, out));
    memset(in, 0, sizeof(in));
    BUS_OK(f, guest_ide_pio(&d, false, 100, 4, in));
    assert_memory_equal(in, out, 4 * 512);
    memset(in, 0, sizeof(in));
    BUS_OK(f, guest_ide_dma(&d, false, 100, 4, in));
    assert_memory_equal(in, out, 4 * 512);
    /* One interrupt per PIO sector (write: 4, read: 4) and one per DMA. */
    assert_true(guest_irq_count(&f->bus, 14) >= irqs + 9);

    /* DMA writes, full 64 KiB PRD, then read back by PIO and DMA. */
    for (uint32_t lba = 1000; lba < 1000 + 4 * GUEST_IDE_MAX_SECTORS; lba += GUEST_IDE_MAX_SECTORS) {
        fill_pattern(out, lba, GUEST_IDE_MAX_SECTORS, 2);
        BUS_OK(f, guest_ide_dma(&d, true, lba, GUEST_IDE_MAX_SECTORS, out));
    }
    fill_pattern(out, 1000, GUEST_IDE_MAX_SECTORS, 2);
    BUS_OK(f, guest_ide_dma(&d, false, 1000, GUEST_IDE_MAX_SECTORS, in));
    assert_memory_equal(in, out, GUEST_IDE_MAX_SECTORS * 512);
    BUS_OK(f, guest_ide_pio(&d, false, 1000, 2, in));
    assert_memory_equal(in, out, 2 * 512);
    BUS_OK(f, guest_ide_flush(&d));

    /* SRST in the middle: the disk answers again, data intact. */
    BUS_OK(f, guest_ide_srst(&d));
    uint16_t id[256];
    BUS_OK(f, guest_ide_identify(&d, id));
    BUS_OK(f, guest_ide_dma(&d, false, 100, 4, in));
    fill_pattern(out, 100, 4, 1);
    assert_memory_equal(in, out, 4 * 512);

    /* Out-of-range requests are refused by the driver, not sent. */
    assert_int_equal(guest_ide_dma(&d, false, DISK_SECTORS - 1, 2, in), -1);
    assert_int_equal(d.timeouts, 0);
    assert_int_equal(d.errors, 0);
    stop(f);

    /* The image file holds what was acknowledged and flushed. */
    int fd = open(f->disk, O_RDONLY);
    assert_true(fd >= 0);
    for (uint32_t lba = 1000; lba < 1000 + 4 * GUEST_IDE_MAX_SECTORS; lba += GUEST_IDE_MAX_SECTORS) {
        fill_pattern(out, lba, GUEST_IDE_MAX_SECTORS, 2);
        assert_int_equal(pread(fd, in, GUEST_IDE_MAX_SECTORS * 512, (off_t)lba * 512),
                         GUEST_IDE_MAX_SECTORS * 512);
        assert_memory_equal(in, out, GUEST_IDE_MAX_SECTORS * 512);
    }
    fill_pattern(out, 100, 4, 1);
    assert_int_equal(pread(fd, in, 4 * 512, 100 * 512), 4 * 512);
    assert_memory_equal(in, out, 4 * 512);
    close(fd);
}

static void test_ahci_dma_ncq(void **state)
{
    struct fx *f = *state;
    assert_int_equal(start(f, "q35", false), 0);
    struct guest_fw fw;
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, false));
    struct guest_ahci h;
    BUS_OK(f, guest_ahci_init(&h, &f->bus, &fw));
    assert_int_equal(h.sectors, DISK_SECTORS);
    assert_int_equal(h.nslots, 32);
    assert_true(h.ncq);

    static uint8_t out[32][16 * 512], in[32][16 * 512];
    fill_pattern(out[0], 50, 16, 5);
    BUS_OK(f, guest_ahci_rw(&h, true, 50, 16, out[0]));
    BUS_OK(f, guest_ahci_rw(&h, false, 50, 16, in[0]));
    assert_memory_equal(in[0], out[0], 16 * 512);

    /* 32 tags in flight: writes to disjoint ranges, then reads of them. */
    struct guest_ahci_io io[32];
    for (unsigned t = 0; t < 32; t++) {
        uint32_t lba = 2000 + t * 16;
        fill_pattern(out[t], lba, 16, 9);
        io[t] = (struct guest_ahci_io){ .write = true, .lba = lba, .count = 16, .buf = out[t] };
    }
    BUS_OK(f, guest_ahci_ncq(&h, io, 32));
    for (unsigned t = 0; t < 32; t++)
        io[t] = (struct guest_ahci_io){ .write = false, .lba = 2000 + t * 16, .count = 16,
                                        .buf = in[31 - t] };
    BUS_OK(f, guest_ahci_ncq(&h, io, 32));
    for (unsigned t = 0; t < 32; t++)
        assert_memory_equal(in[31 - t], out[t], 16 * 512);
    BUS_OK(f, guest_ahci_flush(&h));

    /* COMRESET, then the disk still answers with the same data. */
    BUS_OK(f, guest_ahci_comreset(&h));
    BUS_OK(f, guest_ahci_rw(&h, false, 2000, 16, in[0]));
    assert_memory_equal(in[0], out[0], 16 * 512);
    assert_int_equal(guest_ahci_rw(&h, false, DISK_SECTORS - 1, 2, in[0]), -1);
    assert_int_equal(h.timeouts, 0);
    assert_int_equal(h.errors, 0);
    stop(f);

    int fd = open(f->disk, O_RDONLY);
    assert_true(fd >= 0);
    for (unsigned t = 0; t < 32; t++) {
        assert_int_equal(pread(fd, in[0], 16 * 512, (off_t)(2000 + t * 16) * 512), 16 * 512);
        assert_memory_equal(in[0], out[t], 16 * 512);
    }
    close(fd);
}

static void test_pm_reset_s5(void **state)
{
    struct fx *f = *state;
    assert_int_equal(start(f, "pc", false), 0);
    struct guest_fw fw;
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, true));
    struct guest_pm pm;
    BUS_OK(f, guest_pm_init(&pm, &f->bus, &fw));
    const struct guest_pci_dev *ide = guest_fw_find(&fw, 0x8086, 0x7010);
    assert_non_null(ide);
    uint32_t cmd;
    BUS_OK(f, guest_pci_read(&f->bus, ide->bdf, 4, 2, &cmd));
    assert_int_not_equal(cmd & 5, 0);
    /* 0xCF9 reset: the machine resets asynchronously in QEMU's main loop;
     * wait (bounded) until the IDE function's command register is back
     * to its reset value. */
    BUS_OK(f, guest_reset_cf9(&f->bus));
    bool reset = false;
    for (int i = 0; i < 100000 && !reset; i++) {
        BUS_OK(f, guest_pci_read(&f->bus, ide->bdf, 4, 2, &cmd));
        reset = (cmd & 5) == 0;
    }
    assert_true(reset);
    /* Firmware again after the reset, then S5: QEMU powers off and the
     * connection closes. */
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, true));
    BUS_OK(f, guest_pm_init(&pm, &f->bus, &fw));
    BUS_OK(f, guest_pm_sleep(&pm, 0));
    uint8_t v;
    int r = 0;
    for (int i = 0; i < 100000 && r == 0; i++)
        r = guest_inb(&f->bus, 0x3f6, &v);
    assert_int_equal(r, -1);
    printf("after S5: %s\n", guest_bus_error(&f->bus));
    assert_non_null(strstr(guest_bus_error(&f->bus), "qtest: "));
}

/* The workload runner's checked disk load against QEMU's devices: random
 * sizes (and NCQ batches on AHCI) in two parts as two vCPUs use them, then
 * the full read-back: nothing lost, nothing stale, no re-init. */
static void run_diskload(struct fx *f, struct guest_diskload *l, unsigned steps)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct guest_check chk;
    BUS_OK(f, guest_check_init(&chk, &f->bus, 2048));
    l->chk = &chk;
    l->lock = &lock;
    uint8_t *buf = malloc(GUEST_DISKLOAD_BUF);
    assert_non_null(buf);
    uint64_t rng[2] = { 0x1234567, 0x89abcdef };
    for (unsigned i = 0; i < steps; i++)
        BUS_OK(f, guest_diskload_step(l, &f->bus, i % 2, 2, &rng[i % 2], buf, NULL));
    for (unsigned part = 0; part < 2; part++)
        BUS_OK(f, guest_diskload_verify(l, &f->bus, part, 2, buf));
    free(buf);
    struct guest_check_counters c;
    guest_check_snapshot(&chk, &c);
    printf("diskload: %llu sector writes, %llu sector reads\n", (unsigned long long)c.writes,
           (unsigned long long)c.reads);
    assert_true(c.writes >= steps);
    assert_true(c.reads >= c.writes + 2048);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
    assert_int_equal(c.reinits, 0);
    assert_int_equal(c.flushes, 2);
    guest_check_destroy(&chk);
}

static void diskload_on(struct fx *f, bool ahci, unsigned qd, unsigned size_max,
                        unsigned steps)
{
    assert_int_equal(start(f, ahci ? "q35" : "pc", false), 0);
    struct guest_fw fw;
    BUS_OK(f, guest_fw_scan(&f->bus, &fw, !ahci));
    struct guest_ide d;
    struct guest_ahci h;
    struct guest_diskload l = { .qd = qd, .size_min = 1, .size_max = size_max };
    if (ahci) {
        BUS_OK(f, guest_ahci_init(&h, &f->bus, &fw));
        l.ahci = &h;
    } else {
        BUS_OK(f, guest_ide_init(&d, &f->bus, &fw));
        l.ide = &d;
    }
    run_diskload(f, &l, steps);
}

static void test_diskload_ide(void **state)
{
    diskload_on(*state, false, 1, 128, 200);
}

static void test_diskload_ahci_ncq(void **state)
{
    diskload_on(*state, true, 8, 16, 100);
}

int main(void)
{
    if (!guest_qtest_find_qemu()) {
        printf("skip: qemu-system-x86_64 is not installed (qemu-system-x86)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fw_scan_pc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fw_refuses_q35, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uart_numbered_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ide_pio_dma, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ahci_dma_ncq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pm_reset_s5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diskload_ide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diskload_ahci_ncq, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
