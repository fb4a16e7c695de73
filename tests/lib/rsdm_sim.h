/*
 * A real rsdm-sim on a simulated host, for tests and benchmarks: xenstore
 * from a `xensim run` daemon, the hypervisor in this process
 * (tests/lib/xsim_emu), one domain, and rsdm-sim as a child process started
 * as libxl starts it (traditional dialect), up to `running` and unpaused.
 * Every wait is bounded and woken by xenstore watch events.
 */
#ifndef RSDM_SIM_H
#define RSDM_SIM_H

#include <stdint.h>
#include <sys/types.h>

struct hv_domain;
struct xs_handle;

typedef struct rsdm_sim {
    char dir[64];                      /* temporary directory, removed at the end */
    char bin[4096];                    /* $RSDM_BUILD/bin */
    pid_t dm;                          /* rsdm-sim, 0 once reaped */
    uint32_t dom;
    struct hv_domain *d;
    struct xs_handle *xs;              /* watches state and runstate */
    char state[128], runstate[128], command[128];
} rsdm_sim;

/* 0, or -1 with the reason on stderr (everything started is stopped). */
int rsdm_sim_start(rsdm_sim *s, const char *name, unsigned vcpus);
/* SIGTERM to rsdm-sim and reap it: its wait status, or -1. */
int rsdm_sim_stop_dm(rsdm_sim *s);
/* rsdm-sim (if still running), the domain, the hypervisor, xensim, the directory. */
void rsdm_sim_stop(rsdm_sim *s);
/* Until path reads want, at most timeout_ms without an event: 0 or -ETIMEDOUT. */
int rsdm_sim_wait_value(rsdm_sim *s, const char *path, const char *want, int timeout_ms);

#endif
