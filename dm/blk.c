/*
 * The block backend (blk.h): a queue of requests served by a pool of
 * worker threads, their completions handed back to the main loop through a
 * dm_event.  One mutex guards the queue, the completion list, the
 * injection rules and the statistics; the workers hold it only to take a
 * request and to hand it back, never across I/O.
 */
#include "blk.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blk_image.h"
#include "blk_inject.h"
#include "dm_log.h"

#define DM_BLK_DEFAULT_WORKERS 8u
#define DM_BLK_MAX_WORKERS 64u

struct dm_blk_req {
    dm_blk *b;
    dm_blk_op op;
    uint64_t offset;
    void *buf;
    size_t len;
    dm_blk_done_fn done;
    void *opaque;
    bool cancelled;          /* [lock] the callback is not wanted */
    bool injected;           /* ret came from an injection rule */
    bool skipped;            /* cancelled before a worker took it: no I/O */
    int ret;
    dm_blk_req *next;        /* queue or completion list */
    dm_blk_req *older, *newer; /* the list of incomplete requests, by age */
};

struct dm_blk {
    dm_loop *loop;
    dm_event *ev;
    char *name, *node_name, *path;
    bool read_only;
    dm_cache_mode cache;
    dm_err_action rerror, werror;
    rs_vm *vm;
    dm_blk_event_fn on_event;
    void *event_opaque;
    dm_blk_image img;

    pthread_mutex_t lock;
    pthread_cond_t work;      /* workers: a request is queued, or stopping */
    pthread_cond_t idle;      /* drain/close: a request finished at a worker */
    pthread_cond_t inject_changed; /* a delayed worker: rules replaced, or stopping */
    pthread_t *threads;
    unsigned nthreads;
    bool stopping;
    dm_blk_req *q_head, *q_tail;         /* queued for the workers */
    dm_blk_req *done_head, *done_tail;   /* completed, callback not yet run */
    dm_blk_req *oldest, *newest;         /* incomplete (queued or running) */
    unsigned incomplete;                 /* queued or running */
    unsigned alive;                      /* submitted and not yet freed */
    dm_blk_rules rules;
    uint64_t rules_gen;
    dm_blk_stats stats;
    unsigned dispatching;     /* run_completions depth (a callback may close) */
    bool closed;              /* closed from inside a callback: freed on return */
};

static void lock(const dm_blk *b)
{
    pthread_mutex_lock((pthread_mutex_t *)&b->lock);
}

static void unlock(const dm_blk *b)
{
    pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
}

static const char *const op_names[] = { "read", "write", "flush" };

/* ------------------------------------------------------------ workers */

/* Full transfers: short reads/writes continue, EINTR retries; end of file
 * inside the image means it shrank under us. */
static int transfer(int fd, bool write, char *buf, size_t len, uint64_t offset)
{
    size_t done = 0;
    while (done < len) {
        ssize_t k = write ? pwrite(fd, buf + done, len - done, (off_t)(offset + done))
                          : pread(fd, buf + done, len - done, (off_t)(offset + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO;
        done += (size_t)k;
    }
    return 0;
}

static int do_io(dm_blk *b, dm_blk_req *r)
{
    if (r->op == DM_BLK_FLUSH) {
        if (b->cache == DM_CACHE_UNSAFE)
            return 0;
        return fdatasync(b->img.fd) < 0 ? -errno : 0;
    }
    bool write = r->op == DM_BLK_WRITE;
    if (!b->img.direct || ((uintptr_t)r->buf % DM_BLK_DIRECT_ALIGN) == 0)
        return transfer(b->img.fd, write, r->buf, r->len, r->offset);
    /* O_DIRECT needs an aligned buffer: bounce through one. */
    void *bounce = NULL;
    if (posix_memalign(&bounce, DM_BLK_DIRECT_ALIGN, r->len) != 0)
        return -ENOMEM;
    if (write)
        memcpy(bounce, r->buf, r->len);
    int rc = transfer(b->img.fd, write, bounce, r->len, r->offset);
    if (rc == 0 && !write)
        memcpy(r->buf, bounce, r->len);
    free(bounce);
    return rc;
}

/* Sleeps delay_ms on this worker, cut short when the rules change or the
 * backend stops.  Called and returns with the lock held. */
static void injected_delay(dm_blk *b, uint32_t delay_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += delay_ms / 1000;
    until.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    uint64_t gen = b->rules_gen;
    while (!b->stopping && b->rules_gen == gen) {
        if (pthread_cond_timedwait(&b->inject_changed, &b->lock, &until) == ETIMEDOUT)
            break;
    }
}

static void complete(dm_blk *b, dm_blk_req *r)
{
    dm_blk_stats *s = &b->stats;
    if (r->older)
        s->out_of_order++;
    if (r->older)
        r->older->newer = r->newer;
    else
        b->oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        b->newest = r->older;
    s->in_flight--;
    b->incomplete--;
    if (r->skipped) {
        /* a cancelled request that never ran is no completed request */
    } else if (r->ret < 0) {
        s->errors++;
        if (r->injected)
            s->injected++;
    } else if (r->op == DM_BLK_READ) {
        s->reads++;
        s->bytes_read += r->len;
    } else if (r->op == DM_BLK_WRITE) {
        s->writes++;
        s->bytes_written += r->len;
    } else {
        s->flushes++;
    }
    r->next = NULL;
    if (b->done_tail)
        b->done_tail->next = r;
    else
        b->done_head = r;
    b->done_tail = r;
}

static void *worker(void *arg)
{
    dm_blk *b = arg;
    lock(b);
    for (;;) {
        while (!b->q_head && !b->stopping)
            pthread_cond_wait(&b->work, &b->lock);
        if (!b->q_head)
            break;
        dm_blk_req *r = b->q_head;
        b->q_head = r->next;
        if (!b->q_head)
            b->q_tail = NULL;
        if (++b->stats.in_flight > b->stats.max_in_flight)
            b->stats.max_in_flight = b->stats.in_flight;
        dm_blk_fault fault = { 0 };
        bool hit = !r->cancelled && dm_blk_rules_match(&b->rules, r->op, r->offset, r->len, &fault);
        if (hit && fault.delay_ms)
            injected_delay(b, fault.delay_ms);
        bool skip = r->cancelled || (hit && fault.err);
        unlock(b);
        if (hit && fault.err) {
            r->ret = -fault.err;
            r->injected = true;
            dm_debug("disk %s: injected %s on a %s of %zu bytes at %llu", b->name,
                     strerror(fault.err), op_names[r->op], r->len,
                     (unsigned long long)r->offset);
        } else if (skip) {
            r->ret = -ECANCELED;
            r->skipped = true;
        } else {
            r->ret = do_io(b, r);
        }
        lock(b);
        /* The main loop empties the list before it sleeps again: only the
         * request that finds it empty needs to wake it. */
        bool wake = !b->done_head;
        complete(b, r);
        pthread_cond_broadcast(&b->idle);
        /* Posting under the lock keeps the event alive: close frees it only
         * after the workers exited. */
        if (wake)
            dm_event_post(b->ev);
    }
    unlock(b);
    return NULL;
}

/* ---------------------------------------------------------- main loop */

static void free_req(dm_blk *b, dm_blk_req *r)
{
    free(r);
    b->alive--;
}

static void free_backend(dm_blk *b);

/* Runs the callbacks of completed requests, oldest completion first.  A
 * callback may submit, cancel, drain or close. */
static void run_completions(dm_blk *b)
{
    b->dispatching++;
    while (!b->closed) {
        lock(b);
        dm_blk_req *r = b->done_head;
        if (r) {
            b->done_head = r->next;
            if (!b->done_head)
                b->done_tail = NULL;
        }
        bool cancelled = r && r->cancelled;
        unlock(b);
        if (!r)
            break;
        dm_blk_done_fn done = r->done;
        void *opaque = r->opaque;
        int ret = r->ret;
        free_req(b, r);
        if (!cancelled && done)
            done(opaque, ret);
    }
    if (--b->dispatching == 0 && b->closed)
        free_backend(b);
}

static void on_completion(void *opaque)
{
    run_completions(opaque);
}

dm_blk *dm_blk_open(dm_loop *loop, const dm_blk_opts *opts, char *err, size_t errlen)
{
    if (!loop || !opts || !opts->path || !*opts->path) {
        snprintf(err, errlen, "block backend: no loop or no image path given");
        errno = EINVAL;
        return NULL;
    }
    const char *name = opts->name && *opts->name ? opts->name : opts->path;
    if (opts->rerror == DM_ERR_ENOSPC || (unsigned)opts->rerror > DM_ERR_STOP ||
        (unsigned)opts->werror > DM_ERR_STOP || (unsigned)opts->cache > DM_CACHE_UNSAFE) {
        snprintf(err, errlen, "disk %s: %s", name,
                 opts->rerror == DM_ERR_ENOSPC
                     ? "rerror = enospc is not valid (enospc is for writes)"
                     : "invalid error policy or cache mode");
        errno = EINVAL;
        return NULL;
    }
    unsigned nthreads = opts->workers ? opts->workers : DM_BLK_DEFAULT_WORKERS;
    if (nthreads > DM_BLK_MAX_WORKERS) {
        snprintf(err, errlen, "disk %s: %u worker threads asked, at most %u", name, nthreads,
                 DM_BLK_MAX_WORKERS);
        errno = EINVAL;
        return NULL;
    }
    dm_blk *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, errlen, "disk %s: out of memory", name);
        return NULL;
    }
    dm_blk_opts o = *opts;
    o.name = name;
    char inject_err[256];
    int rc = dm_blk_rules_parse(opts->inject, &b->rules, inject_err, sizeof(inject_err));
    if (rc < 0) {
        snprintf(err, errlen, "disk %s: %s", name, inject_err);
        free(b);
        errno = -rc;
        return NULL;
    }
    rc = dm_blk_image_open(&b->img, &o, err, errlen);
    if (rc < 0) {
        dm_blk_rules_free(&b->rules);
        free(b);
        errno = -rc;
        return NULL;
    }
    b->loop = loop;
    b->name = strdup(name);
    b->path = strdup(opts->path);
    b->node_name = malloc(strlen(name) + 6);
    if (b->node_name)
        sprintf(b->node_name, "rsdm-%s", name);
    b->read_only = opts->read_only;
    b->cache = opts->cache;
    b->rerror = opts->rerror;
    b->werror = opts->werror;
    b->vm = opts->vm;
    b->on_event = opts->on_event;
    b->event_opaque = opts->event_opaque;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->inject_changed, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->idle, NULL);
    b->threads = calloc(nthreads, sizeof(*b->threads));
    b->ev = dm_event_new(loop, on_completion, b);
    if (!b->name || !b->path || !b->node_name || !b->threads || !b->ev) {
        snprintf(err, errlen, "disk %s: out of memory setting up the backend", name);
        dm_blk_close(b);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        rc = pthread_create(&b->threads[i], NULL, worker, b);
        if (rc != 0) {
            snprintf(err, errlen, "disk %s: cannot start worker thread %u: %s", name, i,
                     strerror(rc));
            dm_blk_close(b);
            errno = rc;
            return NULL;
        }
        b->nthreads++;
    }
    dm_info("disk %s: %s, %llu sectors, %s, cache=%s%s%s, %u workers", name, opts->path,
            (unsigned long long)(b->img.size / DM_BLK_SECTOR), b->read_only ? "ro" : "rw",
            dm_cache_mode_name(b->cache), b->img.direct ? " (O_DIRECT)" : "",
            b->rules.n ? ", injection on" : "", nthreads);
    return b;
}

/* Until nothing is queued or running at the workers. */
static void wait_workers(dm_blk *b)
{
    lock(b);
    while (b->incomplete)
        pthread_cond_wait(&b->idle, &b->lock);
    unlock(b);
}

void dm_blk_close(dm_blk *b)
{
    if (!b)
        return;
    /* The workers finish the queue before they exit; stopping cuts injected
     * delays short so close never waits for one. */
    lock(b);
    b->stopping = true;
    pthread_cond_broadcast(&b->work);
    pthread_cond_broadcast(&b->inject_changed);
    unlock(b);
    for (unsigned i = 0; i < b->nthreads; i++)
        pthread_join(b->threads[i], NULL);
    while (b->done_head) {
        dm_blk_req *r = b->done_head;
        b->done_head = r->next;
        free_req(b, r);
    }
    b->done_tail = NULL;
    dm_event_free(b->ev);
    b->ev = NULL;
    dm_blk_image_close(&b->img);
    dm_blk_rules_free(&b->rules);
    /* From inside one of its callbacks: run_completions frees it on return. */
    b->closed = true;
    if (!b->dispatching)
        free_backend(b);
}

static void free_backend(dm_blk *b)
{
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->inject_changed);
    pthread_mutex_destroy(&b->lock);
    free(b->threads);
    free(b->name);
    free(b->node_name);
    free(b->path);
    free(b);
}

const char *dm_blk_name(const dm_blk *b)
{
    return b->name;
}

uint64_t dm_blk_sectors(const dm_blk *b)
{
    return b->img.size / DM_BLK_SECTOR;
}

bool dm_blk_read_only(const dm_blk *b)
{
    return b->read_only;
}

bool dm_blk_direct(const dm_blk *b)
{
    return b->img.direct;
}

dm_blk_req *dm_blk_submit(dm_blk *b, dm_blk_op op, uint64_t offset, void *buf, size_t len,
                          dm_blk_done_fn done, void *opaque)
{
    if (b->closed) {                 /* closed by an earlier callback */
        errno = EBADF;
        return NULL;
    }
    if ((unsigned)op > DM_BLK_FLUSH) {
        errno = EINVAL;
        return NULL;
    }
    if (op != DM_BLK_FLUSH) {
        if (!buf || len == 0 || offset % DM_BLK_SECTOR || len % DM_BLK_SECTOR ||
            offset > b->img.size || len > b->img.size - offset) {
            errno = EINVAL;
            return NULL;
        }
    } else {
        offset = 0;
        buf = NULL;
        len = 0;
    }
    if (op == DM_BLK_WRITE && b->read_only) {
        errno = EROFS;
        return NULL;
    }
    dm_blk_req *r = calloc(1, sizeof(*r));
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    *r = (dm_blk_req){ .b = b, .op = op, .offset = offset, .buf = buf, .len = len,
                       .done = done, .opaque = opaque };
    b->alive++;
    lock(b);
    r->older = b->newest;
    if (b->newest)
        b->newest->newer = r;
    else
        b->oldest = r;
    b->newest = r;
    b->incomplete++;
    if (b->q_tail)
        b->q_tail->next = r;
    else
        b->q_head = r;
    b->q_tail = r;
    pthread_cond_signal(&b->work);
    unlock(b);
    return r;
}

void dm_blk_cancel(dm_blk_req *r)
{
    if (!r)
        return;
    lock(r->b);
    r->cancelled = true;
    unlock(r->b);
}

void dm_blk_drain(dm_blk *b)
{
    /* A callback may submit more: repeat until nothing is left. */
    while (b->alive && !b->closed) {
        wait_workers(b);
        run_completions(b);
    }
}

unsigned dm_blk_in_flight(const dm_blk *b)
{
    return b->alive;
}

void dm_blk_get_stats(const dm_blk *b, dm_blk_stats *out)
{
    lock(b);
    *out = b->stats;
    unlock(b);
}

/* --------------------------------------------------------- error policy */

dm_blk_action dm_blk_error_action(const dm_blk *b, bool is_read, int err)
{
    switch (is_read ? b->rerror : b->werror) {
    case DM_ERR_STOP:
        return DM_BLK_ACTION_STOP;
    case DM_ERR_ENOSPC:
        return err == ENOSPC ? DM_BLK_ACTION_STOP : DM_BLK_ACTION_REPORT;
    case DM_ERR_IGNORE:
        return DM_BLK_ACTION_IGNORE;
    case DM_ERR_REPORT:
    default:
        return DM_BLK_ACTION_REPORT;
    }
}

static const char *const action_names[] = { "report", "ignore", "stop" };

static void emit(dm_blk *b, const dm_blk_io_error *e)
{
    if (b->on_event)
        b->on_event(b->event_opaque, e);
    if (!b->vm)
        return;
    rs_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = RS_EV_BLOCK_IO_ERROR;
    ev.hold = RS_STATE__MAX;
    snprintf(ev.action, sizeof(ev.action), "%s", action_names[e->action]);
    snprintf(ev.device, sizeof(ev.device), "%s", e->device);
    snprintf(ev.operation, sizeof(ev.operation), "%s", e->is_read ? "read" : "write");
    ev.nospace = e->nospace;
    snprintf(ev.reason, sizeof(ev.reason), "%s", strerror(e->err));
    int rc = rs_post_event(b->vm, &ev);
    if (rc < 0)
        dm_err("disk %s: cannot post BLOCK_IO_ERROR: %s", b->name, strerror(-rc));
}

void dm_blk_report_error(dm_blk *b, dm_blk_action action, bool is_read, int err)
{
    if ((unsigned)action > DM_BLK_ACTION_STOP)
        action = DM_BLK_ACTION_REPORT;
    dm_blk_io_error e = { .device = b->name, .node_name = b->node_name, .is_read = is_read,
                          .action = action, .nospace = err == ENOSPC, .err = err };
    dm_warn("disk %s: %s error: %s; action %s", b->name, is_read ? "read" : "write",
            strerror(err), action_names[action]);
    if (action != DM_BLK_ACTION_STOP || !b->vm) {
        emit(b, &e);
        return;
    }
    /* QEMU's order: the stop request is locked across the event, so the
     * STOP it causes always comes after BLOCK_IO_ERROR. */
    int rc = rs_request_vmstop_prepare(b->vm);
    emit(b, &e);
    if (rc == 0)
        rc = rs_request_vmstop_commit(b->vm, RS_IO_ERROR);
    if (rc < 0)
        dm_err("disk %s: cannot request the io-error stop: %s", b->name, strerror(-rc));
}

/* ---------------------------------------------------------------- lock */

int dm_blk_lock_release(dm_blk *b)
{
    if (!b->img.locked)
        return 0;
    int rc = dm_blk_image_unlock(&b->img);
    if (rc < 0)
        dm_err("disk %s: cannot release the lock on %s: %s", b->name, b->path, strerror(-rc));
    return rc;
}

int dm_blk_lock_acquire(dm_blk *b, char *err, size_t errlen)
{
    if (b->img.locked)
        return 0;
    return dm_blk_image_lock(&b->img, b->name, b->path, b->read_only, err, errlen);
}

bool dm_blk_locked(const dm_blk *b)
{
    return b->img.locked;
}

/* ----------------------------------------------------------- injection */

int dm_blk_inject_set(dm_blk *b, const char *rules, char *err, size_t errlen)
{
    dm_blk_rules rs;
    char why[256];
    int rc = dm_blk_rules_parse(rules, &rs, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "disk %s: %s", b->name, why);
        return rc;
    }
    lock(b);
    dm_blk_rules old = b->rules;
    b->rules = rs;
    b->rules_gen++;
    pthread_cond_broadcast(&b->inject_changed);
    unlock(b);
    dm_blk_rules_free(&old);
    dm_info("disk %s: injection rules %s", b->name, rs.n ? "replaced" : "cleared");
    return 0;
}

void dm_blk_inject_clear(dm_blk *b)
{
    char err[8];
    dm_blk_inject_set(b, NULL, err, sizeof(err));
}
