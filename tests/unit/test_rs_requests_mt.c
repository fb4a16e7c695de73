/*
 * librunstate: requests posted from other threads and taken by the main
 * loop (docs/runstate.md §7, reference §4).  Threaded: CI runs it under
 * TSan.
 *
 * Synchronisation is by pthread_join, semaphores and poll() on the notify
 * fd with a bound; nothing sleeps to wait.  The main loop's trace
 * (rs_set_request_trace) shows the order in which requests were taken.
 */
#include "../lib/rs_test.h"

#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define WAIT_MS 10000    /* a bound for "must happen", never reached on success */

/* ============================================================== helpers */

static bool fd_readable(rs_vm *vm, int timeout_ms)
{
    struct pollfd p = { .fd = rs_notify_fd(vm), .events = POLLIN };
    int r;
    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    return r == 1 && (p.revents & POLLIN);
}

static void wait_posted(rs_vm *vm)
{
    assert_true(fd_readable(vm, WAIT_MS));
}

static void run_in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
}

static void sem_wait_bounded(sem_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    int r;
    do
        r = sem_timedwait(s, &ts);
    while (r < 0 && errno == EINTR);
    assert_int_equal(r, 0);
}

/* One request of each kind, posted from another thread. */
typedef enum { P_DEBUG, P_SUSPEND, P_SHUTDOWN, P_RESET, P_WAKEUP, P_POWERDOWN, P_VMSTOP } post_kind;

typedef struct post_job {
    rs_vm *vm;
    post_kind kind;
    int arg;        /* stop reason, cause, wakeup reason */
    int code;       /* shutdown exit code */
    int ret;
    rs_err err;
} post_job;

static int do_post(post_job *j)
{
    switch (j->kind) {
    case P_DEBUG: return rs_request_debug(j->vm);
    case P_SUSPEND: return rs_request_suspend(j->vm);
    case P_SHUTDOWN: return rs_request_shutdown(j->vm, (rs_cause)j->arg, j->code);
    case P_RESET: return rs_request_reset(j->vm, (rs_cause)j->arg);
    case P_WAKEUP: return rs_request_wakeup(j->vm, (rs_wakeup_reason)j->arg, &j->err);
    case P_POWERDOWN: return rs_request_powerdown(j->vm);
    case P_VMSTOP: return rs_request_vmstop(j->vm, (rs_state)j->arg);
    }
    return -EINVAL;
}

static void *post_thread(void *opaque)
{
    post_job *j = opaque;
    j->ret = do_post(j);
    return NULL;
}

/* Post from another thread and wait until it has returned. */
static int post(rs_vm *vm, post_kind kind, int arg)
{
    post_job j = { .vm = vm, .kind = kind, .arg = arg, .code = -1 };
    run_in_thread(post_thread, &j);
    return j.ret;
}

/* Several posts from one other thread, in array order. */
typedef struct post_list {
    post_job *jobs;
    size_t n;
} post_list;

static void *post_list_thread(void *opaque)
{
    post_list *l = opaque;
    for (size_t i = 0; i < l->n; i++)
        l->jobs[i].ret = do_post(&l->jobs[i]);
    return NULL;
}

static int setup_traced(void **state)
{
    int r = rs_test_setup(state);
    if (r == 0)
        rs_rec_trace(*state);
    return r;
}

#define TTEST(f) cmocka_unit_test_setup_teardown(f, setup_traced, rs_test_teardown)

/* ========================================================= each kind */

static void test_each_request_kind(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "h", 0);
    rs_test_boot(t);

    assert_int_equal(post(vm, P_SUSPEND, 0), 0);
    wait_posted(vm);
    ASSERT_LIVE(RS_RUNNING);       /* only the main loop changes the state */
    PROCESS();
    EXPECT("req:SUSPEND", "hook:suspend", "SUSPEND");
    ASSERT_LIVE(RS_SUSPENDED);

    assert_int_equal(post(vm, P_WAKEUP, RS_WAKEUP_RTC), 0);
    wait_posted(vm);
    ASSERT_LIVE(RS_SUSPENDED);     /* wakeup included (QEMU sets it in the poster) */
    PROCESS();
    EXPECT("req:WAKEUP rtc", "hook:wakeup rtc", "WAKEUP rtc");
    ASSERT_LIVE(RS_RUNNING);

    /* The poster gets QEMU's error when the guest is not in S3. */
    post_job j = { .vm = vm, .kind = P_WAKEUP, .arg = RS_WAKEUP_OTHER };
    run_in_thread(post_thread, &j);
    assert_true(j.ret < 0);
    assert_string_equal(j.err.msg, "Unable to wake up: guest is not in suspended state");

    assert_int_equal(post(vm, P_POWERDOWN, 0), 0);
    wait_posted(vm);
    PROCESS();
    EXPECT("req:POWERDOWN", "POWERDOWN", "hook:powerdown");

    assert_int_equal(post(vm, P_RESET, RS_CAUSE_GUEST_RESET), 0);
    wait_posted(vm);
    PROCESS();
    EXPECT("req:RESET guest-reset", "hook:reset guest-reset", "RESET guest-reset");
    ASSERT_LIVE(RS_RUNNING);

    assert_int_equal(post(vm, P_DEBUG, 0), 0);
    wait_posted(vm);
    PROCESS();
    EXPECT("req:DEBUG", "h(0,debug)", "STOP debug", "hook:drain");
    ASSERT_STATE(RS_DEBUG, RS_DEBUG);

    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "h(1,running)");
    assert_int_equal(post(vm, P_VMSTOP, RS_IO_ERROR), 0);
    wait_posted(vm);
    ASSERT_LIVE(RS_RUNNING);       /* pending is not held */
    PROCESS();
    EXPECT("req:VMSTOP io-error", "h(0,io-error)", "STOP io-error", "hook:drain");
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR);

    /* Shutdown with the default poweroff action: the loop exits. */
    post_job sj = { .vm = vm, .kind = P_SHUTDOWN, .arg = RS_CAUSE_GUEST_SHUTDOWN, .code = -1 };
    run_in_thread(post_thread, &sj);
    assert_int_equal(sj.ret, 0);
    wait_posted(vm);
    int status = -1;
    assert_int_equal(rs_process_requests(vm, &status), 1);
    assert_int_equal(status, 0);
    EXPECT("req:SHUTDOWN guest-shutdown", "SHUTDOWN guest-shutdown",
           "hook:shutdown guest-shutdown");
}

static void test_shutdown_exit_code(void **state)
{
    FIXTURE;
    post_job sj = { .vm = vm, .kind = P_SHUTDOWN, .arg = RS_CAUSE_HOST_SIGNAL, .code = 7 };
    run_in_thread(post_thread, &sj);
    assert_int_equal(sj.ret, 0);
    wait_posted(vm);
    int status = -1;
    assert_int_equal(rs_process_requests(vm, &status), 1);
    assert_int_equal(status, 7);
    EXPECT("req:SHUTDOWN host-signal", "SHUTDOWN host-signal", "hook:shutdown host-signal");
}

/* ====================================================== main-loop order */

static void test_main_loop_order_with_everything_pending(void **state)
{
    FIXTURE;
    rs_action_update u = { .has_shutdown = true, .value.shutdown = RS_SHUTDOWN_PAUSE };
    assert_int_equal(rs_set_actions(vm, &u), 0);
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);
    ASSERT_LIVE(RS_SUSPENDED);

    /* Posted in the reverse of the order they are taken. */
    post_job jobs[] = {
        { .vm = vm, .kind = P_VMSTOP, .arg = RS_PAUSED },
        { .vm = vm, .kind = P_POWERDOWN },
        { .vm = vm, .kind = P_WAKEUP, .arg = RS_WAKEUP_RTC },
        { .vm = vm, .kind = P_RESET, .arg = RS_CAUSE_GUEST_RESET },
        { .vm = vm, .kind = P_SHUTDOWN, .arg = RS_CAUSE_GUEST_SHUTDOWN, .code = -1 },
        { .vm = vm, .kind = P_SUSPEND },
        { .vm = vm, .kind = P_DEBUG },
    };
    post_list l = { jobs, sizeof(jobs) / sizeof(jobs[0]) };
    run_in_thread(post_list_thread, &l);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(jobs[i].ret, 0);
    wait_posted(vm);
    PROCESS();
    /* Everything was taken in one go. */
    assert_true(t->batch[0] != 0);
    for (size_t i = 1; i < t->n; i++)
        if (t->batch[i])
            assert_int_equal(t->batch[i], t->batch[0]);
    assert_int_equal(rs_rec_count_prefix(t, "req:"), 7);
    EXPECT(/* 1. debug: suspended has no edge to debug, so paused shows (§4) */
           "req:DEBUG", "STOP debug", "hook:drain",
           /* 2. suspend: the VM is stopped, it waits (§10) */
           "req:SUSPEND",
           /* 3. shutdown with action pause: a fatal hold */
           "req:SHUTDOWN guest-shutdown", "SHUTDOWN guest-shutdown",
           "hook:shutdown guest-shutdown", "x-hold-added shutdown", "hook:drain",
           /* 4. reset: holds released in acquisition order, prelaunch */
           "req:RESET guest-reset", "hook:reset guest-reset", "RESET guest-reset",
           "x-hold-released debug", "x-hold-released shutdown", "x-hold-added prelaunch",
           /* 5. wakeup: no longer suspended, W cleared by the reset: dropped */
           "req:WAKEUP rtc",
           /* 6. powerdown */
           "req:POWERDOWN", "POWERDOWN", "hook:powerdown",
           /* 7. vmstop on a stopped VM: a hold */
           "req:VMSTOP paused", "x-hold-added paused", "hook:drain");
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH, RS_PAUSED);
    /* The reset dropped the suspend: the start that follows finds none. */
    assert_false(fd_readable(vm, 0));
    OK(rs_cont(vm, &err));
    PROCESS();
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_flag_requests_merge(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    /* Two powerdowns, two resets (last cause), two debug requests. */
    post_job jobs[] = {
        { .vm = vm, .kind = P_POWERDOWN },
        { .vm = vm, .kind = P_POWERDOWN },
        { .vm = vm, .kind = P_RESET, .arg = RS_CAUSE_GUEST_RESET },
        { .vm = vm, .kind = P_RESET, .arg = RS_CAUSE_HOST_QMP_SYSTEM_RESET },
        { .vm = vm, .kind = P_DEBUG },
        { .vm = vm, .kind = P_DEBUG },
    };
    post_list l = { jobs, sizeof(jobs) / sizeof(jobs[0]) };
    run_in_thread(post_list_thread, &l);
    wait_posted(vm);
    PROCESS();
    EXPECT("req:DEBUG", "STOP debug", "hook:drain",
           "req:RESET host-qmp-system-reset", "hook:reset host-qmp-system-reset",
           "RESET host-qmp-system-reset", "x-hold-released debug", "x-hold-added prelaunch",
           "req:POWERDOWN", "POWERDOWN", "hook:powerdown");
    PROCESS();
    EXPECT_NOTHING();

    /* Two shutdowns are one, with the last cause and exit code. */
    post_job two[] = {
        { .vm = vm, .kind = P_SHUTDOWN, .arg = RS_CAUSE_HOST_UI, .code = 3 },
        { .vm = vm, .kind = P_SHUTDOWN, .arg = RS_CAUSE_HOST_SIGNAL, .code = 9 },
    };
    post_list l2 = { two, 2 };
    run_in_thread(post_list_thread, &l2);
    wait_posted(vm);
    int status = -1;
    assert_int_equal(rs_process_requests(vm, &status), 1);
    assert_int_equal(status, 9);
    EXPECT("req:SHUTDOWN host-signal", "SHUTDOWN host-signal", "hook:shutdown host-signal");
}

/* ===================================================== racing stop requests */

static void test_two_stop_requests_last_writer_wins(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "h", 0);
    rs_test_boot(t);
    assert_int_equal(post(vm, P_VMSTOP, RS_IO_ERROR), 0);
    assert_int_equal(post(vm, P_VMSTOP, RS_WATCHDOG), 0);
    wait_posted(vm);
    PROCESS();
    /* One stop: the display is the last posted (QEMU), the holds keep both,
     * handlers once, one STOP, x-hold-added for the other. */
    EXPECT("req:VMSTOP io-error", "req:VMSTOP watchdog", "h(0,watchdog)", "STOP watchdog",
           "x-hold-added io-error", "hook:drain");
    ASSERT_STATE(RS_WATCHDOG, RS_IO_ERROR, RS_WATCHDOG);
    assert_int_equal(t->batch[0], t->batch[1]);
    assert_true(t->batch[0] != 0);
    /* cont clears both. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "h(1,running)");
}

typedef struct race {
    rs_vm *vm;
    pthread_barrier_t *go;
    rs_state reason;
    int ret;
} race;

static void *race_thread(void *opaque)
{
    race *r = opaque;
    pthread_barrier_wait(r->go);
    r->ret = rs_request_vmstop(r->vm, r->reason);
    return NULL;
}

static void test_racing_stop_requests(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    char stop[RS_REC_LINE], added[RS_REC_LINE];
    for (int round = 0; round < 200; round++) {
        pthread_barrier_t go;
        assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
        race a = { vm, &go, RS_IO_ERROR, 1 }, b = { vm, &go, RS_GUEST_PANICKED, 1 };
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, race_thread, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, race_thread, &b), 0);
        assert_int_equal(pthread_join(ta, NULL), 0);
        assert_int_equal(pthread_join(tb, NULL), 0);
        pthread_barrier_destroy(&go);
        assert_int_equal(a.ret, 0);
        assert_int_equal(b.ret, 0);
        wait_posted(vm);
        PROCESS();

        /* Whichever the main loop saw posted last is displayed. */
        assert_true(t->n >= 2);
        assert_int_equal(t->batch[0], t->batch[1]);
        const char *last = t->line[1] + strlen("req:VMSTOP ");
        const char *first = t->line[0] + strlen("req:VMSTOP ");
        assert_string_not_equal(first, last);
        snprintf(stop, sizeof(stop), "STOP %s", last);
        snprintf(added, sizeof(added), "x-hold-added %s", first);
        assert_true(rs_rec_expect(t, t->line[0], t->line[1], stop, added, "hook:drain"));
        assert_string_equal(rs_state_name(rs_get_state(vm)), last);
        assert_int_equal(rs_get_holds(vm), rs_rec_holds(RS_IO_ERROR, RS_GUEST_PANICKED));
        rs_rec_clear(t);
        OK(rs_cont(vm, &err));
        EXPECT("RESUME");
    }
}

/* Many threads, many reasons, the main loop processing meanwhile: no hold
 * may be lost, and the VM stops exactly once. */
typedef struct storm {
    rs_vm *vm;
    const rs_state *reasons;
    size_t nreasons;
    atomic_int *done;
    int failures;
} storm;

static void *storm_thread(void *opaque)
{
    storm *s = opaque;
    for (int rep = 0; rep < 50; rep++)
        for (size_t i = 0; i < s->nreasons; i++)
            s->failures += rs_request_vmstop(s->vm, s->reasons[i]) != 0;
    atomic_fetch_add(s->done, 1);
    /* Wake the main loop even if every post above was merged. */
    rs_request_powerdown(s->vm);
    return NULL;
}

static void test_stop_storm_loses_no_hold(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    static const rs_state reasons[][2] = {
        { RS_IO_ERROR, RS_WATCHDOG },
        { RS_GUEST_PANICKED, RS_DEBUG },
        { RS_POSTMIGRATE, RS_IO_ERROR },
        { RS_WATCHDOG, RS_PAUSED },
    };
    enum { N = 4 };
    atomic_int done = 0;
    storm s[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        s[i] = (storm){ vm, reasons[i], 2, &done, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, storm_thread, &s[i]), 0);
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        bool all_done = atomic_load(&done) == N;   /* read before taking */
        if (fd_readable(vm, 100))
            PROCESS();
        if (all_done) {
            PROCESS();
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        assert_true(now.tv_sec - t0.tv_sec < WAIT_MS / 1000);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(s[i].failures, 0);
    }
    PROCESS();
    assert_int_equal(rs_get_holds(vm),
                     rs_rec_holds(RS_IO_ERROR, RS_WATCHDOG, RS_GUEST_PANICKED, RS_DEBUG,
                                  RS_POSTMIGRATE, RS_PAUSED));
    assert_int_equal(rs_rec_count_prefix(t, "STOP "), 1);
    assert_int_equal(rs_rec_count_prefix(t, "x-hold-added "), 5);
    assert_int_equal(rs_rec_count_prefix(t, "x-hold-released "), 0);
    assert_int_equal(rs_rec_count_prefix(t, "RESUME"), 0);
    assert_false(t->overflow);
}

/* ========================================== BLOCK_IO_ERROR before its STOP */

typedef struct io_error_job {
    rs_vm *vm;
    sem_t prepared;
    int ret_prepare, ret_event, ret_commit;
} io_error_job;

static void *io_error_thread(void *opaque)
{
    io_error_job *j = opaque;
    j->ret_prepare = rs_request_vmstop_prepare(j->vm);
    sem_post(&j->prepared);
    rs_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = RS_EV_BLOCK_IO_ERROR;
    ev.hold = RS_STATE__MAX;
    snprintf(ev.device, sizeof(ev.device), "ide0-hd0");
    snprintf(ev.operation, sizeof(ev.operation), "write");
    snprintf(ev.action, sizeof(ev.action), "stop");
    snprintf(ev.reason, sizeof(ev.reason), "Input/output error");
    j->ret_event = rs_post_event(j->vm, &ev);
    j->ret_commit = rs_request_vmstop_commit(j->vm, RS_IO_ERROR);
    return NULL;
}

static void test_block_io_error_comes_before_stop(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "ide", 0);
    rs_test_boot(t);
    for (int round = 0; round < 50; round++) {
        io_error_job j = { .vm = vm };
        assert_int_equal(sem_init(&j.prepared, 0, 0), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, io_error_thread, &j), 0);
        /* The main loop runs while the device thread is inside the bracket:
         * it cannot take the stop before the event. */
        sem_wait_bounded(&j.prepared);
        PROCESS();
        assert_int_equal(pthread_join(th, NULL), 0);
        sem_destroy(&j.prepared);
        assert_int_equal(j.ret_prepare, 0);
        assert_int_equal(j.ret_event, 0);
        assert_int_equal(j.ret_commit, 0);
        if (t->n == 0) {    /* the loop ran before the commit: take it now */
            wait_posted(vm);
            PROCESS();
        }
        const rs_event *bio = rs_rec_last_event(t, RS_EV_BLOCK_IO_ERROR);
        assert_non_null(bio);
        assert_string_equal(bio->device, "ide0-hd0");
        assert_string_equal(bio->operation, "write");
        assert_string_equal(bio->action, "stop");
        EXPECT("BLOCK_IO_ERROR ide0-hd0", "req:VMSTOP io-error", "ide(0,io-error)",
               "STOP io-error", "hook:drain");
        ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR);
        OK(rs_retry(vm, &err));
        EXPECT("RESUME", "ide(1,running)");
    }
}

static void test_vmstop_commit_misuse(void **state)
{
    FIXTURE;
    /* commit without prepare, and a bad reason after prepare (which must
     * still release the lock: the next request works). */
    FAILS(rs_request_vmstop_commit(vm, RS_PAUSED), -EINVAL);
    FAILS(rs_request_vmstop_prepare(vm), 0);
    FAILS(rs_request_vmstop_commit(vm, RS_RUNNING), -EINVAL);
    FAILS(rs_request_vmstop(vm, RS_PRELAUNCH), -EINVAL);        /* not a stop reason */
    FAILS(rs_request_vmstop(vm, RS_FINISH_MIGRATE), -EINVAL);   /* internal */
    FAILS(rs_request_vmstop(vm, RS_STATE__MAX), -EINVAL);
    FAILS(rs_request_vmstop_prepare(NULL), -EINVAL);
    FAILS(rs_request_vmstop_commit(NULL, RS_PAUSED), -EINVAL);
    assert_int_equal(post(vm, P_VMSTOP, RS_PAUSED), 0);
    wait_posted(vm);
    PROCESS();
    EXPECT("req:VMSTOP paused", "x-hold-added paused", "hook:drain");
    /* Bad events. */
    rs_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = RS_EV__MAX;
    FAILS(rs_post_event(vm, &ev), -EINVAL);
    FAILS(rs_post_event(vm, NULL), -EINVAL);
    ev.type = RS_EV_BLOCK_IO_ERROR;
    FAILS(rs_post_event(NULL, &ev), -EINVAL);
    EXPECT_NOTHING();
}

/* ========================================== cont with a stop pending */

static void test_cont_takes_a_pending_stop_first(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "ide", 0);
    rs_test_boot(t);
    assert_int_equal(post(vm, P_VMSTOP, RS_IO_ERROR), 0);
    wait_posted(vm);
    /* QEMU's STOP+RESUME, and here the handlers do run: the device gets
     * its stop and its restart (and retries its parked I/O). */
    OK(rs_cont(vm, &err));
    EXPECT("req:VMSTOP io-error", "ide(0,io-error)", "STOP io-error", "hook:drain", "RESUME",
           "ide(1,running)");
    ASSERT_LIVE(RS_RUNNING);
    /* Nothing left for the main loop. */
    PROCESS();
    EXPECT_NOTHING();
    assert_false(fd_readable(vm, 0));
}

/* ============================================================ notify fd */

static void *post_event_thread(void *opaque)
{
    rs_vm *vm = opaque;
    rs_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = RS_EV_BLOCK_IO_ERROR;
    ev.hold = RS_STATE__MAX;
    snprintf(ev.device, sizeof(ev.device), "xvda");
    rs_post_event(vm, &ev);
    return NULL;
}

static void test_notify_fd(void **state)
{
    FIXTURE;
    assert_true(rs_notify_fd(vm) >= 0);
    assert_false(fd_readable(vm, 0));

    assert_int_equal(post(vm, P_POWERDOWN, 0), 0);
    assert_true(fd_readable(vm, WAIT_MS));
    assert_true(fd_readable(vm, 0));    /* stays readable until taken */
    PROCESS();
    EXPECT("req:POWERDOWN", "POWERDOWN", "hook:powerdown");
    assert_false(fd_readable(vm, 0));

    /* An event from another thread wakes the loop too. */
    run_in_thread(post_event_thread, vm);
    assert_true(fd_readable(vm, WAIT_MS));
    EXPECT_NOTHING();                   /* not delivered before the loop runs */
    PROCESS();
    EXPECT("BLOCK_IO_ERROR xvda");
    assert_false(fd_readable(vm, 0));

    /* Processing with nothing pending is harmless. */
    PROCESS();
    EXPECT_NOTHING();
}

/* ================================================ [main] from elsewhere */

static void noop_handler(void *o, bool r, rs_state s) { (void)o; (void)r; (void)s; }
static void noop_sink(void *o, const rs_event *e) { (void)o; (void)e; }

typedef struct foreign {
    rs_vm *vm;
    rs_handler *h;
    int rets[20];
    int nrets;
    rs_err err;
    rs_handler *added;
    int add_errno;
    rs_state seen_state;
    rs_holdset seen_holds;
    bool seen_live;
} foreign;

static void *foreign_thread(void *opaque)
{
    foreign *f = opaque;
    rs_vm *vm = f->vm;
    rs_action_update u = { .has_panic = true, .value.panic = RS_PANIC_PAUSE };
    int *r = f->rets;
    r[f->nrets++] = rs_vm_stop(vm, RS_PAUSED, &f->err);
    r[f->nrets++] = rs_vm_shutdown(vm);
    r[f->nrets++] = rs_vm_stop_force_state(vm, RS_PAUSED, NULL);
    r[f->nrets++] = rs_vm_resume(vm, RS_RUNNING, NULL);
    r[f->nrets++] = rs_cont(vm, NULL);
    r[f->nrets++] = rs_retry(vm, NULL);
    r[f->nrets++] = rs_hold_acquire(vm, RS_FINISH_MIGRATE, NULL);
    r[f->nrets++] = rs_hold_release(vm, RS_FINISH_MIGRATE, NULL);
    r[f->nrets++] = rs_set_was_suspended(vm, true);
    r[f->nrets++] = rs_set_actions(vm, &u);
    r[f->nrets++] = rs_guest_panicked(vm);
    r[f->nrets++] = rs_watchdog_expired(vm);
    r[f->nrets++] = rs_process_requests(vm, NULL);
    r[f->nrets++] = rs_handler_del(vm, f->h);
    r[f->nrets++] = rs_event_sink_add(vm, noop_sink, NULL);
    r[f->nrets++] = rs_event_sink_del(vm, noop_sink, NULL);
    errno = 0;
    f->added = rs_handler_add(vm, noop_handler, NULL, 0);
    f->add_errno = errno;
    /* These must not take effect from here. */
    rs_set_hooks(vm, NULL);
    rs_set_request_trace(vm, NULL, NULL);
    /* [any] queries work. */
    f->seen_state = rs_get_state(vm);
    f->seen_holds = rs_get_holds(vm);
    f->seen_live = rs_is_live(vm);
    return NULL;
}

static void test_main_functions_from_another_thread(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    foreign f = { .vm = vm, .h = rs_handler_add(vm, noop_handler, NULL, 0) };
    assert_non_null(f.h);
    run_in_thread(foreign_thread, &f);

    assert_int_equal(f.nrets, 16);
    for (int i = 0; i < f.nrets; i++)
        if (f.rets[i] != -EPERM)
            fail_msg("call %d from another thread returned %d, not -EPERM", i, f.rets[i]);
    assert_int_equal(f.err.code, -EPERM);
    assert_true(f.err.msg[0] != '\0');
    assert_null(f.added);
    assert_int_equal(f.add_errno, EPERM);
    assert_int_equal(f.seen_state, RS_RUNNING);
    assert_int_equal(f.seen_holds, 0);
    assert_true(f.seen_live);

    /* Nothing changed: state, actions, handler, hooks and trace intact. */
    ASSERT_LIVE(RS_RUNNING);
    EXPECT_NOTHING();
    rs_actions a;
    rs_get_actions(vm, &a);
    assert_int_equal(a.panic, RS_PANIC_SHUTDOWN);
    assert_int_equal(rs_handler_del(vm, f.h), 0);
    assert_int_equal(post(vm, P_VMSTOP, RS_PAUSED), 0);
    wait_posted(vm);
    PROCESS();
    EXPECT("req:VMSTOP paused", "STOP paused", "hook:drain");
}

/* A refused call from another thread logs; meanwhile the main loop may
 * change the log function.  The refusal must not read what the main loop
 * writes (TSan checks this one). */
typedef struct log_race {
    rs_vm *vm;
    pthread_barrier_t *go;
    int eperm;
} log_race;

static void *log_race_thread(void *opaque)
{
    log_race *l = opaque;
    pthread_barrier_wait(l->go);
    for (int i = 0; i < 50; i++)
        l->eperm += rs_cont(l->vm, NULL) == -EPERM;
    return NULL;
}

static void quiet_log(void *opaque, rs_log_level level, const char *msg)
{
    (void)opaque, (void)level, (void)msg;
}

static void test_refusal_off_the_main_thread_while_the_log_changes(void **state)
{
    FIXTURE;
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    log_race l = { vm, &go, 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, log_race_thread, &l), 0);
    pthread_barrier_wait(&go);
    for (int i = 0; i < 50; i++)
        rs_set_log(vm, (i & 1) ? quiet_log : NULL, NULL);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&go);
    assert_int_equal(l.eperm, 50);
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TTEST(test_each_request_kind),
        TTEST(test_shutdown_exit_code),
        TTEST(test_main_loop_order_with_everything_pending),
        TTEST(test_flag_requests_merge),
        TTEST(test_two_stop_requests_last_writer_wins),
        TTEST(test_racing_stop_requests),
        TTEST(test_stop_storm_loses_no_hold),
        TTEST(test_block_io_error_comes_before_stop),
        TTEST(test_vmstop_commit_misuse),
        TTEST(test_cont_takes_a_pending_stop_first),
        TTEST(test_notify_fd),
        TTEST(test_main_functions_from_another_thread),
        TTEST(test_refusal_off_the_main_thread_while_the_log_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
