/*
 * net/ws.h: the WebSocket layer of ringflowd (RFC 6455), without I/O.
 *
 * Two halves. rf_ws_handshake_check() is a pure function over a parsed HTTP request
 * (net/http1.h): it says whether the request is a valid opening handshake and, if so,
 * computes Sec-WebSocket-Accept; otherwise it names the status to answer. The session
 * (struct rf_ws, one per upgraded connection) wraps a wslay event context: the server
 * hands it the bytes it received with rf_ws_feed(), gets whole text messages back through
 * on_text, and every byte the session wants on the wire comes out, synchronously, through
 * the write callback, before the call that produced it returns. Nothing here reads or
 * writes a socket, keeps a timer or takes a lock: one session belongs to one shard thread.
 *
 * Failures answer with a close frame and end the session: 1002 protocol error, 1003
 * binary message (we only speak text), 1007 bad UTF-8, 1009 message over msg_bytes_max.
 * Once rf_ws_done() is true the server flushes its output and closes the TCP connection.
 * Closing when the peer never answers our close is the server's job (a timer).
 */
#ifndef RF_NET_WS_H
#define RF_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rf_http_req;

/* Sec-WebSocket-Accept: base64 of a SHA-1 digest, 28 characters. */
#define RF_WS_ACCEPT_LEN 28
/* Received messages: default limit of a message after reassembly. */
#define RF_WS_MSG_BYTES_DEFAULT (64u << 10)
/* Sent text messages: larger ones are refused with -EMSGSIZE. */
#define RF_WS_SEND_BYTES_MAX (64u << 20)
/* Control frame payload (ping, pong, close), and a close reason after its 2-byte code. */
#define RF_WS_CONTROL_BYTES_MAX 125u
#define RF_WS_REASON_BYTES_MAX  123u

/*
 * Check an upgrade request per RFC 6455 §4.2.1 (req borrowed): method GET, HTTP/1.1, a
 * Host, Upgrade listing the token "websocket" and Connection listing "upgrade" (in any of
 * their field lines, case-insensitively), exactly one Sec-WebSocket-Key whose value is
 * base64 of exactly 16 bytes (24 characters ending "=="), exactly one
 * Sec-WebSocket-Version equal to 13.
 * Returns 0 and fills accept (base64 SHA-1 of key + GUID, NUL-terminated) on success;
 * otherwise the HTTP status to answer, accept left untouched: 405 not GET (the server adds
 * Allow: GET); 400 anything malformed or missing (HTTP/1.0, no Host, no upgrade tokens, a
 * missing, repeated or bad key, a repeated version); 426 version missing or not 13 (the
 * server adds Sec-WebSocket-Version: 13). Checks run in that order: method, HTTP version,
 * Host, Upgrade, Connection, Sec-WebSocket-Version, Sec-WebSocket-Key. Pure: no
 * allocation, no state; any thread.
 */
int rf_ws_handshake_check(const struct rf_http_req *req, char accept[RF_WS_ACCEPT_LEN + 1]);

/* True when p[0..n) (borrowed) is valid UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence at the end. Any thread. */
bool rf_ws_utf8_valid(const void *p, size_t n);

struct rf_ws; /* opaque session, one per connection */

struct rf_ws_limits {
    uint32_t msg_bytes_max; /* largest message received, after reassembly of fragments:
                               over -> close 1009. 0 means the default, 64 KiB */
};

struct rf_ws_cbs {
    /* A complete text message, valid UTF-8 (invalid -> close 1007, no call). msg is
     * borrowed for the duration of the call, never NULL, not NUL-terminated. May call
     * rf_ws_send_text(), rf_ws_ping() and rf_ws_close() on the same session (their frames
     * are written at once, ahead of anything later in the bytes being fed), never
     * rf_ws_free() or rf_ws_feed(). */
    void (*on_text)(void *ud, const char *msg, size_t len);
    /* Append data[0..len) (borrowed for the call) to the connection's output. Must take
     * all of it: 0, or a negative errno, after which the session is broken and every
     * later call returns that errno. */
    int (*write)(void *ud, const void *data, size_t len);
};

/*
 * Make a session: server = true for the daemon's side (expects masked frames, sends
 * unmasked), false for a client (masks with a per-thread xorshift PRNG seeded once from
 * getrandom; for tests and the load generator). cbs is copied; ud is passed back to every
 * callback; lim NULL means the defaults. *out is owned by the caller (rf_ws_free).
 * 0, -EINVAL (no write callback) or -ENOMEM.
 */
int rf_ws_new(bool server, const struct rf_ws_cbs *cbs, void *ud, const struct rf_ws_limits *lim,
              struct rf_ws **out);
/* Free the session and anything still queued; NULL is a no-op. Writes nothing. */
void rf_ws_free(struct rf_ws *ws);

/*
 * Feed received bytes in[0..len) (borrowed; all consumed, partial frames kept inside).
 * Calls on_text for each complete text message, answers pings with pongs and a close with
 * a close, through write. Violations are answered with a close frame (1002, 1003, 1007,
 * 1009, see above), not returned; bytes after that, or after the peer's close, are
 * dropped. Returns 0, or a negative errno from write or -ENOMEM (the session is broken).
 */
int rf_ws_feed(struct rf_ws *ws, const char *in, size_t len);

/* Send one text message (copied; valid UTF-8, at most RF_WS_SEND_BYTES_MAX) as one frame,
 * written before the call returns. 0, -EINVAL bad UTF-8, -EMSGSIZE too large, -EPIPE once
 * a close was sent, -ENOMEM, or the session's write error. */
int rf_ws_send_text(struct rf_ws *ws, const char *data, size_t len);
/* Send a ping with payload (copied, at most 125 bytes; NULL when len is 0). Errors as
 * rf_ws_send_text. The peer's pong is consumed silently. */
int rf_ws_ping(struct rf_ws *ws, const void *payload, size_t len);
/* Start the closing handshake: a close frame with code and reason (NUL-terminated,
 * borrowed, NULL for none; at most 123 bytes of valid UTF-8). code is 1000-1003,
 * 1007-1011 or 3000-4999, or 0 for a close without a code (then no reason).
 * 0, -EINVAL, -EPIPE if a close was already sent, or the session's write error. */
int rf_ws_close(struct rf_ws *ws, uint16_t code, const char *reason);

/* True once the TCP connection should be closed: we sent a close and received one, or a
 * violation was answered with a close frame already written, or write failed. */
bool rf_ws_done(const struct rf_ws *ws);
/* The close code the peer sent (1005 when its close had none; 0 when no close came) and
 * the code we sent (1005 for a close without one; 0 when none was sent). */
uint16_t rf_ws_close_code_recv(const struct rf_ws *ws);
uint16_t rf_ws_close_code_sent(const struct rf_ws *ws);

#endif /* RF_NET_WS_H */
