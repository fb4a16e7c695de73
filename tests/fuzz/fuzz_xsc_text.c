/*
 * libFuzzer target: the pure parsing paths of the traditional xenstore
 * control dialect -- how a value read from `command`, `logdirty/cmd` or a
 * vbd backend node is understood, rendered into `error` and log lines, and
 * recognised as a replay after a reconnect.  Every function is checked
 * against an independent statement of its rule, written here:
 *   command / logdirty   exact match, length and bytes ("save\0", "sav",
 *                        "Save" are not "save");
 *   escape               NUL-terminated, printable only, never longer than
 *                        asked, and undoing the escapes gives the input back;
 *   replay               only a value equal to the last one, read on a new
 *                        connection, whose deletion was never confirmed;
 *   disk dev / params    the accepted names and an absolute path suffix;
 *   uuid                 8-4-4-4-12 hex digits and nothing else.
 * Input: byte 0 chooses sizes and flags, the rest is the value.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xsc_control.h"
#include "xsc_disks.h"
#include "xsc_paths.h"
#include "xsc_text.h"

static const char *const words[] = { NULL,   "save",  "continue", "pci-ins",   "pci-rem",
                                     "stop", "retry", "reset",    "powerdown", "wakeup" };

static int oracle_cmd(const uint8_t *v, size_t len)
{
    for (int i = 1; i < (int)(sizeof(words) / sizeof(words[0])); i++)
        if (len == strlen(words[i]) && memcmp(v, words[i], len) == 0)
            return i;
    return 0;
}

static void check_command(const uint8_t *v, size_t len)
{
    int want = oracle_cmd(v, len);
    xsc_cmd got = xsc_cmd_parse(v, len);
    if ((int)got != want)
        abort();
    if (got != XSC_CMD_UNKNOWN && strcmp(xsc_cmd_name(got), words[want]) != 0)
        abort();
    if (strcmp(xsc_cmd_name(XSC_CMD_UNKNOWN), "unknown") != 0 ||
        strcmp(xsc_cmd_name((xsc_cmd)(XSC_CMD__MAX + (len & 7))), "unknown") != 0)
        abort();
    /* Every proper prefix of a value is a different value. */
    if (len > 0 && want && xsc_cmd_parse(v, len - 1) != XSC_CMD_UNKNOWN)
        abort();

    int ld = xsc_logdirty_parse(v, len);
    int ld_want = (len == 6 && memcmp(v, "enable", 6) == 0)    ? 1
                  : (len == 7 && memcmp(v, "disable", 7) == 0) ? 0
                                                               : -EINVAL;
    if (ld != ld_want)
        abort();
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes out[0..upto) as escaped bytes; true when every escape is
 * complete and the bytes are the first ones of v (at most max of them);
 * *got is how many. */
static bool decode_prefix(const char *out, size_t upto, const uint8_t *v, size_t max, size_t *got)
{
    size_t i = 0, k = 0;
    while (i < upto) {
        unsigned char c = (unsigned char)out[i], dec;
        if (c < 0x20 || c >= 0x7f || c == '"')
            return false;           /* a bare quote would end the `error` text */
        if (c == '\\') {
            if (i + 1 < upto && (out[i + 1] == '"' || out[i + 1] == '\\')) {
                dec = (unsigned char)out[i + 1];
                i += 2;
            } else if (i + 3 < upto && out[i + 1] == 'x' && hexval(out[i + 2]) >= 0 &&
                       hexval(out[i + 3]) >= 0) {
                dec = (unsigned char)(hexval(out[i + 2]) << 4 | hexval(out[i + 3]));
                if (dec >= 0x20 && dec < 0x7f && dec != '"' && dec != '\\')
                    return false;   /* printable bytes are never escaped */
                i += 4;
            } else {
                return false;       /* a split or unknown escape */
            }
        } else {
            dec = c;
            i++;
        }
        if (k >= max || dec != v[k])
            return false;
        k++;
    }
    *got = k;
    return true;
}

static void check_escape(const uint8_t *v, size_t len, size_t size, size_t max_in)
{
    char *out = malloc(size);
    if (!out)
        return;
    memset(out, 'Z', size);
    size_t n = xsc_escape(out, size, v, len, max_in);
    if (n >= size || out[n] != '\0' || strlen(out) != n)
        abort();
    size_t shown = len < max_in ? len : max_in, got = 0;
    if (shown == len) {
        if (!decode_prefix(out, n, v, len, &got))
            abort();
        if (got != len && size >= 4 * len + 1)
            abort();                /* room for everything, yet something is missing */
    } else {
        /* The shown bytes, then as much of the cut-off note as fits. */
        char note[48];
        size_t nl = (size_t)snprintf(note, sizeof(note), "...(%zu bytes)", len);
        size_t j = n + 1;
        while (j-- > 0)
            if (n - j <= nl && memcmp(out + j, note, n - j) == 0 &&
                decode_prefix(out, j, v, shown, &got))
                break;
        if (j > n)
            abort();
        if (size >= 4 * shown + nl + 1 && (got != shown || n - j != nl))
            abort();                /* room for everything, yet something is missing */
    }
    free(out);
}

static void check_replay(const uint8_t *v, size_t len, uint8_t flags)
{
    xsc_last_cmd last = { 0 };
    last.valid = flags & 1;
    last.rm_confirmed = flags & 2;
    last.generation = (flags >> 2) & 1;
    unsigned gen = (flags >> 3) & 1;
    /* The last command is the value itself, or (flag 0x10) its first half. */
    size_t keep = (flags & 0x10) ? len / 2 : len;
    last.len = keep;
    memcpy(last.value, v, keep < sizeof(last.value) ? keep : sizeof(last.value));
    bool want = last.valid && !last.rm_confirmed && last.generation != gen &&
                keep <= sizeof(last.value) && len == keep;
    if (xsc_cmd_is_replay(&last, v, len, gen) != want)
        abort();
    if (xsc_cmd_is_replay(NULL, v, len, gen))
        abort();
}

static void check_disk(const uint8_t *v, size_t len, bool cdrom)
{
    const char *s = (const char *)v;
    xsc_disk_bus bus;
    unsigned unit = 99;
    int rc = xsc_disk_parse_dev(s, len, &bus, &unit);
    bool ide = (len == 3 && s[0] == 'h' && s[1] == 'd' && s[2] >= 'a' && s[2] <= 'd') ||
               (len == 4 && memcmp(s, "xvd", 3) == 0 && s[3] >= 'a' && s[3] <= 'd');
    bool sata = len == 3 && s[0] == 's' && s[1] == 'd' && s[2] >= 'a' && s[2] <= 'z';
    if ((rc == 0) != (ide || sata))
        abort();
    if (rc == 0 && ((ide && (bus != XSC_DISK_IDE || unit > 3)) ||
                    (sata && (bus != XSC_DISK_SATA || unit > 25))))
        abort();

    char format[16], path[256];
    rc = xsc_disk_parse_params(s, len, cdrom, format, sizeof(format), path, sizeof(path));
    if (rc != 0 && rc != -EINVAL)
        abort();
    bool ok = xsc_disk_value_ok(s, len, sizeof(path) - 1);
    if (rc == 0) {
        if (!ok)
            abort();
        size_t pl = strlen(path), fl = strlen(format);
        if (fl >= sizeof(format))
            abort();
        for (size_t i = 0; i < fl; i++)
            if (!((format[i] >= 'a' && format[i] <= 'z') || (format[i] >= '0' && format[i] <= '9')))
                abort();
        if (pl == 0) {
            if (!cdrom)
                abort();            /* only an empty CD-ROM drive has no path */
        } else if (path[0] != '/' || pl > len || memcmp(s + len - pl, path, pl) != 0) {
            abort();
        }
    }
    if (ok)
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                abort();
}

static void check_uuid(const uint8_t *v, size_t len)
{
    char s[64];
    if (len >= sizeof(s))
        return;
    memcpy(s, v, len);
    s[len] = '\0';
    bool want = strlen(s) == 36;
    for (size_t i = 0; want && i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        want = dash ? s[i] == '-' : hexval((char)(s[i] | (s[i] >= 'A' && s[i] <= 'F' ? 0x20 : 0))) >= 0;
    }
    if (xsc_uuid_valid(s) != want)
        abort();
    char p[128];
    int rc = xsc_path_rtc_timeoffset(p, sizeof(p), s);
    if ((rc == 0) != want)
        abort();
}

static void check_runstate(const uint8_t *v, size_t len, size_t size)
{
    rs_state holds[8];
    size_t n = len < 9 ? (len ? len - 1 : 0) : 8;
    for (size_t i = 0; i < n; i++)
        holds[i] = (rs_state)(v[i + 1] % (RS_STATE__MAX + 1));   /* includes one out of range */
    rs_state st = len ? (rs_state)(v[0] % (RS_STATE__MAX + 1)) : RS_RUNNING;
    char *out = malloc(size);
    if (!out)
        return;
    int rc = xsc_runstate_format(out, size, st, holds, n);
    if (rc == 0) {
        size_t l = strnlen(out, size);
        if (l >= size || !strstr(out, " holds="))
            abort();
        const char *sn = rs_state_name(st);
        if (strncmp(out, sn ? sn : "unknown", strlen(sn ? sn : "unknown")) != 0)
            abort();
    } else if (rc != -ENOSPC) {
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *v = data + 1;
    size_t len = size - 1;

    check_command(v, len);
    check_escape(v, len, 1 + (flags & 0x3f) * 3u, (flags & 0x40) ? 8 : 1024);
    check_replay(v, len, flags);
    check_disk(v, len, flags & 0x80);
    check_uuid(v, len);
    check_runstate(v, len, 1 + (flags & 0x3f));
    return 0;
}
