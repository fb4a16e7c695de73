/*
 * Shared fixture of the xenstore-layer tests that need a daemon: a private
 * xensim (tools/xensim, the real wire protocol) in a temporary run
 * directory, reached through libxenstore with XENSTORED_PATH.
 *
 * The binary is $RSDM_BUILD/bin/xensim (exported by `make check`), else
 * build/bin/xensim relative to the cwd.  Without it the tests are skipped
 * with the reason printed.  Start-up and shutdown are waited on as events
 * (xensim --daemon returns once the socket accepts connections; the exit
 * is seen on a pidfd), never with sleeps.
 */
#ifndef TEST_XSC_FIXTURE_H
#define TEST_XSC_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <xenstore.h>

#include "runstate.h"

#define XSIM_WAIT_MS 10000

typedef struct xsim {
    char bin[4096];
    char rundir[256];
    char sock[512];
    pid_t pid;
    int pidfd;
    pid_t guard;        /* kills the daemon if this test process dies */
    int guard_fd;
} xsim;

/* The daemon detaches (--daemon), so a test killed by its timeout would
 * leave it running.  A guard child waits for EOF on a pipe only this
 * process holds the write end of -- EOF comes when the test exits, however
 * it exits -- and then sends SIGTERM through the daemon's pidfd (never a
 * recycled pid). */
static inline void xsim_guard(xsim *s)
{
    int p[2];
    if (pipe(p) < 0)
        return;
    pid_t g = fork();
    if (g < 0) {
        close(p[0]);
        close(p[1]);
        return;
    }
    if (g == 0) {
        /* Only async-signal-safe calls: the parent has threads. */
        for (int fd = 3; fd < 4096; fd++)
            if (fd != p[0] && fd != s->pidfd)
                close(fd);
        char c;
        while (read(p[0], &c, 1) < 0 && errno == EINTR) {
        }
        syscall(SYS_pidfd_send_signal, s->pidfd, SIGTERM, NULL, 0);
        _exit(0);
    }
    close(p[0]);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    s->guard = g;
    s->guard_fd = p[1];
}

static inline void xsim_unguard(xsim *s)
{
    if (s->guard <= 0)
        return;
    close(s->guard_fd);
    s->guard_fd = -1;
    waitpid(s->guard, NULL, 0);
    s->guard = 0;
}

static inline bool xsim_find(xsim *s, char *why, size_t why_len)
{
    const char *b = getenv("RSDM_BUILD");
    if (b && *b) {
        snprintf(s->bin, sizeof(s->bin), "%s/bin/xensim", b);
        if (access(s->bin, X_OK) == 0)
            return true;
    }
    snprintf(s->bin, sizeof(s->bin), "build/bin/xensim");
    if (access(s->bin, X_OK) == 0) {
        char abs[4096];
        if (realpath(s->bin, abs))
            snprintf(s->bin, sizeof(s->bin), "%s", abs);
        return true;
    }
    snprintf(why, why_len,
             "xensim not built (looked for $RSDM_BUILD/bin/xensim and build/bin/xensim): "
             "the xenstore daemon of tools/xensim (issue 3) is needed");
    return false;
}

/* Run `xensim run --rundir DIR --daemon --pidfile DIR/pid [--persist]` and
 * wait for it to return (it does once the daemon serves). */
static inline int xsim_start(xsim *s, bool persist)
{
    char pidfile[300];
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", s->rundir);
    unlink(pidfile);
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        execl(s->bin, s->bin, "run", "--rundir", s->rundir, "--daemon", "--pidfile", pidfile,
              persist ? "--persist" : "--no-persist", "--quiet", (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "xensim failed to start (status 0x%x)\n", status);
        return -EIO;
    }
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
        if (f)
            fclose(f);
        fprintf(stderr, "xensim wrote no pid file %s\n", pidfile);
        return -EIO;
    }
    fclose(f);
    s->pid = (pid_t)pid;
    s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
    if (s->pidfd < 0) {
        fprintf(stderr, "pidfd_open(%ld): %s\n", pid, strerror(errno));
        return -errno;
    }
    xsim_guard(s);
    snprintf(s->sock, sizeof(s->sock), "%s/xenstored/socket", s->rundir);
    setenv("XENSTORED_PATH", s->sock, 1);
    return 0;
}

/* SIGTERM and wait for the exit (pidfd readable), bounded. */
static inline int xsim_stop(xsim *s)
{
    if (s->pid <= 0)
        return 0;
    kill(s->pid, SIGTERM);
    struct pollfd pfd = { .fd = s->pidfd, .events = POLLIN };
    int n = poll(&pfd, 1, XSIM_WAIT_MS);
    if (n != 1) {
        kill(s->pid, SIGKILL);
        poll(&pfd, 1, XSIM_WAIT_MS);
    }
    xsim_unguard(s);           /* its signal now goes to an exited pidfd */
    close(s->pidfd);
    s->pidfd = -1;
    s->pid = 0;
    return n == 1 ? 0 : -ETIMEDOUT;
}

static inline int xsim_setup(xsim *s, bool persist, char *why, size_t why_len)
{
    memset(s, 0, sizeof(*s));
    s->pidfd = -1;
    s->guard_fd = -1;
    if (!xsim_find(s, why, why_len))
        return 1;
    snprintf(s->rundir, sizeof(s->rundir), "/tmp/xsc-test-XXXXXX");
    if (!mkdtemp(s->rundir)) {
        snprintf(why, why_len, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    if (xsim_start(s, persist) < 0) {
        snprintf(why, why_len, "cannot start %s", s->bin);
        return -1;
    }
    return 0;
}

static inline void rm_rf(const char *dir)
{
    char cmd[600];
    /* The run directory is ours (mkdtemp under /tmp). */
    if (strncmp(dir, "/tmp/xsc-test-", 14) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static inline void xsim_teardown(xsim *s)
{
    xsim_stop(s);
    if (s->rundir[0])
        rm_rf(s->rundir);
}

/* A toolstack-side connection (dom0, privileged). */
static inline struct xs_handle *ts_open(void)
{
    return xs_open(0);
}

/* Read a node as a NUL-terminated string; NULL when absent. */
static inline char *ts_read(struct xs_handle *h, const char *path)
{
    unsigned len;
    return xs_read(h, XBT_NULL, path, &len);
}

static inline bool ts_write(struct xs_handle *h, const char *path, const char *v)
{
    return xs_write(h, XBT_NULL, path, v, (unsigned)strlen(v));
}

static inline bool ts_equals(struct xs_handle *h, const char *path, const char *want)
{
    char *v = ts_read(h, path);
    bool eq = v && strcmp(v, want) == 0;
    free(v);
    return eq;
}

/* The layer's and librunstate's log: errors always (a test log should show
 * them), everything with XSC_TEST_VERBOSE set. */
static inline void quiet_log(void *opaque, rs_log_level level, const char *msg)
{
    (void)opaque;
    if (getenv("XSC_TEST_VERBOSE") || level == RS_LOG_ERROR)
        fprintf(stderr, "[xsc %d] %s\n", (int)level, msg);
}

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif /* TEST_XSC_FIXTURE_H */
