/*
 * Privilege drop (dm_privs.h).
 */
#include "dm_privs.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm_log.h"

static bool parse_id(const char *s, unsigned long *out)
{
    if (!*s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v >= UINT_MAX)
        return false;
    *out = v;
    return true;
}

int dm_privs_prepare(dm_privs *p, const char *runas, const char *chroot_dir, char *why,
                     size_t why_len)
{
    memset(p, 0, sizeof(*p));
    if (chroot_dir) {
        if (strlen(chroot_dir) >= sizeof(p->chroot_dir)) {
            snprintf(why, why_len, "chroot directory %.60s... is too long", chroot_dir);
            return -EINVAL;
        }
        strcpy(p->chroot_dir, chroot_dir);
    }
    if (!runas)
        return 0;
    char user[256];
    if (strlen(runas) >= sizeof(user)) {
        snprintf(why, why_len, "-runas '%.60s...' is too long", runas);
        return -EINVAL;
    }
    strcpy(user, runas);
    char *group = strchr(user, ':');
    if (group)
        *group++ = 0;
    unsigned long uid, gid;
    if (group && parse_id(user, &uid) && parse_id(group, &gid)) {
        p->uid = (uid_t)uid;
        p->gid = (gid_t)gid;
        p->has_user = true;
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(why, why_len, "-runas: no user '%s'%s%s", user, errno ? ": " : "",
                 errno ? strerror(errno) : "");
        return -ENOENT;
    }
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    if (group) {
        errno = 0;
        struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(why, why_len, "-runas: no group '%s'", group);
            return -ENOENT;
        }
        p->gid = gr->gr_gid;
    }
    p->has_user = true;
    return 0;
}

int dm_privs_drop(const dm_privs *p, char *why, size_t why_len)
{
    int e;
    if (p->chroot_dir[0]) {
        if (chroot(p->chroot_dir) < 0 || chdir("/") < 0) {
            e = errno;
            snprintf(why, why_len, "chroot %s: %s", p->chroot_dir, strerror(e));
            return -e;
        }
        dm_info("chrooted to %s", p->chroot_dir);
    }
    if (!p->has_user)
        return 0;
    /* Only root may change its groups; an unprivileged dm asked to become
     * itself (tests) keeps them. */
    if (geteuid() == 0 && setgroups(1, &p->gid) < 0) {
        e = errno;
        snprintf(why, why_len, "setgroups(%u): %s", (unsigned)p->gid, strerror(e));
        return -e;
    }
    if (setgid(p->gid) < 0) {
        e = errno;
        snprintf(why, why_len, "setgid(%u): %s", (unsigned)p->gid, strerror(e));
        return -e;
    }
    if (setuid(p->uid) < 0) {
        e = errno;
        snprintf(why, why_len, "setuid(%u): %s", (unsigned)p->uid, strerror(e));
        return -e;
    }
    if (p->uid != 0 && setuid(0) == 0) {
        snprintf(why, why_len, "root could be regained after setuid(%u)", (unsigned)p->uid);
        return -EPERM;
    }
    dm_info("running as uid %u gid %u", (unsigned)p->uid, (unsigned)p->gid);
    return 0;
}
