/*
 * net/hresp.h: the sans-I/O HTTP/1.1 RESPONSE parser of the `http` node kind's client
 * (net/hclient.c): the status line and header fields, the body framing they announce
 * (RFC 9112 §6.3), and an incremental chunked-body decoder.
 *
 * Nothing here reads a socket, allocates, keeps a pointer past a call or touches global
 * state. The head parser reads a byte range and fills caller-owned structs whose slices
 * point back into that range (zero copy); the chunked decoder is a small state machine the
 * caller keeps per response and that moves data bytes forward in the caller's buffer (in
 * place), so a response body ends up contiguous without a second buffer. Both are pure
 * functions of their inputs, which is what makes them easy to test byte by byte and to
 * fuzz (fuzz/hresp.c).
 *
 * Return convention (house style, like picohttpparser): bytes consumed (> 0) when the
 * thing is complete, -2 when more bytes are needed, -1 on an error. Feeding a message in
 * any number of pieces gives the same answer as feeding it at once; every proper prefix of
 * a valid head gives -2.
 *
 * The parser is strict where leniency would hide a broken or hostile peer and lenient only
 * where real servers differ harmlessly:
 *   - lines end in CRLF (a bare LF or CR is an error); no obs-fold; no space before a
 *     field's colon; field names are tokens; values hold HTAB, SP, VCHAR and obs-text;
 *   - the version is HTTP/1.0 or HTTP/1.1; the status is three digits from 100 to 999; the
 *     reason phrase may be empty and its SP may be missing ("HTTP/1.1 200\r\n");
 *   - Content-Length: plain decimal, at most 15 digits; repeats (or a list) must all agree;
 *   - Transfer-Encoding: only "chunked", only in HTTP/1.1 (the client never asks for other
 *     codings); with Content-Length too it wins and the connection is not reused;
 *   - Connection: "close" ends the connection; HTTP/1.0 keeps it only with "keep-alive".
 */
#ifndef RF_NET_HRESP_H
#define RF_NET_HRESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RF_HRESP_HEAD_BYTES_DEFAULT        65536u     /* status line, fields and the empty line */
#define RF_HRESP_FIELDS_DEFAULT            128u       /* header field lines */
#define RF_HRESP_HEAD_BYTES_LIMIT          (1u << 24) /* hard bound of head_bytes_max */
#define RF_HRESP_CONTENT_LENGTH_DIGITS_MAX 15u        /* below 2^53: never overflows */
#define RF_HRESP_CHUNK_SIZE_DIGITS_MAX     16u        /* hex digits: 16 fill a uint64_t */
#define RF_HRESP_CHUNK_LINE_BYTES_MAX      1024u      /* a chunk-size line after the digits */
#define RF_HRESP_TRAILER_BYTES_MAX         16384u     /* the trailer section, CRLFs included */
#define RF_HRESP_FEED_BYTES_MAX            (1u << 30) /* bytes per decoder call (int result) */

struct rf_hresp_limits {
    uint32_t head_bytes_max; /* over -> -1; 0 = RF_HRESP_HEAD_BYTES_DEFAULT; at most
                                RF_HRESP_HEAD_BYTES_LIMIT */
    uint32_t fields_max;     /* over -> -1; 0 = RF_HRESP_FIELDS_DEFAULT */
};

/* One header field; both slices borrowed from the parsed buffer, not NUL-terminated. The
 * value has no leading or trailing OWS and may be empty. */
struct rf_hresp_field {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

enum rf_hresp_framing {
    RF_HRESP_BODY_NONE = 0, /* no body: 1xx, 204, 304, or the answer to a HEAD request */
    RF_HRESP_BODY_LENGTH,   /* exactly content_length bytes */
    RF_HRESP_BODY_CHUNKED,  /* chunked: feed rf_hresp_chunked_decode() */
    RF_HRESP_BODY_CLOSE,    /* everything until the server closes the connection */
};

#define RF_HRESP_HEAD_REQUEST 0x1u /* flag: the request was HEAD (no body follows) */

struct rf_hresp_head {
    uint8_t minor;      /* HTTP/1.<minor>: 0 or 1 */
    uint16_t status;    /* 100..999 */
    const char *reason; /* borrowed; reason_len bytes, may be 0 */
    uint32_t reason_len;
    struct rf_hresp_field *fields; /* the caller's array, fields[0..nfields) in order */
    uint32_t nfields;
    uint8_t framing;         /* enum rf_hresp_framing */
    uint64_t content_length; /* RF_HRESP_BODY_LENGTH only; 0 otherwise */
    bool keep_alive;         /* the connection may carry another request once this
                                response is fully read (never with BODY_CLOSE) */
    uint32_t head_bytes;     /* the value returned */
};

/*
 * Parse one response head from buf[0..len) (borrowed; never read past buf + len). `fields`
 * (caller-owned) has room for `fields_cap` entries; the field limit is the smaller of
 * fields_cap and lim->fields_max. lim NULL = the defaults. flags: RF_HRESP_HEAD_REQUEST.
 *
 * Returns the head's bytes (status line, fields, the empty line) when complete; -2 when
 * more bytes are needed (nothing seen breaks a rule yet, and the head is under
 * head_bytes_max); -1 when the bytes are not an HTTP/1.x response head or break a rule or
 * a limit. Bytes that cannot start "HTTP/1." fail at once, before the head is complete.
 * On success *out is filled (its slices point into buf); on -1 and -2 it holds garbage.
 * Cost: one scan for the end of the head per call, then one pass over the head.
 */
int rf_hresp_parse_head(const char *buf, size_t len, unsigned flags,
                        const struct rf_hresp_limits *lim, struct rf_hresp_field *fields,
                        uint32_t fields_cap, struct rf_hresp_head *out);

/* The first field named `name` (NUL-terminated ASCII, case-insensitive) at index >= *from,
 * *from then set past it; NULL when none is left. Borrowed from h. */
const struct rf_hresp_field *rf_hresp_field_next(const struct rf_hresp_head *h, const char *name,
                                                 uint32_t *from);

/*
 * Chunked body decoder (RFC 9112 §7.1). Zero-initialize one per body and set
 * body_bytes_max (0 = no bound). Chunk extensions and trailer fields are syntax-checked
 * and dropped.
 */
struct rf_hresp_chunked {
    uint64_t body_bytes_max; /* in: decoded bytes allowed; 0 = unbounded */
    uint64_t body_bytes;     /* out: decoded bytes announced by the chunk sizes so far */
    bool too_large;          /* out: the last -1 was body_bytes_max being passed */
    /* private */
    uint64_t left;          /* data bytes left in the current chunk (or its size so far) */
    uint32_t line_bytes;    /* bytes of the current size line after its digits */
    uint32_t trailer_bytes; /* bytes of the trailer section so far */
    uint8_t digits;         /* hex digits of the current chunk size */
    uint8_t state;
};

/*
 * Decode src[0..len) (borrowed; len <= RF_HRESP_FEED_BYTES_MAX, else -1). Data bytes go to
 * dst, which has room for len bytes; dst <= src is allowed (memmove semantics), so
 * dst == src decodes in place. *dst_len is set to the data bytes written by this call.
 * Returns -2 when all of src was consumed and more is needed; > 0 when the body is
 * complete (last chunk and trailer section consumed): the src bytes consumed, the rest is
 * not part of the body; -1 on an error (bad syntax, a bare CR or LF, a chunk size over 16
 * hex digits, a size line or trailer section over its limit, or, with `too_large` set, a
 * chunk size that would take the body past body_bytes_max, reported as soon as the digits
 * say so). Must not be called again after it returned > 0 or -1.
 */
int rf_hresp_chunked_decode(struct rf_hresp_chunked *d, char *dst, const char *src, size_t len,
                            size_t *dst_len);

/* --- small pure helpers the client shares with the parser ------------------------------ */

/* True when p[0..n) is a non-empty RFC 9110 token (method names, field names). */
bool rf_hresp_token(const char *p, size_t n);

/* True when p[0..n) is well-formed UTF-8 (no overlong forms, no surrogates, at most
 * U+10FFFF). NUL bytes are allowed. */
bool rf_hresp_utf8_valid(const char *p, size_t n);

/* True when a Content-Type value names JSON: the media type (before any ';', OWS trimmed,
 * case-insensitive) is application/json or has a "+json" structured suffix. */
bool rf_hresp_is_json_type(const char *v, size_t n);

#endif /* RF_NET_HRESP_H */
