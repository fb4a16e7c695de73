/*
 * argv parsing (dm_args.h): one table of option specs, a generic walker,
 * and a handler per kind of value.
 */
#include "dm_args_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define TRAD DM_DIALECT_TRADITIONAL
#define QXEN DM_DIALECT_QEMU_XEN

typedef dm_opt_spec opt_spec;

/* ----------------------------------------------------------- value parsing */

bool dm_args_parse_uint(const char *s, unsigned long long min, unsigned long long max,
                       unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* ------------------------------------------------------------- handlers */

int dm_args_h_domid(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                    size_t errlen)
{
    unsigned long long v;
    if (!dm_args_parse_uint(val, 0, ULLONG_MAX, &v) || v > DM_DOMID_MAX) {
        snprintf(err, errlen, "%s: '%s' is not a domain id (1-%d)", opt, val, DM_DOMID_MAX);
        return -EINVAL;
    }
    if (v == 0) {
        snprintf(err, errlen, "%s: domain 0 is the control domain; rsdm serves HVM guests "
                 "(domain ids 1-%d)", opt, DM_DOMID_MAX);
        return -EINVAL;
    }
    if (a->domid >= 0 && a->domid != (int)v) {
        snprintf(err, errlen, "%s: domain id given twice (%d and %llu)", opt, a->domid, v);
        return -EINVAL;
    }
    a->domid = (int)v;
    return 0;
}

static int h_name(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                  size_t errlen)
{
    if (!*val) {
        snprintf(err, errlen, "%s: the domain name is empty", opt);
        return -EINVAL;
    }
    a->domain_name = val;
    return 0;
}

static int h_serial(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                    size_t errlen)
{
    if (a->nserial == DM_ARGS_MAX_SERIAL) {
        snprintf(err, errlen, "%s: more than %d serial ports", opt, DM_ARGS_MAX_SERIAL);
        return -EINVAL;
    }
    if (!*val) {
        snprintf(err, errlen, "%s: empty device", opt);
        return -EINVAL;
    }
    /* Checked against the chardev syntax when opened, so one parser decides. */
    a->serial[a->nserial++] = val;
    return 0;
}

static int h_loadvm(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                    size_t errlen)
{
    if (!*val) {
        snprintf(err, errlen, "%s: the state file name is empty", opt);
        return -EINVAL;
    }
    a->loadvm = val;
    return 0;
}

static int h_machine(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                     size_t errlen)
{
    if (strcmp(val, "xenfv") == 0) {
        a->machine = val;
        return 0;
    }
    if (strcmp(val, "xenpv") == 0)
        snprintf(err, errlen, "%s xenpv: rsdm emulates devices for HVM guests only (xenfv)", opt);
    else
        snprintf(err, errlen, "%s: unknown machine '%s' (rsdm provides xenfv)", opt, val);
    return -EINVAL;
}

static int h_vcpus(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                   size_t errlen)
{
    unsigned long long v;
    if (!dm_args_parse_uint(val, 1, DM_VCPUS_MAX, &v)) {
        snprintf(err, errlen, "%s: '%s' is not a vCPU count (1-%d)", opt, val, DM_VCPUS_MAX);
        return -EINVAL;
    }
    a->vcpus = (unsigned)v;
    return 0;
}

/* libxl writes the bitmap as "0x" and hex digits, most significant first. */
static int h_vcpu_avail(dm_args *a, const opt_spec *o, const char *opt, const char *val,
                        char *err, size_t errlen)
{
    size_t n = strlen(val);
    bool ok = n > 2 && n <= 2 + DM_VCPUS_MAX / 4 && val[0] == '0' && (val[1] == 'x' || val[1] == 'X');
    for (size_t i = 2; ok && i < n; i++)
        ok = strchr("0123456789abcdefABCDEF", val[i]) != NULL;
    if (!ok) {
        snprintf(err, errlen, "%s: '%s' is not a vCPU bitmap (0x followed by up to %d hex digits)",
                 opt, val, DM_VCPUS_MAX / 4);
        return -EINVAL;
    }
    a->vcpu_avail = val;
    return 0;
}

static int h_ram(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                 size_t errlen)
{
    unsigned long long v;
    /* QEMU's -m takes a size with a unit suffix; libxl passes plain MiB. */
    if (!dm_args_parse_uint(val, 1, 1ull << 32, &v)) {
        snprintf(err, errlen, "%s: '%s' is not a memory size in MiB (1-%llu)", opt, val,
                 1ull << 32);
        return -EINVAL;
    }
    a->ram_mb = v;
    return 0;
}

static int h_acpi(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                  size_t errlen)
{
    a->acpi = true;
    return 0;
}

/* Records the table's name (static storage) and the value (in argv). */
int dm_args_add_ignored(dm_args *a, const opt_spec *o, const char *opt, const char *val,
                        char *err, size_t errlen)
{
    if (a->nignored == DM_ARGS_MAX_IGNORED) {
        snprintf(err, errlen, "%s: more than %d ignored options", opt, DM_ARGS_MAX_IGNORED);
        return -EINVAL;
    }
    a->ignored[a->nignored++] = (dm_args_ignored){ o->name, val };
    return 0;
}

static int h_ignore(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                    size_t errlen)
{
    return dm_args_add_ignored(a, o, opt, val, err, errlen);
}

/* Numeric options we ignore are still checked: a typo in a number is a
 * mistake worth reporting even if the value is unused. */
static int h_ignore_uint(dm_args *a, const opt_spec *o, const char *opt, const char *val,
                         char *err, size_t errlen)
{
    unsigned long long v;
    if (!dm_args_parse_uint(val, 0, UINT_MAX, &v)) {
        snprintf(err, errlen, "%s: '%s' is not a number", opt, val);
        return -EINVAL;
    }
    return dm_args_add_ignored(a, o, opt, val, err, errlen);
}

static int h_net(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                 size_t errlen)
{
    if (strcmp(val, "none") == 0) {
        a->net_none = true;
        return 0;
    }
    /* -net nic,... / -net tap,...: rsdm emulates no NIC (PV network only). */
    return dm_args_add_ignored(a, o, opt, val, err, errlen);
}

static int h_help(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                  size_t errlen)
{
    a->help = true;
    return 0;
}

static int h_version(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                     size_t errlen)
{
    a->version = true;
    return 0;
}

static int h_log_level(dm_args *a, const opt_spec *o, const char *opt, const char *val,
                       char *err, size_t errlen)
{
    if (dm_log_level_from_name(val, &a->log_level) < 0) {
        snprintf(err, errlen, "%s: unknown level '%s' (error, warning, info, debug)", opt, val);
        return -EINVAL;
    }
    a->has_log_level = true;
    return 0;
}

static int h_save_dir(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                      size_t errlen)
{
    if (!*val) {
        snprintf(err, errlen, "%s: the directory is empty", opt);
        return -EINVAL;
    }
    a->save_dir = val;
    return 0;
}

static int h_config(dm_args *a, const opt_spec *o, const char *opt, const char *val, char *err,
                    size_t errlen)
{
    if (!*val) {
        snprintf(err, errlen, "%s: the file name is empty", opt);
        return -EINVAL;
    }
    a->config = val;
    return 0;
}

/* ---------------------------------------------------------------- table */

static const opt_spec opts[] = {
    /* rsdm's own */
    { "help", TRAD | QXEN, false, h_help, NULL, "print this help and exit", true, NULL },
    { "version", TRAD | QXEN, false, h_version, NULL, "print the version and exit", true, NULL },
    { "log-level", TRAD | QXEN, true, h_log_level, "LEVEL", "error, warning, info (default) or debug", true, NULL },
    { "save-dir", TRAD | QXEN, true, h_save_dir, "DIR", "where the traditional `save` writes qemu-save.<domid>", true, NULL },
    { "config", TRAD | QXEN, true, h_config, "FILE", "rsdm's config file (docs/rsdm-config.md)", true, NULL },
    /* traditional dialect, served */
    { "d", TRAD, true, dm_args_h_domid, "DOMID", "the guest's domain id (required)", false, NULL },
    { "domid", TRAD, true, dm_args_h_domid, "DOMID", "same as -d", false, NULL },
    { "xen-domid", QXEN, true, dm_args_h_domid, "DOMID", "the guest's domain id (required)", false, NULL },
    { "domain-name", TRAD, true, h_name, "NAME", "the guest's name, for logs", false, NULL },
    { "name", TRAD | QXEN, true, h_name, "NAME", "same as -domain-name", false, NULL },
    { "serial", TRAD | QXEN, true, h_serial, "DEV", "COM1..4: pty, file:PATH, unix:PATH[,server][,nowait], null, stdio", false, NULL },
    { "loadvm", TRAD, true, h_loadvm, "FILE", "restore device state from FILE before starting", false, NULL },
    { "M", TRAD, true, h_machine, "MACHINE", "xenfv", false, NULL },
    { "vcpus", TRAD, true, h_vcpus, "N", "maximum vCPUs (1-128)", false, NULL },
    { "vcpu_avail", TRAD, true, h_vcpu_avail, "0xBITMAP", "vCPUs online at start", false, NULL },
    { "m", TRAD, true, h_ram, "MB", "guest memory in MiB", false, NULL },
    { "acpi", TRAD, false, h_acpi, NULL, "ACPI power management (PIIX4 PM)", false, NULL },
    { "net", TRAD | QXEN, true, h_net, "none", "none; NIC models are ignored (no emulated NIC)", false, NULL },
    /* qemu-xen dialect, served (dm_args_qemu.c) */
    { "chardev", QXEN, true, dm_argq_chardev, "socket,id=ID,path=P|fd=N,server=on,wait=off", "a QMP socket for -mon (other backends: ignored)", false, "backend,id,path,fd,server,wait" },
    { "mon", QXEN, true, dm_argq_mon, "chardev=ID,mode=control", "serve QMP on that socket", false, "chardev,mode,pretty" },
    { "qmp", QXEN, true, dm_argq_qmp, "unix:PATH,server,nowait", "serve QMP on a Unix socket (xenopsd)", false, NULL },
    { "S", QXEN, false, dm_argq_flag, NULL, "start in prelaunch; `cont` starts the guest", false, NULL },
    { "incoming", QXEN, true, dm_argq_incoming, "fd:N", "load the device state from fd N (read to its end) before starting", false, NULL },
    { "machine", QXEN, true, dm_argq_machine, "xenfv[,...]|none", "xenfv; none = libxl's capability probe (QMP only)", false, "type,accel,suppress-vmdesc,max-ram-below-4g,igd-passthru" },
    { "M", QXEN, true, dm_argq_machine, "xenfv[,...]|none", "same as -machine", false, NULL },
    { "m", QXEN, true, dm_argq_memory, "[size=]MB", "guest memory (MiB, or with M/G)", false, "size,slots,maxmem" },
    { "smp", QXEN, true, dm_argq_smp, "N[,maxcpus=M]", "vCPUs (the dm serves maxcpus)", false, "cpus,maxcpus,sockets,cores,threads" },
    { "no-acpi", QXEN, false, dm_argq_flag, NULL, "no ACPI power management", false, NULL },
    { "no-shutdown", QXEN, false, dm_argq_flag, NULL, "a guest shutdown pauses instead of exiting", false, NULL },
    { "drive", QXEN, true, dm_argq_drive, "file=P,if=ide|none,...", "a disk (index=, media=, format=raw, cache=, rerror=, werror=, readonly=, id=)", false, "file,if,index,bus,unit,media,format,cache,rerror,werror,readonly,id,aio,discard,detect-zeroes,serial,snapshot" },
    { "device", QXEN, true, dm_argq_device, "DRIVER,...", "ahci,id=ID; ide-hd,bus=ID.N|ide.N,drive=ID; display/USB/sound/NIC devices ignored", false, "driver,id,drive,bus,unit,addr" },
    { "xen-domid-restrict", QXEN, false, dm_argq_flag, NULL, "after start-up: xentoolcore_restrict_all, no xenctrl/xenstore", false, NULL },
    { "runas", QXEN, true, dm_argq_runas, "USER[:GROUP]|UID:GID", "drop privileges after start-up", false, NULL },
    { "chroot", QXEN, true, dm_argq_chroot, "DIR", "chroot after start-up", false, NULL },
    { "run-with", QXEN, true, dm_argq_run_with, "chroot=DIR,user=USER", "same as -chroot and -runas", false, "chroot,user,async-teardown" },
    { "nodefaults", QXEN, false, h_ignore, NULL, NULL, false, NULL },
    { "no-user-config", QXEN, false, h_ignore, NULL, NULL, false, NULL },
    { "xen-attach", QXEN, false, dm_argq_refuse, NULL, "refused: PV/PVH backends are not served", false, NULL },
    { "kernel", QXEN, true, dm_argq_refuse, "FILE", "refused: no direct kernel boot", false, NULL },
    { "initrd", QXEN, true, dm_argq_refuse, "FILE", "refused: no direct kernel boot", false, NULL },
    { "append", QXEN, true, dm_argq_refuse, "CMDLINE", "refused: no direct kernel boot", false, NULL },
    /* accepted and ignored (both dialects unless marked) */
    { "monitor", TRAD, true, h_ignore, "DEV", NULL, false, NULL },
    { "vnc", TRAD | QXEN, true, h_ignore, "DISPLAY", NULL, false, NULL },
    { "vncunused", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "vncviewer", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "nographic", TRAD | QXEN, false, h_ignore, NULL, NULL, false, NULL },
    { "display", QXEN, true, h_ignore, "TYPE", NULL, false, NULL },
    { "spice", QXEN, true, h_ignore, "OPTS", NULL, false, NULL },
    { "sdl", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "disable-opengl", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "full-screen", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "k", TRAD | QXEN, true, h_ignore, "KEYMAP", NULL, false, NULL },
    { "videoram", TRAD, true, h_ignore_uint, "MB", NULL, false, NULL },
    { "std-vga", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "vga", TRAD | QXEN, true, h_ignore, "TYPE", NULL, false, NULL },
    { "boot", TRAD | QXEN, true, h_ignore, "ORDER", NULL, false, NULL },
    { "usb", TRAD | QXEN, false, h_ignore, NULL, NULL, false, NULL },
    { "usbdevice", TRAD | QXEN, true, h_ignore, "DEV", NULL, false, NULL },
    { "soundhw", TRAD | QXEN, true, h_ignore, "HW", NULL, false, NULL },
    { "audiodev", QXEN, true, h_ignore, "OPTS", NULL, false, NULL },
    { "netdev", QXEN, true, h_ignore, "OPTS", NULL, false, NULL },
    { "gfx_passthru", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "direct_pci", TRAD, true, h_ignore, "BDFS", NULL, false, NULL },
    { "parallel", TRAD | QXEN, true, h_ignore, "DEV", NULL, false, NULL },
    { "localtime", TRAD, false, h_ignore, NULL, NULL, false, NULL },
    { "pidfile", TRAD | QXEN, true, h_ignore, "FILE", NULL, false, NULL },
    { "global", QXEN, true, h_ignore, "DRIVER.PROP=VALUE", NULL, false, NULL },
    { "trace", QXEN, true, h_ignore, "OPTS", NULL, false, NULL },
    { "sandbox", QXEN, true, h_ignore, "OPTS", NULL, false, NULL },
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* Options only the qemu-xen dialect uses (reference §4.3): seeing one
 * means libxl built a qemu-xen command line. */
static const char *const qemu_xen_only[] = {
    "chardev", "mon", "qmp", "no-shutdown", "nodefaults", "no-user-config", "machine",
    "incoming", "xen-domid-restrict", "xen-attach", "runas", "run-with", "chroot", "device",
    "drive", "display", "smp", "netdev", "S", "xen-domid",
};

static const opt_spec *find(const char *name, size_t len, unsigned dialect)
{
    for (size_t i = 0; i < NOPTS; i++)
        if ((opts[i].dialects & dialect) && strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* Edit distance, for "did you mean"; names are short. */
static size_t distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    if (la > 31 || lb > 31)
        return 99;
    size_t d[32][32];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static const char *suggest(const char *name, size_t len, unsigned dialect)
{
    const char *best = NULL;
    size_t bestd = 3;            /* at most two edits away */
    for (size_t i = 0; i < NOPTS; i++) {
        if (!(opts[i].dialects & dialect))
            continue;
        size_t d = distance(name, len, opts[i].name);
        if (d < bestd) {
            bestd = d;
            best = opts[i].name;
        }
    }
    return best;
}

/* The option name without its dashes; NULL for a non-option. */
static const char *strip_dashes(const char *arg)
{
    if (arg[0] != '-' || arg[1] == 0)
        return NULL;
    arg++;
    if (arg[0] == '-')
        arg++;
    return *arg ? arg : NULL;
}

static unsigned detect_dialect(int argc, char *const argv[], const char **why)
{
    for (int i = 1; i < argc; i++) {
        const char *n = argv[i] ? strip_dashes(argv[i]) : NULL;
        if (!n)
            continue;
        size_t len = strcspn(n, "=");
        for (size_t k = 0; k < sizeof(qemu_xen_only) / sizeof(qemu_xen_only[0]); k++)
            if (strlen(qemu_xen_only[k]) == len && strncmp(qemu_xen_only[k], n, len) == 0) {
                *why = argv[i];
                return QXEN;
            }
    }
    return TRAD;
}

int dm_args_parse(dm_args *a, int argc, char *const argv[], char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->domid = -1;
    a->vcpus = 1;
    a->log_level = DM_LOG_INFO;
    a->incoming_fd = -1;
    const char *why = NULL;
    unsigned dialect = detect_dialect(argc, argv, &why);
    a->dialect = (dm_dialect)dialect;
    /* QEMU's PC machine has ACPI unless -no-acpi; qemu-dm needed -acpi. */
    a->acpi = dialect == QXEN;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!arg)
            break;
        const char *name = strip_dashes(arg);
        if (!name) {
            snprintf(err, errlen, "unexpected argument '%s' (options start with '-'%s)", arg,
                     dialect == TRAD ? "; disks come from xenstore" : "");
            return -EINVAL;
        }
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt_spec *o = find(name, len, dialect);
        if (!o) {
            /* An option of the other dialect says which line this is. */
            if (find(name, len, dialect == QXEN ? TRAD : QXEN)) {
                snprintf(err, errlen, "%.*s belongs to the %s command line, but this one is %s "
                         "(seen: '%s')", (int)(len + (size_t)(name - arg)), arg,
                         dialect == QXEN ? "traditional" : "qemu-xen",
                         dialect == QXEN ? "qemu-xen" : "traditional",
                         dialect == QXEN ? why : "no qemu-xen option");
                return -EINVAL;
            }
            const char *hint = suggest(name, len, dialect);
            if (hint)
                snprintf(err, errlen, "unknown option '%.*s'; did you mean '-%s'? (see --help)",
                         (int)(len + (size_t)(name - arg)), arg, hint);
            else
                snprintf(err, errlen, "unknown option '%.*s' (see --help)",
                         (int)(len + (size_t)(name - arg)), arg);
            return -EINVAL;
        }
        const char *val = NULL;
        if (o->has_arg) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc && argv[i + 1])
                val = argv[++i];
            else {
                snprintf(err, errlen, "%s: missing value (%s)", arg, o->arg_name);
                return -EINVAL;
            }
        } else if (eq) {
            snprintf(err, errlen, "%.*s takes no value", (int)(eq - arg), arg);
            return -EINVAL;
        }
        /* Messages name the option as the table spells it ("-d"), never
         * with an "=value" glued on. */
        char optname[40];
        snprintf(optname, sizeof(optname), "-%s", o->name);
        int rc = o->handle(a, o, optname, val, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (a->help || a->version)
        return 0;
    if (dialect == QXEN) {
        int rc = dm_argq_finish(a, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (a->domid < 0 && !a->probe) {
        snprintf(err, errlen, "missing %s DOMID (the guest's domain id)",
                 dialect == QXEN ? "-xen-domid" : "-d");
        return -EINVAL;
    }
    /* The bitmap may only name vCPUs that exist. */
    if (a->vcpu_avail) {
        const char *hex = a->vcpu_avail + 2;
        size_t n = strlen(hex);
        for (size_t k = 0; k < n; k++) {
            char c = hex[n - 1 - k];
            unsigned nib = (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            for (unsigned b = 0; b < 4; b++)
                if ((nib >> b & 1) && k * 4 + b >= a->vcpus) {
                    snprintf(err, errlen, "-vcpu_avail %s names vCPU %zu, but -vcpus is %u",
                             a->vcpu_avail, k * 4 + b, a->vcpus);
                    return -EINVAL;
                }
        }
    }
    return 0;
}

static void usage_section(FILE *out, const char *title, unsigned dialect, bool own)
{
    fprintf(out, "%s\n", title);
    for (size_t i = 0; i < NOPTS; i++) {
        if (!opts[i].help || opts[i].own != own || !(opts[i].dialects & dialect))
            continue;
        char lhs[64];
        snprintf(lhs, sizeof(lhs), "%s%s%s%s", opts[i].own ? "--" : "-", opts[i].name,
                 opts[i].has_arg ? " " : "", opts[i].has_arg ? opts[i].arg_name : "");
        if (strlen(lhs) > 24)
            fprintf(out, "  %s\n  %-24s %s\n", lhs, "", opts[i].help);
        else
            fprintf(out, "  %-24s %s\n", lhs, opts[i].help);
    }
    fprintf(out, "\n");
}

static void usage_ignored(FILE *out, unsigned dialect)
{
    fprintf(out, " ");
    size_t col = 1;
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].help || !(opts[i].dialects & dialect))
            continue;
        size_t w = strlen(opts[i].name) + 2;
        if (col + w > 78) {
            fprintf(out, "\n ");
            col = 1;
        }
        fprintf(out, " -%s", opts[i].name);
        col += w;
    }
    fprintf(out, "\n");
}

void dm_args_usage(FILE *out, const char *prog)
{
    prog = prog ? prog : "rsdm";
    fprintf(out, "usage: %s -d DOMID [options]                 (traditional, qemu-dm)\n"
                 "       %s -xen-domid DOMID [options]         (qemu-xen, QMP)\n"
                 "       %s -machine none -chardev ... -mon ...  (libxl's probe)\n\n"
                 "A device model for Xen HVM guests, started by libxl with either command\n"
                 "line; the dialect is recognised by the options only qemu-xen uses.\n"
                 "Options may be written -opt or --opt, and a value as --opt=VALUE or as\n"
                 "the next argument.\n\n",
            prog, prog, prog);
    usage_section(out, "rsdm's own:", TRAD | QXEN, true);
    usage_section(out, "Traditional dialect (control over xenstore):", TRAD, false);
    usage_section(out, "qemu-xen dialect (control over QMP; docs/qmp.md):", QXEN, false);
    fprintf(out, "Accepted for compatibility and ignored (rsdm has no display, USB, sound\n"
                 "or emulated NIC), traditional:\n");
    usage_ignored(out, TRAD);
    fprintf(out, "qemu-xen:\n");
    usage_ignored(out, QXEN);
}

size_t dm_args_qemu_options(dm_args_option *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < NOPTS; i++) {
        if (!(opts[i].dialects & QXEN) || opts[i].own || opts[i].handle == dm_argq_refuse)
            continue;
        bool dup = false;               /* -M and -machine: one entry each name */
        for (size_t k = 0; k < i; k++)
            dup |= (opts[k].dialects & QXEN) && !strcmp(opts[k].name, opts[i].name);
        if (dup)
            continue;
        if (n < max)
            out[n] = (dm_args_option){ opts[i].name, opts[i].params };
        n++;
    }
    return n;
}

void dm_args_log_ignored(const dm_args *a)
{
    if (!a->nignored)
        return;
    char line[768];
    size_t n = 0;
    for (unsigned i = 0; i < a->nignored && n < sizeof(line); i++) {
        int k = snprintf(line + n, sizeof(line) - n, "%s-%s%s%s", i ? " " : "", a->ignored[i].opt,
                         a->ignored[i].value ? " " : "",
                         a->ignored[i].value ? a->ignored[i].value : "");
        if (k < 0)
            break;
        n += (size_t)k;
    }
    dm_info("options accepted but not served by rsdm (ignored): %s", line);
}
