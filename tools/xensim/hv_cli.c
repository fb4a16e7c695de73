/*
 * `xensim domain …` and `xensim fault …`: the hypervisor's subcommands.
 * They reach the running simulator through its control socket
 * (--rundir DIR or $XENSIM_RUNDIR, then DIR/hv/socket), using the same
 * protocol as the Xen library calls (hv_proto.h).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv.h"
#include "hv_main.h"
#include "hv_proto.h"

#include <xen/sched.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: xensim domain create --vcpus N --memory MIB [--name NAME] [--domid ID]\n"
        "       xensim domain list [--json]\n"
        "       xensim domain info DOMID [--json]\n"
        "       xensim domain destroy|pause|unpause DOMID\n"
        "       xensim domain shutdown DOMID poweroff|reboot|suspend|crash\n"
        "       xensim domain logdirty DOMID on|off\n"
        "       xensim fault stall-vcpu|unstall-vcpu DOMID VCPU\n"
        "       xensim fault drop-event DOMID PORT|all [COUNT]\n"
        "       xensim fault close-conn CONNID\n"
        "       xensim fault conns\n"
        "every command also takes --rundir DIR (default: $XENSIM_RUNDIR).\n"
        "Domains are created paused, as Xen creates them; `domain create`\n"
        "prints the new domid alone on stdout.\n");
}

struct cli {
    const char *rundir;
    bool json;
    int fd;
};

static int cli_connect(struct cli *c)
{
    const char *rd = c->rundir ? c->rundir : getenv("XENSIM_RUNDIR");
    if (!rd || !*rd) {
        fprintf(stderr, "xensim: no simulator given: use --rundir DIR or set "
                "XENSIM_RUNDIR\n");
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", rd,
                         HV_SOCKET_NAME) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "xensim: run directory path too long: %s\n", rd);
        return -1;
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "xensim: cannot reach the simulator at %s: %s "
                "(is `xensim run --rundir %s` running?)\n", sa.sun_path,
                strerror(errno), rd);
        return -1;
    }
    return 0;
}

/* One request; payload malloc'd (or NULL).  0, or -1 after a message. */
static int cli_call(struct cli *c, struct hv_req *q, struct hv_rsp *r,
                    void **payload, const char *what)
{
    q->magic = HV_PROTO_MAGIC;
    *payload = NULL;
    int rc = hv_proto_send(c->fd, q, sizeof(*q), NULL, 0);
    if (rc == 0)
        rc = hv_proto_recv(c->fd, r, sizeof(*r), NULL, 0, NULL);
    if (rc == 0 && (r->magic != HV_PROTO_MAGIC || r->len > HV_MAX_PAYLOAD))
        rc = -EPROTO;
    if (rc == 0 && r->len) {
        *payload = malloc(r->len);
        rc = *payload ? hv_proto_recv(c->fd, *payload, r->len, NULL, 0, NULL)
                      : -ENOMEM;
    }
    if (rc) {
        fprintf(stderr, "xensim: %s: talking to the simulator: %s\n", what,
                strerror(-rc));
        free(*payload);
        *payload = NULL;
        return -1;
    }
    if (r->err) {
        /* Xen's codes, said in this CLI's terms */
        const char *m = r->err == ESRCH ? "no such domain"
                      : r->err == EPERM ? "not permitted (restricted connection)"
                      : r->err == ENOENT ? "no such object"
                      : strerror(r->err);
        fprintf(stderr, "xensim: %s: %s\n", what, m);
        free(*payload);
        *payload = NULL;
        return -1;
    }
    return 0;
}

static int parse_u32(const char *s, const char *what, uint32_t max,
                     uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (!*s || *end || errno || v > max || s[0] == '-') {
        fprintf(stderr, "xensim: bad %s '%s' (0..%u)\n", what, s, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static const char *reason_name(uint32_t r)
{
    static const char *n[] = { "poweroff", "reboot", "suspend", "crash",
                               "watchdog", "soft_reset" };
    return r < sizeof(n) / sizeof(n[0]) ? n[r] : "unknown";
}

static const char *state_name(const struct hv_wire_dominfo *w)
{
    if (w->dying)
        return "dying";
    if (w->crashed)
        return "crashed";
    if (w->shut_down)
        return "shutdown";
    if (w->shutting_down)
        return "shutting-down";
    return w->paused ? "paused" : "running";
}

/* JSON string body: names are caller-chosen, so escape them. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_info_json(const struct hv_wire_dominfo *w, bool with_hits,
                            const struct hv_wire_hits *h, size_t nh)
{
    char name[sizeof(w->name) + 1];
    memcpy(name, w->name, sizeof(w->name));
    name[sizeof(w->name)] = 0;
    printf("{\"domid\": %u, \"name\": ", w->domid);
    json_str(name);
    printf(", \"vcpus\": %u, \"memory_mib\": %" PRIu64 ", \"state\": \"%s\", "
           "\"pause_count\": %u, \"paused\": %s, \"shutdown_reason\": ",
           w->nr_vcpus, w->mem_bytes >> 20, state_name(w), w->pause_count,
           w->paused ? "true" : "false");
    if (w->shut_down || w->shutting_down)
        printf("\"%s\"", reason_name(w->shutdown_reason));
    else
        printf("null");
    printf(", \"ioreq_servers\": %u, \"enabled_servers\": %u, "
           "\"vcpus_pending\": %u, \"ioreqs_sent\": %" PRIu64 ", "
           "\"null_reads\": %" PRIu64 ", \"null_writes\": %" PRIu64 ", "
           "\"null_hits_registered\": %" PRIu64 ", \"logdirty\": %s",
           w->nr_servers, w->nr_enabled_servers, w->vcpus_pending,
           w->ioreqs_sent, w->null_reads, w->null_writes,
           w->null_hits_registered, w->logdirty ? "true" : "false");
    if (with_hits) {
        static const char *tn[] = { "port", "mmio", "pci" };
        printf(", \"null_hits\": [");
        for (size_t i = 0; i < nh; i++)
            printf("%s{\"server\": %u, \"type\": \"%s\", \"start\": %" PRIu64
                   ", \"end\": %" PRIu64 ", \"hits\": %" PRIu64 "}",
                   i ? ", " : "", h[i].server, h[i].type < 3 ? tn[h[i].type] : "?",
                   h[i].start, h[i].end, h[i].hits);
        printf("]");
    }
    printf("}");
}

static int cmd_create(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "vcpus", required_argument, NULL, 'v' },
        { "memory", required_argument, NULL, 'm' },
        { "name", required_argument, NULL, 'n' },
        { "domid", required_argument, NULL, 'd' },
        { "rundir", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint32_t vcpus = 0, mem = 0, domid = 0;
    const char *name = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'v':
            if (parse_u32(optarg, "--vcpus", HV_MAX_VCPUS, &vcpus) < 0)
                return 2;
            break;
        case 'm':
            if (parse_u32(optarg, "--memory", HV_MAX_MEMORY_MIB, &mem) < 0)
                return 2;
            break;
        case 'd':
            if (parse_u32(optarg, "--domid", 32751, &domid) < 0)
                return 2;
            break;
        case 'n': name = optarg; break;
        case 'r': c->rundir = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || vcpus == 0 || mem == 0) {
        fprintf(stderr, "xensim domain create: --vcpus N (1..%u) and "
                "--memory MIB (1..%u) are required\n", HV_MAX_VCPUS,
                HV_MAX_MEMORY_MIB);
        return 2;
    }
    struct hv_req q;
    memset(&q, 0, sizeof(q));
    if (name && strlen(name) >= sizeof(q.name)) {
        fprintf(stderr, "xensim domain create: --name longer than %zu bytes\n",
                sizeof(q.name) - 1);
        return 2;
    }
    if (cli_connect(c) < 0)
        return 1;
    q.op = HV_OP_DOMAIN_CREATE;
    q.domid = domid;
    q.a32[0] = vcpus;
    q.a32[1] = mem;
    if (name)
        memcpy(q.name, name, strlen(name));
    struct hv_rsp r;
    void *p;
    if (cli_call(c, &q, &r, &p, "domain create") < 0)
        return 1;
    printf("%u\n", r.u32[0]);
    return 0;
}

static int cmd_list(struct cli *c)
{
    struct hv_req q = { .op = HV_OP_DOMAIN_LIST };
    struct hv_rsp r;
    void *p;
    if (cli_connect(c) < 0 || cli_call(c, &q, &r, &p, "domain list") < 0)
        return 1;
    struct hv_wire_dominfo *w = p;
    size_t n = r.len / sizeof(*w);
    if (c->json) {
        printf("[");
        for (size_t i = 0; i < n; i++) {
            printf(i ? ", " : "");
            print_info_json(&w[i], false, NULL, 0);
        }
        printf("]\n");
    } else {
        printf("%-6s %-20s %5s %8s %-14s %5s %7s %9s\n", "ID", "NAME", "VCPUS",
               "MEM_MIB", "STATE", "PAUSE", "SERVERS", "NULLHITS");
        for (size_t i = 0; i < n; i++) {
            char name[sizeof(w[i].name) + 1];
            memcpy(name, w[i].name, sizeof(w[i].name));
            name[sizeof(w[i].name)] = 0;
            printf("%-6u %-20s %5u %8" PRIu64 " %-14s %5u %7u %9" PRIu64 "\n",
                   w[i].domid, name, w[i].nr_vcpus, w[i].mem_bytes >> 20,
                   state_name(&w[i]), w[i].pause_count, w[i].nr_servers,
                   w[i].null_hits_registered);
        }
    }
    free(p);
    return 0;
}

static int cmd_info(struct cli *c, uint32_t domid)
{
    struct hv_req q = { .op = HV_OP_DOMAIN_INFO, .domid = domid };
    struct hv_rsp r;
    void *p, *hp;
    if (cli_connect(c) < 0 || cli_call(c, &q, &r, &p, "domain info") < 0)
        return 1;
    if (r.len != sizeof(struct hv_wire_dominfo)) {
        fprintf(stderr, "xensim domain info: malformed answer\n");
        free(p);
        return 1;
    }
    struct hv_req qh = { .op = HV_OP_NULL_HITS, .domid = domid };
    struct hv_rsp rh;
    if (cli_call(c, &qh, &rh, &hp, "null hits") < 0) {
        free(p);
        return 1;
    }
    struct hv_wire_dominfo *w = p;
    struct hv_wire_hits *h = hp;
    size_t nh = rh.len / sizeof(*h);
    if (c->json) {
        print_info_json(w, true, h, nh);
        printf("\n");
    } else {
        char name[sizeof(w->name) + 1];
        memcpy(name, w->name, sizeof(w->name));
        name[sizeof(w->name)] = 0;
        printf("domid: %u\nname: %s\nvcpus: %u\nmemory_mib: %" PRIu64 "\n"
               "state: %s\npause_count: %u\n", w->domid, name, w->nr_vcpus,
               w->mem_bytes >> 20, state_name(w), w->pause_count);
        if (w->shut_down || w->shutting_down)
            printf("shutdown_reason: %s\n", reason_name(w->shutdown_reason));
        printf("ioreq_servers: %u (%u enabled)\nvcpus_pending: %u\n"
               "ioreqs_sent: %" PRIu64 "\nnull_reads: %" PRIu64 "\n"
               "null_writes: %" PRIu64 "\nnull_hits_registered: %" PRIu64 "\n"
               "logdirty: %s\n", w->nr_servers, w->nr_enabled_servers,
               w->vcpus_pending, w->ioreqs_sent, w->null_reads, w->null_writes,
               w->null_hits_registered, w->logdirty ? "on" : "off");
        static const char *tn[] = { "port", "mmio", "pci" };
        for (size_t i = 0; i < nh; i++)
            printf("null_hits: server %u %s %#" PRIx64 "-%#" PRIx64 ": %" PRIu64 "\n",
                   h[i].server, h[i].type < 3 ? tn[h[i].type] : "?",
                   h[i].start, h[i].end, h[i].hits);
    }
    free(p);
    free(hp);
    return 0;
}

static int simple_op(struct cli *c, uint32_t op, uint32_t domid,
                     uint32_t a0, uint32_t a1, uint32_t a2, uint64_t a64,
                     const char *what)
{
    struct hv_req q = { .op = op, .domid = domid, .a32 = { a0, a1, a2 },
                        .a64 = { a64 } };
    struct hv_rsp r;
    void *p;
    if (cli_connect(c) < 0 || cli_call(c, &q, &r, &p, what) < 0)
        return 1;
    if (op == HV_OP_CONN_LIST && p) {
        printf("ID KIND RESTRICT REQUESTS\n");
        fwrite(p, 1, r.len, stdout);
    }
    free(p);
    return 0;
}

/* Split out --rundir/--json wherever they appear; leave positionals. */
static int common_opts(struct cli *c, int *argc, char **argv)
{
    int k = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            c->json = true;
        } else if (strcmp(argv[i], "--rundir") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "xensim: --rundir needs a directory\n");
                return -1;
            }
            c->rundir = argv[++i];
        } else if (strncmp(argv[i], "--rundir=", 9) == 0) {
            c->rundir = argv[i] + 9;
        } else {
            argv[k++] = argv[i];
        }
    }
    *argc = k;
    return 0;
}

static int domain_cmd(struct cli *c, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") == 0)
        return cmd_create(c, argc - 1, argv + 1);
    if (common_opts(c, &argc, argv) < 0)
        return 2;
    if (strcmp(sub, "list") == 0) {
        if (argc != 2) {
            usage(stderr);
            return 2;
        }
        return cmd_list(c);
    }
    uint32_t domid;
    if (argc < 3) {
        fprintf(stderr, "xensim domain %s: DOMID missing\n", sub);
        usage(stderr);
        return 2;
    }
    if (parse_u32(argv[2], "domid", 32751, &domid) < 0)
        return 2;
    if (strcmp(sub, "info") == 0 && argc == 3)
        return cmd_info(c, domid);
    if (strcmp(sub, "destroy") == 0 && argc == 3)
        return simple_op(c, HV_OP_DOMAIN_DESTROY, domid, 0, 0, 0, 0, "domain destroy");
    if (strcmp(sub, "pause") == 0 && argc == 3)
        return simple_op(c, HV_OP_DOMAIN_PAUSE, domid, 0, 0, 0, 0, "domain pause");
    if (strcmp(sub, "unpause") == 0 && argc == 3)
        return simple_op(c, HV_OP_DOMAIN_UNPAUSE, domid, 0, 0, 0, 0, "domain unpause");
    if (strcmp(sub, "shutdown") == 0 && argc == 4) {
        uint32_t reason;
        if (strcmp(argv[3], "poweroff") == 0)
            reason = SHUTDOWN_poweroff;
        else if (strcmp(argv[3], "reboot") == 0)
            reason = SHUTDOWN_reboot;
        else if (strcmp(argv[3], "suspend") == 0)
            reason = SHUTDOWN_suspend;
        else if (strcmp(argv[3], "crash") == 0)
            reason = SHUTDOWN_crash;
        else {
            fprintf(stderr, "xensim domain shutdown: unknown reason '%s'\n", argv[3]);
            return 2;
        }
        return simple_op(c, HV_OP_DOMAIN_SHUTDOWN, domid, reason, 0, 0, 0,
                         "domain shutdown");
    }
    if (strcmp(sub, "logdirty") == 0 && argc == 4 &&
        (strcmp(argv[3], "on") == 0 || strcmp(argv[3], "off") == 0))
        return simple_op(c, HV_OP_LOGDIRTY, domid, strcmp(argv[3], "on") == 0,
                         0, 0, 0, "domain logdirty");
    fprintf(stderr, "xensim domain: unknown command or wrong arguments: %s\n", sub);
    usage(stderr);
    return 2;
}

static int fault_cmd(struct cli *c, int argc, char **argv)
{
    if (common_opts(c, &argc, argv) < 0)
        return 2;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    uint32_t domid, x, n = 1;
    if (strcmp(sub, "conns") == 0 && argc == 2)
        return simple_op(c, HV_OP_CONN_LIST, 0, 0, 0, 0, 0, "fault conns");
    if (strcmp(sub, "close-conn") == 0 && argc == 3) {
        uint32_t id;
        if (parse_u32(argv[2], "connection id", UINT32_MAX, &id) < 0)
            return 2;
        return simple_op(c, HV_OP_FAULT, 0, HV_FAULT_CLOSE_CONN, 0, 0, id,
                         "fault close-conn");
    }
    if ((strcmp(sub, "stall-vcpu") == 0 || strcmp(sub, "unstall-vcpu") == 0) &&
        argc == 4) {
        if (parse_u32(argv[2], "domid", 32751, &domid) < 0 ||
            parse_u32(argv[3], "vcpu", HV_MAX_VCPUS - 1, &x) < 0)
            return 2;
        return simple_op(c, HV_OP_FAULT, domid,
                         sub[0] == 's' ? HV_FAULT_STALL_VCPU : HV_FAULT_UNSTALL_VCPU,
                         x, 0, 0, "fault stall-vcpu");
    }
    if (strcmp(sub, "drop-event") == 0 && (argc == 4 || argc == 5)) {
        if (parse_u32(argv[2], "domid", 32751, &domid) < 0)
            return 2;
        if (strcmp(argv[3], "all") == 0)
            x = 0;
        else if (parse_u32(argv[3], "port", 2047, &x) < 0)
            return 2;
        if (argc == 5 && parse_u32(argv[4], "count", 1000000, &n) < 0)
            return 2;
        return simple_op(c, HV_OP_FAULT, domid, HV_FAULT_DROP_EVENTS, x, n, 0,
                         "fault drop-event");
    }
    fprintf(stderr, "xensim fault: unknown command or wrong arguments: %s\n", sub);
    usage(stderr);
    return 2;
}

int hv_cli(int argc, char **argv)
{
    struct cli c = { .fd = -1 };
    int rc;
    if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[0], "domain") == 0)
        rc = domain_cmd(&c, argc, argv);
    else if (strcmp(argv[0], "fault") == 0)
        rc = fault_cmd(&c, argc, argv);
    else {
        usage(stderr);
        rc = 2;
    }
    if (c.fd >= 0)
        close(c.fd);
    return rc;
}
