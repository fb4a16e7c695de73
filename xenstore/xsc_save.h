/*
 * xsc_save: the save file of the traditional `save` command, written so
 * that a file at the final path is always complete.
 *
 * qemu-traditional wrote `paused` even when the file could not be written,
 * and libxl then streamed a stale or missing file (reference §7.1).  Here
 * the old file is unlinked first, the new one is written under a temporary
 * name, fsynced, renamed into place and the directory fsynced; only then is
 * the save a success.  On any failure neither the old nor a partial file is
 * left at the final path, so libxl fails loudly instead of shipping garbage,
 * and a crash mid-save never leaves a file that loads as valid.
 */
#ifndef XSC_SAVE_H
#define XSC_SAVE_H

#include <stddef.h>

/* Writes the device state into fd (a new, empty, regular file).  0 or a
 * negative errno, with why filled on failure. */
typedef int (*xsc_save_write_fn)(void *opaque, int fd, char *why, size_t why_len);

/* Remove an old save file at path.  0 (also when there was none) or a
 * negative errno with why filled. */
int xsc_save_unlink_old(const char *path, char *why, size_t why_len);

/* The whole sequence above (path's old file is removed too).  0 or a
 * negative errno with why filled ("writing the device state: ...",
 * "fsync of /var/lib/xen/qemu-save.5.tmp: ..."). */
int xsc_save_file(const char *path, xsc_save_write_fn write_state, void *opaque,
                  char *why, size_t why_len);

#endif /* XSC_SAVE_H */
