/*
 * rsdm-sim on a simulated host (rsdm_sim.h).
 */
#include "rsdm_sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#include "hv.h"
#include "proc_util.h"
#include "xsim_emu.h"

#define START_WAIT_MS 10000

int rsdm_sim_wait_value(rsdm_sim *s, const char *path, const char *want, int timeout_ms)
{
    for (int left = timeout_ms; left > 0;) {
        unsigned len;
        char *v = xs_read(s->xs, XBT_NULL, path, &len);
        int match = v && strcmp(v, want) == 0;
        free(v);
        if (match)
            return 0;
        struct pollfd p = { xs_fileno(s->xs), POLLIN, 0 };
        if (poll(&p, 1, 100) > 0) {
            unsigned k;
            free(xs_read_watch(s->xs, &k));
        } else {
            left -= 100;    /* only a wait without any event counts against the bound */
        }
    }
    return -ETIMEDOUT;
}

int rsdm_sim_start(rsdm_sim *s, const char *name, unsigned vcpus)
{
    memset(s, 0, sizeof(*s));
    const char *b = getenv("RSDM_BUILD");
    snprintf(s->bin, sizeof(s->bin), "%s/bin", b ? b : "build");
    snprintf(s->dir, sizeof(s->dir), "/tmp/rsdm-sim.XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("rsdm_sim: mkdtemp");
        return -1;
    }
    char xsbin[4200], rundir[128], pidfile[128], log[128], sock[160];
    snprintf(xsbin, sizeof(xsbin), "%s/xensim", s->bin);
    snprintf(rundir, sizeof(rundir), "%s/xs", s->dir);
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", s->dir);
    snprintf(log, sizeof(log), "%s/log", s->dir);
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", rundir);
    char *xsargv[] = { xsbin, "run", "--rundir", rundir, "--daemon", "--pidfile", pidfile, NULL };
    int st;
    pid_t p = proc_spawn_logged(xsargv, log);
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "rsdm_sim: xensim did not start (is %s built? log %s)\n", xsbin, log);
        goto fail;
    }
    setenv("XENSTORED_PATH", sock, 1);
    if (xsim_fixture_start() < 0) {
        fprintf(stderr, "rsdm_sim: the in-process hypervisor did not start\n");
        goto fail;
    }
    hv_log_quiet(true);
    if (!(s->xs = xs_open(0))) {
        perror("rsdm_sim: xs_open");
        goto fail;
    }
    int id = hv_domain_create(0, vcpus, 16, name);
    if (id <= 0) {
        fprintf(stderr, "rsdm_sim: hv_domain_create: %s\n", strerror(-id));
        goto fail;
    }
    s->dom = (uint32_t)id;
    s->d = hv_domain_get(s->dom);
    char dir[96];
    snprintf(dir, sizeof(dir), "/local/domain/0/device-model/%u", s->dom);
    snprintf(s->state, sizeof(s->state), "%s/state", dir);
    snprintf(s->runstate, sizeof(s->runstate), "%s/runstate", dir);
    snprintf(s->command, sizeof(s->command), "%s/command", dir);
    if (!xs_mkdir(s->xs, XBT_NULL, dir) || !xs_watch(s->xs, s->state, "s") ||
        !xs_watch(s->xs, s->runstate, "r")) {
        perror("rsdm_sim: xenstore set-up");
        goto fail;
    }
    char rsdm[4200], domarg[16];
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", s->bin);
    snprintf(domarg, sizeof(domarg), "%u", s->dom);
    char *dmargv[] = { rsdm, "-d", domarg, "-serial", "null", "--log-level", "warning", NULL };
    s->dm = proc_spawn_logged(dmargv, log);
    if (rsdm_sim_wait_value(s, s->state, "running", START_WAIT_MS) < 0) {
        fprintf(stderr, "rsdm_sim: rsdm-sim never wrote running (log %s)\n", log);
        goto fail;
    }
    if (hv_domain_unpause(s->dom) < 0) {        /* as libxl does once running */
        fprintf(stderr, "rsdm_sim: unpausing the domain failed\n");
        goto fail;
    }
    return 0;
fail:
    rsdm_sim_stop(s);
    return -1;
}

int rsdm_sim_stop_dm(rsdm_sim *s)
{
    if (s->dm <= 0)
        return -1;
    int st;
    kill(s->dm, SIGTERM);
    pid_t r = waitpid(s->dm, &st, 0);
    s->dm = 0;
    return r > 0 ? st : -1;
}

void rsdm_sim_stop(rsdm_sim *s)
{
    rsdm_sim_stop_dm(s);
    if (s->xs)
        xs_close(s->xs);
    s->xs = NULL;
    if (s->d) {
        hv_domain_put(s->d);
        hv_domain_destroy(s->dom);
        s->d = NULL;
    }
    xsim_fixture_stop();
    char pidfile[128];
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", s->dir);
    FILE *pf = fopen(pidfile, "r");
    int xpid = 0;
    if (pf && fscanf(pf, "%d", &xpid) == 1 && xpid > 0)
        kill(xpid, SIGTERM);
    if (pf)
        fclose(pf);
    if (s->dir[0]) {
        char rm[160];
        snprintf(rm, sizeof(rm), "rm -rf '%s'", s->dir);
        if (system(rm) != 0)
            fprintf(stderr, "rsdm_sim: could not remove %s\n", s->dir);
    }
}
