/* xl_save.c: `xensim xl save` and `restore`: libxl 4.17's suspend (logdirty,
 * guest memory, the guest's suspend by whichever path libxl would take, the
 * dm's `save`), its resume (suspend cancel) and the restore from xensim's
 * stream (layout in xl_stream.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>
#include <xenctrl.h>
#include <xen/hvm/params.h>
#include <xen/sched.h>

#include "xl_cmd.h"
#include "xl_internal.h"
#include "xl_qmp.h"


/* ------------------------------------------------------------ suspend */

static long ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* suspend_common_wait_guest: a watch on @releaseDomain and a 60 s timer;
 * each event re-reads the domain's info until Xen reports it shut down
 * (Xen defers that while a vCPU has an ioreq outstanding). */
int wait_suspended(unsigned domid, int secs)
{
    if (!xs_watch(g_xs, "@releaseDomain", "xl-suspend"))
        return die("watching @releaseDomain: %s", strerror(errno)), XL_ERROR_FAIL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc;
    for (;;) {
        struct hv_wire_dominfo w;
        if (xl_domain_info(domid, &w) < 0) {
            rc = (die("Domain %u:guest we were suspending has been destroyed", domid),
                  XL_ERROR_FAIL);
            break;
        }
        if (w.shut_down) {
            if (w.shutdown_reason == SHUTDOWN_suspend)
                rc = 0;
            else
                rc = (die("Domain %u:guest we were suspending has shut down with unexpected "
                          "reason code %u", domid, w.shutdown_reason), XL_ERROR_FAIL);
            break;
        }
        long left = (long)secs * 1000 - ms_since(&t0);
        if (left <= 0) {
            rc = (die("Domain %u:guest did not suspend, timed out", domid),
                  XL_ERROR_GUEST_TIMEDOUT);
            break;
        }
        struct pollfd pfd = { .fd = xs_fileno(g_xs), .events = POLLIN };
        if (poll(&pfd, 1, (int)left) > 0) {
            unsigned n;
            free(xs_read_watch(g_xs, &n));
        }
    }
    xs_unwatch(g_xs, "@releaseDomain", "xl-suspend");
    return rc;
}

/* suspend_guest's third outcome: the request was cancelled, which libxl's
 * callback reports as success (see suspend_pvcontrol). */
#define SUSPEND_CANCELLED 1

/* domain_suspend_pvcontrol_acked: anything but "suspend", even ENOENT. */
static int pvcontrol_acked(const char *v)
{
    return !v || strcmp(v, "suspend") != 0;
}

/* The PV-driver path: control/shutdown = suspend, then an xswait (60 s)
 * for the guest to acknowledge; on timeout the request is cancelled in a
 * transaction (unless the guest acked at the last minute). */
static int suspend_pvcontrol(unsigned domid)
{
    char p[128];
    snprintf(p, sizeof(p), "/local/domain/%u/control/shutdown", domid);
    if (xs_w(p, "suspend") < 0)
        return XL_ERROR_FAIL;
    if (!xs_watch(g_xs, p, "xl-pvcontrol"))
        return die("watching %s: %s", p, strerror(errno)), XL_ERROR_FAIL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int acked = 0;
    for (;;) {
        char *v = xs_r(p);
        acked = pvcontrol_acked(v);
        free(v);
        long left = (long)bound(60) * 1000 - ms_since(&t0);
        if (acked || left <= 0)
            break;
        struct pollfd pfd = { .fd = xs_fileno(g_xs), .events = POLLIN };
        if (poll(&pfd, 1, (int)left) > 0) {
            unsigned n;
            free(xs_read_watch(g_xs, &n));
        }
    }
    xs_unwatch(g_xs, p, "xl-pvcontrol");
    while (!acked) {
        xs_transaction_t t = xs_transaction_start(g_xs);
        if (t == XBT_NULL)
            return die("xenstore transaction: %s", strerror(errno)), XL_ERROR_FAIL;
        unsigned l;
        char *v = xs_read(g_xs, t, p, &l);
        acked = pvcontrol_acked(v);
        free(v);
        if (acked) {                       /* last-minute ack */
            xs_transaction_end(g_xs, t, true);
            break;
        }
        if (!xs_write(g_xs, t, p, "", 0)) {
            xs_transaction_end(g_xs, t, true);
            return die("cancelling the suspend request: %s", strerror(errno)), XL_ERROR_FAIL;
        }
        /* libxl then reports the suspend done (rc 0) without the dm's
         * save; libxc's own check fails the save (xl_suspend_domain) */
        if (xs_transaction_end(g_xs, t, false))
            return die("Domain %u:guest didn't acknowledge suspend, cancelling request", domid),
                   SUSPEND_CANCELLED;
        if (errno != EAGAIN)
            return die("xenstore transaction: %s", strerror(errno)), XL_ERROR_FAIL;
    }
    return wait_suspended(domid, bound(60));
}

/* domain_suspend_callback_common for an HVM guest: the guest's suspend event
 * channel if it has one and is not in an S-state; SHUTDOWN_suspend by the
 * toolstack if it has no PV drivers (HVM_PARAM_CALLBACK_IRQ unset) or is
 * in an S-state; otherwise the PV control node. */
static int suspend_guest(unsigned domid)
{
    /* xensim's simulated guest suspends: its vCPUs stop issuing accesses
     * once the one in flight completes (xl_workload.c).  With the dm dead
     * that access never completes, as Xen then never shuts the domain down
     * for the suspend; the wait is one of those --timeout caps. */
    if (xl_wl_stop(g_rundir, domid, bound(30) * 1000) < 0)
        return die("Domain %u:guest did not suspend", domid), XL_ERROR_FAIL;
    uint64_t pvdrv = 0, s_state = 0;
    if (xl_hvm_param(domid, HVM_PARAM_CALLBACK_IRQ, &pvdrv) < 0 ||
        xl_hvm_param(domid, HVM_PARAM_ACPI_S_STATE, &s_state) < 0)
        return XL_ERROR_FAIL;
    if (!pvdrv || s_state) {
        char sd[16];
        snprintf(sd, sizeof(sd), "%u", domid);
        if (hv(NULL, 0, "shutdown", sd, "suspend", NULL, NULL, NULL, NULL, NULL) < 0)
            return die("Domain %u:xc_domain_shutdown failed", domid), XL_ERROR_FAIL;
        return wait_suspended(domid, bound(60));
    }
    return suspend_pvcontrol(domid);
}

/* libxl__domain_suspend_init: a guest that advertises a suspend event
 * channel gets it bound; xensim has no guest-side event channels, so such a
 * guest cannot be suspended here (libxl's failure, with the reason). */
static int suspend_init(unsigned domid)
{
    char p[128];
    snprintf(p, sizeof(p), "/local/domain/%u/device/suspend/event-channel", domid);
    char *v = xs_r(p);
    if (!v)
        return 0;
    free(v);
    fprintf(stderr, "libxl: warning: Domain %u:Suspend event channel initialization failed "
                    "(guest suspend event channels are not simulated in xensim)\n", domid);
    return XL_ERROR_FAIL;
}

/* libxl__domain_suspend_device_model, traditional: `save`, then the
 * deprecated 60 s wait for `paused` whose result libxl ignores. */
static int suspend_dm(unsigned domid, int live)
{
    if (xlq_domain_is_qemu_xen(domid)) {
        char sf[4300];
        libdir_file("qemu-save", domid, sf, sizeof(sf));
        return xlq_suspend_dm(domid, sf, live) < 0 ? XL_ERROR_FAIL : 0;
    }
    char c[256], s[256];
    paths(domid, "command", c, sizeof(c));
    paths(domid, "state", s, sizeof(s));
    if (xs_w(c, "save") < 0)
        return XL_ERROR_FAIL;
    if (wait_value(s, "paused", bound(DM_START_TIMEOUT), 0, NULL, 0) < 0)
        fprintf(stderr, "libxl: error: Device Model not ready\n");
    return 0;
}

/* libxc's precopy policy (4.17 defaults): stop and copy once a round
 * leaves fewer than 50 dirty pages, or after 5 iterations. */
#define SPP_TARGET_DIRTY_COUNT 50
#define SPP_MAX_ITERATIONS 5

static int send_round(int fd, struct xl_ram *m, const unsigned long *bm, unsigned round)
{
    uint64_t sent;
    if (xl_stream_put_pages(fd, m, bm, &sent) < 0)
        return die("writing guest memory to the stream: %s", strerror(errno)), -1;
    fprintf(stderr, "xc: info: memory round %u: %llu pages sent\n", round,
            (unsigned long long)sent);
    return 0;
}

/* The memory of a live save: everything once, then the pages the dirty
 * bitmap names (the guest's stores and the dm's modified_memory reports)
 * while guest and dm keep running, round after round; as in libxc, the
 * pages of the round that meets the policy are still sent before stopping. */
static int live_rounds(int fd, struct xl_ram *m, unsigned long *bm, unsigned *round)
{
    if (xl_ram_logdirty(m, 1) < 0 || send_round(fd, m, NULL, 0) < 0)
        return -1;
    for (*round = 1;; (*round)++) {
        long dirty = xl_ram_dirty(m, bm);
        if (dirty < 0 || (dirty > 0 && send_round(fd, m, bm, *round) < 0))
            return -1;
        if (dirty < SPP_TARGET_DIRTY_COUNT || *round >= SPP_MAX_ITERATIONS)
            return 0;
    }
}

int logdirty(unsigned domid, const char *cmd)
{
    if (xlq_domain_is_qemu_xen(domid))
        return xlq_logdirty(domid, strcmp(cmd, "enable") == 0);
    char c[256], r[256];
    paths(domid, "logdirty/cmd", c, sizeof(c));
    paths(domid, "logdirty/ret", r, sizeof(r));
    /* libxl: inside a transaction, a previous cmd must equal ret; both go */
    for (;;) {
        xs_transaction_t t = xs_transaction_start(g_xs);
        unsigned l;
        char *oc = xs_read(g_xs, t, c, &l), *orr = xs_read(g_xs, t, r, &l);
        int bad = oc && (!orr || strcmp(oc, orr) != 0);
        free(oc);
        free(orr);
        if (bad) {
            xs_transaction_end(g_xs, t, true);
            return die("logdirty: previous command not acknowledged by the device model"), -1;
        }
        xs_rm(g_xs, t, c);
        xs_rm(g_xs, t, r);
        xs_write(g_xs, t, c, cmd, strlen(cmd));
        if (xs_transaction_end(g_xs, t, false))
            break;
        if (errno != EAGAIN)
            return die("logdirty transaction: %s", strerror(errno)), -1;
    }
    char got[64];
    int w = wait_value(r, cmd, bound(LOGDIRTY_TIMEOUT), 0, got, sizeof(got));
    if (w < 0)
        return die("logdirty switch: %s", w == -1 ? "wait for device model timed out"
                                                : "xenstore error"), -1;
    xs_rm(g_xs, XBT_NULL, c);
    xs_rm(g_xs, XBT_NULL, r);
    return 0;
}


/* libxl_domain_suspend, traditional HVM: suspend_init, logdirty on in the
 * dm (libxc's setup), memory (live: rounds), the guest suspended, the dm's
 * `save`, the rest of memory, logdirty off (cleanup, also after a
 * failure), then the emulator context and END. */
int xl_suspend_domain(unsigned domid, int fd, int live)
{
    if (suspend_init(domid) < 0)
        return XL_ERROR_FAIL;
    if (logdirty(domid, "enable") < 0)
        return XL_ERROR_FAIL;
    struct xl_ram m;
    unsigned long *bm = NULL;
    unsigned round = 0;
    int rc = XL_ERROR_FAIL;
    if (xl_ram_open(&m, domid) < 0) {
        logdirty(domid, "disable");
        return XL_ERROR_FAIL;
    }
    bm = calloc((m.pages + 63) / 64, 8);
    if (!bm) {
        die("out of memory for the dirty bitmap");
        goto out;
    }
    if (live && live_rounds(fd, &m, bm, &round) < 0)
        goto out;
    rc = suspend_guest(domid);
    if (rc < 0)
        goto out;
    int cancelled = rc == SUSPEND_CANCELLED;
    rc = XL_ERROR_FAIL;
    if (!cancelled && suspend_dm(domid, live) < 0)
        goto out;
    /* libxc's check once the suspend callback returns */
    struct hv_wire_dominfo w;
    if (xl_domain_info(domid, &w) < 0)
        goto out;
    if (!w.shut_down || w.shutdown_reason != SHUTDOWN_suspend) {
        fprintf(stderr, "xc: error: Domain has not been suspended: shutdown %d, reason %u\n",
                w.shut_down, w.shut_down ? w.shutdown_reason : 0);
        goto out;
    }
    if (live) {
        long dirty = xl_ram_dirty(&m, bm);
        if (dirty < 0 || send_round(fd, &m, bm, round + 1) < 0)
            goto out;
    } else if (send_round(fd, &m, NULL, 0) < 0) {
        goto out;
    }
    rc = 0;
out:
    if (live)
        xl_ram_logdirty(&m, 0);
    xl_ram_close(&m);
    free(bm);
    if (logdirty(domid, "disable") < 0)
        rc = XL_ERROR_FAIL;
    if (rc < 0)
        return rc;
    /* write_emulator_context_record: the dm's save file, whole */
    char sf[4300];
    libdir_file("qemu-save", domid, sf, sizeof(sf));
    char *blob;
    size_t blen;
    if (read_file(sf, &blob, &blen) < 0)
        return die("Domain %u:unable to open qemu save file %s: %s", domid, sf, strerror(errno)),
               XL_ERROR_FAIL;
    rc = xl_stream_put(fd, "emulator", blob, blen) < 0 || xl_stream_put_end(fd) < 0
             ? (die("writing the emulator context to the stream: %s", strerror(errno)),
                XL_ERROR_FAIL)
             : 0;
    free(blob);
    return rc;
}

/* ------------------------------------------------------------ resume */

int xl_resume_domain(unsigned domid, int suspend_cancel)
{
    if (dm_resume(domid) < 0)
        return die("Domain %u:Failed to resume device model", domid), XL_ERROR_FAIL;
    char sd[16];
    snprintf(sd, sizeof(sd), "%u", domid);
    if (hv(NULL, 0, "resume", sd, suspend_cancel ? "--fast" : NULL, NULL, NULL, NULL, NULL,
           NULL) < 0)
        return die("Domain %u:xc_domain_resume failed", domid), XL_ERROR_FAIL;
    /* re-arms @releaseDomain for this domain in xenstored */
    if (!xs_resume_domain(g_xs, domid))
        return die("Domain %u:xs_resume_domain failed: %s", domid, strerror(errno)),
               XL_ERROR_FAIL;
    xl_wl_resume(g_rundir, domid);   /* the simulated guest carries on */
    return 0;
}

int xl_rename_domain(unsigned domid, const char *name)
{
    char p[64];
    snprintf(p, sizeof(p), "/local/domain/%u/name", domid);
    return xs_w(p, name);
}

/* ------------------------------------------------------------ xl save */

int cmd_save(int argc, char **argv)
{
    int i = 1, checkpoint = 0, leavepaused = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0)
            checkpoint = 1;
        else if (strcmp(argv[i], "-p") == 0)
            leavepaused = 1;
        else
            return fprintf(stderr, "xensim xl save: unknown option %s\n", argv[i]), 2;
    }
    if (i + 2 != argc)
        return fprintf(stderr, "usage: xensim xl save [-c] [-p] DOMID FILE\n"), 2;
    unsigned domid;
    if (parse_domid(argv[i], &domid) < 0)
        return 2;
    const char *file = argv[i + 1];
    char cp[64];
    snprintf(cp, sizeof(cp), "/libxl/%u/xl-config", domid);
    char *cfgtext = xs_r(cp);
    if (!cfgtext)
        return die("domain %u: not created by xensim xl (no config)", domid);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(cfgtext);
        return fprintf(stderr, "Failed to open temp file %s for writing: %s\n", file,
                       strerror(errno)), 1;
    }
    fprintf(stderr, "Saving to %s new xl format (xensim stream 2)\n", file);
    int rc = xl_stream_put_header(fd, cfgtext) < 0
                 ? (die("writing %s: %s", file, strerror(errno)), XL_ERROR_FAIL)
                 : xl_suspend_domain(domid, fd, 0);
    free(cfgtext);
    if (close(fd) < 0 && rc == 0)
        rc = (die("writing %s: %s", file, strerror(errno)), XL_ERROR_FAIL);
    if (rc < 0) {
        fprintf(stderr, "Failed to save domain, resuming domain\n");
        xl_resume_domain(domid, 1);
        return 1;
    }
    if (leavepaused || checkpoint) {
        char sd[16];
        snprintf(sd, sizeof(sd), "%u", domid);
        if (leavepaused && hv(NULL, 0, "pause", sd, NULL, NULL, NULL, NULL, NULL, NULL) < 0)
            return die("Domain %u:Pausing domain failed", domid);
        return xl_resume_domain(domid, 1) < 0;
    }
    return destroy_domain(domid);
}

/* ------------------------------------------------------------ xl restore */

int cmd_restore(int argc, char **argv)
{
    int paused = 0, i = 1;
    if (i < argc && strcmp(argv[i], "-p") == 0) {
        paused = 1;
        i++;
    }
    if (i + 1 != argc)
        return fprintf(stderr, "usage: xensim xl restore [-p] FILE\n"), 2;
    int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return die("cannot open restore file %s: %s", argv[i], strerror(errno));
    fprintf(stderr, "Loading new save file %s (xensim stream 2)\n", argv[i]);
    char *cfgtext;
    if (xl_stream_get_config(fd, argv[i], &cfgtext, -1) < 0) {
        close(fd);
        return 1;
    }
    struct xl_restore_src rs = { .fd = fd, .what = argv[i], .secs = -1 };
    int r = create_common(cfgtext, argv[i], &rs, paused);
    free(cfgtext);
    close(fd);
    return r;
}
