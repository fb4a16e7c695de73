/* xsc_save: write-to-temporary, fsync, rename, fsync-directory (xsc_save.h). */
#include "xsc_save.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xsc_paths.h"

int xsc_save_unlink_old(const char *path, char *why, size_t why_len)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    int err = errno;
    snprintf(why, why_len, "cannot remove the old save file %s: %s", path, strerror(err));
    return -err;
}

static int fsync_dir_of(const char *path, char *why, size_t why_len)
{
    char copy[4096];

    if (strlen(path) >= sizeof(copy)) {
        snprintf(why, why_len, "save path too long");
        return -ENAMETOOLONG;
    }
    strcpy(copy, path);
    const char *dir = dirname(copy);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        snprintf(why, why_len, "cannot open directory %s to sync it: %s", dir, strerror(err));
        return -err;
    }
    int rc = 0;
    /* The rename is only durable once the directory entry is on disk. */
    if (fsync(dfd) < 0 && errno != EINVAL) {
        rc = -errno;
        snprintf(why, why_len, "fsync of directory %s: %s", dir, strerror(-rc));
    }
    close(dfd);
    return rc;
}

int xsc_save_file(const char *path, xsc_save_write_fn write_state, void *opaque,
                  char *why, size_t why_len)
{
    char tmp[4096];
    char inner[256] = "";
    int rc, fd;

    if (!path || !*path || !write_state) {
        snprintf(why, why_len, "no save file path or no device-state writer");
        return -EINVAL;
    }
    rc = xsc_path_fmt(tmp, sizeof(tmp), "%s.tmp", path);
    if (rc < 0) {
        snprintf(why, why_len, "save path too long: %s", path);
        return rc;
    }
    rc = xsc_save_unlink_old(path, why, why_len);
    if (rc < 0)
        return rc;
    /* A leftover temporary from a crashed save is garbage by construction. */
    if (unlink(tmp) < 0 && errno != ENOENT) {
        rc = -errno;
        snprintf(why, why_len, "cannot remove the stale %s: %s", tmp, strerror(-rc));
        return rc;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(why, why_len, "cannot create %s: %s", tmp, strerror(-rc));
        return rc;
    }
    rc = write_state(opaque, fd, inner, sizeof(inner));
    if (rc < 0) {
        snprintf(why, why_len, "writing the device state failed: %s",
                 inner[0] ? inner : strerror(-rc));
        goto fail;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        snprintf(why, why_len, "fsync of %s: %s", tmp, strerror(-rc));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        snprintf(why, why_len, "close of %s: %s", tmp, strerror(-rc));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        snprintf(why, why_len, "rename of %s to %s: %s", tmp, path, strerror(-rc));
        goto fail;
    }
    rc = fsync_dir_of(path, why, why_len);
    if (rc < 0) {
        /* Not durable: do not let anything load it as a good file. */
        unlink(path);
        return rc;
    }
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc < 0 ? rc : -EIO;
}
