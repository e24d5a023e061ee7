/*
 * bench/load/ws.h: the sans-I/O WebSocket pieces of ringflow-load (RFC 6455, client side).
 *
 * Three small things the --ws mode needs and nothing else does:
 *   - the opening handshake: a Sec-WebSocket-Key from 16 random bytes, and the check of
 *     the server's Sec-WebSocket-Accept (base64 of SHA-1 over key + the RFC's GUID, with
 *     libcrypto's SHA1 and EVP_EncodeBlock);
 *   - the frame codec: rfl_ws_frame_parse() reads one server frame from a byte range
 *     (zero copy: the payload span points into the input) and rfl_ws_frame_encode() writes
 *     one masked client frame;
 *   - rfl_json_top_strings(): pulls named string members ("type", "execution_id") out of
 *     the top level of an event object without building a tree, skipping nested values,
 *     so that tens of thousands of events per second cost a scan each, not a parse.
 *
 * Conventions (house style): parsers return bytes consumed (> 0), RFL_WS_PARTIAL (-2)
 * when more bytes are needed, RFL_WS_ERROR (-1) on a protocol violation. The parser is
 * strict in the ways a client must be (RFC 6455 section 5): no reserved bits, known
 * opcodes only, control frames unfragmented and at most 125 bytes, no masked server
 * frames, minimal length encodings; and the payload limit is checked as soon as the
 * header is complete, so a peer cannot make the caller buffer more. No allocation, no
 * global state; any thread.
 */
#ifndef RFL_WS_H
#define RFL_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/load/http.h"

#define RFL_WS_PARTIAL (-2)
#define RFL_WS_ERROR   (-1)

#define RFL_WS_KEY_LEN     24u  /* base64 of 16 bytes */
#define RFL_WS_ACCEPT_LEN  28u  /* base64 of a SHA-1 digest */
#define RFL_WS_CONTROL_MAX 125u /* control frame payload */
#define RFL_WS_HEADER_MAX  14u  /* 2 + 8 length + 4 mask */
#define RFL_JSON_DEPTH_MAX 256u /* nesting inside a skipped value */

enum rfl_ws_op {
    RFL_WS_CONT = 0x0,
    RFL_WS_TEXT = 0x1,
    RFL_WS_BINARY = 0x2,
    RFL_WS_CLOSE = 0x8,
    RFL_WS_PING = 0x9,
    RFL_WS_PONG = 0xA,
};

struct rfl_ws_frame {
    bool fin;
    uint8_t opcode;
    const uint8_t *payload; /* borrowed from the parsed input */
    uint64_t len;
};

/* key: 16 random bytes (borrowed) -> out: their base64, NUL-terminated. */
void rfl_ws_key(const uint8_t rnd[16], char out[RFL_WS_KEY_LEN + 1]);

/* The Sec-WebSocket-Accept a server must answer to key (NUL-terminated, borrowed). */
void rfl_ws_accept(const char *key, char out[RFL_WS_ACCEPT_LEN + 1]);

/* True when the head is a valid answer to our handshake with key: status 101, Upgrade:
 * websocket, Connection listing upgrade, the right Sec-WebSocket-Accept. */
bool rfl_ws_handshake_ok(const struct rfl_resp_head *h, const char *key);

/* Parse one server frame from p[0..n) (borrowed). payload_max bounds data frames. */
long rfl_ws_frame_parse(const uint8_t *p, size_t n, uint64_t payload_max, struct rfl_ws_frame *f);

/* Bytes a masked client frame with len payload bytes takes. */
size_t rfl_ws_frame_size(size_t len);

/* Write a final (FIN) masked client frame into out (caller-owned, at least
 * rfl_ws_frame_size(len) bytes); payload borrowed. Returns the bytes written. */
size_t rfl_ws_frame_encode(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len,
                           uint32_t mask);

/*
 * Scan the JSON object p[0..n) (borrowed) for top-level members named keys[0..nkeys) whose
 * values are strings; out[i] gets the raw contents between the quotes (escapes left as
 * they are), or {NULL, 0} when the member is absent or not a string. Returns 0, or -1
 * when the bytes are not a single object (checked for shape: balanced brackets, closed
 * strings, members as "key": value). Nesting deeper than RFL_JSON_DEPTH_MAX is an error.
 */
int rfl_json_top_strings(const uint8_t *p, size_t n, const char *const *keys, size_t nkeys,
                         struct rfl_span *out);

#endif
