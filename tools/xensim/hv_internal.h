/*
 * xensim hypervisor internals shared by hv_*.c.  Everything here is
 * protected by hv_lock unless a field says otherwise.
 */
#ifndef XENSIM_HV_INTERNAL_H
#define XENSIM_HV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "hv.h"

#define HV_MAX_DOMAINS   1024u    /* domains alive or dying at once */
#define HV_MAX_DOMID     32752u     /* DOMID_FIRST_RESERVED */
#define HV_MAX_PORTS     2048u      /* per-domain (Xen side) event channels:
                                       8 servers x (128 vCPUs + 1) fit */
#define HV_DM_PORTS      4096u      /* the dm domain's local port space */
#define HV_MSI_QUEUE     256u

extern pthread_mutex_t hv_lock;

/* ------------------------------------------------------------ rangesets */
struct hv_range { uint64_t s, e; };
struct hv_rangeset {
    struct hv_range *r;             /* sorted, disjoint, non-adjacent */
    unsigned int n, cap;
};
int hv_rangeset_add(struct hv_rangeset *rs, uint64_t s, uint64_t e);
int hv_rangeset_remove(struct hv_rangeset *rs, uint64_t s, uint64_t e);
bool hv_rangeset_overlaps(const struct hv_rangeset *rs, uint64_t s, uint64_t e);
bool hv_rangeset_contains(const struct hv_rangeset *rs, uint64_t s, uint64_t e);
void hv_rangeset_free(struct hv_rangeset *rs);

/* ------------------------------------------------------------ event channels */
struct hv_evtchn_client;

struct hv_port {
    bool used;
    int vcpu;                       /* -1: not a vCPU's ioreq port */
    int efd;                        /* dm -> Xen: the dm's notify writes here */
    bool efd_owned;                 /* else it is the vCPU's wake fd */
    struct hv_evtchn_client *peer;  /* bound dm handle, or NULL */
    uint32_t peer_port;
    unsigned int drop;              /* fault: drop this many sends */
    uint64_t sent, dropped;
};

/* The dm side of an xenevtchn handle: one eventfd the dm polls and a shared
 * page of pending/mask bytes indexed by local port (see hv_proto.h). */
struct hv_evtchn_client {
    int efd;
    int shm_fd;
    uint8_t *shm;                   /* HV_EVTCHN_SHM_SIZE bytes */
    int32_t restrict_domid;         /* -1: unrestricted */
    unsigned int nbound;
};

/* allocate a port in d (caller holds lock); efd < 0 creates its own */
int hv_port_alloc(struct hv_domain *d, int vcpu, int efd);
void hv_port_free(struct hv_domain *d, uint32_t port);
/* Xen -> dm notification; dropped if a fault says so */
void hv_port_send(struct hv_domain *d, uint32_t port);

struct hv_evtchn_client *hv_evtchn_client_new(void);
void hv_evtchn_client_free(struct hv_evtchn_client *c);
/* Bind local port to (domid, remote port).  Returns local port or -errno;
 * *efd_out is the fd the dm's notify writes (not a dup). */
int hv_evtchn_bind(struct hv_evtchn_client *c, uint32_t domid,
                   uint32_t remote, int *efd_out);
int hv_evtchn_unbind(struct hv_evtchn_client *c, uint32_t local);

/* ------------------------------------------------------------ domains */
struct hv_ioreq_server {
    bool used;
    bool enabled;
    bool mapped;                    /* pages acquired as a resource */
    int bufioreq;                   /* HVM_IOREQSRV_BUFIOREQ_* */
    int pages_fd;                   /* 2 pages: [0] buffered ring, [1] ioreqs */
    uint8_t *pages;
    struct hv_rangeset range[3];    /* XEN_DMOP_IO_RANGE_PORT/MEMORY/PCI */
    uint32_t vcpu_port[HV_MAX_VCPUS];
    uint32_t buf_port;
    uint64_t owner;                 /* connection that created it (info) */
};

enum hv_vcpu_state { HV_VCPU_IDLE, HV_VCPU_PENDING, HV_VCPU_DONE };

struct hv_vcpu {
    enum hv_vcpu_state state;
    unsigned int pending;           /* bitmask of servers still to answer */
    uint8_t prev_state[HV_MAX_SERVERS];
    ioreq_t req;                    /* as sent (after translation) */
    uint64_t data;                  /* answer */
    bool stalled;                   /* fault: vCPU descheduled */
    int efd;                        /* wakes the vCPU thread */
};

struct hv_known_range {
    unsigned int server, type;
    uint64_t start, end, hits;
};

struct hv_domain {
    uint32_t domid;
    unsigned int refs;              /* hv table + hv_domain_get() users */
    bool dying;
    char name[64];
    unsigned int nr_vcpus;
    uint64_t mem_bytes;
    int ram_fd;
    uint8_t *ram;

    unsigned int pause_count;
    bool s3;
    bool shutting_down, shut_down, crashed;
    unsigned int shutdown_reason;
    uint64_t resumes, suspend_cancels;

    uint32_t pci_cf8;
    struct hv_ioreq_server srv[HV_MAX_SERVERS];
    struct hv_port port[HV_MAX_PORTS];
    struct hv_vcpu *vcpu;

    struct hv_known_range *known;
    unsigned int nknown, known_cap;
    uint64_t null_reads, null_writes, ioreqs_sent;

    /* interrupt lines */
    uint8_t isa_level[16];          /* set_isa_irq_level */
    uint8_t gsi_assert[HV_NR_GSIS]; /* wired-OR of INTx sources per GSI */
    uint8_t intx_level[32][4];      /* per device/pin on bus 0 */
    uint8_t link_assert[4];
    uint8_t link_route[4];
    uint8_t level[HV_NR_GSIS];
    uint64_t edges[HV_NR_GSIS];
    uint64_t irq_seq, msi_count;
    struct { uint64_t addr; uint32_t data; } msi[HV_MSI_QUEUE];
    unsigned int msi_head, msi_len;

    bool logdirty;
    unsigned long *dirty;           /* one bit per gfn */

    uint64_t hvm_param[64];

    pthread_cond_t cond;            /* any state change waiters care about */
};

/* lookup under lock; NULL if absent or dying */
struct hv_domain *hv_domain_find(uint32_t domid);
/* wake everything waiting on d (cond + vCPU fds); caller holds lock */
void hv_domain_kick(struct hv_domain *d);
/* crash the domain (Xen's domain_crash); caller holds lock */
void hv_domain_crash_locked(struct hv_domain *d, const char *why);
/* re-evaluate shutdown deferral; caller holds lock; returns true if the
 * domain just became shut down (caller fires the hook after unlocking) */
bool hv_domain_check_shut_down(struct hv_domain *d);
void hv_domain_fire_hook(uint32_t domid, enum hv_domain_event ev);
bool hv_vcpu_runnable(const struct hv_domain *d, unsigned int vcpu);
/* monotonic deadline timeout_ms from now; bounded wait on d->cond (caller
 * holds hv_lock): 0 when woken, -ETIMEDOUT past the deadline */
struct timespec;
void hv_deadline(struct timespec *ts, int timeout_ms);
int hv_cond_wait_ms(struct hv_domain *d, const struct timespec *deadline);
/* milliseconds left until a deadline (0 if past) */
int hv_ms_left(const struct timespec *deadline);

/* ioreq servers (hv_ioreq.c); caller holds lock */
void hv_ioreq_destroy_all(struct hv_domain *d);
int hv_ioreq_create(struct hv_domain *d, int bufioreq, uint64_t owner,
                    unsigned int *id);
/* ends every vCPU's wait on the server, as Xen's destroy does; *shut_down
 * set when that completed a deferred shutdown (caller fires the hook after
 * unlocking) */
int hv_ioreq_destroy(struct hv_domain *d, unsigned int id, bool *shut_down);
int hv_ioreq_get_info(struct hv_domain *d, unsigned int id, uint32_t *bufport);
int hv_ioreq_map_range(struct hv_domain *d, unsigned int id, bool map,
                       unsigned int type, uint64_t s, uint64_t e);
int hv_ioreq_set_state(struct hv_domain *d, unsigned int id, bool enabled);
int hv_ioreq_resource(struct hv_domain *d, unsigned int id,
                      unsigned long frame, unsigned long nr, int *fd);

/* irq helpers (hv_irq.c); caller holds lock */
void hv_irq_reset(struct hv_domain *d);

#endif
