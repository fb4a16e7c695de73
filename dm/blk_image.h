/*
 * Opening a raw image for the block backend: type and size checks, other
 * formats refused by their magic, the OFD advisory lock and O_DIRECT for
 * cache=none.  Internal to dm/blk*.c.
 */
#ifndef DM_BLK_IMAGE_H
#define DM_BLK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"

typedef struct dm_blk_image {
    int fd;
    uint64_t size;           /* bytes, a whole number of sectors */
    bool direct;             /* O_DIRECT is in effect */
    bool locked;
} dm_blk_image;

/* Opens, checks and locks opts->path; -errno with err naming the disk. */
int dm_blk_image_open(dm_blk_image *img, const dm_blk_opts *opts, char *err, size_t errlen);
void dm_blk_image_close(dm_blk_image *img);

/* The OFD lock (exclusive when !read_only, else shared) on the whole file. */
int dm_blk_image_lock(dm_blk_image *img, const char *name, const char *path, bool read_only,
                      char *err, size_t errlen);
int dm_blk_image_unlock(dm_blk_image *img);

/* The alignment O_DIRECT needs of buffers, offsets and lengths. */
#define DM_BLK_DIRECT_ALIGN 4096u

#endif
