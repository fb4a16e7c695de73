/*
 * The hypervisor's place in `xensim run`: start its control socket and tie
 * domain lifecycle to the xenstore daemon.  The hypervisor's hook fires on
 * whatever thread changed the domain (control socket, vCPU threads); the
 * xenstore daemon lives on the single-threaded loop, so the work is posted
 * to the loop, or run directly when already on the loop's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hv.h"
#include "hv_main.h"
#include "hv_server.h"
#include "guest_workload.h"
#include "xs_server.h"
#include "xsim_loop.h"

static struct xsim_loop *hv_loop;
static struct xs_server *hv_xs;
static pthread_t loop_thread;

struct xs_job {
    uint32_t domid;
    enum hv_domain_event ev;
};

static void xs_job_run(struct xsim_loop *loop, void *arg)
{
    (void)loop;
    struct xs_job *j = arg;
    int rc = 0;
    const char *what = "";
    switch (j->ev) {
    case HV_DOM_CREATED:
        what = "introduce";
        rc = xs_server_introduce(hv_xs, j->domid);
        break;
    case HV_DOM_SHUTDOWN:
        what = "shutdown";
        rc = xs_server_domain_shutdown(hv_xs, j->domid);
        break;
    case HV_DOM_DESTROYED:
        what = "release";
        rc = xs_server_release(hv_xs, j->domid);
        break;
    }
    if (rc && !(j->ev == HV_DOM_DESTROYED && rc == ENOENT))
        hv_log("xenstore %s of domain %u: %s", what, j->domid, strerror(rc));
}

static void xs_job_posted(struct xsim_loop *loop, void *arg)
{
    xs_job_run(loop, arg);
    free(arg);
}

static void xs_hook(uint32_t domid, enum hv_domain_event ev, void *opaque)
{
    (void)opaque;
    if (!hv_xs || !hv_loop)
        return;
    if (pthread_equal(pthread_self(), loop_thread)) {
        struct xs_job j = { domid, ev };
        xs_job_run(hv_loop, &j);
        return;
    }
    /* Posted, not waited for: the loop may be stopping, and waiting would
     * deadlock shutdown.  Ordering still holds for clients: the job is
     * queued before the caller answers, so any xenstore request a client
     * sends after seeing the answer is handled after the job (the loop runs
     * posted work before fd callbacks in each round). */
    struct xs_job *j = malloc(sizeof(*j));
    if (j) {
        j->domid = domid;
        j->ev = ev;
    }
    if (!j || xsim_loop_post(hv_loop, xs_job_posted, j) < 0) {
        free(j);
        hv_log("xenstore update for domain %u could not reach the loop",
               domid);
    }
}

int hv_start(struct xsim_loop *loop, struct xs_server *xs, const char *rundir)
{
    hv_init();
    hv_loop = loop;
    hv_xs = xs;
    loop_thread = pthread_self();
    if (xs)
        hv_set_domain_hook(xs_hook, NULL);
    guest_wl_init(rundir);   /* guest workloads watch the dm in this xenstore */
    int rc = hv_server_start(rundir);
    if (rc < 0) {
        hv_set_domain_hook(NULL, NULL);
        hv_log("cannot start the hypervisor control socket: %s",
               strerror(-rc));
    }
    return rc;
}

void hv_stop(void)
{
    guest_wl_shutdown();
    hv_server_stop();
    /* The loop no longer runs: drop the hook before tearing down. */
    hv_set_domain_hook(NULL, NULL);
    hv_reset();
    hv_loop = NULL;
    hv_xs = NULL;
}
