/*
 * libFuzzer target: rsdm's command line (dm_args_parse).  The input is
 * split at NUL bytes into argv[1..] (argv[0] is "rsdm"), which is how a
 * hostile or broken toolstack would hand it over.  Beyond "no crash":
 * the result is 0 or -EINVAL with a message; an accepted command line
 * satisfies every documented bound; every string the parser kept is
 * readable to its terminator; parsing is deterministic.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm_args.h"

#define MAX_ARGS 64

/* A kept string is read to its end: one pointing at freed or stack memory
 * (or without a terminator) is caught by ASan.  Where it lives -- argv,
 * a buffer in dm_args, a literal the parser normalised to -- is the
 * parser's business. */
static volatile size_t g_chars;     /* so the reads are not optimised away */

static void check_str(const char *s)
{
    if (s)
        g_chars += strlen(s);
}

static void check_accepted(const dm_args *a)
{
    if (a->nserial > DM_ARGS_MAX_SERIAL || a->nignored > DM_ARGS_MAX_IGNORED)
        abort();
    for (unsigned i = 0; i < a->nserial; i++)
        check_str(a->serial[i]);
    /* An ignored option's name is the table's spelling; its value is the
     * caller's. */
    for (unsigned i = 0; i < a->nignored; i++) {
        if (!a->ignored[i].opt || !a->ignored[i].opt[0])
            abort();
        check_str(a->ignored[i].value);
    }
    check_str(a->domain_name);
    check_str(a->loadvm);
    check_str(a->machine);
    /* The qemu-xen dialect names its machine by a constant (its option
     * string has more in it). */
    if (a->dialect == DM_DIALECT_QEMU_XEN) {
        if (a->machine && strcmp(a->machine, "xenfv") != 0 && strcmp(a->machine, "none") != 0)
            abort();
        if (a->nmonitors > DM_ARGS_MAX_MONITORS || a->disks.n > DM_DISKS_MAX ||
            a->probe != (a->machine && !strcmp(a->machine, "none")))
            abort();
    }
    check_str(a->vcpu_avail);
    check_str(a->save_dir);
    check_str(a->config);
    if (a->help || a->version)
        return;
    /* libxl's probe runs without a domain. */
    if (!(a->probe && a->domid == -1) && (a->domid < 1 || a->domid > DM_DOMID_MAX))
        abort();
    if (a->vcpus < 1 || a->vcpus > DM_VCPUS_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        dm_log_set_level(DM_LOG_ERROR);
        quiet = 1;
    }
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';

    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"rsdm";
    for (size_t off = 0; off <= size && argc < MAX_ARGS + 1;) {
        argv[argc++] = buf + off;
        off += strlen(buf + off) + 1;
    }
    if (size == 0)
        argc = 1;          /* no arguments at all */
    argv[argc] = NULL;

    dm_args a, b;
    char err[256], err2[256];
    err[0] = err2[0] = '\0';
    int rc = dm_args_parse(&a, argc, argv, err, sizeof(err));
    if (rc != 0 && rc != -EINVAL)
        abort();
    if (rc == -EINVAL && (err[0] == '\0' || !memchr(err, '\0', sizeof(err))))
        abort();
    if (rc == 0) {
        check_accepted(&a);
        dm_args_log_ignored(&a);
    }

    int rc2 = dm_args_parse(&b, argc, argv, err2, sizeof(err2));
    if (rc2 != rc || (rc < 0 && strcmp(err, err2) != 0))
        abort();
    if (rc == 0 && (a.domid != b.domid || a.nserial != b.nserial || a.vcpus != b.vcpus ||
                    a.ram_mb != b.ram_mb || a.nignored != b.nignored || a.loadvm != b.loadvm))
        abort();
    free(buf);
    return 0;
}
