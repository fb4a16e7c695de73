/*
 * The platform devices of a real rsdm-sim on the simulated hypervisor: a
 * guest's CF8/CFC configuration reads (translated by the simulator into
 * PCI_CONFIG ioreqs) find the chipset where hvmloader looks; a reset write
 * makes the domain shut down for reboot; ACPI S5 powers it off and rsdm
 * exits cleanly.
 *
 * The hypervisor runs in this process (tests/lib/xsim_emu); xenstore is a
 * `xensim run` daemon; rsdm-sim is a child process, as on a host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/xsim_emu.h"
#include "guest_fw.h"
#include "hv.h"

#define WAIT_MS 10000
#define SHUTDOWN_POWEROFF 0
#define SHUTDOWN_REBOOT 1

typedef struct fixture {
    char dir[64];
    char bin[4096];
    pid_t dm;
    uint32_t dom;
    struct hv_domain *d;
    struct xs_handle *xs;
    char state[128], runstate[128], command[128];
} fixture;

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Until path reads want; woken by the watch on it (registered at set-up). */
static int wait_value(struct xs_handle *xs, const char *path, const char *want)
{
    for (int left = WAIT_MS; left > 0;) {
        unsigned len;
        char *v = xs_read(xs, XBT_NULL, path, &len);
        int match = v && strcmp(v, want) == 0;
        free(v);
        if (match)
            return 0;
        struct pollfd p = { xs_fileno(xs), POLLIN, 0 };
        int n = poll(&p, 1, 100);
        if (n > 0) {
            unsigned k;
            free(xs_read_watch(xs, &k));
        } else {
            left -= 100;    /* only an unanswered wait counts against the bound */
        }
    }
    return -ETIMEDOUT;
}

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    const char *b = getenv("RSDM_BUILD");
    snprintf(f.bin, sizeof(f.bin), "%s/bin", b ? b : "build");
    snprintf(f.dir, sizeof(f.dir), "/tmp/test-platform.XXXXXX");
    assert_non_null(mkdtemp(f.dir));

    char xsbin[4200], rundir[128], pidfile[128], log[128], sock[160];
    snprintf(xsbin, sizeof(xsbin), "%s/xensim", f.bin);
    snprintf(rundir, sizeof(rundir), "%s/xs", f.dir);
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", f.dir);
    snprintf(log, sizeof(log), "%s/log", f.dir);
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", rundir);
    char *xsargv[] = { xsbin, "run", "--rundir", rundir, "--daemon", "--pidfile", pidfile, NULL };
    int st;
    pid_t p = spawn(xsargv, log);
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "xensim did not start (is %s built?)\n", xsbin);
        return -1;
    }
    setenv("XENSTORED_PATH", sock, 1);
    assert_int_equal(xsim_fixture_start(), 0);
    hv_log_quiet(true);
    assert_non_null(f.xs = xs_open(0));

    int id = hv_domain_create(0, 1, 16, "platform");
    assert_true(id > 0);
    f.dom = (uint32_t)id;
    f.d = hv_domain_get(f.dom);
    char dir[96];
    snprintf(dir, sizeof(dir), "/local/domain/0/device-model/%u", f.dom);
    snprintf(f.state, sizeof(f.state), "%s/state", dir);
    snprintf(f.runstate, sizeof(f.runstate), "%s/runstate", dir);
    snprintf(f.command, sizeof(f.command), "%s/command", dir);
    assert_true(xs_mkdir(f.xs, XBT_NULL, dir));
    assert_true(xs_watch(f.xs, f.state, "s"));
    assert_true(xs_watch(f.xs, f.runstate, "r"));

    char rsdm[4200], domarg[16];
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", f.bin);
    snprintf(domarg, sizeof(domarg), "%u", f.dom);
    char *dmargv[] = { rsdm, "-d", domarg, "-serial", "null", "--log-level", "warning", NULL };
    f.dm = spawn(dmargv, log);
    assert_int_equal(wait_value(f.xs, f.state, "running"), 0);
    assert_int_equal(hv_domain_unpause(f.dom), 0);      /* as libxl does */
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st;
    if (f->dm > 0) {
        kill(f->dm, SIGTERM);
        assert_int_equal(waitpid(f->dm, &st, 0), f->dm);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);  /* a clean exit on SIGTERM */
    }
    xs_close(f->xs);
    hv_domain_put(f->d);
    hv_domain_destroy(f->dom);
    xsim_fixture_stop();
    char pidfile[128];
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", f->dir);
    FILE *pf = fopen(pidfile, "r");
    int xpid = 0;
    if (pf && fscanf(pf, "%d", &xpid) == 1 && xpid > 0)
        kill(xpid, SIGTERM);
    if (pf)
        fclose(pf);
    char rm[160];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", f->dir);
    return system(rm) == 0 ? 0 : -1;
}

static uint32_t cfg(fixture *f, unsigned dev, unsigned fn, unsigned reg, unsigned size)
{
    uint64_t v = 0;
    assert_int_equal(xsim_pci_cfg(f->d, 0, false, 0, dev, fn, reg, size, &v), 0);
    return (uint32_t)v;
}

/* Until the domain is shut down (Xen's reason in *reason). */
static int wait_shutdown(fixture *f, unsigned *reason)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        struct hv_domain_info info;
        if (hv_domain_info(f->dom, &info) == 0 && (info.shut_down || info.shutting_down)) {
            *reason = info.shutdown_reason;
            return 0;
        }
        nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
    }
    return -ETIMEDOUT;
}

static void test_scan_finds_chipset(void **state)
{
    fixture *f = *state;
    assert_int_equal(cfg(f, 0, 0, 0, 4), 0x12378086);         /* i440FX */
    assert_int_equal(cfg(f, 1, 0, 0, 4), 0x70008086);         /* PIIX3, hvmloader's check */
    assert_int_equal(cfg(f, 1, 0, 0x0e, 1) & 0x80, 0x80);     /* multifunction */
    assert_int_equal(cfg(f, 1, 3, 0, 4), 0x71138086);         /* PIIX4 PM */
    assert_int_equal(cfg(f, 2, 0, 0, 4), 0x00015853);         /* Xen platform */
    assert_int_equal(cfg(f, 4, 0, 0, 4), 0xffffffff);         /* empty slot */
    /* PIRQ routing write, read back through the same path. */
    uint64_t v = 10;
    assert_int_equal(xsim_pci_cfg(f->d, 0, true, 0, 1, 0, 0x60, 1, &v), 0);
    assert_int_equal(cfg(f, 1, 0, 0x60, 1), 10);
    /* The Xen platform magic on port 0x10. */
    v = 0;
    assert_int_equal(xsim_pio(f->d, 0, false, 0x10, 2, &v), 0);
    assert_int_equal(v, 0x49d2);
}

/* A guest_bus over the in-process hypervisor: ports and MMIO only, which
 * is all the firmware's PCI pass uses. */
static int hv_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val)
{
    uint64_t v = 0;
    int r = xsim_pio(((fixture *)b->priv)->d, 0, false, port, size, &v);
    *val = (uint32_t)v;
    return r;
}

static int hv_out(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val)
{
    uint64_t v = val;
    return xsim_pio(((fixture *)b->priv)->d, 0, true, port, size, &v);
}

static int hv_mr(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t *val)
{
    return xsim_mmio(((fixture *)b->priv)->d, 0, false, addr, size, val);
}

static int hv_mw(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t val)
{
    return xsim_mmio(((fixture *)b->priv)->d, 0, true, addr, size, &val);
}

static const struct guest_bus_ops hv_bus_ops = {
    .pio_in = hv_in, .pio_out = hv_out, .mmio_read = hv_mr, .mmio_write = hv_mw,
};

/* issue 5's firmware driver: hvmloader's checks, PIRQ routes, BARs. */
static void test_firmware_pci_pass(void **state)
{
    fixture *f = *state;
    static struct guest_bus b;
    static struct guest_fw fw;
    memset(&fw, 0, sizeof(fw));
    guest_bus_init(&b, &hv_bus_ops, f, 0x100000, 0x200000);
    int r = guest_fw_scan(&b, &fw, true);
    if (r != 0)
        fprintf(stderr, "firmware: %s\n", guest_bus_error(&b));
    assert_int_equal(r, 0);
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x1237));
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x7000));
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x7113));
    const struct guest_pci_dev *x = guest_fw_find(&fw, 0x5853, 0x0001);
    assert_non_null(x);
    assert_true(x->bar[0] != 0 && x->bar[1] != 0);
    /* The routes it chose are in the ISA bridge. */
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(cfg(f, 1, 0, 0x60 + i, 1), fw.pirq_irq[i]);
}

static void test_reset_reboots_domain(void **state)
{
    fixture *f = *state;
    uint64_t v = 0x06;
    xsim_pio(f->d, 0, true, 0xcf9, 1, &v);
    unsigned reason = 99;
    assert_int_equal(wait_shutdown(f, &reason), 0);
    assert_int_equal(reason, SHUTDOWN_REBOOT);
}

static void test_s5_powers_off_and_dm_exits(void **state)
{
    fixture *f = *state;
    uint64_t v = 0x2000;                  /* SLP_TYP 0 (S5) | SLP_EN */
    xsim_pio(f->d, 0, true, 0xb004, 2, &v);
    unsigned reason = 99;
    assert_int_equal(wait_shutdown(f, &reason), 0);
    assert_int_equal(reason, SHUTDOWN_POWEROFF);
    int st = 0;
    pid_t r = 0;
    for (int i = 0; i < WAIT_MS / 10 && r == 0; i++) {
        r = waitpid(f->dm, &st, WNOHANG);
        if (r == 0)
            nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
    }
    assert_int_equal(r, f->dm);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    f->dm = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scan_finds_chipset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware_pci_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_reboots_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s5_powers_off_and_dm_exits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
