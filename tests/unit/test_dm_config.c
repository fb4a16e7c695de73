/*
 * dm_config: a full file, defaults, and every kind of bad line reported
 * with its line number, leaving the config untouched.
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
#include <unistd.h>

#include <cmocka.h>

#include "blk.h"
#include "dm_config.h"

static char err[512];

static int parse(dm_config *c, const char *text)
{
    err[0] = 0;
    return dm_config_parse(c, text, strlen(text), "rsdm.conf", err, sizeof(err));
}

static void test_full_file(void **state)
{
    (void)state;
    dm_config c;
    dm_config_init(&c);
    assert_int_equal(parse(&c, "# rsdm config\n"
                               "log-level = debug\n"
                               "\n"
                               "save-dir=/var/lib/xen\n"
                               "   # indented comment\n"
                               "[disk hda]\n"
                               "werror = stop\n"
                               "rerror = report\r\n"
                               "\n"
                               "[ disk  sdb ]\n"
                               "\twerror\t=\tenospc\n"
                               "cache = none\n"
                               "rerror = ignore"),            /* no final newline */
                     0);
    assert_true(c.has_log_level);
    assert_int_equal(c.log_level, DM_LOG_DEBUG);
    assert_true(c.has_save_dir);
    assert_string_equal(c.save_dir, "/var/lib/xen");
    assert_int_equal(c.ndisks, 2);
    dm_config_disk d = dm_config_disk_get(&c, "hda");
    assert_int_equal(d.werror, DM_ERR_STOP);
    assert_int_equal(d.rerror, DM_ERR_REPORT);
    assert_int_equal(d.cache, DM_CACHE_WRITEBACK);
    assert_int_equal(d.line, 6);
    d = dm_config_disk_get(&c, "sdb");
    assert_int_equal(d.werror, DM_ERR_ENOSPC);
    assert_int_equal(d.rerror, DM_ERR_IGNORE);
    assert_int_equal(d.cache, DM_CACHE_NONE);
    /* A disk without a section gets QEMU's defaults. */
    d = dm_config_disk_get(&c, "hdc");
    assert_int_equal(d.rerror, DM_ERR_REPORT);
    assert_int_equal(d.werror, DM_ERR_ENOSPC);
    assert_string_equal(dm_err_action_name(d.werror), "enospc");
    assert_string_equal(dm_cache_mode_name(DM_CACHE_UNSAFE), "unsafe");
    /* An empty file and a comment-only file are fine. */
    dm_config_init(&c);
    assert_int_equal(parse(&c, ""), 0);
    assert_int_equal(parse(&c, "# nothing\n\n"), 0);
    assert_false(c.has_log_level);
    assert_int_equal(c.ndisks, 0);
}

static void test_bad_lines(void **state)
{
    (void)state;
    static const struct { const char *text, *msg; } bad[] = {
        { "log-level = loud\n", "rsdm.conf:1: bad value 'loud' for log-level" },
        { "\n\nfoo = 1\n", "rsdm.conf:3: unknown key 'foo'" },
        { "werror = stop\n", "rsdm.conf:1: unknown key 'werror' (the top level knows" },
        { "log-level\n", "rsdm.conf:1: expected 'key = value'" },
        { "log-level =\n", "rsdm.conf:1: log-level has no value" },
        { "= debug\n", "rsdm.conf:1: bad key ''" },
        { "Log-Level = debug\n", "rsdm.conf:1: bad key 'Log-Level'" },
        { "log-level = info\nlog-level = debug\n", "rsdm.conf:2: log-level is set twice" },
        { "save-dir = relative/dir\n", "save-dir must be an absolute path" },
        { "[disk hda\n", "rsdm.conf:1: section header without ']'" },
        { "[cdrom hdc]\n", "unknown section '[cdrom hdc]'" },
        { "[disk]\n", "unknown section '[disk]'" },
        { "[disk HDA]\n", "bad disk name 'HDA'" },
        { "[disk hd-a]\n", "bad disk name 'hd-a'" },
        { "[disk averyveryverylongname]\n", "bad disk name" },
        { "[disk hda]\nwerror = halt\n", "rsdm.conf:2: bad value 'halt' for werror (one of: report, ignore, enospc, stop)" },
        { "[disk hda]\nrerror = enospc\n", "rsdm.conf:2: rerror = enospc is not allowed" },
        { "[disk hda]\ncache = directsync\n", "bad value 'directsync' for cache" },
        { "[disk hda]\nformat = qcow2\n", "rsdm.conf:2: unknown key 'format' in [disk hda]" },
        { "[disk hda]\nwerror = stop\nwerror = report\n", "rsdm.conf:3: werror is set twice in [disk hda]" },
        { "[disk hda]\n[disk hdb]\n[disk hda]\n", "rsdm.conf:3: disk hda is configured twice (first at line 1)" },
        { "[disk hda]\nlog-level = debug\n", "unknown key 'log-level' in [disk hda]" },
        { "[disk hda]\ninject = op=write\n",
          "rsdm.conf:2: injection rule 'op=write': does nothing" },
        { "[disk hda]\ninject = op=read errno=EIO\ninject = op=wrte errno=EIO; delay=5ms\n",
          "rsdm.conf:3: injection rule 'op=wrte errno=EIO': bad op 'wrte'" },
        { "inject = errno=EIO\n", "rsdm.conf:1: unknown key 'inject' (the top level knows" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dm_config c;
        dm_config_init(&c);
        c.has_save_dir = true;                 /* a marker: must survive the failure */
        strcpy(c.save_dir, "/marker");
        assert_int_equal(parse(&c, bad[i].text), -EINVAL);
        if (!strstr(err, bad[i].msg))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, bad[i].msg);
        assert_string_equal(c.save_dir, "/marker");
        assert_int_equal(c.ndisks, 0);
        assert_false(c.has_log_level);
    }
}

/* `inject` may repeat; its rules add up, in order, up to a bound. */
static void test_inject(void **state)
{
    (void)state;
    dm_config c;
    dm_config_init(&c);
    assert_int_equal(parse(&c, "[disk hda]\n"
                               "inject = op=write errno=ENOSPC sectors=0-2047 once\n"
                               "werror = stop\n"
                               "inject = op=flush errno=EIO; op=read delay=1000ms\n"
                               "[disk sda]\n"),
                     0);
    dm_config_disk d = dm_config_disk_get(&c, "hda");
    assert_string_equal(d.inject, "op=write errno=ENOSPC sectors=0-2047 once; "
                                  "op=flush errno=EIO; op=read delay=1000ms");
    assert_int_equal(d.werror, DM_ERR_STOP);
    assert_int_equal(dm_blk_inject_check(d.inject, err, sizeof(err)), 0);
    assert_string_equal(dm_config_disk_get(&c, "sda").inject, "");
    assert_string_equal(dm_config_disk_get(&c, "hdb").inject, "");

    /* Too many rules in total: refused at the line that overflows. */
    char text[8192] = "[disk hda]\n";
    unsigned lines = 1;
    while (strlen(text) < 2 * DM_CONFIG_MAX_INJECT) {
        strcat(text, "inject = op=read errno=EIO sectors=1000000-2000000 once\n");
        lines++;
    }
    dm_config_init(&c);
    assert_int_equal(parse(&c, text), -EINVAL);
    assert_non_null(strstr(err, "inject rules of [disk hda] add up to more than"));
    assert_int_equal(c.ndisks, 0);
    assert_true(lines > 2);
}

/* Rules glued from random pieces (valid and broken): every answer is 0 or
 * -EINVAL with a message, never a crash (the sanitizer builds check). */
static void test_inject_random(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "op=", "read", "write", "flush", "any", "errno=", "EIO", "ENOSPC", "EBOGUS",
        "sectors=", "0", "-", "7", "18446744073709551615", "99999999999999999999", "delay=",
        "ms", "s", "once", "always", " ", " ", ";", "=", "\t", "x",
    };
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned ok = 0, bad = 0;
    for (int i = 0; i < 20000; i++) {
        char rules[1024] = "";     /* 32 pieces of at most 20 bytes */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned n = (unsigned)(seed >> 59) + 1;
        for (unsigned k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            strcat(rules, pieces[(seed >> 33) % (sizeof(pieces) / sizeof(pieces[0]))]);
        }
        err[0] = 0;
        int rc = dm_blk_inject_check(rules, err, sizeof(err));
        if (rc == 0) {
            ok++;
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_non_null(strstr(err, "injection rule '"));
            bad++;
        }
    }
    assert_true(ok > 0 && bad > 0);
}

static void test_binary_and_long_lines(void **state)
{
    (void)state;
    dm_config c;
    dm_config_init(&c);
    const char nul[] = "log-level = info\nsave-dir = /a\0b\n";
    assert_int_equal(dm_config_parse(&c, nul, sizeof(nul) - 1, "x.conf", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "x.conf:2: NUL byte"));
    char *longline = malloc(DM_CONFIG_MAX_LINE + 100);
    memset(longline, '#', DM_CONFIG_MAX_LINE + 99);
    longline[DM_CONFIG_MAX_LINE + 99] = 0;
    assert_int_equal(parse(&c, longline), -EINVAL);
    assert_non_null(strstr(err, "rsdm.conf:1: line longer than"));
    free(longline);
    /* Too many disks. */
    char text[2048] = "";
    for (int i = 0; i <= DM_CONFIG_MAX_DISKS; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof(text) - n, "[disk d%d]\n", i);
    }
    assert_int_equal(parse(&c, text), -EINVAL);
    assert_non_null(strstr(err, "more than 16 disk sections"));
    /* Random bytes never crash and are refused or accepted cleanly. */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        char junk[64];
        size_t n = (size_t)(rand() % 64);
        for (size_t i = 0; i < n; i++)
            junk[i] = (char)(rand() % 256);
        int rc = dm_config_parse(&c, junk, n, "junk", err, sizeof(err));
        assert_true(rc == 0 || rc == -EINVAL);
    }
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/dmcfgXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[disk hda]\nwerror = stop\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    dm_config c;
    dm_config_init(&c);
    assert_int_equal(dm_config_load(&c, path, err, sizeof(err)), 0);
    assert_int_equal(dm_config_disk_get(&c, "hda").werror, DM_ERR_STOP);
    /* Errors name the file. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "\nbogus\n", 7), 7);
    close(fd);
    assert_int_equal(dm_config_load(&c, path, err, sizeof(err)), -EINVAL);
    char want[64];
    snprintf(want, sizeof(want), "%s:2:", path);
    assert_non_null(strstr(err, want));
    unlink(path);
    assert_int_equal(dm_config_load(&c, path, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot open config file"));
    /* Oversize. */
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *big = malloc(DM_CONFIG_MAX_SIZE + 10);
    memset(big, '\n', DM_CONFIG_MAX_SIZE + 10);
    assert_int_equal(write(fd, big, DM_CONFIG_MAX_SIZE + 10), DM_CONFIG_MAX_SIZE + 10);
    close(fd);
    free(big);
    assert_int_equal(dm_config_load(&c, path, err, sizeof(err)), -EFBIG);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_inject),
        cmocka_unit_test(test_inject_random),
        cmocka_unit_test(test_binary_and_long_lines),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
