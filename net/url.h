/*
 * net/url.h: percent-decoding, query strings, decimal parameters and path segments.
 *
 * The REST router (net/api.c) gets a request's path and query as raw slices from
 * net/http1.h and uses these helpers to split the path into segments, iterate or look up
 * application/x-www-form-urlencoded query parameters, decode them and parse numbers.
 * Everything is sans I/O and allocation free: iteration and splitting hand out slices of
 * the input (still encoded); decoding writes into a caller buffer and NUL-terminates it.
 * Errors are negative errno values: -EINVAL malformed, -ENAMETOOLONG a buffer too small,
 * -ENOENT absent, -ERANGE over a maximum, -E2BIG more segments than room.
 *
 * struct rf_slice comes from net/http1.h, included here.
 */
#ifndef RF_NET_URL_H
#define RF_NET_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http1.h"

/* Percent-decode s[0..n) (borrowed) into dst (cap bytes, caller-owned), NUL-terminated.
 * plus_is_space turns '+' into ' ' (query keys and values). Returns the decoded length;
 * -EINVAL when a '%' is not followed by two hex digits or the result would hold a NUL
 * (raw or %00), checked over the whole input first; else -ENAMETOOLONG when the result
 * and its NUL do not fit in cap (dst is then left holding a truncated prefix, still
 * NUL-terminated when cap > 0). dst may be NULL when cap is 0 (a validity check). */
int rf_url_decode(const char *s, size_t n, bool plus_is_space, char *dst, size_t cap);

/* Iterator over "k=v&k2=v2" (borrowed query, without the '?'). */
struct rf_query_it {
    const char *p, *end;
};

void rf_query_begin(struct rf_query_it *it, struct rf_slice query);

/* 1 with the next raw (still encoded) key and value, slices of the query; 0 at the end.
 * The key ends at the first '='; a pair without '=' has an empty value (val->n = 0, and
 * val->p just past the key). Empty pairs ("&&", a leading or trailing '&') are skipped;
 * "=v" gives an empty key. */
int rf_query_next(struct rf_query_it *it, struct rf_slice *key, struct rf_slice *val);

/* Decoded value of the first parameter whose decoded key equals `key` (NUL-terminated)
 * into dst (cap bytes, NUL-terminated): its length, -ENOENT when absent, -EINVAL on a
 * bad escape in its value, -ENAMETOOLONG when it does not fit. Keys are decoded with '+'
 * as space; a key with a bad escape matches nothing. */
int rf_query_get(struct rf_slice query, const char *key, char *dst, size_t cap);

/* Strict unsigned decimal: only ASCII digits (no sign, space, '+', "0x"), not empty,
 * value <= max. Leading zeros are accepted. 0 with *out set, -EINVAL malformed (checked
 * over the whole slice first), -ERANGE over max (or over UINT64_MAX). */
int rf_parse_u64(struct rf_slice s, uint64_t max, uint64_t *out);

/* Split an absolute path (borrowed) into raw segments (slices of it, not decoded):
 * "/v1/graphs/x" -> {"v1", "graphs", "x"}. "/" gives one empty segment; any other
 * trailing '/' is dropped ("/v1/graphs/" -> {"v1", "graphs"}). Returns the count,
 * -EINVAL when the path is empty, does not start with '/' or holds an empty segment
 * ("//" anywhere, "/a//"), -E2BIG when there are more than cap segments. Dot segments
 * ("." and "..") are returned as they are, never resolved. */
int rf_path_split(struct rf_slice path, struct rf_slice *segs, uint32_t cap);

#endif
