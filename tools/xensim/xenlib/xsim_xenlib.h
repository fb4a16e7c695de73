/*
 * xensim's implementation of the Xen library calls a device model makes
 * (libxendevicemodel, libxenforeignmemory, libxenevtchn, libxenctrl), private
 * header.  Every library handle is one connection to the simulated
 * hypervisor's control socket ($XENSIM_RUNDIR/hv/socket, hv_proto.h) and is
 * registered with Debian's real libxentoolcore, so xentoolcore_restrict_all()
 * reaches it exactly as it reaches the real libraries' handles.
 */
#ifndef XSIM_XENLIB_H
#define XSIM_XENLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xenctrl.h first: it defines __XEN_TOOLS__ for the public headers. */
#include <xenctrl.h>
#include <xen_list.h>
#include <xentoolcore.h>

#include "hv_proto.h"

/* libxentoolcore's handle registration (tools/include/xentoolcore_internal.h
 * in Xen's tree, not installed by Debian; the library exports the two
 * functions).  The layout must match: callback pointer, then a list entry. */
typedef struct xsim_toolcore_handle xsim_toolcore_handle;
typedef int xsim_restrict_cb(xsim_toolcore_handle *, domid_t);
struct xsim_toolcore_handle {
    xsim_restrict_cb *restrict_callback;
    XEN_LIST_ENTRY(xsim_toolcore_handle) entry;
};
void xentoolcore__register_active_handle(xsim_toolcore_handle *);
void xentoolcore__deregister_active_handle(xsim_toolcore_handle *);
int xentoolcore__restrict_by_dup2_null(int fd);

struct xsim_conn {
    xsim_toolcore_handle tc;        /* first: the callback finds us from it */
    int fd;
    uint32_t kind;                  /* enum hv_client_kind */
    int32_t restricted;             /* -1 or the domid */
    pthread_mutex_t lock;           /* one request at a time per handle */
};

/* Connect and register with libxentoolcore.  0, or -1 with errno set and a
 * message on stderr saying why the simulator cannot be reached. */
int xsim_conn_open(struct xsim_conn *c, uint32_t kind, const char *libname);
void xsim_conn_close(struct xsim_conn *c);

/* One request/response.  On success returns 0; fds (up to maxfds) are the
 * caller's; *payload (if non-NULL) is malloc'd with rsp->len bytes.  On
 * failure returns -1 with errno = the simulator's error (e.g. EPERM when
 * restricted) and closes any fds received. */
int xsim_call(struct xsim_conn *c, struct hv_req *q, struct hv_rsp *r,
              int *fds, unsigned int maxfds, void **payload);

/* Shorthand: a request with op and domid. */
void xsim_req_init(struct hv_req *q, uint32_t op, uint32_t domid);

/* Ask the simulator to restrict this connection to domid. */
int xsim_conn_restrict(struct xsim_conn *c, uint32_t domid);

#endif
