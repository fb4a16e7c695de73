/*
 * I/O spaces (dm_io.h).  Ranges are kept sorted by base in an array of
 * pointers, so dispatch is a binary search and overlap checks look at the
 * two neighbours only.  Range counts are small (tens), registration rare.
 */
#include "dm_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_log.h"

#define NAME_LEN 48

struct dm_io_range {
    uint64_t base, len;
    const dm_io_ops *ops;
    void *opaque;
    char name[NAME_LEN];
    dm_io_range_stats stats;
};

typedef struct listener {
    dm_io_listener_fn fn;
    void *opaque;
} listener;

struct dm_io_space {
    dm_io_kind kind;
    uint64_t limit;               /* last valid address */
    dm_io_range **r;
    size_t n, cap;
    listener l[DM_IO_MAX_LISTENERS];
    size_t nl;
    dm_io_space_stats stats;
};

uint64_t dm_io_ones(unsigned size)
{
    return size >= 8 ? UINT64_MAX : (UINT64_C(1) << (size * 8)) - 1;
}

static bool size_ok(unsigned size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

const char *dm_io_kind_name(dm_io_kind kind)
{
    return kind == DM_IO_PORT ? "port" : "mmio";
}

dm_io_space *dm_io_space_new(dm_io_kind kind)
{
    if (kind != DM_IO_PORT && kind != DM_IO_MMIO) {
        errno = EINVAL;
        return NULL;
    }
    dm_io_space *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->kind = kind;
    s->limit = kind == DM_IO_PORT ? 0xffff : UINT64_MAX;
    return s;
}

void dm_io_space_free(dm_io_space *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->r[i]);
    free(s->r);
    free(s);
}

dm_io_kind dm_io_space_kind(const dm_io_space *s)
{
    return s->kind;
}

/* Index of the first range whose base is > addr. */
static size_t upper(const dm_io_space *s, uint64_t addr)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->r[mid]->base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Last address of a range; len >= 1 and base + len - 1 <= limit. */
static uint64_t last(const dm_io_range *r)
{
    return r->base + (r->len - 1);
}

dm_io_range *dm_io_find(const dm_io_space *s, uint64_t addr)
{
    size_t i = upper(s, addr);
    if (i == 0)
        return NULL;
    dm_io_range *r = s->r[i - 1];
    return addr <= last(r) ? r : NULL;
}

size_t dm_io_count(const dm_io_space *s)
{
    return s->n;
}

/* ------------------------------------------------------------ listeners */

int dm_io_listener_add(dm_io_space *s, dm_io_listener_fn fn, void *opaque, bool replay)
{
    if (!s || !fn)
        return -EINVAL;
    if (s->nl == DM_IO_MAX_LISTENERS)
        return -ENOSPC;
    if (replay) {
        for (size_t i = 0; i < s->n; i++) {
            dm_io_range *r = s->r[i];
            int rc = fn(opaque, s->kind, true, r->base, r->len, r->name);
            if (rc < 0) {
                dm_err("%s space: listener refused existing range %s [%#llx, +%#llx): %s",
                       dm_io_kind_name(s->kind), r->name, (unsigned long long)r->base,
                       (unsigned long long)r->len, strerror(-rc));
                /* Undo the replay so the listener's view stays consistent. */
                while (i-- > 0)
                    fn(opaque, s->kind, false, s->r[i]->base, s->r[i]->len, s->r[i]->name);
                return rc;
            }
        }
    }
    s->l[s->nl++] = (listener){ fn, opaque };
    return 0;
}

int dm_io_listener_del(dm_io_space *s, dm_io_listener_fn fn, void *opaque)
{
    for (size_t i = 0; s && i < s->nl; i++) {
        if (s->l[i].fn == fn && s->l[i].opaque == opaque) {
            memmove(&s->l[i], &s->l[i + 1], (s->nl - i - 1) * sizeof(listener));
            s->nl--;
            return 0;
        }
    }
    return -ENOENT;
}

/* Tells listeners [0, upto) that r goes away. */
static void tell_removed(dm_io_space *s, dm_io_range *r, size_t upto)
{
    for (size_t i = upto; i-- > 0;) {
        int rc = s->l[i].fn(s->l[i].opaque, s->kind, false, r->base, r->len, r->name);
        if (rc < 0)
            dm_warn("%s space: listener failed to drop range %s [%#llx, +%#llx): %s",
                    dm_io_kind_name(s->kind), r->name, (unsigned long long)r->base,
                    (unsigned long long)r->len, strerror(-rc));
    }
}

/* --------------------------------------------------------------- ranges */

static void remove_at(dm_io_space *s, size_t i)
{
    memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(dm_io_range *));
    s->n--;
}

int dm_io_register(dm_io_space *s, const char *name, uint64_t base, uint64_t len,
                   const dm_io_ops *ops, void *opaque, dm_io_range **out)
{
    if (out)
        *out = NULL;
    if (!s)
        return -EINVAL;
    const char *kn = dm_io_kind_name(s->kind);
    if (!name)
        name = "?";
    if (!ops || !ops->read || !ops->write) {
        dm_err("%s space: range %s has no read/write callbacks", kn, name);
        return -EINVAL;
    }
    if (len == 0 || base > s->limit || len - 1 > s->limit - base) {
        dm_err("%s space: range %s [%#llx, +%#llx) is empty or beyond the space's end %#llx", kn,
               name, (unsigned long long)base, (unsigned long long)len,
               (unsigned long long)s->limit);
        return -EINVAL;
    }
    uint64_t end = base + (len - 1);
    size_t i = upper(s, base);
    /* Only the neighbours can overlap: the one starting at or below base,
     * and the one starting right after it. */
    dm_io_range *clash = NULL;
    if (i > 0 && last(s->r[i - 1]) >= base)
        clash = s->r[i - 1];
    else if (i < s->n && s->r[i]->base <= end)
        clash = s->r[i];
    if (clash) {
        dm_err("%s space: range %s [%#llx-%#llx] overlaps %s [%#llx-%#llx]", kn, name,
               (unsigned long long)base, (unsigned long long)end, clash->name,
               (unsigned long long)clash->base, (unsigned long long)last(clash));
        return -EEXIST;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        dm_io_range **nr = realloc(s->r, nc * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        s->r = nr;
        s->cap = nc;
    }
    dm_io_range *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->base = base;
    r->len = len;
    r->ops = ops;
    r->opaque = opaque;
    snprintf(r->name, sizeof(r->name), "%s", name);
    memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(dm_io_range *));
    s->r[i] = r;
    s->n++;

    for (size_t k = 0; k < s->nl; k++) {
        int rc = s->l[k].fn(s->l[k].opaque, s->kind, true, base, len, r->name);
        if (rc < 0) {
            dm_err("%s space: range %s [%#llx-%#llx] refused by a listener: %s", kn, r->name,
                   (unsigned long long)base, (unsigned long long)end, strerror(-rc));
            tell_removed(s, r, k);
            remove_at(s, i);
            free(r);
            return rc;
        }
    }
    if (out)
        *out = r;
    return 0;
}

void dm_io_unregister(dm_io_space *s, dm_io_range *r)
{
    if (!s || !r)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i] == r) {
            tell_removed(s, r, s->nl);
            remove_at(s, i);
            free(r);
            return;
        }
    }
    dm_warn("%s space: unregister of a range that is not registered (%s)",
            dm_io_kind_name(s->kind), r->name);
}

uint64_t dm_io_range_base(const dm_io_range *r)
{
    return r->base;
}

uint64_t dm_io_range_len(const dm_io_range *r)
{
    return r->len;
}

const char *dm_io_range_name(const dm_io_range *r)
{
    return r->name;
}

void dm_io_range_get_stats(const dm_io_range *r, dm_io_range_stats *out)
{
    *out = r->stats;
}

/* ------------------------------------------------------------- dispatch */

/* The range that fully contains [addr, addr + size) in *out: 0; -EINVAL
 * for a bad size or an access wrapping the space; -ENOENT when unclaimed. */
static int claim(dm_io_space *s, uint64_t addr, unsigned size, bool write, dm_io_range **out)
{
    *out = NULL;
    if (!size_ok(size) || addr > s->limit || size - 1 > s->limit - addr) {
        s->stats.bad_size++;
        return -EINVAL;
    }
    dm_io_range *r = dm_io_find(s, addr);
    if (!r || addr + (size - 1) > last(r)) {
        if (write)
            s->stats.unclaimed_writes++;
        else
            s->stats.unclaimed_reads++;
        return -ENOENT;
    }
    *out = r;
    return 0;
}

static bool size_accepted(const dm_io_range *r, unsigned size)
{
    unsigned sizes = r->ops->sizes ? r->ops->sizes : DM_IO_SIZES_ALL;
    return (sizes & (1u << size)) != 0;
}

int dm_io_read(dm_io_space *s, uint64_t addr, unsigned size, uint64_t *value)
{
    dm_io_range *r;
    int rc = claim(s, addr, size, false, &r);
    if (rc < 0) {
        *value = size_ok(size) ? dm_io_ones(size) : UINT64_MAX;
        return rc;
    }
    if (!size_accepted(r, size)) {
        r->stats.rejected++;
        *value = dm_io_ones(size);
        return 0;
    }
    r->stats.reads++;
    *value = r->ops->read(r->opaque, addr - r->base, size) & dm_io_ones(size);
    return 0;
}

int dm_io_write(dm_io_space *s, uint64_t addr, unsigned size, uint64_t value)
{
    dm_io_range *r;
    int rc = claim(s, addr, size, true, &r);
    if (rc < 0)
        return rc;
    if (!size_accepted(r, size)) {
        r->stats.rejected++;
        return 0;
    }
    r->stats.writes++;
    /* Counted before the call: the callback may unregister r. */
    r->ops->write(r->opaque, addr - r->base, value & dm_io_ones(size), size);
    return 0;
}

void dm_io_get_stats(const dm_io_space *s, dm_io_space_stats *out)
{
    *out = s->stats;
}
