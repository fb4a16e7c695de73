/*
 * xensim guests: the daemon's side of HV_OP_GUEST (see guest_ctl.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest_ctl.h"
#include "guest_workload.h"
#include "hv.h"

static void answer_text(struct hv_rsp *r, void **out, int rc, const char *text)
{
    r->err = rc < 0 ? -rc : 0;
    size_t n = strlen(text);
    char *t = malloc(n + 1);
    if (t) {
        memcpy(t, text, n + 1);
        *out = t;
        r->len = (uint32_t)n;
    }
}

struct stop_job {
    int fd;
    uint32_t domid;
    int timeout_ms;
};

static void *stop_main(void *p)
{
    struct stop_job *j = p;
    char err[512] = "";
    int rc = guest_wl_stop(j->domid, j->timeout_ms, err, sizeof(err));
    struct hv_rsp r;
    memset(&r, 0, sizeof(r));
    r.magic = HV_PROTO_MAGIC;
    void *out = NULL;
    answer_text(&r, &out, rc, rc < 0 ? err : "");
    if (hv_proto_send(j->fd, &r, sizeof(r), NULL, 0) == 0 && r.len)
        hv_proto_send(j->fd, out, r.len, NULL, 0);
    free(out);
    close(j->fd);
    free(j);
    return NULL;
}

int guest_ctl_handle(int fd, const struct hv_req *q, const char *text, size_t len,
                     struct hv_rsp *r, void **out)
{
    char err[1024] = "";
    int rc;
    *out = NULL;
    switch (q->a32[0]) {
    case HV_GUEST_START:
        if (memchr(text, '\0', len)) {
            answer_text(r, out, -EINVAL, "the spec contains a NUL byte");
            return 0;
        }
        rc = guest_wl_start(q->domid, text, (q->a32[1] & HV_GUEST_RESUME) != 0, err, sizeof(err));
        answer_text(r, out, rc, rc < 0 ? err : "");
        return 0;
    case HV_GUEST_STOP: {
        struct stop_job *j = malloc(sizeof(*j));
        pthread_t th;
        if (j) {
            j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            j->domid = q->domid;
            j->timeout_ms = q->a64[0] > 600000 ? 600000 : (int)q->a64[0];
        }
        if (!j || j->fd < 0 || pthread_create(&th, NULL, stop_main, j) != 0) {
            if (j && j->fd >= 0)
                close(j->fd);
            free(j);
            answer_text(r, out, -ENOMEM, "cannot start the stop (out of resources)");
            return 0;
        }
        pthread_detach(th);
        return 1;
    }
    case HV_GUEST_STATUS: {
        size_t cap = 16384;
        char *buf = malloc(cap);
        if (!buf) {
            answer_text(r, out, -ENOMEM, "out of memory");
            return 0;
        }
        rc = guest_wl_status(q->domid, buf, cap);
        if (rc < 0) {
            free(buf);
            struct hv_domain_info di;
            snprintf(err, sizeof(err), rc == -ENOENT && hv_domain_info(q->domid, &di) < 0
                     ? "no domain %u" : "domain %u: no workload", q->domid);
            answer_text(r, out, rc == -ENOENT && hv_domain_info(q->domid, &di) < 0 ? -ESRCH : rc,
                        err);
            return 0;
        }
        *out = buf;
        r->len = (uint32_t)rc;
        r->err = 0;
        return 0;
    }
    case HV_GUEST_UART_SEND:
        rc = guest_wl_uart_send(q->domid, len ? text : NULL, len, q->a64[0], err, sizeof(err));
        answer_text(r, out, rc, rc < 0 ? err : "");
        return 0;
    default:
        answer_text(r, out, -EINVAL, "unknown guest operation");
        return 0;
    }
}
