/*
 * `rsdmctl save-state DOMID FILE`: the device state of a stopped VM (not
 * guest RAM) into FILE, in rsdm's state-file format, loadable with
 * `rsdm -loadvm FILE`.
 *
 * Over xenstore this is the traditional `save` (docs/protocol.md §2): the
 * dm writes its save path and acknowledges with `state` = `paused`; rsdmctl
 * then copies that file to FILE.  It is refused while the VM runs: the
 * device state of a running guest would not match any memory image, and
 * `save` itself stops nothing the operator did not ask to stop.  After it
 * the dm holds `postmigrate` in addition to `paused` (as after a save by
 * libxl); `rsdmctl cont DOMID` resumes it.
 */
#include <stdio.h>
#include <string.h>

#include "rsdmctl.h"

static const char usage[] =
    "Usage: rsdmctl save-state [--timeout S] [--save-path PATH] [--qmp PATH] DOMID FILE\n"
    "Save the device state (not guest memory) of the stopped domain DOMID to\n"
    "FILE; refused while it runs (rsdmctl stop DOMID first).  The dm writes its\n"
    "save path, which is then copied to FILE.  Afterwards the dm holds\n"
    "postmigrate too; rsdmctl cont DOMID resumes it.\n"
    "  --save-path PATH  the dm's save path (default /var/lib/xen/qemu-save.DOMID;\n"
    "                    rsdm --save-dir DIR uses DIR/qemu-save.DOMID)\n"
    "  --timeout S       wait at most S seconds for the dm (default 60)\n"
    "  --qmp PATH        over QMP: xen-save-devices-state writes FILE itself\n";

int rsdmctl_save_state(int argc, char **argv)
{
    ctl_args a;
    char why[512], def[128];
    int rc = ctl_parse_args(argc, argv, "tqp", 2, 2, usage, &a);

    if (rc)
        return rc < 0 ? RSDMCTL_OK : rc;
    if (!ctl_parse_domid(a.pos[0], &a.tg.domid))
        return RSDMCTL_USAGE;
    if (!a.save_path) {
        snprintf(def, sizeof(def), "/var/lib/xen/qemu-save.%u", a.tg.domid);
        a.save_path = def;
    }
    ctl_transport *t = ctl_open(&a.tg);
    if (!t)
        return RSDMCTL_FAIL;
    rc = t->save_state(t, a.pos[1], a.save_path, a.tg.timeout_ms, why, sizeof(why));
    t->close(t);
    if (rc < 0) {
        ctl_err("save-state domain %u refused: %s", a.tg.domid, why);
        return RSDMCTL_FAIL;
    }
    return RSDMCTL_OK;
}
