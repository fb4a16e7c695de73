/*
 * Character back-ends for the dm's serial port, parsed from QEMU's
 * `-serial` syntax:
 *
 *   pty                    a new pseudo-terminal; its slave path goes to
 *                          /local/domain/<domid>/serial/0/tty for `xl console`
 *   file:PATH              output appended to PATH (input: none)
 *   unix:PATH[,server][,nowait]
 *                          a Unix stream socket: connect to PATH, or listen
 *                          on it (server) and serve one client at a time
 *   null                   output discarded, no input
 *   stdio                  the dm's stdin/stdout
 *
 * Flow control, so that no byte is lost or duplicated: dm_chardev_write
 * returns how many bytes the back-end took; when it takes fewer, the peer
 * keeps the rest and is called back (writable) when the back-end can take
 * more.  Input is read only while the peer says it has room (can_receive),
 * and never more than that.
 *
 * Output nobody can receive is discarded and counted (QEMU does the same):
 * a pty with no reader attached, a client socket whose peer went away, a
 * `server,nowait` socket without a client.  A `server` socket without
 * `nowait` holds output until its first client connects.
 *
 * [main] throughout; the chardev's fds are watched by the dm_loop.
 */
#ifndef DM_CHARDEV_H
#define DM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm_loop.h"

typedef enum dm_chardev_kind {
    DM_CHR_NULL,
    DM_CHR_PTY,
    DM_CHR_FILE,
    DM_CHR_UNIX,
    DM_CHR_STDIO,
    DM_CHR_FD,                  /* an fd handed over (tests, inherited sockets) */
} dm_chardev_kind;

/* A parsed -serial value.  path is empty unless kind is FILE or UNIX. */
typedef struct dm_chardev_spec {
    dm_chardev_kind kind;
    char path[256];
    bool server;
    bool nowait;
} dm_chardev_spec;

/* Parses spec without opening anything; err says what is wrong and lists
 * what is supported.  -EINVAL on a bad spec. */
int dm_chardev_parse(const char *spec, dm_chardev_spec *out, char *err, size_t errlen);
const char *dm_chardev_kind_name(dm_chardev_kind kind);

typedef struct dm_chardev dm_chardev;

typedef struct dm_chardev_peer {
    size_t (*can_receive)(void *opaque);     /* bytes the peer can take now */
    void (*receive)(void *opaque, const uint8_t *buf, size_t len);
    void (*writable)(void *opaque);          /* output room again after a short write */
} dm_chardev_peer;

/* Opens what spec names.  On failure err names the back-end and the cause
 * and a negative errno is returned. */
int dm_chardev_open(dm_loop *loop, const char *spec, dm_chardev **out, char *err, size_t errlen);
/* Wraps a connected, bidirectional fd (a socketpair in tests).  The chardev
 * owns fd from now on, and makes it non-blocking. */
int dm_chardev_from_fd(dm_loop *loop, int fd, const char *label, dm_chardev **out);
void dm_chardev_close(dm_chardev *chr);

void dm_chardev_set_peer(dm_chardev *chr, const dm_chardev_peer *peer, void *opaque);

/* Takes up to len bytes; returns how many it took (0 when it cannot take
 * any now: the peer is told through writable() when it can). */
size_t dm_chardev_write(dm_chardev *chr, const uint8_t *buf, size_t len);
/* The peer has room again: resume reading. */
void dm_chardev_accept_input(dm_chardev *chr);

dm_chardev_kind dm_chardev_get_kind(const dm_chardev *chr);
/* The pty's slave path ("/dev/pts/3"), or NULL for other kinds. */
const char *dm_chardev_pty_path(const dm_chardev *chr);
bool dm_chardev_connected(const dm_chardev *chr);

typedef struct dm_chardev_stats {
    uint64_t written;           /* bytes the back-end took */
    uint64_t read;              /* bytes delivered to the peer */
    uint64_t discarded;         /* output nobody could receive */
    uint64_t short_writes;      /* times the back-end took less than offered */
} dm_chardev_stats;
void dm_chardev_get_stats(const dm_chardev *chr, dm_chardev_stats *out);

#endif
