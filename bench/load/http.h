/*
 * bench/load/http.h: ringflow-load's sans-I/O HTTP/1.1 response parser.
 *
 * The engine keeps one struct rfl_resp per connection and feeds it whatever bytes arrived;
 * the parser walks a response as a sequence of events, each returned by one call of
 * rfl_resp_step(): HEAD (the status line and fields were parsed; *head describes them,
 * its spans pointing into the input), BODY (a run of body bytes, already stripped of
 * chunk framing, zero copy), DONE (the response is complete; the next call starts the
 * next pipelined response) and MORE (nothing more can be done with these bytes). *used
 * says how many input bytes the call consumed, in every case; bytes not consumed must be
 * presented again, with more appended, on the next call. Only a response head (at most
 * RFL_RESP_HEAD_BYTES_MAX) and a chunk-size or trailer line need to be contiguous; bodies
 * stream through in pieces of any size, so the caller never buffers a body it does not
 * want.
 *
 * Framing follows RFC 9112 for a client: 1xx responses other than 101 are skipped; 101,
 * 204, 304 and answers to HEAD have no body; Transfer-Encoding ending in chunked wins;
 * otherwise Content-Length; otherwise the body runs to the end of the connection
 * (rfl_resp_eof() completes it). The parser is strict where a server bug would otherwise
 * hide: CRLF line ends only, one Content-Length, not both Content-Length and
 * Transfer-Encoding, no obs-fold. Any violation returns RFL_RESP_ERR and the connection
 * is abandoned (counted as a parse error). Pure functions: no allocation, no globals.
 */
#ifndef RFL_HTTP_H
#define RFL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RFL_RESP_HEAD_BYTES_MAX   16384u /* status line + fields + empty line */
#define RFL_RESP_CHUNK_LINE_MAX   1024u  /* a chunk-size line with extensions, CRLF included */
#define RFL_RESP_LEN_DIGITS_MAX   15u    /* Content-Length digits */
#define RFL_RESP_CHUNK_DIGITS_MAX 15u    /* hex digits of a chunk size */

enum rfl_resp_ev {
    RFL_RESP_ERR = -1,
    RFL_RESP_MORE = 0,
    RFL_RESP_HEAD = 1,
    RFL_RESP_BODY = 2,
    RFL_RESP_DONE = 3,
};

/* Borrowed bytes. */
struct rfl_span {
    const uint8_t *p;
    size_t n;
};

/* A parsed response head; spans borrowed from the input of the call that returned HEAD. */
struct rfl_resp_head {
    uint16_t status;
    uint8_t minor; /* HTTP/1.minor */
    bool close;    /* the server closes the connection after this response */
    bool chunked;
    bool has_len;
    bool upgrade_ws;   /* Upgrade: websocket */
    bool conn_upgrade; /* Connection lists upgrade */
    uint64_t content_length;
    struct rfl_span ws_accept; /* Sec-WebSocket-Accept, empty when absent */
};

/* Per-connection parser state; zero it with rfl_resp_init. */
struct rfl_resp {
    uint8_t state;
    bool close;
    uint64_t remaining;     /* body or chunk bytes left */
    uint32_t trailer_bytes; /* trailer section bytes seen */
};

void rfl_resp_init(struct rfl_resp *r);

/*
 * Advance over p[0..n) (borrowed). no_body: the request was HEAD. Returns an enum
 * rfl_resp_ev; *used: bytes consumed (also on MORE, never on ERR). On HEAD, *head is
 * filled; on BODY, *body spans body bytes inside p. After a 101 head the parser is done
 * with this connection: further calls return RFL_RESP_ERR.
 */
int rfl_resp_step(struct rfl_resp *r, const uint8_t *p, size_t n, bool no_body, size_t *used,
                  struct rfl_resp_head *head, struct rfl_span *body);

/* The connection reached EOF. Returns RFL_RESP_DONE when that completes a response whose
 * body ran to the close, RFL_RESP_MORE when no response was under way (between responses),
 * RFL_RESP_ERR when one was cut short. */
int rfl_resp_eof(struct rfl_resp *r);

/* True between responses (no byte of the next response consumed yet). */
bool rfl_resp_idle(const struct rfl_resp *r);

/* Case-insensitive compare of a[0..n) with the NUL-terminated lower-case word w. */
bool rfl_ieq(const uint8_t *a, size_t n, const char *w);

#endif
