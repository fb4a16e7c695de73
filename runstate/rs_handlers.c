/*
 * Change-state handlers: a list sorted by ascending priority (ties in
 * registration order), walked forwards on start and backwards on stop,
 * prepare callbacks first.  Removal during a walk only marks the entry;
 * the walk that is running frees it when it ends.
 */
#include <errno.h>
#include <stdlib.h>

#include "rs_internal.h"

rs_handler *rs_handler_add_full(rs_vm *vm, rs_handler_fn cb, rs_handler_fn prepare,
                                rs_handler_ret_fn cb_ret, void *opaque, int priority)
{
    if (!vm || (!cb && !cb_ret) || (cb && cb_ret)) {
        errno = EINVAL;
        return NULL;
    }
    if (!rs_on_main(vm)) {
        rs_log(vm, RS_LOG_ERROR, "rs_handler_add: called outside the main loop thread");
        errno = EPERM;
        return NULL;
    }
    rs_handler *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cb = cb;
    h->prepare = prepare;
    h->cb_ret = cb_ret;
    h->opaque = opaque;
    h->priority = priority;
    h->added_pass = vm->notify_depth ? vm->pass : 0;

    /* Before the first entry with a strictly greater priority. */
    rs_handler *at = vm->head;
    while (at && at->priority <= priority)
        at = at->next;
    h->next = at;
    h->prev = at ? at->prev : vm->tail;
    if (h->prev)
        h->prev->next = h;
    else
        vm->head = h;
    if (at)
        at->prev = h;
    else
        vm->tail = h;
    return h;
}

rs_handler *rs_handler_add(rs_vm *vm, rs_handler_fn cb, void *opaque, int priority)
{
    return rs_handler_add_full(vm, cb, NULL, NULL, opaque, priority);
}

static void unlink_free(rs_vm *vm, rs_handler *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        vm->head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        vm->tail = h->prev;
    free(h);
}

int rs_handler_del(rs_vm *vm, rs_handler *h)
{
    RS_REQUIRE_MAIN(vm);
    if (!h)
        return -EINVAL;
    rs_handler *it = vm->head;
    while (it && it != h)
        it = it->next;
    if (!it || it->dead)
        return -ENOENT;
    if (vm->notify_depth) {
        it->dead = true;
        return 0;
    }
    unlink_free(vm, it);
    return 0;
}

static bool skip(const rs_vm *vm, const rs_handler *h)
{
    return h->dead || (h->added_pass && h->added_pass == vm->pass);
}

static void sweep(rs_vm *vm)
{
    rs_handler *h = vm->head;
    while (h) {
        rs_handler *next = h->next;
        if (h->dead)
            unlink_free(vm, h);
        h = next;
    }
}

int rs_notify(rs_vm *vm, bool running, rs_state state)
{
    int ret = 0;
    if (vm->notify_depth == 0)
        vm->pass++;
    vm->notify_depth++;
    vm->busy++;
    if (running) {
        for (rs_handler *h = vm->head; h; h = h->next)
            if (!skip(vm, h) && h->prepare)
                h->prepare(h->opaque, running, state);
        for (rs_handler *h = vm->head; h; h = h->next) {
            if (skip(vm, h))
                continue;
            if (h->cb)
                h->cb(h->opaque, running, state);
            else
                (void)h->cb_ret(h->opaque, running, state);
        }
    } else {
        for (rs_handler *h = vm->tail; h; h = h->prev)
            if (!skip(vm, h) && h->prepare)
                h->prepare(h->opaque, running, state);
        for (rs_handler *h = vm->tail; h; h = h->prev) {
            if (skip(vm, h))
                continue;
            if (h->cb)
                h->cb(h->opaque, running, state);
            else
                ret |= h->cb_ret(h->opaque, running, state);
        }
    }
    vm->busy--;
    if (--vm->notify_depth == 0)
        sweep(vm);
    return ret;
}

void rs_handlers_free(rs_vm *vm)
{
    rs_handler *h = vm->head;
    while (h) {
        rs_handler *next = h->next;
        free(h);
        h = next;
    }
    vm->head = vm->tail = NULL;
}
