/*
 * dm_args, qemu-xen dialect: libxl 4.17's lines (plain, dm_restrict with a
 * pre-opened QMP fd, restore), libxl 4.20's probe, XenServer's qemu-wrapper
 * line, the disks as libxl writes them (IDE and AHCI), QEMU's option-string
 * syntax, and every refusal naming what is wrong.
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
static dm_args a;          /* large (the disk list): not on the stack */

#define REFUSED(want, ...)                                                                         \
    do {                                                                                           \
        err[0] = 0;                                                                                \
        assert_int_equal(PARSE(&a, __VA_ARGS__), -EINVAL);                                         \
        if (!strstr(err, want))                                                                    \
            fail_msg("message \"%s\" lacks \"%s\"", err, want);                                    \
    } while (0)

#define QMP_SOCK "socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-5,server=on,wait=off"
#define STAT_SOCK "socket,id=libxenstat-cmd,path=/var/run/xen/qmp-libxenstat-5,server=on,wait=off"

/* libxl__build_device_model_args_new for an HVM guest without dm_restrict:
 * two monitors, VNC off, a pty serial, 2 of 4 vCPUs, one NIC, two IDE disks. */
static void test_libxl_417_line(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&a, "-xen-domid", "5", "-no-shutdown", "-chardev", QMP_SOCK, "-mon",
                           "chardev=libxl-cmd,mode=control", "-chardev", STAT_SOCK, "-mon",
                           "chardev=libxenstat-cmd,mode=control", "-nodefaults",
                           "-no-user-config", "-name", "guest5", "-vnc", "none", "-display",
                           "none", "-serial", "pty", "-device", "cirrus-vga,vgamem_mb=8",
                           "-boot", "order=cda", "-smp", "2,maxcpus=4", "-device",
                           "rtl8139,id=nic0,netdev=net0,mac=00:16:3e:11:22:33", "-netdev",
                           "type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,downscript=no",
                           "-machine", "xenfv,suppress-vmdesc=on", "-m", "1016", "-drive",
                           "file=/srv/a.img,if=ide,index=0,media=disk,format=raw,cache=writeback",
                           "-drive",
                           "file=/srv/b,,c.img,if=ide,index=1,media=disk,format=raw,cache=writeback,"
                           "werror=stop,rerror=report"),
                     0);
    assert_int_equal(a.dialect, DM_DIALECT_QEMU_XEN);
    assert_int_equal(a.domid, 5);
    assert_true(a.no_shutdown);
    assert_false(a.start_paused);
    assert_int_equal(a.incoming_fd, -1);
    assert_false(a.probe);
    assert_true(a.acpi);
    assert_string_equal(a.machine, "xenfv");
    assert_string_equal(a.domain_name, "guest5");
    assert_int_equal(a.vcpus, 4);
    assert_int_equal(a.ram_mb, 1016);
    assert_int_equal(a.nmonitors, 2);
    assert_string_equal(a.monitors[0].id, "libxl-cmd");
    assert_string_equal(a.monitors[0].path, "/var/run/xen/qmp-libxl-5");
    assert_int_equal(a.monitors[0].fd, -1);
    assert_string_equal(a.monitors[1].path, "/var/run/xen/qmp-libxenstat-5");
    assert_int_equal(a.disks.n, 2);
    assert_string_equal(a.disks.disk[0].name, "hda");
    assert_string_equal(a.disks.disk[0].path, "/srv/a.img");
    assert_string_equal(a.disks.disk[0].format, "raw");
    assert_int_equal(a.disks.disk[0].bus, DM_DISK_IDE);
    assert_int_equal(a.disks.disk[0].unit, 0);
    assert_true(a.disks.disk[0].has_cache);
    assert_int_equal(a.disks.disk[0].cache, DM_CACHE_WRITEBACK);
    assert_false(a.disks.disk[0].has_werror);
    assert_string_equal(a.disks.disk[1].name, "hdb");
    assert_string_equal(a.disks.disk[1].path, "/srv/b,c.img");   /* ",," is a comma */
    assert_true(a.disks.disk[1].has_werror);
    assert_int_equal(a.disks.disk[1].werror, DM_ERR_STOP);
    assert_true(a.disks.disk[1].has_rerror);
    assert_int_equal(a.disks.disk[1].rerror, DM_ERR_REPORT);
    assert_false(a.restrict_xen);
    /* vnc, display, cirrus-vga, boot, rtl8139, netdev, nodefaults, no-user-config */
    assert_int_equal(a.nignored, 8);
    dm_args_log_ignored(&a);
}

/* dm_restrict: the pre-opened listening fd, -S, restriction, chroot and
 * user; a restore adds -incoming fd:N.  4.20+ says -run-with. */
static void test_libxl_restricted_restore(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&a, "-xen-domid", "9", "-no-shutdown", "-chardev",
                           "socket,id=libxl-cmd,fd=3,server=on,wait=off", "-S", "-mon",
                           "chardev=libxl-cmd,mode=control", "-nodefaults", "-no-user-config",
                           "-xen-domid-restrict", "-chroot", "/var/run/xen/qemu-root-9",
                           "-incoming", "fd:17", "-machine", "xenfv,suppress-vmdesc=on", "-m",
                           "512", "-runas", "131081:131081"),
                     0);
    assert_true(a.start_paused);
    assert_int_equal(a.incoming_fd, 17);
    assert_int_equal(a.nmonitors, 1);
    assert_int_equal(a.monitors[0].fd, 3);
    assert_string_equal(a.monitors[0].path, "");
    assert_true(a.restrict_xen);
    assert_string_equal(a.chroot_dir, "/var/run/xen/qemu-root-9");
    assert_string_equal(a.runas, "131081:131081");

    assert_int_equal(PARSE(&a, "-xen-domid", "9", "-chardev",
                           "socket,id=libxl-cmd,fd=3,server=on,wait=off", "-S", "-mon",
                           "chardev=libxl-cmd,mode=control", "-xen-domid-restrict", "-run-with",
                           "chroot=/run/root-9,user=xen-qemuuser-shared", "-machine", "xenfv"),
                     0);
    assert_string_equal(a.chroot_dir, "/run/root-9");
    assert_string_equal(a.runas, "xen-qemuuser-shared");
}

/* libxl 4.20's capability probe: no domain, no Xen. */
static void test_probe(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&a, "-S", "-no-user-config", "-nodefaults", "-nographic", "-machine",
                           "none,accel=xen", "-chardev",
                           "socket,id=libxl-cmd,fd=4,server=on,wait=off", "-mon",
                           "chardev=libxl-cmd,mode=control"),
                     0);
    assert_true(a.probe);
    assert_int_equal(a.domid, -1);
    assert_string_equal(a.machine, "none");
    assert_int_equal(a.monitors[0].fd, 4);
    REFUSED("needs a QMP monitor", "-S", "-machine", "none");
    REFUSED("takes no disks", "-machine", "none", "-chardev", "socket,id=m,fd=4,server=on",
            "-mon", "chardev=m,mode=control", "-incoming", "fd:5");
}

/* XenServer's qemu-wrapper line: -qmp sockets for commands and events. */
static void test_xenopsd_line(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&a, "-xen-domid", "12", "-m", "size=2048", "-boot", "order=cd",
                           "-smp", "2,maxcpus=2", "-serial", "pty", "-display", "none",
                           "-nodefaults", "-trace", "enable=xen_platform_log", "-sandbox",
                           "on,obsolete=deny", "-S", "-parallel", "null", "-qmp",
                           "unix:/var/run/xen/qmp-libxl-12,server,nowait", "-qmp",
                           "unix:/var/run/xen/qmp-event-12,server=on,wait=off", "-device",
                           "xen-platform,addr=3,device-id=0x0001,revision=0x2", "-drive",
                           "file=/dev/sm/vdi,if=none,id=ide0-hd0,format=raw", "-device",
                           "ide-hd,drive=ide0-hd0,bus=ide.0,unit=0", "-machine",
                           "pc-i440fx-2.10,accel=xen,max-ram-below-4g=3758096384,"
                           "suppress-vmdesc=on"),
                     -EINVAL);
    /* XenServer names a versioned PC machine: refused, naming it. */
    assert_non_null(strstr(err, "unknown machine 'pc-i440fx-2.10'"));
    assert_int_equal(PARSE(&a, "-xen-domid", "12", "-m", "size=2048", "-smp", "2,maxcpus=2",
                           "-S", "-qmp", "unix:/var/run/xen/qmp-libxl-12,server,nowait", "-qmp",
                           "unix:/var/run/xen/qmp-event-12,server=on,wait=off", "-drive",
                           "file=/dev/sm/vdi,if=none,id=ide0-hd0,format=raw", "-device",
                           "ide-hd,drive=ide0-hd0,bus=ide.1,unit=1", "-machine", "xenfv"),
                     0);
    assert_int_equal(a.ram_mb, 2048);
    assert_int_equal(a.nmonitors, 2);
    assert_string_equal(a.monitors[0].path, "/var/run/xen/qmp-libxl-12");
    assert_string_equal(a.monitors[1].path, "/var/run/xen/qmp-event-12");
    assert_string_equal(a.monitors[1].id, "qmp1");
    assert_int_equal(a.disks.n, 1);
    assert_int_equal(a.disks.disk[0].bus, DM_DISK_IDE);
    assert_int_equal(a.disks.disk[0].unit, 3);
    assert_string_equal(a.disks.disk[0].name, "ide0-hd0");
}

/* libxl with hdtype=ahci: -device ahci, if=none drives, ide-hd on its ports. */
static void test_ahci_disks(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&a, "-xen-domid", "3", "-machine", "xenfv", "-device", "ahci,id=ahci0",
                           "-drive",
                           "file=/img/0,if=none,id=ahcidisk-0,format=raw,cache=writeback",
                           "-device", "ide-hd,bus=ahci0.0,unit=0,drive=ahcidisk-0", "-drive",
                           "file=/img/1,if=none,id=ahcidisk-1,format=raw,cache=unsafe,werror=enospc",
                           "-device", "ide-hd,bus=ahci0.5,drive=ahcidisk-1"),
                     0);
    assert_int_equal(a.disks.n, 2);
    assert_int_equal(a.disks.disk[0].bus, DM_DISK_AHCI);
    assert_int_equal(a.disks.disk[0].unit, 0);
    assert_string_equal(a.disks.disk[0].name, "ahcidisk-0");
    assert_int_equal(a.disks.disk[1].unit, 5);
    assert_int_equal(a.disks.disk[1].cache, DM_CACHE_UNSAFE);
    assert_int_equal(a.disks.disk[1].werror, DM_ERR_ENOSPC);
    /* An empty CD-ROM drive as libxl writes it: a cdrom entry (the disk
     * module refuses it at start-up, naming it). */
    assert_int_equal(PARSE(&a, "-xen-domid", "3", "-drive",
                           "if=ide,index=2,readonly=on,media=cdrom,id=ide-5632"),
                     0);
    assert_true(a.disks.disk[0].cdrom);
    assert_true(a.disks.disk[0].read_only);
    assert_int_equal(a.disks.disk[0].unit, 2);

    REFUSED("not attached by any -device", "-xen-domid", "3", "-drive",
            "file=/x,if=none,id=d0");
    REFUSED("no unattached -drive if=none,id=d9", "-xen-domid", "3", "-device", "ahci,id=a",
            "-device", "ide-hd,bus=a.0,drive=d9");
    REFUSED("bus='b.1' is neither", "-xen-domid", "3", "-drive", "file=/x,if=none,id=d0",
            "-device", "ide-hd,bus=b.1,drive=d0");
    REFUSED("IDE unit 0 is given twice", "-xen-domid", "3", "-drive", "file=/a,if=ide,index=0",
            "-drive", "file=/b,if=ide,index=0");
    REFUSED("if=virtio: rsdm emulates IDE and AHCI disks only", "-xen-domid", "3", "-drive",
            "file=/a,if=virtio");
    REFUSED("rerror='enospc' is not one of", "-xen-domid", "3", "-drive",
            "file=/a,if=ide,rerror=enospc");
    REFUSED("cache='directsync' is not served", "-xen-domid", "3", "-drive",
            "file=/a,if=ide,cache=directsync");
    REFUSED("unknown parameter 'bogus'", "-xen-domid", "3", "-drive", "file=/a,bogus=1");
    REFUSED("does not emulate 'scsi-hd'", "-xen-domid", "3", "-device", "scsi-hd,drive=x");
    REFUSED("a disk needs file=", "-xen-domid", "3", "-drive", "if=ide,index=0,media=disk");
}

static void test_refusals(void **state)
{
    (void)state;
    REFUSED("missing -xen-domid DOMID", "-S", "-machine", "xenfv");
    REFUSED("-d belongs to the traditional command line", "-xen-domid", "4", "-d", "4");
    REFUSED("-kernel belongs to the qemu-xen", "-d", "4", "-kernel", "/k");
    REFUSED("fd:N only", "-xen-domid", "4", "-incoming", "tcp:0:4444");
    REFUSED("'x' is not a file descriptor", "-xen-domid", "4", "-incoming", "fd:x");
    REFUSED("-incoming given twice", "-xen-domid", "4", "-incoming", "fd:3", "-incoming", "fd:4");
    REFUSED("no -chardev socket with id 'nope'", "-xen-domid", "4", "-mon",
            "chardev=nope,mode=control");
    REFUSED("QMP monitors only (mode=control)", "-xen-domid", "4", "-chardev",
            "socket,id=m,path=/tmp/m,server=on", "-mon", "chardev=m");
    REFUSED("exactly one of path= and fd=", "-xen-domid", "4", "-chardev",
            "socket,id=m,path=/tmp/m,fd=3,server=on");
    REFUSED("server only (server=on)", "-xen-domid", "4", "-chardev", "socket,id=m,path=/tmp/m");
    REFUSED("duplicate chardev id 'm'", "-xen-domid", "4", "-chardev",
            "socket,id=m,path=/a,server=on", "-chardev", "socket,id=m,path=/b,server=on");
    REFUSED("already has a monitor", "-xen-domid", "4", "-chardev",
            "socket,id=m,path=/a,server=on", "-mon", "chardev=m,mode=control", "-mon",
            "chardev=m,mode=control");
    REFUSED("Unix sockets only", "-xen-domid", "4", "-qmp", "tcp:localhost:4444,server");
    REFUSED("more than 4 QMP monitors", "-xen-domid", "4", "-qmp", "unix:/a,server", "-qmp",
            "unix:/b,server", "-qmp", "unix:/c,server", "-qmp", "unix:/d,server", "-qmp",
            "unix:/e,server");
    REFUSED("xen_platform_pci=1", "-xen-domid", "4", "-machine", "pc,accel=xen");
    REFUSED("accel=kvm: rsdm runs on Xen only", "-xen-domid", "4", "-machine", "xenfv,accel=kvm");
    REFUSED("igd-passthru=on", "-xen-domid", "4", "-machine", "xenfv,igd-passthru=on");
    REFUSED("xenpv: rsdm emulates devices for HVM guests only", "-xen-domid", "4", "-machine",
            "xenpv");
    REFUSED("cpus (4) exceeds maxcpus (2)", "-xen-domid", "4", "-smp", "4,maxcpus=2");
    REFUSED("'12X' is not a memory size", "-xen-domid", "4", "-m", "12X");
    REFUSED("-xen-attach: not served", "-xen-domid", "4", "-xen-attach");
    REFUSED("'rel/dir' is not an absolute directory", "-xen-domid", "4", "-chroot", "rel/dir");
    REFUSED("unknown parameter 'frob'", "-xen-domid", "4", "-run-with", "frob=1");
    REFUSED("unknown option '-frobnicate'", "-xen-domid", "4", "-frobnicate");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libxl_417_line),
        cmocka_unit_test(test_libxl_restricted_restore),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_xenopsd_line),
        cmocka_unit_test(test_ahci_disks),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
