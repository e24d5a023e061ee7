/*
 * net/hooksig.c: webhook signatures (net/hooksig.h has the format and the rules).
 *
 * The HMAC runs over "<t>.<body>" without copying the body: OpenSSL 3's EVP_MAC takes it
 * in three updates (the timestamp, the dot, the body). The HMAC algorithm is fetched once
 * per process (pthread_once) and each check makes its own context from it, so checks on
 * different shards share nothing mutable.
 */
#include "net/hooksig.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

static int fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (cap) {
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One "key=value" entry s[0, n). */
static int entry(const char *s, size_t n, struct rf_hooksig *out, bool *have_t, char *why,
                 size_t cap)
{
    const char *eq = memchr(s, '=', n);

    if (n == 0)
        return fail(why, cap, "an empty entry");
    if (!eq)
        return fail(why, cap, "an entry without '=': \"%.*s\"", (int)(n > 16 ? 16 : n), s);
    size_t kn = (size_t)(eq - s), vn = n - kn - 1;
    const char *v = eq + 1;
    if (kn == 1 && s[0] == 't') {
        if (*have_t)
            return fail(why, cap, "t appears twice");
        if (vn == 0 || vn > 12)
            return fail(why, cap, "t must be 1 to 12 digits");
        int64_t t = 0;
        for (size_t i = 0; i < vn; i++) {
            if (!isdigit((unsigned char)v[i]))
                return fail(why, cap, "t must be 1 to 12 digits");
            t = t * 10 + (v[i] - '0');
        }
        out->t = t;
        memcpy(out->t_text, v, vn);
        out->t_text[vn] = '\0';
        *have_t = true;
        return 0;
    }
    if (kn == 2 && s[0] == 'v' && s[1] == '1') {
        if (out->nv1 == RF_HOOKSIG_V1_MAX)
            return fail(why, cap, "more than %u v1 entries", RF_HOOKSIG_V1_MAX);
        if (vn != 2 * RF_HOOKSIG_MAC_BYTES)
            return fail(why, cap, "v1 must be 64 hex digits");
        for (size_t i = 0; i < RF_HOOKSIG_MAC_BYTES; i++) {
            int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return fail(why, cap, "v1 must be 64 hex digits");
            out->v1[out->nv1][i] = (uint8_t)(hi << 4 | lo);
        }
        out->nv1++;
        return 0;
    }
    return 0; /* another scheme: not ours to check */
}

int rf_hooksig_parse(const char *s, size_t n, struct rf_hooksig *out, char *why, size_t why_cap)
{
    bool have_t = false;
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    if (n > RF_HOOKSIG_HEADER_MAX)
        return fail(why, why_cap, "the signature header has at most %u bytes",
                    RF_HOOKSIG_HEADER_MAX);
    while (i <= n) {
        const char *c = i < n ? memchr(s + i, ',', n - i) : NULL;
        size_t e = c ? (size_t)(c - s) : n;
        /* Blanks around an entry are tolerated; inside it they are not. */
        size_t a = i, b = e;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (entry(s + a, b - a, out, &have_t, why, why_cap) < 0)
            return -1;
        i = e + 1;
        if (!c)
            break;
    }
    if (!have_t)
        return fail(why, why_cap, "t=<unix seconds> is missing");
    if (!out->nv1)
        return fail(why, why_cap, "v1=<hex HMAC-SHA256> is missing");
    return 0;
}

/* --- HMAC ----------------------------------------------------------------------------------- */

static EVP_MAC *hmac;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_init(void)
{
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int mac(const char *key, size_t klen, const char *t, const char *body, size_t blen,
               uint8_t out[RF_HOOKSIG_MAC_BYTES])
{
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                             (char *)"SHA256", 0),
                            OSSL_PARAM_construct_end()};
    size_t olen = 0;
    int ok;

    pthread_once(&hmac_once, hmac_init);
    if (!hmac)
        return -1;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    ok = ctx && EVP_MAC_init(ctx, (const unsigned char *)key, klen, params) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)t, strlen(t)) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)body, blen) == 1 &&
         EVP_MAC_final(ctx, out, &olen, RF_HOOKSIG_MAC_BYTES) == 1 &&
         olen == RF_HOOKSIG_MAC_BYTES;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

enum rf_hooksig_result rf_hooksig_check(const struct rf_hooksig *sig, const char *body,
                                        size_t body_len, const char *const *secrets,
                                        const size_t *lens, uint32_t nsec, int64_t now,
                                        uint32_t window_s)
{
    int64_t age = now - sig->t;
    int match = 0;

    if (age > (int64_t)window_s || -age > (int64_t)window_s)
        return RF_HOOKSIG_STALE;
    for (uint32_t k = 0; k < nsec; k++) {
        uint8_t m[RF_HOOKSIG_MAC_BYTES];
        if (mac(secrets[k], lens[k], sig->t_text, body, body_len, m) < 0)
            continue;
        for (uint32_t i = 0; i < sig->nv1; i++) /* every one: no early exit */
            match |= CRYPTO_memcmp(m, sig->v1[i], RF_HOOKSIG_MAC_BYTES) == 0;
    }
    return match ? RF_HOOKSIG_OK : RF_HOOKSIG_MISMATCH;
}

int rf_hooksig_sign(const char *secret, size_t secret_len, int64_t t, const char *body,
                    size_t body_len, char *out, size_t cap)
{
    uint8_t m[RF_HOOKSIG_MAC_BYTES];
    char ts[24];
    int n;

    snprintf(ts, sizeof(ts), "%lld", (long long)t);
    if (cap < 100 || mac(secret, secret_len, ts, body, body_len, m) < 0)
        return -1;
    n = snprintf(out, cap, "t=%s,v1=", ts);
    for (int i = 0; i < (int)RF_HOOKSIG_MAC_BYTES; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", m[i]);
    return n;
}
