/*
 * Two-disk guest fixture (dual_guest.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "dual_guest.h"
#include "guest_hv.h"

#define RAM_BASE (1u << 20)
#define RAM_PER_VCPU (6u << 20)

const char *const dual_guest_vdev[DUAL_DISKS] = { "hda", "sda" };

static int write_file(const char *path, const char *text)
{
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "dual_guest: creating %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    int bad = fputs(text, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) < 0) {
        fprintf(stderr, "dual_guest: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int dual_guest_config(dual_guest *g, const char *config)
{
    return write_file(g->conf, config);
}

int dual_guest_inject(dual_guest *g, const char *config)
{
    if (dual_guest_config(g, config) < 0)
        return -1;
    if (g->sim.dm <= 0 || kill(g->sim.dm, SIGUSR1) < 0) {
        fprintf(stderr, "dual_guest: SIGUSR1 to rsdm-sim: %s\n",
                g->sim.dm > 0 ? strerror(errno) : "not running");
        return -1;
    }
    return 0;
}

static int make_image(const char *path, uint64_t sectors)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)(sectors * 512)) < 0) {
        fprintf(stderr, "dual_guest: image %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int dual_guest_stop(dual_guest *g)
{
    int st = g->sim.dm > 0 ? rsdm_sim_stop_dm(&g->sim) : 0;
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        if (g->chk_open[d])
            guest_check_destroy(&g->chk[d]);
        g->chk_open[d] = false;
        if (g->bus_open[d])
            guest_bus_close(&g->bus[d]);
        g->bus_open[d] = false;
        if (g->img[d][0])
            unlink(g->img[d]);
    }
    rsdm_sim_stop(&g->sim);
    if (g->conf[0])
        unlink(g->conf);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->progressed);
    return st;
}

int dual_guest_start(dual_guest *g, const char *name, uint64_t sectors, const char *config)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->progressed, NULL);
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        snprintf(g->img[d], sizeof(g->img[d]), "/tmp/rsdm-%s-%d.%s.img", name, (int)getpid(),
                 dual_guest_vdev[d]);
        if (make_image(g->img[d], sectors) < 0)
            goto fail;
    }
    snprintf(g->conf, sizeof(g->conf), "/tmp/rsdm-%s-%d.conf", name, (int)getpid());
    if (dual_guest_config(g, config) < 0)
        goto fail;
    rsdm_sim_disk disks[DUAL_DISKS] = { { "hda", g->img[0] }, { "sda", g->img[1] } };
    rsdm_sim_opts o = { .name = name, .vcpus = DUAL_DISKS, .disks = disks,
                        .ndisks = DUAL_DISKS, .config = g->conf };
    if (rsdm_sim_start_opts(&g->sim, &o) < 0)
        goto fail;
    char err[256];
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        if (guest_hv_open(&g->bus[d], g->sim.dom, d, RAM_BASE + d * RAM_PER_VCPU, err,
                          sizeof(err)) < 0) {
            fprintf(stderr, "dual_guest: %s\n", err);
            goto fail;
        }
        g->bus_open[d] = true;
        g->bus[d].timeout_ms = 30000;
    }
    if (guest_fw_scan(&g->bus[0], &g->fw, true) < 0 ||
        guest_ide_init(&g->ide, &g->bus[DUAL_IDE], &g->fw) < 0) {
        fprintf(stderr, "dual_guest: IDE: %s\n", guest_bus_error(&g->bus[DUAL_IDE]));
        goto fail;
    }
    if (guest_ahci_init(&g->hba, &g->bus[DUAL_AHCI], &g->fw) < 0) {
        fprintf(stderr, "dual_guest: AHCI: %s\n", guest_bus_error(&g->bus[DUAL_AHCI]));
        goto fail;
    }
    g->sectors = g->ide.sectors < g->hba.sectors ? g->ide.sectors : g->hba.sectors;
    /* The firmware pass probes empty PCI slots, which read all-ones by
     * design; from here on an all-ones read means an access nobody answered. */
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        g->bus[d].all_ones_reads = 0;
        if (guest_check_init(&g->chk[d], &g->bus[d], g->sectors) < 0) {
            fprintf(stderr, "dual_guest: checker: %s\n", guest_bus_error(&g->bus[d]));
            goto fail;
        }
        g->chk_open[d] = true;
    }
    return 0;
fail:
    dual_guest_stop(g);
    return -1;
}

static int disk_io(dual_guest *g, unsigned d, bool write, uint64_t lba, unsigned count,
                   void *buf)
{
    if (d == DUAL_IDE)
        return guest_ide_dma(&g->ide, write, (uint32_t)lba, count, buf);
    return guest_ahci_rw(&g->hba, write, lba, count, buf);
}

int dual_guest_write(dual_guest *g, unsigned d, uint64_t lba, unsigned count)
{
    static __thread uint8_t buf[GUEST_IDE_MAX_SECTORS * 512];
    static __thread uint64_t seq[GUEST_IDE_MAX_SECTORS];
    if (d >= DUAL_DISKS || !count || count > GUEST_IDE_MAX_SECTORS || lba + count > g->sectors)
        return guest_bus_fail(&g->bus[d < DUAL_DISKS ? d : 0], "dual_guest: bad write %u+%u",
                              (unsigned)lba, count);
    for (unsigned i = 0; i < count; i++)
        seq[i] = guest_check_fill(&g->chk[d], lba + i, buf + i * 512);
    if (disk_io(g, d, true, lba, count, buf) < 0)
        return -1;
    for (unsigned i = 0; i < count; i++)
        if (guest_check_acked(&g->chk[d], lba + i, seq[i]) < 0)
            return -1;
    return 0;
}

/* What a failing run needs to find the cause: the sector's header next to
 * the ledger's two last acknowledged sequences. */
static void report_bad(dual_guest *g, unsigned d, uint64_t lba, const uint8_t *sec,
                       enum guest_check_verdict v, const char *where)
{
    static const char *const names[] = { "ok", "lost", "stale", "corrupted" };
    uint64_t e[2] = { 0, 0 }, hl = 0, seq = 0;
    memcpy(&hl, sec + 8, 8);
    memcpy(&seq, sec + 16, 8);
    guest_mem_read(g->chk[d].bus, g->chk[d].ledger + lba * 16, e, 16);
    fprintf(stderr, "dual_guest: %s sector %llu %s (%s): header lba %llu seq %llu; ledger %llu, "
            "before %llu\n", dual_guest_vdev[d], (unsigned long long)lba, names[v], where,
            (unsigned long long)hl, (unsigned long long)seq, (unsigned long long)e[0],
            (unsigned long long)e[1]);
}

int dual_guest_read(dual_guest *g, unsigned d, uint64_t lba, unsigned count)
{
    static __thread uint8_t buf[GUEST_IDE_MAX_SECTORS * 512];
    if (d >= DUAL_DISKS || !count || count > GUEST_IDE_MAX_SECTORS || lba + count > g->sectors)
        return guest_bus_fail(&g->bus[d < DUAL_DISKS ? d : 0], "dual_guest: bad read %u+%u",
                              (unsigned)lba, count);
    if (disk_io(g, d, false, lba, count, buf) < 0)
        return -1;
    GUEST_CHECK_ADD(&g->chk[d], reads, 1);
    for (unsigned i = 0; i < count; i++) {
        enum guest_check_verdict v = guest_check_classify(&g->chk[d], lba + i, buf + i * 512);
        if (v != GUEST_CHECK_OK) {
            char where[64];
            snprintf(where, sizeof(where), "read %u+%u through the device", (unsigned)lba, count);
            report_bad(g, d, lba + i, buf + i * 512, v, where);
        }
        guest_check_count(&g->chk[d], v);
    }
    return 0;
}

long dual_guest_verify(dual_guest *g, unsigned d)
{
    for (uint64_t lba = 0; lba < g->sectors; lba += GUEST_IDE_MAX_SECTORS) {
        uint64_t left = g->sectors - lba;
        if (dual_guest_read(g, d, lba, left < GUEST_IDE_MAX_SECTORS ? (unsigned)left
                                                                     : GUEST_IDE_MAX_SECTORS) < 0) {
            fprintf(stderr, "dual_guest: reading %s back: %s\n", dual_guest_vdev[d],
                    guest_bus_error(&g->bus[d]));
            return -1;
        }
    }
    int fd = open(g->img[d], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "dual_guest: opening %s: %s\n", g->img[d], strerror(errno));
        return -1;
    }
    long bad = 0;
    uint8_t sec[512];
    for (uint64_t lba = 0; lba < g->sectors; lba++) {
        if (pread(fd, sec, sizeof(sec), (off_t)(lba * 512)) != (ssize_t)sizeof(sec)) {
            fprintf(stderr, "dual_guest: reading sector %llu of %s failed\n",
                    (unsigned long long)lba, g->img[d]);
            close(fd);
            return -1;
        }
        enum guest_check_verdict v = guest_check_classify(&g->chk[d], lba, sec);
        if (v != GUEST_CHECK_OK) {
            bad++;
            report_bad(g, d, lba, sec, v, "image file");
            guest_check_count(&g->chk[d], v);
        }
    }
    close(fd);
    return bad;
}

int dual_guest_command(dual_guest *g, const char *cmd)
{
    return rsdm_sim_command(&g->sim, cmd);
}

void dual_guest_runstate(dual_guest *g, char *out, size_t len)
{
    unsigned n = 0;
    char *v = xs_read(g->sim.xs, XBT_NULL, g->sim.runstate, &n);
    snprintf(out, len, "%s", v ? v : "");
    free(v);
}

int dual_guest_resume(dual_guest *g, int tries, unsigned *again)
{
    for (int i = 0; i < tries; i++) {
        if (dual_guest_command(g, "continue") < 0)
            return -1;
        /* Either it runs, or a rule still in force stopped it again. */
        for (int w = 0; w < 100; w++) {
            char rs[128];
            if (rsdm_sim_wait_value(&g->sim, g->sim.runstate, "running holds=", 100) == 0)
                return 0;
            dual_guest_runstate(g, rs, sizeof(rs));
            if (strncmp(rs, "io-error", 8) == 0 && w >= 2)
                break;
        }
        if (again)
            (*again)++;
    }
    fprintf(stderr, "dual_guest: still not running after %d `continue`s\n", tries);
    return -1;
}

long dual_guest_log_count(dual_guest *g, const char *what)
{
    char path[128], line[1024];
    snprintf(path, sizeof(path), "%s/log", g->sim.dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dual_guest: opening %s: %s\n", path, strerror(errno));
        return -1;
    }
    long n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

int dual_guest_log_wait(dual_guest *g, const char *what, long than, int timeout_ms)
{
    /* A log file has no change event to wait on: poll it, bounded. */
    for (int i = 0; i < timeout_ms; i++) {
        long n = dual_guest_log_count(g, what);
        if (n < 0)
            return -1;
        if (n > than)
            return 0;
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
    return -1;
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void *writer_main(void *arg)
{
    dual_writer *w = arg;
    dual_guest *g = w->g;
    for (unsigned i = 0; (!w->n || i < w->n) && !atomic_load(&w->stop); i++) {
        if (i >= atomic_load(&w->allow)) {
            pthread_mutex_lock(&g->mu);
            while (i >= atomic_load(&w->allow) && !atomic_load(&w->stop))
                pthread_cond_wait(&g->progressed, &g->mu);
            pthread_mutex_unlock(&g->mu);
            if (atomic_load(&w->stop))
                break;
        }
        unsigned count = 1 + (unsigned)(xorshift(&w->rng) % 16);
        uint64_t lba = xorshift(&w->rng) % (g->sectors - count);
        bool read = w->read_every && i % w->read_every == w->read_every - 1;
        w->rc = read ? dual_guest_read(g, w->d, lba, count) : dual_guest_write(g, w->d, lba, count);
        if (w->rc < 0) {
            snprintf(w->err, sizeof(w->err), "%s", guest_bus_error(&g->bus[w->d]));
            break;
        }
        if (!read)
            w->sectors += count;
        pthread_mutex_lock(&g->mu);
        atomic_fetch_add(&w->cmds, 1);
        pthread_cond_broadcast(&g->progressed);
        pthread_mutex_unlock(&g->mu);
    }
    pthread_mutex_lock(&g->mu);
    atomic_store(&w->done, true);
    pthread_cond_broadcast(&g->progressed);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int dual_writer_start(dual_writer *w, dual_guest *g, unsigned d, unsigned n, unsigned read_every,
                      uint64_t seed, unsigned allow)
{
    memset(w, 0, sizeof(*w));
    w->g = g;
    w->d = d;
    w->n = n;
    w->read_every = read_every;
    w->rng = seed ? seed : 1;
    atomic_store(&w->allow, allow);
    int r = pthread_create(&w->t, NULL, writer_main, w);
    if (r != 0) {
        fprintf(stderr, "dual_guest: writer thread: %s\n", strerror(r));
        return -1;
    }
    w->started = true;
    return 0;
}

void dual_writer_allow(dual_writer *w, unsigned allow)
{
    pthread_mutex_lock(&w->g->mu);
    atomic_store(&w->allow, allow);
    pthread_cond_broadcast(&w->g->progressed);
    pthread_mutex_unlock(&w->g->mu);
}

bool dual_writer_wait(dual_writer *w, unsigned cmds, int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->g->mu);
    while (atomic_load(&w->cmds) < cmds && !atomic_load(&w->done))
        if (pthread_cond_timedwait(&w->g->progressed, &w->g->mu, &end) == ETIMEDOUT)
            break;
    bool running = !atomic_load(&w->done);
    pthread_mutex_unlock(&w->g->mu);
    return running;
}

int dual_writer_join(dual_writer *w)
{
    if (!w->started)
        return -1;
    pthread_mutex_lock(&w->g->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->g->progressed);
    pthread_mutex_unlock(&w->g->mu);
    pthread_join(w->t, NULL);
    w->started = false;
    return w->rc;
}
