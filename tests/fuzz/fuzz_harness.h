/*
 * What the libFuzzer targets share: failing with a reason, a private
 * scratch directory removed at exit, and feeding a byte stream to a
 * server over a socket while pumping it, as one client would.
 * Header-only (static inline) so `make fuzz` needs no rule for it.
 */
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A broken property: say which and why, then abort so libFuzzer keeps the
 * input. */
static inline void fuzz_die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, why);
    abort();
}

static char fuzz_scratch_dir[64];

static inline int fuzz_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    remove(path);
    return 0;
}

static inline void fuzz_scratch_remove(void)
{
    nftw(fuzz_scratch_dir, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new directory under /tmp, removed with its contents when the fuzzer
 * exits (files a target makes must never land in the tree). */
static inline const char *fuzz_scratch(const char *name)
{
    snprintf(fuzz_scratch_dir, sizeof(fuzz_scratch_dir), "/tmp/rsdm-fuzz-%s.XXXXXX", name);
    if (!mkdtemp(fuzz_scratch_dir))
        fuzz_die("mkdtemp", strerror(errno));
    atexit(fuzz_scratch_remove);
    return fuzz_scratch_dir;
}

/* Sends data[0..size) on fd in chunks of `chunk` bytes, calling pump(arg)
 * after each attempt, then half-closes and pumps until *eof (the server
 * closed its side).  Every loop is bounded; false when the server never
 * closed. */
static inline bool fuzz_feed(int fd, const uint8_t *data, size_t size, size_t chunk,
                             void (*pump)(void *), void *arg, const bool *eof)
{
    size_t off = 0;
    for (int rounds = 0; off < size && rounds < 100000; rounds++) {
        size_t n = size - off < chunk ? size - off : chunk;
        ssize_t w = send(fd, data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN)
            break;                  /* the server dropped the client */
        pump(arg);
    }
    shutdown(fd, SHUT_WR);
    for (int rounds = 0; rounds < 10000 && !*eof; rounds++)
        pump(arg);
    return *eof;
}

#endif
