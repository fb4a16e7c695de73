/*
 * `rsdmctl timeline DOMID --svg FILE [--from EVENTS]`: a domain's
 * transitions on a time axis, its stop holds as overlapping bars.  Input:
 * the dm's status node (its newest transitions and active holds), or an
 * events log recorded with `rsdmctl events --json`.  Every transition and
 * every hold change is one labelled <g> (class transition, hold-added,
 * hold-released; data-time in Unix seconds), in time order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rsdmctl.h"

static const char usage[] =
    "Usage: rsdmctl timeline [--from EVENTS] [--qmp PATH] --svg FILE DOMID\n"
    "Draw domain DOMID's run-state transitions on a time axis, with its stop\n"
    "holds as bars, into the SVG file FILE ('-' for stdout).\n"
    "  --from EVENTS  read an events log (rsdmctl events --json DOMID > EVENTS)\n"
    "                 instead of the dm's status node\n"
    "  --qmp PATH     read the status over QMP (Unix socket PATH)\n";

#define MAX_ITEMS 4096
#define RSDMCTL_LANES 16

typedef enum { I_TRANSITION, I_ADD, I_REL } ikind;

typedef struct titem {
    ikind kind;
    double t;
    char a[64], b[64], c[64];     /* from,to,cause | reason,group */
} titem;

typedef struct tl {
    titem *it;
    size_t n;
} tl;

static void cpy(char *dst, size_t len, json_t *v)
{
    const char *s = json_string_value(v);
    size_t j = 0;

    for (; s && *s && j + 1 < len; s++)
        dst[j++] = ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) ? *s : '?';
    dst[j] = '\0';
}

static bool add(tl *l, ikind k, double t, json_t *a, json_t *b, json_t *c)
{
    if (l->n >= MAX_ITEMS || !(t >= 0 && t < 1e11))
        return false;
    titem *i = &l->it[l->n++];
    i->kind = k;
    i->t = t;
    cpy(i->a, sizeof(i->a), a);
    cpy(i->b, sizeof(i->b), b);
    cpy(i->c, sizeof(i->c), c);
    return true;
}

static int cmp_titem(const void *x, const void *y)
{
    double a = ((const titem *)x)->t, b = ((const titem *)y)->t;
    return a < b ? -1 : a > b;
}

static void from_status(tl *l, json_t *s)
{
    size_t i;
    json_t *it;

    json_array_foreach(json_object_get(s, "transitions"), i, it)
        add(l, I_TRANSITION, json_number_value(json_object_get(it, "at")),
            json_object_get(it, "from"), json_object_get(it, "to"), json_object_get(it, "cause"));
    json_array_foreach(json_object_get(s, "holds"), i, it)
        add(l, I_ADD, json_number_value(json_object_get(it, "since")),
            json_object_get(it, "reason"), json_object_get(it, "group"), NULL);
}

static int from_log(tl *l, const char *file, unsigned domid)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    char line[8192];
    unsigned lineno = 0;

    if (!f) {
        ctl_err("cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        json_error_t e;
        lineno++;
        if (line[0] == '\n')
            continue;
        json_t *o = json_loads(line, 0, &e);
        const char *ev = json_string_value(json_object_get(o, "event"));
        json_t *d = json_object_get(o, "domid");
        if (!o || !ev || !json_is_number(json_object_get(o, "time"))) {
            ctl_err("%s:%u: not an rsdmctl event", file, lineno);
            json_decref(o);
            if (f != stdin)
                fclose(f);
            return -1;
        }
        double t = json_number_value(json_object_get(o, "time"));
        if (d && json_integer_value(d) != (json_int_t)domid) {
            json_decref(o);
            continue;
        }
        if (strcmp(ev, "transition") == 0)
            add(l, I_TRANSITION, t, json_object_get(o, "from"), json_object_get(o, "to"),
                json_object_get(o, "cause"));
        else if (strcmp(ev, "hold-added") == 0)
            add(l, I_ADD, t, json_object_get(o, "reason"), json_object_get(o, "group"), NULL);
        else if (strcmp(ev, "hold-released") == 0)
            add(l, I_REL, t, json_object_get(o, "reason"), json_object_get(o, "group"), NULL);
        else if (strcmp(ev, "status") == 0) {
            size_t i;
            json_t *h;
            json_array_foreach(json_object_get(o, "holds"), i, h)
                add(l, I_ADD, json_number_value(json_object_get(h, "since")),
                    json_object_get(h, "reason"), json_object_get(h, "group"), NULL);
        }
        json_decref(o);
    }
    if (f != stdin)
        fclose(f);
    return 0;
}

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *hold_color(const char *reason)
{
    if (strcmp(reason, "io-error") == 0)
        return "orange";
    if (strcmp(reason, "shutdown") == 0 || strcmp(reason, "internal-error") == 0)
        return "salmon";
    if (strcmp(reason, "finish-migrate") == 0 || strcmp(reason, "save-vm") == 0 ||
        strcmp(reason, "restore-vm") == 0 || strcmp(reason, "inmigrate") == 0)
        return "lightblue";
    return "khaki";
}

static void draw(FILE *f, tl *l, unsigned domid)
{
    const double W = 1000, left = 20, top = 50, lane_h = 22;
    double t0 = l->n ? l->it[0].t : 0, t1 = l->n ? l->it[l->n - 1].t : 1;
    char lanes[RSDMCTL_LANES][64];
    size_t nl = 0;

    if (t1 <= t0)
        t1 = t0 + 1;
    double span = t1 - t0, end = t1 + span * 0.05;
#define X(t) (left + ((t) - t0) / (end - t0) * (W - 2 * left))
    /* lanes: one per hold reason seen */
    for (size_t i = 0; i < l->n; i++) {
        if (l->it[i].kind == I_TRANSITION)
            continue;
        size_t k;
        for (k = 0; k < nl && strcmp(lanes[k], l->it[i].a) != 0; k++)
            ;
        if (k == nl && nl < RSDMCTL_LANES)
            snprintf(lanes[nl++], sizeof(lanes[0]), "%s", l->it[i].a);
    }
    double H = top + 40 + (double)nl * lane_h + 20 + (double)l->n * 14;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", W, H);
    fprintf(f, "<title>rsdm domain %u run-state timeline</title>\n", domid);
    fprintf(f, "<text x=\"%.0f\" y=\"18\" font-size=\"14\">domain %u: %zu events, %.3f s</text>\n",
            left, domid, l->n, span);
    fprintf(f, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
            left, top, W - left, top);
    /* hold bars (under the markers) */
    fprintf(f, "<g class=\"hold-bars\">\n");
    for (size_t i = 0; i < l->n; i++) {
        if (l->it[i].kind != I_ADD)
            continue;
        double stop = end;
        for (size_t j = i + 1; j < l->n; j++)
            if (l->it[j].kind != I_TRANSITION && strcmp(l->it[j].a, l->it[i].a) == 0) {
                stop = l->it[j].t;
                break;
            }
        size_t k;
        for (k = 0; k < nl && strcmp(lanes[k], l->it[i].a) != 0; k++)
            ;
        double y = top + 30 + (double)k * lane_h;
        fprintf(f, "<rect class=\"hold-bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "fill=\"%s\" fill-opacity=\"0.7\" stroke=\"gray\"><title>",
                X(l->it[i].t), y, X(stop) - X(l->it[i].t) + 1, lane_h - 4, hold_color(l->it[i].a));
        esc(f, l->it[i].a);
        fprintf(f, " hold %.6f .. %.6f</title></rect>\n", l->it[i].t, stop);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", X(l->it[i].t) + 2, y + 13);
        esc(f, l->it[i].a);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n");
    /* one labelled element per transition and hold change, in time order */
    double ylab = top + 40 + (double)nl * lane_h + 10;
    for (size_t i = 0; i < l->n; i++) {
        titem *it = &l->it[i];
        const char *cls = it->kind == I_TRANSITION ? "transition"
                          : it->kind == I_ADD ? "hold-added" : "hold-released";
        double x = X(it->t), y = ylab + (double)i * 14;
        fprintf(f, "<g class=\"%s\" data-time=\"%.6f\"><title>%.6f ", cls, it->t, it->t);
        char label[256];
        if (it->kind == I_TRANSITION)
            snprintf(label, sizeof(label), "%s -> %s (%s)", it->a, it->b, it->c);
        else
            snprintf(label, sizeof(label), "%s %s", it->kind == I_ADD ? "hold +" : "hold -", it->a);
        esc(f, label);
        fprintf(f, "</title><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\">", x, top - 8, x, y, it->kind == I_TRANSITION ? "blue" : "gray",
                x + 3, y);
        esc(f, label);
        fprintf(f, "</text></g>\n");
    }
    fprintf(f, "</svg>\n");
#undef X
}

int rsdmctl_timeline(int argc, char **argv)
{
    ctl_args a;
    char why[512];
    tl l = { 0 };
    int rc = ctl_parse_args(argc, argv, "sfq", 1, 1, usage, &a);

    if (rc)
        return rc < 0 ? RSDMCTL_OK : rc;
    if (!ctl_parse_domid(a.pos[0], &a.tg.domid))
        return RSDMCTL_USAGE;
    if (!a.svg) {
        ctl_err("timeline: --svg FILE is required");
        fputs(usage, stderr);
        return RSDMCTL_USAGE;
    }
    l.it = calloc(MAX_ITEMS, sizeof(*l.it));
    if (!l.it) {
        ctl_err("out of memory");
        return RSDMCTL_FAIL;
    }
    if (a.from) {
        if (from_log(&l, a.from, a.tg.domid) < 0)
            goto fail;
    } else {
        ctl_transport *t = ctl_open(&a.tg);
        if (!t)
            goto fail;
        json_t *s = t->get_status(t, why, sizeof(why));
        t->close(t);
        if (!s) {
            ctl_err("domain %u: %s", a.tg.domid, why);
            goto fail;
        }
        from_status(&l, s);
        json_decref(s);
    }
    /* stable order: equal times keep their input order */
    for (size_t i = 1; i < l.n; i++)
        for (size_t j = i; j > 0 && cmp_titem(&l.it[j - 1], &l.it[j]) > 0; j--) {
            titem tmp = l.it[j];
            l.it[j] = l.it[j - 1];
            l.it[j - 1] = tmp;
        }
    FILE *f = strcmp(a.svg, "-") == 0 ? stdout : fopen(a.svg, "w");
    if (!f) {
        ctl_err("cannot create %s: %s", a.svg, strerror(errno));
        goto fail;
    }
    draw(f, &l, a.tg.domid);
    if (f != stdout ? fclose(f) != 0 : fflush(f) != 0) {
        ctl_err("writing %s: %s", a.svg, strerror(errno));
        goto fail;
    }
    free(l.it);
    return RSDMCTL_OK;
fail:
    free(l.it);
    return RSDMCTL_FAIL;
}
