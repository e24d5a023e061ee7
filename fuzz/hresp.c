/*
 * fuzz/hresp.c: libFuzzer target for the HTTP/1.1 response parser (net/hresp.c).
 *
 * Each input is read four ways; small parameters (the HEAD flag, a split point, a body
 * limit) come from its last byte, so seeds stay plain HTTP text.
 *
 * As a response head (rf_hresp_parse_head), from an exactly sized heap copy so ASan sees
 * any over-read. The result is -1, -2 or a length in (0, size]; parsing twice gives the
 * same answer; a complete head ends in CRLF CRLF, its status is 100..999, its version 1.0
 * or 1.1, its fields lie inside the head with token names and values free of CR, LF and
 * outer whitespace, a close-delimited body never keeps the connection, and no body comes
 * with a HEAD request. Prefixes agree with the whole: a prefix that fails makes the whole
 * fail, a prefix that completes makes the whole complete at the same length, and every
 * prefix shorter than a complete head (a sample of them) is -2.
 *
 * As a chunked body (rf_hresp_chunked_decode): decoding it whole in place, byte by byte,
 * and in two pieces split anywhere gives the same result, consumed count, data bytes and
 * too_large flag; decoded bytes never outnumber consumed ones, and never pass the limit.
 *
 * As data to encode: the input chunked with sizes taken from its own bytes, plus
 * extensions and a trailer, decodes back to itself, consuming exactly the encoding.
 *
 * As text: rf_hresp_utf8_valid agrees with jansson's UTF-8 check (json_stringn), and
 * rf_hresp_is_json_type only says yes to values that mention "json".
 *
 * Every violated property aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "net/hresp.h"

#define FIELDS_CAP       32
#define PREFIX_SAMPLES   48
#define ENCODE_BYTES_MAX 16384 /* input bytes chunked by fuzz_roundtrip */
#define ENCODE_OVERHEAD  12    /* worst case per data byte: a 1-byte chunk "1;k=v\r\nX\r\n" */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz/hresp: property violated: %s\n", what);
        abort();
    }
}

static int parse_copy(const uint8_t *data, size_t n, unsigned flags, struct rf_hresp_head *h,
                      struct rf_hresp_field *f)
{
    char *buf = malloc(n ? n : 1);
    int rc;

    memcpy(buf, data, n);
    rc = rf_hresp_parse_head(buf, n, flags, NULL, f, FIELDS_CAP, h);
    if (rc > 0) /* slices into buf: rebase them onto data before buf goes */
        for (uint32_t i = 0; i < h->nfields; i++) {
            f[i].name = (const char *)data + (f[i].name - buf);
            f[i].value = (const char *)data + (f[i].value - buf);
        }
    free(buf);
    return rc;
}

static void check_head_shape(const uint8_t *data, int rc, unsigned flags,
                             const struct rf_hresp_head *h)
{
    const char *base = (const char *)data, *end = base + rc;

    check(h->head_bytes == (uint32_t)rc, "head_bytes is the result");
    check(rc >= 16 && memcmp(end - 4, "\r\n\r\n", 4) == 0, "a head ends in CRLF CRLF");
    check(h->status >= 100 && h->status <= 999 && h->minor <= 1, "status and version");
    check(h->nfields <= FIELDS_CAP, "fields within the array");
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct rf_hresp_field *f = &h->fields[i];
        check(f->name >= base && f->name + f->name_len <= end, "name inside the head");
        check(f->value >= base && f->value + f->value_len <= end, "value inside the head");
        check(rf_hresp_token(f->name, f->name_len), "names are tokens");
        check(!memchr(f->value, '\r', f->value_len) && !memchr(f->value, '\n', f->value_len),
              "no CR or LF in values");
        check(f->value_len == 0 ||
                  (f->value[0] != ' ' && f->value[0] != '\t' && f->value[f->value_len - 1] != ' ' &&
                   f->value[f->value_len - 1] != '\t'),
              "values trimmed");
    }
    check(h->framing <= RF_HRESP_BODY_CLOSE, "framing");
    check(h->framing != RF_HRESP_BODY_CLOSE || !h->keep_alive, "close-delimited never kept");
    check(!(flags & RF_HRESP_HEAD_REQUEST) || h->framing == RF_HRESP_BODY_NONE,
          "no body after HEAD");
    check(h->framing == RF_HRESP_BODY_LENGTH || h->content_length == 0, "length only with LENGTH");
}

static void fuzz_head(const uint8_t *data, size_t size, uint8_t p)
{
    struct rf_hresp_field f[FIELDS_CAP], g[FIELDS_CAP];
    struct rf_hresp_head h, h2;
    unsigned flags = (p & 1) ? RF_HRESP_HEAD_REQUEST : 0;
    int rc = parse_copy(data, size, flags, &h, f), rc2;

    check(rc == -1 || rc == -2 || (rc > 0 && (size_t)rc <= size), "result range");
    check(parse_copy(data, size, flags, &h2, g) == rc, "deterministic");
    if (rc > 0)
        check_head_shape(data, rc, flags, &h);
    /* one prefix chosen by the parameter byte */
    if (size > 0) {
        size_t k = ((size_t)p * 131u) % size;
        rc2 = parse_copy(data, k, flags, &h2, g);
        if (rc2 == -1)
            check(rc == -1, "a failing prefix fails the whole");
        if (rc2 > 0)
            check(rc == rc2, "a complete prefix is the same head");
    }
    /* prefixes of a complete head are incomplete */
    if (rc > 0) {
        size_t step = (size_t)rc / PREFIX_SAMPLES + 1;
        for (size_t k = 0; k < (size_t)rc; k += step)
            check(parse_copy(data, k, flags, &h2, g) == -2, "prefix of a head is -2");
        check(parse_copy(data, (size_t)rc - 1, flags, &h2, g) == -2, "one byte short is -2");
    }
}

struct dec {
    int rc;
    size_t consumed, out_len;
    bool too_large;
};

/* Decode src in pieces of at most `piece` bytes (0 = whole), out to `out`. */
static struct dec decode(const uint8_t *src, size_t size, size_t piece, uint64_t max, char *out)
{
    struct rf_hresp_chunked d = {.body_bytes_max = max};
    struct dec r = {.rc = -2};
    size_t at = 0, got;

    while (at < size && r.rc == -2) {
        size_t n = piece && size - at > piece ? piece : size - at;
        char *tmp = malloc(n); /* in place, in a copy exactly the piece's size */
        memcpy(tmp, src + at, n);
        r.rc = rf_hresp_chunked_decode(&d, tmp, tmp, n, &got);
        check(got <= n, "decoded no more than fed");
        memcpy(out + r.out_len, tmp, got);
        free(tmp);
        r.out_len += got;
        r.consumed += r.rc > 0 ? (size_t)r.rc : n;
        check(r.rc == -1 || r.rc == -2 || (r.rc > 0 && (size_t)r.rc <= n), "decode result range");
        at += n;
    }
    r.too_large = d.too_large;
    check(!d.too_large || r.rc == -1, "too_large only with -1");
    check(max == 0 || r.out_len <= max, "never past the body limit");
    return r;
}

static void same(struct dec a, struct dec b, const char *oa, const char *ob, const char *what)
{
    check(a.rc == b.rc || (a.rc > 0 && b.rc > 0), what);
    check(a.too_large == b.too_large, what);
    if (a.rc == -1)
        return; /* where the error was noticed may differ by a few bytes of data */
    check(a.consumed == b.consumed && a.out_len == b.out_len, what);
    check(memcmp(oa, ob, a.out_len) == 0, what);
}

static void fuzz_chunked(const uint8_t *data, size_t size, uint8_t p)
{
    uint64_t max = (p & 0x80) ? (uint64_t)(p & 0x7f) * 3 : 0;
    char *o1 = malloc(size + 1), *o2 = malloc(size + 1), *o3 = malloc(size + 1);
    struct dec w = decode(data, size, 0, max, o1);
    struct dec b = decode(data, size, 1, max, o2);
    struct dec s = decode(data, size, size / 2 + (p & 7) + 1, max, o3);

    check(w.out_len <= w.consumed, "data no more than input");
    same(w, b, o1, o2, "whole and byte by byte agree");
    same(w, s, o1, o3, "whole and two pieces agree");
    free(o1);
    free(o2);
    free(o3);
}

/* Chunk the input with sizes from its own bytes, decode, compare. */
static void fuzz_roundtrip(const uint8_t *data, size_t size)
{
    static char enc[ENCODE_BYTES_MAX * ENCODE_OVERHEAD + 64], out[ENCODE_BYTES_MAX];
    size_t n = size < ENCODE_BYTES_MAX ? size : ENCODE_BYTES_MAX, at = 0, len = 0, got;
    struct rf_hresp_chunked d = {0};
    int rc;

    while (at < n) {
        size_t c = (size_t)(data[at] % 23) + 1;
        c = c < n - at ? c : n - at;
        len += (size_t)sprintf(enc + len, (at & 1) ? "%zx;k=v\r\n" : "%zX\r\n", c);
        memcpy(enc + len, data + at, c);
        len += c;
        memcpy(enc + len, "\r\n", 2);
        len += 2;
        at += c;
    }
    len += (size_t)sprintf(enc + len, "0\r\nX-T: 1\r\n\r\n");
    rc = rf_hresp_chunked_decode(&d, out, enc, len, &got);
    check(rc > 0 && (size_t)rc == len, "a valid encoding decodes completely");
    check(got == n && memcmp(out, data, n) == 0, "round trip");
}

static void fuzz_text(const uint8_t *data, size_t size)
{
    json_t *s = json_stringn((const char *)data, size);
    bool valid = rf_hresp_utf8_valid((const char *)data, size);

    check((s != NULL) == valid, "UTF-8 check agrees with jansson");
    json_decref(s);
    if (rf_hresp_is_json_type((const char *)data, size)) {
        bool mentions = false;
        for (size_t i = 0; i + 4 <= size && !mentions; i++)
            mentions = strncasecmp((const char *)data + i, "json", 4) == 0;
        check(mentions, "a JSON media type says json");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t p = size ? data[size - 1] : 0;

    fuzz_head(data, size, p);
    fuzz_chunked(data, size, p);
    fuzz_roundtrip(data, size);
    fuzz_text(data, size);
    return 0;
}
