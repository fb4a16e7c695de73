/*
 * QMP commands that need neither Xen nor devices (see qmp_commands.h).
 * Each command declares its arguments (name, type, optional); one checker
 * produces QEMU's texts for unexpected, missing and mistyped parameters so
 * every command fails the same way.  Run-state commands only call
 * librunstate: the error texts come from rs_err, which carries QEMU's.
 */
#include "qmp_commands.h"

#include "dm_args.h"

#include "dm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CHARDEVS 8

typedef struct fdset_fd {
    int fd;
    char *opaque;
    struct fdset_fd *next;
} fdset_fd;

typedef struct fdset {
    long long id;
    fdset_fd *fds;
    struct fdset *next;   /* ascending id */
} fdset;

typedef struct named_fd {
    char *name;
    int fd;
    struct named_fd *next;
} named_fd;

struct qmp_commands {
    rs_vm *vm;
    named_fd *named;   /* getfd; QEMU keeps them per monitor, rsdm per dm */
    qmp_server *srv;
    qmp_xen_hooks xen;
    bool wakeup_supported;
    bool quit;
    fdset *fdsets;
    struct { char *label, *filename; } chardevs[MAX_CHARDEVS];
    size_t nchardevs;
};

/* ---------------------------------------------------------- arguments */

typedef enum arg_type { A_STR, A_INT, A_BOOL, A_ANY } arg_type;

typedef struct arg_spec {
    const char *name;
    arg_type type;
    bool optional;
} arg_spec;

static const char *const type_names[] = { "string", "integer", "boolean", "any" };

static bool type_ok(arg_type t, const json_t *v)
{
    switch (t) {
    case A_STR: return json_is_string(v);
    case A_INT: return json_is_integer(v);
    case A_BOOL: return json_is_boolean(v);
    case A_ANY: return true;
    }
    return false;
}

/* QEMU's qobject-input-visitor texts: "Parameter 'x' is unexpected",
 * "Invalid parameter type for 'x', expected: integer",
 * "Parameter 'x' is missing". */
static int check_args(const arg_spec *spec, json_t *args, qmp_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        const arg_spec *a = spec;
        while (a && a->name && strcmp(a->name, key) != 0)
            a++;
        if (!a || !a->name) {
            qmp_error_set(err, "GenericError", "Parameter '%.100s' is unexpected", key);
            return -1;
        }
        if (!type_ok(a->type, v)) {
            qmp_error_set(err, "GenericError", "Invalid parameter type for '%s', expected: %s",
                          a->name, type_names[a->type]);
            return -1;
        }
    }
    for (const arg_spec *a = spec; a && a->name; a++)
        if (!a->optional && !json_object_get(args, a->name)) {
            qmp_error_set(err, "GenericError", "Parameter '%s' is missing", a->name);
            return -1;
        }
    return 0;
}

static const char *arg_str(json_t *args, const char *n)
{
    return json_string_value(json_object_get(args, n));
}

/* ----------------------------------------------------------- run state */

static json_t *ts_json(int64_t wall_ns)
{
    return json_pack("{s:I,s:I}", "seconds", (json_int_t)(wall_ns / 1000000000LL),
                     "microseconds", (json_int_t)(wall_ns % 1000000000LL / 1000));
}

static int cmd_query_status(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)e;
    rs_hold_info hi[RS_STATE__MAX];
    size_t n = rs_list_holds(q->vm, hi, RS_STATE__MAX);
    if (n > RS_STATE__MAX)
        n = RS_STATE__MAX;
    json_t *holds = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(holds, json_pack("{s:s,s:s,s:o}", "reason",
                                               rs_state_name(hi[i].reason), "group",
                                               rs_group_name(hi[i].group), "since",
                                               ts_json(hi[i].since_wall_ns)));
    /* singlestep: QEMU <= 8.0 always sent it and rsdm announces 7.2, so it
     * stays (always false: no gdbstub). */
    *ret = json_pack("{s:b,s:b,s:s,s:o}", "running", rs_is_running(q->vm), "singlestep", 0,
                     "status", rs_state_name(rs_get_state(q->vm)), "x-holds", holds);
    return 0;
}

static int rs_fail(int rc, const rs_err *re, qmp_error *e, const char *what)
{
    if (rc >= 0)
        return 0;
    if (re->msg[0])
        qmp_error_set(e, "GenericError", "%s", re->msg);
    else
        qmp_error_set(e, "GenericError", "%s failed: %s", what, strerror(-rc));
    return -1;
}

static int cmd_stop(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    rs_err re = { 0 };
    return rs_fail(rs_vm_stop(q->vm, RS_PAUSED, &re), &re, e, "stop");
}

/* The images back before a start (qmp_xen_hooks.activate_disks). */
static int activate_disks(qmp_commands *q, qmp_error *e)
{
    char why[512] = "";
    if (!q->xen.activate_disks || q->xen.activate_disks(q->xen.opaque, why, sizeof(why)) == 0)
        return 0;
    qmp_error_set(e, "GenericError", "%s", why[0] ? why : "cannot take the disk images back");
    return -1;
}

static int cmd_cont(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    rs_err re = { 0 };
    if (activate_disks(q, e) < 0)
        return -1;
    return rs_fail(rs_cont(q->vm, &re), &re, e, "cont");
}

/* rsdm's extension (the traditional `retry`): clear only the io-error
 * holds, so parked I/O is re-issued, without also lifting an operator's
 * stop the way `cont` would. */
static int cmd_x_retry(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    rs_err re = { 0 };
    if (activate_disks(q, e) < 0)
        return -1;
    return rs_fail(rs_retry(q->vm, &re), &re, e, "x-retry");
}

static int cmd_system_reset(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    rs_err re = { 0 };
    return rs_fail(rs_request_reset(q->vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET), &re, e, "system_reset");
}

static int cmd_system_powerdown(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    rs_err re = { 0 };
    return rs_fail(rs_request_powerdown(q->vm), &re, e, "system_powerdown");
}

static int cmd_system_wakeup(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    if (!q->wakeup_supported) {
        qmp_error_set(e, "GenericError", "wake-up from suspend is not supported by this guest");
        return -1;
    }
    rs_err re = { 0 };
    return rs_fail(rs_request_wakeup(q->vm, RS_WAKEUP_OTHER, &re), &re, e, "system_wakeup");
}

static int cmd_quit(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    rs_err re = { 0 };
    q->quit = true;
    /* A request, not an exit: the reply goes out first, then the main loop
     * emits SHUTDOWN (host-qmp-quit) and exits, as QEMU does. */
    return rs_fail(rs_request_shutdown(q->vm, RS_CAUSE_HOST_QMP_QUIT, 0), &re, e, "quit");
}

static int enum_fail(qmp_error *e, const char *param, const char *value)
{
    qmp_error_set(e, "GenericError", "Parameter '%s' does not accept value '%.100s'", param, value);
    return -1;
}

static int cmd_set_action(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    rs_action_update u = { 0 };
    const char *s;
    /* Parse everything before applying anything: a bad value changes nothing. */
    if ((s = arg_str(a, "reboot"))) {
        if (rs_reboot_action_from_name(s, &u.value.reboot) < 0)
            return enum_fail(e, "reboot", s);
        u.has_reboot = true;
    }
    if ((s = arg_str(a, "shutdown"))) {
        if (rs_shutdown_action_from_name(s, &u.value.shutdown) < 0)
            return enum_fail(e, "shutdown", s);
        u.has_shutdown = true;
    }
    if ((s = arg_str(a, "panic"))) {
        if (rs_panic_action_from_name(s, &u.value.panic) < 0)
            return enum_fail(e, "panic", s);
        u.has_panic = true;
    }
    if ((s = arg_str(a, "watchdog"))) {
        if (rs_watchdog_action_from_name(s, &u.value.watchdog) < 0)
            return enum_fail(e, "watchdog", s);
        u.has_watchdog = true;
    }
    int rc = rs_set_actions(q->vm, &u);
    if (rc < 0) {
        qmp_error_set(e, "GenericError", "set-action: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

static int cmd_watchdog_set_action(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    rs_action_update u = { .has_watchdog = true };
    const char *s = arg_str(a, "action");
    if (rs_watchdog_action_from_name(s, &u.value.watchdog) < 0)
        return enum_fail(e, "action", s);
    int rc = rs_set_actions(q->vm, &u);
    if (rc < 0) {
        qmp_error_set(e, "GenericError", "watchdog-set-action: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- fd sets */

static fdset *fdset_find(qmp_commands *q, long long id)
{
    for (fdset *s = q->fdsets; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static int cmd_add_fd(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    json_t *jid = json_object_get(a, "fdset-id");
    if (jid && json_integer_value(jid) < 0) {
        qmp_error_set(e, "GenericError", "Parameter 'fdset-id' expects a non-negative value");
        return -1;
    }
    int fd = qmp_client_take_fd(c);
    if (fd < 0) {
        qmp_error_set(e, "GenericError", "No file descriptor supplied via SCM_RIGHTS");
        return -1;
    }
    fdset_fd *f = calloc(1, sizeof(*f));
    const char *op = arg_str(a, "opaque");
    if (!f || (op && !(f->opaque = strdup(op)))) {
        free(f);
        close(fd);
        qmp_error_set(e, "GenericError", "add-fd: out of memory");
        return -1;
    }
    f->fd = fd;
    long long id;
    if (jid) {
        id = json_integer_value(jid);
    } else {
        /* QEMU picks the lowest id not in use */
        id = 0;
        for (fdset *s = q->fdsets; s && s->id == id; s = s->next)
            id++;
    }
    fdset *set = fdset_find(q, id);
    if (!set) {
        set = calloc(1, sizeof(*set));
        if (!set) {
            free(f->opaque);
            free(f);
            close(fd);
            qmp_error_set(e, "GenericError", "add-fd: out of memory");
            return -1;
        }
        set->id = id;
        fdset **pp = &q->fdsets;
        while (*pp && (*pp)->id < id)
            pp = &(*pp)->next;
        set->next = *pp;
        *pp = set;
    }
    fdset_fd **fp = &set->fds;
    while (*fp)
        fp = &(*fp)->next;
    *fp = f;
    *ret = json_pack("{s:I,s:i}", "fdset-id", (json_int_t)id, "fd", fd);
    return 0;
}

static void fdset_unlink_if_empty(qmp_commands *q, fdset *set)
{
    if (set->fds)
        return;
    for (fdset **pp = &q->fdsets; *pp; pp = &(*pp)->next)
        if (*pp == set) {
            *pp = set->next;
            free(set);
            return;
        }
}

static int cmd_remove_fd(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    long long id = json_integer_value(json_object_get(a, "fdset-id"));
    json_t *jfd = json_object_get(a, "fd");
    fdset *set = fdset_find(q, id);
    bool found = false;
    if (set) {
        for (fdset_fd **fp = &set->fds; *fp;) {
            fdset_fd *f = *fp;
            if (!jfd || f->fd == json_integer_value(jfd)) {
                *fp = f->next;
                close(f->fd);
                free(f->opaque);
                free(f);
                found = true;
            } else {
                fp = &f->next;
            }
        }
        fdset_unlink_if_empty(q, set);
    }
    if (!found) {
        if (jfd)
            qmp_error_set(e, "GenericError", "File descriptor named 'fdset-id:%lld, fd:%lld' not found",
                          id, (long long)json_integer_value(jfd));
        else
            qmp_error_set(e, "GenericError", "File descriptor named 'fdset-id:%lld' not found", id);
        return -1;
    }
    return 0;
}

static int cmd_query_fdsets(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)e;
    json_t *arr = json_array();
    for (fdset *s = q->fdsets; s; s = s->next) {
        json_t *fds = json_array();
        for (fdset_fd *f = s->fds; f; f = f->next) {
            json_t *o = json_pack("{s:i}", "fd", f->fd);
            if (f->opaque)
                json_object_set_new(o, "opaque", json_string(f->opaque));
            json_array_append_new(fds, o);
        }
        json_array_append_new(arr, json_pack("{s:I,s:o}", "fdset-id", (json_int_t)s->id, "fds", fds));
    }
    *ret = arr;
    return 0;
}

/* QEMU's getfd/closefd: an fd received over SCM_RIGHTS kept by name;
 * getfd with a name in use replaces (closes) the old fd. */
static int cmd_getfd(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)ret;
    const char *name = arg_str(a, "fdname");
    if (name[0] >= '0' && name[0] <= '9') {
        qmp_error_set(e, "GenericError", "Parameter 'fdname' expects a name not starting with a digit");
        return -1;
    }
    int fd = qmp_client_take_fd(c);
    if (fd < 0) {
        qmp_error_set(e, "GenericError", "No file descriptor supplied via SCM_RIGHTS");
        return -1;
    }
    for (named_fd *n = q->named; n; n = n->next)
        if (!strcmp(n->name, name)) {
            close(n->fd);
            n->fd = fd;
            return 0;
        }
    named_fd *n = calloc(1, sizeof(*n));
    if (!n || !(n->name = strdup(name))) {
        free(n);
        close(fd);
        qmp_error_set(e, "GenericError", "getfd: out of memory");
        return -1;
    }
    n->fd = fd;
    n->next = q->named;
    q->named = n;
    return 0;
}

static int cmd_closefd(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    const char *name = arg_str(a, "fdname");
    for (named_fd **pp = &q->named; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) {
            named_fd *n = *pp;
            *pp = n->next;
            close(n->fd);
            free(n->name);
            free(n);
            return 0;
        }
    qmp_error_set(e, "GenericError", "File descriptor named '%.200s' not found", name);
    return -1;
}

int qmp_commands_open(qmp_commands *q, const char *path, int flags)
{
    static const char pfx[] = "/dev/fdset/";
    if (strncmp(path, pfx, sizeof(pfx) - 1) != 0) {
        int fd = open(path, flags | O_CLOEXEC, 0660);
        return fd < 0 ? -errno : fd;
    }
    char *end;
    errno = 0;
    long long id = strtoll(path + sizeof(pfx) - 1, &end, 10);
    if (errno || end == path + sizeof(pfx) - 1 || *end)
        return -EINVAL;
    fdset *set = fdset_find(q, id);
    if (!set)
        return -ENOENT;
    for (fdset_fd *f = set->fds; f; f = f->next) {
        int fl = fcntl(f->fd, F_GETFL);
        if (fl >= 0 && (fl & O_ACCMODE) == (flags & O_ACCMODE)) {
            int d = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
            return d < 0 ? -errno : d;
        }
    }
    return -EACCES;   /* QEMU: no fd in the set with a matching access mode */
}

/* ------------------------------------------------------------- Xen hooks */

static int open_for(qmp_commands *q, const char *path, int flags, qmp_error *e)
{
    int fd = qmp_commands_open(q, path, flags);
    if (fd < 0)
        qmp_error_set(e, "GenericError", "Could not open '%.300s': %s", path, strerror(-fd));
    return fd;
}

static int cmd_xen_save(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    if (!q->xen.save_devices_state) {
        qmp_error_set(e, "GenericError", "xen-save-devices-state is not available");
        return -1;
    }
    json_t *jl = json_object_get(a, "live");
    bool live = jl ? json_is_true(jl) : true;
    int fd = open_for(q, arg_str(a, "filename"), O_WRONLY | O_CREAT | O_TRUNC, e);
    if (fd < 0)
        return -1;
    /* QEMU: vm_stop(save-vm) acts only on a running VM (not suspended), then saves and
     * restarts it.  A hold does both and keeps other stop reasons intact;
     * a stopped VM is saved as it is (DESIGN: "stopped: unchanged"). */
    rs_err re = { 0 };
    bool held = rs_is_running(q->vm);
    if (held && rs_hold_acquire(q->vm, RS_SAVE_VM, &re) < 0) {
        close(fd);
        qmp_error_set(e, "GenericError", "%s", re.msg[0] ? re.msg : "cannot stop for save");
        return -1;
    }
    char msg[256] = "";
    int rc = q->xen.save_devices_state(q->xen.opaque, fd, live, msg, sizeof(msg));
    if (close(fd) < 0 && rc == 0) {
        snprintf(msg, sizeof(msg), "close: %s", strerror(errno));
        rc = -1;
    }
    rs_err re2 = { 0 };
    if (held && rs_hold_release(q->vm, RS_SAVE_VM, &re2) < 0)
        dm_err("qmp: xen-save-devices-state: releasing save-vm: %s", re2.msg);
    if (rc < 0) {
        qmp_error_set(e, "GenericError", "%s", msg[0] ? msg : "saving device state failed");
        return -1;
    }
    return 0;
}

static int cmd_xen_load(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    if (!q->xen.load_devices_state) {
        qmp_error_set(e, "GenericError", "xen-load-devices-state is not available");
        return -1;
    }
    /* QEMU: a suspended VM passes; only a running one is refused. */
    if (rs_is_running(q->vm)) {
        qmp_error_set(e, "GenericError", "Cannot update device state while vm is running");
        return -1;
    }
    int fd = open_for(q, arg_str(a, "filename"), O_RDONLY, e);
    if (fd < 0)
        return -1;
    char msg[256] = "";
    int rc = q->xen.load_devices_state(q->xen.opaque, fd, msg, sizeof(msg));
    close(fd);
    if (rc < 0) {
        qmp_error_set(e, "GenericError", "%s", msg[0] ? msg : "loading Xen device state failed");
        return -1;
    }
    return 0;
}

static int cmd_xen_dirty(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)ret;
    if (!q->xen.set_global_dirty_log) {
        qmp_error_set(e, "GenericError", "xen-set-global-dirty-log is not available");
        return -1;
    }
    char msg[256] = "";
    if (q->xen.set_global_dirty_log(q->xen.opaque, json_is_true(json_object_get(a, "enable")),
                                    msg, sizeof(msg)) < 0) {
        qmp_error_set(e, "GenericError", "%s", msg[0] ? msg : "setting the dirty log failed");
        return -1;
    }
    return 0;
}

static int cmd_query_migratable(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)ret;
    char msg[256] = "";
    if (q->xen.migratable && q->xen.migratable(q->xen.opaque, msg, sizeof(msg)) < 0) {
        qmp_error_set(e, "GenericError", "%s", msg[0] ? msg : "the VM cannot be migrated");
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------- introspection */

static int cmd_query_version(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)q; (void)c; (void)a; (void)e;
    *ret = json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", QMP_QEMU_MAJOR, "minor",
                     QMP_QEMU_MINOR, "micro", QMP_QEMU_MICRO, "package", QMP_PACKAGE);
    return 0;
}

static int cmd_query_vnc(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)q; (void)c; (void)a; (void)e;
    *ret = json_pack("{s:b}", "enabled", 0);
    return 0;
}

static int cmd_change_vnc_password(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)q; (void)c; (void)a; (void)ret;
    /* QEMU's text when no VNC display exists; rsdm has none. */
    qmp_error_set(e, "GenericError", "Could not set password");
    return -1;
}

static int cmd_query_chardev(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)c; (void)a; (void)e;
    json_t *arr = json_array();
    for (size_t i = 0; i < q->nchardevs; i++)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "label", q->chardevs[i].label,
                                             "filename", q->chardevs[i].filename,
                                             "frontend-open", 1));
    *ret = arr;
    return 0;
}

static int cmd_query_commands(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e);

/* QEMU's CommandLineOptionInfo: every parameter as a string (rsdm does
 * not introspect types; libxl's probe looks at names only). */
static json_t *clo_params(const char *params)
{
    json_t *arr = json_array();
    for (const char *p = params; p && *p;) {
        size_t n = strcspn(p, ",");
        json_array_append_new(arr, json_pack("{s:s%,s:s}", "name", p, n, "type", "string"));
        p += n + (p[n] == ',');
    }
    return arr;
}

static int cmd_query_clo(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)q; (void)c;
    dm_args_option opts[128];
    size_t n = dm_args_qemu_options(opts, sizeof(opts) / sizeof(opts[0]));
    if (n > sizeof(opts) / sizeof(opts[0]))
        n = sizeof(opts) / sizeof(opts[0]);
    const char *want = arg_str(a, "option");
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (!want || !strcmp(want, opts[i].name))
            json_array_append_new(arr, json_pack("{s:s,s:o}", "option", opts[i].name,
                                                 "parameters", clo_params(opts[i].params)));
    if (want && json_array_size(arr) == 0) {
        json_decref(arr);
        qmp_error_set(e, "GenericError", "Invalid parameter 'option'");
        return -1;
    }
    *ret = arr;
    return 0;
}

/* ----------------------------------------------------------- the table */

typedef int (*cmd_fn)(qmp_commands *, qmp_client *, json_t *, json_t **, qmp_error *);

typedef struct cmd_def {
    const char *name;
    cmd_fn fn;
    arg_spec args[5];
} cmd_def;

static const cmd_def commands[] = {
    { "query-status", cmd_query_status, { { 0 } } },
    { "stop", cmd_stop, { { 0 } } },
    { "cont", cmd_cont, { { 0 } } },
    { "x-retry", cmd_x_retry, { { 0 } } },
    { "system_reset", cmd_system_reset, { { 0 } } },
    { "system_powerdown", cmd_system_powerdown, { { 0 } } },
    { "system_wakeup", cmd_system_wakeup, { { 0 } } },
    { "quit", cmd_quit, { { 0 } } },
    { "set-action", cmd_set_action,
      { { "reboot", A_STR, true }, { "shutdown", A_STR, true }, { "panic", A_STR, true },
        { "watchdog", A_STR, true }, { 0 } } },
    { "watchdog-set-action", cmd_watchdog_set_action, { { "action", A_STR, false }, { 0 } } },
    { "add-fd", cmd_add_fd, { { "fdset-id", A_INT, true }, { "opaque", A_STR, true }, { 0 } } },
    { "remove-fd", cmd_remove_fd, { { "fdset-id", A_INT, false }, { "fd", A_INT, true }, { 0 } } },
    { "query-fdsets", cmd_query_fdsets, { { 0 } } },
    { "getfd", cmd_getfd, { { "fdname", A_STR, false }, { 0 } } },
    { "closefd", cmd_closefd, { { "fdname", A_STR, false }, { 0 } } },
    { "xen-save-devices-state", cmd_xen_save,
      { { "filename", A_STR, false }, { "live", A_BOOL, true }, { 0 } } },
    { "xen-load-devices-state", cmd_xen_load, { { "filename", A_STR, false }, { 0 } } },
    { "xen-set-global-dirty-log", cmd_xen_dirty, { { "enable", A_BOOL, false }, { 0 } } },
    { "query-migratable", cmd_query_migratable, { { 0 } } },
    { "query-version", cmd_query_version, { { 0 } } },
    { "query-commands", cmd_query_commands, { { 0 } } },
    { "query-vnc", cmd_query_vnc, { { 0 } } },
    { "change-vnc-password", cmd_change_vnc_password, { { "password", A_STR, false }, { 0 } } },
    { "query-chardev", cmd_query_chardev, { { 0 } } },
    { "query-command-line-options", cmd_query_clo, { { "option", A_STR, true }, { 0 } } },
};

static int cmd_query_commands(qmp_commands *q, qmp_client *c, json_t *a, json_t **ret, qmp_error *e)
{
    (void)q; (void)c; (void)a; (void)e;
    json_t *arr = json_array();
    json_array_append_new(arr, json_pack("{s:s}", "name", "qmp_capabilities"));
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        json_array_append_new(arr, json_pack("{s:s}", "name", commands[i].name));
    *ret = arr;
    return 0;
}

int qmp_commands_dispatch(void *opaque, qmp_client *c, const char *name, json_t *args,
                          json_t **ret, qmp_error *err)
{
    qmp_commands *q = opaque;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        if (check_args(commands[i].args, args, err) < 0)
            return -1;
        return commands[i].fn(q, c, args, ret, err) < 0 ? -1 : 0;
    }
    return 1;
}

/* -------------------------------------------------------------- events */

static void on_rs_event(void *opaque, const rs_event *ev)
{
    qmp_commands *q = opaque;
    if (!q->srv)
        return;
    json_t *data = NULL;
    switch (ev->type) {
    case RS_EV_RESET:
    case RS_EV_SHUTDOWN:
        data = json_pack("{s:b,s:s}", "guest", ev->guest, "reason", rs_cause_name(ev->cause));
        break;
    case RS_EV_GUEST_PANICKED:
    case RS_EV_WATCHDOG:
        data = json_pack("{s:s}", "action", ev->action);
        break;
    case RS_EV_BLOCK_IO_ERROR:
        data = json_pack("{s:s,s:s,s:s,s:b,s:s}", "device", ev->device, "operation",
                         ev->operation, "action", ev->action, "nospace", ev->nospace, "reason",
                         ev->reason);
        break;
    case RS_EV_HOLD_ADDED:
    case RS_EV_HOLD_RELEASED:
        data = json_pack("{s:s,s:s}", "hold", rs_state_name(ev->hold) ? rs_state_name(ev->hold) : "",
                         "status", rs_state_name(ev->state));
        break;
    default:
        break;   /* STOP, RESUME, SUSPEND, WAKEUP, POWERDOWN: no data in QEMU */
    }
    const char *name = rs_event_name(ev->type);
    if (name)
        qmp_server_event(q->srv, name, data, ev->wall_ns);
    else
        json_decref(data);
}

/* ----------------------------------------------------------- lifecycle */

qmp_commands *qmp_commands_new(rs_vm *vm)
{
    qmp_commands *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->vm = vm;
    q->wakeup_supported = true;
    if (rs_event_sink_add(vm, on_rs_event, q) < 0) {
        dm_err("qmp: cannot register the run-state event sink");
        free(q);
        return NULL;
    }
    return q;
}

void qmp_commands_free(qmp_commands *q)
{
    if (!q)
        return;
    rs_event_sink_del(q->vm, on_rs_event, q);
    while (q->fdsets) {
        fdset *s = q->fdsets;
        q->fdsets = s->next;
        while (s->fds) {
            fdset_fd *f = s->fds;
            s->fds = f->next;
            close(f->fd);
            free(f->opaque);
            free(f);
        }
        free(s);
    }
    while (q->named) {
        named_fd *n = q->named;
        q->named = n->next;
        close(n->fd);
        free(n->name);
        free(n);
    }
    for (size_t i = 0; i < q->nchardevs; i++) {
        free(q->chardevs[i].label);
        free(q->chardevs[i].filename);
    }
    free(q);
}

void qmp_commands_set_server(qmp_commands *q, qmp_server *s) { q->srv = s; }
void qmp_commands_set_xen_hooks(qmp_commands *q, const qmp_xen_hooks *h) { q->xen = *h; }
void qmp_commands_set_wakeup_supported(qmp_commands *q, bool on) { q->wakeup_supported = on; }
bool qmp_commands_quit_requested(const qmp_commands *q) { return q->quit; }

int qmp_commands_add_chardev(qmp_commands *q, const char *label, const char *filename)
{
    if (!label || !filename || q->nchardevs >= MAX_CHARDEVS)
        return -EINVAL;
    char *l = strdup(label), *f = strdup(filename);
    if (!l || !f) {
        free(l);
        free(f);
        return -ENOMEM;
    }
    q->chardevs[q->nchardevs].label = l;
    q->chardevs[q->nchardevs].filename = f;
    q->nchardevs++;
    return 0;
}
