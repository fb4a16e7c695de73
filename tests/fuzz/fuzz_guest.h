/*
 * What the device targets (fuzz_ide, fuzz_ahci) share: an input read as
 * a sequence of guest operations on one controller -- register reads and
 * writes, PCI config writes, guest-RAM stores (PRD tables, command lists,
 * FIS), run-state changes and bounded main-loop passes -- and the
 * properties checked after it: the state saves and the saved bytes load
 * back into the same device.  Header-only (static inline) so `make fuzz`
 * needs no rule for it.
 *
 * Encoding, one operation after the other until the bytes run out (a
 * truncated operation ends the input); op = first byte, kind = op & 7,
 * access size = 1 << ((op >> 3) & 3) (8 is read as 4):
 *   0 register write   u16 register selector, u32 value
 *   1 register read    u16 register selector
 *   2 config write     u8 config offset, u32 value
 *   3 RAM store u32    u24 guest-physical address, u32 value
 *   4 RAM store bytes  u24 guest-physical address, u8 n, n bytes
 *   5 main loop        u8 passes (timeout 0, at most 63); with op bit 5
 *                      settle instead: passes (of at most 1 ms while the
 *                      backend has requests) until the backend is idle
 *                      and a pass finds nothing to do, at most 63
 *   6 run state        op bit 5: stop (paused), else cont
 *   7 save and reload  the device state, checked
 * Multi-byte fields are little-endian.  Addresses stay inside the guest
 * RAM the harness maps (stores past its end are dropped); what the device
 * itself does with a hostile address is its business and goes through the
 * hypervisor, which refuses anything outside the domain's RAM.
 */
#ifndef FUZZ_GUEST_H
#define FUZZ_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "dm_loop.h"
#include "dm_statefile.h"
#include "fuzz_harness.h"
#include "runstate.h"

#define FUZZ_GUEST_MAX_PASSES 63

typedef struct fuzz_guest {
    void *dev;
    /* Register accesses: sel is the target's own selector (IDE: a port
     * index, AHCI: an ABAR offset). */
    void (*reg_write)(void *dev, uint16_t sel, unsigned size, uint32_t val);
    void (*reg_read)(void *dev, uint16_t sel, unsigned size);
    void (*cfg_write)(void *dev, uint8_t reg, unsigned size, uint32_t val);
    uint8_t *ram;
    uint64_t ram_size;
    dm_blk *blk;
    dm_loop *loop;
    rs_vm *vm;
    dm_state_reg *state;
} fuzz_guest;

static inline uint32_t fuzz_le(const uint8_t *p, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline void fuzz_guest_store(fuzz_guest *g, uint64_t gpa, const void *src, size_t n)
{
    if (gpa < g->ram_size && n <= g->ram_size - gpa)
        memcpy(g->ram + gpa, src, n);
}

static inline void fuzz_guest_pump(fuzz_guest *g, unsigned passes)
{
    for (unsigned i = 0; i < passes; i++)
        dm_loop_iterate(g->loop, 0);
}

/* Waits only while the backend has requests (their completions run in
 * this thread, so the count cannot drop before the loop saw them). */
static inline void fuzz_guest_settle(fuzz_guest *g)
{
    for (int i = 0; i < FUZZ_GUEST_MAX_PASSES; i++) {
        bool busy = dm_blk_in_flight(g->blk) > 0;
        if (dm_loop_iterate(g->loop, busy ? 1 : 0) <= 0 && !busy)
            break;
    }
}

/* Stop the VM (a paused stop drains the backends, so nothing is left in
 * flight) unless it is already stopped; false if it was not live. */
static inline bool fuzz_guest_stop(fuzz_guest *g)
{
    if (!rs_is_live(g->vm))
        return false;
    rs_err e = { 0 };
    if (rs_vm_stop(g->vm, RS_PAUSED, &e) < 0)
        fuzz_die("rs_vm_stop", e.msg);
    return true;
}

/* Starts the VM from whatever stop it is in (paused, io-error); a state
 * that needs a reset first is left alone. */
static inline void fuzz_guest_cont(fuzz_guest *g)
{
    if (rs_is_live(g->vm) || rs_needs_reset(g->vm))
        return;
    rs_err e = { 0 };
    if (rs_cont(g->vm, &e) < 0)
        fuzz_die("rs_cont", e.msg);
}

/* The state saves whatever the guest did, and what was saved loads back
 * into the same device (stopped, as an incoming migration loads it). */
static inline void fuzz_guest_check_state(fuzz_guest *g)
{
    char err[512] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    bool was_live = fuzz_guest_stop(g);
    if (dm_state_save_mem(g->state, &buf, &len, err, sizeof(err)) < 0)
        fuzz_die("dm_state_save_mem", err);
    if (dm_state_load_mem(g->state, buf, len, err, sizeof(err)) != 0)
        fuzz_die("reloading the state just saved", err);
    free(buf);
    if (was_live)
        fuzz_guest_cont(g);
}

/* Runs one input; the caller resets the device afterwards. */
static inline void fuzz_guest_run(fuzz_guest *g, const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t op = d[i++];
        unsigned size = 1u << ((op >> 3) & 3);
        if (size > 4)
            size = 4;
        const uint8_t *a = d + i;
        size_t left = n - i;
        switch (op & 7) {
        case 0:
            if (left < 6)
                return;
            g->reg_write(g->dev, (uint16_t)fuzz_le(a, 2), size, fuzz_le(a + 2, 4));
            i += 6;
            break;
        case 1:
            if (left < 2)
                return;
            g->reg_read(g->dev, (uint16_t)fuzz_le(a, 2), size);
            i += 2;
            break;
        case 2:
            if (left < 5)
                return;
            g->cfg_write(g->dev, a[0], size, fuzz_le(a + 1, 4));
            i += 5;
            break;
        case 3: {
            if (left < 7)
                return;
            uint8_t v[4] = { a[3], a[4], a[5], a[6] };
            fuzz_guest_store(g, fuzz_le(a, 3), v, 4);
            i += 7;
            break;
        }
        case 4:
            if (left < 4 || left - 4 < a[3])
                return;
            fuzz_guest_store(g, fuzz_le(a, 3), a + 4, a[3]);
            i += 4 + (size_t)a[3];
            break;
        case 5:
            if (left < 1)
                return;
            if (op & 0x20)
                fuzz_guest_settle(g);
            else
                fuzz_guest_pump(g, a[0] & FUZZ_GUEST_MAX_PASSES);
            i += 1;
            break;
        case 6:
            if (op & 0x20)
                fuzz_guest_stop(g);
            else
                fuzz_guest_cont(g);
            break;
        default:
            fuzz_guest_check_state(g);
            break;
        }
    }
}

/* After an input: what the backend still does completes, the state still
 * saves and reloads (stopping drains the backend: nothing is left in
 * flight), then the VM runs again, ready for the caller's reset. */
static inline void fuzz_guest_finish(fuzz_guest *g)
{
    fuzz_guest_settle(g);
    fuzz_guest_check_state(g);
    fuzz_guest_cont(g);
    fuzz_guest_settle(g);
}

#endif
