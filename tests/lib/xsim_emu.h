/*
 * Test helpers for the simulated hypervisor:
 *
 *  - a fixture that runs the hypervisor in-process (its control socket in a
 *    temporary run directory, XENSIM_RUNDIR set) so the Xen library calls
 *    linked into the test reach it;
 *  - a minimal emulator (not rsdm) written only against the real Xen
 *    library API, in Xen's order: open, nr_vcpus, create, map_resource, map
 *    ranges, enable, bind vp_eports; it answers requests with a callback and
 *    can also hand a request to the test unanswered, so tests can interleave
 *    steps deterministically.
 *
 * Every wait is bounded; nothing sleeps.
 */
#ifndef XSIM_EMU_H
#define XSIM_EMU_H

#include <stdbool.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xen/hvm/ioreq.h>

#define XSIM_EMU_WAIT_MS 10000

/* Start the in-process hypervisor in a fresh run directory. 0 or -errno. */
int xsim_fixture_start(void);
/* Destroy all domains, stop the socket, remove the run directory. */
void xsim_fixture_stop(void);
/* The same with cmocka's setup/teardown signature (state unused), for
 * tests that need nothing but the fixture around each case. */
int xsim_fixture_setup(void **state);
int xsim_fixture_teardown(void **state);
const char *xsim_fixture_rundir(void);

struct xsim_emu;
/* Fill req->data for reads; called on the emulator's thread. */
typedef void xsim_emu_fn(struct xsim_emu *e, unsigned int vcpu, ioreq_t *req,
                         void *opaque);

struct xsim_emu {
    uint32_t domid;
    xendevicemodel_handle *dm;
    xenforeignmemory_handle *fm;
    xenevtchn_handle *xce;
    xenforeignmemory_resource_handle *res;
    void *pages;                    /* [0] buffered (if any), then shared */
    shared_iopage_t *shared;
    ioservid_t id;
    int bufioreq;
    unsigned int nr_vcpus;
    evtchn_port_t local[128];       /* local port per vCPU (0: unbound) */
    xsim_emu_fn *fn;
    void *opaque;
    uint64_t handled;
    /* default device: 256 scratch registers, see xsim_emu_scratch */
    uint64_t scratch[256];
    /* emulator thread */
    int stop_fd;
    bool thread_running;
    unsigned long thread;           /* pthread_t */
};

/* open handles, nr_vcpus, create the server (bufioreq mode) and map its
 * pages with map_resource.  Does not enable.  0 or -errno (message). */
int xsim_emu_open(struct xsim_emu *e, uint32_t domid, int bufioreq);
/* enable (1) or disable (0) */
int xsim_emu_set_state(struct xsim_emu *e, bool enabled);
/* bind every vCPU's vp_eport (after enable). */
int xsim_emu_bind(struct xsim_emu *e);
/* The usual sequence: open, map the scratch ranges, enable, bind. */
int xsim_emu_setup(struct xsim_emu *e, uint32_t domid);
/* Reverse order teardown: unbind, disable, unmap resource, destroy, close. */
void xsim_emu_close(struct xsim_emu *e);

/* Scratch device: ports 0x5000-0x50ff and MMIO 0xfe000000-0xfe0007ff map
 * onto scratch[] (reads return what was written), PCI config of 00:03.0
 * reads vendor/device 0x5678:0x1234 at 0 and scratch[reg/4] elsewhere. */
#define XSIM_EMU_PORT   0x5000u
#define XSIM_EMU_MMIO   0xfe000000ull
void xsim_emu_scratch(struct xsim_emu *e, unsigned int vcpu, ioreq_t *req,
                      void *opaque);

/* Wait (bounded) for one event, then answer every READY slot with the
 * callback (READY -> INPROCESS -> IORESP_READY, notify).  Returns the number
 * answered (0 on timeout) or -errno. */
int xsim_emu_poll(struct xsim_emu *e, int timeout_ms);
/* Wait (bounded) for a request and take it without answering: the slot is
 * left INPROCESS.  Returns the vCPU or -ETIMEDOUT. */
int xsim_emu_take(struct xsim_emu *e, int timeout_ms, ioreq_t *out);
/* Answer vCPU's taken request with data (IORESP_READY + notify). */
int xsim_emu_answer(struct xsim_emu *e, unsigned int vcpu, uint64_t data);
/* Write a raw state into vCPU's slot and notify (to provoke Xen). */
int xsim_emu_force_state(struct xsim_emu *e, unsigned int vcpu, uint8_t st);
uint8_t xsim_emu_slot_state(struct xsim_emu *e, unsigned int vcpu);

/* Run xsim_emu_poll on a thread until xsim_emu_stop_thread. */
int xsim_emu_start_thread(struct xsim_emu *e);
void xsim_emu_stop_thread(struct xsim_emu *e);

/* Guest-side helpers: one access through hv_vcpu_io. */
struct hv_domain;
int xsim_pio(struct hv_domain *d, unsigned int vcpu, bool write,
             uint16_t port, unsigned int size, uint64_t *val);
int xsim_mmio(struct hv_domain *d, unsigned int vcpu, bool write,
              uint64_t addr, unsigned int size, uint64_t *val);
/* PCI config via CF8/CFC as a guest does: 0 or -errno */
int xsim_pci_cfg(struct hv_domain *d, unsigned int vcpu, bool write,
                 unsigned int bus, unsigned int dev, unsigned int fn,
                 unsigned int reg, unsigned int size, uint64_t *val);

#endif
