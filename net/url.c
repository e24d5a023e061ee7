/*
 * net/url.c: RFC 3986 percent-decoding and the URL pieces the REST router needs.
 *
 * The router never sees a decoded path: rf_path_split() cuts the raw path at '/' so that
 * an encoded "%2F" inside an id stays inside its segment, and each segment is decoded on
 * its own with rf_url_decode() when it is used. Query strings follow the WHATWG
 * application/x-www-form-urlencoded rules that browsers and HTTP clients use: pairs
 * split at '&', key and value at the first '=', '+' for space, and percent escapes.
 * Unlike WHATWG (which passes a bad escape through as literal text) a '%' that is not
 * followed by two hex digits is an error here, as is a decoded NUL: the API answers 400
 * rather than guessing, and decoded strings are safe to use as C strings.
 *
 * Every function is pure: slices in, slices or a caller buffer out, no allocation, no
 * global state. rf_url_decode() checks validity over the whole input before it reports a
 * short buffer, so whether an input is valid never depends on the buffer size.
 * Callers: net/api.c, fuzz/url.c, tests/net/test_url.c.
 */
#include "engine/rf.h"

#include "net/url.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

static inline int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int rf_url_decode(const char *s, size_t n, bool plus_is_space, char *dst, size_t cap)
{
    size_t out = 0;
    bool bad = false;

    if (cap > (size_t)INT_MAX)
        cap = (size_t)INT_MAX; /* lengths are returned as int */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '%') {
            int hi = i + 2 < n ? hex_digit((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit((unsigned char)s[i + 2]) : -1;

            if (lo < 0) {
                bad = true;
                break;
            }
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == 0) {
            bad = true;
            break;
        }
        if (out + 1 < cap)
            dst[out] = (char)c;
        out++;
    }
    if (cap > 0)
        dst[RF_MIN(out, cap - 1)] = '\0';
    if (bad)
        return -EINVAL;
    if (out + 1 > cap)
        return -ENAMETOOLONG;
    return (int)out;
}

void rf_query_begin(struct rf_query_it *it, struct rf_slice query)
{
    it->p = query.p;
    it->end = query.p + query.n;
}

int rf_query_next(struct rf_query_it *it, struct rf_slice *key, struct rf_slice *val)
{
    const char *a, *amp, *eq;

    while (it->p < it->end && *it->p == '&')
        it->p++;
    if (it->p >= it->end)
        return 0;
    a = it->p;
    amp = memchr(a, '&', (size_t)(it->end - a));
    if (!amp)
        amp = it->end;
    eq = memchr(a, '=', (size_t)(amp - a));
    if (eq) {
        *key = (struct rf_slice){a, (uint32_t)(eq - a)};
        *val = (struct rf_slice){eq + 1, (uint32_t)(amp - eq - 1)};
    } else {
        *key = (struct rf_slice){a, (uint32_t)(amp - a)};
        *val = (struct rf_slice){amp, 0};
    }
    it->p = amp;
    return 1;
}

/* Whether the raw key k decodes (with '+' as space) to exactly `want`. */
static bool key_equals(struct rf_slice k, const char *want)
{
    size_t j = 0;

    for (uint32_t i = 0; i < k.n; i++, j++) {
        int c = (unsigned char)k.p[i];

        if (c == '%') {
            int hi = i + 2 < k.n ? hex_digit((unsigned char)k.p[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit((unsigned char)k.p[i + 2]) : -1;

            if (lo < 0)
                return false;
            c = hi << 4 | lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == 0 || want[j] != (char)c)
            return false;
    }
    return want[j] == '\0';
}

int rf_query_get(struct rf_slice query, const char *key, char *dst, size_t cap)
{
    struct rf_query_it it;
    struct rf_slice k, v;

    rf_query_begin(&it, query);
    while (rf_query_next(&it, &k, &v))
        if (key_equals(k, key))
            return rf_url_decode(v.p, v.n, true, dst, cap);
    return -ENOENT;
}

int rf_parse_u64(struct rf_slice s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    bool over = false;

    if (s.n == 0)
        return -EINVAL;
    for (uint32_t i = 0; i < s.n; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return -EINVAL;
    for (uint32_t i = 0; i < s.n && !over; i++) {
        uint64_t d = (uint64_t)(s.p[i] - '0');

        over = v > (UINT64_MAX - d) / 10;
        v = v * 10 + d;
    }
    if (over || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int rf_path_split(struct rf_slice path, struct rf_slice *segs, uint32_t cap)
{
    const char *p = path.p, *e = path.p + path.n;
    uint32_t n = 0;

    if (path.n == 0 || p[0] != '/')
        return -EINVAL;
    if (path.n == 1) {
        if (cap == 0)
            return -E2BIG;
        segs[0] = (struct rf_slice){p + 1, 0};
        return 1;
    }
    while (p < e) {
        const char *a = p + 1, *b = memchr(a, '/', (size_t)(e - a));

        if (!b)
            b = e;
        if (a == b)
            return b == e ? (int)n : -EINVAL; /* trailing '/' dropped, "//" refused */
        if (n == cap)
            return -E2BIG;
        segs[n++] = (struct rf_slice){a, (uint32_t)(b - a)};
        p = b;
    }
    return (int)n;
}
