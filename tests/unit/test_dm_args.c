/*
 * dm_args: libxl's traditional command lines as libxl 4.17 builds them,
 * rsdm's own options, every kind of bad value, unknown options with a
 * hint.  The qemu-xen dialect is tests/unit/test_dm_args_qemu.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm_args.h"

#define ARGV(...) ((char *const[]){ "rsdm", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "rsdm", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(a, ...) dm_args_parse(a, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof(err))

static char err[512];

/* Asserts a refusal whose message contains `want`. */
#define REFUSED(want, ...)                                                                         \
    do {                                                                                           \
        dm_args a_;                                                                                \
        err[0] = 0;                                                                                \
        assert_int_equal(PARSE(&a_, __VA_ARGS__), -EINVAL);                                        \
        if (!strstr(err, want))                                                                    \
            fail_msg("message \"%s\" lacks \"%s\"", err, want);                                    \
    } while (0)

/* A full command line as libxl__build_device_model_args_old writes it for
 * an HVM guest with VNC, a pty serial, 4 vCPUs and a restore file. */
static void test_libxl_traditional_line(void **state)
{
    (void)state;
    dm_args a;
    assert_int_equal(PARSE(&a, "-d", "7", "-domain-name", "guest1", "-vnc", "127.0.0.1:0",
                           "-vncunused", "-k", "en-us", "-serial", "pty", "-videoram", "8",
                           "-std-vga", "-boot", "cda", "-usb", "-usbdevice", "tablet",
                           "-soundhw", "ac97", "-acpi", "-vcpus", "4", "-vcpu_avail", "0xf",
                           "-net", "nic,vlan=0,macaddr=00:16:3e:00:00:01,model=e1000",
                           "-net", "tap,vlan=0,ifname=vif7.0-emu,bridge=xenbr0,script=no,downscript=no",
                           "-loadvm", "/var/lib/xen/qemu-resume.7", "-M", "xenfv"),
                     0);
    assert_int_equal(a.dialect, DM_DIALECT_TRADITIONAL);
    assert_int_equal(a.domid, 7);
    assert_string_equal(a.domain_name, "guest1");
    assert_int_equal(a.nserial, 1);
    assert_string_equal(a.serial[0], "pty");
    assert_string_equal(a.loadvm, "/var/lib/xen/qemu-resume.7");
    assert_string_equal(a.machine, "xenfv");
    assert_int_equal(a.vcpus, 4);
    assert_string_equal(a.vcpu_avail, "0xf");
    assert_true(a.acpi);
    assert_false(a.net_none);
    /* The display, USB, sound and NIC options are listed as ignored. */
    assert_int_equal(a.nignored, 11);
    assert_string_equal(a.ignored[0].opt, "vnc");
    assert_string_equal(a.ignored[0].value, "127.0.0.1:0");
    assert_string_equal(a.ignored[1].opt, "vncunused");
    assert_null(a.ignored[1].value);
    assert_string_equal(a.ignored[9].opt, "net");
    dm_args_log_ignored(&a);
}

static void test_minimal_and_own_options(void **state)
{
    (void)state;
    dm_args a;
    assert_int_equal(PARSE(&a, "-d", "1", "-nographic", "-net", "none", "-M", "xenfv"), 0);
    assert_int_equal(a.domid, 1);
    assert_int_equal(a.vcpus, 1);
    assert_true(a.net_none);
    assert_null(a.loadvm);
    assert_int_equal(a.nignored, 1);
    /* --opt=value and --opt value, single or double dash. */
    assert_int_equal(PARSE(&a, "--d=32751", "--log-level=debug", "--save-dir", "/var/lib/rsdm",
                           "-config", "/etc/rsdm.conf", "-serial", "file:/tmp/x", "-serial",
                           "null", "-m", "2048"),
                     0);
    assert_int_equal(a.domid, 32751);
    assert_true(a.has_log_level);
    assert_int_equal(a.log_level, DM_LOG_DEBUG);
    assert_string_equal(a.save_dir, "/var/lib/rsdm");
    assert_string_equal(a.config, "/etc/rsdm.conf");
    assert_int_equal(a.nserial, 2);
    assert_int_equal(a.ram_mb, 2048);
    /* --help and --version need no -d. */
    assert_int_equal(PARSE(&a, "--help"), 0);
    assert_true(a.help);
    assert_int_equal(PARSE(&a, "-version"), 0);
    assert_true(a.version);
}

static void test_bad_values(void **state)
{
    (void)state;
    REFUSED("missing -d DOMID", "-M", "xenfv");
    REFUSED("-d: missing value", "-d");
    REFUSED("domain 0 is the control domain", "-d", "0");
    REFUSED("'32752' is not a domain id (1-32751)", "-d", "32752");
    REFUSED("'-3' is not a domain id", "-d", "-3");
    REFUSED("'7x' is not a domain id", "-d", "7x");
    REFUSED("'' is not a domain id", "-d", "");
    REFUSED("' 7' is not a domain id", "-d", " 7");
    REFUSED("'99999999999999999999999' is not a domain id", "-d", "99999999999999999999999");
    REFUSED("domain id given twice (3 and 4)", "-d", "3", "-domid", "4");
    REFUSED("rsdm emulates devices for HVM guests only", "-d", "3", "-M", "xenpv");
    REFUSED("unknown machine 'pc'", "-d", "3", "-M", "pc");
    REFUSED("'0' is not a vCPU count (1-128)", "-d", "3", "-vcpus", "0");
    REFUSED("'129' is not a vCPU count", "-d", "3", "-vcpus", "129");
    REFUSED("'f' is not a vCPU bitmap", "-d", "3", "-vcpu_avail", "f");
    REFUSED("'0x' is not a vCPU bitmap", "-d", "3", "-vcpu_avail", "0x");
    REFUSED("'0xg1' is not a vCPU bitmap", "-d", "3", "-vcpu_avail", "0xg1");
    REFUSED("-vcpu_avail 0x3 names vCPU 1, but -vcpus is 1", "-d", "3", "-vcpu_avail", "0x3");
    REFUSED("names vCPU 4, but -vcpus is 4", "-d", "3", "-vcpus", "4", "-vcpu_avail", "0x1f");
    REFUSED("'0' is not a memory size", "-d", "3", "-m", "0");
    REFUSED("'1G' is not a memory size", "-d", "3", "-m", "1G");
    REFUSED("-videoram: 'lots' is not a number", "-d", "3", "-videoram", "lots");
    REFUSED("unknown level 'loud'", "-d", "3", "--log-level", "loud");
    REFUSED("-save-dir: the directory is empty", "-d", "3", "--save-dir=");
    REFUSED("-loadvm: the state file name is empty", "-d", "3", "-loadvm", "");
    REFUSED("-serial: empty device", "-d", "3", "-serial", "");
    REFUSED("more than 4 serial ports", "-d", "3", "-serial", "null", "-serial", "null", "-serial",
            "null", "-serial", "null", "-serial", "null");
    REFUSED("-acpi takes no value", "-d", "3", "-acpi=1");
    REFUSED("unexpected argument 'disk.img'", "-d", "3", "disk.img");
    REFUSED("unexpected argument '-'", "-d", "3", "-");
}

static void test_unknown_options(void **state)
{
    (void)state;
    REFUSED("unknown option '-vcpu'; did you mean '-vcpus'?", "-d", "3", "-vcpu", "2");
    REFUSED("unknown option '--domain_name'; did you mean '-domain-name'?", "-d", "3",
            "--domain_name=x");
    REFUSED("unknown option '-loglevel'; did you mean '-log-level'?", "-loglevel", "debug");
    REFUSED("unknown option '-frobnicate' (see --help)", "-d", "3", "-frobnicate");
}

static void test_usage_lists_everything(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dm_args_usage(f, "rsdm");
    fclose(f);
    assert_non_null(strstr(buf, "usage: rsdm -d DOMID"));
    assert_non_null(strstr(buf, "rsdm -xen-domid DOMID"));
    assert_non_null(strstr(buf, "-incoming fd:N"));
    assert_non_null(strstr(buf, "--log-level LEVEL"));
    assert_non_null(strstr(buf, "-serial DEV"));
    assert_non_null(strstr(buf, "-vnc"));
    assert_non_null(strstr(buf, "ignored"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libxl_traditional_line),
        cmocka_unit_test(test_minimal_and_own_options),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_unknown_options),
        cmocka_unit_test(test_usage_lists_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
