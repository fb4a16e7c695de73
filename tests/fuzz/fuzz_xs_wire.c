/*
 * libFuzzer target: xensim's xenstore daemon as a client's byte stream
 * reaches it -- the framing in xs_conn.c, the payload parsing in
 * xs_wire.c and every operation behind them (xs_ops.c, the store,
 * transactions, watches, permissions).
 *
 * A fresh daemon per input (deterministic replays) with guest domain 1
 * introduced; byte 0 bit 0 picks the caller (dom0 over the privileged
 * socket, or domain 1 over its own), bits 1-4 the chunk size the stream
 * is written in.  The harness runs the daemon's loop, reads what it sends
 * and half-closes at the end.
 *
 * Properties: no crash; every message the daemon sends has a known type
 * and a payload within XENSTORE_PAYLOAD_MAX; an error names one of Xen's
 * error strings; a watch event carries exactly path and token; replies
 * (everything but watch events) answer the requests in order -- the n-th
 * reply has the n-th request's id and its type or XS_ERROR; the daemon
 * never answers a request it did not receive whole, and closes the
 * connection after the client's EOF.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_harness.h"
#include "xs_internal.h"
#include "xs_server.h"
#include "xsim_log.h"
#include "xsim_loop.h"

static const char *g_rundir;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    xsim_log_set_level(XSIM_LOG_QUIET);
    g_rundir = fuzz_scratch("xs");
    return 0;
}

/* The requests of the stream as the daemon must frame them: whole
 * messages, up to the first one whose length is a protocol violation. */
typedef struct req {
    uint32_t type, id;
} req;

static size_t frame_requests(const uint8_t *d, size_t n, req *out, size_t max)
{
    size_t k = 0, off = 0;
    while (off + sizeof(struct xsd_sockmsg) <= n && k < max) {
        struct xsd_sockmsg h;
        memcpy(&h, d + off, sizeof(h));
        if (h.len > XENSTORE_PAYLOAD_MAX || h.len > n - off - sizeof(h))
            break;
        out[k].type = h.type;
        out[k].id = h.req_id;
        k++;
        off += sizeof(h) + h.len;
    }
    return k;
}

typedef struct peer {
    int fd;
    uint8_t buf[2 * (sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX)];
    size_t len;
    bool eof;
    const req *reqs;
    size_t nreqs, answered;
} peer;

static bool is_error_name(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (strlen(xsd_errors[i].errstring) + 1 == n && memcmp(s, xsd_errors[i].errstring, n) == 0)
            return true;
    return false;
}

static void check_msg(peer *p, const struct xsd_sockmsg *h, const char *body)
{
    if (h->type >= XS_TYPE_COUNT || strcmp(xs_wire_type_name(h->type), "UNKNOWN") == 0)
        fuzz_die("reply", "unknown message type");
    if (h->type == XS_WATCH_EVENT) {
        const char *v[3];
        if (xs_wire_strings(body, h->len, v, 3) != 2 || body[h->len - 1] != '\0')
            fuzz_die("watch event", "not exactly path and token");
        return;
    }
    if (h->type == XS_ERROR && !is_error_name(body, h->len))
        fuzz_die("error reply", "not one of Xen's error names");
    if (p->answered >= p->nreqs)
        fuzz_die("reply", "more replies than whole requests sent");
    const req *r = &p->reqs[p->answered++];
    if (h->req_id != r->id)
        fuzz_die("reply", "out of order (request id differs)");
    if (h->type != r->type && h->type != XS_ERROR)
        fuzz_die("reply", "type is neither the request's nor XS_ERROR");
}

static void peer_drain(peer *p)
{
    for (;;) {
        ssize_t r = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len, MSG_DONTWAIT);
        if (r == 0)
            p->eof = true;
        if (r <= 0)
            break;
        p->len += (size_t)r;
        size_t off = 0;
        for (;;) {
            struct xsd_sockmsg h;
            if (p->len - off < sizeof(h))
                break;
            memcpy(&h, p->buf + off, sizeof(h));
            if (h.len > XENSTORE_PAYLOAD_MAX)
                fuzz_die("reply", "payload over XENSTORE_PAYLOAD_MAX");
            if (p->len - off - sizeof(h) < h.len)
                break;
            check_msg(p, &h, (const char *)p->buf + off + sizeof(h));
            off += sizeof(h) + h.len;
        }
        memmove(p->buf, p->buf + off, p->len - off);
        p->len -= off;
    }
}

typedef struct pump_ctx {
    struct xsim_loop *loop;
    peer *p;
} pump_ctx;

static void pump(void *arg)
{
    pump_ctx *x = arg;
    xsim_loop_run_once(x->loop, 0);
    peer_drain(x->p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    size_t chunk = (mode >> 1 & 0x0f) ? (size_t)(mode >> 1 & 0x0f) * 5u : size + 1;

    struct xsim_loop *loop = xsim_loop_new();
    struct xs_server_opts opts = { .rundir = g_rundir };
    struct xs_server *srv = loop ? xs_server_new(loop, &opts) : NULL;
    if (!srv || xs_server_introduce(srv, 1) != 0)
        fuzz_die("daemon", "cannot start");
    unsigned domid = (mode & 1) ? 1 : 0;
    struct xs_caller caller = xs_server_caller_for(srv, domid);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        fuzz_die("socketpair", strerror(errno));
    if (!xs_conn_new(srv, sv[1], &caller, domid ? xs_domain_find(srv, domid) : NULL))
        fuzz_die("xs_conn_new", "failed");

    static req reqs[8192];
    peer *p = calloc(1, sizeof(*p));
    if (!p)
        fuzz_die("peer", "out of memory");
    p->fd = sv[0];
    p->reqs = reqs;
    p->nreqs = frame_requests(data, size, reqs, sizeof(reqs) / sizeof(reqs[0]));

    pump_ctx ctx = { loop, p };
    if (!fuzz_feed(sv[0], data, size, chunk, pump, &ctx, &p->eof))
        fuzz_die("daemon", "never closed the connection after the client's EOF");
    if (p->len != 0)
        fuzz_die("daemon", "the connection ended inside a message");

    close(sv[0]);
    free(p);
    xs_server_free(srv);
    xsim_loop_free(loop);
    return 0;
}
