/*
 * xensim guests: the dm's reported run state, watched in the daemon's own
 * xenstore (`/local/domain/0/device-model/<domid>/runstate`, the extension
 * rsdm writes; `state` as a fallback for dms that only write that), and
 * what devices do while it says stopped.
 *
 * The checkers' own flag (guest_check_set_dm_stopped) is not fed: it would
 * lag the dm's reports by a watch round trip and blame a device that is
 * rightly busy just after `running`.  Counting here is conservative: a measurement (interrupt edges, a hash of the
 * guest RAM devices write) is taken only between two reads that both say
 * stopped with no change notified in between; the difference between two
 * such measurements with no change between them happened while the dm
 * reported stopped.  A device active after the dm said stopped, or again
 * before it says running, is caught; activity in the moment between the
 * dm's report and the runner's second confirmation may be missed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

#include "hv.h"
#include "guest_wl_internal.h"

struct mon_snap {
    uint64_t edges, hash;
};

static uint64_t hash_regions(struct guest_wl *wl)
{
    uint64_t gpa[80], len[80], size;
    unsigned n = wl_dma_regions(wl, gpa, len, 80);
    const uint8_t *ram = hv_domain_ram(wl->d, &size);
    uint64_t h = 0xcbf29ce484222325ull;
    if (!ram)
        return 0;
    /* No vCPU writes RAM while we hold exec: what changes is the devices'. */
    pthread_rwlock_wrlock(&wl->exec);
    for (unsigned i = 0; i < n; i++) {
        if (gpa[i] > size || len[i] > size - gpa[i])
            continue;
        const uint64_t *p = (const uint64_t *)(ram + gpa[i]);
        for (uint64_t k = 0; k < len[i] / 8; k++)
            h = (h ^ p[k]) * 0x100000001b3ull;
    }
    pthread_rwlock_unlock(&wl->exec);
    return h;
}

static struct mon_snap measure(struct guest_wl *wl)
{
    struct mon_snap s = { 0, 0 };
    struct hv_irq_state st;
    if (hv_irq_state(wl->d, &st) == 0) {
        for (unsigned i = 0; i < HV_NR_GSIS; i++)
            s.edges += st.edges[i];
        s.edges += st.msi_count;
    }
    s.hash = hash_regions(wl);
    return s;
}

/* Any watch event pending?  Drains them. */
static bool drain(struct xs_handle *xs)
{
    bool any = false;
    char **ev;
    while ((ev = xs_check_watch(xs)) != NULL) {
        free(ev);
        any = true;
    }
    return any;
}

/* Reads the run state; true if it says stopped.  "running" and
 * "suspended" (S3) are live; no node yet (dm starting or gone) is not
 * counted as stopped. */
static bool read_state(struct guest_wl *wl, struct xs_handle *xs, const char *rs_path,
                       const char *st_path)
{
    unsigned len;
    char *v = xs_read(xs, XBT_NULL, rs_path, &len);
    bool from_state = false;
    if (!v) {
        v = xs_read(xs, XBT_NULL, st_path, &len);
        from_state = true;
    }
    bool stopped = false;
    if (v) {
        char word[32];
        if (sscanf(v, "%31s", word) != 1)
            word[0] = '\0';
        stopped = from_state ? strcmp(word, "paused") == 0
                             : strcmp(word, "running") != 0 && strcmp(word, "suspended") != 0;
    }
    pthread_mutex_lock(&wl->lock);
    snprintf(wl->runstate, sizeof(wl->runstate), "%s", v ? v : "");
    wl->dm_stopped = stopped;
    pthread_mutex_unlock(&wl->lock);
    free(v);
    return stopped;
}

struct mon_arg {
    struct guest_wl *wl;
    struct xs_handle *xs;
};

static void *mon_main(void *p)
{
    struct mon_arg *a = p;
    struct guest_wl *wl = a->wl;
    struct xs_handle *xs = a->xs;
    free(a);
    char rs[128], st[128];
    snprintf(rs, sizeof(rs), "/local/domain/0/device-model/%u/runstate", wl->domid);
    snprintf(st, sizeof(st), "/local/domain/0/device-model/%u/state", wl->domid);
    if (!xs_watch(xs, rs, "rs") || !xs_watch(xs, st, "st")) {
        hv_log("guest workload %u: cannot watch the dm's state: %s", wl->domid, strerror(errno));
        xs_close(xs);
        return NULL;
    }
    pthread_mutex_lock(&wl->lock);
    wl->monitored = true;
    pthread_mutex_unlock(&wl->lock);
    struct mon_snap snap = { 0, 0 };
    bool have = false;
    while (!atomic_load(&wl->mon_stop)) {
        bool changed = drain(xs);
        bool stopped = read_state(wl, xs, rs, st);
        changed |= drain(xs);
        if (!stopped || changed) {
            have = false;
            struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
            /* Wake on the next change; the bound only notices mon_stop. */
            poll(&pfd, 1, stopped ? 10 : 100);
            continue;
        }
        struct mon_snap now = measure(wl);
        bool still = read_state(wl, xs, rs, st);
        if (drain(xs) || !still) {
            have = false;
            continue;
        }
        if (have) {
            if (now.edges > snap.edges)
                WL_COUNT(wl, irqs_while_stopped, now.edges - snap.edges);
            if (now.hash != snap.hash)
                WL_COUNT(wl, ram_writes_while_stopped, 1);
            pthread_mutex_lock(&wl->lock);
            wl->stopped_checks++;
            pthread_mutex_unlock(&wl->lock);
        }
        snap = now;
        have = true;
        struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
        poll(&pfd, 1, 20);
    }
    xs_close(xs);
    return NULL;
}

int wl_mon_start(struct guest_wl *wl, const char *xs_socket)
{
    struct xs_handle *xs = xs_open(0);
    if (!xs) {
        hv_log("guest workload %u: no xenstore at %s (%s): the dm's state is not watched",
               wl->domid, xs_socket, strerror(errno));
        return -1;
    }
    struct mon_arg *a = malloc(sizeof(*a));
    if (!a) {
        xs_close(xs);
        return -1;
    }
    a->wl = wl;
    a->xs = xs;
    if (pthread_create(&wl->mon, NULL, mon_main, a) != 0) {
        free(a);
        xs_close(xs);
        return -1;
    }
    wl->mon_thread = true;
    return 0;
}

bool wl_mon_stop(struct guest_wl *wl)
{
    if (!wl->mon_thread)
        return true;
    atomic_store(&wl->mon_stop, true);
    /* Its xenstore requests need the daemon's loop; should that have
     * stopped already (the daemon exits: guests are normally ended
     * before), the thread is left behind rather than waited for. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    if (pthread_timedjoin_np(wl->mon, NULL, &dl) != 0) {
        hv_log("guest workload %u: the dm-state watch does not end (xenstore gone?); "
               "left behind", wl->domid);
        pthread_detach(wl->mon);
        return false;
    }
    wl->mon_thread = false;
    return true;
}
