/* xs_testd.h: start xensim's xenstore daemon for a test or benchmark, on a
 * fresh temporary run directory, either in a forked child process (the
 * test then talks to it only through sockets, like real clients) or on a
 * thread of the calling process (for tests that also use the in-process
 * API through xsim_loop_call()).  Readiness is a pipe/handshake, never a
 * sleep. */
#ifndef XS_TESTD_H
#define XS_TESTD_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "xs_server.h"
#include "xsim_loop.h"

enum xs_testd_mode { XS_TESTD_FORK, XS_TESTD_THREAD };

struct xs_testd {
    enum xs_testd_mode mode;
    char rundir[256];
    char sock[320];            /* <rundir>/xenstored/socket */
    bool own_rundir;           /* created by start: removed by stop */
    pid_t pid;                 /* fork mode */
    pthread_t thread;          /* thread mode */
    struct xsim_loop *loop;    /* thread mode */
    struct xs_server *srv;     /* thread mode: use only via xsim_loop_call */
};

/* opts may be NULL; opts->rundir NULL = a new directory under $TMPDIR.
 * 0, or -1 with the reason on stderr. */
int xs_testd_start(struct xs_testd *d, enum xs_testd_mode mode, const struct xs_server_opts *opts);
/* Stops the daemon (SIGTERM in fork mode) and waits for it; removes the
 * run directory if start created it (unless keep_rundir).  Returns the
 * child's exit status (0 = clean), or 0 for thread mode. */
int xs_testd_stop(struct xs_testd *d, bool keep_rundir);
/* Path of domain domid's socket. */
void xs_testd_domain_sock(const struct xs_testd *d, unsigned domid, char *buf, size_t size);
/* Waits until a Unix socket at path accepts a connection, polling at most
 * timeout_ms (bounded retry).  0 or -1. */
int xs_testd_wait_socket(const char *path, int timeout_ms);
/* Removes a directory tree (best effort). */
void xs_testd_rmtree(const char *dir);

#endif
