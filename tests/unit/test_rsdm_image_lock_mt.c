/*
 * The image lock across a save, on a real rsdm-sim in both dialects: a
 * save of the stopped VM (traditional `save`, qemu-xen's live
 * xen-save-devices-state) hands the images over; a `continue` while
 * another process holds one of them is refused with an error naming the
 * disk and the VM stays stopped (QEMU's cont fails when it cannot
 * re-activate its images); once the image is free, `continue` takes the
 * lock back and the VM runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/proc_util.h"
#include "../lib/rsdm_sim.h"

#define WAIT_MS 10000

typedef struct fixture {
    rsdm_sim sim;
    char img[64];
} fixture;

static fixture fx;

static int setup(void **state, rsdm_sim_dialect dialect)
{
    fixture *f = &fx;
    memset(f, 0, sizeof(*f));
    snprintf(f->img, sizeof(f->img), "/tmp/rsdm-lock-%d.img", (int)getpid());
    int fd = open(f->img, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 1 << 20) < 0) {
        perror("creating the image");
        return -1;
    }
    close(fd);
    rsdm_sim_disk disk = { "hda", f->img };
    rsdm_sim_opts o = { .name = "lock", .vcpus = 1, .disks = &disk, .ndisks = 1,
                        .dialect = dialect };
    *state = f;
    return rsdm_sim_start_opts(&f->sim, &o);
}

static int setup_traditional(void **state) { return setup(state, RSDM_SIM_TRADITIONAL); }
static int setup_qemu_xen(void **state) { return setup(state, RSDM_SIM_QEMU_XEN); }

static int teardown(void **state)
{
    fixture *f = *state;
    int st = rsdm_sim_stop_dm(&f->sim);
    rsdm_sim_stop(&f->sim);
    unlink(f->img);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

/* An OFD write lock on the whole image, as another dm takes it: the fd,
 * or -1 when someone else holds it. */
static int lock_image(const fixture *f)
{
    int fd = proc_lock_image(f->img);
    assert_true(fd != -2);
    return fd;
}

static bool reads(rsdm_sim *s, const char *path, const char *want)
{
    unsigned n;
    char *v = xs_read(s->xs, XBT_NULL, path, &n);
    bool eq = v && strcmp(v, want) == 0;
    free(v);
    return eq;
}

/* The toolstack's `continue`; on refusal, the error it gets back. */
static int cont(fixture *f, char *err, size_t len)
{
    rsdm_sim *s = &f->sim;
    err[0] = '\0';
    if (s->dialect == RSDM_SIM_QEMU_XEN) {
        xlq *c = rsdm_sim_qmp(s);
        assert_non_null(c);
        int r = xlq_exec(c, "cont", NULL, -1, NULL, WAIT_MS, err, len);
        xlq_close(c);
        return r;
    }
    /* Traditional: a refused command is reported in the error node. */
    char path[160];
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/error", s->dom);
    assert_true(xs_watch(s->xs, path, "e"));
    unsigned n;
    char *before = xs_read(s->xs, XBT_NULL, path, &n);
    assert_int_equal(rsdm_sim_command(s, "continue"), 0);
    int r = 0;
    for (int left = WAIT_MS; left > 0;) {
        char *v = xs_read(s->xs, XBT_NULL, path, &n);
        bool changed = v && (!before || strcmp(v, before) != 0);
        if (changed)
            snprintf(err, len, "%s", v);
        free(v);
        if (changed) {
            r = -1;
            break;
        }
        if (reads(s, s->runstate, "running holds="))
            break;
        struct pollfd p = { xs_fileno(s->xs), POLLIN, 0 };
        if (poll(&p, 1, 100) > 0)
            free(xs_read_watch(s->xs, &n));
        else
            left -= 100;
    }
    free(before);
    xs_unwatch(s->xs, path, "e");
    return r;
}

static void test_cont_refused_while_image_locked_elsewhere(void **state)
{
    fixture *f = *state;
    assert_int_equal(lock_image(f), -1);                /* the dm holds it */
    char path[256], err[512];
    assert_int_equal(rsdm_sim_save_live(&f->sim, path, sizeof(path)), 0);
    int other = lock_image(f);                          /* handed over */
    assert_true(other >= 0);

    assert_int_not_equal(cont(f, err, sizeof(err)), 0);
    if (!strstr(err, "hda"))
        fail_msg("the refusal does not name the disk: '%s'", err);
    assert_false(reads(&f->sim, f->sim.runstate, "running holds="));
    close(other);

    char again[512];
    assert_int_equal(cont(f, again, sizeof(again)), 0);
    assert_int_equal(rsdm_sim_wait_value(&f->sim, f->sim.runstate, "running holds=", WAIT_MS), 0);
    assert_int_equal(lock_image(f), -1);                /* taken back */
    printf("%s: continue refused while the image was locked elsewhere (\"%s\"), then ran\n",
           rsdm_sim_dialect_name(&f->sim), err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cont_refused_while_image_locked_elsewhere,
                                        setup_traditional, teardown),
        cmocka_unit_test_setup_teardown(test_cont_refused_while_image_locked_elsewhere,
                                        setup_qemu_xen, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
