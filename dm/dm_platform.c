/*
 * Creates and frees the platform devices, and owns what they share: the
 * guest's reset/power-off requests with librunstate's action policies, the
 * hand-over to Xen before the triggering ioreq is answered, requests
 * latched while the VM is stopped, and the run-state events (wakeup,
 * powerdown, host reset) the devices react to.
 */
#include "dm_platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_platform.h"
#include "dm_log.h"
#include "dm_xen.h"

/* ------------------------------------------------------- Xen back-end */

static int xen_link_route(void *opaque, unsigned link, unsigned irq)
{
    dm_xen *x = opaque;
    if (xendevicemodel_set_pci_link_route(x->dmod, x->domid, (uint8_t)link, (uint8_t)irq) < 0)
        return -errno;
    return 0;
}

static int xen_shutdown(void *opaque, dm_platform_shutdown why)
{
    dm_xen *x = opaque;
    unsigned reason = why == DM_PLAT_REBOOT ? SHUTDOWN_reboot : SHUTDOWN_poweroff;
    if (xendevicemodel_shutdown(x->dmod, x->domid, reason) < 0)
        return -errno;
    return 0;
}

static int xen_s_state(void *opaque, unsigned s)
{
    dm_xen *x = opaque;
    /* xenctrl cannot be restricted, so it is closed once rsdm is. */
    if (!x->xch)
        return -EPERM;
    if (xc_hvm_param_set(x->xch, x->domid, HVM_PARAM_ACPI_S_STATE, s) < 0)
        return -errno;
    return 0;
}

static const dm_platform_backend xen_backend = {
    .set_link_route = xen_link_route,
    .shutdown = xen_shutdown,
    .set_s_state = xen_s_state,
};

const dm_platform_backend *dm_platform_xen_backend(void)
{
    return &xen_backend;
}

/* ---------------------------------------------------- guest requests */

static const char *req_name(plat_req r)
{
    return r == PLAT_REQ_REBOOT ? "reboot" : r == PLAT_REQ_POWEROFF ? "poweroff" : "none";
}

static void tell_xen(dm_platform *p, plat_req r)
{
    if (!p->cfg.be || !p->cfg.be->shutdown)
        return;
    dm_platform_shutdown why = r == PLAT_REQ_REBOOT ? DM_PLAT_REBOOT : DM_PLAT_POWEROFF;
    int e = p->cfg.be->shutdown(p->cfg.be_opaque, why);
    if (e < 0)
        dm_err("platform: asking Xen to %s the domain failed: %s", req_name(r), strerror(-e));
    else
        dm_info("platform: asked Xen to %s the domain", req_name(r));
}

/* Live: Xen hears it in before_answer (the vCPU must not run on after the
 * write); stopped: latched until the next start, as a stopped machine's
 * registers answer but do nothing. */
static void request(dm_platform *p, plat_req r, rs_cause cause)
{
    if (!p->live) {
        if (p->latched == PLAT_REQ_NONE || r == PLAT_REQ_POWEROFF)
            p->latched = r;
        dm_info("platform: guest %s while stopped: acted on at the next start", req_name(r));
        return;
    }
    if (r == PLAT_REQ_REBOOT) {
        p->stats.resets++;
        p->pending = PLAT_REQ_REBOOT;
        rs_request_reset(p->cfg.vm, cause);
    } else {
        p->stats.poweroffs++;
        rs_actions a;
        rs_get_actions(p->cfg.vm, &a);
        /* shutdown=pause: librunstate stops the VM, Xen is not told. */
        if (a.shutdown == RS_SHUTDOWN_POWEROFF)
            p->pending = PLAT_REQ_POWEROFF;
        rs_request_shutdown(p->cfg.vm, cause, 0);
    }
}

void plat_guest_reset(dm_platform *p, const char *source)
{
    rs_actions a;
    rs_get_actions(p->cfg.vm, &a);
    dm_info("platform: guest reset through %s", source);
    /* reboot=shutdown turns a guest reset into a guest power-off. */
    if (a.reboot == RS_REBOOT_SHUTDOWN)
        request(p, PLAT_REQ_POWEROFF, RS_CAUSE_GUEST_RESET);
    else
        request(p, PLAT_REQ_REBOOT, RS_CAUSE_GUEST_RESET);
}

void plat_guest_poweroff(dm_platform *p, const char *source)
{
    dm_info("platform: guest power-off through %s", source);
    request(p, PLAT_REQ_POWEROFF, RS_CAUSE_GUEST_SHUTDOWN);
}

void dm_platform_before_answer(dm_platform *p)
{
    if (!p || p->pending == PLAT_REQ_NONE)
        return;
    plat_req r = p->pending;
    p->pending = PLAT_REQ_NONE;
    tell_xen(p, r);
}

/* ---------------------------------------------------------- run state */

static void on_state_change(void *opaque, bool running, rs_state state)
{
    dm_platform *p = opaque;
    (void)state;
    p->live = running;
    if (!running)
        return;
    if (p->latched != PLAT_REQ_NONE) {
        plat_req r = p->latched;
        p->latched = PLAT_REQ_NONE;
        /* No ioreq is waiting now: request() queues, we answer at once. */
        if (r == PLAT_REQ_REBOOT)
            plat_guest_reset(p, "a write latched while stopped");
        else
            plat_guest_poweroff(p, "a write latched while stopped");
        dm_platform_before_answer(p);
    }
    if (p->pm)
        dev_acpi_pm_start(p->pm);
}

static void on_event(void *opaque, const rs_event *ev)
{
    dm_platform *p = opaque;
    switch (ev->type) {
    case RS_EV_SUSPEND:
        if (p->pm)
            dev_acpi_pm_suspended(p->pm);
        break;
    case RS_EV_WAKEUP:
        if (p->pm)
            dev_acpi_pm_wakeup(p->pm, ev->wakeup);
        break;
    case RS_EV_POWERDOWN:
        if (p->pm)
            dev_acpi_pm_powerdown(p->pm);
        break;
    case RS_EV_RESET:
        /* Xen rebuilds the domain on a real reset; this puts the registers
         * back for a reset Xen does not see (reboot kept inside rsdm). */
        if (p->pm)
            dev_acpi_pm_reset(p->pm);
        if (p->kbd)
            dev_i8042_reset(p->kbd);
        p->a20 = true;
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------- timeoffset */

void dm_platform_timeoffset(dm_platform *p, int64_t offset)
{
    if (!p)
        return;
    /* Xen sends the change; the RTC's offset from UTC accumulates. */
    p->rtc_offset += offset;
    dm_info("platform: guest RTC moved by %lld s (offset now %lld s)", (long long)offset,
            (long long)p->rtc_offset);
    if (p->cfg.on_rtc_change)
        p->cfg.on_rtc_change(p->cfg.rtc_opaque, p->rtc_offset);
}

int64_t dm_platform_rtc_offset(const dm_platform *p)
{
    return p ? p->rtc_offset : 0;
}

void dm_platform_get_stats(const dm_platform *p, dm_platform_stats *out)
{
    *out = p->stats;
}

/* --------------------------------------------------------- init/free */

int dm_platform_init(const dm_platform_cfg *cfg, dm_platform **out, char *err, size_t errlen)
{
    int r;
    const char *step = "arguments";
    *out = NULL;
    if (!cfg || !cfg->pio || !cfg->pci || !cfg->vm || !cfg->be) {
        snprintf(err, errlen, "platform: missing I/O space, PCI bus, run state or back-end");
        return -EINVAL;
    }
    dm_platform *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "platform: out of memory");
        return -ENOMEM;
    }
    p->cfg = *cfg;
    p->a20 = true;
    p->live = rs_is_live(cfg->vm);
    step = "run-state handler";
    p->h = rs_handler_add(cfg->vm, on_state_change, p, 0);
    if (!p->h) {
        r = -errno;
        goto fail;
    }
    step = "run-state events";
    if ((r = rs_event_sink_add(cfg->vm, on_event, p)) < 0)
        goto fail;
    p->sink = true;
    step = "i440FX host bridge 00:00.0";
    if ((r = dev_i440fx_new(p, &p->i440fx)) < 0)
        goto fail;
    if (!cfg->no_isa_bridge) {
        step = "PIIX3 ISA bridge 00:01.0";
        if ((r = dev_piix3_new(p, &p->piix3)) < 0)
            goto fail;
    }
    step = "PIIX4 ACPI PM 00:01.3";
    if ((r = dev_acpi_pm_new(p, &p->pm)) < 0)
        goto fail;
    if (!cfg->disable_pf) {
        step = "Xen platform device 00:02.0";
        if ((r = dev_xen_platform_new(p, &p->xpf)) < 0)
            goto fail;
    }
    step = "i8042 keyboard controller";
    if ((r = dev_i8042_new(p, &p->kbd)) < 0)
        goto fail;
    step = "reset ports 0xcf9/0x92";
    if ((r = dev_reset_new(p, &p->rst)) < 0)
        goto fail;
    *out = p;
    return 0;
fail:
    snprintf(err, errlen, "platform: %s: %s", step, strerror(-r));
    dm_platform_free(p);
    return r;
}

void dm_platform_free(dm_platform *p)
{
    if (!p)
        return;
    dev_reset_free(p->rst);
    dev_i8042_free(p->kbd);
    dev_xen_platform_free(p->xpf);
    dev_acpi_pm_free(p->pm);
    dev_piix3_free(p->piix3);
    dev_i440fx_free(p->i440fx);
    if (p->sink)
        rs_event_sink_del(p->cfg.vm, on_event, p);
    if (p->h)
        rs_handler_del(p->cfg.vm, p->h);
    free(p);
}
