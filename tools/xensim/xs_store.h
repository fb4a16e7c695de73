/* xs_store.h: the xenstore tree — nodes, values, permissions, generations.
 *
 * The store knows nothing about sockets or the wire.  Every operation takes
 * the identity of the caller (struct xs_caller) and applies Xen's
 * permission rules (xenstored core.c: perm_for_conn, errno_from_parents),
 * so the same calls serve wire clients, transactions and in-process users
 * (the simulated hypervisor and xl of later parts).
 *
 * Paths passed in are canonical: absolute, validated by xs_path_canonical()
 * (or one of the special "@introduceDomain"/"@releaseDomain" names where
 * noted).  Functions return 0 or a positive errno value, like xenstored's
 * handlers, which the wire layer turns into Xen's error strings.
 *
 * Changes are reported through a change hook (installed by the server to
 * fire watches); lookups through an access hook (installed on transaction
 * copies to record what a transaction touched). */
#ifndef XS_STORE_H
#define XS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Permission bits: the same values (and spelling, so both headers can be
 * included together) as Xen's xenstore_lib.h.  OWNER appears only in
 * computed rights, never in a stored entry. */
#define XS_PERM_NONE		0x00
#define XS_PERM_READ		0x01
#define XS_PERM_WRITE		0x02
#define XS_PERM_OWNER		0x08

#define XS_DOMID_MAX 0xffffu

struct xs_perm {
    uint32_t domid;
    unsigned perms;  /* XS_PERM_READ|XS_PERM_WRITE */
};

/* Who is asking.  privileged = the control domain (socket connections and
 * in-process callers): bypasses permission checks. */
struct xs_caller {
    uint32_t domid;
    bool privileged;
    bool has_target;     /* set by XS_SET_TARGET */
    uint32_t target;
};

/* The in-process identity of the simulated host's own code. */
extern const struct xs_caller xs_caller_dom0;

/* Limits that apply to unprivileged callers (Xen's default quotas). */
struct xs_store_limits {
    unsigned node_size;    /* max value bytes per node (Xen: node-size 2048) */
    unsigned perms_max;    /* max entries in a permission list (Xen: 5) */
    unsigned nodes_per_domain; /* nodes owned by one domain (Xen: 1000); 0 = off */
};

/* How a change matches watches (Xen's MATCH_SUBTREE / MATCH_EXACT): a
 * subtree change matches watches on the path and on its ancestors; an exact
 * one only watches on the path itself (used for the descendants of a
 * removed node, so each watched descendant sees its own path). */
enum xs_match { XS_MATCH_SUBTREE, XS_MATCH_EXACT };

/* perms: the node's permissions when the change happened (for a removal:
 * before it; for SET_PERMS the new ones, with old_perms the previous). */
typedef void xs_change_hook(void *arg, const char *path, enum xs_match match,
                            const struct xs_perm *perms, unsigned nperms,
                            const struct xs_perm *old_perms, unsigned nold);
/* gen = 0: the node does not exist. */
typedef void xs_access_hook(void *arg, const char *path, uint64_t gen);

struct xs_store;

struct xs_store *xs_store_new(void);
void xs_store_free(struct xs_store *st);
void xs_store_set_change_hook(struct xs_store *st, xs_change_hook *fn, void *arg);
void xs_store_set_access_hook(struct xs_store *st, xs_access_hook *fn, void *arg);
void xs_store_set_limits(struct xs_store *st, const struct xs_store_limits *lim);
const struct xs_store_limits *xs_store_limits(const struct xs_store *st);

/* A full private copy sharing st's generation counter (for transactions);
 * hooks are not copied.  NULL on ENOMEM.  The copy must be freed before st. */
struct xs_store *xs_store_clone(const struct xs_store *st);

/* *val is malloc'd with a NUL appended (not counted in *len). */
int xs_store_read(struct xs_store *st, const struct xs_caller *c, const char *path,
                  char **val, size_t *len);
/* Creates missing parents (inheriting permissions; an unprivileged
 * creator becomes owner). */
int xs_store_write(struct xs_store *st, const struct xs_caller *c, const char *path,
                   const void *val, size_t len);
int xs_store_mkdir(struct xs_store *st, const struct xs_caller *c, const char *path);
/* Recursive; an absent node is fine if its parent exists (Xen's rule). */
int xs_store_rm(struct xs_store *st, const struct xs_caller *c, const char *path);
/* Child names, each NUL-terminated, malloc'd in *buf; *gen = node's
 * generation (for DIRECTORY_PART). */
int xs_store_directory(struct xs_store *st, const struct xs_caller *c, const char *path,
                       char **buf, size_t *len, uint64_t *gen);
/* path may be special ("@introduceDomain").  *perms malloc'd. */
int xs_store_get_perms(struct xs_store *st, const struct xs_caller *c, const char *path,
                       struct xs_perm **perms, unsigned *n);
int xs_store_set_perms(struct xs_store *st, const struct xs_caller *c, const char *path,
                       const struct xs_perm *perms, unsigned n);

/* Whole-tree helpers for in-process users (no permission checks). */
bool xs_store_exists(struct xs_store *st, const char *path);
/* Generation of a node, 0 if absent (transaction conflict checks). */
uint64_t xs_store_gen(const struct xs_store *st, const char *path);
size_t xs_store_node_count(const struct xs_store *st);
/* The newest generation handed out (nodes changed later get larger ones). */
uint64_t xs_store_current_gen(const struct xs_store *st);

/* Visits every node in pre-order (root first, children in directory order);
 * used by persistence.  Stops and returns the first non-zero cb result. */
typedef int xs_visit_fn(void *arg, const char *path, const char *val, size_t len,
                        const struct xs_perm *perms, unsigned nperms);
int xs_store_visit(const struct xs_store *st, xs_visit_fn *fn, void *arg);
/* Sets a node exactly (creating parents with its permissions), without
 * hooks or checks: for loading a saved tree. */
int xs_store_load_node(struct xs_store *st, const char *path, const void *val, size_t len,
                       const struct xs_perm *perms, unsigned nperms);

/* Permission strings: "r5", "b0"... */
/* Parses one entry; false if malformed. */
bool xs_perm_parse(const char *s, struct xs_perm *out);
/* Writes "<letter><domid>" into buf (>= 12 bytes). */
void xs_perm_format(const struct xs_perm *p, char *buf, size_t size);
/* Effective rights of c on a node with these perms (Xen's perm_for_conn). */
unsigned xs_perm_for(const struct xs_caller *c, const struct xs_perm *perms, unsigned n);

/* Path rules (xenstored canonicalize): chars A-Za-z0-9-/_@, no empty
 * components, no trailing '/', length limits (3072 absolute; for an
 * unprivileged caller 2048 below its home).  A relative path is taken
 * below /local/domain/<caller domid>.  '@' paths only if allow_special.
 * Writes the canonical path into out (size >= XS_PATH_BUF) and sets
 * *relative.  Returns 0 or EINVAL. */
#define XS_PATH_BUF 3200
int xs_path_canonical(const struct xs_caller *c, const char *in, bool allow_special,
                      char *out, bool *relative);
/* Length of the caller's home prefix "/local/domain/<domid>" + '/'. */
size_t xs_path_home_prefix_len(const struct xs_caller *c);
bool xs_path_is_special(const char *path);

#endif
