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
#include <sys/mman.h>
#include <unistd.h>

#include "hv.h"
#include "hv_client.h"
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
        "       xensim domain resume DOMID [--fast]\n"
        "       xensim domain param DOMID callback-irq|acpi-s-state|N [VALUE]\n"
        "       xensim domain guest-write DOMID GPA HEXBYTES\n"
        "       xensim domain dm-write DOMID GPA HEXBYTES [--no-report]\n"
        "       xensim domain peek DOMID GPA LEN\n"
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
    c->fd = hv_client_connect(c->rundir);
    return c->fd < 0 ? -1 : 0;
}

/* One request; payload malloc'd (or NULL).  0, or -1 after a message. */
static int cli_call(struct cli *c, struct hv_req *q, struct hv_rsp *r,
                    void **payload, const char *what)
{
    return hv_client_call(c->fd, q, r, payload, NULL, 0, what);
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
               "logdirty: %s\nresumes: %" PRIu64 "\nsuspend_cancels: %" PRIu64 "\n",
               w->nr_servers, w->nr_enabled_servers,
               w->vcpus_pending, w->ioreqs_sent, w->null_reads, w->null_writes,
               w->null_hits_registered, w->logdirty ? "on" : "off", w->resumes,
               w->suspend_cancels);
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

static int parse_u64(const char *s, const char *what, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || errno || s[0] == '-') {
        fprintf(stderr, "xensim: bad %s '%s'\n", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int cmd_param(struct cli *c, uint32_t domid, const char *name, const char *val)
{
    uint32_t param;
    uint64_t v = 0;
    if (strcmp(name, "callback-irq") == 0)
        param = HVM_PARAM_CALLBACK_IRQ;
    else if (strcmp(name, "acpi-s-state") == 0)
        param = HVM_PARAM_ACPI_S_STATE;
    else if (parse_u32(name, "HVM param", HVM_NR_PARAMS - 1, &param) < 0)
        return 2;
    if (val && parse_u64(val, "value", &v) < 0)
        return 2;
    struct hv_req q = { .op = val ? HV_OP_HVM_PARAM_SET : HV_OP_HVM_PARAM_GET,
                        .domid = domid, .a32 = { param }, .a64 = { v } };
    struct hv_rsp r;
    void *p;
    if (cli_connect(c) < 0 || cli_call(c, &q, &r, &p, "domain param") < 0)
        return 1;
    free(p);
    if (!val)
        printf("%" PRIu64 "\n", r.u64[0]);
    return 0;
}

static int parse_hex(const char *s, uint8_t *buf, size_t max, size_t *len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 2 || n / 2 > max) {
        fprintf(stderr, "xensim: bad HEXBYTES '%s' (1..%zu bytes as hex digits)\n", s, max);
        return -1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int b;
        if (sscanf(s + 2 * i, "%2x", &b) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) ||
            !strchr("0123456789abcdefABCDEF", s[2 * i + 1])) {
            fprintf(stderr, "xensim: bad HEXBYTES '%s'\n", s);
            return -1;
        }
        buf[i] = (uint8_t)b;
    }
    *len = n / 2;
    return 0;
}

/* guest-write: the store of a running vCPU (hv_guest_write: dirty-logged by
 * the hypervisor).  dm-write: what a device model's DMA does, through the
 * foreign mapping of guest RAM, then xendevicemodel_modified_memory() so
 * log-dirty sees it; --no-report leaves that call out, as a buggy dm would. */
static int cmd_write(struct cli *c, uint32_t domid, bool dm, bool report,
                     const char *gpas, const char *hex)
{
    uint64_t gpa;
    uint8_t buf[sizeof(((struct hv_req *)0)->name)];
    size_t len;
    if (parse_u64(gpas, "GPA", &gpa) < 0 || parse_hex(hex, buf, sizeof(buf), &len) < 0)
        return 2;
    if (cli_connect(c) < 0)
        return 1;
    struct hv_req q = { .domid = domid };
    struct hv_rsp r;
    if (!dm) {
        q.op = HV_OP_GUEST_WRITE;
        q.a64[0] = gpa;
        q.a32[0] = (uint32_t)len;
        memcpy(q.name, buf, len);
        return hv_client_call(c->fd, &q, &r, NULL, NULL, 0, "domain guest-write") < 0;
    }
    uint64_t size;
    uint8_t *ram = hv_client_map_ram(c->fd, domid, &size, "domain dm-write");
    if (!ram)
        return 1;
    if (gpa > size || len > size - gpa) {
        munmap(ram, size);
        fprintf(stderr, "xensim: domain dm-write: %#" PRIx64 "+%zu is outside the "
                "domain's %" PRIu64 " bytes of RAM\n", gpa, len, size);
        return 1;
    }
    memcpy(ram + gpa, buf, len);
    munmap(ram, size);
    if (!report)
        return 0;
    q.op = HV_OP_MODIFIED_MEMORY;
    q.a64[0] = gpa / HV_PAGE_SIZE;
    q.a64[1] = (gpa + len - 1) / HV_PAGE_SIZE - gpa / HV_PAGE_SIZE + 1;
    return hv_client_call(c->fd, &q, &r, NULL, NULL, 0, "domain dm-write (modified_memory)") < 0;
}

static int cmd_peek(struct cli *c, uint32_t domid, const char *gpas, const char *lens)
{
    uint64_t gpa, len;
    if (parse_u64(gpas, "GPA", &gpa) < 0 || parse_u64(lens, "LEN", &len) < 0)
        return 2;
    if (cli_connect(c) < 0)
        return 1;
    uint64_t size;
    uint8_t *ram = hv_client_map_ram(c->fd, domid, &size, "domain peek");
    if (!ram)
        return 1;
    int rc = 0;
    if (gpa > size || len > size - gpa) {
        fprintf(stderr, "xensim: domain peek: %#" PRIx64 "+%" PRIu64 " is outside the "
                "domain's %" PRIu64 " bytes of RAM\n", gpa, len, size);
        rc = 1;
    } else {
        for (uint64_t i = 0; i < len; i++)
            printf("%02x", ram[gpa + i]);
        printf("\n");
    }
    munmap(ram, size);
    return rc;
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
    if (strcmp(sub, "resume") == 0 && (argc == 3 || (argc == 4 && strcmp(argv[3], "--fast") == 0)))
        return simple_op(c, HV_OP_DOMAIN_RESUME, domid, argc == 4, 0, 0, 0, "domain resume");
    if (strcmp(sub, "param") == 0 && (argc == 4 || argc == 5))
        return cmd_param(c, domid, argv[3], argc == 5 ? argv[4] : NULL);
    if ((strcmp(sub, "guest-write") == 0 && argc == 5) ||
        (strcmp(sub, "dm-write") == 0 &&
         (argc == 5 || (argc == 6 && strcmp(argv[5], "--no-report") == 0))))
        return cmd_write(c, domid, sub[0] == 'd', argc == 5, argv[3], argv[4]);
    if (strcmp(sub, "peek") == 0 && argc == 5)
        return cmd_peek(c, domid, argv[3], argv[4]);
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
