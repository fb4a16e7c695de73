/*
 * IDE guest fixture (ide_guest.h).
 */
#include "ide_guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "guest_hv.h"
#include "hv.h"

#define RAM_BASE (1u << 20)
#define RAM_PER_VCPU (6u << 20)

int ide_guest_image(const char *path, uint64_t sectors)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "ide_guest: creating %s: %s\n", path, strerror(errno));
        return -1;
    }
    int r = ftruncate(fd, (off_t)(sectors * 512));
    if (r < 0)
        fprintf(stderr, "ide_guest: sizing %s: %s\n", path, strerror(errno));
    close(fd);
    return r;
}

void ide_guest_stop(ide_guest *g)
{
    if (g->chk_open)
        guest_check_destroy(&g->chk);
    for (unsigned i = 0; i < IDE_GUEST_VCPUS; i++)
        if (g->bus_open[i])
            guest_bus_close(&g->bus[i]);
    rsdm_sim_stop(&g->sim);
    pthread_mutex_destroy(&g->chan);
}

int ide_guest_start(ide_guest *g, const rsdm_sim_opts *o)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->chan, NULL);
    g->nvcpus = o->vcpus < IDE_GUEST_VCPUS ? o->vcpus : IDE_GUEST_VCPUS;
    if (o->ndisks)
        snprintf(g->image, sizeof(g->image), "%s", o->disks[0].path);
    if (rsdm_sim_start_opts(&g->sim, o) < 0)
        return -1;
    char err[256];
    for (unsigned v = 0; v < g->nvcpus; v++) {
        if (guest_hv_open(&g->bus[v], g->sim.dom, v, RAM_BASE + v * RAM_PER_VCPU, err,
                          sizeof(err)) < 0) {
            fprintf(stderr, "ide_guest: %s\n", err);
            goto fail;
        }
        g->bus_open[v] = true;
        g->bus[v].timeout_ms = 30000;
    }
    if (guest_fw_scan(&g->bus[0], &g->fw, true) < 0 || guest_ide_init(&g->ide[0], &g->bus[0], &g->fw) < 0) {
        fprintf(stderr, "ide_guest: %s\n", guest_bus_error(&g->bus[0]));
        goto fail;
    }
    g->sectors = g->ide[0].sectors;
    for (unsigned v = 1; v < g->nvcpus; v++) {
        g->ide[v] = g->ide[0];
        g->ide[v].bus = &g->bus[v];
        g->ide[v].prdt = guest_ram_alloc(&g->bus[v], 4096, 4096);
        g->ide[v].buf = guest_ram_alloc(&g->bus[v], 65536, 65536);
        if (!g->ide[v].prdt || !g->ide[v].buf) {
            fprintf(stderr, "ide_guest: no guest RAM for vCPU %u's DMA buffers\n", v);
            goto fail;
        }
    }
    /* The firmware pass probes empty PCI slots, which read all-ones by
     * design; from here on an all-ones read means an access nobody answered. */
    for (unsigned v = 0; v < g->nvcpus; v++)
        g->bus[v].all_ones_reads = 0;
    if (guest_check_init(&g->chk, &g->bus[0], g->sectors) < 0) {
        fprintf(stderr, "ide_guest: %s\n", guest_bus_error(&g->bus[0]));
        goto fail;
    }
    g->chk_open = true;
    return 0;
fail:
    ide_guest_stop(g);
    return -1;
}

int ide_guest_write(ide_guest *g, unsigned v, bool dma, uint32_t lba, unsigned count)
{
    static __thread uint8_t buf[GUEST_IDE_MAX_SECTORS * 512];
    static __thread uint64_t seq[GUEST_IDE_MAX_SECTORS];
    for (unsigned i = 0; i < count; i++)
        seq[i] = guest_check_fill(&g->chk, lba + i, buf + i * 512);
    pthread_mutex_lock(&g->chan);
    int r = dma ? guest_ide_dma(&g->ide[v], true, lba, count, buf)
                : guest_ide_pio(&g->ide[v], true, lba, count, buf);
    pthread_mutex_unlock(&g->chan);
    if (r < 0)
        return r;
    for (unsigned i = 0; i < count; i++)
        if (guest_check_acked(&g->chk, lba + i, seq[i]) < 0)
            return -1;
    return 0;
}

int ide_guest_read(ide_guest *g, unsigned v, bool dma, uint32_t lba, unsigned count)
{
    static __thread uint8_t buf[GUEST_IDE_MAX_SECTORS * 512];
    pthread_mutex_lock(&g->chan);
    int r = dma ? guest_ide_dma(&g->ide[v], false, lba, count, buf)
                : guest_ide_pio(&g->ide[v], false, lba, count, buf);
    pthread_mutex_unlock(&g->chan);
    if (r < 0)
        return r;
    GUEST_CHECK_ADD(&g->chk, reads, 1);
    for (unsigned i = 0; i < count; i++)
        guest_check_count(&g->chk, guest_check_classify(&g->chk, lba + i, buf + i * 512));
    return 0;
}

int ide_guest_flush(ide_guest *g, unsigned v)
{
    pthread_mutex_lock(&g->chan);
    int r = guest_ide_flush(&g->ide[v]);
    pthread_mutex_unlock(&g->chan);
    if (r == 0)
        GUEST_CHECK_ADD(&g->chk, flushes, 1);
    return r;
}

uint32_t ide_guest_image_hash(const char *path, uint64_t sectors)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint32_t h = 2166136261u;
    uint8_t buf[64 * 512];
    uint64_t left = sectors * 512;
    while (left > 0) {
        size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
        ssize_t r = read(fd, buf, n);
        if (r <= 0) {
            close(fd);
            return 0;
        }
        for (ssize_t k = 0; k < r; k++)
            h = (h ^ buf[k]) * 16777619u;
        left -= (uint64_t)r;
    }
    close(fd);
    return h ? h : 1;
}

long ide_guest_check_image(ide_guest *g)
{
    int fd = open(g->image, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "ide_guest: opening %s: %s\n", g->image, strerror(errno));
        return -1;
    }
    long bad = 0;
    uint8_t sec[512];
    for (uint64_t lba = 0; lba < g->sectors; lba++) {
        if (pread(fd, sec, sizeof(sec), (off_t)(lba * 512)) != (ssize_t)sizeof(sec)) {
            fprintf(stderr, "ide_guest: reading sector %llu of %s failed\n",
                    (unsigned long long)lba, g->image);
            close(fd);
            return -1;
        }
        enum guest_check_verdict v = guest_check_classify(&g->chk, lba, sec);
        if (v != GUEST_CHECK_OK) {
            bad++;
            guest_check_count(&g->chk, v);
        }
    }
    close(fd);
    return bad;
}

uint64_t ide_guest_all_ones(ide_guest *g)
{
    uint64_t n = 0;
    for (unsigned v = 0; v < g->nvcpus; v++) {
        pthread_mutex_lock(&g->bus[v].lock);
        n += g->bus[v].all_ones_reads;
        pthread_mutex_unlock(&g->bus[v].lock);
    }
    return n;
}

uint64_t ide_guest_null_hits(ide_guest *g)
{
    struct hv_null_hits h[128];
    int n = hv_null_hits(g->sim.dom, h, 128);
    uint64_t total = 0;
    for (int i = 0; i < n && i < 128; i++) {
        uint64_t s = h[i].start;
        bool ide = s == 0x1f0 || s == 0x3f6 || s == 0x170 || s == 0x376 ||
                   (s >= g->ide[0].bmdma && s < g->ide[0].bmdma + 16u);
        if (h[i].type == 0 && ide)
            total += h[i].hits;
    }
    return total;
}

int ide_guest_wait_runstate(ide_guest *g, const char *want, int timeout_ms)
{
    return rsdm_sim_wait_value(&g->sim, g->sim.runstate, want, timeout_ms);
}

int ide_guest_command(ide_guest *g, const char *cmd)
{
    return rsdm_sim_command(&g->sim, cmd);
}

rsdm_sim_dialect ide_guest_dialect = RSDM_SIM_TRADITIONAL;

static void events_note(void *opaque, json_t *event)
{
    ide_guest_events *e = opaque;
    const char *name = json_string_value(json_object_get(event, "event"));
    if (e->n < IDE_GUEST_EVENTS && name) {
        json_t *d = json_object_get(event, "data");
        if (strcmp(name, "BLOCK_IO_ERROR") == 0)
            snprintf(e->ev[e->n], sizeof(e->ev[0]), "%s %s %s %s", name,
                     json_string_value(json_object_get(d, "device")) ?: "?",
                     json_string_value(json_object_get(d, "operation")) ?: "?",
                     json_string_value(json_object_get(d, "action")) ?: "?");
        else
            snprintf(e->ev[e->n], sizeof(e->ev[0]), "%s", name);
        e->n++;
    }
    json_decref(event);
}

int ide_guest_events_open(ide_guest *g, ide_guest_events *e)
{
    memset(e, 0, sizeof(*e));
    e->c = rsdm_sim_qmp(&g->sim);
    if (!e->c)
        return -1;
    xlq_set_event_fn(e->c, events_note, e);
    return 0;
}

int ide_guest_events_find(const ide_guest_events *e, const char *name, unsigned from)
{
    for (unsigned i = from; i < e->n; i++)
        if (strncmp(e->ev[i], name, strlen(name)) == 0)
            return (int)i;
    return -1;
}

int ide_guest_events_wait(ide_guest_events *e, const char *name, unsigned count, int timeout_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int i = -1;
        for (unsigned k = 0; k < count && (k == 0 || i >= 0); k++)
            i = ide_guest_events_find(e, name, (unsigned)(i + 1));
        if (i >= 0)
            return i;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || xlq_pump(e->c, (int)left) < 0)
            return -1;
    }
}

void ide_guest_events_close(ide_guest_events *e)
{
    if (e->c)
        xlq_close(e->c);
    e->c = NULL;
}
