/* xs_ops.c: the request handlers, one per xenstore message type.
 *
 * Each handler validates its payload (a malformed one gets EINVAL, as in
 * xenstored), runs the operation on the live tree or on the request's
 * transaction, and queues exactly one reply (or an error).  Handlers
 * return 0 when they replied, or an errno the dispatcher sends back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xs_internal.h"
#include "xsim_log.h"

struct req {
    struct xs_conn *c;
    const struct xsd_sockmsg *h;
    const char *p;               /* payload, NUL appended */
    size_t len;
    struct xs_trans *t;          /* the request's transaction, or NULL */
};

static struct xs_store *store_of(struct req *r)
{
    return r->t ? xs_trans_store(r->t) : r->c->srv->store;
}

/* Canonical path of the single-string payload. */
static int one_path(struct req *r, bool special, char *out, bool *relative)
{
    const char *arg = xs_wire_onearg(r->p, r->len);
    if (!arg)
        return EINVAL;
    return xs_path_canonical(&r->c->caller, arg, special, out, relative);
}

static int after_read_op(struct req *r, int err)
{
    if (!err && r->t)
        err = xs_trans_check(r->t);
    return err;
}

static int op_read(struct req *r)
{
    char path[XS_PATH_BUF];
    bool rel;
    int e = one_path(r, false, path, &rel);
    if (e)
        return e;
    char *val;
    size_t len;
    e = after_read_op(r, xs_store_read(store_of(r), &r->c->caller, path, &val, &len));
    if (e)
        return e;
    xs_conn_reply(r->c, r->h, XS_READ, val, len);
    free(val);
    return 0;
}

static int op_directory(struct req *r)
{
    char path[XS_PATH_BUF];
    bool rel;
    int e = one_path(r, false, path, &rel);
    if (e)
        return e;
    char *buf;
    size_t len;
    e = after_read_op(r, xs_store_directory(store_of(r), &r->c->caller, path, &buf, &len, NULL));
    if (e)
        return e;
    /* Over 4096 bytes: E2BIG, and libxenstore falls back to
     * DIRECTORY_PART. */
    xs_conn_reply(r->c, r->h, XS_DIRECTORY, buf, len);
    free(buf);
    return 0;
}

static int op_directory_part(struct req *r)
{
    const char *v[2];
    if (xs_wire_strings(r->p, r->len, v, 2) != 2)
        return EINVAL;
    char path[XS_PATH_BUF];
    bool rel;
    int e = xs_path_canonical(&r->c->caller, v[0], false, path, &rel);
    if (e)
        return e;
    char *end;
    unsigned long off = strtoul(v[1], &end, 10);
    if (*end || end == v[1])
        return EINVAL;
    char *buf;
    size_t len;
    uint64_t gen;
    e = after_read_op(r, xs_store_directory(store_of(r), &r->c->caller, path, &buf, &len, &gen));
    if (e)
        return e;
    /* Reply: generation NUL, then as many whole names from byte offset
     * off as fit; an empty string marks the end of the list. */
    char out[XENSTORE_PAYLOAD_MAX];
    int gl = snprintf(out, sizeof(out), "%llu", (unsigned long long)gen) + 1;
    size_t o = (size_t)gl;
    if (off >= len) {
        out[o++] = '\0';
    } else {
        /* Align off to a name boundary (a client sends what we gave it). */
        size_t pos = off;
        size_t maxlen = XENSTORE_PAYLOAD_MAX - (size_t)gl - 1;
        size_t used = 0;
        while (pos < len) {
            size_t nl = strlen(buf + pos) + 1;
            if (used + nl > maxlen)
                break;
            memcpy(out + o + used, buf + pos, nl);
            used += nl;
            pos += nl;
        }
        o += used;
        if (pos >= len)
            out[o++] = '\0';
    }
    free(buf);
    xs_conn_reply(r->c, r->h, XS_DIRECTORY_PART, out, o);
    return 0;
}

static int op_get_perms(struct req *r)
{
    char path[XS_PATH_BUF];
    bool rel;
    int e = one_path(r, true, path, &rel);
    if (e)
        return e;
    struct xs_perm *p;
    unsigned n;
    e = after_read_op(r, xs_store_get_perms(store_of(r), &r->c->caller, path, &p, &n));
    if (e)
        return e;
    char out[XENSTORE_PAYLOAD_MAX + 16];
    size_t o = 0;
    for (unsigned i = 0; i < n && o + 13 < sizeof(out); i++) {
        xs_perm_format(&p[i], out + o, sizeof(out) - o);
        o += strlen(out + o) + 1;
    }
    free(p);
    xs_conn_reply(r->c, r->h, XS_GET_PERMS, out, o);
    return 0;
}

static int op_write(struct req *r)
{
    const char *nul = memchr(r->p, '\0', r->len);
    if (!nul)
        return EINVAL;
    char path[XS_PATH_BUF];
    bool rel;
    int e = xs_path_canonical(&r->c->caller, r->p, false, path, &rel);
    if (e)
        return e;
    const char *val = nul + 1;
    size_t vlen = r->len - (size_t)(val - r->p);
    e = r->t ? xs_trans_write(r->t, &r->c->caller, path, val, vlen)
             : xs_store_write(r->c->srv->store, &r->c->caller, path, val, vlen);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_mkdir(struct req *r)
{
    char path[XS_PATH_BUF];
    bool rel;
    int e = one_path(r, false, path, &rel);
    if (e)
        return e;
    e = r->t ? xs_trans_mkdir(r->t, &r->c->caller, path)
             : xs_store_mkdir(r->c->srv->store, &r->c->caller, path);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_rm(struct req *r)
{
    char path[XS_PATH_BUF];
    bool rel;
    int e = one_path(r, false, path, &rel);
    if (e)
        return e;
    e = r->t ? xs_trans_rm(r->t, &r->c->caller, path)
             : xs_store_rm(r->c->srv->store, &r->c->caller, path);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_set_perms(struct req *r)
{
    const char *v[1];
    unsigned n = xs_wire_strings(r->p, r->len, v, 1);
    if (n < 2)
        return EINVAL;
    char path[XS_PATH_BUF];
    bool rel;
    int e = xs_path_canonical(&r->c->caller, r->p, true, path, &rel);
    if (e)
        return e;
    unsigned np = n - 1;
    struct xs_perm *perms = calloc(np, sizeof(*perms));
    if (!perms)
        return ENOMEM;
    const char *s = r->p + strlen(r->p) + 1;
    for (unsigned i = 0; i < np; i++) {
        if (!xs_perm_parse(s, &perms[i])) {
            free(perms);
            return EINVAL;
        }
        s += strlen(s) + 1;
    }
    e = r->t ? xs_trans_set_perms(r->t, &r->c->caller, path, perms, np)
             : xs_store_set_perms(r->c->srv->store, &r->c->caller, path, perms, np);
    free(perms);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_watch(struct req *r)
{
    const char *v[3];
    unsigned n = xs_wire_strings(r->p, r->len, v, 3);
    int depth = -1;
    if (n == 3) {
        char *end;
        long d = strtol(v[2], &end, 10);
        if (*end || end == v[2] || d < 0 || d > 65535)
            return EINVAL;
        depth = (int)d;
    } else if (n != 2) {
        return EINVAL;
    }
    char path[XS_PATH_BUF];
    bool rel;
    int e = xs_path_canonical(&r->c->caller, v[0], true, path, &rel);
    if (e)
        return e;
    size_t prefix = rel ? xs_path_home_prefix_len(&r->c->caller) : 0;
    e = xs_watch_add(r->c, path, v[1], prefix, depth);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    /* Fires once at once: "simplifies clients and restart". */
    xs_conn_event(r->c, path + prefix, v[1]);
    return 0;
}

static int op_unwatch(struct req *r)
{
    const char *v[2];
    if (xs_wire_strings(r->p, r->len, v, 2) < 2)
        return EINVAL;
    char path[XS_PATH_BUF];
    bool rel;
    int e = xs_path_canonical(&r->c->caller, v[0], true, path, &rel);
    if (e)
        return e;
    e = xs_watch_remove(r->c, path, v[1]);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_transaction_start(struct req *r)
{
    struct xs_conn *c = r->c;
    if (r->t)
        return EBUSY;  /* no nesting */
    if (c->ntrans >= c->quota->transactions)
        return ENOSPC;
    /* Next free non-zero id on this connection. */
    uint32_t id;
    do {
        id = c->next_tx_id++;
        if (c->next_tx_id == 0)
            c->next_tx_id = 1;
    } while (id == 0 || xs_conn_find_trans(c, id));
    struct xs_tx_slot *s = calloc(1, sizeof(*s));
    if (!s)
        return ENOMEM;
    s->t = xs_trans_start(c->srv->store, id, c->caller.privileged ? 0 : c->quota->trans_nodes);
    if (!s->t) {
        free(s);
        return ENOMEM;
    }
    s->next = c->trans;
    c->trans = s;
    c->ntrans++;
    char buf[16];
    int l = snprintf(buf, sizeof(buf), "%u", (unsigned)id);
    xs_conn_reply(c, r->h, XS_TRANSACTION_START, buf, (size_t)l + 1);
    return 0;
}

static int op_transaction_end(struct req *r)
{
    struct xs_conn *c = r->c;
    const char *arg = xs_wire_onearg(r->p, r->len);
    if (!r->t)
        return ENOENT;
    bool commit;
    if (arg && strcmp(arg, "T") == 0)
        commit = true;
    else if (arg && strcmp(arg, "F") == 0)
        commit = false;
    else
        return EINVAL;
    for (struct xs_tx_slot **pp = &c->trans; *pp; pp = &(*pp)->next) {
        if ((*pp)->t == r->t) {
            struct xs_tx_slot *s = *pp;
            *pp = s->next;
            free(s);
            c->ntrans--;
            break;
        }
    }
    int e = xs_trans_end(r->t, &c->caller, commit);
    r->t = NULL;
    if (commit) {
        if (e == EAGAIN)
            c->srv->stats.conflicts++;
        else if (!e)
            c->srv->stats.commits++;
    }
    if (e)
        return e;
    xs_conn_ack(c, r->h);
    return 0;
}

static int domid_arg(struct req *r, unsigned *domid)
{
    const char *v[1];
    if (xs_wire_strings(r->p, r->len, v, 1) < 1 || !xs_wire_parse_domid(v[0], domid))
        return EINVAL;
    return 0;
}

static int op_introduce(struct req *r)
{
    const char *v[3];
    unsigned domid;
    if (xs_wire_strings(r->p, r->len, v, 3) < 3 || !xs_wire_parse_domid(v[0], &domid))
        return EINVAL;
    /* gfn is ignored (no shared ring here); the event channel must look
     * like one, as xenstored checks. */
    char *end;
    long port = strtol(v[2], &end, 10);
    if (*end || end == v[2] || port <= 0 || domid == 0)
        return EINVAL;
    int e = xs_server_introduce(r->c->srv, domid);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_release(struct req *r)
{
    unsigned domid;
    int e = domid_arg(r, &domid);
    if (e)
        return e;
    e = xs_server_release(r->c->srv, domid);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_get_domain_path(struct req *r)
{
    const char *arg = xs_wire_onearg(r->p, r->len);
    unsigned domid;
    if (!arg || !xs_wire_parse_domid(arg, &domid))
        return EINVAL;
    char buf[40];
    int l = snprintf(buf, sizeof(buf), "/local/domain/%u", domid);
    xs_conn_reply(r->c, r->h, XS_GET_DOMAIN_PATH, buf, (size_t)l + 1);
    return 0;
}

static int op_is_domain_introduced(struct req *r)
{
    unsigned domid;
    int e = domid_arg(r, &domid);
    if (e)
        return e;
    bool yes = domid == 0 || xs_server_is_introduced(r->c->srv, domid);
    xs_conn_reply(r->c, r->h, XS_IS_DOMAIN_INTRODUCED, yes ? "T" : "F", 2);
    return 0;
}

static int op_resume(struct req *r)
{
    unsigned domid;
    int e = domid_arg(r, &domid);
    if (e)
        return e;
    e = xs_domain_resume(r->c->srv, domid);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_set_target(struct req *r)
{
    const char *v[2];
    unsigned domid, target;
    if (xs_wire_strings(r->p, r->len, v, 2) < 2 || !xs_wire_parse_domid(v[0], &domid) ||
        !xs_wire_parse_domid(v[1], &target))
        return EINVAL;
    int e = xs_server_set_target(r->c->srv, domid, target);
    if (e)
        return e;
    xs_conn_ack(r->c, r->h);
    return 0;
}

static int op_reset_watches(struct req *r)
{
    struct xs_conn *c = r->c;
    xs_watch_remove_all(c);
    while (c->trans) {
        struct xs_tx_slot *s = c->trans;
        c->trans = s->next;
        xs_trans_end(s->t, &c->caller, false);
        free(s);
    }
    c->ntrans = 0;
    r->t = NULL;
    xs_conn_ack(c, r->h);
    return 0;
}

static int op_control(struct req *r)
{
    const char *v[2];
    unsigned n = xs_wire_strings(r->p, r->len, v, 2);
    if (n < 1)
        return EINVAL;
    struct xs_server *srv = r->c->srv;
    char out[512];
    if (strcmp(v[0], "check") == 0 || strcmp(v[0], "log") == 0) {
        xs_conn_reply(r->c, r->h, XS_CONTROL, "OK", 3);
    } else if (strcmp(v[0], "print") == 0) {
        xsim_info("xenstored: control print: %s", n > 1 ? v[1] : "");
        xs_conn_reply(r->c, r->h, XS_CONTROL, "OK", 3);
    } else if (strcmp(v[0], "help") == 0) {
        static const char help[] = "check\nhelp\nlog\nprint\nquota\nstats\n";
        xs_conn_reply(r->c, r->h, XS_CONTROL, help, sizeof(help));
    } else if (strcmp(v[0], "quota") == 0) {
        const struct xs_quota *q = &srv->guest_quota;
        const struct xs_store_limits *l = xs_store_limits(srv->store);
        int len = snprintf(out, sizeof(out),
                           "nodes %u\nwatches %u\ntransactions %u\ntransaction-nodes %u\n"
                           "node-size %u\nnode-permissions %u\npath-max %d\n"
                           "queued-events %u\n",
                           l->nodes_per_domain, q->watches, q->transactions, q->trans_nodes,
                           l->node_size, l->perms_max, XENSTORE_REL_PATH_MAX, q->queued_events);
        xs_conn_reply(r->c, r->h, XS_CONTROL, out, (size_t)len + 1);
    } else if (strcmp(v[0], "stats") == 0) {
        int len = snprintf(out, sizeof(out),
                           "connections %u\ndomains %u\nnodes %zu\nrequests %lu\n"
                           "dropped-clients %lu\ndropped-events %lu\ncommits %lu\nconflicts %lu\n",
                           srv->nconns, srv->ndomains, xs_store_node_count(srv->store),
                           srv->stats.requests, srv->stats.dropped_clients,
                           srv->stats.dropped_events, srv->stats.commits, srv->stats.conflicts);
        xs_conn_reply(r->c, r->h, XS_CONTROL, out, (size_t)len + 1);
    } else {
        return EINVAL;
    }
    return 0;
}

#define F_PRIV  1u  /* control domain only */
#define F_NOTID 2u  /* tx_id ignored */

static const struct {
    int (*fn)(struct req *r);
    unsigned flags;
} ops[XS_TYPE_COUNT] = {
    [XS_CONTROL] = { op_control, F_PRIV },
    [XS_DIRECTORY] = { op_directory, 0 },
    [XS_READ] = { op_read, 0 },
    [XS_GET_PERMS] = { op_get_perms, 0 },
    [XS_WATCH] = { op_watch, F_NOTID },
    [XS_UNWATCH] = { op_unwatch, F_NOTID },
    [XS_TRANSACTION_START] = { op_transaction_start, 0 },
    [XS_TRANSACTION_END] = { op_transaction_end, 0 },
    [XS_INTRODUCE] = { op_introduce, F_PRIV },
    [XS_RELEASE] = { op_release, F_PRIV },
    [XS_GET_DOMAIN_PATH] = { op_get_domain_path, 0 },
    [XS_WRITE] = { op_write, 0 },
    [XS_MKDIR] = { op_mkdir, 0 },
    [XS_RM] = { op_rm, 0 },
    [XS_SET_PERMS] = { op_set_perms, 0 },
    [XS_IS_DOMAIN_INTRODUCED] = { op_is_domain_introduced, F_PRIV },
    [XS_RESUME] = { op_resume, F_PRIV },
    [XS_SET_TARGET] = { op_set_target, F_PRIV },
    [XS_RESET_WATCHES] = { op_reset_watches, F_NOTID },
    [XS_DIRECTORY_PART] = { op_directory_part, 0 },
};

void xs_ops_dispatch(struct xs_conn *c, const struct xsd_sockmsg *hdr, const char *payload)
{
    struct req r = { .c = c, .h = hdr, .p = payload, .len = hdr->len };
    if (hdr->type >= XS_TYPE_COUNT || !ops[hdr->type].fn) {
        /* Unknown (or server-only) types: ENOSYS, the client stays. */
        xsim_debug("xenstored: connection %u sent unknown message type %u", c->id,
                   (unsigned)hdr->type);
        xs_conn_error(c, hdr, ENOSYS);
        return;
    }
    if ((ops[hdr->type].flags & F_PRIV) && !c->caller.privileged) {
        xs_conn_error(c, hdr, EACCES);
        return;
    }
    if (!(ops[hdr->type].flags & F_NOTID) && hdr->tx_id) {
        r.t = xs_conn_find_trans(c, hdr->tx_id);
        if (!r.t) {
            xs_conn_error(c, hdr, ENOENT);
            return;
        }
    }
    int e = ops[hdr->type].fn(&r);
    if (e) {
        xsim_debug("xenstored: connection %u: %s failed: %s", c->id,
                   xs_wire_type_name(hdr->type), xs_wire_errname(e));
        xs_conn_error(c, hdr, e);
    }
}
