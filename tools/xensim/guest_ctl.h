/*
 * xensim guests: workload control over the hypervisor's control socket
 * (HV_OP_GUEST, hv_proto.h): the daemon's side, the client call the CLI
 * and `xensim xl` use, and the `xensim guest` command.
 */
#ifndef XENSIM_GUEST_CTL_H
#define XENSIM_GUEST_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "hv_proto.h"

/* Daemon: handle one HV_OP_GUEST request from connection fd.  Returns 0
 * with r and *out (malloc'd text, r->len set) filled, or 1 when the answer
 * will be sent later on a duplicate of fd by another thread (a stop that
 * waits for vCPU threads must not hold up the control socket). */
int guest_ctl_handle(int fd, const struct hv_req *q, const char *text, size_t len,
                     struct hv_rsp *r, void **out);

/* Client: one request to the simulator in rundir (NULL: $XENSIM_RUNDIR).
 * Returns 0 with the answer's text in *out (malloc'd, NUL-terminated,
 * may be empty), or a positive errno with the message in *out (or NULL),
 * or -1 if the simulator could not be reached (message on stderr). */
int guest_ctl_call(const char *rundir, uint32_t sub, uint32_t domid, uint32_t flags,
                   uint64_t a0, const char *text, size_t len, char **out);

/* `xensim guest …` (argv[0] is "guest").  Returns the exit status. */
int guest_cli(int argc, char **argv);

#endif
