/*
 * tests/net/test_hresp.c: the sans-I/O HTTP/1.1 response parser (net/hresp.c).
 *
 * Every input is copied so that it ends right before a PROT_NONE guard page, so a read one
 * byte past the end crashes the test instead of passing by luck (picohttpparser's trick).
 * What it pins down:
 *   - heads: status line forms, fields as zero-copy slices, OWS trimming, the framing
 *     rules (Content-Length, chunked, close-delimited, no body for 1xx/204/304/HEAD), and
 *     keep-alive for HTTP/1.1 and HTTP/1.0;
 *   - every proper prefix of a valid head is -2, fed from the guard page, and the answer
 *     does not depend on how the bytes were split;
 *   - each rule the parser promises to enforce fails with -1: versions, status codes, bare
 *     LF, obs-fold, space before a colon, bad or conflicting Content-Length, codings other
 *     than chunked, Transfer-Encoding in HTTP/1.0, the field and byte limits, and bytes
 *     that cannot start "HTTP/1." (at once, before the head is complete);
 *   - the chunked decoder: whole, byte by byte and in place give the same data and the
 *     same consumed count, extensions and trailers are dropped, its errors and limits,
 *     the too_large flag;
 *   - the UTF-8 validator and the JSON media type test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/hresp.h"

#define FIELDS_CAP 16

/* --- guard page ------------------------------------------------------------------------------- */

static char *guard_base;
static size_t guard_page;

static int guard_setup(void **state)
{
    (void)state;
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    /* 32 pages of room, then the guard */
    guard_base =
        mmap(NULL, guard_page * 33, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_base == MAP_FAILED)
        return -1;
    return mprotect(guard_base + guard_page * 32, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    (void)state;
    return munmap(guard_base, guard_page * 33);
}

/* A copy of s[0..n) that ends at the guard page. */
static char *guarded(const char *s, size_t n)
{
    char *p = guard_base + guard_page * 32 - n;

    assert_true(n <= guard_page * 32);
    memcpy(p, s, n);
    return p;
}

static int parse(const char *s, size_t n, unsigned flags, struct rf_hresp_head *h,
                 struct rf_hresp_field *f)
{
    return rf_hresp_parse_head(guarded(s, n), n, flags, NULL, f, FIELDS_CAP, h);
}

static int parse_str(const char *s, struct rf_hresp_head *h, struct rf_hresp_field *f)
{
    return parse(s, strlen(s), 0, h, f);
}

static void assert_slice(const char *p, uint32_t n, const char *want)
{
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

/* --- heads ------------------------------------------------------------------------------------ */

static void test_basic(void **state)
{
    static const char r[] = "HTTP/1.1 200 OK\r\n"
                            "Content-Type:  application/json \r\n"
                            "content-length: 5\r\n"
                            "X-Empty:\r\n"
                            "\r\n"
                            "hello";
    struct rf_hresp_field f[FIELDS_CAP];
    struct rf_hresp_head h;
    int rc = parse(r, sizeof(r) - 1, 0, &h, f);

    (void)state;
    assert_int_equal(rc, sizeof(r) - 1 - 5);
    assert_int_equal(h.head_bytes, (uint32_t)rc);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.status, 200);
    assert_slice(h.reason, h.reason_len, "OK");
    assert_int_equal(h.nfields, 3);
    assert_slice(f[0].name, f[0].name_len, "Content-Type");
    assert_slice(f[0].value, f[0].value_len, "application/json");
    assert_slice(f[1].value, f[1].value_len, "5");
    assert_slice(f[2].name, f[2].name_len, "X-Empty");
    assert_int_equal(f[2].value_len, 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_LENGTH);
    assert_int_equal(h.content_length, 5);
    assert_true(h.keep_alive);

    uint32_t from = 0;
    const struct rf_hresp_field *x = rf_hresp_field_next(&h, "CONTENT-type", &from);
    assert_ptr_equal(x, &f[0]);
    assert_int_equal(from, 1);
    assert_null(rf_hresp_field_next(&h, "content-type", &from));
    assert_int_equal(from, 3);
}

static void test_prefixes(void **state)
{
    static const char *const heads[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 404 Not Found\r\nServer: x\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.1 204\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: a\tb\r\n\r\n",
    };
    struct rf_hresp_field f[FIELDS_CAP];
    struct rf_hresp_head h;

    (void)state;
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        size_t n = strlen(heads[i]);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(parse(heads[i], k, 0, &h, f), -2);
        assert_int_equal(parse(heads[i], n, 0, &h, f), (int)n);
    }
}

static void test_framing(void **state)
{
    struct rf_hresp_field f[FIELDS_CAP];
    struct rf_hresp_head h;

    (void)state;
    /* no length: until close, never reused */
    assert_true(parse_str("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_CLOSE);
    assert_false(h.keep_alive);
    /* chunked */
    assert_true(parse_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_CHUNKED);
    assert_true(h.keep_alive);
    /* chunked wins over Content-Length, and the connection is not reused */
    assert_true(parse_str("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n",
                          &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_CHUNKED);
    assert_false(h.keep_alive);
    /* no body */
    assert_true(parse_str("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_NONE);
    assert_true(parse_str("HTTP/1.1 304 Not Modified\r\n\r\n", &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_NONE);
    assert_true(h.keep_alive);
    assert_true(parse_str("HTTP/1.1 100 Continue\r\n\r\n", &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_NONE);
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
    assert_true(parse(head, sizeof(head) - 1, RF_HRESP_HEAD_REQUEST, &h, f) > 0);
    assert_int_equal(h.framing, RF_HRESP_BODY_NONE);
    assert_int_equal(h.content_length, 0);
    /* Connection */
    assert_true(parse_str("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: x, Close\r\n\r\n",
                          &h, f) > 0);
    assert_false(h.keep_alive);
    assert_true(parse_str("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &h, f) > 0);
    assert_false(h.keep_alive);
    assert_int_equal(h.minor, 0);
    assert_true(parse_str("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive\r\n\r\n",
                          &h, f) > 0);
    assert_true(h.keep_alive);
    /* identical Content-Length repeats are one length */
    assert_true(parse_str("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
                          &h, f) > 0);
    assert_int_equal(h.content_length, 5);
    /* no reason phrase, with and without its SP */
    assert_true(parse_str("HTTP/1.1 503 \r\n\r\n", &h, f) > 0);
    assert_int_equal(h.status, 503);
    assert_int_equal(h.reason_len, 0);
    assert_true(parse_str("HTTP/1.1 999\r\n\r\n", &h, f) > 0);
    assert_int_equal(h.status, 999);
}

static void test_errors(void **state)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\nX: y\r\n\r\n",         /* bare LF ends no line */
        "HTTP/1.1 200 OK\r\nX: y\rZ: w\r\n\r\n", /* bare CR */
        "HTTP/1.1 200 OK\r\nX: y\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: y\x7f\r\n\r\n",
    };
    struct rf_hresp_field f[FIELDS_CAP];
    struct rf_hresp_head h;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_str(bad[i], &h, f);
        if (rc != -1)
            print_error("accepted: %s\n", bad[i]);
        assert_int_equal(rc, -1);
    }
    /* not HTTP: known at once, from a few bytes */
    assert_int_equal(parse("HTTX", 4, 0, &h, f), -1);
    assert_int_equal(parse("<html>", 6, 0, &h, f), -1);
    assert_int_equal(parse("HTT", 3, 0, &h, f), -2);
    assert_int_equal(parse("", 0, 0, &h, f), -2);
}

static void test_limits(void **state)
{
    struct rf_hresp_field f[FIELDS_CAP];
    struct rf_hresp_head h;
    struct rf_hresp_limits lim = {.head_bytes_max = 64, .fields_max = 2};
    static const char three[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    static const char two[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    char big[200];

    (void)state;
    assert_int_equal(rf_hresp_parse_head(guarded(three, sizeof(three) - 1), sizeof(three) - 1, 0,
                                         &lim, f, FIELDS_CAP, &h),
                     -1);
    assert_int_equal(rf_hresp_parse_head(guarded(two, sizeof(two) - 1), sizeof(two) - 1, 0, &lim, f,
                                         FIELDS_CAP, &h),
                     (int)sizeof(two) - 1);
    /* the caller's array caps the fields too */
    assert_int_equal(
        rf_hresp_parse_head(guarded(two, sizeof(two) - 1), sizeof(two) - 1, 0, NULL, f, 1, &h), -1);
    /* head bytes: a head of exactly the limit passes, one byte more fails, and an
     * incomplete head fails as soon as it reaches the limit */
    memset(big, 'x', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memcpy(big + 60, "\r\n\r\n", 4);
    assert_int_equal(rf_hresp_parse_head(guarded(big, 64), 64, 0, &lim, f, FIELDS_CAP, &h), 64);
    memcpy(big + 60, "x\r\n\r\n", 5);
    assert_int_equal(rf_hresp_parse_head(guarded(big, 65), 65, 0, &lim, f, FIELDS_CAP, &h), -1);
    assert_int_equal(rf_hresp_parse_head(guarded(big, 63), 63, 0, &lim, f, FIELDS_CAP, &h), -2);
    assert_int_equal(rf_hresp_parse_head(guarded(big, 64), 64, 0, &lim, f, FIELDS_CAP, &h), -1);
}

/* --- chunked bodies --------------------------------------------------------------------------- */

/* Decode s whole (in place, in a guarded copy): returns the result, data in out. */
static int decode_whole(const char *s, size_t n, char *out, size_t *out_len, uint64_t max)
{
    struct rf_hresp_chunked d = {.body_bytes_max = max};
    char *p = guarded(s, n);
    int rc = rf_hresp_chunked_decode(&d, p, p, n, out_len);

    memcpy(out, p, *out_len);
    return rc;
}

/* Decode byte by byte (each byte alone before the guard page). */
static int decode_bytes(const char *s, size_t n, char *out, size_t *out_len)
{
    struct rf_hresp_chunked d = {0};
    char one;
    size_t got;

    *out_len = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = guarded(&s[i], 1);
        int rc = rf_hresp_chunked_decode(&d, &one, p, 1, &got);
        if (got)
            out[(*out_len)++] = one;
        if (rc != -2)
            return rc < 0 ? rc : (int)(i + 1);
    }
    return -2;
}

static void test_chunked(void **state)
{
    static const char body[] = "5;name=value\r\nhello\r\n"
                               "6 ; x\r\n world\r\n"
                               "A\r\n0123456789\r\n"
                               "0\r\n"
                               "Trailer-One: 1\r\n"
                               "T2:\r\n"
                               "\r\n"
                               "NEXT";
    char out[128];
    size_t n;

    (void)state;
    int rc = decode_whole(body, sizeof(body) - 1, out, &n, 0);
    assert_int_equal(rc, (int)sizeof(body) - 1 - 4);
    assert_int_equal(n, 21);
    assert_memory_equal(out, "hello world0123456789", 21);
    rc = decode_bytes(body, sizeof(body) - 1, out, &n);
    assert_int_equal(rc, (int)sizeof(body) - 1 - 4);
    assert_int_equal(n, 21);
    assert_memory_equal(out, "hello world0123456789", 21);
    /* every proper prefix is -2 */
    for (size_t k = 0; k < sizeof(body) - 1 - 4; k++)
        assert_int_equal(decode_whole(body, k, out, &n, 0), -2);
    /* the smallest body */
    assert_int_equal(decode_whole("0\r\n\r\n", 5, out, &n, 0), 5);
    assert_int_equal(n, 0);
    /* uppercase and 16 digits are fine */
    assert_int_equal(decode_whole("000000000000000C\r\nabcdefghijkl\r\n0\r\n\r\n", 37, out, &n, 0),
                     37);
    assert_memory_equal(out, "abcdefghijkl", 12);
}

static void test_chunked_errors(void **state)
{
    static const char *const bad[] = {
        "x\r\n",                               /* not hex */
        "\r\n",                                /* no size */
        "-1\r\n",                              /* signed */
        "00000000000000001\r\na\r\n0\r\n\r\n", /* 17 digits */
        "3\r\nabcX",                           /* data not followed by CRLF */
        "3\r\nabc\rX",
        "3\nabc\r\n", /* bare LF */
        "3\r\rabc",
        "3;\x01\r\n",           /* control byte in an extension */
        "0\r\n folded\r\n\r\n", /* trailer obs-fold */
        "0\r\nX: a\x02\r\n\r\n",
        "0\r\n\rX",
        "3x\r\n",
    };
    struct rf_hresp_chunked d = {0};
    char out[256], ext[2000];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = decode_whole(bad[i], strlen(bad[i]), out, &n, 0);
        if (rc != -1)
            print_error("accepted: %s\n", bad[i]);
        assert_int_equal(rc, -1);
    }
    /* an extension over its limit */
    memset(ext, 'e', sizeof(ext));
    memcpy(ext, "1;", 2);
    assert_int_equal(decode_whole(ext, RF_HRESP_CHUNK_LINE_BYTES_MAX + 1, out, &n, 0), -2);
    assert_int_equal(decode_whole(ext, RF_HRESP_CHUNK_LINE_BYTES_MAX + 2, out, &n, 0), -1);
    /* too large: known from the digits, before any data */
    struct rf_hresp_chunked big = {.body_bytes_max = 10};
    char *p = guarded("5\r\nhello\r\n6\r\n", 13);
    assert_int_equal(rf_hresp_chunked_decode(&big, p, p, 13, &n), -1);
    assert_true(big.too_large);
    struct rf_hresp_chunked ok = {.body_bytes_max = 10};
    p = guarded("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 25);
    assert_int_equal(rf_hresp_chunked_decode(&ok, p, p, 25, &n), 25);
    assert_false(ok.too_large);
    assert_int_equal(ok.body_bytes, 10);
    /* done means done */
    assert_int_equal(rf_hresp_chunked_decode(&ok, p, p, 1, &n), -1);
    /* a trailer section over its limit */
    static char tr[RF_HRESP_TRAILER_BYTES_MAX + 64];
    memset(tr, 'a', sizeof(tr));
    memcpy(tr, "0\r\nX: ", 6);
    p = guarded(tr, sizeof(tr));
    assert_int_equal(rf_hresp_chunked_decode(&d, p, p, sizeof(tr), &n), -1);
    assert_false(d.too_large);
}

/* --- helpers ---------------------------------------------------------------------------------- */

static void test_utf8(void **state)
{
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain", 5, true},
        {"caf\xc3\xa9", 5, true},
        {"\xe2\x82\xac", 3, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"a\0b", 3, true},
        {"\xc3", 1, false},
        {"\xc0\xaf", 2, false},         /* overlong */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* past U+10FFFF */
        {"\xff", 1, false},
        {"\xe2\x82", 2, false},
        {"\x80", 1, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(rf_hresp_utf8_valid(guarded(cases[i].s, cases[i].n), cases[i].n),
                         cases[i].ok);
}

static void test_json_type(void **state)
{
    static const struct {
        const char *s;
        bool json;
    } cases[] = {
        {"application/json", true},
        {"Application/JSON; charset=utf-8", true},
        {"  application/json  ;x=y", true},
        {"application/problem+json", true},
        {"application/vnd.api+JSON", true},
        {"text/plain", false},
        {"application/jsonx", false},
        {"application/+json", false},
        {"json", false},
        {"application/json x", false},
        {"", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].s);
        assert_int_equal(rf_hresp_is_json_type(guarded(cases[i].s, n), n), cases[i].json);
    }
    assert_true(rf_hresp_token("GET", 3));
    assert_false(rf_hresp_token("GE T", 4));
    assert_false(rf_hresp_token("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),          cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_framing),        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_errors), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_json_type),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
