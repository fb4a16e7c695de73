/*
 * Injection rules (blk_inject.h): `;`-separated rules of space-separated
 * words, e.g. "op=write errno=ENOSPC sectors=0-2047 once; op=read delay=1000ms".
 * Parsing is strict, every error names the rule it is in.
 */
#include "blk_inject.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULE_MAX_WORDS 16
#define DELAY_MAX_MS 600000u

static const struct {
    const char *name;
    int err;
} errno_names[] = {
    { "EIO", EIO },         { "ENOSPC", ENOSPC },     { "EROFS", EROFS },
    { "EPERM", EPERM },     { "EACCES", EACCES },     { "EINVAL", EINVAL },
    { "ENOMEM", ENOMEM },   { "EBUSY", EBUSY },       { "EAGAIN", EAGAIN },
    { "ETIMEDOUT", ETIMEDOUT }, { "ENXIO", ENXIO },   { "ENODEV", ENODEV },
    { "EFBIG", EFBIG },     { "EDQUOT", EDQUOT },     { "ENOTSUP", ENOTSUP },
    { "ENOMEDIUM", ENOMEDIUM }, { "ECANCELED", ECANCELED },
};

static const char *const op_names[] = { "read", "write", "flush" };

static int rule_fail(char *err, size_t errlen, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rule_fail(char *err, size_t errlen, const char *rule, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "injection rule '%s': ", rule);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A whole decimal number, no sign, no overflow. */
static bool parse_u64(const char *s, const char *end, uint64_t *out)
{
    if (s == end)
        return false;
    uint64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static int parse_word(dm_blk_rule *r, const char *w, const char *rule, bool *has_op,
                      char *err, size_t errlen)
{
    const char *eq = strchr(w, '=');
    if (!eq) {
        if (strcmp(w, "once") == 0 || strcmp(w, "always") == 0) {
            r->once = w[0] == 'o';
            return 0;
        }
        return rule_fail(err, errlen, rule, "unknown word '%s' (known: op=, errno=, sectors=, "
                         "delay=, once, always)", w);
    }
    size_t klen = (size_t)(eq - w);
    const char *v = eq + 1, *vend = v + strlen(v);
    if (klen == 2 && strncmp(w, "op", 2) == 0) {
        if (*has_op)
            return rule_fail(err, errlen, rule, "op= is given twice");
        *has_op = true;
        if (strcmp(v, "any") == 0) {
            r->ops = 7;
            return 0;
        }
        for (unsigned i = 0; i < 3; i++)
            if (strcmp(v, op_names[i]) == 0) {
                r->ops = 1u << i;
                return 0;
            }
        return rule_fail(err, errlen, rule, "bad op '%s' (one of: read, write, flush, any)", v);
    }
    if (klen == 5 && strncmp(w, "errno", 5) == 0) {
        if (r->err)
            return rule_fail(err, errlen, rule, "errno= is given twice");
        for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
            if (strcmp(v, errno_names[i].name) == 0) {
                r->err = errno_names[i].err;
                return 0;
            }
        return rule_fail(err, errlen, rule, "unknown errno '%s' (a name such as EIO, ENOSPC, "
                         "EROFS, EACCES, ETIMEDOUT)", v);
    }
    if (klen == 7 && strncmp(w, "sectors", 7) == 0) {
        if (r->has_range)
            return rule_fail(err, errlen, rule, "sectors= is given twice");
        const char *dash = strchr(v, '-');
        bool ok = dash ? parse_u64(v, dash, &r->first) && parse_u64(dash + 1, vend, &r->last)
                       : parse_u64(v, vend, &r->first);
        if (!dash)
            r->last = r->first;
        if (!ok || r->last < r->first)
            return rule_fail(err, errlen, rule, "bad sectors '%s' (FIRST or FIRST-LAST, "
                             "inclusive, FIRST <= LAST)", v);
        r->has_range = true;
        return 0;
    }
    if (klen == 5 && strncmp(w, "delay", 5) == 0) {
        if (r->delay_ms)
            return rule_fail(err, errlen, rule, "delay= is given twice");
        uint64_t n = 0, scale = 1;
        const char *num_end = vend;
        if (vend - v > 2 && strcmp(vend - 2, "ms") == 0)
            num_end = vend - 2;
        else if (vend - v > 1 && vend[-1] == 's') {
            num_end = vend - 1;
            scale = 1000;
        }
        if (!parse_u64(v, num_end, &n) || n == 0 || n > DELAY_MAX_MS / scale)
            return rule_fail(err, errlen, rule, "bad delay '%s' (milliseconds: N, Nms or Ns, "
                             "1 ms to %u s)", v, DELAY_MAX_MS / 1000);
        r->delay_ms = (uint32_t)(n * scale);
        return 0;
    }
    return rule_fail(err, errlen, rule, "unknown key '%.*s' (known: op, errno, sectors, delay)",
                     (int)klen, w);
}

/* One rule: `text` is NUL-terminated and trimmed by the caller. */
static int parse_rule(char *text, dm_blk_rule *r, char *err, size_t errlen)
{
    char shown[128];
    snprintf(shown, sizeof(shown), "%s", text);
    memset(r, 0, sizeof(*r));
    r->ops = 7;
    bool has_op = false;
    unsigned words = 0;
    for (char *save = NULL, *w = strtok_r(text, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (++words > RULE_MAX_WORDS)
            return rule_fail(err, errlen, shown, "more than %d words", RULE_MAX_WORDS);
        int rc = parse_word(r, w, shown, &has_op, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (!r->err && !r->delay_ms)
        return rule_fail(err, errlen, shown, "does nothing (give errno= and/or delay=)");
    if (r->has_range && r->ops == (1u << DM_BLK_FLUSH))
        return rule_fail(err, errlen, shown, "sectors= cannot apply to op=flush (a flush has "
                         "no sectors)");
    return 0;
}

int dm_blk_rules_parse(const char *text, dm_blk_rules *out, char *err, size_t errlen)
{
    dm_blk_rules rs = { 0 };
    if (!text || !*text) {
        *out = rs;
        return 0;
    }
    char *copy = strdup(text);
    if (!copy) {
        snprintf(err, errlen, "out of memory parsing injection rules");
        return -ENOMEM;
    }
    int rc = 0;
    for (char *save = NULL, *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            s[--n] = 0;
        if (!n)
            continue;
        dm_blk_rule *v = realloc(rs.v, (rs.n + 1) * sizeof(*v));
        if (!v) {
            snprintf(err, errlen, "out of memory parsing injection rules");
            rc = -ENOMEM;
            break;
        }
        rs.v = v;
        rc = parse_rule(s, &rs.v[rs.n], err, errlen);
        if (rc < 0)
            break;
        rs.n++;
    }
    free(copy);
    if (rc < 0) {
        free(rs.v);
        return rc;
    }
    *out = rs;
    return 0;
}

void dm_blk_rules_free(dm_blk_rules *r)
{
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

bool dm_blk_rules_match(dm_blk_rules *r, dm_blk_op op, uint64_t offset, size_t len,
                        dm_blk_fault *out)
{
    uint64_t first = offset / DM_BLK_SECTOR;
    uint64_t last = first + (len ? (len - 1) / DM_BLK_SECTOR : 0);
    for (size_t i = 0; i < r->n; i++) {
        dm_blk_rule *x = &r->v[i];
        if (x->spent || !(x->ops & (1u << op)))
            continue;
        if (x->has_range && (op == DM_BLK_FLUSH || last < x->first || first > x->last))
            continue;
        if (x->once)
            x->spent = true;
        out->err = x->err;
        out->delay_ms = x->delay_ms;
        return true;
    }
    return false;
}

int dm_blk_inject_check(const char *rules, char *err, size_t errlen)
{
    dm_blk_rules rs;
    int rc = dm_blk_rules_parse(rules, &rs, err, errlen);
    if (rc == 0)
        dm_blk_rules_free(&rs);
    return rc;
}
