/*
 * net/hooksig.h: webhook signatures, sans-I/O. A delivery carries
 *
 *     X-Ringflow-Signature: t=<unix seconds>,v1=<64 hex digits>[,v1=<64 hex digits>...]
 *
 * where each v1 is HMAC-SHA256(secret, "<t>.<raw body>") in lowercase or uppercase hex.
 * Several v1 entries let a sender sign with an old and a new secret during a rotation;
 * the hook may list several secrets for the same reason: the delivery is good when any
 * v1 matches any secret. Entries of other schemes (`v0=...`) are skipped, for senders
 * ahead of us. Comparisons are constant-time (CRYPTO_memcmp) and every secret and entry
 * is tried, so the time taken does not say which one matched.
 *
 * rf_hooksig_parse is a pure function over the header's bytes (fuzzed: fuzz/hooksig.c);
 * rf_hooksig_check adds the HMACs (OpenSSL) and the replay window.
 */
#ifndef RF_NET_HOOKSIG_H
#define RF_NET_HOOKSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RF_HOOKSIG_HEADER_MAX 1024u /* bytes of the header's value */
#define RF_HOOKSIG_V1_MAX     8u    /* v1 entries considered */
#define RF_HOOKSIG_MAC_BYTES  32u

struct rf_hooksig {
    int64_t t;                                        /* the signed timestamp */
    uint32_t nv1;                                     /* v1 entries, 1..RF_HOOKSIG_V1_MAX */
    uint8_t v1[RF_HOOKSIG_V1_MAX][RF_HOOKSIG_MAC_BYTES];
    char t_text[24];                                  /* t as sent (the signed text) */
};

/* Parse the header value s[0, n) (borrowed). 0, or -1 with a reason in why (why_cap bytes):
 * missing or repeated t, t not 1 to 12 digits, no v1, a v1 not 64 hex digits, more than
 * RF_HOOKSIG_V1_MAX v1 entries, an entry without '=', an empty entry, over
 * RF_HOOKSIG_HEADER_MAX bytes. */
int rf_hooksig_parse(const char *s, size_t n, struct rf_hooksig *out, char *why, size_t why_cap);

enum rf_hooksig_result {
    RF_HOOKSIG_OK = 0,
    RF_HOOKSIG_STALE = 1,    /* |now - t| > window_s */
    RF_HOOKSIG_MISMATCH = 2, /* no v1 matches any secret */
};

/* Check a parsed signature against `body` (borrowed) and the hook's secrets (nsec of them,
 * each secrets[i] with lens[i] bytes; borrowed) at time now (unix seconds). The timestamp is
 * checked first: a stale delivery is refused without computing anything. */
enum rf_hooksig_result rf_hooksig_check(const struct rf_hooksig *sig, const char *body,
                                        size_t body_len, const char *const *secrets,
                                        const size_t *lens, uint32_t nsec, int64_t now,
                                        uint32_t window_s);

/* Sign like a sender does (tests, tools): "t=<t>,v1=<hex>" into out (cap bytes, at least
 * 100). Its length, or -1. */
int rf_hooksig_sign(const char *secret, size_t secret_len, int64_t t, const char *body,
                    size_t body_len, char *out, size_t cap);

#endif /* RF_NET_HOOKSIG_H */
