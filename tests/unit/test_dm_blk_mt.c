/*
 * The block backend with its real worker threads, a real dm_loop and a
 * real rs_vm, on image files in a mkdtemp directory: round trips, refused
 * images, the lock, O_DIRECT and its fallback, concurrency and completion
 * order, injection (every op x errno x once/always), the error-policy
 * table, BLOCK_IO_ERROR before STOP, drain, cancel and close.  Waits are
 * on completions with a bound, never on time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/loop.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "blk.h"
#include "dm_log.h"

#define MiB (1024u * 1024u)
#define IMAGE_SIZE (4u * MiB)
#define WAIT_MS 20000

/* --------------------------------------------------------------- fixture */

typedef struct fixture {
    char dir[PATH_MAX];
    char image[PATH_MAX + 16];
    dm_loop *loop;
    rs_vm *vm;
    dm_watch *rs_watch;
} fixture;

static char err[512];

static void make_file(const char *path, size_t size, const void *head, size_t headlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (headlen)
        assert_int_equal(pwrite(fd, head, headlen, 0), (ssize_t)headlen);
    close(fd);
}

static void on_rs_notify(void *opaque, int fd)
{
    (void)fd;
    int status;
    rs_process_requests(opaque, &status);
}

static fixture *fixture_new(const char *base)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/rsdm-blk-XXXXXX", base);
    if (!mkdtemp(f->dir)) {
        free(f);
        return NULL;
    }
    snprintf(f->image, sizeof(f->image), "%s/disk.img", f->dir);
    make_file(f->image, IMAGE_SIZE, NULL, 0);
    f->loop = dm_loop_new();
    assert_non_null(f->loop);
    f->vm = rs_vm_new();
    assert_non_null(f->vm);
    f->rs_watch = dm_watch_add(f->loop, rs_notify_fd(f->vm), on_rs_notify, NULL, f->vm);
    assert_non_null(f->rs_watch);
    return f;
}

static int setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    *state = fixture_new(tmp && *tmp ? tmp : "/tmp");
    return *state ? 0 : -1;
}

static void remove_dir(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
    fixture *f = *state;
    dm_watch_remove(f->rs_watch);
    dm_loop_free(f->loop);
    rs_vm_free(f->vm);
    remove_dir(f->dir);
    free(f);
    return 0;
}

static dm_blk_opts opts_for(fixture *f, const char *path)
{
    return (dm_blk_opts){ .path = path ? path : f->image, .name = "hda",
                          .cache = DM_CACHE_WRITEBACK, .rerror = DM_ERR_REPORT,
                          .werror = DM_ERR_ENOSPC, .vm = f->vm };
}

static dm_blk *open_ok(fixture *f, const dm_blk_opts *o)
{
    err[0] = 0;
    dm_blk *b = dm_blk_open(f->loop, o, err, sizeof(err));
    if (!b)
        fail_msg("dm_blk_open: %s", err);
    return b;
}

/* ------------------------------------------------------------ completions */

typedef struct done_rec {
    int calls;
    int ret;
    unsigned order;              /* 1-based completion order */
} done_rec;

static unsigned completed;

static void on_done(void *opaque, int ret)
{
    done_rec *d = opaque;
    d->calls++;
    d->ret = ret;
    d->order = ++completed;
}

static dm_blk_req *submit(dm_blk *b, dm_blk_op op, uint64_t off, void *buf, size_t len,
                          done_rec *d)
{
    memset(d, 0, sizeof(*d));
    dm_blk_req *r = dm_blk_submit(b, op, off, buf, len, on_done, d);
    if (!r)
        fail_msg("dm_blk_submit: %s", strerror(errno));
    return r;
}

/* Runs the loop until `target` completions happened in total, at most
 * WAIT_MS. */
static void wait_completed(fixture *f, unsigned target)
{
    int64_t deadline = dm_now_ns() + (int64_t)WAIT_MS * 1000000;
    while (completed < target) {
        if (dm_now_ns() > deadline)
            fail_msg("only %u of %u completions within %d ms", completed, target, WAIT_MS);
        assert_true(dm_loop_iterate(f->loop, 100) >= 0);
    }
}

/* One request, waited for; returns its ret. */
static int run1(fixture *f, dm_blk *b, dm_blk_op op, uint64_t off, void *buf, size_t len)
{
    done_rec d;
    submit(b, op, off, buf, len, &d);
    wait_completed(f, completed + 1);
    assert_int_equal(d.calls, 1);
    return d.ret;
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(seed * 31u + i * 7u + (i >> 9));
}

/* ------------------------------------------------------------ round trip */

static void round_trip(fixture *f, dm_blk *b, unsigned char *wbuf, unsigned char *rbuf,
                       size_t len)
{
    static const uint64_t offs[] = { 0, 512, 3 * 4096, IMAGE_SIZE - 64 * 1024 };
    for (unsigned i = 0; i < 4; i++) {
        size_t n = offs[i] + len > IMAGE_SIZE ? IMAGE_SIZE - offs[i] : len;
        fill(wbuf, n, i + 1);
        assert_int_equal(run1(f, b, DM_BLK_WRITE, offs[i], wbuf, n), 0);
        assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), 0);
        memset(rbuf, 0xee, n);
        assert_int_equal(run1(f, b, DM_BLK_READ, offs[i], rbuf, n), 0);
        assert_memory_equal(wbuf, rbuf, n);
    }
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *b = open_ok(f, &o);
    assert_string_equal(dm_blk_name(b), "hda");
    assert_int_equal(dm_blk_sectors(b), IMAGE_SIZE / 512);
    assert_false(dm_blk_read_only(b));
    assert_true(dm_blk_locked(b));
    size_t len = 64 * 1024;
    unsigned char *w = malloc(len), *r = malloc(len);
    round_trip(f, b, w, r, len);
    dm_blk_stats s;
    dm_blk_get_stats(b, &s);
    assert_int_equal(s.reads, 4);
    assert_int_equal(s.writes, 4);
    assert_int_equal(s.flushes, 4);
    assert_int_equal(s.bytes_written, 4 * len);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.in_flight, 0);
    dm_blk_close(b);
    /* What the backend wrote is in the file. */
    int fd = open(f->image, O_RDONLY);
    assert_true(fd >= 0);
    fill(w, len, 4);
    assert_int_equal(pread(fd, r, len, IMAGE_SIZE - len), (ssize_t)len);
    assert_memory_equal(w, r, len);
    close(fd);
    /* cache=unsafe: flush is a no-op that still completes. */
    o.cache = DM_CACHE_UNSAFE;
    b = open_ok(f, &o);
    assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), 0);
    dm_blk_close(b);
    free(w);
    free(r);
}

static void test_bad_requests(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *b = open_ok(f, &o);
    char buf[1024];
    const struct {
        uint64_t off;
        size_t len;
    } bad[] = {
        { IMAGE_SIZE, 512 }, { IMAGE_SIZE - 512, 1024 }, { 100, 512 }, { 0, 100 }, { 0, 0 },
        { UINT64_MAX - 511, 512 },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_null(dm_blk_submit(b, DM_BLK_READ, bad[i].off, buf, bad[i].len, on_done, NULL));
        assert_int_equal(errno, EINVAL);
    }
    assert_null(dm_blk_submit(b, DM_BLK_WRITE, 0, NULL, 512, on_done, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(dm_blk_in_flight(b), 0);
    dm_blk_close(b);

    o.read_only = true;
    b = open_ok(f, &o);
    assert_true(dm_blk_read_only(b));
    errno = 0;
    assert_null(dm_blk_submit(b, DM_BLK_WRITE, 0, buf, 512, on_done, NULL));
    assert_int_equal(errno, EROFS);
    assert_int_equal(run1(f, b, DM_BLK_READ, 0, buf, 1024), 0);
    dm_blk_close(b);
}

/* An image that shrinks under the backend: a read past its new end cannot
 * be completed and fails with EIO instead of returning a short buffer. */
static void test_image_shrinks(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *b = open_ok(f, &o);
    static char buf[8192];
    assert_int_equal(truncate(f->image, IMAGE_SIZE / 2 + 4096), 0);
    assert_int_equal(run1(f, b, DM_BLK_READ, IMAGE_SIZE / 2, buf, sizeof(buf)), -EIO);
    assert_int_equal(run1(f, b, DM_BLK_READ, IMAGE_SIZE / 2 - 4096, buf, sizeof(buf)), 0);
    dm_blk_stats s;
    dm_blk_get_stats(b, &s);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.injected, 0);
    assert_int_equal(s.reads, 1);
    dm_blk_close(b);
}

/* ------------------------------------------------------- refused images */

static void expect_refused(fixture *f, const char *path, bool read_only, const char *words)
{
    dm_blk_opts o = opts_for(f, path);
    o.read_only = read_only;
    err[0] = 0;
    dm_blk *b = dm_blk_open(f->loop, &o, err, sizeof(err));
    if (b)
        fail_msg("%s was accepted", path);
    if (!strstr(err, "disk hda") || !strstr(err, words))
        fail_msg("message for %s lacks 'disk hda' or '%s': %s", path, words, err);
}

/* As uid/gid 65534 in a child: the open is refused for lack of permission,
 * naming the disk.  Exit status 0 when it is. */
static void refused_as_nobody(fixture *f, const char *path)
{
    assert_int_equal(chmod(f->dir, 0711), 0);  /* let nobody reach the file */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        dm_blk_opts o = opts_for(f, path);
        o.read_only = true;
        char e[512];
        dm_blk *b = dm_blk_open(f->loop, &o, e, sizeof(e));
        _exit(!b && strstr(e, "disk hda") && strstr(e, path) && strstr(e, "Permission denied")
                  ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(chmod(f->dir, 0700), 0);
}

static void test_refused_images(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *file, *head;
        size_t off, len;
        const char *word;
    } formats[] = {
        { "q.qcow2", "QFI\xfb\0\0\0\3", 0, 8, "qcow2" },
        { "v.vmdk", "KDMV", 0, 4, "vmdk" },
        { "d.vmdk", "# Disk DescriptorFile\nversion=1\n", 0, 32, "vmdk" },
        { "x.vhdx", "vhdxfile", 0, 8, "vhdx" },
        { "i.vdi", "\x7f\x10\xda\xbe", 64, 4, "vdi" },
        { "e.qed", "QED\0", 0, 4, "qed" },
        { "p.vhd", "conectix", 0, 8, "vpc" },
    };
    char path[PATH_MAX + 32];
    for (unsigned i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, formats[i].file);
        char head[128] = { 0 };
        memcpy(head + formats[i].off, formats[i].head, formats[i].len);
        make_file(path, MiB, head, formats[i].off + formats[i].len);
        expect_refused(f, path, false, formats[i].word);
        expect_refused(f, path, true, "raw");
    }
    snprintf(path, sizeof(path), "%s/odd.img", f->dir);
    make_file(path, MiB + 100, NULL, 0);
    expect_refused(f, path, false, "not a whole number of 512-byte sectors");
    snprintf(path, sizeof(path), "%s/missing.img", f->dir);
    expect_refused(f, path, false, "No such file");
    expect_refused(f, f->dir, true, "directory");
    expect_refused(f, f->dir, false, "directory");
    snprintf(path, sizeof(path), "%s/fifo", f->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_refused(f, path, true, "not a regular file or block device");
    /* Unreadable: root reads anything, so it is checked as nobody. */
    snprintf(path, sizeof(path), "%s/secret.img", f->dir);
    make_file(path, MiB, NULL, 0);
    assert_int_equal(chmod(path, 0), 0);
    if (geteuid() != 0)
        expect_refused(f, path, true, "Permission denied");
    else
        refused_as_nobody(f, path);
    /* A policy QEMU refuses. */
    dm_blk_opts o = opts_for(f, NULL);
    o.rerror = DM_ERR_ENOSPC;
    assert_null(dm_blk_open(f->loop, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "rerror = enospc"));
    /* An empty image of raw zeros is fine. */
    snprintf(path, sizeof(path), "%s/zero.img", f->dir);
    make_file(path, 0, NULL, 0);
    o = opts_for(f, path);
    dm_blk *b = open_ok(f, &o);
    assert_int_equal(dm_blk_sectors(b), 0);
    dm_blk_close(b);
}

/* ----------------------------------------------------------------- lock */

static void test_lock(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *a = open_ok(f, &o);
    assert_true(dm_blk_locked(a));
    /* Same process, another open file description: refused. */
    expect_refused(f, f->image, false, "in use");
    assert_non_null(strstr(err, f->image));
    expect_refused(f, f->image, true, "in use");
    /* Released (a stopped VM saved live): another opener may take it. */
    assert_int_equal(dm_blk_lock_release(a), 0);
    assert_false(dm_blk_locked(a));
    o.name = "hdb";
    o.read_only = true;
    dm_blk *c = open_ok(f, &o);
    dm_blk *d = open_ok(f, &o);               /* shared locks coexist */
    err[0] = 0;
    assert_true(dm_blk_lock_acquire(a, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, f->image));
    assert_false(dm_blk_locked(a));
    dm_blk_close(c);
    dm_blk_close(d);
    assert_int_equal(dm_blk_lock_acquire(a, err, sizeof(err)), 0);
    assert_true(dm_blk_locked(a));
    expect_refused(f, f->image, true, "in use");
    dm_blk_close(a);
    /* Closing drops the lock. */
    o = opts_for(f, NULL);
    a = open_ok(f, &o);
    dm_blk_close(a);
}

/* ------------------------------------------------------------- O_DIRECT */

/* The image's descriptor in this process, found through /proc/self/fd. */
static int image_fd_flags(const char *image)
{
    char real[PATH_MAX];
    assert_non_null(realpath(image, real));
    for (int fd = 3; fd < 1024; fd++) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strcmp(target, real) == 0)
            return fcntl(fd, F_GETFL);
    }
    fail_msg("no descriptor of %s is open", image);
    return -1;
}

/* Does the filesystem of `dir` take O_DIRECT? */
static bool fs_takes_direct(const char *dir)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    unlink(path);
    return fd >= 0;
}

static void direct_round_trip(fixture *f, dm_blk *b)
{
    size_t len = 128 * 1024;
    unsigned char *w = NULL, *r = NULL;
    assert_int_equal(posix_memalign((void **)&w, 4096, len + 512), 0);
    assert_int_equal(posix_memalign((void **)&r, 4096, len + 512), 0);
    round_trip(f, b, w, r, len);            /* aligned: straight through */
    round_trip(f, b, w + 512, r + 512, len); /* unaligned: bounced */
    free(w);
    free(r);
}

static void test_direct_used(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    o.cache = DM_CACHE_NONE;
    dm_blk *b = open_ok(f, &o);
    int fl = image_fd_flags(f->image);
    if (fs_takes_direct(f->dir)) {
        assert_true(dm_blk_direct(b));
        assert_true(fl & O_DIRECT);
    } else {
        printf("[   INFO   ] %s does not take O_DIRECT: only the fallback is checked here\n",
               f->dir);
        assert_false(dm_blk_direct(b));
        assert_false(fl & O_DIRECT);
    }
    direct_round_trip(f, b);
    dm_blk_close(b);
    /* writeback never uses O_DIRECT. */
    o.cache = DM_CACHE_WRITEBACK;
    b = open_ok(f, &o);
    assert_false(dm_blk_direct(b));
    assert_false(image_fd_flags(f->image) & O_DIRECT);
    dm_blk_close(b);
}

/* tmpfs refused O_DIRECT before Linux 6.6: there cache=none falls back to
 * the page cache; on a newer kernel it is used there too. */
static void test_direct_tmpfs(void **state)
{
    fixture *f = *state;
    fixture *shm = fixture_new("/dev/shm");
    if (!shm) {
        printf("[   INFO   ] /dev/shm is not usable: tmpfs case skipped\n");
        return;
    }
    dm_blk_opts o = opts_for(shm, NULL);
    o.cache = DM_CACHE_NONE;
    dm_blk *b = open_ok(shm, &o);
    bool takes = fs_takes_direct(shm->dir);
    if (!takes)
        printf("[   INFO   ] tmpfs refuses O_DIRECT: checking the fallback\n");
    else
        printf("[   INFO   ] tmpfs takes O_DIRECT on this kernel: no fallback to check there\n");
    assert_int_equal(dm_blk_direct(b), takes);
    assert_int_equal(!!(image_fd_flags(shm->image) & O_DIRECT), takes);
    direct_round_trip(shm, b);
    dm_blk_close(b);
    void *s = shm;
    teardown(&s);
    (void)f;
}

/* The fallback itself, on a filesystem that refuses O_DIRECT whatever the
 * kernel: ramfs, mounted in a private mount namespace of a child process
 * (needs CAP_SYS_ADMIN; skipped with a message without it).  The child
 * reports by exit status: 0 checked, 77 no ramfs, 78 ramfs takes O_DIRECT,
 * others the step that failed. */
static void child_done(void *opaque, int ret)
{
    *(int *)opaque = ret == 0 ? 1 : -1;
}

static int child_io(dm_loop *loop, dm_blk *b, dm_blk_op op, void *buf, size_t len)
{
    int state = 0;
    if (!dm_blk_submit(b, op, 4096, buf, len, child_done, &state))
        return -1;
    for (int i = 0; i < 200 && !state; i++)
        if (dm_loop_iterate(loop, 100) < 0)
            return -1;
    return state == 1 ? 0 : -1;
}

static int fallback_child(const char *dir, const char *log)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("rsdm-test", dir, "ramfs", 0, "mode=0700") < 0)
        return 77;
    if (fs_takes_direct(dir))
        return 78;
    int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0 || dup2(logfd, 2) < 0)
        return 10;
    dm_log_set_level(DM_LOG_WARNING);
    char path[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, MiB) < 0)
        return 11;
    close(fd);
    dm_loop *loop = dm_loop_new();
    dm_blk_opts o = { .path = path, .name = "hda", .cache = DM_CACHE_NONE,
                      .rerror = DM_ERR_REPORT, .werror = DM_ERR_ENOSPC };
    char e[256];
    dm_blk *b = loop ? dm_blk_open(loop, &o, e, sizeof(e)) : NULL;
    if (!b)
        return 12;
    if (dm_blk_direct(b) || (image_fd_flags(path) & O_DIRECT))
        return 13;
    static unsigned char w[8192], r[8192];
    fill(w, sizeof(w), 9);
    if (child_io(loop, b, DM_BLK_WRITE, w, sizeof(w)) < 0 ||
        child_io(loop, b, DM_BLK_FLUSH, NULL, 0) < 0 ||
        child_io(loop, b, DM_BLK_READ, r, sizeof(r)) < 0)
        return 14;
    if (memcmp(w, r, sizeof(w)) != 0)
        return 15;
    dm_blk_close(b);
    dm_loop_free(loop);
    return 0;
}

static void test_direct_fallback(void **state)
{
    fixture *f = *state;
    char mnt[PATH_MAX + 16], log[PATH_MAX + 16];
    snprintf(mnt, sizeof(mnt), "%s/ramfs", f->dir);
    snprintf(log, sizeof(log), "%s/child.log", f->dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fallback_child(mnt, log));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77 || WEXITSTATUS(st) == 78) {
        printf("[   INFO   ] %s: O_DIRECT fallback not exercised\n",
               WEXITSTATUS(st) == 77 ? "cannot mount ramfs (needs CAP_SYS_ADMIN)"
                                     : "ramfs takes O_DIRECT on this kernel");
        return;
    }
    if (WEXITSTATUS(st) != 0)
        fail_msg("the ramfs child failed at step %d", WEXITSTATUS(st));
    /* One log line says so, naming the disk. */
    char text[4096] = "";
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    assert_true(n > 0);
    text[n] = 0;
    const char *line = strstr(text, "disk hda: cache=none:");
    assert_non_null(line);
    assert_non_null(strstr(line, "using the page cache instead"));
    assert_null(strstr(line + 1, "disk hda: cache=none:"));
}

/* ---------------------------------------------------------- block device */

/* Attaches `image` to a free loop device that detaches itself on its last
 * close; returns an fd of the device (kept open until the backend has it)
 * or -1 when loop devices are not available here. */
static int loop_attach(const char *image, char *dev, size_t devlen)
{
    for (int tries = 0; tries < 5; tries++) {
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0)
            return -1;
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        close(ctl);
        if (n < 0)
            return -1;
        snprintf(dev, devlen, "/dev/loop%d", n);
        int fd = open(dev, O_RDWR | O_CLOEXEC);
        int img = open(image, O_RDWR | O_CLOEXEC);
        if (fd < 0 || img < 0) {
            if (fd >= 0)
                close(fd);
            if (img >= 0)
                close(img);
            return -1;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.fd = (unsigned)img;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        int rc = ioctl(fd, LOOP_CONFIGURE, &cfg);
        int e = errno;
        close(img);
        if (rc == 0)
            return fd;
        close(fd);
        if (e != EBUSY)                     /* EBUSY: someone took it first */
            return -1;
    }
    return -1;
}

static void test_block_device(void **state)
{
    fixture *f = *state;
    char dev[64];
    int devfd = loop_attach(f->image, dev, sizeof(dev));
    if (devfd < 0) {
        printf("[   INFO   ] no loop device available (needs root and /dev/loop-control): "
               "block-device case skipped\n");
        return;
    }
    dm_blk_opts o = opts_for(f, dev);
    o.cache = DM_CACHE_NONE;
    err[0] = 0;
    dm_blk *b = dm_blk_open(f->loop, &o, err, sizeof(err));
    close(devfd);                           /* the backend holds it now */
    if (!b)
        fail_msg("dm_blk_open(%s): %s", dev, err);
    assert_int_equal(dm_blk_sectors(b), IMAGE_SIZE / 512);
    assert_true(dm_blk_direct(b));          /* block devices take O_DIRECT */
    expect_refused(f, dev, false, "in use");
    direct_round_trip(f, b);
    dm_blk_close(b);                        /* last close: the device detaches */
    /* What went through the device is in the image file. */
    unsigned char w[4096], r[4096];
    fill(w, sizeof(w), 4);
    int fd = open(f->image, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, r, sizeof(r), IMAGE_SIZE - 64 * 1024), (ssize_t)sizeof(r));
    close(fd);
    assert_memory_equal(w, r, sizeof(r));
}

/* ---------------------------------------------------------- concurrency */

#define NREQ 32
#define NSTUCK 7                 /* with the default 8 workers, one stays free */

static void test_concurrency(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    /* The first NSTUCK requests (sectors 0-55) wait until the rules are
     * cleared, holding NSTUCK workers; the rest pass on the eighth. */
    o.inject = "op=read sectors=0-55 delay=600s";
    dm_blk *b = open_ok(f, &o);
    static unsigned char buf[NREQ][4096];
    done_rec d[NREQ];
    unsigned base = completed;
    for (unsigned i = 0; i < NREQ; i++)
        submit(b, DM_BLK_READ, (uint64_t)i * 4096, buf[i], 4096, &d[i]);
    assert_int_equal(dm_blk_in_flight(b), NREQ);
    wait_completed(f, base + NREQ - NSTUCK);
    for (unsigned i = 0; i < NSTUCK; i++)
        assert_int_equal(d[i].calls, 0);
    dm_blk_stats s;
    dm_blk_get_stats(b, &s);
    assert_true(s.max_in_flight >= 8);
    assert_true(s.out_of_order >= NREQ - NSTUCK);
    assert_int_equal(s.in_flight, NSTUCK);
    assert_int_equal(dm_blk_in_flight(b), NSTUCK);
    dm_blk_inject_clear(b);
    wait_completed(f, base + NREQ);
    for (unsigned i = 0; i < NREQ; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_int_equal(d[i].ret, 0);
    }
    dm_blk_get_stats(b, &s);
    assert_int_equal(s.reads, NREQ);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.injected, 0);
    dm_blk_close(b);
}

/* ------------------------------------------------------------ injection */

static void test_inject(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    o.inject = "op=write errno=ENOSPC once; op=read errno=EIO sectors=8-15";
    dm_blk *b = open_ok(f, &o);
    char buf[8192];
    memset(buf, 0, sizeof(buf));
    assert_int_equal(run1(f, b, DM_BLK_WRITE, 0, buf, 512), -ENOSPC);
    assert_int_equal(run1(f, b, DM_BLK_WRITE, 0, buf, 512), 0);      /* once: spent */
    assert_int_equal(run1(f, b, DM_BLK_READ, 0, buf, 4096), 0);      /* sectors 0-7 */
    assert_int_equal(run1(f, b, DM_BLK_READ, 0, buf, 4608), -EIO);   /* 0-8 overlaps 8 */
    assert_int_equal(run1(f, b, DM_BLK_READ, 7 * 512, buf, 512), 0);
    assert_int_equal(run1(f, b, DM_BLK_READ, 15 * 512, buf, 512), -EIO); /* always */
    assert_int_equal(run1(f, b, DM_BLK_READ, 16 * 512, buf, 8192), 0);
    assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), 0);
    dm_blk_stats s;
    dm_blk_get_stats(b, &s);
    assert_int_equal(s.errors, 3);
    assert_int_equal(s.injected, 3);
    assert_int_equal(s.reads, 3);
    assert_int_equal(s.writes, 1);

    /* Replaced at run time; a bad set leaves the old one in place. */
    err[0] = 0;
    assert_int_equal(dm_blk_inject_set(b, "op=flush errno=EIO; op=frob errno=EIO", err,
                                       sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "op=frob errno=EIO"));
    assert_non_null(strstr(err, "bad op 'frob'"));
    assert_int_equal(run1(f, b, DM_BLK_READ, 8 * 512, buf, 512), -EIO);
    assert_int_equal(dm_blk_inject_set(b, "op=flush errno=EIO; op=any errno=EROFS once", err,
                                       sizeof(err)), 0);
    assert_int_equal(run1(f, b, DM_BLK_READ, 8 * 512, buf, 512), -EROFS);
    assert_int_equal(run1(f, b, DM_BLK_READ, 8 * 512, buf, 512), 0);
    assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), -EIO);
    assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), -EIO);
    assert_int_equal(run1(f, b, DM_BLK_WRITE, 0, buf, 512), 0);
    dm_blk_inject_clear(b);
    assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), 0);
    /* A delay, then the error. */
    assert_int_equal(dm_blk_inject_set(b, "op=read delay=1ms errno=ETIMEDOUT", err,
                                       sizeof(err)), 0);
    assert_int_equal(run1(f, b, DM_BLK_READ, 0, buf, 512), -ETIMEDOUT);
    dm_blk_close(b);

    /* Bad rules refuse the open, naming the rule and the reason. */
    static const struct {
        const char *rules, *why;
    } bad[] = {
        { "op=write", "does nothing" },
        { "op=write errno=EWHAT", "unknown errno 'EWHAT'" },
        { "op=read errno=EIO sectors=9-3", "bad sectors '9-3'" },
        { "op=read errno=EIO sectors=x", "bad sectors 'x'" },
        { "op=flush errno=EIO sectors=0-7", "sectors= cannot apply to op=flush" },
        { "op=read delay=0", "bad delay '0'" },
        { "op=read delay=601s", "bad delay '601s'" },
        { "op=read delay=5m", "bad delay '5m'" },
        { "errno=EIO sometimes", "unknown word 'sometimes'" },
        { "errno=EIO size=3", "unknown key 'size'" },
        { "errno=EIO errno=EIO", "errno= is given twice" },
        { "op=read op=write errno=EIO", "op= is given twice" },
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.inject = bad[i].rules;
        err[0] = 0;
        assert_null(dm_blk_open(f->loop, &o, err, sizeof(err)));
        if (!strstr(err, bad[i].rules) || !strstr(err, bad[i].why) || !strstr(err, "disk hda"))
            fail_msg("rule '%s': message lacks the rule, 'disk hda' or '%s': %s", bad[i].rules,
                     bad[i].why, err);
    }
    /* Spacing, empty rules and every unit are fine. */
    assert_int_equal(dm_blk_inject_check(" op=read  errno=EIO ;; delay=2s ; delay=5ms always;",
                                         err, sizeof(err)), 0);
    assert_int_equal(dm_blk_inject_check(NULL, err, sizeof(err)), 0);
}

/* Every operation x errno x once/always: the rule hits its operation (once
 * or every time) and no other one. */
static void test_inject_matrix(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *b = open_ok(f, &o);
    static const char *const ops[] = { "read", "write", "flush" };
    static const struct {
        const char *name;
        int err;
    } errs[] = { { "EIO", EIO }, { "ENOSPC", ENOSPC } };
    static char buf[1024];
    uint64_t injected = 0;
    for (unsigned op = 0; op < 3; op++)
        for (unsigned e = 0; e < 2; e++)
            for (unsigned once = 0; once < 2; once++) {
                char rule[96];
                snprintf(rule, sizeof(rule), "op=%s errno=%s %s", ops[op], errs[e].name,
                         once ? "once" : "always");
                assert_int_equal(dm_blk_inject_set(b, rule, err, sizeof(err)), 0);
                for (unsigned other = 0; other < 3; other++) {
                    dm_blk_op x = (dm_blk_op)other;
                    size_t len = x == DM_BLK_FLUSH ? 0 : sizeof(buf);
                    void *p = x == DM_BLK_FLUSH ? NULL : buf;
                    int first = run1(f, b, x, 0, p, len), second = run1(f, b, x, 0, p, len);
                    if (other != op) {
                        assert_int_equal(first, 0);
                        assert_int_equal(second, 0);
                        continue;
                    }
                    assert_int_equal(first, -errs[e].err);
                    assert_int_equal(second, once ? 0 : -errs[e].err);
                    injected += once ? 1 : 2;
                }
            }
    /* op=any with sectors: reads and writes there, never a flush. */
    assert_int_equal(dm_blk_inject_set(b, "errno=EIO sectors=2", err, sizeof(err)), 0);
    assert_int_equal(run1(f, b, DM_BLK_READ, 1024, buf, 512), -EIO);
    assert_int_equal(run1(f, b, DM_BLK_WRITE, 0, buf, 1024), 0);
    assert_int_equal(run1(f, b, DM_BLK_WRITE, 512, buf, 1024), -EIO);
    assert_int_equal(run1(f, b, DM_BLK_FLUSH, 0, NULL, 0), 0);
    dm_blk_stats s;
    dm_blk_get_stats(b, &s);
    assert_int_equal(s.injected, injected + 2);
    assert_int_equal(s.errors, injected + 2);
    dm_blk_close(b);
}

/* --------------------------------------------------------- policy table */

static void test_policy_table(void **state)
{
    fixture *f = *state;
    /* reference §6.1: policy x (ENOSPC, other errno). */
    static const struct {
        dm_err_action policy;
        dm_blk_action on_enospc, on_other;
    } table[] = {
        { DM_ERR_STOP, DM_BLK_ACTION_STOP, DM_BLK_ACTION_STOP },
        { DM_ERR_ENOSPC, DM_BLK_ACTION_STOP, DM_BLK_ACTION_REPORT },
        { DM_ERR_REPORT, DM_BLK_ACTION_REPORT, DM_BLK_ACTION_REPORT },
        { DM_ERR_IGNORE, DM_BLK_ACTION_IGNORE, DM_BLK_ACTION_IGNORE },
    };
    static const int others[] = { EIO, EROFS, EACCES, ETIMEDOUT };
    for (unsigned r = 0; r < 4; r++) {
        for (unsigned w = 0; w < 4; w++) {
            dm_blk_opts o = opts_for(f, NULL);
            o.rerror = table[r].policy;
            o.werror = table[w].policy;
            err[0] = 0;
            dm_blk *b = dm_blk_open(f->loop, &o, err, sizeof(err));
            if (table[r].policy == DM_ERR_ENOSPC) {   /* invalid for reads */
                assert_null(b);
                assert_non_null(strstr(err, "enospc"));
                continue;
            }
            assert_non_null(b);
            assert_int_equal(dm_blk_error_action(b, true, ENOSPC), table[r].on_enospc);
            assert_int_equal(dm_blk_error_action(b, false, ENOSPC), table[w].on_enospc);
            for (unsigned e = 0; e < 4; e++) {
                assert_int_equal(dm_blk_error_action(b, true, others[e]), table[r].on_other);
                assert_int_equal(dm_blk_error_action(b, false, others[e]), table[w].on_other);
            }
            dm_blk_close(b);
        }
    }
    /* QEMU's defaults: read report, write enospc. */
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *b = open_ok(f, &o);
    assert_int_equal(dm_blk_error_action(b, true, ENOSPC), DM_BLK_ACTION_REPORT);
    assert_int_equal(dm_blk_error_action(b, false, ENOSPC), DM_BLK_ACTION_STOP);
    assert_int_equal(dm_blk_error_action(b, false, EIO), DM_BLK_ACTION_REPORT);
    dm_blk_close(b);
}

/* ------------------------------------------------------- report_error */

#define MAX_EVENTS 16

typedef struct recorder {
    char seq[MAX_EVENTS][32];    /* "vm:BLOCK_IO_ERROR", "dev:stop", "vm:STOP" */
    unsigned n;
    rs_event last_bio;
    dm_blk_io_error last_dev;
} recorder;

static void rec_add(recorder *r, const char *who, const char *what)
{
    assert_true(r->n < MAX_EVENTS);
    snprintf(r->seq[r->n++], sizeof(r->seq[0]), "%s:%s", who, what);
}

static void on_vm_event(void *opaque, const rs_event *ev)
{
    recorder *r = opaque;
    if (ev->type == RS_EV_BLOCK_IO_ERROR)
        r->last_bio = *ev;
    rec_add(r, "vm", rs_event_name(ev->type));
}

static void on_dev_event(void *opaque, const dm_blk_io_error *e)
{
    recorder *r = opaque;
    r->last_dev = *e;
    static const char *const names[] = { "report", "ignore", "stop" };
    rec_add(r, "dev", names[e->action]);
}

static void wait_state(fixture *f, rs_state want)
{
    int64_t deadline = dm_now_ns() + (int64_t)WAIT_MS * 1000000;
    while (rs_get_state(f->vm) != want) {
        if (dm_now_ns() > deadline)
            fail_msg("state %s not reached", rs_state_name(want));
        assert_true(dm_loop_iterate(f->loop, 100) >= 0);
    }
}

static void test_report_error(void **state)
{
    fixture *f = *state;
    recorder rec = { 0 };
    assert_int_equal(rs_event_sink_add(f->vm, on_vm_event, &rec), 0);
    rs_err e;
    assert_int_equal(rs_cont(f->vm, &e), 0);
    wait_state(f, RS_RUNNING);
    rec.n = 0;
    dm_blk_opts o = opts_for(f, NULL);
    o.on_event = on_dev_event;
    o.event_opaque = &rec;
    o.name = "sda";
    dm_blk *b = open_ok(f, &o);

    dm_blk_report_error(b, DM_BLK_ACTION_REPORT, true, EIO);
    dm_blk_report_error(b, DM_BLK_ACTION_IGNORE, false, EIO);
    assert_int_equal(rec.n, 4);
    assert_string_equal(rec.seq[0], "dev:report");
    assert_string_equal(rec.seq[1], "vm:BLOCK_IO_ERROR");
    assert_string_equal(rec.seq[2], "dev:ignore");
    assert_string_equal(rec.seq[3], "vm:BLOCK_IO_ERROR");
    assert_string_equal(rec.last_bio.action, "ignore");
    assert_string_equal(rec.last_bio.operation, "write");
    /* Neither stops the VM, now or later. */
    assert_true(dm_loop_iterate(f->loop, 0) >= 0);
    assert_int_equal(rs_get_state(f->vm), RS_RUNNING);

    rec.n = 0;
    dm_blk_report_error(b, DM_BLK_ACTION_STOP, false, ENOSPC);
    wait_state(f, RS_IO_ERROR);
    assert_true(rec.n >= 3);
    assert_string_equal(rec.seq[0], "dev:stop");
    assert_string_equal(rec.seq[1], "vm:BLOCK_IO_ERROR");
    assert_string_equal(rec.seq[2], "vm:STOP");
    assert_string_equal(rec.last_bio.device, "sda");
    assert_string_equal(rec.last_bio.operation, "write");
    assert_string_equal(rec.last_bio.action, "stop");
    assert_true(rec.last_bio.nospace);
    assert_non_null(strstr(rec.last_bio.reason, strerror(ENOSPC)));
    assert_string_equal(rec.last_dev.device, "sda");
    assert_string_equal(rec.last_dev.node_name, "rsdm-sda");
    assert_true(rec.last_dev.nospace);
    assert_int_equal(rec.last_dev.err, ENOSPC);
    assert_false(rec.last_dev.is_read);
    dm_blk_close(b);
    assert_int_equal(rs_event_sink_del(f->vm, on_vm_event, &rec), 0);
}

/* --------------------------------------------- drain, cancel and close */

typedef struct chain {
    dm_blk *b;
    unsigned char buf[512];
    int calls, left;
} chain;

/* Each completion submits the next request until `left` runs out. */
static void chain_done(void *opaque, int ret)
{
    chain *c = opaque;
    assert_int_equal(ret, 0);
    c->calls++;
    if (c->left-- > 0)
        assert_non_null(dm_blk_submit(c->b, DM_BLK_READ, 0, c->buf, 512, chain_done, c));
}

static void test_drain(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    o.inject = "op=write delay=20ms";
    dm_blk *b = open_ok(f, &o);
    static unsigned char buf[16][4096];
    done_rec d[16];
    for (unsigned i = 0; i < 16; i++)
        submit(b, i % 2 ? DM_BLK_WRITE : DM_BLK_READ, (uint64_t)i * 4096, buf[i], 4096, &d[i]);
    done_rec fl;
    submit(b, DM_BLK_FLUSH, 0, NULL, 0, &fl);
    dm_blk_drain(b);                         /* without the loop running */
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(d[i].calls, 1);
    assert_int_equal(fl.calls, 1);
    assert_int_equal(dm_blk_in_flight(b), 0);
    dm_blk_stats s;
    dm_blk_get_stats(b, &s);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.reads + s.writes + s.flushes, 17);
    /* The completion event that may still be pending finds nothing. */
    unsigned before = completed;
    assert_true(dm_loop_iterate(f->loop, 0) >= 0);
    assert_int_equal(completed, before);
    dm_blk_drain(b);                         /* nothing in flight: returns */
    /* Callbacks that submit more: drain goes on until nothing is left. */
    chain c = { .b = b, .left = 5 };
    assert_non_null(dm_blk_submit(b, DM_BLK_READ, 0, c.buf, 512, chain_done, &c));
    dm_blk_drain(b);
    assert_int_equal(c.calls, 6);
    assert_int_equal(dm_blk_in_flight(b), 0);
    dm_blk_close(b);
}

static void test_cancel(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    o.inject = "op=read sectors=0 delay=600s";
    dm_blk *b = open_ok(f, &o);
    static unsigned char buf[3][512];
    done_rec d[3];
    dm_blk_req *stuck = submit(b, DM_BLK_READ, 0, buf[0], 512, &d[0]);
    dm_blk_req *later = submit(b, DM_BLK_READ, 512, buf[1], 512, &d[1]);
    submit(b, DM_BLK_READ, 1024, buf[2], 512, &d[2]);
    dm_blk_cancel(stuck);
    dm_blk_cancel(later);
    unsigned base = completed;
    wait_completed(f, base + 1);             /* only the third calls back */
    assert_int_equal(d[2].calls, 1);
    dm_blk_inject_clear(b);                  /* releases the stuck one */
    dm_blk_drain(b);
    assert_int_equal(d[0].calls, 0);
    assert_int_equal(d[1].calls, 0);
    assert_int_equal(dm_blk_in_flight(b), 0);
    dm_blk_close(b);
}

static void test_close_in_flight(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    o.inject = "op=write delay=600s";
    dm_blk *b = open_ok(f, &o);
    static unsigned char buf[12][4096];
    done_rec d[12];
    for (unsigned i = 0; i < 12; i++)
        submit(b, DM_BLK_WRITE, (uint64_t)i * 4096, buf[i], 4096, &d[i]);
    /* Close cuts the delays short, waits for the writes, calls nobody. */
    dm_blk_close(b);
    assert_true(dm_loop_iterate(f->loop, 0) >= 0);
    for (unsigned i = 0; i < 12; i++)
        assert_int_equal(d[i].calls, 0);
}

typedef struct closer {
    dm_blk *b;
    int calls;
} closer;

static void close_from_callback(void *opaque, int ret)
{
    closer *c = opaque;
    assert_int_equal(ret, 0);
    c->calls++;
    dm_blk_close(c->b);
    /* Still inside its callback: the closed backend refuses more work. */
    static char buf[512];
    errno = 0;
    assert_null(dm_blk_submit(c->b, DM_BLK_READ, 0, buf, 512, close_from_callback, c));
    assert_int_equal(errno, EBADF);
    dm_blk_drain(c->b);
}

static void test_close_in_callback(void **state)
{
    fixture *f = *state;
    dm_blk_opts o = opts_for(f, NULL);
    dm_blk *b = open_ok(f, &o);
    static unsigned char buf[2][512];
    closer c = { .b = b };
    assert_non_null(dm_blk_submit(b, DM_BLK_READ, 0, buf[0], 512, close_from_callback, &c));
    assert_non_null(dm_blk_submit(b, DM_BLK_READ, 512, buf[1], 512, close_from_callback, &c));
    int64_t deadline = dm_now_ns() + (int64_t)WAIT_MS * 1000000;
    while (!c.calls && dm_now_ns() < deadline)
        assert_true(dm_loop_iterate(f->loop, 100) >= 0);
    assert_int_equal(c.calls, 1);            /* the second is dropped by the close */
    assert_true(dm_loop_iterate(f->loop, 0) >= 0);
    assert_int_equal(c.calls, 1);
}

int main(void)
{
    dm_log_set_level(DM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_shrinks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_tmpfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inject_matrix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
