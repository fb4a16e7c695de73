/*
 * Assembling rsdm for one guest.  Start-up follows Xen's order: open the
 * libraries, create the ioreq server and map its pages, build the devices
 * (which register their ranges with the server through the I/O space
 * listeners), load a saved state if asked, enable the server and bind the
 * event channels, and only then tell the toolstack `running`.  Teardown is
 * the exact reverse, from any step.
 *
 * The qemu-xen dialect differs in its control only: QMP monitors (dm_qmp)
 * instead of xenstore commands, `-S` and `-incoming fd:N` instead of an
 * unconditional start and `-loadvm`, the small xenstore footprint of
 * XSC_DIALECT_QMP (none at all when restricted), and after start-up the
 * restriction and privilege drop.  Its `-machine none` probe opens no Xen
 * or xenstore handle: a loop, a run state and the monitors.
 */
#include "dm_xen.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_uart.h"
#include "dm_platform.h"
#include "dm_chardev.h"
#include "dm_config.h"
#include "dm_disks.h"
#include "dm_guestmem.h"
#include "dm_io.h"
#include "dm_ioreq.h"
#include "dm_irq.h"
#include "dm_log.h"
#include "dm_loop.h"
#include "dm_machine.h"
#include "dm_pci.h"
#include "dm_pci_msi.h"
#include "dm_privs.h"
#include "dm_qmp.h"
#include "dm_statefile.h"
#include "runstate.h"
#include "xsc_control.h"
#include "xsc_disks.h"

#define IOREQ_SCAN_NS (100 * 1000 * 1000)   /* a lost notification costs at most twice this */

/* Stop reasons that are the dm's own: while one is held and the dm is not
 * restricted, it keeps one pause reference on the domain so the guest's
 * vCPUs freeze as under KVM (DESIGN "Stopping a guest on Xen"). */
#define OWN_STOP_REASONS                                                                     \
    (RS_HOLD_BIT(RS_IO_ERROR) | RS_HOLD_BIT(RS_WATCHDOG) | RS_HOLD_BIT(RS_GUEST_PANICKED) |  \
     RS_HOLD_BIT(RS_PAUSED) | RS_HOLD_BIT(RS_DEBUG))

struct dm_machine {
    dm_args args;
    dm_loop *loop;
    rs_vm *vm;
    dm_xen xen;
    bool xen_open;
    dm_guestmem *gm;
    dm_ioreq *ioreq;
    dm_io_space *pio, *mmio;
    dm_pci_bus *pci;
    dm_irq *irq;
    dm_state_reg *state;
    dm_chardev *chr[DM_ARGS_MAX_SERIAL];
    uart *uarts[DM_ARGS_MAX_SERIAL];
    dm_platform *plat;
    dm_config config;
    dm_disks *disks;
    xsc *xsc;
    dm_qmp *qmp;                     /* qemu-xen dialect */
    dm_watch *w_ioreq, *w_requests, *w_xsc;
    dm_timer *t_scan, *t_xsc;
    bool pause_ref;
    int exit_status;
};

/* ------------------------------------------------------------ Xen glue */

static int ioreq_map_listener(void *opaque, dm_io_kind kind, bool added, uint64_t base,
                              uint64_t len, const char *name)
{
    dm_machine *m = opaque;
    bool mmio = kind == DM_IO_MMIO;
    (void)name;
    return added ? dm_ioreq_map_range(m->ioreq, mmio, base, base + len - 1)
                 : dm_ioreq_unmap_range(m->ioreq, mmio, base, base + len - 1);
}

static int ioreq_pci_listener(void *opaque, uint32_t sbdf, bool added, const char *name)
{
    dm_machine *m = opaque;
    (void)name;
    uint8_t bus = (uint8_t)(sbdf >> 8), dev = (uint8_t)((sbdf >> 3) & 0x1f), fn = sbdf & 7;
    return added ? dm_ioreq_map_pcidev(m->ioreq, bus, dev, fn)
                 : dm_ioreq_unmap_pcidev(m->ioreq, bus, dev, fn);
}

static int dispatch_pio(void *opaque, uint64_t port, unsigned size, bool write, uint64_t *data)
{
    dm_machine *m = opaque;
    return write ? dm_io_write(m->pio, port, size, *data) : dm_io_read(m->pio, port, size, data);
}

static int dispatch_mmio(void *opaque, uint64_t addr, unsigned size, bool write, uint64_t *data)
{
    dm_machine *m = opaque;
    return write ? dm_io_write(m->mmio, addr, size, *data) : dm_io_read(m->mmio, addr, size, data);
}

static int dispatch_pci(void *opaque, uint32_t sbdf, uint32_t reg, unsigned size, bool write,
                        uint64_t *data)
{
    dm_machine *m = opaque;
    if (write)
        return dm_pci_config_write(m->pci, sbdf, reg, size, (uint32_t)*data);
    uint32_t v = 0;
    int r = dm_pci_config_read(m->pci, sbdf, reg, size, &v);
    *data = v;
    return r;
}

static void on_timeoffset(void *opaque, int64_t offset)
{
    dm_platform_timeoffset(((dm_machine *)opaque)->plat, offset);
}

static void before_answer(void *opaque)
{
    dm_platform_before_answer(((dm_machine *)opaque)->plat);
}

static const dm_ioreq_ops ioreq_ops = {
    .pio = dispatch_pio,
    .mmio = dispatch_mmio,
    .pci_config = dispatch_pci,
    .timeoffset = on_timeoffset,
    .before_answer = before_answer,
};

static int xen_isa_level(void *opaque, unsigned irq, bool level)
{
    dm_machine *m = opaque;
    return xendevicemodel_set_isa_irq_level(m->xen.dmod, m->xen.domid, (uint8_t)irq, level) < 0
               ? -errno
               : 0;
}

static int xen_intx_level(void *opaque, unsigned slot, unsigned intx, bool level)
{
    dm_machine *m = opaque;
    return xendevicemodel_set_pci_intx_level(m->xen.dmod, m->xen.domid, 0, 0, (uint8_t)slot,
                                             (uint8_t)intx, level) < 0
               ? -errno
               : 0;
}

static const dm_irq_backend irq_backend = { xen_isa_level, xen_intx_level };

/* ------------------------------------------------------- run-state glue */

/* Keeps exactly one domain pause reference while an own stop reason holds
 * the VM; recomputed after every event, so no hold change is missed.  Two
 * sinks around the xenstore control's (which publishes `runstate`): the
 * reference is taken before the dm says the VM stopped and released only
 * after it said the VM runs, so the guest never runs while `runstate`
 * still says stopped (with one sink before it, a vCPU could store into
 * its RAM between the unpause and the `running` write, which xensim's
 * guest counts as RAM written while the dm was stopped). */
static void pause_ref_update(dm_machine *m, const rs_event *ev, bool take)
{
    bool want = (ev->holds & OWN_STOP_REASONS) != 0 && m->xen.xch && !m->xen.restricted;
    if (want == m->pause_ref || want != take)
        return;
    int r = want ? xc_domain_pause(m->xen.xch, m->xen.domid)
                 : xc_domain_unpause(m->xen.xch, m->xen.domid);
    if (r < 0) {
        dm_warn("%s the domain failed: %s", want ? "pausing" : "unpausing", strerror(errno));
        return;
    }
    m->pause_ref = want;
    dm_debug("domain pause reference %s", want ? "taken" : "released");
}

static void pause_take_sink(void *opaque, const rs_event *ev)
{
    pause_ref_update(opaque, ev, true);
}

static void pause_release_sink(void *opaque, const rs_event *ev)
{
    pause_ref_update(opaque, ev, false);
}

static void log_from_runstate(void *opaque, rs_log_level level, const char *msg)
{
    (void)opaque;
    dm_log((dm_log_level)level, "%s", msg);
}

/* A host reset on Xen is the toolstack's job: tell Xen and let it rebuild
 * the domain (reference qemu-runstate.md §7.3).  A guest reset is told to
 * Xen by the platform devices before the triggering access is answered, so
 * it is not told twice. */
static void reset_hook(void *opaque, rs_cause cause)
{
    dm_machine *m = opaque;
    if (cause == RS_CAUSE_NONE || cause == RS_CAUSE_SUBSYSTEM_RESET ||
        cause == RS_CAUSE_GUEST_RESET)
        return;
    dm_info("reset (%s): asking Xen to reboot the domain", rs_cause_name(cause));
    if (xendevicemodel_shutdown(m->xen.dmod, m->xen.domid, SHUTDOWN_reboot) < 0)
        dm_err("xendevicemodel_shutdown(reboot) failed: %s", strerror(errno));
}

/* cont/retry after a live save gave the images up: take them back first,
 * so a lock another process holds now (a migration's destination) fails
 * the command and the VM stays stopped, as QEMU's cont does. */
static int activate_hook(void *opaque, char *why, size_t why_len)
{
    dm_machine *m = opaque;
    return m->disks ? dm_disks_lock_acquire(m->disks, why, why_len) : 0;
}

/* Xen's IOREQ_TYPE_TIMEOFFSET: the guest moved its RTC.  The traditional
 * dialect keeps the offset at /vm/<uuid>/rtc/timeoffset, as qemu-traditional
 * does, so the toolstack carries it across save/restore.  The uuid is read
 * at each change (rare) rather than cached: the node may appear after
 * start-up.  The qemu-xen dialect sends QMP RTC_CHANGE instead (xenopsd
 * records the offset itself from its event connection). */
static void on_rtc_change(void *opaque, int64_t offset)
{
    dm_machine *m = opaque;
    if (m->qmp) {
        dm_qmp_event(m->qmp, "RTC_CHANGE", json_pack("{s:I}", "offset", (json_int_t)offset));
        return;
    }
    char uuid[40];
    if (!m->xsc || !xsc_is_connected(m->xsc))
        return;
    if (xsc_read_vm_uuid(m->xsc, uuid, sizeof(uuid)) < 0) {
        dm_warn("RTC offset %lld s not recorded: no usable VM uuid", (long long)offset);
        return;
    }
    if (xsc_publish_rtc_timeoffset(m->xsc, uuid, offset) == 0)
        dm_debug("RTC offset %lld s recorded for VM %s", (long long)offset, uuid);
}

/* ------------------------------------------------------------ loop glue */

static void on_ioreq(void *opaque, int fd)
{
    dm_machine *m = opaque;
    (void)fd;
    if (dm_ioreq_handle(m->ioreq) < 0) {
        dm_err("the ioreq channel failed; stopping");
        dm_loop_stop(m->loop, 1);
    }
}

static void on_scan(void *opaque)
{
    dm_machine *m = opaque;
    int r = dm_ioreq_rescue(m->ioreq);
    if (r > 0)
        dm_warn("%d request(s) answered without a notification", r);
}

static void on_requests(void *opaque, int fd)
{
    dm_machine *m = opaque;
    (void)fd;
    int status = 0;
    if (rs_process_requests(m->vm, &status) == 1) {
        dm_info("shutting down (exit status %d)", status);
        dm_loop_stop(m->loop, status);
    }
}

static void xsc_rearm(dm_machine *m);

static void on_xsc(void *opaque, int fd)
{
    dm_machine *m = opaque;
    (void)fd;
    if (xsc_handle_readable(m->xsc) < 0) {
        dm_err("xenstore control failed; stopping");
        dm_loop_stop(m->loop, 1);
        return;
    }
    /* A lost connection found here schedules a reconnect: re-arm for it. */
    xsc_rearm(m);
}

static void on_xsc_timer(void *opaque)
{
    dm_machine *m = opaque;
    if (xsc_handle_timeout(m->xsc) < 0) {
        dm_err("xenstore is gone or unsafe; stopping");
        dm_loop_stop(m->loop, 1);
        return;
    }
    xsc_rearm(m);
}

static void xsc_fd_changed(void *opaque, int fd)
{
    dm_machine *m = opaque;
    if (m->w_xsc)
        dm_watch_remove(m->w_xsc);
    m->w_xsc = fd >= 0 ? dm_watch_add(m->loop, fd, on_xsc, NULL, m) : NULL;
}

static void xsc_rearm(dm_machine *m)
{
    dm_timer_arm(m->t_xsc, (int64_t)xsc_timeout_ms(m->xsc) * 1000000, 0);
}

/* SIGUSR1: the config file's `inject` rules replace every disk's, so a
 * test or a demonstration can switch failures on and off while the guest
 * runs.  A config file that no longer parses changes nothing. */
static void reload_inject(dm_machine *m)
{
    char why[512];
    if (!m->args.config) {
        dm_warn("SIGUSR1: no config file (--config) to re-read injection rules from");
        return;
    }
    if (!m->disks)
        return;
    dm_config c;
    dm_config_init(&c);
    if (dm_config_load(&c, m->args.config, why, sizeof(why)) < 0) {
        dm_err("SIGUSR1: injection rules kept: %s", why);
        return;
    }
    if (dm_disks_set_inject(m->disks, &c, why, sizeof(why)) < 0)
        dm_err("SIGUSR1: %s", why);
}

static void on_signal(void *opaque, int signo)
{
    dm_machine *m = opaque;
    if (signo == SIGUSR1) {
        reload_inject(m);
        return;
    }
    dm_info("terminating on signal %d", signo);
    dm_loop_stop(m->loop, 0);
}

/* An access a vCPU sent before the save (its domain paused since, its
 * notification not handled yet) belongs to the state being saved: it is
 * answered now, with the VM stopped (a device latches what it would
 * start).  Left to the scan timer it would reach this dm after the file
 * was written and be lost; a PxCI write lost so reads back as a completed
 * command on the destination, the guest's write never done. */
static int answer_sent_accesses(dm_machine *m, char *why, size_t why_len)
{
    int r = dm_ioreq_scan(m->ioreq);
    if (r < 0) {
        snprintf(why, why_len, "answering the vCPUs' outstanding accesses: %s", strerror(-r));
        return -1;
    }
    if (r > 0)
        dm_info("save: %d access(es) sent before the save answered first", r);
    return 0;
}

static int save_state(void *opaque, int fd, char *why, size_t why_len)
{
    dm_machine *m = opaque;
    if (answer_sent_accesses(m, why, why_len) < 0)
        return -1;
    int r = dm_state_save_fd(m->state, fd, why, why_len);
    /* A saved, stopped VM gives up its images: the destination may open
     * them; they are re-taken before this VM runs again. */
    if (r == 0 && !rs_is_live(m->vm))
        dm_disks_lock_release(m->disks);
    return r;
}

static int set_logdirty(void *opaque, bool enable, char *why, size_t why_len)
{
    dm_machine *m = opaque;
    (void)why; (void)why_len;
    dm_guestmem_set_logdirty(m->gm, enable);
    return 0;
}

/* QMP xen-save-devices-state: libxl and xenopsd open the file without
 * O_TRUNC, so a shorter state would leave stale bytes (reference §7, 11). */
static int qmp_save_state(void *opaque, int fd, bool live, char *why, size_t why_len)
{
    dm_machine *m = opaque;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)) {
        snprintf(why, why_len, "truncating the state file: %s", strerror(errno));
        return -1;
    }
    if (answer_sent_accesses(m, why, why_len) < 0 ||
        dm_state_save_fd(m->state, fd, why, why_len) < 0)
        return -1;
    /* QEMU: a live save of a VM that was not running (libxl sent `stop`)
     * releases the image locks for the destination; the disk module takes
     * them back before the VM runs again (`cont` after a failed migration). */
    if (live && rs_get_state(m->vm) != RS_SAVE_VM && m->disks)
        dm_disks_lock_release(m->disks);
    return 0;
}

static int qmp_load_state(void *opaque, int fd, char *why, size_t why_len)
{
    dm_machine *m = opaque;
    char msg[384] = "";
    if (dm_state_load_fd(m->state, fd, msg, sizeof(msg)) < 0) {
        snprintf(why, why_len, "loading Xen device state failed: %s", msg);
        return -1;
    }
    return 0;
}

static int qmp_dirty_log(void *opaque, bool enable, char *why, size_t why_len)
{
    return set_logdirty(opaque, enable, why, why_len);
}


/* -------------------------------------------------------------- start-up */

#define STEP(name, expr)                                                                   \
    do {                                                                                   \
        int r_ = (expr);                                                                   \
        if (r_ < 0) {                                                                      \
            dm_err("domain %d: start-up failed at '%s': %s", args->domid, name,            \
                   why[0] ? why : strerror(-r_));                                          \
            dm_machine_stop(m);                                                            \
            return r_;                                                                     \
        }                                                                                  \
    } while (0)

static int nonnull(const void *p)
{
    return p ? 0 : (errno ? -errno : -ENOMEM);
}

static int open_serials(dm_machine *m, char *why, size_t len)
{
    for (unsigned i = 0; i < m->args.nserial && i < 1; i++) {
        if (strcmp(m->args.serial[i], "none") == 0)
            continue;
        int r = dm_chardev_open(m->loop, m->args.serial[i], &m->chr[i], why, len);
        if (r < 0)
            return r;
        r = uart_new(m->loop, m->pio, UART_COM1_BASE, m->irq, UART_COM1_IRQ, m->chr[i],
                     &m->uarts[i]);
        if (r < 0) {
            snprintf(why, len, "creating the UART on '%s': %s", m->args.serial[i], strerror(-r));
            return r;
        }
        if ((r = uart_attach_runstate(m->uarts[i], m->vm, 0)) < 0 ||
            (r = uart_register_state(m->uarts[i], m->state, i)) < 0) {
            snprintf(why, len, "wiring the UART: %s", strerror(-r));
            return r;
        }
    }
    return 0;
}

/* The disks: PIIX3 IDE always (as QEMU's xenfv), with the guest's vbd
 * disks from xenstore (traditional) or the command line's -drive/-device
 * (qemu-xen), their policies from there, else the config file. */
static int attach_disks(dm_machine *m, char *why, size_t len)
{
    dm_config_init(&m->config);
    if (m->args.config) {
        int r = dm_config_load(&m->config, m->args.config, why, len);
        if (r < 0)
            return r;
    }
    dm_disks_cfg dc = { .loop = m->loop, .pio = m->pio, .pci = m->pci, .irq = m->irq,
                        .vm = m->vm, .gm = m->gm, .state = m->state, .config = &m->config,
                        .inject_msi = dm_pci_msi_inject_xen, .msi_opaque = &m->xen };
    int r = dm_disks_new(&dc, &m->disks, why, len);
    if (r < 0)
        return r;
    /* qemu-xen: the command line names the disks (QEMU reads no vbd). */
    if (m->args.dialect == DM_DIALECT_QEMU_XEN)
        return dm_disks_attach(m->disks, &m->args.disks, why, len);
    struct xs_handle *xs = xsc_xs(m->xsc);
    if (!xs)
        return 0;
    xsc_disk_list found;
    xsc_logger lg = { log_from_runstate, NULL };
    r = xsc_disks_read(xs, (unsigned)m->args.domid, NULL, &lg, &found);
    if (r < 0) {
        snprintf(why, len, "reading the guest's vbd devices: %s", strerror(-r));
        return r;
    }
    static dm_disk_list list;
    dm_disks_from_xenstore(&found, &list);
    return dm_disks_attach(m->disks, &list, why, len);
}

/* The QMP control of the qemu-xen dialect, with the Xen commands when a
 * machine exists (not for the probe). */
static int open_qmp(dm_machine *m, bool with_xen, char *why, size_t len)
{
    int r = dm_qmp_new(m->loop, m->vm, &m->args, &m->qmp, why, len);
    if (r < 0 || !with_xen)
        return r;
    qmp_commands_set_xen_hooks(dm_qmp_commands(m->qmp),
                               &(qmp_xen_hooks){ .save_devices_state = qmp_save_state,
                                                 .load_devices_state = qmp_load_state,
                                                 .set_global_dirty_log = qmp_dirty_log,
                                                 .opaque = m });
    for (unsigned i = 0; i < DM_ARGS_MAX_SERIAL; i++) {
        if (!m->uarts[i] || !m->chr[i])
            continue;
        char label[16], fname[512];
        snprintf(label, sizeof(label), "serial%u", i);
        if (dm_chardev_get_kind(m->chr[i]) == DM_CHR_PTY)
            snprintf(fname, sizeof(fname), "pty:%s", dm_chardev_pty_path(m->chr[i]));
        else
            snprintf(fname, sizeof(fname), "%s", m->args.serial[i]);
        if ((r = qmp_commands_add_chardev(dm_qmp_commands(m->qmp), label, fname)) < 0) {
            snprintf(why, len, "registering %s for query-chardev: %s", label, strerror(-r));
            return r;
        }
    }
    return 0;
}

/* libxl's capability probe (-machine none): QMP only, no Xen, no xenstore;
 * `quit` ends it through the run state's shutdown request. */
static int start_probe(dm_machine *m)
{
    const dm_args *args = &m->args;
    char why[512] = "";
    STEP("main loop", nonnull(m->loop = dm_loop_new()));
    STEP("signals", dm_loop_handle_signals(m->loop, on_signal, m));
    STEP("run state", nonnull(m->vm = rs_vm_new()));
    rs_set_log(m->vm, log_from_runstate, NULL);
    STEP("QMP monitors", open_qmp(m, false, why, sizeof(why)));
    STEP("watch requests",
         nonnull(m->w_requests = dm_watch_add(m->loop, rs_notify_fd(m->vm), on_requests, NULL, m)));
    dm_info("probe: serving QMP on %u monitor(s) without a machine", args->nmonitors);
    return 0;
}

/* After start-up, as QEMU: restrict the Xen handles to the guest
 * (xentoolcore_restrict_all closes xenctrl and any xenstore handle; the
 * pause reference is then never taken), then chroot and change user. */
static int restrict_and_drop(dm_machine *m, const dm_privs *privs, char *why, size_t len)
{
    if (m->args.restrict_xen) {
        /* A -S -incoming start ends paused with the reference taken; a
         * restricted dm cannot give it back later (no xenctrl). */
        if (m->pause_ref) {
            if (xc_domain_unpause(m->xen.xch, m->xen.domid) < 0) {
                snprintf(why, len, "dropping the domain pause reference before restriction: %s",
                         strerror(errno));
                return -errno;
            }
            m->pause_ref = false;
        }
        int r = dm_xen_restrict(&m->xen, why, len);
        if (r < 0)
            return r;
        dm_info("restricted to domain %d: no xenctrl, no xenstore", m->args.domid);
    }
    return dm_privs_drop(privs, why, len);
}

int dm_machine_start(const dm_args *args, dm_machine **out)
{
    char why[512] = "";
    dm_machine *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->args = *args;
    *out = m;
    dm_log_set_domid(args->domid);
    bool qxen = args->dialect == DM_DIALECT_QEMU_XEN;
    if (args->probe)
        return start_probe(m);
    dm_privs privs;
    STEP("privileges", qxen ? dm_privs_prepare(&privs, args->runas, args->chroot_dir, why,
                                                sizeof(why))
                            : 0);

    STEP("main loop", nonnull(m->loop = dm_loop_new()));
    STEP("signals", dm_loop_handle_signals(m->loop, on_signal, m));
    STEP("run state", nonnull(m->vm = rs_vm_new()));
    rs_set_log(m->vm, log_from_runstate, NULL);
    rs_hooks hooks = { .reset = reset_hook, .activate = activate_hook, .opaque = m };
    rs_set_hooks(m->vm, &hooks);
    if (args->no_shutdown) {
        rs_action_update au = { .has_shutdown = true, .value.shutdown = RS_SHUTDOWN_PAUSE };
        STEP("-no-shutdown", rs_set_actions(m->vm, &au));
    }
    STEP("open Xen libraries", dm_xen_open(&m->xen, (domid_t)args->domid, why, sizeof(why)));
    m->xen_open = true;
    STEP("guest memory", nonnull(m->gm = dm_guestmem_new(&m->xen)));
    STEP("create ioreq server",
         dm_ioreq_create(&m->ioreq, &m->xen, m->gm, &ioreq_ops, m, why, sizeof(why)));
    STEP("I/O spaces", nonnull(m->pio = dm_io_space_new(DM_IO_PORT)));
    STEP("I/O spaces", nonnull(m->mmio = dm_io_space_new(DM_IO_MMIO)));
    STEP("map port ranges", dm_io_listener_add(m->pio, ioreq_map_listener, m, true));
    STEP("map MMIO ranges", dm_io_listener_add(m->mmio, ioreq_map_listener, m, true));
    STEP("interrupts", nonnull(m->irq = dm_irq_new(&irq_backend, m)));
    STEP("interrupts", dm_irq_attach_runstate(m->irq, m->vm, 0));
    STEP("PCI bus", nonnull(m->pci = dm_pci_bus_new(m->pio, m->mmio, m->irq)));
    STEP("map PCI devices", dm_pci_listener_add(m->pci, ioreq_pci_listener, m, true));
    STEP("device state registry", nonnull(m->state = dm_state_reg_new()));
    /* Configuration space (BARs the guest placed, command bits) travels too. */
    STEP("PCI state", dm_pci_bus_set_state_reg(m->pci, m->state));
    STEP("serial port", open_serials(m, why, sizeof(why)));
    STEP("pause reference", rs_event_sink_add(m->vm, pause_take_sink, m));

    /* libxl reads the traditional save file from a fixed place; --save-dir
     * moves it (tests, hosts with another layout). */
    char save_path[4096];
    if (args->save_dir)
        snprintf(save_path, sizeof(save_path), "%s/qemu-save.%d", args->save_dir, args->domid);
    xsc_config xc = {
        .dialect = qxen ? XSC_DIALECT_QMP : XSC_DIALECT_TRADITIONAL,
        .dm_domid = 0,
        .domid = (unsigned)args->domid,
        .vm = m->vm,
        .save_path = args->save_dir ? save_path : NULL,
        .ops = { .save_state = save_state, .set_logdirty = set_logdirty,
                 .fd_changed = xsc_fd_changed, .opaque = m },
        .log = log_from_runstate,
    };
    /* A restricted dm has no xenstore at all (QEMU installs no run-state
     * hook then): readiness shows over QMP only. */
    if (!args->restrict_xen)
        STEP("xenstore control", xsc_new(&xc, &m->xsc, why, sizeof(why)));
    STEP("pause reference release", rs_event_sink_add(m->vm, pause_release_sink, m));
    STEP("platform devices",
         dm_platform_init(&(dm_platform_cfg){ .pio = m->pio, .pci = m->pci, .irq = m->irq,
                                               .vm = m->vm, .state = m->state,
                                               .be = dm_platform_xen_backend(),
                                               .be_opaque = &m->xen,
                                               .disable_pf = m->xsc && xsc_disable_pf(m->xsc),
                                               /* Xen's pmtimer shadows it; xensim has none */
                                               .pm1_evt = true,
                                               .on_rtc_change = on_rtc_change,
                                               .rtc_opaque = m },
                          &m->plat, why, sizeof(why)));
    STEP("disks", attach_disks(m, why, sizeof(why)));
    /* qemu-xen: libxl copies the pty from query-chardev itself. */
    if (!qxen && m->uarts[0] && m->chr[0] && dm_chardev_get_kind(m->chr[0]) == DM_CHR_PTY)
        STEP("publish console", xsc_publish_serial_tty(m->xsc, dm_chardev_pty_path(m->chr[0])));
    /* Monitors accept from here, but are served only once the loop runs:
     * nobody sees `inmigrate` while the incoming state loads. */
    if (qxen)
        STEP("QMP monitors", open_qmp(m, true, why, sizeof(why)));

    rs_err err = { 0 };
    bool incoming = args->loadvm || args->incoming_fd >= 0;
    if (incoming)
        STEP("incoming state", rs_hold_acquire(m->vm, RS_INMIGRATE, &err));
    if (args->loadvm)
        STEP("load device state", dm_state_load_path(m->state, args->loadvm, why, sizeof(why)));
    if (args->incoming_fd >= 0) {
        /* The whole stream, to its end, before anything is announced. */
        int lr = dm_state_load_fd(m->state, args->incoming_fd, why, sizeof(why));
        close(args->incoming_fd);
        STEP("load -incoming state", lr);
    }
    /* Without -S the guest starts (the traditional dialect always); with -S
     * it stays in prelaunch, or ends paused after an incoming state. */
    if (!args->start_paused)
        STEP("start", rs_cont(m->vm, &err));
    if (incoming)
        STEP("start after load", rs_hold_release(m->vm, RS_INMIGRATE, &err));

    STEP("enable ioreq server", dm_ioreq_enable(m->ioreq, why, sizeof(why)));
    STEP("watch ioreq channel",
         nonnull(m->w_ioreq = dm_watch_add(m->loop, dm_ioreq_fd(m->ioreq), on_ioreq, NULL, m)));
    STEP("watch requests",
         nonnull(m->w_requests = dm_watch_add(m->loop, rs_notify_fd(m->vm), on_requests, NULL, m)));
    STEP("ioreq scan timer", nonnull(m->t_scan = dm_timer_new(m->loop, on_scan, m)));
    STEP("ioreq scan timer", dm_timer_arm(m->t_scan, IOREQ_SCAN_NS, IOREQ_SCAN_NS));
    if (m->xsc) {
        STEP("xenstore watch",
             nonnull(m->w_xsc = dm_watch_add(m->loop, xsc_fd(m->xsc), on_xsc, NULL, m)));
        STEP("xenstore timer", nonnull(m->t_xsc = dm_timer_new(m->loop, on_xsc_timer, m)));
        xsc_rearm(m);
        STEP("announce ready", xsc_ready(m->xsc));
    }
    if (qxen)
        STEP("restriction", restrict_and_drop(m, &privs, why, sizeof(why)));
    dm_info("ready: domain %d, %u vCPU(s), state %s", args->domid, dm_ioreq_nr_vcpus(m->ioreq),
            rs_state_name(rs_get_state(m->vm)));
    return 0;
}

int dm_machine_run(dm_machine *m)
{
    return dm_loop_run(m->loop);
}

void dm_machine_stop(dm_machine *m)
{
    if (!m)
        return;
    if (m->t_xsc)
        dm_timer_free(m->t_xsc);
    if (m->t_scan)
        dm_timer_free(m->t_scan);
    if (m->w_xsc)
        dm_watch_remove(m->w_xsc);
    if (m->w_requests)
        dm_watch_remove(m->w_requests);
    if (m->w_ioreq)
        dm_watch_remove(m->w_ioreq);
    dm_qmp_free(m->qmp);
    xsc_free(m->xsc);
    if (m->pause_ref && m->xen.xch && xc_domain_unpause(m->xen.xch, m->xen.domid) < 0)
        dm_warn("dropping the domain pause reference failed: %s", strerror(errno));
    for (unsigned i = 0; i < DM_ARGS_MAX_SERIAL; i++) {
        uart_free(m->uarts[i]);
        if (m->chr[i])
            dm_chardev_close(m->chr[i]);
    }
    dm_disks_free(m->disks);
    dm_platform_free(m->plat);
    dm_pci_bus_free(m->pci);
    dm_state_reg_free(m->state);
    dm_irq_free(m->irq);
    if (m->mmio)
        dm_io_space_free(m->mmio);
    if (m->pio)
        dm_io_space_free(m->pio);
    dm_ioreq_destroy(m->ioreq);
    dm_guestmem_free(m->gm);
    if (m->xen_open)
        dm_xen_close(&m->xen);
    rs_vm_free(m->vm);
    if (m->loop)
        dm_loop_free(m->loop);
    free(m);
}
