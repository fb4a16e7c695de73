/* xs_conn.c: one client connection — non-blocking input framing, the
 * output queue, and the per-connection limits.
 *
 * Nothing here ever blocks: input is read as far as available and only
 * complete messages are dispatched; output is queued per connection and
 * sent when the socket accepts it, so a client that does not read cannot
 * stall anyone else.  While a connection's unsent replies exceed its
 * quota, its further requests are left unread (back-pressure) rather than
 * buffered without bound; watch events over the quota are dropped. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xs_internal.h"
#include "xsim_log.h"

static void conn_io(struct xsim_loop *loop, int fd, short revents, void *arg);

static void update_poll(struct xs_conn *c)
{
    if (c->dead)
        return;
    short ev = 0;
    if (c->out_bytes <= c->quota->out_bytes)
        ev |= POLLIN;
    if (c->out_head)
        ev |= POLLOUT;
    if (ev != c->polled) {
        xsim_loop_set_events(c->srv->loop, c->fd, ev);
        c->polled = ev;
    }
}

struct xs_conn *xs_conn_new(struct xs_server *srv, int fd, const struct xs_caller *caller,
                            struct xs_domain *dom)
{
    struct xs_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        xsim_err("xenstored: out of memory accepting a connection");
        return NULL;
    }
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->next_conn_id;
    c->caller = *caller;
    c->dom = dom;
    c->quota = caller->privileged ? &srv->dom0_quota : &srv->guest_quota;
    c->next_tx_id = 1;
    c->polled = POLLIN;
    int r = xsim_loop_add_fd(srv->loop, fd, POLLIN, conn_io, c);
    if (r < 0) {
        xsim_err("xenstored: cannot watch connection fd %d: %s", fd, strerror(-r));
        free(c);
        return NULL;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    xsim_debug("xenstored: connection %u (domain %u%s) opened", c->id, (unsigned)caller->domid,
               caller->privileged ? ", privileged" : "");
    return c;
}

static void free_out(struct xs_conn *c)
{
    for (struct xs_msg *m = c->out_head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = c->out_event_bytes = 0;
    c->out_events = 0;
}

void xs_conn_destroy(struct xs_conn *c)
{
    struct xs_server *srv = c->srv;
    xs_watch_remove_all(c);
    while (c->trans) {
        struct xs_tx_slot *s = c->trans;
        c->trans = s->next;
        xs_trans_end(s->t, &c->caller, false);
        free(s);
    }
    free_out(c);
    xsim_loop_del_fd(srv->loop, c->fd);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    if (c->on_dirty) {
        for (struct xs_conn **pp = &srv->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
    }
    free(c);
}

void xs_conn_kill(struct xs_conn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    c->srv->reaping_needed = true;
    /* Stop polling now: a dead fd must not spin the loop until reaped. */
    xsim_loop_set_events(c->srv->loop, c->fd, 0);
    if (why)
        xsim_debug("xenstored: closing connection %u (domain %u): %s", c->id,
                   (unsigned)c->caller.domid, why);
}

void xs_server_reap(struct xs_server *srv)
{
    if (!srv->reaping_needed)
        return;
    srv->reaping_needed = false;
    for (struct xs_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->dead)
            xs_conn_destroy(c);
    }
}

static void mark_dirty(struct xs_conn *c)
{
    if (!c->on_dirty) {
        c->on_dirty = true;
        c->dirty_next = c->srv->dirty;
        c->srv->dirty = c;
    }
}

static void enqueue(struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
                    const void *p1, size_t l1, const void *p2, size_t l2, bool is_event)
{
    if (c->dead)
        return;
    size_t len = l1 + l2;
    struct xs_msg *m = malloc(sizeof(*m) + XS_HDR_LEN + len);
    if (!m) {
        /* Losing a reply desynchronises the client: drop it instead. */
        xs_conn_kill(c, "out of memory queueing a reply");
        return;
    }
    struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = (uint32_t)len };
    m->next = NULL;
    m->is_event = is_event;
    m->len = XS_HDR_LEN + len;
    memcpy(m->data, &h, XS_HDR_LEN);
    if (l1)
        memcpy(m->data + XS_HDR_LEN, p1, l1);
    if (l2)
        memcpy(m->data + XS_HDR_LEN + l1, p2, l2);
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_bytes += m->len;
    if (is_event) {
        c->out_events++;
        c->out_event_bytes += m->len;
    }
    mark_dirty(c);
}

void xs_conn_reply(struct xs_conn *c, const struct xsd_sockmsg *req, uint32_t type,
                   const void *data, size_t len)
{
    if (len > XENSTORE_PAYLOAD_MAX) {
        xs_conn_error(c, req, E2BIG);
        return;
    }
    enqueue(c, type, req->req_id, req->tx_id, data, len, NULL, 0, false);
}

void xs_conn_error(struct xs_conn *c, const struct xsd_sockmsg *req, int err)
{
    const char *name = xs_wire_errname(err);
    enqueue(c, XS_ERROR, req->req_id, req->tx_id, name, strlen(name) + 1, NULL, 0, false);
}

void xs_conn_ack(struct xs_conn *c, const struct xsd_sockmsg *req)
{
    xs_conn_reply(c, req, req->type, "OK", 3);
}

void xs_conn_event(struct xs_conn *c, const char *path, const char *token)
{
    size_t pl = strlen(path) + 1, tl = strlen(token) + 1;
    if (c->dead || pl + tl > XENSTORE_PAYLOAD_MAX)
        return;
    if (c->out_events >= c->quota->queued_events ||
        c->out_event_bytes + XS_HDR_LEN + pl + tl > c->quota->queued_event_bytes) {
        c->srv->stats.dropped_events++;
        if (!c->events_dropping)
            xsim_warn("xenstored: connection %u (domain %u) is not reading its watch events; "
                      "dropping events above %u queued", c->id, (unsigned)c->caller.domid,
                      c->quota->queued_events);
        c->events_dropping = true;
        return;
    }
    c->events_dropping = false;
    enqueue(c, XS_WATCH_EVENT, 0, 0, path, pl, token, tl, true);
}

/* Sends as much as the socket takes.  false if the connection died. */
static bool flush_conn(struct xs_conn *c)
{
    while (c->out_head && !c->dead) {
        struct iovec iov[64];
        int n = 0;
        size_t off = c->out_off;
        for (struct xs_msg *m = c->out_head; m && n < 64; m = m->next) {
            iov[n].iov_base = m->data + off;
            iov[n].iov_len = m->len - off;
            off = 0;
            n++;
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        /* MSG_NOSIGNAL: a vanished client must not SIGPIPE the daemon. */
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            char why[96];
            snprintf(why, sizeof(why), "write failed: %s", strerror(errno));
            xs_conn_kill(c, why);
            return false;
        }
        size_t left = (size_t)w;
        while (left && c->out_head) {
            struct xs_msg *m = c->out_head;
            size_t rest = m->len - c->out_off;
            if (left < rest) {
                c->out_off += left;
                break;
            }
            left -= rest;
            c->out_off = 0;
            c->out_head = m->next;
            if (!c->out_head)
                c->out_tail = NULL;
            c->out_bytes -= m->len;
            if (m->is_event) {
                c->out_events--;
                c->out_event_bytes -= m->len;
            }
            free(m);
        }
    }
    return !c->dead;
}

/* Dispatches every complete message in the input buffer, while the
 * output back-pressure allows. */
static void process_input(struct xs_conn *c)
{
    if (c->dispatching)
        return;             /* the outer call consumes the rest */
    c->dispatching = true;
    size_t off = 0;
    char payload[XENSTORE_PAYLOAD_MAX + 1];
    while (!c->dead && c->in_len - off >= XS_HDR_LEN &&
           c->out_bytes <= c->quota->out_bytes) {
        struct xsd_sockmsg h;
        memcpy(&h, c->in + off, XS_HDR_LEN);
        if (h.len > XENSTORE_PAYLOAD_MAX) {
            /* As xenstored: a client that breaks the payload limit is
             * out of sync for good; drop it. */
            char why[96];
            snprintf(why, sizeof(why), "payload of %u bytes exceeds %d", (unsigned)h.len,
                     XENSTORE_PAYLOAD_MAX);
            xsim_warn("xenstored: connection %u (domain %u): %s; dropping the client", c->id,
                      (unsigned)c->caller.domid, why);
            c->srv->stats.dropped_clients++;
            xs_conn_kill(c, why);
            break;
        }
        if (c->in_len - off < XS_HDR_LEN + h.len)
            break;
        memcpy(payload, c->in + off + XS_HDR_LEN, h.len);
        payload[h.len] = '\0';   /* so no parser can run off the end */
        off += XS_HDR_LEN + h.len;
        c->srv->stats.requests++;
        xs_ops_dispatch(c, &h, payload);
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    c->dispatching = false;
}

static void conn_io(struct xsim_loop *loop, int fd, short revents, void *arg)
{
    struct xs_conn *c = arg;
    struct xs_server *srv = c->srv;
    (void)loop;
    (void)fd;
    if (c->dead) {
        xs_server_reap(srv);
        return;
    }
    if (revents & POLLOUT) {
        flush_conn(c);
        /* Drained below the quota: serve what is already buffered. */
        process_input(c);
    }
    if (!c->dead && (revents & (POLLIN | POLLHUP | POLLERR)) &&
        c->out_bytes <= c->quota->out_bytes) {
        ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
        if (r == 0) {
            xs_conn_kill(c, c->in_len ? "client closed mid-request" : "client closed");
        } else if (r < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK) {
                char why[96];
                snprintf(why, sizeof(why), "read failed: %s", strerror(errno));
                xs_conn_kill(c, why);
            }
        } else {
            c->in_len += (size_t)r;
            process_input(c);
        }
    } else if (!c->dead && (revents & (POLLHUP | POLLERR)) && !(revents & POLLOUT)) {
        xs_conn_kill(c, "hang-up");
    }
    xs_server_flush(srv);
    /* Also when nothing new was queued: a drained queue must drop POLLOUT
     * (or poll spins) and restore POLLIN (or the client hangs). */
    if (!c->dead)
        update_poll(c);
    xs_server_reap(srv);
}

void xs_server_flush(struct xs_server *srv)
{
    /* Processing input that was held back by the reply quota can queue
     * more output (here or for watchers), hence the outer loop; it ends
     * because no new input is read here. */
    while (srv->dirty) {
        struct xs_conn *list = srv->dirty;
        srv->dirty = NULL;
        while (list) {
            struct xs_conn *c = list;
            list = c->dirty_next;
            c->on_dirty = false;
            c->dirty_next = NULL;
            if (c->dead)
                continue;
            flush_conn(c);
            if (c->in_len >= XS_HDR_LEN && c->out_bytes <= c->quota->out_bytes)
                process_input(c);
            update_poll(c);
        }
    }
}

struct xs_trans *xs_conn_find_trans(struct xs_conn *c, uint32_t id)
{
    for (struct xs_tx_slot *s = c->trans; s; s = s->next)
        if (xs_trans_id(s->t) == id)
            return s->t;
    return NULL;
}
