/*
 * fuzz/wsmsg.c: libFuzzer target for the WebSocket session (net/ws.c over wslay).
 *
 * Input: a config byte, then a script. Config bits 0-1 pick msg_bytes_max (16, 125, 1000
 * or 65536 bytes), bit 2 makes on_text echo every message back from inside the feed, bit 3
 * makes the session a client (it then expects unmasked frames and masks its own), bit 4
 * makes write fail with -ENOBUFS once the output would pass 64 bytes. The
 * script is a run of steps, each a lead byte c: c < 0xf0 feeds the next c bytes (fewer at
 * the end of the input); 0xf0 sends the text "srv", 0xf1 a ping "pp", 0xf2 a close 1000
 * "bye", 0xf3 a close 1008 "slow"; 0xf4-0xff feed nothing.
 *
 * Properties, each an RF_ASSERT:
 *   - rf_ws_feed returns 0 unless write failed; a send, ping or close returns 0 or
 *     -EPIPE, and -EPIPE exactly once a close went out; once write failed every call
 *     returns its error and rf_ws_done is true;
 *   - every on_text payload is valid UTF-8 (checked by a reference decoder written here)
 *     and at most msg_bytes_max bytes, and none comes once rf_ws_done was true;
 *   - the output parses as frames our side may write: RSV clear, FIN set, masked exactly
 *     for a client, lengths in their shortest form, opcode text, close, ping or pong,
 *     control payloads at most 125 bytes, text payloads valid UTF-8, a close payload empty
 *     or a valid code and a UTF-8 reason, at most one close and nothing after it, no
 *     partial frame at the end; as many text frames as successful sends and echoes;
 *   - rf_ws_done implies a close was written, and rf_ws_close_code_sent is its code; a
 *     close received implies rf_ws_done;
 *   - when the script only feeds (and does not echo), feeding the same bytes at once gives
 *     the same messages and the same output (byte for byte for a server; a client's mask
 *     keys are random, so only the same length).
 */
#include "engine/rf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_BYTES_MAX    (64u << 20) /* far above what any input can make the session write */
#define FAIL_AFTER_BYTES 64u         /* config bit 4: write fails once the output would pass this */

static const uint32_t k_limits[4] = {16, 125, 1000, 65536};

struct run {
    struct rf_ws *ws;
    uint8_t *out;
    size_t nout, cap;
    uint32_t limit;
    bool echo;
    bool fail;        /* write refuses output past FAIL_AFTER_BYTES */
    bool failed;      /* a call returned the write error */
    bool done_seen;   /* rf_ws_done was seen true after a feed */
    uint64_t sends;   /* text frames we expect in the output */
    uint64_t msgs;    /* on_text calls */
    uint64_t msg_sum; /* FNV-1a over the messages, lengths included */
};

/* Reference UTF-8: decode by the length bits, then refuse overlongs, surrogates and
 * anything above U+10FFFF. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};

    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        uint32_t cp;

        if (len == 0 || n - i < len)
            return false;
        cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int run_write(void *ud, const void *data, size_t len)
{
    struct run *r = ud;

    RF_ASSERT(len > 0);
    RF_ASSERT(r->nout + len <= OUT_BYTES_MAX);
    if (r->fail && r->nout + len > FAIL_AFTER_BYTES)
        return -ENOBUFS;
    if (r->nout + len > r->cap) {
        r->cap = RF_MAX(2 * r->cap, r->nout + len);
        r->out = realloc(r->out, r->cap);
        RF_ASSERT(r->out != NULL);
    }
    memcpy(r->out + r->nout, data, len);
    r->nout += len;
    return 0;
}

static void run_text(void *ud, const char *msg, size_t len)
{
    struct run *r = ud;

    RF_ASSERT(msg != NULL);
    RF_ASSERT(!r->done_seen);
    RF_ASSERT(!rf_ws_done(r->ws));
    RF_ASSERT(len <= r->limit);
    RF_ASSERT(ref_utf8((const uint8_t *)msg, len));
    r->msgs++;
    r->msg_sum = fnv(fnv(r->msg_sum, &len, sizeof(len)), msg, len);
    if (r->echo) {
        int rc = rf_ws_send_text(r->ws, msg, len);
        RF_ASSERT(rc == 0 || (rc == -EPIPE && rf_ws_close_code_sent(r->ws) != 0) ||
                  (rc == -ENOBUFS && r->fail));
        r->sends += rc == 0;
    }
}

static void run_init(struct run *r, uint8_t cfg, bool client)
{
    static const struct rf_ws_cbs cbs = {.on_text = run_text, .write = run_write};
    struct rf_ws_limits lim = {.msg_bytes_max = k_limits[cfg & 3]};

    memset(r, 0, sizeof(*r));
    r->limit = lim.msg_bytes_max;
    r->echo = cfg & 4;
    r->fail = cfg & 16;
    r->msg_sum = 0xcbf29ce484222325ull;
    RF_ASSERT(rf_ws_new(!client, &cbs, r, &lim, &r->ws) == 0);
}

static void run_fini(struct run *r)
{
    rf_ws_free(r->ws);
    free(r->out);
}

/* A call's result: 0, or the write error once it happened, and then forever. */
static void run_result(struct run *r, int rc)
{
    RF_ASSERT(rc == 0 || rc == -ENOBUFS);
    RF_ASSERT(!r->failed || rc == -ENOBUFS);
    if (rc == -ENOBUFS) {
        RF_ASSERT(r->fail);
        RF_ASSERT(rf_ws_done(r->ws));
        r->failed = true;
    }
}

static void run_feed(struct run *r, const uint8_t *p, size_t n)
{
    run_result(r, rf_ws_feed(r->ws, (const char *)p, n));
    if (rf_ws_done(r->ws))
        r->done_seen = true;
}

/* One API step; the result must fit the session's state. */
static void run_action(struct run *r, uint8_t c)
{
    bool closed = rf_ws_close_code_sent(r->ws) != 0;
    int rc;

    switch (c) {
    case 0xf0:
        rc = rf_ws_send_text(r->ws, "srv", 3);
        r->sends += rc == 0;
        break;
    case 0xf1:
        rc = rf_ws_ping(r->ws, "pp", 2);
        break;
    case 0xf2:
        rc = rf_ws_close(r->ws, 1000, "bye");
        break;
    default:
        rc = rf_ws_close(r->ws, 1008, "slow");
        break;
    }
    if (rc == -EPIPE) {
        RF_ASSERT(closed && !r->failed);
        return;
    }
    RF_ASSERT(!closed || r->failed);
    run_result(r, rc);
    if (rf_ws_done(r->ws))
        r->done_seen = true;
}

/* A text payload, masked with key (all zero: unmasked), is valid UTF-8. */
static bool text_ok(const uint8_t *p, size_t len, const uint8_t key[4])
{
    uint8_t *t;
    bool ok;

    if (key[0] == 0 && key[1] == 0 && key[2] == 0 && key[3] == 0)
        return ref_utf8(p, len);
    t = malloc(len ? len : 1);
    RF_ASSERT(t != NULL);
    for (size_t k = 0; k < len; k++)
        t[k] = p[k] ^ key[k & 3];
    ok = ref_utf8(t, len);
    free(t);
    return ok;
}

static bool close_code_ok(uint32_t code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

/* Parse the output: frames our side may write. Returns the close code written (1005 for a
 * close without one), 0 if none; counts text frames. */
static uint32_t check_output(const uint8_t *p, size_t n, bool client, uint64_t *texts)
{
    uint8_t payload[RF_WS_CONTROL_BYTES_MAX];
    uint32_t close = 0;
    size_t i = 0;

    *texts = 0;
    while (i < n) {
        uint8_t b0, b1, op, key[4] = {0, 0, 0, 0};
        uint64_t len;
        size_t h = 2;

        RF_ASSERT(close == 0); /* nothing after a close */
        RF_ASSERT(n - i >= 2);
        b0 = p[i];
        b1 = p[i + 1];
        op = b0 & 0x0f;
        RF_ASSERT((b0 & 0xf0) == 0x80); /* FIN, no RSV */
        RF_ASSERT(((b1 & 0x80) != 0) == client);
        RF_ASSERT(op == 1 || op == 8 || op == 9 || op == 10);
        len = b1 & 0x7f;
        if (len == 126) {
            RF_ASSERT(n - i >= 4);
            len = (uint64_t)p[i + 2] << 8 | p[i + 3];
            RF_ASSERT(len >= 126);
            h = 4;
        } else if (len == 127) {
            RF_ASSERT(n - i >= 10);
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | p[i + 2 + k];
            RF_ASSERT(len >= 65536 && len < OUT_BYTES_MAX);
            h = 10;
        }
        if (client) {
            RF_ASSERT(n - i >= h + 4);
            memcpy(key, p + i + h, 4);
            h += 4;
        }
        RF_ASSERT(n - i - h >= len);
        if (op >= 8) {
            RF_ASSERT(len <= RF_WS_CONTROL_BYTES_MAX);
            for (size_t k = 0; k < len; k++)
                payload[k] = p[i + h + k] ^ key[k & 3];
        } else {
            RF_ASSERT(text_ok(p + i + h, len, key));
            ++*texts;
        }
        if (op == 8) {
            RF_ASSERT(len != 1);
            close = len ? (uint32_t)payload[0] << 8 | payload[1] : 1005;
            if (len)
                RF_ASSERT(close_code_ok(close));
            if (len > 2)
                RF_ASSERT(ref_utf8(payload + 2, len - 2));
        }
        i += h + len;
    }
    return close;
}

/* Checks at the end of a run. */
static void run_check(struct run *r, bool client)
{
    uint64_t texts;
    uint32_t close;

    if (r->failed || r->fail) /* the output may end inside a frame; only the sticky error */
        return;
    close = check_output(r->out, r->nout, client, &texts);
    RF_ASSERT(texts == r->sends);
    if (rf_ws_close_code_recv(r->ws) != 0)
        RF_ASSERT(rf_ws_done(r->ws));
    RF_ASSERT(close == rf_ws_close_code_sent(r->ws));
    if (rf_ws_done(r->ws))
        RF_ASSERT(close != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run r, whole;
    uint8_t *fed;
    size_t nfed = 0, i = 1;
    bool client, feeds_only = true;

    if (size < 1)
        return 0;
    client = data[0] & 8;
    fed = malloc(size);
    RF_ASSERT(fed != NULL);
    run_init(&r, data[0], client);
    while (i < size) {
        uint8_t c = data[i++];
        if (c < 0xf0) {
            size_t n = RF_MIN((size_t)c, size - i);
            run_feed(&r, data + i, n);
            memcpy(fed + nfed, data + i, n);
            nfed += n;
            i += n;
        } else if (c <= 0xf3) {
            run_action(&r, c);
            feeds_only = false;
        } else {
            run_feed(&r, data + i, 0);
        }
    }
    run_check(&r, client);
    if (feeds_only && !r.echo && !r.fail) {
        run_init(&whole, data[0], client);
        run_feed(&whole, fed, nfed);
        run_check(&whole, client);
        RF_ASSERT(whole.msgs == r.msgs);
        RF_ASSERT(whole.msg_sum == r.msg_sum);
        RF_ASSERT(whole.nout == r.nout);
        RF_ASSERT(client || r.nout == 0 || memcmp(whole.out, r.out, r.nout) == 0); /* masks */
        run_fini(&whole);
    }
    run_fini(&r);
    free(fed);
    return 0;
}
