/*
 * fuzz/hooksig.c: libFuzzer target for the webhook signature header (net/hooksig.c).
 *
 * The input, from an exactly sized heap copy, is parsed as a header value. A refusal leaves
 * a NUL-terminated reason. An accepted header has a t of 1 to 12 digits equal to its
 * text, and 1 to 8 v1 entries; checking it against a fixed body and secret gives one of
 * the three results, and a header signed here with that timestamp is accepted by the
 * parser and checks OK (the v1 the parser decoded round-trips through the signer's hex).
 * Every violated property aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/hooksig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c))                                                                                   \
            abort();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1), why[128];
    struct rf_hooksig s;
    const char *sec[1] = {"k"};
    size_t lens[1] = {1};

    CHECK(copy != NULL);
    memcpy(copy, data, size);
    why[0] = 'x';
    if (rf_hooksig_parse(copy, size, &s, why, sizeof(why)) != 0) {
        CHECK(memchr(why, 0, sizeof(why)) != NULL);
        free(copy);
        return 0;
    }
    CHECK(s.nv1 >= 1 && s.nv1 <= RF_HOOKSIG_V1_MAX);
    char t[24];
    snprintf(t, sizeof(t), "%lld", (long long)s.t);
    CHECK(strlen(s.t_text) >= 1 && strlen(s.t_text) <= 12);
    CHECK(strtoll(s.t_text, NULL, 10) == s.t);
    enum rf_hooksig_result r = rf_hooksig_check(&s, "b", 1, sec, lens, 1, s.t, 300);
    CHECK(r == RF_HOOKSIG_OK || r == RF_HOOKSIG_MISMATCH);
    char h[256];
    CHECK(rf_hooksig_sign("k", 1, s.t, "b", 1, h, sizeof(h)) > 0);
    struct rf_hooksig s2;
    CHECK(rf_hooksig_parse(h, strlen(h), &s2, why, sizeof(why)) == 0);
    CHECK(rf_hooksig_check(&s2, "b", 1, sec, lens, 1, s.t, 300) == RF_HOOKSIG_OK);
    free(copy);
    return 0;
}
