/*
 * Dropping privileges after start-up (qemu-xen dialect: -runas, -chroot,
 * -run-with), as QEMU does: the user is looked up while /etc is still
 * reachable, then chroot, then the groups and ids are changed for good.
 */
#ifndef DM_PRIVS_H
#define DM_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct dm_privs {
    bool has_user;
    uid_t uid;
    gid_t gid;
    char chroot_dir[512];        /* "" for none */
} dm_privs;

/* runas is "user", "user:group" or QEMU's numeric "uid:gid" (libxl's
 * per-domain ids); chroot_dir may be NULL.  Resolved now.  0, or -EINVAL /
 * -ENOENT with why naming the user or group. */
int dm_privs_prepare(dm_privs *p, const char *runas, const char *chroot_dir, char *why,
                     size_t why_len);

/* chroot (then chdir "/"), setgroups to the primary group only, setgid,
 * setuid, and a check that root cannot be regained.  0 or a negative
 * errno with why naming the step. */
int dm_privs_drop(const dm_privs *p, char *why, size_t why_len);

#endif
