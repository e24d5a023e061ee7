/*
 * engine/jparse.c: JSON text to jansson values in one pass (engine/jparse.h has the
 * contract: exactly json_loadb's language, JSON_DECODE_ANY, without JSON_ALLOW_NUL).
 *
 * A cursor (struct jp) walks the bytes; parse_value dispatches on the first byte of a
 * value, containers recurse with a depth count. Strings are scanned once: a string without
 * escapes is validated as UTF-8 and handed to jansson as a slice; one with escapes is
 * decoded into a buffer (on the stack when it fits) and the result validated the same way.
 * Numbers follow RFC 8259's grammar exactly, then integers are converted with strtoll and
 * reals with strtod from a NUL-terminated copy (numbers are short; longer than
 * NUM_BYTES_MAX is refused, which jansson would accept only for absurd inputs).
 */
#include "engine/jparse.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STR_STACK_BYTES 512u
#define NUM_BYTES_MAX   512u

struct jp {
    const unsigned char *p, *end;
    uint32_t depth;
};

static json_t *parse_value(struct jp *j);

static void skip_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* --- UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF) ------------------------ */

/* Length of the valid sequence at s (s < end), or 0. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n = (size_t)(end - s);

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
            return 0; /* overlong, or a surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
            return 0; /* overlong, or past U+10FFFF */
        return 4;
    }
    return 0;
}

static size_t utf8_put(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* --- strings ---------------------------------------------------------------------------------- */

static int hex4(const unsigned char *s, const unsigned char *end, uint32_t *out)
{
    uint32_t v = 0;

    if (end - s < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* One escape after the backslash at j->p (already past it): its bytes into o. */
static int unescape(struct jp *j, unsigned char *o, size_t *n)
{
    uint32_t cp, lo;

    if (j->p >= j->end)
        return -1;
    switch (*j->p++) {
    case '"': o[0] = '"'; break;
    case '\\': o[0] = '\\'; break;
    case '/': o[0] = '/'; break;
    case 'b': o[0] = '\b'; break;
    case 'f': o[0] = '\f'; break;
    case 'n': o[0] = '\n'; break;
    case 'r': o[0] = '\r'; break;
    case 't': o[0] = '\t'; break;
    case 'u':
        if (hex4(j->p, j->end, &cp) < 0)
            return -1;
        j->p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return -1; /* a lone low surrogate */
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                hex4(j->p + 2, j->end, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                return -1;
            j->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0)
            return -1; /* NUL is not allowed */
        *n = utf8_put(cp, o);
        return 0;
    default:
        return -1;
    }
    *n = 1;
    return 0;
}

/* Past the run of plain bytes at p: printable ASCII other than '"' and '\\', eight at a
 * time while there are eight (SWAR: a byte below 0x20, equal to '"' or '\\', or with its
 * high bit set stops the word; the bytewise loop then finds which). */
static const unsigned char *plain_run(const unsigned char *p, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t quote = w ^ (ones * '"'), bsl = w ^ (ones * '\\');
        uint64_t low = (w - ones * 0x20) & ~w & highs;    /* some byte < 0x20 */
        uint64_t q = (quote - ones) & ~quote & highs;     /* some byte == '"' */
        uint64_t b = (bsl - ones) & ~bsl & highs;         /* some byte == '\\' */
        if ((low | q | b | (w & highs)) != 0)
            break;
        p += 8;
    }
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* The string at j->p (just past its opening quote): its decoded bytes in *out (the input
 * itself when there is no escape, else buf or a malloc'd block in *heap). */
static int scan_string(struct jp *j, unsigned char *buf, size_t cap, unsigned char **heap,
                       const unsigned char **out, size_t *len)
{
    const unsigned char *s = j->p;
    bool esc = false;

    *heap = NULL;
    while (j->p < j->end && *j->p != '"') { /* a first pass: validate, find the end */
        j->p = plain_run(j->p, j->end);
        if (j->p >= j->end || *j->p == '"')
            break;
        unsigned c = *j->p;
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (j->end - j->p < 2)
                return -1;
            esc = true;
            j->p += 2; /* the escape is checked in the decoding pass */
            continue;
        }
        size_t k = utf8_seq(j->p, j->end);
        if (!k)
            return -1;
        j->p += k;
    }
    if (j->p >= j->end)
        return -1;
    const unsigned char *e = j->p++; /* past the closing quote */
    if (!esc) {
        *out = s;
        *len = (size_t)(e - s);
        return 0;
    }
    size_t raw = (size_t)(e - s);
    unsigned char *o = raw <= cap ? buf : (*heap = malloc(raw));
    if (!o)
        return -1;
    struct jp d = {.p = s, .end = e};
    size_t n = 0, k;
    while (d.p < d.end) {
        if (*d.p != '\\') {
            o[n++] = *d.p++;
            continue;
        }
        d.p++;
        if (unescape(&d, o + n, &k) < 0)
            return -1; /* *heap is freed by the caller */
        n += k;
    }
    *out = o;
    *len = n;
    return 0;
}

static json_t *parse_string(struct jp *j)
{
    unsigned char buf[STR_STACK_BYTES], *heap;
    const unsigned char *s;
    size_t n;
    json_t *v = NULL;

    if (scan_string(j, buf, sizeof(buf), &heap, &s, &n) == 0)
        v = json_stringn_nocheck((const char *)s, n);
    free(heap);
    return v;
}

/* --- numbers ------------------------------------------------------------------------------------ */

static bool digit(const struct jp *j)
{
    return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

static json_t *parse_number(struct jp *j)
{
    const unsigned char *s = j->p;
    bool real = false;
    char tmp[NUM_BYTES_MAX + 1];

    if (*j->p == '-')
        j->p++;
    if (!digit(j))
        return NULL;
    if (*j->p == '0') {
        j->p++;
        if (digit(j))
            return NULL; /* a leading zero */
    } else {
        while (digit(j))
            j->p++;
    }
    if (j->p < j->end && *j->p == '.') {
        real = true;
        j->p++;
        if (!digit(j))
            return NULL;
        while (digit(j))
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        real = true;
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digit(j))
            return NULL;
        while (digit(j))
            j->p++;
    }
    size_t n = (size_t)(j->p - s);
    if (n > NUM_BYTES_MAX)
        return NULL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!real && n <= 18) { /* at most 18 digits: no overflow, no strtoll */
        const unsigned char *d = s + (*s == '-');
        int64_t v = 0;
        while (d < j->p)
            v = v * 10 + (*d++ - '0');
        return json_integer((json_int_t)(*s == '-' ? -v : v));
    }
    errno = 0;
    if (!real) {
        long long v = strtoll(tmp, NULL, 10);
        return errno == ERANGE ? NULL : json_integer((json_int_t)v);
    }
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
        return NULL; /* overflow; an underflow to 0 is fine, as for jansson */
    return json_real(d);
}

/* --- containers ------------------------------------------------------------------------------------ */

static bool take(struct jp *j, unsigned char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static json_t *parse_array(struct jp *j)
{
    json_t *a = json_array();

    if (!a)
        return NULL;
    if (take(j, ']'))
        return a;
    do {
        json_t *v = parse_value(j);
        if (!v || json_array_append_new(a, v) < 0)
            goto err;
    } while (take(j, ','));
    if (take(j, ']'))
        return a;
err:
    json_decref(a);
    return NULL;
}

static json_t *parse_object(struct jp *j)
{
    json_t *o = json_object();
    unsigned char buf[STR_STACK_BYTES], *heap = NULL;

    if (!o)
        return NULL;
    if (take(j, '}'))
        return o;
    do {
        const unsigned char *k;
        size_t kn;
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"')
            goto err;
        j->p++;
        if (scan_string(j, buf, sizeof(buf), &heap, &k, &kn) < 0 || !take(j, ':'))
            goto err;
        json_t *v = parse_value(j);
        /* jansson copies the key: buf and heap may be reused at once. */
        if (!v || json_object_setn_new_nocheck(o, (const char *)k, kn, v) < 0)
            goto err;
        free(heap);
        heap = NULL;
    } while (take(j, ','));
    if (take(j, '}'))
        return o;
err:
    free(heap);
    json_decref(o);
    return NULL;
}

static bool word(struct jp *j, const char *w, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return false;
    j->p += n;
    return true;
}

static json_t *parse_value(struct jp *j)
{
    json_t *v = NULL;

    skip_ws(j);
    if (j->p >= j->end)
        return NULL;
    switch (*j->p) {
    case '{':
    case '[':
        if (++j->depth > RF_JPARSE_DEPTH_MAX)
            return NULL;
        v = *j->p++ == '{' ? parse_object(j) : parse_array(j);
        j->depth--;
        return v;
    case '"':
        j->p++;
        return parse_string(j);
    case 't': return word(j, "true", 4) ? json_true() : NULL;
    case 'f': return word(j, "false", 5) ? json_false() : NULL;
    case 'n': return word(j, "null", 4) ? json_null() : NULL;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return parse_number(j);
        return NULL;
    }
}

json_t *rf_json_parse(const char *text, size_t len)
{
    struct jp j = {.p = (const unsigned char *)text, .end = (const unsigned char *)text + len};
    json_t *v = parse_value(&j);

    skip_ws(&j);
    if (v && j.p != j.end) {
        json_decref(v);
        return NULL;
    }
    return v;
}
