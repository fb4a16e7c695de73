/*
 * The hypervisor inside `xensim run`, and its subcommands.
 */
#ifndef XENSIM_HV_MAIN_H
#define XENSIM_HV_MAIN_H

struct xsim_loop;
struct xs_server;

/* Start the simulated hypervisor in `xensim run`: its control socket in
 * rundir/hv/socket, and (if xs is given) domain creation/shutdown/destroy
 * reflected into the xenstore daemon on its loop: introduce, @releaseDomain,
 * release.  Call on the loop's thread before running it.  0 or -errno. */
int hv_start(struct xsim_loop *loop, struct xs_server *xs, const char *rundir);
/* Destroy every domain and stop the control socket. */
void hv_stop(void);

/* `xensim domain …` and `xensim fault …` (argv[0] is "domain"/"fault").
 * Reaches the running simulator through --rundir or XENSIM_RUNDIR.
 * Returns the exit status. */
int hv_cli(int argc, char **argv);

#endif
