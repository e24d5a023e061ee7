/*
 * tests/support/daemon.c: start, talk to and stop a real ringflowd (see daemon.h).
 *
 * Process: fork + execv of <build_dir>/ringflowd with stdout and stderr on <dir>/log. The
 * port is found by binding 127.0.0.1:0 and closing; the daemon binds with SO_REUSEPORT, so
 * a race is rare, and an "in use" start is retried with a new port. Readiness is GET
 * /healthz 200 plus every graph file of tests/daemon/graphs registered (the daemon
 * registers them after it starts listening).
 *
 * Client: blocking sockets with SO_RCVTIMEO, but every wait goes through poll() with the
 * time left to a deadline, so no call outlives its timeout by more than one syscall. Bytes
 * read past a response live in bufs[fd] until the next read or rfd_close. The table is
 * indexed by fd: distinct fds never share a slot, so distinct threads need no lock.
 *
 * Sanitizers: the asan daemon writes its reports to stderr, hence to the log; rfd_stop
 * looks for the three report markers and fails loudly.
 */
#include "tests/support/daemon.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "net/ws.h"

#define RFD_GRAPHS_DIR     "tests/daemon/graphs"
#define RFD_START_TRIES    5
#define RFD_READY_MS       10000
#define RFD_STOP_MS        20000
#define RFD_SOCK_TIMEOUT_S 5
#define RFD_REQUEST_MS     10000
#define RFD_FDS_MAX        16384
#define RFD_READ_CHUNK     65536
#define RFD_ARGS_MAX       (RFD_EXTRA_MAX + 20)
#define RFD_GRAPHS_MAX     64
#define RFD_WS_CLOSE_MS    1000
#define RFD_LOG_BYTES_MAX  (16u << 20)
#define RFD_CHUNK_LINE_MAX 4096

static const char *const sanitizer_markers[] = {
    "ERROR: AddressSanitizer",  "runtime error", "LeakSanitizer", "ERROR: ThreadSanitizer",
    "WARNING: ThreadSanitizer",
};

/* --- time ----------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* --- per-fd read buffers -------------------------------------------------------------------- */

struct rbuf {
    char *p;
    size_t len, cap;
};

static struct rbuf bufs[RFD_FDS_MAX];

static struct rbuf *buf_of(int fd)
{
    return fd >= 0 && fd < RFD_FDS_MAX ? &bufs[fd] : NULL;
}

static void buf_drop(struct rbuf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* Wait (poll) up to the deadline, then read once into b. 1 bytes read, 0 end of stream,
 * -1 error or timeout (errno ETIMEDOUT). */
static int buf_fill(int fd, struct rbuf *b, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int64_t left = deadline - now_ms();
    ssize_t n;

    if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (b->cap - b->len < RFD_READ_CHUNK) {
        size_t cap = b->cap ? b->cap * 2 : RFD_READ_CHUNK * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    n = recv(fd, b->p + b->len, b->cap - b->len - 1, 0);
    if (n < 0)
        return -1;
    if (n == 0)
        return 0;
    b->len += (size_t)n;
    b->p[b->len] = 0;
    return 1;
}

/* --- files ---------------------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *p;
    size_t n;

    if (!f)
        return NULL;
    p = malloc(RFD_LOG_BYTES_MAX + 1);
    if (p) {
        n = fread(p, 1, RFD_LOG_BYTES_MAX, f);
        p[n] = 0;
    }
    fclose(f);
    return p;
}

char *rfd_log(const struct rfd *d)
{
    char path[300];

    snprintf(path, sizeof(path), "%s/log", d->dir);
    return slurp(path);
}

static void print_log(const struct rfd *d, const char *why)
{
    char *log = rfd_log(d);

    fprintf(stderr, "---- ringflowd (pid %d, port %u) %s; its log:\n%s\n---- end of log\n",
            (int)d->pid, d->port, why, log ? log : "(unreadable)");
    free(log);
}

/* 0 clean, -1 when the log holds a sanitizer report (printed). */
static int log_check(const struct rfd *d)
{
    char *log = rfd_log(d);
    int rc = 0;

    for (size_t i = 0; log && i < sizeof(sanitizer_markers) / sizeof(*sanitizer_markers); i++)
        if (strstr(log, sanitizer_markers[i]))
            rc = -1;
    free(log);
    if (rc < 0)
        print_log(d, "reported a sanitizer error");
    return rc;
}

/* --- process -------------------------------------------------------------------------------- */

int rfd_free_port(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        *port = ntohs(sa.sin_port);
        rc = 0;
    }
    close(fd);
    return rc;
}

static pid_t spawn(const struct rfd *d, const char *build_dir, const char *const *extra)
{
    char exe[512], listen[64], log[300];
    const char *argv[RFD_ARGS_MAX];
    size_t n = 0;
    pid_t pid;

    snprintf(exe, sizeof(exe), "%s/ringflowd", build_dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", d->port);
    snprintf(log, sizeof(log), "%s/log", d->dir);
    const char *base[] = {exe,
                          "--listen",
                          listen,
                          "--data-dir",
                          d->dir,
                          "--graphs-dir",
                          RFD_GRAPHS_DIR,
                          "--log-level",
                          "warn",
                          "--shards",
                          "2",
                          "--no-pin"};
    for (size_t i = 0; i < sizeof(base) / sizeof(*base); i++)
        argv[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && i < RFD_EXTRA_MAX; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(exe, (char *const *)argv);
        fprintf(stderr, "rfd: cannot exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Graph names of tests/daemon/graphs/<name>.json into names (malloc'd each). */
static size_t graph_names(char *names[RFD_GRAPHS_MAX])
{
    DIR *dp = opendir(RFD_GRAPHS_DIR);
    struct dirent *e;
    size_t n = 0;

    if (!dp)
        return 0;
    while ((e = readdir(dp)) && n < RFD_GRAPHS_MAX) {
        size_t l = strlen(e->d_name);
        if (l > 5 && e->d_name[0] != '.' && strcmp(e->d_name + l - 5, ".json") == 0)
            names[n++] = strndup(e->d_name, l - 5);
    }
    closedir(dp);
    return n;
}

static bool answers(const struct rfd *d, const char *path, int want)
{
    struct rfd_resp r;
    bool ok = rfd_request(d, "GET", path, NULL, &r) == 0 && r.status == want;

    if (r.body)
        rfd_resp_free(&r);
    return ok;
}

/* 0 ready; 1 the daemon exited (status in *st); -1 timed out. */
static int wait_ready(struct rfd *d, int *st)
{
    int64_t deadline = now_ms() + RFD_READY_MS;
    char *names[RFD_GRAPHS_MAX];
    size_t n = graph_names(names), done = 0;
    int rc = -1;

    while (now_ms() < deadline) {
        if (waitpid(d->pid, st, WNOHANG) == d->pid) {
            d->pid = 0;
            rc = 1;
            break;
        }
        if (answers(d, "/healthz", 200)) {
            char path[128];
            for (; done < n; done++) {
                snprintf(path, sizeof(path), "/v1/graphs/%s", names[done]);
                if (!answers(d, path, 200))
                    break;
            }
            if (done == n) {
                rc = 0;
                break;
            }
        }
        sleep_ms(20);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return rc;
}

static void remove_dir(struct rfd *d)
{
    if (d->dir[0])
        nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    d->dir[0] = 0;
}

static void kill_wait(struct rfd *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    d->pid = 0;
}

int rfd_start(struct rfd *d, const char *build_dir, const char *const *extra)
{
    memset(d, 0, sizeof(*d));
    for (int attempt = 0; attempt < RFD_START_TRIES; attempt++) {
        int st = 0, rc;

        snprintf(d->dir, sizeof(d->dir), "/tmp/rfd-XXXXXX");
        if (!mkdtemp(d->dir) || rfd_free_port(&d->port) < 0) {
            fprintf(stderr, "rfd_start: mkdtemp/port: %s\n", strerror(errno));
            d->dir[0] = 0;
            return -1;
        }
        d->pid = spawn(d, build_dir, extra);
        if (d->pid < 0) {
            d->pid = 0;
            remove_dir(d);
            return -1;
        }
        rc = wait_ready(d, &st);
        if (rc == 0)
            return 0;
        char *log = rfd_log(d);
        bool in_use = rc == 1 && log && strstr(log, "in use") && !strstr(log, "data directory");
        free(log);
        if (!in_use || attempt + 1 == RFD_START_TRIES) {
            print_log(d, rc == 1 ? "exited during start-up" : "was not ready within 10 s");
            kill_wait(d);
            remove_dir(d);
            return -1;
        }
        remove_dir(d);
    }
    return -1;
}

int rfd_restart(struct rfd *d, const char *build_dir, const char *const *extra, int *exit_status)
{
    int st = 0, rc;

    if (d->pid > 0 || !d->dir[0])
        return -1;
    d->pid = spawn(d, build_dir, extra);
    if (d->pid < 0) {
        d->pid = 0;
        return -1;
    }
    rc = wait_ready(d, &st);
    if (rc == 1 && exit_status)
        *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc < 0) {
        print_log(d, "was not ready within 10 s after a restart");
        kill_wait(d);
    }
    return rc;
}

void rfd_kill(struct rfd *d)
{
    if (d->pid > 0)
        kill_wait(d);
}

int rfd_wait_exit(struct rfd *d, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int st;

    if (d->pid <= 0)
        return -1;
    for (;;) {
        pid_t p = waitpid(d->pid, &st, WNOHANG);
        if (p == d->pid)
            break;
        if (p < 0)
            return -1;
        if (now_ms() >= deadline)
            return -2;
        sleep_ms(5);
    }
    d->pid = 0;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    fprintf(stderr, "rfd: ringflowd died of signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return -1;
}

/* Daemons that crashed, hung on SIGTERM or logged a sanitizer report (rfd_failures). */
static int stop_failures;

int rfd_stop(struct rfd *d)
{
    int rc = 0;

    if (!d->dir[0])
        return -1;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        rc = rfd_wait_exit(d, RFD_STOP_MS);
        if (rc == -2) {
            print_log(d, "did not exit within 20 s of SIGTERM (killed)");
            kill_wait(d);
            rc = -1;
        }
    }
    if (log_check(d) < 0)
        rc = -1;
    remove_dir(d);
    if (rc == -1)
        stop_failures++;
    return rc;
}

int rfd_failures(void)
{
    return stop_failures;
}

long rfd_rss_kib(const struct rfd *d)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* --- sockets -------------------------------------------------------------------------------- */

int rfd_connect(const struct rfd *d)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(d->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = RFD_SOCK_TIMEOUT_S};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || !buf_of(fd)) {
        close(fd);
        return -1;
    }
    bufs[fd].len = 0;
    return fd;
}

int rfd_send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int rfd_send_str(int fd, const char *s)
{
    return rfd_send_all(fd, s, strlen(s));
}

void rfd_close(int fd)
{
    struct rbuf *b = buf_of(fd);

    if (fd < 0)
        return;
    if (b) {
        free(b->p);
        memset(b, 0, sizeof(*b));
    }
    close(fd);
}

bool rfd_wait_closed(int fd, int timeout_ms)
{
    struct rbuf *b = buf_of(fd);
    int64_t deadline = now_ms() + timeout_ms;

    if (!b)
        return false;
    for (;;) {
        b->len = 0;
        int rc = buf_fill(fd, b, deadline);
        if (rc == 0 || (rc < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return true;
        if (rc < 0)
            return false;
    }
}

/* --- responses ------------------------------------------------------------------------------ */

const char *rfd_header(const struct rfd_resp *r, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    const char *line = strstr(r->head, "\r\n");

    while (line && line[2] != '\r' && line[2] != 0) {
        const char *f = line + 2, *end = strstr(f, "\r\n");
        if (!end)
            break;
        if ((size_t)(end - f) > nl && strncasecmp(f, name, nl) == 0 && f[nl] == ':') {
            const char *v = f + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = end;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(buf, v, n);
            buf[n] = 0;
            return buf;
        }
        line = end;
    }
    return NULL;
}

void rfd_resp_free(struct rfd_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

/* Read until b holds at least n bytes; 0, or -1 (timeout, error, early end). */
static int need(int fd, struct rbuf *b, size_t n, int64_t deadline)
{
    while (b->len < n)
        if (buf_fill(fd, b, deadline) <= 0)
            return -1;
    return 0;
}

/* The head: through CRLFCRLF, copied into r. 0 or -1. */
static int read_head(int fd, struct rbuf *b, struct rfd_resp *r, int64_t deadline)
{
    char *end = NULL;

    while (!(b->len && (end = memmem(b->p, b->len, "\r\n\r\n", 4)))) {
        if (b->len >= RFD_HEAD_BYTES || buf_fill(fd, b, deadline) <= 0)
            return -1;
    }
    size_t n = (size_t)(end - b->p) + 4;
    if (n >= RFD_HEAD_BYTES)
        return -1;
    memcpy(r->head, b->p, n);
    r->head[n] = 0;
    r->head_len = n;
    buf_drop(b, n);
    if (strncmp(r->head, "HTTP/1.", 7) != 0 || n < 12 || r->head[8] != ' ')
        return -1;
    r->status = atoi(r->head + 9);
    return r->status >= 100 && r->status <= 999 ? 0 : -1;
}

static int body_append(struct rfd_resp *r, const char *p, size_t n)
{
    char *nb = realloc(r->body, r->body_len + n + 1);

    if (!nb)
        return -1;
    memcpy(nb + r->body_len, p, n);
    r->body = nb;
    r->body_len += n;
    r->body[r->body_len] = 0;
    return 0;
}

static int read_chunked(int fd, struct rbuf *b, struct rfd_resp *r, int64_t deadline)
{
    for (;;) {
        char *eol = NULL;
        while (!(b->len && (eol = memmem(b->p, b->len, "\r\n", 2))))
            if (b->len > RFD_CHUNK_LINE_MAX || buf_fill(fd, b, deadline) <= 0)
                return -1;
        char *endp;
        unsigned long long size = strtoull(b->p, &endp, 16);
        if (endp == b->p)
            return -1;
        buf_drop(b, (size_t)(eol - b->p) + 2);
        if (size == 0) /* trailers (none expected), then the blank line */
            break;
        if (need(fd, b, size + 2, deadline) < 0 || body_append(r, b->p, size) < 0)
            return -1;
        buf_drop(b, size + 2);
    }
    for (;;) {
        char *eol = NULL;
        while (!(b->len && (eol = memmem(b->p, b->len, "\r\n", 2))))
            if (buf_fill(fd, b, deadline) <= 0)
                return -1;
        size_t l = (size_t)(eol - b->p);
        buf_drop(b, l + 2);
        if (l == 0)
            return 0;
    }
}

static int read_body(int fd, struct rbuf *b, struct rfd_resp *r, int64_t deadline)
{
    char v[64];

    if (rfd_header(r, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked"))
        return read_chunked(fd, b, r, deadline);
    if (rfd_header(r, "Content-Length", v, sizeof(v))) {
        size_t n = strtoull(v, NULL, 10);
        if (need(fd, b, n, deadline) < 0 || body_append(r, b->p, n) < 0)
            return -1;
        buf_drop(b, n);
        return 0;
    }
    for (;;) { /* to the end of the stream */
        int rc = buf_fill(fd, b, deadline);
        if (rc <= 0) {
            if (rc < 0 && errno != ECONNRESET)
                return -1;
            break;
        }
    }
    if (body_append(r, b->p, b->len) < 0)
        return -1;
    b->len = 0;
    return 0;
}

int rfd_read_resp(int fd, struct rfd_resp *r, int timeout_ms, bool head_only)
{
    struct rbuf *b = buf_of(fd);
    int64_t deadline = now_ms() + timeout_ms;

    memset(r, 0, sizeof(*r));
    if (!b || read_head(fd, b, r, deadline) < 0 || body_append(r, "", 0) < 0)
        goto err;
    if (!head_only && r->status >= 200 && r->status != 204 && r->status != 304 &&
        read_body(fd, b, r, deadline) < 0)
        goto err;
    return 0;
err:
    rfd_resp_free(r);
    return -1;
}

json_t *rfd_json(const struct rfd_resp *r)
{
    if (!r->body)
        return NULL;
    return json_loadb(r->body, r->body_len, JSON_DECODE_ANY, NULL);
}

int rfd_request(const struct rfd *d, const char *method, const char *path, const char *body,
                struct rfd_resp *r)
{
    char head[2048];
    int fd, n, rc = -1;

    memset(r, 0, sizeof(*r));
    if (body)
        n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     method, path, d->port, strlen(body));
    else
        n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", method,
                     path, d->port);
    if (n <= 0 || (size_t)n >= sizeof(head))
        return -1;
    fd = rfd_connect(d);
    if (fd < 0)
        return -1;
    if (rfd_send_all(fd, head, (size_t)n) == 0 && (!body || rfd_send_str(fd, body) == 0))
        rc = rfd_read_resp(fd, r, RFD_REQUEST_MS, strcmp(method, "HEAD") == 0);
    rfd_close(fd);
    return rc;
}

char *rfd_submit(const struct rfd *d, const char *g, const char *inputs_json)
{
    char path[256], *body = NULL, *id = NULL;
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/graphs/%s/executions", g);
    if (asprintf(&body, "{\"inputs\": %s}", inputs_json ? inputs_json : "{}") < 0)
        return NULL;
    if (rfd_request(d, "POST", path, body, &r) == 0) {
        json_t *j = rfd_json(&r);
        const char *s = json_string_value(json_object_get(j, "id"));
        if ((r.status == 202 || r.status == 200) && s)
            id = strdup(s);
        else
            fprintf(stderr, "rfd_submit %s: %d %s\n", g, r.status, r.body);
        json_decref(j);
        rfd_resp_free(&r);
    } else {
        fprintf(stderr, "rfd_submit %s: no response\n", g);
    }
    free(body);
    return id;
}

/* --- WebSocket client ------------------------------------------------------------------------ */

static void ws_on_text(void *ud, const char *msg, size_t len)
{
    struct rfd_ws *w = ud;
    char *m;

    if (w->nmsgs == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        char **p = realloc(w->msgs, cap * sizeof(*p));
        if (!p)
            return;
        w->msgs = p;
        w->cap = cap;
    }
    m = malloc(len + 1);
    if (!m)
        return;
    memcpy(m, msg, len);
    m[len] = 0;
    w->msgs[w->nmsgs++] = m;
}

static int ws_write(void *ud, const void *data, size_t len)
{
    struct rfd_ws *w = ud;

    return rfd_send_all(w->fd, data, len) == 0 ? 0 : -EPIPE;
}

/* The accept value the server must send for key (RFC 6455 §4.2.2). */
static void ws_accept_for(const char *key, char out[RF_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[SHA_DIGEST_LENGTH];
    char cat[128];

    snprintf(cat, sizeof(cat), "%s%s", key, guid);
    SHA1((const unsigned char *)cat, strlen(cat), md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

static void ws_note_close(struct rfd_ws *w)
{
    if (!w->ws)
        return;
    if (rf_ws_close_code_recv(w->ws))
        w->close_code = rf_ws_close_code_recv(w->ws);
    if (rf_ws_done(w->ws))
        w->closed = true;
}

/* Read once (up to the deadline) and feed the session. 1 progress, 0 closed, -1 timeout. */
static int ws_pump(struct rfd_ws *w, int64_t deadline)
{
    struct rbuf *b = buf_of(w->fd);
    int rc = buf_fill(w->fd, b, deadline);

    if (rc <= 0) {
        if (rc == 0 || errno != ETIMEDOUT) {
            ws_note_close(w);
            w->closed = true;
            return 0;
        }
        return -1;
    }
    rc = rf_ws_feed(w->ws, b->p, b->len);
    b->len = 0;
    ws_note_close(w);
    if (rc < 0)
        w->closed = true;
    return w->closed ? 0 : 1;
}

static int ws_handshake(const struct rfd *d, const char *path, struct rfd_ws *w)
{
    unsigned char raw[16];
    char key[32], want[RF_WS_ACCEPT_LEN + 1], got[64], req[2048];
    struct rfd_resp r;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    ws_accept_for(key, want);
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, d->port, key);
    if (n <= 0 || (size_t)n >= sizeof(req) || rfd_send_all(w->fd, req, (size_t)n) < 0)
        return -1;
    /* head_only: a 101 has no body; bytes after the head are already WebSocket frames. */
    if (rfd_read_resp(w->fd, &r, RFD_REQUEST_MS, true) < 0)
        return -1;
    bool ok = r.status == 101 && rfd_header(&r, "Sec-WebSocket-Accept", got, sizeof(got)) &&
              strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "rfd_ws_open %s: not upgraded:\n%s\n", path, r.head);
    rfd_resp_free(&r);
    return ok ? 0 : -1;
}

int rfd_ws_open(const struct rfd *d, const char *path, struct rfd_ws *w)
{
    struct rf_ws_cbs cbs = {.on_text = ws_on_text, .write = ws_write};
    struct rbuf *b;

    memset(w, 0, sizeof(*w));
    w->closed = true;
    w->fd = rfd_connect(d);
    if (w->fd < 0)
        return -1;
    if (ws_handshake(d, path, w) < 0 || rf_ws_new(false, &cbs, w, NULL, &w->ws) < 0)
        goto err;
    w->closed = false;
    b = buf_of(w->fd);
    if (b->len) { /* frames that came with the 101 */
        int rc = rf_ws_feed(w->ws, b->p, b->len);
        b->len = 0;
        ws_note_close(w);
        if (rc < 0)
            w->closed = true;
    }
    return 0;
err:
    rf_ws_free(w->ws);
    w->ws = NULL;
    rfd_close(w->fd);
    w->fd = -1;
    return -1;
}

int rfd_ws_send(struct rfd_ws *w, const char *text)
{
    if (!w->ws || w->closed)
        return -1;
    return rf_ws_send_text(w->ws, text, strlen(text)) == 0 ? 0 : -1;
}

char *rfd_ws_recv(struct rfd_ws *w, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    for (;;) {
        if (w->head < w->nmsgs) {
            char *m = w->msgs[w->head];
            w->msgs[w->head++] = NULL;
            return m;
        }
        if (!w->ws || w->closed || ws_pump(w, deadline) <= 0) {
            if (w->head < w->nmsgs)
                continue;
            return NULL;
        }
    }
}

void rfd_ws_close(struct rfd_ws *w)
{
    if (w->ws && !w->closed && rf_ws_close(w->ws, 1000, NULL) == 0) {
        int64_t deadline = now_ms() + RFD_WS_CLOSE_MS;
        while (!w->closed && ws_pump(w, deadline) != -1)
            ;
    }
    for (size_t i = w->head; i < w->nmsgs; i++)
        free(w->msgs[i]);
    free(w->msgs);
    w->msgs = NULL;
    w->nmsgs = w->cap = w->head = 0;
    rf_ws_free(w->ws);
    w->ws = NULL;
    if (w->fd >= 0)
        rfd_close(w->fd);
    w->fd = -1;
    w->closed = true;
}

void rfd_test_filter(void)
{
    const char *p = getenv("RF_TEST_FILTER");

    if (p && *p)
        cmocka_set_test_filter(p);
    p = getenv("RF_TEST_SKIP");
    if (p && *p)
        cmocka_set_skip_filter(p);
}

/* --- raw WebSocket frames ------------------------------------------------------------------- */

int rfd_ws_open_raw(const struct rfd *d, const char *path)
{
    struct rfd_ws w;

    memset(&w, 0, sizeof(w));
    w.fd = rfd_connect(d);
    if (w.fd < 0)
        return -1;
    if (ws_handshake(d, path, &w) < 0) {
        rfd_close(w.fd);
        return -1;
    }
    return w.fd; /* bytes after the 101 stay buffered for rfd_ws_read_frame */
}

int rfd_ws_send_frame(int fd, unsigned first_byte, bool masked, const void *p, size_t n)
{
    unsigned char h[14], mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = 0;

    h[hl++] = (unsigned char)first_byte;
    unsigned char m = masked ? 0x80 : 0;
    if (n < 126) {
        h[hl++] = (unsigned char)(m | n);
    } else if (n <= 0xffff) {
        h[hl++] = m | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = m | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    if (masked) {
        memcpy(h + hl, mask, 4);
        hl += 4;
    }
    unsigned char *frame = malloc(hl + n);
    if (!frame)
        return -1;
    memcpy(frame, h, hl);
    for (size_t i = 0; i < n; i++)
        frame[hl + i] = ((const unsigned char *)p)[i] ^ (masked ? mask[i % 4] : 0);
    int rc = rfd_send_all(fd, frame, hl + n);
    free(frame);
    return rc;
}

int rfd_ws_read_frame(int fd, struct rfd_frame *f, int timeout_ms)
{
    struct rbuf *b = buf_of(fd);
    int64_t deadline = now_ms() + timeout_ms;
    size_t hl = 2, n;

    memset(f, 0, sizeof(*f));
    if (!b || need(fd, b, 2, deadline) < 0)
        return -1;
    const unsigned char *p = (const unsigned char *)b->p;
    n = p[1] & 0x7f;
    if (n == 126)
        hl = 4;
    else if (n == 127)
        hl = 10;
    if (need(fd, b, hl, deadline) < 0)
        return -1;
    p = (const unsigned char *)b->p;
    if (n == 126)
        n = (size_t)p[2] << 8 | p[3];
    else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[2 + i];
    }
    if (p[1] & 0x80) /* a server never masks: report it as a broken frame */
        return -1;
    if (n > RFD_FRAME_MAX || need(fd, b, hl + n, deadline) < 0)
        return -1;
    p = (const unsigned char *)b->p;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    f->len = n;
    f->data = malloc(n + 1);
    if (!f->data)
        return -1;
    memcpy(f->data, p + hl, n);
    f->data[n] = '\0';
    if (f->opcode == 8 && n >= 2)
        f->close_code = (uint16_t)((unsigned char)f->data[0] << 8 | (unsigned char)f->data[1]);
    buf_drop(b, hl + n);
    return 0;
}
