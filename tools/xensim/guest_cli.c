/*
 * `xensim guest …`: start, stop and watch guest workloads in the running
 * simulator (over its control socket, HV_OP_GUEST), and feed the guest's
 * serial input.  Also the client call `xensim xl` uses.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest_ctl.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: xensim guest start DOMID [SPEC…]      start a workload (SPEC: key=value words)\n"
        "       xensim guest resume DOMID             continue the workload kept in guest RAM\n"
        "       xensim guest stop DOMID [--timeout MS] stop at the next operation boundary\n"
        "       xensim guest status DOMID [--json]    state, failure reason, counters\n"
        "       xensim guest uart-send DOMID TEXT|--count N\n"
        "                                             host -> guest through the dm's serial port\n"
        "every command also takes --rundir DIR (default: $XENSIM_RUNDIR).\n"
        "SPEC keys (defaults in brackets): devices=uart,testdisk,ide,ahci,pm [uart]\n"
        "  fw=hvmloader|any|none [hvmloader] vcpus=N [all] qd=N [1] sizes=A-B [1-1]\n"
        "  writes=N [0: until stopped] sectors=N [1024] lines=N [0: until stopped]\n"
        "  gap_ms=N [2] duration=S [0] console=PATH console_log=PATH [PATH.log]\n"
        "  action=none|s3|s5|reset|reset92|resetkbd [none] after=N [0] seed=N [1]\n");
}

int guest_ctl_call(const char *rundir, uint32_t sub, uint32_t domid, uint32_t flags,
                   uint64_t a0, const char *text, size_t len, char **out)
{
    *out = NULL;
    const char *rd = rundir ? rundir : getenv("XENSIM_RUNDIR");
    if (!rd || !*rd) {
        fprintf(stderr, "xensim: no simulator given: use --rundir DIR or set XENSIM_RUNDIR\n");
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", rd, HV_SOCKET_NAME) >=
        sizeof(sa.sun_path)) {
        fprintf(stderr, "xensim: run directory path too long: %s\n", rd);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "xensim: cannot reach the simulator at %s: %s (is `xensim run --rundir "
                "%s` running?)\n", sa.sun_path, strerror(errno), rd);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct hv_req q;
    memset(&q, 0, sizeof(q));
    q.magic = HV_PROTO_MAGIC;
    q.op = HV_OP_GUEST;
    q.domid = domid;
    q.a32[0] = sub;
    q.a32[1] = flags;
    q.a64[0] = a0;
    q.a64[3] = len;
    struct hv_rsp r;
    int rc = hv_proto_send(fd, &q, sizeof(q), NULL, 0);
    if (rc == 0 && len)
        rc = hv_proto_send(fd, text, len, NULL, 0);
    if (rc == 0)
        rc = hv_proto_recv(fd, &r, sizeof(r), NULL, 0, NULL);
    if (rc == 0 && (r.magic != HV_PROTO_MAGIC || r.len > HV_MAX_PAYLOAD))
        rc = -EPROTO;
    char *p = NULL;
    if (rc == 0) {
        p = malloc((size_t)r.len + 1);
        rc = !p ? -ENOMEM : r.len ? hv_proto_recv(fd, p, r.len, NULL, 0, NULL) : 0;
    }
    close(fd);
    if (rc) {
        free(p);
        fprintf(stderr, "xensim: guest: talking to the simulator: %s\n", strerror(-rc));
        return -1;
    }
    p[r.len] = '\0';
    *out = p;
    return r.err;
}

static int parse_domid(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > 32751 || s[0] == '-') {
        fprintf(stderr, "xensim guest: bad domid '%s' (0..32751)\n", s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The human form of `status`: the JSON's top-level scalars and counters,
 * one `key: value` per line (the JSON is flat enough to walk by hand). */
static void print_status_text(const char *j)
{
    const char *p = j;
    char key[64];
    int depth = 0;
    while (*p) {
        if (*p == '{') {
            depth++;
            p++;
            continue;
        }
        if (*p == '}' || *p == ',') {
            if (*p == '}')
                depth--;
            p++;
            continue;
        }
        if (*p != '"') {
            p++;
            continue;
        }
        const char *k = ++p;
        while (*p && *p != '"')
            p++;
        size_t kl = (size_t)(p - k) < sizeof(key) - 1 ? (size_t)(p - k) : sizeof(key) - 1;
        memcpy(key, k, kl);
        key[kl] = '\0';
        if (*p)
            p++;
        if (*p == ':')
            p++;
        if (*p == '{') {
            continue;
        }
        printf("%*s%s: ", (depth - 1) * 2, "", key);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                putchar(*p++);
            }
            if (*p)
                p++;
        } else {
            while (*p && *p != ',' && *p != '}')
                putchar(*p++);
        }
        putchar('\n');
    }
}

int guest_cli(int argc, char **argv)
{
    const char *rundir = NULL;
    bool json = false;
    long timeout_ms = 30000;
    const char *count = NULL;
    int k = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--rundir") == 0 && i + 1 < argc)
            rundir = argv[++i];
        else if (strncmp(argv[i], "--rundir=", 9) == 0)
            rundir = argv[i] + 9;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout_ms = strtol(argv[++i], &end, 10);
            if (*end || timeout_ms < 0 || timeout_ms > 600000) {
                fprintf(stderr, "xensim guest: bad --timeout '%s' (0..600000 ms)\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "help") == 0) {
            usage(stdout);
            return 0;
        } else
            argv[k++] = argv[i];
    }
    argc = k;
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    uint32_t domid;
    if (parse_domid(argv[2], &domid) < 0)
        return 2;
    char spec[HV_GUEST_MAX_TEXT];
    const char *text = NULL;
    size_t len = 0;
    uint32_t op, flags = 0;
    uint64_t a0 = 0;
    if (strcmp(sub, "start") == 0) {
        op = HV_GUEST_START;
        size_t n = 0;
        spec[0] = '\0';
        for (int i = 3; i < argc; i++) {
            int w = snprintf(spec + n, sizeof(spec) - n, "%s%s", i > 3 ? " " : "", argv[i]);
            if (w < 0 || (size_t)w >= sizeof(spec) - n) {
                fprintf(stderr, "xensim guest start: spec too long\n");
                return 2;
            }
            n += (size_t)w;
        }
        text = spec;
        len = n;
    } else if (strcmp(sub, "resume") == 0 && argc == 3) {
        op = HV_GUEST_START;
        flags = HV_GUEST_RESUME;
    } else if (strcmp(sub, "stop") == 0 && argc == 3) {
        op = HV_GUEST_STOP;
        a0 = (uint64_t)timeout_ms;
    } else if (strcmp(sub, "status") == 0 && argc == 3) {
        op = HV_GUEST_STATUS;
    } else if (strcmp(sub, "uart-send") == 0 && ((argc == 4) != (count != NULL))) {
        op = HV_GUEST_UART_SEND;
        if (count) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(count, &end, 10);
            if (!*count || *end || errno || n == 0 || n > 100000000ull || count[0] == '-') {
                fprintf(stderr, "xensim guest uart-send: bad --count '%s' (1..100000000)\n", count);
                return 2;
            }
            a0 = n;
        } else {
            text = argv[3];
            len = strlen(text);
            if (len == 0 || len > HV_GUEST_MAX_TEXT) {
                fprintf(stderr, "xensim guest uart-send: TEXT must be 1..%u bytes\n",
                        HV_GUEST_MAX_TEXT);
                return 2;
            }
        }
    } else {
        fprintf(stderr, "xensim guest: unknown command or wrong arguments: %s\n", sub);
        usage(stderr);
        return 2;
    }
    char *out;
    int rc = guest_ctl_call(rundir, op, domid, flags, a0, text, len, &out);
    if (rc < 0)
        return 1;
    if (rc > 0) {
        fprintf(stderr, "xensim guest %s: %s\n", sub, out && *out ? out : strerror(rc));
        free(out);
        return 1;
    }
    if (op == HV_GUEST_STATUS) {
        if (json)
            printf("%s\n", out);
        else
            print_status_text(out);
    }
    free(out);
    return 0;
}
