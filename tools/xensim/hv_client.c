/* hv_client.c: a connection to the simulator's control socket for xensim's
 * own tools (see hv_client.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv_client.h"

int hv_client_connect(const char *rundir)
{
    const char *rd = rundir ? rundir : getenv("XENSIM_RUNDIR");
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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "xensim: cannot reach the simulator at %s: %s "
                "(is `xensim run --rundir %s` running?)\n", sa.sun_path,
                strerror(errno), rd);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int hv_client_call(int fd, struct hv_req *q, struct hv_rsp *r, void **payload,
                   int *fds, unsigned int maxfds, const char *what)
{
    unsigned int nfds = 0;
    void *p = NULL;
    q->magic = HV_PROTO_MAGIC;
    int rc = hv_proto_send(fd, q, sizeof(*q), NULL, 0);
    if (rc == 0)
        rc = hv_proto_recv(fd, r, sizeof(*r), fds, maxfds, &nfds);
    if (rc == 0 && (r->magic != HV_PROTO_MAGIC || r->len > HV_MAX_PAYLOAD))
        rc = -EPROTO;
    if (rc == 0 && r->len) {
        p = malloc(r->len);
        rc = p ? hv_proto_recv(fd, p, r->len, NULL, 0, NULL) : -ENOMEM;
    }
    if (rc == 0 && r->err == 0 && fds && nfds < (maxfds < r->nfds ? maxfds : r->nfds))
        rc = -EPROTO;
    if (rc || r->err) {
        int e = rc ? -rc : r->err;
        /* Xen's codes, said in this CLI's terms */
        const char *m = rc ? "talking to the simulator: " : "";
        const char *why = e == ESRCH && !rc ? "no such domain"
                        : e == EPERM && !rc ? "not permitted (restricted connection)"
                        : e == ENOENT && !rc ? "no such object" : strerror(e);
        fprintf(stderr, "xensim: %s: %s%s\n", what, m, why);
        for (unsigned int i = 0; i < nfds; i++)
            close(fds[i]);
        free(p);
        if (payload)
            *payload = NULL;
        errno = e;
        return -1;
    }
    if (payload)
        *payload = p;
    else
        free(p);
    return 0;
}

void *hv_client_map_ram(int fd, uint32_t domid, uint64_t *size, const char *what)
{
    struct hv_req q = { .op = HV_OP_GET_RAM, .domid = domid };
    struct hv_rsp r;
    int mfd = -1;
    if (hv_client_call(fd, &q, &r, NULL, &mfd, 1, what) < 0)
        return NULL;
    void *m = mmap(NULL, r.u64[0], PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    int e = errno;
    close(mfd);
    if (m == MAP_FAILED) {
        fprintf(stderr, "xensim: %s: mapping guest RAM of domain %u: %s\n", what,
                domid, strerror(e));
        return NULL;
    }
    *size = r.u64[0];
    return m;
}
