/* xl_migrate.c: `xensim xl migrate`: the sender's suspend, the receiver's
 * restore, then the source destroyed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "xl_cmd.h"
#include "xl_internal.h"

/* xl migrate without --live: the sender's suspend, the receiver's restore
 * (another xensim rundir, or this one), then the source destroyed.  The
 * stream goes through a 0600 file in the receiver's xl/lib. */
int cmd_migrate(int argc, char **argv)
{
    const char *to = g_rundir;
    const char *dom = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--live") == 0) {
            fprintf(stderr, "xensim xl migrate --live: not yet done in xensim "
                            "(iterative RAM copy from the dirty bitmap)\n");
            return 1;
        } else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (!dom && argv[i][0] != '-')
            dom = argv[i];
        else
            return fprintf(stderr, "usage: xensim xl migrate [--live] DOMID [--to RUNDIR|HOST:PORT]\n"), 2;
    }
    unsigned domid;
    if (!dom || parse_domid(dom, &domid) < 0)
        return 2;
    struct stat st;
    if (stat(to, &st) < 0 || !S_ISDIR(st.st_mode)) {
        if (strchr(to, ':'))
            fprintf(stderr, "xensim xl migrate --to HOST:PORT: TCP transport not yet done in xensim\n");
        else
            fprintf(stderr, "xensim xl migrate: %s is not a xensim rundir\n", to);
        return 1;
    }
    char d[4200], file[4300];
    snprintf(d, sizeof(d), "%s/xl", to);
    mkdir(d, 0755);
    snprintf(d, sizeof(d), "%s/xl/lib", to);
    mkdir(d, 0700);
    snprintf(file, sizeof(file), "%s/migrate-stream.%u", d, domid);
    if (do_save(domid, file, 0) < 0 || access(file, R_OK) < 0) {
        unlink(file);
        return die("migration sender: suspend of domain %u failed", domid);
    }
    chmod(file, 0600);
    pid_t pid = fork();
    if (pid < 0) {
        unlink(file);
        return die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        char tmo[16];
        snprintf(tmo, sizeof(tmo), "%d", g_timeout >= 0 ? g_timeout : DM_START_TIMEOUT);
        execl("/proc/self/exe", "xensim", "xl", "--rundir", to, "--timeout", tmo,
              "restore", file, (char *)NULL);
        _exit(127);
    }
    int wst;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    unlink(file);
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        fprintf(stderr, "migration receiver failed; domain %u left suspended "
                        "(resume after a failed migration is not yet done in xensim)\n", domid);
        return 1;
    }
    return destroy_domain(domid);
}
