/*
 * xensim guests: the workload's vCPU threads.  vCPU 0 boots (firmware PCI
 * pass, then the drivers), or on a resume takes the drivers' state back
 * from guest RAM without touching a controller; then every vCPU loops over
 * its share of the devices until stopped, done or failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hv.h"
#include "guest_wl_internal.h"

void wl_count(struct guest_wl *wl, size_t off, uint64_t n)
{
    pthread_mutex_lock(&wl->lock);
    *(uint64_t *)((char *)&wl->extra + off) += n;
    pthread_mutex_unlock(&wl->lock);
}

static struct wl_hdr *hdr_of(struct guest_wl *wl)
{
    uint64_t size;
    uint8_t *ram = hv_domain_ram(wl->d, &size);
    if (!ram || size < WL_HDR_GPA + WL_HDR_SIZE)
        return NULL;
    return (struct wl_hdr *)(ram + WL_HDR_GPA);
}

/* A store of the runner's own state into guest RAM: like the guest's, so
 * log-dirty sees it, also while the domain is paused (a stop in io-error,
 * then a live migration: its last round must carry this state; a direct
 * copy left the destination with the state from the start of the run). */
static void ram_put(struct guest_wl *wl, uint64_t gpa, const void *buf, size_t len)
{
    (void)hv_guest_state_write(wl->domid, gpa, buf, len);
}

#define HDR_PUT(wl, field, value)                                                     \
    do {                                                                              \
        uint64_t v_ = (value);                                                        \
        ram_put((wl), WL_HDR_GPA + offsetof(struct wl_hdr, field), &v_, sizeof(v_)); \
    } while (0)

/* The runner's state into guest RAM (vCPUs stopped, or vCPU 0 between
 * operations): what a restored guest resumes from. */
void wl_hdr_write(struct guest_wl *wl)
{
    if (!hdr_of(wl))
        return;
    struct wl_hdr *t = calloc(1, sizeof(*t));
    if (!t)
        return;
    t->magic = WL_HDR_MAGIC;
    t->version = WL_HDR_VERSION;
    t->nvcpus = wl->nvcpus;
    snprintf(t->spec, sizeof(t->spec), "%s", wl->spec_text);
    t->uart_tx_next = wl->uart_tx_next;
    t->uart_rx_next = wl->uart_rx_next;
    t->writes_claimed = atomic_load(&wl->writes_claimed);
    t->action_done = wl->action_done;
    for (unsigned k = 0; k < WL_NDISKS; k++)
        if (wl->chk_ready[k]) {
            t->chk[k].ledger = wl->chk[k].ledger;
            t->chk[k].nsectors = wl->chk[k].nsectors;
            t->chk[k].next_seq = atomic_load(&wl->chk[k].next_seq);
        }
    for (unsigned i = 0; i < wl->nvcpus; i++) {
        t->ram_next[i] = wl->v[i].bus.ram_next;
        t->td[i] = wl->v[i].td;
        t->rng[i] = wl->v[i].rng;
        t->pend[i].disk = wl->v[i].pend_disk;
        t->pend[i].p = wl->v[i].pend;
    }
    t->fw = wl->fw;
    t->uart = wl->uart;
    t->pm = wl->pm;
    t->ide = wl->ide;
    t->ahci = wl->ahci;
    ram_put(wl, WL_HDR_GPA, t, sizeof(*t));
    free(t);
}

static bool spec_has(const struct guest_wl *wl, unsigned dev)
{
    return (wl->spec.devices & dev) != 0;
}

static const unsigned disk_dev[WL_NDISKS] = { GUEST_DEV_TESTDISK, GUEST_DEV_IDE, GUEST_DEV_AHCI };

/* ------------------------------------------------------------ boot */

static int boot_fresh(struct guest_wl *wl)
{
    struct guest_bus *b = &wl->v[0].bus;
    if (wl->spec.fw != GUEST_FW_NONE) {
        pthread_mutex_lock(&wl->lock);
        wl->state = WL_FIRMWARE;
        pthread_mutex_unlock(&wl->lock);
        if (guest_fw_scan(b, &wl->fw, wl->spec.fw == GUEST_FW_HVMLOADER) < 0)
            return -1;
    }
    if (spec_has(wl, GUEST_DEV_UART) && guest_uart_init(&wl->uart, b, WL_UART_BASE) < 0)
        return -1;
    if (spec_has(wl, GUEST_DEV_PM) && guest_pm_init(&wl->pm, b, &wl->fw) < 0)
        return -1;
    if (spec_has(wl, GUEST_DEV_IDE) && guest_ide_init(&wl->ide, b, &wl->fw) < 0)
        return -1;
    if (spec_has(wl, GUEST_DEV_AHCI) && guest_ahci_init(&wl->ahci, b, &wl->fw) < 0)
        return -1;
    if (spec_has(wl, GUEST_DEV_AHCI) && wl->spec.qd > 1 && !wl->ahci.ncq)
        return guest_bus_fail(b, "ahci: qd=%u needs NCQ, which the HBA or disk lacks",
                              wl->spec.qd);
    if (spec_has(wl, GUEST_DEV_AHCI) && wl->spec.qd > wl->ahci.nslots)
        return guest_bus_fail(b, "ahci: qd=%u but the HBA has %u command slots", wl->spec.qd,
                              wl->ahci.nslots);
    for (unsigned k = 0; k < WL_NDISKS; k++) {
        if (!spec_has(wl, disk_dev[k]))
            continue;
        uint64_t n = wl->spec.sectors;
        uint64_t size = k == WL_IDE ? wl->ide.sectors : k == WL_AHCI ? wl->ahci.sectors : n;
        if (size < n)
            n = size;
        if (n < wl->nvcpus * (uint64_t)wl->spec.size_max * (k == WL_AHCI ? wl->spec.qd : 1))
            return guest_bus_fail(b, "%s: %" PRIu64 " checked sectors are too few for %u vCPUs "
                                  "with requests of up to %u sectors",
                                  k == WL_IDE ? "ide" : k == WL_AHCI ? "ahci" : "testdisk", n,
                                  wl->nvcpus, wl->spec.size_max);
        if (guest_check_init(&wl->chk[k], b, n) < 0)
            return -1;
        wl->chk_ready[k] = true;
    }
    for (unsigned i = 0; i < wl->nvcpus && spec_has(wl, GUEST_DEV_TESTDISK); i++)
        if (guest_testdisk_init(&wl->v[i].td, &wl->v[i].bus, &wl->chk[WL_TESTDISK], i,
                                wl->nvcpus) < 0)
            return guest_bus_fail(b, "testdisk vCPU %u: %s", i, guest_bus_error(&wl->v[i].bus));
    return 0;
}

/* Resume: the drivers' state comes back from guest RAM as an OS's would;
 * no controller is touched (re-inits stay 0). */
static int boot_resume(struct guest_wl *wl)
{
    struct guest_bus *b = &wl->v[0].bus;
    struct wl_hdr *h = hdr_of(wl);
    if (!h || h->magic != WL_HDR_MAGIC || h->version != WL_HDR_VERSION)
        return guest_bus_fail(b, "resume: no workload state in guest RAM at 0x%llx",
                              (unsigned long long)WL_HDR_GPA);
    struct wl_hdr *t = malloc(sizeof(*t));
    if (!t)
        return guest_bus_fail(b, "resume: out of memory");
    memcpy(t, h, sizeof(*t));
    int rc = 0;
    wl->fw = t->fw;
    wl->uart = t->uart;
    wl->uart.bus = b;
    wl->pm = t->pm;
    wl->pm.bus = b;
    wl->ide = t->ide;
    wl->ide.bus = b;
    wl->ahci = t->ahci;
    wl->ahci.bus = b;
    wl->uart_tx_next = t->uart_tx_next;
    wl->uart_rx_next = t->uart_rx_next;
    wl->action_done = t->action_done;
    atomic_store(&wl->writes_claimed, t->writes_claimed);
    for (unsigned i = 0; i < wl->nvcpus; i++) {
        wl->v[i].bus.ram_next = t->ram_next[i];
        wl->v[i].rng = t->rng[i];
        wl->v[i].pend = t->pend[i].p;
        wl->v[i].pend_disk = t->pend[i].disk;
        if (wl->v[i].pend.phase == GUEST_DISKLOAD_IDLE)
            continue;
        unsigned k = t->pend[i].disk;
        if ((k != WL_IDE && k != WL_AHCI) || !spec_has(wl, disk_dev[k])) {
            free(t);
            return guest_bus_fail(b, "resume: vCPU %u was frozen in a round on disk %u, "
                                  "which this guest does not drive", i, k);
        }
        wl->pending_rounds++;
    }
    for (unsigned k = 0; k < WL_NDISKS && rc == 0; k++) {
        if (!spec_has(wl, disk_dev[k]))
            continue;
        rc = guest_check_attach(&wl->chk[k], b, t->chk[k].ledger, t->chk[k].nsectors,
                                t->chk[k].next_seq);
        wl->chk_ready[k] = rc == 0;
    }
    for (unsigned i = 0; i < wl->nvcpus && rc == 0 && spec_has(wl, GUEST_DEV_TESTDISK); i++) {
        wl->v[i].td = t->td[i];
        wl->v[i].td.bus = &wl->v[i].bus;
        wl->v[i].td.chk = &wl->chk[WL_TESTDISK];
        wl->v[i].td.irqs_seen = guest_irq_count(&wl->v[i].bus, GUEST_TESTDISK_GSI);
    }
    free(t);
    return rc;
}

/* ------------------------------------------------------------ UART */

static void rx_line_done(struct guest_wl *wl)
{
    wl->rx_line[wl->rx_len] = '\0';
    unsigned long long n;
    char tail;
    if (wl->rx_len == WL_LINE - 1 && sscanf(wl->rx_line, "h%8llu%c", &n, &tail) == 1) {
        wl->rx_lines++;
        if (n == wl->uart_rx_next) {
            wl->uart_rx_next++;
        } else if (n > wl->uart_rx_next) {
            WL_COUNT(wl, uart_missing, n - wl->uart_rx_next);
            wl->uart_rx_next = n + 1;
        } else if (n + 1 == wl->uart_rx_next) {
            WL_COUNT(wl, uart_duplicated, 1);
        } else {
            WL_COUNT(wl, uart_out_of_order, 1);
        }
        HDR_PUT(wl, uart_rx_next, wl->uart_rx_next);
    } else {
        wl->rx_text_lines++;
        pthread_mutex_lock(&wl->lock);
        snprintf(wl->rx_text, sizeof(wl->rx_text), "%s", wl->rx_line);
        pthread_mutex_unlock(&wl->lock);
    }
    wl->rx_len = 0;
}

static int uart_rx(struct guest_wl *wl)
{
    for (;;) {
        uint8_t c;
        int r = guest_uart_get(&wl->uart, &c, 0);
        if (r <= 0)
            return r;
        wl->rx_bytes++;
        if (c == '\n') {
            rx_line_done(wl);
        } else if (wl->rx_len + 1 < sizeof(wl->rx_line)) {
            wl->rx_line[wl->rx_len++] = (char)c;
        } else {
            rx_line_done(wl);   /* an overlong line is text */
            wl->rx_line[wl->rx_len++] = (char)c;
        }
    }
}

static int uart_tx(struct guest_wl *wl)
{
    char line[WL_LINE + 1];
    snprintf(line, sizeof(line), "g%08llu\n", (unsigned long long)(wl->uart_tx_next % 100000000));
    for (unsigned i = 0; i < WL_LINE; i++)
        if (guest_uart_put(&wl->uart, (uint8_t)line[i]) < 0)
            return -1;
    wl->uart_tx_next++;
    HDR_PUT(wl, uart_tx_next, wl->uart_tx_next);
    return 0;
}

/* ------------------------------------------------------------ PM */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


#define PM1_STS_PWRBTN 0x0100u
#define PM1_STS_WAK 0x8000u

/* The power button: an OS sees the SCI, reads PM1_STS, clears it and
 * powers off through S5. */
static int pm_poll(struct guest_wl *wl)
{
    uint16_t sts;
    if (guest_inw(wl->pm.bus, wl->pm.base, &sts) < 0)
        return -1;
    if (sts == 0xffff || !(sts & PM1_STS_PWRBTN))
        return 0;
    wl->sci_seen++;
    if (guest_outw(wl->pm.bus, wl->pm.base, PM1_STS_PWRBTN) < 0)
        return -1;
    return guest_pm_sleep(&wl->pm, 0);
}

static int do_action(struct guest_wl *wl)
{
    /* Kept in guest RAM at once: a restored guest does not do it again.
     * (Only this field: other vCPUs are running.) */
    wl->action_done = 1;
    HDR_PUT(wl, action_done, 1);
    switch (wl->spec.action) {
    case GUEST_ACT_S5:
        return guest_pm_sleep(&wl->pm, 0);
    case GUEST_ACT_RESET:
        return guest_reset_cf9(&wl->v[0].bus);
    case GUEST_ACT_RESET92:
        return guest_reset_port92(&wl->v[0].bus);
    case GUEST_ACT_RESETKBD:
        return guest_reset_i8042(&wl->v[0].bus);
    case GUEST_ACT_S3:
        /* The write completes once the guest is woken (the vCPU is held
         * in S3 meanwhile); the stream then simply continues. */
        if (guest_pm_sleep(&wl->pm, 1) < 0)
            return -1;
        /* Like an OS, spin on WAK_STS: the vCPU runs on until Xen stops
         * it for S3, and comes back here when woken. */
        for (uint64_t end = now_ms() + 600000;;) {
            uint16_t sts;
            if (guest_inw(wl->pm.bus, wl->pm.base, &sts) < 0)
                return -1;
            if (sts != 0xffff && (sts & PM1_STS_WAK))
                break;
            if (now_ms() > end)
                return guest_bus_fail(wl->pm.bus, "pm: no WAK_STS within 600 s of entering S3");
        }
        wl->s3_resumes++;
        /* As Linux's acpi_hw_legacy_wake: WAK_STS and the power-button
         * status a wake-up sets are cleared, not taken for a press. */
        return guest_outw(wl->pm.bus, wl->pm.base, PM1_STS_WAK | PM1_STS_PWRBTN);
    default:
        return 0;
    }
}

/* ------------------------------------------------------------ disks */

static int disk_step(struct wl_vcpu *v, enum wl_disk_kind k)
{
    if (k == WL_TESTDISK)
        return guest_testdisk_step(&v->td);
    int rc = guest_diskload_step(&v->wl->dl[k], &v->bus, v->idx, v->wl->nvcpus, &v->rng,
                                 v->iobuf, &v->pend);
    if (rc == GUEST_FROZEN)
        v->pend_disk = k;
    return rc;
}

/* After a resume: a vCPU frozen in a round finishes it first, and no vCPU
 * starts a new command before every frozen round is finished (the
 * controllers still have those commands in flight). */
static int finish_frozen(struct wl_vcpu *v)
{
    struct guest_wl *wl = v->wl;
    int rc = 0;
    if (v->pend.phase != GUEST_DISKLOAD_IDLE) {
        rc = guest_diskload_resume(&wl->dl[v->pend_disk], &v->bus, v->iobuf, &v->pend);
        if (rc == 0)
            atomic_fetch_add(&wl->rounds_finished, 1);
        pthread_mutex_lock(&wl->lock);
        wl->pending_rounds--;
        pthread_cond_broadcast(&wl->cond);
        pthread_mutex_unlock(&wl->lock);
        return rc;
    }
    pthread_mutex_lock(&wl->lock);
    while (wl->pending_rounds > 0 && !atomic_load(&wl->stop))
        pthread_cond_wait(&wl->cond, &wl->lock);
    pthread_mutex_unlock(&wl->lock);
    return rc;
}

static int disk_verify(struct wl_vcpu *v, enum wl_disk_kind k)
{
    if (k == WL_TESTDISK)
        return guest_testdisk_verify(&v->td);
    return guest_diskload_verify(&v->wl->dl[k], &v->bus, v->idx, v->wl->nvcpus, v->iobuf);
}

/* The IDE/AHCI loads, once the drivers and checkers are set up. */
static void disk_loads(struct guest_wl *wl)
{
    for (unsigned k = WL_IDE; k <= WL_AHCI; k++)
        wl->dl[k] = (struct guest_diskload){
            .ide = k == WL_IDE ? &wl->ide : NULL, .ahci = k == WL_AHCI ? &wl->ahci : NULL,
            .chk = &wl->chk[k], .lock = &wl->disk_lock[k], .qd = wl->spec.qd,
            .ide_mode = wl->spec.ide_mode,
            .size_min = wl->spec.size_min, .size_max = wl->spec.size_max, .stop = &wl->stop,
        };
}

/* ------------------------------------------------------------ the loop */

/* The guest idles gap_ms (a stop request ends the idle at once). */
static void idle(struct guest_wl *wl, unsigned ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_nsec += (long)(ms % 1000) * 1000000;
    dl.tv_sec += ms / 1000 + dl.tv_nsec / 1000000000;
    dl.tv_nsec %= 1000000000;
    pthread_mutex_lock(&wl->lock);
    while (!atomic_load(&wl->stop) &&
           pthread_cond_timedwait(&wl->cond, &wl->lock, &dl) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&wl->lock);
}

static int vcpu_loop(struct wl_vcpu *v)
{
    struct guest_wl *wl = v->wl;
    bool uart = v->idx == 0 && spec_has(wl, GUEST_DEV_UART);
    bool pm = v->idx == 0 && spec_has(wl, GUEST_DEV_PM);
    bool disks = (wl->spec.devices & GUEST_DEV_DISKS) != 0;
    bool verified = false;
    uint64_t iter = 0;
    int rc = finish_frozen(v);
    if (rc < 0)
        return rc;
    while (!atomic_load(&wl->stop)) {
        if (wl->spec.duration_s && now_ms() - wl->t_start_ms >= wl->spec.duration_s * 1000ull)
            break;
        bool busy = false;
        if (uart) {
            if ((wl->spec.lines == 0 || wl->uart_tx_next < wl->spec.lines) && uart_tx(wl) < 0)
                return -1;
            if (uart_rx(wl) < 0)
                return -1;
            busy = true;
        }
        if (wl->spec.action != GUEST_ACT_NONE && v->idx == 0 && !wl->action_done &&
            (!uart || wl->uart_tx_next >= wl->spec.after) && do_action(wl) < 0)
            return -1;
        if (pm && (iter & 15) == 0 && pm_poll(wl) < 0)
            return -1;
        if (disks && !verified) {
            bool claimed = wl->spec.writes == 0 ||
                           atomic_fetch_add(&wl->writes_claimed, 1) < wl->spec.writes;
            for (unsigned k = 0; k < WL_NDISKS && claimed; k++)
                if (spec_has(wl, disk_dev[k]) && (rc = disk_step(v, (enum wl_disk_kind)k)) < 0)
                    return rc;
            if (!claimed) {
                for (unsigned k = 0; k < WL_NDISKS; k++)
                    if (spec_has(wl, disk_dev[k]) && disk_verify(v, (enum wl_disk_kind)k) < 0)
                        return -1;
                verified = true;
            }
            busy = busy || claimed;
        }
        if (!busy && !pm)
            break;   /* this vCPU's bounded work is done */
        if (uart && wl->spec.gap_ms)
            idle(wl, wl->spec.gap_ms);
        else if (!busy)
            idle(wl, 5);
        iter++;
    }
    return 0;
}

static void vcpu_end(struct wl_vcpu *v, int rc)
{
    struct guest_wl *wl = v->wl;
    if (rc == GUEST_FROZEN) {
        /* Suspended in a command's completion wait: a stop, not a failure;
         * the round travels in the state written below. */
        atomic_fetch_add(&wl->rounds_frozen, 1);
        rc = 0;
    }
    struct hv_domain_info di;
    bool destroyed = hv_domain_info(wl->domid, &di) < 0 || di.dying;
    bool gone = destroyed || di.shutting_down || di.shut_down;
    pthread_mutex_lock(&wl->lock);
    if (rc < 0 && wl->state != WL_FAILED && wl->state != WL_SHUTDOWN) {
        if (gone) {
            static const char *why[] = { "poweroff", "reboot", "suspend", "crash", "watchdog",
                                         "soft_reset" };
            wl->state = WL_SHUTDOWN;
            snprintf(wl->reason, sizeof(wl->reason), "domain shut down (%s)",
                     destroyed ? "destroyed" : di.shutdown_reason < 6 ? why[di.shutdown_reason]
                                                                     : "unknown reason");
        } else if (!atomic_load(&wl->abort)) {
            /* Every failing access records why in this vCPU's own bus
             * (drivers shared between vCPUs run on the caller's bus); a
             * failure that did not is a runner bug, said as such rather
             * than reported as "no error". */
            wl->state = WL_FAILED;
            if (v->bus.err[0])
                snprintf(wl->reason, sizeof(wl->reason), "vCPU %u: %s", v->idx, v->bus.err);
            else
                snprintf(wl->reason, sizeof(wl->reason),
                         "vCPU %u: an operation failed without recording why (runner bug)",
                         v->idx);
        }
        atomic_store(&wl->stop, true);
        pthread_cond_broadcast(&wl->cond);
    }
    if (--wl->running_threads == 0) {
        if (wl->state == WL_RUNNING || wl->state == WL_STARTING || wl->state == WL_FIRMWARE)
            wl->state = WL_DONE;
        else if (wl->state == WL_STOPPING)
            wl->state = WL_STOPPED;
        if (wl->state != WL_FAILED && wl->state != WL_SHUTDOWN)
            wl_hdr_write(wl);
    }
    pthread_cond_broadcast(&wl->cond);
    pthread_mutex_unlock(&wl->lock);
}

void *wl_vcpu_main(void *arg)
{
    struct wl_vcpu *v = arg;
    struct guest_wl *wl = v->wl;
    int rc = 0;
    if (v->idx == 0) {
        rc = wl->resumed ? boot_resume(wl) : boot_fresh(wl);
        disk_loads(wl);
        pthread_mutex_lock(&wl->lock);
        if (rc == 0) {
            wl->init_done = true;
            if (wl->state == WL_STARTING || wl->state == WL_FIRMWARE)
                wl->state = WL_RUNNING;
            wl_hdr_write(wl);
        } else {
            wl->init_failed = true;
        }
        pthread_cond_broadcast(&wl->cond);
        pthread_mutex_unlock(&wl->lock);
    } else {
        pthread_mutex_lock(&wl->lock);
        while (!wl->init_done && !wl->init_failed && !atomic_load(&wl->stop))
            pthread_cond_wait(&wl->cond, &wl->lock);
        bool go = wl->init_done;
        pthread_mutex_unlock(&wl->lock);
        if (!go) {
            vcpu_end(v, 0);
            return NULL;
        }
    }
    if (rc == 0)
        rc = vcpu_loop(v);
    vcpu_end(v, rc);
    return NULL;
}

bool wl_booted(struct guest_wl *wl)
{
    pthread_mutex_lock(&wl->lock);
    bool b = wl->init_done;
    pthread_mutex_unlock(&wl->lock);
    return b;
}

unsigned wl_dma_regions(struct guest_wl *wl, uint64_t *gpa, uint64_t *len, unsigned max)
{
    unsigned n = 0;
    if (!wl_booted(wl))
        return 0;   /* the drivers' buffers are being set up */
#define ADD(g, l) do { if (n < max && (g)) { gpa[n] = (g); len[n] = (l); n++; } } while (0)
    for (unsigned k = 0; k < WL_NDISKS; k++)
        if (wl->chk_ready[k])
            ADD(wl->chk[k].ledger, wl->chk[k].nsectors * 16);
    for (unsigned i = 0; i < wl->nvcpus && spec_has(wl, GUEST_DEV_TESTDISK); i++)
        ADD(wl->v[i].td.buf, 512);
    if (spec_has(wl, GUEST_DEV_IDE)) {
        ADD(wl->ide.prdt, 4096);
        ADD(wl->ide.buf, 65536);
    }
    if (spec_has(wl, GUEST_DEV_AHCI)) {
        ADD(wl->ahci.clb, 1024);
        ADD(wl->ahci.fb, 256);
        for (unsigned s = 0; s < GUEST_AHCI_SLOTS; s++) {
            ADD(wl->ahci.ctba[s], 256);
            ADD(wl->ahci.data[s], GUEST_AHCI_MAX_BYTES);
        }
    }
#undef ADD
    return n;
}
