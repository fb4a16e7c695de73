/* xl_save.c: `xensim xl save` and `restore`: libxl 4.17's suspend (logdirty,
 * guest suspend, the dm's `save`) and the restore from xensim's save file. */
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

/* libxl waits on @releaseDomain until Xen reports the shutdown reason
 * `suspend` (60 s, ERROR_GUEST_TIMEDOUT): Xen defers the shutdown while a
 * vCPU has an ioreq outstanding, so the request alone is not enough. */
int wait_suspended(unsigned domid, int secs)
{
    if (!xs_watch(g_xs, "@releaseDomain", "xl-suspend"))
        return -1;
    char sd[16], info[4096];
    snprintf(sd, sizeof(sd), "%u", domid);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = -1;
    for (;;) {
        if (hv(info, sizeof(info), "info", sd, NULL, NULL, NULL, NULL, NULL, NULL) == 0 &&
            strstr(info, "\nshutdown_reason: suspend\n")) {
            rc = 0;
            break;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = (long)secs * 1000 - ((t.tv_sec - t0.tv_sec) * 1000 +
                                         (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            break;
        struct pollfd pfd = { .fd = xs_fileno(g_xs), .events = POLLIN };
        if (poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left) > 0) {
            unsigned n;
            free(xs_read_watch(g_xs, &n));
        }
    }
    xs_unwatch(g_xs, "@releaseDomain", "xl-suspend");
    return rc;
}

/* ------------------------------------------------------------ save/restore */

#define SAVE_MAGIC "xensim-xl-save 1\n"

int logdirty(unsigned domid, const char *cmd)
{
    char c[256], r[256];
    paths(domid, "logdirty/cmd", c, sizeof(c));
    paths(domid, "logdirty/ret", r, sizeof(r));
    /* libxl: inside a transaction, a previous cmd must equal ret; both go */
    for (;;) {
        xs_transaction_t t = xs_transaction_start(g_xs);
        unsigned l;
        char *oc = xs_read(g_xs, t, c, &l), *orr = xs_read(g_xs, t, r, &l);
        int bad = oc && (!orr || strcmp(oc, orr) != 0);
        free(oc);
        free(orr);
        if (bad) {
            xs_transaction_end(g_xs, t, true);
            return die("logdirty: previous command not acknowledged by the device model"), -1;
        }
        xs_rm(g_xs, t, c);
        xs_rm(g_xs, t, r);
        xs_write(g_xs, t, c, cmd, strlen(cmd));
        if (xs_transaction_end(g_xs, t, false))
            break;
        if (errno != EAGAIN)
            return die("logdirty transaction: %s", strerror(errno)), -1;
    }
    char got[64];
    int w = wait_value(r, cmd, bound(LOGDIRTY_TIMEOUT), 0, got, sizeof(got));
    if (w < 0)
        return die("logdirty switch: %s", w == -1 ? "timed out" : "xenstore error"), -1;
    xs_rm(g_xs, XBT_NULL, c);
    xs_rm(g_xs, XBT_NULL, r);
    return 0;
}

/* libxl_domain_suspend for a traditional HVM guest, then (xl save) the
 * domain destroyed; migrate destroys only once the receiver has it. */
int do_save(unsigned domid, const char *file, int destroy_after)
{
    char cp[64];
    snprintf(cp, sizeof(cp), "/libxl/%u/xl-config", domid);
    char *cfgtext = xs_r(cp);
    if (!cfgtext)
        return die("domain %u: not created by xensim xl (no config)", domid);
    if (logdirty(domid, "enable") < 0) {
        free(cfgtext);
        return die("Failed to save domain, resuming domain"), 1;
    }
    char sd[16];
    snprintf(sd, sizeof(sd), "%u", domid);
    if (hv(NULL, 0, "shutdown", sd, "suspend", NULL, NULL, NULL, NULL, NULL) < 0) {
        free(cfgtext);
        return die("guest did not suspend (domain %u)", domid);
    }
    if (wait_suspended(domid, bound(DM_START_TIMEOUT)) < 0) {
        free(cfgtext);
        logdirty(domid, "disable");
        return die("guest did not suspend, timed out (domain %u)", domid);
    }
    char c[256], s[256];
    paths(domid, "command", c, sizeof(c));
    paths(domid, "state", s, sizeof(s));
    if (xs_w(c, "save") < 0) {
        free(cfgtext);
        return 1;
    }
    /* libxl ignores this result: a timeout is only logged */
    if (wait_value(s, "paused", bound(DM_START_TIMEOUT), 0, NULL, 0) < 0)
        fprintf(stderr, "libxl: error: Device Model not ready\n");
    char sf[4300];
    libdir_file("qemu-save", domid, sf, sizeof(sf));
    char *blob;
    size_t blen;
    int rc = 1;
    if (read_file(sf, &blob, &blen) < 0) {
        die("unable to open qemu save file %s: %s", sf, strerror(errno));
        free(cfgtext);
        logdirty(domid, "disable");
        return 1;
    }
    FILE *f = fopen(file, "wb");
    if (!f || fprintf(f, SAVE_MAGIC "config %zu\n", strlen(cfgtext)) < 0 ||
        fwrite(cfgtext, 1, strlen(cfgtext), f) != strlen(cfgtext) ||
        fprintf(f, "emulator %zu\n", blen) < 0 || fwrite(blob, 1, blen, f) != blen ||
        fclose(f) != 0) {
        die("writing %s: %s", file, strerror(errno));
        f = NULL;
    } else
        rc = 0;
    free(blob);
    free(cfgtext);
    if (logdirty(domid, "disable") < 0)
        rc = 1;
    if (rc == 0 && destroy_after)
        rc = destroy_domain(domid);
    return rc;
}

int cmd_save(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-p") == 0) {
            fprintf(stderr, "xensim xl save %s: resume after save is not yet done in xensim\n",
                    argv[i]);
            return 1;
        }
        return fprintf(stderr, "xensim xl save: unknown option %s\n", argv[i]), 2;
    }
    if (i + 2 != argc)
        return fprintf(stderr, "usage: xensim xl save [-c] [-p] DOMID FILE\n"), 2;
    unsigned domid;
    if (parse_domid(argv[i], &domid) < 0)
        return 2;
    return do_save(domid, argv[i + 1], 1);
}

int cmd_restore(int argc, char **argv)
{
    int paused = 0, i = 1;
    if (i < argc && strcmp(argv[i], "-p") == 0) {
        paused = 1;
        i++;
    }
    if (i + 1 != argc)
        return fprintf(stderr, "usage: xensim xl restore [-p] FILE\n"), 2;
    char *buf;
    size_t len;
    if (read_file(argv[i], &buf, &len) < 0)
        return die("cannot open restore file %s: %s", argv[i], strerror(errno));
    size_t ml = strlen(SAVE_MAGIC), clen, elen;
    char *p = buf + ml, *end;
    if (len < ml || memcmp(buf, SAVE_MAGIC, ml) != 0 || strncmp(p, "config ", 7) != 0)
        goto bad;
    clen = strtoul(p + 7, &end, 10);
    if (*end != '\n' || clen > len - (size_t)(end + 1 - buf))
        goto bad;
    char *cfg = end + 1;
    p = cfg + clen;
    if ((size_t)(p - buf) + 9 > len || strncmp(p, "emulator ", 9) != 0)
        goto bad;
    elen = strtoul(p + 9, &end, 10);
    if (*end != '\n' || elen != len - (size_t)(end + 1 - buf))
        goto bad;
    char *cfgcopy = strndup(cfg, clen);
    if (!cfgcopy || strlen(cfgcopy) != clen) {
        free(cfgcopy);
        goto bad;
    }
    int r = create_common(cfgcopy, argv[i], end + 1, elen, paused);
    free(cfgcopy);
    free(buf);
    return r;
bad:
    free(buf);
    return die("%s: not a xensim xl save file or truncated", argv[i]);
}
