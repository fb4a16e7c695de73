/*
 * The config file parser (dm_config.h).  Line by line into a scratch copy
 * of the config, which replaces the caller's only when the whole text was
 * accepted.
 */
#include "dm_config.h"

#include "blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const err_action_names[] = { "report", "ignore", "enospc", "stop" };
static const char *const cache_names[] = { "writeback", "none", "unsafe" };

const char *dm_err_action_name(dm_err_action a)
{
    return (unsigned)a <= DM_ERR_STOP ? err_action_names[a] : "?";
}

const char *dm_cache_mode_name(dm_cache_mode m)
{
    return (unsigned)m <= DM_CACHE_UNSAFE ? cache_names[m] : "?";
}

void dm_config_init(dm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = DM_LOG_INFO;
}

static void disk_defaults(dm_config_disk *d, const char *name)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->rerror = DM_ERR_REPORT;
    d->werror = DM_ERR_ENOSPC;
    d->cache = DM_CACHE_WRITEBACK;
}

dm_config_disk dm_config_disk_get(const dm_config *cfg, const char *name)
{
    for (unsigned i = 0; i < cfg->ndisks; i++)
        if (strcmp(cfg->disks[i].name, name) == 0)
            return cfg->disks[i];
    dm_config_disk d;
    disk_defaults(&d, name ? name : "");
    return d;
}

/* ------------------------------------------------------------- parsing */

typedef struct parser {
    dm_config cfg;                /* scratch, copied out on success */
    const char *name;
    unsigned line;
    dm_config_disk *disk;         /* current [disk] section, NULL at top level */
    unsigned seen;                /* keys seen in the current section, one bit each */
    char *err;
    size_t errlen;
} parser;

static int fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%u: ", p->name, p->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < p->errlen)
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Trims in place; returns the start. */
static char *trim(char *s)
{
    while (is_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = 0;
    return s;
}

static bool is_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static int pick(parser *p, const char *key, const char *val, const char *const *names, size_t n,
                int *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(val, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    char list[128] = "";
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", names[i]);
    }
    return fail(p, "bad value '%s' for %s (one of: %s)", val, key, list);
}

static int section(parser *p, char *s)
{
    size_t n = strlen(s);
    if (s[n - 1] != ']')
        return fail(p, "section header without ']'");
    s[n - 1] = 0;
    char *body = trim(s + 1);
    if (strncmp(body, "disk", 4) != 0 || !is_space(body[4]))
        return fail(p, "unknown section '[%s]' (rsdm knows [disk NAME])", body);
    char *name = trim(body + 5);
    if (!is_name(name, sizeof(p->cfg.disks[0].name) - 1) || strchr(name, '-'))
        return fail(p, "bad disk name '%s' (the guest's device name, e.g. hda or sdb: "
                    "lowercase letters and digits, at most 15)", name);
    for (unsigned i = 0; i < p->cfg.ndisks; i++)
        if (strcmp(p->cfg.disks[i].name, name) == 0)
            return fail(p, "disk %s is configured twice (first at line %u)", name,
                        p->cfg.disks[i].line);
    if (p->cfg.ndisks == DM_CONFIG_MAX_DISKS)
        return fail(p, "more than %d disk sections", DM_CONFIG_MAX_DISKS);
    p->disk = &p->cfg.disks[p->cfg.ndisks++];
    disk_defaults(p->disk, name);
    p->disk->line = p->line;
    p->seen = 0;
    return 0;
}

/* Each key once per section: bit `bit` of p->seen. */
static int once(parser *p, const char *key, unsigned bit)
{
    if (p->seen & (1u << bit))
        return fail(p, "%s is set twice in %s%s%s", key, p->disk ? "[disk " : "the top level",
                    p->disk ? p->disk->name : "", p->disk ? "]" : "");
    p->seen |= 1u << bit;
    return 0;
}

static int top_key(parser *p, const char *key, const char *val)
{
    if (strcmp(key, "log-level") == 0) {
        if (once(p, key, 0) < 0)
            return -EINVAL;
        if (dm_log_level_from_name(val, &p->cfg.log_level) < 0)
            return fail(p, "bad value '%s' for log-level (one of: error, warning, info, debug)",
                        val);
        p->cfg.has_log_level = true;
        return 0;
    }
    if (strcmp(key, "save-dir") == 0) {
        if (once(p, key, 1) < 0)
            return -EINVAL;
        if (val[0] != '/')
            return fail(p, "save-dir must be an absolute path, not '%s'", val);
        if (strlen(val) >= sizeof(p->cfg.save_dir))
            return fail(p, "save-dir is longer than %zu bytes", sizeof(p->cfg.save_dir) - 1);
        snprintf(p->cfg.save_dir, sizeof(p->cfg.save_dir), "%s", val);
        p->cfg.has_save_dir = true;
        return 0;
    }
    return fail(p, "unknown key '%s' (the top level knows log-level, save-dir; disk settings "
                "go in a [disk NAME] section)", key);
}

/* `inject` may be given several times: the rules add up. */
static int add_inject(parser *p, const char *val)
{
    char why[256];
    if (dm_blk_inject_check(val, why, sizeof(why)) < 0)
        return fail(p, "%s", why);
    char *dst = p->disk->inject;
    size_t used = strlen(dst), need = strlen(val) + (used ? 2 : 0);
    if (used + need >= sizeof(p->disk->inject))
        return fail(p, "the inject rules of [disk %s] add up to more than %zu bytes",
                    p->disk->name, sizeof(p->disk->inject) - 1);
    snprintf(dst + used, sizeof(p->disk->inject) - used, "%s%s", used ? "; " : "", val);
    return 0;
}

static int disk_key(parser *p, const char *key, const char *val)
{
    int v;
    if (strcmp(key, "rerror") == 0) {
        if (once(p, key, 0) < 0 || pick(p, key, val, err_action_names, 4, &v) < 0)
            return -EINVAL;
        /* QEMU refuses it too: a read cannot run out of space. */
        if (v == DM_ERR_ENOSPC)
            return fail(p, "rerror = enospc is not allowed (enospc is for writes; use report, "
                        "ignore or stop)");
        p->disk->rerror = (dm_err_action)v;
        return 0;
    }
    if (strcmp(key, "werror") == 0) {
        if (once(p, key, 1) < 0 || pick(p, key, val, err_action_names, 4, &v) < 0)
            return -EINVAL;
        p->disk->werror = (dm_err_action)v;
        return 0;
    }
    if (strcmp(key, "cache") == 0) {
        if (once(p, key, 2) < 0 || pick(p, key, val, cache_names, 3, &v) < 0)
            return -EINVAL;
        p->disk->cache = (dm_cache_mode)v;
        return 0;
    }
    if (strcmp(key, "inject") == 0)
        return add_inject(p, val);
    return fail(p, "unknown key '%s' in [disk %s] (known: rerror, werror, cache, inject)", key,
                p->disk->name);
}

static int one_line(parser *p, char *raw)
{
    char *s = trim(raw);
    if (!*s || *s == '#')
        return 0;
    if (*s == '[')
        return section(p, s);
    char *eq = strchr(s, '=');
    if (!eq)
        return fail(p, "expected 'key = value' or '[disk NAME]', got '%.40s'", s);
    *eq = 0;
    char *key = trim(s), *val = trim(eq + 1);
    if (!is_name(key, 32))
        return fail(p, "bad key '%.40s'", key);
    if (!*val)
        return fail(p, "%s has no value", key);
    return p->disk ? disk_key(p, key, val) : top_key(p, key, val);
}

int dm_config_parse(dm_config *cfg, const char *text, size_t len, const char *name, char *err,
                    size_t errlen)
{
    parser p = { .cfg = *cfg, .name = name ? name : "config", .err = err, .errlen = errlen };
    char buf[DM_CONFIG_MAX_LINE + 2];
    size_t pos = 0;
    while (pos < len) {
        p.line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - pos;
        if (memchr(text + pos, 0, n))
            return fail(&p, "NUL byte in the file");
        if (n > DM_CONFIG_MAX_LINE)
            return fail(&p, "line longer than %d bytes", DM_CONFIG_MAX_LINE);
        memcpy(buf, text + pos, n);
        buf[n] = 0;
        if (one_line(&p, buf) < 0)
            return -EINVAL;
        pos = end + 1;
    }
    *cfg = p.cfg;
    return 0;
}

int dm_config_load(dm_config *cfg, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(e));
        return -e;
    }
    char *buf = malloc(DM_CONFIG_MAX_SIZE + 1);
    if (!buf) {
        close(fd);
        snprintf(err, errlen, "out of memory reading %s", path);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    while (len <= DM_CONFIG_MAX_SIZE) {
        ssize_t k = read(fd, buf + len, DM_CONFIG_MAX_SIZE + 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = -errno;
            snprintf(err, errlen, "reading config file %s: %s", path, strerror(-rc));
            break;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    if (rc == 0 && len > DM_CONFIG_MAX_SIZE) {
        snprintf(err, errlen, "config file %s is larger than %d bytes", path, DM_CONFIG_MAX_SIZE);
        rc = -EFBIG;
    }
    if (rc == 0)
        rc = dm_config_parse(cfg, buf, len, path, err, errlen);
    free(buf);
    return rc;
}
