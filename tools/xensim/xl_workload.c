/*
 * xl_workload.c: what `xensim xl` does for the simulated guest itself —
 * start its workload after create, stop it when the guest suspends for a
 * save, and resume the workload from guest RAM after a restore, a
 * migration or a cancelled suspend.  Through the simulator's control
 * socket.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "guest_ctl.h"
#include "xl_cmd.h"

int xl_wl_start(const char *rundir, unsigned domid, const struct xl_cfg *cfg, int resume)
{
    char spec[sizeof(cfg->workload) + 300];
    const char *base = cfg->workload[0] ? cfg->workload : "fw=hvmloader devices=uart";
    /* A test that plays the guest itself (writing its RAM through the
     * hypervisor) wants no simulated guest competing for that RAM. */
    if (strcmp(base, "none") == 0)
        return 0;
    snprintf(spec, sizeof(spec), "%s", base);
    /* The guest's console is the dm's serial when that is a socket the dm
     * serves; said explicitly in the spec, it wins. */
    const char *ser = cfg->serial;
    if (!resume && strncmp(ser, "unix:", 5) == 0 && !strstr(spec, "console=")) {
        char path[256];
        snprintf(path, sizeof(path), "%s", ser + 5);
        char *comma = strchr(path, ',');
        if (comma)
            *comma = '\0';
        size_t n = strlen(spec);
        snprintf(spec + n, sizeof(spec) - n, " console=%s", path);
    }
    char *out = NULL;
    int rc = guest_ctl_call(rundir, HV_GUEST_START, domid, resume ? HV_GUEST_RESUME : 0, 0,
                            resume ? NULL : spec, resume ? 0 : strlen(spec), &out);
    if (rc > 0)
        fprintf(stderr, "libxl: error: domain %u: guest workload did not %s: %s\n", domid,
                resume ? "resume" : "start", out && *out ? out : strerror(rc));
    free(out);
    return rc == 0 ? 0 : -1;
}

int xl_wl_stop(const char *rundir, unsigned domid, int timeout_ms)
{
    char *out = NULL;
    int rc = guest_ctl_call(rundir, HV_GUEST_STOP, domid, 0, (uint64_t)timeout_ms, NULL, 0,
                            &out);
    if (rc > 0 && rc != ENOENT)
        fprintf(stderr, "libxl: error: domain %u: guest workload did not stop: %s\n", domid,
                out && *out ? out : strerror(rc));
    free(out);
    return rc == 0 || rc == ENOENT ? 0 : -1;
}

int xl_wl_resume(const char *rundir, unsigned domid)
{
    char *out = NULL;
    int rc = guest_ctl_call(rundir, HV_GUEST_START, domid, HV_GUEST_RESUME, 0, NULL, 0, &out);
    /* no state in guest RAM (it had no workload), or it never stopped */
    bool none = rc > 0 && out && (strstr(out, "no workload state") ||
                                  strstr(out, "already running"));
    if (rc > 0 && !none)
        fprintf(stderr, "libxl: error: domain %u: guest workload did not resume: %s\n", domid,
                out && *out ? out : strerror(rc));
    free(out);
    return rc == 0 || none ? 0 : -1;
}
