/*
 * 1,000 stop/continue cycles of a real rsdm-sim, driven over xenstore as
 * the traditional dialect does, while a guest vCPU keeps accessing the
 * dm's UART: every access is answered by rsdm (never by Xen's null handler,
 * so no read of all-ones and no lost write), the register contents survive
 * every stop, and the dm's domain pause reference comes and goes with its
 * own stop (balanced at the end).
 *
 * The hypervisor runs in this process (tests/lib/xsim_emu); xenstore is a
 * `xensim run` daemon; rsdm-sim is a child process, as on a host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/xsim_emu.h"
#include "hv.h"

#define CYCLES 1000
#define UART_SCR 0x3ff              /* scratch register: plain storage */
#define WAIT_MS 10000

typedef struct fixture {
    char dir[64];
    char bin[4096];
    pid_t dm;
    uint32_t dom;
    struct hv_domain *d;
    struct xs_handle *xs;
    char state[128], runstate[128], command[128];
    atomic_bool stop_guest;
    atomic_ulong accesses, mismatches, failures;
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

static int pause_count(uint32_t dom)
{
    struct hv_domain_info info;
    return hv_domain_info(dom, &info) == 0 ? (int)info.pause_count : -1;
}

/* The guest: write a value to the scratch register, read it back, forever. */
static void *guest(void *arg)
{
    fixture *f = arg;
    uint8_t value = 0;
    while (!atomic_load(&f->stop_guest)) {
        uint64_t w = ++value, r = 0;
        if (xsim_pio(f->d, 0, true, UART_SCR, 1, &w) != 0 ||
            xsim_pio(f->d, 0, false, UART_SCR, 1, &r) != 0) {
            atomic_fetch_add(&f->failures, 1);
            continue;
        }
        if (r != w)
            atomic_fetch_add(&f->mismatches, 1);
        atomic_fetch_add(&f->accesses, 2);
    }
    return NULL;
}

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    const char *b = getenv("RSDM_BUILD");
    snprintf(f.bin, sizeof(f.bin), "%s/bin", b ? b : "build");
    snprintf(f.dir, sizeof(f.dir), "/tmp/test-stopcont.XXXXXX");
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

    int id = hv_domain_create(0, 1, 16, "stopcont");
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
    kill(f->dm, SIGTERM);
    assert_int_equal(waitpid(f->dm, &st, 0), f->dm);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);    /* a clean exit on SIGTERM */
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

static void test_stop_continue_cycles_during_guest_io(void **state)
{
    fixture *f = *state;
    pthread_t g;
    assert_int_equal(pthread_create(&g, NULL, guest, f), 0);
    for (int i = 0; i < CYCLES; i++) {
        assert_true(xs_write(f->xs, XBT_NULL, f->command, "stop", 4));
        assert_int_equal(wait_value(f->xs, f->runstate, "paused holds=paused"), 0);
        /* rsdm's own stop: one pause reference on the domain. */
        assert_int_equal(pause_count(f->dom), 1);
        assert_true(xs_write(f->xs, XBT_NULL, f->command, "continue", 8));
        assert_int_equal(wait_value(f->xs, f->runstate, "running holds="), 0);
        /* A paused vCPU makes no progress: give the guest a moment of
         * running time each cycle by waiting for one more access. */
        unsigned long seen = atomic_load(&f->accesses);
        for (int spins = 0; atomic_load(&f->accesses) == seen && spins < 1000000; spins++)
            sched_yield();
    }
    atomic_store(&f->stop_guest, true);
    pthread_join(g, NULL);

    assert_int_equal(atomic_load(&f->failures), 0);
    assert_int_equal(atomic_load(&f->mismatches), 0);
    assert_true(atomic_load(&f->accesses) >= CYCLES);
    /* Nothing the dm registered was ever answered by Xen's null handler. */
    assert_int_equal(hv_null_hits_total(f->dom), 0);
    assert_int_equal(pause_count(f->dom), 0);
    printf("%d stop/continue cycles, %lu guest accesses, 0 null-handler hits\n", CYCLES,
           atomic_load(&f->accesses));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stop_continue_cycles_during_guest_io, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
