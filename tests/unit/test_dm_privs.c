/*
 * dm_privs: -runas parsing (QEMU's numeric uid:gid, user, user:group,
 * unknown names refused by name) and, when run as root, a real drop in a
 * child process: chroot into a fresh directory and become another user,
 * with root not regainable afterwards.
 */
#include <errno.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dm_privs.h"

static char why[256];

static void test_prepare(void **state)
{
    (void)state;
    dm_privs p;
    assert_int_equal(dm_privs_prepare(&p, "131081:131082", "/run/root-9", why, sizeof(why)), 0);
    assert_true(p.has_user);
    assert_int_equal(p.uid, 131081);
    assert_int_equal(p.gid, 131082);
    assert_string_equal(p.chroot_dir, "/run/root-9");

    assert_int_equal(dm_privs_prepare(&p, "root", NULL, why, sizeof(why)), 0);
    assert_int_equal(p.uid, 0);
    assert_string_equal(p.chroot_dir, "");
    assert_int_equal(dm_privs_prepare(&p, "root:root", NULL, why, sizeof(why)), 0);
    assert_int_equal(p.gid, 0);

    assert_int_equal(dm_privs_prepare(&p, "no-such-user-rsdm", NULL, why, sizeof(why)), -ENOENT);
    assert_non_null(strstr(why, "no user 'no-such-user-rsdm'"));
    assert_int_equal(dm_privs_prepare(&p, "root:no-such-group-rsdm", NULL, why, sizeof(why)),
                     -ENOENT);
    assert_non_null(strstr(why, "no group 'no-such-group-rsdm'"));

    assert_int_equal(dm_privs_prepare(&p, NULL, NULL, why, sizeof(why)), 0);
    assert_false(p.has_user);
    assert_int_equal(dm_privs_drop(&p, why, sizeof(why)), 0);   /* nothing to do */
}

static void test_drop_as_root(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        printf("not root: the chroot and setuid drop is not exercised here\n");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    if (!pw) {
        printf("no user 'nobody': the drop is not exercised here\n");
        return;
    }
    char dir[] = "/tmp/rsdm-privs.XXXXXX", marker[64];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);          /* nobody must reach its own root */
    snprintf(marker, sizeof(marker), "%s/marker", dir);
    assert_int_equal(mkdir(marker, 0755), 0);
    dm_privs p;
    assert_int_equal(dm_privs_prepare(&p, "nobody", dir, why, sizeof(why)), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (dm_privs_drop(&p, why, sizeof(why)) < 0)
            _exit(10);
        struct stat st;
        if (stat("/marker", &st) < 0)        /* the chroot's own root */
            _exit(11);
        if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid)
            _exit(12);
        if (setuid(0) == 0)
            _exit(13);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    rmdir(marker);
    rmdir(dir);
    /* A chroot that does not exist fails naming it. */
    assert_int_equal(dm_privs_prepare(&p, NULL, "/nonexistent-rsdm-root", why, sizeof(why)), 0);
    pid = fork();
    if (pid == 0)
        _exit(dm_privs_drop(&p, why, sizeof(why)) == -ENOENT &&
                      strstr(why, "chroot /nonexistent-rsdm-root") ? 0 : 1);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_drop_as_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
