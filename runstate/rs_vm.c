/*
 * The machine object: creation, the published display and hold set,
 * logging, the transition history, and the primitive that moves the
 * display (the only place that does, so every move is checked).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rs_internal.h"

rs_vm *rs_vm_new(void)
{
    rs_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    vm->owner = pthread_self();
    atomic_init(&vm->display, RS_PRELAUNCH);
    atomic_init(&vm->holdset, 0);
    atomic_init(&vm->invalid_transitions, 0);
    atomic_init(&vm->stop_prepared, false);
    vm->actions = (rs_actions){ RS_REBOOT_RESET, RS_SHUTDOWN_POWEROFF, RS_PANIC_SHUTDOWN,
                                RS_WATCHDOG_RESET };
    /* QEMU enables every reason but NONE. */
    atomic_init(&vm->wakeup_mask, (1u << RS_WAKEUP_RTC) | (1u << RS_WAKEUP_PMTIMER) | (1u << RS_WAKEUP_OTHER));
    vm->pending.shutdown_code = -1;
    if (pthread_mutex_init(&vm->ev_lock, NULL) != 0) {
        free(vm);
        errno = ENOMEM;
        return NULL;
    }
    int r = rs_requests_init(vm);
    if (r < 0) {
        pthread_mutex_destroy(&vm->ev_lock);
        free(vm);
        errno = -r;
        return NULL;
    }
    /* QEMU starts in prelaunch; here that is a hold, cleared by the first cont. */
    rs_hold_add(vm, RS_PRELAUNCH);
    return vm;
}

void rs_vm_free(rs_vm *vm)
{
    if (!vm)
        return;
    if (!rs_on_main(vm))
        rs_log(vm, RS_LOG_WARNING, "rs_vm_free called outside the main loop thread");
    rs_handlers_free(vm);
    rs_events_free(vm);
    rs_requests_free(vm);
    pthread_mutex_destroy(&vm->ev_lock);
    free(vm);
}

bool rs_on_main(const rs_vm *vm)
{
    return pthread_equal(pthread_self(), vm->owner);
}

void rs_set_log(rs_vm *vm, rs_log_fn fn, void *opaque)
{
    if (!vm || !rs_on_main(vm))
        return;
    vm->log_fn = fn;
    vm->log_opaque = opaque;
}

void rs_set_hooks(rs_vm *vm, const rs_hooks *hooks)
{
    if (!vm || !rs_on_main(vm))
        return;
    if (hooks)
        vm->hooks = *hooks;
    else
        memset(&vm->hooks, 0, sizeof(vm->hooks));
}

void rs_log(rs_vm *vm, rs_log_level level, const char *fmt, ...)
{
    /* Only the main loop may read log_fn: rs_set_log writes it there. */
    rs_log_fn fn = vm && rs_on_main(vm) ? vm->log_fn : NULL;
    /* Every display change logs at debug level: format only when someone
     * reads it (formatting was most of a stop+start cycle's fixed cost). */
    if (!fn && level > RS_LOG_WARNING)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (fn) {
        fn(vm->log_opaque, level, msg);
        return;
    }
    static const char *const lv[] = { "error", "warning", "info", "debug" };
    fprintf(stderr, "runstate: %s: %s\n", lv[level], msg);
}

void rs_seterr(rs_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

static int64_t now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rs_now_mono(void)
{
    return now(CLOCK_MONOTONIC);
}

int64_t rs_now_wall(void)
{
    return now(CLOCK_REALTIME);
}

rs_state rs_get_state(const rs_vm *vm)
{
    return vm ? (rs_state)atomic_load(&vm->display) : RS_STATE__MAX;
}

rs_holdset rs_get_holds(const rs_vm *vm)
{
    return vm ? atomic_load(&vm->holdset) : 0;
}

bool rs_is_running(const rs_vm *vm)
{
    return rs_get_state(vm) == RS_RUNNING;
}

bool rs_is_live(const rs_vm *vm)
{
    return rs_state_is_live(rs_get_state(vm));
}

bool rs_needs_reset(const rs_vm *vm)
{
    return vm && (rs_get_holds(vm) & (RS_HOLD_BIT(RS_SHUTDOWN) | RS_HOLD_BIT(RS_INTERNAL_ERROR)));
}

bool rs_was_suspended(const rs_vm *vm)
{
    return vm && vm->was_suspended;
}

bool rs_autostart_pending(const rs_vm *vm)
{
    return vm && vm->autostart;
}

uint64_t rs_invalid_transitions(const rs_vm *vm)
{
    return vm ? atomic_load(&vm->invalid_transitions) : 0;
}

bool rs_set_display(rs_vm *vm, rs_state to, const char *cause)
{
    rs_state from = rs_get_state(vm);
    if (from == to)
        return true;
    if (!rs_transition_allowed(from, to)) {
        atomic_fetch_add(&vm->invalid_transitions, 1);
        rs_log(vm, RS_LOG_ERROR, "invalid runstate transition: '%s' -> '%s' (%s); refused",
               rs_state_name(from), rs_state_name(to), cause);
        return false;
    }
    atomic_store(&vm->display, (int)to);
    rs_transition_rec *rec = &vm->history[vm->history_next];
    rec->from = from;
    rec->to = to;
    rec->mono_ns = rs_now_mono();
    rec->wall_ns = rs_now_wall();
    snprintf(rec->cause, sizeof(rec->cause), "%s", cause);
    vm->history_next = (vm->history_next + 1) % RS_HISTORY_LEN;
    if (vm->history_len < RS_HISTORY_LEN)
        vm->history_len++;
    rs_log(vm, RS_LOG_DEBUG, "runstate %s -> %s (%s)", rs_state_name(from), rs_state_name(to),
           cause);
    return true;
}

size_t rs_history(const rs_vm *vm, rs_transition_rec *out, size_t max)
{
    if (!vm)
        return 0;
    size_t n = vm->history_len < max ? vm->history_len : max;
    /* Oldest first: start n entries before the write position. */
    size_t start = (vm->history_next + RS_HISTORY_LEN - vm->history_len) % RS_HISTORY_LEN;
    start = (start + (vm->history_len - n)) % RS_HISTORY_LEN;
    for (size_t i = 0; i < n && out; i++)
        out[i] = vm->history[(start + i) % RS_HISTORY_LEN];
    return vm->history_len;
}

void rs_hold_add(rs_vm *vm, rs_state reason)
{
    rs_hold *h = &vm->holds[reason];
    if (h->held)
        return;
    h->held = true;
    h->seq = ++vm->hold_seq;
    h->since_mono_ns = rs_now_mono();
    h->since_wall_ns = rs_now_wall();
    atomic_fetch_or(&vm->holdset, RS_HOLD_BIT(reason));
}

void rs_hold_del(rs_vm *vm, rs_state reason)
{
    vm->holds[reason].held = false;
    atomic_fetch_and(&vm->holdset, ~RS_HOLD_BIT(reason));
}

bool rs_held(const rs_vm *vm, rs_state reason)
{
    return vm->holds[reason].held;
}

bool rs_transient_held(const rs_vm *vm)
{
    return rs_held(vm, RS_SAVE_VM) || rs_held(vm, RS_RESTORE_VM);
}

size_t rs_holds_ordered(const rs_vm *vm, rs_state *out, bool newest_first)
{
    size_t n = 0;
    for (int s = 0; s < RS_STATE__MAX; s++)
        if (vm->holds[s].held)
            out[n++] = (rs_state)s;
    /* Insertion sort by sequence: at most 16 entries. */
    for (size_t i = 1; i < n; i++) {
        rs_state x = out[i];
        size_t j = i;
        while (j > 0 && (newest_first ? vm->holds[out[j - 1]].seq < vm->holds[x].seq
                                      : vm->holds[out[j - 1]].seq > vm->holds[x].seq)) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = x;
    }
    return n;
}

size_t rs_list_holds(const rs_vm *vm, rs_hold_info *out, size_t max)
{
    if (!vm)
        return 0;
    rs_state order[RS_STATE__MAX];
    size_t n = rs_holds_ordered(vm, order, false);
    for (size_t i = 0; i < n && i < max && out; i++) {
        const rs_hold *h = &vm->holds[order[i]];
        out[i] = (rs_hold_info){ order[i], rs_state_group(order[i]), h->seq, h->since_mono_ns,
                                 h->since_wall_ns };
    }
    return n;
}
