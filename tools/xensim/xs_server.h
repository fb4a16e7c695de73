/* xs_server.h: xensim's xenstore daemon — the public, in-process API.
 *
 * The daemon lives on an xsim_loop: xs_server_new() creates
 * <rundir>/xenstored/socket (dom0, privileged connections) and registers
 * with the loop; every introduced domain gets
 * <rundir>/xenstored/domain/<domid>, whose connections act as that
 * unprivileged domain.  Clients use the real libxenstore with
 * XENSTORED_PATH=<rundir>/xenstored/socket.
 *
 * All functions must be called on the loop's thread (use xsim_loop_call()
 * from elsewhere).  Writes through this API fire watches like any client's. */
#ifndef XS_SERVER_H
#define XS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xs_store.h"
#include "xsim_loop.h"

/* Per-connection limits.  Guests get Xen's default quotas; the control
 * domain's connections get larger but still finite ones, so that a buggy
 * dom0 client cannot exhaust the host either. */
struct xs_quota {
    unsigned watches;          /* Xen: 128 per domain */
    unsigned transactions;     /* Xen: 10 per domain */
    unsigned trans_nodes;      /* nodes one transaction may touch; Xen: 1024 */
    unsigned queued_events;    /* unsent watch events; more are dropped */
    size_t queued_event_bytes; /* same, in bytes */
    size_t out_bytes;          /* replies pending: stop reading requests above */
};

struct xs_server_opts {
    const char *rundir;        /* required */
    bool persist;              /* load <rundir>/xenstored/tree, save it back */
    unsigned save_delay_ms;    /* persist: save this long after a change (default 1000) */
    struct xs_quota guest;     /* zero fields: defaults */
    struct xs_quota dom0;
};

struct xs_server;

/* NULL on failure, with the reason logged (e.g. the socket path is in
 * use, the saved tree is corrupt). */
struct xs_server *xs_server_new(struct xsim_loop *loop, const struct xs_server_opts *opts);
/* Closes every connection and socket; saves the tree if persisting. */
void xs_server_free(struct xs_server *srv);

struct xs_store *xs_server_store(struct xs_server *srv);
const char *xs_server_socket_path(const struct xs_server *srv);
/* Writes the path of domid's socket into buf; false if too long. */
bool xs_server_domain_socket_path(const struct xs_server *srv, unsigned domid, char *buf,
                                  size_t size);

/* Convenience writes as dom0 (absolute paths; 0 or a positive errno). */
int xs_server_write(struct xs_server *srv, const char *path, const void *val, size_t len);
int xs_server_write_str(struct xs_server *srv, const char *path, const char *val);
/* Writes (creating if needed) and sets the node's permissions. */
int xs_server_write_perms(struct xs_server *srv, const char *path, const void *val, size_t len,
                          const struct xs_perm *perms, unsigned nperms);
int xs_server_rm(struct xs_server *srv, const char *path);
/* *val malloc'd, NUL-terminated. */
int xs_server_read(struct xs_server *srv, const char *path, char **val, size_t *len);

/* Domains.  introduce: builds /local/domain/<domid> (only the nodes that
 * are missing), opens its socket, fires @introduceDomain.  Introducing an
 * introduced domain again is a no-op (as in xenstored).  release: closes
 * its socket and connections, removes /local/domain/<domid>, fires
 * @releaseDomain.  0 or a positive errno (EINVAL: bad domid; ENOENT: not
 * introduced). */
int xs_server_introduce(struct xs_server *srv, unsigned domid);
int xs_server_release(struct xs_server *srv, unsigned domid);
bool xs_server_is_introduced(const struct xs_server *srv, unsigned domid);
/* The domain shut down or crashed: fires @releaseDomain once, until
 * XS_RESUME (for the simulated hypervisor). */
int xs_server_domain_shutdown(struct xs_server *srv, unsigned domid);
/* Grants domid owner rights on target's nodes (XS_SET_TARGET). */
int xs_server_set_target(struct xs_server *srv, unsigned domid, unsigned target);

/* Saves the tree now (atomically); 0 or a positive errno. */
int xs_server_save(struct xs_server *srv);

/* Counters, for tests and `xensim` diagnostics. */
struct xs_server_stats {
    unsigned connections;
    unsigned domains;
    unsigned long requests;
    unsigned long dropped_clients;   /* protocol violations */
    unsigned long dropped_events;    /* over the queued-event quota */
    unsigned long commits, conflicts;
};
void xs_server_get_stats(const struct xs_server *srv, struct xs_server_stats *out);

#endif
