/* xs_store.c: the in-memory xenstore tree.
 *
 * Nodes keep their children in creation order, because DIRECTORY returns
 * them in that order in Xen too.  Every modification of a node (value,
 * permissions, child list) gives it a fresh generation from a counter
 * shared with transaction copies; transactions compare generations to
 * detect conflicts (see xs_trans.c). */
#include "xs_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct xs_caller xs_caller_dom0 = { .domid = 0, .privileged = true };

struct node {
    char *name;                /* last component; "" for the root */
    struct node *parent;
    struct node **kids;
    unsigned nkids, capkids;
    char *val;                 /* malloc'd, may be NULL when len == 0 */
    size_t len;
    struct xs_perm *perms;     /* nperms >= 1; perms[0] = owner + default */
    unsigned nperms;
    uint64_t gen;
};

struct owner_count {
    uint32_t domid;
    unsigned count;
};

#define NSPECIAL 2
static const char *const special_names[NSPECIAL] = { "@introduceDomain", "@releaseDomain" };

struct xs_store {
    struct node *root;
    struct node *special[NSPECIAL];
    uint64_t gen_storage;
    uint64_t *gen;             /* &gen_storage, or the origin's for a clone */
    size_t nnodes;
    struct owner_count *owners; /* nodes per owning domain (quota) */
    unsigned nowners, capowners;
    struct xs_store_limits lim;
    xs_change_hook *change;
    void *change_arg;
    xs_access_hook *access;
    void *access_arg;
};

/* ------------------------------------------------------------ helpers */

static struct node *node_new(const char *name, size_t namelen, const struct xs_perm *perms,
                             unsigned nperms)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->name = strndup(name, namelen);
    n->perms = malloc(nperms * sizeof(*perms));
    if (!n->name || !n->perms) {
        free(n->name);
        free(n->perms);
        free(n);
        return NULL;
    }
    memcpy(n->perms, perms, nperms * sizeof(*perms));
    n->nperms = nperms;
    return n;
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    for (unsigned i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->name);
    free(n->val);
    free(n->perms);
    free(n);
}

static int add_kid(struct node *parent, struct node *kid)
{
    if (parent->nkids == parent->capkids) {
        unsigned cap = parent->capkids ? parent->capkids * 2 : 4;
        struct node **k = realloc(parent->kids, cap * sizeof(*k));
        if (!k)
            return ENOMEM;
        parent->kids = k;
        parent->capkids = cap;
    }
    parent->kids[parent->nkids++] = kid;
    kid->parent = parent;
    return 0;
}

static void remove_kid(struct node *parent, struct node *kid)
{
    for (unsigned i = 0; i < parent->nkids; i++) {
        if (parent->kids[i] == kid) {
            memmove(&parent->kids[i], &parent->kids[i + 1],
                    (parent->nkids - i - 1) * sizeof(*parent->kids));
            parent->nkids--;
            return;
        }
    }
}

static struct node *find_kid(const struct node *n, const char *name, size_t len)
{
    for (unsigned i = 0; i < n->nkids; i++) {
        const char *k = n->kids[i]->name;
        if (strncmp(k, name, len) == 0 && k[len] == '\0')
            return n->kids[i];
    }
    return NULL;
}

static uint64_t next_gen(struct xs_store *st)
{
    return ++*st->gen;
}

static unsigned *owner_slot(struct xs_store *st, uint32_t domid, bool create)
{
    for (unsigned i = 0; i < st->nowners; i++)
        if (st->owners[i].domid == domid)
            return &st->owners[i].count;
    if (!create)
        return NULL;
    if (st->nowners == st->capowners) {
        unsigned cap = st->capowners ? st->capowners * 2 : 8;
        struct owner_count *o = realloc(st->owners, cap * sizeof(*o));
        if (!o)
            return NULL;
        st->owners = o;
        st->capowners = cap;
    }
    st->owners[st->nowners] = (struct owner_count){ domid, 0 };
    return &st->owners[st->nowners++].count;
}

static unsigned owner_count(struct xs_store *st, uint32_t domid)
{
    unsigned *c = owner_slot(st, domid, false);
    return c ? *c : 0;
}

static void owner_add(struct xs_store *st, uint32_t domid, int delta)
{
    unsigned *c = owner_slot(st, domid, delta > 0);
    if (!c)
        return;  /* ENOMEM on a counter: the quota becomes lenient, no harm */
    if (delta < 0 && *c < (unsigned)-delta)
        *c = 0;
    else
        *c += (unsigned)delta;
}

/* Accessor hook: report "path" (its first plen bytes) with generation. */
static void note_access(struct xs_store *st, const char *path, size_t plen, const struct node *n)
{
    if (!st->access)
        return;
    char buf[XS_PATH_BUF];
    if (plen >= sizeof(buf))
        return;
    memcpy(buf, path, plen);
    buf[plen] = '\0';
    st->access(st->access_arg, plen ? buf : "/", n ? n->gen : 0);
}

/* Finds a node by canonical path; reports the access. */
static struct node *lookup(struct xs_store *st, const char *path)
{
    struct node *n;
    if (xs_path_is_special(path)) {
        n = NULL;
        for (int i = 0; i < NSPECIAL; i++)
            if (strcmp(path, special_names[i]) == 0)
                n = st->special[i];
        note_access(st, path, strlen(path), n);
        return n;
    }
    n = st->root;
    const char *p = path + 1;
    while (*p && n) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        n = find_kid(n, p, len);
        p += len;
        if (*p == '/')
            p++;
    }
    note_access(st, path, strlen(path), n);
    return n;
}

/* Deepest existing ancestor of a (missing) path, and the length of its
 * path prefix; the root always exists. */
static struct node *existing_ancestor(struct xs_store *st, const char *path, size_t *plen)
{
    struct node *n = st->root, *last = st->root;
    size_t lastlen = 1;
    const char *p = path + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        n = find_kid(n, p, len);
        if (!n)
            break;
        last = n;
        lastlen = (size_t)(p + len - path);
        p += len;
        if (*p == '/')
            p++;
    }
    *plen = lastlen;
    note_access(st, path, lastlen, last);
    return last;
}

unsigned xs_perm_for(const struct xs_caller *c, const struct xs_perm *perms, unsigned n)
{
    const unsigned all = XS_PERM_READ | XS_PERM_WRITE | XS_PERM_OWNER;
    if (c->privileged || n == 0)
        return all;
    /* The owner, or a domain whose target owns the node, has full rights. */
    if (perms[0].domid == c->domid || (c->has_target && perms[0].domid == c->target))
        return all;
    for (unsigned i = 1; i < n; i++)
        if (perms[i].domid == c->domid || (c->has_target && perms[i].domid == c->target))
            return perms[i].perms & (XS_PERM_READ | XS_PERM_WRITE);
    return perms[0].perms & (XS_PERM_READ | XS_PERM_WRITE);
}

/* Xen's get_node: the node if c has "want", else NULL with *err set.
 * A missing node yields ENOENT only if c may "want" the closest existing
 * ancestor: otherwise EACCES, so a guest learns nothing about nodes it
 * could not see (xenstored errno_from_parents). */
static struct node *get_node(struct xs_store *st, const struct xs_caller *c, const char *path,
                             unsigned want, int *err)
{
    struct node *n = lookup(st, path);
    if (n) {
        if ((xs_perm_for(c, n->perms, n->nperms) & want) != want) {
            *err = EACCES;
            return NULL;
        }
        return n;
    }
    if (xs_path_is_special(path)) {
        *err = ENOENT;
        return NULL;
    }
    size_t plen;
    struct node *a = existing_ancestor(st, path, &plen);
    *err = (xs_perm_for(c, a->perms, a->nperms) & want) ? ENOENT : EACCES;
    return NULL;
}

static void fire(struct xs_store *st, const char *path, enum xs_match m, const struct node *n,
                 const struct xs_perm *old, unsigned nold)
{
    if (st->change)
        st->change(st->change_arg, path, m, n->perms, n->nperms, old, nold);
}

static bool value_too_big(const struct xs_store *st, const struct xs_caller *c, size_t len)
{
    return !c->privileged && st->lim.node_size && len > st->lim.node_size;
}

/* Entry points accept only canonical absolute paths (or a special name
 * where allowed): in-process callers get EINVAL for anything else instead
 * of a corrupted tree. */
static int check_path(const char *path, bool allow_special)
{
    char canon[XS_PATH_BUF];
    bool rel;
    if (!path || (path[0] != '/' && !(allow_special && path[0] == '@')))
        return EINVAL;
    if (xs_path_canonical(&xs_caller_dom0, path, allow_special, canon, &rel) != 0)
        return EINVAL;
    if (xs_path_is_special(path)) {
        for (int i = 0; i < NSPECIAL; i++)
            if (strcmp(path, special_names[i]) == 0)
                return 0;
        return ENOENT;
    }
    return 0;
}

/* ------------------------------------------------------------ lifecycle */

struct xs_store *xs_store_new(void)
{
    struct xs_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->gen = &st->gen_storage;
    st->lim = (struct xs_store_limits){ .node_size = 2048, .perms_max = 5, .nodes_per_domain = 1000 };
    /* Root and the special nodes: owned by dom0, no access for others
     * (xenstored's initial tree). */
    const struct xs_perm p0 = { 0, XS_PERM_NONE };
    st->root = node_new("", 0, &p0, 1);
    if (!st->root)
        goto fail;
    st->root->gen = next_gen(st);
    for (int i = 0; i < NSPECIAL; i++) {
        st->special[i] = node_new(special_names[i], strlen(special_names[i]), &p0, 1);
        if (!st->special[i])
            goto fail;
        st->special[i]->gen = next_gen(st);
    }
    st->nnodes = 1;
    return st;
fail:
    xs_store_free(st);
    return NULL;
}

void xs_store_free(struct xs_store *st)
{
    if (!st)
        return;
    node_free(st->root);
    for (int i = 0; i < NSPECIAL; i++)
        node_free(st->special[i]);
    free(st->owners);
    free(st);
}

void xs_store_set_change_hook(struct xs_store *st, xs_change_hook *fn, void *arg)
{
    st->change = fn;
    st->change_arg = arg;
}

void xs_store_set_access_hook(struct xs_store *st, xs_access_hook *fn, void *arg)
{
    st->access = fn;
    st->access_arg = arg;
}

void xs_store_set_limits(struct xs_store *st, const struct xs_store_limits *lim)
{
    st->lim = *lim;
}

const struct xs_store_limits *xs_store_limits(const struct xs_store *st)
{
    return &st->lim;
}

static struct node *clone_node(const struct node *src, struct node *parent)
{
    struct node *n = node_new(src->name, strlen(src->name), src->perms, src->nperms);
    if (!n)
        return NULL;
    n->parent = parent;
    n->gen = src->gen;
    n->len = src->len;
    if (src->len) {
        n->val = malloc(src->len);
        if (!n->val)
            goto fail;
        memcpy(n->val, src->val, src->len);
    }
    if (src->nkids) {
        n->kids = malloc(src->nkids * sizeof(*n->kids));
        if (!n->kids)
            goto fail;
        n->capkids = src->nkids;
        for (unsigned i = 0; i < src->nkids; i++) {
            n->kids[i] = clone_node(src->kids[i], n);
            if (!n->kids[i])
                goto fail;
            n->nkids++;
        }
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

struct xs_store *xs_store_clone(const struct xs_store *src)
{
    struct xs_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->gen = src->gen;
    st->lim = src->lim;
    st->nnodes = src->nnodes;
    st->root = clone_node(src->root, NULL);
    if (!st->root)
        goto fail;
    for (int i = 0; i < NSPECIAL; i++) {
        st->special[i] = clone_node(src->special[i], NULL);
        if (!st->special[i])
            goto fail;
    }
    if (src->nowners) {
        st->owners = malloc(src->nowners * sizeof(*st->owners));
        if (!st->owners)
            goto fail;
        memcpy(st->owners, src->owners, src->nowners * sizeof(*st->owners));
        st->nowners = st->capowners = src->nowners;
    }
    return st;
fail:
    xs_store_free(st);
    return NULL;
}

/* ------------------------------------------------------------ operations */

int xs_store_read(struct xs_store *st, const struct xs_caller *c, const char *path,
                  char **val, size_t *len)
{
    int perr = check_path(path, false);
    if (perr)
        return perr;
    int err;
    struct node *n = get_node(st, c, path, XS_PERM_READ, &err);
    if (!n)
        return err;
    char *v = malloc(n->len + 1);
    if (!v)
        return ENOMEM;
    if (n->len)
        memcpy(v, n->val, n->len);
    v[n->len] = '\0';
    *val = v;
    *len = n->len;
    return 0;
}

/* Creates the missing nodes of path below its deepest existing ancestor;
 * each inherits its parent's permissions, an unprivileged creator becoming
 * owner (xenstored construct_node).  Returns the new leaf or NULL. */
static struct node *create_path(struct xs_store *st, const struct xs_caller *c, const char *path,
                                const void *val, size_t len, int *err)
{
    size_t plen;
    struct node *parent = existing_ancestor(st, path, &plen);
    const char *p = path + plen;
    if (*p == '/')
        p++;
    /* Count the new nodes first, for the quota and to fail before any
     * change is made. */
    unsigned newnodes = 0;
    for (const char *q = p; q && *q; q = strchr(q, '/'), q = q ? q + 1 : NULL)
        newnodes++;
    if (!c->privileged && st->lim.nodes_per_domain &&
        owner_count(st, c->domid) + newnodes > st->lim.nodes_per_domain) {
        *err = ENOSPC;
        return NULL;
    }
    char *v = NULL;
    if (len) {
        v = malloc(len);
        if (!v) {
            *err = ENOMEM;
            return NULL;
        }
        memcpy(v, val, len);
    }
    struct node *top = NULL, *n = parent;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t clen = slash ? (size_t)(slash - p) : strlen(p);
        struct node *k = node_new(p, clen, n->perms, n->nperms);
        if (!k || add_kid(n, k)) {
            node_free(k);
            goto nomem;
        }
        if (!top)
            top = k;
        if (!c->privileged)
            k->perms[0].domid = c->domid;
        k->gen = next_gen(st);
        owner_add(st, k->perms[0].domid, 1);
        st->nnodes++;
        n = k;
        p += clen;
        if (*p == '/')
            p++;
    }
    parent->gen = next_gen(st);
    n->val = v;
    n->len = len;
    return n;
nomem:
    /* Undo: detach what was added (counters included). */
    if (top) {
        for (struct node *k = top; k; k = k->nkids ? k->kids[0] : NULL) {
            owner_add(st, k->perms[0].domid, -1);
            st->nnodes--;
        }
        remove_kid(parent, top);
        node_free(top);
    }
    free(v);
    *err = ENOMEM;
    return NULL;
}

int xs_store_write(struct xs_store *st, const struct xs_caller *c, const char *path,
                   const void *val, size_t len)
{
    int perr = check_path(path, false);
    if (perr)
        return perr;
    int err;
    if (xs_path_is_special(path))
        return EINVAL;
    if (value_too_big(st, c, len))
        return ENOSPC;
    struct node *n = get_node(st, c, path, XS_PERM_WRITE, &err);
    if (!n) {
        if (err != ENOENT)
            return err;
        n = create_path(st, c, path, val, len, &err);
        if (!n)
            return err;
    } else {
        char *v = NULL;
        if (len) {
            v = malloc(len);
            if (!v)
                return ENOMEM;
            memcpy(v, val, len);
        }
        free(n->val);
        n->val = v;
        n->len = len;
        n->gen = next_gen(st);
    }
    fire(st, path, XS_MATCH_SUBTREE, n, NULL, 0);
    return 0;
}

int xs_store_mkdir(struct xs_store *st, const struct xs_caller *c, const char *path)
{
    int perr = check_path(path, false);
    if (perr)
        return perr;
    int err;
    if (xs_path_is_special(path))
        return EINVAL;
    struct node *n = get_node(st, c, path, XS_PERM_WRITE, &err);
    if (n)
        return 0;
    if (err != ENOENT)
        return err;
    n = create_path(st, c, path, NULL, 0, &err);
    if (!n)
        return err;
    fire(st, path, XS_MATCH_SUBTREE, n, NULL, 0);
    return 0;
}

/* Post-order removal: children first, each firing its own exact event
 * while its permissions are still known, then the removed root a subtree
 * event (xenstored delnode_sub). */
static void remove_subtree(struct xs_store *st, struct node *n, char *path, size_t plen,
                           bool is_root)
{
    for (unsigned i = 0; i < n->nkids; i++) {
        struct node *k = n->kids[i];
        size_t klen = strlen(k->name);
        if (plen + 1 + klen < XS_PATH_BUF) {
            path[plen] = '/';
            memcpy(path + plen + 1, k->name, klen + 1);
            note_access(st, path, plen + 1 + klen, k);
            remove_subtree(st, k, path, plen + 1 + klen, false);
            path[plen] = '\0';
        }
    }
    owner_add(st, n->perms[0].domid, -1);
    st->nnodes--;
    fire(st, path, is_root ? XS_MATCH_SUBTREE : XS_MATCH_EXACT, n, NULL, 0);
}

int xs_store_rm(struct xs_store *st, const struct xs_caller *c, const char *path)
{
    int perr = check_path(path, false);
    if (perr)
        return perr;
    int err;
    if (xs_path_is_special(path))
        return EINVAL;
    struct node *n = get_node(st, c, path, XS_PERM_WRITE, &err);
    if (!n) {
        if (err != ENOENT)
            return err;
        /* Absent: fine if the parent exists. */
        size_t plen;
        existing_ancestor(st, path, &plen);
        const char *slash = strrchr(path, '/');
        size_t parentlen = slash == path ? 1 : (size_t)(slash - path);
        return plen == parentlen ? 0 : ENOENT;
    }
    if (n == st->root)
        return EINVAL;
    char buf[XS_PATH_BUF];
    size_t len = strlen(path);
    if (len >= sizeof(buf))
        return EINVAL;
    memcpy(buf, path, len + 1);
    struct node *parent = n->parent;
    remove_subtree(st, n, buf, len, true);
    remove_kid(parent, n);
    parent->gen = next_gen(st);
    node_free(n);
    return 0;
}

int xs_store_directory(struct xs_store *st, const struct xs_caller *c, const char *path,
                       char **buf, size_t *len, uint64_t *gen)
{
    int perr = check_path(path, false);
    if (perr)
        return perr;
    int err;
    if (xs_path_is_special(path))
        return EINVAL;
    struct node *n = get_node(st, c, path, XS_PERM_READ, &err);
    if (!n)
        return err;
    size_t total = 0;
    for (unsigned i = 0; i < n->nkids; i++)
        total += strlen(n->kids[i]->name) + 1;
    char *b = malloc(total + 1);
    if (!b)
        return ENOMEM;
    size_t off = 0;
    for (unsigned i = 0; i < n->nkids; i++) {
        size_t l = strlen(n->kids[i]->name) + 1;
        memcpy(b + off, n->kids[i]->name, l);
        off += l;
    }
    b[off] = '\0';
    *buf = b;
    *len = total;
    if (gen)
        *gen = n->gen;
    return 0;
}

int xs_store_get_perms(struct xs_store *st, const struct xs_caller *c, const char *path,
                       struct xs_perm **perms, unsigned *np)
{
    int perr = check_path(path, true);
    if (perr)
        return perr;
    int err;
    struct node *n = get_node(st, c, path, XS_PERM_READ, &err);
    if (!n)
        return err;
    struct xs_perm *p = malloc(n->nperms * sizeof(*p));
    if (!p)
        return ENOMEM;
    memcpy(p, n->perms, n->nperms * sizeof(*p));
    *perms = p;
    *np = n->nperms;
    return 0;
}

int xs_store_set_perms(struct xs_store *st, const struct xs_caller *c, const char *path,
                       const struct xs_perm *perms, unsigned np)
{
    int perr = check_path(path, true);
    if (perr)
        return perr;
    int err;
    if (np == 0)
        return EINVAL;
    if (!c->privileged && st->lim.perms_max && np > st->lim.perms_max)
        return ENOSPC;
    for (unsigned i = 0; i < np; i++)
        if (perms[i].domid > XS_DOMID_MAX || (perms[i].perms & ~(XS_PERM_READ | XS_PERM_WRITE)))
            return EINVAL;
    struct node *n = get_node(st, c, path, XS_PERM_WRITE | XS_PERM_OWNER, &err);
    if (!n)
        return err;
    /* Only the control domain may give a node away. */
    if (!c->privileged && perms[0].domid != n->perms[0].domid)
        return EPERM;
    struct xs_perm *p = malloc(np * sizeof(*p));
    if (!p)
        return ENOMEM;
    memcpy(p, perms, np * sizeof(*p));
    struct xs_perm *old = n->perms;
    unsigned nold = n->nperms;
    if (!xs_path_is_special(path) && old[0].domid != p[0].domid) {
        owner_add(st, old[0].domid, -1);
        owner_add(st, p[0].domid, 1);
    }
    n->perms = p;
    n->nperms = np;
    n->gen = next_gen(st);
    fire(st, path, XS_MATCH_SUBTREE, n, old, nold);
    free(old);
    return 0;
}

/* ------------------------------------------------------------ whole tree */

bool xs_store_exists(struct xs_store *st, const char *path)
{
    xs_access_hook *h = st->access;
    st->access = NULL;
    bool r = lookup(st, path) != NULL;
    st->access = h;
    return r;
}

uint64_t xs_store_gen(const struct xs_store *cst, const char *path)
{
    /* lookup() only writes through the hook; run it without one. */
    struct xs_store *st = (struct xs_store *)cst;
    xs_access_hook *h = st->access;
    st->access = NULL;
    struct node *n = lookup(st, path);
    st->access = h;
    return n ? n->gen : 0;
}

uint64_t xs_store_current_gen(const struct xs_store *st)
{
    return *st->gen;
}

size_t xs_store_node_count(const struct xs_store *st)
{
    return st->nnodes;
}

static int visit(const struct node *n, char *path, size_t plen, xs_visit_fn *fn, void *arg)
{
    int r = fn(arg, plen ? path : "/", n->val ? n->val : "", n->len, n->perms, n->nperms);
    if (r)
        return r;
    for (unsigned i = 0; i < n->nkids; i++) {
        size_t klen = strlen(n->kids[i]->name);
        if (plen + 1 + klen >= XS_PATH_BUF)
            return EINVAL;
        path[plen] = '/';
        memcpy(path + plen + 1, n->kids[i]->name, klen + 1);
        r = visit(n->kids[i], path, plen + 1 + klen, fn, arg);
        path[plen] = '\0';
        if (r)
            return r;
    }
    return 0;
}

int xs_store_visit(const struct xs_store *st, xs_visit_fn *fn, void *arg)
{
    char path[XS_PATH_BUF] = "";
    int r = visit(st->root, path, 0, fn, arg);
    for (int i = 0; i < NSPECIAL && !r; i++)
        r = fn(arg, special_names[i], "", 0, st->special[i]->perms, st->special[i]->nperms);
    return r;
}

int xs_store_load_node(struct xs_store *st, const char *path, const void *val, size_t len,
                       const struct xs_perm *perms, unsigned nperms)
{
    int perr = check_path(path, true);
    if (perr)
        return perr;
    if (nperms == 0)
        return EINVAL;
    xs_access_hook *h = st->access;
    xs_change_hook *ch = st->change;
    st->access = NULL;
    st->change = NULL;
    int err = 0;
    struct node *n = lookup(st, path);
    if (!n && !xs_path_is_special(path))
        n = create_path(st, &xs_caller_dom0, path, NULL, 0, &err);
    st->access = h;
    st->change = ch;
    if (!n)
        return err ? err : ENOENT;
    struct xs_perm *p = malloc(nperms * sizeof(*p));
    char *v = len ? malloc(len) : NULL;
    if (!p || (len && !v)) {
        free(p);
        free(v);
        return ENOMEM;
    }
    memcpy(p, perms, nperms * sizeof(*p));
    if (len)
        memcpy(v, val, len);
    if (!xs_path_is_special(path)) {
        owner_add(st, n->perms[0].domid, -1);
        owner_add(st, p[0].domid, 1);
    }
    free(n->perms);
    n->perms = p;
    n->nperms = nperms;
    free(n->val);
    n->val = v;
    n->len = len;
    n->gen = next_gen(st);
    return 0;
}

/* ------------------------------------------------------------ perm strings */

bool xs_perm_parse(const char *s, struct xs_perm *out)
{
    unsigned bits;
    switch (s[0]) {
    case 'n': bits = XS_PERM_NONE; break;
    case 'r': bits = XS_PERM_READ; break;
    case 'w': bits = XS_PERM_WRITE; break;
    case 'b': bits = XS_PERM_READ | XS_PERM_WRITE; break;
    default: return false;
    }
    const char *d = s + 1;
    if (*d < '0' || *d > '9')
        return false;
    unsigned long v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9')
            return false;
        v = v * 10 + (unsigned long)(*d - '0');
        if (v > XS_DOMID_MAX)
            return false;
    }
    out->domid = (uint32_t)v;
    out->perms = bits;
    return true;
}

void xs_perm_format(const struct xs_perm *p, char *buf, size_t size)
{
    static const char letters[4] = { 'n', 'r', 'w', 'b' };
    snprintf(buf, size, "%c%u", letters[p->perms & 3u], (unsigned)p->domid);
}
