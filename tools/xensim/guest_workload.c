/*
 * xensim guests: the workload registry and lifecycle (see guest_workload.h).
 * One workload per domain; a finished one stays for `status` until the
 * next start on that domain or until its domain is gone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hv.h"
#include "guest_hv.h"
#include "guest_wl_internal.h"

#define WL_MAX 64

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct guest_wl *reg[WL_MAX];
static char xs_socket[4200];

static const char *state_names[] = { "starting", "firmware", "running", "stopping", "stopped",
                                     "done", "failed", "shutdown" };

void guest_wl_init(const char *rundir)
{
    if (!rundir || !*rundir) {
        xs_socket[0] = '\0';
        return;
    }
    snprintf(xs_socket, sizeof(xs_socket), "%s/xenstored/socket", rundir);
    /* libxenstore finds the daemon through the environment; set before
     * any thread of the daemon could read it. */
    setenv("XENSTORED_PATH", xs_socket, 1);
}

static bool active(const struct guest_wl *wl)
{
    return wl->running_threads > 0;
}

/* Threads joined, everything released.  reg_lock held, wl not active. */
static void wl_free(struct guest_wl *wl)
{
    for (unsigned i = 0; i < wl->nvcpus; i++)
        if (wl->v[i].thread)
            pthread_join(wl->v[i].th, NULL);
    if (!wl_mon_stop(wl))
        return;   /* its watch still uses it: kept (only at daemon exit) */
    if (wl->con)
        wl_con_release(wl->con);
    for (unsigned k = 0; k < WL_NDISKS; k++) {
        if (wl->chk_ready[k])
            guest_check_destroy(&wl->chk[k]);
        pthread_mutex_destroy(&wl->disk_lock[k]);
    }
    for (unsigned i = 0; i < wl->nvcpus; i++) {
        if (wl->v[i].bus_open)
            guest_bus_close(&wl->v[i].bus);
        free(wl->v[i].iobuf);
    }
    hv_domain_put(wl->d);
    pthread_rwlock_destroy(&wl->exec);
    pthread_cond_destroy(&wl->cond);
    pthread_mutex_destroy(&wl->lock);
    free(wl);
}

/* Forget finished workloads of domains that are gone.  reg_lock held. */
static void prune(void)
{
    for (int i = 0; i < WL_MAX; i++) {
        struct guest_wl *wl = reg[i];
        if (!wl)
            continue;
        struct hv_domain_info di;
        pthread_mutex_lock(&wl->lock);
        bool busy = active(wl);
        pthread_mutex_unlock(&wl->lock);
        if (!busy && hv_domain_info(wl->domid, &di) < 0) {
            reg[i] = NULL;
            wl_free(wl);
        }
    }
}

static struct guest_wl **slot_of(uint32_t domid)
{
    for (int i = 0; i < WL_MAX; i++)
        if (reg[i] && reg[i]->domid == domid)
            return &reg[i];
    return NULL;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The spec a resume continues: the one the guest keeps in its RAM. */
static int resume_spec(uint32_t domid, char *out, size_t len, char *err, size_t errlen)
{
    struct hv_domain *d = hv_domain_get(domid);
    uint64_t size = 0;
    const uint8_t *ram = d ? hv_domain_ram(d, &size) : NULL;
    int rc = 0;
    struct wl_hdr h;
    if (!ram || size < WL_HDR_GPA + WL_HDR_SIZE) {
        snprintf(err, errlen, "domain %u: no guest RAM to resume from", domid);
        rc = -EINVAL;
    } else {
        memcpy(&h, ram + WL_HDR_GPA, offsetof(struct wl_hdr, uart_tx_next));
        if (h.magic != WL_HDR_MAGIC || h.version != WL_HDR_VERSION) {
            snprintf(err, errlen, "domain %u: no workload state in guest RAM at 0x%llx "
                     "(was the guest saved with its RAM while a workload ran?)", domid,
                     (unsigned long long)WL_HDR_GPA);
            rc = -EINVAL;
        } else {
            h.spec[sizeof(h.spec) - 1] = '\0';
            snprintf(out, len, "%s", h.spec);
        }
    }
    if (d)
        hv_domain_put(d);
    return rc;
}

static struct guest_wl *wl_new(uint32_t domid, struct hv_domain *d, const struct guest_spec *s,
                               const char *text, bool resume, unsigned nvcpus)
{
    struct guest_wl *wl = calloc(1, sizeof(*wl));
    if (!wl)
        return NULL;
    wl->domid = domid;
    wl->d = d;
    wl->spec = *s;
    wl->spec.vcpus = nvcpus;
    snprintf(wl->spec_text, sizeof(wl->spec_text), "%s", text);
    wl->resumed = resume;
    wl->nvcpus = nvcpus;
    wl->t_start_ms = mono_ms();
    pthread_mutex_init(&wl->lock, NULL);
    pthread_cond_init(&wl->cond, NULL);
    pthread_rwlock_init(&wl->exec, NULL);
    for (unsigned k = 0; k < WL_NDISKS; k++)
        pthread_mutex_init(&wl->disk_lock[k], NULL);
    atomic_init(&wl->stop, false);
    atomic_init(&wl->abort, false);
    atomic_init(&wl->mon_stop, false);
    atomic_init(&wl->writes_claimed, 0);
    return wl;
}

static int wl_launch(struct guest_wl *wl, char *err, size_t errlen)
{
    uint64_t size;
    if (!hv_domain_ram(wl->d, &size) || size < WL_RAM_BASE + (2u << 20)) {
        snprintf(err, errlen, "domain %u: guest RAM too small for a workload (need > %llu KiB)",
                 wl->domid, (unsigned long long)(WL_RAM_BASE + (2u << 20)) / 1024);
        return -EINVAL;
    }
    /* Each vCPU allocates from its own slice of RAM above the state page. */
    uint64_t slice = ((size - WL_RAM_BASE) / wl->nvcpus) & ~0xffffull;
    bool big = (wl->spec.devices & (GUEST_DEV_IDE | GUEST_DEV_AHCI)) != 0;
    for (unsigned i = 0; i < wl->nvcpus; i++) {
        struct wl_vcpu *v = &wl->v[i];
        v->wl = wl;
        v->idx = i;
        v->rng = 0x9e3779b97f4a7c15ull * (wl->spec.seed + 1) ^ (i + 1);
        if (guest_hv_open(&v->bus, wl->domid, i, WL_RAM_BASE + slice * i, err, errlen) < 0)
            return -EINVAL;
        v->bus_open = true;
        v->bus.ram_end = WL_RAM_BASE + slice * (i + 1);
        guest_hv_set_guest(&v->bus, &wl->abort, &wl->stop, &wl->exec);
        if (big && !(v->iobuf = malloc(GUEST_DISKLOAD_BUF))) {
            snprintf(err, errlen, "out of memory for vCPU %u's buffers", i);
            return -ENOMEM;
        }
    }
    if (wl->spec.console[0]) {
        char log[GUEST_SPEC_PATH + 8];
        if (wl->spec.console_log[0])
            snprintf(log, sizeof(log), "%s", wl->spec.console_log);
        else
            snprintf(log, sizeof(log), "%s.log", wl->spec.console);
        wl->con = wl_con_open(wl, wl->spec.console, log);
        if (!wl->con) {
            snprintf(err, errlen, "console %s: cannot set up the host end", wl->spec.console);
            return -ENOMEM;
        }
    }
    if (xs_socket[0])
        wl_mon_start(wl, xs_socket);
    pthread_mutex_lock(&wl->lock);
    for (unsigned i = 0; i < wl->nvcpus; i++) {
        int rc = pthread_create(&wl->v[i].th, NULL, wl_vcpu_main, &wl->v[i]);
        if (rc) {
            snprintf(err, errlen, "vCPU %u thread: %s", i, strerror(rc));
            atomic_store(&wl->stop, true);
            wl->init_failed = true;
            pthread_cond_broadcast(&wl->cond);
            pthread_mutex_unlock(&wl->lock);
            return -rc;
        }
        wl->v[i].thread = true;
        wl->running_threads++;
    }
    pthread_mutex_unlock(&wl->lock);
    return 0;
}

int guest_wl_start(uint32_t domid, const char *spec, bool resume, char *err, size_t errlen)
{
    struct hv_domain_info di;
    if (hv_domain_info(domid, &di) < 0) {
        snprintf(err, errlen, "no domain %u", domid);
        return -ESRCH;
    }
    char text[GUEST_SPEC_MAX];
    if (resume) {
        if (spec && *spec) {
            snprintf(err, errlen, "resume takes its spec from guest RAM; give none");
            return -EINVAL;
        }
        int rc = resume_spec(domid, text, sizeof(text), err, errlen);
        if (rc < 0)
            return rc;
    } else {
        snprintf(text, sizeof(text), "%s", spec ? spec : "");
    }
    struct guest_spec s;
    guest_spec_default(&s);
    if (guest_spec_parse(text, &s, err, errlen) < 0)
        return -EINVAL;
    unsigned nvcpus = s.vcpus ? s.vcpus : di.nr_vcpus;
    if (nvcpus > di.nr_vcpus || nvcpus > WL_MAX_VCPUS) {
        snprintf(err, errlen, "vcpus=%u but domain %u has %u", nvcpus, domid, di.nr_vcpus);
        return -EINVAL;
    }
    if (!resume) {
        /* What the guest keeps is the canonical form, vCPU count resolved. */
        s.vcpus = nvcpus;
        if (guest_spec_format(&s, text, sizeof(text)) < 0) {
            snprintf(err, errlen, "spec too long");
            return -EINVAL;
        }
    }
    pthread_mutex_lock(&reg_lock);
    prune();
    struct guest_wl **slot = slot_of(domid);
    if (slot) {
        pthread_mutex_lock(&(*slot)->lock);
        bool busy = active(*slot);
        pthread_mutex_unlock(&(*slot)->lock);
        if (busy) {
            pthread_mutex_unlock(&reg_lock);
            snprintf(err, errlen, "domain %u: a workload is already running (stop it first)", domid);
            return -EEXIST;
        }
        wl_free(*slot);
        *slot = NULL;
    } else {
        for (int i = 0; i < WL_MAX && !slot; i++)
            if (!reg[i])
                slot = &reg[i];
        if (!slot) {
            pthread_mutex_unlock(&reg_lock);
            snprintf(err, errlen, "too many workloads (%d)", WL_MAX);
            return -ENOSPC;
        }
    }
    struct hv_domain *d = hv_domain_get(domid);
    struct guest_wl *wl = d ? wl_new(domid, d, &s, text, resume, nvcpus) : NULL;
    if (!wl) {
        if (d)
            hv_domain_put(d);
        pthread_mutex_unlock(&reg_lock);
        snprintf(err, errlen, d ? "out of memory" : "no domain %u", domid);
        return d ? -ENOMEM : -ESRCH;
    }
    int rc = wl_launch(wl, err, errlen);
    if (rc < 0) {
        atomic_store(&wl->abort, true);
        atomic_store(&wl->stop, true);
        wl_free(wl);
        pthread_mutex_unlock(&reg_lock);
        return rc;
    }
    *slot = wl;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

/* Find domid's workload with its lock taken; reg_lock held by the caller. */
static struct guest_wl *find_locked(uint32_t domid)
{
    struct guest_wl **slot = slot_of(domid);
    if (!slot)
        return NULL;
    pthread_mutex_lock(&(*slot)->lock);
    return *slot;
}

static int wait_cond(struct guest_wl *wl, int timeout_ms, bool (*done)(const struct guest_wl *))
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    while (!done(wl))
        if (pthread_cond_timedwait(&wl->cond, &wl->lock, &dl) == ETIMEDOUT)
            return done(wl) ? 0 : -ETIMEDOUT;
    return 0;
}

static bool ended(const struct guest_wl *wl)
{
    return !active(wl);
}

static bool past_boot(const struct guest_wl *wl)
{
    return wl->state != WL_STARTING && wl->state != WL_FIRMWARE;
}

int guest_wl_stop(uint32_t domid, int timeout_ms, char *err, size_t errlen)
{
    pthread_mutex_lock(&reg_lock);
    struct guest_wl *wl = find_locked(domid);
    pthread_mutex_unlock(&reg_lock);
    if (!wl) {
        snprintf(err, errlen, "domain %u: no workload", domid);
        return -ENOENT;
    }
    if (active(wl) && wl->state != WL_FAILED && wl->state != WL_SHUTDOWN)
        wl->state = WL_STOPPING;
    atomic_store(&wl->stop, true);
    pthread_cond_broadcast(&wl->cond);
    int rc = wait_cond(wl, timeout_ms, ended);
    if (rc < 0)
        snprintf(err, errlen, "domain %u: vCPU threads still in an access after %d ms "
                 "(they stop once it completes)", domid, timeout_ms);
    pthread_mutex_unlock(&wl->lock);
    return rc;
}

int guest_wl_wait_running(uint32_t domid, int timeout_ms)
{
    pthread_mutex_lock(&reg_lock);
    struct guest_wl *wl = find_locked(domid);
    pthread_mutex_unlock(&reg_lock);
    if (!wl)
        return -ENOENT;
    int rc = wait_cond(wl, timeout_ms, past_boot);
    pthread_mutex_unlock(&wl->lock);
    return rc;
}

int guest_wl_wait_ended(uint32_t domid, int timeout_ms)
{
    pthread_mutex_lock(&reg_lock);
    struct guest_wl *wl = find_locked(domid);
    pthread_mutex_unlock(&reg_lock);
    if (!wl)
        return -ENOENT;
    int rc = wait_cond(wl, timeout_ms, ended);
    pthread_mutex_unlock(&wl->lock);
    return rc;
}

/* JSON string contents: printable ASCII as is, the rest escaped. */
static int json_esc(char *out, size_t len, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            n += (size_t)snprintf(out + n, len - n, "\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            n += (size_t)snprintf(out + n, len - n, "\\u%04x", c);
        else
            out[n++] = (char)c;
    }
    out[n < len ? n : len - 1] = '\0';
    return (int)n;
}

int guest_wl_status(uint32_t domid, char *buf, size_t len)
{
    pthread_mutex_lock(&reg_lock);
    struct guest_wl *wl = find_locked(domid);
    if (!wl) {
        pthread_mutex_unlock(&reg_lock);
        return -ENOENT;
    }
    struct guest_check_counters c = wl->extra;
    char reason[2 * sizeof(wl->reason)], spec[2 * GUEST_SPEC_MAX], rs[2 * sizeof(wl->runstate)];
    char text[2 * sizeof(wl->rx_text)];
    json_esc(reason, sizeof(reason), wl->reason);
    json_esc(spec, sizeof(spec), wl->spec_text);
    json_esc(rs, sizeof(rs), wl->runstate);
    json_esc(text, sizeof(text), wl->rx_text);
    enum wl_state st = wl->state;
    bool monitored = wl->monitored, dm_stopped = wl->dm_stopped;
    uint64_t checks = wl->stopped_checks;
    bool booted = wl->init_done;   /* the checkers and the PCI view are set up */
    unsigned threads = wl->running_threads;
    uint64_t tx = wl->uart_tx_next, rxn = wl->uart_rx_next, rxb = wl->rx_bytes,
             rxl = wl->rx_lines, rxt = wl->rx_text_lines, s3 = wl->s3_resumes,
             sci = wl->sci_seen, act = wl->action_done;
    pthread_mutex_unlock(&wl->lock);
    uint64_t bus_ones = 0;
    for (unsigned i = 0; i < wl->nvcpus; i++) {
        pthread_mutex_lock(&wl->v[i].bus.lock);
        bus_ones += wl->v[i].bus.all_ones_reads;
        pthread_mutex_unlock(&wl->v[i].bus.lock);
    }
    c.all_ones_reads += bus_ones;
    /* Where each disk's ledger lies: a test can check the image itself
     * against it from the host (docs/xensim.md). */
    char ledgers[256] = "";
    for (unsigned k = 0, n = 0; k < WL_NDISKS && booted; k++) {
        static const char *const kind[WL_NDISKS] = { "testdisk", "ide", "ahci" };
        if (!wl->chk_ready[k])
            continue;
        size_t l = strlen(ledgers);
        snprintf(ledgers + l, sizeof(ledgers) - l,
                 "%s\"%s\":{\"ledger\":%" PRIu64 ",\"sectors\":%" PRIu64 "}", n++ ? "," : "",
                 kind[k], wl->chk[k].ledger, wl->chk[k].nsectors);
    }
    for (unsigned k = 0; k < WL_NDISKS && booted; k++) {
        if (!wl->chk_ready[k])
            continue;
        struct guest_check_counters d;
        pthread_mutex_lock(&wl->chk[k].lock);
        d = wl->chk[k].c;
        pthread_mutex_unlock(&wl->chk[k].lock);
        guest_check_sum(&c, &d);
    }
    struct wl_con_stats cs = { 0 };
    if (wl->con) {
        wl_con_stats(wl->con, &cs);
        c.uart_missing += cs.missing;
        c.uart_duplicated += cs.duplicated;
        c.uart_out_of_order += cs.out_of_order;
    }
    char counters[1024];
    if (guest_check_json(&c, counters, sizeof(counters)) < 0)
        counters[0] = '\0';
    unsigned ndevs = booted ? wl->fw.ndevs : 0;
    pthread_mutex_unlock(&reg_lock);
    int n = snprintf(buf, len,
        "{\"domid\":%u,\"state\":\"%s\",\"reason\":\"%s\",\"spec\":\"%s\",\"resumed\":%s,"
        "\"rounds_frozen\":%" PRIu64 ",\"rounds_finished\":%" PRIu64 ","
        "\"vcpus\":%u,\"threads\":%u,\"pci_functions\":%u,"
        "\"dm\":{\"watched\":%s,\"runstate\":\"%s\",\"stopped\":%s,\"stopped_checks\":%" PRIu64 "},"
        "\"counters\":%s,\"ledgers\":{%s},"
        "\"uart\":{\"tx_lines\":%" PRIu64 ",\"rx_next\":%" PRIu64 ",\"rx_bytes\":%" PRIu64
        ",\"rx_lines\":%" PRIu64 ",\"rx_text_lines\":%" PRIu64 ",\"rx_last_text\":\"%s\","
        "\"host\":{\"connected\":%s,\"rx_bytes\":%" PRIu64 ",\"rx_lines\":%" PRIu64
        ",\"tx_lines\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"duplicated\":%" PRIu64
        ",\"out_of_order\":%" PRIu64 "}},"
        "\"pm\":{\"action_done\":%s,\"s3_resumes\":%" PRIu64 ",\"sci\":%" PRIu64 "}}",
        domid, state_names[st], reason, spec, wl->resumed ? "true" : "false",
        (uint64_t)atomic_load(&wl->rounds_frozen), (uint64_t)atomic_load(&wl->rounds_finished),
        wl->nvcpus,
        threads, ndevs, monitored ? "true" : "false", rs, dm_stopped ? "true" : "false", checks,
        counters, ledgers, tx, rxn, rxb, rxl, rxt, text, cs.connected ? "true" : "false", cs.rx_bytes,
        cs.rx_lines, cs.tx_lines, cs.missing, cs.duplicated, cs.out_of_order,
        act ? "true" : "false", s3, sci);
    return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int guest_wl_uart_send(uint32_t domid, const char *text, size_t len, uint64_t count, char *err,
                       size_t errlen)
{
    pthread_mutex_lock(&reg_lock);
    struct guest_wl *wl = find_locked(domid);
    if (!wl) {
        pthread_mutex_unlock(&reg_lock);
        snprintf(err, errlen, "domain %u: no workload", domid);
        return -ENOENT;
    }
    struct wl_con *con = wl->con;
    pthread_mutex_unlock(&wl->lock);
    int rc;
    if (!con) {
        snprintf(err, errlen, "domain %u: the workload has no console (console=PATH in the spec)",
                 domid);
        rc = -ENOENT;
    } else {
        rc = wl_con_send(con, text, len, count, err, errlen);
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void guest_wl_shutdown(void)
{
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < WL_MAX; i++) {
        struct guest_wl *wl = reg[i];
        if (!wl)
            continue;
        atomic_store(&wl->abort, true);
        atomic_store(&wl->stop, true);
        pthread_mutex_lock(&wl->lock);
        pthread_cond_broadcast(&wl->cond);
        pthread_mutex_unlock(&wl->lock);
    }
    for (int i = 0; i < WL_MAX; i++)
        if (reg[i]) {
            wl_free(reg[i]);
            reg[i] = NULL;
        }
    pthread_mutex_unlock(&reg_lock);
}
