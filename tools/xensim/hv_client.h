/*
 * hv_client.h: one connection to a running simulator's control socket
 * (rundir/hv/socket, hv_proto.h), for xensim's own tools: the `domain` and
 * `fault` CLI and the simulated toolstack (`xensim xl`, which moves guest
 * RAM for save and migration).  Device models use tools/xensim/xenlib/.
 */
#ifndef XENSIM_HV_CLIENT_H
#define XENSIM_HV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "hv_proto.h"

/* Connect to rundir (NULL: $XENSIM_RUNDIR).  Returns the socket, or -1
 * after a message saying why the simulator cannot be reached. */
int hv_client_connect(const char *rundir);

/* One request: *payload (if non-NULL) gets the malloc'd payload (NULL if
 * none), fds (up to maxfds) the descriptors sent with the answer, the
 * caller's to close.  0, or -1 after a message "xensim: WHAT: why" (the
 * simulator's errno in terms of this CLI); errno holds the reason. */
int hv_client_call(int fd, struct hv_req *q, struct hv_rsp *r, void **payload,
                   int *fds, unsigned int maxfds, const char *what);

/* Guest RAM mapped shared (HV_OP_GET_RAM, the memfd a dm's foreign map
 * uses).  NULL after a message; *size the bytes mapped. */
void *hv_client_map_ram(int fd, uint32_t domid, uint64_t *size, const char *what);

#endif
