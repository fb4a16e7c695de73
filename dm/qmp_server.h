/*
 * QMP server: the qemu-xen dialect's monitor socket(s).
 *
 * Loop-agnostic: the server never blocks and owns no loop.  The integrator
 * asks for the fds to watch (qmp_server_pollfds) and calls
 * qmp_server_handle(fd, revents) when one is ready; qmp_server_poll_once is
 * a self-contained poll() step for tests and small hosts.  Command semantics
 * live behind a dispatch callback (dm/qmp_commands.c); this file does the
 * wire: greeting, capabilities negotiation, JSON framing and limits, QEMU's
 * error classes and texts for malformed input, SCM_RIGHTS fds, bounded
 * non-blocking output, events.
 */
#ifndef QMP_SERVER_H
#define QMP_SERVER_H

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

/* QEMU's limits (qobject/json-streamer.c) except the object size, which is
 * 1 MiB here (QEMU: 64 MiB): no command rsdm serves needs more. */
#define QMP_MAX_NESTING     1024
#define QMP_MAX_OBJECT      (1024 * 1024)
#define QMP_MAX_OUTBUF      (1024 * 1024)   /* per client; overflow drops it */
#define QMP_MAX_CLIENT_FDS  16              /* SCM_RIGHTS fds queued per client */

typedef struct qmp_server qmp_server;
typedef struct qmp_client qmp_client;

/* A command's error: QEMU's class ("GenericError", ...) and description. */
typedef struct qmp_error {
    const char *cls;
    char desc[512];
} qmp_error;

void qmp_error_set(qmp_error *e, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Run a command that is not qmp_capabilities.  Return 0 with *ret set
 * (a new reference; NULL means {}), -1 with err filled, or 1 when the name
 * is not a command (the server answers CommandNotFound).  args is never NULL
 * (an empty object when absent). */
typedef int (*qmp_dispatch_fn)(void *opaque, qmp_client *c, const char *name,
                               json_t *args, json_t **ret, qmp_error *err);

qmp_server *qmp_server_new(qmp_dispatch_fn dispatch, void *opaque);
/* Closes every client and listener (fds received but not taken included). */
void qmp_server_free(qmp_server *s);

/* Listen on a Unix socket path (an existing socket file is replaced), or on
 * an inherited listening fd (libxl's -chardev ...,fd=N).  0 or -errno, with
 * a log line naming the path/fd. */
int qmp_server_listen_path(qmp_server *s, const char *path);
int qmp_server_listen_fd(qmp_server *s, int fd);
/* Serve an already connected stream socket (tests, socketpair). */
qmp_client *qmp_server_add_client_fd(qmp_server *s, int fd);

/* The fds to watch with their events; returns how many exist (may exceed
 * max, then call again with a larger array). */
size_t qmp_server_pollfds(qmp_server *s, struct pollfd *out, size_t max);
/* An fd returned by qmp_server_pollfds became ready. */
void qmp_server_handle(qmp_server *s, int fd, short revents);
/* poll() on every fd once (timeout_ms as poll) and handle what is ready.
 * Returns the number handled or -errno. */
int qmp_server_poll_once(qmp_server *s, int timeout_ms);

/* Broadcast an event to every client in command mode; data may be NULL
 * and is consumed (stolen) either way.  wall_ns 0 means now. */
void qmp_server_event(qmp_server *s, const char *name, json_t *data, long long wall_ns);

size_t qmp_server_client_count(const qmp_server *s);

/* For commands: take the oldest fd received from this client (-1 if none);
 * the caller owns it. */
int qmp_client_take_fd(qmp_client *c);
qmp_server *qmp_client_server(qmp_client *c);

/* Version rsdm announces (a QEMU >= 2.11, which libxl requires). */
#define QMP_QEMU_MAJOR 7
#define QMP_QEMU_MINOR 2
#define QMP_QEMU_MICRO 0
#define QMP_PACKAGE "rsdm 0.1"

#endif
