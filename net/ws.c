/*
 * net/ws.c: RFC 6455 opening handshake check and a wslay-based session, without I/O.
 *
 * The server (net/server.c) parses a request with net/http1.c, asks
 * rf_ws_handshake_check() whether it is an upgrade, answers 101, and from then on feeds
 * every byte it receives to rf_ws_feed(). wslay's event API does the framing: its recv
 * callback takes bytes from the buffer given to rf_ws_feed() and says WOULDBLOCK when it
 * is exhausted; its send callback appends to the connection's output through cbs->write,
 * which always accepts everything, so wslay_event_send() after each feed and each queued
 * message empties wslay's queues at once and nothing is ever pending inside it.
 *
 * A gate sits in the recv callback in front of wslay. wslay 1.1 answers some framing
 * errors (a control frame over 125 bytes or fragmented, a length in a longer form than
 * needed) with a close frame that carries no code, skips bytes when it checks the UTF-8
 * of a close reason split across reads, and buffers whole binary messages before anyone
 * could refuse them. So the gate reads each frame header first, holds it back until it is
 * complete (and a control frame until its payload is complete too, at most 139 bytes),
 * and only passes it on when it breaks no rule: RSV bits clear, masked exactly when the
 * peer is a client, a known opcode, continuation frames only inside a fragmented message
 * and new messages only outside one, control frames final and at most 125 bytes, lengths
 * in their shortest form, the message within msg_bytes_max, a close payload with a valid
 * code and UTF-8 reason, and no binary message. The first violation stops the gate: wslay
 * gets every byte before the offending frame, then the session queues a close with the
 * gate's code (1002, 1003, 1007 or 1009) unless wslay queued one first. The gate also
 * pauses after each control frame so that a pong goes out before a later close (wslay
 * drops queued pongs once a close is queued). Text messages are checked once more for
 * UTF-8 here, whole, before on_text (wslay versions differ on that check).
 *
 * Per-session memory (x86-64, glibc, wslay 1.1.1), measured with mallinfo2 over 10,000
 * idle server sessions: 9,024 bytes, of which 8,784 are wslay's (its event context with a
 * 4 KiB output buffer, its frame context with a 4 KiB input buffer, four empty queues)
 * and 240 are struct rf_ws (232 bytes, 168 of them the gate). A message being
 * received adds its announced frame sizes (bounded by msg_bytes_max), twice for a moment
 * when wslay flattens the fragments.
 */
#include "engine/rf.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "engine/alloc.h"
#include "net/http1.h"
#include "net/ws.h"

#define WS_GUID           "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_LEN       36u
#define WS_KEY_LEN        24u /* base64 of 16 bytes: 22 characters and "==" */
#define WS_SHA1_LEN       20u
#define WS_HEAD_BYTES_MAX 14u /* 2 + 8 (64-bit length) + 4 (mask key) */
#define WS_HELD_BYTES_MAX (WS_HEAD_BYTES_MAX + RF_WS_CONTROL_BYTES_MAX)

enum ws_op {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

/* Close codes as numbers (wslay names them too; these read better in the gate). */
#define WS_CLOSE_PROTOCOL 1002u
#define WS_CLOSE_DATA     1003u
#define WS_CLOSE_UTF8     1007u
#define WS_CLOSE_TOO_BIG  1009u

/* The frame checker in front of wslay. held[] collects a frame header, or a whole control
 * frame, until it can be judged; judged bytes then pass to wslay from held[ready-out). */
struct ws_gate {
    uint64_t left;      /* payload bytes of the current data frame still to pass */
    uint64_t msg_bytes; /* payload announced so far by the data message in progress */
    uint8_t held[WS_HELD_BYTES_MAX];
    uint8_t have;     /* bytes in held */
    uint8_t need;     /* bytes held must reach before the next check */
    uint8_t head_len; /* 0 while only the first 2 bytes are awaited; then the header size */
    uint8_t ready;    /* judged bytes of held that may pass */
    uint8_t out;      /* bytes of held passed so far */
    uint8_t op;       /* opcode of the frame in held */
    bool in_msg;      /* a fragmented data message is open */
    bool pause;       /* a control frame passed: let wslay answer it before going on */
    bool stop;        /* a close frame passed or a violation was found: pass nothing more */
    uint16_t code;    /* close code for the violation, 0 if none */
};

struct rf_ws {
    wslay_event_context_ptr ctx;
    struct rf_ws_cbs cbs;
    void *ud;
    const char *in; /* the rest of the buffer rf_ws_feed is consuming */
    size_t in_left;
    uint32_t msg_bytes_max;
    int err;      /* sticky negative errno: write failed or allocation failed */
    bool server;  /* peer frames must be masked (server) or unmasked (client) */
    bool in_feed; /* inside rf_ws_feed: no second feed from on_text */
    struct ws_gate gate;
};

/* --- UTF-8 ------------------------------------------------------------------------------ */

/* Well-formed sequences (Unicode Table 3-7): per lead byte, the length and the range of the
 * second byte; later bytes are 0x80-0xBF. Lead bytes 0x80-0xC1 and 0xF5-0xFF are invalid
 * (length 0). */
static int utf8_seq_len(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c == 0xe0)
        *lo = 0xa0;
    else if (c == 0xed)
        *hi = 0x9f; /* no surrogates U+D800-U+DFFF */
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c == 0xf0)
        *lo = 0x90;
    else if (c == 0xf4)
        *hi = 0x8f; /* nothing above U+10FFFF */
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

bool rf_ws_utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;

    while (i < n) {
        uint8_t lo, hi;
        int len;

        if (s[i] < 0x80) { /* ASCII: eight bytes at a time while it lasts */
            uint64_t w;
            while (i + 8 <= n && (memcpy(&w, s + i, 8), (w & 0x8080808080808080ull) == 0))
                i += 8;
            while (i < n && s[i] < 0x80)
                i++;
            continue;
        }
        len = utf8_seq_len(s[i], &lo, &hi);
        if (len == 0 || n - i < (size_t)len)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (int k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += (size_t)len;
    }
    return true;
}

/* --- handshake --------------------------------------------------------------------------- */

static struct rf_slice slice_trim(struct rf_slice s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

/* Does any field line named `name` list `token`? */
static bool any_field_has_token(const struct rf_http_req *req, const char *name, const char *token)
{
    const struct rf_http_header *h;
    uint32_t from = 0;

    while ((h = rf_http_header_next(req, name, &from)) != NULL)
        if (rf_http_has_token(h->value, token))
            return true;
    return false;
}

/* The number of field lines named `name` (0, 1 or 2 meaning "more than one"); *first set
 * to the first. */
static int field_count(const struct rf_http_req *req, const char *name,
                       const struct rf_http_header **first)
{
    uint32_t from = 0;

    *first = rf_http_header_next(req, name, &from);
    if (!*first)
        return 0;
    return rf_http_header_next(req, name, &from) ? 2 : 1;
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* base64 of exactly 16 bytes: 22 alphabet characters then "==". The two bits the last
 * character carries beyond the 16 bytes are not checked (RFC 4648 §3.5 lets decoders
 * ignore them). */
static bool key_valid(struct rf_slice k)
{
    if (k.n != WS_KEY_LEN || k.p[22] != '=' || k.p[23] != '=')
        return false;
    for (uint32_t i = 0; i < 22; i++)
        if (!b64_char(k.p[i]))
            return false;
    return true;
}

int rf_ws_handshake_check(const struct rf_http_req *req, char accept[RF_WS_ACCEPT_LEN + 1])
{
    const struct rf_http_header *ver, *key;
    unsigned char buf[WS_KEY_LEN + WS_GUID_LEN], md[WS_SHA1_LEN];
    struct rf_slice v, k;
    int n;

    if (req->method != RF_HTTP_GET)
        return 405;
    if (req->minor != 1)
        return 400;
    if (!req->host.p && !rf_http_header_get(req, "Host"))
        return 400;
    if (!any_field_has_token(req, "Upgrade", "websocket") ||
        !any_field_has_token(req, "Connection", "upgrade"))
        return 400;
    n = field_count(req, "Sec-WebSocket-Version", &ver);
    if (n == 0)
        return 426;
    if (n > 1)
        return 400;
    v = slice_trim(ver->value);
    if (v.n != 2 || v.p[0] != '1' || v.p[1] != '3')
        return 426;
    if (field_count(req, "Sec-WebSocket-Key", &key) != 1)
        return 400;
    k = slice_trim(key->value);
    if (!key_valid(k))
        return 400;
    memcpy(buf, k.p, WS_KEY_LEN);
    memcpy(buf + WS_KEY_LEN, WS_GUID, WS_GUID_LEN);
    SHA1(buf, sizeof(buf), md);
    n = EVP_EncodeBlock((unsigned char *)accept, md, WS_SHA1_LEN);
    RF_ASSERT(n == RF_WS_ACCEPT_LEN);
    return 0;
}

/* --- the gate ------------------------------------------------------------------------------ */

/* Close codes a peer may send, as wslay accepts them. */
static bool close_code_valid(uint32_t code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

static void gate_reset_head(struct ws_gate *g)
{
    g->have = g->ready = g->out = 0;
    g->need = 2;
    g->head_len = 0;
}

/* The first two bytes: everything but the length's value. 0 or a close code. */
static uint16_t gate_first_two(struct rf_ws *ws)
{
    struct ws_gate *g = &ws->gate;
    uint8_t b0 = g->held[0], b1 = g->held[1];
    bool fin = b0 & 0x80, masked = b1 & 0x80;
    uint8_t len7 = b1 & 0x7f;

    g->op = b0 & 0x0f;
    if ((b0 & 0x70) != 0 || masked != ws->server)
        return WS_CLOSE_PROTOCOL;
    switch (g->op) {
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!fin || len7 > RF_WS_CONTROL_BYTES_MAX)
            return WS_CLOSE_PROTOCOL;
        break;
    case WS_OP_CONT:
        if (!g->in_msg)
            return WS_CLOSE_PROTOCOL;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (g->in_msg)
            return WS_CLOSE_PROTOCOL;
        if (g->op == WS_OP_BINARY)
            return WS_CLOSE_DATA;
        break;
    default:
        return WS_CLOSE_PROTOCOL;
    }
    g->head_len = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    g->need = g->head_len;
    return 0;
}

/* The payload length of the complete header in held, or UINT64_MAX when it is not in its
 * shortest form or has the top bit set. */
static uint64_t gate_payload_len(const struct ws_gate *g)
{
    uint8_t len7 = g->held[1] & 0x7f;
    uint64_t n = 0;

    if (len7 < 126)
        return len7;
    for (int i = 0; i < (len7 == 126 ? 2 : 8); i++)
        n = n << 8 | g->held[2 + i];
    if ((len7 == 126 && n < 126) || (len7 == 127 && (n < 65536 || n >> 63)))
        return UINT64_MAX;
    return n;
}

/* A whole close frame is in held: its payload (unmasked into a copy) must be empty or a
 * valid code with a UTF-8 reason. */
static uint16_t gate_check_close(const struct ws_gate *g)
{
    uint8_t p[RF_WS_CONTROL_BYTES_MAX];
    uint8_t mask[4] = {0, 0, 0, 0};
    size_t n = (size_t)(g->have - g->head_len);

    if (g->held[1] & 0x80)
        memcpy(mask, g->held + g->head_len - 4, 4);
    for (size_t i = 0; i < n; i++)
        p[i] = g->held[g->head_len + i] ^ mask[i & 3];
    if (n == 0)
        return 0;
    if (n == 1 || !close_code_valid((uint32_t)p[0] << 8 | p[1]))
        return WS_CLOSE_PROTOCOL;
    return rf_ws_utf8_valid(p + 2, n - 2) ? 0 : WS_CLOSE_UTF8;
}

/* The header in held is complete: judge its length. A data frame's header may pass at once;
 * a control frame waits for its payload. */
static uint16_t gate_head_done(struct rf_ws *ws)
{
    struct ws_gate *g = &ws->gate;
    uint64_t len = gate_payload_len(g), total;

    if (len == UINT64_MAX)
        return WS_CLOSE_PROTOCOL;
    if (g->op >= WS_OP_CLOSE) {
        g->need = (uint8_t)(g->head_len + len);
        return 0;
    }
    total = (g->op == WS_OP_CONT ? g->msg_bytes : 0) + len;
    if (total > ws->msg_bytes_max)
        return WS_CLOSE_TOO_BIG;
    g->msg_bytes = total;
    g->in_msg = !(g->held[0] & 0x80);
    g->left = len;
    return 0;
}

/* Move input bytes into held towards `need`, and judge what held holds once it gets
 * there: the first two bytes, then the whole header, then a control frame's payload. Sets
 * ready when held may pass. 0 or the close code of a violation. */
static uint16_t gate_step(struct rf_ws *ws)
{
    struct ws_gate *g = &ws->gate;
    size_t k = RF_MIN((size_t)(g->need - g->have), ws->in_left);
    uint16_t code;

    memcpy(g->held + g->have, ws->in, k);
    g->have = (uint8_t)(g->have + k);
    ws->in += k;
    ws->in_left -= k;
    if (g->have < g->need)
        return 0;
    if (g->head_len == 0 && (code = gate_first_two(ws)) != 0)
        return code;
    if (g->have < g->need)
        return 0; /* length or mask key to come */
    if (g->have == g->head_len && (code = gate_head_done(ws)) != 0)
        return code;
    if (g->have < g->need)
        return 0; /* a control frame's payload to come */
    if (g->op == WS_OP_CLOSE && (code = gate_check_close(g)) != 0)
        return code;
    g->ready = g->have;
    return 0;
}

/* wslay's recv callback: judged bytes, up to len, from held and from the input. Stops at a
 * pause, at a violation, at the end of a close frame, and when the input runs out. */
static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user_data)
{
    struct rf_ws *ws = user_data;
    struct ws_gate *g = &ws->gate;
    size_t n = 0, k;

    (void)flags;
    while (n < len) {
        if (g->out < g->ready) {
            k = RF_MIN((size_t)(g->ready - g->out), len - n);
            memcpy(buf + n, g->held + g->out, k);
            n += k;
            g->out = (uint8_t)(g->out + k);
            if (g->out == g->ready) { /* held passed: a control frame ends a round */
                g->pause = g->op >= WS_OP_CLOSE;
                g->stop = g->op == WS_OP_CLOSE;
                gate_reset_head(g);
            }
            continue;
        }
        if (g->pause || g->stop)
            break;
        if (g->left) {
            k = RF_MIN(RF_MIN(g->left, (uint64_t)(len - n)), (uint64_t)ws->in_left);
            if (k == 0)
                break;
            memcpy(buf + n, ws->in, k);
            n += k;
            g->left -= k;
            ws->in += k;
            ws->in_left -= k;
            continue;
        }
        if (ws->in_left == 0)
            break;
        g->code = gate_step(ws);
        g->stop = g->code != 0;
    }
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)n;
}

/* --- wslay callbacks ------------------------------------------------------------------------ */

/* Write or allocation failed: the session is over. Reading stops at once, so on_text is not
 * called again even by the wslay_event_recv in progress. */
static int ws_broken(struct rf_ws *ws, int err)
{
    if (!ws->err)
        ws->err = err;
    wslay_event_shutdown_read(ws->ctx);
    return ws->err;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    struct rf_ws *ws = user_data;
    int r;

    (void)flags;
    r = ws->cbs.write(ws->ud, data, len);
    if (r < 0) {
        ws_broken(ws, r);
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Client mask keys: xorshift64* per thread, seeded once from getrandom (RFC 6455 asks for
 * unpredictable keys so that intermediaries cannot be fed chosen bytes; a seeded PRNG is
 * enough for our tests and load generator, which are the only clients). */
static __thread uint64_t ws_mask_state;

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user_data)
{
    (void)ctx;
    (void)user_data;
    if (rf_unlikely(ws_mask_state == 0)) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
            seed = rf_now_ns() ^ (uintptr_t)&seed;
        ws_mask_state = seed ? seed : 1;
    }
    while (len) {
        uint64_t x = rf_rand_next(&ws_mask_state);
        size_t k = RF_MIN(len, sizeof(x));
        memcpy(buf, &x, k);
        buf += k;
        len -= k;
    }
    return 0;
}

/* Fail the session with a close (first close wins: wslay refuses a second one) and read no
 * more. */
static void ws_fail(struct rf_ws *ws, uint16_t code)
{
    int r = wslay_event_queue_close(ws->ctx, code, NULL, 0);

    if (r == WSLAY_ERR_NOMEM)
        ws_broken(ws, -ENOMEM);
    wslay_event_shutdown_read(ws->ctx);
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user_data)
{
    struct rf_ws *ws = user_data;

    (void)ctx;
    /* Binary never gets here (the gate refuses it); ping, pong and close wslay answers. */
    RF_DASSERT(arg->opcode != WS_OP_BINARY);
    if (arg->opcode != WS_OP_TEXT)
        return;
    if (arg->msg_length > ws->msg_bytes_max) {
        ws_fail(ws, WS_CLOSE_TOO_BIG);
        return;
    }
    if (!rf_ws_utf8_valid(arg->msg, arg->msg_length)) {
        ws_fail(ws, WS_CLOSE_UTF8);
        return;
    }
    if (ws->cbs.on_text) /* wslay gives NULL for an empty message; on_text gets "" */
        ws->cbs.on_text(ws->ud, arg->msg ? (const char *)arg->msg : "", arg->msg_length);
}

/* --- the session ------------------------------------------------------------------------------ */

int rf_ws_new(bool server, const struct rf_ws_cbs *cbs, void *ud, const struct rf_ws_limits *lim,
              struct rf_ws **out)
{
    struct wslay_event_callbacks wcb = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .genmask_callback = server ? NULL : ws_genmask_cb,
        .on_msg_recv_callback = ws_msg_cb,
    };
    struct rf_ws *ws;
    int r;

    if (!cbs || !cbs->write || !out)
        return -EINVAL;
    ws = rf_calloc(1, sizeof(*ws));
    if (!ws)
        return -ENOMEM;
    ws->cbs = *cbs;
    ws->ud = ud;
    ws->server = server;
    ws->msg_bytes_max = lim && lim->msg_bytes_max ? lim->msg_bytes_max : RF_WS_MSG_BYTES_DEFAULT;
    gate_reset_head(&ws->gate);
    r = server ? wslay_event_context_server_init(&ws->ctx, &wcb, ws)
               : wslay_event_context_client_init(&ws->ctx, &wcb, ws);
    if (r != 0)
        goto err_free;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->msg_bytes_max);
    *out = ws;
    return 0;

err_free:
    rf_free(ws);
    return -ENOMEM;
}

void rf_ws_free(struct rf_ws *ws)
{
    if (!ws)
        return;
    wslay_event_context_free(ws->ctx);
    rf_free(ws);
}

/* Write everything wslay has queued. */
static int ws_flush(struct rf_ws *ws)
{
    int r = wslay_event_send(ws->ctx);

    if (r != 0)
        return ws_broken(ws, r == WSLAY_ERR_NOMEM ? -ENOMEM : -EIO);
    RF_DASSERT(!wslay_event_want_write(ws->ctx));
    return ws->err;
}

/* One wslay_event_recv round, then its answers written. A round ends at a pause (after a
 * control frame), at a stop, or when the input is used up. */
static int ws_feed_round(struct rf_ws *ws)
{
    int r;

    ws->gate.pause = false;
    r = wslay_event_recv(ws->ctx);
    if (r == WSLAY_ERR_NOMEM)
        return ws_broken(ws, -ENOMEM);
    if (r != 0 && ws->err)
        return ws->err;
    /* Any other failure is wslay answering a framing error the gate let through with a
     * close of its own, already queued, reading disabled: not a broken session. */
    RF_DASSERT(r == 0);
    return ws_flush(ws);
}

int rf_ws_feed(struct rf_ws *ws, const char *in, size_t len)
{
    int r = 0;

    if (ws->err)
        return ws->err;
    RF_ASSERT(!ws->in_feed);
    ws->in = in;
    ws->in_left = len;
    ws->in_feed = true;
    for (uint32_t round = 0; wslay_event_get_read_enabled(ws->ctx); round++) {
        RF_DASSERT(round <= len + 1); /* a round ends a control frame: one per 2 bytes */
        r = ws_feed_round(ws);
        if (r != 0 || !ws->gate.pause)
            break;
    }
    ws->in_feed = false;
    ws->in = NULL;
    ws->in_left = 0;
    if (r != 0)
        return r;
    if (ws->gate.code && wslay_event_get_read_enabled(ws->ctx))
        ws_fail(ws, ws->gate.code);
    return ws_flush(ws);
}

/* Queue one message and write it. From on_text this runs inside wslay_event_recv: wslay
 * keeps its send state (queues, output half of the frame context) apart from its receive
 * state, so sending there is safe, and it must happen there: a message left queued until
 * the feed ends would lose to a close queued later in the same feed (wslay sends control
 * frames first and nothing after a close). */
static int ws_queue(struct rf_ws *ws, uint8_t opcode, const void *data, size_t len)
{
    struct wslay_event_msg msg = {.opcode = opcode, .msg = data, .msg_length = len};
    int r;

    if (ws->err)
        return ws->err;
    r = wslay_event_queue_msg(ws->ctx, &msg);
    if (r == WSLAY_ERR_NO_MORE_MSG)
        return -EPIPE;
    if (r == WSLAY_ERR_NOMEM)
        return -ENOMEM;
    if (r != 0)
        return -EINVAL;
    return ws_flush(ws);
}

int rf_ws_send_text(struct rf_ws *ws, const char *data, size_t len)
{
    if (len > RF_WS_SEND_BYTES_MAX)
        return -EMSGSIZE;
    if (!rf_ws_utf8_valid(data, len))
        return -EINVAL;
    return ws_queue(ws, WS_OP_TEXT, data, len);
}

int rf_ws_ping(struct rf_ws *ws, const void *payload, size_t len)
{
    if (len > RF_WS_CONTROL_BYTES_MAX || (len && !payload))
        return -EINVAL;
    return ws_queue(ws, WS_OP_PING, payload, len);
}

int rf_ws_close(struct rf_ws *ws, uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    int r;

    if (code ? !close_code_valid(code) : n != 0)
        return -EINVAL;
    if (n > RF_WS_REASON_BYTES_MAX || !rf_ws_utf8_valid(reason, n))
        return -EINVAL;
    if (ws->err)
        return ws->err;
    r = wslay_event_queue_close(ws->ctx, code, (const uint8_t *)(reason ? reason : ""), n);
    if (r == WSLAY_ERR_NO_MORE_MSG)
        return -EPIPE;
    if (r != 0)
        return r == WSLAY_ERR_NOMEM ? -ENOMEM : -EINVAL;
    return ws_flush(ws);
}

bool rf_ws_done(const struct rf_ws *ws)
{
    if (ws->err)
        return true;
    return wslay_event_get_close_sent(ws->ctx) && !wslay_event_get_read_enabled(ws->ctx);
}

uint16_t rf_ws_close_code_recv(const struct rf_ws *ws)
{
    if (!wslay_event_get_close_received(ws->ctx))
        return 0;
    return wslay_event_get_status_code_received(ws->ctx);
}

uint16_t rf_ws_close_code_sent(const struct rf_ws *ws)
{
    if (!wslay_event_get_close_sent(ws->ctx))
        return 0;
    return wslay_event_get_status_code_sent(ws->ctx);
}
