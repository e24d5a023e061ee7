/*
 * tests/support/redis.c: a redis-server per test (see redis.h).
 *
 * The port is found like the daemon's (bind 127.0.0.1:0, close); redis-server binds it
 * without SO_REUSEPORT, so a restart on the same port is retried for a while when the
 * killed process's socket is still going away.
 */
#include "tests/support/redis.h"
#include "tests/support/daemon.h" /* rfd_free_port */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_MS 5000
#define CMD_MS   2000

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pid_t spawn(const struct rrs *r)
{
    char port[16], log[300];
    pid_t pid;

    snprintf(port, sizeof(port), "%u", r->port);
    snprintf(log, sizeof(log), "%s/log", r->dir);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", r->dir, "--logfile", log,
               "--protected-mode", "no", (char *)NULL);
        fprintf(stderr, "rrs: cannot exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    return pid;
}

static int connect_to(const struct rrs *r)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(r->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Read until CRLF, or for a bulk string until its value is whole. */
static int read_reply(int fd, char *buf, size_t cap, int64_t deadline)
{
    size_t n = 0;

    for (;;) {
        char *crlf = n ? memmem(buf, n, "\r\n", 2) : NULL;
        if (crlf && buf[0] != '$')
            return (int)(crlf - buf);
        if (crlf && buf[0] == '$') {
            long len = strtol(buf + 1, NULL, 10);
            size_t head = (size_t)(crlf - buf) + 2;
            if (len < 0)
                return (int)(crlf - buf); /* nil: "$-1" */
            if (n >= head + (size_t)len + 2) {
                memmove(buf, buf + head, (size_t)len);
                return (int)len;
            }
        }
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || n + 1 >= cap || poll(&p, 1, (int)left) != 1)
            return -1;
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got <= 0)
            return -1;
        n += (size_t)got;
    }
}

int rrs_cmd(const struct rrs *r, char *out, size_t cap, const char *const *words)
{
    char req[4096];
    size_t n = 0, k = 0;
    int fd, len;

    while (words[k])
        k++;
    n += (size_t)snprintf(req + n, sizeof(req) - n, "*%zu\r\n", k);
    for (size_t i = 0; i < k && n < sizeof(req); i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "$%zu\r\n%s\r\n", strlen(words[i]),
                              words[i]);
    if (n >= sizeof(req) || (fd = connect_to(r)) < 0)
        return -1;
    len = write(fd, req, n) == (ssize_t)n ? read_reply(fd, out, cap, now_ms() + CMD_MS) : -1;
    close(fd);
    if (len < 0)
        return -1;
    out[len] = '\0';
    return 0;
}

static int wait_pong(struct rrs *r)
{
    int64_t deadline = now_ms() + START_MS;
    const char *const ping[] = {"PING", NULL};
    char out[64];

    while (now_ms() < deadline) {
        if (rrs_cmd(r, out, sizeof(out), ping) == 0 && strcmp(out, "+PONG") == 0)
            return 0;
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

static int launch(struct rrs *r)
{
    r->pid = spawn(r);
    if (r->pid < 0) {
        r->pid = 0;
        return -1;
    }
    return wait_pong(r);
}

int rrs_start(struct rrs *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/rrs-XXXXXX");
    if (!mkdtemp(r->dir)) {
        r->dir[0] = 0;
        return -1;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        if (rfd_free_port(&r->port) < 0)
            break;
        snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%u", r->port);
        if (launch(r) == 0)
            return 0;
        rrs_kill(r);
    }
    fprintf(stderr, "rrs_start: redis-server did not start (see %s/log)\n", r->dir);
    return -1;
}

int rrs_restart(struct rrs *r)
{
    int64_t deadline = now_ms() + START_MS;

    rrs_kill(r);
    while (now_ms() < deadline) {
        if (launch(r) == 0)
            return 0;
        rrs_kill(r);
        usleep(100000);
    }
    fprintf(stderr, "rrs_restart: redis-server did not come back on port %u\n", r->port);
    return -1;
}

void rrs_kill(struct rrs *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    r->pid = 0;
}

void rrs_pause(struct rrs *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGSTOP);
}

void rrs_resume(struct rrs *r)
{
    if (r->pid > 0)
        kill(r->pid, SIGCONT);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void rrs_stop(struct rrs *r)
{
    rrs_kill(r);
    if (r->dir[0])
        nftw(r->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    r->dir[0] = 0;
}
