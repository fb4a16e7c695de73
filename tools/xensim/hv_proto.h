/*
 * The control protocol between a device model's Xen library calls
 * (tools/xensim/xenlib/) or the xensim CLI and the simulated hypervisor
 * (hv_server.c).  Both sides include this header; it is the only code they
 * share.
 *
 * Transport: a Unix stream socket at $XENSIM_RUNDIR/hv/socket.  Each library
 * handle is one connection.  A request is one struct hv_req; the answer is
 * one struct hv_rsp followed by rsp.len bytes of payload, with rsp.nfds file
 * descriptors attached (SCM_RIGHTS) to the hv_rsp bytes.  Shared memory
 * (guest RAM, ioreq pages, the evtchn pending page) and eventfds travel as
 * such fds, so the fast paths (the ioreq slot, notify, pending) never go
 * through the socket.
 */
#ifndef XENSIM_HV_PROTO_H
#define XENSIM_HV_PROTO_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HV_PROTO_MAGIC   0x31505648u   /* "HVP1" */
#define HV_SOCKET_NAME   "hv/socket"
#define HV_MAX_PAYLOAD   (1u << 20)

/* evtchn shared page: byte [port] = pending, byte [HV_EVTCHN_PORTS + port]
 * = masked, for local ports 1..HV_EVTCHN_PORTS-1. */
#define HV_EVTCHN_PORTS     4096u
#define HV_EVTCHN_SHM_SIZE  (2u * HV_EVTCHN_PORTS)

enum hv_op {
    HV_OP_HELLO = 1,          /* a32[0] = client kind */
    HV_OP_RESTRICT,           /* domid */
    HV_OP_DOMAIN_CREATE,      /* domid (0 = any), a32[0] vcpus, a32[1] MiB, name */
    HV_OP_DOMAIN_DESTROY,
    HV_OP_DOMAIN_PAUSE,
    HV_OP_DOMAIN_UNPAUSE,
    HV_OP_DOMAIN_SHUTDOWN,    /* a32[0] reason */
    HV_OP_DOMAIN_INFO,        /* -> payload struct hv_wire_dominfo */
    HV_OP_DOMAIN_LIST,        /* domid = first; a32[0] max -> payload infos */
    HV_OP_NR_VCPUS,           /* -> u32[0] */
    HV_OP_SERVER_CREATE,      /* a32[0] bufioreq -> u32[0] id */
    HV_OP_SERVER_INFO,        /* id -> u32[0] bufioreq port */
    HV_OP_SERVER_MAP,         /* id, a32[0] type, a32[1] 1=map 0=unmap, a64[0..1] */
    HV_OP_SERVER_STATE,       /* id, a32[0] enabled */
    HV_OP_SERVER_DESTROY,     /* id */
    HV_OP_MAP_RESOURCE,       /* a32[0] type, id, a64[0] frame, a64[1] nr -> fd */
    HV_OP_GET_RAM,            /* -> fd, u64[0] bytes */
    HV_OP_ISA_IRQ,            /* a32[0] irq, a32[1] level */
    HV_OP_PCI_INTX,           /* a32[0] seg, [1] bus, [2] dev, [3] intx, a64[0] level */
    HV_OP_LINK_ROUTE,         /* a32[0] link, a32[1] irq */
    HV_OP_MSI,                /* a64[0] addr, a32[0] data */
    HV_OP_MODIFIED_MEMORY,    /* a64[0] first pfn, a64[1] nr */
    HV_OP_SET_MEM_TYPE,       /* a32[0] type, a64[0] first pfn, a64[1] nr */
    HV_OP_HVM_PARAM_SET,      /* a32[0] param, a64[0] value */
    HV_OP_HVM_PARAM_GET,      /* a32[0] param -> u64[0] */
    HV_OP_EVTCHN_SETUP,       /* -> fds: eventfd, shm */
    HV_OP_EVTCHN_BIND,        /* domid, a32[0] remote -> u32[0] local, fd */
    HV_OP_EVTCHN_UNBIND,      /* a32[0] local */
    HV_OP_LOGDIRTY,           /* a32[0] 1=on 0=off 2=peek+clean -> payload bitmap */
    HV_OP_FAULT,              /* a32[0] kind, domid, a32[1..2] args */
    HV_OP_CONN_LIST,          /* -> payload text */
    HV_OP_NULL_HITS,          /* -> payload struct hv_wire_hits[] */
    HV_OP_DOMAIN_RESUME,      /* a32[0] 1 = fast (cooperative) */
    HV_OP_GUEST_WRITE,        /* a64[0] gpa, a32[0] len <= 64, name = the bytes */
    HV_OP_GUEST,              /* a32[0] enum hv_guest_op, see below */
    HV_OP_MAX
};

enum hv_client_kind { HV_CLIENT_CLI, HV_CLIENT_DEVICEMODEL,
                      HV_CLIENT_FOREIGNMEMORY, HV_CLIENT_EVTCHN,
                      HV_CLIENT_CTRL };

enum hv_fault_kind { HV_FAULT_STALL_VCPU = 1, HV_FAULT_UNSTALL_VCPU,
                     HV_FAULT_DROP_EVENTS, HV_FAULT_CLOSE_CONN };

/* Guest workloads (guest_ctl.c).  The request is followed by a64[3] bytes
 * of text (at most HV_GUEST_MAX_TEXT): the spec for START, the bytes for
 * UART_SEND.  The answer's payload is text: the status JSON, or on error
 * the message saying why. */
enum hv_guest_op { HV_GUEST_START = 1, HV_GUEST_STOP, HV_GUEST_STATUS, HV_GUEST_UART_SEND };
#define HV_GUEST_RESUME   1u      /* a32[1] flag of START */
#define HV_GUEST_MAX_TEXT 65536u
/* STOP: a64[0] = how long to wait for the vCPU threads, ms.
 * UART_SEND: a64[0] = numbered lines to send when there is no text. */

struct hv_req {
    uint32_t magic;
    uint32_t op;
    uint32_t domid;
    uint32_t id;
    uint32_t a32[4];
    uint64_t a64[4];
    char name[64];
};

struct hv_rsp {
    uint32_t magic;
    int32_t err;              /* 0 or a positive errno */
    uint32_t nfds;
    uint32_t len;             /* payload bytes that follow */
    uint32_t u32[4];
    uint64_t u64[4];
};

struct hv_wire_dominfo {
    uint32_t domid;
    uint32_t nr_vcpus;
    uint64_t mem_bytes;
    uint32_t pause_count;
    uint8_t paused, shutting_down, shut_down, dying, crashed, logdirty, pad[2];
    uint32_t shutdown_reason;
    uint32_t nr_servers, nr_enabled_servers, vcpus_pending;
    uint64_t null_reads, null_writes, null_hits_registered, ioreqs_sent;
    uint64_t resumes, suspend_cancels;
    char name[64];
};

struct hv_wire_hits {
    uint32_t server, type;
    uint64_t start, end, hits;
};

/* Send all of buf (+ fds with the first byte).  0 or -errno. */
static inline int hv_proto_send(int sock, const void *buf, size_t len,
                                const int *fds, unsigned int nfds)
{
    union { char b[CMSG_SPACE(4 * sizeof(int))]; struct cmsghdr a; } ctl;
    const char *p = buf;
    if (nfds > 4)
        return -EINVAL;
    while (len > 0) {
        struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds) {
            memset(&ctl, 0, sizeof(ctl));
            m.msg_control = ctl.b;
            m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
            memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
        }
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        nfds = 0;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Receive exactly len bytes, collecting up to maxfds fds (closing any
 * extra).  0, -ECONNRESET on EOF, or -errno. */
static inline int hv_proto_recv(int sock, void *buf, size_t len,
                                int *fds, unsigned int maxfds,
                                unsigned int *nfds_out)
{
    union { char b[CMSG_SPACE(8 * sizeof(int))]; struct cmsghdr a; } ctl;
    char *p = buf;
    unsigned int got = 0;
    while (len > 0) {
        struct iovec iov = { .iov_base = p, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                            .msg_control = ctl.b,
                            .msg_controllen = sizeof(ctl.b) };
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (fds && got < maxfds)
                    fds[got++] = fd;
                else
                    close(fd);
            }
        }
        if (n == 0)
            return -ECONNRESET;
        p += n;
        len -= (size_t)n;
    }
    if (nfds_out)
        *nfds_out = got;
    return 0;
}

#endif
