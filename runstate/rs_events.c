/*
 * Events: delivered to the registered sinks on the main loop thread, in
 * emission order.  Events from other threads wait in a queue that the main
 * loop empties before it delivers an event of its own and before it acts
 * on requests, which is what puts BLOCK_IO_ERROR before its STOP.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rs_internal.h"

void rs_event_init(rs_event *ev, rs_event_type type)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->hold = RS_STATE__MAX;
    ev->cause = RS_CAUSE_NONE;
}

int rs_event_sink_add(rs_vm *vm, rs_event_fn fn, void *opaque)
{
    RS_REQUIRE_MAIN(vm);
    if (!fn)
        return -EINVAL;
    if (vm->nsinks == RS_MAX_SINKS)
        return -ENOSPC;
    vm->sinks[vm->nsinks].fn = fn;
    vm->sinks[vm->nsinks].opaque = opaque;
    vm->nsinks++;
    return 0;
}

int rs_event_sink_del(rs_vm *vm, rs_event_fn fn, void *opaque)
{
    RS_REQUIRE_MAIN(vm);
    for (size_t i = 0; i < vm->nsinks; i++) {
        if (vm->sinks[i].fn == fn && vm->sinks[i].opaque == opaque) {
            memmove(&vm->sinks[i], &vm->sinks[i + 1], (vm->nsinks - i - 1) * sizeof(vm->sinks[0]));
            vm->nsinks--;
            return 0;
        }
    }
    return -ENOENT;
}

static void deliver(rs_vm *vm, const rs_event *ev)
{
    vm->busy++;
    /* A sink may remove itself: iterate over a copy of the list. */
    size_t n = vm->nsinks;
    rs_sink sinks[RS_MAX_SINKS];
    memcpy(sinks, vm->sinks, n * sizeof(sinks[0]));
    for (size_t i = 0; i < n; i++)
        sinks[i].fn(sinks[i].opaque, ev);
    vm->busy--;
}

void rs_flush_event_queue(rs_vm *vm)
{
    for (;;) {
        pthread_mutex_lock(&vm->ev_lock);
        rs_event *q = vm->evq;
        size_t n = vm->evq_len;
        vm->evq = NULL;
        vm->evq_len = vm->evq_cap = 0;
        pthread_mutex_unlock(&vm->ev_lock);
        if (!q)
            return;
        for (size_t i = 0; i < n; i++)
            deliver(vm, &q[i]);
        free(q);
    }
}

void rs_emit_ev(rs_vm *vm, rs_event *ev)
{
    ev->mono_ns = rs_now_mono();
    ev->wall_ns = rs_now_wall();
    ev->state = rs_get_state(vm);
    ev->holds = rs_get_holds(vm);
    rs_flush_event_queue(vm);
    deliver(vm, ev);
}

void rs_emit(rs_vm *vm, rs_event_type type, rs_state hold)
{
    rs_event ev;
    rs_event_init(&ev, type);
    ev.hold = hold;
    rs_emit_ev(vm, &ev);
}

int rs_post_event(rs_vm *vm, const rs_event *ev)
{
    if (!vm || !ev || (unsigned)ev->type >= RS_EV__MAX)
        return -EINVAL;
    rs_event copy = *ev;
    if (rs_on_main(vm)) {
        rs_emit_ev(vm, &copy);
        return 0;
    }
    copy.mono_ns = rs_now_mono();
    copy.wall_ns = rs_now_wall();
    copy.state = rs_get_state(vm);
    copy.holds = rs_get_holds(vm);
    pthread_mutex_lock(&vm->ev_lock);
    if (vm->evq_len == vm->evq_cap) {
        size_t cap = vm->evq_cap ? vm->evq_cap * 2 : 8;
        rs_event *q = realloc(vm->evq, cap * sizeof(*q));
        if (!q) {
            pthread_mutex_unlock(&vm->ev_lock);
            return -ENOMEM;
        }
        vm->evq = q;
        vm->evq_cap = cap;
    }
    vm->evq[vm->evq_len++] = copy;
    pthread_mutex_unlock(&vm->ev_lock);
    rs_kick(vm);
    return 0;
}

void rs_events_free(rs_vm *vm)
{
    free(vm->evq);
    vm->evq = NULL;
    vm->evq_len = vm->evq_cap = 0;
}
