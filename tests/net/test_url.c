/*
 * tests/net/test_url.c: percent-decoding, query iteration and lookup, strict decimal
 * parsing and path splitting (net/url.c), the helpers the REST router uses on the raw
 * path and query slices the request parser hands it.
 *
 * Inputs are placed right before a PROT_NONE guard page, so reading one byte past the
 * slice faults (a '%' at the very end is the classic over-read). Each function is tried
 * on the forms the API sees (ids, cursors, limits), on every malformed escape, at the
 * exact buffer size and one byte short of it, and on the boundaries of its ranges
 * (UINT64_MAX, segment capacity). Decoding is also checked against a slow reference
 * decoder over every input of up to four bytes drawn from an alphabet rich in '%', '+'
 * and hex digits.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/url.h"

#define GUARD_DATA_BYTES 4096u
#define SEGS_CAP         16u

static char *g_region, *g_end;
static size_t g_region_bytes;

static int group_setup(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (GUARD_DATA_BYTES + page - 1) / page * page;

    (void)state;
    g_region_bytes = data + page;
    g_region =
        mmap(NULL, g_region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_region == MAP_FAILED || mprotect(g_region + data, page, PROT_NONE) != 0)
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

/* s copied to end right at the guard page; valid until the next call. */
static struct rf_slice guard_slice(const char *s)
{
    size_t n = strlen(s);

    assert_true(n <= GUARD_DATA_BYTES);
    memmove(g_end - n, s, n);
    return (struct rf_slice){g_end - n, (uint32_t)n};
}

static int decode(const char *s, bool plus, char *dst, size_t cap)
{
    struct rf_slice v = guard_slice(s);

    return rf_url_decode(v.p, v.n, plus, dst, cap);
}

#define assert_slice(v, lit)                                                                       \
    do {                                                                                           \
        assert_int_equal((v).n, strlen(lit));                                                      \
        assert_memory_equal((v).p, (lit), (v).n);                                                  \
    } while (0)

/* --- rf_url_decode ------------------------------------------------------------------------- */

static void test_decode(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(decode("a%20b", false, out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(decode("a+b", false, out, sizeof(out)), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(decode("a+b", true, out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(decode("%2B%2b", true, out, sizeof(out)), 2);
    assert_string_equal(out, "++");
    assert_int_equal(decode("%C3%a9%2F%3f", false, out, sizeof(out)), 4);
    assert_string_equal(out, "\xc3\xa9/?");
    assert_int_equal(decode("", false, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(decode("%25%32%30", false, out, sizeof(out)), 3);
    assert_string_equal(out, "%20"); /* decoded once, never twice */
}

static void test_decode_errors(void **state)
{
    static const char *const bad[] = {"%",    "a%",  "%2",    "a%2", "%zz", "%2z", "%z2",
                                      "%%20", "%00", "a%00b", "% 2", "%+2", "%-1", "%0x"};
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(decode(bad[i], false, out, sizeof(out)), -EINVAL);
        assert_int_equal(decode(bad[i], true, out, sizeof(out)), -EINVAL);
    }
    /* a raw NUL */
    assert_int_equal(rf_url_decode("a\0b", 3, false, out, sizeof(out)), -EINVAL);
    /* a bad escape wins over a short buffer: validity never depends on cap */
    assert_int_equal(decode("abcdefgh%zz", false, out, 4), -EINVAL);
    assert_int_equal(decode("abcdefgh%zz", false, NULL, 0), -EINVAL);
}

static void test_decode_capacity(void **state)
{
    char out[8];

    (void)state;
    assert_int_equal(decode("abc%41", false, out, 5), 4); /* 4 bytes + NUL, exactly */
    assert_string_equal(out, "abcA");
    memset(out, 'x', sizeof(out));
    assert_int_equal(decode("abc%41", false, out, 4), -ENAMETOOLONG);
    assert_int_equal(out[3], '\0'); /* truncated, still a C string */
    assert_int_equal(decode("", false, out, 1), 0);
    assert_int_equal(decode("", false, NULL, 0), -ENAMETOOLONG);
    assert_int_equal(decode("a", false, NULL, 0), -ENAMETOOLONG);
}

/* The reference: escapes checked one at a time, output built byte by byte. */
static int slow_decode(const char *s, size_t n, bool plus, char *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned v;
        char hex[3];

        if (s[i] == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            hex[0] = s[i + 1];
            hex[1] = s[i + 2];
            hex[2] = '\0';
            if (!strchr("0123456789abcdefABCDEF", hex[0]) || !hex[0] ||
                !strchr("0123456789abcdefABCDEF", hex[1]) || !hex[1])
                return -EINVAL;
            sscanf(hex, "%x", &v);
            if (v == 0)
                return -EINVAL;
            dst[o++] = (char)v;
            i += 2;
        } else if (s[i] == '\0') {
            return -EINVAL;
        } else {
            dst[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    dst[o] = '\0';
    return (int)o;
}

static void test_decode_exhaustive(void **state)
{
    static const char alpha[] = "%+0aF9gz \x80";
    size_t na = sizeof(alpha) - 1;
    char in[5], want[8], got[8];

    (void)state;
    /* every string of up to four letters of the alphabet */
    for (size_t len = 0; len <= 4; len++) {
        size_t total = 1;

        for (size_t k = 0; k < len; k++)
            total *= na;
        for (size_t idx = 0; idx < total; idx++) {
            size_t x = idx;

            for (size_t k = 0; k < len; k++, x /= na)
                in[k] = alpha[x % na];
            in[len] = '\0';
            for (int plus = 0; plus <= 1; plus++) {
                int w = slow_decode(in, len, plus, want);
                struct rf_slice v = guard_slice(in);
                int g = rf_url_decode(v.p, v.n, plus, got, sizeof(got));

                assert_int_equal(g, w);
                if (w >= 0)
                    assert_memory_equal(got, want, (size_t)w + 1);
            }
        }
    }
}

/* --- queries -------------------------------------------------------------------------------- */

static void test_query_iterate(void **state)
{
    struct rf_query_it it;
    struct rf_slice k, v, q;

    (void)state;
    q = guard_slice("&&graph=g1&&status=running&tag&=x&a=b=c&");
    rf_query_begin(&it, q);
    assert_int_equal(rf_query_next(&it, &k, &v), 1);
    assert_slice(k, "graph");
    assert_slice(v, "g1");
    assert_int_equal(rf_query_next(&it, &k, &v), 1);
    assert_slice(k, "status");
    assert_slice(v, "running");
    assert_int_equal(rf_query_next(&it, &k, &v), 1);
    assert_slice(k, "tag");
    assert_int_equal(v.n, 0);
    assert_ptr_equal(v.p, k.p + 3);
    assert_int_equal(rf_query_next(&it, &k, &v), 1);
    assert_int_equal(k.n, 0);
    assert_slice(v, "x");
    assert_int_equal(rf_query_next(&it, &k, &v), 1);
    assert_slice(k, "a");
    assert_slice(v, "b=c");
    assert_int_equal(rf_query_next(&it, &k, &v), 0);
    assert_int_equal(rf_query_next(&it, &k, &v), 0);

    rf_query_begin(&it, (struct rf_slice){NULL, 0});
    assert_int_equal(rf_query_next(&it, &k, &v), 0);
    q = guard_slice("&&&");
    rf_query_begin(&it, q);
    assert_int_equal(rf_query_next(&it, &k, &v), 0);
    q = guard_slice("k=");
    rf_query_begin(&it, q);
    assert_int_equal(rf_query_next(&it, &k, &v), 1);
    assert_slice(k, "k");
    assert_int_equal(v.n, 0);
    assert_ptr_equal(v.p, g_end);
}

static void test_query_get(void **state)
{
    char out[16];
    struct rf_slice q;

    (void)state;
    q = guard_slice("limit=50&after=c%3D%3D&tag=a+b&tag=second&empty=&flag&a%62=1&x+y=2");
    assert_int_equal(rf_query_get(q, "limit", out, sizeof(out)), 2);
    assert_string_equal(out, "50");
    assert_int_equal(rf_query_get(q, "after", out, sizeof(out)), 3);
    assert_string_equal(out, "c==");
    assert_int_equal(rf_query_get(q, "tag", out, sizeof(out)), 3);
    assert_string_equal(out, "a b"); /* the first of repeated keys */
    assert_int_equal(rf_query_get(q, "empty", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(rf_query_get(q, "flag", out, sizeof(out)), 0);
    assert_int_equal(rf_query_get(q, "ab", out, sizeof(out)), 1); /* key decoded: a%62 */
    assert_int_equal(rf_query_get(q, "x y", out, sizeof(out)), 1);
    assert_int_equal(rf_query_get(q, "graph", out, sizeof(out)), -ENOENT);
    assert_int_equal(rf_query_get(q, "lim", out, sizeof(out)), -ENOENT);
    assert_int_equal(rf_query_get(q, "limits", out, sizeof(out)), -ENOENT);
    assert_int_equal(rf_query_get(q, "", out, sizeof(out)), -ENOENT);
    assert_int_equal(rf_query_get(q, "after", out, 3), -ENAMETOOLONG);
    assert_int_equal(rf_query_get(q, "after", out, 4), 3);

    q = guard_slice("a=%zz&b=%4");
    assert_int_equal(rf_query_get(q, "a", out, sizeof(out)), -EINVAL);
    assert_int_equal(rf_query_get(q, "b", out, sizeof(out)), -EINVAL);
    /* a key with a bad escape matches nothing, the next one still does */
    q = guard_slice("%zz=1&k%=2&=3&k=4");
    assert_int_equal(rf_query_get(q, "%zz", out, sizeof(out)), -ENOENT);
    assert_int_equal(rf_query_get(q, "k%", out, sizeof(out)), -ENOENT);
    assert_int_equal(rf_query_get(q, "", out, sizeof(out)), 1);
    assert_int_equal(rf_query_get(q, "k", out, sizeof(out)), 1);
    assert_string_equal(out, "4");
    /* a key ending in '%' at the very end of the buffer */
    q = guard_slice("k%");
    assert_int_equal(rf_query_get(q, "k", out, sizeof(out)), -ENOENT);
    q = guard_slice("k%4");
    assert_int_equal(rf_query_get(q, "k", out, sizeof(out)), -ENOENT);
    /* a decoded NUL in a key never matches a C string */
    q = guard_slice("k%00=1");
    assert_int_equal(rf_query_get(q, "k", out, sizeof(out)), -ENOENT);
}

/* --- rf_parse_u64 --------------------------------------------------------------------------- */

static void test_parse_u64(void **state)
{
    static const char *const bad[] = {"",   "-1",  "+1",  " 1", "1 ",    "0x1",
                                      "1a", "1.0", "1e3", "１", "1,000", "\t1"};
    uint64_t v = 42;

    (void)state;
    assert_int_equal(rf_parse_u64(guard_slice("0"), 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(rf_parse_u64(guard_slice("500"), 500, &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(rf_parse_u64(guard_slice("007"), 500, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(rf_parse_u64(guard_slice("18446744073709551615"), UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    v = 42;
    assert_int_equal(rf_parse_u64(guard_slice("501"), 500, &v), -ERANGE);
    assert_int_equal(rf_parse_u64(guard_slice("18446744073709551616"), UINT64_MAX, &v), -ERANGE);
    assert_int_equal(rf_parse_u64(guard_slice("99999999999999999999999"), UINT64_MAX, &v), -ERANGE);
    assert_int_equal(rf_parse_u64(guard_slice("1"), 0, &v), -ERANGE);
    assert_int_equal(v, 42); /* untouched on error */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rf_parse_u64(guard_slice(bad[i]), UINT64_MAX, &v), -EINVAL);
    /* malformed wins over out of range */
    assert_int_equal(rf_parse_u64(guard_slice("99999999999999999999999x"), 5, &v), -EINVAL);
    assert_int_equal(v, 42);
}

/* --- rf_path_split -------------------------------------------------------------------------- */

static void test_path_split(void **state)
{
    struct rf_slice segs[SEGS_CAP];

    (void)state;
    assert_int_equal(rf_path_split(guard_slice("/v1/graphs/x"), segs, SEGS_CAP), 3);
    assert_slice(segs[0], "v1");
    assert_slice(segs[1], "graphs");
    assert_slice(segs[2], "x");
    assert_ptr_equal(segs[2].p + 1, g_end);
    assert_int_equal(rf_path_split(guard_slice("/"), segs, SEGS_CAP), 1);
    assert_int_equal(segs[0].n, 0);
    assert_int_equal(rf_path_split(guard_slice("/v1/graphs/"), segs, SEGS_CAP), 2);
    assert_slice(segs[1], "graphs");
    assert_int_equal(rf_path_split(guard_slice("/a"), segs, SEGS_CAP), 1);
    assert_slice(segs[0], "a");
    assert_int_equal(rf_path_split(guard_slice("/id%2Fwith%2Fslash/x"), segs, SEGS_CAP), 2);
    assert_slice(segs[0], "id%2Fwith%2Fslash");
    assert_int_equal(rf_path_split(guard_slice("/./.."), segs, SEGS_CAP), 2);
    assert_slice(segs[1], "..");

    assert_int_equal(rf_path_split(guard_slice(""), segs, SEGS_CAP), -EINVAL);
    assert_int_equal(rf_path_split(guard_slice("v1/graphs"), segs, SEGS_CAP), -EINVAL);
    assert_int_equal(rf_path_split(guard_slice("*"), segs, SEGS_CAP), -EINVAL);
    assert_int_equal(rf_path_split(guard_slice("//"), segs, SEGS_CAP), -EINVAL);
    assert_int_equal(rf_path_split(guard_slice("//a"), segs, SEGS_CAP), -EINVAL);
    assert_int_equal(rf_path_split(guard_slice("/a//b"), segs, SEGS_CAP), -EINVAL);
    assert_int_equal(rf_path_split(guard_slice("/a//"), segs, SEGS_CAP), -EINVAL);

    /* capacity: exactly enough, one short */
    assert_int_equal(rf_path_split(guard_slice("/a/b/c"), segs, 3), 3);
    assert_int_equal(rf_path_split(guard_slice("/a/b/c"), segs, 2), -E2BIG);
    assert_int_equal(rf_path_split(guard_slice("/a/b/c/"), segs, 3), 3);
    assert_int_equal(rf_path_split(guard_slice("/"), segs, 0), -E2BIG);
    assert_int_equal(rf_path_split(guard_slice("/a"), segs, 0), -E2BIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),          cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_decode_capacity), cmocka_unit_test(test_decode_exhaustive),
        cmocka_unit_test(test_query_iterate),   cmocka_unit_test(test_query_get),
        cmocka_unit_test(test_parse_u64),       cmocka_unit_test(test_path_split),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
