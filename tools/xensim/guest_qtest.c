/*
 * xensim guests: the qtest back-end.  QEMU is started with `-accel qtest`
 * and connects to our listening socket; every access is one text line and
 * one "OK ..." answer.  Interrupts arrive as unsolicited "IRQ raise N" /
 * "IRQ lower N" lines once `irq_intercept_in ioapic` is on; they can come
 * between any command and its answer, so every read path records them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest_qtest.h"

struct qt {
    pthread_mutex_t lock;   /* one command in flight at a time */
    pthread_cond_t irq_cond;
    int fd;
    pid_t pid;
    char sock[108];
    char buf[1 << 17];
    size_t have;
    int level[GUEST_NR_GSIS];
    uint64_t raises[GUEST_NR_GSIS];
    char *line;             /* last answer line, for the caller */
    size_t line_cap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *guest_qtest_find_qemu(void)
{
    const char *env = getenv("QEMU");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    static const char *const cands[] = {
        "/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64",
    };
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

/* Take one complete line out of the buffer into q->line; 1 if one was
 * there, 0 if not.  IRQ lines are handled here and not returned. */
static int take_line(struct qt *q)
{
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->have);
        if (!nl)
            return 0;
        size_t len = (size_t)(nl - q->buf);
        if (len + 1 > q->line_cap) {
            char *n = realloc(q->line, len + 1);
            if (!n)
                return -1;
            q->line = n;
            q->line_cap = len + 1;
        }
        memcpy(q->line, q->buf, len);
        q->line[len] = '\0';
        memmove(q->buf, nl + 1, q->have - len - 1);
        q->have -= len + 1;
        unsigned gsi;
        if (sscanf(q->line, "IRQ raise %u", &gsi) == 1) {
            if (gsi < GUEST_NR_GSIS) {
                if (!q->level[gsi])
                    q->raises[gsi]++;
                q->level[gsi] = 1;
            }
            pthread_cond_broadcast(&q->irq_cond);
            continue;
        }
        if (sscanf(q->line, "IRQ lower %u", &gsi) == 1) {
            if (gsi < GUEST_NR_GSIS)
                q->level[gsi] = 0;
            continue;
        }
        return 1;
    }
}

/* Read more bytes, waiting at most timeout_ms.  1 data, 0 timeout, -1 error. */
static int fill(struct guest_bus *b, struct qt *q, int timeout_ms)
{
    if (q->have == sizeof(q->buf))
        return guest_bus_fail(b, "qtest: answer line longer than %zu bytes", sizeof(q->buf));
    struct pollfd p = { .fd = q->fd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        return guest_bus_fail(b, "qtest: poll: %s", strerror(errno));
    if (r <= 0)
        return 0;
    ssize_t n = read(q->fd, q->buf + q->have, sizeof(q->buf) - q->have);
    if (n == 0)
        return guest_bus_fail(b, "qtest: QEMU closed the connection (did it exit?)");
    if (n < 0)
        return errno == EINTR ? 0 : guest_bus_fail(b, "qtest: read: %s", strerror(errno));
    q->have += (size_t)n;
    return 1;
}

/* Send a command and wait for its answer; q->line holds the text after
 * "OK" (possibly empty).  Called with q->lock held. */
static int command(struct guest_bus *b, const char *cmd)
{
    struct qt *q = b->priv;
    size_t len = strlen(cmd), off = 0;
    while (off < len) {
        /* MSG_NOSIGNAL: QEMU gone (S5, crash) must be an error, not SIGPIPE. */
        ssize_t n = send(q->fd, cmd + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return guest_bus_fail(b, "qtest: write: %s", strerror(errno));
        off += (size_t)n;
    }
    int64_t deadline = now_ms() + b->timeout_ms;
    for (;;) {
        int t = take_line(q);
        if (t < 0)
            return guest_bus_fail(b, "qtest: out of memory");
        if (t == 1)
            break;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return guest_bus_fail(b, "qtest: no answer to \"%.*s\" within %d ms",
                                  (int)(len - 1), cmd, b->timeout_ms);
        if (fill(b, q, (int)left) < 0)
            return -1;
    }
    if (strncmp(q->line, "OK", 2) != 0)
        return guest_bus_fail(b, "qtest: \"%.*s\" answered \"%s\"", (int)(len - 1), cmd, q->line);
    return 0;
}

static int command_val(struct guest_bus *b, const char *cmd, uint64_t *v)
{
    struct qt *q = b->priv;
    if (command(b, cmd) < 0)
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(q->line + 2, &end, 0);
    if (errno || end == q->line + 2)
        return guest_bus_fail(b, "qtest: \"%s\" has no value", q->line);
    *v = x;
    return 0;
}

static const char *sz_suffix(unsigned size)
{
    return size == 1 ? "b" : size == 2 ? "w" : size == 4 ? "l" : size == 8 ? "q" : NULL;
}

static int qt_pio_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val)
{
    struct qt *q = b->priv;
    if (size != 1 && size != 2 && size != 4)
        return guest_bus_fail(b, "port read of %u bytes", size);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "in%s 0x%x\n", sz_suffix(size), port);
    uint64_t v = 0;
    pthread_mutex_lock(&q->lock);
    int r = command_val(b, cmd, &v);
    pthread_mutex_unlock(&q->lock);
    *val = (uint32_t)v;
    return r;
}

static int qt_pio_out(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val)
{
    struct qt *q = b->priv;
    if (size != 1 && size != 2 && size != 4)
        return guest_bus_fail(b, "port write of %u bytes", size);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "out%s 0x%x 0x%x\n", sz_suffix(size), port, val);
    pthread_mutex_lock(&q->lock);
    int r = command(b, cmd);
    pthread_mutex_unlock(&q->lock);
    return r;
}

static int qt_mmio_read(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t *val)
{
    struct qt *q = b->priv;
    const char *s = sz_suffix(size);
    if (!s)
        return guest_bus_fail(b, "MMIO read of %u bytes", size);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "read%s 0x%" PRIx64 "\n", s, addr);
    pthread_mutex_lock(&q->lock);
    int r = command_val(b, cmd, val);
    pthread_mutex_unlock(&q->lock);
    return r;
}

static int qt_mmio_write(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t val)
{
    struct qt *q = b->priv;
    const char *s = sz_suffix(size);
    if (!s)
        return guest_bus_fail(b, "MMIO write of %u bytes", size);
    char cmd[80];
    snprintf(cmd, sizeof(cmd), "write%s 0x%" PRIx64 " 0x%" PRIx64 "\n", s, addr, val);
    pthread_mutex_lock(&q->lock);
    int r = command(b, cmd);
    pthread_mutex_unlock(&q->lock);
    return r;
}

#define QT_CHUNK 16384u

static int qt_mem_read(struct guest_bus *b, uint64_t gpa, void *buf, size_t len)
{
    struct qt *q = b->priv;
    uint8_t *out = buf;
    while (len) {
        size_t n = len < QT_CHUNK ? len : QT_CHUNK;
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "read 0x%" PRIx64 " 0x%zx\n", gpa, n);
        pthread_mutex_lock(&q->lock);
        int r = command(b, cmd);
        if (r == 0) {
            const char *h = q->line + 2;
            while (*h == ' ')
                h++;
            if (strncmp(h, "0x", 2) != 0 || strlen(h + 2) != 2 * n)
                r = guest_bus_fail(b, "qtest: read of %zu bytes answered %zu hex digits",
                                   n, strlen(h));
            else
                for (size_t i = 0; i < n; i++) {
                    unsigned x;
                    if (sscanf(h + 2 + 2 * i, "%2x", &x) != 1) {
                        r = guest_bus_fail(b, "qtest: bad hex in read answer");
                        break;
                    }
                    out[i] = (uint8_t)x;
                }
        }
        pthread_mutex_unlock(&q->lock);
        if (r < 0)
            return -1;
        out += n;
        gpa += n;
        len -= n;
    }
    return 0;
}

static int qt_mem_write(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len)
{
    struct qt *q = b->priv;
    const uint8_t *in = buf;
    static const char hex[] = "0123456789abcdef";
    char *cmd = malloc(64 + 2 * QT_CHUNK);
    if (!cmd)
        return guest_bus_fail(b, "qtest: out of memory");
    int r = 0;
    while (len && r == 0) {
        size_t n = len < QT_CHUNK ? len : QT_CHUNK;
        int k = snprintf(cmd, 64, "write 0x%" PRIx64 " 0x%zx 0x", gpa, n);
        char *p = cmd + k;
        for (size_t i = 0; i < n; i++) {
            *p++ = hex[in[i] >> 4];
            *p++ = hex[in[i] & 15];
        }
        *p++ = '\n';
        *p = '\0';
        pthread_mutex_lock(&q->lock);
        r = command(b, cmd);
        pthread_mutex_unlock(&q->lock);
        in += n;
        gpa += n;
        len -= n;
    }
    free(cmd);
    return r;
}

static int qt_irq_wait(struct guest_bus *b, unsigned gsi, int timeout_ms)
{
    struct qt *q = b->priv;
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&q->lock);
    int r = 0;
    for (;;) {
        if (take_line(q) == 1) {
            r = guest_bus_fail(b, "qtest: unexpected line \"%s\"", q->line);
            break;
        }
        if (q->level[gsi]) {
            r = 1;
            break;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        if (fill(b, q, (int)left) < 0) {
            r = -1;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return r;
}

static int qt_irq_level(struct guest_bus *b, unsigned gsi)
{
    struct qt *q = b->priv;
    pthread_mutex_lock(&q->lock);
    /* Collect whatever QEMU already sent without waiting. */
    int r = 0;
    while (r == 0 && fill(b, q, 0) == 1)
        if (take_line(q) == 1)
            r = guest_bus_fail(b, "qtest: unexpected line \"%s\"", q->line);
    int lv = q->level[gsi];
    pthread_mutex_unlock(&q->lock);
    return r < 0 ? -1 : lv;
}

static uint64_t qt_irq_count(struct guest_bus *b, unsigned gsi)
{
    struct qt *q = b->priv;
    pthread_mutex_lock(&q->lock);
    uint64_t n = q->raises[gsi];
    pthread_mutex_unlock(&q->lock);
    return n;
}

static int qt_clock_step(struct guest_bus *b, uint64_t ns)
{
    struct qt *q = b->priv;
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "clock_step %" PRIu64 "\n", ns);
    pthread_mutex_lock(&q->lock);
    int r = command(b, cmd);
    pthread_mutex_unlock(&q->lock);
    return r;
}

static void qt_close(struct guest_bus *b)
{
    struct qt *q = b->priv;
    if (!q)
        return;
    if (q->fd >= 0)
        close(q->fd);
    if (q->pid > 0) {
        /* QEMU (our child) exits cleanly on SIGTERM, flushing its files;
         * SIGKILL only if it has not gone within 5 s. */
        int st;
        kill(q->pid, SIGTERM);
        int64_t deadline = now_ms() + 5000;
        while (waitpid(q->pid, &st, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(q->pid, SIGKILL);
                waitpid(q->pid, &st, 0);
                break;
            }
            struct pollfd none;
            poll(&none, 0, 10); /* bounded reap loop, not synchronisation */
        }
    }
    if (q->sock[0])
        unlink(q->sock);
    free(q->line);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->irq_cond);
    free(q);
    b->priv = NULL;
}

/* Whether this QEMU has the qtest accelerator.  Debian's 7.2 build lacks
 * it; there TCG with -S stands in: the vCPUs never run (so no firmware
 * touches the devices behind our back) while qtest commands still reach
 * the devices and the block layer completes I/O. */
static bool has_qtest_accel(const char *qemu)
{
    char cmd[600];
    if (strchr(qemu, '\'') || snprintf(cmd, sizeof(cmd), "'%s' -accel help 2>/dev/null", qemu) >= (int)sizeof(cmd))
        return false;
    FILE *p = popen(cmd, "r");
    if (!p)
        return false;
    char line[128];
    bool found = false;
    while (fgets(line, sizeof(line), p))
        if (strncmp(line, "qtest", 5) == 0)
            found = true;
    pclose(p);
    return found;
}

static const struct guest_bus_ops qt_ops = {
    .pio_in = qt_pio_in, .pio_out = qt_pio_out,
    .mmio_read = qt_mmio_read, .mmio_write = qt_mmio_write,
    .mem_read = qt_mem_read, .mem_write = qt_mem_write,
    .irq_wait = qt_irq_wait, .irq_level = qt_irq_level, .irq_count = qt_irq_count,
    .clock_step = qt_clock_step, .close = qt_close,
};

int guest_qtest_open(struct guest_bus *b, const struct guest_qtest_cfg *cfg,
                     char *err, size_t errlen)
{
    const char *qemu = cfg->qemu ? cfg->qemu : guest_qtest_find_qemu();
    if (!qemu) {
        snprintf(err, errlen, "qemu-system-x86_64 not found (install qemu-system-x86 or set QEMU)");
        return -1;
    }
    if (!cfg->machine || (strcmp(cfg->machine, "pc") && strcmp(cfg->machine, "q35"))) {
        snprintf(err, errlen, "qtest: machine must be \"pc\" or \"q35\"");
        return -1;
    }
    struct qt *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "qtest: out of memory");
        return -1;
    }
    q->fd = -1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->irq_cond, NULL);
    unsigned mib = cfg->memory_mib ? cfg->memory_mib : 64;
    guest_bus_init(b, &qt_ops, q, 1u << 20, (uint64_t)mib << 20);

    int n = snprintf(q->sock, sizeof(q->sock), "%s/qtest-%d.sock",
                     cfg->workdir ? cfg->workdir : "/tmp", (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(q->sock)) {
        snprintf(err, errlen, "qtest: socket path too long");
        q->sock[0] = '\0';
        goto fail;
    }
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        snprintf(err, errlen, "qtest: socket: %s", strerror(errno));
        goto fail;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, q->sock, strlen(q->sock) + 1);
    unlink(q->sock);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
        snprintf(err, errlen, "qtest: bind/listen %s: %s", q->sock, strerror(errno));
        close(lfd);
        goto fail;
    }

    char mem[16], qtarg[160], drive[600], serial[600];
    snprintf(mem, sizeof(mem), "%u", mib);
    snprintf(qtarg, sizeof(qtarg), "unix:%s", q->sock);
    const char *argv[32];
    int a = 0;
    argv[a++] = qemu;
    argv[a++] = "-machine"; argv[a++] = cfg->machine;
    if (has_qtest_accel(qemu)) {
        argv[a++] = "-accel"; argv[a++] = "qtest";
    } else {
        argv[a++] = "-accel"; argv[a++] = "tcg";
        argv[a++] = "-S";
    }
    argv[a++] = "-qtest"; argv[a++] = qtarg;
    argv[a++] = "-qtest-log"; argv[a++] = "/dev/null";
    argv[a++] = "-display"; argv[a++] = "none";
    argv[a++] = "-nodefaults";
    argv[a++] = "-m"; argv[a++] = mem;
    if (cfg->disk) {
        /* `if=ide` lands on PIIX3 IDE primary master (pc) or the ICH9
         * AHCI's port 0 (q35). */
        snprintf(drive, sizeof(drive), "file=%s,if=ide,format=raw,cache=writeback", cfg->disk);
        argv[a++] = "-drive"; argv[a++] = drive;
    }
    if (cfg->serial_sock) {
        snprintf(serial, sizeof(serial), "unix:%s,server=on,wait=off", cfg->serial_sock);
        argv[a++] = "-serial"; argv[a++] = serial;
    } else if (cfg->serial_file) {
        snprintf(serial, sizeof(serial), "file:%s", cfg->serial_file);
        argv[a++] = "-serial"; argv[a++] = serial;
    }
    argv[a] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "qtest: fork: %s", strerror(errno));
        close(lfd);
        goto fail;
    }
    if (pid == 0) {
        /* QEMU must not outlive a test killed by its timeout. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(qemu, (char *const *)argv);
        fprintf(stderr, "qtest: exec %s: %s\n", qemu, strerror(errno));
        _exit(127);
    }
    q->pid = pid;
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    int64_t deadline = now_ms() + 20000;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            q->pid = 0;
            snprintf(err, errlen, "qtest: %s exited (status 0x%x) before connecting", qemu, st);
            close(lfd);
            goto fail;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            snprintf(err, errlen, "qtest: %s did not connect within 20 s", qemu);
            close(lfd);
            goto fail;
        }
        int r = poll(&p, 1, left > 200 ? 200 : (int)left);
        if (r > 0)
            break;
    }
    q->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    close(lfd);
    if (q->fd < 0) {
        snprintf(err, errlen, "qtest: accept: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_lock(&q->lock);
    int r = command(b, "irq_intercept_in ioapic\n");
    pthread_mutex_unlock(&q->lock);
    if (r < 0) {
        snprintf(err, errlen, "%s", b->err);
        goto fail;
    }
    return 0;
fail:
    qt_close(b);
    return -1;
}
