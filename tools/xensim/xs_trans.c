/* xs_trans.c: snapshot transactions with generation-checked commit. */
#include "xs_trans.h"
#include "xsim_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum op_kind { OP_WRITE, OP_MKDIR, OP_RM, OP_SET_PERMS };

struct op {
    struct op *next;
    enum op_kind kind;
    char *path;
    char *val;              /* OP_WRITE */
    size_t len;
    struct xs_perm *perms;  /* OP_SET_PERMS */
    unsigned nperms;
};

struct access {
    struct access *next;
    uint64_t gen;
    char path[];
};

struct xs_trans {
    uint32_t id;
    uint64_t start_gen;     /* snapshot nodes newer than this are our own */
    struct xs_store *live, *snap;
    struct access **buckets;
    unsigned nbuckets, naccess, max_nodes;
    struct op *ops, **ops_tail;
    int failed;             /* errno that dooms the commit, or 0 */
};

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void grow(struct xs_trans *t)
{
    unsigned nb = t->nbuckets * 2;
    struct access **b = calloc(nb, sizeof(*b));
    if (!b)
        return;  /* keep the longer chains; still correct */
    for (unsigned i = 0; i < t->nbuckets; i++) {
        struct access *a = t->buckets[i], *next;
        for (; a; a = next) {
            next = a->next;
            unsigned h = hash_str(a->path) & (nb - 1);
            a->next = b[h];
            b[h] = a;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

/* Access hook on the snapshot: remember the first generation seen. */
static void on_access(void *arg, const char *path, uint64_t gen)
{
    struct xs_trans *t = arg;
    /* A node this transaction created or changed: what it depended on
     * was recorded when it was first looked up (or, for a created node,
     * through its existing ancestor), and the live tree never had this
     * generation. */
    if (gen > t->start_gen)
        return;
    unsigned h = hash_str(path) & (t->nbuckets - 1);
    for (struct access *a = t->buckets[h]; a; a = a->next)
        if (strcmp(a->path, path) == 0)
            return;
    if (t->max_nodes && t->naccess >= t->max_nodes) {
        t->failed = ENOSPC;
        return;
    }
    size_t len = strlen(path);
    struct access *a = malloc(sizeof(*a) + len + 1);
    if (!a) {
        t->failed = ENOMEM;
        return;
    }
    memcpy(a->path, path, len + 1);
    a->gen = gen;
    a->next = t->buckets[h];
    t->buckets[h] = a;
    if (++t->naccess > t->nbuckets * 2)
        grow(t);
}

struct xs_trans *xs_trans_start(struct xs_store *live, uint32_t id, unsigned max_nodes)
{
    struct xs_trans *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->id = id;
    t->live = live;
    t->max_nodes = max_nodes;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    t->snap = xs_store_clone(live);
    t->start_gen = xs_store_current_gen(live);
    if (!t->buckets || !t->snap) {
        xs_store_free(t->snap);
        free(t->buckets);
        free(t);
        return NULL;
    }
    t->ops_tail = &t->ops;
    xs_store_set_access_hook(t->snap, on_access, t);
    return t;
}

uint32_t xs_trans_id(const struct xs_trans *t)
{
    return t->id;
}

struct xs_store *xs_trans_store(struct xs_trans *t)
{
    return t->snap;
}

int xs_trans_check(struct xs_trans *t)
{
    return t->failed == ENOSPC ? ENOSPC : 0;
}

static int log_op(struct xs_trans *t, enum op_kind kind, const char *path, const void *val,
                  size_t len, const struct xs_perm *perms, unsigned nperms)
{
    struct op *o = calloc(1, sizeof(*o));
    if (!o)
        goto nomem;
    o->kind = kind;
    o->path = strdup(path);
    if (!o->path)
        goto nomem;
    if (len) {
        o->val = malloc(len);
        if (!o->val)
            goto nomem;
        memcpy(o->val, val, len);
        o->len = len;
    }
    if (nperms) {
        o->perms = malloc(nperms * sizeof(*perms));
        if (!o->perms)
            goto nomem;
        memcpy(o->perms, perms, nperms * sizeof(*perms));
        o->nperms = nperms;
    }
    *t->ops_tail = o;
    t->ops_tail = &o->next;
    return 0;
nomem:
    if (o) {
        free(o->path);
        free(o->val);
        free(o);
    }
    /* The snapshot already changed: the transaction cannot commit. */
    t->failed = ENOMEM;
    return ENOMEM;
}

/* A modifying op: run on the snapshot, then log it if it succeeded. */
static int finish(struct xs_trans *t, int r, enum op_kind kind, const char *path,
                  const void *val, size_t len, const struct xs_perm *perms, unsigned n)
{
    if (t->failed == ENOSPC)
        return ENOSPC;
    if (r)
        return r;
    return log_op(t, kind, path, val, len, perms, n);
}

int xs_trans_write(struct xs_trans *t, const struct xs_caller *c, const char *path,
                   const void *val, size_t len)
{
    int r = xs_store_write(t->snap, c, path, val, len);
    return finish(t, r, OP_WRITE, path, val, len, NULL, 0);
}

int xs_trans_mkdir(struct xs_trans *t, const struct xs_caller *c, const char *path)
{
    int r = xs_store_mkdir(t->snap, c, path);
    return finish(t, r, OP_MKDIR, path, NULL, 0, NULL, 0);
}

int xs_trans_rm(struct xs_trans *t, const struct xs_caller *c, const char *path)
{
    int r = xs_store_rm(t->snap, c, path);
    return finish(t, r, OP_RM, path, NULL, 0, NULL, 0);
}

int xs_trans_set_perms(struct xs_trans *t, const struct xs_caller *c, const char *path,
                       const struct xs_perm *perms, unsigned n)
{
    int r = xs_store_set_perms(t->snap, c, path, perms, n);
    return finish(t, r, OP_SET_PERMS, path, NULL, 0, perms, n);
}

static bool conflicts(struct xs_trans *t)
{
    for (unsigned i = 0; i < t->nbuckets; i++)
        for (struct access *a = t->buckets[i]; a; a = a->next)
            if (xs_store_gen(t->live, a->path) != a->gen)
                return true;
    return false;
}

static void replay(struct xs_trans *t, const struct xs_caller *c)
{
    for (struct op *o = t->ops; o; o = o->next) {
        int r = 0;
        switch (o->kind) {
        case OP_WRITE: r = xs_store_write(t->live, c, o->path, o->val, o->len); break;
        case OP_MKDIR: r = xs_store_mkdir(t->live, c, o->path); break;
        case OP_RM: r = xs_store_rm(t->live, c, o->path); break;
        case OP_SET_PERMS: r = xs_store_set_perms(t->live, c, o->path, o->perms, o->nperms); break;
        }
        /* Only ENOMEM can get here: the nodes the operation depended on
         * were verified unchanged. */
        if (r)
            xsim_err("transaction %u: replaying an operation on %s failed at commit: %s",
                     (unsigned)t->id, o->path, strerror(r));
    }
}

int xs_trans_end(struct xs_trans *t, const struct xs_caller *c, bool commit)
{
    int r = 0;
    if (commit) {
        if (t->failed)
            r = t->failed;
        else if (conflicts(t))
            r = EAGAIN;
        else
            replay(t, c);
    }
    for (struct op *o = t->ops, *next; o; o = next) {
        next = o->next;
        free(o->path);
        free(o->val);
        free(o->perms);
        free(o);
    }
    for (unsigned i = 0; i < t->nbuckets; i++)
        for (struct access *a = t->buckets[i], *next; a; a = next) {
            next = a->next;
            free(a);
        }
    free(t->buckets);
    xs_store_free(t->snap);
    free(t);
    return r;
}
