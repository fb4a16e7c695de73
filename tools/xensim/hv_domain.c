/*
 * Domains of the simulated hypervisor: creation (paused, as Xen creates
 * them), guest RAM in a memfd a device model maps, the controller pause
 * count, shutdown with Xen's deferral while an ioreq is outstanding, crash,
 * destroy, HVM params, log-dirty and the waits tests use instead of sleeps.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv_internal.h"

#include <xen/sched.h>
#include <xen/hvm/params.h>

pthread_mutex_t hv_lock = PTHREAD_MUTEX_INITIALIZER;

static struct hv_domain *domains[HV_MAX_DOMAINS];
static uint32_t domid_rover;       /* the last domid handed out (hv_lock) */
static hv_domain_hook_fn *dom_hook;
static void *dom_hook_opaque;
static atomic_bool log_quiet;

void hv_log(const char *fmt, ...)
{
    if (atomic_load(&log_quiet))
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "xensim hv: %s\n", buf);
}

void hv_log_quiet(bool quiet)
{
    atomic_store(&log_quiet, quiet);
}

int hv_init(void)
{
    return 0;
}

void hv_set_domain_hook(hv_domain_hook_fn *fn, void *opaque)
{
    pthread_mutex_lock(&hv_lock);
    dom_hook = fn;
    dom_hook_opaque = opaque;
    pthread_mutex_unlock(&hv_lock);
}

void hv_domain_fire_hook(uint32_t domid, enum hv_domain_event ev)
{
    pthread_mutex_lock(&hv_lock);
    hv_domain_hook_fn *fn = dom_hook;
    void *op = dom_hook_opaque;
    pthread_mutex_unlock(&hv_lock);
    if (fn)
        fn(domid, ev, op);
}

struct hv_domain *hv_domain_find(uint32_t domid)
{
    for (unsigned int i = 0; i < HV_MAX_DOMAINS; i++)
        if (domains[i] && domains[i]->domid == domid && !domains[i]->dying)
            return domains[i];
    return NULL;
}

uint32_t hv_domain_id(const struct hv_domain *d)
{
    return d->domid;
}

void hv_domain_kick(struct hv_domain *d)
{
    pthread_cond_broadcast(&d->cond);
    for (unsigned int i = 0; i < d->nr_vcpus; i++) {
        uint64_t one = 1;
        if (write(d->vcpu[i].efd, &one, sizeof(one)) < 0) {
            /* eventfd counter overflow is impossible here; ignore */
        }
    }
}

static void domain_free(struct hv_domain *d)
{
    hv_ioreq_destroy_all(d);
    for (unsigned int p = 1; p < HV_MAX_PORTS; p++)
        if (d->port[p].used)
            hv_port_free(d, p);
    for (unsigned int i = 0; i < d->nr_vcpus; i++)
        if (d->vcpu[i].efd >= 0)
            close(d->vcpu[i].efd);
    if (d->ram)
        munmap(d->ram, d->mem_bytes);
    if (d->ram_fd >= 0)
        close(d->ram_fd);
    pthread_cond_destroy(&d->cond);
    free(d->vcpu);
    free(d->known);
    free(d->dirty);
    free(d);
}

static void domain_put_locked(struct hv_domain *d)
{
    if (--d->refs == 0)
        domain_free(d);
}

struct hv_domain *hv_domain_get(uint32_t domid)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d)
        d->refs++;
    pthread_mutex_unlock(&hv_lock);
    return d;
}

void hv_domain_put(struct hv_domain *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&hv_lock);
    domain_put_locked(d);
    pthread_mutex_unlock(&hv_lock);
}

int hv_domain_create(uint32_t domid, unsigned int vcpus, unsigned int mem_mib,
                     const char *name)
{
    if (vcpus < 1 || vcpus > HV_MAX_VCPUS) {
        hv_log("domain create: %u vCPUs is out of range 1..%u", vcpus,
               HV_MAX_VCPUS);
        return -EINVAL;
    }
    if (mem_mib < 1 || mem_mib > HV_MAX_MEMORY_MIB) {
        hv_log("domain create: %u MiB is out of range 1..%u", mem_mib,
               HV_MAX_MEMORY_MIB);
        return -EINVAL;
    }
    if (domid >= HV_MAX_DOMID) {
        hv_log("domain create: domid %u is reserved", domid);
        return -EINVAL;
    }
    if (name && strlen(name) >= sizeof(((struct hv_domain *)0)->name)) {
        hv_log("domain create: name longer than 63 bytes");
        return -EINVAL;
    }

    struct hv_domain *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->ram_fd = -1;
    d->nr_vcpus = vcpus;
    d->mem_bytes = (uint64_t)mem_mib << 20;
    d->vcpu = calloc(vcpus, sizeof(*d->vcpu));
    d->dirty = calloc((d->mem_bytes / HV_PAGE_SIZE + 63) / 64, 8);
    if (!d->vcpu || !d->dirty) {
        free(d->vcpu);
        free(d->dirty);
        free(d);
        return -ENOMEM;
    }
    for (unsigned int i = 0; i < vcpus; i++)
        d->vcpu[i].efd = -1;
    pthread_cond_init(&d->cond, NULL);
    int rc = 0;
    for (unsigned int i = 0; i < vcpus; i++) {
        d->vcpu[i].efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->vcpu[i].efd < 0) {
            rc = -errno;
            hv_log("domain create: eventfd: %s", strerror(errno));
            goto fail;
        }
    }
    d->ram_fd = memfd_create("xensim-guest-ram", MFD_CLOEXEC);
    if (d->ram_fd < 0 || ftruncate(d->ram_fd, (off_t)d->mem_bytes) < 0) {
        rc = -errno;
        hv_log("domain create: guest RAM memfd of %u MiB: %s", mem_mib,
               strerror(errno));
        goto fail;
    }
    d->ram = mmap(NULL, d->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                  d->ram_fd, 0);
    if (d->ram == MAP_FAILED) {
        d->ram = NULL;
        rc = -errno;
        hv_log("domain create: mapping guest RAM: %s", strerror(errno));
        goto fail;
    }
    if (name)
        snprintf(d->name, sizeof(d->name), "%s", name);
    /* Xen creates domains paused by the system controller. */
    d->pause_count = 1;
    d->refs = 1;

    pthread_mutex_lock(&hv_lock);
    if (domid == 0) {
        /* Xen's domctl rover: the next free id after the last one given,
         * wrapping, so a destroyed domain's id is not handed out again at
         * once (its dm may still be tearing down against it). */
        for (domid = domid_rover + 1;; domid++) {
            if (domid >= HV_MAX_DOMID)
                domid = 1;
            if (!hv_domain_find(domid) || domid == domid_rover)
                break;
        }
        if (hv_domain_find(domid))
            domid = HV_MAX_DOMID;   /* all taken: refused below */
        else
            domid_rover = domid;
    } else if (hv_domain_find(domid)) {
        pthread_mutex_unlock(&hv_lock);
        hv_log("domain create: domid %u exists", domid);
        rc = -EEXIST;
        goto fail;
    }
    unsigned int slot;
    for (slot = 0; slot < HV_MAX_DOMAINS && domains[slot]; slot++)
        ;
    if (slot == HV_MAX_DOMAINS || domid >= HV_MAX_DOMID) {
        pthread_mutex_unlock(&hv_lock);
        hv_log("domain create: too many domains (%u)", HV_MAX_DOMAINS);
        rc = -ENOSPC;
        goto fail;
    }
    d->domid = domid;
    if (!d->name[0])
        snprintf(d->name, sizeof(d->name), "domain-%u", domid);
    domains[slot] = d;
    pthread_mutex_unlock(&hv_lock);
    hv_domain_fire_hook(domid, HV_DOM_CREATED);
    return (int)domid;

fail:
    d->refs = 1;
    domain_free(d);
    return rc;
}

int hv_domain_destroy(uint32_t domid)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (!d) {
        pthread_mutex_unlock(&hv_lock);
        return -ESRCH;
    }
    d->dying = true;
    for (unsigned int i = 0; i < HV_MAX_DOMAINS; i++)
        if (domains[i] == d)
            domains[i] = NULL;
    /* Servers and ports go now so dm handles see them vanish; the memory
     * stays until the last hv_domain_get() user lets go. */
    hv_ioreq_destroy_all(d);
    for (unsigned int p = 1; p < HV_MAX_PORTS; p++)
        if (d->port[p].used)
            hv_port_free(d, p);
    hv_domain_kick(d);
    domain_put_locked(d);
    pthread_mutex_unlock(&hv_lock);
    hv_domain_fire_hook(domid, HV_DOM_DESTROYED);
    return 0;
}

void hv_reset(void)
{
    uint32_t ids[HV_MAX_DOMAINS];
    int n = hv_domain_list(ids, (int)HV_MAX_DOMAINS);
    for (int i = 0; i < n; i++)
        hv_domain_destroy(ids[i]);
    pthread_mutex_lock(&hv_lock);
    domid_rover = 0;   /* a fresh host numbers from 1 again */
    pthread_mutex_unlock(&hv_lock);
}

int hv_domain_pause(uint32_t domid)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        /* Xen limits the toolstack pause count to 255. */
        if (d->pause_count + 1 >= 255) {
            rc = -EOVERFLOW;
        } else {
            d->pause_count++;
            hv_domain_kick(d);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_domain_unpause(uint32_t domid)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        if (d->pause_count == 0) {
            rc = -EINVAL;
        } else {
            d->pause_count--;
            hv_domain_kick(d);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

bool hv_vcpu_runnable(const struct hv_domain *d, unsigned int vcpu)
{
    return d->pause_count == 0 && !d->s3 && !d->vcpu[vcpu].stalled;
}

bool hv_domain_check_shut_down(struct hv_domain *d)
{
    if (!d->shutting_down || d->shut_down)
        return false;
    for (unsigned int i = 0; i < d->nr_vcpus; i++)
        if (d->vcpu[i].state == HV_VCPU_PENDING)
            return false;
    d->shut_down = true;
    hv_domain_kick(d);
    return true;
}

static const char *reason_name(unsigned int r)
{
    switch (r) {
    case SHUTDOWN_poweroff: return "poweroff";
    case SHUTDOWN_reboot: return "reboot";
    case SHUTDOWN_suspend: return "suspend";
    case SHUTDOWN_crash: return "crash";
    case SHUTDOWN_watchdog: return "watchdog";
    case SHUTDOWN_soft_reset: return "soft_reset";
    default: return "?";
    }
}

int hv_domain_shutdown(uint32_t domid, unsigned int reason)
{
    if (reason > SHUTDOWN_MAX)
        return -EINVAL;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (!d) {
        pthread_mutex_unlock(&hv_lock);
        return -ESRCH;
    }
    bool fire = false;
    /* As domain_shutdown(): a second shutdown keeps the first reason. */
    if (!d->shutting_down) {
        d->shutting_down = true;
        d->shutdown_reason = reason;
        hv_log("domain %u: shutdown (%s)", domid, reason_name(reason));
        hv_domain_kick(d);
        fire = hv_domain_check_shut_down(d);
    }
    pthread_mutex_unlock(&hv_lock);
    if (fire)
        hv_domain_fire_hook(domid, HV_DOM_SHUTDOWN);
    return 0;
}

int hv_domain_resume(uint32_t domid, bool fast)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (!d) {
        pthread_mutex_unlock(&hv_lock);
        return -ESRCH;
    }
    /* xc_domain_resume_cooperative only rewrites the return value of the
     * suspend hypercall when the guest has PV drivers (a callback IRQ);
     * without them there is no hypercall to return from. */
    bool cancelled = fast && d->hvm_param[HVM_PARAM_CALLBACK_IRQ] != 0;
    /* domain_resume(): the shutdown state goes, whatever its reason. */
    d->shutting_down = false;
    d->shut_down = false;
    d->crashed = false;
    d->shutdown_reason = 0;
    d->resumes++;
    d->suspend_cancels += cancelled;
    hv_log("domain %u: resumed (%s)", domid,
           cancelled ? "suspend cancelled" : "new context");
    hv_domain_kick(d);
    pthread_mutex_unlock(&hv_lock);
    return 0;
}

static int guest_store(uint32_t domid, uint64_t gpa, const void *buf, size_t len, bool running)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        if (gpa > d->mem_bytes || len > d->mem_bytes - gpa)
            rc = -EINVAL;
        else if (running && d->shutting_down)
            rc = -ESHUTDOWN;
        else if (running && (d->pause_count > 0 || d->s3))
            rc = -EAGAIN;
        else {
            memcpy(d->ram + gpa, buf, len);
            if (d->logdirty && len)
                for (uint64_t p = gpa / HV_PAGE_SIZE; p <= (gpa + len - 1) / HV_PAGE_SIZE; p++)
                    d->dirty[p / 64] |= 1ul << (p % 64);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_guest_write(uint32_t domid, uint64_t gpa, const void *buf, size_t len)
{
    return guest_store(domid, gpa, buf, len, true);
}

int hv_guest_state_write(uint32_t domid, uint64_t gpa, const void *buf, size_t len)
{
    return guest_store(domid, gpa, buf, len, false);
}

void hv_domain_crash_locked(struct hv_domain *d, const char *why)
{
    hv_log("domain %u crashed: %s", d->domid, why);
    d->crashed = true;
    if (!d->shutting_down) {
        d->shutting_down = true;
        d->shutdown_reason = SHUTDOWN_crash;
    }
    /* A crashed domain's vCPUs no longer wait for anything. */
    for (unsigned int i = 0; i < d->nr_vcpus; i++) {
        if (d->vcpu[i].state == HV_VCPU_PENDING) {
            d->vcpu[i].state = HV_VCPU_IDLE;
            d->vcpu[i].pending = 0;
        }
    }
    d->shut_down = true;
    hv_domain_kick(d);
}

static void fill_info(struct hv_domain *d, struct hv_domain_info *o)
{
    memset(o, 0, sizeof(*o));
    o->domid = d->domid;
    snprintf(o->name, sizeof(o->name), "%s", d->name);
    o->nr_vcpus = d->nr_vcpus;
    o->mem_bytes = d->mem_bytes;
    o->pause_count = d->pause_count;
    o->paused = d->pause_count > 0 || d->s3;
    o->shutting_down = d->shutting_down;
    o->shut_down = d->shut_down;
    o->dying = d->dying;
    o->crashed = d->crashed;
    o->shutdown_reason = d->shutdown_reason;
    for (unsigned int i = 0; i < HV_MAX_SERVERS; i++) {
        o->nr_servers += d->srv[i].used;
        o->nr_enabled_servers += d->srv[i].used && d->srv[i].enabled;
    }
    for (unsigned int i = 0; i < d->nr_vcpus; i++)
        o->vcpus_pending += d->vcpu[i].state == HV_VCPU_PENDING;
    o->null_reads = d->null_reads;
    o->null_writes = d->null_writes;
    o->ioreqs_sent = d->ioreqs_sent;
    o->logdirty = d->logdirty;
    o->resumes = d->resumes;
    o->suspend_cancels = d->suspend_cancels;
}

int hv_domain_info(uint32_t domid, struct hv_domain_info *out)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d)
        fill_info(d, out);
    pthread_mutex_unlock(&hv_lock);
    return d ? 0 : -ESRCH;
}

int hv_domain_list(uint32_t *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&hv_lock);
    for (unsigned int i = 0; i < HV_MAX_DOMAINS; i++)
        if (domains[i] && !domains[i]->dying && n < max)
            out[n++] = domains[i]->domid;
    pthread_mutex_unlock(&hv_lock);
    /* ascending order (insertion sort; n is small) */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            uint32_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

void *hv_domain_ram(struct hv_domain *d, uint64_t *size)
{
    if (size)
        *size = d->mem_bytes;
    return d->ram;
}

int hv_domain_ram_fd(uint32_t domid, uint64_t *size)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int fd = d ? d->ram_fd : -ESRCH;
    if (d && size)
        *size = d->mem_bytes;
    pthread_mutex_unlock(&hv_lock);
    return fd;
}

int hv_hvm_param_set(uint32_t domid, uint32_t param, uint64_t value)
{
    if (param >= HVM_NR_PARAMS)
        return -EINVAL;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        rc = 0;
        if (param == HVM_PARAM_ACPI_S_STATE) {
            /* Xen: only 3 (enter S3) and 0 (resume) are accepted. */
            if (value == 3)
                d->s3 = true;
            else if (value == 0)
                d->s3 = false;
            else
                rc = -EINVAL;
            hv_domain_kick(d);
        }
        if (rc == 0)
            d->hvm_param[param] = value;
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_hvm_param_get(uint32_t domid, uint32_t param, uint64_t *value)
{
    if (param >= HVM_NR_PARAMS)
        return -EINVAL;
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d)
        *value = param == HVM_PARAM_ACPI_S_STATE ? (d->s3 ? 3 : 0)
                                                  : d->hvm_param[param];
    pthread_mutex_unlock(&hv_lock);
    return d ? 0 : -ESRCH;
}

/* ------------------------------------------------------------ waits */

static void deadline_in(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* pthread_cond_timedwait on CLOCK_MONOTONIC: the condvars here use the
 * default clock, so convert the remaining time to a realtime deadline. */
static int cond_wait_until(pthread_cond_t *c, const struct timespec *mono)
{
    struct timespec now, rt;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long rem = (long long)(mono->tv_sec - now.tv_sec) * 1000000000LL +
                    (mono->tv_nsec - now.tv_nsec);
    if (rem <= 0)
        return ETIMEDOUT;
    clock_gettime(CLOCK_REALTIME, &rt);
    rem += rt.tv_nsec;
    rt.tv_sec += (time_t)(rem / 1000000000LL);
    rt.tv_nsec = (long)(rem % 1000000000LL);
    return pthread_cond_timedwait(c, &hv_lock, &rt);
}

static bool wait_done(struct hv_domain *d, enum hv_wait_for what)
{
    switch (what) {
    case HV_WAIT_SHUT_DOWN: return d->shut_down;
    case HV_WAIT_UNPAUSED: return d->pause_count == 0 && !d->s3;
    case HV_WAIT_PAUSED: return d->pause_count > 0 || d->s3;
    case HV_WAIT_ENABLED_SERVER:
        for (unsigned int i = 0; i < HV_MAX_SERVERS; i++)
            if (d->srv[i].used && d->srv[i].enabled)
                return true;
        return false;
    case HV_WAIT_GONE: return d->dying;
    }
    return false;
}

int hv_domain_wait(uint32_t domid, enum hv_wait_for what, int timeout_ms)
{
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (!d) {
        pthread_mutex_unlock(&hv_lock);
        return what == HV_WAIT_GONE ? 0 : -ESRCH;
    }
    d->refs++;
    int rc = 0;
    while (!wait_done(d, what)) {
        if (d->dying && what != HV_WAIT_GONE) {
            rc = -ESRCH;
            break;
        }
        if (cond_wait_until(&d->cond, &dl) == ETIMEDOUT) {
            rc = wait_done(d, what) ? 0 : -ETIMEDOUT;
            break;
        }
    }
    domain_put_locked(d);
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_cond_wait_ms(struct hv_domain *d, const struct timespec *deadline)
{
    return cond_wait_until(&d->cond, deadline) == ETIMEDOUT ? -ETIMEDOUT : 0;
}
void hv_deadline(struct timespec *ts, int timeout_ms)
{
    deadline_in(ts, timeout_ms);
}

/* ------------------------------------------------------------ log-dirty */

int hv_logdirty_enable(uint32_t domid, bool on)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    if (d) {
        if (on && !d->logdirty)
            memset(d->dirty, 0, (d->mem_bytes / HV_PAGE_SIZE + 63) / 64 * 8);
        d->logdirty = on;
    }
    pthread_mutex_unlock(&hv_lock);
    return d ? 0 : -ESRCH;
}

int hv_modified_memory(uint32_t domid, uint64_t first_pfn, uint64_t nr)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        uint64_t max = d->mem_bytes / HV_PAGE_SIZE;
        /* Xen checks the range before looking at log-dirty mode. */
        if (first_pfn > max || nr > max - first_pfn) {
            rc = -EINVAL;
        } else {
            rc = 0;
            if (d->logdirty)
                for (uint64_t p = first_pfn; p < first_pfn + nr; p++)
                    d->dirty[p / 64] |= 1ul << (p % 64);
        }
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

long hv_logdirty_peek_clean(uint32_t domid, unsigned long *bitmap,
                            uint64_t nbits)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    long n = -ESRCH;
    if (d) {
        uint64_t pages = d->mem_bytes / HV_PAGE_SIZE;
        n = 0;
        if (bitmap)
            memset(bitmap, 0, (nbits + 63) / 64 * 8);
        for (uint64_t p = 0; p < pages; p++) {
            if (!(d->dirty[p / 64] & (1ul << (p % 64))))
                continue;
            n++;
            if (bitmap && p < nbits)
                bitmap[p / 64] |= 1ul << (p % 64);
        }
        memset(d->dirty, 0, (pages + 63) / 64 * 8);
    }
    pthread_mutex_unlock(&hv_lock);
    return n;
}

/* ------------------------------------------------------------ faults */

int hv_fault_stall_vcpu(uint32_t domid, unsigned int vcpu, bool stall)
{
    pthread_mutex_lock(&hv_lock);
    struct hv_domain *d = hv_domain_find(domid);
    int rc = -ESRCH;
    if (d) {
        rc = -EINVAL;
        if (vcpu < d->nr_vcpus) {
            d->vcpu[vcpu].stalled = stall;
            hv_domain_kick(d);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&hv_lock);
    return rc;
}

int hv_ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
                   (deadline->tv_nsec - now.tv_nsec) / 1000000;
    if (ms < 0)
        return 0;
    return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}
