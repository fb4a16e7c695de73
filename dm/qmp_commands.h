/*
 * The QMP command layer that needs neither Xen nor devices: run state
 * (librunstate), action policies, fd sets, version/introspection, the
 * chardev registry, and hooks the integrator fills for the Xen commands.
 * Plug into the server with qmp_server_new(qmp_commands_dispatch, cmds).
 */
#ifndef QMP_COMMANDS_H
#define QMP_COMMANDS_H

#include "qmp_server.h"
#include "runstate.h"

#include <stdbool.h>

typedef struct qmp_commands qmp_commands;

/* Hooks for the Xen-side commands; any may be NULL (the command then fails
 * with a GenericError saying it is not available).  fd is open for the
 * file named by the command (writable for save, readable for load) and is
 * closed by the command layer after the hook returns.  save_devices_state
 * runs with the display in save-vm when the VM was running (it is restarted
 * afterwards) and in its stopped state otherwise: a hook that must release
 * image locks "when live and stopped" (QEMU) tests
 * live && rs_get_state(vm) != RS_SAVE_VM.  Return 0, or -1 with
 * a message in err (becomes the GenericError text). */
typedef struct qmp_xen_hooks {
    int (*save_devices_state)(void *opaque, int fd, bool live, char *err, size_t errlen);
    int (*load_devices_state)(void *opaque, int fd, char *err, size_t errlen);
    int (*set_global_dirty_log)(void *opaque, bool enable, char *err, size_t errlen);
    /* XenServer's query-migratable: -1 with the reason when the VM cannot
     * be suspended (xenopsd records it); NULL means always migratable. */
    int (*migratable)(void *opaque, char *err, size_t errlen);
    /* QEMU's bdrv_activate_all at the start of `cont` (and rsdm's
     * x-retry): the images a live save gave up are taken back before the
     * VM may run, so a failure (another process took one meanwhile) fails
     * the command with the reason and the VM stays stopped. */
    int (*activate_disks)(void *opaque, char *err, size_t errlen);
    void *opaque;
} qmp_xen_hooks;

/* vm is borrowed.  Registers an rs event sink that broadcasts QMP events
 * once qmp_commands_set_server is called. */
qmp_commands *qmp_commands_new(rs_vm *vm);
void qmp_commands_free(qmp_commands *q);   /* closes fd sets, removes the sink */
void qmp_commands_set_server(qmp_commands *q, qmp_server *s);
void qmp_commands_set_xen_hooks(qmp_commands *q, const qmp_xen_hooks *h);
/* Whether the guest can be woken from S3 by system_wakeup (default true). */
void qmp_commands_set_wakeup_supported(qmp_commands *q, bool on);
/* Register a character device for query-chardev (the UART): label and
 * QEMU's filename text ("pty:/dev/pts/3").  0 or -ENOMEM/-EINVAL. */
int qmp_commands_add_chardev(qmp_commands *q, const char *label, const char *filename);
/* True once `quit` was executed (a shutdown request is also posted). */
bool qmp_commands_quit_requested(const qmp_commands *q);

/* Open `path` as QEMU's qemu_open: "/dev/fdset/N" gives a dup of an fd of
 * set N whose access mode matches flags (O_RDONLY/O_WRONLY/O_RDWR);
 * anything else is open(path, flags, 0660).  Returns fd or -errno. */
int qmp_commands_open(qmp_commands *q, const char *path, int flags);

/* The server's dispatch callback. */
int qmp_commands_dispatch(void *opaque, qmp_client *c, const char *name, json_t *args,
                          json_t **ret, qmp_error *err);

#endif
