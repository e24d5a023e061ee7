/*
 * tests/support/kmock.c: the mock Kafka cluster and kcat for tests (see kmock.h).
 */
#include "tests/support/kmock.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MS 10000

static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (n + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = LINE_MS - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return -1;
        if (read(fd, buf + n, 1) != 1)
            return -1;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return 0;
        }
        n++;
    }
    return -1;
}

int kmock_start(struct kmock *k, const char *build_dir, int brokers, const char *const *topics)
{
    int in[2], out[2];
    char exe[512], nb[8];
    const char *argv[32];
    int n = 0;

    memset(k, 0, sizeof(*k));
    snprintf(exe, sizeof(exe), "%s/tests/tools/kmock", build_dir);
    snprintf(nb, sizeof(nb), "%d", brokers);
    argv[n++] = exe;
    argv[n++] = nb;
    for (size_t i = 0; topics && topics[i] && n < 30; i++)
        argv[n++] = topics[i];
    argv[n] = NULL;
    if (pipe(in) < 0 || pipe(out) < 0)
        return -1;
    fflush(NULL);
    k->pid = fork();
    if (k->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    k->in = in[1];
    k->out = out[0];
    if (k->pid < 0 || read_line(k->out, k->bootstrap, sizeof(k->bootstrap)) < 0) {
        fprintf(stderr, "kmock: the mock cluster did not start (%s)\n", exe);
        kmock_stop(k);
        return -1;
    }
    return 0;
}

int kmock_broker(struct kmock *k, int n, int up)
{
    char cmd[32], ans[128];
    int len = snprintf(cmd, sizeof(cmd), "%s %d\n", up ? "up" : "down", n);

    if (write(k->in, cmd, (size_t)len) != len || read_line(k->out, ans, sizeof(ans)) < 0)
        return -1;
    return strcmp(ans, "ok") == 0 ? 0 : -1;
}

void kmock_stop(struct kmock *k)
{
    if (k->in > 0) {
        if (write(k->in, "quit\n", 5) < 0) { /* it ends on end of input too */
        }
        close(k->in);
    }
    if (k->pid > 0) {
        for (int i = 0; i < 100; i++) {
            if (waitpid(k->pid, NULL, WNOHANG) == k->pid) {
                k->pid = 0;
                break;
            }
            usleep(20000);
        }
        if (k->pid > 0) {
            kill(k->pid, SIGKILL);
            waitpid(k->pid, NULL, 0);
        }
    }
    if (k->out > 0)
        close(k->out);
    memset(k, 0, sizeof(*k));
}

int kmock_produce(const struct kmock *k, const char *topic, const char *const *lines, size_t n)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "timeout 20 kcat -P -q -b %s -t %s -K '\t' 2>/dev/null",
             k->bootstrap, topic);
    FILE *f = popen(cmd, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    return pclose(f) == 0 ? 0 : -1;
}

char *kmock_consume(const struct kmock *k, const char *topic)
{
    char cmd[512];
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);

    snprintf(cmd, sizeof(cmd),
             "timeout 20 kcat -C -q -b %s -t %s -e -f '%%h|%%k|%%s\\n' 2>/dev/null", k->bootstrap,
             topic);
    FILE *f = popen(cmd, "r");
    if (!f || !buf) {
        free(buf);
        if (f)
            pclose(f);
        return NULL;
    }
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 1024) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    buf[n] = '\0';
    pclose(f);
    return buf;
}
