/* xs_internal.h: structures shared by the files of the xenstore daemon
 * (server, connections, request handlers, watches, domains, persistence).
 * Not for use outside tools/xensim/xs_*.c; the API is xs_server.h. */
#ifndef XS_INTERNAL_H
#define XS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xen/io/xs_wire.h>

#include "xs_server.h"
#include "xs_store.h"
#include "xs_trans.h"
#include "xsim_loop.h"

#define XS_HDR_LEN ((size_t)sizeof(struct xsd_sockmsg))
/* Room for two whole messages, so a reader can take a message and the
 * start of the next in one read(). */
#define XS_IN_BUF (2 * (XS_HDR_LEN + XENSTORE_PAYLOAD_MAX))

struct xs_msg {                 /* one queued outgoing message */
    struct xs_msg *next;
    bool is_event;
    size_t len;                 /* header + payload */
    unsigned char data[];
};

struct xs_watch {
    struct xs_watch *next;
    char *path;                 /* canonical (absolute or special) */
    char *token;
    size_t prefix_len;          /* bytes to strip for relative watches */
    int depth;                  /* -1: unlimited */
};

struct xs_tx_slot {
    struct xs_tx_slot *next;
    struct xs_trans *t;
};

struct xs_domain;

struct xs_conn {
    struct xs_server *srv;
    struct xs_conn *next, *prev;
    struct xs_conn *dirty_next;  /* on srv->dirty while output is pending */
    bool on_dirty;
    int fd;
    unsigned id;                 /* for log lines */
    struct xs_caller caller;
    struct xs_domain *dom;       /* NULL for the control socket */
    const struct xs_quota *quota;

    unsigned char in[XS_IN_BUF];
    size_t in_len;

    struct xs_msg *out_head, *out_tail;
    size_t out_off;              /* bytes of out_head already sent */
    size_t out_bytes;            /* total queued, headers included */
    unsigned out_events;
    size_t out_event_bytes;
    bool events_dropping;        /* for one log line per burst */

    struct xs_watch *watches;
    unsigned nwatches;
    struct xs_tx_slot *trans;
    unsigned ntrans;
    uint32_t next_tx_id;

    bool dead;
    /* process_input is running for this connection: a handler that
     * flushes the server (introduce, release) must not re-enter it, or the
     * messages not yet consumed would be dispatched a second time. */
    bool dispatching;
    short polled;                /* events currently registered in the loop */
};

/* Connections one domain may hold on its socket. */
#define XS_DOMAIN_MAX_CONNS 64

struct xs_domain {
    struct xs_domain *next;
    struct xs_server *srv;
    unsigned domid;
    int listen_fd;
    char sock_path[256];
    bool shutdown;               /* @releaseDomain already sent (RESUME clears) */
    bool has_target;
    unsigned target;
};

struct xs_server {
    struct xsim_loop *loop;
    struct xs_store *store;
    char rundir[256];
    char sock_path[300];
    char tree_path[300];
    int listen_fd;
    struct xs_conn *conns;
    struct xs_conn *dirty;       /* connections with output to flush */
    unsigned nconns, next_conn_id;
    struct xs_domain *domains;
    unsigned ndomains;
    struct xs_quota guest_quota, dom0_quota;
    bool persist;
    unsigned save_delay_ms;
    uint64_t save_timer;         /* pending debounce timer id, 0 = none */
    bool reaping_needed;
    struct xs_server_stats stats;
};

/* xs_wire.c: framing and payload helpers */
const char *xs_wire_errname(int err);
/* Splits a payload into NUL-terminated strings (a trailing unterminated
 * piece is not counted); returns the number of strings, storing at most
 * max pointers. */
unsigned xs_wire_strings(const char *buf, size_t len, const char **vec, unsigned max);
/* The payload is exactly one NUL-terminated string: it, else NULL. */
const char *xs_wire_onearg(const char *buf, size_t len);
/* Decimal domid < DOMID_FIRST_RESERVED; false otherwise. */
bool xs_wire_parse_domid(const char *s, unsigned *domid);
const char *xs_wire_type_name(uint32_t type);

/* xs_conn.c: connections and their buffers */
struct xs_conn *xs_conn_new(struct xs_server *srv, int fd, const struct xs_caller *caller,
                            struct xs_domain *dom);
/* Queues a reply; payloads over XENSTORE_PAYLOAD_MAX become E2BIG. */
void xs_conn_reply(struct xs_conn *c, const struct xsd_sockmsg *req, uint32_t type,
                   const void *data, size_t len);
void xs_conn_error(struct xs_conn *c, const struct xsd_sockmsg *req, int err);
void xs_conn_ack(struct xs_conn *c, const struct xsd_sockmsg *req);
/* Queues a WATCH_EVENT unless the connection's event quota is used up. */
void xs_conn_event(struct xs_conn *c, const char *path, const char *token);
/* Marks for closing; the server reaps it after the current callback. */
void xs_conn_kill(struct xs_conn *c, const char *why);
void xs_conn_destroy(struct xs_conn *c);
/* Tries to send everything queued on every connection. */
void xs_server_flush(struct xs_server *srv);
void xs_server_reap(struct xs_server *srv);
struct xs_trans *xs_conn_find_trans(struct xs_conn *c, uint32_t id);

/* xs_ops.c: request dispatch */
void xs_ops_dispatch(struct xs_conn *c, const struct xsd_sockmsg *hdr, const char *payload);

/* xs_watch.c */
int xs_watch_add(struct xs_conn *c, const char *path, const char *token, size_t prefix_len,
                 int depth);
int xs_watch_remove(struct xs_conn *c, const char *path, const char *token);
void xs_watch_remove_all(struct xs_conn *c);
/* The store's change hook. */
void xs_watch_on_change(void *srv, const char *path, enum xs_match match,
                        const struct xs_perm *perms, unsigned nperms,
                        const struct xs_perm *old, unsigned nold);
/* Fires @introduceDomain / @releaseDomain. */
void xs_watch_fire_special(struct xs_server *srv, const char *name);

/* xs_domain.c */
struct xs_domain *xs_domain_find(const struct xs_server *srv, unsigned domid);
void xs_domain_free_all(struct xs_server *srv);
int xs_domain_resume(struct xs_server *srv, unsigned domid);

/* xs_server.c: a listening Unix socket at path (a stale socket file is
 * replaced; a live one is EADDRINUSE).  fd or -errno. */
int xs_listen_unix(const char *path);

/* xs_persist.c */
int xs_persist_save(struct xs_store *st, const char *path);
/* ENOENT if there is no file (fresh start); other errors logged. */
int xs_persist_load(struct xs_store *st, const char *path);

/* xs_server.c */
void xs_server_changed(struct xs_server *srv);  /* schedules a save */
struct xs_caller xs_server_caller_for(const struct xs_server *srv, unsigned domid);

#endif
