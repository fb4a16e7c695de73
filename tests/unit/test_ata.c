/*
 * ata: the command table, task-file decoding (LBA28, LBA48, CHS, NCQ),
 * SET FEATURES / SET MULTIPLE and the IDENTIFY DEVICE page, checked word
 * by word against what SeaBIOS and libata read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ata.h"

static uint16_t word(const uint8_t *b, unsigned w)
{
    return (uint16_t)(b[2 * w] | b[2 * w + 1] << 8);
}

static void str(const uint8_t *b, unsigned w, unsigned n, char *out)
{
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = (char)(word(b, w + i) >> 8);
        out[2 * i + 1] = (char)word(b, w + i);
    }
    out[2 * n] = 0;
}

static void test_lookup(void **state)
{
    (void)state;
    const ata_cmd_info *ci = ata_cmd_lookup(ATA_CMD_READ_DMA_EXT);
    assert_non_null(ci);
    assert_int_equal(ci->proto, ATA_PROTO_DMA_IN);
    assert_true(ci->lba48);
    assert_int_equal(ci->op, ATA_OP_READ);
    ci = ata_cmd_lookup(ATA_CMD_WRITE_MULTIPLE);
    assert_int_equal(ci->proto, ATA_PROTO_PIO_OUT);
    assert_true(ci->multiple);
    assert_false(ci->lba48);
    ci = ata_cmd_lookup(ATA_CMD_WRITE_FPDMA_QUEUED);
    assert_true(ata_proto_is_ncq(ci->proto));
    assert_int_equal(ata_cmd_lookup(ATA_CMD_FLUSH_CACHE_EXT)->op, ATA_OP_FLUSH);
    assert_int_equal(ata_cmd_lookup(ATA_CMD_IDENTIFY_DEVICE)->proto, ATA_PROTO_PIO_IN);
    /* Unimplemented opcodes (NOP, SMART, DSM, packet) are aborted. */
    assert_null(ata_cmd_lookup(0x00));
    assert_null(ata_cmd_lookup(0xb0));
    assert_null(ata_cmd_lookup(0x06));
    assert_null(ata_cmd_lookup(0xa0));
    /* Every entry's opcode is unique and it has a name. */
    for (unsigned op = 0; op < 256; op++) {
        ci = ata_cmd_lookup((uint8_t)op);
        if (ci) {
            assert_int_equal(ci->opcode, op);
            assert_true(strlen(ci->name) > 0);
        }
    }
}

static void test_lba_decode(void **state)
{
    (void)state;
    ata_geometry g = ata_geometry_for(1u << 20);
    ata_taskfile tf = { .lbal = 0x11, .lbam = 0x22, .lbah = 0x33, .device = 0xe5,
                        .hob_lbal = 0x44, .hob_lbam = 0x55, .hob_lbah = 0x66, .nsect = 0,
                        .hob_nsect = 0 };
    uint64_t lba;
    assert_true(ata_tf_lba(&tf, false, &g, &lba));
    assert_int_equal(lba, 0x5332211);
    assert_true(ata_tf_lba(&tf, true, &g, &lba));
    assert_int_equal(lba, 0x665544332211ull);
    assert_int_equal(ata_tf_count(&tf, ata_cmd_lookup(ATA_CMD_READ_DMA)), 256);
    assert_int_equal(ata_tf_count(&tf, ata_cmd_lookup(ATA_CMD_READ_DMA_EXT)), 65536);
    tf.hob_nsect = 1;
    tf.nsect = 2;
    assert_int_equal(ata_tf_count(&tf, ata_cmd_lookup(ATA_CMD_READ_DMA_EXT)), 258);
    assert_int_equal(ata_tf_count(&tf, ata_cmd_lookup(ATA_CMD_READ_DMA)), 2);
    tf.feature = 8;
    tf.hob_feature = 0;
    tf.nsect = 5 << 3;
    assert_int_equal(ata_tf_count(&tf, ata_cmd_lookup(ATA_CMD_READ_FPDMA_QUEUED)), 8);
    assert_int_equal(ata_tf_ncq_tag(&tf), 5);

    /* Round trips through each addressing form. */
    ata_taskfile t2 = { .device = ATA_DEV_LBA };
    ata_tf_set_lba(&t2, 0x0abcdef1, false, &g);
    assert_true(ata_tf_lba(&t2, false, &g, &lba));
    assert_int_equal(lba, 0x0abcdef1);
    ata_tf_set_lba(&t2, 0x123456789abcull, true, &g);
    assert_true(ata_tf_lba(&t2, true, &g, &lba));
    assert_int_equal(lba, 0x123456789abcull);
    ata_taskfile chs = { .device = 0 };
    ata_tf_set_lba(&chs, 123457, false, &g);
    assert_true(ata_tf_lba(&chs, false, &g, &lba));
    assert_int_equal(lba, 123457);
    /* C/H/S = 0/0/1 is LBA 0; sector 0 or head beyond the geometry is IDNF. */
    chs = (ata_taskfile){ .lbal = 1 };
    assert_true(ata_tf_lba(&chs, false, &g, &lba));
    assert_int_equal(lba, 0);
    chs.lbal = 0;
    assert_false(ata_tf_lba(&chs, false, &g, &lba));
    chs.lbal = 64;
    assert_false(ata_tf_lba(&chs, false, &g, &lba));

    assert_true(ata_range_ok(0, 10, 10));
    assert_false(ata_range_ok(1, 10, 10));
    assert_false(ata_range_ok(11, 0, 10));
    assert_false(ata_range_ok(5, UINT64_MAX, 10));
}

static void test_settings(void **state)
{
    (void)state;
    ata_settings s;
    ata_settings_init(&s);
    assert_true(s.write_cache);
    assert_int_equal(s.multiple, ATA_MAX_MULTIPLE);
    assert_true(ata_set_features(&s, ATA_SF_DISABLE_WCACHE, 0, false));
    assert_false(s.write_cache);
    assert_true(ata_set_features(&s, ATA_SF_SET_XFER_MODE, ATA_XFER_MWDMA(2), false));
    assert_int_equal(s.xfer_mode, ATA_XFER_MWDMA(2));
    assert_false(ata_set_features(&s, ATA_SF_SET_XFER_MODE, ATA_XFER_UDMA(5), false));
    assert_int_equal(s.xfer_mode, ATA_XFER_MWDMA(2));
    assert_true(ata_set_features(&s, ATA_SF_SET_XFER_MODE, ATA_XFER_UDMA(5), true));
    assert_false(ata_set_features(&s, ATA_SF_SET_XFER_MODE, ATA_XFER_MWDMA(3), true));
    assert_false(ata_set_features(&s, ATA_SF_SET_XFER_MODE, ATA_XFER_PIO(5), true));
    assert_false(ata_set_features(&s, 0x10, 0, true));
    assert_true(ata_set_multiple(&s, 8));
    assert_int_equal(s.multiple, 8);
    assert_false(ata_set_multiple(&s, 6));
    assert_false(ata_set_multiple(&s, 32));
    assert_int_equal(s.multiple, 8);
    assert_true(ata_set_multiple(&s, 0));
    assert_int_equal(s.multiple, 0);
}

static void test_identify(void **state)
{
    (void)state;
    uint8_t b[512];
    ata_settings s;
    ata_settings_init(&s);
    s.xfer_mode = ATA_XFER_MWDMA(2);
    ata_identify_params p = { .sectors = 0x12345678ull, .model = "RSDM HARDDISK",
                              .serial = "RSDM-hda", .firmware = "1.0", .settings = &s };
    ata_identify_device(b, &p);
    char m[41];
    str(b, 27, 20, m);
    assert_string_equal(m, "RSDM HARDDISK                           ");
    str(b, 10, 10, m);
    assert_string_equal(m, "RSDM-hda            ");
    assert_int_equal(word(b, 0), 0x0040);
    assert_true(word(b, 49) & (1 << 9));              /* LBA: SeaBIOS and libata */
    assert_true(word(b, 49) & (1 << 8));              /* DMA */
    assert_int_equal(word(b, 53) & 7, 7);
    /* LBA28 capacity is capped at 0x0fffffff; LBA48 has the real size. */
    assert_int_equal(word(b, 60) | word(b, 61) << 16, 0x0fffffff);
    assert_true(word(b, 83) & (1 << 10));
    assert_true(word(b, 86) & (1 << 10));
    uint64_t n48 = (uint64_t)word(b, 100) | (uint64_t)word(b, 101) << 16 |
                   (uint64_t)word(b, 102) << 32 | (uint64_t)word(b, 103) << 48;
    assert_int_equal(n48, 0x12345678ull);
    assert_int_equal(word(b, 63), 0x0407);             /* MWDMA 0-2, mode 2 selected */
    assert_int_equal(word(b, 88), 0);                  /* no UDMA on PIIX3 */
    assert_int_equal(word(b, 59), 0x0110);
    assert_true(word(b, 85) & (1 << 5));               /* write cache enabled */
    assert_int_equal(word(b, 80), 0x00f0);
    assert_int_equal(word(b, 75), 0);
    assert_int_equal(word(b, 76), 0);
    /* Integrity word: the byte sum of the page is 0 (libata checks it). */
    assert_int_equal(b[510], 0xa5);
    uint8_t sum = 0;
    for (unsigned i = 0; i < 512; i++)
        sum = (uint8_t)(sum + b[i]);
    assert_int_equal(sum, 0);

    /* AHCI: UDMA and NCQ; a small disk keeps its exact LBA28 size. */
    s.write_cache = false;
    s.xfer_mode = ATA_XFER_UDMA(5);
    p.sectors = 20480;
    p.udma = true;
    p.ncq_depth = 32;
    ata_identify_device(b, &p);
    assert_int_equal(word(b, 60) | word(b, 61) << 16, 20480);
    assert_int_equal(word(b, 88), 0x203f);
    assert_int_equal(word(b, 63), 0x0007);
    assert_int_equal(word(b, 75), 31);
    assert_true(word(b, 76) & (1 << 8));
    assert_false(word(b, 85) & (1 << 5));
    ata_geometry g = ata_geometry_for(20480);
    assert_int_equal(word(b, 1), g.cylinders);
    assert_int_equal(g.cylinders, 20);
    assert_int_equal(word(b, 57) | word(b, 58) << 16, 20 * 16 * 63);
    sum = 0;
    for (unsigned i = 0; i < 512; i++)
        sum = (uint8_t)(sum + b[i]);
    assert_int_equal(sum, 0);
}

static void test_signature(void **state)
{
    (void)state;
    ata_taskfile tf;
    memset(&tf, 0xff, sizeof(tf));
    ata_tf_set_signature(&tf);
    assert_int_equal(tf.nsect, 1);
    assert_int_equal(tf.lbal, 1);
    assert_int_equal(tf.lbam, 0);
    assert_int_equal(tf.lbah, 0);
    assert_int_equal(tf.device, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),     cmocka_unit_test(test_lba_decode),
        cmocka_unit_test(test_settings),   cmocka_unit_test(test_identify),
        cmocka_unit_test(test_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
