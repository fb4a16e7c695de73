/*
 * xl_internal.h: what the `xensim xl` files share (xl_main.c: helpers,
 * create/destroy/pause; xl_save.c: save/restore/resume; xl_migrate.c:
 * migrate and its receiver).  Not part of xl_cmd.h: only xl's own files
 * include this.
 */
#ifndef XENSIM_XL_INTERNAL_H
#define XENSIM_XL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hv_proto.h"

/* libxl_internal.h, 4.17 */
#define DM_START_TIMEOUT 60
#define LOGDIRTY_TIMEOUT 10

#define SAVE_MAGIC "xensim-xl-save 2\n"

extern const char *g_rundir;
extern int g_timeout;           /* --timeout: caps every wait; -1 = none */
extern struct xs_handle *g_xs;

/* libxl's bound in seconds, shortened by --timeout. */
int bound(int libxl_secs);
/* How long a dm may take to exit after SIGHUP (libxl: 10 s). */
#define DM_STOP_TIMEOUT 10
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

/* Where a restore reads the rest of the stream from (after the config):
 * guest memory and the emulator context are loaded once the domain
 * exists, before the dm is spawned (libxl's order). */
struct xl_restore_src {
    int fd;
    const char *what;             /* the stream's name in messages */
    int secs;                     /* bound on each read, -1 for a file */
    const char *name_suffix;      /* "--incoming" while a migration lands */
    unsigned domid;               /* out: the new domain */
};
/* create, or restore when rs is given; prints the domid. */
int create_common(const char *cfgtext, const char *cfgname, struct xl_restore_src *rs,
                  int paused);
/* create_common without the printing: the new domain into *domid. */
int xl_create(const char *cfgtext, const char *cfgname, struct xl_restore_src *rs,
              int paused, unsigned *domid);
int destroy_domain(unsigned domid);

/* ---- xl_monitor.c: xl's monitor of a created domain (on_reboot etc.) */
/* Until the domain is gone (or suspended, or the simulator ends), through
 * restarts; stdout is its log.  0, or 1 after a message. */
int xl_monitor_run(unsigned domid);
/* The monitor as a daemon (`xl monitor DOMID`), logging to
 * <rundir>/xl/log/xl-<name>.log.  0 or -1 (said). */
int xl_monitor_spawn(unsigned domid, const char *name);
int cmd_monitor(int argc, char **argv);
/* libxl__dm_resume: `continue` only when state is `paused`. */
int dm_resume(unsigned domid);

/* Suspend outcomes, as libxl's error codes matter to xl: a guest that
 * never suspended is not resumed by `migrate` (ERROR_GUEST_TIMEDOUT). */
#define XL_ERROR_FAIL (-1)
#define XL_ERROR_GUEST_TIMEDOUT (-2)

int wait_suspended(unsigned domid, int secs);
int logdirty(unsigned domid, const char *cmd);
/* libxl_domain_suspend: the stream after the config record (guest memory,
 * in rounds if live, the emulator context, end) written to fd. */
int xl_suspend_domain(unsigned domid, int fd, int live);
/* libxl_domain_resume(suspend_cancel): dm continued, then the domain. */
int xl_resume_domain(unsigned domid, int suspend_cancel);
/* libxl_domain_rename: /local/domain/<d>/name. */
int xl_rename_domain(unsigned domid, const char *name);

/* ---- xl_stream.c: guest RAM and the stream (layout there) */
struct xl_ram {
    int hv;                       /* control-socket connection */
    unsigned domid;
    uint8_t *map;
    uint64_t size, pages;
};
int xl_hv_call(struct hv_req *q, struct hv_rsp *r, void **payload, const char *what);
int xl_domain_info(unsigned domid, struct hv_wire_dominfo *w);
int xl_hvm_param(unsigned domid, uint32_t param, uint64_t *v);
int xl_ram_open(struct xl_ram *m, unsigned domid);
void xl_ram_close(struct xl_ram *m);
int xl_ram_logdirty(struct xl_ram *m, int on);
/* Dirty bitmap (pages bits) read and cleaned; the count, or -1. */
long xl_ram_dirty(struct xl_ram *m, unsigned long *bm);
int xl_write_all(int fd, const void *buf, size_t len);
/* secs < 0: unbounded.  -1 with errno (ETIMEDOUT, ECONNRESET at EOF). */
int xl_read_all(int fd, void *buf, size_t len, int secs);
int xl_stream_put(int fd, const char *kind, const void *buf, size_t len);
int xl_stream_put_header(int fd, const char *cfgtext);
int xl_stream_put_end(int fd);
int xl_stream_put_pages(int fd, struct xl_ram *m, const unsigned long *bm, uint64_t *sent);
int xl_stream_get_config(int fd, const char *what, char **cfgtext, int secs);
int xl_stream_load(int fd, const char *what, unsigned domid, char **blob, size_t *bloblen,
                   int secs);

int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_migrate_receive(int argc, char **argv);

#endif
