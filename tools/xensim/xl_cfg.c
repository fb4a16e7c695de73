/* xl_cfg.c: the subset of xl.cfg syntax `xensim xl` accepts.
 *
 * xl's parser (libxlu) takes `key = value` lines with values that are
 * numbers, quoted strings or `[ "…", … ]` lists (which may span lines),
 * and `#` comments.  Here every key must be one we know and every value
 * must have the right kind: a simulated toolstack that ignored a typo
 * would test something other than what the config says. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xl_cmd.h"

struct pstate {
    const char *p;
    const char *fname;
    int line;
    char *err;
    size_t errlen;
};

static int perr(struct pstate *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int perr(struct pstate *s, const char *fmt, ...)
{
    int n = snprintf(s->err, s->errlen, "%s:%d: ", s->fname, s->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < s->errlen)
        vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Skip blanks, comments and (if nl) newlines. */
static void skip(struct pstate *s, int nl)
{
    for (;;) {
        if (*s->p == ' ' || *s->p == '\t' || *s->p == '\r')
            s->p++;
        else if (*s->p == '#')
            while (*s->p && *s->p != '\n')
                s->p++;
        else if (nl && *s->p == '\n') {
            s->line++;
            s->p++;
        } else
            return;
    }
}

static int parse_string(struct pstate *s, char *out, size_t outlen)
{
    char q = *s->p;
    if (q != '"' && q != '\'')
        return perr(s, "expected a quoted string");
    s->p++;
    size_t n = 0;
    while (*s->p && *s->p != q) {
        if (*s->p == '\n')
            return perr(s, "unterminated string");
        if (*s->p == '\\' && s->p[1] && s->p[1] != '\n')
            s->p++;
        if (n + 1 >= outlen)
            return perr(s, "string longer than %zu bytes", outlen - 1);
        out[n++] = *s->p++;
    }
    if (*s->p != q)
        return perr(s, "unterminated string");
    s->p++;
    out[n] = '\0';
    return 0;
}

static int parse_number(struct pstate *s, unsigned *out, unsigned max)
{
    if (!isdigit((unsigned char)*s->p))
        return perr(s, "expected a number");
    errno = 0;
    char *end;
    unsigned long v = strtoul(s->p, &end, 10);
    if (errno || v > max)
        return perr(s, "number out of range (max %u)", max);
    s->p = end;
    *out = (unsigned)v;
    return 0;
}

/* A list of strings; each item goes to cb. */
static int parse_list(struct pstate *s, struct xl_cfg *cfg,
                      int (*cb)(struct pstate *, struct xl_cfg *, const char *))
{
    if (*s->p != '[')
        return perr(s, "expected a list [ … ]");
    s->p++;
    skip(s, 1);
    while (*s->p != ']') {
        char item[1024];
        if (parse_string(s, item, sizeof(item)) < 0 || cb(s, cfg, item) < 0)
            return -1;
        skip(s, 1);
        if (*s->p == ',') {
            s->p++;
            skip(s, 1);
        } else if (*s->p != ']')
            return perr(s, "expected ',' or ']' in list");
    }
    s->p++;
    return 0;
}

static int add_dm_arg(struct pstate *s, struct xl_cfg *cfg, const char *item)
{
    if (cfg->n_dm_args_hvm >= XL_MAX_ARGS)
        return perr(s, "device_model_args_hvm: more than %d items", XL_MAX_ARGS);
    if (strlen(item) >= sizeof(cfg->dm_args_hvm[0]))
        return perr(s, "device_model_args_hvm: item too long");
    strcpy(cfg->dm_args_hvm[cfg->n_dm_args_hvm++], item);
    return 0;
}

static int copy_field(struct pstate *s, char *dst, size_t n, const char *v,
                      const char *what)
{
    if (strlen(v) >= n)
        return perr(s, "disk: %s '%s' too long", what, v);
    strcpy(dst, v);
    return 0;
}

/* A disk spec (xl-disk-configuration): positional target,format,vdev,access
 * or key=value items; we accept the keys target, format, vdev, access,
 * devtype and the positional form "target,format,vdev[,access]". */
static int add_disk(struct pstate *s, struct xl_cfg *cfg, const char *spec)
{
    if (cfg->n_disks >= XL_MAX_DISKS)
        return perr(s, "disk: more than %d disks", XL_MAX_DISKS);
    struct xl_disk d = { .format = "raw" };
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", spec);
    int pos = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *eq = strchr(tok, '=');
        const char *key = NULL, *val = tok;
        if (eq) {
            *eq = '\0';
            key = tok;
            val = eq + 1;
        } else {
            static const char *const posn[] = { "target", "format", "vdev", "access" };
            if (pos >= 4)
                return perr(s, "disk: too many positional items in '%s'", spec);
            key = posn[pos++];
        }
        int r = 0;
        if (strcmp(key, "target") == 0)
            r = copy_field(s, d.target, sizeof(d.target), val, "target");
        else if (strcmp(key, "format") == 0) {
            if (strcmp(val, "raw") != 0 && strcmp(val, "") != 0)
                return perr(s, "disk: format '%s' not supported (raw only)", val);
        } else if (strcmp(key, "vdev") == 0)
            r = copy_field(s, d.vdev, sizeof(d.vdev), val, "vdev");
        else if (strcmp(key, "access") == 0) {
            if (strcmp(val, "rw") && strcmp(val, "w") && strcmp(val, "ro") && strcmp(val, "r"))
                return perr(s, "disk: access '%s' invalid", val);
        } else if (strcmp(key, "devtype") == 0) {
            if (strcmp(val, "cdrom") != 0)
                return perr(s, "disk: devtype '%s' invalid", val);
            d.cdrom = 1;
        } else
            return perr(s, "disk: unknown key '%s'", key);
        if (r < 0)
            return -1;
    }
    if (!d.vdev[0])
        return perr(s, "disk: no vdev in '%s'", spec);
    /* hdX: IDE; sdX: SATA (AHCI in rsdm), up to sdp, the last one with a
     * devid in Xen's short SCSI encoding. */
    int hd = strncmp(d.vdev, "hd", 2) == 0 && d.vdev[2] >= 'a' && d.vdev[2] <= 'z';
    int sd = strncmp(d.vdev, "sd", 2) == 0 && d.vdev[2] >= 'a' && d.vdev[2] <= 'p';
    if ((!hd && !sd) || d.vdev[3])
        return perr(s, "disk: vdev '%s' not supported (hda..hdz, sda..sdp)", d.vdev);
    if (!d.target[0] && !d.cdrom)
        return perr(s, "disk: no target in '%s'", spec);
    cfg->disks[cfg->n_disks++] = d;
    return 0;
}

int xl_cfg_parse(const char *text, const char *fname, struct xl_cfg *cfg,
                 char *err, size_t errlen)
{
    struct pstate s = { .p = text, .fname = fname, .line = 1, .err = err, .errlen = errlen };
    memset(cfg, 0, sizeof(*cfg));
    cfg->vcpus = 1;
    cfg->memory = 128;
    strcpy(cfg->hdtype, "ide");
    strcpy(cfg->dm_version, "qemu-xen-traditional");
    cfg->on_poweroff = XL_ACTION_DESTROY;   /* xl.cfg(5)'s defaults */
    cfg->on_reboot = XL_ACTION_RESTART;
    cfg->on_crash = XL_ACTION_DESTROY;
    int seen_type = 0;
    for (;;) {
        skip(&s, 1);
        if (!*s.p)
            break;
        char key[64];
        size_t n = 0;
        while (isalnum((unsigned char)*s.p) || *s.p == '_') {
            if (n + 1 >= sizeof(key))
                return perr(&s, "key too long");
            key[n++] = *s.p++;
        }
        key[n] = '\0';
        if (!n)
            return perr(&s, "expected a key");
        skip(&s, 0);
        if (*s.p != '=')
            return perr(&s, "expected '=' after '%s'", key);
        s.p++;
        skip(&s, 0);
        int r;
        char str[512];
        if (strcmp(key, "name") == 0) {
            r = parse_string(&s, cfg->name, sizeof(cfg->name));
            if (r == 0 && (!cfg->name[0] || strchr(cfg->name, '/')))
                r = perr(&s, "name must be non-empty and contain no '/'");
        } else if (strcmp(key, "memory") == 0) {
            r = parse_number(&s, &cfg->memory, 1u << 20);
            if (r == 0 && !cfg->memory)
                r = perr(&s, "memory must be at least 1");
        } else if (strcmp(key, "vcpus") == 0) {
            r = parse_number(&s, &cfg->vcpus, 128);
            if (r == 0 && !cfg->vcpus)
                r = perr(&s, "vcpus must be at least 1");
        } else if (strcmp(key, "type") == 0 || strcmp(key, "builder") == 0) {
            r = parse_string(&s, str, sizeof(str));
            if (r == 0 && strcmp(str, "hvm") != 0)
                r = perr(&s, "%s '%s': only hvm is simulated", key, str);
            seen_type = 1;
        } else if (strcmp(key, "hdtype") == 0) {
            r = parse_string(&s, cfg->hdtype, sizeof(cfg->hdtype));
            if (r == 0 && strcmp(cfg->hdtype, "ide") && strcmp(cfg->hdtype, "ahci"))
                r = perr(&s, "hdtype '%s' invalid (ide or ahci)", cfg->hdtype);
        } else if (strcmp(key, "serial") == 0)
            r = parse_string(&s, cfg->serial, sizeof(cfg->serial));
        else if (strcmp(key, "xensim_workload") == 0)
            r = parse_string(&s, cfg->workload, sizeof(cfg->workload));
        else if (strcmp(key, "device_model_override") == 0)
            r = parse_string(&s, cfg->dm_override, sizeof(cfg->dm_override));
        else if (strcmp(key, "device_model_version") == 0) {
            r = parse_string(&s, cfg->dm_version, sizeof(cfg->dm_version));
            if (r == 0 && strcmp(cfg->dm_version, "qemu-xen-traditional") != 0 &&
                strcmp(cfg->dm_version, "qemu-xen") != 0)
                r = perr(&s, "device_model_version '%s' invalid (qemu-xen or qemu-xen-traditional)",
                         cfg->dm_version);
            cfg->dm_version_set = 1;
        } else if (strcmp(key, "dm_restrict") == 0) {
            r = parse_number(&s, &cfg->dm_restrict, 1);
        } else if (strcmp(key, "on_poweroff") == 0 || strcmp(key, "on_reboot") == 0 ||
                   strcmp(key, "on_crash") == 0) {
            enum xl_action *a = key[3] == 'p' ? &cfg->on_poweroff
                                : key[3] == 'r' ? &cfg->on_reboot : &cfg->on_crash;
            r = parse_string(&s, str, sizeof(str));
            if (r == 0 && strcmp(str, "destroy") == 0)
                *a = XL_ACTION_DESTROY;
            else if (r == 0 && strcmp(str, "restart") == 0)
                *a = XL_ACTION_RESTART;
            else if (r == 0 && strcmp(str, "preserve") == 0)
                *a = XL_ACTION_PRESERVE;
            else if (r == 0)
                r = perr(&s, "%s '%s' invalid (destroy, restart or preserve are simulated)",
                         key, str);
        } else if (strcmp(key, "device_model_args_hvm") == 0)
            r = parse_list(&s, cfg, add_dm_arg);
        else if (strcmp(key, "disk") == 0)
            r = parse_list(&s, cfg, add_disk);
        else
            return perr(&s, "unknown option '%s'", key);
        if (r < 0)
            return -1;
        skip(&s, 0);
        if (*s.p == ';')
            s.p++;
        skip(&s, 0);
        if (*s.p && *s.p != '\n')
            return perr(&s, "unexpected text after the value of '%s'", key);
    }
    (void)seen_type;
    if (!cfg->name[0]) {
        s.line = 0;
        return perr(&s, "no name given");
    }
    if (!cfg->dm_override[0]) {
        s.line = 0;
        return perr(&s, "device_model_override is required (no qemu-dm in the simulator)");
    }
    return 0;
}
