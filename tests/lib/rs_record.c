/*
 * The recording sink, hooks and handlers of rs_record.h.
 */
#include "../lib/rs_record.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_line(rs_rec *rec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_line(rs_rec *rec, const char *fmt, ...)
{
    if (rec->n == RS_REC_LINES) {
        rec->overflow = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    rec->batch[rec->n] = 0;
    vsnprintf(rec->line[rec->n++], RS_REC_LINE, fmt, ap);
    va_end(ap);
}

static const char *sname(rs_state s)
{
    const char *n = rs_state_name(s);
    return n ? n : "?";
}

static const char *cname(rs_cause c)
{
    const char *n = rs_cause_name(c);
    return n ? n : "?";
}

/* Checks what every event must satisfy, whoever emitted it. */
static bool event_ok(const rs_rec *rec, const rs_event *ev)
{
    if (ev->mono_ns <= 0 || ev->wall_ns <= 0)
        return false;
    if (rec->nev > 0 && ev->type != RS_EV_BLOCK_IO_ERROR &&
        rec->ev[rec->nev - 1].type != RS_EV_BLOCK_IO_ERROR &&
        ev->mono_ns < rec->ev[rec->nev - 1].mono_ns)
        return false;
    if (ev->type == RS_EV_BLOCK_IO_ERROR)
        return true;    /* posted by a device, maybe from another thread */
    if (ev->state != rs_get_state(rec->vm) || ev->holds != rs_get_holds(rec->vm))
        return false;
    switch (ev->type) {
    case RS_EV_STOP:
    case RS_EV_HOLD_ADDED:
        return (unsigned)ev->hold < RS_STATE__MAX && (ev->holds & RS_HOLD_BIT(ev->hold));
    case RS_EV_HOLD_RELEASED:
        return (unsigned)ev->hold < RS_STATE__MAX && !(ev->holds & RS_HOLD_BIT(ev->hold));
    case RS_EV_RESUME:
        return ev->holds == 0;
    case RS_EV_RESET:
    case RS_EV_SHUTDOWN:
        return ev->guest == rs_cause_is_guest(ev->cause);
    default:
        return true;
    }
}

static void on_event(void *opaque, const rs_event *ev)
{
    rs_rec *rec = opaque;
    if (!event_ok(rec, ev))
        rec->bad_events++;
    if (rec->nev < RS_REC_LINES)
        rec->ev[rec->nev++] = *ev;
    const char *name = rs_event_name(ev->type);
    switch (ev->type) {
    case RS_EV_STOP:
    case RS_EV_HOLD_ADDED:
    case RS_EV_HOLD_RELEASED:
        add_line(rec, "%s %s", name, sname(ev->hold));
        break;
    case RS_EV_RESET:
    case RS_EV_SHUTDOWN:
        add_line(rec, "%s %s", name, cname(ev->cause));
        break;
    case RS_EV_WAKEUP:
        add_line(rec, "%s %s", name, rs_wakeup_reason_name(ev->wakeup));
        break;
    case RS_EV_GUEST_PANICKED:
    case RS_EV_WATCHDOG:
        add_line(rec, "%s %s", name, ev->action);
        break;
    case RS_EV_BLOCK_IO_ERROR:
        add_line(rec, "%s %s", name, ev->device);
        break;
    default:
        add_line(rec, "%s", name ? name : "?");
        break;
    }
}

static void hook_reset(void *o, rs_cause c) { add_line(o, "hook:reset %s", cname(c)); }
static void hook_suspend(void *o) { add_line(o, "hook:suspend"); }
static void hook_wakeup(void *o, rs_wakeup_reason r) { add_line(o, "hook:wakeup %s", rs_wakeup_reason_name(r)); }
static void hook_powerdown(void *o) { add_line(o, "hook:powerdown"); }
static void hook_shutdown(void *o, rs_cause c) { add_line(o, "hook:shutdown %s", cname(c)); }
static void hook_nmi(void *o) { add_line(o, "hook:nmi"); }
static void hook_wdt_debug(void *o) { add_line(o, "hook:watchdog-debug"); }

static int hook_drain(void *o)
{
    rs_rec *rec = o;
    add_line(rec, "hook:drain");
    return rec->drain_ret;
}

/* Counted, not recorded as a line: every start passes here, and the
 * sequences the tests state are about events and handlers. */
static int hook_activate(void *o, char *why, size_t why_len)
{
    rs_rec *rec = o;
    rec->activate_calls++;
    if (rec->activate_ret < 0)
        snprintf(why, why_len, "disk hda: image locked by another process");
    return rec->activate_ret;
}

static void on_log(void *opaque, rs_log_level level, const char *msg)
{
    rs_rec *rec = opaque;
    snprintf(rec->log_last, sizeof(rec->log_last), "%s", msg);
    if (level == RS_LOG_ERROR)
        rec->log_errors++;
}

static void on_request(void *opaque, rs_request_kind kind, int arg, uint64_t batch)
{
    static const char *const kinds[RS_REQ__MAX] = {
        "DEBUG", "SUSPEND", "SHUTDOWN", "RESET", "WAKEUP", "POWERDOWN", "VMSTOP",
    };
    rs_rec *rec = opaque;
    const char *k = (unsigned)kind < RS_REQ__MAX ? kinds[kind] : "?";
    switch (kind) {
    case RS_REQ_VMSTOP:
        add_line(rec, "req:%s %s", k, sname((rs_state)arg));
        break;
    case RS_REQ_RESET:
    case RS_REQ_SHUTDOWN:
        add_line(rec, "req:%s %s", k, cname((rs_cause)arg));
        break;
    case RS_REQ_WAKEUP:
        add_line(rec, "req:%s %s", k, rs_wakeup_reason_name((rs_wakeup_reason)arg));
        break;
    default:
        add_line(rec, "req:%s", k);
        break;
    }
    if (rec->n > 0 && !rec->overflow)
        rec->batch[rec->n - 1] = batch;
}

void rs_rec_attach(rs_rec *rec, rs_vm *vm)
{
    memset(rec, 0, sizeof(*rec));
    rec->vm = vm;
    rs_event_sink_add(vm, on_event, rec);
    rs_hooks h = {
        .reset = hook_reset,
        .suspend = hook_suspend,
        .wakeup = hook_wakeup,
        .powerdown = hook_powerdown,
        .shutdown = hook_shutdown,
        .inject_nmi = hook_nmi,
        .watchdog_debug = hook_wdt_debug,
        .drain_flush = hook_drain,
        .activate = hook_activate,
        .opaque = rec,
    };
    rs_set_hooks(vm, &h);
    rs_set_log(vm, on_log, rec);
}

rs_rec *rs_rec_new(void)
{
    rs_rec *rec = calloc(1, sizeof(*rec));
    if (!rec)
        return NULL;
    rs_vm *vm = rs_vm_new();
    if (!vm) {
        free(rec);
        return NULL;
    }
    rs_rec_attach(rec, vm);
    return rec;
}

void rs_rec_free(rs_rec *rec)
{
    if (!rec)
        return;
    rs_vm_free(rec->vm);
    free(rec);
}

void rs_rec_trace(rs_rec *rec)
{
    rs_set_request_trace(rec->vm, on_request, rec);
}

void rs_rec_clear(rs_rec *rec)
{
    rec->n = 0;
    rec->nev = 0;
    rec->overflow = false;
}

void rs_rec_note(rs_rec *rec, const char *fmt, ...)
{
    if (rec->n == RS_REC_LINES) {
        rec->overflow = true;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    rec->batch[rec->n] = 0;
    vsnprintf(rec->line[rec->n++], RS_REC_LINE, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- handlers */

static void handler_line(rs_rec_h *rh, const char *suffix, bool running, rs_state state)
{
    if (rs_get_state(rh->rec->vm) != state)
        rh->rec->handler_state_mismatch++;
    add_line(rh->rec, "%s%s(%d,%s)", rh->name, suffix, running ? 1 : 0, sname(state));
}

static void rec_cb(void *opaque, bool running, rs_state state)
{
    rs_rec_h *rh = opaque;
    handler_line(rh, "", running, state);
    if (rh->inside)
        rh->inside(rh, running, state);
}

static void rec_prepare(void *opaque, bool running, rs_state state)
{
    handler_line(opaque, ".prep", running, state);
}

static int rec_cb_ret(void *opaque, bool running, rs_state state)
{
    rs_rec_h *rh = opaque;
    rec_cb(opaque, running, state);
    return running ? rh->ret_on_start : rh->ret_on_stop;
}

static rs_rec_h *new_handler(rs_rec *rec, const char *name)
{
    if (rec->nhandlers == RS_REC_HANDLERS)
        return NULL;
    rs_rec_h *rh = &rec->handlers[rec->nhandlers++];
    memset(rh, 0, sizeof(*rh));
    rh->rec = rec;
    snprintf(rh->name, sizeof(rh->name), "%s", name);
    return rh;
}

rs_rec_h *rs_rec_handler_full(rs_rec *rec, const char *name, int priority, bool prepare)
{
    rs_rec_h *rh = new_handler(rec, name);
    if (!rh)
        return NULL;
    rh->h = rs_handler_add_full(rec->vm, rec_cb, prepare ? rec_prepare : NULL, NULL, rh, priority);
    return rh->h ? rh : NULL;
}

rs_rec_h *rs_rec_handler(rs_rec *rec, const char *name, int priority)
{
    return rs_rec_handler_full(rec, name, priority, false);
}

rs_rec_h *rs_rec_handler_ret(rs_rec *rec, const char *name, int priority,
                                   int ret_on_stop, int ret_on_start)
{
    rs_rec_h *rh = new_handler(rec, name);
    if (!rh)
        return NULL;
    rh->ret_on_stop = ret_on_stop;
    rh->ret_on_start = ret_on_start;
    rh->h = rs_handler_add_full(rec->vm, NULL, NULL, rec_cb_ret, rh, priority);
    return rh->h ? rh : NULL;
}

/* ---------------------------------------------------------------- checks */

bool rs_rec_expect_v(const rs_rec *rec, const char *const *expected)
{
    size_t n = 0;
    while (expected[n])
        n++;
    bool same = !rec->overflow && n == rec->n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(rec->line[i], expected[i]) == 0;
    if (same)
        return true;
    fprintf(stderr, "recorded sequence differs%s:\n", rec->overflow ? " (overflowed)" : "");
    size_t max = n > rec->n ? n : rec->n;
    for (size_t i = 0; i < max; i++) {
        const char *got = i < rec->n ? rec->line[i] : "";
        const char *want = i < n ? expected[i] : "";
        fprintf(stderr, "  %s %-36s | %s\n", strcmp(got, want) ? "!" : " ", want, got);
    }
    fprintf(stderr, "  (left: expected, right: recorded)\n");
    return false;
}

size_t rs_rec_count(const rs_rec *rec, const char *s)
{
    size_t c = 0;
    for (size_t i = 0; i < rec->n; i++)
        c += strcmp(rec->line[i], s) == 0;
    return c;
}

size_t rs_rec_count_prefix(const rs_rec *rec, const char *prefix)
{
    size_t c = 0, len = strlen(prefix);
    for (size_t i = 0; i < rec->n; i++)
        c += strncmp(rec->line[i], prefix, len) == 0;
    return c;
}

long rs_rec_index(const rs_rec *rec, const char *s)
{
    for (size_t i = 0; i < rec->n; i++)
        if (strcmp(rec->line[i], s) == 0)
            return (long)i;
    return -1;
}

const rs_event *rs_rec_last_event(const rs_rec *rec, rs_event_type type)
{
    for (size_t i = rec->nev; i-- > 0;)
        if (rec->ev[i].type == type)
            return &rec->ev[i];
    return NULL;
}

bool rs_rec_invariant(const rs_vm *vm)
{
    bool ok = rs_is_live(vm) == (rs_get_holds(vm) == 0) && rs_invalid_transitions(vm) == 0;
    if (!ok)
        fprintf(stderr, "invariant broken: state %s, holds 0x%x, invalid transitions %llu\n",
                sname(rs_get_state(vm)), (unsigned)rs_get_holds(vm),
                (unsigned long long)rs_invalid_transitions(vm));
    return ok;
}

rs_holdset rs_rec_holds_v(const rs_state *s)
{
    rs_holdset h = 0;
    for (; *s != RS_STATE__MAX; s++)
        h |= RS_HOLD_BIT(*s);
    return h;
}
