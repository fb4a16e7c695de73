/* rsdmctl: the operator's command-line tool.  One file per subcommand. */
#ifndef RSDMCTL_H
#define RSDMCTL_H

/* Exit codes in the manner of xl: 0 success, 1 failure, 2 usage. */
enum { RSDMCTL_OK = 0, RSDMCTL_FAIL = 1, RSDMCTL_USAGE = 2 };

int rsdmctl_graph(int argc, char **argv);

#endif
