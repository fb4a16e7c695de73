/*
 * xensim guests: workload spec parsing (see guest_spec.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_spec.h"

static const struct { const char *name; unsigned bit; } devs[] = {
    { "uart", GUEST_DEV_UART }, { "testdisk", GUEST_DEV_TESTDISK },
    { "ide", GUEST_DEV_IDE }, { "ahci", GUEST_DEV_AHCI }, { "pm", GUEST_DEV_PM },
};
static const char *fw_names[] = { "hvmloader", "any", "none" };
static const char *ide_names[] = { "dma", "pio", "mixed" };
static const char *act_names[] = { "none", "s3", "s5", "reset", "reset92", "resetkbd" };

const char *guest_action_name(enum guest_action a)
{
    return (unsigned)a < sizeof(act_names) / sizeof(act_names[0]) ? act_names[a] : "?";
}

void guest_spec_default(struct guest_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->devices = GUEST_DEV_UART;
    s->fw = GUEST_FW_HVMLOADER;
    s->qd = 1;
    s->size_min = s->size_max = 1;
    s->sectors = 1024;
    s->gap_ms = 2;
    s->seed = 1;
}

static int num(const char *key, const char *v, uint64_t min, uint64_t max, uint64_t *out,
               char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-' || x < min || x > max) {
        snprintf(err, errlen, "%s=%s: expected a number %" PRIu64 "..%" PRIu64, key, v, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

static int pick(const char *key, const char *v, const char *const *names, unsigned n,
                unsigned *out, char *err, size_t errlen)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
    int k = snprintf(err, errlen, "%s=%s: expected one of", key, v);
    for (unsigned i = 0; i < n && k > 0 && (size_t)k < errlen; i++)
        k += snprintf(err + k, errlen - (size_t)k, "%s%s", i ? "|" : " ", names[i]);
    return -1;
}

static int parse_devices(const char *v, struct guest_spec *s, char *err, size_t errlen)
{
    s->devices = 0;
    char buf[GUEST_SPEC_MAX];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
            if (strcmp(t, devs[i].name) == 0)
                bit = devs[i].bit;
        if (!bit) {
            snprintf(err, errlen, "devices: unknown device '%s' (uart, testdisk, ide, ahci, pm)", t);
            return -1;
        }
        if (s->devices & bit) {
            snprintf(err, errlen, "devices: '%s' named twice", t);
            return -1;
        }
        s->devices |= bit;
    }
    if (!s->devices) {
        snprintf(err, errlen, "devices: empty list");
        return -1;
    }
    return 0;
}

static int parse_path(const char *key, const char *v, char *out, char *err, size_t errlen)
{
    if (v[0] != '/' || strlen(v) >= GUEST_SPEC_PATH) {
        snprintf(err, errlen, "%s=%s: expected an absolute path shorter than %d bytes", key, v,
                 GUEST_SPEC_PATH);
        return -1;
    }
    strcpy(out, v);
    return 0;
}

static int parse_word(char *w, struct guest_spec *s, char *err, size_t errlen)
{
    char *eq = strchr(w, '=');
    if (!eq || eq == w) {
        snprintf(err, errlen, "'%s': expected key=value", w);
        return -1;
    }
    *eq = '\0';
    const char *k = w, *v = eq + 1;
    uint64_t x;
    unsigned u;
    if (strcmp(k, "devices") == 0)
        return parse_devices(v, s, err, errlen);
    if (strcmp(k, "fw") == 0) {
        if (pick(k, v, fw_names, 3, &u, err, errlen) < 0)
            return -1;
        s->fw = (enum guest_fw_mode)u;
        return 0;
    }
    if (strcmp(k, "ide") == 0) {
        if (pick(k, v, ide_names, 3, &u, err, errlen) < 0)
            return -1;
        s->ide_mode = (enum guest_ide_mode)u;
        return 0;
    }
    if (strcmp(k, "action") == 0) {
        if (pick(k, v, act_names, sizeof(act_names) / sizeof(act_names[0]), &u, err, errlen) < 0)
            return -1;
        s->action = (enum guest_action)u;
        return 0;
    }
    if (strcmp(k, "console") == 0)
        return parse_path(k, v, s->console, err, errlen);
    if (strcmp(k, "console_log") == 0)
        return parse_path(k, v, s->console_log, err, errlen);
    if (strcmp(k, "sizes") == 0) {
        char a[32], *dash;
        snprintf(a, sizeof(a), "%s", v);
        dash = strchr(a, '-');
        if (dash)
            *dash = '\0';
        uint64_t lo, hi;
        if (num(k, a, 1, 128, &lo, err, errlen) < 0 ||
            num(k, dash ? dash + 1 : a, lo, 128, &hi, err, errlen) < 0)
            return -1;
        s->size_min = (unsigned)lo;
        s->size_max = (unsigned)hi;
        return 0;
    }
    static const struct { const char *key; uint64_t min, max; } nums[] = {
        { "vcpus", 1, 64 }, { "qd", 1, 32 }, { "writes", 0, UINT64_C(1) << 40 },
        { "sectors", 1, 1u << 20 }, { "lines", 0, UINT64_C(1) << 40 }, { "gap_ms", 0, 10000 },
        { "duration", 0, 86400 }, { "after", 0, UINT64_C(1) << 40 },
        { "seed", 0, UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(k, nums[i].key) != 0)
            continue;
        if (num(k, v, nums[i].min, nums[i].max, &x, err, errlen) < 0)
            return -1;
        switch (i) {
        case 0: s->vcpus = (unsigned)x; break;
        case 1: s->qd = (unsigned)x; break;
        case 2: s->writes = x; break;
        case 3: s->sectors = x; break;
        case 4: s->lines = x; break;
        case 5: s->gap_ms = (unsigned)x; break;
        case 6: s->duration_s = (unsigned)x; break;
        case 7: s->after = x; break;
        default: s->seed = x; break;
        }
        return 0;
    }
    snprintf(err, errlen, "unknown key '%s' (devices, fw, vcpus, qd, ide, sizes, writes, sectors, "
             "lines, gap_ms, duration, console, console_log, action, after, seed)", k);
    return -1;
}

int guest_spec_parse(const char *text, struct guest_spec *s, char *err, size_t errlen)
{
    if (strlen(text) >= GUEST_SPEC_MAX) {
        snprintf(err, errlen, "spec longer than %d bytes", GUEST_SPEC_MAX - 1);
        return -1;
    }
    char buf[GUEST_SPEC_MAX];
    strcpy(buf, text);
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
        if (parse_word(w, s, err, errlen) < 0)
            return -1;
    if (s->action == GUEST_ACT_S3 || s->action == GUEST_ACT_S5) {
        if (!(s->devices & GUEST_DEV_PM)) {
            snprintf(err, errlen, "action=%s needs the pm device", guest_action_name(s->action));
            return -1;
        }
    }
    if (s->action != GUEST_ACT_NONE && !(s->devices & GUEST_DEV_UART) && s->after) {
        snprintf(err, errlen, "after=N counts UART lines: add uart to devices");
        return -1;
    }
    if (s->fw == GUEST_FW_NONE && (s->devices & (GUEST_DEV_IDE | GUEST_DEV_AHCI | GUEST_DEV_PM))) {
        snprintf(err, errlen, "fw=none: ide, ahci and pm need the firmware's PCI pass");
        return -1;
    }
    return 0;
}

int guest_spec_format(const struct guest_spec *s, char *buf, size_t len)
{
    char dl[64] = "";
    for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
        if (s->devices & devs[i].bit) {
            if (dl[0])
                strcat(dl, ",");
            strcat(dl, devs[i].name);
        }
    int n = snprintf(buf, len,
                     "devices=%s fw=%s vcpus=%u qd=%u sizes=%u-%u writes=%" PRIu64
                     " sectors=%" PRIu64 " lines=%" PRIu64 " gap_ms=%u duration=%u action=%s"
                     " after=%" PRIu64 " seed=%" PRIu64 "%s%s%s%s%s%s",
                     dl, fw_names[s->fw], s->vcpus ? s->vcpus : 1, s->qd, s->size_min,
                     s->size_max, s->writes, s->sectors, s->lines, s->gap_ms, s->duration_s,
                     guest_action_name(s->action), s->after, s->seed,
                     s->ide_mode != GUEST_IDE_DMA ? " ide=" : "",
                     s->ide_mode != GUEST_IDE_DMA ? ide_names[s->ide_mode] : "",
                     s->console[0] ? " console=" : "", s->console,
                     s->console_log[0] ? " console_log=" : "", s->console_log);
    return n < 0 || (size_t)n >= len ? -1 : n;
}
