/*
 * libFuzzer target: the config file parser (dm_config_parse).  The input
 * is the file's text.  Beyond "no crash": 0 or -EINVAL/-EFBIG with a
 * message; a rejected text leaves the caller's config exactly as it was
 * (the parser works on a scratch copy); an accepted one respects every
 * bound (disk count, NUL-terminated names and save dir, valid enums), and
 * parsing the same text again gives the same config.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm_config.h"

static void check_config(const dm_config *c)
{
    if (c->ndisks > DM_CONFIG_MAX_DISKS)
        abort();
    if (!memchr(c->save_dir, '\0', sizeof(c->save_dir)))
        abort();
    if (c->has_log_level && (c->log_level < DM_LOG_ERROR || c->log_level > DM_LOG_DEBUG))
        abort();
    for (unsigned i = 0; i < c->ndisks; i++) {
        const dm_config_disk *d = &c->disks[i];
        if (!memchr(d->name, '\0', sizeof(d->name)) || d->name[0] == '\0')
            abort();
        if (d->rerror > DM_ERR_STOP || d->werror > DM_ERR_STOP || d->cache > DM_CACHE_UNSAFE)
            abort();
        if (strcmp(dm_err_action_name(d->rerror), "?") == 0 ||
            strcmp(dm_cache_mode_name(d->cache), "?") == 0)
            abort();
        /* Looking a disk up by its name finds this very section. */
        dm_config_disk got = dm_config_disk_get(c, d->name);
        if (got.line != d->line)
            abort();
    }
}

/* Field by field: struct padding is not part of the value. */
static int config_cmp(const dm_config *a, const dm_config *b)
{
    if (a->has_log_level != b->has_log_level || a->log_level != b->log_level ||
        a->has_save_dir != b->has_save_dir || strcmp(a->save_dir, b->save_dir) != 0 ||
        a->ndisks != b->ndisks)
        return 1;
    for (unsigned i = 0; i < a->ndisks && i < DM_CONFIG_MAX_DISKS; i++) {
        const dm_config_disk *x = &a->disks[i], *y = &b->disks[i];
        if (strcmp(x->name, y->name) != 0 || x->rerror != y->rerror || x->werror != y->werror ||
            x->cache != y->cache || x->line != y->line)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A config that is not the defaults, so "unchanged on error" is a
     * real comparison. */
    static const char base_text[] = "log-level = debug\nsave-dir = /var/lib/rsdm\n"
                                    "[disk hda]\nwerror = stop\ncache = none\n";
    dm_config base, c, again;
    char err[512];
    dm_config_init(&base);
    if (dm_config_parse(&base, base_text, sizeof(base_text) - 1, "base", err, sizeof(err)) != 0)
        abort();
    memcpy(&c, &base, sizeof(c));

    err[0] = '\0';
    int rc = dm_config_parse(&c, (const char *)data, size, "fuzz.conf", err, sizeof(err));
    if (rc == 0) {
        check_config(&c);
        memcpy(&again, &base, sizeof(again));
        if (dm_config_parse(&again, (const char *)data, size, "fuzz.conf", err, sizeof(err)) != 0)
            abort();
        if (config_cmp(&again, &c) != 0)
            abort();
    } else {
        if (rc != -EINVAL && rc != -EFBIG)
            abort();
        if (err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
            abort();
        if (config_cmp(&c, &base) != 0)
            abort();
    }
    return 0;
}
