/*
 * `rsdmctl events DOMID [--json] [--count N] [--timeout S]`: live run-state
 * events with timestamps, derived by watching the dm's `status` node: new
 * transitions (with the dm's times) and hold changes.  The first line is
 * the current status.  With --json, one JSON object a line, the input of
 * `rsdmctl timeline --from`.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsdmctl.h"

static const char usage[] =
    "Usage: rsdmctl events [--json] [--count N] [--timeout S] [--qmp PATH] DOMID\n"
    "Follow the run-state events of domain DOMID's device model live: every\n"
    "transition and every stop hold taken or released, with its time.  The\n"
    "first line is the current status.  Runs until interrupted, N events were\n"
    "printed (--count) or S seconds passed (--timeout).\n"
    "  --json      one JSON object a line (input for rsdmctl timeline --from)\n"
    "  --qmp PATH  talk QMP over the Unix socket PATH instead of xenstore\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

typedef struct item {
    double t;
    json_t *o;
} item;

static int cmp_item(const void *a, const void *b)
{
    double x = ((const item *)a)->t, y = ((const item *)b)->t;
    return x < y ? -1 : x > y;
}

static void emit(bool as_json, unsigned domid, json_t *o)
{
    char when[64];
    const char *ev = json_string_value(json_object_get(o, "event"));

    if (!o || !ev)
        return;

    if (as_json) {
        json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        ctl_fmt_time(when, sizeof(when), json_number_value(json_object_get(o, "time")));
        if (strcmp(ev, "transition") == 0)
            printf("%s domain %u: %s -> %s (%s)\n", when, domid,
                   json_string_value(json_object_get(o, "from")),
                   json_string_value(json_object_get(o, "to")),
                   json_string_value(json_object_get(o, "cause")));
        else if (strcmp(ev, "status") == 0)
            printf("%s domain %u: status %s, %zu hold(s)\n", when, domid,
                   json_string_value(json_object_get(o, "status")),
                   json_array_size(json_object_get(o, "holds")));
        else
            printf("%s domain %u: %s %s\n", when, domid, ev,
                   json_string_value(json_object_get(o, "reason")));
    }
    fflush(stdout);
}

static json_t *find_hold(json_t *s, const char *reason)
{
    size_t i;
    json_t *h;

    json_array_foreach(json_object_get(s, "holds"), i, h)
        if (strcmp(json_string_value(json_object_get(h, "reason")), reason) == 0)
            return h;
    return NULL;
}

/* The events between two status values, in time order; returns how many. */
static size_t diff(json_t *prev, json_t *cur, double *last_at, unsigned domid, item *out,
                   size_t max)
{
    size_t n = 0, i;
    json_t *it;
    double newest = 0, now = ctl_now();

    json_array_foreach(json_object_get(cur, "transitions"), i, it) {
        double at = json_number_value(json_object_get(it, "at"));
        if (at <= *last_at || n >= max)
            continue;
        out[n].t = at;
        out[n++].o = json_pack("{s:f, s:i, s:s, s:O, s:O, s:O}", "time", at, "domid",
                               (int)domid, "event", "transition", "from",
                               json_object_get(it, "from"), "to", json_object_get(it, "to"),
                               "cause", json_object_get(it, "cause"));
        if (at > newest)
            newest = at;
    }
    json_array_foreach(json_object_get(cur, "holds"), i, it) {
        const char *r = json_string_value(json_object_get(it, "reason"));
        json_t *old = find_hold(prev, r);
        double since = json_number_value(json_object_get(it, "since"));
        if (n >= max || (old && json_number_value(json_object_get(old, "since")) == since))
            continue;
        out[n].t = since;
        out[n++].o = json_pack("{s:f, s:i, s:s, s:s, s:O}", "time", since, "domid", (int)domid,
                               "event", "hold-added", "reason", r, "group",
                               json_object_get(it, "group"));
    }
    json_array_foreach(json_object_get(prev, "holds"), i, it) {
        const char *r = json_string_value(json_object_get(it, "reason"));
        json_t *now_h = find_hold(cur, r);
        double since = json_number_value(json_object_get(it, "since"));
        if (n >= max || (now_h && json_number_value(json_object_get(now_h, "since")) == since))
            continue;
        /* The node has no release time: the newest transition it caused,
         * else the time it was seen. */
        double t = newest > since ? newest : now;
        out[n].t = t;
        out[n++].o = json_pack("{s:f, s:i, s:s, s:s, s:O}", "time", t, "domid", (int)domid,
                               "event", "hold-released", "reason", r, "group",
                               json_object_get(it, "group"));
    }
    if (newest > *last_at)
        *last_at = newest;
    qsort(out, n, sizeof(*out), cmp_item);
    return n;
}

int rsdmctl_events(int argc, char **argv)
{
    ctl_args a;
    char why[512];
    int rc = ctl_parse_args(argc, argv, "jtqc", 1, 1, usage, &a);

    if (rc)
        return rc < 0 ? RSDMCTL_OK : rc;
    if (!ctl_parse_domid(a.pos[0], &a.tg.domid))
        return RSDMCTL_USAGE;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ctl_transport *t = ctl_open(&a.tg);
    if (!t)
        return RSDMCTL_FAIL;
    json_t *prev = t->get_status(t, why, sizeof(why));
    if (!prev) {
        ctl_err("domain %u: %s", a.tg.domid, why);
        t->close(t);
        return RSDMCTL_FAIL;
    }
    double last_at = 0, now = ctl_now();
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(prev, "transitions"), i, it)
        if (json_number_value(json_object_get(it, "at")) > last_at)
            last_at = json_number_value(json_object_get(it, "at"));
    json_t *first = json_pack("{s:f, s:i, s:s, s:O, s:O, s:O, s:O}", "time", now, "domid",
                              (int)a.tg.domid, "event", "status", "status",
                              json_object_get(prev, "status"), "running",
                              json_object_get(prev, "running"), "holds",
                              json_object_get(prev, "holds"), "transitions",
                              json_object_get(prev, "transitions"));
    emit(a.json, a.tg.domid, first);
    json_decref(first);

    long printed = 0;
    int64_t deadline = a.timeout_set ? ctl_mono_ms() + a.tg.timeout_ms : 0;
    rc = RSDMCTL_OK;
    while (!stop_flag && (a.count == 0 || printed < a.count)) {
        int wait_ms = 1000;
        if (deadline) {
            int64_t left = deadline - ctl_mono_ms();
            if (left <= 0)
                break;
            if (left < wait_ms)
                wait_ms = (int)left;
        }
        int w = t->wait_change(t, wait_ms, why, sizeof(why));
        if (w < 0) {
            ctl_err("domain %u: %s", a.tg.domid, why);
            rc = RSDMCTL_FAIL;
            break;
        }
        if (w == 0)
            continue;
        json_t *cur = t->get_status(t, why, sizeof(why));
        if (!cur) {
            ctl_err("domain %u: %s", a.tg.domid, why);
            rc = RSDMCTL_FAIL;
            break;
        }
        if (json_integer_value(json_object_get(cur, "events")) ==
            json_integer_value(json_object_get(prev, "events"))) {
            json_decref(cur);
            continue;
        }
        item items[64];
        size_t n = diff(prev, cur, &last_at, a.tg.domid, items, 64);
        for (size_t k = 0; k < n; k++) {
            if (items[k].o && (a.count == 0 || printed < a.count)) {
                emit(a.json, a.tg.domid, items[k].o);
                printed++;
            }
            json_decref(items[k].o);
        }
        json_decref(prev);
        prev = cur;
    }
    json_decref(prev);
    t->close(t);
    return rc;
}
