/*
 * The guest's disks: specs from either dialect become block backends on
 * the disk controllers (dm_disks.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_ahci.h"
#include "dev_ide.h"
#include "dm_disks.h"
#include "dm_log.h"

struct dm_disks {
    dm_disks_cfg cfg;
    dev_ide *ide;
    dm_ahci *ahci;                   /* created with the first AHCI disk */
    rs_handler *h;
    dm_timer *release;               /* io-error hold released after a guest reset */
    bool sink;                       /* on_rs_event is registered */
    size_t n;
    dm_disk_spec spec[DM_DISKS_MAX];
    dm_blk *blk[DM_DISKS_MAX];
};

/* ---------------------------------------------------------------- specs */

void dm_disks_from_xenstore(const xsc_disk_list *in, dm_disk_list *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < in->n && out->n < DM_DISKS_MAX; i++) {
        const xsc_disk *x = &in->disk[i];
        dm_disk_spec *s = &out->disk[out->n++];
        snprintf(s->name, sizeof(s->name), "%s", x->dev);
        snprintf(s->path, sizeof(s->path), "%s", x->path);
        /* qemu-traditional's "aio:" prefix names the I/O method, not a format. */
        snprintf(s->format, sizeof(s->format), "%s", strcmp(x->format, "aio") == 0 ? "" : x->format);
        s->bus = x->bus == XSC_DISK_IDE ? DM_DISK_IDE : DM_DISK_AHCI;
        s->unit = x->unit;
        s->read_only = x->readonly;
        s->cdrom = x->cdrom;
    }
}

void dm_disks_resolve(const dm_disk_spec *spec, const dm_config *config, dm_err_action *rerror,
                      dm_err_action *werror, dm_cache_mode *cache)
{
    dm_config_disk def;
    if (config) {
        def = dm_config_disk_get(config, spec->name);
    } else {
        dm_config empty;
        dm_config_init(&empty);
        def = dm_config_disk_get(&empty, spec->name);
    }
    *rerror = spec->has_rerror ? spec->rerror : def.rerror;
    *werror = spec->has_werror ? spec->werror : def.werror;
    *cache = spec->has_cache ? spec->cache : def.cache;
}

static int check_spec(const dm_disks *ds, const dm_disk_spec *s, char *err, size_t errlen)
{
    if (s->cdrom) {
        snprintf(err, errlen, "disk %s: CD-ROM drives are not supported (rsdm has no ATAPI)",
                 s->name);
        return -ENOTSUP;
    }
    if (s->format[0] && strcmp(s->format, "raw") != 0) {
        snprintf(err, errlen, "disk %s: image format '%s' is not supported (raw images only)",
                 s->name, s->format);
        return -ENOTSUP;
    }
    if (!s->path[0]) {
        snprintf(err, errlen, "disk %s: no image path", s->name);
        return -EINVAL;
    }
    bool ahci = s->bus == DM_DISK_AHCI;
    const char *what = ahci ? "AHCI port" : "IDE unit";
    if (s->unit >= (ahci ? DM_AHCI_PORTS : DEV_IDE_UNITS)) {
        snprintf(err, errlen, "disk %s: %s %u does not exist (0-%u)", s->name, what, s->unit,
                 ahci ? DM_AHCI_PORTS - 1 : DEV_IDE_UNITS - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < ds->n; i++)
        if (ds->spec[i].bus == s->bus && ds->spec[i].unit == s->unit) {
            snprintf(err, errlen, "disk %s: %s %u is already taken by %s", s->name, what, s->unit,
                     ds->spec[i].name);
            return -EEXIST;
        }
    return 0;
}

static void parked_discarded(void *opaque);

/* The ICH9 AHCI function exists only when a disk is on it, in the first
 * free slot from DM_AHCI_PCI_SLOT on (docs/ahci.md). */
static int ensure_ahci(dm_disks *ds, char *err, size_t errlen)
{
    if (ds->ahci)
        return 0;
    unsigned slot = DM_AHCI_PCI_SLOT;
    while (slot < 32 && dm_pci_find(ds->cfg.pci, dm_pci_sbdf(0, 0, slot, 0)))
        slot++;
    if (slot == 32) {
        snprintf(err, errlen, "ahci: no free PCI slot");
        return -ENOSPC;
    }
    dm_ahci_cfg ac = { .pci = ds->cfg.pci, .pci_slot = slot, .gm = ds->cfg.gm,
                       .loop = ds->cfg.loop, .vm = ds->cfg.vm, .state = ds->cfg.state,
                       .inject_msi = ds->cfg.inject_msi, .msi_opaque = ds->cfg.msi_opaque,
                       .parked_discarded = parked_discarded, .opaque = ds };
    int r = dm_ahci_new(&ac, &ds->ahci, err, errlen);
    if (r == 0)
        dm_info("ahci: ICH9 AHCI at 00:%02x.0 (%s)", slot, ac.inject_msi ? "MSI or INTx" : "INTx");
    return r;
}

/* Puts an opened backend on the spec's controller. */
static int put_on_controller(dm_disks *ds, const dm_disk_spec *s, dm_blk *b, char *why,
                             size_t len)
{
    if (s->bus == DM_DISK_AHCI) {
        int r = ensure_ahci(ds, why, len);
        return r < 0 ? r : dm_ahci_attach(ds->ahci, s->unit, b, why, len);
    }
    char serial[21];
    snprintf(serial, sizeof(serial), "RSDM-%.15s", s->name);
    dev_ide_disk disk = { .blk = b, .model = "RSDM HARDDISK", .serial = serial };
    return dev_ide_attach(ds->ide, s->unit, &disk, why, len);
}

static void detach_from(dm_disks *ds, size_t first)
{
    while (ds->n > first) {
        ds->n--;
        dm_blk_close(ds->blk[ds->n]);
        ds->blk[ds->n] = NULL;
    }
}

int dm_disks_attach(dm_disks *ds, const dm_disk_list *list, char *err, size_t errlen)
{
    size_t first = ds->n;
    for (size_t i = 0; i < list->n; i++) {
        const dm_disk_spec *s = &list->disk[i];
        if (ds->n >= DM_DISKS_MAX) {
            snprintf(err, errlen, "disk %s: more than %d disks", s->name, DM_DISKS_MAX);
            detach_from(ds, first);
            return -E2BIG;
        }
        int r = check_spec(ds, s, err, errlen);
        if (r < 0) {
            detach_from(ds, first);
            return r;
        }
        dm_blk_opts o = {
            .path = s->path,
            .name = s->name,
            .read_only = s->read_only,
            .vm = ds->cfg.vm,
            .on_event = ds->cfg.on_event,
            .event_opaque = ds->cfg.event_opaque,
        };
        dm_disks_resolve(s, ds->cfg.config, &o.rerror, &o.werror, &o.cache);
        dm_config_disk cd;
        if (ds->cfg.config) {
            cd = dm_config_disk_get(ds->cfg.config, s->name);
            if (cd.inject[0])
                o.inject = cd.inject;
        }
        char why[512] = "";
        dm_blk *b = dm_blk_open(ds->cfg.loop, &o, why, sizeof(why));
        if (!b) {
            snprintf(err, errlen, "%s", why);      /* names the disk and the image */
            detach_from(ds, first);
            return -EIO;
        }
        r = put_on_controller(ds, s, b, why, sizeof(why));
        if (r < 0) {
            snprintf(err, errlen, "disk %s: %s", s->name, why);
            dm_blk_close(b);
            detach_from(ds, first);
            return r;
        }
        ds->spec[ds->n] = *s;
        ds->blk[ds->n++] = b;
        dm_info("disk %s: %s on %s %u (%llu sectors%s), rerror=%s werror=%s cache=%s",
                s->name, s->path, s->bus == DM_DISK_AHCI ? "AHCI port" : "IDE unit", s->unit, (unsigned long long)dm_blk_sectors(b),
                s->read_only ? ", read-only" : "", dm_err_action_name(o.rerror),
                dm_err_action_name(o.werror), dm_cache_mode_name(o.cache));
    }
    return 0;
}

/* ---------------------------------------------------------------- locks */

static void flush_done(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

/* What the guest wrote reaches the medium before another host may read
 * the image (shared storage).  [main]; waits for the flush. */
static void flush_now(dm_disks *ds, size_t i)
{
    int ret = 1;
    if (!dm_blk_submit(ds->blk[i], DM_BLK_FLUSH, 0, NULL, 0, flush_done, &ret))
        ret = -errno;
    else
        dm_blk_drain(ds->blk[i]);
    if (ret < 0)
        dm_warn("disk %s: flushing the image before handing it over failed: %s",
                ds->spec[i].name, strerror(-ret));
}

void dm_disks_lock_release(dm_disks *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        if (!dm_blk_locked(ds->blk[i]))
            continue;
        if (!dm_blk_read_only(ds->blk[i]))
            flush_now(ds, i);
        /* A failure is logged by the backend; the lock is then kept. */
        if (dm_blk_lock_release(ds->blk[i]) == 0)
            dm_info("disk %s: image lock released (the VM is saved and stopped)", ds->spec[i].name);
    }
}

int dm_disks_lock_acquire(dm_disks *ds, char *err, size_t errlen)
{
    for (size_t i = 0; i < ds->n; i++) {
        if (dm_blk_locked(ds->blk[i]))
            continue;
        char why[512] = "";
        int r = dm_blk_lock_acquire(ds->blk[i], why, sizeof(why));
        if (r < 0) {
            snprintf(err, errlen, "%s", why);      /* names the disk and the image */
            return r;
        }
        dm_info("disk %s: image lock re-taken", ds->spec[i].name);
    }
    return 0;
}

/* Before any device's start handler: a VM must not run on an image
 * another process may have opened since the save.  This handler cannot
 * refuse the start, so a lock that cannot be taken stops the VM again at
 * once (paused), with the reason logged. */
static void on_runstate(void *opaque, bool running, rs_state state)
{
    dm_disks *ds = opaque;
    (void)state;
    if (!running)
        return;
    char why[600];
    if (dm_disks_lock_acquire(ds, why, sizeof(why)) < 0) {
        dm_err("%s; stopping the VM again", why);
        rs_request_vmstop(ds->cfg.vm, RS_PAUSED);
    }
}

/* -------------------------------------------------------- guest resets */

static void release_hold(void *opaque)
{
    dm_disks *ds = opaque;
    if (dm_disks_parked(ds) != 0 || !(rs_get_holds(ds->cfg.vm) & RS_HOLD_BIT(RS_IO_ERROR)))
        return;
    rs_err e = { 0 };
    if (rs_retry(ds->cfg.vm, &e) == 0)
        dm_info("the guest reset the device whose I/O was parked: io-error hold released");
    else
        dm_info("the guest reset the device whose I/O was parked; the VM stays stopped: %s",
                e.msg);
}

/* A device dropped its parked command.  The io-error hold exists for that
 * command; with nothing parked anywhere it has no reason left.  Deferred
 * to the main loop: the device is inside a register access. */
static void parked_discarded(void *opaque)
{
    dm_disks *ds = opaque;
    dm_timer_arm(ds->release, 0, 0);
}

/* A reset of the machine clears the io-error hold and discards the parked
 * I/O with it (DESIGN "Run state"): the devices return to power-on state
 * before anything can start again. */
static void on_rs_event(void *opaque, const rs_event *ev)
{
    dm_disks *ds = opaque;
    if (ev->type == RS_EV_RESET && ds->ide)
        dev_ide_reset(ds->ide, "machine reset");
}

/* ---------------------------------------------------------------- module */

size_t dm_disks_count(const dm_disks *ds)
{
    return ds->n;
}

int dm_disks_set_inject(dm_disks *ds, const dm_config *config, char *err, size_t errlen)
{
    char why[256];
    for (size_t i = 0; i < ds->n; i++) {
        dm_config_disk cd = dm_config_disk_get(config, ds->spec[i].name);
        if (cd.inject[0] && dm_blk_inject_check(cd.inject, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "disk %s: injection rules not changed: %s", ds->spec[i].name, why);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < ds->n; i++) {
        dm_config_disk cd = dm_config_disk_get(config, ds->spec[i].name);
        int r = dm_blk_inject_set(ds->blk[i], cd.inject[0] ? cd.inject : NULL, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

dm_blk *dm_disks_blk(const dm_disks *ds, size_t i)
{
    return i < ds->n ? ds->blk[i] : NULL;
}

const dm_disk_spec *dm_disks_spec(const dm_disks *ds, size_t i)
{
    return i < ds->n ? &ds->spec[i] : NULL;
}

unsigned dm_disks_parked(const dm_disks *ds)
{
    return (ds->ide ? dev_ide_parked(ds->ide) : 0) + (ds->ahci ? dm_ahci_parked(ds->ahci) : 0);
}

int dm_disks_new(const dm_disks_cfg *cfg, dm_disks **out, char *err, size_t errlen)
{
    dm_disks *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        snprintf(err, errlen, "disks: out of memory");
        return -ENOMEM;
    }
    ds->cfg = *cfg;
    /* Priority -10: the locks are back before the devices (priority 0)
     * re-issue parked I/O. */
    ds->h = rs_handler_add(cfg->vm, on_runstate, ds, -10);
    ds->release = dm_timer_new(cfg->loop, release_hold, ds);
    ds->sink = rs_event_sink_add(cfg->vm, on_rs_event, ds) == 0;
    if (!ds->h || !ds->release || !ds->sink) {
        snprintf(err, errlen, "disks: set-up failed: %s", strerror(errno ? errno : ENOMEM));
        dm_disks_free(ds);
        return -ENOMEM;
    }
    dev_ide_cfg ic = { .loop = cfg->loop, .pio = cfg->pio, .pci = cfg->pci, .irq = cfg->irq,
                       .vm = cfg->vm, .gm = cfg->gm, .state = cfg->state,
                       .parked_discarded = parked_discarded, .opaque = ds };
    int r = dev_ide_new(&ic, &ds->ide, err, errlen);
    if (r < 0) {
        dm_disks_free(ds);
        return r;
    }
    *out = ds;
    return 0;
}

void dm_disks_free(dm_disks *ds)
{
    if (!ds)
        return;
    dev_ide_free(ds->ide);
    dm_ahci_free(ds->ahci);     /* drains its backends before they close */
    detach_from(ds, 0);
    if (ds->h)
        rs_handler_del(ds->cfg.vm, ds->h);
    if (ds->sink)
        rs_event_sink_del(ds->cfg.vm, on_rs_event, ds);
    if (ds->release)
        dm_timer_free(ds->release);
    free(ds);
}
