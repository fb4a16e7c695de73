/* main.c: the xensim command — a dispatcher of subcommands.
 *
 *   xensim run --rundir DIR [--daemon] [--pidfile F] [--persist|--no-persist]
 *              [--verbose|--quiet]
 *
 * `run` builds the simulated host on one xsim_loop (today: the xenstore
 * daemon; later parts add the hypervisor, guests and xl to the same loop)
 * and runs it until SIGTERM or SIGINT, then shuts everything down cleanly
 * (saving the tree when persisting). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest_ctl.h"
#include "guest_workload.h"
#include "hv_main.h"
#include "xl_cmd.h"
#include "xs_server.h"
#include "xsim_log.h"
#include "xsim_loop.h"

#define XENSIM_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xensim <command> [options]\n"
            "\n"
            "commands:\n"
            "  run --rundir DIR [--daemon] [--pidfile FILE] [--persist|--no-persist]\n"
            "      [--verbose|--quiet]\n"
            "          run the simulated Xen host; its xenstore listens on\n"
            "          DIR/xenstored/socket (clients: XENSTORED_PATH=DIR/xenstored/socket),\n"
            "          introduced domains on DIR/xenstored/domain/<domid>.\n"
            "          --daemon returns once the socket accepts connections.\n"
            "          --persist keeps the tree in DIR/xenstored/tree across restarts\n"
            "          (default: --no-persist).\n"
            "  domain create|list|info|destroy|pause|unpause|shutdown|logdirty|resume|\n"
            "         param|guest-write|dm-write|peek …\n"
            "  fault stall-vcpu|unstall-vcpu|drop-event|close-conn|conns …\n"
            "          the simulated hypervisor (`xensim domain help`); they reach\n"
            "          the running xensim through --rundir DIR or XENSIM_RUNDIR.\n"
            "  guest start|resume|stop|status|uart-send DOMID …\n"
            "          simulated guests' workloads (`xensim guest help`).\n"
            "  xl create|save|restore|pause|unpause|destroy|list|migrate|migrate-receive …\n"
            "          a simulated xl (libxl 4.17, traditional dm): `xensim xl --help`.\n"
            "  help     this text\n"
            "  version  print the version\n");
}

/* Guest workloads end first, while the loop still serves the xenstore
 * their dm-state watches wait on; then the loop stops. */
static void *end_guests(void *loop)
{
    guest_wl_shutdown();
    xsim_loop_stop(loop);
    return NULL;
}

static void on_signal(struct xsim_loop *loop, int fd, short revents, void *arg)
{
    static bool ending;
    struct signalfd_siginfo si;
    (void)revents;
    (void)arg;
    if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        xsim_info("received %s, shutting down", strsignal((int)si.ssi_signo));
    pthread_t t;
    if (!ending && pthread_create(&t, NULL, end_guests, loop) == 0) {
        ending = true;   /* a second signal stops at once */
        pthread_detach(t);
        return;
    }
    xsim_loop_stop(loop);
}

static int write_pidfile(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        xsim_err("cannot create pid file %s: %s", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        xsim_err("cannot write pid file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* --daemon: the parent waits on a pipe until the child is serving (or has
 * failed), so `xensim run --daemon` returning 0 means "ready". */
static int daemonize(int *ready_fd, const char *logpath)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        xsim_err("--daemon: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        xsim_err("--daemon: fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        close(p[1]);
        char c;
        ssize_t r;
        do
            r = read(p[0], &c, 1);
        while (r < 0 && errno == EINTR);
        if (r == 1 && c == 'R')
            _exit(0);
        xsim_err("--daemon: xensim failed to start (see %s)", logpath);
        int st;
        waitpid(pid, &st, 0);
        _exit(1);
    }
    close(p[0]);
    if (setsid() < 0)
        xsim_warn("--daemon: setsid: %s", strerror(errno));
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (nul >= 0) {
        dup2(nul, 0);
        dup2(nul, 1);
        close(nul);
    }
    if (log >= 0) {
        dup2(log, 2);
        close(log);
    }
    *ready_fd = p[1];
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rundir", required_argument, NULL, 'r' },
        { "daemon", no_argument, NULL, 'd' },
        { "pidfile", required_argument, NULL, 'p' },
        { "persist", no_argument, NULL, 'P' },
        { "no-persist", no_argument, NULL, 'N' },
        { "verbose", no_argument, NULL, 'v' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *rundir = NULL, *pidfile = NULL;
    bool daemon = false, persist = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': rundir = optarg; break;
        case 'd': daemon = true; break;
        case 'p': pidfile = optarg; break;
        case 'P': persist = true; break;
        case 'N': persist = false; break;
        case 'v': xsim_log_set_level(XSIM_LOG_DEBUG); break;
        case 'q': xsim_log_set_level(XSIM_LOG_WARN); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "xensim run: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!rundir) {
        fprintf(stderr, "xensim run: --rundir DIR is required\n");
        usage(stderr);
        return 2;
    }
    if (mkdir(rundir, 0755) < 0 && errno != EEXIST) {
        xsim_err("cannot create run directory %s: %s", rundir, strerror(errno));
        return 1;
    }
    char abs_rundir[4096];
    if (!realpath(rundir, abs_rundir)) {
        xsim_err("cannot resolve run directory %s: %s", rundir, strerror(errno));
        return 1;
    }

    int ready_fd = -1;
    if (daemon) {
        char logpath[4200];
        snprintf(logpath, sizeof(logpath), "%s/xensim.log", abs_rundir);
        if (daemonize(&ready_fd, logpath) < 0)
            return 1;
    }

    /* Signals arrive through the loop, never interrupting a handler. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        xsim_err("sigprocmask: %s", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        xsim_err("signalfd: %s", strerror(errno));
        return 1;
    }

    int rc = 1;
    struct xs_server *xs = NULL;
    struct xsim_loop *loop = xsim_loop_new();
    if (!loop)
        goto out;
    if (xsim_loop_add_fd(loop, sfd, POLLIN, on_signal, NULL) < 0) {
        xsim_err("cannot watch the signal fd");
        goto out;
    }
    struct xs_server_opts xo = { .rundir = abs_rundir, .persist = persist };
    xs = xs_server_new(loop, &xo);
    if (!xs)
        goto out;
    if (hv_start(loop, xs, abs_rundir) < 0)   /* the hypervisor (hv_main.c) */
        goto out;
    if (pidfile && write_pidfile(pidfile) < 0)
        goto out;
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "R", 1);
        (void)w;
        close(ready_fd);
        ready_fd = -1;
    }
    xsim_info("xensim %s running in %s (pid %ld)", XENSIM_VERSION, abs_rundir, (long)getpid());
    rc = xsim_loop_run(loop) < 0 ? 1 : 0;
out:
    hv_stop();
    xs_server_free(xs);
    xsim_loop_free(loop);
    close(sfd);
    if (pidfile && rc == 0)
        unlink(pidfile);
    if (ready_fd >= 0)
        close(ready_fd);  /* parent sees EOF: start failed */
    if (rc == 0)
        xsim_info("xensim stopped");
    return rc;
}

int main(int argc, char **argv)
{
    xsim_log_init_from_env();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "domain") == 0 || strcmp(cmd, "fault") == 0)
        return hv_cli(argc - 1, argv + 1);  /* the hypervisor's commands */
    if (strcmp(cmd, "guest") == 0)
        return guest_cli(argc - 1, argv + 1);  /* guest workloads */
    if (strcmp(cmd, "xl") == 0)
        return xl_main(argc - 1, argv + 1);  /* the simulated toolstack */
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("xensim %s\n", XENSIM_VERSION);
        return 0;
    }
    fprintf(stderr, "xensim: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
