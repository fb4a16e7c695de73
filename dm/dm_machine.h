/*
 * The device model for one guest, assembled from its parts in a fixed
 * order and taken apart in the reverse order (the demu/varstored pattern).
 * Each step names itself, so the first error line of a failed start says
 * which domain and which step.
 */
#ifndef DM_MACHINE_H
#define DM_MACHINE_H

#include "dm_args.h"

typedef struct dm_machine dm_machine;

/* Builds everything, loads -loadvm, enables the ioreq server and tells the
 * toolstack the dm is ready.  On failure everything built so far is torn
 * down and a negative errno returned (the error is logged). */
int dm_machine_start(const dm_args *args, dm_machine **out);
/* Runs until a signal, a shutdown or a fatal error; returns the exit status. */
int dm_machine_run(dm_machine *m);
void dm_machine_stop(dm_machine *m);

#endif
