/*
 * tests/net/test_http1.c: the HTTP/1.1 request-head parser and the chunked body decoder
 * (net/http1.c), driven the way net/server.c drives them: raw bytes in, slices out.
 *
 * Every input is copied so that it ends exactly at a PROT_NONE guard page (one mapping
 * for the whole run, the bytes memcpy'd against its end), so a read past buf + len faults
 * at once, as in picohttpparser's tests; a first test proves the guard does fault.
 *
 * Heads are checked whole and prefix by prefix: every proper prefix of a valid head must
 * give -2, every prefix of a bad one -2 or the same error, and a longer buffer (the next
 * pipelined request) the same length. Each smuggling and syntax rule of RFC 9112 the
 * parser enforces has its own input and exact status, each limit is tried exactly at the
 * limit, one byte over, and on a partial head (the "early" 414/431). Chunked bodies are
 * decoded at once, in place, split in two at every byte, and byte by byte, and all four
 * must give the same data, the same bytes consumed and the same status.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/http1.h"

#define GUARD_DATA_BYTES (64u * 1024u) /* largest input a test places at the guard */
#define HDRS_CAP         256u
#define OUT_BYTES_MAX    (64u * 1024u)

static char *g_region, *g_end;
static size_t g_region_bytes;
static struct rf_http_header g_hdrs[HDRS_CAP];

/* --- guard page ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (GUARD_DATA_BYTES + page - 1) / page * page;

    (void)state;
    g_region_bytes = data + page;
    g_region =
        mmap(NULL, g_region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_region == MAP_FAILED)
        return -1;
    if (mprotect(g_region + data, page, PROT_NONE) != 0)
        return -1;
    g_end = g_region + data;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    munmap(g_region, g_region_bytes);
    return 0;
}

/* Copy s[0..n) so that it ends right before the guard page; the copy is writable and
 * valid until the next call. */
static char *at_guard(const void *s, size_t n)
{
    assert_true(n <= GUARD_DATA_BYTES);
    memmove(g_end - n, s, n);
    return g_end - n;
}

static void test_guard_page_faults(void **state)
{
    pid_t pid;
    int wst;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);

        dup2(fd, 2); /* ASan reports the SEGV on stderr; keep the log clean */
        /* cmocka's handler (inherited) would report a failed test from the child. */
        signal(SIGSEGV, SIG_DFL);
        volatile char c = *(volatile char *)g_end;
        (void)c;
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    /* Killed by SIGSEGV, or (under ASan) exited non-zero after reporting it. */
    assert_true((WIFSIGNALED(wst) && WTERMSIG(wst) == SIGSEGV) ||
                (WIFEXITED(wst) && WEXITSTATUS(wst) != 0));
}

/* --- head helpers -------------------------------------------------------------------------- */

static int parse_n(const char *s, size_t n, const struct rf_http_limits *lim,
                   struct rf_http_req *req, int *status)
{
    const char *b = at_guard(s, n);

    *status = 0;
    return rf_http_parse_request(b, n, lim, req, g_hdrs, HDRS_CAP, status);
}

static void print_input(const char *s, size_t n)
{
    char buf[512];
    size_t o = 0;

    for (size_t i = 0; i < n && o + 5 < sizeof(buf); i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c < 0x7f && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    print_error("input: \"%s\"\n", buf);
}

/* Parse s whole, then every prefix: a prefix shorter than a complete head gives -2 (or
 * the whole's error), a longer one the whole's result. Leaves *req from the whole parse
 * (its slices valid until the next parse). Returns the whole's rc, *status its status. */
static int parse_checked(const char *s, size_t n, const struct rf_http_limits *lim,
                         struct rf_http_req *req, int *status)
{
    struct rf_http_req tmp;
    int rc_full, st_full, rc, st;

    rc_full = parse_n(s, n, lim, &tmp, &st_full);
    for (size_t k = 0; k < n; k++) {
        rc = parse_n(s, k, lim, &tmp, &st);
        if (rc_full > 0 && k >= (size_t)rc_full) {
            if (rc != rc_full)
                print_input(s, k);
            assert_int_equal(rc, rc_full);
        } else if (rc != -2 && !(rc == -1 && rc_full == -1 && st == st_full)) {
            print_error("prefix %zu: rc %d status %d; whole: rc %d status %d\n", k, rc, st, rc_full,
                        st_full);
            print_input(s, k);
            fail();
        }
    }
    rc = parse_n(s, n, lim, req, status);
    assert_int_equal(rc, rc_full);
    if (rc == -1)
        assert_int_equal(*status, st_full);
    return rc;
}

static void expect_status_lim(const char *s, size_t n, const struct rf_http_limits *lim, int want)
{
    struct rf_http_req req;
    int st, rc = parse_checked(s, n, lim, &req, &st);

    if (rc != -1 || st != want) {
        print_error("rc %d status %d, want -1 status %d\n", rc, st, want);
        print_input(s, n);
        fail();
    }
}

static void expect_status(const char *s, int want)
{
    expect_status_lim(s, strlen(s), NULL, want);
}

/* A complete head: returns its length (== strlen(s)) with *req filled. */
static void expect_ok(const char *s, struct rf_http_req *req)
{
    int st = 0, rc = parse_checked(s, strlen(s), NULL, req, &st);

    if (rc != (int)strlen(s)) {
        print_error("rc %d status %d, want %zu\n", rc, st, strlen(s));
        print_input(s, strlen(s));
        fail();
    }
}

static bool slice_is(struct rf_slice v, const char *lit)
{
    return v.n == strlen(lit) && memcmp(v.p, lit, v.n) == 0;
}

#define assert_slice(v, lit)                                                                       \
    do {                                                                                           \
        if (!slice_is((v), (lit))) {                                                               \
            print_error("slice \"%.*s\" != \"%s\"\n", (int)(v).n, (v).p, (lit));                   \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* --- valid requests ------------------------------------------------------------------------ */

static void test_get(void **state)
{
    const char *s = "GET /v1/graphs/x?limit=5&after=a%20b HTTP/1.1\r\n"
                    "Host: example.com:8080\r\n"
                    "User-Agent:   curl/8.0 \t \r\n"
                    "Accept: */*\r\n"
                    "X-Empty:\r\n"
                    "X-Tab: a\tb\r\n"
                    "x-multi: 1\r\n"
                    "X-Multi: 2\r\n"
                    "X-Obs: caf\xc3\xa9\r\n"
                    "\r\n";
    struct rf_http_req req;
    const struct rf_http_header *h;
    uint32_t from = 0;

    (void)state;
    expect_ok(s, &req);
    assert_int_equal(req.method, RF_HTTP_GET);
    assert_slice(req.method_s, "GET");
    assert_slice(req.target, "/v1/graphs/x?limit=5&after=a%20b");
    assert_slice(req.path, "/v1/graphs/x");
    assert_slice(req.query, "limit=5&after=a%20b");
    assert_int_equal(req.authority.n, 0);
    assert_int_equal(req.minor, 1);
    assert_int_equal(req.nheaders, 8);
    assert_ptr_equal(req.headers, g_hdrs);
    assert_int_equal(req.content_length, -1);
    assert_false(req.chunked);
    assert_true(req.keep_alive);
    assert_false(req.conn_upgrade);
    assert_false(req.expect_continue);
    assert_slice(req.host, "example.com:8080");
    assert_int_equal(req.head_bytes, strlen(s));
    assert_slice(req.headers[1].name, "User-Agent");
    assert_slice(req.headers[1].value, "curl/8.0");
    assert_slice(req.headers[3].value, "");
    assert_slice(req.headers[4].value, "a\tb");
    assert_slice(req.headers[7].value, "caf\xc3\xa9");
    h = rf_http_header_get(&req, "user-agent");
    assert_non_null(h);
    assert_ptr_equal(h, &req.headers[1]);
    assert_null(rf_http_header_get(&req, "user-agen"));
    assert_null(rf_http_header_get(&req, "Content-Length"));
    h = rf_http_header_next(&req, "X-MULTI", &from);
    assert_non_null(h);
    assert_slice(h->value, "1");
    assert_int_equal(from, 6);
    h = rf_http_header_next(&req, "x-multi", &from);
    assert_non_null(h);
    assert_slice(h->value, "2");
    assert_int_equal(from, 7);
    assert_null(rf_http_header_next(&req, "x-multi", &from));
    assert_int_equal(from, 7);
    /* every slice lies inside the buffer */
    for (uint32_t i = 0; i < req.nheaders; i++) {
        assert_true(req.headers[i].name.p >= g_end - strlen(s));
        assert_true(req.headers[i].value.p + req.headers[i].value.n <= g_end);
    }
}

static void test_post_head_methods(void **state)
{
    static const struct {
        const char *m;
        enum rf_http_method e;
    } methods[] = {
        {"GET", RF_HTTP_GET},     {"HEAD", RF_HTTP_HEAD},      {"POST", RF_HTTP_POST},
        {"PUT", RF_HTTP_PUT},     {"DELETE", RF_HTTP_DELETE},  {"OPTIONS", RF_HTTP_OPTIONS},
        {"PATCH", RF_HTTP_PATCH}, {"PROPFIND", RF_HTTP_OTHER}, {"get", RF_HTTP_OTHER},
        {"GETS", RF_HTTP_OTHER},  {"M-SEARCH", RF_HTTP_OTHER}, {"!#$%&'*+-.^_`|~", RF_HTTP_OTHER},
    };
    struct rf_http_req req;
    char buf[256];

    (void)state;
    expect_ok("POST /v1/executions HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
              "Content-Length: 0013\r\n\r\n",
              &req);
    assert_int_equal(req.method, RF_HTTP_POST);
    assert_int_equal(req.content_length, 13);
    assert_false(req.chunked);
    expect_ok("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_int_equal(req.method, RF_HTTP_HEAD);
    assert_slice(req.path, "/");
    assert_int_equal(req.query.n, 0);
    expect_ok("GET /? HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/");
    assert_int_equal(req.query.n, 0);
    expect_ok("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/a");
    assert_slice(req.query, "b?c");
    expect_ok("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999999999\r\n\r\n", &req);
    assert_int_equal(req.content_length, 999999999999999LL);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        snprintf(buf, sizeof(buf), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", methods[i].m);
        expect_ok(buf, &req);
        assert_int_equal(req.method, methods[i].e);
        assert_slice(req.method_s, methods[i].m);
    }
}

static void test_connection_and_versions(void **state)
{
    struct rf_http_req req;

    (void)state;
    expect_ok("GET / HTTP/1.0\r\n\r\n", &req);
    assert_int_equal(req.minor, 0);
    assert_false(req.keep_alive);
    assert_null(req.host.p); /* absent */
    assert_int_equal(req.host.n, 0);
    expect_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req);
    assert_true(req.keep_alive);
    expect_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", &req);
    assert_false(req.keep_alive);
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &req);
    assert_false(req.keep_alive);
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, keep-alive\r\n\r\n", &req);
    assert_true(req.keep_alive);
    expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
              "Upgrade: websocket\r\n\r\n",
              &req);
    assert_true(req.keep_alive);
    assert_true(req.conn_upgrade);
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
              &req);
    assert_true(req.expect_continue);
    /* HTTP/1.0 ignores a 100-continue expectation (RFC 9110 §10.1.1). */
    expect_ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &req);
    assert_false(req.expect_continue);
    /* Empty Host is allowed (a URI without authority), and so is an IPv6 literal. */
    expect_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n", &req);
    assert_non_null(req.host.p); /* present, empty */
    assert_int_equal(req.host.n, 0);
    expect_ok("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &req);
    assert_slice(req.host, "[::1]:80");
}

static void test_target_forms(void **state)
{
    struct rf_http_req req;

    (void)state;
    expect_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.target, "*");
    assert_slice(req.path, "*");
    assert_int_equal(req.query.n, 0);
    expect_ok("GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n", &req);
    assert_slice(req.path, "/a/b");
    assert_slice(req.query, "c=d");
    assert_slice(req.authority, "example.com");
    assert_slice(req.host, "example.com");
    expect_ok("GET HTTPS://example.com:8443 HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    assert_slice(req.path, "/");
    assert_int_equal(req.query.n, 0);
    assert_slice(req.host, "example.com:8443");
    expect_ok("GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/");
    assert_slice(req.query, "x=1");
    expect_ok("GET /a%20b/'!$&()*+,;=:@-._~ HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    assert_slice(req.path, "/a%20b/'!$&()*+,;=:@-._~");
}

static void test_pipelined(void **state)
{
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                    "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\n\r\n"
                    "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy"
                    "\r\nGET /d HTTP/1.0\r\n\r\n"
                    "GET /e HT";
    size_t n = strlen(s), off = 0, dl;
    char *b = at_guard(s, n), out[64];
    struct rf_http_req req;
    struct rf_http_chunked d;
    int rc, st;

    (void)state;
    rc = rf_http_parse_request(b, n, NULL, &req, g_hdrs, HDRS_CAP, &st);
    assert_int_equal(rc, 28);
    assert_slice(req.path, "/a");
    off += (size_t)rc;
    rc = rf_http_parse_request(b + off, n - off, NULL, &req, g_hdrs, HDRS_CAP, &st);
    assert_true(rc > 0);
    assert_slice(req.path, "/b");
    assert_true(req.chunked);
    off += (size_t)rc;
    rf_http_chunked_init(&d, 100, NULL);
    rc = rf_http_chunked_decode(&d, out, b + off, n - off, &dl, &st);
    assert_int_equal(rc, (int)strlen("3\r\nabc\r\n0\r\n\r\n"));
    assert_int_equal(dl, 3);
    assert_memory_equal(out, "abc", 3);
    off += (size_t)rc;
    rc = rf_http_parse_request(b + off, n - off, NULL, &req, g_hdrs, HDRS_CAP, &st);
    assert_true(rc > 0);
    assert_slice(req.path, "/c");
    assert_int_equal(req.content_length, 2);
    off += (size_t)rc + 2;
    /* one leading CRLF (left by a client after a body) is skipped */
    rc = rf_http_parse_request(b + off, n - off, NULL, &req, g_hdrs, HDRS_CAP, &st);
    assert_int_equal(rc, (int)strlen("\r\nGET /d HTTP/1.0\r\n\r\n"));
    assert_slice(req.path, "/d");
    assert_false(req.keep_alive);
    off += (size_t)rc;
    rc = rf_http_parse_request(b + off, n - off, NULL, &req, g_hdrs, HDRS_CAP, &st);
    assert_int_equal(rc, -2);
}

static void test_leading_crlf(void **state)
{
    struct rf_http_req req;
    int st;

    (void)state;
    assert_int_equal(parse_checked("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 29, NULL, &req, &st),
                     29);
    assert_int_equal(
        parse_checked("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 31, NULL, &req, &st), 31);
    assert_slice(req.method_s, "GET");
    expect_status("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_status("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    assert_int_equal(parse_n("", 0, NULL, &req, &st), -2);
    assert_int_equal(parse_n("\r", 1, NULL, &req, &st), -2);
    assert_int_equal(parse_n("\r\n\r\n", 4, NULL, &req, &st), -2);
}

/* --- errors, each with its exact status ------------------------------------------------------ */

struct bad_case {
    const char *in;
    int status;
};

static const struct bad_case g_bad[] = {
    /* request line */
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400},
    {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET /\tHTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"G\x80T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET / http/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/1.1x\r\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/11\r\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\rHost: h\r\n\r\n", 400},
    {"GET /\r\n\r\n", 400},
    {"GET\r\n\r\n", 400},
    {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
    {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505},
    {"GET / HTTP/9.9\r\n\r\n", 505},
    /* request-target */
    {"GET a HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 400},
    /* field syntax */
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\nY: b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\rx", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX\t: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX(y): a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nX\x80: a\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nX-Host: h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
    {"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400},
    {"GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", 400},
    /* Content-Length */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000000000\r\n\r\n", 400},
    /* Transfer-Encoding */
    {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
     "\r\n",
     400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked x\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunk\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip;q=1, chunked\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
     "\r\n",
     501},
    {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501},
    /* Expect */
    {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n", 417},
    {"POST / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n", 417},
    {"POST / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n", 417},
    {"POST / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n", 417},
    /* precedence: 400s before 501 before 417 */
    {"POST / HTTP/1.1\r\nExpect: foo\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"GET / HTTP/1.2\r\nHost: a\r\nHost: b\r\n\r\n", 505},
};

static void test_bad_heads(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(g_bad) / sizeof(g_bad[0]); i++)
        expect_status(g_bad[i].in, g_bad[i].status);
}

static void test_nul_bytes(void **state)
{
    static const char a[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
    static const char b[] = "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char c[] = "GET / HTTP/1.1\r\nHo\0st: h\r\n\r\n";
    static const char d[] = "\0GET / HTTP/1.1\r\nHost: h\r\n\r\n";

    (void)state;
    expect_status_lim(a, sizeof(a) - 1, NULL, 400);
    expect_status_lim(b, sizeof(b) - 1, NULL, 400);
    expect_status_lim(c, sizeof(c) - 1, NULL, 400);
    expect_status_lim(d, sizeof(d) - 1, NULL, 400);
}

static void test_transfer_encoding_ok(void **state)
{
    struct rf_http_req req;

    (void)state;
    expect_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", &req);
    assert_true(req.chunked);
    assert_int_equal(req.content_length, -1);
    expect_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n", &req);
    assert_true(req.chunked);
}

/* --- limits --------------------------------------------------------------------------------- */

/* "GET /aaa... HTTP/1.1\r\n" of exactly line_bytes bytes into buf. */
static size_t request_line(char *buf, size_t line_bytes)
{
    assert_true(line_bytes >= 16);
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', line_bytes - 16);
    memcpy(buf + line_bytes - 11, " HTTP/1.1\r\n", 11);
    return line_bytes;
}

static void test_line_limit(void **state)
{
    struct rf_http_limits lim = {.line_bytes_max = 100, .header_bytes_max = 300, .headers_max = 5};
    static char buf[GUARD_DATA_BYTES];
    struct rf_http_req req;
    size_t n;
    int st;

    (void)state;
    n = request_line(buf, 100);
    memcpy(buf + n, "Host: h\r\n\r\n", 11);
    assert_int_equal(parse_checked(buf, n + 11, &lim, &req, &st), (int)n + 11);
    assert_int_equal(req.target.n, 100 - 15);
    n = request_line(buf, 101);
    memcpy(buf + n, "Host: h\r\n\r\n", 11);
    expect_status_lim(buf, n + 11, &lim, 414);
    /* early: 100 bytes of a line not yet complete */
    assert_int_equal(parse_n(buf, 99, &lim, &req, &st), -2);
    assert_int_equal(parse_n(buf, 100, &lim, &req, &st), -1);
    assert_int_equal(st, 414);
    /* leading CRLFs do not count */
    buf[0] = '\r';
    buf[1] = '\n';
    n = request_line(buf + 2, 100);
    memcpy(buf + 2 + n, "Host: h\r\n\r\n", 11);
    assert_int_equal(parse_checked(buf, n + 13, &lim, &req, &st), (int)n + 13);
    /* the defaults: 8192 exactly passes, 8193 is 414 */
    n = request_line(buf, 8192);
    memcpy(buf + n, "Host: h\r\n\r\n", 11);
    assert_int_equal(parse_n(buf, n + 11, NULL, &req, &st), (int)n + 11);
    n = request_line(buf, 8193);
    memcpy(buf + n, "Host: h\r\n\r\n", 11);
    assert_int_equal(parse_n(buf, n + 11, NULL, &req, &st), -1);
    assert_int_equal(st, 414);
    assert_int_equal(parse_n(buf, 8192, NULL, &req, &st), -1);
    assert_int_equal(st, 414);
    assert_int_equal(parse_n(buf, 8191, NULL, &req, &st), -2);
}

/* A head of exactly head_bytes bytes: a request line, Host, and one padding field. */
static size_t head_of(char *buf, size_t head_bytes)
{
    size_t n = request_line(buf, 20);

    memcpy(buf + n, "Host: h\r\nX: ", 12);
    n += 12;
    assert_true(head_bytes >= n + 4);
    memset(buf + n, 'v', head_bytes - n - 4);
    memcpy(buf + head_bytes - 4, "\r\n\r\n", 4);
    return head_bytes;
}

static void test_head_limit(void **state)
{
    struct rf_http_limits lim = {.line_bytes_max = 100, .header_bytes_max = 300, .headers_max = 5};
    static char buf[GUARD_DATA_BYTES];
    struct rf_http_req req;
    size_t n;
    int st;

    (void)state;
    n = head_of(buf, 300);
    assert_int_equal(parse_checked(buf, n, &lim, &req, &st), 300);
    assert_int_equal(req.nheaders, 2);
    n = head_of(buf, 301);
    expect_status_lim(buf, n, &lim, 431);
    /* early: 300 bytes of a head not yet complete (the last byte is the final CR) */
    assert_int_equal(parse_n(buf, 299, &lim, &req, &st), -2);
    assert_int_equal(parse_n(buf, 300, &lim, &req, &st), -1);
    assert_int_equal(st, 431);
    /* the line limit and the head limit at once: the smaller one rules */
    lim.header_bytes_max = 50;
    n = request_line(buf, 60);
    assert_int_equal(parse_n(buf, n, &lim, &req, &st), -1);
    assert_int_equal(st, 431);
    /* the defaults: 16384 exactly passes, 16385 is 431 */
    n = head_of(buf, 16384);
    assert_int_equal(parse_n(buf, n, NULL, &req, &st), 16384);
    n = head_of(buf, 16385);
    assert_int_equal(parse_n(buf, n, NULL, &req, &st), -1);
    assert_int_equal(st, 431);
    assert_int_equal(parse_n(buf, 16384, NULL, &req, &st), -1);
    assert_int_equal(parse_n(buf, 16383, NULL, &req, &st), -2);
}

static void test_field_count_limit(void **state)
{
    struct rf_http_limits lim = {.line_bytes_max = 100, .header_bytes_max = 300, .headers_max = 5};
    char buf[512];
    struct rf_http_req req;
    int st, n;

    (void)state;
    n = snprintf(buf, sizeof(buf),
                 "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    assert_int_equal(parse_checked(buf, (size_t)n, &lim, &req, &st), n);
    assert_int_equal(req.nheaders, 5);
    n = snprintf(buf, sizeof(buf),
                 "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    expect_status_lim(buf, (size_t)n, &lim, 431);
    /* reported as soon as the sixth field line starts */
    assert_int_equal(parse_n(buf, 49, &lim, &req, &st), -2);
    assert_int_equal(parse_n(buf, 50, &lim, &req, &st), -1);
    assert_int_equal(st, 431);
    /* a smaller caller array lowers the limit */
    n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n\r\n");
    assert_int_equal(
        rf_http_parse_request(at_guard(buf, (size_t)n), (size_t)n, &lim, &req, g_hdrs, 1, &st), -1);
    assert_int_equal(st, 431);
}

/* --- byte-at-a-time ------------------------------------------------------------------------- */

static void test_byte_at_a_time(void **state)
{
    const char *s = "\r\nPUT /v1/graphs/g?x=%41 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n"
                    "Connection: keep-alive\r\nX-Long: 0123456789abcdef0123456789abcdef\t\t\r\n"
                    "\r\nBODY...";
    size_t n = strlen(s), head = n - 7;
    char *b;
    struct rf_http_req req;
    int st, rc;

    (void)state;
    /* Feed a growing buffer one byte at a time, as a trickling peer would. */
    for (size_t k = 0; k <= n; k++) {
        b = at_guard(s, k);
        rc = rf_http_parse_request(b, k, NULL, &req, g_hdrs, HDRS_CAP, &st);
        if (k < head) {
            assert_int_equal(rc, -2);
        } else {
            assert_int_equal(rc, (int)head);
            assert_slice(req.query, "x=%41");
            assert_int_equal(req.content_length, 7);
            assert_slice(req.headers[3].value, "0123456789abcdef0123456789abcdef");
        }
    }
}

static void test_header_helpers(void **state)
{
    struct rf_slice v = {"a, Keep-Alive ,\t,close\t", 23};
    struct rf_slice e = {NULL, 0};

    (void)state;
    assert_true(rf_http_has_token(v, "a"));
    assert_true(rf_http_has_token(v, "keep-alive"));
    assert_true(rf_http_has_token(v, "CLOSE"));
    assert_false(rf_http_has_token(v, "clos"));
    assert_false(rf_http_has_token(v, "keep"));
    assert_false(rf_http_has_token(v, ""));
    assert_false(rf_http_has_token(e, "a"));
    assert_true(rf_http_slice_ieq((struct rf_slice){"HoSt", 4}, "host"));
    assert_false(rf_http_slice_ieq((struct rf_slice){"Hos", 3}, "host"));
}

/* --- chunked bodies ------------------------------------------------------------------------- */

struct dec {
    int rc;          /* -2, -1 or 1 (complete) */
    int status;      /* when -1 */
    size_t consumed; /* src bytes consumed when complete */
    size_t data_len;
    char data[OUT_BYTES_MAX];
};

/* Decode s[0..n) fed in pieces ending at cuts[] (the last piece ends at n), in place or
 * into a separate buffer. */
static void decode_pieces(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                          uint64_t body_max, const struct rf_http_limits *lim, bool in_place,
                          struct dec *r)
{
    static char sep[OUT_BYTES_MAX];
    char *buf = at_guard(s, n), *dst = in_place ? buf : sep;
    struct rf_http_chunked d;
    size_t from = 0, dl;
    int rc = -2, st = 0;

    rf_http_chunked_init(&d, body_max, lim);
    memset(r, 0, offsetof(struct dec, data));
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : n;

        assert_true(to >= from);
        rc = rf_http_chunked_decode(&d, dst + r->data_len, buf + from, to - from, &dl, &st);
        assert_true(dl <= to - from);
        r->data_len += dl;
        if (rc == -2) {
            from = to;
            continue;
        }
        if (rc > 0) {
            assert_true((size_t)rc <= to - from);
            from += (size_t)rc;
        }
        break;
    }
    r->rc = rc > 0 ? 1 : rc;
    r->status = rc == -1 ? st : 0;
    r->consumed = rc > 0 ? from : 0;
    memcpy(r->data, dst, r->data_len);
    if (rc == -1) { /* the failure sticks */
        assert_int_equal(rf_http_chunked_decode(&d, dst, buf, n, &dl, &st), -1);
        assert_int_equal(st, r->status);
        assert_int_equal(dl, 0);
    }
}

static void same_dec(const struct dec *a, const struct dec *b, const char *how, size_t k)
{
    if (a->rc != b->rc || a->status != b->status || a->consumed != b->consumed ||
        a->data_len != b->data_len || memcmp(a->data, b->data, a->data_len) != 0) {
        print_error("%s %zu: rc %d/%d status %d/%d consumed %zu/%zu data %zu/%zu\n", how, k, a->rc,
                    b->rc, a->status, b->status, a->consumed, b->consumed, a->data_len,
                    b->data_len);
        fail();
    }
}

/* Decode at once (in place and not), split in two at every point, and byte by byte:
 * every way must agree. Returns the one-shot result in *r. */
static void decode_all_ways(const char *s, size_t n, uint64_t body_max,
                            const struct rf_http_limits *lim, struct dec *r)
{
    static struct dec other;
    static size_t cuts[OUT_BYTES_MAX];

    decode_pieces(s, n, NULL, 0, body_max, lim, false, r);
    decode_pieces(s, n, NULL, 0, body_max, lim, true, &other);
    same_dec(r, &other, "in place", 0);
    for (size_t k = 0; k <= n; k++) {
        decode_pieces(s, n, &k, 1, body_max, lim, k & 1, &other);
        same_dec(r, &other, "split at", k);
    }
    assert_true(n <= OUT_BYTES_MAX);
    for (size_t k = 0; k < n; k++)
        cuts[k] = k;
    decode_pieces(s, n, cuts, n, body_max, lim, true, &other);
    same_dec(r, &other, "byte by byte", 0);
}

/* body is a complete chunked body, rest the next request's bytes after it. */
static void chunk_ok(const char *body, const char *rest, const char *data)
{
    static struct dec r;
    static char s[OUT_BYTES_MAX];
    size_t n = (size_t)snprintf(s, sizeof(s), "%s%s", body, rest);

    decode_all_ways(s, n, UINT64_MAX, NULL, &r);
    if (r.rc != 1) {
        print_error("rc %d status %d\n", r.rc, r.status);
        print_input(s, n);
        fail();
    }
    assert_int_equal(r.consumed, strlen(body));
    assert_int_equal(r.data_len, strlen(data));
    assert_memory_equal(r.data, data, r.data_len);
}

static void chunk_bad_lim(const char *s, uint64_t body_max, const struct rf_http_limits *lim,
                          int status)
{
    static struct dec r;

    decode_all_ways(s, strlen(s), body_max, lim, &r);
    if (r.rc != -1 || r.status != status) {
        print_error("rc %d status %d, want status %d\n", r.rc, r.status, status);
        print_input(s, strlen(s));
        fail();
    }
}

static void chunk_bad(const char *s, int status)
{
    chunk_bad_lim(s, UINT64_MAX, NULL, status);
}

static void test_chunked_valid(void **state)
{
    (void)state;
    chunk_ok("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "GET / HTTP/1.1\r\n", "hello world");
    chunk_ok("0\r\n\r\n", "", "");
    chunk_ok("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "\r\n", "0123456789abcdefghij");
    chunk_ok("000000000000000a\r\n0123456789\r\n00\r\n\r\n", "", "0123456789");
    chunk_ok("1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "0\r\n\r\n", "\r\n");
    /* extensions */
    chunk_ok("3;name=value\r\nabc\r\n0;last\r\n\r\n", "", "abc");
    chunk_ok("3 ; a = b ;c;d=\"q\\\"x;y\" ; e\r\nabc\r\n0\r\n\r\n", "", "abc");
    chunk_ok("3;a=\"\"\r\nabc\r\n0\r\n\r\n", "", "abc");
    chunk_ok("3;a=\"\t\x80\\\x80\"\r\nabc\r\n0\r\n\r\n", "", "abc");
    /* trailers, syntax-checked and dropped */
    chunk_ok("3\r\nabc\r\n0\r\nX-Sum: 1 2\t3\r\nX-Empty:\r\nX-Obs: \xff\r\n\r\n", "next", "abc");
}

static void test_chunked_errors(void **state)
{
    (void)state;
    chunk_bad("\r\n", 400);
    chunk_bad("-5\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("+5\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad(" 5\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("0x5\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("g\r\n", 400);
    chunk_bad("00000000000000000\r\n\r\n", 400); /* 17 digits, even as zeros */
    chunk_bad("10000000000000000\r\n", 400);     /* 17 digits: would overflow */
    chunk_bad("5\nhello\r\n0\r\n\r\n", 400);     /* bare LF */
    chunk_bad("5\rhello\r\n0\r\n\r\n", 400);     /* bare CR */
    chunk_bad("5\r\nhelloX\r\n0\r\n\r\n", 400);  /* data longer than its size */
    chunk_bad("5\r\nhello\n0\r\n\r\n", 400);
    chunk_bad("5\r\nhello\r0\r\n\r\n", 400);
    chunk_bad("0\r\n\n", 400);
    chunk_bad("0\r\n\rx", 400);
    chunk_bad("5 \r\nhello\r\n0\r\n\r\n", 400); /* BWS only before ';' */
    chunk_bad("5;\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;=x\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;a=\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;a=b \r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;a b\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;a=\"x\r\nhello\r\n0\r\n\r\n", 400); /* CR inside a quoted string */
    chunk_bad("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;a=(\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("5;a\x01\r\nhello\r\n0\r\n\r\n", 400);
    chunk_bad("0\r\n X: a\r\n\r\n", 400); /* trailer obs-fold */
    chunk_bad("0\r\nX: a\r\n b\r\n\r\n", 400);
    chunk_bad("0\r\nX : a\r\n\r\n", 400);
    chunk_bad("0\r\nNoColon\r\n\r\n", 400);
    chunk_bad("0\r\nX: a\x7f\r\n\r\n", 400);
    chunk_bad("0\r\nX: a\nY: b\r\n\r\n", 400);
    chunk_bad("0\r\nX: a\rb\r\n\r\n", 400);
    chunk_bad("0\r\n:a\r\n\r\n", 400);
}

static void test_chunked_limits(void **state)
{
    struct rf_http_limits lim = {.line_bytes_max = 100, .header_bytes_max = 20, .headers_max = 2};
    static char buf[4096];
    static struct dec r;
    size_t n;

    (void)state;
    /* body_bytes_max: exactly at it passes, one over is 413 */
    decode_all_ways("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 25, 10, NULL, &r);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.data_len, 10);
    chunk_bad_lim("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 10, NULL, 413);
    /* 413 as soon as the size is announced: no data, no CRLF needed */
    chunk_bad_lim("5\r\nhello\r\n6", 10, NULL, 413);
    chunk_bad_lim("FFFFFFFFFFFFFFFF", UINT64_MAX - 1, NULL, 413);
    chunk_bad_lim("1\r\nx\r\nFFFFFFFFFFFFFFFF\r\n", UINT64_MAX, NULL, 413);
    chunk_bad_lim("1\r\n", 0, NULL, 413);
    decode_all_ways("0\r\n\r\n", 5, 0, NULL, &r);
    assert_int_equal(r.rc, 1);
    decode_all_ways("FFFFFFFFFFFFFFFF", 16, UINT64_MAX, NULL, &r);
    assert_int_equal(r.rc, -2); /* 16 digits of all ones fit */
    /* extension bytes (after the digits, up to the CR): 1024 pass, 1025 are 400 */
    n = (size_t)snprintf(buf, sizeof(buf), "1;");
    memset(buf + n, 'e', 1023);
    n += 1023;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\nx\r\n0\r\n\r\n");
    decode_all_ways(buf, n, UINT64_MAX, NULL, &r);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.consumed, n);
    n = (size_t)snprintf(buf, sizeof(buf), "1;");
    memset(buf + n, 'e', 1024);
    n += 1024;
    snprintf(buf + n, sizeof(buf) - n, "\r\nx\r\n0\r\n\r\n");
    chunk_bad_lim(buf, UINT64_MAX, NULL, 400);
    /* trailer section (after the last chunk's line, final CRLF included): 20 bytes */
    decode_all_ways("0\r\nAbcdefgh: 123456\r\n\r\n", 23, UINT64_MAX, &lim, &r);
    assert_int_equal(r.rc, 1);
    chunk_bad_lim("0\r\nAbcdefgh: 1234567\r\n\r\n", UINT64_MAX, &lim, 400);
    decode_all_ways("0\r\nA: 1\r\nB: 2\r\n\r\n", 17, UINT64_MAX, &lim, &r);
    assert_int_equal(r.rc, 1);
    chunk_bad_lim("0\r\nA:\r\nB:\r\nC:\r\n\r\n", UINT64_MAX, &lim, 400);
}

static void test_chunked_partial(void **state)
{
    const char *s = "4\r\nwiki\r\n5\r\npedia\r\n";
    char *b = at_guard(s, strlen(s));
    struct rf_http_chunked d;
    size_t dl;
    int st;

    (void)state;
    rf_http_chunked_init(&d, 1000, NULL);
    assert_int_equal(rf_http_chunked_decode(&d, b, b, 0, &dl, &st), -2);
    assert_int_equal(dl, 0);
    assert_int_equal(rf_http_chunked_decode(&d, b, b, strlen(s), &dl, &st), -2);
    assert_int_equal(dl, 9);
    assert_memory_equal(b, "wikipedia", 9);
    b = at_guard("0\r\n\r\nrest", 9);
    assert_int_equal(rf_http_chunked_decode(&d, b, b, 9, &dl, &st), 5);
    assert_int_equal(dl, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_page_faults), cmocka_unit_test(test_get),
        cmocka_unit_test(test_post_head_methods), cmocka_unit_test(test_connection_and_versions),
        cmocka_unit_test(test_target_forms),      cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_leading_crlf),      cmocka_unit_test(test_bad_heads),
        cmocka_unit_test(test_nul_bytes),         cmocka_unit_test(test_transfer_encoding_ok),
        cmocka_unit_test(test_line_limit),        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_field_count_limit), cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_header_helpers),    cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_errors),    cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_partial),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
