/*
 * xsc_conn: one libxenstore connection that survives a xenstored restart.
 *
 * libxenstore gives a pollable fd (xs_fileno: a pipe its reader thread
 * writes when a watch event arrives) but says nothing when the daemon goes
 * away: the reader thread closes the socket silently and later requests
 * fail.  So a loss is noticed when a request fails (xsc_conn_failed) or when
 * xs_check_watch reports the socket closed, and the owner probes
 * periodically.  Then the connection is dropped and re-opened with bounded
 * exponential back-off, every registered watch is re-armed (each fires once
 * on registration, so the owner re-reads its nodes) and the owner's `up`
 * callback republishes what it owns.
 *
 * Loop-agnostic: the owner polls xsc_conn_fd() (re-read it before every
 * poll: it changes on reconnect and is -1 while disconnected) and calls
 * xsc_conn_tick() when xsc_conn_timeout_ms() expires.  Main thread only.
 */
#ifndef XSC_CONN_H
#define XSC_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xsc_log.h"

struct xs_handle;

typedef struct xsc_conn_opts {
    unsigned backoff_min_ms;   /* first retry delay (0: 20 ms) */
    unsigned backoff_max_ms;   /* cap on the delay (0: 2000 ms) */
    unsigned give_up_ms;       /* disconnected this long: fatal (0: never) */
} xsc_conn_opts;

typedef struct xsc_conn xsc_conn;

/* Called after every successful connect, watches armed, with the
 * generation (1 for the first connection, +1 per reconnect).  Return 0,
 * -EAGAIN to treat the attempt as failed (retried with back-off), or another
 * negative errno to make the loss fatal (returned by xsc_conn_tick). */
typedef int (*xsc_conn_up_fn)(void *opaque, struct xs_handle *xs, unsigned generation);

xsc_conn *xsc_conn_new(const xsc_conn_opts *opts, const xsc_logger *lg,
                       xsc_conn_up_fn up, void *opaque);
void xsc_conn_free(xsc_conn *c);

/* Called whenever xsc_conn_fd() changes: -1 when the connection is lost,
 * the new fd after a reconnect.  For loops where fds are registered rather
 * than collected before every poll.  May be called from inside any
 * xsc_conn_* call except xsc_conn_free. */
typedef void (*xsc_conn_fd_fn)(void *opaque, int fd);
void xsc_conn_set_fd_cb(xsc_conn *c, xsc_conn_fd_fn fn, void *opaque);

/* Remember a watch and arm it now if connected; re-armed on every
 * reconnect.  Path and token are copied.  0 or a negative errno. */
int xsc_conn_watch(xsc_conn *c, const char *path, const char *token);

/* The first connection, without retries: 0, or a negative errno with why
 * filled ("cannot open xenstore (XENSTORED_PATH=...): ..."). */
int xsc_conn_connect(xsc_conn *c, char *why, size_t why_len);

struct xs_handle *xsc_conn_xs(const xsc_conn *c);   /* NULL while down */
int xsc_conn_fd(const xsc_conn *c);                 /* -1 while down */
bool xsc_conn_is_up(const xsc_conn *c);
unsigned xsc_conn_generation(const xsc_conn *c);
uint64_t xsc_conn_losses(const xsc_conn *c);        /* losses noticed */

/* The next queued watch event without blocking: 1 with *vec set
 * (vec[XS_WATCH_PATH], vec[XS_WATCH_TOKEN]; free(*vec)), 0 when none is
 * queued, -ENOTCONN when the connection turned out to be gone (it is then
 * marked lost and a reconnect scheduled). */
int xsc_conn_next_event(xsc_conn *c, char ***vec);

/* A request failed with errno `err`.  Errors that are the daemon's answer
 * (ENOENT, EACCES, ...) leave the connection alone; anything else is
 * confirmed with a probe request and, if that fails too, the connection is
 * marked lost.  Returns true when it is (now) down. */
bool xsc_conn_failed(xsc_conn *c, const char *what, int err);

/* A cheap round trip; marks the connection lost on failure.  0 or -ENOTCONN. */
int xsc_conn_probe(xsc_conn *c);

/* Milliseconds until xsc_conn_tick() has work (a reconnect attempt), 0 if
 * due now, -1 when connected. */
int xsc_conn_timeout_ms(const xsc_conn *c);

/* Attempt a due reconnect.  0 (connected, or still waiting), or a negative
 * errno when the loss is fatal (give_up_ms exceeded, or the up callback
 * refused the new connection). */
int xsc_conn_tick(xsc_conn *c);

/* Monotonic milliseconds, shared by the layer's timers. */
int64_t xsc_now_ms(void);

#endif /* XSC_CONN_H */
