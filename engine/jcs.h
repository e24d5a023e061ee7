/*
 * engine/jcs.h: RFC 8785 JSON canonicalization (JCS) and the lineage hash of
 * ../shared/spec/graph.md.
 *
 * JCS writes a JSON value with no whitespace, object members sorted by the UTF-16 code
 * units of their names, strings with the minimal escapes (\" \\ \b \f \n \r \t, other
 * control characters as \u00xx, everything else raw UTF-8), and numbers as ECMAScript's
 * Number.prototype.toString writes the IEEE double nearest them (shortest digits that
 * round-trip; exponent form below 1e-6 and from 1e21; -0 as 0). jansson integers go
 * through the same double, as a JavaScript reader would see them.
 *
 * The lineage hash of a node run is XXH3-128 (seed 0) over
 *     "ringflow.lineage.v1" 0x00 kind 0x00 cache_version 0x00 JCS(params)
 * written as 32 lowercase hex digits of the canonical (big-endian) form.
 *
 * Nothing here allocates except the growable buffer the caller owns and reuses (one per
 * shard on the data path), and a temporary member array for objects too wide to sort on
 * the stack, so hashing a typical node run costs no allocation once warm. Everything is
 * a pure function of its arguments: any thread may call it on values it may read.
 * How to compute the same hash in another language: docs/lineage.md.
 */
#ifndef RF_ENGINE_JCS_H
#define RF_ENGINE_JCS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RF_JCS_DEPTH_MAX     1024 /* nesting deeper than this is refused (-ELOOP) */
#define RF_JCS_MEMBERS_LOCAL 64   /* member slots on the stack (an object takes 2 per member) */
#define RF_LINEAGE_PREFIX    "ringflow.lineage.v1"
#define RF_BUF_BYTES_MAX     ((size_t)1 << 31) /* an rf_buf never grows past 2 GiB (-ENOMEM) */
#define RF_JCS_NUMBER_BYTES  32                /* rf_jcs_number's out[], NUL included */
#define RF_LINEAGE_HEX_BYTES 33                /* rf_hex128's out[], NUL included */

/* A growable byte buffer, owned by whoever declared it; zero-initialized is empty. It grows
 * by doubling (at least 256 bytes) with rf_realloc and never shrinks; rf_buf_free() returns
 * the memory and leaves it empty again. The content is bytes, not a C string: no NUL is kept
 * after `len`. */
struct rf_buf {
    char *p;
    size_t len;
    size_t cap;
};

int rf_buf_reserve(struct rf_buf *b, size_t extra); /* room for `extra` more; -ENOMEM */
int rf_buf_append(struct rf_buf *b, const void *p, size_t n);
void rf_buf_free(struct rf_buf *b);

/* Integers in decimal, NUL-terminated, returning the length: what snprintf("%lld") writes,
 * at a fraction of its cost (two digits per division, no format parsing). */
#define RF_INT_TEXT_BYTES 24
int rf_i64_text(int64_t i, char out[RF_INT_TEXT_BYTES]);
int rf_u64_text(uint64_t u, char out[RF_INT_TEXT_BYTES]);

/* ECMAScript Number::toString of `d` into out (NUL-terminated); returns the length (at most
 * 25), or -EINVAL for NaN and infinities (not JSON). -0 is "0". Exact for every double;
 * integers below 2^53 and short decimals take ~10-30 ns, other values 0.5-1.5 us (they go
 * through glibc's correctly rounded printf and strtod). */
int rf_jcs_number(double d, char out[32]);

/* Append JCS(v) (v borrowed) to `b`. -ENOMEM, -ELOOP past RF_JCS_DEPTH_MAX, -EINVAL for a
 * value JSON cannot hold (a NaN real, a string that is not UTF-8). Containers count one
 * level each: RF_JCS_DEPTH_MAX nested arrays pass, one more is -ELOOP (so does a value that
 * contains itself). On error `b->len` is what it was before the call. The members of the
 * objects being written are sorted in one area per call: RF_JCS_MEMBERS_LOCAL entries on
 * the C stack, and a heap array, freed before returning, only when more are open at once.
 * Invalid UTF-8 in a name is -EINVAL like in a string; NUL bytes (json_stringn) are fine. */
int rf_jcs_write(const json_t *v, struct rf_buf *b);

/* Append v (borrowed) as compact JSON to `b`, the way the API and the logs show values:
 * object members in jansson's order (insertion order), integers exact, reals with the
 * shortest digits that read back as the same double (and as a real: "2.0", not "2"),
 * strings escaped as JCS escapes them. About 5x faster than json_dumpb, which formats
 * every number through snprintf. Errors and depth as rf_jcs_write. */
int rf_json_write(const json_t *v, struct rf_buf *b);

/* The lineage hash into out[16] (canonical big-endian bytes). `kind` and `version` are
 * NUL-terminated (version "" when the node has no cache block; NULL is taken as ""); `params`
 * borrowed, NULL means JSON null. `scratch` is reused (its content is overwritten: on
 * success it holds the hashed bytes, header then JCS(params)). Errors as above; out[] is
 * left alone on error. */
int rf_lineage(const char *kind, const char *version, const json_t *params, struct rf_buf *scratch,
               uint8_t out[16]);

/* The same over bytes already canonical (a worker's own JCS output). */
void rf_lineage_raw(const char *kind, const char *version, const void *jcs, size_t len,
                    uint8_t out[16]);

/* 32 lowercase hex digits and a NUL. */
void rf_hex128(const uint8_t h[16], char out[33]);

#endif /* RF_ENGINE_JCS_H */
