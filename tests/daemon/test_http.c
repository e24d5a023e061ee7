/*
 * tests/daemon/test_http.c: ringflowd's HTTP/1.1 layer, end to end, over real sockets.
 *
 * Three groups. "framing" shares one daemon (default limits) and sends requests whose
 * framing is broken or ambiguous (request smuggling vectors: Content-Length with
 * Transfer-Encoding, bad codings, bad lengths, obs-fold, bare CR/LF, NUL, Host rules,
 * bad chunk sizes and extensions, HTTP/2.0) and requests past the size limits: each must
 * be answered with its status AND the connection closed, because after broken framing the
 * server cannot know where the next request starts. "semantics" shares another daemon and
 * checks what a well-formed connection gets: pipelining in order, HEAD, 100-continue,
 * chunked bodies, Connection: close, HTTP/1.0, and the 4xx answers of the API layer.
 * "limits" starts one daemon per test with the flag under test (--header-timeout,
 * --idle-timeout, --conns-per-shard-max, --out-queue-max) through setup/teardown, so the
 * daemon is stopped even when an assertion fails.
 *
 * Every wait has a deadline (RESP_MS, CLOSE_MS), long enough for the ASan daemon. The
 * daemon's exit status and its log's sanitizer reports are checked in every teardown
 * (rfd_stop), so a crash or a leak fails the group that caused it.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/support/daemon.h"

#define RESP_MS        5000 /* one response, generous for the ASan daemon */
#define CLOSE_MS       3000 /* the server closes after an error response */
#define PIPELINED      20
#define HDR_BYTES      128
#define BODY_MAX_BYTES (1u << 20) /* the daemon's default --body-max */
#define RSS_MAX_KIB    (300L * 1024)
#define FLOOD_BYTES_MAX (256u << 20)
#define FLOOD_MS       15000
#define STALL_MS       500 /* no send progress this long: the server stopped reading */

static struct rfd shared; /* the daemon of the current shared group */

/* --- helpers -------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int start_shared(void **state)
{
    (void)state;
    return rfd_start(&shared, RF_BUILD_DIR, NULL);
}

static int stop_shared(void **state)
{
    (void)state;
    return rfd_stop(&shared) == 0 ? 0 : -1;
}

static int conn(const struct rfd *d)
{
    int fd = rfd_connect(d);

    assert_true(fd >= 0);
    return fd;
}

/* Send raw bytes and read one response. */
static void roundtrip(int fd, const void *raw, size_t n, struct rfd_resp *r, bool head_only)
{
    assert_int_equal(rfd_send_all(fd, raw, n), 0);
    assert_int_equal(rfd_read_resp(fd, r, RESP_MS, head_only), 0);
}

/* The answer to a broken request: `status`, Connection: close, then the server closes. */
static void expect_error_close(int fd, int status)
{
    struct rfd_resp r;
    char v[HDR_BYTES];

    assert_int_equal(rfd_read_resp(fd, &r, RESP_MS, false), 0);
    if (r.status != status)
        fprintf(stderr, "expected %d, got:\n%s%s\n", status, r.head, r.body);
    assert_int_equal(r.status, status);
    assert_non_null(rfd_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    json_t *j = rfd_json(&r);
    assert_non_null(json_object_get(json_object_get(j, "error"), "code"));
    json_decref(j);
    rfd_resp_free(&r);
    assert_true(rfd_wait_closed(fd, CLOSE_MS));
}

static void expect_healthy(const struct rfd *d)
{
    struct rfd_resp r;

    assert_int_equal(rfd_request(d, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
}

static json_t *json_of(const struct rfd_resp *r)
{
    json_t *j = rfd_json(r);

    if (!j)
        fprintf(stderr, "not JSON: %s\n", r->body);
    assert_non_null(j);
    return j;
}

/* --- framing: broken or ambiguous requests are answered and the connection closed ------- */

#define POST_HEAD                                                                          \
    "POST /v1/graphs/chain3/executions HTTP/1.1\r\nHost: 127.0.0.1\r\n"                    \
    "Content-Type: application/json\r\n"
#define CHUNKED_HEAD POST_HEAD "Transfer-Encoding: chunked\r\n\r\n"

struct framing_case {
    const char *name;
    const char *raw; /* sent in one write */
    size_t len;
    const char *body; /* NULL, or sent STEP_MS later in a second write */
    int status;
};

#define STEP_MS 50
#define CASE(n, lit, st)        {n, lit, sizeof(lit) - 1, NULL, st}
#define CASE2(n, lit, b, st)    {n, lit, sizeof(lit) - 1, b, st}

static const char ext_body[] = "2;name="
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "\r\n{}\r\n0\r\n\r\n";

static const struct framing_case framing_cases[] = {
    CASE("cl_with_te", POST_HEAD "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "0\r\n\r\n",
         400),
    CASE("te_with_cl", POST_HEAD "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                                 "0\r\n\r\n",
         400),
    CASE("te_chunked_not_last", POST_HEAD "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
         400),
    /* RFC 9112 §6.3: chunked not the final coding of a request -> 400 and close. */
    CASE("te_gzip_alone", POST_HEAD "Transfer-Encoding: gzip\r\n\r\n", 400),
    /* chunked last but an unknown coding before it: 501 (net/http1.h), still closed. */
    CASE("te_gzip_then_chunked", POST_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
         501),
    CASE("te_chunked_twice", POST_HEAD "Transfer-Encoding: chunked\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400),
    CASE("te_in_http10", "POST /v1/graphs/chain3/executions HTTP/1.0\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400),
    CASE("cl_plus_sign", POST_HEAD "Content-Length: +5\r\n\r\n{}   ", 400),
    CASE("cl_hex", POST_HEAD "Content-Length: 0x5\r\n\r\n{}   ", 400),
    CASE("cl_list", POST_HEAD "Content-Length: 5, 6\r\n\r\n{}   ", 400),
    CASE("cl_list_same", POST_HEAD "Content-Length: 2, 2\r\n\r\n{}", 400),
    CASE("cl_twice", POST_HEAD "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
    CASE("cl_empty", POST_HEAD "Content-Length: \r\n\r\n{}", 400),
    CASE("cl_space_inside", POST_HEAD "Content-Length: 1 0\r\n\r\n{}", 400),
    CASE("cl_negative", POST_HEAD "Content-Length: -1\r\n\r\n{}", 400),
    CASE("cl_16_digits", POST_HEAD "Content-Length: 1000000000000000\r\n\r\n{}", 400),
    CASE("space_before_colon", "GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 400),
    CASE("space_before_colon_cl", POST_HEAD "Content-Length : 2\r\n\r\n{}", 400),
    CASE("obs_fold", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n", 400),
    CASE("bare_cr", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n", 400),
    CASE("bare_lf", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\nX-A: a\r\n\r\n", 400),
    CASE("bare_lf_end", "GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", 400),
    CASE("nul_in_value", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\n\r\n", 400),
    CASE("nul_in_name", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX\0A: b\r\n\r\n", 400),
    CASE("missing_host", "GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    CASE("repeated_host", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    CASE("two_spaces_in_line", "GET  /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    CASE("http2_line", "GET /healthz HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    CASE("http09_garbage", "GET /healthz HTTX/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    CASE("expect_other", POST_HEAD "Expect: something\r\nContent-Length: 2\r\n\r\n{}", 417),
    /* Chunk errors: the head first, the broken chunk stream STEP_MS later. */
    CASE2("chunk_size_17_hex", CHUNKED_HEAD, "00000000000000001\r\nx\r\n0\r\n\r\n", 400),
    CASE2("chunk_size_negative", CHUNKED_HEAD, "-1\r\nx\r\n0\r\n\r\n", 400),
    CASE2("chunk_size_signed", CHUNKED_HEAD, "+2\r\n{}\r\n0\r\n\r\n", 400),
    CASE2("chunk_size_empty", CHUNKED_HEAD, "\r\n{}\r\n0\r\n\r\n", 400),
    CASE2("chunk_ext_over_1024", CHUNKED_HEAD, ext_body, 400),
    CASE2("chunk_data_too_long", CHUNKED_HEAD, "2\r\n{}}\r\n0\r\n\r\n", 400),
    CASE2("chunk_bare_lf", CHUNKED_HEAD, "2\n{}\r\n0\r\n\r\n", 400),
    CASE2("chunk_size_over_limit", CHUNKED_HEAD, "200000\r\n", 413),
};

static void test_framing(void **state)
{
    const struct framing_case *c = *state;
    int fd = conn(&shared);

    assert_int_equal(rfd_send_all(fd, c->raw, c->len), 0);
    if (c->body) {
        sleep_ms(STEP_MS);
        /* The server may already have answered and closed: a failed send is fine. */
        (void)rfd_send_str(fd, c->body);
    }
    expect_error_close(fd, c->status);
    rfd_close(fd);
}

/* The daemon survived every broken request. */
static void test_framing_daemon_healthy(void **state)
{
    (void)state;
    expect_healthy(&shared);
}

/* A whole chunked request in one segment (head and body together) is answered without the
 * client sending anything more: valid -> 202, broken -> 400 and closed. */
static void test_chunked_in_one_segment(void **state)
{
    static const char ok[] = CHUNKED_HEAD "5\r\n{\"inp\r\n9\r\nuts\": {}}\r\n0\r\n\r\n";
    static const char bad[] = CHUNKED_HEAD "-1\r\nx\r\n0\r\n\r\n";
    struct rfd_resp r;
    int fd = conn(&shared);

    (void)state;
    roundtrip(fd, ok, sizeof(ok) - 1, &r, false);
    assert_int_equal(r.status, 202);
    rfd_resp_free(&r);
    rfd_close(fd);
    fd = conn(&shared);
    assert_int_equal(rfd_send_all(fd, bad, sizeof(bad) - 1), 0);
    expect_error_close(fd, 400);
    rfd_close(fd);
}

/* --- size limits (default flags) ---------------------------------------------------------- */

static char *repeat(char c, size_t n)
{
    char *p = malloc(n + 1);

    assert_non_null(p);
    memset(p, c, n);
    p[n] = 0;
    return p;
}

static void test_request_line_414(void **state)
{
    char *path = repeat('a', 9000), *req;
    int fd = conn(&shared);

    (void)state;
    assert_true(asprintf(&req, "GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path) > 0);
    assert_int_equal(rfd_send_str(fd, req), 0);
    expect_error_close(fd, 414);
    rfd_close(fd);
    free(req);
    free(path);
}

static void test_header_block_431(void **state)
{
    char *v = repeat('v', 17000), *req;
    int fd = conn(&shared);

    (void)state;
    assert_true(asprintf(&req, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n\r\n",
                         v) > 0);
    (void)rfd_send_str(fd, req); /* the 431 may come (and the close) before all is sent */
    expect_error_close(fd, 431);
    rfd_close(fd);
    free(req);
    free(v);
}

static void test_101_headers_431(void **state)
{
    char req[8192];
    size_t n = (size_t)snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    int fd = conn(&shared);

    (void)state;
    for (int i = 0; i < 100; i++) /* Host + 100 = 101 fields */
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    assert_true(n < sizeof(req));
    assert_int_equal(rfd_send_all(fd, req, n), 0);
    expect_error_close(fd, 431);
    rfd_close(fd);
}

/* 100 fields is still fine. */
static void test_100_headers_ok(void **state)
{
    char req[8192];
    size_t n = (size_t)snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    struct rfd_resp r;
    int fd = conn(&shared);

    (void)state;
    for (int i = 0; i < 99; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    roundtrip(fd, req, n, &r, false);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    rfd_close(fd);
}

/* The 413 comes from the declared length alone: the body is never sent. */
static void test_declared_body_413_before_body(void **state)
{
    static const char head[] = POST_HEAD "Content-Length: 2000000\r\n\r\n";
    int fd = conn(&shared);

    (void)state;
    assert_int_equal(rfd_send_str(fd, head), 0);
    expect_error_close(fd, 413);
    rfd_close(fd);
}

static void test_chunked_body_grows_413(void **state)
{
    const size_t chunk = 64u << 10;
    char *data = repeat(' ', chunk);
    char line[32];
    int fd = conn(&shared);

    (void)state;
    assert_int_equal(rfd_send_str(fd, CHUNKED_HEAD), 0);
    snprintf(line, sizeof(line), "%zx\r\n", chunk);
    /* Well-formed chunks up to the limit exactly: no answer yet. */
    for (size_t sent = 0; sent < BODY_MAX_BYTES; sent += chunk) {
        assert_int_equal(rfd_send_str(fd, line), 0);
        assert_int_equal(rfd_send_all(fd, data, chunk), 0);
        assert_int_equal(rfd_send_str(fd, "\r\n"), 0);
    }
    /* One more chunk-size line announces a body past the limit: 413 and close, answered
     * from the digits alone, before any of that chunk's data was sent. */
    assert_int_equal(rfd_send_str(fd, "1\r\n"), 0);
    expect_error_close(fd, 413);
    rfd_close(fd);
    free(data);
}

/* --- semantics of well-formed connections ---------------------------------------------------- */

/* 20 requests of mixed routes in one write; 20 responses in order, each recognised. */
static void test_pipelining_in_order(void **state)
{
    char *ids[PIPELINED] = {0}, *all = NULL, one[512];
    size_t len = 0;
    FILE *f = open_memstream(&all, &len);
    int fd = conn(&shared);

    (void)state;
    for (int i = 0; i < PIPELINED; i += 4) {
        char in[32];
        snprintf(in, sizeof(in), "{\"n\": %d}", i);
        ids[i] = rfd_submit(&shared, "chain3", in);
        assert_non_null(ids[i]);
    }
    for (int i = 0; i < PIPELINED; i++) {
        switch (i % 4) {
        case 0:
            fprintf(f, "GET /v1/executions/%s HTTP/1.1\r\nHost: h\r\n\r\n", ids[i]);
            break;
        case 1:
            fprintf(f, "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Seq: %d\r\n\r\n", i);
            break;
        case 2:
            snprintf(one, sizeof(one), "{\"inputs\": {\"n\": %d}}", 1000 + i);
            fprintf(f,
                    "POST /v1/graphs/chain3/executions HTTP/1.1\r\nHost: h\r\n"
                    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                    strlen(one), one);
            break;
        default:
            fprintf(f, "GET /v1/graphs/%s HTTP/1.1\r\nHost: h\r\n\r\n",
                    i % 8 == 3 ? "slow" : "wide");
        }
    }
    fclose(f);
    assert_int_equal(rfd_send_all(fd, all, len), 0);
    for (int i = 0; i < PIPELINED; i++) {
        struct rfd_resp r;
        assert_int_equal(rfd_read_resp(fd, &r, RESP_MS, false), 0);
        json_t *j = json_of(&r);
        switch (i % 4) {
        case 0:
            assert_int_equal(r.status, 200);
            assert_string_equal(json_string_value(json_object_get(j, "id")), ids[i]);
            break;
        case 1:
            assert_int_equal(r.status, 200);
            assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
            break;
        case 2:
            assert_int_equal(r.status, 202);
            assert_string_equal(json_string_value(json_object_get(j, "graph")), "chain3");
            assert_string_equal(json_string_value(json_object_get(j, "status")), "queued");
            break;
        default:
            assert_int_equal(r.status, 200);
            assert_string_equal(json_string_value(json_object_get(j, "name")),
                                i % 8 == 3 ? "slow" : "wide");
        }
        json_decref(j);
        rfd_resp_free(&r);
    }
    rfd_close(fd);
    free(all);
    for (int i = 0; i < PIPELINED; i++)
        free(ids[i]);
}

/* HEAD: the GET's headers (Content-Length of the GET body) and no body: the GET pipelined
 * right behind it must parse as the next response. */
static void test_head_has_no_body(void **state)
{
    static const char req[] = "HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
                              "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    struct rfd_resp head, get;
    char cl[HDR_BYTES], ct[HDR_BYTES];
    int fd = conn(&shared);

    (void)state;
    roundtrip(fd, req, sizeof(req) - 1, &head, true);
    assert_int_equal(head.status, 200);
    assert_int_equal(rfd_read_resp(fd, &get, RESP_MS, false), 0);
    assert_int_equal(get.status, 200);
    assert_non_null(rfd_header(&head, "Content-Length", cl, sizeof(cl)));
    assert_int_equal(strtoul(cl, NULL, 10), get.body_len);
    assert_true(get.body_len > 0);
    assert_non_null(rfd_header(&head, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    rfd_resp_free(&head);
    rfd_resp_free(&get);
    /* Nothing more is pending: a third response would be a stray body. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 200), 0);
    rfd_close(fd);
}

static void test_expect_100_continue(void **state)
{
    static const char body[] = "{\"inputs\": {\"n\": 7}}";
    char head[512];
    struct rfd_resp r;
    int fd = conn(&shared);

    (void)state;
    snprintf(head, sizeof(head),
             POST_HEAD "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n", sizeof(body) - 1);
    roundtrip(fd, head, strlen(head), &r, false);
    assert_int_equal(r.status, 100);
    assert_true(strncmp(r.head, "HTTP/1.1 100 Continue\r\n", 23) == 0);
    rfd_resp_free(&r);
    assert_int_equal(rfd_send_str(fd, body), 0);
    assert_int_equal(rfd_read_resp(fd, &r, RESP_MS, false), 0);
    assert_int_equal(r.status, 202);
    rfd_resp_free(&r);
    rfd_close(fd);
}

/* A chunked JSON body in several chunks, written in pieces with pauses, split mid-chunk. */
static void test_chunked_body_in_pieces(void **state)
{
    static const char *const pieces[] = {
        CHUNKED_HEAD, "9\r\n{\"inpu", "t", "s\"\r\n", "b;ext=1\r\n: {\"n\": 41", "}\r", "\n",
        "1\r\n}\r\n", "0\r\n", "\r\n",
    };
    struct rfd_resp r;
    char path[128];
    int fd = conn(&shared);

    (void)state;
    for (size_t i = 0; i < sizeof(pieces) / sizeof(*pieces); i++) {
        assert_int_equal(rfd_send_str(fd, pieces[i]), 0);
        sleep_ms(20);
    }
    assert_int_equal(rfd_read_resp(fd, &r, RESP_MS, false), 0);
    assert_int_equal(r.status, 202);
    json_t *j = json_of(&r);
    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=3000",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    rfd_resp_free(&r);
    rfd_close(fd);
    /* The decoded body is what was submitted: n = 41. */
    assert_int_equal(rfd_request(&shared, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    j = json_of(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "output"), "n")), 41);
    json_decref(j);
    rfd_resp_free(&r);
}

static void test_connection_close(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    struct rfd_resp r;
    char v[HDR_BYTES];
    int fd = conn(&shared);

    (void)state;
    roundtrip(fd, req, sizeof(req) - 1, &r, false);
    assert_int_equal(r.status, 200);
    assert_non_null(rfd_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    rfd_resp_free(&r);
    assert_true(rfd_wait_closed(fd, CLOSE_MS));
    rfd_close(fd);
}

static void test_http10_closes(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
    struct rfd_resp r;
    int fd = conn(&shared);

    (void)state;
    roundtrip(fd, req, sizeof(req) - 1, &r, false);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    assert_true(rfd_wait_closed(fd, CLOSE_MS));
    rfd_close(fd);
}

/* HTTP/1.0 with keep-alive stays open for a second request. */
static void test_http10_keep_alive(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    struct rfd_resp r;
    int fd = conn(&shared);

    (void)state;
    for (int i = 0; i < 2; i++) {
        roundtrip(fd, req, sizeof(req) - 1, &r, false);
        assert_int_equal(r.status, 200);
        rfd_resp_free(&r);
    }
    rfd_close(fd);
}

/* A 4xx of the API layer keeps the connection: the framing was fine. */
static void api_error(const char *raw, int status, const char *code, struct rfd_resp *r)
{
    static const char next[] = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    struct rfd_resp ok;
    int fd = conn(&shared);

    roundtrip(fd, raw, strlen(raw), r, false);
    if (r->status != status)
        fprintf(stderr, "expected %d, got:\n%s%s\n", status, r->head, r->body);
    assert_int_equal(r->status, status);
    json_t *j = json_of(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        code);
    json_decref(j);
    roundtrip(fd, next, sizeof(next) - 1, &ok, false);
    assert_int_equal(ok.status, 200);
    rfd_resp_free(&ok);
    rfd_close(fd);
}

static void test_404_unknown_path(void **state)
{
    struct rfd_resp r;

    (void)state;
    api_error("GET /no/such/thing HTTP/1.1\r\nHost: h\r\n\r\n", 404, "not_found", &r);
    rfd_resp_free(&r);
    api_error("GET /v1/executions/01m81y387tgmze88ce42c5bzgn HTTP/1.1\r\nHost: h\r\n\r\n", 404,
              "not_found", &r);
    rfd_resp_free(&r);
    api_error("GET /v1/graphs/no-such-graph HTTP/1.1\r\nHost: h\r\n\r\n", 404, "not_found", &r);
    rfd_resp_free(&r);
}

static void test_405_with_allow(void **state)
{
    struct rfd_resp r;
    char allow[HDR_BYTES];

    (void)state;
    api_error("DELETE /healthz HTTP/1.1\r\nHost: h\r\n\r\n", 405, "method_not_allowed", &r);
    assert_non_null(rfd_header(&r, "Allow", allow, sizeof(allow)));
    assert_non_null(strstr(allow, "GET"));
    assert_null(strstr(allow, "DELETE"));
    rfd_resp_free(&r);
    api_error("GET /v1/graphs/chain3/executions HTTP/1.1\r\nHost: h\r\n\r\n", 405,
              "method_not_allowed", &r);
    assert_non_null(rfd_header(&r, "Allow", allow, sizeof(allow)));
    assert_string_equal(allow, "POST");
    rfd_resp_free(&r);
}

static void test_415_text_plain(void **state)
{
    struct rfd_resp r;

    (void)state;
    api_error("PUT /v1/graphs/g415 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
              "Content-Length: 2\r\n\r\n{}",
              415, "unsupported_media_type", &r);
    rfd_resp_free(&r);
}

static void test_411_no_length(void **state)
{
    struct rfd_resp r;

    (void)state;
    api_error("PUT /v1/graphs/g411 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n\r\n",
              411, "length_required", &r);
    rfd_resp_free(&r);
}

static void test_400_malformed_json_names_position(void **state)
{
    struct rfd_resp r;

    (void)state;
    /* the comma on line 2, column 8 */
    api_error("PUT /v1/graphs/g400 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
              "Content-Length: 13\r\n\r\n{\n  \"a\": ,\n}\n",
              400, "malformed_json", &r);
    json_t *j = json_of(&r);
    const char *msg =
        json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "line 2"));
    assert_non_null(strstr(msg, "column 8"));
    json_decref(j);
    rfd_resp_free(&r);
}

/* --- limits with their own daemon ------------------------------------------------------------ */

static struct rfd own;

static int start_with(const char *const *extra)
{
    return rfd_start(&own, RF_BUILD_DIR, extra);
}

static int setup_header_timeout(void **state)
{
    static const char *const f[] = {"--header-timeout", "300ms", NULL};
    (void)state;
    return start_with(f);
}

static int setup_idle_timeout(void **state)
{
    static const char *const f[] = {"--idle-timeout", "300ms", NULL};
    (void)state;
    return start_with(f);
}

static int setup_conns_max(void **state)
{
    static const char *const f[] = {"--shards", "1", "--conns-per-shard-max", "2", NULL};
    (void)state;
    return start_with(f);
}

static int setup_out_queue(void **state)
{
    static const char *const f[] = {"--out-queue-max", "64KiB", NULL};
    (void)state;
    return start_with(f);
}

static int stop_own(void **state)
{
    (void)state;
    return rfd_stop(&own) == 0 ? 0 : -1;
}

/* Half a head, then silence: 408 after about 300 ms, then closed. */
static void test_header_timeout_408(void **state)
{
    int fd = conn(&own);
    int64_t t0 = now_ms();

    (void)state;
    assert_int_equal(rfd_send_str(fd, "GET /healthz HTTP/1.1\r\nHo"), 0);
    expect_error_close(fd, 408);
    int64_t dt = now_ms() - t0;
    assert_true(dt >= 250);
    assert_true(dt < 3000);
    rfd_close(fd);
    /* A head trickled in under the limit is fine. */
    struct rfd_resp r;
    fd = conn(&own);
    assert_int_equal(rfd_send_str(fd, "GET /healthz HTTP/1.1\r\n"), 0);
    sleep_ms(100);
    roundtrip(fd, "Host: h\r\n\r\n", 11, &r, false);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    rfd_close(fd);
}

/* An idle keep-alive connection is closed by the server after about 300 ms. */
static void test_idle_timeout_closes(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    struct rfd_resp r;
    int fd = conn(&own);

    (void)state;
    roundtrip(fd, req, sizeof(req) - 1, &r, false);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    int64_t t0 = now_ms();
    assert_true(rfd_wait_closed(fd, CLOSE_MS));
    int64_t dt = now_ms() - t0;
    assert_true(dt >= 200);
    rfd_close(fd);
    /* A connection that never sends anything is closed too. */
    fd = conn(&own);
    assert_true(rfd_wait_closed(fd, CLOSE_MS));
    rfd_close(fd);
}

/* A keep-alive connection that answers a request; retried while the start-up probes'
 * connections may still be counted. */
static int working_conn(const struct rfd *d)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    int64_t deadline = now_ms() + RESP_MS;

    while (now_ms() < deadline) {
        struct rfd_resp r;
        int fd = rfd_connect(d);
        if (fd >= 0 && rfd_send_str(fd, req) == 0 && rfd_read_resp(fd, &r, 1000, false) == 0) {
            bool ok = r.status == 200;
            rfd_resp_free(&r);
            if (ok)
                return fd;
        }
        rfd_close(fd);
        sleep_ms(50);
    }
    return -1;
}

static void test_conns_per_shard_max(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
    struct rfd_resp r;
    int a = working_conn(&own), b = working_conn(&own);

    (void)state;
    assert_true(a >= 0);
    assert_true(b >= 0);
    int c = conn(&own);
    assert_true(rfd_wait_closed(c, CLOSE_MS));
    rfd_close(c);
    for (int i = 0; i < 2; i++) {
        roundtrip(i ? b : a, req, sizeof(req) - 1, &r, false);
        assert_int_equal(r.status, 200);
        rfd_resp_free(&r);
    }
    rfd_close(a);
    rfd_close(b);
    /* Once they are gone, new connections work again. */
    a = working_conn(&own);
    assert_true(a >= 0);
    rfd_close(a);
}

/* Pipelined GET /metrics without ever reading: the server must stop reading (our sends
 * stall), stay responsive on other connections, and keep its memory bounded. */
static void test_out_queue_backpressure(void **state)
{
    static const char one[] = "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n";
    const size_t per = sizeof(one) - 1, batch = 1024;
    char *buf = malloc(per * batch);
    int fd = conn(&own);
    size_t sent = 0, off = 0;
    bool stalled = false;
    int64_t deadline = now_ms() + FLOOD_MS;
    long rss0 = rfd_rss_kib(&own);

    (void)state;
    assert_non_null(buf);
    assert_true(rss0 > 0);
    for (size_t i = 0; i < batch; i++)
        memcpy(buf + i * per, one, per);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (sent < FLOOD_BYTES_MAX && now_ms() < deadline) {
        ssize_t w = send(fd, buf + off, per * batch - off, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            off = (off + (size_t)w) % (per * batch);
            continue;
        }
        assert_true(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, STALL_MS) == 0) {
            stalled = true;
            break;
        }
    }
    fprintf(stderr, "flood: %zu bytes of requests sent, stalled=%d\n", sent, stalled);
    assert_true(stalled);
    /* Other connections are answered quickly meanwhile. */
    int64_t t0 = now_ms();
    expect_healthy(&own);
    assert_true(now_ms() - t0 < 2000);
    long rss = rfd_rss_kib(&own);
    fprintf(stderr, "daemon RSS: %ld KiB before, %ld KiB stalled\n", rss0, rss);
    assert_true(rss > 0 && rss < RSS_MAX_KIB);
    rfd_close(fd);
    free(buf);
    expect_healthy(&own);
}

/* --- main --------------------------------------------------------------------------------- */

int main(void)
{
    rfd_test_filter();
    enum { NF = sizeof(framing_cases) / sizeof(*framing_cases) };
    struct CMUnitTest framing[NF + 8];
    size_t n = 0;
    int fails = 0;

    for (size_t i = 0; i < NF; i++)
        framing[n++] = (struct CMUnitTest){framing_cases[i].name, test_framing, NULL, NULL,
                                           (void *)&framing_cases[i]};
    const struct CMUnitTest more[] = {
        cmocka_unit_test(test_chunked_in_one_segment),
        cmocka_unit_test(test_request_line_414),
        cmocka_unit_test(test_header_block_431),
        cmocka_unit_test(test_101_headers_431),
        cmocka_unit_test(test_100_headers_ok),
        cmocka_unit_test(test_declared_body_413_before_body),
        cmocka_unit_test(test_chunked_body_grows_413),
        cmocka_unit_test(test_framing_daemon_healthy),
    };
    for (size_t i = 0; i < sizeof(more) / sizeof(*more); i++)
        framing[n++] = more[i];
    fails += _cmocka_run_group_tests("framing", framing, n, start_shared, stop_shared);

    const struct CMUnitTest semantics[] = {
        cmocka_unit_test(test_pipelining_in_order),
        cmocka_unit_test(test_head_has_no_body),
        cmocka_unit_test(test_expect_100_continue),
        cmocka_unit_test(test_chunked_body_in_pieces),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_http10_closes),
        cmocka_unit_test(test_http10_keep_alive),
        cmocka_unit_test(test_404_unknown_path),
        cmocka_unit_test(test_405_with_allow),
        cmocka_unit_test(test_415_text_plain),
        cmocka_unit_test(test_411_no_length),
        cmocka_unit_test(test_400_malformed_json_names_position),
    };
    fails += cmocka_run_group_tests_name("semantics", semantics, start_shared, stop_shared);

    const struct CMUnitTest limits[] = {
        cmocka_unit_test_setup_teardown(test_header_timeout_408, setup_header_timeout, stop_own),
        cmocka_unit_test_setup_teardown(test_idle_timeout_closes, setup_idle_timeout, stop_own),
        cmocka_unit_test_setup_teardown(test_conns_per_shard_max, setup_conns_max, stop_own),
        cmocka_unit_test_setup_teardown(test_out_queue_backpressure, setup_out_queue, stop_own),
    };
    fails += cmocka_run_group_tests_name("limits", limits, NULL, NULL);
    return fails || rfd_failures() ? 1 : 0;
}
