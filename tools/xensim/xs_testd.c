/* xs_testd.c: see xs_testd.h. */
#define _XOPEN_SOURCE 700
#include "xs_testd.h"
#include "xsim_log.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void xs_testd_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int xs_testd_wait_socket(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        if (r == 0)
            return 0;
        poll(NULL, 0, 10);  /* bounded retry step, not a synchronisation */
    }
    return -1;
}

static void on_term(struct xsim_loop *loop, int fd, short revents, void *arg)
{
    struct signalfd_siginfo si;
    (void)revents;
    (void)arg;
    ssize_t r = read(fd, &si, sizeof(si));
    (void)r;
    xsim_loop_stop(loop);
}

/* Fork mode, in the child: serve until SIGTERM; report readiness on wfd. */
static void child_main(const struct xs_server_opts *o, int wfd)
{
    xsim_log_init_from_env();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    struct xsim_loop *loop = xsim_loop_new();
    if (sfd < 0 || !loop || xsim_loop_add_fd(loop, sfd, POLLIN, on_term, NULL) < 0)
        _exit(3);
    struct xs_server *srv = xs_server_new(loop, o);
    if (!srv)
        _exit(4);
    if (write(wfd, "R", 1) != 1)
        _exit(5);
    close(wfd);
    int r = xsim_loop_run(loop);
    xs_server_free(srv);
    xsim_loop_free(loop);
    close(sfd);
    /* exit(), not _exit(): leak checkers run at exit. */
    exit(r < 0 ? 6 : 0);
}

static void *thread_main(void *arg)
{
    struct xs_testd *d = arg;
    xsim_loop_run(d->loop);
    return NULL;
}

int xs_testd_start(struct xs_testd *d, enum xs_testd_mode mode, const struct xs_server_opts *opts)
{
    memset(d, 0, sizeof(*d));
    d->mode = mode;
    struct xs_server_opts o = { 0 };
    if (opts)
        o = *opts;
    if (o.rundir) {
        snprintf(d->rundir, sizeof(d->rundir), "%s", o.rundir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(d->rundir, sizeof(d->rundir), "%s/xsim-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(d->rundir)) {
            fprintf(stderr, "xs_testd: mkdtemp %s: %s\n", d->rundir, strerror(errno));
            return -1;
        }
        d->own_rundir = true;
    }
    o.rundir = d->rundir;
    snprintf(d->sock, sizeof(d->sock), "%s/xenstored/socket", d->rundir);

    if (mode == XS_TESTD_THREAD) {
        xsim_log_init_from_env();
        d->loop = xsim_loop_new();
        if (!d->loop)
            return -1;
        d->srv = xs_server_new(d->loop, &o);
        if (!d->srv) {
            xsim_loop_free(d->loop);
            return -1;
        }
        int e = pthread_create(&d->thread, NULL, thread_main, d);
        if (e) {
            fprintf(stderr, "xs_testd: pthread_create: %s\n", strerror(e));
            xs_server_free(d->srv);
            xsim_loop_free(d->loop);
            return -1;
        }
        return 0;
    }

    int p[2];
    if (pipe(p) < 0) {
        fprintf(stderr, "xs_testd: pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(NULL);
    d->pid = fork();
    if (d->pid < 0) {
        fprintf(stderr, "xs_testd: fork: %s\n", strerror(errno));
        return -1;
    }
    if (d->pid == 0) {
        close(p[0]);
        child_main(&o, p[1]);
    }
    close(p[1]);
    struct pollfd pfd = { p[0], POLLIN, 0 };
    char c = 0;
    int r = poll(&pfd, 1, 10000);
    if (r == 1 && read(p[0], &c, 1) == 1 && c == 'R') {
        close(p[0]);
        return 0;
    }
    close(p[0]);
    fprintf(stderr, "xs_testd: the daemon did not start (see its messages above)\n");
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
    return -1;
}

int xs_testd_stop(struct xs_testd *d, bool keep_rundir)
{
    int rc = 0;
    if (d->mode == XS_TESTD_THREAD && d->loop) {
        xsim_loop_stop(d->loop);
        pthread_join(d->thread, NULL);
        xs_server_free(d->srv);
        xsim_loop_free(d->loop);
        d->loop = NULL;
        d->srv = NULL;
    } else if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st = 0;
        /* Bounded: a daemon that ignores SIGTERM for 10 s is a failure. */
        for (int i = 0; i < 1000; i++) {
            pid_t w = waitpid(d->pid, &st, WNOHANG);
            if (w == d->pid)
                break;
            if (i == 999) {
                fprintf(stderr, "xs_testd: daemon ignored SIGTERM; killing it\n");
                kill(d->pid, SIGKILL);
                waitpid(d->pid, &st, 0);
                rc = -1;
            }
            poll(NULL, 0, 10);
        }
        if (rc == 0)
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        d->pid = 0;
    }
    if (d->own_rundir && !keep_rundir)
        xs_testd_rmtree(d->rundir);
    return rc;
}

void xs_testd_domain_sock(const struct xs_testd *d, unsigned domid, char *buf, size_t size)
{
    snprintf(buf, size, "%s/xenstored/domain/%u", d->rundir, domid);
}
