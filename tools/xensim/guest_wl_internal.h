/*
 * xensim guests: the workload runner's parts (guest_workload.c registry
 * and lifecycle, guest_workload_run.c the vCPU threads and devices,
 * guest_workload_mon.c the dm-state watch, guest_workload_con.c the host
 * end of the dm's serial chardev).  Internal to those files.
 */
#ifndef XENSIM_GUEST_WL_INTERNAL_H
#define XENSIM_GUEST_WL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "guest_ahci.h"
#include "guest_check.h"
#include "guest_diskload.h"
#include "guest_fw.h"
#include "guest_ide.h"
#include "guest_pm.h"
#include "guest_spec.h"
#include "guest_testdisk.h"
#include "guest_uart.h"
#include "guest_workload.h"

#define WL_MAX_VCPUS 64u
#define WL_HDR_GPA 0x100000ull        /* 1 MiB: the runner's state page(s) */
#define WL_HDR_SIZE 0x10000ull
#define WL_RAM_BASE (WL_HDR_GPA + WL_HDR_SIZE)
#define WL_HDR_MAGIC 0x44484c5753584e45ull   /* "ENXSWLHD" */
#define WL_HDR_VERSION 3u   /* 2: rounds frozen in flight; 3: the disk-load random streams */
#define WL_UART_BASE 0x3f8u
#define WL_LINE 10                    /* "g%08llu\n" (guest) / "h%08llu\n" (host) */

enum wl_state { WL_STARTING, WL_FIRMWARE, WL_RUNNING, WL_STOPPING, WL_STOPPED, WL_DONE,
                WL_FAILED, WL_SHUTDOWN };
enum wl_disk_kind { WL_TESTDISK, WL_IDE, WL_AHCI, WL_NDISKS };

/* What the guest keeps in its RAM at WL_HDR_GPA: written when the
 * workload starts running and when it stops, read by a resume. */
struct wl_hdr {
    uint64_t magic;
    uint32_t version, nvcpus;
    char spec[GUEST_SPEC_MAX];
    uint64_t uart_tx_next, uart_rx_next, writes_claimed, action_done;
    struct { uint64_t ledger, nsectors, next_seq; } chk[WL_NDISKS];
    uint64_t ram_next[WL_MAX_VCPUS];
    struct guest_fw fw;
    struct guest_uart uart;
    struct guest_pm pm;
    struct guest_ide ide;
    struct guest_ahci ahci;
    struct guest_testdisk td[WL_MAX_VCPUS];
    /* A vCPU frozen in a disk round's completion wait by a toolstack
     * suspend (guest_bus.h GUEST_FROZEN): which disk, and the round. */
    struct { uint32_t disk, pad; struct guest_diskload_pending p; } pend[WL_MAX_VCPUS];
    /* Each vCPU's disk-load random stream: a resume that restarted it
     * from the seed would rewrite exactly the sectors written before the
     * save, first, and hide a write the save lost from the read-back. */
    uint64_t rng[WL_MAX_VCPUS];
};
_Static_assert(sizeof(struct wl_hdr) <= WL_HDR_SIZE, "runner state must fit its pages");

struct guest_wl;

struct wl_vcpu {
    struct guest_wl *wl;
    unsigned idx;
    struct guest_bus bus;
    bool bus_open, thread;
    pthread_t th;
    struct guest_testdisk td;
    unsigned pend_disk;                  /* the disk of `pend` */
    struct guest_diskload_pending pend;  /* a round frozen in flight */
    uint64_t rng;
    uint8_t *iobuf;   /* IDE/AHCI data: GUEST_DISKLOAD_BUF bytes */
};

struct wl_con;   /* guest_workload_con.c */

struct guest_wl {
    uint32_t domid;
    struct hv_domain *d;
    struct guest_spec spec;
    char spec_text[GUEST_SPEC_MAX];
    bool resumed;
    unsigned nvcpus;
    uint64_t t_start_ms;

    pthread_mutex_t lock;            /* state, reason, counters below */
    pthread_cond_t cond;
    enum wl_state state;
    char reason[GUEST_BUS_ERRLEN + 64];
    unsigned running_threads;
    bool init_done, init_failed;
    unsigned pending_rounds;         /* frozen rounds not yet finished (lock) */
    _Atomic uint64_t rounds_frozen;  /* vCPUs frozen in a round by this stop */
    _Atomic uint64_t rounds_finished;/* frozen rounds finished after this resume */

    atomic_bool stop;                /* end at the next operation boundary */
    atomic_bool abort;               /* give up waiting on a paused vCPU */
    pthread_rwlock_t exec;           /* vCPUs' RAM writes vs. the stopped check */
    struct wl_vcpu v[WL_MAX_VCPUS];

    /* the guest's drivers (vCPU 0 initialises; disks are shared) */
    struct guest_fw fw;
    struct guest_uart uart;
    struct guest_pm pm;
    struct guest_ide ide;
    struct guest_ahci ahci;
    pthread_mutex_t disk_lock[WL_NDISKS];
    struct guest_check chk[WL_NDISKS];
    struct guest_diskload dl[WL_NDISKS];  /* IDE and AHCI */
    bool chk_ready[WL_NDISKS];
    atomic_uint_fast64_t writes_claimed;

    /* UART and PM, guest side (written by vCPU 0; atomic for `status`) */
    _Atomic uint64_t uart_tx_next, uart_rx_next;
    char rx_line[64];
    unsigned rx_len;
    _Atomic uint64_t rx_bytes, rx_lines, rx_text_lines;
    char rx_text[64];                /* the last text line received (lock) */
    _Atomic uint64_t action_done, s3_resumes, sci_seen;

    struct guest_check_counters extra;   /* counters not tied to a disk */

    /* dm state (guest_workload_mon.c) */
    pthread_t mon;
    bool mon_thread;
    atomic_bool mon_stop;
    char runstate[96];
    bool dm_stopped, monitored;
    uint64_t stopped_checks;         /* confirmed-stopped intervals compared */

    struct wl_con *con;
};

/* guest_workload_run.c */
void *wl_vcpu_main(void *arg);
void wl_hdr_write(struct guest_wl *wl);
void wl_count(struct guest_wl *wl, size_t counter_offset, uint64_t n);
#define WL_COUNT(wl, field, n) \
    wl_count((wl), offsetof(struct guest_check_counters, field), (n))
/* vCPU 0 has set up the drivers and checkers (their fields may be read). */
bool wl_booted(struct guest_wl *wl);
/* The guest-RAM regions devices write (DMA buffers, ledgers). */
unsigned wl_dma_regions(struct guest_wl *wl, uint64_t *gpa, uint64_t *len, unsigned max);

/* guest_workload_mon.c */
int wl_mon_start(struct guest_wl *wl, const char *xs_socket);
/* false: the watch could not be ended (left running; wl must stay). */
bool wl_mon_stop(struct guest_wl *wl);

/* guest_workload_con.c: one per chardev path, shared by the workloads of
 * every domain that uses it (a restored guest continues its stream). */
struct wl_con *wl_con_open(struct guest_wl *wl, const char *path, const char *log);
void wl_con_release(struct wl_con *c);
int wl_con_send(struct wl_con *c, const char *text, size_t len, uint64_t count, char *err,
                size_t errlen);
/* Host-side view of the guest -> host stream. */
struct wl_con_stats { uint64_t rx_bytes, rx_lines, tx_lines, missing, duplicated,
                      out_of_order; bool connected; };
void wl_con_stats(struct wl_con *c, struct wl_con_stats *out);

#endif
