/*
 * fuzz/url.c: libFuzzer target for the URL helpers (net/url.c).
 *
 * The same input bytes are used as a query string, as a path and as a decimal number.
 * Properties, each an RF_ASSERT:
 *   - query iteration covers the input: the bytes between pairs are only '&', a key
 *     holds no '&' or '=', a value no '&', a value follows its key's '=' (or is empty
 *     right after a key without one), and the pairs come in order, leaving nothing out;
 *   - decoding never grows: the decoded length is at most the raw length; the result is
 *     a C string without an inner NUL; whether an input is valid never depends on the
 *     buffer size (cap 0 gives -EINVAL exactly when a big buffer does); a buffer of
 *     exactly length + 1 is enough and one byte less is -ENAMETOOLONG; '+' as space
 *     changes only the bytes that were '+';
 *   - rf_query_get() with a decoded key finds the first pair whose key decodes to it and
 *     returns that pair's decoded value;
 *   - rf_path_split() agrees with a straightforward reference split, and its segments
 *     are slices of the input in order, each after a '/';
 *   - rf_parse_u64() agrees with a reference that builds the number in 128 bits.
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAIRS_CHECKED_MAX 16u /* query_get checks are quadratic: only the first pairs */
#define SEGS_CAP          32u

/* Decode s every way and check the decoding properties; returns the plus-decoded length
 * (or the error) with the result in out (cap n + 1). */
static int check_decode(struct rf_slice s, char *out, char *tmp)
{
    int a = rf_url_decode(s.p, s.n, true, out, (size_t)s.n + 1);
    int b = rf_url_decode(s.p, s.n, false, tmp, (size_t)s.n + 1);
    int z = rf_url_decode(s.p, s.n, true, NULL, 0);

    RF_ASSERT(a == b);
    RF_ASSERT(a == -EINVAL || a >= 0);
    RF_ASSERT(z == (a == -EINVAL ? -EINVAL : -ENAMETOOLONG));
    if (a < 0)
        return a;
    RF_ASSERT((uint32_t)a <= s.n && out[a] == '\0' && strlen(out) == (size_t)a);
    for (int i = 0; i < a; i++)
        RF_ASSERT(out[i] == tmp[i] || (out[i] == ' ' && tmp[i] == '+'));
    RF_ASSERT(rf_url_decode(s.p, s.n, true, tmp, (size_t)a + 1) == a);
    RF_ASSERT(memcmp(out, tmp, (size_t)a + 1) == 0);
    RF_ASSERT(rf_url_decode(s.p, s.n, true, tmp, (size_t)a) == -ENAMETOOLONG);
    return a;
}

static void check_query(struct rf_slice q, char *k1, char *k2, char *v1, char *v2)
{
    struct rf_query_it it;
    struct rf_slice key, val, pk[PAIRS_CHECKED_MAX], pv[PAIRS_CHECKED_MAX];
    const char *cur = q.p, *end = q.p + q.n;
    uint32_t npairs = 0;

    rf_query_begin(&it, q);
    while (rf_query_next(&it, &key, &val)) {
        const char *after = key.p + key.n;

        RF_ASSERT(key.p >= cur && key.p <= end && after <= end);
        for (; cur < key.p; cur++)
            RF_ASSERT(*cur == '&');
        RF_ASSERT(!memchr(key.p, '&', key.n) && !memchr(key.p, '=', key.n));
        if (after < end && *after == '=') {
            RF_ASSERT(val.p == after + 1 && val.p + val.n <= end);
            RF_ASSERT(!memchr(val.p, '&', val.n));
        } else {
            RF_ASSERT(val.p == after && val.n == 0 && (after == end || *after == '&'));
        }
        RF_ASSERT(key.n > 0 || val.p != after); /* an empty pair is skipped */
        cur = val.p + val.n;
        RF_ASSERT(cur == end || *cur == '&');
        if (npairs < PAIRS_CHECKED_MAX) {
            pk[npairs] = key;
            pv[npairs] = val;
        }
        npairs++;
        check_decode(key, k1, k2);
        check_decode(val, v1, v2);
    }
    for (; cur < end; cur++)
        RF_ASSERT(*cur == '&');

    for (uint32_t i = 0; i < npairs && i < PAIRS_CHECKED_MAX; i++) {
        uint32_t j = 0;
        int got, want;

        if (check_decode(pk[i], k1, k2) < 0)
            continue;
        for (; j < i; j++) /* the first pair with the same decoded key */
            if (rf_url_decode(pk[j].p, pk[j].n, true, k2, (size_t)pk[j].n + 1) >= 0 &&
                strcmp(k1, k2) == 0)
                break;
        want = check_decode(pv[j], v1, v2);
        got = rf_query_get(q, k1, v2, (size_t)q.n + 1);
        RF_ASSERT(got == want);
        RF_ASSERT(got < 0 || memcmp(v1, v2, (size_t)got + 1) == 0);
    }
}

/* The reference split: count, or the error. */
static int ref_split(struct rf_slice p, uint32_t cap)
{
    uint32_t n = 0;

    if (p.n == 0 || p.p[0] != '/')
        return -EINVAL;
    if (p.n == 1)
        return cap >= 1 ? 1 : -E2BIG;
    for (uint32_t i = 0; i < p.n; i++) {
        if (p.p[i] != '/')
            continue;
        if (i + 1 < p.n && p.p[i + 1] == '/')
            return -EINVAL;
        if (i + 1 < p.n)
            n++;
        if (n > cap)
            return -E2BIG;
    }
    return (int)n;
}

static void check_path(struct rf_slice p)
{
    struct rf_slice segs[SEGS_CAP];
    const char *prev = p.p;
    uint32_t cap = p.n ? (uint8_t)p.p[p.n - 1] % (SEGS_CAP + 1) : SEGS_CAP;
    int n = rf_path_split(p, segs, cap);

    RF_ASSERT(n == ref_split(p, cap));
    for (int i = 0; i < n; i++) {
        RF_ASSERT(segs[i].p > prev && segs[i].p[-1] == '/');
        RF_ASSERT(segs[i].p + segs[i].n <= p.p + p.n);
        RF_ASSERT(!memchr(segs[i].p, '/', segs[i].n));
        RF_ASSERT(segs[i].n > 0 || p.n == 1);
        prev = segs[i].p + segs[i].n;
    }
}

static void check_u64(struct rf_slice s)
{
    uint64_t max = s.n ? (uint64_t)-1 >> ((uint8_t)s.p[0] % 64) : (uint64_t)-1, v = 7;
    unsigned __int128 ref = 0;
    bool digits = s.n > 0, over = false;
    int rc = rf_parse_u64(s, max, &v);

    for (uint32_t i = 0; i < s.n; i++) {
        digits &= s.p[i] >= '0' && s.p[i] <= '9';
        if (digits && !over) {
            ref = ref * 10 + (unsigned)(s.p[i] - '0');
            over = ref > UINT64_MAX;
        }
    }
    if (!digits)
        RF_ASSERT(rc == -EINVAL && v == 7);
    else if (over || ref > max)
        RF_ASSERT(rc == -ERANGE && v == 7);
    else
        RF_ASSERT(rc == 0 && v == (uint64_t)ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rf_slice s = {(const char *)data, (uint32_t)size};
    char *bufs[4];

    if (size > UINT32_MAX - 1)
        return 0;
    for (int i = 0; i < 4; i++) {
        bufs[i] = malloc(size + 1);
        RF_ASSERT(bufs[i] != NULL);
    }
    check_decode(s, bufs[0], bufs[1]);
    check_query(s, bufs[0], bufs[1], bufs[2], bufs[3]);
    check_path(s);
    check_u64(s);
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
    return 0;
}
