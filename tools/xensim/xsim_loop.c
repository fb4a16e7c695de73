/* xsim_loop.c: poll(2) loop with fd callbacks and one-shot timers.
 *
 * The fd table is a plain array rebuilt into a pollfd array each round:
 * xensim has at most a few thousand fds, and poll() is O(n) anyway.
 * Removal during dispatch only marks the slot dead (cb = NULL), so the
 * dispatch loop never touches freed entries; dead slots are compacted at
 * the start of the next round. */
#include "xsim_loop.h"
#include "xsim_log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct fd_slot {
    int fd;
    short events;
    xsim_fd_cb *cb;  /* NULL: removed, compact later */
    void *arg;
};

struct timer {
    uint64_t id;
    uint64_t deadline;
    xsim_timer_cb *cb;
    void *arg;
    struct timer *next;  /* sorted by deadline */
};

struct posted {
    xsim_call_fn *fn;
    void *arg;
    struct posted *next;
};

struct xsim_loop {
    pthread_mutex_t post_lock;   /* protects posted */
    struct posted *posted, **posted_tail;
    struct fd_slot *fds;
    size_t nfds, capfds;
    struct pollfd *pfds;
    size_t cappfds;
    struct timer *timers;
    uint64_t next_timer_id;
    int wake_fd;
    atomic_int stop;
    atomic_int running;       /* inside xsim_loop_run() */
    pthread_t owner;          /* its thread, valid while running */
};

uint64_t xsim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct xsim_loop *xsim_loop_new(void)
{
    struct xsim_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) {
        xsim_err("event loop: out of memory");
        return NULL;
    }
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wake_fd < 0) {
        xsim_err("event loop: eventfd: %s", strerror(errno));
        free(loop);
        return NULL;
    }
    atomic_init(&loop->stop, 0);
    atomic_init(&loop->running, 0);
    loop->next_timer_id = 1;
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->posted_tail = &loop->posted;
    return loop;
}

void xsim_loop_free(struct xsim_loop *loop)
{
    if (!loop)
        return;
    while (loop->timers) {
        struct timer *t = loop->timers;
        loop->timers = t->next;
        free(t);
    }
    while (loop->posted) {
        struct posted *p = loop->posted;
        loop->posted = p->next;
        free(p);
    }
    pthread_mutex_destroy(&loop->post_lock);
    close(loop->wake_fd);
    free(loop->fds);
    free(loop->pfds);
    free(loop);
}

static struct fd_slot *find_slot(struct xsim_loop *loop, int fd)
{
    for (size_t i = 0; i < loop->nfds; i++)
        if (loop->fds[i].cb && loop->fds[i].fd == fd)
            return &loop->fds[i];
    return NULL;
}

int xsim_loop_add_fd(struct xsim_loop *loop, int fd, short events, xsim_fd_cb *cb, void *arg)
{
    if (fd < 0 || !cb)
        return -EINVAL;
    if (find_slot(loop, fd))
        return -EEXIST;
    if (loop->nfds == loop->capfds) {
        size_t cap = loop->capfds ? loop->capfds * 2 : 16;
        struct fd_slot *n = realloc(loop->fds, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        loop->fds = n;
        loop->capfds = cap;
    }
    loop->fds[loop->nfds++] = (struct fd_slot){ fd, events, cb, arg };
    return 0;
}

int xsim_loop_set_events(struct xsim_loop *loop, int fd, short events)
{
    struct fd_slot *s = find_slot(loop, fd);
    if (!s)
        return -ENOENT;
    s->events = events;
    return 0;
}

void xsim_loop_del_fd(struct xsim_loop *loop, int fd)
{
    struct fd_slot *s = find_slot(loop, fd);
    if (s)
        s->cb = NULL;
}

uint64_t xsim_loop_add_timer(struct xsim_loop *loop, uint64_t delay_ms, xsim_timer_cb *cb, void *arg)
{
    struct timer *t = calloc(1, sizeof(*t));
    if (!t) {
        xsim_err("event loop: out of memory adding a timer");
        return 0;
    }
    t->id = loop->next_timer_id++;
    t->deadline = xsim_now_ms() + delay_ms;
    t->cb = cb;
    t->arg = arg;
    struct timer **pp = &loop->timers;
    while (*pp && (*pp)->deadline <= t->deadline)
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    return t->id;
}

void xsim_loop_cancel_timer(struct xsim_loop *loop, uint64_t id)
{
    for (struct timer **pp = &loop->timers; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct timer *t = *pp;
            *pp = t->next;
            free(t);
            return;
        }
    }
}

void xsim_loop_stop(struct xsim_loop *loop)
{
    atomic_store(&loop->stop, 1);
    uint64_t one = 1;
    /* Only fails if the counter would overflow: then poll wakes anyway. */
    ssize_t r = write(loop->wake_fd, &one, sizeof(one));
    (void)r;
}

int xsim_loop_stopping(struct xsim_loop *loop)
{
    return atomic_load(&loop->stop);
}

int xsim_loop_post(struct xsim_loop *loop, xsim_call_fn *fn, void *arg)
{
    struct posted *p = malloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&loop->post_lock);
    *loop->posted_tail = p;
    loop->posted_tail = &p->next;
    pthread_mutex_unlock(&loop->post_lock);
    uint64_t one = 1;
    ssize_t r = write(loop->wake_fd, &one, sizeof(one));
    (void)r;
    return 0;
}

struct sync_call {
    xsim_call_fn *fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
};

static void run_sync_call(struct xsim_loop *loop, void *arg)
{
    struct sync_call *sc = arg;
    sc->fn(loop, sc->arg);
    pthread_mutex_lock(&sc->lock);
    sc->done = 1;
    pthread_cond_signal(&sc->cond);
    pthread_mutex_unlock(&sc->lock);
}

int xsim_loop_call(struct xsim_loop *loop, xsim_call_fn *fn, void *arg)
{
    /* From the loop's own thread: waiting would deadlock; just run it. */
    if (atomic_load(&loop->running) && pthread_equal(loop->owner, pthread_self())) {
        fn(loop, arg);
        return 0;
    }
    struct sync_call sc = { .fn = fn, .arg = arg };
    pthread_mutex_init(&sc.lock, NULL);
    pthread_cond_init(&sc.cond, NULL);
    int r = xsim_loop_post(loop, run_sync_call, &sc);
    if (r == 0) {
        pthread_mutex_lock(&sc.lock);
        while (!sc.done)
            pthread_cond_wait(&sc.cond, &sc.lock);
        pthread_mutex_unlock(&sc.lock);
    }
    pthread_cond_destroy(&sc.cond);
    pthread_mutex_destroy(&sc.lock);
    return r;
}

static int run_posted(struct xsim_loop *loop)
{
    pthread_mutex_lock(&loop->post_lock);
    struct posted *p = loop->posted;
    loop->posted = NULL;
    loop->posted_tail = &loop->posted;
    pthread_mutex_unlock(&loop->post_lock);
    int ran = 0;
    while (p) {
        struct posted *next = p->next;
        p->fn(loop, p->arg);
        free(p);
        p = next;
        ran++;
    }
    return ran;
}

static void compact(struct xsim_loop *loop)
{
    size_t j = 0;
    for (size_t i = 0; i < loop->nfds; i++)
        if (loop->fds[i].cb)
            loop->fds[j++] = loop->fds[i];
    loop->nfds = j;
}

static int run_timers(struct xsim_loop *loop)
{
    int ran = 0;
    uint64_t now = xsim_now_ms();
    /* Timers added by a callback with delay 0 run next round, not now,
     * so a timer that re-arms itself cannot starve the fds. */
    uint64_t last_id = loop->next_timer_id;
    while (loop->timers && loop->timers->deadline <= now && loop->timers->id < last_id) {
        struct timer *t = loop->timers;
        loop->timers = t->next;
        xsim_timer_cb *cb = t->cb;
        void *arg = t->arg;
        free(t);
        cb(loop, arg);
        ran++;
    }
    return ran;
}

int xsim_loop_run_once(struct xsim_loop *loop, int timeout_ms)
{
    compact(loop);
    size_t n = loop->nfds + 1;
    if (n > loop->cappfds) {
        struct pollfd *p = realloc(loop->pfds, n * sizeof(*p));
        if (!p)
            return -ENOMEM;
        loop->pfds = p;
        loop->cappfds = n;
    }
    loop->pfds[0] = (struct pollfd){ loop->wake_fd, POLLIN, 0 };
    for (size_t i = 0; i < loop->nfds; i++)
        loop->pfds[i + 1] = (struct pollfd){ loop->fds[i].fd, loop->fds[i].events, 0 };

    if (loop->timers) {
        uint64_t now = xsim_now_ms();
        uint64_t d = loop->timers->deadline > now ? loop->timers->deadline - now : 0;
        if (timeout_ms < 0 || d < (uint64_t)timeout_ms)
            timeout_ms = d > 60000 ? 60000 : (int)d;
    }
    int r = poll(loop->pfds, n, timeout_ms);
    if (r < 0) {
        if (errno == EINTR)
            return 0;
        int e = errno;
        xsim_err("event loop: poll: %s", strerror(e));
        return -e;
    }
    int ran = 0;
    if (loop->pfds[0].revents) {
        uint64_t v;
        ssize_t rr = read(loop->wake_fd, &v, sizeof(v));
        (void)rr;
    }
    ran += run_posted(loop);
    /* Only slots that existed when poll() was called: pfds[i+1] <-> fds[i]
     * stays valid because removal marks, and additions append. */
    size_t polled = n - 1;
    for (size_t i = 0; i < polled && !atomic_load(&loop->stop); i++) {
        short rev = loop->pfds[i + 1].revents;
        struct fd_slot *s = &loop->fds[i];
        if (!rev || !s->cb || s->fd != loop->pfds[i + 1].fd)
            continue;
        s->cb(loop, s->fd, rev, s->arg);
        ran++;
    }
    if (!atomic_load(&loop->stop))
        ran += run_timers(loop);
    return ran;
}

int xsim_loop_run(struct xsim_loop *loop)
{
    loop->owner = pthread_self();
    atomic_store(&loop->running, 1);
    int r = 0;
    while (!atomic_load(&loop->stop)) {
        r = xsim_loop_run_once(loop, -1);
        if (r < 0)
            break;
        r = 0;
    }
    atomic_store(&loop->running, 0);
    return r;
}
