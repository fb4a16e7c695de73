/* xsim_loop.h: the single-threaded poll(2) event loop of the simulated host.
 *
 * Every part of xensim (xenstore daemon now; hypervisor, guests and the
 * simulated xl later) registers file descriptors and timers here, so the
 * whole host runs on one thread and needs no locking.  Callbacks may add or
 * remove fds and timers (including their own) while the loop runs.
 *
 * Only xsim_loop_stop() may be called from another thread (or a signal
 * handler): it sets a flag and wakes poll() through an eventfd. */
#ifndef XSIM_LOOP_H
#define XSIM_LOOP_H

#include <stdint.h>

struct xsim_loop;

/* revents is poll()'s revents for fd. */
typedef void xsim_fd_cb(struct xsim_loop *loop, int fd, short revents, void *arg);
typedef void xsim_timer_cb(struct xsim_loop *loop, void *arg);

/* NULL on failure (message logged). */
struct xsim_loop *xsim_loop_new(void);
void xsim_loop_free(struct xsim_loop *loop);

/* 0 or -errno.  An fd may be registered once; events is POLLIN|POLLOUT... */
int xsim_loop_add_fd(struct xsim_loop *loop, int fd, short events, xsim_fd_cb *cb, void *arg);
/* Changes the events polled for fd; -ENOENT if fd is not registered. */
int xsim_loop_set_events(struct xsim_loop *loop, int fd, short events);
/* Forgets fd (does not close it).  Safe from within any callback. */
void xsim_loop_del_fd(struct xsim_loop *loop, int fd);

/* One-shot timer after delay_ms; returns an id > 0, or 0 on failure. */
uint64_t xsim_loop_add_timer(struct xsim_loop *loop, uint64_t delay_ms, xsim_timer_cb *cb, void *arg);
/* Cancels a pending timer; unknown/expired ids are ignored. */
void xsim_loop_cancel_timer(struct xsim_loop *loop, uint64_t id);

/* Runs until xsim_loop_stop(); 0, or -errno if poll() failed. */
int xsim_loop_run(struct xsim_loop *loop);
/* One poll() round waiting at most timeout_ms (-1 = until an event);
 * returns the number of callbacks run, or -errno. */
int xsim_loop_run_once(struct xsim_loop *loop, int timeout_ms);
/* Thread- and async-signal-safe. */
void xsim_loop_stop(struct xsim_loop *loop);

/* Runs fn(loop, arg) on the loop's thread at its next round; callable from
 * any thread (the way other threads hand work to the simulated host).
 * 0 or -ENOMEM. */
typedef void xsim_call_fn(struct xsim_loop *loop, void *arg);
int xsim_loop_post(struct xsim_loop *loop, xsim_call_fn *fn, void *arg);
/* Like post, but waits until fn has run.  From the loop's own thread fn
 * runs at once; from another thread the loop must be running. */
int xsim_loop_call(struct xsim_loop *loop, xsim_call_fn *fn, void *arg);
int xsim_loop_stopping(struct xsim_loop *loop);

/* Monotonic milliseconds, the clock timers use. */
uint64_t xsim_now_ms(void);

#endif
