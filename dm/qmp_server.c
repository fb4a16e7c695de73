/*
 * QMP server wire handling (see qmp_server.h).  Framing follows QEMU's
 * json-streamer idea, written here: count braces/brackets outside strings;
 * a value is complete when the count returns to zero, so arbitrary read
 * splits and several objects per read both work.  Limits turn into one
 * error reply per offending value, then the rest of that value is skipped
 * and the monitor keeps serving.
 */
#include "qmp_server.h"

#include "dm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS 4

struct qmp_client {
    qmp_server *srv;
    int fd;
    bool command_mode;
    bool dead;
    /* input framing */
    char *in;
    size_t in_len, in_cap;
    int depth;
    bool in_string, escape, started, skipping, scalar;
    /* output */
    char *out;
    size_t out_len, out_cap;
    /* SCM_RIGHTS fds, oldest first */
    int fds[QMP_MAX_CLIENT_FDS];
    size_t nfds;
    qmp_client *next;
};

struct qmp_server {
    qmp_dispatch_fn dispatch;
    void *opaque;
    int listeners[MAX_LISTENERS];
    size_t nlisteners;
    qmp_client *clients;
    size_t nclients;
    int spare;                  /* an fd given up to refuse a client when out of fds */
    time_t emfile_logged;       /* when the last out-of-fds warning went out */
};

void qmp_error_set(qmp_error *e, const char *cls, const char *fmt, ...)
{
    va_list ap;
    e->cls = cls;
    va_start(ap, fmt);
    vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
    va_end(ap);
}

qmp_server *qmp_server_new(qmp_dispatch_fn dispatch, void *opaque)
{
    qmp_server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->dispatch = dispatch;
    s->opaque = opaque;
    s->spare = -1;
    return s;
}

static void client_close_fds(qmp_client *c)
{
    for (size_t i = 0; i < c->nfds; i++)
        close(c->fds[i]);
    c->nfds = 0;
}

static void client_free(qmp_client *c)
{
    client_close_fds(c);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Unlink dead clients; done only outside callbacks so a command handler
 * never sees its client freed under it. */
static void reap(qmp_server *s)
{
    qmp_client **pp = &s->clients;
    while (*pp) {
        qmp_client *c = *pp;
        if (c->dead) {
            *pp = c->next;
            s->nclients--;
            client_free(c);
        } else {
            pp = &c->next;
        }
    }
}

void qmp_server_free(qmp_server *s)
{
    if (!s)
        return;
    for (qmp_client *c = s->clients; c; c = c->next)
        c->dead = true;
    reap(s);
    for (size_t i = 0; i < s->nlisteners; i++)
        close(s->listeners[i]);
    if (s->spare >= 0)
        close(s->spare);
    free(s);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int qmp_server_listen_fd(qmp_server *s, int fd)
{
    if (s->nlisteners >= MAX_LISTENERS) {
        dm_err("qmp: too many monitor sockets (max %d), fd %d refused", MAX_LISTENERS, fd);
        return -ENOSPC;
    }
    /* An inherited fd may not be listening yet (libxl passes a bound socket
     * already listening; listen() again is harmless).  Checked first so a
     * refused fd keeps its flags. */
    int r;
    if (listen(fd, 64) < 0) {
        r = -errno;
        dm_err("qmp: fd %d is not a listening stream socket: %s", fd, strerror(errno));
        return r;
    }
    r = set_nonblock(fd);
    if (r < 0) {
        dm_err("qmp: fd %d: cannot make it non-blocking: %s", fd, strerror(-r));
        return r;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    s->listeners[s->nlisteners++] = fd;
    /* A duplicate needs no file system (a restricted dm may have none). */
    if (s->spare < 0)
        s->spare = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return 0;
}

int qmp_server_listen_path(qmp_server *s, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        dm_err("qmp: socket path %s is too long (max %zu bytes)", path, sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int r = -errno;
        dm_err("qmp: socket for %s: %s", path, strerror(errno));
        return r;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);   /* a stale socket from a previous dm, as QEMU does */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        dm_err("qmp: bind %s: %s", path, strerror(errno));
        close(fd);
        return r;
    }
    int r = qmp_server_listen_fd(s, fd);
    if (r < 0)
        close(fd);
    return r;
}

/* ------------------------------------------------------------- output */

static void client_write(qmp_client *c, const char *buf, size_t len);

static void send_json(qmp_client *c, json_t *obj)
{
    char *txt = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!txt) {
        dm_err("qmp: cannot serialise a reply (out of memory)");
        return;
    }
    /* QEMU ends every line with CRLF. */
    size_t n = strlen(txt);
    client_write(c, txt, n);
    client_write(c, "\r\n", 2);
    free(txt);
}

static void flush(qmp_client *c)
{
    while (!c->dead && c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            dm_info("qmp: client fd %d gone on write: %s", c->fd, strerror(errno));
            c->dead = true;
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
}

static void client_write(qmp_client *c, const char *buf, size_t len)
{
    if (c->dead)
        return;
    if (c->out_len + len > QMP_MAX_OUTBUF) {
        dm_warn("qmp: client fd %d does not read its replies (%zu bytes queued): dropped",
                c->fd, c->out_len);
        c->dead = true;
        return;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) {
            dm_err("qmp: client fd %d: out of memory for output: dropped", c->fd);
            c->dead = true;
            return;
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    flush(c);
}

static void send_error(qmp_client *c, json_t *id, const char *cls, const char *desc)
{
    json_t *r = json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", desc);
    if (!r)
        return;
    if (id)
        json_object_set(r, "id", id);
    send_json(c, r);
    json_decref(r);
}

static json_t *timestamp(long long wall_ns)
{
    if (wall_ns == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        wall_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    return json_pack("{s:I,s:I}", "seconds", (json_int_t)(wall_ns / 1000000000LL),
                     "microseconds", (json_int_t)(wall_ns % 1000000000LL / 1000));
}

void qmp_server_event(qmp_server *s, const char *name, json_t *data, long long wall_ns)
{
    json_t *ev = json_pack("{s:s}", "event", name);
    if (ev) {
        if (data)
            json_object_set(ev, "data", data);
        json_object_set_new(ev, "timestamp", timestamp(wall_ns));
        for (qmp_client *c = s->clients; c; c = c->next)
            if (c->command_mode && !c->dead)
                send_json(c, ev);
        json_decref(ev);
    }
    json_decref(data);
}

/* ------------------------------------------------------------ clients */

static void greet(qmp_client *c)
{
    json_t *g = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version", "qemu",
                          "micro", QMP_QEMU_MICRO, "minor", QMP_QEMU_MINOR, "major",
                          QMP_QEMU_MAJOR, "package", QMP_PACKAGE, "capabilities");
    if (g) {
        send_json(c, g);
        json_decref(g);
    }
}

qmp_client *qmp_server_add_client_fd(qmp_server *s, int fd)
{
    qmp_client *c = calloc(1, sizeof(*c));
    if (!c) {
        dm_err("qmp: out of memory for a client: fd %d closed", fd);
        close(fd);
        return NULL;
    }
    c->srv = s;
    c->fd = fd;
    set_nonblock(fd);
    c->next = s->clients;
    s->clients = c;
    s->nclients++;
    greet(c);
    return c;
}

size_t qmp_server_client_count(const qmp_server *s)
{
    size_t n = 0;
    for (qmp_client *c = s->clients; c; c = c->next)
        if (!c->dead)
            n++;
    return n;
}

int qmp_client_take_fd(qmp_client *c)
{
    if (c->nfds == 0)
        return -1;
    int fd = c->fds[0];
    memmove(c->fds, c->fds + 1, (c->nfds - 1) * sizeof(int));
    c->nfds--;
    return fd;
}

qmp_server *qmp_client_server(qmp_client *c)
{
    return c->srv;
}

/* ------------------------------------------------------------ commands */

static void run_command(qmp_client *c, json_t *req)
{
    json_t *id = NULL;
    if (!json_is_object(req)) {
        send_error(c, NULL, "GenericError", "QMP input must be a JSON object");
        return;
    }
    id = json_object_get(req, "id");
    const char *key;
    json_t *val;
    json_t *exec = NULL, *args = NULL;
    json_object_foreach(req, key, val) {
        if (!strcmp(key, "execute")) {
            if (!json_is_string(val)) {
                send_error(c, id, "GenericError", "QMP input member 'execute' must be a string");
                return;
            }
            exec = val;
        } else if (!strcmp(key, "arguments")) {
            if (!json_is_object(val)) {
                send_error(c, id, "GenericError", "QMP input member 'arguments' must be an object");
                return;
            }
            args = val;
        } else if (strcmp(key, "id") != 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "QMP input member '%.100s' is unexpected", key);
            send_error(c, id, "GenericError", msg);
            return;
        }
    }
    if (!exec) {
        send_error(c, id, "GenericError", "QMP input lacks member 'execute'");
        return;
    }
    const char *name = json_string_value(exec);
    char msg[300];
    if (!c->command_mode) {
        if (strcmp(name, "qmp_capabilities") != 0) {
            send_error(c, id, "CommandNotFound",
                       "Expecting capabilities negotiation with 'qmp_capabilities'");
            return;
        }
        /* No capability is offered; any "enable" member naming one fails. */
        json_t *en = args ? json_object_get(args, "enable") : NULL;
        if (args && json_object_size(args) > (en ? 1u : 0u)) {
            json_object_foreach(args, key, val) {
                if (strcmp(key, "enable") != 0) {
                    snprintf(msg, sizeof(msg), "Parameter '%.100s' is unexpected", key);
                    send_error(c, id, "GenericError", msg);
                    return;
                }
            }
        }
        if (en && (!json_is_array(en) || json_array_size(en) > 0)) {
            const char *cap = json_string_value(json_array_get(en, 0));
            if (json_is_array(en) && cap)
                snprintf(msg, sizeof(msg), "Capability '%.100s' not available", cap);
            else
                snprintf(msg, sizeof(msg), "Invalid parameter type for 'enable', expected: array");
            send_error(c, id, "GenericError", msg);
            return;
        }
        c->command_mode = true;
        json_t *r = json_pack("{s:{}}", "return");
        if (id)
            json_object_set(r, "id", id);
        send_json(c, r);
        json_decref(r);
        return;
    }
    if (!strcmp(name, "qmp_capabilities")) {
        send_error(c, id, "CommandNotFound",
                   "Capabilities negotiation is already complete, command ignored");
        return;
    }
    json_t *empty = NULL;
    if (!args)
        args = empty = json_object();
    json_t *ret = NULL;
    qmp_error err = { .cls = "GenericError", .desc = "" };
    int rc = c->srv->dispatch ? c->srv->dispatch(c->srv->opaque, c, name, args, &ret, &err) : 1;
    json_decref(empty);
    if (rc == 1) {
        snprintf(msg, sizeof(msg), "The command %.200s has not been found", name);
        send_error(c, id, "CommandNotFound", msg);
    } else if (rc < 0) {
        send_error(c, id, err.cls ? err.cls : "GenericError", err.desc);
        json_decref(ret);
    } else {
        json_t *r = json_object();
        json_object_set_new(r, "return", ret ? ret : json_object());
        if (id)
            json_object_set(r, "id", id);
        send_json(c, r);
        json_decref(r);
    }
}

static void parse_value(qmp_client *c)
{
    json_error_t je;
    json_t *v = json_loadb(c->in, c->in_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
        char msg[300];
        snprintf(msg, sizeof(msg), "JSON parse error, %s", je.text);
        send_error(c, NULL, "GenericError", msg);
        return;
    }
    run_command(c, v);
    json_decref(v);
}

static int in_push(qmp_client *c, char ch)
{
    if (c->in_len + 1 > QMP_MAX_OBJECT)
        return -1;
    if (c->in_len + 1 > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 1024;
        char *p = realloc(c->in, cap);
        if (!p)
            return -1;
        c->in = p;
        c->in_cap = cap;
    }
    c->in[c->in_len++] = ch;
    return 0;
}

static void value_done(qmp_client *c)
{
    if (!c->skipping && c->in_len > 0)
        parse_value(c);
    c->in_len = 0;
    c->started = c->skipping = c->scalar = false;
    c->depth = 0;
    c->in_string = c->escape = false;
}

static void limit_error(qmp_client *c, const char *what)
{
    send_error(c, NULL, "GenericError", what);
    c->skipping = true;
    c->in_len = 0;
}

static void feed(qmp_client *c, const char *buf, size_t len)
{
    for (size_t i = 0; i < len && !c->dead; i++) {
        char ch = buf[i];
        if (c->scalar && !c->in_string && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
                                          ch == '{' || ch == '[')) {
            /* a top-level scalar ends at whitespace or the next value */
            value_done(c);
            if (ch != '{' && ch != '[')
                continue;
        }
        if (!c->started) {
            if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
                continue;
            c->started = true;
            if (ch != '{' && ch != '[' )
                c->scalar = true;
        }
        if (!c->skipping && in_push(c, ch) < 0) {
            limit_error(c, "JSON token size limit exceeded");
        }
        if (c->in_string) {
            if (c->escape)
                c->escape = false;
            else if (ch == '\\')
                c->escape = true;
            else if (ch == '"') {
                c->in_string = false;
                if (c->scalar)
                    value_done(c);
            }
            continue;
        }
        switch (ch) {
        case '"':
            c->in_string = true;
            break;
        case '{':
        case '[':
            if (++c->depth > QMP_MAX_NESTING && !c->skipping)
                limit_error(c, "JSON nesting depth limit exceeded");
            break;
        case '}':
        case ']':
            if (--c->depth <= 0)
                value_done(c);
            break;
        default:
            break;
        }
    }
}

static void client_read(qmp_client *c)
{
    char buf[65536];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * QMP_MAX_CLIENT_FDS)];
    } cbuf;
    for (;;) {
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b,
                            .msg_controllen = sizeof(cbuf.b) };
        ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                dm_info("qmp: client fd %d: read failed: %s", c->fd, strerror(errno));
                c->dead = true;
            }
            return;
        }
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)(void *)CMSG_DATA(h);
            for (size_t j = 0; j < k; j++) {
                if (c->nfds < QMP_MAX_CLIENT_FDS) {
                    c->fds[c->nfds++] = fds[j];
                } else {
                    dm_warn("qmp: client fd %d sent more than %d unused fds: fd closed",
                            c->fd, QMP_MAX_CLIENT_FDS);
                    close(fds[j]);
                }
            }
        }
        if (m.msg_flags & MSG_CTRUNC)
            dm_warn("qmp: client fd %d: fds truncated (too many at once)", c->fd);
        if (n == 0) {
            c->dead = true;   /* client gone; a half-read command is dropped */
            return;
        }
        feed(c, buf, (size_t)n);
        if (c->dead)
            return;
    }
}

/* Out of fds, a pending connection keeps the listener readable and the
 * loop would spin on it.  The spare fd is given up for a moment to accept
 * the connection and close it at once: the client sees the monitor close,
 * the listener goes quiet, and later clients are served once fds are free
 * again.  True if the pending connection was taken off the queue. */
static bool refuse_out_of_fds(qmp_server *s, int lfd, int err)
{
    time_t now = time(NULL);
    if (now != s->emfile_logged) {
        s->emfile_logged = now;
        dm_warn("qmp: accept on fd %d: %s; closing the new connection", lfd, strerror(err));
    }
    if (s->spare < 0)
        return false;
    close(s->spare);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    s->spare = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
    return fd >= 0;
}

static void accept_all(qmp_server *s, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EMFILE || err == ENFILE) {
                if (refuse_out_of_fds(s, lfd, err))
                    continue;
                return;
            }
            if (err != EAGAIN && err != EWOULDBLOCK)
                dm_warn("qmp: accept on fd %d: %s", lfd, strerror(err));
            return;
        }
        qmp_server_add_client_fd(s, fd);
    }
}

size_t qmp_server_pollfds(qmp_server *s, struct pollfd *out, size_t max)
{
    reap(s);
    size_t n = 0;
    for (size_t i = 0; i < s->nlisteners; i++, n++)
        if (n < max)
            out[n] = (struct pollfd){ .fd = s->listeners[i], .events = POLLIN };
    for (qmp_client *c = s->clients; c; c = c->next, n++)
        if (n < max)
            out[n] = (struct pollfd){ .fd = c->fd,
                                      .events = (short)(POLLIN | (c->out_len ? POLLOUT : 0)) };
    return n;
}

void qmp_server_handle(qmp_server *s, int fd, short revents)
{
    for (size_t i = 0; i < s->nlisteners; i++)
        if (s->listeners[i] == fd) {
            accept_all(s, fd);
            return;
        }
    for (qmp_client *c = s->clients; c; c = c->next) {
        if (c->fd != fd || c->dead)
            continue;
        if (revents & POLLOUT)
            flush(c);
        if (revents & (POLLIN | POLLHUP | POLLERR))
            client_read(c);
        break;
    }
    reap(s);
}

int qmp_server_poll_once(qmp_server *s, int timeout_ms)
{
    size_t n = qmp_server_pollfds(s, NULL, 0);
    struct pollfd *p = calloc(n ? n : 1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    qmp_server_pollfds(s, p, n);
    int r = poll(p, n, timeout_ms);
    if (r < 0) {
        r = -errno;
        free(p);
        return r == -EINTR ? 0 : r;
    }
    int handled = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i].revents) {
            qmp_server_handle(s, p[i].fd, p[i].revents);
            handled++;
        }
    free(p);
    return handled;
}
