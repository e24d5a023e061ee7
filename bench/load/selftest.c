/*
 * bench/load/selftest.c: `ringflow-load --self-test`, the checks of its pure parts.
 *
 * ringflow-load is a tool, not part of libringflow, so its parsers are checked by the
 * binary itself rather than by a cmocka test linked against the library. What is checked:
 *   - the histogram: the index mapping round-trips at every counter, every counter is
 *     narrower than 1/128 of its lower bound, percentiles of a known distribution land
 *     within that precision, merging equals recording everything in one histogram;
 *   - the response parser: a table of valid responses (Content-Length, chunked with
 *     extensions and trailers, 1xx, 204, HEAD, body-to-close, HTTP/1.0, pipelined) gives
 *     the same statuses, bodies and completion count whether fed whole (right before a
 *     guard page, so an over-read faults), split in two at every offset, or byte by
 *     byte; a table of broken responses is refused however it is split;
 *   - WebSocket: the RFC 6455 handshake example, frames of each length encoding, every
 *     strict refusal, and encode -> parse round trips;
 *   - the JSON member scanner, templates (Content-Length always matches the rendered
 *     body, placeholders vary, unknown braces stay literal) and URL parsing.
 * Each failed check prints its line; the exit status is 1 if any failed.
 */
#include "bench/load/load.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/load/http.h"
#include "bench/load/ws.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "self-test: %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* --- histogram ------------------------------------------------------------------------- */

static void test_hist(void)
{
    uint32_t top = rfl_hist_index(RFL_HIST_MAX_NS); /* counters above it stay unused */
    CHECK(top < RFL_HIST_COUNTERS);
    for (uint32_t i = 0; i <= top; i++) {
        CHECK(rfl_hist_index(rfl_hist_lowest(i)) == i);
        CHECK(i == top || rfl_hist_index(rfl_hist_highest(i)) == i);
        if (i + 1 < RFL_HIST_COUNTERS)
            CHECK(rfl_hist_highest(i) + 1 == rfl_hist_lowest(i + 1));
        uint64_t lo = rfl_hist_lowest(i), w = rfl_hist_highest(i) - lo;
        CHECK(lo < RFL_HIST_LINEAR ? w == 0 : w * 128 <= lo);
    }
    static struct rfl_hist a, b, all;
    rfl_hist_init(&a);
    rfl_hist_init(&b);
    rfl_hist_init(&all);
    for (uint64_t v = 1; v <= 100000; v++) { /* 1 us .. 100 ms, uniform */
        rfl_hist_record(v % 2 ? &a : &b, v * 1000);
        rfl_hist_record(&all, v * 1000);
    }
    rfl_hist_merge(&a, &b);
    CHECK(memcmp(a.counters, all.counters, sizeof(a.counters)) == 0);
    CHECK(a.count == 100000 && a.min_ns == 1000 && a.max_ns == 100000000);
    double want[] = {50000e3, 90000e3, 99000e3, 99900e3};
    double pct[] = {50, 90, 99, 99.9};
    for (int i = 0; i < 4; i++) {
        double got = (double)rfl_hist_percentile(&a, pct[i]);
        CHECK(got >= want[i] && got <= want[i] * (1 + 1.0 / 128));
    }
    CHECK(rfl_hist_percentile(&a, 100) == 100000000);
    CHECK(rfl_hist_mean(&a) > 50000.4e3 && rfl_hist_mean(&a) < 50000.6e3);
    rfl_hist_record(&b, 100 * RFL_HIST_MAX_NS);
    CHECK(b.clamped == 1 && b.max_ns == RFL_HIST_MAX_NS);
}

/* --- HTTP responses -------------------------------------------------------------------- */

struct resp_case {
    const char *in;
    bool no_body;
    bool eof;             /* feed EOF at the end */
    int done;             /* responses expected */
    const char *statuses; /* e.g. "200,204" */
    const char *body;     /* all bodies, concatenated */
};

struct resp_out {
    int done;
    char statuses[128];
    char body[256];
    size_t body_len;
    bool err;
};

/* Feed in[0..n) in pieces of `piece` bytes (0: at once) the way the engine does: bytes a
 * step did not consume are presented again with the next piece appended. */
static void feed(const uint8_t *in, size_t n, size_t piece, const struct resp_case *c,
                 struct resp_out *out)
{
    struct rfl_resp r;
    rfl_resp_init(&r);
    memset(out, 0, sizeof(*out));
    static uint8_t buf[4096];
    size_t have = 0, pos = 0;
    while (pos < n && !out->err) {
        size_t k = piece ? RFL_MIN(piece, n - pos) : n - pos;
        memcpy(buf + have, in + pos, k);
        have += k;
        pos += k;
        size_t off = 0;
        for (;;) {
            struct rfl_resp_head h;
            struct rfl_span b;
            size_t used;
            int ev = rfl_resp_step(&r, buf + off, have - off, c->no_body, &used, &h, &b);
            if (ev == RFL_RESP_ERR) {
                out->err = true;
                break;
            }
            off += used;
            if (ev == RFL_RESP_MORE)
                break;
            if (ev == RFL_RESP_HEAD) {
                size_t l = strlen(out->statuses);
                snprintf(out->statuses + l, sizeof(out->statuses) - l, "%s%u", l ? "," : "",
                         h.status);
            } else if (ev == RFL_RESP_BODY && out->body_len + b.n < sizeof(out->body)) {
                memcpy(out->body + out->body_len, b.p, b.n);
                out->body_len += b.n;
            } else if (ev == RFL_RESP_DONE) {
                out->done++;
            }
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    if (!out->err && c->eof && rfl_resp_eof(&r) == RFL_RESP_DONE)
        out->done++;
    if (!out->err && have)
        out->err = true; /* bytes left over that no step would take */
}

static bool same(const struct resp_out *o, const struct resp_case *c)
{
    return !o->err && o->done == c->done && !strcmp(o->statuses, c->statuses) &&
           o->body_len == strlen(c->body) && !memcmp(o->body, c->body, o->body_len);
}

static const struct resp_case good[] = {
    {"HTTP/1.1 202 Accepted\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", 0, 0, 1, "202",
     "{\"ok\":true}"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
     "6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
     0, 0, 1, "200", "hello world"},
    {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 0, 0, 1, "200",
     "ok"},
    {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1"
     "\r\n\r\nx",
     0, 0, 2, "204,200", "x"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1, 0, 1, "200", ""},
    {"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close", 0, 1, 1, "200", "until close"},
    {"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", 0, 0, 1,
     "200", ""},
    {"HTTP/1.1 404\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 500 Oops\r\nTransfer-Encoding: "
     "gzip, chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
     0, 0, 2, "404,500", "abc0123456789"},
};

static const char *const bad_resp[] = {
    "HTTP/2 200 OK\r\n\r\n",
    "HTTP/1.1 20 OK\r\n\r\n",
    "HTTP/1.1 200OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
    "HTTP/1.1 200 OK\r\nBad Name: b\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n",
};

static void test_http(void)
{
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *map =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED)
        return;
    mprotect(map + page, (size_t)page, PROT_NONE);
    struct resp_out out;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const struct resp_case *c = &good[i];
        size_t n = strlen(c->in);
        uint8_t *at = map + page - n; /* the input ends at the guard page */
        memcpy(at, c->in, n);
        feed(at, n, 0, c, &out);
        CHECK(same(&out, c));
        feed(at, n, 1, c, &out);
        CHECK(same(&out, c));
        for (size_t s = 1; s < n; s++) {
            feed(at, n, s, c, &out);
            if (!same(&out, c)) {
                fprintf(stderr, "self-test: http case %zu split every %zu bytes\n", i, s);
                failures++;
                break;
            }
        }
    }
    for (size_t i = 0; i < sizeof(bad_resp) / sizeof(bad_resp[0]); i++) {
        size_t n = strlen(bad_resp[i]);
        struct resp_case c = {.in = bad_resp[i], .done = -1, .statuses = "", .body = ""};
        uint8_t *at = map + page - n;
        memcpy(at, bad_resp[i], n);
        for (size_t s = 0; s <= n; s++) {
            feed(at, n, s, &c, &out);
            if (!out.err) {
                fprintf(stderr, "self-test: bad http case %zu accepted (pieces of %zu)\n", i, s);
                failures++;
                break;
            }
        }
    }
    char big[RFL_RESP_HEAD_BYTES_MAX + 64];
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 21);
    struct rfl_resp r;
    rfl_resp_init(&r);
    struct rfl_resp_head h;
    struct rfl_span b;
    size_t used;
    CHECK(rfl_resp_step(&r, (uint8_t *)big, sizeof(big), false, &used, &h, &b) == RFL_RESP_ERR);
    munmap(map, (size_t)page * 2);
}

/* --- WebSocket ------------------------------------------------------------------------- */

static void test_ws_frames(void)
{
    struct rfl_ws_frame f;
    uint8_t small[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    CHECK(rfl_ws_frame_parse(small, sizeof(small), 1024, &f) == 7 && f.fin &&
          f.opcode == RFL_WS_TEXT && f.len == 5 && !memcmp(f.payload, "hello", 5));
    for (size_t k = 0; k < sizeof(small); k++)
        CHECK(rfl_ws_frame_parse(small, k, 1024, &f) == RFL_WS_PARTIAL);
    static uint8_t mid[4 + 300], large[10 + 70000];
    mid[0] = 0x02, mid[1] = 126, mid[2] = 300 >> 8, mid[3] = 300 & 0xff;
    CHECK(rfl_ws_frame_parse(mid, sizeof(mid), 1024, &f) == (long)sizeof(mid) && f.len == 300);
    CHECK(rfl_ws_frame_parse(mid, sizeof(mid), 299, &f) == RFL_WS_ERROR);
    large[0] = 0x01, large[1] = 127, large[7] = 70000 >> 16, large[8] = (70000 >> 8) & 0xff;
    large[9] = 70000 & 0xff;
    CHECK(rfl_ws_frame_parse(large, sizeof(large), 1 << 20, &f) == (long)sizeof(large) && !f.fin &&
          f.opcode == RFL_WS_TEXT && f.len == 70000);
    CHECK(rfl_ws_frame_parse(large, 10, 1 << 20, &f) == RFL_WS_PARTIAL);
    uint8_t bad[][4] = {
        {0x81, 0x85, 0, 0},  /* masked server frame */
        {0xC1, 0x00, 0, 0},  /* RSV1 */
        {0x83, 0x00, 0, 0},  /* opcode 3 */
        {0x09, 0x00, 0, 0},  /* fragmented ping */
        {0x89, 126, 0, 126}, /* ping over 125 */
        {0x81, 126, 0, 100}, /* non-minimal 16-bit length */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(rfl_ws_frame_parse(bad[i], 4, 1 << 20, &f) == RFL_WS_ERROR);
    uint8_t nm64[10] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0, 200};
    CHECK(rfl_ws_frame_parse(nm64, 10, 1 << 20, &f) == RFL_WS_ERROR);
    const size_t lens[] = {0, 1, 125, 126, 65535, 65536};
    static uint8_t payload[65536], wire[65536 + 14];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = rfl_ws_frame_encode(wire, RFL_WS_TEXT, payload, lens[i], 0x12345678u);
        CHECK(n == rfl_ws_frame_size(lens[i]));
        CHECK(wire[0] == 0x81 && (wire[1] & 0x80));
        size_t h = n - lens[i];
        const uint8_t *m = wire + h - 4;
        bool ok = true;
        for (size_t j = 0; j < lens[i]; j++)
            ok &= (uint8_t)(wire[h + j] ^ m[j & 3]) == payload[j];
        CHECK(ok);
        wire[1] &= 0x7f; /* unmask the header: now it parses as a server frame */
        memmove(wire + h - 4, wire + h, lens[i]);
        CHECK(rfl_ws_frame_parse(wire, n - 4, 1 << 20, &f) == (long)(n - 4) && f.len == lens[i]);
    }
}

static void test_ws_handshake(void)
{
    char acc[RFL_WS_ACCEPT_LEN + 1];
    rfl_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc); /* RFC 6455 section 1.3 */
    CHECK(!strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    uint8_t rnd[16] = "the sample nonce";
    char key[RFL_WS_KEY_LEN + 1];
    rfl_ws_key(rnd, key);
    CHECK(!strcmp(key, "dGhlIHNhbXBsZSBub25jZQ=="));
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                       "Connection: keep-alive, Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x01"
                       "a";
    struct rfl_resp r;
    struct rfl_resp_head h;
    struct rfl_span b;
    size_t used;
    rfl_resp_init(&r);
    CHECK(rfl_resp_step(&r, (const uint8_t *)resp, strlen(resp), false, &used, &h, &b) ==
          RFL_RESP_HEAD);
    CHECK(used == strlen(resp) - 3 && rfl_ws_handshake_ok(&h, key));
    CHECK(!rfl_ws_handshake_ok(&h, "AAAAAAAAAAAAAAAAAAAAAA=="));
    h.conn_upgrade = false;
    CHECK(!rfl_ws_handshake_ok(&h, key));
}

static void test_json_scan(void)
{
    static const char *const keys[] = {"type", "execution_id"};
    struct rfl_span v[2];
    const char *ev = "{\"execution_id\": \"ex-1\", \"seq\": 7, \"output\": {\"type\": \"nested\","
                     " \"a\": [1, {\"type\": \"x\"}, \"]\\\"}\"]}, \"ok\": true, \"n\": -1.5e3,"
                     " \"type\" : \"execution.succeeded\", \"z\": null}";
    CHECK(rfl_json_top_strings((const uint8_t *)ev, strlen(ev), keys, 2, v) == 0);
    CHECK(v[0].n == 19 && !memcmp(v[0].p, "execution.succeeded", 19));
    CHECK(v[1].n == 4 && !memcmp(v[1].p, "ex-1", 4));
    const char *esc = "{\"type\":\"a\\\"b\",\"execution_id\":1}";
    CHECK(rfl_json_top_strings((const uint8_t *)esc, strlen(esc), keys, 2, v) == 0);
    CHECK(v[0].n == 4 && !memcmp(v[0].p, "a\\\"b", 4) && v[1].p == NULL);
    CHECK(rfl_json_top_strings((const uint8_t *)" {} ", 4, keys, 2, v) == 0 && !v[0].p);
    const char *const broken[] = {
        "",           "[]",         "{",           "{\"a\"}",     "{\"a\":}",
        "{\"a\":1,}", "{\"a\":[1}", "{\"a\":\"x}", "{\"a\":1} x", "{\"a\":{]}"};
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
        CHECK(rfl_json_top_strings((const uint8_t *)broken[i], strlen(broken[i]), keys, 2, v) < 0);
}

/* --- templates and URLs ---------------------------------------------------------------- */

static bool render_consistent(const struct rfl_tmpl *t, uint64_t seq, uint64_t *rng, char *out,
                              size_t *n)
{
    *n = rfl_tmpl_render(t, seq, rng, (uint8_t *)out);
    out[*n] = 0;
    const char *cl = strstr(out, "Content-Length: ");
    const char *body = strstr(out, "\r\n\r\n");
    if (!body || *n > t->max_bytes)
        return false;
    body += 4;
    return !cl || strtoul(cl + 16, NULL, 10) == (unsigned long)(out + *n - body);
}

static void test_tmpl(void)
{
    struct rfl_tmpl t;
    static char out[4096];
    size_t n;
    uint64_t rng = 1;
    CHECK(rfl_tmpl_compile(&t, "GET", "/healthz", "h:1", "", "", 0) == 0);
    CHECK(t.nsegs == 1 && render_consistent(&t, 0, &rng, out, &n));
    CHECK(!strcmp(out, "GET /healthz HTTP/1.1\r\nHost: h:1\r\n\r\n"));
    rfl_tmpl_free(&t);
    const char *body = "{\"inputs\":{\"n\":{{seq}},\"r\":{{rand:1000}},\"lit\":\"{{x}}\"}}";
    CHECK(rfl_tmpl_compile(&t, "POST", "/v1/{{seq}}", "h", "X-A: {{rand:3}}\r\n", body,
                           strlen(body)) == 0);
    CHECK(t.has_body_len);
    bool seen_short = false, seen_long = false;
    for (uint64_t seq = 0; seq < 2000; seq += 7) {
        CHECK(render_consistent(&t, seq, &rng, out, &n));
        char want[64];
        snprintf(want, sizeof(want), "POST /v1/%llu HTTP/1.1\r\n", (unsigned long long)seq);
        CHECK(!strncmp(out, want, strlen(want)));
        CHECK(strstr(out, "\"lit\":\"{{x}}\"") && strstr(out, "Content-Type: application/json"));
        const char *r = strstr(out, "\"r\":");
        unsigned long v = r ? strtoul(r + 4, NULL, 10) : 1000;
        CHECK(v < 1000);
        seen_short |= v < 10;
        seen_long |= v >= 100;
    }
    CHECK(seen_short && seen_long);
    rfl_tmpl_free(&t);
    CHECK(rfl_tmpl_compile(&t, "POST", "/x", "h", "", "", 0) == 0);
    CHECK(render_consistent(&t, 0, &rng, out, &n) && strstr(out, "Content-Length: 0\r\n"));
    rfl_tmpl_free(&t);
    CHECK(rfl_tmpl_compile(&t, "get", "/x", "h", "", "", 0) < 0);
    CHECK(rfl_tmpl_compile(&t, "GET", "x", "h", "", "", 0) < 0);
    CHECK(rfl_tmpl_compile(&t, "GET", "/x", "h", "Content-Length: 3\r\n", "", 0) < 0);
    uint64_t s = 42;
    for (int i = 0; i < 1000; i++)
        CHECK(rfl_rand_below(&s, 3) < 3);
}

static void test_url(void)
{
    char host[RFL_HOST_BYTES_MAX + 1], hh[RFL_HOST_BYTES_MAX + 8], path[RFL_PATH_BYTES_MAX + 1];
    uint16_t port;
    CHECK(rfl_url_parse("http://127.0.0.1:8080/v1/x?a=1", host, hh, &port, path) == 0);
    CHECK(!strcmp(host, "127.0.0.1") && port == 8080 && !strcmp(path, "/v1/x?a=1") &&
          !strcmp(hh, "127.0.0.1:8080"));
    CHECK(rfl_url_parse("HTTP://localhost", host, hh, &port, path) == 0);
    CHECK(!strcmp(host, "localhost") && port == 80 && !strcmp(path, "/"));
    CHECK(rfl_url_parse("http://[::1]:9/?q", host, hh, &port, path) == 0);
    CHECK(!strcmp(host, "::1") && port == 9 && !strcmp(path, "/?q") && !strcmp(hh, "[::1]:9"));
    CHECK(rfl_url_parse("https://x/", host, hh, &port, path) < 0);
    CHECK(rfl_url_parse("http://x:0/", host, hh, &port, path) < 0);
    CHECK(rfl_url_parse("http://x:70000/", host, hh, &port, path) < 0);
    CHECK(rfl_url_parse("http:///", host, hh, &port, path) < 0);
}

int rfl_self_test(void)
{
    test_hist();
    test_http();
    test_ws_frames();
    test_ws_handshake();
    test_json_scan();
    test_tmpl();
    test_url();
    if (failures) {
        fprintf(stderr, "self-test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("self-test: all checks passed\n");
    return 0;
}
