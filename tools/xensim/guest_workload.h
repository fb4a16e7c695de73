/*
 * xensim guests: the workload runner inside `xensim run`.  For a domain it
 * runs N vCPU threads (one guest_hv bus each) that boot like a guest
 * (firmware PCI pass first, failing where hvmloader would), then drive the
 * devices a spec names (guest_spec.h) and count what was lost
 * (guest_check.h).  The dm's reported run state is watched in xenstore, so
 * interrupts and device writes to guest RAM while the dm says it is
 * stopped are counted.  The runner's own state (driver state, ledgers,
 * stream positions) lives in guest RAM, so a restored or migrated guest
 * resumes from it without re-initialising its controllers.
 *
 * All functions are thread-safe.  Errors: -ESRCH unknown domain, -EINVAL
 * bad spec, -EEXIST already running, -ENOENT no workload, with a message.
 */
#ifndef XENSIM_GUEST_WORKLOAD_H
#define XENSIM_GUEST_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* `xensim run`: where the xenstore daemon listens (for the dm-state watch;
 * sets XENSTORED_PATH).  Without it, or with NULL/"", the dm's state is
 * not watched. */
void guest_wl_init(const char *rundir);
/* Stop every workload and wait for its threads (daemon exit). */
void guest_wl_shutdown(void);

/* Start `spec` on domid; resume: continue the workload whose state is in
 * the domain's RAM (the spec is taken from there; `spec` must be empty). */
int guest_wl_start(uint32_t domid, const char *spec, bool resume, char *err, size_t errlen);
/* Ask the vCPU threads to stop at the end of the operation they are in
 * (an access in flight completes), wait for them at most timeout_ms, then
 * write the runner's state into guest RAM.  -ETIMEDOUT if they did not
 * stop in time (they stop later). */
int guest_wl_stop(uint32_t domid, int timeout_ms, char *err, size_t errlen);
/* The status as one JSON object (state, failure reason, counters).
 * Returns the length, or a negative errno. */
int guest_wl_status(uint32_t domid, char *buf, size_t len);
/* Host -> guest through the dm's chardev: text as is, or count numbered
 * lines the guest checks (text NULL). */
int guest_wl_uart_send(uint32_t domid, const char *text, size_t len, uint64_t count,
                       char *err, size_t errlen);
/* Wait (bounded) until the workload leaves the starting/firmware states
 * or ends; 0 or -ETIMEDOUT/-ENOENT.  For tests. */
int guest_wl_wait_running(uint32_t domid, int timeout_ms);
/* Wait (bounded) until the workload's threads have all ended. */
int guest_wl_wait_ended(uint32_t domid, int timeout_ms);

#endif
