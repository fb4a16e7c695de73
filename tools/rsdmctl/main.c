/*
 * rsdmctl: see and steer rsdm device models.  Dispatches to one function
 * per subcommand; exit codes and messages follow xl's manner.
 */
#include <stdio.h>
#include <string.h>

#include "rsdmctl.h"

#define RSDMCTL_VERSION "0.2.0"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    { "list", rsdmctl_list, "list every rsdm on this host and its state" },
    { "status", rsdmctl_status, "show a domain's run state, holds and recent transitions" },
    { "stop", rsdmctl_control, "stop (pause) a domain's device model" },
    { "cont", rsdmctl_control, "continue a stopped domain" },
    { "retry", rsdmctl_control, "re-issue parked I/O after an io-error and continue" },
    { "reset", rsdmctl_control, "reset the machine" },
    { "powerdown", rsdmctl_control, "ask the guest to power down (ACPI power button)" },
    { "wakeup", rsdmctl_control, "wake a suspended (S3) guest" },
    { "save-state", rsdmctl_save_state, "save the device state of a stopped domain to a file" },
    { "events", rsdmctl_events, "follow a domain's run-state events live" },
    { "timeline", rsdmctl_timeline, "draw a domain's transitions and holds as SVG" },
    { "graph", rsdmctl_graph, "print the run-state machine (Graphviz DOT, or --pairs)" },
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: rsdmctl [--help|--version] COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'rsdmctl COMMAND --help' describes a command.\n"
               "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return RSDMCTL_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return RSDMCTL_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("rsdmctl %s\n", RSDMCTL_VERSION);
        return RSDMCTL_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "rsdmctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return RSDMCTL_USAGE;
}
