/*
 * rsdm: a device model for Xen HVM guests.  Parses libxl's command line,
 * assembles the machine, runs its main loop, and exits with its status.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "dm_args.h"
#include "dm_log.h"
#include "dm_machine.h"

#define RSDM_VERSION "0.1.0"

int main(int argc, char **argv)
{
    dm_args args;
    char err[512];
    if (dm_args_parse(&args, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "rsdm: %s\nTry 'rsdm --help' for more information.\n", err);
        return 2;
    }
    if (args.help) {
        dm_args_usage(stdout, "rsdm");
        return 0;
    }
    if (args.version) {
        printf("rsdm %s\n", RSDM_VERSION);
        return 0;
    }
    if (args.has_log_level)
        dm_log_set_level(args.log_level);
    if (args.domid < 0 && !args.probe) {
        fprintf(stderr, "rsdm: no domain given (-d DOMID)\n");
        return 2;
    }

    dm_args_log_ignored(&args);
    /* A console or monitor peer that goes away must not kill the dm. */
    signal(SIGPIPE, SIG_IGN);

    dm_machine *m = NULL;
    if (dm_machine_start(&args, &m) < 0)
        return 1;
    int status = dm_machine_run(m);
    dm_machine_stop(m);
    return status;
}
