/*
 * Rangesets as Xen keeps them for ioreq servers: inclusive [s, e] ranges,
 * merged when they touch, at most HV_MAX_RANGES of them (adding beyond that
 * is -ENOSPC as with rangeset_limit()).  Removal may split a range.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hv_internal.h"

static int reserve(struct hv_rangeset *rs, unsigned int n)
{
    if (n <= rs->cap)
        return 0;
    unsigned int cap = rs->cap ? rs->cap * 2 : 8;
    while (cap < n)
        cap *= 2;
    struct hv_range *r = realloc(rs->r, cap * sizeof(*r));
    if (!r)
        return -ENOMEM;
    rs->r = r;
    rs->cap = cap;
    return 0;
}

bool hv_rangeset_overlaps(const struct hv_rangeset *rs, uint64_t s, uint64_t e)
{
    for (unsigned int i = 0; i < rs->n; i++)
        if (rs->r[i].s <= e && s <= rs->r[i].e)
            return true;
    return false;
}

bool hv_rangeset_contains(const struct hv_rangeset *rs, uint64_t s, uint64_t e)
{
    for (unsigned int i = 0; i < rs->n; i++)
        if (rs->r[i].s <= s && e <= rs->r[i].e)
            return true;
    return false;
}

int hv_rangeset_add(struct hv_rangeset *rs, uint64_t s, uint64_t e)
{
    if (s > e)
        return -EINVAL;
    /* Find the insertion point, then merge with neighbours that overlap or
     * touch (e + 1 == next.s), as Xen's rangeset does. */
    unsigned int i = 0;
    while (i < rs->n && rs->r[i].e < s && rs->r[i].e + 1 != s)
        i++;
    unsigned int j = i;
    uint64_t ns = s, ne = e;
    while (j < rs->n && (rs->r[j].s <= e || (e != UINT64_MAX && rs->r[j].s == e + 1))) {
        if (rs->r[j].s < ns)
            ns = rs->r[j].s;
        if (rs->r[j].e > ne)
            ne = rs->r[j].e;
        j++;
    }
    if (j == i) {
        /* pure insertion */
        if (rs->n >= HV_MAX_RANGES)
            return -ENOSPC;
        int rc = reserve(rs, rs->n + 1);
        if (rc)
            return rc;
        memmove(&rs->r[i + 1], &rs->r[i], (rs->n - i) * sizeof(rs->r[0]));
        rs->r[i].s = ns;
        rs->r[i].e = ne;
        rs->n++;
        return 0;
    }
    rs->r[i].s = ns;
    rs->r[i].e = ne;
    memmove(&rs->r[i + 1], &rs->r[j], (rs->n - j) * sizeof(rs->r[0]));
    rs->n -= j - i - 1;
    return 0;
}

int hv_rangeset_remove(struct hv_rangeset *rs, uint64_t s, uint64_t e)
{
    if (s > e)
        return -EINVAL;
    for (unsigned int i = 0; i < rs->n; i++) {
        struct hv_range *r = &rs->r[i];
        if (!(r->s <= s && e <= r->e))
            continue;
        if (r->s == s && r->e == e) {
            memmove(r, r + 1, (rs->n - i - 1) * sizeof(*r));
            rs->n--;
        } else if (r->s == s) {
            r->s = e + 1;
        } else if (r->e == e) {
            r->e = s - 1;
        } else {
            if (rs->n >= HV_MAX_RANGES)
                return -ENOSPC;
            int rc = reserve(rs, rs->n + 1);
            if (rc)
                return rc;
            r = &rs->r[i];
            memmove(r + 1, r, (rs->n - i) * sizeof(*r));
            rs->r[i].e = s - 1;
            rs->r[i + 1].s = e + 1;
            rs->n++;
        }
        return 0;
    }
    return -ENOENT;
}

void hv_rangeset_free(struct hv_rangeset *rs)
{
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}
