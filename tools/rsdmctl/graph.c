/*
 * `rsdmctl graph`: librunstate's transition table as Graphviz DOT, or with
 * --pairs one "from -> to" line per allowed transition (QAPI names, QEMU's
 * source order), so the table can be diffed against other sources.
 */
#include <stdio.h>
#include <string.h>

#include "rsdmctl.h"
#include "runstate.h"

static void graph_usage(FILE *f)
{
    fprintf(f, "Usage: rsdmctl graph [--pairs]\n"
               "Print the run-state machine as Graphviz DOT (default) or, with --pairs,\n"
               "one 'from -> to' line per allowed transition.\n");
}

static const char *group_color(rs_group g)
{
    switch (g) {
    case RS_GROUP_INTERNAL: return "lightblue";
    case RS_GROUP_MANAGEMENT: return "orange";
    case RS_GROUP_USER: return "khaki";
    case RS_GROUP_FATAL: return "salmon";
    default: return "palegreen";
    }
}

int rsdmctl_graph(int argc, char **argv)
{
    int pairs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pairs") == 0) {
            pairs = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            graph_usage(stdout);
            return RSDMCTL_OK;
        } else {
            fprintf(stderr, "rsdmctl graph: unknown argument '%s'\n", argv[i]);
            graph_usage(stderr);
            return RSDMCTL_USAGE;
        }
    }
    size_t n = rs_transition_count();
    if (pairs) {
        for (size_t i = 0; i < n; i++) {
            rs_state from, to;
            if (rs_transition_at(i, &from, &to) < 0)
                return RSDMCTL_FAIL;
            printf("%s -> %s\n", rs_state_name(from), rs_state_name(to));
        }
        return fflush(stdout) == 0 ? RSDMCTL_OK : RSDMCTL_FAIL;
    }
    printf("digraph runstate {\n"
           "  rankdir=LR;\n"
           "  node [shape=box, style=\"rounded,filled\", fontname=\"sans\"];\n");
    for (int s = 0; s < RS_STATE__MAX; s++)
        printf("  \"%s\" [fillcolor=%s, tooltip=\"hold group: %s\"];\n", rs_state_name((rs_state)s),
               group_color(rs_state_group((rs_state)s)), rs_group_name(rs_state_group((rs_state)s)));
    for (size_t i = 0; i < n; i++) {
        rs_state from, to;
        if (rs_transition_at(i, &from, &to) < 0)
            return RSDMCTL_FAIL;
        printf("  \"%s\" -> \"%s\";\n", rs_state_name(from), rs_state_name(to));
    }
    printf("}\n");
    return fflush(stdout) == 0 ? RSDMCTL_OK : RSDMCTL_FAIL;
}
