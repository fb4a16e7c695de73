/*
 * The qemu-xen dialect's control inside the dm: the QMP server
 * (qmp_server + qmp_commands) on every -qmp / -mon monitor of the command
 * line, served from the main loop.  Watches follow the server's fd set
 * (listeners, clients, POLLOUT only while a client has output queued), so
 * a slow or vanished client costs at most its bounded queue and never
 * blocks the loop.  Run-state events reach every client in command mode
 * (qmp_commands' event sink); other events go through dm_qmp_event.
 */
#ifndef DM_QMP_H
#define DM_QMP_H

#include <jansson.h>
#include <stddef.h>

#include "dm_args.h"
#include "dm_loop.h"
#include "qmp_commands.h"
#include "runstate.h"

typedef struct dm_qmp dm_qmp;

/* Opens every monitor of args (a socket path is created, replacing a stale
 * socket; an inherited fd must be a listening stream socket) and starts
 * serving them on loop.  0, or a negative errno with why naming the
 * monitor. */
int dm_qmp_new(dm_loop *loop, rs_vm *vm, const dm_args *args, dm_qmp **out, char *why,
               size_t why_len);
/* Closes every client and listener and removes the socket files it made. */
void dm_qmp_free(dm_qmp *q);

qmp_commands *dm_qmp_commands(dm_qmp *q);
qmp_server *dm_qmp_server(dm_qmp *q);

/* Broadcast an event (data stolen, may be NULL). */
void dm_qmp_event(dm_qmp *q, const char *name, json_t *data);

#endif
