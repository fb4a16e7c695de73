/* xl_stream.c: the save/migration stream of `xensim xl` and the guest RAM it
 * carries.
 *
 * The stream is xensim's own layout, in the order of libxl's v2 stream
 * (libxc's memory first, then the emulator context, then END):
 *
 *   "xensim-xl-save 2\n"
 *   "config <len>\n"   <len bytes: the xl config>
 *   "pages <n>\n"      <n x (gfn as 8 bytes little-endian, 4096 bytes)>  (repeated)
 *   "emulator <len>\n" <len bytes: the dm's qemu-save file>
 *   "end\n"
 *
 * Guest RAM is reached like libxc reaches it: mapped through the
 * simulator's control socket (the memfd a dm's foreign map uses), the dirty
 * bitmap read-and-cleaned with the log-dirty op. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hv_client.h"
#include "xl_internal.h"

#define PAGE 4096u
#define BATCH 1024u                  /* pages per record, libxc's batch */
#define MAX_BLOB (16u << 20)

/* ------------------------------------------------------------ hypervisor */

int xl_hv_call(struct hv_req *q, struct hv_rsp *r, void **payload, const char *what)
{
    int fd = hv_client_connect(g_rundir);
    if (fd < 0)
        return -1;
    int rc = hv_client_call(fd, q, r, payload, NULL, 0, what);
    close(fd);
    return rc;
}

int xl_domain_info(unsigned domid, struct hv_wire_dominfo *w)
{
    struct hv_req q = { .op = HV_OP_DOMAIN_INFO, .domid = domid };
    struct hv_rsp r;
    void *p;
    if (xl_hv_call(&q, &r, &p, "xc_domain_getinfo") < 0)
        return -1;
    int ok = r.len == sizeof(*w);
    if (ok)
        memcpy(w, p, sizeof(*w));
    else
        fprintf(stderr, "libxl: error: xc_domain_getinfo: malformed answer\n");
    free(p);
    return ok ? 0 : -1;
}

int xl_hvm_param(unsigned domid, uint32_t param, uint64_t *v)
{
    struct hv_req q = { .op = HV_OP_HVM_PARAM_GET, .domid = domid, .a32 = { param } };
    struct hv_rsp r;
    if (xl_hv_call(&q, &r, NULL, "xc_hvm_param_get") < 0)
        return -1;
    *v = r.u64[0];
    return 0;
}

int xl_ram_open(struct xl_ram *m, unsigned domid)
{
    memset(m, 0, sizeof(*m));
    m->domid = domid;
    m->hv = hv_client_connect(g_rundir);
    if (m->hv < 0)
        return -1;
    m->map = hv_client_map_ram(m->hv, domid, &m->size, "mapping guest memory");
    if (!m->map) {
        close(m->hv);
        m->hv = -1;
        return -1;
    }
    m->pages = m->size / PAGE;
    return 0;
}

void xl_ram_close(struct xl_ram *m)
{
    if (m->map)
        munmap(m->map, m->size);
    if (m->hv >= 0)
        close(m->hv);
    m->map = NULL;
    m->hv = -1;
}

int xl_ram_logdirty(struct xl_ram *m, int on)
{
    struct hv_req q = { .op = HV_OP_LOGDIRTY, .domid = m->domid, .a32 = { on ? 1u : 0u } };
    struct hv_rsp r;
    return hv_client_call(m->hv, &q, &r, NULL, NULL, 0,
                          on ? "enabling log-dirty" : "disabling log-dirty");
}

long xl_ram_dirty(struct xl_ram *m, unsigned long *bm)
{
    struct hv_req q = { .op = HV_OP_LOGDIRTY, .domid = m->domid, .a32 = { 2 } };
    struct hv_rsp r;
    void *p;
    if (hv_client_call(m->hv, &q, &r, &p, NULL, 0, "reading the dirty bitmap") < 0)
        return -1;
    size_t want = (m->pages + 63) / 64 * 8;
    if (r.len != want) {
        free(p);
        fprintf(stderr, "libxl: error: dirty bitmap of %u bytes, expected %zu\n", r.len, want);
        return -1;
    }
    memcpy(bm, p, want);
    free(p);
    return (long)r.u64[0];
}

/* ------------------------------------------------------------ fd I/O */

int xl_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int xl_read_all(int fd, void *buf, size_t len, int secs)
{
    char *p = buf;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (len) {
        if (secs >= 0) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            long left = (long)secs * 1000 - ((t.tv_sec - t0.tv_sec) * 1000 +
                                             (t.tv_nsec - t0.tv_nsec) / 1000000);
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0) {
                errno = pr == 0 ? ETIMEDOUT : errno;
                return -1;
            }
        }
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;  /* EOF: the peer went away or the file is short */
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------ writer */

int xl_stream_put(int fd, const char *kind, const void *buf, size_t len)
{
    char h[64];
    int n = snprintf(h, sizeof(h), "%s %zu\n", kind, len);
    return xl_write_all(fd, h, (size_t)n) < 0 || (len && xl_write_all(fd, buf, len) < 0) ? -1 : 0;
}

int xl_stream_put_header(int fd, const char *cfgtext)
{
    if (xl_write_all(fd, SAVE_MAGIC, strlen(SAVE_MAGIC)) < 0)
        return -1;
    return xl_stream_put(fd, "config", cfgtext, strlen(cfgtext));
}

int xl_stream_put_end(int fd)
{
    return xl_write_all(fd, "end\n", 4);
}

static int page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[PAGE];
    return memcmp(p, zero, PAGE) == 0;
}

/* Send the pages set in bm (NULL: every page that is not all zero — the
 * receiver's fresh memory is zero, so those need no copy). */
int xl_stream_put_pages(int fd, struct xl_ram *m, const unsigned long *bm, uint64_t *sent)
{
    static uint8_t rec[BATCH * (8 + PAGE)];
    uint64_t n = 0, total = 0;
    for (uint64_t g = 0; g <= m->pages; g++) {
        int take = g < m->pages &&
                   (bm ? (bm[g / 64] >> (g % 64)) & 1 : !page_is_zero(m->map + g * PAGE));
        if (take) {
            uint8_t *e = rec + n * (8 + PAGE);
            for (int b = 0; b < 8; b++)
                e[b] = (uint8_t)(g >> (8 * b));
            memcpy(e + 8, m->map + g * PAGE, PAGE);
            n++;
        }
        if (n && (n == BATCH || g == m->pages)) {
            char h[64];
            int hl = snprintf(h, sizeof(h), "pages %" PRIu64 "\n", n);
            if (xl_write_all(fd, h, (size_t)hl) < 0 || xl_write_all(fd, rec, n * (8 + PAGE)) < 0)
                return -1;
            total += n;
            n = 0;
        }
    }
    if (sent)
        *sent = total;
    return 0;
}

/* ------------------------------------------------------------ reader */

/* One record header: "kind len\n" or "end\n".  0, or -1 with a message. */
static int get_header(int fd, const char *what, char *kind, size_t kl, uint64_t *len, int secs)
{
    char line[64];
    size_t n = 0;
    for (;;) {
        if (n + 1 >= sizeof(line)) {
            fprintf(stderr, "libxl: error: %s: record header too long\n", what);
            return -1;
        }
        if (xl_read_all(fd, line + n, 1, secs) < 0) {
            fprintf(stderr, "libxl: error: %s: reading a record header: %s\n", what,
                    errno == ECONNRESET ? "unexpected end of stream" : strerror(errno));
            return -1;
        }
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    if (strcmp(line, "end") == 0) {
        snprintf(kind, kl, "end");
        *len = 0;
        return 0;
    }
    char *sp = strchr(line, ' '), *end;
    if (!sp || (size_t)(sp - line) >= kl)
        goto bad;
    errno = 0;
    unsigned long long v = strtoull(sp + 1, &end, 10);
    if (errno || *end || end == sp + 1)
        goto bad;
    memcpy(kind, line, (size_t)(sp - line));
    kind[sp - line] = '\0';
    *len = v;
    return 0;
bad:
    fprintf(stderr, "libxl: error: %s: malformed record header '%s'\n", what, line);
    return -1;
}

int xl_stream_get_config(int fd, const char *what, char **cfgtext, int secs)
{
    char magic[sizeof(SAVE_MAGIC) - 1];
    if (xl_read_all(fd, magic, sizeof(magic), secs) < 0 ||
        memcmp(magic, SAVE_MAGIC, sizeof(magic)) != 0) {
        fprintf(stderr, "libxl: error: %s: not a xensim xl save stream (version 2) or truncated\n",
                what);
        return -1;
    }
    char kind[16];
    uint64_t len;
    if (get_header(fd, what, kind, sizeof(kind), &len, secs) < 0)
        return -1;
    if (strcmp(kind, "config") != 0 || len > MAX_BLOB) {
        fprintf(stderr, "libxl: error: %s: no config record at the start\n", what);
        return -1;
    }
    char *c = malloc(len + 1);
    if (!c || xl_read_all(fd, c, len, secs) < 0) {
        fprintf(stderr, "libxl: error: %s: reading the config: %s\n", what,
                c ? strerror(errno) : "out of memory");
        free(c);
        return -1;
    }
    c[len] = '\0';
    if (strlen(c) != len) {
        free(c);
        fprintf(stderr, "libxl: error: %s: config contains a NUL byte\n", what);
        return -1;
    }
    *cfgtext = c;
    return 0;
}

int xl_stream_load(int fd, const char *what, unsigned domid, char **blob, size_t *bloblen,
                   int secs)
{
    struct xl_ram m;
    if (xl_ram_open(&m, domid) < 0)
        return -1;
    *blob = NULL;
    int rc = -1;
    for (;;) {
        char kind[16];
        uint64_t len;
        if (get_header(fd, what, kind, sizeof(kind), &len, secs) < 0)
            break;
        if (strcmp(kind, "end") == 0) {
            if (!*blob)
                fprintf(stderr, "libxl: error: %s: no emulator record before the end\n", what);
            else
                rc = 0;
            break;
        }
        if (strcmp(kind, "pages") == 0) {
            if (len > BATCH) {
                fprintf(stderr, "libxl: error: %s: page batch of %" PRIu64 " (max %u)\n",
                        what, len, BATCH);
                break;
            }
            uint64_t i = 0;
            for (; i < len; i++) {
                uint8_t g8[8];
                if (xl_read_all(fd, g8, 8, secs) < 0)
                    break;
                uint64_t g = 0;
                for (int b = 0; b < 8; b++)
                    g |= (uint64_t)g8[b] << (8 * b);
                if (g >= m.pages) {
                    fprintf(stderr, "libxl: error: %s: page %#" PRIx64 " beyond the domain's "
                            "%" PRIu64 " pages\n", what, g, m.pages);
                    break;
                }
                if (xl_read_all(fd, m.map + g * PAGE, PAGE, secs) < 0)
                    break;
            }
            if (i < len) {
                if (errno)
                    fprintf(stderr, "libxl: error: %s: reading guest memory: %s\n", what,
                            errno == ECONNRESET ? "unexpected end of stream" : strerror(errno));
                break;
            }
        } else if (strcmp(kind, "emulator") == 0 && !*blob && len <= MAX_BLOB) {
            *blob = malloc(len ? len : 1);
            if (!*blob || xl_read_all(fd, *blob, len, secs) < 0) {
                fprintf(stderr, "libxl: error: %s: reading the emulator context: %s\n", what,
                        *blob ? strerror(errno) : "out of memory");
                break;
            }
            *bloblen = len;
        } else {
            fprintf(stderr, "libxl: error: %s: unexpected record '%s' (%" PRIu64 " bytes)\n",
                    what, kind, len);
            break;
        }
    }
    xl_ram_close(&m);
    if (rc < 0) {
        free(*blob);
        *blob = NULL;
    }
    return rc;
}
