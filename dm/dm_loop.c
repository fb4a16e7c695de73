/*
 * The main loop (dm_loop.h).  Watches and timers live in arrays of
 * pointers.  Removal during dispatch only marks an entry dead; dead entries
 * are freed and the arrays compacted when no dispatch is running, so a
 * pointer the dispatcher holds never dangles.
 */
#include "dm_loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "dm_log.h"

struct dm_watch {
    dm_loop *loop;
    int fd;
    dm_fd_fn on_read, on_write;
    void *opaque;
    bool want_read, want_write;
    bool dead;
};

struct dm_timer {
    dm_loop *loop;
    dm_timer_fn fn;
    void *opaque;
    int64_t deadline, period;
    bool armed;
    bool dead;
};

struct dm_event {
    dm_loop *loop;
    int fd;
    dm_watch *w;
    dm_timer_fn fn;
    void *opaque;
};

struct dm_loop {
    dm_watch **watches;
    size_t nwatches, capwatches;
    dm_timer **timers;
    size_t ntimers, captimers;
    int depth;                    /* > 0 while dispatching */
    bool garbage;                 /* dead entries wait for compaction */
    bool stop;
    int status;
    struct pollfd *pfds;          /* scratch, sized like watches */
    dm_watch **pwatch;            /* pfds[i] belongs to pwatch[i] */
    size_t cappfds, cappwatch;
    /* signals */
    int sigfd;
    dm_watch *sigw;
    dm_signal_fn sigfn;
    void *sigopaque;
    sigset_t oldmask;
};

int64_t dm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

dm_loop *dm_loop_new(void)
{
    dm_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->sigfd = -1;
    return loop;
}

/* Frees dead entries; only when no dispatch holds pointers into the arrays. */
static void collect(dm_loop *loop)
{
    if (loop->depth > 0 || !loop->garbage)
        return;
    size_t j = 0;
    for (size_t i = 0; i < loop->nwatches; i++) {
        if (loop->watches[i]->dead)
            free(loop->watches[i]);
        else
            loop->watches[j++] = loop->watches[i];
    }
    loop->nwatches = j;
    j = 0;
    for (size_t i = 0; i < loop->ntimers; i++) {
        if (loop->timers[i]->dead)
            free(loop->timers[i]);
        else
            loop->timers[j++] = loop->timers[i];
    }
    loop->ntimers = j;
    loop->garbage = false;
}

void dm_loop_free(dm_loop *loop)
{
    if (!loop)
        return;
    if (loop->sigfd >= 0) {
        close(loop->sigfd);
        pthread_sigmask(SIG_SETMASK, &loop->oldmask, NULL);
    }
    for (size_t i = 0; i < loop->nwatches; i++)
        free(loop->watches[i]);
    for (size_t i = 0; i < loop->ntimers; i++)
        free(loop->timers[i]);
    free(loop->watches);
    free(loop->timers);
    free(loop->pfds);
    free(loop->pwatch);
    free(loop);
}

/* ------------------------------------------------------------------ fds */

dm_watch *dm_watch_add(dm_loop *loop, int fd, dm_fd_fn on_read, dm_fd_fn on_write, void *opaque)
{
    if (!loop || fd < 0) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < loop->nwatches; i++) {
        if (!loop->watches[i]->dead && loop->watches[i]->fd == fd) {
            dm_err("main loop: fd %d is already watched", fd);
            errno = EINVAL;
            return NULL;
        }
    }
    if (grow((void **)&loop->watches, &loop->capwatches, loop->nwatches + 1, sizeof(dm_watch *)) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    dm_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    *w = (dm_watch){ .loop = loop, .fd = fd, .on_read = on_read, .on_write = on_write,
                     .opaque = opaque, .want_read = on_read != NULL };
    loop->watches[loop->nwatches++] = w;
    return w;
}

void dm_watch_want_read(dm_watch *w, bool on)
{
    if (w)
        w->want_read = on && w->on_read;
}

void dm_watch_want_write(dm_watch *w, bool on)
{
    if (w)
        w->want_write = on && w->on_write;
}

void dm_watch_remove(dm_watch *w)
{
    if (!w || w->dead)
        return;
    w->dead = true;
    w->loop->garbage = true;
    collect(w->loop);
}

/* --------------------------------------------------------------- timers */

dm_timer *dm_timer_new(dm_loop *loop, dm_timer_fn fn, void *opaque)
{
    if (!loop || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (grow((void **)&loop->timers, &loop->captimers, loop->ntimers + 1, sizeof(dm_timer *)) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    dm_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    *t = (dm_timer){ .loop = loop, .fn = fn, .opaque = opaque };
    loop->timers[loop->ntimers++] = t;
    return t;
}

int dm_timer_arm(dm_timer *t, int64_t delay_ns, int64_t period_ns)
{
    if (!t || t->dead || delay_ns < 0 || period_ns < 0)
        return -EINVAL;
    t->deadline = dm_now_ns() + delay_ns;
    t->period = period_ns;
    t->armed = true;
    return 0;
}

void dm_timer_cancel(dm_timer *t)
{
    if (t)
        t->armed = false;
}

bool dm_timer_armed(const dm_timer *t)
{
    return t && t->armed;
}

void dm_timer_free(dm_timer *t)
{
    if (!t || t->dead)
        return;
    t->armed = false;
    t->dead = true;
    t->loop->garbage = true;
    collect(t->loop);
}

/* Runs due timers; returns how many ran.  Only timers that existed when
 * the pass began are considered (one armed by a callback waits). */
static int run_timers(dm_loop *loop)
{
    int ran = 0;
    size_t n = loop->ntimers;
    int64_t now = dm_now_ns();
    for (size_t i = 0; i < n; i++) {
        dm_timer *t = loop->timers[i];
        if (t->dead || !t->armed || t->deadline > now)
            continue;
        if (t->period > 0) {
            t->deadline += t->period;
            if (t->deadline <= now)
                t->deadline = now + t->period;
        } else {
            t->armed = false;
        }
        t->fn(t->opaque);
        ran++;
    }
    return ran;
}

/* Milliseconds until the first armed timer, rounded up; -1 when none. */
static int next_timeout_ms(dm_loop *loop)
{
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < loop->ntimers; i++) {
        dm_timer *t = loop->timers[i];
        if (!t->dead && t->armed && t->deadline < first)
            first = t->deadline;
    }
    if (first == INT64_MAX)
        return -1;
    int64_t d = first - dm_now_ns();
    if (d <= 0)
        return 0;
    int64_t ms = (d + 999999) / 1000000;
    return ms > 3600000 ? 3600000 : (int)ms;
}

/* ------------------------------------------------------------- signals */

static void on_signalfd(void *opaque, int fd)
{
    dm_loop *loop = opaque;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        loop->sigfn(loop->sigopaque, (int)si.ssi_signo);
}

int dm_loop_handle_signals(dm_loop *loop, dm_signal_fn fn, void *opaque)
{
    if (!loop || !fn)
        return -EINVAL;
    if (loop->sigfd >= 0)
        return -EBUSY;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    int rc = pthread_sigmask(SIG_BLOCK, &set, &loop->oldmask);
    if (rc != 0) {
        dm_err("main loop: cannot block SIGTERM/SIGHUP/SIGINT/SIGUSR1: %s", strerror(rc));
        return -rc;
    }
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        dm_err("main loop: signalfd: %s", strerror(e));
        pthread_sigmask(SIG_SETMASK, &loop->oldmask, NULL);
        return -e;
    }
    loop->sigfn = fn;
    loop->sigopaque = opaque;
    loop->sigw = dm_watch_add(loop, fd, on_signalfd, NULL, loop);
    if (!loop->sigw) {
        close(fd);
        pthread_sigmask(SIG_SETMASK, &loop->oldmask, NULL);
        return -ENOMEM;
    }
    loop->sigfd = fd;
    return 0;
}

/* --------------------------------------------------- cross-thread events */

static void on_eventfd(void *opaque, int fd)
{
    dm_event *ev = opaque;
    uint64_t v;
    /* Reading resets the counter: posts so far coalesce into this call. */
    if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ev->fn(ev->opaque);
}

dm_event *dm_event_new(dm_loop *loop, dm_timer_fn fn, void *opaque)
{
    if (!loop || !fn) {
        errno = EINVAL;
        return NULL;
    }
    dm_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return NULL;
    ev->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ev->fd < 0) {
        int e = errno;
        dm_err("main loop: eventfd: %s", strerror(e));
        free(ev);
        errno = e;
        return NULL;
    }
    ev->loop = loop;
    ev->fn = fn;
    ev->opaque = opaque;
    ev->w = dm_watch_add(loop, ev->fd, on_eventfd, NULL, ev);
    if (!ev->w) {
        close(ev->fd);
        free(ev);
        errno = ENOMEM;
        return NULL;
    }
    return ev;
}

int dm_event_post(dm_event *ev)
{
    uint64_t one = 1;
    if (!ev)
        return -EINVAL;
    if (write(ev->fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        return errno == EAGAIN ? 0 : -errno;   /* EAGAIN: counter saturated, a call is due anyway */
    return 0;
}

void dm_event_free(dm_event *ev)
{
    if (!ev)
        return;
    dm_watch_remove(ev->w);
    close(ev->fd);
    free(ev);
}

/* ----------------------------------------------------------------- run */

int dm_loop_iterate(dm_loop *loop, int timeout_ms)
{
    collect(loop);
    /* pfds and pwatch grow together; capwatch is pwatch's capacity. */
    if (grow((void **)&loop->pfds, &loop->cappfds, loop->nwatches + 1, sizeof(struct pollfd)) < 0 ||
        grow((void **)&loop->pwatch, &loop->cappwatch, loop->cappfds, sizeof(dm_watch *)) < 0)
        return -ENOMEM;

    nfds_t n = 0;
    for (size_t i = 0; i < loop->nwatches; i++) {
        dm_watch *w = loop->watches[i];
        short ev = (short)((w->want_read ? POLLIN : 0) | (w->want_write ? POLLOUT : 0));
        if (w->dead || !ev)
            continue;
        loop->pfds[n] = (struct pollfd){ .fd = w->fd, .events = ev };
        loop->pwatch[n++] = w;
    }
    int t = next_timeout_ms(loop);
    if (timeout_ms >= 0 && (t < 0 || timeout_ms < t))
        t = timeout_ms;
    int r = poll(loop->pfds, n, t);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;

    loop->depth++;
    int ran = run_timers(loop);
    for (nfds_t i = 0; i < n && r > 0; i++) {
        short re = loop->pfds[i].revents;
        if (!re)
            continue;
        dm_watch *w = loop->pwatch[i];
        if (re & POLLNVAL) {
            /* Closed without dm_watch_remove: a bug in the owner.  Polling
             * it again would spin, so the watch stops here. */
            if (!w->dead)
                dm_err("main loop: fd %d was closed while watched; no longer polled", w->fd);
            w->want_read = w->want_write = false;
            continue;
        }
        /* An error or hangup goes to the reader, whose read() reports it;
         * without a reader, to the writer. */
        if (!w->dead && w->want_read && (re & (POLLIN | POLLHUP | POLLERR))) {
            w->on_read(w->opaque, w->fd);
            ran++;
        }
        if (!w->dead && w->want_write &&
            ((re & POLLOUT) || (!w->want_read && (re & (POLLHUP | POLLERR))))) {
            w->on_write(w->opaque, w->fd);
            ran++;
        }
    }
    loop->depth--;
    collect(loop);
    return ran;
}

int dm_loop_run(dm_loop *loop)
{
    loop->stop = false;
    while (!loop->stop) {
        int r = dm_loop_iterate(loop, -1);
        if (r < 0) {
            dm_err("main loop: poll failed: %s", strerror(-r));
            return r;
        }
    }
    return loop->status;
}

void dm_loop_stop(dm_loop *loop, int status)
{
    loop->stop = true;
    loop->status = status;
}

bool dm_loop_stopped(const dm_loop *loop)
{
    return loop->stop;
}
