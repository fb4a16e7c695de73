/*
 * xensim hypervisor: the in-process API.
 *
 * The simulated Xen keeps domains, guest RAM, pause counts, ioreq servers,
 * event channels, interrupt lines and the dirty bitmap.  Three kinds of
 * callers use it:
 *   - guest vCPU threads (xensim part 3): hv_vcpu_io() runs Xen's dispatch
 *     (CF8/CFC translation, server selection, null handler) and blocks,
 *     bounded, until the device model answers; hv_irq_*() is the guest's
 *     view of the interrupt lines;
 *   - the control socket (hv_server.c), on which the Xen library calls of a
 *     device model (tools/xensim/xenlib/) arrive;
 *   - the `xensim` CLI and the simulated toolstack.
 *
 * All state is protected by one lock, so every function here is safe to call
 * from any thread.  A struct hv_domain pointer stays valid between
 * hv_domain_get() and hv_domain_put() even if the domain is destroyed
 * meanwhile (calls then fail with ESRCH/ESHUTDOWN).
 *
 * Errors are returned as negative errno values unless a function says
 * otherwise; the message explaining them goes to stderr via hv_log().
 */
#ifndef XENSIM_HV_H
#define XENSIM_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xenctrl.h first: it defines __XEN_TOOLS__ for the public headers. */
#include <xenctrl.h>
#include <xen/hvm/ioreq.h>

#define HV_PAGE_SIZE         4096u
#define HV_MAX_SERVERS       8u      /* MAX_NR_IOREQ_SERVERS */
#define HV_MAX_VCPUS         128u    /* one shared_iopage holds 128 slots */
#define HV_MAX_RANGES        256u    /* MAX_NR_IO_RANGES per type per server */
#define HV_MAX_MEMORY_MIB    3072u   /* keeps 3 GiB..4 GiB free for MMIO BARs */
#define HV_NR_GSIS           48u
#define HV_DEFAULT_TIMEOUT_MS 10000

struct hv_domain;

/* ------------------------------------------------------------ lifecycle */

/* Initialise the hypervisor.  Idempotent.  Returns 0. */
int hv_init(void);
/* Destroy every domain (tests call this between cases). */
void hv_reset(void);

/* Called with domid and the new state on domain create / shutdown /
 * destroy, outside the hypervisor lock.  The xenstore side uses it for
 * introduce/release and @releaseDomain.  One hook; NULL to clear. */
enum hv_domain_event { HV_DOM_CREATED, HV_DOM_SHUTDOWN, HV_DOM_DESTROYED };
typedef void hv_domain_hook_fn(uint32_t domid, enum hv_domain_event ev,
                               void *opaque);
void hv_set_domain_hook(hv_domain_hook_fn *fn, void *opaque);

/* ------------------------------------------------------------ domains */

/* Create a domain, paused once by the system controller as Xen creates
 * them.  domid 0 picks the next free id after the last one picked (Xen's
 * rover), so a destroyed domain's id is not reused at once.  Returns the domid (> 0)
 * or a negative errno. */
int hv_domain_create(uint32_t domid, unsigned int vcpus, unsigned int mem_mib,
                     const char *name);
int hv_domain_destroy(uint32_t domid);

/* Reference counting for long-lived users (guest threads). */
struct hv_domain *hv_domain_get(uint32_t domid);
void hv_domain_put(struct hv_domain *d);
uint32_t hv_domain_id(const struct hv_domain *d);

/* Controller pause count (xc_domain_pause / xl pause): nests, at most 254
 * outstanding; unpause at 0 is -EINVAL as in Xen. */
int hv_domain_pause(uint32_t domid);
int hv_domain_unpause(uint32_t domid);

/* SCHEDOP/DMOP shutdown.  The domain is "shut down" only once no vCPU has
 * an ioreq outstanding (Xen's shutdown deferral). */
int hv_domain_shutdown(uint32_t domid, unsigned int reason);
/* XEN_DOMCTL_resume as xc_domain_resume(fast) reaches it: the shutdown
 * (e.g. SHUTDOWN_suspend) is cancelled and the vCPUs run again (the
 * controller pause count is untouched).  fast = the cooperative resume of a
 * checkpoint / failed save: a guest with PV drivers (HVM_PARAM_CALLBACK_IRQ
 * set) sees its suspend hypercall return 1, "cancelled", and carries on
 * without reconnecting (counted in suspend_cancels); otherwise it resumes
 * as in a new domain context. */
int hv_domain_resume(uint32_t domid, bool fast);

struct hv_domain_info {
    uint32_t domid;
    char name[64];
    unsigned int nr_vcpus;
    uint64_t mem_bytes;
    unsigned int pause_count;      /* controller references */
    bool paused;                   /* pause_count > 0 or S3 */
    bool shutting_down, shut_down, dying, crashed;
    unsigned int shutdown_reason;
    unsigned int nr_servers, nr_enabled_servers;
    unsigned int vcpus_pending;    /* vCPUs with an ioreq outstanding */
    uint64_t null_reads, null_writes; /* accesses the null handler took */
    uint64_t ioreqs_sent;
    bool logdirty;
    uint64_t resumes;              /* hv_domain_resume calls */
    uint64_t suspend_cancels;      /* of which the guest saw "cancelled" */
};
int hv_domain_info(uint32_t domid, struct hv_domain_info *out);
/* Up to max domids in ascending order; returns the count. */
int hv_domain_list(uint32_t *out, int max);

/* Guest RAM as seen by the hypervisor (the guest's own view).  gfn 0 is at
 * offset 0; there is no MMIO hole.  Returns NULL if the domain is gone. */
void *hv_domain_ram(struct hv_domain *d, uint64_t *size);
/* The memfd holding guest RAM (owned by the hypervisor; dup it). */
int hv_domain_ram_fd(uint32_t domid, uint64_t *size);

/* HVM params.  Setting HVM_PARAM_ACPI_S_STATE to 3 puts the domain in S3
 * (vCPUs stop like under a pause), 0 wakes it. */
int hv_hvm_param_set(uint32_t domid, uint32_t param, uint64_t value);
int hv_hvm_param_get(uint32_t domid, uint32_t param, uint64_t *value);

/* Wait (bounded) until a predicate on the domain holds.  Returns 0, or
 * -ETIMEDOUT.  Used by tests and the toolstack instead of sleeping. */
enum hv_wait_for { HV_WAIT_SHUT_DOWN, HV_WAIT_UNPAUSED, HV_WAIT_PAUSED,
                   HV_WAIT_ENABLED_SERVER, HV_WAIT_GONE };
int hv_domain_wait(uint32_t domid, enum hv_wait_for what, int timeout_ms);

/* A guest vCPU's store into its RAM (gpa, len bytes): what Xen's log-dirty
 * p2m catches, so the pages are marked dirty while log-dirty is on.  The
 * vCPUs must be running: -EAGAIN while paused (or S3), -ESHUTDOWN once
 * shutting down, -EINVAL outside RAM. */
int hv_guest_write(uint32_t domid, uint64_t gpa, const void *buf, size_t len);
/* The same store in any state, dirty-logged alike: for the simulated
 * guest's own state, which a real guest keeps in its RAM as it runs
 * (xensim's runner writes it when it stops, possibly with the domain
 * paused, and a live migration must still send those pages). */
int hv_guest_state_write(uint32_t domid, uint64_t gpa, const void *buf, size_t len);

/* ------------------------------------------------------------ vCPU I/O */

/*
 * A guest access, as a trapped vCPU would make it: type IOREQ_TYPE_PIO or
 * IOREQ_TYPE_COPY (MMIO), addr, size (1/2/4/8), count (>= 1), dir
 * (IOREQ_READ/IOREQ_WRITE), df, data_is_ptr, data.  On completion data
 * holds the value read (all-ones from the null handler).
 *
 * hv_vcpu_io() = submit + wait.  Returns 0 when answered; -EAGAIN when
 * the vCPU stayed paused/stalled for the whole timeout (nothing was sent);
 * -ETIMEDOUT when the request was sent but no answer came within
 * timeout_ms, or it was answered while the domain is paused (either way it
 * stays outstanding: call hv_vcpu_io_wait() to keep waiting); -EBUSY if the
 * vCPU still has one outstanding; -ESHUTDOWN if the domain is shutting
 * down/crashed/dying; -EINVAL/-EFAULT on a malformed request or a guest
 * buffer outside RAM; -EIO when Xen would find the slot in a bad state
 * ("device model set bad IO state/event channel").
 */
int hv_vcpu_io(struct hv_domain *d, unsigned int vcpu, ioreq_t *req,
               int timeout_ms);
/* Submit only: returns 1 if completed at once (null handler; *req holds the
 * result), 0 if sent to a server (now outstanding), or a negative errno.
 * Waits (bounded) for the vCPU to be runnable first (not paused/stalled);
 * -EAGAIN if it never was. */
int hv_vcpu_io_submit(struct hv_domain *d, unsigned int vcpu, ioreq_t *req,
                      int timeout_ms);
int hv_vcpu_io_wait(struct hv_domain *d, unsigned int vcpu, ioreq_t *req,
                    int timeout_ms);
/* Synchronous IOREQ_TYPE_INVALIDATE broadcast to every enabled server, as
 * Xen sends after the guest gives memory back. */
int hv_vcpu_invalidate(struct hv_domain *d, unsigned int vcpu, int timeout_ms);
/* Block (bounded) until the vCPU may run: not paused, not in S3, not
 * stalled.  -ESHUTDOWN once the domain is going away. */
int hv_vcpu_wait_runnable(struct hv_domain *d, unsigned int vcpu,
                          int timeout_ms);

/* Buffered (TIMEOFFSET) broadcast to servers with a buffered ring. */
int hv_send_timeoffset(uint32_t domid, uint64_t offset);

/* ------------------------------------------------------------ null handler */

/* One range some server registered at some time, and how many accesses to
 * it the null handler took (server disabled, destroyed or range unmapped). */
struct hv_null_hits {
    unsigned int server;
    unsigned int type;             /* XEN_DMOP_IO_RANGE_* */
    uint64_t start, end;
    uint64_t hits;
};
/* Fills up to max entries; returns the number of known ranges. */
int hv_null_hits(uint32_t domid, struct hv_null_hits *out, int max);
/* Sum of hits on registered ranges (0 means no access to a range any
 * server had registered was lost). */
uint64_t hv_null_hits_total(uint32_t domid);

/* ------------------------------------------------------------ interrupts */

struct hv_irq_state {
    uint8_t level[HV_NR_GSIS];      /* current line level, GSI 0..47 */
    uint64_t edges[HV_NR_GSIS];     /* rising edges seen on each line */
    uint8_t link_route[4];          /* PCI link -> ISA IRQ (0 = none) */
    uint64_t msi_count;
    uint64_t seq;                   /* bumps on every edge and MSI */
};
int hv_irq_state(struct hv_domain *d, struct hv_irq_state *out);
/* Block (bounded) until the interrupt sequence moves past *seq; updates
 * *seq.  0, -ETIMEDOUT or -ESHUTDOWN. */
int hv_irq_wait(struct hv_domain *d, uint64_t *seq, int timeout_ms);
/* Oldest undelivered MSI (FIFO of 256). 1 if one was taken, 0 if none. */
int hv_msi_pop(struct hv_domain *d, uint64_t *addr, uint32_t *data);

/* What the DMOPs do (also used by the server). */
int hv_set_isa_irq_level(uint32_t domid, unsigned int irq, unsigned int level);
int hv_set_pci_intx_level(uint32_t domid, unsigned int seg, unsigned int bus,
                          unsigned int dev, unsigned int intx,
                          unsigned int level);
int hv_set_pci_link_route(uint32_t domid, unsigned int link, unsigned int irq);
int hv_inject_msi(uint32_t domid, uint64_t addr, uint32_t data);

/* ------------------------------------------------------------ log-dirty */

int hv_logdirty_enable(uint32_t domid, bool on);
/* modified_memory: no-op (0) when log-dirty is off, as in Xen. */
int hv_modified_memory(uint32_t domid, uint64_t first_pfn, uint64_t nr);
/* Copy the dirty bitmap (one bit per gfn, nbits bits) and clear it.
 * Returns the number of dirty pages. */
long hv_logdirty_peek_clean(uint32_t domid, unsigned long *bitmap,
                            uint64_t nbits);

/* ------------------------------------------------------------ faults */

int hv_fault_stall_vcpu(uint32_t domid, unsigned int vcpu, bool stall);
/* Drop the next n notifications Xen would send on port (0 = every port of
 * the domain's ioreq servers). */
int hv_fault_drop_events(uint32_t domid, uint32_t port, unsigned int n);

/* ------------------------------------------------------------ logging */

void hv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Silence hv_log (tests that provoke errors on purpose). */
void hv_log_quiet(bool quiet);

#endif
