/* xl_qmp.c: `xensim xl` for the qemu-xen dialect (xl_qmp.h): the QMP
 * client, and libxl 4.17's and xenopsd's device-model steps over it. */
#include "xl_qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "xl_internal.h"

/* libxl_qmp.c, 4.17 */
#define QMP_RX_MAX (1024 * 1024)          /* QMP_MAX_SIZE_RX_BUF */
#define LIBXL_QMP_ID_BASE 0x786c7100      /* "xlq\0" */
#define POSTCONFIG_TIMEOUT 10
/* xenopsd: qemu_dm_ready_timeout, polling the event socket every 50 ms. */
#define XENOPSD_READY_TIMEOUT 300
#define XENOPSD_POLL_MS 50

/* --------------------------------------------------------------- client */

struct xlq {
    int fd;
    xlq_style style;
    unsigned domid;
    unsigned long long next_id;
    char *buf;
    size_t len;
    xlq_event_fn event_fn;
    void *event_opaque;
};

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One CRLF-terminated message; NULL on timeout (*eof 0) or EOF/error
 * (*eof 1), err filled either way. */
static json_t *recv_msg(xlq *c, long long deadline, int *eof, char *err, size_t errlen)
{
    *eof = 0;
    for (;;) {
        char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf) + 1;
            json_error_t je;
            json_t *j = json_loadb(c->buf, n, 0, &je);
            memmove(c->buf, c->buf + n, c->len - n);
            c->len -= n;
            if (!j || !json_is_object(j)) {
                json_decref(j);
                snprintf(err, errlen, "QMP: malformed message from the device model (%s)",
                         j ? "not an object" : je.text);
                *eof = 1;
                return NULL;
            }
            return j;
        }
        if (c->len >= QMP_RX_MAX) {
            snprintf(err, errlen, "QMP: message over %d bytes", QMP_RX_MAX);
            *eof = 1;
            return NULL;
        }
        long long left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left <= 0) {
            snprintf(err, errlen, "QMP: no answer from the device model in time");
            return NULL;
        }
        struct pollfd p = { c->fd, POLLIN, 0 };
        int r = poll(&p, 1, left < 0 ? -1 : left > INT32_MAX ? INT32_MAX : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(c->fd, c->buf + c->len, QMP_RX_MAX - c->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "QMP: the device model closed the connection%s%s",
                     n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
            *eof = 1;
            return NULL;
        }
        c->len += (size_t)n;
    }
}

static int send_all(xlq *c, const char *text, size_t len, int fd, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < len) {
        struct iovec iov = { (char *)text + off, len - off };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cm;
        if (fd >= 0 && off == 0) {
            /* libxl: the fd rides on the command's first byte. */
            memset(&cm, 0, sizeof(cm));
            mh.msg_control = cm.b;
            mh.msg_controllen = sizeof(cm.b);
            struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(h), &fd, sizeof(int));
        }
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "QMP: sending to the device model: %s", strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Builds and sends one command; returns its id (a new reference). */
static json_t *send_cmd(xlq *c, const char *cmd, json_t *args, int fd, char *err,
                        size_t errlen)
{
    json_t *id;
    if (c->style == XLQ_LIBXL) {
        id = json_integer((json_int_t)(LIBXL_QMP_ID_BASE + c->next_id++));
    } else {
        char s[64];
        snprintf(s, sizeof(s), "qmp-%06llu-%u", c->next_id++, c->domid);
        id = json_string(s);
    }
    json_t *msg = json_pack("{s:s,s:O}", "execute", cmd, "id", id);
    if (args)
        json_object_set_new(msg, "arguments", args);
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text) {
        json_decref(id);
        snprintf(err, errlen, "QMP: cannot encode %s", cmd);
        return NULL;
    }
    size_t tl = strlen(text);
    char *line = malloc(tl + 3);
    int r = -1;
    if (line) {
        memcpy(line, text, tl);
        memcpy(line + tl, "\r\n", 3);
        /* xenopsd sends the fd alone first, as a one-byte " " message. */
        if (fd >= 0 && c->style == XLQ_XENOPSD)
            r = send_all(c, " ", 1, fd, err, errlen) < 0 ? -1 : send_all(c, line, tl + 2, -1, err, errlen);
        else
            r = send_all(c, line, tl + 2, fd, err, errlen);
    }
    free(line);
    free(text);
    if (r < 0) {
        json_decref(id);
        return NULL;
    }
    return id;
}

static void deliver_event(xlq *c, json_t *m)
{
    if (c->event_fn)
        c->event_fn(c->event_opaque, m);
    else
        json_decref(m);
}

int xlq_exec(xlq *c, const char *cmd, json_t *args, int fd, json_t **ret, int timeout_ms,
             char *err, size_t errlen)
{
    if (ret)
        *ret = NULL;
    json_t *id = send_cmd(c, cmd, args, fd, err, errlen);
    if (!id)
        return -1;
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int eof;
        json_t *m = recv_msg(c, deadline, &eof, err, errlen);
        if (!m) {
            json_decref(id);
            return -1;
        }
        if (json_object_get(m, "event")) {
            deliver_event(c, m);
            continue;
        }
        json_t *mid = json_object_get(m, "id");
        if (!mid || !json_equal(mid, id)) {
            /* libxl: a reply with another id, or without one, is a protocol
             * error; xenopsd skips unrelated messages. */
            if (c->style == XLQ_XENOPSD) {
                json_decref(m);
                continue;
            }
            snprintf(err, errlen, "QMP: %s: reply with an unexpected id", cmd);
            json_decref(m);
            json_decref(id);
            return -1;
        }
        json_decref(id);
        json_t *e = json_object_get(m, "error");
        if (e) {
            snprintf(err, errlen, "QMP: %s: %s: %s", cmd,
                     json_string_value(json_object_get(e, "class")) ?: "?",
                     json_string_value(json_object_get(e, "desc")) ?: "?");
            json_decref(m);
            return -1;
        }
        json_t *r = json_object_get(m, "return");
        if (!r) {
            snprintf(err, errlen, "QMP: %s: reply without return or error", cmd);
            json_decref(m);
            return -1;
        }
        if (ret)
            *ret = json_incref(r);
        json_decref(m);
        return 0;
    }
}

int xlq_send(xlq *c, const char *cmd, json_t *args, char *err, size_t errlen)
{
    json_t *id = send_cmd(c, cmd, args, -1, err, errlen);
    json_decref(id);
    return id ? 0 : -1;
}

void xlq_set_event_fn(xlq *c, xlq_event_fn fn, void *opaque)
{
    c->event_fn = fn;
    c->event_opaque = opaque;
}

int xlq_pump(xlq *c, int timeout_ms)
{
    char err[256];
    int eof;
    json_t *m = recv_msg(c, timeout_ms < 0 ? -1 : now_ms() + timeout_ms, &eof, err, sizeof(err));
    if (!m)
        return eof ? -1 : 0;
    if (json_object_get(m, "event"))
        deliver_event(c, m);
    else
        json_decref(m);
    return 1;
}

void xlq_close(xlq *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Greeting, then qmp_capabilities on a connected socket (taken over). */
static xlq *negotiate(int fd, xlq_style style, unsigned domid, int timeout_ms, char *err,
                      size_t errlen)
{
    xlq *c = calloc(1, sizeof(*c));
    if (c)
        c->buf = malloc(QMP_RX_MAX);
    if (!c || !c->buf) {
        free(c);
        close(fd);
        snprintf(err, errlen, "QMP: out of memory");
        return NULL;
    }
    c->fd = fd;
    c->style = style;
    c->domid = domid;
    int eof;
    json_t *g = recv_msg(c, now_ms() + timeout_ms, &eof, err, errlen);
    if (!g || !json_object_get(g, "QMP")) {
        if (g)
            snprintf(err, errlen, "QMP: the first message is not a greeting");
        json_decref(g);
        xlq_close(c);
        return NULL;
    }
    json_decref(g);
    if (xlq_exec(c, "qmp_capabilities", NULL, -1, NULL, timeout_ms, err, errlen) < 0) {
        xlq_close(c);
        return NULL;
    }
    return c;
}

xlq *xlq_open(const char *path, xlq_style style, unsigned domid, int timeout_ms, char *err,
              size_t errlen)
{
    int fd = connect_unix(path);
    if (fd < 0) {
        snprintf(err, errlen, "QMP: connecting to %s: %s", path, strerror(errno));
        return NULL;
    }
    return negotiate(fd, style, domid, timeout_ms, err, errlen);
}

/* ------------------------------------------------------------ xl's steps */

/* libxl's error line (xl_internal.h's die), as a -1 result. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    die("%s", msg);
    return -1;
}

int xlq_set_dialect(const char *dialect)
{
    if (strcmp(dialect, "traditional") != 0 && strcmp(dialect, "qemu-xen") != 0)
        return -1;
    return setenv("XENSIM_XL_DIALECT", dialect, 1);
}

int xlq_set_manager(const char *manager)
{
    if (strcmp(manager, "libxl") != 0 && strcmp(manager, "xenopsd") != 0)
        return -1;
    /* xenopsd drives only upstream QEMU: it implies the qemu-xen dialect. */
    if (!strcmp(manager, "xenopsd"))
        setenv("XENSIM_XL_DIALECT", "qemu-xen", 1);
    return setenv("XENSIM_XL_MANAGER", manager, 1);
}

const char *xlq_usage(void)
{
    return "[--dialect traditional|qemu-xen] [--manager libxl|xenopsd]";
}

static bool is_xenopsd(void)
{
    const char *m = getenv("XENSIM_XL_MANAGER");
    return m && !strcmp(m, "xenopsd");
}

bool xlq_cfg_is_qemu_xen(const struct xl_cfg *cfg)
{
    if (cfg->dm_version_set)
        return !strcmp(cfg->dm_version, "qemu-xen");
    const char *d = getenv("XENSIM_XL_DIALECT");
    return d && !strcmp(d, "qemu-xen");
}

const char *xlq_dm_version_node(const struct xl_cfg *cfg)
{
    return xlq_cfg_is_qemu_xen(cfg) ? "qemu_xen" : "qemu_xen_traditional";
}

/* ROOT/<domid>/LEAF: ROOT is /libxl or /local/domain. */
static char *xsread(const char *root, unsigned domid, const char *leaf)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%u/%s", root, domid, leaf);
    unsigned len;
    return xs_read(g_xs, XBT_NULL, p, &len);
}

static int xswrite(const char *path, const char *val)
{
    if (!xs_write(g_xs, XBT_NULL, path, val, strlen(val)))
        return fail("xenstore write %s: %s", path, strerror(errno));
    return 0;
}

bool xlq_domain_is_qemu_xen(unsigned domid)
{
    char *v = xsread("/libxl", domid, "dm-version");
    bool q = v && !strcmp(v, "qemu_xen");
    free(v);
    return q;
}

/* The per-domain manager recorded at create (the migration receiver and
 * later commands follow the domain, not the command line). */
static bool domain_is_xenopsd(unsigned domid)
{
    char *v = xsread("/libxl", domid, "xensim-manager");
    bool x = v && !strcmp(v, "xenopsd");
    free(v);
    return x;
}

static void run_path(const char *base, unsigned domid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/xl/run/%s-%u", g_rundir, base, domid);
}

static xlq *open_cmd(unsigned domid, int timeout_ms, char *err, size_t errlen)
{
    char sock[4200];
    run_path("qmp-libxl", domid, sock, sizeof(sock));
    return xlq_open(sock, domain_is_xenopsd(domid) ? XLQ_XENOPSD : XLQ_LIBXL, domid, timeout_ms,
                    err, errlen);
}

/* One libxl operation: a new connection, one command, closed. */
static int qmp_once(unsigned domid, const char *cmd, json_t *args, int fd, json_t **ret,
                    int timeout_s)
{
    char err[512];
    int tmo = timeout_s < 0 ? -1 : bound(timeout_s) * 1000;
    xlq *c = open_cmd(domid, tmo < 0 ? bound(DM_START_TIMEOUT) * 1000 : tmo, err, sizeof(err));
    if (!c) {
        json_decref(args);
        return fail("domain %u: %s", domid, err);
    }
    int r = xlq_exec(c, cmd, args, fd, ret, tmo, err, sizeof(err));
    xlq_close(c);
    if (r < 0)
        return fail("domain %u: %s", domid, err);
    return 0;
}

/* libxl__pre_open_qmp_socket: bind and listen (backlog 1) before exec. */
static int pre_open_socket(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return fail("QMP socket path %s is too long", path), -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fail("socket: %s", strerror(errno)), -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        fail("pre-opening %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct argvec {
    const char *v[160];
    int n;
    char store[48][4200];      /* formatted values */
    int ns;
} argvec;

static void arg(argvec *a, const char *s)
{
    if (a->n < (int)(sizeof(a->v) / sizeof(a->v[0])) - 1)
        a->v[a->n++] = s;
}

static void argf(argvec *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argf(argvec *a, const char *fmt, ...)
{
    if (a->ns == (int)(sizeof(a->store) / sizeof(a->store[0])))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->store[a->ns], sizeof(a->store[0]), fmt, ap);
    va_end(ap);
    arg(a, a->store[a->ns++]);
}

/* -incoming, the config's extra arguments, then the machine (libxl puts
 * device_model_args_hvm after it; both toolstacks end with it here). */
static void args_tail(argvec *a, const struct xl_cfg *cfg, int restore_fd, const char *machine)
{
    if (restore_fd >= 0) {
        arg(a, "-incoming");
        argf(a, "fd:%d", restore_fd);
    }
    arg(a, "-machine");
    arg(a, machine);
    for (int i = 0; i < cfg->n_dm_args_hvm; i++)
        arg(a, cfg->dm_args_hvm[i]);
}

/* libxl's HVM disks (libxl__build_device_model_args_new): hdtype=ahci puts
 * the first six on an AHCI controller as ide-hd devices, else the first
 * four are IDE units; an sdX disk is SCSI there, which rsdm refuses, so it
 * is passed as libxl passes it. */
static void args_disks(argvec *a, const struct xl_cfg *cfg)
{
    int ahci = strcmp(cfg->hdtype, "ahci") == 0;
    if (ahci && cfg->n_disks > 0) {
        arg(a, "-device");
        arg(a, "ahci,id=ahci0");
    }
    for (int i = 0; i < cfg->n_disks; i++) {
        const struct xl_disk *d = &cfg->disks[i];
        int idx = d->vdev[2] - 'a';
        arg(a, "-drive");
        if (d->cdrom)
            argf(a, "if=ide,index=%d,readonly=on,media=cdrom,id=ide-%d", idx, idx);
        else if (d->vdev[0] == 's')
            argf(a, "file=%s,if=scsi,bus=0,unit=%d,format=raw,readonly=off,cache=writeback",
                 d->target, idx);
        else if (ahci && idx < 6) {
            argf(a, "file=%s,if=none,id=ahcidisk-%d,format=raw,cache=writeback", d->target, idx);
            arg(a, "-device");
            argf(a, "ide-hd,bus=ahci0.%d,unit=0,drive=ahcidisk-%d", idx, idx);
        } else
            argf(a, "file=%s,if=ide,index=%d,readonly=off,media=disk,format=raw,cache=writeback",
                 d->target, idx);
    }
}

/* libxl__build_device_model_args_new (reference §4.3), the parts a
 * simulated HVM guest has. */
static void args_libxl(argvec *a, unsigned domid, const struct xl_cfg *cfg, int qmp_fd,
                       int restore_fd)
{
    arg(a, cfg->dm_override);
    arg(a, "-xen-domid");
    argf(a, "%u", domid);
    arg(a, "-no-shutdown");
    char sock[4200];
    arg(a, "-chardev");
    if (qmp_fd >= 0) {
        argf(a, "socket,id=libxl-cmd,fd=%d,server=on,wait=off", qmp_fd);
        arg(a, "-S");
    } else {
        run_path("qmp-libxl", domid, sock, sizeof(sock));
        argf(a, "socket,id=libxl-cmd,path=%s,server=on,wait=off", sock);
    }
    arg(a, "-mon");
    arg(a, "chardev=libxl-cmd,mode=control");
    run_path("qmp-libxenstat", domid, sock, sizeof(sock));
    arg(a, "-chardev");
    argf(a, "socket,id=libxenstat-cmd,path=%s,server=on,wait=off", sock);
    arg(a, "-mon");
    arg(a, "chardev=libxenstat-cmd,mode=control");
    arg(a, "-nodefaults");
    arg(a, "-no-user-config");
    arg(a, "-name");
    arg(a, cfg->name);
    arg(a, "-vnc");
    arg(a, "none");
    arg(a, "-display");
    arg(a, "none");
    if (cfg->serial[0]) {
        arg(a, "-serial");
        arg(a, cfg->serial);
    }
    arg(a, "-boot");
    arg(a, "order=cda");
    if (cfg->vcpus > 1) {
        arg(a, "-smp");
        argf(a, "%u,maxcpus=%u", cfg->vcpus, cfg->vcpus);
    }
    arg(a, "-net");
    arg(a, "none");
    args_disks(a, cfg);
    if (cfg->dm_restrict) {
        arg(a, "-xen-domid-restrict");
        /* libxl also passes -chroot XEN_RUN_DIR/qemu-root-<domid>; only
         * root may chroot, so the simulation passes it only as root. */
        if (geteuid() == 0) {
            char root[4200];
            run_path("qemu-root", domid, root, sizeof(root));
            mkdir(root, 0);
            arg(a, "-chroot");
            argf(a, "%s", root);
        }
    }
    args_tail(a, cfg, restore_fd, "xenfv,suppress-vmdesc=on");
    arg(a, "-m");
    argf(a, "%u", cfg->memory);
    if (cfg->dm_restrict) {
        /* libxl's device_model_user; the simulation becomes itself. */
        arg(a, "-runas");
        argf(a, "%u:%u", (unsigned)getuid(), (unsigned)getgid());
    }
}

/* XenServer's qemu-wrapper line (reference §5.3-§5.4): always -S, the
 * command and event sockets, restriction, -loadvm rewritten to -incoming. */
static void args_xenopsd(argvec *a, unsigned domid, const struct xl_cfg *cfg, int restore_fd)
{
    char sock[4200];
    arg(a, cfg->dm_override);
    arg(a, "-xen-domid");
    argf(a, "%u", domid);
    arg(a, "-m");
    argf(a, "size=%u", cfg->memory);
    arg(a, "-smp");
    argf(a, "%u,maxcpus=%u", cfg->vcpus, cfg->vcpus);
    if (cfg->serial[0]) {
        arg(a, "-serial");
        arg(a, cfg->serial);
    }
    arg(a, "-display");
    arg(a, "none");
    arg(a, "-nodefaults");
    arg(a, "-trace");
    arg(a, "enable=xen_platform_log");
    arg(a, "-S");
    arg(a, "-qmp");
    run_path("qmp-libxl", domid, sock, sizeof(sock));
    argf(a, "unix:%s,server,nowait", sock);
    arg(a, "-qmp");
    run_path("qmp-event", domid, sock, sizeof(sock));
    argf(a, "unix:%s,server,nowait", sock);
    arg(a, "-xen-domid-restrict");
    args_tail(a, cfg, restore_fd, "xenfv");
}

static int dm_died(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == pid;
}

/* device_model_postconfig_chardev: serialN ptys into the guest's tree. */
static int postconfig_chardev(unsigned domid)
{
    json_t *ret = NULL;
    if (qmp_once(domid, "query-chardev", NULL, -1, &ret, POSTCONFIG_TIMEOUT) < 0)
        return -1;
    size_t i;
    json_t *cd;
    int rc = 0;
    json_array_foreach(ret, i, cd) {
        const char *label = json_string_value(json_object_get(cd, "label"));
        const char *fn = json_string_value(json_object_get(cd, "filename"));
        unsigned n;
        char p[128];
        if (!label || !fn || sscanf(label, "serial%u", &n) != 1 || strncmp(fn, "pty:", 4) != 0)
            continue;
        snprintf(p, sizeof(p), "/local/domain/%u/serial/%u/tty", domid, n);
        if (xswrite(p, fn + 4) < 0)
            rc = -1;
    }
    json_decref(ret);
    return rc;
}

/* xenopsd's event connection: negotiated, `cont` sent without waiting,
 * then kept by a child that logs every event until the dm goes away. */
static void log_event(void *opaque, json_t *ev)
{
    FILE *f = opaque;
    char *t = json_dumps(ev, JSON_COMPACT);
    if (t) {
        fprintf(f, "%s\n", t);
        fflush(f);
    }
    free(t);
    json_decref(ev);
}

static int xenopsd_event_connection(unsigned domid, pid_t dm)
{
    char sock[4200], err[512];
    run_path("qmp-event", domid, sock, sizeof(sock));
    long long deadline = now_ms() + bound(XENOPSD_READY_TIMEOUT) * 1000LL;
    int fd;
    /* Readiness = the event socket accepts a connection (polled). */
    while ((fd = connect_unix(sock)) < 0) {
        if (dm_died(dm))
            return fail("device model (pid %ld) died before its event socket appeared",
                        (long)dm);
        if (now_ms() >= deadline)
            return fail("domain %u: the event socket %s never accepted", domid, sock);
        poll(NULL, 0, XENOPSD_POLL_MS);
    }
    xlq *c = negotiate(fd, XLQ_XENOPSD, domid, bound(DM_START_TIMEOUT) * 1000, err,
                       sizeof(err));
    if (!c || xlq_send(c, "cont", NULL, err, sizeof(err)) < 0) {
        xlq_close(c);
        return fail("domain %u: event connection: %s", domid, err);
    }
    char logp[4300];
    snprintf(logp, sizeof(logp), "%s/xl/log/qmp-events-%u.log", g_rundir, domid);
    pid_t pid = fork();
    if (pid < 0) {
        xlq_close(c);
        return fail("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        FILE *f = fopen(logp, "a");
        int nul = open("/dev/null", O_RDWR);
        if (!f || nul < 0)
            _exit(1);
        /* Never hold xl's stdout/stderr: a caller reading them to EOF
         * would wait for this connection to end. */
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        setsid();
        xlq_set_event_fn(c, log_event, f);
        while (xlq_pump(c, -1) >= 0)
            ;
        fprintf(f, "{\"x-closed\":true}\n");
        fclose(f);
        _exit(0);
    }
    xlq_close(c);
    return 0;
}

int xlq_spawn_dm(unsigned domid, const struct xl_cfg *cfg, const char *restore_file,
                 pid_t *dmpid)
{
    bool xenopsd = is_xenopsd();
    char p[256], d[4200];
    snprintf(d, sizeof(d), "%s/xl/run", g_rundir);
    mkdir(d, 0755);
    snprintf(p, sizeof(p), "/libxl/%u/xensim-manager", domid);
    if (xswrite(p, xenopsd ? "xenopsd" : "libxl") < 0)
        return -1;
    snprintf(p, sizeof(p), "/local/domain/0/device-model/%u", domid);
    if (xswrite(p, "") < 0)
        return -1;
    int restore_fd = -1, qmp_fd = -1;
    if (restore_file) {
        restore_fd = open(restore_file, O_RDONLY | O_CLOEXEC);
        if (restore_fd < 0)
            return fail("opening %s: %s", restore_file, strerror(errno));
    }
    bool restricted = !xenopsd && cfg->dm_restrict;
    if (restricted) {
        char sock[4200];
        run_path("qmp-libxl", domid, sock, sizeof(sock));
        if ((qmp_fd = pre_open_socket(sock)) < 0) {
            if (restore_fd >= 0)
                close(restore_fd);
            return -1;
        }
    }
    static argvec a;
    memset(&a, 0, sizeof(a));
    if (xenopsd)
        args_xenopsd(&a, domid, cfg, restore_fd);
    else
        args_libxl(&a, domid, cfg, qmp_fd, restore_fd);
    a.v[a.n] = NULL;
    char logpath[4400];
    int keep[2], nkeep = 0;
    if (qmp_fd >= 0)
        keep[nkeep++] = qmp_fd;
    if (restore_fd >= 0)
        keep[nkeep++] = restore_fd;
    pid_t pid = xl_exec_dm(a.v, domid, cfg->name, keep, nkeep, logpath, sizeof(logpath));
    if (qmp_fd >= 0)
        close(qmp_fd);
    if (restore_fd >= 0)
        close(restore_fd);
    if (pid < 0)
        return -1;
    *dmpid = pid;
    char v[32];
    snprintf(p, sizeof(p), "/local/domain/%u/image/device-model-pid", domid);
    snprintf(v, sizeof(v), "%ld", (long)pid);
    if (xswrite(p, v) < 0)
        return -1;
    int r;
    if (xenopsd) {
        r = xenopsd_event_connection(domid, pid);
    } else if (restricted) {
        /* device_model_qmp_cb: query-status says prelaunch (fresh) or
         * paused (restore); anything else fails the start. */
        json_t *ret = NULL;
        r = qmp_once(domid, "query-status", NULL, -1, &ret, DM_START_TIMEOUT);
        const char *st = json_string_value(json_object_get(ret, "status"));
        const char *want = restore_file ? "paused" : "prelaunch";
        if (r == 0 && (!st || strcmp(st, want) != 0))
            r = fail("domain %u: device model reports status '%s', expected '%s'", domid,
                     st ? st : "?", want);
        json_decref(ret);
    } else {
        snprintf(p, sizeof(p), "/local/domain/0/device-model/%u/state", domid);
        r = wait_value(p, "running", bound(DM_START_TIMEOUT), pid, NULL, 0);
        if (r == -3)
            r = fail("device model (pid %ld) died before it was ready; see %s", (long)pid,
                     logpath);
        else if (r < 0)
            r = fail("Device Model startup timed out (domain %u); see %s", domid, logpath);
    }
    if (r == 0 && !xenopsd)
        r = postconfig_chardev(domid);
    if (r < 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -1;
    }
    return 0;
}

int xlq_dm_resume(unsigned domid)
{
    if (domain_is_xenopsd(domid))
        return 0;
    /* libxl: `cont` on every unpause, whatever the state (60 s). */
    return qmp_once(domid, "cont", NULL, -1, NULL, DM_START_TIMEOUT);
}

int xlq_logdirty(unsigned domid, bool enable)
{
    /* After xenopsd's suspend the dm is gone (after_suspend_image):
     * emu-manager turned the log off before that. */
    char *gone = xsread("/libxl", domid, "xensim-dm-stopped");
    free(gone);
    if (gone && !enable)
        return 0;
    return qmp_once(domid, "xen-set-global-dirty-log", json_pack("{s:b}", "enable", enable), -1,
                    NULL, 10);
}

/* libxl__qmp_suspend_save: stop, add-fd, xen-save-devices-state. */
static int suspend_libxl(unsigned domid, int fd, bool live)
{
    json_t *ret = NULL;
    if (qmp_once(domid, "stop", NULL, -1, NULL, -1) < 0 ||
        qmp_once(domid, "add-fd", NULL, fd, &ret, -1) < 0)
        return -1;
    json_int_t set = json_integer_value(json_object_get(ret, "fdset-id"));
    json_decref(ret);
    char fn[64];
    snprintf(fn, sizeof(fn), "/dev/fdset/%lld", (long long)set);
    /* QEMU >= 2.11 gets the argument: true only for LIBXL_SUSPEND_LIVE. */
    return qmp_once(domid, "xen-save-devices-state",
                    json_pack("{s:s,s:b}", "filename", fn, "live", live), -1, NULL, -1);
}

/* after_suspend_image: SIGTERM, and SIGKILL if the dm survives the bound.
 * The dm is not our child (xl create exited): its exit is awaited on a
 * pidfd. */
static int stop_dm(pid_t pid)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0)
        return errno == ESRCH ? 0 : fail("pidfd_open(%ld): %s", (long)pid, strerror(errno));
    int rc = 0;
    if (kill(pid, SIGTERM) < 0 && errno != ESRCH) {
        rc = fail("SIGTERM to the device model %ld: %s", (long)pid, strerror(errno));
    } else {
        struct pollfd p = { pfd, POLLIN, 0 };
        if (poll(&p, 1, bound(DM_START_TIMEOUT) * 1000) <= 0) {
            fprintf(stderr, "xenopsd: device model %ld survived SIGTERM; SIGKILL\n", (long)pid);
            kill(pid, SIGKILL);
        }
    }
    close(pfd);
    return rc;
}

/* assert_can_suspend: query-migratable (CommandNotFound tolerated); a
 * refusal is recorded in data/cant_suspend_reason and stops the suspend. */
static int xenopsd_can_suspend(unsigned domid)
{
    char sock[4200], err[512], p[96];
    run_path("qmp-libxl", domid, sock, sizeof(sock));
    xlq *c = xlq_open(sock, XLQ_XENOPSD, domid, bound(DM_START_TIMEOUT) * 1000, err, sizeof(err));
    if (!c)
        return fail("domain %u: %s", domid, err);
    int r = xlq_exec(c, "query-migratable", NULL, -1, NULL, bound(DM_START_TIMEOUT) * 1000, err,
                     sizeof(err));
    xlq_close(c);
    snprintf(p, sizeof(p), "/local/domain/%u/data/cant_suspend_reason", domid);
    if (r == 0 || strstr(err, "CommandNotFound")) {
        xs_rm(g_xs, XBT_NULL, p);
        return 0;
    }
    xswrite(p, err);
    return fail("domain %u cannot be suspended: %s", domid, err);
}

/* assert_can_suspend, then Qemu_upstream_compat.Dm.suspend: add-fd (fd
 * first, alone), stop, xen-save-devices-state without live, remove-fd;
 * then emu-manager's dirty log off and after_suspend_image's SIGTERM. */
static int suspend_xenopsd(unsigned domid, int fd)
{
    json_t *ret = NULL;
    if (xenopsd_can_suspend(domid) < 0 || qmp_once(domid, "add-fd", NULL, fd, &ret, -1) < 0)
        return -1;
    json_int_t set = json_integer_value(json_object_get(ret, "fdset-id"));
    json_decref(ret);
    char fn[64];
    snprintf(fn, sizeof(fn), "/dev/fdset/%lld", (long long)set);
    if (qmp_once(domid, "stop", NULL, -1, NULL, -1) < 0 ||
        qmp_once(domid, "xen-save-devices-state", json_pack("{s:s}", "filename", fn), -1, NULL,
                 -1) < 0 ||
        qmp_once(domid, "remove-fd", json_pack("{s:I}", "fdset-id", set), -1, NULL, -1) < 0 ||
        xlq_logdirty(domid, false) < 0)
        return -1;
    char *pid = xsread("/local/domain", domid, "image/device-model-pid");
    long v = pid ? strtol(pid, NULL, 10) : 0;
    free(pid);
    if (v > 1 && stop_dm((pid_t)v) < 0)
        return -1;
    char p[64];
    snprintf(p, sizeof(p), "/libxl/%u/xensim-dm-stopped", domid);
    return xswrite(p, "1");
}

int xlq_suspend_dm(unsigned domid, const char *save_file, bool live)
{
    bool xenopsd = domain_is_xenopsd(domid);
    /* libxl: O_WRONLY|O_CREAT 0600, no O_TRUNC; xenopsd: 0660. */
    int fd = open(save_file, O_WRONLY | O_CREAT | O_CLOEXEC, xenopsd ? 0660 : 0600);
    if (fd < 0)
        return fail("opening %s: %s", save_file, strerror(errno));
    int r = xenopsd ? suspend_xenopsd(domid, fd) : suspend_libxl(domid, fd, live);
    close(fd);   /* libxl closes its copy once add-fd answered */
    if (r < 0)
        unlink(save_file);   /* libxl deletes the file when the save failed */
    return r;
}
