/*
 * The device-state file (dm_statefile.h): serialisation, atomic writing,
 * and the two-phase loader.
 */
#include "dm_statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm_log.h"

#define SECT_MARKER 0x54434553u     /* "SECT" little-endian */
#define END_MARKER 0x2e444e45u      /* "END." */
#define HEADER_LEN 16u
#define SECT_FIXED 22u              /* marker, id_len, instance, version, len, crc (without id) */
#define END_LEN 12u

/* ----------------------------------------------------------------- CRC */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t dm_crc32(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint32_t *table = crc_table;
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ------------------------------------------------------------- writer */

struct dm_state_wr {
    uint8_t *buf;
    size_t len, cap;
    bool oom;                /* sticky: set when the buffer could not grow */
};

static void wr_bytes(dm_state_wr *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t nc = w->cap ? w->cap : 4096;
        while (nc < w->len + n)
            nc *= 2;
        uint8_t *nb = realloc(w->buf, nc);
        if (!nb) {
            w->oom = true;
            return;
        }
        w->buf = nb;
        w->cap = nc;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void le_put(dm_state_wr *w, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    wr_bytes(w, b, n);
}

void dm_state_put_u8(dm_state_wr *w, uint8_t v) { le_put(w, v, 1); }
void dm_state_put_u16(dm_state_wr *w, uint16_t v) { le_put(w, v, 2); }
void dm_state_put_u32(dm_state_wr *w, uint32_t v) { le_put(w, v, 4); }
void dm_state_put_u64(dm_state_wr *w, uint64_t v) { le_put(w, v, 8); }
void dm_state_put_bytes(dm_state_wr *w, const void *p, size_t n) { wr_bytes(w, p, n); }

/* Overwrites 4 bytes at off (a length or CRC filled in after the payload). */
static void wr_patch_u32(dm_state_wr *w, size_t off, uint32_t v)
{
    if (w->oom)
        return;
    for (unsigned i = 0; i < 4; i++)
        w->buf[off + i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------- reader */

struct dm_state_rd {
    const uint8_t *p;
    size_t len, pos;
    bool failed;
    char msg[200];
};

void dm_state_fail(dm_state_rd *r, const char *fmt, ...)
{
    if (r->failed)
        return;                 /* the first failure is the one reported */
    r->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

static uint64_t le_get(dm_state_rd *r, unsigned n, const char *field)
{
    if (r->failed)
        return 0;
    if (r->len - r->pos < n) {
        dm_state_fail(r, "field '%s': section truncated (%zu bytes left, %u needed)", field,
                      r->len - r->pos, n);
        return 0;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += n;
    return v;
}

uint8_t dm_state_get_u8(dm_state_rd *r, const char *field) { return (uint8_t)le_get(r, 1, field); }
uint16_t dm_state_get_u16(dm_state_rd *r, const char *field) { return (uint16_t)le_get(r, 2, field); }
uint32_t dm_state_get_u32(dm_state_rd *r, const char *field) { return (uint32_t)le_get(r, 4, field); }
uint64_t dm_state_get_u64(dm_state_rd *r, const char *field) { return le_get(r, 8, field); }

void dm_state_get_bytes(dm_state_rd *r, void *out, size_t n, const char *field)
{
    if (!r->failed && r->len - r->pos < n)
        dm_state_fail(r, "field '%s': section truncated (%zu bytes left, %zu needed)", field,
                      r->len - r->pos, n);
    if (r->failed) {
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
}

size_t dm_state_remaining(const dm_state_rd *r)
{
    return r->len - r->pos;
}

bool dm_state_check(dm_state_rd *r, bool ok, const char *field, uint64_t value, const char *why)
{
    if (r->failed)
        return false;
    if (!ok)
        dm_state_fail(r, "field '%s' value %llu (%#llx) %s", field, (unsigned long long)value,
                      (unsigned long long)value, why);
    return ok;
}

bool dm_state_failed(const dm_state_rd *r)
{
    return r->failed;
}

/* ------------------------------------------------------------ registry */

typedef struct entry {
    char id[DM_STATE_ID_MAX + 1];
    uint32_t instance, version;
    dm_state_save_fn save;
    dm_state_validate_fn validate;
    dm_state_load_fn load;
    void *opaque;
} entry;

struct dm_state_reg {
    entry *e;
    size_t n, cap;
};

dm_state_reg *dm_state_reg_new(void)
{
    return calloc(1, sizeof(dm_state_reg));
}

void dm_state_reg_free(dm_state_reg *reg)
{
    if (!reg)
        return;
    free(reg->e);
    free(reg);
}

static bool id_ok(const char *id, size_t len)
{
    if (len == 0 || len > DM_STATE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (id[i] < 0x21 || id[i] > 0x7e)
            return false;
    return true;
}

static entry *find(dm_state_reg *reg, const char *id, size_t idlen, uint32_t instance)
{
    for (size_t i = 0; i < reg->n; i++)
        if (reg->e[i].instance == instance && strlen(reg->e[i].id) == idlen &&
            memcmp(reg->e[i].id, id, idlen) == 0)
            return &reg->e[i];
    return NULL;
}

int dm_state_register(dm_state_reg *reg, const char *id, uint32_t instance, uint32_t version,
                      dm_state_save_fn save, dm_state_validate_fn validate,
                      dm_state_load_fn load, void *opaque)
{
    if (!reg || !id || !id_ok(id, strlen(id)) || version == 0 || !save || !validate || !load) {
        dm_err("state file: bad registration of section '%s' (id 1-%d printable characters, "
               "version >= 1, all three callbacks)", id ? id : "(null)", DM_STATE_ID_MAX);
        return -EINVAL;
    }
    if (find(reg, id, strlen(id), instance)) {
        dm_err("state file: section %s/%u registered twice", id, instance);
        return -EEXIST;
    }
    if (reg->n == reg->cap) {
        size_t nc = reg->cap ? reg->cap * 2 : 16;
        entry *ne = realloc(reg->e, nc * sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        reg->e = ne;
        reg->cap = nc;
    }
    entry *e = &reg->e[reg->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->instance = instance;
    e->version = version;
    e->save = save;
    e->validate = validate;
    e->load = load;
    e->opaque = opaque;
    return 0;
}

int dm_state_unregister(dm_state_reg *reg, const char *id, uint32_t instance)
{
    entry *e = reg && id ? find(reg, id, strlen(id), instance) : NULL;
    if (!e)
        return -ENOENT;
    size_t i = (size_t)(e - reg->e);
    memmove(&reg->e[i], &reg->e[i + 1], (reg->n - i - 1) * sizeof(entry));
    reg->n--;
    return 0;
}

/* ------------------------------------------------------------- saving */

int dm_state_save_mem(dm_state_reg *reg, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    dm_state_wr w = { 0 };
    wr_bytes(&w, DM_STATE_MAGIC, 8);
    le_put(&w, DM_STATE_FORMAT, 4);
    le_put(&w, 0, 4);
    for (size_t i = 0; i < reg->n; i++) {
        entry *e = &reg->e[i];
        size_t idlen = strlen(e->id);
        le_put(&w, SECT_MARKER, 4);
        le_put(&w, idlen, 2);
        wr_bytes(&w, e->id, idlen);
        le_put(&w, e->instance, 4);
        le_put(&w, e->version, 4);
        size_t len_off = w.len;
        le_put(&w, 0, 4);               /* length, patched below */
        le_put(&w, 0, 4);               /* CRC, patched below */
        size_t start = w.len;
        int rc = e->save(e->opaque, &w);
        if (rc < 0) {
            snprintf(err, errlen, "saving section %s/%u failed: %s", e->id, e->instance,
                     strerror(-rc));
            free(w.buf);
            return rc;
        }
        if (w.len - start > DM_STATE_MAX_SIZE)
            break;                      /* reported as too big below */
        wr_patch_u32(&w, len_off, (uint32_t)(w.len - start));
        if (!w.oom)
            wr_patch_u32(&w, len_off + 4, dm_crc32(0, w.buf + start, w.len - start));
    }
    le_put(&w, END_MARKER, 4);
    le_put(&w, reg->n, 4);
    if (!w.oom)
        le_put(&w, dm_crc32(0, w.buf, w.len), 4);
    if (w.oom) {
        snprintf(err, errlen, "out of memory building the state file");
        free(w.buf);
        return -ENOMEM;
    }
    if (w.len > DM_STATE_MAX_SIZE) {
        snprintf(err, errlen, "device state is %zu bytes, over the %u-byte limit", w.len,
                 DM_STATE_MAX_SIZE);
        free(w.buf);
        return -EFBIG;
    }
    *out = w.buf;
    *len = w.len;
    return 0;
}

/* A descriptor handed over by QMP may be non-blocking: wait for room, but
 * not forever (the reader is the toolstack, copying concurrently). */
#define WRITE_STALL_MS 30000

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pf = { .fd = fd, .events = POLLOUT };
                int r = poll(&pf, 1, WRITE_STALL_MS);
                if (r > 0)
                    continue;
                return r == 0 ? -ETIMEDOUT : -errno;
            }
            return -errno;
        }
        if (k == 0)
            return -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int dm_state_save_fd(dm_state_reg *reg, int fd, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    int rc = dm_state_save_mem(reg, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = write_all(fd, buf, len);
    free(buf);
    if (rc < 0) {
        snprintf(err, errlen, "writing the state to fd %d: %s", fd, strerror(-rc));
        return rc;
    }
    /* A pipe or socket cannot be synced; the reader's CRC check covers it. */
    if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS && errno != ENOTSUP) {
        rc = -errno;
        snprintf(err, errlen, "fsync of the state fd %d: %s", fd, strerror(-rc));
        return rc;
    }
    return 0;
}

int dm_state_save_path(dm_state_reg *reg, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if (!path || snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "state file path is missing or too long");
        return -ENAMETOOLONG;
    }
    uint8_t *buf;
    size_t len;
    int rc = dm_state_save_mem(reg, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(-rc));
        free(buf);
        return rc;
    }
    const char *step = "write";
    rc = write_all(fd, buf, len);
    free(buf);
    if (rc == 0 && fsync(fd) < 0)
        step = "fsync", rc = -errno;
    if (close(fd) < 0 && rc == 0)
        step = "close", rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        step = "rename", rc = -errno;
    if (rc < 0) {
        snprintf(err, errlen, "%s of %s failed: %s", step, tmp, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    /* The rename is durable only once the directory is synced. */
    char dirbuf[4096];
    snprintf(dirbuf, sizeof(dirbuf), "%s", path);
    const char *dir = dirname(dirbuf);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        rc = -errno;
        snprintf(err, errlen, "fsync of directory %s failed: %s", dir, strerror(-rc));
        if (dfd >= 0)
            close(dfd);
        return rc;
    }
    close(dfd);
    return 0;
}

/* ------------------------------------------------------------- loading */

typedef struct parsed {
    entry *e;
    uint32_t version;
    const uint8_t *payload;
    uint32_t len;
} parsed;

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Phase 1: structure, CRCs, registry match, and each device's validation.
 * Fills sec[] (room for reg->n entries). */
static int parse(dm_state_reg *reg, const uint8_t *buf, size_t len, parsed *sec, size_t *nsec,
                 char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "the state file is empty");
        return -EINVAL;
    }
    if (len >= 4 && memcmp(buf, "QEVM", 4) == 0) {
        snprintf(err, errlen, "this is a QEMU state file; rsdm and QEMU state files are not "
                              "interchangeable");
        return -EINVAL;
    }
    if (len < 8 || memcmp(buf, DM_STATE_MAGIC, 8) != 0) {
        if (len < 8 && memcmp(buf, DM_STATE_MAGIC, len) == 0)
            snprintf(err, errlen, "the state file is truncated (%zu bytes, inside the header)", len);
        else
            snprintf(err, errlen, "not an rsdm state file (magic %02x %02x %02x %02x ...)", buf[0],
                     len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0);
        return -EINVAL;
    }
    if (len < HEADER_LEN) {
        snprintf(err, errlen, "the state file is truncated (%zu bytes, inside the header)", len);
        return -EINVAL;
    }
    uint32_t fmt = rd32(buf + 8), flags = rd32(buf + 12);
    if (fmt != DM_STATE_FORMAT) {
        snprintf(err, errlen, "state file format version %u is not supported (this rsdm reads %u)",
                 fmt, DM_STATE_FORMAT);
        return -EINVAL;
    }
    if (flags != 0) {
        snprintf(err, errlen, "state file header flags %#x are unknown", flags);
        return -EINVAL;
    }
    size_t pos = HEADER_LEN, n = 0;
    for (;;) {
        if (len - pos < 4) {
            snprintf(err, errlen, "the state file is truncated at offset %zu (no end marker)", pos);
            return -EINVAL;
        }
        uint32_t marker = rd32(buf + pos);
        if (marker == END_MARKER)
            break;
        if (marker != SECT_MARKER) {
            snprintf(err, errlen, "corrupt state file: bad section marker %#x at offset %zu",
                     marker, pos);
            return -EINVAL;
        }
        if (len - pos < SECT_FIXED) {
            snprintf(err, errlen, "the state file is truncated at offset %zu (section header)", pos);
            return -EINVAL;
        }
        size_t idlen = (size_t)buf[pos + 4] | (size_t)buf[pos + 5] << 8;
        if (len - pos - SECT_FIXED < idlen) {
            snprintf(err, errlen, "the state file is truncated at offset %zu (section id)", pos);
            return -EINVAL;
        }
        const char *id = (const char *)buf + pos + 6;
        if (!id_ok(id, idlen)) {
            snprintf(err, errlen, "corrupt state file: bad section id (length %zu) at offset %zu",
                     idlen, pos);
            return -EINVAL;
        }
        const uint8_t *h = buf + pos + 6 + idlen;
        uint32_t instance = rd32(h), version = rd32(h + 4), plen = rd32(h + 8), crc = rd32(h + 12);
        size_t body = pos + SECT_FIXED + idlen;
        char name[DM_STATE_ID_MAX + 16];
        snprintf(name, sizeof(name), "%.*s/%u", (int)idlen, id, instance);
        if (len - body < plen) {
            snprintf(err, errlen, "the state file is truncated in section %s (%u bytes declared, "
                     "%zu present)", name, plen, len - body);
            return -EINVAL;
        }
        if (dm_crc32(0, buf + body, plen) != crc) {
            snprintf(err, errlen, "section %s is corrupt (CRC mismatch)", name);
            return -EINVAL;
        }
        entry *e = find(reg, id, idlen, instance);
        if (!e) {
            snprintf(err, errlen, "unknown section %s (no such device in this rsdm)", name);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            if (sec[i].e == e) {
                snprintf(err, errlen, "duplicate section %s", name);
                return -EINVAL;
            }
        }
        if (version == 0 || version > e->version) {
            snprintf(err, errlen, "section %s has version %u; this rsdm reads versions 1..%u",
                     name, version, e->version);
            return -EINVAL;
        }
        sec[n++] = (parsed){ e, version, buf + body, plen };
        pos = body + plen;
    }
    if (len - pos < END_LEN) {
        snprintf(err, errlen, "the state file is truncated at offset %zu (end marker)", pos);
        return -EINVAL;
    }
    uint32_t count = rd32(buf + pos + 4), crc = rd32(buf + pos + 8);
    if (dm_crc32(0, buf, pos + 8) != crc) {
        snprintf(err, errlen, "the state file is corrupt (whole-file CRC mismatch)");
        return -EINVAL;
    }
    if (count != n) {
        snprintf(err, errlen, "corrupt state file: end marker counts %u sections, file has %zu",
                 count, n);
        return -EINVAL;
    }
    if (len - pos > END_LEN) {
        snprintf(err, errlen, "%zu unexpected bytes after the end of the state file",
                 len - pos - END_LEN);
        return -EINVAL;
    }
    for (size_t i = 0; i < reg->n; i++) {
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = sec[k].e == &reg->e[i];
        if (!seen) {
            snprintf(err, errlen, "section %s/%u is missing from the state file", reg->e[i].id,
                     reg->e[i].instance);
            return -EINVAL;
        }
    }
    /* Every device checks its own fields before anything is applied. */
    for (size_t i = 0; i < n; i++) {
        dm_state_rd r = { .p = sec[i].payload, .len = sec[i].len };
        int rc = sec[i].e->validate(sec[i].e->opaque, sec[i].version, &r);
        if (rc < 0 || r.failed || r.pos != r.len) {
            if (!r.failed && rc >= 0)
                snprintf(r.msg, sizeof(r.msg), "%zu unexpected bytes at the end", r.len - r.pos);
            else if (!r.failed)
                snprintf(r.msg, sizeof(r.msg), "refused: %s", strerror(-rc));
            snprintf(err, errlen, "section %s/%u (version %u): %s", sec[i].e->id,
                     sec[i].e->instance, sec[i].version, r.msg);
            return -EINVAL;
        }
    }
    *nsec = n;
    return 0;
}

int dm_state_load_mem(dm_state_reg *reg, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    if (len > DM_STATE_MAX_SIZE) {
        snprintf(err, errlen, "the state file is %zu bytes, over the %u-byte limit", len,
                 DM_STATE_MAX_SIZE);
        return -EFBIG;
    }
    parsed *sec = calloc(reg->n ? reg->n : 1, sizeof(*sec));
    if (!sec) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    size_t n = 0;
    int rc = parse(reg, buf, len, sec, &n, err, errlen);
    /* Phase 2: everything validated; apply in the file's order. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        dm_state_rd r = { .p = sec[i].payload, .len = sec[i].len };
        sec[i].e->load(sec[i].e->opaque, sec[i].version, &r);
        if (r.failed)
            dm_err("state file: section %s/%u failed while applying after it validated: %s",
                   sec[i].e->id, sec[i].e->instance, r.msg);
    }
    free(sec);
    return rc;
}

int dm_state_load_fd(dm_state_reg *reg, int fd, char *err, size_t errlen)
{
    size_t cap = DM_STATE_MAX_SIZE + 1, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    while (len < cap) {
        ssize_t k = read(fd, buf + len, cap - len);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int rc = -errno;
            snprintf(err, errlen, "reading the state file: %s", strerror(-rc));
            free(buf);
            return rc;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    int rc = dm_state_load_mem(reg, buf, len, err, errlen);
    free(buf);
    return rc;
}

int dm_state_load_path(dm_state_reg *reg, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open state file %s: %s", path, strerror(-rc));
        return rc;
    }
    int rc = dm_state_load_fd(reg, fd, err, errlen);
    close(fd);
    return rc;
}
