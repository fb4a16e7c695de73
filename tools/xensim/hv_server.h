/*
 * The hypervisor's control socket ($RUNDIR/hv/socket), served by its own
 * thread.  See hv_proto.h for the protocol.
 */
#ifndef XENSIM_HV_SERVER_H
#define XENSIM_HV_SERVER_H

/* Create $rundir/hv/ and listen there.  0 or -errno (message logged). */
int hv_server_start(const char *rundir);
/* Stop the thread, close every connection, remove the socket. */
void hv_server_stop(void);

#endif
