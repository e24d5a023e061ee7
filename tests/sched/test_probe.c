/*
 * tests/sched/test_probe.c: rf_engine_start refuses to run without io_uring and says why.
 *
 * A forked child installs a seccomp filter that answers io_uring_setup with ENOSYS (what a
 * container's default profile does), then starts an engine: it must get RF_EIOURING, and
 * its stderr must carry one JSON line naming io_uring_setup. The child runs in its own
 * process so the filter never touches the test runner; the parent waits for it with a
 * bounded poll. Also checks that a normal start works and reports the shard count.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ringflow.h"

static int deny_io_uring_setup(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -errno;
    return 0;
}

static void test_no_io_uring(void **state)
{
    char path[] = "/tmp/rf-probe-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rf_engine *eng;
        rf_config cfg = {.shards = 1, .no_pin_threads = true};
        dup2(fd, STDERR_FILENO);
        if (deny_io_uring_setup() < 0)
            _exit(77);
        if (rf_engine_new(&cfg, &eng) < 0)
            _exit(3);
        int rc = rf_engine_start(eng);
        rf_engine_free(eng);
        _exit(rc == RF_EIOURING ? 0 : 4);
    }
    int status = 0;
    for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip(); /* seccomp not permitted here */
    assert_int_equal(WEXITSTATUS(status), 0);
    char buf[2048] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "io_uring_setup failed"));
    assert_non_null(strstr(buf, "\"level\":\"error\""));
}

static void test_start_ok(void **state)
{
    rf_engine *eng;
    rf_config cfg = {.shards = 3, .no_pin_threads = true};
    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_int_equal(rf_engine_start(eng), 0);
    assert_int_equal(rf_engine_shards(eng), 3);
    rf_shard_stats st;
    assert_int_equal(rf_engine_shard_stats(eng, 2, &st), 0);
    assert_int_equal(rf_engine_shard_stats(eng, 3, &st), -EINVAL);
    assert_int_equal(rf_engine_stop(eng, 100), 0);
    rf_engine_free(eng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_io_uring),
        cmocka_unit_test(test_start_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
