/*
 * dm_ioreq, rsdm's ioreq server, against the simulated hypervisor (in this
 * process, through the same Xen library calls rsdm-sim links): port, MMIO
 * and PCI-config requests reach the dm's I/O spaces; rep ins/outs and rep
 * movs move data through guest RAM across page boundaries; unclaimed
 * accesses read all-ones; INVALIDATE drops the map cache; TIMEOFFSET comes
 * through the buffered ring; a request whose notification was lost is
 * answered by the scan; teardown leaves Xen's null handler in place.
 *
 * The dm side runs on its own thread (as rsdm's main loop); the test thread
 * is the guest's vCPU, blocking in each access like a trapped vCPU.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/xsim_emu.h"
#include "dm_guestmem.h"
#include "dm_io.h"
#include "dm_ioreq.h"
#include "dm_xen.h"
#include "hv.h"

#define SCRATCH_PORT 0x510          /* a 4-byte register file */
#define FIFO_PORT 0x514             /* reads count up, writes are recorded */
#define HOLE_PORT 0x520             /* registered with Xen, no device behind it */
#define MMIO_BASE 0xfe000000u
#define MMIO_SIZE 0x2000u
#define SCAN_MS 20                  /* the dm thread's scan period (rsdm: 100 ms) */
#define WAIT_MS 5000

typedef struct fixture {
    uint32_t dom;
    struct hv_domain *d;
    uint8_t *ram;
    uint64_t ram_size;
    dm_xen xen;
    dm_guestmem *gm;
    dm_io_space *pio, *mmio;
    dm_ioreq *io;
    pthread_t thread;
    int stop_fd, timeoffset_fd;
    int64_t timeoffset;
    uint8_t scratch[4];
    uint8_t counter;
    uint8_t written[64];
    size_t nwritten;
    uint8_t mmio_mem[MMIO_SIZE];
} fixture;

/* ------------------------------------------------------------ devices */

static uint64_t scratch_read(void *opaque, uint64_t off, unsigned size)
{
    fixture *f = opaque;
    uint64_t v = 0;
    memcpy(&v, f->scratch + off, size);
    return v;
}

static void scratch_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    fixture *f = opaque;
    memcpy(f->scratch + off, &value, size);
}

static uint64_t fifo_read(void *opaque, uint64_t off, unsigned size)
{
    fixture *f = opaque;
    return f->counter++;
}

static void fifo_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    fixture *f = opaque;
    if (f->nwritten < sizeof(f->written))
        f->written[f->nwritten++] = (uint8_t)value;
}

static uint64_t mem_read(void *opaque, uint64_t off, unsigned size)
{
    fixture *f = opaque;
    uint64_t v = 0;
    memcpy(&v, f->mmio_mem + off, size);
    return v;
}

static void mem_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
    fixture *f = opaque;
    memcpy(f->mmio_mem + off, &value, size);
}

static const dm_io_ops scratch_ops = { .read = scratch_read, .write = scratch_write };
static const dm_io_ops fifo_ops = { .read = fifo_read, .write = fifo_write };
static const dm_io_ops mem_ops = { .read = mem_read, .write = mem_write };

/* ------------------------------------------------------------ dispatch */

static int on_pio(void *opaque, uint64_t port, unsigned size, bool write, uint64_t *data)
{
    fixture *f = opaque;
    return write ? dm_io_write(f->pio, port, size, *data) : dm_io_read(f->pio, port, size, data);
}

static int on_mmio(void *opaque, uint64_t addr, unsigned size, bool write, uint64_t *data)
{
    fixture *f = opaque;
    return write ? dm_io_write(f->mmio, addr, size, *data) : dm_io_read(f->mmio, addr, size, data);
}

/* One PCI function, 00:03.0, with a vendor/device id and nothing else. */
static int on_pci(void *opaque, uint32_t sbdf, uint32_t reg, unsigned size, bool write,
                  uint64_t *data)
{
    if (sbdf != (3u << 3))
        return -ENOENT;
    if (!write) {
        uint32_t cfg = 0x12345853;      /* device 0x1234, vendor 0x5853 */
        *data = reg < 4 ? (cfg >> (8 * reg)) & ((1ull << (8 * size)) - 1) : 0;
    }
    return 0;
}

static void on_timeoffset(void *opaque, int64_t offset)
{
    fixture *f = opaque;
    f->timeoffset = offset;
    uint64_t one = 1;
    assert_int_equal(write(f->timeoffset_fd, &one, sizeof(one)), sizeof(one));
}

static const dm_ioreq_ops ops = {
    .pio = on_pio, .mmio = on_mmio, .pci_config = on_pci, .timeoffset = on_timeoffset,
};

/* The dm's main loop, reduced to what dm_ioreq needs: the event channel fd
 * and a periodic rescue pass, as rsdm's scan timer. */
static void *dm_thread(void *arg)
{
    fixture *f = arg;
    struct pollfd p[2] = { { dm_ioreq_fd(f->io), POLLIN, 0 }, { f->stop_fd, POLLIN, 0 } };
    for (;;) {
        int n = poll(p, 2, SCAN_MS);
        if (n < 0 && errno != EINTR)
            return (void *)1;
        if (p[1].revents)
            return NULL;
        if (n > 0 && (p[0].revents & POLLIN)) {
            if (dm_ioreq_handle(f->io) < 0)
                return (void *)1;
        } else if (n == 0 && dm_ioreq_rescue(f->io) < 0) {
            return (void *)1;
        }
    }
}

/* The dm thread owns dm_ioreq and the devices; the test looks at them only
 * after joining it (a join orders everything the thread did before). */
static void dm_thread_start(fixture *f)
{
    uint64_t v;
    while (read(f->stop_fd, &v, sizeof(v)) == sizeof(v))
        ;
    assert_int_equal(pthread_create(&f->thread, NULL, dm_thread, f), 0);
}

static void dm_thread_stop(fixture *f)
{
    uint64_t one = 1;
    assert_int_equal(write(f->stop_fd, &one, sizeof(one)), sizeof(one));
    void *ret;
    pthread_join(f->thread, &ret);
    assert_null(ret);
}

/* Look at the dm's side: stop its thread, copy what the test checks, go on. */
static void dm_sync(fixture *f)
{
    dm_thread_stop(f);
    dm_thread_start(f);
}

/* ------------------------------------------------------------ set-up */

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    if (xsim_fixture_start() < 0)
        return -1;
    hv_log_quiet(true);
    int id = hv_domain_create(0, 2, 16, "ioreq-test");
    assert_true(id > 0);
    f.dom = (uint32_t)id;
    f.d = hv_domain_get(f.dom);
    f.ram = hv_domain_ram(f.d, &f.ram_size);
    assert_non_null(f.ram);

    char err[256] = "";
    assert_int_equal(dm_xen_open(&f.xen, (domid_t)f.dom, err, sizeof(err)), 0);
    assert_non_null(f.gm = dm_guestmem_new(&f.xen));
    assert_non_null(f.pio = dm_io_space_new(DM_IO_PORT));
    assert_non_null(f.mmio = dm_io_space_new(DM_IO_MMIO));
    assert_int_equal(dm_io_register(f.pio, "scratch", SCRATCH_PORT, 4, &scratch_ops, &f, NULL), 0);
    assert_int_equal(dm_io_register(f.pio, "fifo", FIFO_PORT, 1, &fifo_ops, &f, NULL), 0);
    assert_int_equal(dm_io_register(f.mmio, "mem", MMIO_BASE, MMIO_SIZE, &mem_ops, &f, NULL), 0);

    assert_int_equal(dm_ioreq_create(&f.io, &f.xen, f.gm, &ops, &f, err, sizeof(err)), 0);
    assert_int_equal(dm_ioreq_nr_vcpus(f.io), 2);
    assert_int_equal(dm_ioreq_map_range(f.io, false, SCRATCH_PORT, FIFO_PORT), 0);
    assert_int_equal(dm_ioreq_map_range(f.io, false, HOLE_PORT, HOLE_PORT + 3), 0);
    assert_int_equal(dm_ioreq_map_range(f.io, true, MMIO_BASE, MMIO_BASE + MMIO_SIZE - 1), 0);
    assert_int_equal(dm_ioreq_map_pcidev(f.io, 0, 3, 0), 0);
    /* Xen's overlap rule reaches us as an error, not a crash. */
    assert_int_equal(dm_ioreq_map_range(f.io, false, SCRATCH_PORT, SCRATCH_PORT), -EEXIST);
    assert_int_equal(dm_ioreq_enable(f.io, err, sizeof(err)), 0);

    f.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f.timeoffset_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(f.stop_fd >= 0 && f.timeoffset_fd >= 0);
    dm_thread_start(&f);
    assert_int_equal(hv_domain_unpause(f.dom), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    dm_thread_stop(f);
    dm_ioreq_destroy(f->io);
    /* With the server gone, the range is back with Xen's null handler. */
    uint64_t v = 0;
    assert_int_equal(xsim_pio(f->d, 0, false, SCRATCH_PORT, 4, &v), 0);
    assert_int_equal(v, 0xffffffffu);
    dm_io_space_free(f->mmio);
    dm_io_space_free(f->pio);
    dm_guestmem_free(f->gm);
    dm_xen_close(&f->xen);
    close(f->stop_fd);
    close(f->timeoffset_fd);
    hv_domain_put(f->d);
    hv_domain_destroy(f->dom);
    xsim_fixture_stop();
    return 0;
}

/* A rep access with its buffer in guest RAM. */
static int rep(fixture *f, uint8_t type, bool read, uint64_t addr, uint64_t gpa, uint32_t count,
               bool df)
{
    ioreq_t req;
    memset(&req, 0, sizeof(req));
    req.type = type;
    req.addr = addr;
    req.size = 1;
    req.count = count;
    req.dir = read ? IOREQ_READ : IOREQ_WRITE;
    req.df = df;
    req.data_is_ptr = 1;
    req.data = gpa;
    return hv_vcpu_io(f->d, 1, &req, WAIT_MS);
}

/* ------------------------------------------------------------ tests */

static void test_port_sizes(void **state)
{
    fixture *f = *state;
    uint64_t v = 0xa1b2c3d4;
    assert_int_equal(xsim_pio(f->d, 0, true, SCRATCH_PORT, 4, &v), 0);
    v = 0;
    assert_int_equal(xsim_pio(f->d, 1, false, SCRATCH_PORT, 4, &v), 0);
    assert_int_equal(v, 0xa1b2c3d4);
    assert_int_equal(xsim_pio(f->d, 0, false, SCRATCH_PORT + 1, 1, &v), 0);
    assert_int_equal(v, 0xc3);
    assert_int_equal(xsim_pio(f->d, 0, false, SCRATCH_PORT + 2, 2, &v), 0);
    assert_int_equal(v, 0xa1b2);
    dm_sync(f);
    dm_ioreq_stats s;
    dm_ioreq_get_stats(f->io, &s);
    assert_int_equal(s.pio, 4);
}

static void test_unclaimed_reads_all_ones(void **state)
{
    fixture *f = *state;
    uint64_t v = 0;
    /* Registered with Xen, but no device in the dm: the dm answers all-ones. */
    assert_int_equal(xsim_pio(f->d, 0, false, HOLE_PORT, 2, &v), 0);
    assert_int_equal(v, 0xffff);
    v = 0x55;
    assert_int_equal(xsim_pio(f->d, 0, true, HOLE_PORT, 1, &v), 0);
    dm_sync(f);
    dm_ioreq_stats s;
    dm_ioreq_get_stats(f->io, &s);
    assert_int_equal(s.unclaimed, 2);
}

static void test_rep_ins_outs_across_a_page(void **state)
{
    fixture *f = *state;
    /* rep insb: 8 bytes from the counting port into RAM at 0x1ffc..0x2003. */
    memset(f->ram + 0x1ff0, 0xee, 32);
    assert_int_equal(rep(f, IOREQ_TYPE_PIO, true, FIFO_PORT, 0x1ffc, 8, false), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(f->ram[0x1ffc + i], i);
    assert_int_equal(f->ram[0x1ffb], 0xee);
    assert_int_equal(f->ram[0x2004], 0xee);

    /* rep outsb backwards (df=1) from RAM across the same boundary. */
    for (int i = 0; i < 6; i++)
        f->ram[0x3ffd + i] = (uint8_t)(0x40 + i);
    assert_int_equal(rep(f, IOREQ_TYPE_PIO, false, FIFO_PORT, 0x4002, 6, true), 0);
    dm_sync(f);
    assert_int_equal(f->nwritten, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(f->written[i], 0x45 - i);
}

static void test_rep_movs_mmio_across_a_page(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 16; i++)
        f->ram[0x5ff8 + i] = (uint8_t)(0x80 + i);
    /* RAM -> MMIO (a write: the device reads guest RAM). */
    assert_int_equal(rep(f, IOREQ_TYPE_COPY, false, MMIO_BASE + 0xff8, 0x5ff8, 16, false), 0);
    dm_sync(f);
    for (int i = 0; i < 16; i++)
        assert_int_equal(f->mmio_mem[0xff8 + i], 0x80 + i);
    /* MMIO -> RAM. */
    memset(f->ram + 0x7ff0, 0, 32);
    assert_int_equal(rep(f, IOREQ_TYPE_COPY, true, MMIO_BASE + 0xff8, 0x7ffc, 16, false), 0);
    dm_sync(f);
    assert_memory_equal(f->ram + 0x7ffc, f->mmio_mem + 0xff8, 16);
    uint64_t v = 0;
    assert_int_equal(xsim_mmio(f->d, 0, false, MMIO_BASE + 0xff8, 8, &v), 0);
    assert_int_equal(v, 0x8786858483828180ull);
}

static void test_pci_config_through_cf8_cfc(void **state)
{
    fixture *f = *state;
    uint64_t v = 0;
    assert_int_equal(xsim_pci_cfg(f->d, 0, false, 0, 3, 0, 0, 4, &v), 0);
    assert_int_equal(v, 0x12345853);
    assert_int_equal(xsim_pci_cfg(f->d, 0, false, 0, 3, 0, 2, 2, &v), 0);
    assert_int_equal(v, 0x1234);
    /* A function nobody registered: Xen's all-ones, the dm never asked. */
    assert_int_equal(xsim_pci_cfg(f->d, 0, false, 0, 4, 0, 0, 4, &v), 0);
    assert_int_equal(v, 0xffffffffu);
    dm_sync(f);
    dm_ioreq_stats s;
    dm_ioreq_get_stats(f->io, &s);
    assert_int_equal(s.pci_config, 2);
}

static void test_invalidate_drops_the_map_cache(void **state)
{
    fixture *f = *state;
    assert_int_equal(rep(f, IOREQ_TYPE_PIO, true, FIFO_PORT, 0x9000, 4, false), 0);
    dm_sync(f);
    dm_guestmem_stats before;
    dm_guestmem_get_stats(f->gm, &before);
    assert_int_equal(hv_vcpu_invalidate(f->d, 0, WAIT_MS), 0);
    /* The next guest-RAM access maps again, and still lands right. */
    assert_int_equal(rep(f, IOREQ_TYPE_PIO, true, FIFO_PORT, 0x9004, 4, false), 0);
    dm_sync(f);
    dm_guestmem_stats after;
    dm_guestmem_get_stats(f->gm, &after);
    assert_int_equal(after.maps, before.maps + 1);
    for (int i = 0; i < 8; i++)
        assert_int_equal(f->ram[0x9000 + i], i);
    dm_sync(f);
    dm_ioreq_stats s;
    dm_ioreq_get_stats(f->io, &s);
    assert_int_equal(s.invalidate, 1);
}

static void test_timeoffset_on_the_buffered_ring(void **state)
{
    fixture *f = *state;
    assert_int_equal(hv_send_timeoffset(f->dom, (uint64_t)-3600), 0);
    struct pollfd p = { f->timeoffset_fd, POLLIN, 0 };
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    dm_sync(f);
    assert_int_equal(f->timeoffset, -3600);
}

static void test_lost_notification_is_answered_by_the_scan(void **state)
{
    fixture *f = *state;
    assert_int_equal(hv_fault_drop_events(f->dom, 0, 1), 0);
    uint64_t v = 0x77;
    assert_int_equal(xsim_pio(f->d, 0, true, SCRATCH_PORT, 1, &v), 0);
    v = 0;
    assert_int_equal(xsim_pio(f->d, 0, false, SCRATCH_PORT, 1, &v), 0);
    assert_int_equal(v, 0x77);
    dm_sync(f);
    dm_ioreq_stats s;
    dm_ioreq_get_stats(f->io, &s);
    assert_int_equal(s.rescued, 1);
}

typedef struct pio_op {
    fixture *f;
    uint64_t v;
    int rc;
} pio_op;

static void *pio_write_main(void *arg)
{
    pio_op *o = arg;
    o->rc = xsim_pio(o->f->d, 0, true, SCRATCH_PORT, 1, &o->v);
    return NULL;
}

/* A request whose notification is pending but not handled yet when the
 * rescue pass runs (both ready in one loop iteration) is left to the
 * notification: it is not "answered without a notification". */
static void test_rescue_leaves_a_notified_request_alone(void **state)
{
    fixture *f = *state;
    dm_thread_stop(f);                         /* the test is the dm's loop now */
    pio_op o = { .f = f, .v = 0x5a };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pio_write_main, &o), 0);
    struct pollfd p = { dm_ioreq_fd(f->io), POLLIN, 0 };
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);  /* sent and notified */
    assert_int_equal(dm_ioreq_rescue(f->io), 0);
    assert_int_equal(dm_ioreq_handle(f->io), 1);
    assert_int_equal(dm_ioreq_rescue(f->io), 0);   /* nothing left over */
    pthread_join(t, NULL);
    assert_int_equal(o.rc, 0);
    dm_ioreq_stats s;
    dm_ioreq_get_stats(f->io, &s);
    assert_int_equal(s.rescued, 0);
    assert_int_equal(f->scratch[0], 0x5a);
    dm_thread_start(f);
}

static void test_guest_ram_write_outside_ram_fails_cleanly(void **state)
{
    fixture *f = *state;
    dm_thread_stop(f);       /* dm_guestmem belongs to the dm's thread */
    uint8_t b = 1;
    assert_int_equal(dm_guestmem_write(f->gm, f->ram_size + 0x1000, &b, 1), -EFAULT);
    assert_int_equal(dm_guestmem_write(f->gm, UINT64_MAX, &b, 2), -EFAULT);
    assert_int_equal(dm_guestmem_read(f->gm, 0x1000, &b, 1), 0);
    dm_thread_start(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_port_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unclaimed_reads_all_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rep_ins_outs_across_a_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rep_movs_mmio_across_a_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pci_config_through_cf8_cfc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalidate_drops_the_map_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeoffset_on_the_buffered_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_notification_is_answered_by_the_scan, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rescue_leaves_a_notified_request_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_guest_ram_write_outside_ram_fails_cleanly, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
