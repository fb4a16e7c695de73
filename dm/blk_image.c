/*
 * Raw image opening (blk_image.h).  Only raw images are accepted: another
 * format's header would be handed to the guest as data and, on a write,
 * destroyed, so a file that starts with a known magic is refused.
 */
#include "blk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dm_log.h"

static const struct {
    const char *format;
    size_t offset;
    const char *magic;
    size_t len;
} magics[] = {
    { "qcow2 (or qcow)", 0, "QFI\xfb", 4 },
    { "vmdk", 0, "KDMV", 4 },
    { "vmdk (descriptor)", 0, "# Disk DescriptorFile", 21 },
    { "vhdx", 0, "vhdxfile", 8 },
    { "vdi", 64, "\x7f\x10\xda\xbe", 4 },
    { "qed", 0, "QED\0", 4 },
    { "vpc (dynamic vhd)", 0, "conectix", 8 },
};

/* The format whose magic `head` (n bytes) starts with, or NULL. */
static const char *sniff(const unsigned char *head, size_t n)
{
    for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++)
        if (magics[i].offset + magics[i].len <= n &&
            memcmp(head + magics[i].offset, magics[i].magic, magics[i].len) == 0)
            return magics[i].format;
    return NULL;
}

static int read_head(int fd, unsigned char *buf, size_t want, size_t *got)
{
    size_t done = 0;
    while (done < want) {
        ssize_t k = pread(fd, buf + done, want - done, (off_t)done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            break;
        done += (size_t)k;
    }
    *got = done;
    return 0;
}

static const char *lock_kind(short type)
{
    return type == F_WRLCK ? "a write" : "a read";
}

int dm_blk_image_lock(dm_blk_image *img, const char *name, const char *path, bool read_only,
                      char *err, size_t errlen)
{
    struct flock fl = { .l_type = read_only ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(img->fd, F_OFD_SETLK, &fl) == 0) {
        img->locked = true;
        return 0;
    }
    int e = errno;
    if (e != EAGAIN && e != EACCES) {
        snprintf(err, errlen, "disk %s: cannot lock image %s: %s", name, path, strerror(e));
        return -e;
    }
    struct flock q = { .l_type = read_only ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
    if (fcntl(img->fd, F_OFD_GETLK, &q) == 0 && q.l_type != F_UNLCK) {
        char who[48] = "another open of it";
        if (q.l_pid > 0)
            snprintf(who, sizeof(who), "process %ld", (long)q.l_pid);
        snprintf(err, errlen, "disk %s: image %s is in use: %s holds %s lock on it "
                 "(another rsdm or another disk using the same image?)", name, path, who,
                 lock_kind(q.l_type));
    } else {
        snprintf(err, errlen, "disk %s: image %s is locked by someone else", name, path);
    }
    return -EBUSY;
}

int dm_blk_image_unlock(dm_blk_image *img)
{
    struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };
    if (fcntl(img->fd, F_OFD_SETLK, &fl) < 0)
        return -errno;
    img->locked = false;
    return 0;
}

/* cache=none: O_DIRECT on the open file when the filesystem takes it and an
 * aligned read through it works; else the page cache, said once in the log. */
static void try_direct(dm_blk_image *img, const dm_blk_opts *opts)
{
    int fl = fcntl(img->fd, F_GETFL);
    const char *why = NULL;
    int e = 0;
    if (fl < 0 || fcntl(img->fd, F_SETFL, fl | O_DIRECT) < 0) {
        e = errno;
        why = "the filesystem refuses O_DIRECT";
    } else if (img->size >= DM_BLK_SECTOR) {
        void *probe = NULL;
        if (posix_memalign(&probe, DM_BLK_DIRECT_ALIGN, DM_BLK_DIRECT_ALIGN) != 0) {
            e = ENOMEM;
            why = "no memory for the O_DIRECT probe";
        } else {
            ssize_t k;
            do
                k = pread(img->fd, probe, DM_BLK_SECTOR, 0);
            while (k < 0 && errno == EINTR);
            if (k < 0) {
                e = errno;
                why = "a 512-byte O_DIRECT read fails";
            }
            free(probe);
        }
        if (why)
            fcntl(img->fd, F_SETFL, fl);
    }
    if (why) {
        dm_warn("disk %s: cache=none: %s on %s (%s); using the page cache instead", opts->name,
                why, opts->path, strerror(e));
        return;
    }
    img->direct = true;
}

static int image_size(int fd, const struct stat *st, uint64_t *size)
{
    if (S_ISREG(st->st_mode)) {
        *size = (uint64_t)st->st_size;
        return 0;
    }
    if (ioctl(fd, BLKGETSIZE64, size) < 0)
        return -errno;
    return 0;
}

int dm_blk_image_open(dm_blk_image *img, const dm_blk_opts *opts, char *err, size_t errlen)
{
    const char *name = opts->name, *path = opts->path;
    memset(img, 0, sizeof(*img));
    img->fd = -1;
    /* O_NONBLOCK: a FIFO given by mistake must not block the open. */
    int fd = open(path, (opts->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "disk %s: cannot open image %s%s: %s", name, path,
                 opts->read_only ? "" : " read-write", strerror(e));
        return -e;
    }
    img->fd = fd;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "disk %s: cannot stat image %s: %s", name, path, strerror(-rc));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        snprintf(err, errlen, "disk %s: image %s is %s, not a regular file or block device",
                 name, path, S_ISDIR(st.st_mode) ? "a directory" : "a special file");
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        rc = -errno;
        snprintf(err, errlen, "disk %s: cannot set up %s: %s", name, path, strerror(-rc));
        goto fail;
    }
    rc = image_size(fd, &st, &img->size);
    if (rc < 0) {
        snprintf(err, errlen, "disk %s: cannot get the size of %s: %s", name, path,
                 strerror(-rc));
        goto fail;
    }
    if (img->size % DM_BLK_SECTOR) {
        rc = -EINVAL;
        snprintf(err, errlen, "disk %s: image %s is %llu bytes, not a whole number of "
                 "%u-byte sectors", name, path, (unsigned long long)img->size, DM_BLK_SECTOR);
        goto fail;
    }
    unsigned char head[DM_BLK_SECTOR];
    size_t got = 0;
    rc = read_head(fd, head, sizeof(head), &got);
    if (rc < 0) {
        snprintf(err, errlen, "disk %s: cannot read image %s: %s", name, path, strerror(-rc));
        goto fail;
    }
    const char *format = sniff(head, got);
    if (format) {
        rc = -EMEDIUMTYPE;
        snprintf(err, errlen, "disk %s: image %s is in %s format; rsdm only uses raw images "
                 "(convert it: qemu-img convert -O raw)", name, path, format);
        goto fail;
    }
    rc = dm_blk_image_lock(img, name, path, opts->read_only, err, errlen);
    if (rc < 0)
        goto fail;
    if (opts->cache == DM_CACHE_NONE)
        try_direct(img, opts);
    return 0;
fail:
    close(fd);
    img->fd = -1;
    return rc;
}

void dm_blk_image_close(dm_blk_image *img)
{
    if (img->fd < 0)
        return;
    /* Closing the last descriptor of the open file drops its OFD lock. */
    close(img->fd);
    img->fd = -1;
    img->locked = false;
}
