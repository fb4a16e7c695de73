/*
 * xsc_paths: every xenstore path the dm uses, built once and bounded.
 *
 * Paths are absolute (reference xen-dm-protocol.md §6.5: a relative path
 * resolves against the connection's home, which differs between a socket
 * connection and a stub domain's ring).  Construction never truncates: a
 * path that would not fit is an error, not a shorter path that names some
 * other node.
 */
#ifndef XSC_PATHS_H
#define XSC_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* Xen's limit for an absolute path (xs_wire.h XENSTORE_ABS_PATH_MAX). */
#define XSC_ABS_PATH_MAX 3072
/* Largest domid a real domain can have (DOMID_FIRST_RESERVED - 1). */
#define XSC_DOMID_MAX 0x7FEFu
/* Every fixed path below fits in this many bytes including the NUL. */
#define XSC_PATH_LEN 128

typedef struct xsc_paths {
    unsigned dm_domid;
    unsigned domid;
    /* /local/domain/<dm_domid>/device-model/<domid> and its nodes */
    char dir[XSC_PATH_LEN];
    char command[XSC_PATH_LEN];
    char state[XSC_PATH_LEN];
    char parameter[XSC_PATH_LEN];
    char logdirty_dir[XSC_PATH_LEN];
    char logdirty_cmd[XSC_PATH_LEN];
    char logdirty_ret[XSC_PATH_LEN];
    char disable_pf[XSC_PATH_LEN];
    char runstate[XSC_PATH_LEN];
    char error[XSC_PATH_LEN];
    char status[XSC_PATH_LEN];
    /* /local/domain/<domid>/serial/0/tty, for `xl console` */
    char serial_tty[XSC_PATH_LEN];
    /* /local/domain/<domid> */
    char guest_home[XSC_PATH_LEN];
} xsc_paths;

/* Fill every path.  0, or -EINVAL when a domid is above XSC_DOMID_MAX. */
int xsc_paths_init(xsc_paths *p, unsigned dm_domid, unsigned domid);

/* snprintf that refuses to truncate: 0, -ENAMETOOLONG when the result
 * (plus NUL) does not fit in size or exceeds XSC_ABS_PATH_MAX, -EINVAL for
 * a NULL buffer or a zero size.  buf is "" on failure. */
int xsc_path_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A canonical textual UUID (8-4-4-4-12 hex digits). */
bool xsc_uuid_valid(const char *s);

/* /vm/<uuid>/rtc/timeoffset.  -EINVAL for a malformed uuid. */
int xsc_path_rtc_timeoffset(char *buf, size_t size, const char *uuid);

/* /local/domain/<domid>/device/vbd/<devid> (the guest-owned frontend). */
int xsc_path_vbd_frontend(char *buf, size_t size, unsigned domid, unsigned devid);

/* /local/domain/<backend_domid>/backend/vbd/<domid>/<devid>. */
int xsc_path_vbd_backend(char *buf, size_t size, unsigned backend_domid,
                         unsigned domid, unsigned devid);

/* /local/domain/<backend_domid>/backend/vbd/<domid> (the directory). */
int xsc_path_vbd_backend_dir(char *buf, size_t size, unsigned backend_domid,
                             unsigned domid);

#endif /* XSC_PATHS_H */
