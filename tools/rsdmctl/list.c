/*
 * `rsdmctl list [--json]`: every device model on this host, from the
 * directories under /local/domain/0/device-model/ (one per guest domid).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "rsdmctl.h"

#define DM_ROOT "/local/domain/0/device-model"

static const char usage[] =
    "Usage: rsdmctl list [--json]\n"
    "List every device model on this host (the directories under\n"
    DM_ROOT "/) with its run state and stop holds.\n"
    "  --json   print a JSON list of status objects (with \"domid\")\n";

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

int rsdmctl_list(int argc, char **argv)
{
    ctl_args a;
    char why[512];
    unsigned n = 0;
    int rc = ctl_parse_args(argc, argv, "j", 0, 0, usage, &a);

    if (rc)
        return rc < 0 ? RSDMCTL_OK : rc;
    struct xs_handle *xs = xs_open(0);
    if (!xs) {
        ctl_err("cannot connect to xenstore: %s", strerror(errno));
        return RSDMCTL_FAIL;
    }
    char **ents = xs_directory(xs, XBT_NULL, DM_ROOT, &n);
    if (!ents && errno != ENOENT) {
        ctl_err("cannot list %s: %s", DM_ROOT, strerror(errno));
        xs_close(xs);
        return RSDMCTL_FAIL;
    }
    unsigned *ids = calloc(n ? n : 1, sizeof(*ids)), nid = 0;
    if (!ids) {
        ctl_err("out of memory");
        free(ents);
        xs_close(xs);
        return RSDMCTL_FAIL;
    }
    for (unsigned i = 0; i < n; i++) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(ents[i], &end, 10);
        if (ents[i][0] >= '0' && ents[i][0] <= '9' && !*end && !errno && v <= 32751)
            ids[nid++] = (unsigned)v;
    }
    free(ents);
    xs_close(xs);
    qsort(ids, nid, sizeof(*ids), cmp_uint);

    json_t *all = json_array();
    if (!a.json)
        printf("%-6s %-16s %-8s %s\n", "Domid", "State", "Running", "Holds");
    for (unsigned i = 0; i < nid; i++) {
        ctl_transport *t = ctl_xs_open(ids[i], why, sizeof(why));
        json_t *s = t ? t->get_status(t, why, sizeof(why)) : NULL;
        if (t)
            t->close(t);
        if (!s) {
            if (a.json) {
                json_t *o = json_pack("{s:i, s:s}", "domid", (int)ids[i], "error", why);
                json_array_append_new(all, o);
            } else {
                printf("%-6u %-16s %-8s (%s)\n", ids[i], "?", "?", why);
            }
            continue;
        }
        if (a.json) {
            json_object_set_new(s, "domid", json_integer(ids[i]));
            json_array_append_new(all, s);
            continue;
        }
        char holds[256] = "";
        size_t k, off = 0;
        json_t *h;
        json_array_foreach(json_object_get(s, "holds"), k, h) {
            int w = snprintf(holds + off, sizeof(holds) - off, "%s%s", k ? "," : "",
                             json_string_value(json_object_get(h, "reason")));
            if (w < 0 || (size_t)w >= sizeof(holds) - off)
                break;
            off += (size_t)w;
        }
        printf("%-6u %-16s %-8s %s\n", ids[i], json_string_value(json_object_get(s, "status")),
               json_is_true(json_object_get(s, "running")) ? "yes" : "no",
               off ? holds : "-");
        json_decref(s);
    }
    if (a.json) {
        json_dumpf(all, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    }
    json_decref(all);
    free(ids);
    return RSDMCTL_OK;
}
