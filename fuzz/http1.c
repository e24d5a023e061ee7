/*
 * fuzz/http1.c: libFuzzer target for the HTTP/1.1 request-head parser and the chunked
 * body decoder (net/http1.c).
 *
 * The input is what a client sends: a request head, then maybe a body. It is parsed with
 * the default limits and again with small ones, and a data-derived prefix is parsed too
 * (each time from a buffer of exactly that size, so ASan sees any over-read). Then the
 * bytes after a complete chunked head (or, when there is none, the whole input, so the
 * decoder is fuzzed on its own as well) go through the chunked decoder twice: at once
 * into a separate buffer, and in place from an exactly sized copy split in two at a
 * data-derived point. Properties, each an RF_ASSERT:
 *   - the result is -2, -1 with a status the API lists, or a length <= the input;
 *   - every slice of a parsed head lies inside the input (a static "/" path only for an
 *     absolute-form target without one); names are tokens, values have no edge OWS and
 *     no CR, LF or NUL; the framing fields agree (chunked => HTTP/1.1 and no length);
 *   - parsing the same bytes twice gives the same result, slice for slice;
 *   - a prefix gives -2, or the same result (a complete head inside it), or the same error;
 *   - smaller limits only remove: what passes them passes the defaults with the same
 *     length, and a non-limit error under the defaults is an error under them too;
 *   - both decodes agree on the result, the status, the bytes consumed and the data, and
 *     never produce more data than they consumed.
 */
#include "engine/rf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDRS_CAP       RF_HTTP_HEADERS_DEFAULT
#define BODY_BYTES_MAX 4096u /* small enough for the fuzzer to reach 413 */

static struct rf_http_header g_h1[HDRS_CAP], g_h2[HDRS_CAP], g_h3[HDRS_CAP];

static bool inside(struct rf_slice s, const char *buf, size_t size)
{
    return s.p >= buf && s.p <= buf + size && s.n <= (size_t)(buf + size - s.p);
}

static bool status_known(int st)
{
    return st == 400 || st == 414 || st == 417 || st == 431 || st == 501 || st == 505;
}

static void check_head(const char *buf, size_t size, int rc, const struct rf_http_req *r,
                       const struct rf_http_limits *lim)
{
    RF_ASSERT(rc > 0 && (size_t)rc <= size);
    RF_ASSERT(r->head_bytes == (uint32_t)rc);
    RF_ASSERT(inside(r->method_s, buf, size) && r->method_s.n > 0);
    RF_ASSERT(inside(r->target, buf, size) && r->target.n > 0);
    RF_ASSERT(inside(r->query, buf, size) && inside(r->authority, buf, size));
    RF_ASSERT(inside(r->host, buf, size) || (r->host.p == NULL && r->host.n == 0));
    RF_ASSERT(r->host.p != NULL || r->minor == 0);
    if (r->authority.n > 0 && !inside(r->path, buf, size))
        RF_ASSERT(r->path.n == 1 && r->path.p[0] == '/');
    else
        RF_ASSERT(inside(r->path, buf, size));
    RF_ASSERT(r->minor <= 1);
    RF_ASSERT(r->nheaders <= lim->headers_max);
    RF_ASSERT(!r->chunked || (r->minor == 1 && r->content_length == -1));
    RF_ASSERT(r->content_length >= -1 && r->content_length < 1000000000000000LL);
    RF_ASSERT(r->minor == 0 || rf_http_header_get(r, "host") != NULL);
    for (uint32_t i = 0; i < r->nheaders; i++) {
        struct rf_slice n = r->headers[i].name, v = r->headers[i].value;

        RF_ASSERT(inside(n, buf, size) && inside(v, buf, size) && n.n > 0);
        RF_ASSERT(memchr(n.p, ':', n.n) == NULL && memchr(n.p, ' ', n.n) == NULL);
        RF_ASSERT(v.n == 0 || (v.p[0] != ' ' && v.p[0] != '\t'));
        RF_ASSERT(v.n == 0 || (v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t'));
        RF_ASSERT(!memchr(v.p, '\r', v.n) && !memchr(v.p, '\n', v.n) && !memchr(v.p, 0, v.n));
    }
}

static bool slice_same(struct rf_slice a, struct rf_slice b)
{
    return a.p == b.p && a.n == b.n;
}

static void check_same_req(const struct rf_http_req *a, const struct rf_http_req *b)
{
    RF_ASSERT(a->method == b->method && slice_same(a->method_s, b->method_s));
    RF_ASSERT(slice_same(a->target, b->target) && slice_same(a->path, b->path));
    RF_ASSERT(slice_same(a->query, b->query) && slice_same(a->host, b->host));
    RF_ASSERT(slice_same(a->authority, b->authority) && a->minor == b->minor);
    RF_ASSERT(a->nheaders == b->nheaders && a->content_length == b->content_length);
    RF_ASSERT(a->chunked == b->chunked && a->keep_alive == b->keep_alive);
    RF_ASSERT(a->conn_upgrade == b->conn_upgrade && a->expect_continue == b->expect_continue);
    for (uint32_t i = 0; i < a->nheaders; i++) {
        RF_ASSERT(slice_same(a->headers[i].name, b->headers[i].name));
        RF_ASSERT(slice_same(a->headers[i].value, b->headers[i].value));
    }
}

/* A prefix of k bytes, parsed from its own exactly sized buffer. */
static void check_prefix(const uint8_t *data, size_t k, int rc_full, int st_full,
                         const struct rf_http_limits *lim)
{
    char *b = malloc(k ? k : 1);
    struct rf_http_req r;
    int st = 0, rc;

    RF_ASSERT(b != NULL);
    memcpy(b, data, k);
    rc = rf_http_parse_request(b, k, lim, &r, g_h3, HDRS_CAP, &st);
    if (rc_full > 0 && k >= (size_t)rc_full)
        RF_ASSERT(rc == rc_full);
    else if (rc == -1)
        RF_ASSERT(rc_full == -1 && st == st_full);
    else
        RF_ASSERT(rc == -2);
    free(b);
}

struct dec {
    int rc, status;
    size_t consumed, out_len;
};

/* Decode body[0..n) fed as [0, cut) and [cut, n), into dst (in place when dst == src). */
static void decode(char *dst, const char *src, size_t n, size_t cut, struct dec *r)
{
    struct rf_http_limits lim = {.line_bytes_max = 64, .header_bytes_max = 256, .headers_max = 8};
    struct rf_http_chunked d;
    size_t from = 0, dl;
    int rc = -2, st = 0;

    rf_http_chunked_init(&d, BODY_BYTES_MAX, &lim);
    r->out_len = 0;
    for (int piece = 0; piece < 2 && rc == -2; piece++) {
        size_t to = piece == 0 ? cut : n;

        rc = rf_http_chunked_decode(&d, dst + r->out_len, src + from, to - from, &dl, &st);
        RF_ASSERT(rc == -2 || rc == -1 || (rc > 0 && (size_t)rc <= to - from));
        RF_ASSERT(rc == -1 || st == 0);
        r->out_len += dl;
        from = rc > 0 ? from + (size_t)rc : to;
        RF_ASSERT(r->out_len <= from);
    }
    RF_ASSERT(rc != -1 || st == 400 || st == 413);
    r->rc = rc > 0 ? 1 : rc;
    r->status = rc == -1 ? st : 0;
    r->consumed = rc > 0 ? from : 0;
    RF_ASSERT(r->out_len <= BODY_BYTES_MAX);
}

static void check_chunked(const uint8_t *body, size_t n, size_t cut)
{
    char *sep = malloc(n ? n : 1), *inplace = malloc(n ? n : 1);
    struct dec a, b;

    RF_ASSERT(sep != NULL && inplace != NULL);
    memcpy(inplace, body, n);
    decode(sep, (const char *)body, n, n, &a);
    decode(inplace, inplace, n, cut, &b);
    RF_ASSERT(a.rc == b.rc && a.status == b.status && a.consumed == b.consumed);
    RF_ASSERT(a.out_len == b.out_len && memcmp(sep, inplace, a.out_len) == 0);
    free(sep);
    free(inplace);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct rf_http_limits def,
        small = {.line_bytes_max = 48, .header_bytes_max = 160, .headers_max = 4};
    struct rf_http_req r1, r2, r3;
    int st1 = 0, st2 = 0, st3 = 0, rc1, rc2, rc3;
    size_t cut = size ? (data[size - 1] * 131u + size) % (size + 1) : 0;

    rf_http_limits_default(&def);
    rc1 = rf_http_parse_request(buf, size, &def, &r1, g_h1, HDRS_CAP, &st1);
    RF_ASSERT(rc1 == -2 || rc1 == -1 || rc1 > 0);
    RF_ASSERT(rc1 != -1 || status_known(st1));
    if (rc1 > 0)
        check_head(buf, size, rc1, &r1, &def);

    rc2 = rf_http_parse_request(buf, size, &def, &r2, g_h2, HDRS_CAP, &st2);
    RF_ASSERT(rc2 == rc1 && (rc1 != -1 || st2 == st1));
    if (rc1 > 0)
        check_same_req(&r1, &r2);

    rc3 = rf_http_parse_request(buf, size, &small, &r3, g_h3, HDRS_CAP, &st3);
    if (rc3 > 0) {
        check_head(buf, size, rc3, &r3, &small);
        RF_ASSERT(rc1 == rc3);
    }
    if (rc1 == -1 && st1 != 414 && st1 != 431)
        RF_ASSERT(rc3 == -1 && (st3 == st1 || st3 == 414 || st3 == 431));

    if (size > 0)
        check_prefix(data, cut < size ? cut : size - 1, rc1, st1, &def);

    if (rc1 > 0 && r1.chunked)
        check_chunked(data + rc1, size - (size_t)rc1, cut > (size_t)rc1 ? cut - (size_t)rc1 : 0);
    else if (rc1 < 0)
        check_chunked(data, size, cut);
    return 0;
}
