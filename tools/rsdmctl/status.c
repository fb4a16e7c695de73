/*
 * `rsdmctl status DOMID [--json]`: the dm's run state, its stop holds with
 * the time each was taken, and the newest transitions (from the `status`
 * node, docs/protocol.md §4a).
 */
#include <stdio.h>
#include <string.h>

#include "rsdmctl.h"

static const char usage[] =
    "Usage: rsdmctl status [--json] [--qmp PATH] DOMID\n"
    "Show the run state of domain DOMID's device model: the displayed state,\n"
    "the stop holds (why it is stopped, since when) and recent transitions.\n"
    "  --json       print the status object as JSON\n"
    "  --qmp PATH   talk QMP over the Unix socket PATH instead of xenstore\n";

void ctl_print_status(FILE *f, unsigned domid, json_t *s)
{
    json_t *holds = json_object_get(s, "holds"), *tr = json_object_get(s, "transitions"), *it;
    size_t i;
    double now = ctl_now();
    char when[64];

    fprintf(f, "domain %u: %s (%s)\n", domid, json_string_value(json_object_get(s, "status")),
            json_is_true(json_object_get(s, "running")) ? "running" : "stopped");
    if (json_array_size(holds)) {
        fprintf(f, "holds:\n");
        json_array_foreach(holds, i, it) {
            double since = json_number_value(json_object_get(it, "since"));
            ctl_fmt_time(when, sizeof(when), since);
            fprintf(f, "  %-16s %-11s since %s (%.1fs)\n",
                    json_string_value(json_object_get(it, "reason")),
                    json_string_value(json_object_get(it, "group")), when,
                    now > since ? now - since : 0.0);
        }
    } else {
        fprintf(f, "holds: none\n");
    }
    if (json_array_size(tr)) {
        fprintf(f, "recent transitions:\n");
        json_array_foreach(tr, i, it) {
            ctl_fmt_time(when, sizeof(when), json_number_value(json_object_get(it, "at")));
            fprintf(f, "  %s  %s -> %s (%s)\n", when,
                    json_string_value(json_object_get(it, "from")),
                    json_string_value(json_object_get(it, "to")),
                    json_string_value(json_object_get(it, "cause")));
        }
    }
    fprintf(f, "events: %lld\n", (long long)json_integer_value(json_object_get(s, "events")));
}

int rsdmctl_status(int argc, char **argv)
{
    ctl_args a;
    char why[512];
    int rc = ctl_parse_args(argc, argv, "jq", 1, 1, usage, &a);

    if (rc)
        return rc < 0 ? RSDMCTL_OK : rc;
    if (!ctl_parse_domid(a.pos[0], &a.tg.domid))
        return RSDMCTL_USAGE;
    ctl_transport *t = ctl_open(&a.tg);
    if (!t)
        return RSDMCTL_FAIL;
    json_t *s = t->get_status(t, why, sizeof(why));
    t->close(t);
    if (!s) {
        ctl_err("domain %u: %s", a.tg.domid, why);
        return RSDMCTL_FAIL;
    }
    if (a.json) {
        json_object_set_new(s, "domid", json_integer(a.tg.domid));
        json_dumpf(s, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        ctl_print_status(stdout, a.tg.domid, s);
    }
    json_decref(s);
    return RSDMCTL_OK;
}
