/* xs_persist.c: saving and loading the tree (<rundir>/xenstored/tree).
 *
 * Format (host-endian, like the wire): "XSIMTREE", u32 version = 1,
 * u32 record count; per node (pre-order, parents first): u32 path length,
 * u32 value length, u32 permission count, the path, the value, then
 * (u32 domid, u32 perm bits) per entry; finally a CRC-32 of all preceding
 * bytes.  Saving writes a temporary file, fsyncs it and renames it over
 * the old one, so a crash leaves either the old or the new tree.  A file
 * that fails any check is refused as a whole, naming what is wrong. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xs_internal.h"
#include "xsim_log.h"

#define MAGIC "XSIMTREE"
#define VERSION 1u

static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

struct wbuf {
    unsigned char *p;
    size_t len, cap;
    uint32_t count;
    int err;
};

static void put(struct wbuf *b, const void *data, size_t len)
{
    if (b->err)
        return;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        unsigned char *n = realloc(b->p, cap);
        if (!n) {
            b->err = ENOMEM;
            return;
        }
        b->p = n;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void put32(struct wbuf *b, uint32_t v)
{
    put(b, &v, sizeof(v));
}

static int add_node(void *arg, const char *path, const char *val, size_t len,
                    const struct xs_perm *perms, unsigned nperms)
{
    struct wbuf *b = arg;
    put32(b, (uint32_t)strlen(path));
    put32(b, (uint32_t)len);
    put32(b, nperms);
    put(b, path, strlen(path));
    put(b, val, len);
    for (unsigned i = 0; i < nperms; i++) {
        put32(b, perms[i].domid);
        put32(b, perms[i].perms);
    }
    b->count++;
    return b->err;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int xs_persist_save(struct xs_store *st, const char *path)
{
    struct wbuf b = { 0 };
    put(&b, MAGIC, 8);
    put32(&b, VERSION);
    put32(&b, 0);  /* count, patched below */
    int e = xs_store_visit(st, add_node, &b);
    if (!e)
        e = b.err;
    if (e) {
        xsim_err("xenstored: saving the tree: %s", strerror(e));
        free(b.p);
        return e;
    }
    memcpy(b.p + 12, &b.count, 4);
    uint32_t crc = crc32_update(0, b.p, b.len);
    put32(&b, crc);
    if (b.err) {
        free(b.p);
        return b.err;
    }

    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
        xsim_err("xenstored: saving the tree: cannot create %s: %s", tmp, strerror(e));
        free(b.p);
        return e;
    }
    e = write_all(fd, b.p, b.len);
    free(b.p);
    if (!e && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e) {
        xsim_err("xenstored: saving the tree to %s: %s", path, strerror(e));
        unlink(tmp);
        return e;
    }
    /* Make the rename itself durable. */
    char dir[400];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int bad(const char *path, const char *what, size_t off)
{
    xsim_err("xenstored: saved tree %s is unusable: %s (at byte %zu); "
             "remove it or run without --persist",
             path, what, off);
    return EINVAL;
}

int xs_persist_load(struct xs_store *st, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return ENOENT;
        int e = errno;
        xsim_err("xenstored: cannot open saved tree %s: %s", path, strerror(e));
        return e;
    }
    unsigned char *p = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > (size_t)256 << 20) {
                close(fd);
                free(p);
                return bad(path, "larger than 256 MiB", len);
            }
            unsigned char *n = realloc(p, cap);
            if (!n) {
                close(fd);
                free(p);
                return ENOMEM;
            }
            p = n;
        }
        ssize_t r = read(fd, p + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            free(p);
            xsim_err("xenstored: reading saved tree %s: %s", path, strerror(e));
            return e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);

    int e = 0;
    uint32_t v32, count, crc;
    size_t off = 0;
    struct xs_perm *perms = NULL;
    char *name = NULL;
    if (len < 20 || memcmp(p, MAGIC, 8) != 0) {
        e = bad(path, "not an xensim tree file (wrong magic or too short)", 0);
        goto out;
    }
    memcpy(&v32, p + 8, 4);
    if (v32 != VERSION) {
        e = bad(path, "unsupported format version", 8);
        goto out;
    }
    memcpy(&crc, p + len - 4, 4);
    if (crc32_update(0, p, len - 4) != crc) {
        e = bad(path, "checksum mismatch (truncated or corrupted)", len - 4);
        goto out;
    }
    memcpy(&count, p + 12, 4);
    off = 16;
    size_t end = len - 4;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t plen, vlen, np;
        if (end - off < 12) {
            e = bad(path, "record header past the end", off);
            goto out;
        }
        memcpy(&plen, p + off, 4);
        memcpy(&vlen, p + off + 4, 4);
        memcpy(&np, p + off + 8, 4);
        off += 12;
        if (plen == 0 || plen > XENSTORE_ABS_PATH_MAX || vlen > XENSTORE_PAYLOAD_MAX ||
            np == 0 || np > XENSTORE_PAYLOAD_MAX) {
            e = bad(path, "record with an out-of-range path, value or permission count", off - 12);
            goto out;
        }
        if (end - off < (size_t)plen + vlen + (size_t)np * 8) {
            e = bad(path, "record body past the end", off);
            goto out;
        }
        name = strndup((const char *)p + off, plen);
        perms = calloc(np, sizeof(*perms));
        if (!name || !perms) {
            e = ENOMEM;
            goto out;
        }
        char canon[XS_PATH_BUF];
        bool rel;
        if (strlen(name) != plen ||
            xs_path_canonical(&xs_caller_dom0, name, true, canon, &rel) != 0 || rel ||
            strcmp(canon, name) != 0) {
            e = bad(path, "record with an invalid node path", off);
            goto out;
        }
        const unsigned char *vp = p + off + plen;
        const unsigned char *pp = vp + vlen;
        for (uint32_t k = 0; k < np; k++) {
            memcpy(&perms[k].domid, pp + 8 * k, 4);
            memcpy(&perms[k].perms, pp + 8 * k + 4, 4);
            if (perms[k].domid > XS_DOMID_MAX || perms[k].perms > 3) {
                e = bad(path, "record with an invalid permission", off);
                goto out;
            }
        }
        e = xs_store_load_node(st, name, vp, vlen, perms, np);
        if (e) {
            xsim_err("xenstored: loading %s from %s: %s", name, path, strerror(e));
            goto out;
        }
        off += (size_t)plen + vlen + (size_t)np * 8;
        free(name);
        free(perms);
        name = NULL;
        perms = NULL;
    }
    if (off != end)
        e = bad(path, "trailing bytes after the last record", off);
out:
    free(name);
    free(perms);
    free(p);
    return e;
}
