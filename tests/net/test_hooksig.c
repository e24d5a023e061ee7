/*
 * tests/net/test_hooksig.c: webhook signatures (net/hooksig.c): the header's grammar, and
 * the check: valid, tampered body, tampered timestamp, stale (both ways), wrong secret,
 * rotated secrets (either side), and a reference HMAC computed here with OpenSSL's one-shot
 * HMAC() so the signer is not checked against itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "net/hooksig.h"

#define NOW 1800000000

static void parse_fails(const char *h, const char *part)
{
    struct rf_hooksig s;
    char why[128] = "";

    if (rf_hooksig_parse(h, strlen(h), &s, why, sizeof(why)) == 0)
        fail_msg("\"%s\" was accepted", h);
    if (!strstr(why, part))
        fail_msg("\"%s\": \"%s\" lacks \"%s\"", h, why, part);
}

static void test_parse(void **state)
{
    static const char v[] = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    struct rf_hooksig s;
    char h[512], why[128];

    (void)state;
    snprintf(h, sizeof(h), " t=1800000000 , v0=zz,v1=%s,v1=%s", v, v);
    assert_int_equal(rf_hooksig_parse(h, strlen(h), &s, why, sizeof(why)), 0);
    assert_int_equal(s.t, 1800000000);
    assert_string_equal(s.t_text, "1800000000");
    assert_int_equal(s.nv1, 2);
    assert_int_equal(s.v1[0][0], 0x00);
    assert_int_equal(s.v1[0][31], 0xff);
    parse_fails("", "an empty entry");
    parse_fails("v1=00", "v1 must be 64 hex digits");
    snprintf(h, sizeof(h), "v1=%s", v);
    parse_fails(h, "t=<unix seconds> is missing");
    parse_fails("t=1", "v1=<hex HMAC-SHA256> is missing");
    snprintf(h, sizeof(h), "t=1,t=2,v1=%s", v);
    parse_fails(h, "t appears twice");
    snprintf(h, sizeof(h), "t=-1,v1=%s", v);
    parse_fails(h, "t must be 1 to 12 digits");
    snprintf(h, sizeof(h), "t=1234567890123,v1=%s", v);
    parse_fails(h, "t must be 1 to 12 digits");
    snprintf(h, sizeof(h), "t=1,v1=%.63sg", v);
    parse_fails(h, "v1 must be 64 hex digits");
    snprintf(h, sizeof(h), "t=1,,v1=%s", v);
    parse_fails(h, "an empty entry");
    snprintf(h, sizeof(h), "t=1,v1=%s,junk", v);
    parse_fails(h, "without '='");
    char many[2048];
    int n = snprintf(many, sizeof(many), "t=1");
    for (int i = 0; i < 9; i++)
        n += snprintf(many + n, sizeof(many) - (size_t)n, ",v1=%s", v);
    parse_fails(many, "more than 8 v1 entries");
    for (int i = 9; i < 16; i++)
        n += snprintf(many + n, sizeof(many) - (size_t)n, ",v1=%s", v);
    parse_fails(many, "at most 1024 bytes");
}

/* The reference: HMAC-SHA256 over "<t>.<body>" with OpenSSL's one-shot HMAC(). */
static void reference(const char *secret, int64_t t, const char *body, char *hex)
{
    char msg[4096];
    unsigned char m[32];
    unsigned int len = 0;
    int n = snprintf(msg, sizeof(msg), "%lld.%s", (long long)t, body);

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, (size_t)n, m, &len);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", m[i]);
}

static enum rf_hooksig_result check(const char *header, const char *body,
                                    const char *const *secrets, uint32_t n)
{
    struct rf_hooksig s;
    size_t lens[4];
    char why[128];

    for (uint32_t i = 0; i < n; i++)
        lens[i] = strlen(secrets[i]);
    assert_int_equal(rf_hooksig_parse(header, strlen(header), &s, why, sizeof(why)), 0);
    return rf_hooksig_check(&s, body, strlen(body), secrets, lens, n, NOW, 300);
}

static void test_check(void **state)
{
    const char *body = "{\"order\": 42}";
    const char *const one[] = {"s3cret"};
    const char *const rotated[] = {"old-secret", "s3cret"};
    const char *const wrong[] = {"nope", "also-nope"};
    char h[256], ref[65], tampered[256];

    (void)state;
    assert_true(rf_hooksig_sign("s3cret", 6, NOW - 10, body, strlen(body), h, sizeof(h)) > 0);
    reference("s3cret", NOW - 10, body, ref);
    assert_non_null(strstr(h, ref)); /* the signer agrees with OpenSSL's HMAC() */
    assert_int_equal(check(h, body, one, 1), RF_HOOKSIG_OK);
    assert_int_equal(check(h, body, rotated, 2), RF_HOOKSIG_OK); /* any listed secret */
    assert_int_equal(check(h, body, wrong, 2), RF_HOOKSIG_MISMATCH);
    assert_int_equal(check(h, "{\"order\": 43}", one, 1), RF_HOOKSIG_MISMATCH);
    /* the timestamp is signed: changing it breaks the signature */
    snprintf(tampered, sizeof(tampered), "t=%lld,v1=%s", (long long)(NOW - 9), ref);
    assert_int_equal(check(tampered, body, one, 1), RF_HOOKSIG_MISMATCH);
    /* stale: older or newer than the window, checked before any HMAC */
    assert_true(rf_hooksig_sign("s3cret", 6, NOW - 301, body, strlen(body), h, sizeof(h)) > 0);
    assert_int_equal(check(h, body, one, 1), RF_HOOKSIG_STALE);
    assert_true(rf_hooksig_sign("s3cret", 6, NOW + 301, body, strlen(body), h, sizeof(h)) > 0);
    assert_int_equal(check(h, body, one, 1), RF_HOOKSIG_STALE);
    assert_true(rf_hooksig_sign("s3cret", 6, NOW - 300, body, strlen(body), h, sizeof(h)) > 0);
    assert_int_equal(check(h, body, one, 1), RF_HOOKSIG_OK);
    /* a sender in the middle of a rotation signs twice: either entry may match */
    char a[256], b[256], both[512];
    assert_true(rf_hooksig_sign("new-secret", 10, NOW, body, strlen(body), a, sizeof(a)) > 0);
    assert_true(rf_hooksig_sign("s3cret", 6, NOW, body, strlen(body), b, sizeof(b)) > 0);
    snprintf(both, sizeof(both), "%s,%s", a, strchr(b, ',') + 1);
    assert_int_equal(check(both, body, one, 1), RF_HOOKSIG_OK);
    /* an empty body is signed too */
    assert_true(rf_hooksig_sign("s3cret", 6, NOW, "", 0, h, sizeof(h)) > 0);
    assert_int_equal(check(h, "", one, 1), RF_HOOKSIG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
