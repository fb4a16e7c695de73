/*
 * Helpers shared by rsdmctl's subcommands: argument parsing, time, the
 * shape check of the dm's status node, choosing a transport.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rsdmctl.h"

void ctl_err(const char *fmt, ...)
{
    va_list ap;

    fputs("rsdmctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool ctl_parse_domid(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!s || !*s || *s < '0' || *s > '9')
        goto bad;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > 32751)
        goto bad;
    *out = (unsigned)v;
    return true;
bad:
    ctl_err("'%s' is not a domain id (0..32751)", s ? s : "");
    return false;
}

bool ctl_parse_timeout(const char *s, int *ms_out)
{
    char *end;
    double v;

    errno = 0;
    v = s ? strtod(s, &end) : 0;
    if (!s || !*s || errno || *end || !(v > 0) || v > 86400) {
        ctl_err("'%s' is not a timeout in seconds (0 < S <= 86400)", s ? s : "");
        return false;
    }
    *ms_out = (int)(v * 1000);
    if (*ms_out < 1)
        *ms_out = 1;
    return true;
}

double ctl_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t ctl_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_fmt_time(char *buf, size_t len, double t)
{
    struct tm tm;
    time_t s;
    char day[32];

    if (!(t >= 0 && t < 1e11)) {
        snprintf(buf, len, "?");
        return;
    }
    s = (time_t)t;
    if (!localtime_r(&s, &tm) || strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(buf, len, "?");
        return;
    }
    snprintf(buf, len, "%s.%03d", day, (int)((t - (double)s) * 1000) % 1000);
}

static bool is_name(json_t *v)
{
    const char *s = json_string_value(v);

    if (!s || !*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool is_time(json_t *v)
{
    double d = json_number_value(v);
    return json_is_number(v) && d >= 0 && d < 1e11;
}

json_t *ctl_status_parse(const char *text, char *why, size_t why_len)
{
    json_error_t e;
    json_t *j, *a, *it;
    size_t i;

    if (!text) {
        snprintf(why, why_len, "no status");
        return NULL;
    }
    j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        snprintf(why, why_len, "status is not JSON (%s)", e.text);
        return NULL;
    }
    if (!json_is_object(j) || !is_name(json_object_get(j, "status")) ||
        !json_is_boolean(json_object_get(j, "running")) ||
        !json_is_integer(json_object_get(j, "events")) ||
        json_integer_value(json_object_get(j, "events")) < 0) {
        snprintf(why, why_len, "status lacks status/running/events");
        goto bad;
    }
    a = json_object_get(j, "holds");
    if (!json_is_array(a)) {
        snprintf(why, why_len, "status.holds is not a list");
        goto bad;
    }
    json_array_foreach(a, i, it) {
        if (!json_is_object(it) || !is_name(json_object_get(it, "reason")) ||
            !is_time(json_object_get(it, "since"))) {
            snprintf(why, why_len, "status.holds[%zu] is malformed", i);
            goto bad;
        }
        if (!is_name(json_object_get(it, "group")))
            json_object_set_new(it, "group", json_string("?"));
    }
    a = json_object_get(j, "transitions");
    if (!json_is_array(a)) {
        snprintf(why, why_len, "status.transitions is not a list");
        goto bad;
    }
    json_array_foreach(a, i, it) {
        if (!json_is_object(it) || !is_name(json_object_get(it, "from")) ||
            !is_name(json_object_get(it, "to")) || !is_time(json_object_get(it, "at"))) {
            snprintf(why, why_len, "status.transitions[%zu] is malformed", i);
            goto bad;
        }
        if (!is_name(json_object_get(it, "cause")))
            json_object_set_new(it, "cause", json_string("?"));
    }
    return j;
bad:
    json_decref(j);
    return NULL;
}

ctl_transport *ctl_open(const ctl_target *tg)
{
    char why[512];
    ctl_transport *t;

    if (tg->qmp_path) {
        t = ctl_qmp_open(tg->qmp_path, tg->timeout_ms, why, sizeof(why));
        if (!t)
            ctl_err("%s", why);
        return t;
    }
    t = ctl_xs_open(tg->domid, why, sizeof(why));
    if (!t)
        ctl_err("domain %u: %s", tg->domid, why);
    return t;
}

int ctl_parse_args(int argc, char **argv, const char *allowed, int min_pos, int max_pos,
                   const char *usage, ctl_args *a)
{
    static const struct { const char *name; char letter; bool arg; } opts[] = {
        { "--json", 'j', false }, { "--timeout", 't', true }, { "--qmp", 'q', true },
        { "--svg", 's', true }, { "--from", 'f', true }, { "--save-path", 'p', true },
        { "--count", 'c', true },
    };

    memset(a, 0, sizeof(*a));
    a->tg.timeout_ms = RSDMCTL_TIMEOUT_S * 1000;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            return -1;
        }
        if (strcmp(arg, "--") == 0) {
            for (i++; i < argc; i++) {
                if (a->npos >= max_pos)
                    goto too_many;
                a->pos[a->npos++] = argv[i];
            }
            break;
        }
        if (arg[0] == '-' && arg[1]) {
            size_t k, n = sizeof(opts) / sizeof(opts[0]);
            const char *val = NULL;
            for (k = 0; k < n; k++) {
                size_t l = strlen(opts[k].name);
                if (strncmp(arg, opts[k].name, l) == 0 && (arg[l] == '\0' || arg[l] == '=')) {
                    if (arg[l] == '=')
                        val = arg + l + 1;
                    break;
                }
            }
            if (k == n || !strchr(allowed, opts[k].letter)) {
                ctl_err("%s: unknown option '%s'", argv[0], arg);
                fputs(usage, stderr);
                return RSDMCTL_USAGE;
            }
            if (opts[k].arg && !val) {
                if (i + 1 >= argc) {
                    ctl_err("%s: option '%s' needs a value", argv[0], arg);
                    fputs(usage, stderr);
                    return RSDMCTL_USAGE;
                }
                val = argv[++i];
            } else if (!opts[k].arg && val) {
                ctl_err("%s: option '%s' takes no value", argv[0], opts[k].name);
                return RSDMCTL_USAGE;
            }
            switch (opts[k].letter) {
            case 'j': a->json = true; break;
            case 't':
                if (!ctl_parse_timeout(val, &a->tg.timeout_ms))
                    return RSDMCTL_USAGE;
                a->timeout_set = true;
                break;
            case 'q': a->tg.qmp_path = val; break;
            case 's': a->svg = val; break;
            case 'f': a->from = val; break;
            case 'p': a->save_path = val; break;
            case 'c': {
                char *end;
                errno = 0;
                a->count = strtol(val, &end, 10);
                if (errno || *end || !*val || a->count < 1) {
                    ctl_err("%s: --count needs a positive number, not '%s'", argv[0], val);
                    return RSDMCTL_USAGE;
                }
                break;
            }
            }
            continue;
        }
        if (a->npos >= max_pos)
            goto too_many;
        a->pos[a->npos++] = argv[i];
    }
    if (a->npos < min_pos) {
        ctl_err("%s: missing argument", argv[0]);
        fputs(usage, stderr);
        return RSDMCTL_USAGE;
    }
    return RSDMCTL_OK;
too_many:
    ctl_err("%s: too many arguments", argv[0]);
    fputs(usage, stderr);
    return RSDMCTL_USAGE;
}
