/*
 * engine/cmd/ringflow-watch.c: follow executions live over ringflowd's WebSocket.
 *
 *   ringflow-watch [--addr HOST:PORT] [--after SEQ] [--timeout-ms N] EXECUTION_ID...
 *
 * Connects to ws://HOST:PORT/v1/ws (default 127.0.0.1:8080), subscribes to each id with
 * {"op": "subscribe", "execution_id": ..., "after": SEQ}, and prints every event as one
 * JSON line on stdout until each execution sent its last event (execution.succeeded,
 * .failed or .canceled). Error frames from the server go to stderr.
 *
 * Exit status: 0 when every execution succeeded; 1 when one failed or was canceled, or
 * the timeout passed; 2 for usage errors, a refused connection or a refused upgrade.
 *
 * A plain blocking client: one socket with a receive timeout, the sans-I/O WebSocket
 * session of net/ws.h in client mode (masked frames), and a hand-written upgrade request
 * whose Sec-WebSocket-Accept is checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "net/ws.h"

#define IDS_MAX      64
#define HEAD_MAX     4096
#define POLL_MS      200
#define WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct watch {
    int fd;
    struct rf_ws *ws;
    uint32_t left;  /* executions not finished */
    bool failed;
};

static int sock_write(void *ud, const void *data, size_t len)
{
    struct watch *w = ud;
    const char *p = data;

    while (len) {
        ssize_t n = send(w->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void on_text(void *ud, const char *msg, size_t len)
{
    struct watch *w = ud;
    json_t *o = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));

    if (!json_object_get(o, "seq")) { /* an error frame: {"error": {...}} */
        fprintf(stderr, "%.*s\n", (int)len, msg);
        if (json_object_get(o, "execution_id") && w->left) {
            w->left--; /* that subscription will not produce events */
            w->failed = true;
        }
    } else {
        printf("%.*s\n", (int)len, msg);
        fflush(stdout);
    }
    if (type && strncmp(type, "execution.", 10) == 0 && strcmp(type, "execution.queued") &&
        strcmp(type, "execution.started") && !json_object_get(o, "parent") && w->left) {
        w->left--;
        w->failed |= strcmp(type, "execution.succeeded") != 0;
    }
    json_decref(o);
}

static int dial(const char *addr)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct timeval tv = {.tv_sec = 0, .tv_usec = POLL_MS * 1000};
    int fd;

    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Send the upgrade and check the 101; leftover bytes after the head go to *extra. */
static int upgrade(struct watch *w, const char *addr, char *extra, size_t *nextra)
{
    unsigned char key[16], sha[SHA_DIGEST_LENGTH];
    char key64[32], want[32], req[512], head[HEAD_MAX + 1], cat[96];
    size_t got = 0;
    char *end;

    RAND_bytes(key, sizeof(key));
    EVP_EncodeBlock((unsigned char *)key64, key, sizeof(key));
    snprintf(cat, sizeof(cat), "%s%s", key64, WS_GUID);
    SHA1((unsigned char *)cat, strlen(cat), sha);
    EVP_EncodeBlock((unsigned char *)want, sha, sizeof(sha));
    int n = snprintf(req, sizeof(req),
                     "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     addr, key64);
    if (sock_write(w, req, (size_t)n) < 0)
        return -EIO;
    for (int tries = 0; tries < 50; tries++) {
        ssize_t r = recv(w->fd, head + got, HEAD_MAX - got, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return -ECONNRESET;
        if (r > 0)
            got += (size_t)r;
        head[got] = '\0';
        if ((end = strstr(head, "\r\n\r\n")) != NULL)
            break;
    }
    if (!end || strncmp(head, "HTTP/1.1 101", 12) != 0 || !strstr(head, want)) {
        fprintf(stderr, "ringflow-watch: the upgrade was refused:\n%s\n", head);
        return -EPROTO;
    }
    *nextra = got - (size_t)(end + 4 - head);
    memcpy(extra, end + 4, *nextra);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
    fputs("usage: ringflow-watch [--addr HOST:PORT] [--after SEQ] [--timeout-ms N] "
          "EXECUTION_ID...\n"
          "Follow executions on ringflowd's WebSocket (/v1/ws), one JSON event per line.\n"
          "  --addr        the daemon (default 127.0.0.1:8080)\n"
          "  --after       replay events after this seq (default 0: all of them)\n"
          "  --timeout-ms  give up after this long (default 0: never)\n"
          "Exit: 0 all succeeded, 1 failed/canceled/timeout, 2 usage or connection error.\n",
          f);
}

static int run(struct watch *w, char **ids, int nids, long after, long timeout_ms)
{
    char buf[65536];
    size_t nextra = 0;
    int64_t deadline = timeout_ms ? now_ms() + timeout_ms : 0;

    for (int i = 0; i < nids; i++) {
        json_t *m = json_pack("{s:s, s:s, s:I}", "op", "subscribe", "execution_id", ids[i],
                              "after", (json_int_t)after);
        char *text = json_dumps(m, JSON_COMPACT);
        rf_ws_send_text(w->ws, text, strlen(text));
        free(text);
        json_decref(m);
    }
    (void)nextra;
    while (w->left > 0 && !rf_ws_done(w->ws)) {
        ssize_t r = recv(w->fd, buf, sizeof(buf), 0);
        if (r == 0)
            break;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            break;
        if (r > 0 && rf_ws_feed(w->ws, buf, (size_t)r) < 0)
            break;
        if (deadline && now_ms() > deadline) {
            fprintf(stderr, "ringflow-watch: timed out\n");
            return 1;
        }
    }
    if (w->left > 0) {
        fprintf(stderr, "ringflow-watch: the connection ended (close code %u)\n",
                rf_ws_close_code_recv(w->ws));
        return 1;
    }
    rf_ws_close(w->ws, 1000, "done");
    return w->failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"addr", required_argument, NULL, 'a'},
                                         {"after", required_argument, NULL, 'A'},
                                         {"timeout-ms", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *addr = "127.0.0.1:8080";
    long after = 0, timeout_ms = 0;
    struct watch w = {.fd = -1};
    struct rf_ws_cbs cbs = {.on_text = on_text, .write = sock_write};
    char extra[HEAD_MAX];
    size_t nextra = 0;
    int c, rc;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': addr = optarg; break;
        case 'A': after = strtol(optarg, NULL, 10); break;
        case 't': timeout_ms = strtol(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc || argc - optind > IDS_MAX || after < 0 || timeout_ms < 0) {
        usage(stderr);
        return 2;
    }
    w.left = (uint32_t)(argc - optind);
    if ((w.fd = dial(addr)) < 0) {
        fprintf(stderr, "ringflow-watch: cannot connect to %s: %s\n", addr, strerror(-w.fd));
        return 2;
    }
    if (upgrade(&w, addr, extra, &nextra) < 0 || rf_ws_new(false, &cbs, &w, NULL, &w.ws) < 0) {
        close(w.fd);
        return 2;
    }
    if (nextra)
        rf_ws_feed(w.ws, extra, nextra);
    rc = run(&w, argv + optind, argc - optind, after, timeout_ms);
    rf_ws_free(w.ws);
    close(w.fd);
    return rc;
}
