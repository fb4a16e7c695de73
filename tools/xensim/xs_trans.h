/* xs_trans.h: transactions.
 *
 * TRANSACTION_START copies the whole tree (docs/misc/xenstore.txt: "whole
 * db is copied"), so the transaction sees a true snapshot.  Every node the
 * transaction looks at is recorded with the generation it had in the
 * snapshot; modifying operations are also logged.  Commit checks that no
 * recorded node changed in the live tree (else EAGAIN, the client redoes
 * the whole transaction) and then replays the log on the live tree, which
 * fires the watches — so changes made inside a transaction fire only on
 * commit.  Replay gives the same result as in the snapshot because every
 * node the operations depended on was verified unchanged. */
#ifndef XS_TRANS_H
#define XS_TRANS_H

#include "xs_store.h"

struct xs_trans;

/* max_nodes: how many distinct nodes the transaction may touch (Xen's
 * transaction-nodes quota, 1024 for guests); 0 = unlimited.
 * NULL on ENOMEM. */
struct xs_trans *xs_trans_start(struct xs_store *live, uint32_t id, unsigned max_nodes);
uint32_t xs_trans_id(const struct xs_trans *t);
/* The snapshot, for read operations (READ, DIRECTORY, GET_PERMS). */
struct xs_store *xs_trans_store(struct xs_trans *t);

/* Modifying operations: applied to the snapshot and logged.  Same return
 * values as the xs_store_* calls; ENOSPC when the node quota is exceeded
 * (the transaction is then doomed: commit returns ENOSPC). */
int xs_trans_write(struct xs_trans *t, const struct xs_caller *c, const char *path,
                   const void *val, size_t len);
int xs_trans_mkdir(struct xs_trans *t, const struct xs_caller *c, const char *path);
int xs_trans_rm(struct xs_trans *t, const struct xs_caller *c, const char *path);
int xs_trans_set_perms(struct xs_trans *t, const struct xs_caller *c, const char *path,
                       const struct xs_perm *perms, unsigned n);
/* After a read operation on the snapshot: ENOSPC if the quota is exceeded. */
int xs_trans_check(struct xs_trans *t);

/* Ends the transaction and frees it.  commit: 0, EAGAIN on conflict,
 * ENOSPC/ENOMEM if it failed earlier.  abort: always 0. */
int xs_trans_end(struct xs_trans *t, const struct xs_caller *c, bool commit);

#endif
