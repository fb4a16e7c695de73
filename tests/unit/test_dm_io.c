/*
 * dm_io: registration (overlaps, edges, bad arguments), dispatch by address
 * and size, unclaimed accesses, size masks, listeners (including a refusing
 * one and replay), per-range counters, unregister from inside a callback.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dm_io.h"

/* A device that records its last access and reads back base-relative
 * offsets as a recognisable pattern. */
typedef struct dev {
    uint64_t last_off, last_val;
    unsigned last_size;
    int reads, writes;
    dm_io_space *space;
    dm_io_range *self;          /* unregistered by a write of 0xdead */
} dev;

static uint64_t dev_read(void *opaque, uint64_t off, unsigned size)
{
    dev *d = opaque;
    d->reads++;
    d->last_off = off;
    d->last_size = size;
    return 0x1122334455667788ull + off;    /* more bits than size: dispatch masks */
}

static void dev_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev *d = opaque;
    d->writes++;
    d->last_off = off;
    d->last_val = val;
    d->last_size = size;
    if (val == 0xdead && d->self) {
        dm_io_unregister(d->space, d->self);
        d->self = NULL;
    }
}

static const dm_io_ops dev_ops = { .read = dev_read, .write = dev_write };
static const dm_io_ops dev_ops_byte = { .read = dev_read, .write = dev_write, .sizes = DM_IO_SIZE_1 };

static void test_register_and_overlap(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_PORT);
    dev d = { 0 };
    dm_io_range *r = NULL;
    assert_int_equal(dm_io_register(s, "uart", 0x3f8, 8, &dev_ops, &d, &r), 0);
    assert_non_null(r);
    assert_int_equal(dm_io_range_base(r), 0x3f8);
    assert_int_equal(dm_io_range_len(r), 8);
    assert_string_equal(dm_io_range_name(r), "uart");
    /* Every kind of overlap: inside, across either end, covering, equal. */
    assert_int_equal(dm_io_register(s, "a", 0x3fa, 1, &dev_ops, &d, NULL), -EEXIST);
    assert_int_equal(dm_io_register(s, "b", 0x3f0, 9, &dev_ops, &d, NULL), -EEXIST);
    assert_int_equal(dm_io_register(s, "c", 0x3ff, 2, &dev_ops, &d, NULL), -EEXIST);
    assert_int_equal(dm_io_register(s, "d", 0x300, 0x200, &dev_ops, &d, NULL), -EEXIST);
    assert_int_equal(dm_io_register(s, "e", 0x3f8, 8, &dev_ops, &d, NULL), -EEXIST);
    /* Touching neighbours are fine. */
    assert_int_equal(dm_io_register(s, "below", 0x3f0, 8, &dev_ops, &d, NULL), 0);
    assert_int_equal(dm_io_register(s, "above", 0x400, 8, &dev_ops, &d, NULL), 0);
    assert_int_equal(dm_io_count(s), 3);
    /* Bad arguments. */
    assert_int_equal(dm_io_register(s, "empty", 0x500, 0, &dev_ops, &d, NULL), -EINVAL);
    assert_int_equal(dm_io_register(s, "past", 0xfffe, 4, &dev_ops, &d, NULL), -EINVAL);
    assert_int_equal(dm_io_register(s, "far", 0x10000, 1, &dev_ops, &d, NULL), -EINVAL);
    assert_int_equal(dm_io_register(s, "noops", 0x500, 1, NULL, &d, NULL), -EINVAL);
    dm_io_ops half = { .read = dev_read };
    assert_int_equal(dm_io_register(s, "half", 0x500, 1, &half, &d, NULL), -EINVAL);
    /* The last port is a valid one-byte range. */
    assert_int_equal(dm_io_register(s, "top", 0xffff, 1, &dev_ops, &d, NULL), 0);
    assert_int_equal(dm_io_count(s), 4);
    dm_io_space_free(s);
}

static void test_mmio_edges(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_MMIO);
    dev d = { 0 };
    assert_int_equal(dm_io_register(s, "top", UINT64_MAX - 0xfff, 0x1000, &dev_ops, &d, NULL), 0);
    assert_int_equal(dm_io_register(s, "wrap", UINT64_MAX - 0xf, 0x20, &dev_ops, &d, NULL), -EINVAL);
    uint64_t v;
    assert_int_equal(dm_io_read(s, UINT64_MAX - 7, 8, &v), 0);
    assert_int_equal(d.last_off, 0xff8);
    /* An access wrapping the 64-bit space is refused without a callback. */
    assert_int_equal(dm_io_read(s, UINT64_MAX - 1, 4, &v), -EINVAL);
    assert_int_equal(v, 0xffffffff);
    dm_io_space_stats st;
    dm_io_get_stats(s, &st);
    assert_int_equal(st.bad_size, 1);
    dm_io_space_free(s);
}

static void test_dispatch(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_PORT);
    dev d = { 0 };
    dm_io_range *r;
    assert_int_equal(dm_io_register(s, "dev", 0x100, 0x10, &dev_ops, &d, &r), 0);
    uint64_t v = 0;
    /* Reads are masked to the access size, offsets base-relative. */
    assert_int_equal(dm_io_read(s, 0x104, 1, &v), 0);
    assert_int_equal(v, 0x8c);
    assert_int_equal(d.last_off, 4);
    assert_int_equal(dm_io_read(s, 0x102, 2, &v), 0);
    assert_int_equal(v, 0x778a);
    assert_int_equal(dm_io_read(s, 0x100, 4, &v), 0);
    assert_int_equal(v, 0x55667788);
    assert_int_equal(dm_io_read(s, 0x108, 8, &v), 0);
    assert_true(v == 0x1122334455667790ull);
    /* Writes get the value masked to the size. */
    assert_int_equal(dm_io_write(s, 0x10f, 1, 0xabcd), 0);
    assert_int_equal(d.last_val, 0xcd);
    assert_int_equal(d.last_off, 0xf);
    assert_int_equal(d.last_size, 1);
    /* Unclaimed: below, above, across the end.  All-ones of the size. */
    assert_int_equal(dm_io_read(s, 0xff, 1, &v), -ENOENT);
    assert_int_equal(v, 0xff);
    assert_int_equal(dm_io_read(s, 0x110, 2, &v), -ENOENT);
    assert_int_equal(v, 0xffff);
    assert_int_equal(dm_io_read(s, 0x10e, 4, &v), -ENOENT);
    assert_int_equal(v, 0xffffffff);
    assert_int_equal(dm_io_write(s, 0x10c, 8, 1), -ENOENT);
    /* Bad sizes: 0, 3, 5, 16. */
    int reads = d.reads;
    unsigned bad[] = { 0, 3, 5, 16 };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(dm_io_read(s, 0x100, bad[i], &v), -EINVAL);
        assert_true(v == UINT64_MAX);
        assert_int_equal(dm_io_write(s, 0x100, bad[i], 0), -EINVAL);
    }
    assert_int_equal(d.reads, reads);
    dm_io_space_stats st;
    dm_io_get_stats(s, &st);
    assert_int_equal(st.unclaimed_reads, 3);
    assert_int_equal(st.unclaimed_writes, 1);
    assert_int_equal(st.bad_size, 8);
    dm_io_range_stats rs;
    dm_io_range_get_stats(r, &rs);
    assert_int_equal(rs.reads, 4);
    assert_int_equal(rs.writes, 1);
    dm_io_space_free(s);
}

static void test_size_mask(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_PORT);
    dev d = { 0 };
    dm_io_range *r;
    assert_int_equal(dm_io_register(s, "bytes", 0x60, 4, &dev_ops_byte, &d, &r), 0);
    uint64_t v;
    assert_int_equal(dm_io_read(s, 0x60, 2, &v), 0);       /* claimed, not delivered */
    assert_int_equal(v, 0xffff);
    assert_int_equal(dm_io_write(s, 0x60, 4, 1), 0);
    assert_int_equal(d.reads + d.writes, 0);
    assert_int_equal(dm_io_read(s, 0x61, 1, &v), 0);
    assert_int_equal(d.reads, 1);
    dm_io_range_stats rs;
    dm_io_range_get_stats(r, &rs);
    assert_int_equal(rs.rejected, 2);
    assert_int_equal(rs.reads, 1);
    dm_io_space_free(s);
}

/* A listener that records "+name base len" / "-name" and can refuse. */
typedef struct rec {
    char log[512];
    const char *refuse;          /* refuse adds of this name */
} rec;

static int rec_listener(void *opaque, dm_io_kind kind, bool added, uint64_t base, uint64_t len,
                        const char *name)
{
    rec *r = opaque;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "%s%c%s@%llx+%llx ", dm_io_kind_name(kind),
             added ? '+' : '-', name, (unsigned long long)base, (unsigned long long)len);
    if (added && r->refuse && strcmp(name, r->refuse) == 0)
        return -EIO;
    return 0;
}

static void test_listeners(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_MMIO);
    dev d = { 0 };
    rec a = { .refuse = NULL }, b = { .refuse = "bad" };
    assert_int_equal(dm_io_register(s, "early", 0x1000, 0x100, &dev_ops, &d, NULL), 0);
    assert_int_equal(dm_io_listener_add(s, rec_listener, &a, true), 0);
    assert_string_equal(a.log, "mmio+early@1000+100 ");
    assert_int_equal(dm_io_listener_add(s, rec_listener, &b, false), 0);
    a.log[0] = b.log[0] = 0;
    dm_io_range *r;
    assert_int_equal(dm_io_register(s, "bar", 0x2000, 0x10, &dev_ops, &d, &r), 0);
    assert_string_equal(a.log, "mmio+bar@2000+10 ");
    assert_string_equal(b.log, "mmio+bar@2000+10 ");
    a.log[0] = b.log[0] = 0;
    dm_io_unregister(s, r);
    assert_string_equal(a.log, "mmio-bar@2000+10 ");
    assert_string_equal(b.log, "mmio-bar@2000+10 ");
    /* The second listener refuses: the first hears add then remove, the
     * range does not exist afterwards. */
    a.log[0] = b.log[0] = 0;
    assert_int_equal(dm_io_register(s, "bad", 0x3000, 0x10, &dev_ops, &d, &r), -EIO);
    assert_null(r);
    assert_string_equal(a.log, "mmio+bad@3000+10 mmio-bad@3000+10 ");
    assert_null(dm_io_find(s, 0x3000));
    assert_int_equal(dm_io_count(s), 1);
    /* A replay that fails is undone and the listener is not added. */
    rec c = { .refuse = "early" };
    assert_int_equal(dm_io_listener_add(s, rec_listener, &c, true), -EIO);
    assert_int_equal(dm_io_listener_del(s, rec_listener, &c), -ENOENT);
    assert_int_equal(dm_io_listener_del(s, rec_listener, &b), 0);
    assert_int_equal(dm_io_listener_add(s, rec_listener, &b, false), 0);
    assert_int_equal(dm_io_listener_add(s, rec_listener, &c, false), 0);
    assert_int_equal(dm_io_listener_add(s, rec_listener, &c, false), 0);
    assert_int_equal(dm_io_listener_add(s, rec_listener, &c, false), -ENOSPC);
    dm_io_space_free(s);
}

static void test_unregister_in_callback(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_PORT);
    dev d = { 0 };
    d.space = s;
    assert_int_equal(dm_io_register(s, "self", 0x10, 2, &dev_ops, &d, &d.self), 0);
    assert_int_equal(dm_io_write(s, 0x10, 2, 0xdead), 0);
    assert_null(d.self);
    assert_null(dm_io_find(s, 0x10));
    uint64_t v;
    assert_int_equal(dm_io_read(s, 0x10, 1, &v), -ENOENT);
    /* The space can take a new range at the same place. */
    assert_int_equal(dm_io_register(s, "again", 0x10, 2, &dev_ops, &d, NULL), 0);
    dm_io_space_free(s);
}

static void test_many_ranges_sorted(void **state)
{
    (void)state;
    dm_io_space *s = dm_io_space_new(DM_IO_PORT);
    dev d = { 0 };
    /* Insert out of order; find every one and every gap. */
    for (unsigned i = 0; i < 64; i++) {
        unsigned k = (i * 37) % 64;
        char name[16];
        snprintf(name, sizeof(name), "r%u", k);
        assert_int_equal(dm_io_register(s, name, 0x1000 + k * 0x10, 8, &dev_ops, &d, NULL), 0);
    }
    for (unsigned k = 0; k < 64; k++) {
        dm_io_range *r = dm_io_find(s, 0x1000 + k * 0x10 + 7);
        assert_non_null(r);
        char name[16];
        snprintf(name, sizeof(name), "r%u", k);
        assert_string_equal(dm_io_range_name(r), name);
        assert_null(dm_io_find(s, 0x1000 + k * 0x10 + 8));
    }
    dm_io_space_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_overlap),
        cmocka_unit_test(test_mmio_edges),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_size_mask),
        cmocka_unit_test(test_listeners),
        cmocka_unit_test(test_unregister_in_callback),
        cmocka_unit_test(test_many_ranges_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
