/*
 * Character back-ends (dm_chardev.h).  Every kind reduces to an input fd
 * and an output fd (either may be -1) plus a notion of "connected"; the
 * kinds differ only in how they connect and what a hangup means:
 *
 *   pty     hangup = the last reader closed the slave; polled every
 *           PTY_POLL_NS for a new reader (the master reports POLLHUP while
 *           no slave is open)
 *   unix    server: back to accepting; client: stays disconnected
 *   fd      stays disconnected
 *   stdio   end of stdin stops input only
 */
#include "dm_chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "dm_log.h"

#define PTY_POLL_NS 200000000        /* how often a pty without reader is checked */
#define READ_CHUNK 4096

struct dm_chardev {
    dm_loop *loop;
    dm_chardev_spec spec;
    char label[64];
    int in_fd, out_fd;
    bool is_socket;               /* send(MSG_NOSIGNAL): no SIGPIPE */
    bool own_fds;                 /* false for stdio */
    dm_watch *w_in, *w_out;       /* w_out only when out_fd != in_fd */
    int listen_fd;
    dev_t sock_dev;               /* the socket file this chardev bound, */
    ino_t sock_ino;               /* so close removes only its own */
    dm_watch *w_listen;
    dm_timer *pty_timer;
    bool connected;
    bool hold;                    /* unconnected output waits instead of being discarded */
    bool blocked;                 /* a short write happened; waiting for POLLOUT */
    char pty_path[64];
    const dm_chardev_peer *peer;
    void *opaque;
    dm_chardev_stats stats;
};

/* --------------------------------------------------------------- parsing */

const char *dm_chardev_kind_name(dm_chardev_kind kind)
{
    static const char *const names[] = { "null", "pty", "file", "unix", "stdio", "fd" };
    return kind <= DM_CHR_FD ? names[kind] : "?";
}

#define SUPPORTED "supported: pty, file:PATH, unix:PATH[,server][,nowait], null, stdio"

int dm_chardev_parse(const char *spec, dm_chardev_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!spec || !*spec) {
        snprintf(err, errlen, "empty serial device (" SUPPORTED ")");
        return -EINVAL;
    }
    if (strcmp(spec, "pty") == 0) {
        out->kind = DM_CHR_PTY;
        return 0;
    }
    if (strcmp(spec, "null") == 0) {
        out->kind = DM_CHR_NULL;
        return 0;
    }
    if (strcmp(spec, "stdio") == 0) {
        out->kind = DM_CHR_STDIO;
        return 0;
    }
    const char *path;
    if (strncmp(spec, "file:", 5) == 0) {
        out->kind = DM_CHR_FILE;
        path = spec + 5;
        if (strchr(path, ',')) {
            snprintf(err, errlen, "serial device '%s': file: takes no options", spec);
            return -EINVAL;
        }
    } else if (strncmp(spec, "unix:", 5) == 0) {
        out->kind = DM_CHR_UNIX;
        path = spec + 5;
    } else {
        snprintf(err, errlen, "serial device '%s' is not supported (" SUPPORTED ")", spec);
        return -EINVAL;
    }
    size_t plen = strcspn(path, ",");
    if (plen == 0) {
        snprintf(err, errlen, "serial device '%s': the path is empty", spec);
        return -EINVAL;
    }
    size_t limit = out->kind == DM_CHR_UNIX ? sizeof(((struct sockaddr_un *)0)->sun_path)
                                            : sizeof(out->path);
    if (plen >= limit) {
        snprintf(err, errlen, "serial device '%s': the path is longer than %zu bytes", spec,
                 limit - 1);
        return -EINVAL;
    }
    memcpy(out->path, path, plen);
    out->path[plen] = 0;
    /* unix: options, QEMU's spellings. */
    const char *opt = path + plen;
    while (*opt == ',') {
        opt++;
        size_t n = strcspn(opt, ",");
        if (n == 6 && strncmp(opt, "server", 6) == 0)
            out->server = true;
        else if ((n == 6 && strncmp(opt, "nowait", 6) == 0) ||
                 (n == 8 && strncmp(opt, "wait=off", 8) == 0))
            out->nowait = true;
        else if (n == 9 && strncmp(opt, "server=on", 9) == 0)
            out->server = true;
        else if ((n == 7 && strncmp(opt, "wait=on", 7) == 0) ||
                 (n == 10 && strncmp(opt, "server=off", 10) == 0))
            ;
        else {
            snprintf(err, errlen, "serial device '%s': unknown option '%.*s' (unix: takes "
                     "server, nowait)", spec, (int)n, opt);
            return -EINVAL;
        }
        opt += n;
    }
    if (out->nowait && !out->server) {
        snprintf(err, errlen, "serial device '%s': nowait needs server", spec);
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------- internals */

static void on_in(void *opaque, int fd);
static void on_out(void *opaque, int fd);

static void update_read_interest(dm_chardev *chr)
{
    bool want = chr->connected && chr->in_fd >= 0 && chr->peer && chr->peer->can_receive &&
                chr->peer->can_receive(chr->opaque) > 0;
    dm_watch_want_read(chr->w_in, want);
}

static void drop_watches(dm_chardev *chr)
{
    dm_watch_remove(chr->w_in);
    dm_watch_remove(chr->w_out);
    chr->w_in = chr->w_out = NULL;
}

/* Watches in_fd/out_fd: one watch when they are the same fd. */
static int add_watches(dm_chardev *chr)
{
    int fd = chr->in_fd >= 0 ? chr->in_fd : chr->out_fd;
    if (fd < 0)
        return 0;
    chr->w_in = dm_watch_add(chr->loop, fd, chr->in_fd >= 0 ? on_in : NULL,
                             chr->out_fd == fd ? on_out : NULL, chr);
    if (!chr->w_in)
        return -errno;
    if (chr->out_fd >= 0 && chr->out_fd != fd) {
        chr->w_out = dm_watch_add(chr->loop, chr->out_fd, NULL, on_out, chr);
        if (!chr->w_out) {
            int e = errno;
            drop_watches(chr);
            return -e;
        }
    }
    update_read_interest(chr);
    return 0;
}

static dm_watch *out_watch(dm_chardev *chr)
{
    return chr->w_out ? chr->w_out : chr->w_in;
}

/* The peer may have been waiting for room that will now never come from
 * POLLOUT: output is discarded from here on, so let it continue. */
static void unblock(dm_chardev *chr)
{
    bool was = chr->blocked;
    chr->blocked = false;
    dm_watch_want_write(out_watch(chr), false);
    if (was && chr->peer && chr->peer->writable)
        chr->peer->writable(chr->opaque);
}


/* A client socket, an fd or stdio that hung up stays disconnected. */
static void close_for_good(dm_chardev *chr, const char *why)
{
    dm_info("serial %s: disconnected (%s); output is discarded", chr->label, why);
    drop_watches(chr);
    if (chr->own_fds && chr->in_fd >= 0)
        close(chr->in_fd);
    if (chr->own_fds && chr->out_fd >= 0 && chr->out_fd != chr->in_fd)
        close(chr->out_fd);
    chr->in_fd = chr->out_fd = -1;
}

static void hangup(dm_chardev *chr, const char *why)
{
    if (!chr->connected)
        return;
    chr->connected = false;
    if (chr->spec.kind == DM_CHR_PTY) {
        dm_info("serial %s: reader went away (%s); output is discarded until one attaches",
                chr->label, why);
        dm_watch_want_read(chr->w_in, false);
        dm_timer_arm(chr->pty_timer, PTY_POLL_NS, PTY_POLL_NS);
    } else if (chr->spec.kind == DM_CHR_UNIX && chr->spec.server) {
        dm_info("serial %s: client went away (%s); waiting for the next", chr->label, why);
        drop_watches(chr);
        close(chr->in_fd);
        chr->in_fd = chr->out_fd = -1;
        dm_watch_want_read(chr->w_listen, true);
    } else {
        close_for_good(chr, why);
    }
    unblock(chr);
}

static void on_in(void *opaque, int fd)
{
    dm_chardev *chr = opaque;
    size_t room = chr->peer && chr->peer->can_receive ? chr->peer->can_receive(chr->opaque) : 0;
    if (room == 0) {
        dm_watch_want_read(chr->w_in, false);
        return;
    }
    uint8_t buf[READ_CHUNK];
    ssize_t n = read(fd, buf, room < sizeof(buf) ? room : sizeof(buf));
    if (n > 0) {
        chr->stats.read += (uint64_t)n;
        chr->peer->receive(chr->opaque, buf, (size_t)n);
    } else if (n == 0) {
        if (chr->spec.kind == DM_CHR_STDIO) {
            /* stdin at its end (libxl gives /dev/null); output continues. */
            dm_watch_remove(chr->w_in);
            chr->w_in = NULL;
            chr->in_fd = -1;
            if (chr->out_fd >= 0 && !chr->w_out)
                chr->w_out = dm_watch_add(chr->loop, chr->out_fd, NULL, on_out, chr);
            return;
        }
        hangup(chr, "end of file");
        return;
    } else if (errno != EAGAIN && errno != EINTR) {
        hangup(chr, strerror(errno));
        return;
    }
    update_read_interest(chr);
}

static void on_out(void *opaque, int fd)
{
    dm_chardev *chr = opaque;
    chr->blocked = false;
    dm_watch_want_write(out_watch(chr), false);
    if (chr->peer && chr->peer->writable)
        chr->peer->writable(chr->opaque);
}

/* pty: a reader attached when the master stops reporting POLLHUP. */
static void on_pty_timer(void *opaque)
{
    dm_chardev *chr = opaque;
    struct pollfd p = { .fd = chr->in_fd, .events = POLLIN };
    if (poll(&p, 1, 0) < 0 || (p.revents & POLLHUP))
        return;
    dm_timer_cancel(chr->pty_timer);
    chr->connected = true;
    dm_info("serial %s: reader attached to %s", chr->label, chr->pty_path);
    update_read_interest(chr);
}

static void on_accept(void *opaque, int fd)
{
    dm_chardev *chr = opaque;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        if (errno != EAGAIN && errno != EINTR)
            dm_warn("serial %s: accept failed: %s", chr->label, strerror(errno));
        return;
    }
    chr->in_fd = chr->out_fd = c;
    chr->connected = true;
    if (add_watches(chr) < 0) {
        dm_err("serial %s: cannot watch the new client: %s", chr->label, strerror(errno));
        close(c);
        chr->in_fd = chr->out_fd = -1;
        chr->connected = false;
        return;
    }
    /* One client at a time: stop accepting until this one leaves. */
    dm_watch_want_read(chr->w_listen, false);
    dm_info("serial %s: client connected", chr->label);
    chr->hold = false;            /* `server` without nowait: held output may go now */
    if (chr->peer && chr->peer->writable)
        chr->peer->writable(chr->opaque);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static dm_chardev *chr_alloc(dm_loop *loop, const dm_chardev_spec *spec, const char *label)
{
    dm_chardev *chr = calloc(1, sizeof(*chr));
    if (!chr)
        return NULL;
    chr->loop = loop;
    chr->spec = *spec;
    chr->in_fd = chr->out_fd = chr->listen_fd = -1;
    chr->own_fds = true;
    snprintf(chr->label, sizeof(chr->label), "%s", label);
    return chr;
}

/* ---------------------------------------------------------------- kinds */

static int open_pty(dm_chardev *chr, char *err, size_t errlen)
{
    int m, s;
    if (openpty(&m, &s, NULL, NULL, NULL) < 0) {
        int e = errno;
        snprintf(err, errlen, "serial pty: openpty failed: %s", strerror(e));
        return -e;
    }
    /* Raw: the guest's bytes pass unchanged (no echo, no CR/LF mangling). */
    struct termios t;
    if (tcgetattr(s, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(s, TCSANOW, &t);
    }
    int rc = ptsname_r(m, chr->pty_path, sizeof(chr->pty_path));
    close(s);                     /* our copy would keep the pty "connected" forever */
    if (rc != 0 || set_nonblock(m) < 0 || fcntl(m, F_SETFD, FD_CLOEXEC) < 0) {
        int e = rc ? rc : errno;
        snprintf(err, errlen, "serial pty: setting up the master failed: %s", strerror(e));
        close(m);
        return -e;
    }
    chr->in_fd = chr->out_fd = m;
    chr->pty_timer = dm_timer_new(chr->loop, on_pty_timer, chr);
    if (!chr->pty_timer || add_watches(chr) < 0) {
        snprintf(err, errlen, "serial pty: cannot watch the master: out of memory");
        return -ENOMEM;
    }
    /* Nobody has the slave open yet: start as disconnected and poll. */
    chr->connected = true;
    hangup(chr, "no reader yet");
    dm_info("serial: pty at %s", chr->pty_path);
    return 0;
}

static int open_unix(dm_chardev *chr, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, chr->spec.path, strlen(chr->spec.path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "serial unix:%s: socket: %s", chr->spec.path, strerror(e));
        return -e;
    }
    chr->is_socket = true;
    if (!chr->spec.server) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int e = errno;
            snprintf(err, errlen, "serial unix:%s: connect: %s", chr->spec.path, strerror(e));
            close(fd);
            return -e;
        }
        chr->in_fd = chr->out_fd = fd;
        chr->connected = true;
        return add_watches(chr);
    }
    /* A stale socket from an earlier run would make bind fail. */
    struct stat st;
    if (lstat(chr->spec.path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(chr->spec.path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        int e = errno;
        snprintf(err, errlen, "serial unix:%s: bind/listen: %s", chr->spec.path, strerror(e));
        close(fd);
        return -e;
    }
    chr->listen_fd = fd;
    if (lstat(chr->spec.path, &st) == 0) {
        chr->sock_dev = st.st_dev;
        chr->sock_ino = st.st_ino;
    }
    chr->hold = !chr->spec.nowait;
    chr->w_listen = dm_watch_add(chr->loop, fd, on_accept, NULL, chr);
    if (!chr->w_listen) {
        snprintf(err, errlen, "serial unix:%s: cannot watch the socket", chr->spec.path);
        return -ENOMEM;
    }
    return 0;
}

static int open_file(dm_chardev *chr, char *err, size_t errlen)
{
    /* Appended, so a restored dm continues the log its predecessor wrote. */
    int fd = open(chr->spec.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "serial file:%s: %s", chr->spec.path, strerror(e));
        return -e;
    }
    chr->out_fd = fd;
    chr->connected = true;
    return add_watches(chr);
}

static int open_stdio(dm_chardev *chr, char *err, size_t errlen)
{
    chr->own_fds = false;
    chr->in_fd = STDIN_FILENO;
    chr->out_fd = STDOUT_FILENO;
    /* stdin only: stdout's file description may be shared with others. */
    if (set_nonblock(STDIN_FILENO) < 0)
        chr->in_fd = -1;
    chr->connected = true;
    int rc = add_watches(chr);
    if (rc < 0)
        snprintf(err, errlen, "serial stdio: cannot watch stdin/stdout: %s", strerror(-rc));
    return rc;
}

int dm_chardev_open(dm_loop *loop, const char *spec, dm_chardev **out, char *err, size_t errlen)
{
    *out = NULL;
    dm_chardev_spec s;
    int rc = dm_chardev_parse(spec, &s, err, errlen);
    if (rc < 0)
        return rc;
    dm_chardev *chr = chr_alloc(loop, &s, spec);
    if (!chr) {
        snprintf(err, errlen, "serial %s: out of memory", spec);
        return -ENOMEM;
    }
    switch (s.kind) {
    case DM_CHR_NULL:
        chr->connected = true;
        rc = 0;
        break;
    case DM_CHR_PTY:
        rc = open_pty(chr, err, errlen);
        break;
    case DM_CHR_FILE:
        rc = open_file(chr, err, errlen);
        break;
    case DM_CHR_UNIX:
        rc = open_unix(chr, err, errlen);
        break;
    case DM_CHR_STDIO:
        rc = open_stdio(chr, err, errlen);
        break;
    default:
        rc = -EINVAL;
        break;
    }
    if (rc < 0) {
        dm_chardev_close(chr);
        return rc;
    }
    *out = chr;
    return 0;
}

int dm_chardev_from_fd(dm_loop *loop, int fd, const char *label, dm_chardev **out)
{
    *out = NULL;
    if (fd < 0)
        return -EBADF;
    dm_chardev_spec s = { .kind = DM_CHR_FD };
    dm_chardev *chr = chr_alloc(loop, &s, label ? label : "fd");
    if (!chr)
        return -ENOMEM;
    int type;
    socklen_t tl = sizeof(type);
    chr->is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0;
    chr->in_fd = chr->out_fd = fd;
    chr->connected = true;
    int rc = set_nonblock(fd);
    if (rc == 0)
        rc = add_watches(chr);
    if (rc < 0) {
        dm_chardev_close(chr);
        return rc;
    }
    *out = chr;
    return 0;
}

void dm_chardev_close(dm_chardev *chr)
{
    if (!chr)
        return;
    drop_watches(chr);
    dm_watch_remove(chr->w_listen);
    dm_timer_free(chr->pty_timer);
    if (chr->own_fds && chr->in_fd >= 0)
        close(chr->in_fd);
    if (chr->own_fds && chr->out_fd >= 0 && chr->out_fd != chr->in_fd)
        close(chr->out_fd);
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        /* A restored dm may already serve the same path (same-host migrate:
         * the new one starts before the old one exits): remove the socket
         * only if it is still the one this chardev bound. */
        struct stat st;
        if (lstat(chr->spec.path, &st) == 0 && st.st_dev == chr->sock_dev &&
            st.st_ino == chr->sock_ino)
            unlink(chr->spec.path);
    }
    free(chr);
}

/* ------------------------------------------------------------- peer API */

void dm_chardev_set_peer(dm_chardev *chr, const dm_chardev_peer *peer, void *opaque)
{
    chr->peer = peer;
    chr->opaque = opaque;
    update_read_interest(chr);
}

void dm_chardev_accept_input(dm_chardev *chr)
{
    if (chr)
        update_read_interest(chr);
}

size_t dm_chardev_write(dm_chardev *chr, const uint8_t *buf, size_t len)
{
    if (len == 0)
        return 0;
    if (!chr->connected) {
        if (chr->hold)
            return 0;
        chr->stats.discarded += len;
        return len;
    }
    if (chr->spec.kind == DM_CHR_NULL) {
        chr->stats.written += len;
        return len;
    }
    if (chr->out_fd < 0) {
        chr->stats.discarded += len;
        return len;
    }
    if (chr->blocked)
        return 0;                 /* keep order: the earlier rest goes first */
    for (;;) {
        ssize_t n = chr->is_socket ? send(chr->out_fd, buf, len, MSG_NOSIGNAL)
                                   : write(chr->out_fd, buf, len);
        if (n >= 0) {
            chr->stats.written += (uint64_t)n;
            if ((size_t)n < len) {
                chr->stats.short_writes++;
                chr->blocked = true;
                dm_watch_want_write(out_watch(chr), true);
            }
            return (size_t)n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            chr->stats.short_writes++;
            chr->blocked = true;
            dm_watch_want_write(out_watch(chr), true);
            return 0;
        }
        /* EIO (pty without reader), EPIPE/ECONNRESET (peer gone). */
        hangup(chr, strerror(errno));
        chr->stats.discarded += len;
        return len;
    }
}

dm_chardev_kind dm_chardev_get_kind(const dm_chardev *chr)
{
    return chr->spec.kind;
}

const char *dm_chardev_pty_path(const dm_chardev *chr)
{
    return chr->spec.kind == DM_CHR_PTY ? chr->pty_path : NULL;
}

bool dm_chardev_connected(const dm_chardev *chr)
{
    return chr->connected;
}

void dm_chardev_get_stats(const dm_chardev *chr, dm_chardev_stats *out)
{
    *out = chr->stats;
}
