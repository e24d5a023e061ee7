/*
 * bench/load/ws.c: handshake, frame codec and event scanner of ringflow-load (ws.h).
 *
 * The handshake check recomputes the accept value from the key this client sent and
 * compares it byte for byte: a server that answers 101 with a wrong accept has not
 * understood the request, and the connection counts as a WebSocket error.
 *
 * Frames: rfl_ws_frame_parse() decides everything from the first 2, 4 or 10 bytes (the
 * header), then waits for the payload; rfl_ws_frame_encode() always masks, because a
 * client must (section 5.3). The mask comes from the caller (the engine's fast PRNG): the
 * point of masking is to stop cache poisoning by intermediaries that a load test does not
 * have, so predictability is acceptable here and said so.
 *
 * The JSON scanner does not validate numbers or literals beyond their characters; it
 * checks what matters for finding members reliably: strings end where they seem to (with
 * escapes), brackets nest and match, members have a key and a colon. An event whose
 * "type" or "execution_id" is hidden inside a nested object (a node's output may well
 * contain a "type") is therefore never mistaken for a top-level one.
 */
#include "bench/load/ws.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void rfl_ws_key(const uint8_t rnd[16], char out[RFL_WS_KEY_LEN + 1])
{
    EVP_EncodeBlock((unsigned char *)out, rnd, 16);
    out[RFL_WS_KEY_LEN] = 0;
}

void rfl_ws_accept(const char *key, char out[RFL_WS_ACCEPT_LEN + 1])
{
    unsigned char buf[64 + sizeof(ws_guid)];
    size_t kn = strnlen(key, 64);
    memcpy(buf, key, kn);
    memcpy(buf + kn, ws_guid, sizeof(ws_guid) - 1);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1(buf, kn + sizeof(ws_guid) - 1, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
    out[RFL_WS_ACCEPT_LEN] = 0;
}

bool rfl_ws_handshake_ok(const struct rfl_resp_head *h, const char *key)
{
    if (h->status != 101 || !h->upgrade_ws || !h->conn_upgrade)
        return false;
    char want[RFL_WS_ACCEPT_LEN + 1];
    rfl_ws_accept(key, want);
    return h->ws_accept.n == RFL_WS_ACCEPT_LEN &&
           memcmp(h->ws_accept.p, want, RFL_WS_ACCEPT_LEN) == 0;
}

static bool opcode_known(uint8_t op)
{
    return op <= RFL_WS_BINARY || (op >= RFL_WS_CLOSE && op <= RFL_WS_PONG);
}

long rfl_ws_frame_parse(const uint8_t *p, size_t n, uint64_t payload_max, struct rfl_ws_frame *f)
{
    if (n < 2)
        return RFL_WS_PARTIAL;
    uint8_t op = p[0] & 0x0f;
    if ((p[0] & 0x70) || !opcode_known(op) || (p[1] & 0x80))
        return RFL_WS_ERROR;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = op;
    uint64_t len = p[1] & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
        if (n < 4)
            return RFL_WS_PARTIAL;
        len = (uint64_t)p[2] << 8 | p[3];
        if (len < 126)
            return RFL_WS_ERROR;
        hdr = 4;
    } else if (len == 127) {
        if (n < 10)
            return RFL_WS_PARTIAL;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        if ((len >> 63) || len < 65536)
            return RFL_WS_ERROR;
        hdr = 10;
    }
    if (op >= RFL_WS_CLOSE && (!f->fin || len > RFL_WS_CONTROL_MAX))
        return RFL_WS_ERROR;
    if (len > payload_max)
        return RFL_WS_ERROR;
    if (n - hdr < len)
        return RFL_WS_PARTIAL;
    f->payload = p + hdr;
    f->len = len;
    return (long)(hdr + len);
}

size_t rfl_ws_frame_size(size_t len)
{
    return len + 6u + (len >= 126u ? (len > 65535u ? 8u : 2u) : 0u);
}

size_t rfl_ws_frame_encode(uint8_t *out, uint8_t opcode, const uint8_t *payload, size_t len,
                           uint32_t mask)
{
    size_t h = 2;
    out[0] = (uint8_t)(0x80u | opcode);
    if (len < 126) {
        out[1] = (uint8_t)(0x80u | len);
    } else if (len <= 65535) {
        out[1] = 0x80u | 126u;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 0x80u | 127u;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    uint8_t m[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8),
                    (uint8_t)mask};
    memcpy(out + h, m, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = payload[i] ^ m[i & 3];
    return h + len;
}

/* --- the top-level JSON member scanner ------------------------------------------------- */

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the opening quote; returns the byte after the closing quote, or NULL. */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *e)
{
    for (p++; p < e; p++) {
        if (*p == '"')
            return p + 1;
        if (*p < 0x20)
            return NULL;
        if (*p == '\\' && ++p == e)
            return NULL;
    }
    return NULL;
}

/* p at '{' or '['; returns the byte after the matching closer, or NULL. */
static const uint8_t *skip_container(const uint8_t *p, const uint8_t *e)
{
    uint8_t stack[RFL_JSON_DEPTH_MAX];
    size_t depth = 0;
    while (p < e) {
        uint8_t c = *p;
        if (c == '"') {
            p = skip_string(p, e);
            if (!p)
                return NULL;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == RFL_JSON_DEPTH_MAX)
                return NULL;
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c)
                return NULL;
            if (--depth == 0)
                return p + 1;
        }
        p++;
    }
    return NULL;
}

static const uint8_t *skip_value(const uint8_t *p, const uint8_t *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[')
        return skip_container(p, e);
    const uint8_t *s = p;
    while (p < e && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                     *p == '+' || *p == '.' || *p == 'E'))
        p++;
    return p > s ? p : NULL;
}

static void match_member(const uint8_t *k, size_t kn, const uint8_t *v, const uint8_t *ve,
                         const char *const *keys, size_t nkeys, struct rfl_span *out)
{
    if (*v != '"')
        return;
    for (size_t i = 0; i < nkeys; i++) {
        if (strlen(keys[i]) == kn && memcmp(keys[i], k, kn) == 0) {
            out[i].p = v + 1;
            out[i].n = (size_t)(ve - 1 - (v + 1));
        }
    }
}

int rfl_json_top_strings(const uint8_t *p, size_t n, const char *const *keys, size_t nkeys,
                         struct rfl_span *out)
{
    const uint8_t *e = p + n;
    for (size_t i = 0; i < nkeys; i++)
        out[i] = (struct rfl_span){NULL, 0};
    p = skip_ws(p, e);
    if (p == e || *p != '{')
        return -1;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p == e || *p != '"')
                return -1;
            const uint8_t *k = p + 1, *ke = skip_string(p, e);
            if (!ke)
                return -1;
            p = skip_ws(ke, e);
            if (p == e || *p != ':')
                return -1;
            const uint8_t *v = skip_ws(p + 1, e);
            const uint8_t *ve = skip_value(v, e);
            if (!ve)
                return -1;
            match_member(k, (size_t)(ke - 1 - k), v, ve, keys, nkeys, out);
            p = skip_ws(ve, e);
            if (p < e && *p == ',') {
                p = skip_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            return -1;
        }
    }
    return skip_ws(p, e) == e ? 0 : -1;
}
