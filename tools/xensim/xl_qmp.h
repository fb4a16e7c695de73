/*
 * xl_qmp.h: `xensim xl` for the qemu-xen dialect.  libxl 4.17's QMP steps
 * (libxl_dm.c, libxl_qmp.c, libxl_dom_suspend.c) and, with
 * `--manager xenopsd`, XenServer xenopsd's (device.ml's Dm and
 * Qemu_upstream_compat, reference §5.3-§5.4).  xl_main.c keeps the domain
 * steps common to both dialects and calls in here where the device model
 * is involved: spawning it, resuming it, log-dirty, and its part of a save.
 *
 * Also the QMP client both toolstacks use (xlq_*): one connection, the
 * greeting and qmp_capabilities, one command at a time with CRLF framing,
 * libxl's integer ids from 0x786c7100 or xenopsd's string ids, an fd with
 * SCM_RIGHTS on the command's first byte (libxl) or in a one-byte message
 * before it (xenopsd), events skipped or handed to a callback.
 */
#ifndef XENSIM_XL_QMP_H
#define XENSIM_XL_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "xl_cmd.h"

struct xs_handle;

/* ------------------------------------------------------------ the client */

typedef enum xlq_style { XLQ_LIBXL, XLQ_XENOPSD } xlq_style;
typedef struct xlq xlq;
typedef void (*xlq_event_fn)(void *opaque, json_t *event);

/* Connects to path and negotiates within timeout_ms.  NULL with err. */
xlq *xlq_open(const char *path, xlq_style style, unsigned domid, int timeout_ms, char *err,
              size_t errlen);
/* Runs one command (args stolen, may be NULL; fd -1 for none) and waits
 * for its reply within timeout_ms (< 0: no bound, as libxl's save chain).
 * 0 with *ret (may be NULL) set from `return`, -1 with err from `error`
 * ("Class: desc") or the transport. */
int xlq_exec(xlq *c, const char *cmd, json_t *args, int fd, json_t **ret, int timeout_ms,
             char *err, size_t errlen);
/* Sends a command without waiting (xenopsd's `cont` on the event socket). */
int xlq_send(xlq *c, const char *cmd, json_t *args, char *err, size_t errlen);
/* Events met while waiting go to fn (stolen); default: dropped. */
void xlq_set_event_fn(xlq *c, xlq_event_fn fn, void *opaque);
/* Waits for the next message (event or stray reply) up to timeout_ms:
 * 1 when one was handled, 0 on timeout, -1 on EOF/error. */
int xlq_pump(xlq *c, int timeout_ms);
void xlq_close(xlq *c);

/* -------------------------------------------------- xl's device-model steps */

/* --dialect / --manager: defaults for configs that do not say, kept in the
 * environment so the receiver of a migration (a child xl) inherits them.
 * 0, or -1 for an unknown value. */
int xlq_set_dialect(const char *dialect);
int xlq_set_manager(const char *manager);
const char *xlq_usage(void);

bool xlq_cfg_is_qemu_xen(const struct xl_cfg *cfg);
/* From /libxl/<domid>/dm-version, as libxl decides. */
bool xlq_domain_is_qemu_xen(unsigned domid);
/* "qemu_xen" or "qemu_xen_traditional" for /libxl/<domid>/dm-version. */
const char *xlq_dm_version_node(const struct xl_cfg *cfg);

/* libxl__spawn_local_dm + the post-start QMP chain; restore_file (or NULL)
 * is opened and passed as -incoming fd:N.  0 or -1 (message printed). */
int xlq_spawn_dm(unsigned domid, const struct xl_cfg *cfg, const char *restore_file,
                 pid_t *dmpid);
/* libxl__dm_resume: QMP `cont` (xenopsd: nothing, the dm was continued
 * at start). */
int xlq_dm_resume(unsigned domid);
/* xen-set-global-dirty-log. */
int xlq_logdirty(unsigned domid, bool enable);
/* The device model's part of a suspend, writing its state into save_file
 * (live: libxl's LIBXL_SUSPEND_LIVE, passed on as QMP `live`). */
int xlq_suspend_dm(unsigned domid, const char *save_file, bool live);

/* From xl_main.c (beside xl_internal.h's helpers): fork/exec of a device
 * model with libxl's environment, stdin /dev/null, stdout/stderr appended
 * to xl/log/qemu-dm-NAME.log (its path in logpath); the nkeep fds in keep
 * stay open in the child.  The pid, or -1. */
pid_t xl_exec_dm(const char *const argv[], unsigned domid, const char *name, const int *keep,
                 int nkeep, char *logpath, size_t loglen);

#endif
