/* xs_watch.c: watches and the events they produce.
 *
 * A change at path P (store change hook) is matched against every watch
 * of every connection, as xenstored's fire_watches does: a subtree change
 * matches watches on P and on P's ancestors (within the watch's depth),
 * an exact one (a descendant of a removed node) only watches on P itself.
 * A connection gets events only for nodes it may read, judged with the
 * node's permissions at the time of the change (the old ones too, for a
 * permission change) or its parent's (xenstored watch_permitted). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xs_internal.h"
#include "xsim_log.h"

int xs_watch_add(struct xs_conn *c, const char *path, const char *token, size_t prefix_len,
                 int depth)
{
    for (struct xs_watch *w = c->watches; w; w = w->next)
        if (strcmp(w->path, path) == 0 && strcmp(w->token, token) == 0)
            return EEXIST;
    if (c->nwatches >= c->quota->watches)
        return ENOSPC;
    struct xs_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return ENOMEM;
    w->path = strdup(path);
    w->token = strdup(token);
    if (!w->path || !w->token) {
        free(w->path);
        free(w->token);
        free(w);
        return ENOMEM;
    }
    w->prefix_len = prefix_len;
    w->depth = depth;
    /* Append, so events of one change come in registration order. */
    struct xs_watch **pp = &c->watches;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    c->nwatches++;
    return 0;
}

static void watch_free(struct xs_watch *w)
{
    free(w->path);
    free(w->token);
    free(w);
}

int xs_watch_remove(struct xs_conn *c, const char *path, const char *token)
{
    for (struct xs_watch **pp = &c->watches; *pp; pp = &(*pp)->next) {
        struct xs_watch *w = *pp;
        if (strcmp(w->path, path) == 0 && strcmp(w->token, token) == 0) {
            *pp = w->next;
            watch_free(w);
            c->nwatches--;
            return 0;
        }
    }
    return ENOENT;
}

void xs_watch_remove_all(struct xs_conn *c)
{
    while (c->watches) {
        struct xs_watch *w = c->watches;
        c->watches = w->next;
        watch_free(w);
    }
    c->nwatches = 0;
}

/* Is child at or below parent, at most depth levels down (xenstored
 * is_child)? */
static bool is_child(const char *child, const char *parent, int depth)
{
    size_t len = strlen(parent);
    if (strncmp(child, parent, len) != 0)
        return false;
    if (len > 1 && child[len] != '/' && child[len] != '\0')
        return false;
    if (depth < 0 || child[len] == '\0')
        return true;
    int levels = len == 1 ? 1 : 0;
    for (const char *p = child + len; *p; p++)
        if (*p == '/')
            levels++;
    return levels <= depth;
}

static bool may_read(const struct xs_conn *c, const struct xs_perm *perms, unsigned n)
{
    return n && (xs_perm_for(&c->caller, perms, n) & XS_PERM_READ);
}

static bool watch_permitted(struct xs_conn *c, const char *path, const struct xs_perm *perms,
                            unsigned nperms, const struct xs_perm *old, unsigned nold)
{
    if (c->caller.privileged)
        return true;
    if (may_read(c, perms, nperms) || may_read(c, old, nold))
        return true;
    if (xs_path_is_special(path))
        return false;
    /* The parent's permissions (it may still exist after a removal). */
    char parent[XS_PATH_BUF];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        strcpy(parent, "/");
    else {
        size_t l = (size_t)(slash - path);
        memcpy(parent, path, l);
        parent[l] = '\0';
    }
    struct xs_perm *pp = NULL;
    unsigned np = 0;
    bool ok = false;
    if (xs_store_get_perms(c->srv->store, &xs_caller_dom0, parent, &pp, &np) == 0)
        ok = may_read(c, pp, np);
    free(pp);
    return ok;
}

static void fire(struct xs_server *srv, const char *path, enum xs_match match,
                 const struct xs_perm *perms, unsigned nperms, const struct xs_perm *old,
                 unsigned nold)
{
    for (struct xs_conn *c = srv->conns; c; c = c->next) {
        if (c->dead || !c->watches)
            continue;
        bool checked = false, permitted = false;
        for (struct xs_watch *w = c->watches; w; w = w->next) {
            bool hit = match == XS_MATCH_EXACT ? strcmp(path, w->path) == 0
                                               : is_child(path, w->path, w->depth);
            if (!hit)
                continue;
            if (!checked) {
                permitted = watch_permitted(c, path, perms, nperms, old, nold);
                checked = true;
            }
            if (!permitted)
                break;
            /* Relative watches get relative paths. */
            const char *ev = path;
            if (w->prefix_len && strlen(path) >= w->prefix_len)
                ev = path + w->prefix_len;
            xs_conn_event(c, ev, w->token);
        }
    }
}

void xs_watch_on_change(void *arg, const char *path, enum xs_match match,
                        const struct xs_perm *perms, unsigned nperms,
                        const struct xs_perm *old, unsigned nold)
{
    struct xs_server *srv = arg;
    fire(srv, path, match, perms, nperms, old, nold);
    xs_server_changed(srv);
}

void xs_watch_fire_special(struct xs_server *srv, const char *name)
{
    struct xs_perm *p = NULL;
    unsigned n = 0;
    if (xs_store_get_perms(srv->store, &xs_caller_dom0, name, &p, &n) != 0) {
        xsim_err("xenstored: special node %s has no permissions; not firing it", name);
        return;
    }
    fire(srv, name, XS_MATCH_SUBTREE, p, n, NULL, 0);
    free(p);
}
