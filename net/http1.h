/*
 * net/http1.h: the sans-I/O HTTP/1.1 request-head parser and chunked body decoder.
 *
 * ringflowd's connection code (net/server.c) receives bytes into per-connection buffers
 * from the shard's io_uring ring and hands them here. Nothing in this module reads a
 * socket, allocates, keeps a pointer past a call, or touches global state: a request head
 * is parsed from a byte range into caller-owned structs whose slices point back into that
 * range (zero copy), and a chunked body is decoded in place by a small state machine the
 * caller keeps per connection. That makes both easy to test byte by byte and to fuzz.
 *
 * The parser is strict (RFC 9112 and RFC 9110 with the smuggling defences turned all the
 * way up): only CRLF line endings, single SPs in the request line, tokens where the
 * grammar says token, no obs-fold, no whitespace before a field's colon, one Host, one
 * plain decimal Content-Length (any list or repeat is refused, even "5, 5"), never both
 * Content-Length and Transfer-Encoding, Transfer-Encoding only in HTTP/1.1 and only with
 * chunked as its single final coding. Every violation is an error with the status to
 * answer; the server then answers it and closes the connection. Limits are checked on
 * partial input too, so a peer cannot make the server buffer more than the limits say.
 *
 * Return convention of both scanners (house style, like picohttpparser): bytes consumed
 * (> 0) when complete, -2 when more bytes are needed, -1 on an error with *status set.
 * Partial results are deterministic: feeding a message in any number of pieces gives the
 * same final answer as feeding it at once, and every prefix of a valid message gives -2.
 */
#ifndef RF_NET_HTTP1_H
#define RF_NET_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Borrowed bytes, not NUL-terminated; valid as long as the buffer they point into. */
struct rf_slice {
    const char *p;
    uint32_t n;
};

/* One field line; both slices borrowed from the parsed buffer. `value` has no leading or
 * trailing OWS (SP/HTAB) and may be empty; it may hold HTAB, SP and obs-text (0x80-0xFF). */
struct rf_http_header {
    struct rf_slice name, value;
};

enum rf_http_method {
    RF_HTTP_OTHER = 0, /* any other token: method_s holds it */
    RF_HTTP_GET,
    RF_HTTP_HEAD,
    RF_HTTP_POST,
    RF_HTTP_PUT,
    RF_HTTP_DELETE,
    RF_HTTP_OPTIONS,
    RF_HTTP_PATCH,
};

#define RF_HTTP_LINE_BYTES_DEFAULT   8192u
#define RF_HTTP_HEADER_BYTES_DEFAULT 16384u
#define RF_HTTP_HEADERS_DEFAULT      100u
/* Chunk decoder: hex digits in a chunk size (16 fill a uint64_t) and bytes of chunk
 * extensions per chunk-size line (from after the digits up to the CR). */
#define RF_HTTP_CHUNK_SIZE_DIGITS_MAX 16u
#define RF_HTTP_CHUNK_EXT_BYTES_MAX   1024u
/* Content-Length digits (15 decimal digits stay below 2^53 and never overflow int64_t). */
#define RF_HTTP_CONTENT_LENGTH_DIGITS_MAX 15u

struct rf_http_limits {
    uint32_t line_bytes_max;   /* request line incl. CRLF; over -> 414. default 8192 */
    uint32_t header_bytes_max; /* the whole head: request line, fields and the final empty
                                  line; over -> 431. default 16384. Also caps a chunked
                                  body's trailer section (over -> 400). */
    uint32_t headers_max;      /* field lines; over -> 431. default 100. Also caps the
                                  trailer fields of a chunked body (over -> 400). */
};

/* Fill *lim with the defaults above. */
void rf_http_limits_default(struct rf_http_limits *lim);

struct rf_http_req {
    enum rf_http_method method;
    struct rf_slice method_s;       /* the method token as sent (methods are case-sensitive) */
    struct rf_slice target;         /* the request-target as sent */
    struct rf_slice path;           /* target up to the first '?'; for absolute-form the URI's
                                       path, or a static "/" when the URI has none */
    struct rf_slice query;          /* after the first '?', without it; n = 0 when none */
    struct rf_slice authority;      /* absolute-form only: the URI's host[:port]; else n = 0 */
    uint8_t minor;                  /* HTTP/1.<minor>: 0 or 1 */
    struct rf_http_header *headers; /* the caller's array, every field in order */
    uint32_t nheaders;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked (the only coding accepted) */
    bool keep_alive;        /* the connection stays open after this request: HTTP/1.1
                               unless Connection lists "close"; HTTP/1.0 only when it lists
                               "keep-alive" (and not "close") */
    bool conn_upgrade;      /* Connection lists "upgrade" */
    bool expect_continue;   /* Expect: 100-continue, HTTP/1.1 only (1.0 ignores it) */
    struct rf_slice host;   /* the single Host value, possibly empty; {NULL, 0} when
                               absent (HTTP/1.0 only); for absolute-form the URI's
                               authority, which RFC 9112 §3.2.2 says replaces Host */
    uint32_t head_bytes;    /* the value returned: bytes of the head incl. skipped CRLFs */
};

/*
 * Parse one request head from buf[0..len) (borrowed; never read past buf + len).
 *
 * Returns the number of bytes of the head (up to two leading empty lines that are
 * skipped, the request line, the field lines and the empty line) when it is complete;
 * -2 when more bytes are needed and nothing seen so far breaks a rule or a limit; -1 on
 * an error with *status set to the status to answer:
 *   400 malformed or ambiguous (smuggling) head; 414 request line over line_bytes_max;
 *   431 head over header_bytes_max or more than headers_max fields; 501 a Transfer-Encoding
 *   coding other than chunked; 505 an HTTP version other than 1.0/1.1 (well formed:
 *   "HTTP/" DIGIT "." DIGIT); 417 an Expect other than 100-continue.
 * Limits count from the first byte of the method (skipped leading CRLFs do not count), and
 * are reported as soon as the bytes present prove them broken, complete head or not.
 * When several problems exist the first met left to right wins; the checks that need the
 * whole head (Host missing, Content-Length with Transfer-Encoding, the codings, Expect)
 * come after every syntax check, 400s first, then 501, then 417.
 *
 * On success *req is filled; its slices point into buf (except the static "/" above) and
 * its headers into hdrs[0..nheaders). On -2 and -1, *req and hdrs hold garbage.
 * lim NULL means the defaults. hdrs (caller-owned) must have room for lim->headers_max
 * fields; a smaller hdrs_cap lowers the field limit to hdrs_cap. No allocation.
 */
int rf_http_parse_request(const char *buf, size_t len, const struct rf_http_limits *lim,
                          struct rf_http_req *req, struct rf_http_header *hdrs, uint32_t hdrs_cap,
                          int *status);

/* Case-insensitive name lookup: the first field named `name` (NUL-terminated, borrowed)
 * at index >= *from, *from then set to the index after it; NULL when none is left. The
 * result is borrowed from req. */
const struct rf_http_header *rf_http_header_next(const struct rf_http_req *req, const char *name,
                                                 uint32_t *from);
/* The first field named `name`, or NULL. */
const struct rf_http_header *rf_http_header_get(const struct rf_http_req *req, const char *name);

/* True when the comma-separated list `v` (borrowed) holds `token` (NUL-terminated),
 * compared case-insensitively, with OWS around elements ignored and empty elements
 * skipped. */
bool rf_http_has_token(struct rf_slice v, const char *token);

/* Case-insensitive equality of a slice and a NUL-terminated ASCII string. */
bool rf_http_slice_ieq(struct rf_slice s, const char *lit);

/*
 * Chunked request body decoder (RFC 9112 §7.1), incremental and in place.
 *
 * The caller keeps one per request body (plain struct, no resources), initialises it with
 * rf_http_chunked_init() and feeds it the bytes after the head as they arrive. Fields are
 * private to net/http1.c.
 */
struct rf_http_chunked {
    uint64_t body_bytes_max; /* decoded bytes allowed; over -> 413 */
    uint64_t body_bytes;     /* decoded bytes announced by the chunk sizes so far */
    uint64_t chunk_left;     /* data bytes left in the current chunk (or its size so far) */
    uint32_t trailer_bytes_max, trailer_fields_max;
    uint32_t trailer_bytes, trailer_fields;
    uint16_t digits;    /* hex digits of the current chunk size */
    uint16_t ext_bytes; /* bytes of the current line's chunk extensions */
    uint8_t state;      /* enum in net/http1.c */
    uint8_t ext_state;  /* chunk-extension sub-state */
    uint16_t status;    /* sticky error status once failed */
};

/* Prepare *d for one body of at most body_bytes_max decoded bytes; lim (NULL = defaults)
 * gives the trailer section limits. */
void rf_http_chunked_init(struct rf_http_chunked *d, uint64_t body_bytes_max,
                          const struct rf_http_limits *lim);

/*
 * Decode src[0..len) (borrowed; len <= INT_MAX). Data bytes are written to dst, which must
 * have room for len bytes; dst <= src is allowed (memmove semantics), so dst == src
 * decodes in place. *dst_len is set to the data bytes written by this call.
 * Returns -2 when all of src was consumed and more is needed; > 0 when the body is
 * complete (last chunk and trailer section consumed): the number of src bytes consumed,
 * the rest belongs to the next request; -1 on error with *status 400 (malformed line, a
 * signed, empty or oversize chunk size: more than 16 hex digits; an extension over 1024
 * bytes; a bare CR or LF; a trailer section over the limits) or 413 (the decoded body
 * would pass body_bytes_max: reported as soon as the chunk-size digits announce it,
 * before the data arrives). Once failed it keeps failing with the same status. Trailer
 * fields are syntax-checked and dropped. Must not be called again after completion.
 */
int rf_http_chunked_decode(struct rf_http_chunked *d, char *dst, const char *src, size_t len,
                           size_t *dst_len, int *status);

#endif
