/*
 * The dm's main loop: one thread, one poll() over file descriptors
 * (event channels, xenstore, librunstate's request fd, chardevs, QMP),
 * monotonic timers and a signalfd, run until someone calls dm_loop_stop.
 *
 * Single-threaded by design: every callback runs on the loop's thread and
 * every function here is [main] except dm_event_post.  Other threads reach
 * the loop through librunstate's request fd (watched like any fd) or a
 * dm_event (an eventfd).
 *
 * Re-entrancy: adding or removing watches and timers, re-arming or
 * cancelling timers, and freeing them is allowed from inside any callback.
 * A watch or timer removed during a dispatch pass is not called again in it
 * (its memory is released after the pass); one added during a pass is first
 * considered on the next pass.
 */
#ifndef DM_LOOP_H
#define DM_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct dm_loop dm_loop;
typedef struct dm_watch dm_watch;
typedef struct dm_timer dm_timer;
typedef struct dm_event dm_event;

/* CLOCK_MONOTONIC in nanoseconds: the clock of every timer. */
int64_t dm_now_ns(void);

/* NULL with errno on failure. */
dm_loop *dm_loop_new(void);
/* Frees the loop and every watch, timer and event still registered (fds
 * are not closed: they belong to whoever added them, except the signalfd). */
void dm_loop_free(dm_loop *loop);

/* ------------------------------------------------------------------ fds */

/* Called when fd is readable (or has an error/hangup: the callback's read
 * will see it) / writable. */
typedef void (*dm_fd_fn)(void *opaque, int fd);

/* Watches fd.  on_read may be NULL (no read interest); on_write is only
 * polled while dm_watch_want_write(w, true).  NULL with errno = EINVAL for a
 * negative fd or an fd already watched, ENOMEM. */
dm_watch *dm_watch_add(dm_loop *loop, int fd, dm_fd_fn on_read, dm_fd_fn on_write, void *opaque);
/* Turn read / write interest on and off (a chardev pauses input when its
 * peer is full; waits for POLLOUT only while output is pending). */
void dm_watch_want_read(dm_watch *w, bool on);
void dm_watch_want_write(dm_watch *w, bool on);
/* Stops watching; safe from inside any callback, including w's own. */
void dm_watch_remove(dm_watch *w);

/* --------------------------------------------------------------- timers */

typedef void (*dm_timer_fn)(void *opaque);

/* A disarmed timer.  NULL with errno on failure. */
dm_timer *dm_timer_new(dm_loop *loop, dm_timer_fn fn, void *opaque);
/* Fire after delay_ns (>= 0), then every period_ns if period_ns > 0.
 * Re-arming an armed timer moves it.  -EINVAL for negative values.  A
 * periodic timer that fell behind fires once and resumes its period from
 * now (no burst of catch-up calls). */
int dm_timer_arm(dm_timer *t, int64_t delay_ns, int64_t period_ns);
void dm_timer_cancel(dm_timer *t);
bool dm_timer_armed(const dm_timer *t);
/* Cancels and frees; safe from inside any callback, including t's own. */
void dm_timer_free(dm_timer *t);

/* ------------------------------------------------------------- signals */

typedef void (*dm_signal_fn)(void *opaque, int signo);

/* Blocks SIGTERM, SIGHUP, SIGINT and SIGUSR1 for the calling thread and delivers
 * them through a signalfd to fn on the loop.  Call before creating other
 * threads so they inherit the blocked mask.  The old mask is restored by
 * dm_loop_free.  -EBUSY if already set up, or a negative errno. */
int dm_loop_handle_signals(dm_loop *loop, dm_signal_fn fn, void *opaque);

/* --------------------------------------------------- cross-thread events */

/* An eventfd the loop watches: dm_event_post from any thread makes the
 * loop call fn once (posts before the call coalesce into one call). */
dm_event *dm_event_new(dm_loop *loop, dm_timer_fn fn, void *opaque);
int dm_event_post(dm_event *ev);                 /* [any] */
void dm_event_free(dm_event *ev);

/* ----------------------------------------------------------------- run */

/* One pass: wait at most timeout_ms (-1: until something happens, 0: do not
 * wait), then dispatch due timers and ready fds.  Returns the number of
 * callbacks run, or a negative errno if poll failed (EINTR is 0). */
int dm_loop_iterate(dm_loop *loop, int timeout_ms);
/* Iterates until dm_loop_stop; returns the status given to it, or a
 * negative errno if poll failed. */
int dm_loop_run(dm_loop *loop);
/* Makes dm_loop_run return `status` after the current pass. */
void dm_loop_stop(dm_loop *loop, int status);
bool dm_loop_stopped(const dm_loop *loop);

#endif
