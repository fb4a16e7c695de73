/*
 * Child processes for tests and benchmarks: start a program with its
 * output appended to a log, read its resident memory, and stand in for
 * another process that wants a dm's image.
 */
#ifndef PROC_UTIL_H
#define PROC_UTIL_H

#include <sys/types.h>

/* fork + execv(argv[0]) with stdout and stderr appended to log; the child
 * inherits the caller's CPU affinity and fds not marked close-on-exec.
 * The pid, or -1 when fork failed (errno set). */
pid_t proc_spawn_logged(char *const argv[], const char *log);
/* VmRSS of pid in KiB, or -1. */
long proc_rss_kib(pid_t pid);
/* Another process's view of a disk image: an OFD write lock on the whole
 * file, as a second dm would take it.  The fd holding it, -1 when someone
 * else holds the lock, -2 when the file cannot be opened. */
int proc_lock_image(const char *path);

#endif
