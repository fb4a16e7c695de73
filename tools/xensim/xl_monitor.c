/* xl_monitor.c: what xl leaves behind after `create` (xl_vmcontrol.c's
 * create_domain loop after daemonising): it waits for the domain's
 * shutdown and applies on_poweroff / on_reboot / on_crash — destroy, or
 * destroy and create anew from the same config (a new domain id and a new
 * device model), or leave it (preserve).
 *
 * Events, no polling: a watch on @releaseDomain (xenstored fires it when a
 * domain shuts down and when it is released) and a connection to the
 * simulator's control socket held open, whose end says the simulator is
 * gone, so a monitor never outlives it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/sched.h>

#include "hv_client.h"
#include "xl_cmd.h"
#include "xl_internal.h"

#define MON_TOKEN "xl-monitor"
/* how long a restart waits for the old dm it spawned to go after SIGHUP */

static const char *action_name(enum xl_action a)
{
    switch (a) {
    case XL_ACTION_DESTROY: return "destroy";
    case XL_ACTION_RESTART: return "restart";
    case XL_ACTION_PRESERVE: return "preserve";
    }
    return "?";
}

/* The config the domain was created from, as xl keeps it with the domain
 * (libxl_retrieve_domain_configuration); parsed into cfg.  Malloc'd text,
 * or NULL after a message. */
static char *domain_config(unsigned domid, struct xl_cfg *cfg)
{
    char p[64], err[512];
    snprintf(p, sizeof(p), "/libxl/%u/xl-config", domid);
    char *text = xs_r(p);
    if (!text) {
        die("Domain %u: no stored configuration at %s: %s", domid, p, strerror(errno));
        return NULL;
    }
    if (xl_cfg_parse(text, p, cfg, err, sizeof(err)) < 0) {
        die("Domain %u: stored configuration does not parse: %s", domid, err);
        free(text);
        return NULL;
    }
    return text;
}

/* Device models this process spawned for restarted domains, once they
 * exit after their domain's destroy. */
static void reap_children(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* The dm of a domain this monitor restarted is its child: after the
 * destroy's SIGHUP, wait (bounded, on a pidfd) for it to exit and reap it,
 * so no zombie stays while the new domain runs.  A dm that is not ours
 * (the first one, spawned by `xl create`) is reaped by init. */
static void reap_dm(pid_t pid)
{
    if (pid <= 1 || waitpid(pid, NULL, WNOHANG) != 0)
        return;   /* reaped now, or not our child */
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return;
    struct pollfd p = { .fd = pfd, .events = POLLIN };
    if (poll(&p, 1, bound(DM_STOP_TIMEOUT) * 1000) > 0)
        waitpid(pid, NULL, WNOHANG);
    else
        printf("device model %ld still running %d s after SIGHUP; left to exit\n", (long)pid,
               bound(DM_STOP_TIMEOUT));
    close(pfd);
}

static pid_t domain_dm_pid(unsigned domid)
{
    char p[64];
    snprintf(p, sizeof(p), "/local/domain/%u/image/device-model-pid", domid);
    char *v = xs_r(p);
    long pid = v ? strtol(v, NULL, 10) : 0;
    free(v);
    return pid > 1 ? (pid_t)pid : 0;
}

/* The domain shut down: apply its action.  Returns the domain to monitor
 * next (the restarted one), or 0 when the monitor's work is done. */
static unsigned handle_shutdown(unsigned domid, const struct hv_wire_dominfo *w)
{
    unsigned reason = w->shutdown_reason;
    printf("Domain %u has shut down, reason code %u 0x%x\n", domid, reason, reason);
    if (reason == SHUTDOWN_suspend) {
        /* `xl save` or a migration owns the domain now */
        printf("Domain has suspended.\n");
        return 0;
    }
    struct xl_cfg cfg;
    char *text = domain_config(domid, &cfg);
    if (!text)
        return 0;
    enum xl_action a = reason == SHUTDOWN_poweroff ? cfg.on_poweroff
                       : reason == SHUTDOWN_reboot ? cfg.on_reboot
                       : cfg.on_crash;   /* crash, watchdog, soft_reset */
    printf("Action for shutdown reason code %u is %s\n", reason, action_name(a));
    unsigned next = 0;
    if (a != XL_ACTION_PRESERVE) {
        printf("Domain %u needs to be cleaned up: destroying the domain\n", domid);
        fflush(stdout);
        pid_t dm = domain_dm_pid(domid);
        if (destroy_domain(domid) != 0) {
            free(text);
            return 0;
        }
        reap_dm(dm);
    }
    if (a == XL_ACTION_RESTART) {
        printf("Done. Rebooting now\n");
        fflush(stdout);
        if (xl_create(text, cfg.name, NULL, 0, &next) != 0) {
            die("Domain %s: restart failed", cfg.name);
            next = 0;
        }
    }
    free(text);
    return next;
}

int xl_monitor_run(unsigned domid)
{
    int hvfd = hv_client_connect(g_rundir);
    if (hvfd < 0)
        return 1;
    if (!xs_watch(g_xs, "@releaseDomain", MON_TOKEN)) {
        close(hvfd);
        return die("watching @releaseDomain: %s", strerror(errno));
    }
    printf("Waiting for domain (domid %u) to die [pid %ld]\n", domid, (long)getpid());
    fflush(stdout);
    int rc = 0;
    while (domid) {
        struct hv_wire_dominfo w;
        reap_children();
        if (xl_domain_info(domid, &w) < 0) {
            printf("Domain %u has been destroyed.\n", domid);
            domid = 0;
            break;
        }
        if (w.shut_down) {
            unsigned next = handle_shutdown(domid, &w);
            if (next)
                printf("Waiting for domain (domid %u) to die [pid %ld]\n", next,
                       (long)getpid());
            domid = next;
            fflush(stdout);
            continue;
        }
        /* Xen defers shut_down while an ioreq is outstanding; xenstored
         * fires @releaseDomain again once it completes. */
        struct pollfd pfd[2] = { { .fd = xs_fileno(g_xs), .events = POLLIN },
                                 { .fd = hvfd, .events = POLLIN } };
        int pr = poll(pfd, 2, -1);
        if (pr < 0 && errno != EINTR) {
            rc = die("waiting for domain %u: poll: %s", domid, strerror(errno));
            break;
        }
        if (pr > 0 && pfd[1].revents) {
            /* the simulator answers only requests: this is its end */
            rc = die("the simulator in %s went away; monitor of domain %u exits", g_rundir,
                     domid);
            break;
        }
        if (pr > 0 && pfd[0].revents) {
            unsigned n;
            char **ev = xs_read_watch(g_xs, &n);
            if (!ev) {
                rc = die("xenstore connection lost: %s", strerror(errno));
                break;
            }
            free(ev);
        }
    }
    if (!rc)
        printf("Done. Exiting now\n");
    fflush(stdout);
    xs_unwatch(g_xs, "@releaseDomain", MON_TOKEN);
    close(hvfd);
    reap_children();
    return rc;
}

int xl_monitor_spawn(unsigned domid, const char *name)
{
    char logpath[4400];
    snprintf(logpath, sizeof(logpath), "%s/xl/log/xl-%s.log", g_rundir, name);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        return die("opening monitor log %s: %s", logpath, strerror(errno)), -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return die("fork for the domain monitor: %s", strerror(errno)), -1;
    }
    if (pid == 0) {
        /* daemonised as xl does: own session, stdio on the log, nothing
         * of the create's connections (exec drops them with its threads) */
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        char sdomid[16];
        snprintf(sdomid, sizeof(sdomid), "%u", domid);
        const char *argv[] = { "xensim", "xl", "--rundir", g_rundir, "monitor", sdomid, NULL };
        execv("/proc/self/exe", (char *const *)argv);
        fprintf(stderr, "exec the domain monitor: %s\n", strerror(errno));
        _exit(127);
    }
    close(logfd);
    return 0;
}

int cmd_monitor(int argc, char **argv)
{
    unsigned domid;
    if (argc != 2)
        return fprintf(stderr, "usage: xensim xl monitor DOMID\n"), 2;
    if (parse_domid(argv[1], &domid) < 0)
        return 2;
    return xl_monitor_run(domid);
}
