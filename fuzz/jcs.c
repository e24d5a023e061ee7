/*
 * fuzz/jcs.c: libFuzzer target for RFC 8785 canonicalization (engine/jcs.c).
 *
 * Each input is used twice.
 *
 * As JSON text: jansson parses it (any value, NUL allowed in strings). If it parses, its
 * canonical form C must exist (or be refused with -ELOOP, and then only when the value
 * really nests deeper than RF_JCS_DEPTH_MAX), and:
 *   - C is valid JSON, and parsing it gives the same value as the input read the way a
 *     JavaScript reader reads it (every number a double: JSON_DECODE_INT_AS_REAL);
 *   - canonicalizing that parse again gives C byte for byte (a fixed point);
 *   - canonicalizing the input read with every number as a double also gives C (so
 *     integers and reals of equal value are written alike);
 *   - the lineage hash over C equals rf_lineage over the value.
 *
 * As a double: the first 8 bytes (when there are 8) are an IEEE double. rf_jcs_number
 * must refuse NaN and infinities, and otherwise write at most 25 characters of JSON number
 * grammar that strtod reads back as the same double (0 for -0), at most 17 significant
 * digits, and be a fixed point (formatting what it wrote gives the same text).
 *
 * Every violated property aborts. Buffers are static and reused, as a shard reuses its
 * own, so the canonicalizer's growth paths run with warm and cold buffers alike.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jcs.h"

#define FUZZ_DECODE   (JSON_DECODE_ANY | JSON_ALLOW_NUL)
#define FUZZ_REAL     (FUZZ_DECODE | JSON_DECODE_INT_AS_REAL)
#define NUM_CHARS_MAX 25 /* "-0.0000033333333333333333" is as long as they get */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rf_buf canon, again, scratch;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz/jcs: property violated: %s\n", what);
        abort();
    }
}

/* Containers nested around the deepest value (a bare scalar is 0). */
static unsigned depth_of(const json_t *v)
{
    unsigned d = 0;
    size_t i;
    const char *k;
    json_t *x;

    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            unsigned c = depth_of(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            unsigned c = depth_of(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

static void check_json(const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, FUZZ_DECODE, NULL), *w, *vr;
    uint8_t h1[16], h2[16];
    int rc;

    if (!v)
        return;
    canon.len = 0;
    rc = rf_jcs_write(v, &canon);
    if (rc == -ELOOP) {
        check(depth_of(v) > RF_JCS_DEPTH_MAX, "-ELOOP only past the depth limit");
        check(canon.len == 0, "-ELOOP leaves the buffer as it was");
        json_decref(v);
        return;
    }
    check(rc == 0, "a parsed value canonicalizes");
    w = json_loadb(canon.p, canon.len, FUZZ_REAL, NULL);
    check(w != NULL, "the canonical form is JSON");
    vr = json_loadb((const char *)data, size, FUZZ_REAL, NULL);
    check(vr != NULL, "the input parses with numbers as doubles too");
    check(json_equal(w, vr), "the canonical form keeps the value");
    again.len = 0;
    check(rf_jcs_write(w, &again) == 0, "the canonical form canonicalizes");
    check(again.len == canon.len && memcmp(again.p, canon.p, canon.len) == 0,
          "canonicalizing twice changes nothing");
    again.len = 0;
    check(rf_jcs_write(vr, &again) == 0, "the all-doubles value canonicalizes");
    check(again.len == canon.len && memcmp(again.p, canon.p, canon.len) == 0,
          "integers are written as the doubles they are");
    check(rf_lineage("fuzz", "v", v, &scratch, h1) == 0, "the lineage hash is computed");
    rf_lineage_raw("fuzz", "v", canon.p, canon.len, h2);
    check(memcmp(h1, h2, 16) == 0, "rf_lineage agrees with rf_lineage_raw");
    json_decref(vr);
    json_decref(w);
    json_decref(v);
}

/* -?int[.digits][e(+|-)digits] with no leading zero in int, at most 17 significant digits
 * (from the first nonzero digit to the last). */
static int number_grammar(const char *s)
{
    const char *p = s + (*s == '-'), *first = NULL, *last = NULL;
    int sig = 0;

    if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return 0;
    for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
        if (*p == '.' && (p[1] < '0' || p[1] > '9'))
            return 0;
        if (*p >= '1' && *p <= '9') {
            first = first ? first : p;
            last = p;
        }
    }
    if (first)
        for (const char *q = first; q <= last; q++)
            sig += *q != '.';
    if (*p == 'e') {
        p++;
        if (*p != '+' && *p != '-')
            return 0;
        if (!(*++p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0' && sig <= 17 && strchr(s, '.') == strrchr(s, '.');
}

static void check_number(const uint8_t *data)
{
    char out[RF_JCS_NUMBER_BYTES], out2[RF_JCS_NUMBER_BYTES];
    double d, back;
    int n;

    memcpy(&d, data, sizeof(d));
    n = rf_jcs_number(d, out);
    if (!isfinite(d)) {
        check(n == -EINVAL, "NaN and infinities are refused");
        return;
    }
    check(n > 0 && n <= NUM_CHARS_MAX && (size_t)n == strlen(out), "length returned");
    check(number_grammar(out), "JSON number grammar, <= 17 digits");
    back = strtod(out, NULL);
    check(back == d, "reads back as the same double");
    check(d != 0 || strcmp(out, "0") == 0, "zero is 0");
    check(rf_jcs_number(back, out2) == n && strcmp(out, out2) == 0, "a fixed point");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= sizeof(double))
        check_number(data);
    check_json(data, size);
    return 0;
}
