/*
 * libFuzzer target: the QMP monitor as one client sees it -- the wire
 * (greeting, capabilities negotiation, JSON framing, limits, errors) and
 * every command dispatched against a real rs_vm, with the Xen hooks doing
 * real device-state saves and loads (dm_statefile, on an empty registry).
 *
 * The input is the byte stream one client sends, written in chunks whose
 * size byte 0 chooses (framing across splits), optionally with two file
 * descriptors passed by SCM_RIGHTS (for add-fd, getfd and /dev/fdset/N).
 * The harness pumps the server and the run-state requests like the main
 * loop does, then closes its end.
 *
 * Properties: no crash; every line the server writes is CRLF-terminated
 * JSON and one of a greeting (first, and only first), a return, an error
 * with a class and a description, or an event with a timestamp; the VM's
 * state machine never records a refused transition.
 *
 * Commands that name a file get a path inside a private directory instead
 * (a fuzzer running as root must not truncate whatever path it invents);
 * /dev/fdset/N names are left as they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dm_log.h"
#include "fuzz_harness.h"
#include "dm_statefile.h"
#include "qmp_commands.h"
#include "qmp_server.h"
#include "runstate.h"

static char g_state_path[128];
static dm_state_reg *g_reg;

static int hook_save(void *o, int fd, bool live, char *err, size_t errlen)
{
    (void)o; (void)live;
    return dm_state_save_fd(g_reg, fd, err, errlen) < 0 ? -1 : 0;
}

static int hook_load(void *o, int fd, char *err, size_t errlen)
{
    (void)o;
    return dm_state_load_fd(g_reg, fd, err, errlen) < 0 ? -1 : 0;
}

static int hook_dirty(void *o, bool enable, char *err, size_t errlen)
{
    (void)o; (void)enable; (void)err; (void)errlen;
    return 0;
}

static int confined_dispatch(void *opaque, qmp_client *c, const char *name, json_t *args,
                             json_t **ret, qmp_error *err)
{
    json_t *fn = json_object_get(args, "filename");
    if (json_is_string(fn) && strncmp(json_string_value(fn), "/dev/fdset/", 11) != 0)
        json_object_set_new(args, "filename", json_string(g_state_path));
    return qmp_commands_dispatch(opaque, c, name, args, ret, err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    dm_log_set_level(DM_LOG_ERROR);
    snprintf(g_state_path, sizeof(g_state_path), "%s/state", fuzz_scratch("qmp"));
    g_reg = dm_state_reg_new();
    if (!g_reg)
        fuzz_die("dm_state_reg_new", "out of memory");
    return 0;
}

/* One reply line: what QMP allows a server to say. */
static void check_line(const char *line, size_t n, bool first)
{
    json_error_t je;
    json_t *v = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
    if (!v || !json_is_object(v)) {
        fprintf(stderr, "fuzz: not a JSON object: %.*s (%s)\n", (int)n, line, v ? "" : je.text);
        abort();
    }
    json_t *greet = json_object_get(v, "QMP"), *ret = json_object_get(v, "return"),
           *err = json_object_get(v, "error"), *ev = json_object_get(v, "event");
    int kinds = !!greet + !!ret + !!err + !!ev;
    if (kinds != 1 || (greet != NULL) != first)
        fuzz_die("reply", "not exactly one of QMP (first line only), return, error, event");
    if (err && (!json_is_string(json_object_get(err, "class")) ||
                !json_is_string(json_object_get(err, "desc")) ||
                json_string_length(json_object_get(err, "desc")) == 0))
        fuzz_die("error reply", "class or desc missing");
    if (ev) {
        json_t *ts = json_object_get(v, "timestamp");
        if (!json_is_string(ev) || !json_is_integer(json_object_get(ts, "seconds")) ||
            !json_is_integer(json_object_get(ts, "microseconds")))
            fuzz_die("event", "name or timestamp missing");
    }
    if (greet && !json_is_object(json_object_get(greet, "version")))
        fuzz_die("greeting", "no version");
    json_decref(v);
}

typedef struct peer {
    int fd;
    char *buf;
    size_t len, cap;
    size_t lines;
    bool eof;
} peer;

static void peer_drain(peer *p)
{
    for (;;) {
        if (p->cap - p->len < 4096) {
            p->cap = p->cap ? p->cap * 2 : 65536;
            p->buf = realloc(p->buf, p->cap);
            if (!p->buf)
                fuzz_die("peer", "out of memory");
        }
        ssize_t r = recv(p->fd, p->buf + p->len, p->cap - p->len, MSG_DONTWAIT);
        if (r == 0)
            p->eof = true;
        if (r <= 0)
            break;
        p->len += (size_t)r;
    }
    char *start = p->buf, *eol;
    while ((eol = memmem(start, p->len - (size_t)(start - p->buf), "\r\n", 2))) {
        check_line(start, (size_t)(eol - start), p->lines == 0);
        p->lines++;
        start = eol + 2;
    }
    p->len -= (size_t)(start - p->buf);
    memmove(p->buf, start, p->len);
}

/* Two fds for the fd-passing commands: a writable and a readable one on
 * the private state file. */
static void send_fds(int sock, const uint8_t *data, size_t n)
{
    int fds[2];
    fds[0] = open(g_state_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    fds[1] = open(g_state_path, O_RDONLY | O_CLOEXEC);
    if (fds[0] < 0 || fds[1] < 0)
        fuzz_die("open state file", strerror(errno));
    char ctl[CMSG_SPACE(sizeof(fds))];
    memset(ctl, 0, sizeof(ctl));
    struct iovec iov = { .iov_base = (void *)data, .iov_len = n };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = sizeof(ctl) };
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(h), fds, sizeof(fds));
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)n)
        fuzz_die("sendmsg", strerror(errno));
    close(fds[0]);
    close(fds[1]);
}

typedef struct pump_ctx {
    qmp_server *srv;
    rs_vm *vm;
    peer *p;
} pump_ctx;

/* One main-loop turn: the monitor, then the run-state requests. */
static void pump(void *arg)
{
    pump_ctx *x = arg;
    int status;
    qmp_server_poll_once(x->srv, 0);
    rs_process_requests(x->vm, &status);
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
    size_t chunk = (mode & 0x0f) ? (mode & 0x0f) * 7u : size + 1;

    rs_vm *vm = rs_vm_new();
    qmp_commands *cmds = vm ? qmp_commands_new(vm) : NULL;
    qmp_server *srv = cmds ? qmp_server_new(confined_dispatch, cmds) : NULL;
    if (!srv)
        fuzz_die("setup", "out of memory");
    qmp_commands_set_server(cmds, srv);
    qmp_xen_hooks hooks = { hook_save, hook_load, hook_dirty, NULL, NULL };
    qmp_commands_set_xen_hooks(cmds, &hooks);
    if (mode & 0x10) {
        rs_err re;
        rs_cont(vm, &re);           /* a running guest, as after -S ... cont */
    }

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fuzz_die("socketpair", strerror(errno));
    if (!qmp_server_add_client_fd(srv, sv[1]))
        fuzz_die("qmp_server_add_client_fd", "failed");
    peer p = { .fd = sv[0] };

    size_t off = 0;
    if ((mode & 0x20) && size > 0) {
        size_t n = size < chunk ? size : chunk;
        send_fds(sv[0], data, n);
        off = n;
    }
    pump_ctx ctx = { srv, vm, &p };
    if (!fuzz_feed(sv[0], data + off, size - off, chunk, pump, &ctx, &p.eof))
        fuzz_die("server", "never closed the connection after the client's EOF");
    if (p.len != 0)
        fuzz_die("reply", "the connection ended inside a line");
    if (p.lines == 0)
        fuzz_die("server", "no greeting");

    if (rs_invalid_transitions(vm) != 0)
        fuzz_die("run state", "a refused transition was recorded");
    close(sv[0]);
    free(p.buf);
    qmp_server_free(srv);
    qmp_commands_free(cmds);
    rs_vm_free(vm);
    return 0;
}
