/*
 * xl_internal.h: what the `xensim xl` files share (xl_main.c: helpers,
 * create/destroy/pause; xl_save.c: save/restore/resume; xl_migrate.c:
 * migrate and its receiver).  Not part of xl_cmd.h: only xl's own files
 * include this.
 */
#ifndef XENSIM_XL_INTERNAL_H
#define XENSIM_XL_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

/* libxl_internal.h, 4.17 */
#define DM_START_TIMEOUT 60
#define LOGDIRTY_TIMEOUT 10

#define SAVE_MAGIC "xensim-xl-save 1\n"

extern const char *g_rundir;
extern int g_timeout;           /* --timeout: caps every wait; -1 = none */
extern struct xs_handle *g_xs;

/* libxl's bound in seconds, shortened by --timeout. */
int bound(int libxl_secs);
/* "libxl: error: …" on stderr; returns 1 (the exit status). */
int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run `xensim domain ARGS…` (NULL ends the list); its stdout into out. */
int hv(char *out, size_t outlen, const char *a1, const char *a2,
       const char *a3, const char *a4, const char *a5, const char *a6,
       const char *a7, const char *a8);
int xs_w(const char *path, const char *val);
char *xs_r(const char *path);
int xs_perm(const char *path, unsigned owner, int guest, int guest_perm);
/* Bounded wait for path == want (watch set before the first read).  0,
 * -1 timeout, -2 xenstore error, -3 the pid dm died. */
int wait_value(const char *path, const char *want, int secs, pid_t dm,
               char *got, size_t gotlen);
/* /local/domain/0/device-model/<domid>[/leaf] */
void paths(unsigned domid, const char *leaf, char *buf, size_t len);
/* <rundir>/xl/lib/<base>.<domid> */
void libdir_file(const char *base, unsigned domid, char *buf, size_t len);
int read_file(const char *path, char **buf, size_t *len);
int parse_domid(const char *s, unsigned *out);

int create_common(const char *cfgtext, const char *cfgname, const char *dmblob,
                  size_t dmlen, int paused);
int destroy_domain(unsigned domid);
/* libxl__dm_resume: `continue` only when state is `paused`. */
int dm_resume(unsigned domid);

int wait_suspended(unsigned domid, int secs);
int logdirty(unsigned domid, const char *cmd);
int do_save(unsigned domid, const char *file, int destroy_after);

int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_migrate(int argc, char **argv);

#endif
