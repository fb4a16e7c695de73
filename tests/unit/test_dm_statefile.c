/*
 * dm_statefile: round trips through a path, an fd and a pipe; the atomic
 * writer; and every kind of bad file (empty, QEMU's, wrong magic, wrong
 * format version, every truncation, every single-bit flip, unknown,
 * duplicate and missing sections, a newer section version, an out-of-range
 * field, trailing bytes, oversize), each proving nothing was applied.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dm_statefile.h"

/* A toy device: a small register (must be <= 10), a counter, a 32-byte
 * buffer, and how many times it was loaded. */
typedef struct toy {
    uint8_t reg;
    uint32_t counter;
    uint8_t buf[32];
    int loads;
    int fail_save;
    size_t big;                 /* extra bytes to save (oversize test) */
} toy;

static int toy_save(void *opaque, dm_state_wr *w)
{
    toy *t = opaque;
    if (t->fail_save)
        return -EIO;
    dm_state_put_u8(w, t->reg);
    dm_state_put_u32(w, t->counter);
    dm_state_put_bytes(w, t->buf, sizeof(t->buf));
    for (size_t i = 0; i < t->big; i++)
        dm_state_put_u8(w, 0);
    return 0;
}

static int toy_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    uint8_t reg = dm_state_get_u8(r, "reg");
    dm_state_check(r, reg <= 10, "reg", reg, "out of range (max 10)");
    dm_state_get_u32(r, "counter");
    uint8_t b[32];
    dm_state_get_bytes(r, b, sizeof(b), "buf");
    return 0;
}

static void toy_load(void *opaque, uint32_t version, dm_state_rd *r)
{
    toy *t = opaque;
    t->reg = dm_state_get_u8(r, "reg");
    t->counter = dm_state_get_u32(r, "counter");
    dm_state_get_bytes(r, t->buf, sizeof(t->buf), "buf");
    t->loads++;
}

static void toy_fill(toy *t, uint8_t seed)
{
    memset(t, 0, sizeof(*t));
    t->reg = (uint8_t)(seed % 11);
    t->counter = 0x01020304u * seed;
    for (size_t i = 0; i < sizeof(t->buf); i++)
        t->buf[i] = (uint8_t)(seed + i);
}

/* Registry with uart/0 and disk/1 backed by a and b. */
static dm_state_reg *make_reg(toy *a, toy *b)
{
    dm_state_reg *reg = dm_state_reg_new();
    assert_non_null(reg);
    assert_int_equal(dm_state_register(reg, "uart", 0, 1, toy_save, toy_validate, toy_load, a), 0);
    assert_int_equal(dm_state_register(reg, "disk", 1, 2, toy_save, toy_validate, toy_load, b), 0);
    return reg;
}

/* A saved file from devices seeded 3 and 7. */
static uint8_t *good_file(size_t *len)
{
    toy a, b;
    toy_fill(&a, 3);
    toy_fill(&b, 7);
    dm_state_reg *reg = make_reg(&a, &b);
    uint8_t *buf;
    char err[256];
    assert_int_equal(dm_state_save_mem(reg, &buf, len, err, sizeof(err)), 0);
    dm_state_reg_free(reg);
    return buf;
}

/* Loads buf into fresh devices and asserts it fails with a message that
 * contains `expect`, and that neither device changed. */
static void expect_refused(const uint8_t *buf, size_t len, const char *expect)
{
    toy a, b, a0, b0;
    toy_fill(&a, 100);
    toy_fill(&b, 101);
    a0 = a, b0 = b;
    dm_state_reg *reg = make_reg(&a, &b);
    char err[256] = "";
    int rc = dm_state_load_mem(reg, buf, len, err, sizeof(err));
    if (rc == 0 || (expect && !strstr(err, expect)))
        fail_msg("len %zu: rc %d, message \"%s\", expected \"%s\"", len, rc, err,
                 expect ? expect : "(any)");
    assert_memory_equal(&a, &a0, sizeof(a));
    assert_memory_equal(&b, &b0, sizeof(b));
    dm_state_reg_free(reg);
}

static void test_crc32_known_value(void **state)
{
    (void)state;
    assert_int_equal(dm_crc32(0, "123456789", 9), 0xcbf43926u);   /* the CRC-32 check value */
    assert_int_equal(dm_crc32(0, "", 0), 0);
}

static void test_round_trip_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/dmstateXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], tmp[300];
    snprintf(path, sizeof(path), "%s/qemu-save.5", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);

    toy a, b;
    toy_fill(&a, 3);
    toy_fill(&b, 7);
    dm_state_reg *reg = make_reg(&a, &b);
    char err[256];
    assert_int_equal(dm_state_save_path(reg, path, err, sizeof(err)), 0);
    assert_int_not_equal(access(tmp, F_OK), 0);           /* no temporary left */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size < 1024);
    assert_int_equal(st.st_mode & 0777, 0600);

    toy c, d;
    toy_fill(&c, 50);
    toy_fill(&d, 51);
    dm_state_reg *reg2 = make_reg(&c, &d);
    assert_int_equal(dm_state_load_path(reg2, path, err, sizeof(err)), 0);
    assert_int_equal(c.loads, 1);
    assert_int_equal(d.loads, 1);
    assert_int_equal(c.reg, a.reg);
    assert_int_equal(c.counter, a.counter);
    assert_memory_equal(c.buf, a.buf, sizeof(a.buf));
    assert_memory_equal(d.buf, b.buf, sizeof(b.buf));

    /* A failing save leaves the previous complete file in place, no .tmp. */
    b.fail_save = 1;
    assert_int_equal(dm_state_save_path(reg, path, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "disk/1"));
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(dm_state_load_path(reg2, path, err, sizeof(err)), 0);

    /* A directory that does not exist: clear error naming the file. */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/nodir/file", dir);
    b.fail_save = 0;
    assert_int_equal(dm_state_save_path(reg, bad, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "nodir/file.tmp"));
    assert_int_equal(dm_state_load_path(reg2, bad, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot open"));

    unlink(path);
    rmdir(dir);
    dm_state_reg_free(reg);
    dm_state_reg_free(reg2);
}

static void test_round_trip_pipe(void **state)
{
    (void)state;
    toy a, b;
    toy_fill(&a, 9);
    toy_fill(&b, 10);
    dm_state_reg *reg = make_reg(&a, &b);
    int p[2];
    assert_int_equal(pipe(p), 0);
    char err[256];
    /* The file is far smaller than a pipe buffer, so this does not block. */
    assert_int_equal(dm_state_save_fd(reg, p[1], err, sizeof(err)), 0);
    close(p[1]);
    toy c = { 0 }, d = { 0 };
    dm_state_reg *reg2 = make_reg(&c, &d);
    assert_int_equal(dm_state_load_fd(reg2, p[0], err, sizeof(err)), 0);
    close(p[0]);
    assert_int_equal(c.counter, a.counter);
    assert_int_equal(d.counter, b.counter);
    dm_state_reg_free(reg);
    dm_state_reg_free(reg2);
}

/* A blob section of BLOB_LEN bytes, to make a file larger than a pipe. */
#define BLOB_LEN 100000

static int blob_save(void *opaque, dm_state_wr *w)
{
    for (uint32_t i = 0; i < BLOB_LEN; i++)
        dm_state_put_u8(w, (uint8_t)(i * 7));
    return 0;
}

static int blob_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    for (uint32_t i = 0; i < BLOB_LEN; i++) {
        uint8_t v = dm_state_get_u8(r, "blob");
        if (!dm_state_check(r, v == (uint8_t)(i * 7), "blob", v, "differs"))
            return -EINVAL;
    }
    return 0;
}

static void blob_load(void *opaque, uint32_t version, dm_state_rd *r)
{
    *(int *)opaque = 1;
}

static dm_state_reg *make_blob_reg(toy *a, int *loaded)
{
    dm_state_reg *reg = dm_state_reg_new();
    assert_int_equal(dm_state_register(reg, "uart", 0, 1, toy_save, toy_validate, toy_load, a), 0);
    assert_int_equal(dm_state_register(reg, "blob", 0, 1, blob_save, blob_validate, blob_load, loaded), 0);
    return reg;
}

/* The toolstack's end of the pipe, reading slowly in small pieces. */
static void *slow_reader(void *arg)
{
    int fd = *(int *)arg;
    static uint8_t buf[DM_STATE_MAX_SIZE + 1];
    size_t len = 0;
    ssize_t k;
    while (len < sizeof(buf) && (k = read(fd, buf + len, 512)) > 0)
        len += (size_t)k;
    toy c = { 0 };
    int loaded = 0;
    dm_state_reg *reg = make_blob_reg(&c, &loaded);
    char err[256];
    int rc = dm_state_load_mem(reg, buf, len, err, sizeof(err));
    dm_state_reg_free(reg);
    return (void *)(intptr_t)(rc == 0 && loaded && c.counter == 0x01020304u * 11);
}

/* QMP may hand over a non-blocking fd: the writer waits for the reader
 * instead of failing with EAGAIN. */
static void test_nonblocking_fd(void **state)
{
    (void)state;
    toy a;
    toy_fill(&a, 11);
    int loaded = 0;
    dm_state_reg *reg = make_blob_reg(&a, &loaded);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    assert_int_equal(fcntl(p[0], F_SETFL, 0), 0);         /* the reader blocks */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_reader, &p[0]), 0);
    char err[256];
    assert_int_equal(dm_state_save_fd(reg, p[1], err, sizeof(err)), 0);
    close(p[1]);
    void *ok;
    pthread_join(th, &ok);
    assert_true((intptr_t)ok == 1);
    close(p[0]);
    dm_state_reg_free(reg);
}

static void test_empty_and_foreign(void **state)
{
    (void)state;
    expect_refused((const uint8_t *)"", 0, "empty");
    /* QEMU's savevm stream starts with "QEVM" and a version. */
    static const uint8_t qemu[] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0x05, 0, 0, 0, 0x0a, 'p', 'c' };
    expect_refused(qemu, sizeof(qemu), "this is a QEMU state file; rsdm and QEMU state files are "
                                       "not interchangeable");
    expect_refused((const uint8_t *)"QEVM", 4, "QEMU state file");
    expect_refused((const uint8_t *)"#!/bin/sh\necho hi\n", 18, "not an rsdm state file");
    expect_refused((const uint8_t *)"RSDM", 4, "truncated");
}

static void test_format_version(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = good_file(&len);
    buf[8] = 2;                  /* format version 2 */
    expect_refused(buf, len, "format version 2 is not supported");
    buf[8] = 1;
    buf[12] = 1;                 /* unknown flag */
    expect_refused(buf, len, "flags");
    free(buf);
}

static void test_every_truncation(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = good_file(&len);
    for (size_t cut = 0; cut < len; cut++)
        expect_refused(buf, cut, NULL);
    expect_refused(buf, len - 1, "truncated");
    free(buf);
}

static void test_every_bit_flip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = good_file(&len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            expect_refused(buf, len, NULL);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* And the unflipped file still loads. */
    toy a = { 0 }, b = { 0 };
    dm_state_reg *reg = make_reg(&a, &b);
    char err[256];
    assert_int_equal(dm_state_load_mem(reg, buf, len, err, sizeof(err)), 0);
    dm_state_reg_free(reg);
    free(buf);
}

/* Saves with a registry that differs from the loader's. */
static uint8_t *save_with(dm_state_reg *reg, size_t *len)
{
    uint8_t *buf;
    char err[256];
    assert_int_equal(dm_state_save_mem(reg, &buf, len, err, sizeof(err)), 0);
    return buf;
}

static void test_section_mismatches(void **state)
{
    (void)state;
    toy a, b, c;
    toy_fill(&a, 1);
    toy_fill(&b, 2);
    toy_fill(&c, 3);
    size_t len;
    uint8_t *buf;

    /* Unknown: the saver had a third device. */
    dm_state_reg *r = make_reg(&a, &b);
    assert_int_equal(dm_state_register(r, "ahci", 0, 1, toy_save, toy_validate, toy_load, &c), 0);
    buf = save_with(r, &len);
    expect_refused(buf, len, "unknown section ahci/0");
    free(buf);
    dm_state_reg_free(r);

    /* Missing: the saver lacked disk/1. */
    r = dm_state_reg_new();
    assert_int_equal(dm_state_register(r, "uart", 0, 1, toy_save, toy_validate, toy_load, &a), 0);
    buf = save_with(r, &len);
    expect_refused(buf, len, "section disk/1 is missing");
    free(buf);
    dm_state_reg_free(r);

    /* Duplicate: the same section under two instances, then instance 0
     * renamed to 1 with the CRCs recomputed. */
    r = dm_state_reg_new();
    assert_int_equal(dm_state_register(r, "uart", 0, 1, toy_save, toy_validate, toy_load, &a), 0);
    assert_int_equal(dm_state_register(r, "disk", 1, 2, toy_save, toy_validate, toy_load, &b), 0);
    assert_int_equal(dm_state_register(r, "disk", 2, 2, toy_save, toy_validate, toy_load, &c), 0);
    buf = save_with(r, &len);
    /* Section layout: header 16; each section 22 + idlen + 37 payload. */
    size_t s3 = 16 + (22 + 4 + 37) + (22 + 4 + 37);
    assert_memory_equal(buf + s3 + 6, "disk", 4);
    buf[s3 + 10] = 1;            /* instance 2 -> 1 */
    uint32_t crc = dm_crc32(0, buf, len - 4);
    for (int i = 0; i < 4; i++)
        buf[len - 4 + i] = (uint8_t)(crc >> (8 * i));
    expect_refused(buf, len, "duplicate section disk/1");
    free(buf);
    dm_state_reg_free(r);

    /* Newer section version than this rsdm reads. */
    r = dm_state_reg_new();
    assert_int_equal(dm_state_register(r, "uart", 0, 5, toy_save, toy_validate, toy_load, &a), 0);
    assert_int_equal(dm_state_register(r, "disk", 1, 2, toy_save, toy_validate, toy_load, &b), 0);
    buf = save_with(r, &len);
    expect_refused(buf, len, "uart/0 has version 5; this rsdm reads versions 1..1");
    free(buf);
    dm_state_reg_free(r);
}

static void test_out_of_range_field(void **state)
{
    (void)state;
    toy a, b;
    toy_fill(&a, 1);
    toy_fill(&b, 2);
    b.reg = 200;                 /* the validator allows <= 10 */
    dm_state_reg *r = make_reg(&a, &b);
    size_t len;
    uint8_t *buf = save_with(r, &len);
    /* uart/0 is valid and comes first: still nothing may be applied. */
    expect_refused(buf, len, "section disk/1 (version 2): field 'reg' value 200 (0xc8) out of range");
    free(buf);
    dm_state_reg_free(r);
}

/* A validator that reads less than the payload: trailing bytes refused. */
static int short_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    dm_state_get_u8(r, "reg");
    return 0;
}

/* One that reads more than is there: truncation names the field. */
static int long_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    toy_validate(opaque, version, r);
    dm_state_get_u64(r, "extra");
    return 0;
}

static void test_payload_length_mismatch(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = good_file(&len);
    toy a = { 0 }, b = { 0 };
    char err[256];
    dm_state_reg *r = dm_state_reg_new();
    assert_int_equal(dm_state_register(r, "uart", 0, 1, toy_save, short_validate, toy_load, &a), 0);
    assert_int_equal(dm_state_register(r, "disk", 1, 2, toy_save, toy_validate, toy_load, &b), 0);
    assert_int_equal(dm_state_load_mem(r, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "36 unexpected bytes"));
    assert_int_equal(a.loads + b.loads, 0);
    dm_state_reg_free(r);

    r = dm_state_reg_new();
    assert_int_equal(dm_state_register(r, "uart", 0, 1, toy_save, long_validate, toy_load, &a), 0);
    assert_int_equal(dm_state_register(r, "disk", 1, 2, toy_save, toy_validate, toy_load, &b), 0);
    assert_int_equal(dm_state_load_mem(r, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "field 'extra': section truncated"));
    assert_int_equal(a.loads + b.loads, 0);
    dm_state_reg_free(r);
    free(buf);
}

static void test_trailing_garbage_and_size(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = good_file(&len);
    uint8_t *more = malloc(len + 3);
    memcpy(more, buf, len);
    memcpy(more + len, "abc", 3);
    expect_refused(more, len + 3, "3 unexpected bytes after the end");
    free(more);
    free(buf);

    /* Oversize on save and on load. */
    toy a, b;
    toy_fill(&a, 1);
    toy_fill(&b, 2);
    b.big = DM_STATE_MAX_SIZE;
    dm_state_reg *r = make_reg(&a, &b);
    char err[256];
    uint8_t *out = NULL;
    assert_int_equal(dm_state_save_mem(r, &out, &len, err, sizeof(err)), -EFBIG);
    assert_null(out);
    assert_non_null(strstr(err, "limit"));
    dm_state_reg_free(r);
    uint8_t *huge = calloc(1, DM_STATE_MAX_SIZE + 1);
    memcpy(huge, DM_STATE_MAGIC, 8);
    r = make_reg(&a, &b);
    assert_int_equal(dm_state_load_mem(r, huge, DM_STATE_MAX_SIZE + 1, err, sizeof(err)), -EFBIG);
    free(huge);
    dm_state_reg_free(r);
    assert_true(DM_STATE_MAX_SIZE < 256 * 1024);
}

static void test_registration_errors(void **state)
{
    (void)state;
    toy a;
    dm_state_reg *r = dm_state_reg_new();
    assert_int_equal(dm_state_register(r, "", 0, 1, toy_save, toy_validate, toy_load, &a), -EINVAL);
    assert_int_equal(dm_state_register(r, "a b", 0, 1, toy_save, toy_validate, toy_load, &a), -EINVAL);
    assert_int_equal(dm_state_register(r, "x", 0, 0, toy_save, toy_validate, toy_load, &a), -EINVAL);
    assert_int_equal(dm_state_register(r, "x", 0, 1, NULL, toy_validate, toy_load, &a), -EINVAL);
    char longid[80];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[79] = 0;
    assert_int_equal(dm_state_register(r, longid, 0, 1, toy_save, toy_validate, toy_load, &a), -EINVAL);
    assert_int_equal(dm_state_register(r, "x", 0, 1, toy_save, toy_validate, toy_load, &a), 0);
    assert_int_equal(dm_state_register(r, "x", 0, 1, toy_save, toy_validate, toy_load, &a), -EEXIST);
    assert_int_equal(dm_state_register(r, "x", 1, 1, toy_save, toy_validate, toy_load, &a), 0);
    assert_int_equal(dm_state_unregister(r, "x", 0), 0);
    assert_int_equal(dm_state_unregister(r, "x", 0), -ENOENT);
    dm_state_reg_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_known_value),
        cmocka_unit_test(test_round_trip_path),
        cmocka_unit_test(test_round_trip_pipe),
        cmocka_unit_test(test_nonblocking_fd),
        cmocka_unit_test(test_empty_and_foreign),
        cmocka_unit_test(test_format_version),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_every_bit_flip),
        cmocka_unit_test(test_section_mismatches),
        cmocka_unit_test(test_out_of_range_field),
        cmocka_unit_test(test_payload_length_mismatch),
        cmocka_unit_test(test_trailing_garbage_and_size),
        cmocka_unit_test(test_registration_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
