/*
 * tests/engine/test_jcs.c: RFC 8785 canonicalization (engine/jcs.c) and the lineage hash.
 *
 * Expected values come from outside the code under test:
 *   - the RFC's own examples: the serialization sample of section 3.2.2 (with its UTF-8
 *     hex), the sorting sample of section 3.2.3, and every number of Appendix B;
 *   - numbers beyond those are checked against an oracle built here from the C library
 *     with directed rounding: the output must read back as the same double, no decimal
 *     with one digit fewer (rounded down or up from the exact binary value, which glibc's
 *     printf writes out in full) may read back, and among the k-digit ones it must be the
 *     nearest (or, below a power of two, the one on the other side). That runs over every
 *     power of two and its neighbours and 3 x RANDOM_DOUBLES other doubles;
 *   - string escapes against a byte-by-byte reference escaper, at every offset of strings
 *     up to 40 bytes (the scanner works 8 bytes at a time), and key order against a
 *     comparator that really converts to UTF-16;
 *   - the lineage vectors were computed with a separate Python canonicalizer (shortest
 *     digits from Python's repr(), keys sorted by their UTF-16BE bytes) and xxhsum:
 *
 *       python3 lineage_ref.py KIND VERSION 'PARAMS-JSON' | xxhsum -H2
 *
 *     xxhsum 0.8.1 prints XXH128 in canonical (big-endian) order, the same bytes as
 *     XXH128_canonicalFromHash, so its 32 hex digits are the lineage hash as written.
 *     lineage_ref.py is printed in full in docs/lineage.md, with the table of vectors.
 */
#include <errno.h>
#include <math.h> /* isfinite, fabs, NAN: builtins (the tests link no libm) */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "engine/jcs.h"

#define RANDOM_DOUBLES  20000u
#define ESCAPE_LEN_MAX  40u
#define LARGE_KEYS      3000u
#define NESTED_WIDTH    70u
#define KEY_BYTES_MAX   16u
#define UTF16_UNITS_MAX 16u
#define NUM_TEXT_MAX    64u
#define EXACT_DIGITS    800 /* more than the 767 significant digits a double can have */
#define RF_MIN_T(a, b)  ((a) < (b) ? (a) : (b))
#define RAW_LARGE_BYTES (200u * 1024u)

/* --- helpers ------------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double from_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

/* JCS of v as a NUL-terminated heap string (asserts success). */
static char *jcs_of(const json_t *v, size_t *len)
{
    struct rf_buf b = {0};
    char *s;

    assert_int_equal(rf_jcs_write(v, &b), 0);
    s = malloc(b.len + 1);
    assert_non_null(s);
    memcpy(s, b.p, b.len);
    s[b.len] = '\0';
    if (len)
        *len = b.len;
    rf_buf_free(&b);
    return s;
}

static void assert_jcs_text(const char *json_in, const char *want)
{
    json_error_t err;
    json_t *v = json_loads(json_in, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    char *got;

    if (!v)
        fail_msg("json_loads: %s (%s)", err.text, json_in);
    got = jcs_of(v, NULL);
    assert_string_equal(got, want);
    free(got);
    json_decref(v);
}

static void assert_jcs_error(const json_t *v, int want)
{
    struct rf_buf b = {0};

    assert_int_equal(rf_buf_append(&b, "keep", 4), 0);
    assert_int_equal(rf_jcs_write(v, &b), want);
    assert_int_equal(b.len, 4); /* restored */
    assert_memory_equal(b.p, "keep", 4);
    rf_buf_free(&b);
}

/* --- numbers: RFC 8785 Appendix B ---------------------------------------------------------- */

static const struct {
    uint64_t bits;
    const char *text;
} rfc_numbers[] = {
    {0x0000000000000000ULL, "0"},
    {0x8000000000000000ULL, "0"},
    {0x0000000000000001ULL, "5e-324"},
    {0x8000000000000001ULL, "-5e-324"},
    {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
    {0xffefffffffffffffULL, "-1.7976931348623157e+308"},
    {0x4340000000000000ULL, "9007199254740992"},
    {0xc340000000000000ULL, "-9007199254740992"},
    {0x4430000000000000ULL, "295147905179352830000"},
    {0x44b52d02c7e14af5ULL, "9.999999999999997e+22"},
    {0x44b52d02c7e14af6ULL, "1e+23"},
    {0x44b52d02c7e14af7ULL, "1.0000000000000001e+23"},
    {0x444b1ae4d6e2ef4eULL, "999999999999999700000"},
    {0x444b1ae4d6e2ef4fULL, "999999999999999900000"},
    {0x444b1ae4d6e2ef50ULL, "1e+21"},
    {0x3eb0c6f7a0b5ed8cULL, "9.999999999999997e-7"},
    {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
    {0x41b3de4355555553ULL, "333333333.3333332"},
    {0x41b3de4355555554ULL, "333333333.33333325"},
    {0x41b3de4355555555ULL, "333333333.3333333"},
    {0x41b3de4355555556ULL, "333333333.3333334"},
    {0x41b3de4355555557ULL, "333333333.33333343"},
    {0xbecbf647612f3696ULL, "-0.0000033333333333333333"},
    {0x43143ff3c1cb0959ULL, "1424953923781206.2"},
};

static void test_rfc_numbers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc_numbers) / sizeof(rfc_numbers[0]); i++) {
        char out[RF_JCS_NUMBER_BYTES];
        int n = rf_jcs_number(from_bits(rfc_numbers[i].bits), out);
        assert_int_equal(n, (int)strlen(rfc_numbers[i].text));
        assert_string_equal(out, rfc_numbers[i].text);
    }
}

static void test_number_refused(void **state)
{
    /* Appendix B's NaN and Infinity rows: not JSON. */
    static const uint64_t bad[] = {0x7fffffffffffffffULL, 0x7ff8000000000000ULL,
                                   0xfff8000000000001ULL, 0x7ff0000000000000ULL,
                                   0xfff0000000000000ULL};
    char out[RF_JCS_NUMBER_BYTES];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rf_jcs_number(from_bits(bad[i]), out), -EINVAL);
    assert_int_equal(rf_jcs_number(NAN, out), -EINVAL);
    assert_int_equal(rf_jcs_number(-INFINITY, out), -EINVAL);
}

/* Layout boundaries of Number::toString and powers of two where the nearest decimal of the
 * shortest length does not read back but the next one up does (values from Python's
 * repr(), which picks the shortest round-trip digits by David Gay's algorithm). */
static void test_number_layout(void **state)
{
    static const struct {
        double d;
        const char *text;
    } v[] = {
        {1e21, "1e+21"},
        {1e20, "100000000000000000000"},
        {123456789012345680000.0, "123456789012345680000"},
        {1.5e21, "1.5e+21"},
        {1e-6, "0.000001"},
        {1.25e-6, "0.00000125"},
        {1e-7, "1e-7"},
        {1.5e-7, "1.5e-7"},
        {0.1, "0.1"},
        {-0.5, "-0.5"},
        {0.30000000000000004, "0.30000000000000004"},
        {123.456, "123.456"},
        {4.5, "4.5"},
        {2e-3, "0.002"},
        {1e30, "1e+30"},
        {1e-27, "1e-27"},
        {9007199254740993.0, "9007199254740992"},
        {9007199254740994.0, "9007199254740994"},
        {-1.0, "-1"},
        {5e-324 * 3, "1.5e-323"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {0x1p-1017, "7.120236347223045e-307"},
        {0x1p-1007, "7.291122019556398e-304"},
        {0x1p-140, "7.174648137343064e-43"},
    };
    char out[RF_JCS_NUMBER_BYTES];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_true(rf_jcs_number(v[i].d, out) > 0);
        assert_string_equal(out, v[i].text);
    }
}

/* Parse our own output: sign, significant digits (no leading or trailing zero) and n, the
 * exponent with value = 0.DIGITS * 10^n. Also checks the JSON number grammar loosely. */
static void parse_number(const char *s, bool *neg, char *dig, int *n)
{
    const char *e = strchr(s, 'e');
    size_t mlen = e ? (size_t)(e - s) : strlen(s), k = 0, ip = 0, lead = 0;
    bool dot = false;

    *neg = s[0] == '-';
    for (size_t i = *neg; i < mlen; i++) {
        if (s[i] == '.') {
            assert_false(dot);
            dot = true;
            continue;
        }
        assert_true(s[i] >= '0' && s[i] <= '9');
        if (!dot)
            ip++;
        if (k == 0 && s[i] == '0') {
            lead++;
            continue;
        }
        dig[k++] = s[i];
    }
    while (k > 0 && dig[k - 1] == '0')
        k--;
    dig[k] = '\0';
    *n = (int)ip - (int)lead + (e ? atoi(e + 1) : 0);
    if (e)
        assert_true(e[1] == '+' || e[1] == '-');
}

/* ECMA-262 Number::toString layout, written out again independently. */
static void layout(bool neg, const char *dig, int n, char *out, size_t cap)
{
    const char *sign = neg ? "-" : "";
    int k = (int)strlen(dig);

    if (k <= n && n <= 21)
        snprintf(out, cap, "%s%s%.*s", sign, dig, n - k, "000000000000000000000");
    else if (0 < n && n <= 21)
        snprintf(out, cap, "%s%.*s.%s", sign, n, dig, dig + n);
    else if (-6 < n && n <= 0)
        snprintf(out, cap, "%s0.%.*s%s", sign, -n, "000000", dig);
    else
        snprintf(out, cap, "%s%c%s%se%c%d", sign, dig[0], k > 1 ? "." : "", dig + 1,
                 n - 1 < 0 ? '-' : '+', abs(n - 1));
}

/* The exact decimal expansion of a > 0 (glibc prints every digit when asked for enough):
 * digits without leading or trailing zeros, and n with a = 0.DIGITS * 10^n. */
static void exact_digits(double a, char *dig, int *n)
{
    char s[EXACT_DIGITS + 16];
    bool neg;

    snprintf(s, sizeof(s), "%.*e", EXACT_DIGITS - 1, a);
    parse_number(s, &neg, dig, n);
    assert_true(strlen(dig) < EXACT_DIGITS - 1); /* really exact: zeros were left over */
}

enum dir { DIR_DOWN, DIR_UP, DIR_NEAREST };

/* The k-digit decimal below (or at), above (or at) or nearest (ties to even) the exact
 * value E * 10^n, as digits without trailing zeros and its own n. */
static void k_digits(const char *e, int n, int k, enum dir dir, char *out, int *on)
{
    size_t el = strlen(e);
    bool up;

    memset(out, '0', (size_t)k);
    memcpy(out, e, RF_MIN_T(el, (size_t)k));
    out[k] = '\0';
    *on = n;
    if (el <= (size_t)k)
        up = false; /* exact */
    else if (dir != DIR_NEAREST)
        up = dir == DIR_UP;
    else if (e[k] != '5')
        up = e[k] > '5';
    else
        up = el > (size_t)k + 1 || (out[k - 1] - '0') % 2 == 1; /* above half, or a tie */
    if (up) {
        int i = k - 1;
        while (i >= 0 && out[i] == '9')
            out[i--] = '0';
        if (i >= 0) {
            out[i]++;
        } else {
            out[0] = '1';
            (*on)++;
        }
    }
    for (int i = k - 1; i > 0 && out[i] == '0'; i--)
        out[i] = '\0';
}

static bool reads_back(const char *dig, int n, double a)
{
    char s[NUM_TEXT_MAX + 16];

    snprintf(s, sizeof(s), "0.%se%d", dig, n);
    return strtod(s, NULL) == a;
}

static void check_number(double d)
{
    char out[RF_JCS_NUMBER_BYTES], want[2 * NUM_TEXT_MAX], dig[NUM_TEXT_MAX];
    char ex[EXACT_DIGITS + 16], lo[NUM_TEXT_MAX], hi[NUM_TEXT_MAX], nr[NUM_TEXT_MAX];
    int n, en, ln, hn, nn, len = rf_jcs_number(d, out);
    double a = fabs(d);
    bool neg;

    assert_true(len > 0 && len == (int)strlen(out));
    assert_true(strtod(out, NULL) == d || (d == 0 && strtod(out, NULL) == 0));
    if (d == 0) {
        assert_string_equal(out, "0");
        return;
    }
    parse_number(out, &neg, dig, &n);
    assert_true(neg == (d < 0));
    layout(neg, dig, n, want, sizeof(want));
    assert_string_equal(out, want); /* the layout rule for these digits */
    int k = (int)strlen(dig);
    exact_digits(a, ex, &en);
    /* Digits: the nearest k-digit decimal if it reads back, else the one on the other side. */
    k_digits(ex, en, k, DIR_DOWN, lo, &ln);
    k_digits(ex, en, k, DIR_UP, hi, &hn);
    k_digits(ex, en, k, DIR_NEAREST, nr, &nn);
    if (!reads_back(nr, nn, a)) {
        bool was_lo = strcmp(nr, lo) == 0 && nn == ln;
        strcpy(nr, was_lo ? hi : lo);
        nn = was_lo ? hn : ln;
    }
    assert_string_equal(dig, nr);
    assert_int_equal(n, nn);
    /* Shortest: neither neighbour with k - 1 digits reads back. */
    if (k > 1) {
        k_digits(ex, en, k - 1, DIR_DOWN, lo, &ln);
        k_digits(ex, en, k - 1, DIR_UP, hi, &hn);
        assert_false(reads_back(lo, ln, a));
        assert_false(reads_back(hi, hn, a));
    }
}

static void test_number_oracle(void **state)
{
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    double scale[61];

    (void)state;
    scale[30] = 1;
    for (int i = 31; i <= 60; i++)
        scale[i] = scale[i - 1] * 10;
    for (int i = 29; i >= 0; i--)
        scale[i] = scale[i + 1] / 10;
    for (uint64_t e = 0; e < 2047; e++) { /* every power of two, and their neighbours */
        check_number(from_bits(e << 52));
        check_number(-from_bits(e << 52));
        check_number(from_bits((e << 52) | 1));
        check_number(from_bits((e << 52) - (e > 0)));
    }
    for (unsigned i = 0; i < RANDOM_DOUBLES; i++) {
        uint64_t r = rng_next(&seed);
        double d = from_bits(r);
        if (isfinite(d))
            check_number(d);
        /* short decimals (the fast path) at many scales */
        check_number((double)(int64_t)(r % 2000001) / 1000.0 - 1000.0);
        check_number((double)(r % 100000) * scale[rng_next(&seed) % 61]);
    }
}

/* jansson integers go through the double a JavaScript reader would see. */
static void test_integers(void **state)
{
    static const struct {
        json_int_t i;
        const char *text;
    } v[] = {
        {0, "0"},
        {-1, "-1"},
        {9007199254740992LL, "9007199254740992"},
        {9007199254740993LL, "9007199254740992"},
        {-9007199254740993LL, "-9007199254740992"},
        {9007199254740995LL, "9007199254740996"},
        {INT64_MAX, "9223372036854776000"},
        {INT64_MIN, "-9223372036854776000"},
        {1000000000000000000LL, "1000000000000000000"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        json_t *j = json_integer(v[i].i);
        char *got = jcs_of(j, NULL);
        assert_string_equal(got, v[i].text);
        free(got);
        json_decref(j);
    }
}

/* --- RFC 8785 section 3.2.2 and 3.2.3 ------------------------------------------------------- */

static void test_rfc_serialization_sample(void **state)
{
    static const char in[] =
        "{\n"
        "  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
        "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
        "  \"literals\": [null, true, false]\n"
        "}";
    /* The RFC's UTF-8 of the canonical form, in hex. */
    static const char hex[] =
        "7b226c69746572616c73223a5b6e756c6c2c747275652c66616c73655d2c226e756d62657273223a5b33"
        "33333333333333332e333333333333332c31652b33302c342e352c302e3030322c31652d32375d2c2273"
        "7472696e67223a22e282ac245c75303030665c6e4127425c225c5c5c5c5c222f227d";
    json_t *v = json_loads(in, 0, NULL);
    size_t len;
    char *got, h[3];

    (void)state;
    assert_non_null(v);
    got = jcs_of(v, &len);
    assert_string_equal(got, "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,"
                             "1e+30,4.5,0.002,1e-27],\"string\":\"\xe2\x82\xac$\\u000f\\nA'B"
                             "\\\"\\\\\\\\\\\"/\"}");
    assert_int_equal(len * 2, strlen(hex));
    for (size_t i = 0; i < len; i++) {
        snprintf(h, sizeof(h), "%02x", (unsigned char)got[i]);
        assert_memory_equal(h, hex + 2 * i, 2);
    }
    free(got);
    json_decref(v);
}

static void test_rfc_sorting_sample(void **state)
{
    (void)state;
    assert_jcs_text("{\"\\u20ac\": \"Euro Sign\", \"\\r\": \"Carriage Return\","
                    " \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\", \"1\": \"One\","
                    " \"\\ud83d\\ude00\": \"Emoji: Grinning Face\", \"\\u0080\": \"Control\","
                    " \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"}",
                    "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
                    "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":"
                    "\"Euro Sign\",\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
                    "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

static void test_literals_and_containers(void **state)
{
    (void)state;
    assert_jcs_text("null", "null");
    assert_jcs_text("true", "true");
    assert_jcs_text("false", "false");
    assert_jcs_text("[]", "[]");
    assert_jcs_text("{}", "{}");
    assert_jcs_text(" [ 1 , [ ] , { } , \"\" , -0.0 , 1.0 ] ", "[1,[],{},\"\",0,1]");
    assert_jcs_text("{\"b\":[{\"z\":1,\"y\":{\"d\":4,\"c\":3}}],\"a\":\"x\"}",
                    "{\"a\":\"x\",\"b\":[{\"y\":{\"c\":3,\"d\":4},\"z\":1}]}");
    assert_jcs_text("{\"a\":1,\"aa\":2,\"\":3,\"A\":4}", "{\"\":3,\"A\":4,\"a\":1,\"aa\":2}");
}

/* --- strings ---------------------------------------------------------------------------- */

/* Every control character, and the characters left alone. */
static void test_string_controls(void **state)
{
    static const char *const want[32] = {
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b",     "\\t",     "\\n",     "\\u000b", "\\f",     "\\r",     "\\u000e", "\\u000f",
        "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    };

    (void)state;
    for (int c = 0; c < 32; c++) {
        char in = (char)c, exp[16];
        json_t *s = json_stringn(&in, 1);
        char *got;
        assert_non_null(s);
        got = jcs_of(s, NULL);
        snprintf(exp, sizeof(exp), "\"%s\"", want[c]);
        assert_string_equal(got, exp);
        free(got);
        json_decref(s);
    }
    assert_jcs_text("\"\\\"\\\\\\/\"", "\"\\\"\\\\/\"");
    /* DEL, U+2028 and U+2029, non-ASCII: raw. */
    assert_jcs_text("\"\\u007f\\u2028\\u2029\\u00e9\\ud83d\\ude00\"",
                    "\"\x7f\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xf0\x9f\x98\x80\"");
}

/* A plain byte-by-byte escaper. */
static size_t ref_escape(const unsigned char *s, size_t len, char *out)
{
    size_t w = 0;

    out[w++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\')
            w += (size_t)sprintf(out + w, "\\%c", c);
        else if (c == '\b')
            w += (size_t)sprintf(out + w, "\\b");
        else if (c == '\f')
            w += (size_t)sprintf(out + w, "\\f");
        else if (c == '\n')
            w += (size_t)sprintf(out + w, "\\n");
        else if (c == '\r')
            w += (size_t)sprintf(out + w, "\\r");
        else if (c == '\t')
            w += (size_t)sprintf(out + w, "\\t");
        else if (c < 0x20)
            w += (size_t)sprintf(out + w, "\\u%04x", c);
        else
            out[w++] = (char)c;
    }
    out[w++] = '"';
    return w;
}

/* Each byte the 8-byte scanner must notice (and its neighbours it must not), at every
 * offset of strings of every length up to ESCAPE_LEN_MAX. */
static void test_string_offsets(void **state)
{
    static const unsigned char probe[] = {0x00, 0x1f, 0x20, 0x21, 0x22, 0x23,
                                          0x5b, 0x5c, 0x5d, 0x7e, 0x7f};
    unsigned char in[ESCAPE_LEN_MAX + 4];
    char want[ESCAPE_LEN_MAX * 6 + 8];

    (void)state;
    for (size_t len = 1; len <= ESCAPE_LEN_MAX; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t p = 0; p < sizeof(probe); p++) {
                memset(in, 'a', len);
                in[at] = probe[p];
                if (len > 1 && p % 2) /* a second one further on, sometimes */
                    in[(at + 9) % len] = '\t';
                json_t *s = json_stringn((const char *)in, len);
                size_t wl = ref_escape(in, len, want), gl;
                char *got = jcs_of(s, &gl);
                assert_int_equal(gl, wl);
                assert_memory_equal(got, want, wl);
                free(got);
                json_decref(s);
            }
        }
        /* a multi-byte character at each offset: copied raw */
        for (size_t at = 0; at + 4 <= len; at++) {
            memset(in, 'b', len);
            memcpy(in + at, "\xf0\x9f\x98\x80", 4);
            json_t *s = json_stringn((const char *)in, len);
            size_t wl = ref_escape(in, len, want), gl;
            char *got = jcs_of(s, &gl);
            assert_int_equal(gl, wl);
            assert_memory_equal(got, want, wl);
            free(got);
            json_decref(s);
        }
    }
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\x80",
        "\xbf",
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xe2\x82",
        "\xc3",
        "\xf0\x9f\x98",
        "\xe2\x28\xa1",
        "\xc3\x28",
        "abcdefgh\xc3",
        "abcdefghijklmnop\xed\xa0\x80xyz",
    };
    static const char *const good[] = {"\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80",
                                       "\xef\xbf\xbf",     "\xc2\x80",     "\xe0\xa0\x80",
                                       "\xf0\x90\x80\x80"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *s = json_stringn_nocheck(bad[i], strlen(bad[i]));
        json_t *o = json_object();
        assert_non_null(s);
        assert_jcs_error(s, -EINVAL);
        assert_int_equal(json_object_setn_nocheck(o, bad[i], strlen(bad[i]), json_true()), 0);
        assert_jcs_error(o, -EINVAL);
        json_decref(s);
        json_decref(o);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *s = json_string(good[i]);
        char want[16], *got;
        assert_non_null(s);
        got = jcs_of(s, NULL);
        snprintf(want, sizeof(want), "\"%s\"", good[i]);
        assert_string_equal(got, want);
        free(got);
        json_decref(s);
    }
}

/* NUL inside strings and keys (jansson's *n functions, JSON_ALLOW_NUL). */
static void test_nul_bytes(void **state)
{
    json_t *o = json_object();
    size_t len;
    char *got;

    (void)state;
    assert_int_equal(json_object_setn_new(o, "a\0b", 3, json_stringn("x\0y", 3)), 0);
    assert_int_equal(json_object_setn_new(o, "a", 1, json_integer(1)), 0);
    got = jcs_of(o, &len);
    assert_int_equal(len, strlen("{\"a\":1,\"a\\u0000b\":\"x\\u0000y\"}"));
    assert_string_equal(got, "{\"a\":1,\"a\\u0000b\":\"x\\u0000y\"}");
    free(got);
    json_decref(o);
}

/* --- key order ---------------------------------------------------------------------------- */

static size_t to_utf16(const unsigned char *s, size_t len, uint16_t *u)
{
    size_t i = 0, n = 0;

    while (i < len) {
        uint32_t cp;
        if (s[i] < 0x80) {
            cp = s[i++];
        } else if (s[i] < 0xE0) {
            cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
            i += 2;
        } else if (s[i] < 0xF0) {
            cp = (uint32_t)(s[i] & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 |
                 (s[i + 2] & 0x3F);
            i += 3;
        } else {
            cp = (uint32_t)(s[i] & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
                 (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
            i += 4;
        }
        if (cp >= 0x10000) {
            u[n++] = (uint16_t)(0xD800 + ((cp - 0x10000) >> 10));
            u[n++] = (uint16_t)(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            u[n++] = (uint16_t)cp;
        }
    }
    return n;
}

struct key {
    char s[KEY_BYTES_MAX + 1];
    size_t len;
};

static int utf16_cmp(const void *pa, const void *pb)
{
    const struct key *a = pa, *b = pb;
    uint16_t ua[UTF16_UNITS_MAX], ub[UTF16_UNITS_MAX];
    size_t na = to_utf16((const unsigned char *)a->s, a->len, ua);
    size_t nb = to_utf16((const unsigned char *)b->s, b->len, ub);

    for (size_t i = 0; i < na && i < nb; i++)
        if (ua[i] != ub[i])
            return ua[i] < ub[i] ? -1 : 1;
    return (na > nb) - (na < nb);
}

static size_t put_cp(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A random key of 1..3 characters drawn from the ranges whose order differs between
 * UTF-8 and UTF-16, with shared prefixes so the comparator looks past the first byte. */
static void random_key(uint64_t *seed, struct key *k)
{
    static const uint32_t pool[] = {'a',    'b',    'z',     0x7F,    0x80,    0xFF,
                                    0x7FF,  0x800,  0xD7FF,  0xE000,  0xE001,  0xFB33,
                                    0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x1F601, 0x10FFFF};
    size_t n = 1 + rng_next(seed) % 3;

    k->len = 0;
    for (size_t i = 0; i < n; i++)
        k->len += put_cp(pool[rng_next(seed) % (sizeof(pool) / sizeof(pool[0]))], k->s + k->len);
    k->s[k->len] = '\0';
}

static void test_key_order_large(void **state)
{
    struct key *keys = calloc(LARGE_KEYS, sizeof(*keys));
    json_t *o = json_object();
    uint64_t seed = 42;
    size_t n = 0;
    char *got;
    struct rf_buf want = {0};

    (void)state;
    while (n < LARGE_KEYS) { /* distinct keys (of 6,174 possible), in random order */
        random_key(&seed, &keys[n]);
        if (json_object_getn(o, keys[n].s, keys[n].len))
            continue;
        assert_int_equal(json_object_setn_new(o, keys[n].s, keys[n].len, json_integer(0)), 0);
        n++;
    }
    qsort(keys, n, sizeof(*keys), utf16_cmp);
    assert_int_equal(rf_buf_append(&want, "{", 1), 0);
    for (size_t i = 0; i < n; i++) {
        char num[8];
        json_integer_set(json_object_getn(o, keys[i].s, keys[i].len), (json_int_t)i);
        snprintf(num, sizeof(num), "%zu", i);
        if (i)
            assert_int_equal(rf_buf_append(&want, ",", 1), 0);
        assert_int_equal(rf_buf_append(&want, "\"", 1), 0);
        assert_int_equal(rf_buf_append(&want, keys[i].s, keys[i].len), 0);
        assert_int_equal(rf_buf_append(&want, "\":", 2), 0);
        assert_int_equal(rf_buf_append(&want, num, strlen(num)), 0);
    }
    assert_int_equal(rf_buf_append(&want, "}", 1), 0);
    size_t len;
    got = jcs_of(o, &len);
    assert_int_equal(len, want.len);
    assert_memory_equal(got, want.p, want.len);
    free(got);
    rf_buf_free(&want);
    json_decref(o);
    free(keys);
}

/* Objects wide enough to overflow the on-stack member area, nested, so the member stack
 * grows while outer objects are still being written. Checked structurally: parsing the
 * output gives an equal value, canonicalizing that again gives the same bytes, and at
 * every level the keys come out in UTF-16 order. */
static json_t *wide_object(uint64_t *seed, unsigned depth)
{
    json_t *o = json_object();

    while (json_object_size(o) < NESTED_WIDTH) {
        struct key k;
        random_key(seed, &k);
        json_t *v =
            depth ? wide_object(seed, depth - 1) : json_real((double)(rng_next(seed) % 1000) / 8);
        json_object_setn_new(o, k.s, k.len, v);
    }
    return o;
}

static void assert_keys_ordered(const json_t *o)
{
    struct key prev = {.len = 0}, cur;
    bool first = true;

    if (!json_is_object(o))
        return;
    for (void *it = json_object_iter((json_t *)o); it;
         it = json_object_iter_next((json_t *)o, it)) {
        cur.len = json_object_iter_key_len(it);
        assert_true(cur.len <= KEY_BYTES_MAX);
        memcpy(cur.s, json_object_iter_key(it), cur.len);
        if (!first)
            assert_true(utf16_cmp(&prev, &cur) < 0);
        prev = cur;
        first = false;
        assert_keys_ordered(json_object_iter_value(it));
    }
}

static void test_nested_wide(void **state)
{
    uint64_t seed = 7;
    json_t *o = wide_object(&seed, 1), *back;
    size_t len, len2;
    char *a, *b;

    (void)state;
    a = jcs_of(o, &len);
    /* reals only (3.0 is written "3"); jansson keeps the text's member order */
    back = json_loadb(a, len, JSON_DECODE_INT_AS_REAL, NULL);
    assert_non_null(back);
    assert_true(json_equal(o, back));
    assert_keys_ordered(back);
    b = jcs_of(back, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(a, b, len);
    free(a);
    free(b);
    json_decref(back);
    json_decref(o);
}

/* --- depth and errors --------------------------------------------------------------------- */

static json_t *nest(unsigned levels, bool objects)
{
    json_t *v = json_integer(1);

    for (unsigned i = 0; i < levels; i++) {
        json_t *c = objects ? json_object() : json_array();
        if (objects)
            json_object_set_new(c, "k", v);
        else
            json_array_append_new(c, v);
        v = c;
    }
    return v;
}

static void test_depth(void **state)
{
    (void)state;
    for (int objects = 0; objects < 2; objects++) {
        json_t *ok = nest(RF_JCS_DEPTH_MAX, objects), *deep = nest(RF_JCS_DEPTH_MAX + 1, objects);
        size_t len;
        char *got = jcs_of(ok, &len);
        assert_int_equal(len, RF_JCS_DEPTH_MAX * (objects ? 6u : 2u) + 1);
        free(got);
        assert_jcs_error(deep, -ELOOP);
        json_decref(ok);
        json_decref(deep);
    }
}

static void test_cycle(void **state)
{
    json_t *a = json_array(), *b = json_object();

    (void)state;
    json_array_append(a, b);
    json_object_set(b, "a", a); /* a -> b -> a */
    assert_jcs_error(a, -ELOOP);
    json_object_clear(b); /* break the cycle so both can be freed */
    json_decref(b);
    json_decref(a);
}

static void test_buf(void **state)
{
    struct rf_buf b = {0};

    (void)state;
    assert_int_equal(rf_buf_append(&b, NULL, 0), 0);
    assert_int_equal(b.len, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rf_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= b.len);
    assert_memory_equal(b.p + 9990, "0123456789", 10);
    assert_int_equal(rf_buf_reserve(&b, RF_BUF_BYTES_MAX), -ENOMEM);
    assert_int_equal(rf_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    assert_int_equal(b.len, 10000);
    rf_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

/* --- lineage ------------------------------------------------------------------------------ */

static const struct {
    const char *kind, *version, *params, *jcs, *hash;
} lineage_vectors[] = {
    {"noop", "", NULL, "null", "b4e7896f1ad4d2a409f25cee7b16fd4e"},
    {"transform", "", "{}", "{}", "f2ac3a6913e0e90c4993c3795dae3a2f"},
    {"http", "",
     "{\"url\": \"http://127.0.0.1:9000/orders/42\", \"method\": \"GET\", \"headers\": "
     "{\"x-request-id\": \"r-7\", \"accept\": \"application/json\"}, \"ok_status\": [200, 299], "
     "\"body\": {\"qty\": 3, \"note\": \"caf\\u00e9\"}, \"timeout_ms\": 2000}",
     "{\"body\":{\"note\":\"caf\xc3\xa9\",\"qty\":3},\"headers\":{\"accept\":\"application/json\","
     "\"x-request-id\":\"r-7\"},\"method\":\"GET\",\"ok_status\":[200,299],\"timeout_ms\":2000,"
     "\"url\":\"http://127.0.0.1:9000/orders/42\"}",
     "48916bb078969d84d00f5d687eea0ac2"},
    {"transform", "",
     "{\"\\u20ac\": 1, \"\\r\": 2, \"\\ufb33\": 3, \"1\": 4, \"\\ud83d\\ude00\": 5, "
     "\"\\u0080\": 6, \"\\u00f6\": 7, \"\\ue000\": 8}",
     "{\"\\r\":2,\"1\":4,\"\xc2\x80\":6,\"\xc3\xb6\":7,\"\xe2\x82\xac\":1,\"\xf0\x9f\x98\x80\":5,"
     "\"\xee\x80\x80\":8,\"\xef\xac\xb3\":3}",
     "0d13261fc2d9b7e3a0c6249ed606abbc"},
    {"transform", "",
     "{\"big\": 1e21, \"below\": 999999999999999900000.0, \"small\": 1e-7, \"edge\": 0.000001, "
     "\"tiny\": -5e-324, \"max\": 1.7976931348623157e308, \"third\": 333333333.33333329, "
     "\"int\": 9007199254740993, \"neg0\": -0.0, \"half\": 4.50}",
     "{\"below\":999999999999999900000,\"big\":1e+21,\"edge\":0.000001,\"half\":4.5,"
     "\"int\":9007199254740992,\"max\":1.7976931348623157e+308,\"neg0\":0,\"small\":1e-7,"
     "\"third\":333333333.3333333,\"tiny\":-5e-324}",
     "c890c805b8aba5dd5bc76b2a54cde279"},
    {"http", "2024-06-01", "{\"method\": \"GET\", \"url\": \"http://example.com/\"}",
     "{\"method\":\"GET\",\"url\":\"http://example.com/\"}", "6c386d09cc25d34b2db50b0e07a0ad8d"},
    {"http", "", "{\"method\": \"GET\", \"url\": \"http://example.com/\"}",
     "{\"method\":\"GET\",\"url\":\"http://example.com/\"}", "c66de7541ac1306268e0823573f84013"},
    {"fail", "",
     "{\"message\": \"tab\\there \\\"quoted\\\" back\\\\slash \\u0001\\u001f\\u007f/\", "
     "\"retryable\": false}",
     "{\"message\":\"tab\\there \\\"quoted\\\" back\\\\slash \\u0001\\u001f\x7f/\","
     "\"retryable\":false}",
     "6d2f95b940972a2851dd638b8d8da46b"},
};

static void test_lineage_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(lineage_vectors) / sizeof(lineage_vectors[0]); i++) {
        const char *kind = lineage_vectors[i].kind, *ver = lineage_vectors[i].version;
        const char *jcs = lineage_vectors[i].jcs;
        json_t *p = NULL;
        struct rf_buf scratch = {0};
        uint8_t h[16], hr[16];
        char hex[RF_LINEAGE_HEX_BYTES];
        size_t hl = sizeof(RF_LINEAGE_PREFIX) + strlen(kind) + 1 + strlen(ver) + 1;

        if (lineage_vectors[i].params) {
            p = json_loads(lineage_vectors[i].params, 0, NULL);
            assert_non_null(p);
        }
        assert_int_equal(rf_lineage(kind, ver, p, &scratch, h), 0);
        rf_hex128(h, hex);
        assert_string_equal(hex, lineage_vectors[i].hash);
        /* scratch holds exactly the hashed bytes: header, then JCS */
        assert_int_equal(scratch.len, hl + strlen(jcs));
        assert_memory_equal(scratch.p, RF_LINEAGE_PREFIX, sizeof(RF_LINEAGE_PREFIX));
        assert_memory_equal(scratch.p + hl, jcs, strlen(jcs));
        rf_lineage_raw(kind, ver, jcs, strlen(jcs), hr);
        assert_memory_equal(h, hr, 16);
        /* reusing the scratch buffer changes nothing */
        assert_int_equal(rf_lineage(kind, ver, p, &scratch, hr), 0);
        assert_memory_equal(h, hr, 16);
        rf_buf_free(&scratch);
        json_decref(p);
    }
}

static void test_lineage_fields(void **state)
{
    struct rf_buf s = {0};
    json_t *p = json_pack("{s:i}", "a", 1);
    uint8_t h1[16], h2[16], keep[16];

    (void)state;
    /* NULL version is "" */
    assert_int_equal(rf_lineage("http", NULL, p, &s, h1), 0);
    assert_int_equal(rf_lineage("http", "", p, &s, h2), 0);
    assert_memory_equal(h1, h2, 16);
    /* the separators keep kind and version apart */
    assert_int_equal(rf_lineage("ab", "c", p, &s, h1), 0);
    assert_int_equal(rf_lineage("a", "bc", p, &s, h2), 0);
    assert_memory_not_equal(h1, h2, 16);
    /* errors leave out[] alone */
    memcpy(keep, h1, 16);
    json_t *deep = nest(RF_JCS_DEPTH_MAX + 1, false);
    assert_int_equal(rf_lineage("x", "", deep, &s, h1), -ELOOP);
    assert_memory_equal(h1, keep, 16);
    json_decref(deep);
    rf_buf_free(&s);
    json_decref(p);
}

/* rf_lineage_raw copies small inputs and streams large ones: both must equal XXH3-128 of
 * the concatenation, on either side of the switch. */
static void test_lineage_raw_sizes(void **state)
{
    char *big = malloc(RAW_LARGE_BYTES), *cat = malloc(RAW_LARGE_BYTES + 64);
    static const size_t sizes[] = {0,    1,    4000, 4060, 4061, 4062,
                                   4063, 4064, 4065, 4096, 5000, RAW_LARGE_BYTES};
    size_t hl = sizeof(RF_LINEAGE_PREFIX) + strlen("kind") + 1 + strlen("v1") + 1;

    (void)state;
    for (size_t i = 0; i < RAW_LARGE_BYTES; i++)
        big[i] = (char)('a' + i % 26);
    memcpy(cat, RF_LINEAGE_PREFIX "\0kind\0v1", hl);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t h[16];
        XXH128_canonical_t c;
        memcpy(cat + hl, big, sizes[i]);
        XXH128_canonicalFromHash(&c, XXH3_128bits(cat, hl + sizes[i]));
        rf_lineage_raw("kind", "v1", big, sizes[i], h);
        assert_memory_equal(h, c.digest, 16);
    }
    /* and rf_lineage over a large value agrees with rf_lineage_raw over its JCS */
    json_t *arr = json_array();
    for (int i = 0; i < 20000; i++)
        json_array_append_new(arr, json_sprintf("item-%d", i));
    struct rf_buf s = {0}, j = {0};
    uint8_t h1[16], h2[16];
    assert_int_equal(rf_lineage("transform", "", arr, &s, h1), 0);
    assert_int_equal(rf_jcs_write(arr, &j), 0);
    rf_lineage_raw("transform", "", j.p, j.len, h2);
    assert_memory_equal(h1, h2, 16);
    rf_buf_free(&s);
    rf_buf_free(&j);
    json_decref(arr);
    free(big);
    free(cat);
}

static void test_hex(void **state)
{
    uint8_t h[16];
    char out[RF_LINEAGE_HEX_BYTES];

    (void)state;
    for (int i = 0; i < 16; i++)
        h[i] = (uint8_t)(i * 0x11);
    rf_hex128(h, out);
    assert_string_equal(out, "00112233445566778899aabbccddeeff");
    h[0] = 0xA5;
    h[15] = 0x0F;
    rf_hex128(h, out);
    assert_string_equal(out, "a5112233445566778899aabbccddee0f");
    assert_int_equal(strlen(out), 32);
}

/* --- rf_json_write: the compact writer for the API and events ------------------------------ */

static void expect_plain(json_t *v, const char *want)
{
    struct rf_buf b = {0};

    assert_non_null(v);
    assert_int_equal(rf_json_write(v, &b), 0);
    if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
        fail_msg("rf_json_write gave %.*s, want %s", (int)b.len, b.p, want);
    rf_buf_free(&b);
    json_decref(v);
}

static void test_plain_writer(void **state)
{
    (void)state;
    /* Members keep their order; nothing is sorted. */
    expect_plain(json_pack("{s:i, s:i, s:i}", "z", 1, "a", 2, "m", 3), "{\"z\":1,\"a\":2,\"m\":3}");
    expect_plain(json_object(), "{}");
    expect_plain(json_array(), "[]");
    expect_plain(json_pack("[n, b, b, s]", 1, 0, "x"), "[null,true,false,\"x\"]");
    /* Integers are exact over 64 bits (JCS would round them through a double). */
    expect_plain(json_integer(INT64_MAX), "9223372036854775807");
    expect_plain(json_integer(INT64_MIN), "-9223372036854775808");
    expect_plain(json_integer(9007199254740993LL), "9007199254740993");
    /* Reals read back as reals, with the shortest digits. */
    expect_plain(json_real(2.0), "2.0");
    expect_plain(json_real(-0.0), "0.0");
    expect_plain(json_real(0.1), "0.1");
    expect_plain(json_real(1e21), "1e+21");
    expect_plain(json_real(1.5e-7), "1.5e-7");
    /* Strings: short, long, escapes, multi-byte characters and escapes after a long run. */
    expect_plain(json_string(""), "\"\"");
    expect_plain(json_string("abcdefghijklmnopqrstuvwxyz"), "\"abcdefghijklmnopqrstuvwxyz\"");
    expect_plain(json_string("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
    expect_plain(json_string("0123456789 \xc3\xa9t\xc3\xa9 \t"), "\"0123456789 \xc3\xa9t\xc3\xa9 \\t\"");
    expect_plain(json_pack("{s:{s:[i,{}]}}", "k\"", "x", 1), "{\"k\\\"\":{\"x\":[1,{}]}}");
}

/* Random documents: what rf_json_write writes, jansson reads back as an equal value. */
static void test_plain_round_trip(void **state)
{
    uint64_t rng = 7;

    (void)state;
    for (int i = 0; i < 2000; i++) {
        json_t *v = json_object();
        for (int k = 0; k < 6; k++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d\x7f%d", k, (int)(rng_next(&rng) % 100));
            uint64_t r = rng_next(&rng);
            json_t *m;
            switch (r % 5) {
            case 0: m = json_integer((json_int_t)rng_next(&rng)); break;
            case 1: m = json_real((double)(int64_t)rng_next(&rng) / 1e9); break;
            case 2: m = json_string("tab\there \"q\" \xe2\x82\xac"); break;
            case 3: m = json_pack("[i, s, n]", (int)(r >> 40), "x"); break;
            default: m = json_true(); break;
            }
            json_object_set_new(v, key, m);
        }
        struct rf_buf b = {0};
        assert_int_equal(rf_json_write(v, &b), 0);
        json_t *back = json_loadb(b.p, b.len, 0, NULL);
        assert_non_null(back);
        assert_true(json_equal(v, back));
        json_decref(back);
        json_decref(v);
        rf_buf_free(&b);
    }
}

/* rf_i64_text and rf_u64_text write what snprintf writes. */
static void test_int_text(void **state)
{
    static const int64_t edges[] = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, -1, -9, -10,
                                    -99, -100, INT64_MAX, INT64_MIN, INT64_MIN + 1,
                                    1000000000000000000LL, 999999999999999999LL};
    char want[32], got[RF_INT_TEXT_BYTES];
    uint64_t rng = 99;

    (void)state;
    for (size_t i = 0; i < sizeof(edges) / sizeof(*edges); i++) {
        snprintf(want, sizeof(want), "%lld", (long long)edges[i]);
        assert_int_equal(rf_i64_text(edges[i], got), (int)strlen(want));
        assert_string_equal(got, want);
    }
    for (int i = 0; i < 200000; i++) {
        uint64_t u = rng_next(&rng) >> (rng_next(&rng) % 64);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)u);
        assert_int_equal(rf_u64_text(u, got), (int)strlen(want));
        assert_string_equal(got, want);
        snprintf(want, sizeof(want), "%lld", (long long)(int64_t)u);
        assert_int_equal(rf_i64_text((int64_t)u, got), (int)strlen(want));
        assert_string_equal(got, want);
    }
    assert_int_equal(rf_u64_text(UINT64_MAX, got), 20);
    assert_string_equal(got, "18446744073709551615");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_numbers),
        cmocka_unit_test(test_number_refused),
        cmocka_unit_test(test_number_layout),
        cmocka_unit_test(test_number_oracle),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_rfc_serialization_sample),
        cmocka_unit_test(test_rfc_sorting_sample),
        cmocka_unit_test(test_literals_and_containers),
        cmocka_unit_test(test_string_controls),
        cmocka_unit_test(test_string_offsets),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_key_order_large),
        cmocka_unit_test(test_nested_wide),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_lineage_vectors),
        cmocka_unit_test(test_lineage_fields),
        cmocka_unit_test(test_lineage_raw_sizes),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_plain_writer),
        cmocka_unit_test(test_plain_round_trip),
        cmocka_unit_test(test_int_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
