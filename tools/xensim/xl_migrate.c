/* xl_migrate.c: `xensim xl migrate` and `migrate-receive`, xl 4.17's
 * protocol (tools/xl/xl_migrate.c) over one bidirectional connection:
 *
 *   receiver -> sender  banner "xl migration receiver ready, send binary domain data.\n"
 *   sender -> receiver  the save stream (xl_stream.c), guest memory in rounds if --live
 *   receiver -> sender  "domain received, ready to unpause\0"   (domain restored, paused)
 *   sender -> receiver  "domain is yours, you are cleared to unpause\0"
 *   receiver -> sender  "my copy unpause results are as follows\0" + 1 status byte
 *   (status != 0: the receiver destroys its copy, then sends the "go" text
 *    back as the sender's permission to resume)
 *
 * The connection is a socketpair to a `migrate-receive --fd 3` child run
 * against the target rundir (xl's ssh rune, locally), or TCP to a
 * `migrate-receive --listen HOST:PORT` in another xensim. */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>
#include <xenstore.h>

#include "xl_cmd.h"
#include "xl_internal.h"

/* xl.h's messages; all but the banner are sent with their NUL */
static const char banner[] = "xl migration receiver ready, send binary domain data.\n";
static const char ready_msg[] = "domain received, ready to unpause";
static const char go_msg[] = "domain is yours, you are cleared to unpause";
static const char report_msg[] = "my copy unpause results are as follows";

/* xl itself reads the connection without a bound; here each read waits at
 * most the sum of the waits the other side may be in (logdirty, guest,
 * device model), so a vanished peer fails the migration. */
static int stream_secs(void)
{
    return 2 * bound(LOGDIRTY_TIMEOUT) + 2 * bound(DM_START_TIMEOUT);
}

static int read_fixed(int fd, const char *msg, size_t len, const char *stream,
                      const char *what)
{
    char buf[128];
    if (xl_read_all(fd, buf, len, stream_secs()) < 0) {
        fprintf(stderr, "xl: error: %s: reading %s: %s\n", stream, what,
                errno == ECONNRESET ? "unexpected end of stream" : strerror(errno));
        return -1;
    }
    if (memcmp(buf, msg, len) != 0) {
        fprintf(stderr, "%s contained unexpected data instead of %s\n", stream, what);
        return -1;
    }
    return 0;
}

static int write_fixed(int fd, const void *msg, size_t len, const char *what)
{
    if (xl_write_all(fd, msg, len) < 0) {
        fprintf(stderr, "xl: error: migration stream: writing %s: %s\n", what, strerror(errno));
        return -1;
    }
    return 0;
}

/* HOST:PORT (the last colon splits; [v6] brackets allowed). */
static int tcp_addr(const char *spec, int passive, struct addrinfo **res)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host) || !colon[1]) {
        fprintf(stderr, "xensim xl: '%s' is not HOST:PORT\n", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = passive ? AI_PASSIVE : 0 };
    int e = getaddrinfo(host, colon + 1, &hints, res);
    if (e) {
        fprintf(stderr, "xensim xl: resolving %s: %s\n", spec, gai_strerror(e));
        return -1;
    }
    return 0;
}

/* A connected (passive: bound and listening) TCP socket for HOST:PORT,
 * trying each address; -1 after a message. */
static int tcp_socket(const char *spec, int passive)
{
    struct addrinfo *res;
    if (tcp_addr(spec, passive, &res) < 0)
        return -1;
    int fd = -1, e = 0, one = 1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            e = errno;
        else if (passive ? setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
                               bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 1) < 0
                         : connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, passive ? "migration target: cannot listen on %s: %s\n"
                                : "migration sender: cannot connect to %s: %s\n",
                spec, strerror(e));
    return fd;
}

/* The local transport: `xensim xl --rundir TO migrate-receive --fd 3` on
 * one end of a socketpair; its stdout/stderr are ours. */
static pid_t spawn_local_receiver(const char *to, int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        fprintf(stderr, "migration sender: socketpair: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "migration sender: fork: %s\n", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        if (dup2(sv[1], 3) < 0)
            _exit(127);
        char tmo[16];
        snprintf(tmo, sizeof(tmo), "%d", g_timeout);
        if (g_timeout >= 0)
            execl("/proc/self/exe", "xensim", "xl", "--rundir", to, "--timeout", tmo,
                  "migrate-receive", "--fd", "3", (char *)NULL);
        else
            execl("/proc/self/exe", "xensim", "xl", "--rundir", to, "migrate-receive", "--fd",
                  "3", (char *)NULL);
        fprintf(stderr, "migration sender: exec of the receiver: %s\n", strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    *fd = sv[0];
    return pid;
}

static void reap(pid_t pid)
{
    if (pid <= 0)
        return;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        fprintf(stderr, "migration target process [%ld] exited with error status %d\n",
                (long)pid, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        fprintf(stderr, "migration target process [%ld] died due to signal %d\n", (long)pid,
                WTERMSIG(st));
}

/* ------------------------------------------------------------ sender */

static int migrate_domain(unsigned domid, int fd, int live, pid_t child)
{
    const char *stream = "migration receiver stream";
    char cp[64], np[64];
    snprintf(cp, sizeof(cp), "/libxl/%u/xl-config", domid);
    snprintf(np, sizeof(np), "/local/domain/%u/name", domid);
    char *cfgtext = xs_r(cp), *name = xs_r(np);
    int rc = 1;
    char away[160];
    if (!cfgtext) {
        fprintf(stderr, "No config file stored for running domain and none supplied - "
                        "cannot migrate.\n");
        goto out;
    }
    if (read_fixed(fd, banner, sizeof(banner) - 1, stream, "banner") < 0)
        goto out;
    fprintf(stderr, "Saving to migration stream new xl format (xensim stream 2)\n");
    if (xl_stream_put_header(fd, cfgtext) < 0) {
        fprintf(stderr, "xl: error: migration stream: writing the config: %s\n",
                strerror(errno));
        goto failed_resume;
    }
    int s = xl_suspend_domain(domid, fd, live);
    if (s < 0) {
        fprintf(stderr, "migration sender: libxl_domain_suspend failed (rc=%d)\n",
                s == XL_ERROR_GUEST_TIMEDOUT ? -8 : -3);
        if (s == XL_ERROR_GUEST_TIMEDOUT) {
            shutdown(fd, SHUT_RDWR);
            fprintf(stderr, "Migration failed, failed to suspend at sender.\n");
            goto out;
        }
        goto failed_resume;
    }
    if (read_fixed(fd, ready_msg, sizeof(ready_msg), stream, "ready message") < 0)
        goto failed_resume;
    fprintf(stderr, "migration sender: Target has acknowledged transfer.\n");
    if (name) {
        snprintf(away, sizeof(away), "%s--migratedaway", name);
        if (xl_rename_domain(domid, away) < 0)
            goto failed_resume;
    }
    /* point of no return: after "go" the receiver may run the guest */
    fprintf(stderr, "migration sender: Giving target permission to start.\n");
    if (write_fixed(fd, go_msg, sizeof(go_msg), "GO message") < 0)
        goto failed_badly;
    char status;
    if (read_fixed(fd, report_msg, sizeof(report_msg), stream,
                   "success/failure report message") < 0 ||
        xl_read_all(fd, &status, 1, stream_secs()) < 0)
        goto failed_badly;
    if (status) {
        fprintf(stderr, "migration sender: Target reports startup failure (status code %d).\n",
                status);
        if (read_fixed(fd, go_msg, sizeof(go_msg), stream,
                       "permission for sender to resume") < 0)
            goto failed_badly;
        fprintf(stderr, "migration sender: Trying to resume at our end.\n");
        if (name)
            xl_rename_domain(domid, name);
        if (xl_resume_domain(domid, 1) == 0)
            fprintf(stderr, "migration sender: Resumed OK.\n");
        fprintf(stderr, "Migration failed due to problems at target.\n");
        goto out;
    }
    fprintf(stderr, "migration sender: Target reports successful startup.\n");
    rc = destroy_domain(domid);
    if (rc == 0)
        fprintf(stderr, "Migration successful.\n");
    goto out;

failed_resume:
    shutdown(fd, SHUT_RDWR);
    fprintf(stderr, "Migration failed, resuming at sender.\n");
    xl_resume_domain(domid, 1);
    goto out;
failed_badly:
    fprintf(stderr,
            "** Migration failed during final handshake **\n"
            "Domain state is now undefined !\n"
            "Please CHECK AT BOTH ENDS for running instances, before renaming and\n"
            " resuming at most one instance.  Two simultaneous instances of the domain\n"
            " would probably result in SEVERE DATA LOSS and it is now your\n"
            " responsibility to avoid that.  Sorry.\n");
out:
    close(fd);
    reap(child);
    free(cfgtext);
    free(name);
    return rc;
}

int cmd_migrate(int argc, char **argv)
{
    const char *to = g_rundir;
    const char *dom = NULL;
    int live = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--live") == 0)
            live = 1;
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (!dom && argv[i][0] != '-')
            dom = argv[i];
        else
            return fprintf(stderr, "usage: xensim xl migrate [--live] DOMID "
                                   "[--to RUNDIR|HOST:PORT]\n"), 2;
    }
    unsigned domid;
    if (!dom || parse_domid(dom, &domid) < 0)
        return 2;
    /* a receiver that dies must be an error here, not a signal */
    signal(SIGPIPE, SIG_IGN);
    struct stat st;
    int fd;
    pid_t child = 0;
    if (stat(to, &st) == 0 && S_ISDIR(st.st_mode)) {
        child = spawn_local_receiver(to, &fd);
        if (child < 0)
            return 1;
    } else if (strchr(to, ':')) {
        fd = tcp_socket(to, 0);
        if (fd < 0)
            return 1;
    } else {
        return fprintf(stderr, "xensim xl migrate: %s is neither a xensim rundir nor "
                               "HOST:PORT\n", to), 1;
    }
    return migrate_domain(domid, fd, live, child);
}

/* ------------------------------------------------------------ receiver */

static int receive(int in, int out)
{
    const char *stream = "migration stream";
    fprintf(stderr, "migration target: Ready to receive domain.\n");
    if (write_fixed(out, banner, sizeof(banner) - 1, "banner") < 0)
        return 1;
    char *cfgtext;
    if (xl_stream_get_config(in, stream, &cfgtext, stream_secs()) < 0) {
        fprintf(stderr, "migration target: Domain creation failed (code -3).\n");
        return 1;
    }
    struct xl_restore_src rs = { .fd = in, .what = stream, .secs = stream_secs(),
                                 .name_suffix = "--incoming" };
    int r = create_common(cfgtext, "incoming migration stream", &rs, 1);
    free(cfgtext);
    if (r != 0) {
        fprintf(stderr, "migration target: Domain creation failed (code -3).\n");
        return 1;
    }
    fflush(stdout);
    unsigned domid = rs.domid;
    fprintf(stderr, "migration target: Transfer complete, requesting permission to start "
                    "domain.\n");
    if (write_fixed(out, ready_msg, sizeof(ready_msg), "ready message") < 0)
        return 1;
    int rc = -1;
    if (read_fixed(in, go_msg, sizeof(go_msg), stream, "GO message") == 0) {
        fprintf(stderr, "migration target: Got permission, starting domain.\n");
        char np[64];
        snprintf(np, sizeof(np), "/local/domain/%u/name", domid);
        char *name = xs_r(np);
        size_t nl = name ? strlen(name) : 0, sl = strlen("--incoming");
        if (name && nl > sl && strcmp(name + nl - sl, "--incoming") == 0) {
            name[nl - sl] = '\0';
            rc = xl_rename_domain(domid, name);
        }
        free(name);
        char sd[16];
        snprintf(sd, sizeof(sd), "%u", domid);
        /* libxl_domain_unpause: the dm first (continue only if paused) */
        if (rc == 0 && dm_resume(domid) < 0)
            rc = -1;
        if (rc == 0 && hv(NULL, 0, "unpause", sd, NULL, NULL, NULL, NULL, NULL, NULL) < 0)
            rc = (die("Domain %u:Unpausing domain", domid), -1);
        if (rc == 0) {
            fprintf(stderr, "migration target: Domain started successsfully.\n");
            xl_wl_resume(g_rundir, domid);   /* the simulated guest carries on */
        }
    }
    char status = rc == 0 ? 0 : 3;   /* -ERROR_FAIL */
    if (write_fixed(out, report_msg, sizeof(report_msg), "success/failure report") < 0 ||
        write_fixed(out, &status, 1, "success/failure code") < 0)
        return 1;
    if (rc == 0)
        return 0;
    fprintf(stderr, "migration target: Failure, destroying our copy.\n");
    if (destroy_domain(domid) != 0) {
        fprintf(stderr, "migration target: Failed to destroy our copy (code -3).\n");
        return 1;
    }
    fprintf(stderr, "migration target: Cleanup OK, granting sender permission to resume.\n");
    write_fixed(out, go_msg, sizeof(go_msg), "permission for sender to resume");
    return 1;
}

/* One incoming connection on HOST:PORT (port 0: any; the chosen one is
 * announced on stderr).  The accept waits --timeout seconds if given. */
static int listen_once(const char *spec)
{
    int ls = tcp_socket(spec, 1);
    if (ls < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[128] = "?", port[16] = "?";
    if (getsockname(ls, (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
    fprintf(stderr, "migration target: Listening on %s:%s\n", host, port);
    struct pollfd pfd = { .fd = ls, .events = POLLIN };
    int pr;
    while ((pr = poll(&pfd, 1, g_timeout >= 0 ? g_timeout * 1000 : -1)) < 0 && errno == EINTR)
        ;
    int fd = pr > 0 ? accept4(ls, NULL, NULL, SOCK_CLOEXEC) : -1;
    if (fd < 0)
        fprintf(stderr, "migration target: no sender connected to %s: %s\n", spec,
                pr == 0 ? "timed out" : strerror(errno));
    close(ls);
    return fd;
}

int cmd_migrate_receive(int argc, char **argv)
{
    int in = 0, out = -1;
    const char *listen_on = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_on = argv[++i];
        else if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 1023)
                return fprintf(stderr, "xensim xl migrate-receive: bad --fd %s\n", argv[i]), 2;
            in = out = (int)v;
        } else
            return fprintf(stderr, "usage: xensim xl migrate-receive "
                                   "[--listen HOST:PORT | --fd N]\n"), 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (listen_on) {
        in = out = listen_once(listen_on);
        if (in < 0)
            return 1;
    } else if (out < 0) {
        /* stdin/stdout carry the protocol, as under xl's ssh rune; the
         * domid (and anything else) printed goes to stderr instead */
        out = dup(1);
        if (out < 0 || dup2(2, 1) < 0)
            return fprintf(stderr, "migration target: %s\n", strerror(errno)), 1;
    }
    int r = receive(in, out);
    close(in);
    if (out != in)
        close(out);
    return r;
}
