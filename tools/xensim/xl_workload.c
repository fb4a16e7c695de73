/*
 * xl_workload.c: what `xensim xl` does for the simulated guest itself —
 * start its workload after create, stop it when the guest suspends for a
 * save, carry guest RAM in the save file, and resume the workload from
 * that RAM after a restore.  Through the simulator's control socket.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "guest_ctl.h"
#include "xl_cmd.h"

#define PAGE 4096u

int xl_wl_start(const char *rundir, unsigned domid, const struct xl_cfg *cfg, int resume)
{
    char spec[sizeof(cfg->workload) + 300];
    const char *base = cfg->workload[0] ? cfg->workload : "fw=hvmloader devices=uart";
    snprintf(spec, sizeof(spec), "%s", base);
    /* The guest's console is the dm's serial when that is a socket the dm
     * serves; said explicitly in the spec, it wins. */
    const char *ser = cfg->serial;
    if (!resume && strncmp(ser, "unix:", 5) == 0 && !strstr(spec, "console=")) {
        char path[256];
        snprintf(path, sizeof(path), "%s", ser + 5);
        char *comma = strchr(path, ',');
        if (comma)
            *comma = '\0';
        size_t n = strlen(spec);
        snprintf(spec + n, sizeof(spec) - n, " console=%s", path);
    }
    char *out = NULL;
    int rc = guest_ctl_call(rundir, HV_GUEST_START, domid, resume ? HV_GUEST_RESUME : 0, 0,
                            resume ? NULL : spec, resume ? 0 : strlen(spec), &out);
    if (rc > 0)
        fprintf(stderr, "libxl: error: domain %u: guest workload did not %s: %s\n", domid,
                resume ? "resume" : "start", out && *out ? out : strerror(rc));
    free(out);
    return rc == 0 ? 0 : -1;
}

int xl_wl_stop(const char *rundir, unsigned domid)
{
    char *out = NULL;
    int rc = guest_ctl_call(rundir, HV_GUEST_STOP, domid, 0, 30000, NULL, 0, &out);
    if (rc > 0 && rc != ENOENT)
        fprintf(stderr, "libxl: error: domain %u: guest workload did not stop: %s\n", domid,
                out && *out ? out : strerror(rc));
    free(out);
    return rc == 0 || rc == ENOENT ? 0 : -1;
}

/* The domain's RAM, mapped (HV_OP_GET_RAM hands over its memfd). */
static uint8_t *map_ram(const char *rundir, unsigned domid, uint64_t *size)
{
    const char *rd = rundir ? rundir : getenv("XENSIM_RUNDIR");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!rd || (size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", rd,
                                HV_SOCKET_NAME) >= sizeof(sa.sun_path))
        return NULL;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (s >= 0)
            close(s);
        return NULL;
    }
    struct hv_req q;
    memset(&q, 0, sizeof(q));
    q.magic = HV_PROTO_MAGIC;
    q.op = HV_OP_GET_RAM;
    q.domid = domid;
    struct hv_rsp r;
    int fd = -1;
    unsigned nfds = 0;
    uint8_t *ram = NULL;
    if (hv_proto_send(s, &q, sizeof(q), NULL, 0) == 0 &&
        hv_proto_recv(s, &r, sizeof(r), &fd, 1, &nfds) == 0 && r.err == 0 && nfds == 1) {
        *size = r.u64[0];
        void *m = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ram = m == MAP_FAILED ? NULL : m;
    }
    if (fd >= 0)
        close(fd);
    close(s);
    return ram;
}

static bool zero_page(const uint8_t *p)
{
    for (unsigned i = 0; i < PAGE; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        if (v)
            return false;
    }
    return true;
}

int xl_wl_ram_save(const char *rundir, unsigned domid, FILE *f)
{
    uint64_t size;
    uint8_t *ram = map_ram(rundir, domid, &size);
    if (!ram) {
        fprintf(stderr, "libxl: error: domain %u: cannot map guest RAM: %s\n", domid,
                strerror(errno));
        return -1;
    }
    uint64_t n = 0;
    for (uint64_t pfn = 0; pfn < size / PAGE; pfn++)
        n += !zero_page(ram + pfn * PAGE);
    int rc = fprintf(f, "ram %llu\n", (unsigned long long)(n * (8 + PAGE))) < 0 ? -1 : 0;
    for (uint64_t pfn = 0; rc == 0 && pfn < size / PAGE; pfn++) {
        if (zero_page(ram + pfn * PAGE))
            continue;
        if (fwrite(&pfn, 8, 1, f) != 1 || fwrite(ram + pfn * PAGE, PAGE, 1, f) != 1)
            rc = -1;
    }
    munmap(ram, size);
    return rc;
}

int xl_wl_ram_restore(const char *rundir, unsigned domid, const char *buf, size_t len)
{
    uint64_t size;
    if (len % (8 + PAGE) != 0) {
        fprintf(stderr, "libxl: error: guest RAM section of %zu bytes is not whole pages\n", len);
        return -1;
    }
    uint8_t *ram = map_ram(rundir, domid, &size);
    if (!ram) {
        fprintf(stderr, "libxl: error: domain %u: cannot map guest RAM: %s\n", domid,
                strerror(errno));
        return -1;
    }
    int rc = 0;
    for (size_t off = 0; off < len; off += 8 + PAGE) {
        uint64_t pfn;
        memcpy(&pfn, buf + off, 8);
        if (pfn >= size / PAGE) {
            fprintf(stderr, "libxl: error: saved page %llu beyond the new domain's %llu pages\n",
                    (unsigned long long)pfn, (unsigned long long)(size / PAGE));
            rc = -1;
            break;
        }
        memcpy(ram + pfn * PAGE, buf + off + 8, PAGE);
    }
    munmap(ram, size);
    return rc;
}
