/*
 * xensim guests: the host end of the dm's serial chardev (a unix socket
 * the dm serves: `-serial unix:PATH,server`).  One reader per path appends
 * what the guest wrote to a log file and checks the guest's numbered lines
 * ("g%08u\n"); `uart-send` writes into it.  The object for a path outlives
 * the workloads using it, so a guest restored into a new dm on the same
 * path continues its stream: the reader drains the old dm to EOF before it
 * connects to the new one, and the line numbers carry on.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hv.h"
#include "guest_wl_internal.h"

#define CON_MAX 64

struct wl_con {
    char path[GUEST_SPEC_PATH];
    char log[GUEST_SPEC_PATH + 8];
    pthread_mutex_t lock;
    int refs;
    int fd, logfd;
    bool reader;
    pthread_t th;
    uint64_t rx_next, tx_next;
    char line[64];
    unsigned len;
    struct wl_con_stats st;
};

static pthread_mutex_t con_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wl_con *cons[CON_MAX];

static void line_done(struct wl_con *c)
{
    c->line[c->len] = '\0';
    unsigned long long n;
    char tail;
    if (c->len == WL_LINE - 1 && sscanf(c->line, "g%8llu%c", &n, &tail) == 1) {
        c->st.rx_lines++;
        if (n == c->rx_next)
            c->rx_next++;
        else if (n > c->rx_next) {
            c->st.missing += n - c->rx_next;
            c->rx_next = n + 1;
        } else if (n + 1 == c->rx_next)
            c->st.duplicated++;
        else
            c->st.out_of_order++;
    }
    c->len = 0;
}

static void take(struct wl_con *c, const char *buf, size_t n)
{
    if (c->logfd >= 0 && write(c->logfd, buf, n) != (ssize_t)n)
        hv_log("console %s: writing %s: %s", c->path, c->log, strerror(errno));
    c->st.rx_bytes += n;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || c->len + 1 >= sizeof(c->line))
            line_done(c);
        else
            c->line[c->len++] = buf[i];
    }
}

static int try_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *reader_main(void *p)
{
    struct wl_con *c = p;
    char buf[4096];
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (c->fd < 0) {
            if (c->refs == 0)
                break;
            pthread_mutex_unlock(&c->lock);
            int fd = try_connect(c->path);
            if (fd < 0) {
                /* The dm has not bound its socket yet (or is being
                 * replaced): try again shortly. */
                struct timespec ts = { 0, 20 * 1000000 };
                nanosleep(&ts, NULL);
            }
            pthread_mutex_lock(&c->lock);
            c->fd = fd;
            c->st.connected = fd >= 0;
            continue;
        }
        int fd = c->fd;
        pthread_mutex_unlock(&c->lock);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n = 0;
        int pr = poll(&pfd, 1, 100);
        if (pr > 0)
            n = read(fd, buf, sizeof(buf));
        pthread_mutex_lock(&c->lock);
        if (pr > 0 && n > 0)
            take(c, buf, (size_t)n);
        else if (pr > 0 && (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))) {
            close(c->fd);   /* the dm went away: drained to EOF */
            c->fd = -1;
            c->st.connected = false;
        }
    }
    c->reader = false;
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct wl_con *wl_con_open(struct guest_wl *wl, const char *path, const char *log)
{
    pthread_mutex_lock(&con_lock);
    struct wl_con *c = NULL;
    int free_slot = -1;
    for (int i = 0; i < CON_MAX; i++) {
        if (cons[i] && strcmp(cons[i]->path, path) == 0)
            c = cons[i];
        else if (!cons[i] && free_slot < 0)
            free_slot = i;
    }
    if (!c) {
        if (free_slot < 0 || !(c = calloc(1, sizeof(*c)))) {
            pthread_mutex_unlock(&con_lock);
            return NULL;
        }
        snprintf(c->path, sizeof(c->path), "%s", path);
        pthread_mutex_init(&c->lock, NULL);
        c->fd = c->logfd = -1;
        cons[free_slot] = c;
    }
    pthread_mutex_lock(&c->lock);
    if (strcmp(c->log, log) != 0 || c->logfd < 0) {
        if (c->logfd >= 0)
            close(c->logfd);
        snprintf(c->log, sizeof(c->log), "%s", log);
        c->logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (c->logfd < 0)
            hv_log("console %s: cannot open log %s: %s", path, log, strerror(errno));
    }
    if (!wl->resumed) {
        /* A new guest: its streams start at 0 in both directions. */
        c->rx_next = c->tx_next = 0;
        memset(&c->st, 0, sizeof(c->st));
        c->st.connected = c->fd >= 0;
    }
    c->refs++;
    if (!c->reader) {
        if (pthread_create(&c->th, NULL, reader_main, c) == 0) {
            pthread_detach(c->th);
            c->reader = true;
        } else {
            hv_log("console %s: no reader thread", path);
        }
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&con_lock);
    return c;
}

void wl_con_release(struct wl_con *c)
{
    pthread_mutex_lock(&c->lock);
    c->refs--;
    pthread_mutex_unlock(&c->lock);
}

int wl_con_send(struct wl_con *c, const char *text, size_t len, uint64_t count, char *err,
                size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    if (c->fd < 0) {
        snprintf(err, errlen, "console %s: not connected to the dm (is it running with "
                 "-serial unix:%s,server?)", c->path, c->path);
        rc = -ENOTCONN;
    }
    char line[WL_LINE + 1];
    for (uint64_t i = 0; rc == 0 && i < (text ? 1 : count); i++) {
        const char *p = text;
        size_t n = len;
        if (!text) {
            snprintf(line, sizeof(line), "h%08llu\n",
                     (unsigned long long)(c->tx_next % 100000000));
            p = line;
            n = WL_LINE;
        }
        while (n > 0) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                snprintf(err, errlen, "console %s: %s", c->path, strerror(errno));
                rc = -errno;
                break;
            }
            p += w;
            n -= (size_t)w;
        }
        if (rc == 0 && !text) {
            c->tx_next++;
            c->st.tx_lines++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void wl_con_stats(struct wl_con *c, struct wl_con_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}
