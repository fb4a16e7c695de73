/*
 * The device-state file: what `save` (traditional) and
 * xen-save-devices-state (QMP) write and `-loadvm` / `-incoming` read.
 * rsdm's own format, not QEMU's: the two are not interchangeable.
 *
 * Layout (all integers little-endian):
 *
 *   header   "RSDMSTAT" (8 bytes), u32 format version (DM_STATE_FORMAT),
 *            u32 flags (0)
 *   section  u32 'SECT' marker, u16 id length (1..DM_STATE_ID_MAX),
 *            id bytes (printable ASCII, no NUL), u32 instance,
 *            u32 section version, u32 payload length, u32 CRC32(payload),
 *            payload
 *   ...
 *   end      u32 'END.' marker, u32 number of sections,
 *            u32 CRC32 of every byte before this field
 *
 * The whole-file CRC comes last, so a file cut anywhere never validates,
 * even when written through an fd that cannot be renamed into place.
 * The file holds device state only (no guest RAM) and is bounded by
 * DM_STATE_MAX_SIZE, under libxl's 256 KiB RLIMIT_FSIZE for a
 * dm_restrict'ed device model.
 *
 * Loading is two-phase: every section is parsed and validated (by its
 * device's validate callback, which names the bad field) before any load
 * callback runs, so a bad file changes nothing.
 */
#ifndef DM_STATEFILE_H
#define DM_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DM_STATE_MAGIC "RSDMSTAT"
#define DM_STATE_FORMAT 1u
#define DM_STATE_MAX_SIZE (256u * 1024u - 4096u)   /* strictly below libxl's limit */
#define DM_STATE_ID_MAX 63

uint32_t dm_crc32(uint32_t crc, const void *buf, size_t len);   /* zlib's CRC-32; start with 0 */

/* ---------------------------------------------------- section payloads */

/* A growing buffer the save callback appends to. */
typedef struct dm_state_wr dm_state_wr;
void dm_state_put_u8(dm_state_wr *w, uint8_t v);
void dm_state_put_u16(dm_state_wr *w, uint16_t v);
void dm_state_put_u32(dm_state_wr *w, uint32_t v);
void dm_state_put_u64(dm_state_wr *w, uint64_t v);
void dm_state_put_bytes(dm_state_wr *w, const void *p, size_t n);

/* A bounds-checked cursor over one section's payload.  Every get names the
 * field it reads: past the end, the reader fails ("field 'ier': section
 * truncated") and later gets return 0.  Validators check ranges with
 * dm_state_check, which fails the reader naming the field. */
typedef struct dm_state_rd dm_state_rd;
uint8_t dm_state_get_u8(dm_state_rd *r, const char *field);
uint16_t dm_state_get_u16(dm_state_rd *r, const char *field);
uint32_t dm_state_get_u32(dm_state_rd *r, const char *field);
uint64_t dm_state_get_u64(dm_state_rd *r, const char *field);
void dm_state_get_bytes(dm_state_rd *r, void *out, size_t n, const char *field);
size_t dm_state_remaining(const dm_state_rd *r);
/* false (and the reader failed) when !ok; the message names the field and
 * the value: "field 'rx_count' value 17 out of range (max 16)". */
bool dm_state_check(dm_state_rd *r, bool ok, const char *field, uint64_t value, const char *why);
void dm_state_fail(dm_state_rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool dm_state_failed(const dm_state_rd *r);

/* ------------------------------------------------------------ registry */

/* save: append the device's state; < 0 aborts the save (the message is
 * the device's to log).  validate: read and check every field of a payload
 * written by `version` (<= the registered version) without changing the
 * device; return < 0 or fail the reader to refuse.  Trailing bytes after
 * validate are an error.  load: apply a payload validate accepted; must
 * not fail. */
typedef int (*dm_state_save_fn)(void *opaque, dm_state_wr *w);
typedef int (*dm_state_validate_fn)(void *opaque, uint32_t version, dm_state_rd *r);
typedef void (*dm_state_load_fn)(void *opaque, uint32_t version, dm_state_rd *r);

typedef struct dm_state_reg dm_state_reg;

dm_state_reg *dm_state_reg_new(void);
void dm_state_reg_free(dm_state_reg *reg);

/* Every registered section is required in a file that is loaded.  id is
 * copied.  -EINVAL (bad id, version 0, missing callback), -EEXIST for the
 * same (id, instance) twice, -ENOMEM. */
int dm_state_register(dm_state_reg *reg, const char *id, uint32_t instance, uint32_t version,
                      dm_state_save_fn save, dm_state_validate_fn validate,
                      dm_state_load_fn load, void *opaque);
int dm_state_unregister(dm_state_reg *reg, const char *id, uint32_t instance);

/* ------------------------------------------------------------- saving */

/* Serialises every section in registration order into a new buffer.
 * -EFBIG past DM_STATE_MAX_SIZE (err names the size), or the first save
 * callback's error (err names the section). */
int dm_state_save_mem(dm_state_reg *reg, uint8_t **out, size_t *len, char *err, size_t errlen);

/* Writes PATH.tmp, fsyncs it, renames it to PATH and fsyncs the directory:
 * the name PATH only ever refers to a complete file.  On failure PATH.tmp
 * is removed and PATH is untouched. */
int dm_state_save_path(dm_state_reg *reg, const char *path, char *err, size_t errlen);

/* Writes the file to an open fd (QMP's xen-save-devices-state with an fd,
 * or a pipe): the whole-file CRC at the very end is what makes a cut-short
 * stream fail to load.  fsync is attempted and ignored where the fd cannot
 * be synced (pipes, sockets). */
int dm_state_save_fd(dm_state_reg *reg, int fd, char *err, size_t errlen);

/* ------------------------------------------------------------- loading */

/* Validates everything, then applies everything; on any error nothing is
 * applied and err says what is wrong and where.  -EINVAL for a bad file
 * (QEMU's "QEVM" files are recognised and named as such), -EFBIG for one
 * over DM_STATE_MAX_SIZE, or a negative errno from reading. */
int dm_state_load_mem(dm_state_reg *reg, const uint8_t *buf, size_t len, char *err, size_t errlen);
int dm_state_load_path(dm_state_reg *reg, const char *path, char *err, size_t errlen);
/* Reads fd to its end (at most DM_STATE_MAX_SIZE + 1 bytes). */
int dm_state_load_fd(dm_state_reg *reg, int fd, char *err, size_t errlen);

#endif
