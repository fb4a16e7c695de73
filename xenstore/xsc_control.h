/*
 * xsc_control: the traditional (xenstore) control dialect of rsdm, and the
 * small xenstore footprint of the qemu-xen dialect (XSC_DIALECT_QMP).
 *
 * Under /local/domain/<dm_domid>/device-model/<domid>/ (docs/protocol.md
 * describes every node and value):
 *   command      read, deleted, matched exactly; save, continue, pci-ins,
 *                pci-rem and rsdm's stop, retry, reset, powerdown, wakeup
 *   state        `running` when the dm is truly ready and after each
 *                successful continue/retry; `paused` only as the ack of a
 *                complete, fsynced save file; `pci-insert-failed`
 *   parameter    answer text for pci-ins / pci-rem (no passthrough)
 *   logdirty/cmd enable | disable  ->  logdirty/ret echo
 *   disable_pf   read once at start
 *   runstate     "<QAPI state> holds=<h1>,<h2>"  (kept current)
 *   error        "<seq> <source> \"<value>\": <why>" (last refusal)
 *   status       compact JSON: state, holds with since times, the last
 *                transitions, an event counter (rewritten on every event)
 *
 * Commands become librunstate calls (docs/runstate.md §8 for save).  The
 * object is loop-agnostic: the dm polls xsc_fd() for POLLIN (re-read it
 * before every poll: it changes on reconnect and is -1 while xenstore is
 * unreachable), calls xsc_handle_readable() when it is readable and
 * xsc_handle_timeout() when xsc_timeout_ms() expires.  Everything runs on
 * the thread that owns the rs_vm (the main loop).
 */
#ifndef XSC_CONTROL_H
#define XSC_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runstate.h"
#include "xsc_conn.h"
#include "xsc_paths.h"

struct xs_handle;

/* Callbacks into the dm. */
typedef struct xsc_ops {
    /* Write the complete device state into fd, a new empty regular file.
     * Called with the VM stopped (finish-migrate held).  0, or a negative
     * errno with why filled.  NULL: every `save` is refused. */
    int (*save_state)(void *opaque, int fd, char *why, size_t why_len);
    /* Turn log-dirty reporting of guest-RAM writes on or off.  0, or a
     * negative errno with why filled.  NULL: accepted (nothing to track). */
    int (*set_logdirty)(void *opaque, bool enable, char *why, size_t why_len);
    /* xsc_fd() changed after xsc_new returned: -1 when xenstore was lost,
     * the new fd after a reconnect (re-register it with the loop).  May be
     * called from inside xsc_handle_readable/_timeout/xsc_probe.  NULL: the
     * loop re-reads xsc_fd() before every poll instead. */
    void (*fd_changed)(void *opaque, int fd);
    /* Parked device errors for the `status` node: write a JSON array
     * ("[...]", at most len-1 bytes, NUL-terminated) into buf and return its
     * length, or a negative value for none.  Anything that is not a
     * complete array within len is dropped.  NULL: no "disks" member. */
    int (*status_disks)(void *opaque, char *buf, size_t len);
    void *opaque;
} xsc_ops;

/* Which toolstack protocol the dm speaks (DESIGN.md "Control dialects"). */
typedef enum xsc_dialect {
    /* libxl <= 4.20 with qemu-traditional: commands from `command`,
     * `running` at ready and after continue/retry, `paused` as save ack. */
    XSC_DIALECT_TRADITIONAL = 0,
    /* qemu-xen: commands come over QMP; xenstore only carries `state` =
     * `running` on every start (QEMU's run-state hook), plus `runstate`
     * and `error`.  `command` and `logdirty` are not watched.  Not for a
     * restricted dm (-xen-domid-restrict): it has no xenstore at all. */
    XSC_DIALECT_QMP,
} xsc_dialect;

typedef struct xsc_config {
    xsc_dialect dialect;
    unsigned dm_domid;         /* domain the dm runs in (0, or a stub domain) */
    unsigned domid;            /* the guest */
    rs_vm *vm;                 /* required; owned by the caller */
    const char *save_path;     /* NULL: /var/lib/xen/qemu-save.<domid> */
    xsc_ops ops;
    rs_log_fn log;             /* NULL: stderr */
    void *log_opaque;
    xsc_conn_opts conn;        /* reconnect back-off */
    unsigned sweep_ms;         /* liveness probe and re-read period (0: 1000) */
} xsc_config;

typedef struct xsc_stats {
    uint64_t events;              /* watch events taken */
    uint64_t commands_read;       /* values read (and deleted) from `command` */
    uint64_t commands_done;       /* ... acted on */
    uint64_t commands_refused;    /* ... reported in `error` */
    uint64_t commands_replayed;   /* stale values seen again after a reconnect, not re-run */
    uint64_t logdirty_read, logdirty_done, logdirty_refused;
    uint64_t saves_ok, saves_failed;
    uint64_t errors_written;      /* refusals written to `error` */
    uint64_t reconnects;
    uint64_t sweeps;              /* periodic probes / re-reads done */
    uint64_t status_writes;       /* `status` values published */
} xsc_stats;

typedef struct xsc xsc;

/* Connect (XENSTORED_PATH is honoured by libxenstore), check that the
 * control directory is not guest-writable (refused with -EACCES and why
 * naming the offending entry; created [n<dm_domid>] when absent), read
 * disable_pf, publish `runstate`, arm the watches.  Commands are taken only
 * after xsc_ready().  0 or a negative errno with why filled. */
int xsc_new(const xsc_config *cfg, xsc **out, char *why, size_t why_len);
void xsc_free(xsc *x);

/* The dm is truly ready (machine built, -loadvm / -incoming fully loaded):
 * traditional: write `state` = `running` and start taking commands (the
 * current `command` value, if any, is acted on now); qemu-xen: write
 * `running` if the VM is live (not with -S), and from now on at every
 * start.  0 or a negative errno. */
int xsc_ready(xsc *x);

int xsc_fd(const xsc *x);
/* Milliseconds until xsc_handle_timeout() is due (0: now); never -1. */
int xsc_timeout_ms(const xsc *x);
/* Take every queued watch event.  0, or a negative errno when the dm must
 * exit (never for bad input). */
int xsc_handle_readable(xsc *x);
/* Reconnect attempts, the periodic probe and re-read.  0, or a negative
 * errno when the dm must exit: xenstore unreachable for longer than
 * conn.give_up_ms (-ENOTCONN), or the control directory became
 * guest-writable across a reconnect (-EACCES). */
int xsc_handle_timeout(xsc *x);
/* Probe the connection now (the daemon's death is otherwise noticed at the
 * next request or sweep).  0 when up, -ENOTCONN when lost (reconnect
 * scheduled). */
int xsc_probe(xsc *x);

bool xsc_disable_pf(const xsc *x);
bool xsc_logdirty_enabled(const xsc *x);
bool xsc_is_connected(const xsc *x);
unsigned xsc_generation(const xsc *x);
struct xs_handle *xsc_xs(const xsc *x);     /* NULL while disconnected */
const xsc_paths *xsc_get_paths(const xsc *x);
void xsc_get_stats(const xsc *x, xsc_stats *out);

/* Publish the console pty for `xl console` at /local/domain/<domid>/serial/0/tty,
 * owned by the dm's domain with read access for the guest.  0 or -errno. */
int xsc_publish_serial_tty(xsc *x, const char *pty_path);

/* Record the guest's RTC offset from host time (seconds, as Xen's
 * IOREQ_TYPE_TIMEOFFSET reports it) at /vm/<uuid>/rtc/timeoffset, as
 * qemu-traditional does, so it survives save/restore.  -EINVAL for a
 * malformed uuid, -ENOTCONN while disconnected, or -errno. */
int xsc_publish_rtc_timeoffset(xsc *x, const char *uuid, long long offset);

/* The guest's VM uuid from /local/domain/<domid>/vm ("/vm/<uuid>", written
 * by the toolstack).  The node sits in the guest's home, so it is trusted
 * only when the dm's domain owns it and no other domain may write it: a
 * guest that could point it elsewhere would make the dm write another VM's
 * RTC offset.  0 with uuid filled, -ENOENT when absent, -EACCES when
 * writable by someone else, -EINVAL when malformed (each logged). */
int xsc_read_vm_uuid(xsc *x, char *uuid, size_t len);

/* ------------------------------------------------------------------ */
/* The rule that keeps a command from running twice across a reconnect. */

typedef struct xsc_last_cmd {
    bool valid;
    bool rm_confirmed;        /* its deletion was acknowledged by xenstored */
    unsigned generation;      /* connection generation it was read in */
    size_t len;
    unsigned char value[64];  /* the first bytes (commands are short) */
} xsc_last_cmd;

/* A value read in `generation` is a replay of `last` -- already handled,
 * its deletion never confirmed, the connection has changed since -- and
 * must be deleted without being run again. */
bool xsc_cmd_is_replay(const xsc_last_cmd *last, const void *value, size_t len,
                       unsigned generation);

#endif /* XSC_CONTROL_H */
