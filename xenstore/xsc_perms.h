/*
 * xsc_perms: commands only from nodes the guest cannot write.
 *
 * A xenstore permission list names the owner first (who always has full
 * access) and that entry's letter is the default for every domain not
 * listed; later entries grant n/r/w/b to one domain each (reference §6.5).
 * The dm's control directory is safe when its owner is the dm's own domain
 * and nobody else -- no listed domain, not the default -- may write.  The
 * dm's socket connection is privileged, so xenstored never checks these
 * permissions against the dm itself: only this check protects it.
 */
#ifndef XSC_PERMS_H
#define XSC_PERMS_H

#include <stdbool.h>
#include <stddef.h>

#include <xenstore.h>

/* Is a permission list safe for a control node owned by `owner`?  false
 * with why filled ("owned by domain 5, not by the device model's domain 0",
 * "writable by domain 7 (b7)", "writable by every domain (default w0)"). */
bool xsc_perms_safe(const struct xs_permissions *perms, unsigned n, unsigned owner,
                    char *why, size_t why_len);

/* Read the permissions of `path` and check them.  0 when safe, -EACCES
 * when not (why says which entry), -ENOENT when the node does not exist,
 * another negative errno when it could not be read. */
int xsc_perms_check(struct xs_handle *xs, const char *path, unsigned owner,
                    char *why, size_t why_len);

/* Create `path` (and missing parents) readable and writable only by
 * `owner`, plus read access for `reader` when reader >= 0 (a stub-domain
 * setup gives the guest read access).  An existing node gets the same
 * list.  Done in one transaction so no window shows other permissions. */
int xsc_perms_mkdir_private(struct xs_handle *xs, const char *path, unsigned owner,
                            int reader);

/* Write `value` to `path` as above: the node ends with [n<owner>] or
 * [n<owner>, r<reader>] whatever its parent lets it inherit. */
int xsc_perms_write_private(struct xs_handle *xs, const char *path, const void *value,
                            size_t len, unsigned owner, int reader);

/* "n0,r5" for a log line. */
void xsc_perms_format(char *out, size_t size, const struct xs_permissions *perms,
                      unsigned n);

#endif /* XSC_PERMS_H */
