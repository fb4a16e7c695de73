/*
 * A QMP client written with Python's standard library only drives rsdm's
 * QMP server through libxl's save sequence (tests/integration/
 * test_qmp_python holds the client).  Without arguments this is a cmocka
 * test: it listens on a Unix socket, forks python3 on the client script
 * and serves until the child exits.  With --serve PATH it only serves (the
 * integration script starts it that way) until `quit`.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp_commands.h"
#include "qmp_server.h"
#include "runstate.h"

/* The bytes the save hook writes; the client checks the file it passed. */
#define STATE_BYTES "RSDM-QMP-TEST-STATE\n"

typedef struct host {
    rs_vm *vm;
    qmp_commands *cmds;
    qmp_server *srv;
} host;

static int save_hook(void *opaque, int fd, bool live, char *err, size_t errlen)
{
    (void)opaque;
    (void)live;
    size_t n = strlen(STATE_BYTES);
    if (write(fd, STATE_BYTES, n) != (ssize_t)n) {
        snprintf(err, errlen, "writing the state: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int host_open(host *h, const char *path)
{
    h->vm = rs_vm_new();
    h->cmds = qmp_commands_new(h->vm);
    h->srv = qmp_server_new(qmp_commands_dispatch, h->cmds);
    if (!h->vm || !h->cmds || !h->srv)
        return -1;
    qmp_commands_set_server(h->cmds, h->srv);
    qmp_xen_hooks xh = { .save_devices_state = save_hook };
    qmp_commands_set_xen_hooks(h->cmds, &xh);
    /* libxl starts the dm running (no -S): leave prelaunch */
    rs_err re = { 0 };
    if (rs_cont(h->vm, &re) < 0)
        return -1;
    return qmp_server_listen_path(h->srv, path);
}

static void host_close(host *h)
{
    qmp_server_free(h->srv);
    qmp_commands_free(h->cmds);
    rs_vm_free(h->vm);
}

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* One main-loop step: the socket, then run-state requests.  1 on quit. */
static int step(host *h)
{
    qmp_server_poll_once(h->srv, 50);
    int st = 0;
    return rs_process_requests(h->vm, &st) == 1;
}

static const char *script_path(void)
{
    static char buf[PATH_MAX];
    const char *src = getenv("RSDM_SRCDIR");
    if (src) {
        snprintf(buf, sizeof(buf), "%s/tests/integration/test_qmp_python", src);
    } else {
        /* __FILE__ is absolute in this build: <src>/tests/unit/test_qmp_python.c */
        snprintf(buf, sizeof(buf), "%s", __FILE__);
        char *p = strstr(buf, "/tests/unit/");
        if (!p)
            return NULL;
        strcpy(p, "/tests/integration/test_qmp_python");
    }
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static void test_python_client(void **state)
{
    (void)state;
    const char *script = script_path();
    if (!script || system("python3 -c 'import socket; socket.send_fds' 2>/dev/null") != 0) {
        printf("python3 with socket.send_fds (3.9+) or the client script not found\n");
        skip();
    }
    char path[64];
    snprintf(path, sizeof(path), "/tmp/qmp-py-%d.sock", (int)getpid());
    host h = { 0 };
    assert_int_equal(host_open(&h, path), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execlp("python3", "python3", script, "--socket", path, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    int64_t end = now_s() + 60;
    bool quit = false;
    while (now_s() < end) {
        quit |= step(&h);
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
    }
    if (now_s() >= end) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("python client did not finish in 60 s");
    }
    host_close(&h);
    unlink(path);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(quit);   /* the client ended with quit */
}

static int serve(const char *path)
{
    host h = { 0 };
    if (host_open(&h, path) < 0) {
        fprintf(stderr, "test_qmp_python: cannot serve on %s\n", path);
        return 1;
    }
    printf("ready\n");   /* the integration script waits for this line */
    fflush(stdout);
    int64_t end = now_s() + 120;   /* never outlive a broken client */
    int rc = 1;
    while (now_s() < end)
        if (step(&h)) {
            rc = 0;
            break;
        }
    for (int i = 0; i < 5; i++)    /* let the last replies and SHUTDOWN out */
        qmp_server_poll_once(h.srv, 10);
    host_close(&h);
    unlink(path);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--serve"))
        return serve(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
