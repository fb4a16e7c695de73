/*
 * `rsdmctl stop|cont|retry|reset|powerdown|wakeup DOMID`: one command word
 * to the dm (docs/protocol.md §2), then a bounded wait for its effect in
 * the status node, or the dm's refusal from its `error` node.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rsdmctl.h"

typedef enum { W_STOPPED, W_RUNNING, W_EVENT } want;

static const struct {
    const char *name, *word;
    want w;
    const char *help;
} cmds[] = {
    { "stop", "stop", W_STOPPED, "Stop the VM (a `paused` hold); waits until it is stopped." },
    { "cont", "continue", W_RUNNING, "Continue a stopped VM; waits until it runs.\n"
      "Refused while other holds remain (e.g. io-error: use retry) or a reset is needed." },
    { "retry", "retry", W_RUNNING, "Clear the io-error holds; devices re-issue their parked I/O.\n"
      "Waits until the VM runs; refused when no I/O error is parked." },
    { "reset", "reset", W_EVENT, "Reset the machine (host-qmp-system-reset); waits for the reset." },
    { "powerdown", "powerdown", W_EVENT, "Press the ACPI power button; waits until it is delivered." },
    { "wakeup", "wakeup", W_RUNNING, "Wake a suspended (S3) guest; waits until it runs." },
};

static bool has_hold(json_t *s, const char *reason)
{
    size_t i;
    json_t *h;

    json_array_foreach(json_object_get(s, "holds"), i, h)
        if (strcmp(json_string_value(json_object_get(h, "reason")), reason) == 0)
            return true;
    return false;
}

static bool done_stopped(json_t *s, void *arg)
{
    (void)arg;
    return has_hold(s, "paused") && !json_is_true(json_object_get(s, "running"));
}

static bool done_running(json_t *s, void *arg)
{
    (void)arg;
    return json_is_true(json_object_get(s, "running"));
}

static bool done_event(json_t *s, void *arg)
{
    (void)s;
    (void)arg;
    return true;      /* with the event counter moved: the dm acted */
}

int rsdmctl_control(int argc, char **argv)
{
    size_t k, n = sizeof(cmds) / sizeof(cmds[0]);
    char usage[1024], why[512];
    ctl_args a;

    for (k = 0; k < n && strcmp(argv[0], cmds[k].name) != 0; k++)
        ;
    if (k == n)
        return RSDMCTL_USAGE;
    snprintf(usage, sizeof(usage),
             "Usage: rsdmctl %s [--timeout S] [--qmp PATH] DOMID\n%s\n"
             "  --timeout S  wait at most S seconds for the result (default %d)\n"
             "  --qmp PATH   talk QMP over the Unix socket PATH instead of xenstore\n"
             "Exit status: 0 done, 1 refused (the dm's reason is printed) or no answer,\n"
             "2 usage error.\n", cmds[k].name, cmds[k].help, RSDMCTL_TIMEOUT_S);
    int rc = ctl_parse_args(argc, argv, "tq", 1, 1, usage, &a);
    if (rc)
        return rc < 0 ? RSDMCTL_OK : rc;
    if (!ctl_parse_domid(a.pos[0], &a.tg.domid))
        return RSDMCTL_USAGE;
    ctl_transport *t = ctl_open(&a.tg);
    if (!t)
        return RSDMCTL_FAIL;
    rc = t->command(t, cmds[k].word, cmds[k].w != W_EVENT && k < 2,
                    cmds[k].w == W_STOPPED ? done_stopped
                    : cmds[k].w == W_RUNNING ? done_running : done_event,
                    NULL, a.tg.timeout_ms, why, sizeof(why));
    t->close(t);
    if (rc < 0) {
        if (rc == -EPERM)
            ctl_err("%s domain %u refused: %s", cmds[k].name, a.tg.domid, why);
        else
            ctl_err("%s domain %u: %s", cmds[k].name, a.tg.domid, why);
        return RSDMCTL_FAIL;
    }
    return RSDMCTL_OK;
}
