/*
 * tests/net/test_hclient.c: the `http` node kind (net/hclient.c) against a tiny HTTP server
 * that runs in threads of this test on 127.0.0.1 (and [::1] where the host has it), on a
 * free port. RF_TEST_CONCURRENT: runs under ThreadSanitizer too.
 *
 * The server uses blocking sockets with receive timeouts and polls its listener, so every
 * wait is bounded; each connection gets its own thread, all joined when the server stops.
 * Paths choose the answer: JSON, text, chunked (with extensions and trailers), close-
 * delimited, 500 then 200, 404, a response that never comes, bodies over the limit, an
 * echo of the request, interim 1xx responses, repeated headers, bad JSON, binary, garbage.
 * The server counts connections, so connection reuse is checked from the other side.
 *
 * What it pins down: URL parsing and request building as pure functions; compile-time
 * validation (codes and messages); outputs {status, headers, body} for each framing;
 * templates in url, headers and body; error codes and retryability (retried or not, as the
 * attempt counts show); http_timeout_ms and the node's own timeout_ms; rf_exec_cancel of a
 * running request completing promptly as canceled with its socket closed; keep-alive reuse
 * on one shard, and a pooled connection the server closed being replaced transparently.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/hclient.h"
#include "ringflow.h"

#define WAIT_MS          20000
#define SRV_CONNS_MAX    64
#define SRV_REQ_BYTES    65536
#define SRV_RECV_TIMEOUT 5 /* seconds a server connection waits for a request */
#define BIG_BYTES        200000

/* --- the test server -------------------------------------------------------------------------- */

struct srv {
    int lfd;
    uint16_t port;
    bool close_after; /* close every connection after one response, silently */
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint32_t conns;    /* connections accepted */
    _Atomic uint32_t requests; /* requests read */
    _Atomic uint32_t flaky;    /* /flaky requests so far */
    _Atomic uint32_t slow_in;  /* /slow requests received */
    _Atomic uint32_t slow_eof; /* /slow connections the client closed */
    pthread_t cthreads[SRV_CONNS_MAX];
    _Atomic uint32_t ncthreads; /* written by the accept thread only */
};

struct sconn {
    struct srv *s;
    int fd;
};

struct sreq {
    char buf[SRV_REQ_BYTES];
    size_t len, head;
    char method[16];
    char target[512];
    const char *body;
    size_t body_len;
};

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

static bool send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* Content-Length of a request head (0 when absent). */
static size_t req_content_length(const char *head)
{
    const char *p = head;

    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, "content-length:", 15) == 0)
            return (size_t)strtoul(p + 15, NULL, 10);
    }
    return 0;
}

/* Read one request: false on EOF, timeout or garbage. */
static bool read_request(int fd, struct sreq *r)
{
    char *end;

    r->len = 0;
    for (;;) {
        r->buf[r->len] = '\0';
        if ((end = strstr(r->buf, "\r\n\r\n")) != NULL)
            break;
        if (r->len + 1 >= sizeof(r->buf))
            return false;
        ssize_t k = recv(fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len, 0);
        if (k <= 0)
            return false;
        r->len += (size_t)k;
    }
    r->head = (size_t)(end + 4 - r->buf);
    r->body_len = req_content_length(r->buf);
    if (r->head + r->body_len >= sizeof(r->buf))
        return false;
    while (r->len < r->head + r->body_len) {
        ssize_t k = recv(fd, r->buf + r->len, r->head + r->body_len - r->len, 0);
        if (k <= 0)
            return false;
        r->len += (size_t)k;
    }
    r->body = r->buf + r->head;
    return sscanf(r->buf, "%15s %511s", r->method, r->target) == 2;
}

static bool respond(int fd, int status, const char *type, const char *body)
{
    char head[512];

    snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
             status, type, strlen(body));
    return send_str(fd, head) && send_str(fd, body);
}

/* The request echoed as JSON: method, target, lower-cased headers, body. */
static bool respond_echo(int fd, struct sreq *r)
{
    json_t *o = json_object(), *h = json_object();
    char *line = strstr(r->buf, "\r\n") + 2, *s;
    bool ok;

    while (line < r->buf + r->head - 2) {
        char *eol = strstr(line, "\r\n"), *colon = memchr(line, ':', (size_t)(eol - line));
        for (char *c = line; c < colon; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        json_object_setn_new(h, line, (size_t)(colon - line), json_stringn(v, (size_t)(eol - v)));
        line = eol + 2;
    }
    json_object_set_new(o, "method", json_string(r->method));
    json_object_set_new(o, "target", json_string(r->target));
    json_object_set_new(o, "headers", h);
    json_object_set_new(o, "body", json_stringn(r->body, r->body_len));
    s = json_dumps(o, JSON_COMPACT);
    ok = respond(fd, 200, "application/json", s);
    free(s);
    json_decref(o);
    return ok;
}

static bool respond_big_chunked(int fd)
{
    static char chunk[4000 + 16];
    bool ok = send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");

    memset(chunk, 'y', sizeof(chunk));
    memcpy(chunk, "FA0\r\n", 5);
    memcpy(chunk + 5 + 4000, "\r\n", 2);
    for (int i = 0; ok && i < BIG_BYTES / 4000; i++)
        ok = send_all(fd, chunk, 5 + 4000 + 2);
    return ok && send_str(fd, "0\r\n\r\n");
}

static bool respond_big(int fd)
{
    static char body[BIG_BYTES];
    char head[128];

    memset(body, 'x', sizeof(body));
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_BYTES);
    return send_str(fd, head) && send_all(fd, body, sizeof(body));
}

/* Wait for the client to close (or SRV_RECV_TIMEOUT). */
static void wait_eof(struct srv *s, int fd)
{
    char b[64];

    while (recv(fd, b, sizeof(b), 0) > 0)
        ;
    atomic_fetch_add(&s->slow_eof, 1);
}

/* Answer one request; false: close the connection. */
static bool serve(struct srv *s, int fd, struct sreq *r)
{
    const char *t = r->target;

    if (strcmp(t, "/json") == 0)
        return respond(fd, 200, "application/json", "{\"a\":1,\"b\":[true,null],\"s\":\"x\"}");
    if (strcmp(t, "/text") == 0)
        return respond(fd, 200, "text/plain; charset=utf-8", "hello world");
    if (strncmp(t, "/echo", 5) == 0)
        return respond_echo(fd, r);
    if (strcmp(t, "/chunked") == 0)
        return send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n"
                            "5;ext=1\r\n{\"n\":\r\n3\r\n42,\r\nB\r\n\"s\":\"chnk\"}\r\n"
                            "0\r\nX-Trailer: t\r\n\r\n");
    if (strcmp(t, "/close") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
        return false;
    }
    if (strcmp(t, "/flaky") == 0) {
        if (atomic_fetch_add(&s->flaky, 1) == 0)
            return respond(fd, 500, "text/plain", "try again");
        return respond(fd, 200, "application/json", "{\"ok\":true}");
    }
    if (strcmp(t, "/missing") == 0)
        return respond(fd, 404, "text/plain", "no such thing");
    if (strcmp(t, "/busy") == 0)
        return respond(fd, 429, "text/plain", "slow down");
    if (strcmp(t, "/slow") == 0) {
        atomic_fetch_add(&s->slow_in, 1);
        wait_eof(s, fd);
        return false;
    }
    if (strcmp(t, "/big") == 0)
        return respond_big(fd);
    if (strcmp(t, "/bigchunked") == 0)
        return respond_big_chunked(fd);
    if (strcmp(t, "/head") == 0)
        return send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 5\r\n\r\n");
    if (strcmp(t, "/interim") == 0)
        return send_str(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                            "Link: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    if (strcmp(t, "/headers") == 0)
        return send_str(fd, "HTTP/1.1 201 Created\r\nX-Rep: a\r\nX-REP: b\r\n"
                            "X-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n");
    if (strcmp(t, "/badjson") == 0)
        return respond(fd, 200, "application/problem+json", "{nope");
    if (strcmp(t, "/empty-json") == 0)
        return respond(fd, 200, "application/json", "");
    if (strcmp(t, "/binary") == 0)
        return respond(fd, 200, "application/octet-stream", "\xff\xfe\x01");
    if (strcmp(t, "/garbage") == 0) {
        send_str(fd, "SSH-2.0-OpenSSH\r\n\r\n");
        return false;
    }
    return respond(fd, 400, "text/plain", "unknown path");
}

static void *conn_main(void *arg)
{
    struct sconn *c = arg;
    struct sreq *r = malloc(sizeof(*r));
    struct timeval tv = {.tv_sec = SRV_RECV_TIMEOUT};

    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (r && read_request(c->fd, r)) {
        atomic_fetch_add(&c->s->requests, 1);
        if (!serve(c->s, c->fd, r) || c->s->close_after)
            break;
    }
    close(c->fd);
    free(r);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct srv *s = arg;

    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        uint32_t n = atomic_load(&s->ncthreads);
        if (fd < 0)
            continue;
        if (n == SRV_CONNS_MAX) {
            close(fd);
            continue;
        }
        struct sconn *c = malloc(sizeof(*c));
        c->s = s;
        c->fd = fd;
        atomic_fetch_add(&s->conns, 1);
        if (pthread_create(&s->cthreads[n], NULL, conn_main, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        atomic_store(&s->ncthreads, n + 1);
    }
    return NULL;
}

/* Start a server on the loopback of `family`; false when the host has none. */
static bool srv_start_family(struct srv *s, int family, bool close_after)
{
    union rf_http_addr a;
    socklen_t len = family == AF_INET ? sizeof(a.in4) : sizeof(a.in6);
    int one = 1;

    memset(s, 0, sizeof(*s));
    s->close_after = close_after; /* before the threads start: they read it unlocked */
    memset(&a, 0, sizeof(a));
    a.sa.sa_family = (sa_family_t)family;
    if (family == AF_INET)
        a.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        a.in6.sin6_addr = in6addr_loopback;
    s->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s->lfd, &a.sa, len) < 0) {
        close(s->lfd);
        return false;
    }
    assert_int_equal(listen(s->lfd, 64), 0);
    assert_int_equal(getsockname(s->lfd, &a.sa, &len), 0);
    s->port = ntohs(family == AF_INET ? a.in4.sin_port : a.in6.sin6_port);
    assert_int_equal(pthread_create(&s->thread, NULL, accept_main, s), 0);
    return true;
}

static void srv_start(struct srv *s)
{
    assert_true(srv_start_family(s, AF_INET, false));
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    for (uint32_t i = 0; i < atomic_load(&s->ncthreads); i++)
        pthread_join(s->cthreads[i], NULL);
    close(s->lfd);
}

/* A port nothing listens on: bound, read, closed. */
static uint16_t dead_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* --- engine helpers --------------------------------------------------------------------------- */

static rf_engine *engine(uint32_t shards, const rf_config *extra)
{
    rf_config cfg = extra ? *extra : (rf_config){0};
    rf_engine *eng = NULL;

    cfg.shards = shards;
    cfg.no_pin_threads = true;
    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_int_equal(rf_engine_start(eng), 0);
    return eng;
}

static void engine_done(rf_engine *eng)
{
    assert_int_equal(rf_engine_stop(eng, 5000), 0);
    rf_engine_free(eng);
}

static rf_plan *plan_of(rf_engine *eng, const char *doc)
{
    rf_plan *p = NULL;
    rf_diag d;

    rf_diag_init(&d);
    int rc = rf_plan_from_json(eng, doc, strlen(doc), &d, &p);
    for (uint32_t i = 0; i < d.count; i++)
        print_error("  %s %s %s\n", d.items[i].pointer, d.items[i].code, d.items[i].message);
    rf_diag_free(&d);
    assert_int_equal(rc, 0);
    return p;
}

/* Submit `doc` with inputs {"port": port} and wait for the end. */
static rf_exec *submit(rf_engine *eng, const char *doc, uint16_t port)
{
    rf_plan *p = plan_of(eng, doc);
    rf_exec *ex = NULL;
    json_t *in = json_pack("{s:i}", "port", (int)port);

    assert_int_equal(rf_submit(eng, p, in, NULL, &ex), 0);
    rf_plan_release(p);
    return ex;
}

static rf_exec *run(rf_engine *eng, const char *doc, uint16_t port)
{
    rf_exec *ex = submit(eng, doc, port);

    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    return ex;
}

/* A one-node document: GET http://127.0.0.1:{{inputs.port}}<path> plus `extra` fields
 * in the node (e.g. ", \"retry\": {...}") and `cfg` fields in its config. */
static char *doc1(const char *path, const char *cfg, const char *extra)
{
    static char buf[4096];

    snprintf(buf, sizeof(buf),
             "{\"name\": \"h\", \"nodes\": [{\"id\": \"n\", \"kind\": \"http\", \"config\": "
             "{\"url\": \"http://127.0.0.1:{{inputs.port}}%s\"%s}%s}]}",
             path, cfg ? cfg : "", extra ? extra : "");
    return buf;
}

static rf_node_info node(rf_exec *ex, uint32_t i)
{
    rf_node_info ni;

    assert_int_equal(rf_exec_node(ex, i, &ni), 0);
    return ni;
}

static void assert_json_eq(const json_t *got, const char *want)
{
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);

    assert_non_null(w);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        print_error("got  %s\nwant %s\n", g ? g : "(null)", want);
        free(g);
        fail();
    }
    json_decref(w);
}

/* The node failed with `code` after `attempts` attempts; its message contains `needle`. */
static void assert_failed(rf_exec *ex, uint32_t i, const char *code, uint32_t attempts,
                          const char *needle)
{
    rf_node_info ni = node(ex, i);
    const char *c = json_string_value(json_object_get(ni.error, "code"));
    const char *m = json_string_value(json_object_get(ni.error, "message"));

    if (ni.status != RF_ST_FAILED || !c || strcmp(c, code) != 0 || ni.attempts != attempts ||
        (needle && (!m || !strstr(m, needle))))
        print_error("status %s attempts %u code %s message %s\n", rf_status_name(ni.status),
                    ni.attempts, c ? c : "-", m ? m : "-");
    assert_int_equal(ni.status, RF_ST_FAILED);
    assert_string_equal(c, code);
    assert_int_equal(ni.attempts, attempts);
    if (needle)
        assert_non_null(strstr(m, needle));
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define RETRY3 ", \"retry\": {\"max_attempts\": 3, \"backoff_ms\": 5, \"max_backoff_ms\": 10}"

/* --- pure functions --------------------------------------------------------------------------- */

static void test_url_parse(void **state)
{
    struct rf_http_target t;
    const char *why = NULL;
    static const char *const bad[] = {
        "https://127.0.0.1/",  "ftp://127.0.0.1/",         "http://",
        "http:///x",           "http://example.com/",      "http://1.2.3/",
        "http://[::1/",        "http://[fe80::1%25eth0]/", "http://u@127.0.0.1/",
        "http://127.0.0.1:0/", "http://127.0.0.1:65536/",  "http://127.0.0.1:8a/",
        "127.0.0.1:80/",
    };

    (void)state;
    assert_int_equal(rf__http_url_parse("http://127.0.0.1:8080/a/b?q=1#frag", 34, &t, &why), 0);
    assert_int_equal(t.addr.sa.sa_family, AF_INET);
    assert_int_equal(ntohs(t.addr.in4.sin_port), 8080);
    assert_int_equal(t.port, 8080);
    assert_true(t.port_explicit);
    assert_int_equal(t.path_len, 8);
    assert_memory_equal(t.path, "/a/b?q=1", 8);
    assert_int_equal(t.host_len, 9);
    assert_false(t.path_slash);

    assert_int_equal(rf__http_url_parse("HTTP://LocalHost", 16, &t, &why), 0);
    assert_int_equal(ntohl(t.addr.in4.sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(t.port, 80);
    assert_false(t.port_explicit);
    assert_true(t.path_slash);
    assert_int_equal(t.path_len, 0);

    assert_int_equal(rf__http_url_parse("http://[::1]:9/x", 16, &t, &why), 0);
    assert_int_equal(t.addr.sa.sa_family, AF_INET6);
    assert_int_equal(t.port, 9);
    assert_int_equal(t.host_len, 5);

    assert_int_equal(rf__http_url_parse("http://10.0.0.1:80?x", 20, &t, &why), 0);
    assert_false(t.port_explicit);
    assert_true(t.path_slash);
    assert_int_equal(rf__http_url_parse("http://10.0.0.1:/", 17, &t, &why), 0);
    assert_int_equal(t.port, 80);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        if (rf__http_url_parse(bad[i], strlen(bad[i]), &t, &why) != -EINVAL)
            print_error("accepted %s\n", bad[i]);
        assert_int_equal(rf__http_url_parse(bad[i], strlen(bad[i]), &t, &why), -EINVAL);
        assert_non_null(why);
    }
    assert_int_equal(rf__http_url_parse("http://127.0.0.1\0/x", 18, &t, &why), -EINVAL);
    assert_non_null(strstr(why, "NUL"));
    assert_int_equal(rf__http_url_parse("https://x", 9, &t, &why), -EINVAL);
    assert_non_null(strstr(why, "https"));
    assert_int_equal(rf__http_url_parse("http://example.com", 18, &t, &why), -EINVAL);
    assert_non_null(strstr(why, "not resolved"));
}

static char *build(const char *config_json, rf_error *err, int *rc)
{
    json_t *c = json_loads(config_json, 0, NULL);
    struct rf_http_target t;
    struct rf_buf b = {0};
    const char *why;
    const char *url = json_string_value(json_object_get(c, "url"));
    char *s;

    assert_int_equal(rf__http_url_parse(url, strlen(url), &t, &why), 0);
    *rc = rf__http_request_build(c, &t, &b, err);
    s = malloc(b.len + 1);
    assert_non_null(s);
    if (b.len)
        memcpy(s, b.p, b.len);
    s[b.len] = '\0';
    rf_buf_free(&b);
    json_decref(c);
    return s;
}

static void test_request_build(void **state)
{
    rf_error err = {0};
    int rc;
    char *s;

    (void)state;
    s = build("{\"url\": \"http://127.0.0.1:8080/a b?q=\\\"x\\\"&r=\\u00e9\"}", &err, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "GET /a%20b?q=%22x%22&r=%C3%A9 HTTP/1.1\r\n"
                           "Host: 127.0.0.1:8080\r\n"
                           "User-Agent: " RF_HTTP_USER_AGENT "\r\n"
                           "Connection: keep-alive\r\n\r\n");
    free(s);
    s = build("{\"url\": \"http://[::1]\", \"method\": \"POST\", \"body\": {\"k\": [1, \"v\"]},"
              " \"headers\": {\"X-N\": 5, \"Host\": \"example\", \"user-agent\": \"me\"}}",
              &err, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "POST / HTTP/1.1\r\n"
                           "X-N: 5\r\nHost: example\r\nuser-agent: me\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 13\r\n"
                           "Connection: keep-alive\r\n\r\n"
                           "{\"k\":[1,\"v\"]}");
    free(s);
    s = build("{\"url\": \"http://[::1]:81/t\", \"method\": \"PUT\", \"body\": \"plain\","
              " \"headers\": {\"content-type\": \"text/x\"}}",
              &err, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "PUT /t HTTP/1.1\r\nHost: [::1]:81\r\n"
                           "User-Agent: " RF_HTTP_USER_AGENT "\r\n"
                           "content-type: text/x\r\n"
                           "Content-Length: 5\r\n"
                           "Connection: keep-alive\r\n\r\nplain");
    free(s);
    s = build("{\"url\": \"http://127.0.0.1/\", \"method\": \"POST\"}", &err, &rc);
    assert_non_null(strstr(s, "\r\nContent-Length: 0\r\n"));
    assert_null(strstr(s, "Content-Type"));
    free(s);
}

/* --- validation ------------------------------------------------------------------------------- */

/* Compiling a one-node graph with `config` fails with `code` (or passes when code is NULL). */
static void check_compile(rf_engine *eng, const char *config, const char *code)
{
    char doc[2048];
    rf_plan *p = NULL;
    rf_diag d;
    bool found = false;

    snprintf(doc, sizeof(doc),
             "{\"name\": \"v\", \"inputs\": {\"h\": {\"type\": \"any\"}}, \"nodes\": "
             "[{\"id\": \"n\", \"kind\": \"http\", \"config\": %s}]}",
             config);
    rf_diag_init(&d);
    int rc = rf_plan_from_json(eng, doc, strlen(doc), &d, &p);
    for (uint32_t i = 0; i < d.count; i++)
        found |= code && strcmp(d.items[i].code, code) == 0 &&
                 strcmp(d.items[i].pointer, "/nodes/0/config") == 0;
    if (code ? (rc != RF_EINVAL_GRAPH || !found) : rc != 0) {
        print_error("config %s: rc %d\n", config, rc);
        for (uint32_t i = 0; i < d.count; i++)
            print_error("  %s %s %s\n", d.items[i].pointer, d.items[i].code, d.items[i].message);
    }
    rf_diag_free(&d);
    rf_plan_release(p);
    assert_int_equal(rc, code ? RF_EINVAL_GRAPH : 0);
    assert_true(!code || found);
}

static void test_validate(void **state)
{
    rf_engine *eng = NULL;

    (void)state;
    assert_int_equal(rf_engine_new(&(rf_config){.shards = 1}, &eng), 0);
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\"}", NULL);
    check_compile(eng,
                  "{\"url\": \"http://{{inputs.h}}/x\", \"method\": \"{{inputs.h}}\","
                  " \"headers\": {\"X\": \"{{inputs.h}}\", \"Y\": 1},"
                  " \"ok_status\": [[200, 299], [404, 404]], \"body\": {\"a\": 1}}",
                  NULL);
    check_compile(eng, "{\"url\": \"{{inputs.h}}\", \"ok_status\": \"{{inputs.h}}\"}", NULL);
    check_compile(eng, "{\"url\": \"http://[::1]:8080/\", \"ok_status\": 204}", NULL);
    check_compile(eng, "{\"url\": \"https://127.0.0.1/\"}", "bad_url");
    check_compile(eng, "{\"url\": \"https://{{inputs.h}}/\"}", "bad_url");
    check_compile(eng, "{\"url\": \"ftp://127.0.0.1/\"}", "bad_url");
    check_compile(eng, "{\"url\": \"http://example.com/\"}", "bad_url");
    check_compile(eng, "{\"url\": 5}", "bad_url");
    check_compile(eng, "{\"method\": \"GET\"}", "invalid_config");
    check_compile(eng, "null", "invalid_config");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"method\": \"GE T\"}", "invalid_config");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"verb\": \"GET\"}", "invalid_config");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"headers\": {\"Bad Name\": \"x\"}}",
                  "bad_header");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"headers\": {\"X\": \"a\\r\\nB: c\"}}",
                  "bad_header");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"headers\": {\"Content-Length\": \"1\"}}",
                  "bad_header");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"headers\": {\"X\": [1]}}", "bad_header");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"headers\": []}", "invalid_config");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"ok_status\": [200, 201, 204]}",
                  "invalid_config");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"ok_status\": [299, 200]}",
                  "invalid_config");
    check_compile(eng, "{\"url\": \"http://127.0.0.1/\", \"ok_status\": 1000}", "invalid_config");
    rf_engine_free(eng);
}

/* --- responses -------------------------------------------------------------------------------- */

static void test_outputs(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;

    (void)state;
    srv_start(&s);
    eng = engine(2, NULL);
    ex = run(eng, doc1("/json", NULL, NULL), s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    rf_node_info ni = node(ex, 0);
    assert_int_equal(ni.attempts, 1);
    assert_json_eq(json_object_get(ni.output, "status"), "200");
    assert_json_eq(json_object_get(ni.output, "body"), "{\"a\":1,\"b\":[true,null],\"s\":\"x\"}");
    assert_json_eq(json_object_get(json_object_get(ni.output, "headers"), "content-length"),
                   "\"31\"");
    rf_exec_release(ex);

    ex = run(eng, doc1("/text", NULL, NULL), s.port);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "\"hello world\"");
    rf_exec_release(ex);

    ex = run(eng, doc1("/chunked", NULL, NULL), s.port);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "{\"n\":42,\"s\":\"chnk\"}");
    rf_exec_release(ex);

    ex = run(eng, doc1("/close", NULL, NULL), s.port);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "\"until the end\"");
    rf_exec_release(ex);

    ex = run(eng, doc1("/head", ", \"method\": \"HEAD\"", NULL), s.port);
    assert_json_eq(node(ex, 0).output, "{\"status\": 200, \"body\": \"\", \"headers\":"
                                       " {\"content-type\": \"text/plain\","
                                       " \"content-length\": \"5\"}}");
    rf_exec_release(ex);

    ex = run(eng, doc1("/interim", NULL, NULL), s.port);
    assert_json_eq(node(ex, 0).output, "{\"status\": 200, \"body\": \"ok\","
                                       " \"headers\": {\"content-length\": \"2\"}}");
    rf_exec_release(ex);

    ex = run(eng, doc1("/headers", NULL, NULL), s.port);
    assert_json_eq(node(ex, 0).output, "{\"status\": 201, \"body\": \"\", \"headers\":"
                                       " {\"x-rep\": \"a, b\", \"x-latin\": \"caf\\u00e9\","
                                       " \"content-length\": \"0\"}}");
    rf_exec_release(ex);

    ex = run(eng, doc1("/empty-json", NULL, NULL), s.port);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "null");
    rf_exec_release(ex);

    /* a 404 accepted by ok_status */
    ex = run(eng, doc1("/missing", ", \"ok_status\": [[200, 299], [404, 404]]", NULL), s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    assert_json_eq(json_object_get(node(ex, 0).output, "status"), "404");
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "\"no such thing\"");
    rf_exec_release(ex);
    engine_done(eng);
    srv_stop(&s);
}

static void test_templates(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;
    rf_plan *p;
    char doc[1024];

    (void)state;
    srv_start(&s);
    eng = engine(2, NULL);
    snprintf(
        doc, sizeof(doc), "%s",
        "{\"name\": \"t\", \"nodes\": [{\"id\": \"e\", \"kind\": \"http\", \"config\": {"
        "\"method\": \"POST\", \"url\": \"http://127.0.0.1:{{inputs.port}}/echo?id={{inputs.id}}\","
        "\"headers\": {\"X-Id\": \"{{inputs.id}}\", \"X-Port\": \"{{inputs.port}}\"},"
        "\"body\": {\"id\": \"{{inputs.id}}\", \"n\": 5}}},"
        "{\"id\": \"s\", \"kind\": \"http\", \"config\": {\"method\": \"PATCH\","
        "\"url\": \"http://localhost:{{inputs.port}}/echo\","
        "\"body\": \"id={{nodes.e.output.body.headers.x-id}}\"}}]}");
    p = plan_of(eng, doc);
    assert_int_equal(
        rf_submit(eng, p, json_pack("{s:i, s:s}", "port", s.port, "id", "abc"), NULL, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    const json_t *echo = json_object_get(node(ex, 0).output, "body");
    char host[64];
    snprintf(host, sizeof(host), "\"127.0.0.1:%u\"", s.port);
    assert_json_eq(json_object_get(echo, "method"), "\"POST\"");
    assert_json_eq(json_object_get(echo, "target"), "\"/echo?id=abc\"");
    assert_json_eq(json_object_get(echo, "body"), "\"{\\\"id\\\":\\\"abc\\\",\\\"n\\\":5}\"");
    const json_t *h = json_object_get(echo, "headers");
    assert_json_eq(json_object_get(h, "host"), host);
    assert_json_eq(json_object_get(h, "x-id"), "\"abc\"");
    assert_json_eq(json_object_get(h, "content-type"), "\"application/json\"");
    assert_json_eq(json_object_get(h, "content-length"), "\"18\"");
    assert_json_eq(json_object_get(h, "connection"), "\"keep-alive\"");
    assert_json_eq(json_object_get(h, "user-agent"), "\"" RF_HTTP_USER_AGENT "\"");
    char port[16];
    snprintf(port, sizeof(port), "\"%u\"", s.port);
    assert_json_eq(json_object_get(h, "x-port"), port);
    echo = json_object_get(node(ex, 1).output, "body");
    assert_json_eq(json_object_get(echo, "method"), "\"PATCH\"");
    assert_json_eq(json_object_get(echo, "body"), "\"id=abc\"");
    snprintf(host, sizeof(host), "\"localhost:%u\"", s.port);
    assert_json_eq(json_object_get(json_object_get(echo, "headers"), "host"), host);
    assert_json_eq(json_object_get(json_object_get(echo, "headers"), "content-type"),
                   "\"text/plain; charset=utf-8\"");
    rf_exec_release(ex);
    rf_plan_release(p);

    /* a url that resolves to https fails at run time, not retried */
    p = plan_of(eng, "{\"name\": \"u\", \"nodes\": [{\"id\": \"n\", \"kind\": \"http\","
                     " \"config\": {\"url\": \"{{inputs.u}}\"}" RETRY3 "}]}");
    assert_int_equal(rf_submit(eng, p, json_pack("{s:s}", "u", "https://127.0.0.1/"), NULL, &ex),
                     0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    assert_failed(ex, 0, "bad_url", 1, "https");
    rf_exec_release(ex);
    rf_plan_release(p);
    /* a header value that resolves to CR LF */
    p = plan_of(eng, "{\"name\": \"v\", \"nodes\": [{\"id\": \"n\", \"kind\": \"http\","
                     " \"config\": {\"url\": \"http://127.0.0.1:1/\", \"headers\": {\"X\":"
                     " \"{{inputs.u}}\"}}" RETRY3 "}]}");
    assert_int_equal(rf_submit(eng, p, json_pack("{s:s}", "u", "a\r\nInjected: 1"), NULL, &ex), 0);
    assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
    assert_failed(ex, 0, "bad_header", 1, NULL);
    rf_exec_release(ex);
    rf_plan_release(p);
    engine_done(eng);
    srv_stop(&s);
}

static void test_ipv6(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;

    (void)state;
    if (!srv_start_family(&s, AF_INET6, false))
        skip(); /* no IPv6 loopback here */
    eng = engine(1, NULL);
    ex = run(eng,
             "{\"name\": \"h\", \"nodes\": [{\"id\": \"n\", \"kind\": \"http\", \"config\": "
             "{\"url\": \"http://[::1]:{{inputs.port}}/text\"}}]}",
             s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "\"hello world\"");
    rf_exec_release(ex);
    engine_done(eng);
    srv_stop(&s);
}

/* --- errors and retries ----------------------------------------------------------------------- */

static void test_errors(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;

    (void)state;
    srv_start(&s);
    eng = engine(2, &(rf_config){.http_response_bytes_max = 65536});

    ex = run(eng, doc1("/flaky", NULL, RETRY3), s.port); /* 500, then 200 */
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    assert_int_equal(node(ex, 0).attempts, 2);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"), "{\"ok\": true}");
    rf_exec_release(ex);
    atomic_store(&s.flaky, 0);
    ex = run(eng, doc1("/flaky", NULL, NULL), s.port);
    assert_failed(ex, 0, "http_status", 1, "status 500 X: try again");
    rf_exec_release(ex);

    ex = run(eng, doc1("/missing", NULL, RETRY3), s.port); /* final */
    assert_failed(ex, 0, "http_status", 1, "status 404");
    rf_exec_release(ex);
    ex = run(eng, doc1("/busy", NULL, RETRY3), s.port); /* 429: retryable */
    assert_failed(ex, 0, "http_status", 3, "status 429");
    rf_exec_release(ex);

    ex = run(eng, doc1("/big", NULL, RETRY3), s.port);
    assert_failed(ex, 0, "response_too_large", 1, "http_response_bytes_max");
    rf_exec_release(ex);
    ex = run(eng, doc1("/bigchunked", NULL, RETRY3), s.port);
    assert_failed(ex, 0, "response_too_large", 1, "http_response_bytes_max");
    rf_exec_release(ex);

    ex = run(eng, doc1("/badjson", NULL, RETRY3), s.port);
    assert_failed(ex, 0, "bad_json", 1, "application/problem+json");
    rf_exec_release(ex);
    ex = run(eng, doc1("/binary", NULL, RETRY3), s.port);
    assert_failed(ex, 0, "bad_body", 1, "UTF-8");
    rf_exec_release(ex);
    ex = run(eng, doc1("/garbage", NULL, RETRY3), s.port);
    assert_failed(ex, 0, "bad_response", 1, NULL);
    rf_exec_release(ex);

    ex = run(eng, doc1("/x", NULL, ", \"retry\": {\"max_attempts\": 2, \"backoff_ms\": 5}"),
             dead_port());
    assert_failed(ex, 0, "connect_failed", 2, "connect");
    rf_exec_release(ex);
    engine_done(eng);
    srv_stop(&s);
}

static void test_timeouts(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;
    uint64_t t0;

    (void)state;
    srv_start(&s);
    eng = engine(2, &(rf_config){.http_timeout_ms = 300});
    t0 = now_ms();
    ex = run(eng, doc1("/slow", NULL, ", \"retry\": {\"max_attempts\": 2, \"backoff_ms\": 5}"),
             s.port);
    assert_failed(ex, 0, "timeout", 2, "http_timeout_ms");
    assert_true(now_ms() - t0 < 5000);
    rf_exec_release(ex);
    engine_done(eng);

    /* the node's own timeout_ms, shorter than http_timeout_ms */
    eng = engine(2, NULL);
    t0 = now_ms();
    ex = run(eng, doc1("/slow", NULL, ", \"timeout_ms\": 200"), s.port);
    assert_failed(ex, 0, "timeout", 1, NULL);
    assert_true(now_ms() - t0 < 5000);
    rf_exec_release(ex);
    engine_done(eng);
    /* every timed-out attempt closed its connection */
    t0 = now_ms();
    while (atomic_load(&s.slow_eof) < 3 && now_ms() - t0 < WAIT_MS)
        usleep(1000);
    assert_int_equal(atomic_load(&s.slow_eof), 3);
    srv_stop(&s);
}

static void test_cancel(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;
    uint64_t t0;

    (void)state;
    srv_start(&s);
    eng = engine(2, NULL);
    ex = submit(eng, doc1("/slow", NULL, RETRY3), s.port);
    t0 = now_ms();
    while (atomic_load(&s.slow_in) == 0 && now_ms() - t0 < WAIT_MS)
        usleep(1000);
    assert_int_equal(atomic_load(&s.slow_in), 1);
    t0 = now_ms();
    assert_int_equal(rf_exec_cancel(ex), 0);
    assert_int_equal(rf_exec_wait(ex, 2000), 0);
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(rf_exec_status(ex), RF_ST_CANCELED);
    assert_int_equal(node(ex, 0).status, RF_ST_CANCELED);
    assert_int_equal(node(ex, 0).attempts, 1);
    rf_exec_release(ex);
    /* the canceled request's socket was closed */
    t0 = now_ms();
    while (atomic_load(&s.slow_eof) == 0 && now_ms() - t0 < WAIT_MS)
        usleep(1000);
    assert_int_equal(atomic_load(&s.slow_eof), 1);

    /* stopping the engine cancels a running request too */
    ex = submit(eng, doc1("/slow", NULL, NULL), s.port);
    t0 = now_ms();
    while (atomic_load(&s.slow_in) < 2 && now_ms() - t0 < WAIT_MS)
        usleep(1000);
    assert_int_equal(rf_engine_stop(eng, 0), 0);
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(rf_exec_status(ex), RF_ST_CANCELED);
    rf_exec_release(ex);
    rf_engine_free(eng);
    srv_stop(&s);
}

/* --- connection reuse ------------------------------------------------------------------------- */

#define CHAIN3                                                                                     \
    "{\"name\": \"c\", \"nodes\": ["                                                               \
    "{\"id\": \"a\", \"kind\": \"http\", \"config\": {\"url\":"                                    \
    " \"http://127.0.0.1:{{inputs.port}}/json\"}},"                                                \
    "{\"id\": \"b\", \"kind\": \"http\", \"deps\": [\"a\"], \"config\": {\"url\":"                 \
    " \"http://127.0.0.1:{{inputs.port}}/text\"}},"                                                \
    "{\"id\": \"c\", \"kind\": \"http\", \"deps\": [\"b\"], \"config\": {\"url\":"                 \
    " \"http://127.0.0.1:{{inputs.port}}/chunked\"}}]}"

static struct rf_http_stats stats(rf_engine *eng, uint32_t shard)
{
    struct rf_http_stats hs;

    assert_int_equal(rf__http_stats(eng, shard, &hs), 0);
    return hs;
}

static void test_keep_alive(void **state)
{
    struct rf_http_stats hs;
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;

    (void)state;
    srv_start(&s);
    eng = engine(1, NULL);
    ex = run(eng, CHAIN3, s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    rf_exec_release(ex);
    ex = run(eng, CHAIN3, s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    rf_exec_release(ex);
    assert_int_equal(atomic_load(&s.requests), 6);
    assert_int_equal(atomic_load(&s.conns), 1); /* one connection for all six */
    hs = stats(eng, 0);
    assert_int_equal(hs.connects, 1);
    assert_int_equal(hs.reuses, 5);
    assert_int_equal(hs.idle, 1);
    /* a close-delimited response is never pooled: the next request opens a new one */
    ex = run(eng, doc1("/close", NULL, NULL), s.port);
    rf_exec_release(ex);
    assert_int_equal(stats(eng, 0).idle, 0);
    ex = run(eng, doc1("/close", NULL, NULL), s.port);
    rf_exec_release(ex);
    hs = stats(eng, 0);
    assert_int_equal(hs.connects, 2);
    assert_int_equal(hs.reuses, 6);
    assert_int_equal(hs.stale_retries, 0);
    assert_int_equal(atomic_load(&s.conns), 2);
    engine_done(eng);
    srv_stop(&s);

    /* idle_conns_max 1: two parallel requests, then one connection kept */
    srv_start(&s);
    eng = engine(1, &(rf_config){.http_idle_conns_max = 1});
    ex = run(eng,
             "{\"name\": \"p\", \"nodes\": ["
             "{\"id\": \"a\", \"kind\": \"http\", \"config\": {\"url\":"
             " \"http://127.0.0.1:{{inputs.port}}/json\"}},"
             "{\"id\": \"b\", \"kind\": \"http\", \"config\": {\"url\":"
             " \"http://127.0.0.1:{{inputs.port}}/json\"}}]}",
             s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    rf_exec_release(ex);
    assert_int_equal(atomic_load(&s.conns), 2);
    assert_int_equal(stats(eng, 0).idle, 1);
    ex = run(eng, CHAIN3, s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    rf_exec_release(ex);
    assert_int_equal(atomic_load(&s.conns), 2);
    assert_int_equal(stats(eng, 0).reuses, 3);
    engine_done(eng);
    srv_stop(&s);
}

static void test_stale(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;

    (void)state;
    /* answers with keep-alive, then closes: every reuse is stale */
    assert_true(srv_start_family(&s, AF_INET, true));
    eng = engine(1, NULL);
    ex = run(eng, CHAIN3, s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(node(ex, i).attempts, 1);
    assert_json_eq(json_object_get(node(ex, 2).output, "body"), "{\"n\":42,\"s\":\"chnk\"}");
    rf_exec_release(ex);
    assert_int_equal(atomic_load(&s.conns), 3);
    assert_int_equal(atomic_load(&s.requests), 3);
    assert_int_equal(stats(eng, 0).stale_retries, 2);
    assert_int_equal(stats(eng, 0).connects, 3);
    engine_done(eng);
    srv_stop(&s);
}

/* The socket(2) fallback for kernels without IORING_OP_SOCKET. */
static void test_socket_syscall(void **state)
{
    rf_config cfg = {.shards = 1, .no_pin_threads = true};
    struct srv s;
    rf_engine *eng = NULL;
    rf_exec *ex;

    (void)state;
    assert_int_equal(rf_engine_new(&cfg, &eng), 0);
    assert_int_equal(rf__http_use_socket_syscall(eng), 0);
    assert_int_equal(rf_engine_start(eng), 0);
    assert_true(srv_start_family(&s, AF_INET, true));
    ex = run(eng, CHAIN3, s.port);
    assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
    assert_json_eq(json_object_get(node(ex, 0).output, "body"),
                   "{\"a\":1,\"b\":[true,null],\"s\":\"x\"}");
    rf_exec_release(ex);
    assert_int_equal(stats(eng, 0).connects, 3);
    assert_int_equal(stats(eng, 0).stale_retries, 2);
    ex = run(eng, doc1("/x", NULL, NULL), dead_port());
    assert_failed(ex, 0, "connect_failed", 1, "refused");
    rf_exec_release(ex);
    engine_done(eng);
    srv_stop(&s);
}

/* Many requests at once over two shards: every one answered, connections bounded. */
static void test_parallel(void **state)
{
    struct srv s;
    rf_engine *eng;
    rf_exec *ex;

    (void)state;
    srv_start(&s);
    eng = engine(2, NULL);
    for (int round = 0; round < 3; round++) {
        rf_plan *p = plan_of(eng, "{\"name\": \"m\", \"nodes\": [{\"id\": \"m\", \"kind\":"
                                  " \"http\", \"map\": \"{{inputs.xs}}\", \"max_parallel\": 8,"
                                  " \"config\": {\"url\": \"http://127.0.0.1:{{inputs.port}}"
                                  "/echo?i={{item}}\"}}]}");
        json_t *xs = json_array();
        for (int i = 0; i < 40; i++)
            json_array_append_new(xs, json_integer(i));
        assert_int_equal(
            rf_submit(eng, p, json_pack("{s:i, s:o}", "port", s.port, "xs", xs), NULL, &ex), 0);
        assert_int_equal(rf_exec_wait(ex, WAIT_MS), 0);
        assert_int_equal(rf_exec_status(ex), RF_ST_SUCCEEDED);
        const json_t *out = node(ex, 0).output;
        assert_int_equal(json_array_size(out), 40);
        for (int i = 0; i < 40; i++) {
            char want[32];
            snprintf(want, sizeof(want), "\"/echo?i=%d\"", i);
            assert_json_eq(
                json_object_get(json_object_get(json_array_get(out, (size_t)i), "body"), "target"),
                want);
        }
        rf_exec_release(ex);
        rf_plan_release(p);
    }
    assert_int_equal(atomic_load(&s.requests), 120);
    assert_true(atomic_load(&s.conns) <= 16); /* 8 lanes, reused across rounds */
    engine_done(eng);
    srv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse), cmocka_unit_test(test_request_build),
        cmocka_unit_test(test_validate),  cmocka_unit_test(test_outputs),
        cmocka_unit_test(test_templates), cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_cancel),    cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_stale),     cmocka_unit_test(test_socket_syscall),
        cmocka_unit_test(test_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
