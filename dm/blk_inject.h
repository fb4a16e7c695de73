/*
 * The block backend's injection rules (syntax in docs/block.md): parsed
 * from the `inject` string into a rule set that the workers consult, under
 * the backend's lock, when they take a request.  Internal to dm/blk*.c.
 */
#ifndef DM_BLK_INJECT_H
#define DM_BLK_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"

typedef struct dm_blk_rule {
    unsigned ops;            /* bit (1 << dm_blk_op) per operation it applies to */
    int err;                 /* positive errno to fail with, 0: none */
    bool has_range;
    uint64_t first, last;    /* inclusive sector range the request must overlap */
    uint32_t delay_ms;       /* sleep on the worker before the I/O */
    bool once;               /* fires on the first match only */
    bool spent;              /* a `once` rule that fired */
} dm_blk_rule;

typedef struct dm_blk_rules {
    dm_blk_rule *v;
    size_t n;
} dm_blk_rules;

/* What a matching rule does to one request. */
typedef struct dm_blk_fault {
    int err;                 /* positive errno, 0: do the I/O */
    uint32_t delay_ms;
} dm_blk_fault;

/* Parses `text` (NULL or empty: no rules) into `out`; -EINVAL with err
 * naming the rule and the reason, `out` untouched. */
int dm_blk_rules_parse(const char *text, dm_blk_rules *out, char *err, size_t errlen);
void dm_blk_rules_free(dm_blk_rules *r);
/* The first live rule matching the request decides (a `once` rule is spent
 * by it); false when none matches.  Caller holds the backend's lock. */
bool dm_blk_rules_match(dm_blk_rules *r, dm_blk_op op, uint64_t offset, size_t len,
                        dm_blk_fault *out);

#endif
