/*
 * The xenstore layer's rules that need no daemon: exact command matching,
 * escaping of untrusted bytes, the runstate node format, bounded paths,
 * the permission rule, the vbd value parsers, the replay rule and the save
 * file sequence.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "xsc_control.h"
#include "xsc_disks.h"
#include "xsc_paths.h"
#include "xsc_perms.h"
#include "xsc_save.h"
#include "xsc_text.h"

static void test_cmd_exact(void **state)
{
    (void)state;
    assert_int_equal(xsc_cmd_parse("save", 4), XSC_CMD_SAVE);
    assert_int_equal(xsc_cmd_parse("continue", 8), XSC_CMD_CONTINUE);
    assert_int_equal(xsc_cmd_parse("pci-ins", 7), XSC_CMD_PCI_INS);
    assert_int_equal(xsc_cmd_parse("pci-rem", 7), XSC_CMD_PCI_REM);
    assert_int_equal(xsc_cmd_parse("stop", 4), XSC_CMD_STOP);
    assert_int_equal(xsc_cmd_parse("retry", 5), XSC_CMD_RETRY);
    assert_int_equal(xsc_cmd_parse("reset", 5), XSC_CMD_RESET);
    assert_int_equal(xsc_cmd_parse("powerdown", 9), XSC_CMD_POWERDOWN);
    assert_int_equal(xsc_cmd_parse("wakeup", 6), XSC_CMD_WAKEUP);
    /* qemu-traditional's prefix bug: each of these matched something. */
    assert_int_equal(xsc_cmd_parse("", 0), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("c", 1), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("sav", 3), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("save ", 5), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("Save", 4), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("save\0", 5), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("\0save", 5), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("continue\0junk", 13), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse("usb-add", 7), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_cmd_parse(NULL, 0), XSC_CMD_UNKNOWN);
    assert_int_equal(xsc_logdirty_parse("enable", 6), 1);
    assert_int_equal(xsc_logdirty_parse("disable", 7), 0);
    assert_int_equal(xsc_logdirty_parse("enabl", 5), -EINVAL);
    assert_int_equal(xsc_logdirty_parse("enable\n", 7), -EINVAL);
    assert_int_equal(xsc_logdirty_parse("", 0), -EINVAL);
    assert_string_equal(xsc_cmd_name(XSC_CMD_WAKEUP), "wakeup");
    assert_string_equal(xsc_cmd_name((xsc_cmd)99), "unknown");
}

static void test_escape(void **state)
{
    (void)state;
    char out[64];
    size_t len = xsc_escape(out, sizeof(out), "sa\0v\"e\\", 7, 100);
    assert_int_equal(len, strlen(out));
    assert_string_equal(out, "sa\\x00v\\\"e\\\\");
    xsc_escape(out, sizeof(out), "\xff\n", 2, 100);
    assert_string_equal(out, "\\xff\\x0a");
    /* Long input: cut, with the real length. */
    char big[4096];
    memset(big, 'A', sizeof(big));
    size_t n = xsc_escape(out, sizeof(out), big, sizeof(big), 8);
    assert_string_equal(out, "AAAAAAAA...(4096 bytes)");
    assert_int_equal(n, strlen(out));
    /* Tiny buffer: never overflows, never splits an escape. */
    char tiny[4];
    xsc_escape(tiny, sizeof(tiny), "\x01\x02", 2, 10);
    assert_true(strlen(tiny) < sizeof(tiny));
    assert_true(strcmp(tiny, "") == 0 || tiny[0] == '.');
}

static void test_runstate_format(void **state)
{
    (void)state;
    char out[128];
    rs_state holds[] = { RS_PAUSED, RS_IO_ERROR };
    assert_int_equal(xsc_runstate_format(out, sizeof(out), RS_PAUSED, holds, 2), 0);
    assert_string_equal(out, "paused holds=paused,io-error");
    assert_int_equal(xsc_runstate_format(out, sizeof(out), RS_RUNNING, NULL, 0), 0);
    assert_string_equal(out, "running holds=");
    assert_int_equal(xsc_runstate_format(out, 10, RS_PAUSED, holds, 2), -ENOSPC);
}

static void test_paths(void **state)
{
    (void)state;
    xsc_paths p;
    assert_int_equal(xsc_paths_init(&p, 0, 5), 0);
    assert_string_equal(p.dir, "/local/domain/0/device-model/5");
    assert_string_equal(p.command, "/local/domain/0/device-model/5/command");
    assert_string_equal(p.state, "/local/domain/0/device-model/5/state");
    assert_string_equal(p.parameter, "/local/domain/0/device-model/5/parameter");
    assert_string_equal(p.logdirty_cmd, "/local/domain/0/device-model/5/logdirty/cmd");
    assert_string_equal(p.logdirty_ret, "/local/domain/0/device-model/5/logdirty/ret");
    assert_string_equal(p.disable_pf, "/local/domain/0/device-model/5/disable_pf");
    assert_string_equal(p.runstate, "/local/domain/0/device-model/5/runstate");
    assert_string_equal(p.error, "/local/domain/0/device-model/5/error");
    assert_string_equal(p.serial_tty, "/local/domain/5/serial/0/tty");
    assert_int_equal(xsc_paths_init(&p, 32751, 32751), 0);
    assert_string_equal(p.logdirty_ret, "/local/domain/32751/device-model/32751/logdirty/ret");
    assert_int_equal(xsc_paths_init(&p, 0, 0x7FF0), -EINVAL);
    assert_int_equal(xsc_paths_init(&p, 70000, 1), -EINVAL);

    char buf[40];
    assert_int_equal(xsc_path_rtc_timeoffset(buf, sizeof(buf), "x"), -EINVAL);
    assert_string_equal(buf, "");
    char big[80];
    assert_int_equal(xsc_path_rtc_timeoffset(big, sizeof(big),
                                             "0a1b2c3d-0000-4000-8000-00112233aabb"), 0);
    assert_string_equal(big, "/vm/0a1b2c3d-0000-4000-8000-00112233aabb/rtc/timeoffset");
    /* Fits the uuid check but not the buffer: refused, not truncated. */
    assert_int_equal(xsc_path_rtc_timeoffset(buf, sizeof(buf),
                                             "0a1b2c3d-0000-4000-8000-00112233aabb"),
                     -ENAMETOOLONG);
    assert_string_equal(buf, "");
    assert_false(xsc_uuid_valid("0a1b2c3d-0000-4000-8000-00112233aab"));
    assert_false(xsc_uuid_valid("../../../local/domain/0/x-0000-0000-000000000000"));
    assert_false(xsc_uuid_valid("0a1b2c3d-0000-4000-8000-00112233aabbc"));
    assert_int_equal(xsc_path_vbd_frontend(big, sizeof(big), 5, 768), 0);
    assert_string_equal(big, "/local/domain/5/device/vbd/768");
    assert_int_equal(xsc_path_vbd_backend(big, sizeof(big), 0, 5, 768), 0);
    assert_string_equal(big, "/local/domain/0/backend/vbd/5/768");
    assert_int_equal(xsc_path_fmt(buf, 5, "%s", "abcde"), -ENAMETOOLONG);
    assert_int_equal(xsc_path_fmt(buf, 6, "%s", "abcde"), 0);
    assert_int_equal(xsc_path_fmt(NULL, 6, "x"), -EINVAL);
    static char huge[5000];
    char fill[3100];
    memset(fill, 'a', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\0';
    assert_int_equal(xsc_path_fmt(huge, sizeof(huge), "/%s", fill), -ENAMETOOLONG);
}

static void test_perms_rule(void **state)
{
    (void)state;
    char why[200];
    struct xs_permissions ok1[] = { { 0, XS_PERM_NONE } };
    struct xs_permissions ok2[] = { { 0, XS_PERM_NONE }, { 5, XS_PERM_READ } };
    struct xs_permissions ok3[] = { { 0, XS_PERM_READ } };
    struct xs_permissions bad_owner[] = { { 5, XS_PERM_NONE } };
    struct xs_permissions bad_w[] = { { 0, XS_PERM_NONE }, { 5, XS_PERM_WRITE } };
    struct xs_permissions bad_b[] = { { 0, XS_PERM_NONE }, { 7, XS_PERM_READ | XS_PERM_WRITE } };
    struct xs_permissions bad_def[] = { { 0, XS_PERM_WRITE } };
    struct xs_permissions bad_def_b[] = { { 0, XS_PERM_READ | XS_PERM_WRITE } };
    assert_true(xsc_perms_safe(ok1, 1, 0, why, sizeof(why)));
    assert_true(xsc_perms_safe(ok2, 2, 0, why, sizeof(why)));
    assert_true(xsc_perms_safe(ok3, 1, 0, why, sizeof(why)));
    assert_false(xsc_perms_safe(bad_owner, 1, 0, why, sizeof(why)));
    assert_non_null(strstr(why, "owned by domain 5"));
    assert_false(xsc_perms_safe(bad_w, 2, 0, why, sizeof(why)));
    assert_non_null(strstr(why, "writable by domain 5 (w5)"));
    assert_false(xsc_perms_safe(bad_b, 2, 0, why, sizeof(why)));
    assert_non_null(strstr(why, "writable by domain 7 (b7)"));
    assert_false(xsc_perms_safe(bad_def, 1, 0, why, sizeof(why)));
    assert_non_null(strstr(why, "every domain (default w0)"));
    assert_false(xsc_perms_safe(bad_def_b, 1, 0, why, sizeof(why)));
    assert_false(xsc_perms_safe(NULL, 0, 0, why, sizeof(why)));
    /* A stub-domain dm owns its own directory. */
    struct xs_permissions stub[] = { { 9, XS_PERM_NONE }, { 5, XS_PERM_READ } };
    assert_true(xsc_perms_safe(stub, 2, 9, why, sizeof(why)));
    assert_false(xsc_perms_safe(stub, 2, 0, why, sizeof(why)));
    char list[64];
    xsc_perms_format(list, sizeof(list), bad_b, 2);
    assert_string_equal(list, "n0,b7");
}

static void test_disk_parsers(void **state)
{
    (void)state;
    xsc_disk_bus bus;
    unsigned unit;
    assert_int_equal(xsc_disk_parse_dev("hda", 3, &bus, &unit), 0);
    assert_int_equal(bus, XSC_DISK_IDE);
    assert_int_equal(unit, 0);
    assert_int_equal(xsc_disk_parse_dev("hdd", 3, &bus, &unit), 0);
    assert_int_equal(unit, 3);
    assert_int_equal(xsc_disk_parse_dev("xvdb", 4, &bus, &unit), 0);
    assert_int_equal(bus, XSC_DISK_IDE);
    assert_int_equal(unit, 1);
    assert_int_equal(xsc_disk_parse_dev("sdc", 3, &bus, &unit), 0);
    assert_int_equal(bus, XSC_DISK_SATA);
    assert_int_equal(unit, 2);
    assert_int_equal(xsc_disk_parse_dev("hde", 3, &bus, &unit), -EINVAL);
    assert_int_equal(xsc_disk_parse_dev("hda\0", 4, &bus, &unit), -EINVAL);
    assert_int_equal(xsc_disk_parse_dev("hda1", 4, &bus, &unit), -EINVAL);
    assert_int_equal(xsc_disk_parse_dev("xvde", 4, &bus, &unit), -EINVAL);
    assert_int_equal(xsc_disk_parse_dev("", 0, &bus, &unit), -EINVAL);

    char fmt[16], path[64];
    assert_int_equal(xsc_disk_parse_params("/dev/vg/lv", 10, false, fmt, sizeof(fmt), path,
                                           sizeof(path)), 0);
    assert_string_equal(fmt, "");
    assert_string_equal(path, "/dev/vg/lv");
    assert_int_equal(xsc_disk_parse_params("aio:/img/a:b.img", 16, false, fmt, sizeof(fmt),
                                           path, sizeof(path)), 0);
    assert_string_equal(fmt, "aio");
    assert_string_equal(path, "/img/a:b.img");
    assert_int_equal(xsc_disk_parse_params("tap:qcow2:/x", 12, false, fmt, sizeof(fmt), path,
                                           sizeof(path)), 0);
    assert_string_equal(fmt, "qcow2");
    assert_string_equal(path, "/x");
    assert_int_equal(xsc_disk_parse_params("", 0, true, fmt, sizeof(fmt), path,
                                           sizeof(path)), 0);
    assert_string_equal(path, "");
    assert_int_equal(xsc_disk_parse_params("", 0, false, fmt, sizeof(fmt), path,
                                           sizeof(path)), -EINVAL);
    assert_int_equal(xsc_disk_parse_params("relative.img", 12, false, fmt, sizeof(fmt), path,
                                           sizeof(path)), -EINVAL);
    assert_int_equal(xsc_disk_parse_params("/a\0b", 4, false, fmt, sizeof(fmt), path,
                                           sizeof(path)), -EINVAL);
    assert_int_equal(xsc_disk_parse_params("/a\nb", 4, false, fmt, sizeof(fmt), path,
                                           sizeof(path)), -EINVAL);
    char longp[100];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    assert_int_equal(xsc_disk_parse_params(longp, sizeof(longp), false, fmt, sizeof(fmt),
                                           path, sizeof(path)), -EINVAL);
}

static void test_replay_rule(void **state)
{
    (void)state;
    xsc_last_cmd last = { .valid = true, .rm_confirmed = false, .generation = 1, .len = 4 };
    memcpy(last.value, "stop", 4);
    /* Read again after a reconnect, its deletion never confirmed: a replay. */
    assert_true(xsc_cmd_is_replay(&last, "stop", 4, 2));
    /* Same connection: a fresh write of the same word. */
    assert_false(xsc_cmd_is_replay(&last, "stop", 4, 1));
    /* Another value is always new. */
    assert_false(xsc_cmd_is_replay(&last, "continue", 8, 2));
    assert_false(xsc_cmd_is_replay(&last, "sto", 3, 2));
    /* Deletion confirmed: whatever is there now was written after it. */
    last.rm_confirmed = true;
    assert_false(xsc_cmd_is_replay(&last, "stop", 4, 2));
    last.valid = false;
    assert_false(xsc_cmd_is_replay(&last, "stop", 4, 2));
    assert_false(xsc_cmd_is_replay(NULL, "stop", 4, 2));
}

/* ------------------------------------------------------------ save file */

typedef struct save_ctx {
    const char *path;
    int rc;
    bool final_existed_during_write;
    bool wrote;
} save_ctx;

static int write_ok(void *opaque, int fd, char *why, size_t why_len)
{
    save_ctx *c = opaque;
    struct stat st;
    (void)why;
    (void)why_len;
    /* The old file is gone before the new state is written. */
    c->final_existed_during_write = stat(c->path, &st) == 0;
    if (c->rc < 0) {
        snprintf(why, why_len, "simulated disk full");
        assert_int_equal(write(fd, "part", 4), 4);
        return c->rc;
    }
    c->wrote = true;
    return write(fd, "RSDM-STATE", 10) == 10 ? 0 : -EIO;
}

static void slurp(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void test_save_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/xsc-save-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], tmp[300], why[300], buf[64];
    snprintf(path, sizeof(path), "%s/qemu-save.5", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    struct stat st;

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("OLD STALE STATE", f);
    fclose(f);
    save_ctx c = { .path = path, .rc = 0 };
    assert_int_equal(xsc_save_file(path, write_ok, &c, why, sizeof(why)), 0);
    assert_false(c.final_existed_during_write);
    slurp(path, buf, sizeof(buf));
    assert_string_equal(buf, "RSDM-STATE");
    assert_int_equal(stat(tmp, &st), -1);

    /* Failure: neither the old nor a partial file is left. */
    c.rc = -ENOSPC;
    assert_int_equal(xsc_save_file(path, write_ok, &c, why, sizeof(why)), -ENOSPC);
    assert_non_null(strstr(why, "simulated disk full"));
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(stat(tmp, &st), -1);

    /* A leftover temporary from a crash is not in the way. */
    f = fopen(tmp, "w");
    assert_non_null(f);
    fclose(f);
    c.rc = 0;
    assert_int_equal(xsc_save_file(path, write_ok, &c, why, sizeof(why)), 0);
    assert_int_equal(stat(tmp, &st), -1);

    /* Unwritable directory: a clear error naming the file. */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing-dir/qemu-save.5", dir);
    assert_true(xsc_save_file(bad, write_ok, &c, why, sizeof(why)) < 0);
    assert_non_null(strstr(why, "missing-dir"));
    assert_int_equal(xsc_save_file(NULL, write_ok, &c, why, sizeof(why)), -EINVAL);

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_exact),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_runstate_format),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_perms_rule),
        cmocka_unit_test(test_disk_parsers),
        cmocka_unit_test(test_replay_rule),
        cmocka_unit_test(test_save_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
