/* The independent model: see rs_model.h.  Written from docs/runstate.md. */
#include "rs_model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* QEMU's 85 allowed transitions (reference §1.5), "from>to". */
static const char *const table[] = {
    "debug>running", "debug>finish-migrate", "debug>prelaunch",
    "inmigrate>internal-error", "inmigrate>io-error", "inmigrate>paused",
    "inmigrate>running", "inmigrate>shutdown", "inmigrate>suspended",
    "inmigrate>watchdog", "inmigrate>guest-panicked", "inmigrate>finish-migrate",
    "inmigrate>prelaunch", "inmigrate>postmigrate", "inmigrate>colo",
    "internal-error>paused", "internal-error>finish-migrate", "internal-error>prelaunch",
    "io-error>running", "io-error>finish-migrate", "io-error>prelaunch",
    "paused>running", "paused>finish-migrate", "paused>postmigrate",
    "paused>prelaunch", "paused>colo", "paused>suspended",
    "postmigrate>running", "postmigrate>finish-migrate", "postmigrate>prelaunch",
    "prelaunch>running", "prelaunch>finish-migrate", "prelaunch>inmigrate",
    "prelaunch>suspended",
    "finish-migrate>running", "finish-migrate>paused", "finish-migrate>postmigrate",
    "finish-migrate>prelaunch", "finish-migrate>colo", "finish-migrate>internal-error",
    "finish-migrate>io-error", "finish-migrate>shutdown", "finish-migrate>suspended",
    "finish-migrate>watchdog", "finish-migrate>guest-panicked",
    "restore-vm>running", "restore-vm>prelaunch", "restore-vm>suspended",
    "colo>running", "colo>prelaunch", "colo>shutdown",
    "running>debug", "running>internal-error", "running>io-error", "running>paused",
    "running>finish-migrate", "running>restore-vm", "running>save-vm",
    "running>shutdown", "running>watchdog", "running>guest-panicked", "running>colo",
    "save-vm>running", "save-vm>suspended",
    "shutdown>paused", "shutdown>finish-migrate", "shutdown>prelaunch", "shutdown>colo",
    "debug>suspended", "running>suspended", "suspended>running",
    "suspended>finish-migrate", "suspended>prelaunch", "suspended>colo",
    "suspended>paused", "suspended>save-vm", "suspended>restore-vm", "suspended>shutdown",
    "watchdog>running", "watchdog>finish-migrate", "watchdog>prelaunch", "watchdog>colo",
    "guest-panicked>running", "guest-panicked>finish-migrate", "guest-panicked>prelaunch",
};

int rsm_table_size(void) { return (int)(sizeof(table) / sizeof(table[0])); }

bool rsm_allowed(const char *from, const char *to)
{
    if (!strcmp(from, to))
        return true;
    char k[64];
    snprintf(k, sizeof(k), "%s>%s", from, to);
    for (int i = 0; i < rsm_table_size(); i++)
        if (!strcmp(table[i], k))
            return true;
    return false;
}

static bool in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return true;
    return false;
}
static const char *const internal[] = { "finish-migrate", "inmigrate", "save-vm", "restore-vm", "colo", NULL };
static const char *const fatal[] = { "shutdown", "internal-error", NULL };
static const char *const stoppable[] = { "paused", "io-error", "watchdog", "guest-panicked",
                                         "debug", "shutdown", "internal-error", "postmigrate", NULL };
static bool is_internal(const char *s) { return in(s, internal); }
static bool is_fatal(const char *s) { return in(s, fatal); }
static bool is_transient(const char *s) { return !strcmp(s, "save-vm") || !strcmp(s, "restore-vm"); }

bool rsm_held(const rsm *m, const char *r)
{
    for (int i = 0; i < m->nholds; i++)
        if (!strcmp(m->holds[i], r))
            return true;
    return false;
}
bool rsm_live(const rsm *m)
{
    return !strcmp(m->display, "running") || !strcmp(m->display, "suspended");
}
static bool transient_held(const rsm *m) { return rsm_held(m, "save-vm") || rsm_held(m, "restore-vm"); }
static const char *internal_held(const rsm *m)
{
    for (int i = 0; i < m->nholds; i++)
        if (is_internal(m->holds[i]))
            return m->holds[i];
    return NULL;
}

void rsm_emit(rsm *m, const char *type, const char *hold)
{
    if (m->nev >= 64)
        return;
    rsm_event *e = &m->ev[m->nev++];
    snprintf(e->type, sizeof(e->type), "%s", type);
    snprintf(e->hold, sizeof(e->hold), "%s", hold ? hold : "");
    memcpy(e->display, m->display, RSM_NAME);
}
#define emit rsm_emit
static void set_display(rsm *m, const char *s) { snprintf(m->display, RSM_NAME, "%s", s); }

static void add(rsm *m, const char *r)
{
    snprintf(m->holds[m->nholds], RSM_NAME, "%s", r);
    m->seq[m->nholds++] = ++m->next_seq;
}
static void drop(rsm *m, const char *r)
{
    for (int i = 0; i < m->nholds; i++)
        if (!strcmp(m->holds[i], r)) {
            memmove(&m->holds[i], &m->holds[i + 1], (size_t)(m->nholds - i - 1) * RSM_NAME);
            memmove(&m->seq[i], &m->seq[i + 1], (size_t)(m->nholds - i - 1) * sizeof(m->seq[0]));
            m->nholds--;
            return;
        }
}

void rsm_init(rsm *m)
{
    memset(m, 0, sizeof(*m));
    set_display(m, "prelaunch");
    add(m, "prelaunch");
}

/* §4 "show": first eligible candidate, else paused if allowed, else stay. */
static void show(rsm *m, const char *const *cand, int n)
{
    for (int i = 0; i < n; i++) {
        const char *r = cand[i];
        if (rsm_allowed(m->display, r) &&
            (!m->W || rsm_allowed(r, "suspended") || is_fatal(r))) {
            set_display(m, r);
            return;
        }
    }
    if (rsm_allowed(m->display, "paused"))
        set_display(m, "paused");
}

static void residual(rsm *m)
{
    const char *c[RSM_MAX] = { 0 };
    int n = 0;
    for (int i = m->nholds - 1; i >= 0; i--)
        c[n++] = m->holds[i];
    show(m, c, n);
}

static void start(rsm *m)
{
    set_display(m, m->W ? "suspended" : "running");
    emit(m, "RESUME", NULL);
    m->W = false;
}

/* §5 batch of stops (n == 1: a single stop). */
static void stop_batch(rsm *m, char (*r)[RSM_NAME], int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i], "paused") && rsm_held(m, "inmigrate"))
            m->A = false;
    if (rsm_live(m)) {
        m->W = !strcmp(m->display, "suspended");
        bool isnew[RSM_MAX];
        for (int i = 0; i < n; i++) {
            isnew[i] = !rsm_held(m, r[i]);
            if (isnew[i])
                add(m, r[i]);
        }
        const char *c[RSM_MAX] = { 0 };
        for (int i = 0; i < n; i++)
            c[i] = r[n - 1 - i];
        show(m, c, n);
        int announced = n - 1;
        for (int i = 0; i < n; i++)
            if (!strcmp(r[i], m->display))
                announced = i;
        /* the displayed reason: the last posted one that the display shows */
        for (int i = n - 1; i >= 0; i--)
            if (!strcmp(r[i], m->display)) { announced = i; break; }
        emit(m, "STOP", r[announced]);
        for (int i = 0; i < n; i++)
            if (i != announced && isnew[i]) {
                bool dup = false;
                for (int j = 0; j < i; j++)
                    if (!strcmp(r[j], r[i]))
                        dup = true;
                if (!dup && strcmp(r[i], r[announced]))
                    emit(m, "x-hold-added", r[i]);
            }
    } else {
        for (int i = 0; i < n; i++)
            if (!rsm_held(m, r[i])) {
                add(m, r[i]);
                emit(m, "x-hold-added", r[i]);
            }
    }
}

static void take_pending_stops(rsm *m)
{
    if (!m->npending)
        return;
    /* A reason posted twice counts at its last posting (docs/runstate.md §7). */
    char r[RSM_MAX][RSM_NAME];
    int n = 0;
    for (int i = 0; i < m->npending; i++) {
        bool later = false;
        for (int j = i + 1; j < m->npending; j++)
            if (!strcmp(m->pending[i], m->pending[j]))
                later = true;
        if (!later)
            memcpy(r[n++], m->pending[i], RSM_NAME);
    }
    m->npending = 0;
    stop_batch(m, r, n);
}

int rsm_stop(rsm *m, const char *reason)
{
    if (!in(reason, stoppable))
        return -EINVAL;
    if (transient_held(m)) {
        rsm_post_stop(m, reason);
        return 0;
    }
    char r[1][RSM_NAME];
    snprintf(r[0], RSM_NAME, "%s", reason);
    stop_batch(m, r, 1);
    return 0;
}

void rsm_post_stop(rsm *m, const char *reason)
{
    if (m->npending < RSM_MAX)
        snprintf(m->pending[m->npending++], RSM_NAME, "%s", reason);
}

static void release_user_mgmt(rsm *m)
{
    for (int i = 0; i < m->nholds;)
        if (!is_internal(m->holds[i]) && !is_fatal(m->holds[i]))
            drop(m, m->holds[i]);
        else
            i++;
}

int rsm_cont(rsm *m)
{
    if (transient_held(m))
        return -EBUSY;
    take_pending_stops(m);
    for (int i = 0; i < m->nholds; i++)
        if (is_fatal(m->holds[i]))
            return -EPERM;
    if (rsm_held(m, "finish-migrate"))
        return -EBUSY;
    if (rsm_held(m, "inmigrate")) {
        m->A = true;
        return 0;
    }
    if (rsm_held(m, "colo"))
        return -EBUSY;
    if (!m->nholds)
        return 0;
    release_user_mgmt(m);
    start(m);
    return 0;
}

int rsm_retry(rsm *m)
{
    if (transient_held(m))
        return -EBUSY;
    take_pending_stops(m);
    if (!rsm_held(m, "io-error"))
        return -ENOENT;
    if (m->nholds > 1)
        return -EBUSY;
    drop(m, "io-error");
    start(m);
    return 0;
}

int rsm_acquire(rsm *m, const char *r)
{
    if (!is_internal(r))
        return -EINVAL;
    if (!strcmp(r, "colo"))
        return -ENOTSUP;
    if (internal_held(m))
        return -EBUSY;
    if (!strcmp(r, "finish-migrate")) {
        if (rsm_live(m)) {
            m->W = !strcmp(m->display, "suspended");
            add(m, r);
            set_display(m, r);
            emit(m, "STOP", r);
        } else {
            add(m, r);
            if (rsm_allowed(m->display, r))
                set_display(m, r);
            emit(m, "x-hold-added", r);
        }
        return 0;
    }
    if (!strcmp(r, "inmigrate")) {
        if (strcmp(m->display, "prelaunch"))
            return -EBUSY;
        add(m, r);
        set_display(m, r);
        emit(m, "x-hold-added", r);
        return 0;
    }
    /* save-vm, restore-vm */
    if (!rsm_live(m) || m->nholds)
        return -EBUSY;
    m->W = !strcmp(m->display, "suspended");
    add(m, r);
    set_display(m, r);
    emit(m, "STOP", r);
    return 0;
}

int rsm_release(rsm *m, const char *r)
{
    if (!rsm_held(m, r))
        return -ENOENT;
    if (!is_internal(r))
        return -EINVAL;
    drop(m, r);
    bool conv_rel = false, conv_add = false;
    if (!strcmp(r, "inmigrate")) {
        if (m->A) {
            m->A = false;
            bool f = false;
            for (int i = 0; i < m->nholds; i++)
                f |= is_fatal(m->holds[i]);
            if (!f)
                release_user_mgmt(m);
        } else {
            /* the VM has been launched: QEMU ends paused */
            if (rsm_held(m, "prelaunch")) {
                drop(m, "prelaunch");
                conv_rel = true;
                if (!rsm_held(m, "paused")) {
                    add(m, "paused");
                    conv_add = true;
                }
            } else if (!m->nholds) {
                add(m, "paused");
                conv_add = true;
            }
        }
    }
    if (!m->nholds) {
        start(m);
        if (is_transient(r))
            (void)0; /* pending stops wait for the next rs_process_requests */
        return 0;
    }
    residual(m);
    emit(m, "x-hold-released", r);
    if (conv_rel)
        emit(m, "x-hold-released", "prelaunch");
    if (conv_add)
        emit(m, "x-hold-added", "paused");
    return 0;
}

void rsm_process(rsm *m, bool reset)
{
    if (reset)
        m->reset_pending = true;
    if (transient_held(m))
        return;     /* nothing is taken while save-vm / restore-vm is held */
    if (m->debug_pending) {          /* §7 order: debug, ..., reset, ..., powerdown, vmstop */
        m->debug_pending = false;
        (void)rsm_stop(m, "debug");
    }
    if (m->suspend_pending) {        /* §10: a stopped VM keeps it pending */
        if (!strcmp(m->display, "running")) {
            m->suspend_pending = false;
            set_display(m, "suspended");
            emit(m, "SUSPEND", NULL);
        } else if (!strcmp(m->display, "suspended")) {
            m->suspend_pending = false;
        }
    }
    if (m->reset_pending) {
        m->reset_pending = false;
        m->suspend_pending = m->wakeup_pending = false;
        bool was_live = rsm_live(m);
        bool was_susp = !strcmp(m->display, "suspended");
        emit(m, "RESET", NULL);
        m->W = false;
        bool intern = internal_held(m) != NULL;
        /* released in acquisition order; a prelaunch hold stays when the
         * reset ends in prelaunch anyway */
        char rel[RSM_MAX][RSM_NAME];
        int nrel = 0;
        for (int i = 0; i < m->nholds;) {
            const char *h = m->holds[i];
            if (!is_internal(h) && (intern || strcmp(h, "prelaunch"))) {
                snprintf(rel[nrel++], RSM_NAME, "%s", h);
                drop(m, rel[nrel - 1]);
            } else {
                i++;
            }
        }
        bool added = false;
        if (intern) {
            /* display stays */
        } else if (!was_live) {
            if (!rsm_held(m, "prelaunch")) {
                add(m, "prelaunch");
                added = true;
            }
            set_display(m, "prelaunch");
        } else if (was_susp) {
            set_display(m, "running");
        }
        /* the events carry the state after the whole reset */
        for (int i = 0; i < nrel; i++)
            emit(m, "x-hold-released", rel[i]);
        if (added)
            emit(m, "x-hold-added", "prelaunch");
    }
    if (m->wakeup_pending) {
        m->wakeup_pending = false;
        if (!strcmp(m->display, "suspended")) {
            set_display(m, "running");
            emit(m, "WAKEUP", NULL);
        } else if (!rsm_live(m) && m->W) {
            m->W = false;
            emit(m, "WAKEUP", NULL);
        }
    }
    if (m->powerdown_pending) {
        m->powerdown_pending = false;
        emit(m, "POWERDOWN", NULL);
    }
    take_pending_stops(m);
}

void rsm_request_suspend(rsm *m) { m->suspend_pending = true; }

int rsm_request_wakeup(rsm *m)
{
    if (strcmp(m->display, "suspended"))
        return -EINVAL;     /* "Unable to wake up: guest is not in suspended state" */
    m->wakeup_pending = true;
    return 0;
}
