/*
 * Child processes for tests and benchmarks: start a program with its
 * output appended to a log, and read its resident memory.
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

#endif
