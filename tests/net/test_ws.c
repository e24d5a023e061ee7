/*
 * tests/net/test_ws.c: the WebSocket handshake check and session (net/ws.c).
 *
 * The handshake is checked on rf_http_req structs filled by hand (no parser): the RFC 6455
 * §1.3 example key, then every rejection with its status, and that accept is untouched
 * when the answer is not 0. Sessions talk through in-memory buffers: a client session and
 * a server session exchange messages both ways (up to a 64-bit length), both close
 * handshakes with the exact close frames on the wire, ping/pong, and on_text answering
 * from inside a feed. Hand-built frames drive the server through everything it must
 * refuse, each checked by the exact close frame it writes (1002, 1003, 1007, 1009) and by
 * the messages delivered before it and none after. A stream of frames (fragments, pings
 * inside a fragmented message, a 16-bit length, a close) is fed whole, split at every
 * byte, byte by byte and in random chunks, and must always give the same messages and the
 * same output bytes. The UTF-8 validator is compared with a reference decoder on every
 * sequence of up to three bytes and on random four-byte ones.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/http1.h"
#include "net/ws.h"

#define HDRS_MAX     16u
#define MSGS_MAX     64u
#define FRAME_MAX    (200u << 10)
#define STREAM_MAX   4096u
#define RAND_ROUNDS  300u
#define UTF8_RANDOMS 2000000u

/* --- handshake ------------------------------------------------------------------------------ */

static struct rf_http_header g_hdrs[HDRS_MAX];

/* A request from "Name: value" lines separated by '\n' (value taken as is after ": "). */
static struct rf_http_req make_req(enum rf_http_method m, uint8_t minor, const char *fields)
{
    struct rf_http_req req;
    const char *p = fields;

    memset(&req, 0, sizeof(req));
    req.method = m;
    req.minor = minor;
    req.headers = g_hdrs;
    req.content_length = -1;
    while (*p) {
        const char *colon = strchr(p, ':'), *end = strchr(p, '\n');
        struct rf_http_header *h = &g_hdrs[req.nheaders++];

        assert_true(req.nheaders <= HDRS_MAX);
        assert_non_null(colon);
        if (!end)
            end = p + strlen(p);
        h->name = (struct rf_slice){p, (uint32_t)(colon - p)};
        h->value = (struct rf_slice){colon + 2, (uint32_t)(end - colon - 2)};
        if (h->name.n == 4 && strncmp(p, "Host", 4) == 0)
            req.host = h->value;
        p = *end ? end + 1 : end;
    }
    return req;
}

#define GOOD_HOST    "Host: example.com\n"
#define GOOD_UPGRADE "Upgrade: websocket\nConnection: Upgrade\n"
#define GOOD_KEY     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n"
#define GOOD_VERSION "Sec-WebSocket-Version: 13\n"
#define GOOD_ACCEPT  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 §1.3 */

static int hs(enum rf_http_method m, uint8_t minor, const char *fields, char *accept)
{
    struct rf_http_req req = make_req(m, minor, fields);

    return rf_ws_handshake_check(&req, accept);
}

static void test_handshake_rfc_example(void **state)
{
    char accept[RF_WS_ACCEPT_LEN + 1];

    (void)state;
    memset(accept, 'x', sizeof(accept));
    assert_int_equal(hs(RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_VERSION, accept), 0);
    assert_string_equal(accept, GOOD_ACCEPT);
    /* Token lists, any case, spread over two field lines, OWS left by a hand-built value. */
    memset(accept, 'x', sizeof(accept));
    assert_int_equal(hs(RF_HTTP_GET, 1,
                        "Connection: keep-alive\nUpgrade: h2c, WebSocket\n" GOOD_HOST
                        "connection: foo, UPGRADE\nsec-websocket-version:  13 \n"
                        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ== \n",
                        accept),
                     0);
    assert_string_equal(accept, GOOD_ACCEPT);
    /* Another key gives another accept (value from Python's hashlib/base64). */
    assert_int_equal(hs(RF_HTTP_GET, 1,
                        GOOD_HOST GOOD_UPGRADE GOOD_VERSION
                        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\n",
                        accept),
                     0);
    assert_string_equal(accept, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
}

struct hs_case {
    enum rf_http_method method;
    uint8_t minor;
    const char *fields;
    int status;
};

static void test_handshake_rejections(void **state)
{
    static const struct hs_case cases[] = {
        {RF_HTTP_POST, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_VERSION, 405},
        {RF_HTTP_HEAD, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_VERSION, 405},
        {RF_HTTP_OTHER, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_VERSION, 405},
        {RF_HTTP_GET, 0, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_VERSION, 400},
        {RF_HTTP_GET, 1, GOOD_UPGRADE GOOD_KEY GOOD_VERSION, 400}, /* no Host */
        {RF_HTTP_GET, 1, GOOD_HOST "Connection: Upgrade\n" GOOD_KEY GOOD_VERSION, 400},
        {RF_HTTP_GET, 1, GOOD_HOST "Upgrade: websocket\n" GOOD_KEY GOOD_VERSION, 400},
        {RF_HTTP_GET, 1, GOOD_HOST "Upgrade: h2c\nConnection: Upgrade\n" GOOD_KEY GOOD_VERSION,
         400},
        {RF_HTTP_GET, 1,
         GOOD_HOST "Upgrade: websockets\nConnection: Upgrade\n" GOOD_KEY GOOD_VERSION, 400},
        {RF_HTTP_GET, 1,
         GOOD_HOST "Upgrade: websocket\nConnection: upgraded, close\n" GOOD_KEY GOOD_VERSION, 400},
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_VERSION, 400}, /* no key */
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_KEY GOOD_VERSION, 400},
        /* 15 bytes (20 characters), 17 bytes (23 and "="), 18 bytes (24, no padding) */
        {RF_HTTP_GET, 1,
         GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\n" GOOD_VERSION, 400},
        {RF_HTTP_GET, 1,
         GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\n" GOOD_VERSION, 400},
        {RF_HTTP_GET, 1,
         GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\n" GOOD_VERSION, 400},
        /* not base64: URL-safe alphabet, a space, padding inside, empty */
        {RF_HTTP_GET, 1,
         GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ-==\n" GOOD_VERSION, 400},
        {RF_HTTP_GET, 1,
         GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\n" GOOD_VERSION, 400},
        {RF_HTTP_GET, 1,
         GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2==jZQ==\n" GOOD_VERSION, 400},
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Key: \n" GOOD_VERSION, 400},
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY "Sec-WebSocket-Version: 8\n", 426},
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY "Sec-WebSocket-Version: 013\n", 426},
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY "Sec-WebSocket-Version: \n", 426},
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY, 426}, /* no version */
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE GOOD_KEY GOOD_VERSION GOOD_VERSION, 400},
        /* order: the version is judged before the key */
        {RF_HTTP_GET, 1, GOOD_HOST GOOD_UPGRADE "Sec-WebSocket-Version: 8\n", 426},
    };
    char accept[RF_WS_ACCEPT_LEN + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(accept, 'x', sizeof(accept));
        if (hs(cases[i].method, cases[i].minor, cases[i].fields, accept) != cases[i].status)
            fail_msg("case %zu (%s): want %d, got %d", i, cases[i].fields, cases[i].status,
                     hs(cases[i].method, cases[i].minor, cases[i].fields, accept));
        for (size_t k = 0; k < sizeof(accept); k++)
            assert_int_equal(accept[k], 'x');
    }
}

/* --- sessions through memory ------------------------------------------------------------------ */

struct peer {
    struct rf_ws *ws;
    uint8_t *out; /* bytes written */
    size_t nout, cap;
    char *msgs[MSGS_MAX]; /* on_text payloads, NUL-terminated copies */
    size_t lens[MSGS_MAX];
    size_t nmsgs;
    int write_err;     /* returned by write once fail_after bytes were taken */
    size_t fail_after; /* SIZE_MAX: never */
    bool echo;         /* on_text sends the message back */
    bool done_seen;    /* on_text was called while rf_ws_done: a bug */
};

static int peer_write(void *ud, const void *data, size_t len)
{
    struct peer *p = ud;

    assert_true(len > 0);
    if (p->nout + len > p->fail_after)
        return p->write_err;
    if (p->nout + len > p->cap) {
        p->cap = (p->nout + len) * 2;
        p->out = realloc(p->out, p->cap);
        assert_non_null(p->out);
    }
    memcpy(p->out + p->nout, data, len);
    p->nout += len;
    return 0;
}

static void peer_text(void *ud, const char *msg, size_t len)
{
    struct peer *p = ud;

    assert_true(p->nmsgs < MSGS_MAX);
    if (rf_ws_done(p->ws))
        p->done_seen = true;
    p->msgs[p->nmsgs] = malloc(len + 1);
    assert_non_null(p->msgs[p->nmsgs]);
    memcpy(p->msgs[p->nmsgs], msg, len);
    p->msgs[p->nmsgs][len] = '\0';
    p->lens[p->nmsgs++] = len;
    if (p->echo)
        assert_int_equal(rf_ws_send_text(p->ws, msg, len), 0);
}

static void peer_init(struct peer *p, bool server, uint32_t msg_bytes_max)
{
    static const struct rf_ws_cbs cbs = {.on_text = peer_text, .write = peer_write};
    struct rf_ws_limits lim = {.msg_bytes_max = msg_bytes_max};

    memset(p, 0, sizeof(*p));
    p->fail_after = SIZE_MAX;
    assert_int_equal(rf_ws_new(server, &cbs, p, &lim, &p->ws), 0);
    assert_non_null(p->ws);
    assert_false(rf_ws_done(p->ws));
    assert_int_equal(rf_ws_close_code_recv(p->ws), 0);
    assert_int_equal(rf_ws_close_code_sent(p->ws), 0);
}

static void peer_clear(struct peer *p)
{
    for (size_t i = 0; i < p->nmsgs; i++)
        free(p->msgs[i]);
    p->nmsgs = 0;
    p->nout = 0;
}

static void peer_fini(struct peer *p)
{
    assert_false(p->done_seen);
    peer_clear(p);
    rf_ws_free(p->ws);
    free(p->out);
}

/* Move a's output into b, and back, until neither writes. */
static void pump(struct peer *a, struct peer *b)
{
    for (int round = 0; a->nout || b->nout; round++) {
        struct peer *from = a->nout ? a : b, *to = from == a ? b : a;
        uint8_t *bytes = malloc(from->nout);
        size_t n = from->nout;

        assert_true(round < 100);
        assert_non_null(bytes);
        memcpy(bytes, from->out, n);
        from->nout = 0;
        assert_int_equal(rf_ws_feed(to->ws, (const char *)bytes, n), 0);
        free(bytes);
    }
}

/* The output must be exactly the given bytes; clears it. */
static void expect_out(struct peer *p, const void *bytes, size_t n)
{
    if (p->nout != n || memcmp(p->out, bytes, n) != 0) {
        fprintf(stderr, "output (%zu bytes):", p->nout);
        for (size_t i = 0; i < p->nout && i < 32; i++)
            fprintf(stderr, " %02x", p->out[i]);
        fprintf(stderr, "\n");
        fail_msg("want %zu bytes of output", n);
    }
    p->nout = 0;
}

#define EXPECT_OUT(p, ...)                                                                         \
    do {                                                                                           \
        static const uint8_t want_[] = {__VA_ARGS__};                                              \
        expect_out((p), want_, sizeof(want_));                                                     \
    } while (0)

static void test_messages_both_ways(void **state)
{
    struct peer c, s;
    size_t big_len = 100000; /* 64-bit length form */
    char *big = malloc(big_len);

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    peer_init(&c, false, 1u << 20);
    peer_init(&s, true, 1u << 20);
    assert_int_equal(rf_ws_send_text(c.ws, "hello", 5), 0);
    assert_int_equal(c.nout, 2 + 4 + 5);
    assert_int_equal(c.out[0], 0x81);
    assert_int_equal(c.out[1], 0x80 | 5); /* masked */
    pump(&c, &s);
    assert_int_equal(s.nmsgs, 1);
    assert_string_equal(s.msgs[0], "hello");

    assert_int_equal(rf_ws_send_text(s.ws, "w\xc3\xb6rld", 6), 0);
    EXPECT_OUT(&s, 0x81, 0x06, 'w', 0xc3, 0xb6, 'r', 'l', 'd');
    assert_int_equal(rf_ws_send_text(s.ws, "w\xc3\xb6rld", 6), 0);
    pump(&s, &c);
    assert_int_equal(c.nmsgs, 1);
    assert_string_equal(c.msgs[0], "w\xc3\xb6rld");

    assert_int_equal(rf_ws_send_text(s.ws, "", 0), 0);
    assert_int_equal(rf_ws_send_text(s.ws, big, big_len), 0);
    assert_int_equal(s.out[2], 0x81);
    assert_int_equal(s.out[3], 127);
    assert_int_equal(rf_ws_send_text(c.ws, big, 300), 0); /* 16-bit length form */
    assert_int_equal(c.out[1], 0x80 | 126);
    pump(&s, &c);
    assert_int_equal(c.nmsgs, 3);
    assert_int_equal(c.lens[1], 0);
    assert_int_equal(c.lens[2], big_len);
    assert_memory_equal(c.msgs[2], big, big_len);
    assert_int_equal(s.nmsgs, 2);
    assert_int_equal(s.lens[1], 300);
    assert_memory_equal(s.msgs[1], big, 300);
    assert_false(rf_ws_done(c.ws) || rf_ws_done(s.ws));
    peer_fini(&c);
    peer_fini(&s);
    free(big);
}

/* on_text answering from inside the feed: each answer is written at once, ahead of the close
 * that follows in the same bytes. */
static void test_echo_inside_feed(void **state)
{
    struct peer c, s;

    (void)state;
    peer_init(&c, false, 0);
    peer_init(&s, true, 0);
    s.echo = true;
    assert_int_equal(rf_ws_send_text(c.ws, "one", 3), 0);
    assert_int_equal(rf_ws_send_text(c.ws, "two", 3), 0);
    assert_int_equal(rf_ws_close(c.ws, 1000, NULL), 0);
    /* The answers go out before the close that comes later in the same feed. */
    assert_int_equal(rf_ws_feed(s.ws, (const char *)c.out, c.nout), 0);
    c.nout = 0;
    EXPECT_OUT(&s, 0x81, 3, 'o', 'n', 'e', 0x81, 3, 't', 'w', 'o', 0x88, 2, 0x03, 0xe8);
    assert_true(rf_ws_done(s.ws));
    peer_fini(&c);
    peer_fini(&s);
}

static void test_ping_pong(void **state)
{
    struct peer c, s;

    (void)state;
    peer_init(&c, false, 0);
    peer_init(&s, true, 0);
    assert_int_equal(rf_ws_ping(s.ws, "hb", 2), 0);
    assert_int_equal(s.nout, 4);
    assert_memory_equal(s.out, "\x89\x02hb", 4);
    assert_int_equal(rf_ws_feed(c.ws, (const char *)s.out, s.nout), 0);
    s.nout = 0;
    /* The client's pong: masked, the same payload. */
    assert_int_equal(c.nout, 2 + 4 + 2);
    assert_int_equal(c.out[0], 0x8a);
    assert_int_equal(c.out[1], 0x82);
    assert_int_equal(c.out[6] ^ c.out[2], 'h');
    assert_int_equal(c.out[7] ^ c.out[3], 'b');
    pump(&c, &s);
    assert_int_equal(s.nout, 0); /* a pong is not answered */
    assert_int_equal(rf_ws_ping(c.ws, NULL, 0), 0);
    assert_int_equal(rf_ws_feed(s.ws, (const char *)c.out, c.nout), 0);
    c.nout = 0;
    EXPECT_OUT(&s, 0x8a, 0x00);
    assert_int_equal(s.nmsgs + c.nmsgs, 0);
    assert_int_equal(rf_ws_ping(s.ws, NULL, 126), -EINVAL);
    peer_fini(&c);
    peer_fini(&s);
}

static void test_close_from_server(void **state)
{
    struct peer c, s;

    (void)state;
    peer_init(&c, false, 0);
    peer_init(&s, true, 0);
    assert_int_equal(rf_ws_close(s.ws, 1001, "going away"), 0);
    assert_false(rf_ws_done(s.ws));
    assert_int_equal(rf_ws_close_code_sent(s.ws), 1001);
    assert_int_equal(s.nout, 14);
    assert_memory_equal(s.out, "\x88\x0c\x03\xe9going away", 14);
    assert_int_equal(rf_ws_send_text(s.ws, "x", 1), -EPIPE);
    assert_int_equal(rf_ws_ping(s.ws, NULL, 0), -EPIPE);
    assert_int_equal(rf_ws_close(s.ws, 1000, NULL), -EPIPE);
    /* The client sends one more message before it sees the close: still delivered. */
    assert_int_equal(rf_ws_send_text(c.ws, "late", 4), 0);
    assert_int_equal(rf_ws_feed(s.ws, (const char *)c.out, c.nout), 0);
    c.nout = 0;
    assert_int_equal(s.nmsgs, 1);
    assert_false(rf_ws_done(s.ws));
    pump(&s, &c);
    assert_true(rf_ws_done(c.ws));
    assert_true(rf_ws_done(s.ws));
    assert_int_equal(rf_ws_close_code_recv(c.ws), 1001);
    assert_int_equal(rf_ws_close_code_sent(c.ws), 1001); /* the echo */
    assert_int_equal(rf_ws_close_code_recv(s.ws), 1001);
    assert_int_equal(rf_ws_close_code_sent(s.ws), 1001);
    /* Done sessions take bytes silently. */
    assert_int_equal(rf_ws_feed(s.ws, "\x81\x80\0\0\0\0", 6), 0);
    assert_int_equal(s.nout + s.nmsgs, 1);
    peer_fini(&c);
    peer_fini(&s);
}

static void test_close_from_client(void **state)
{
    struct peer c, s;

    (void)state;
    peer_init(&c, false, 0);
    peer_init(&s, true, 0);
    assert_int_equal(rf_ws_close(c.ws, 4000, "bye"), 0);
    assert_int_equal(c.out[0], 0x88);
    assert_int_equal(c.out[1], 0x80 | 5);
    assert_int_equal(rf_ws_feed(s.ws, (const char *)c.out, c.nout), 0);
    c.nout = 0;
    assert_true(rf_ws_done(s.ws));
    assert_int_equal(rf_ws_close_code_recv(s.ws), 4000);
    assert_int_equal(rf_ws_close_code_sent(s.ws), 4000);
    assert_int_equal(s.nout, 7);
    assert_memory_equal(s.out,
                        "\x88\x05\x0f\xa0"
                        "bye",
                        7);
    assert_false(rf_ws_done(c.ws));
    pump(&s, &c);
    assert_true(rf_ws_done(c.ws));
    assert_int_equal(rf_ws_close_code_recv(c.ws), 4000);
    assert_int_equal(rf_ws_send_text(c.ws, "x", 1), -EPIPE);
    peer_fini(&c);
    peer_fini(&s);

    /* A close without a code: echoed without one; 1005 both ways. */
    peer_init(&c, false, 0);
    peer_init(&s, true, 0);
    assert_int_equal(rf_ws_close(c.ws, 0, NULL), 0);
    pump(&c, &s);
    assert_true(rf_ws_done(c.ws) && rf_ws_done(s.ws));
    assert_int_equal(rf_ws_close_code_recv(s.ws), 1005);
    assert_int_equal(rf_ws_close_code_sent(s.ws), 1005);
    peer_fini(&c);
    peer_fini(&s);
}

static void test_close_args(void **state)
{
    struct peer s;
    char reason[RF_WS_REASON_BYTES_MAX + 2];

    (void)state;
    peer_init(&s, true, 0);
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0'; /* 124 bytes */
    assert_int_equal(rf_ws_close(s.ws, 1005, NULL), -EINVAL);
    assert_int_equal(rf_ws_close(s.ws, 1006, NULL), -EINVAL);
    assert_int_equal(rf_ws_close(s.ws, 999, NULL), -EINVAL);
    assert_int_equal(rf_ws_close(s.ws, 5000, NULL), -EINVAL);
    assert_int_equal(rf_ws_close(s.ws, 0, "why"), -EINVAL);
    assert_int_equal(rf_ws_close(s.ws, 1000, reason), -EINVAL);
    assert_int_equal(rf_ws_close(s.ws, 1000, "\xc0\xaf"), -EINVAL);
    assert_int_equal(rf_ws_send_text(s.ws, "\xed\xa0\x80", 3), -EINVAL);
    assert_int_equal(s.nout, 0);
    reason[RF_WS_REASON_BYTES_MAX] = '\0'; /* 123 bytes: the most a close can carry */
    assert_int_equal(rf_ws_close(s.ws, 1008, reason), 0);
    assert_int_equal(s.nout, 2 + 125);
    assert_int_equal(s.out[1], 125);
    assert_int_equal(s.out[2] << 8 | s.out[3], 1008);
    peer_fini(&s);
}

/* --- hand-built frames into a server -------------------------------------------------------- */

static const uint8_t g_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A frame as a client would send it (masked with g_key unless `unmasked`), with the
 * length in its shortest form. Returns its size. */
static size_t frame(uint8_t *dst, uint8_t b0, const void *payload, size_t len, bool unmasked)
{
    size_t h = 0;
    uint8_t m = unmasked ? 0 : 0x80;

    dst[h++] = b0;
    if (len < 126) {
        dst[h++] = m | (uint8_t)len;
    } else if (len < 65536) {
        dst[h++] = m | 126;
        dst[h++] = (uint8_t)(len >> 8);
        dst[h++] = (uint8_t)len;
    } else {
        dst[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            dst[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (!unmasked) {
        memcpy(dst + h, g_key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        dst[h + i] = ((const uint8_t *)payload)[i] ^ (unmasked ? 0 : g_key[i & 3]);
    return h + len;
}

#define FIN 0x80

/* A close payload: code and reason. */
static size_t close_payload(uint8_t *dst, uint16_t code, const char *reason)
{
    dst[0] = (uint8_t)(code >> 8);
    dst[1] = (uint8_t)code;
    memcpy(dst + 2, reason, strlen(reason));
    return 2 + strlen(reason);
}

/* Feed `in` to a fresh server (limit msg_max, 0 for the default) and check that it writes
 * exactly one close frame carrying `code`, having delivered `nmsgs` messages first. */
static void expect_refusal(const uint8_t *in, size_t n, uint32_t msg_max, uint16_t code,
                           size_t nmsgs)
{
    struct peer s;
    uint8_t want[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};
    uint8_t more[16];
    size_t nmore = frame(more, FIN | 1, "more", 4, false);

    peer_init(&s, true, msg_max);
    assert_int_equal(rf_ws_feed(s.ws, (const char *)in, n), 0);
    assert_int_equal(s.nout, 4);
    assert_memory_equal(s.out, want, 4);
    assert_int_equal(s.nmsgs, nmsgs);
    assert_true(rf_ws_done(s.ws));
    assert_int_equal(rf_ws_close_code_sent(s.ws), code);
    assert_int_equal(rf_ws_close_code_recv(s.ws), 0);
    /* Nothing more is read or written. */
    s.nout = 0;
    assert_int_equal(rf_ws_feed(s.ws, (const char *)more, nmore), 0);
    assert_int_equal(s.nout, 0);
    assert_int_equal(s.nmsgs, nmsgs);
    peer_fini(&s);
}

/* One frame with first byte b0 and the given payload, after a valid "ok" text. */
static void expect_frame_refused(uint8_t b0, const void *payload, size_t len, uint16_t code)
{
    static uint8_t buf[FRAME_MAX];
    size_t n = frame(buf, FIN | 1, "ok", 2, false);

    n += frame(buf + n, b0, payload, len, false);
    expect_refusal(buf, n, 0, code, 1);
}

static void test_bad_utf8(void **state)
{
    static const char *const bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xff",
        "\x80",
        "a\xe2\x82", /* truncated at the end */
        ("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
         "edited"), /* a surrogate after valid Greek */
    };
    uint8_t buf[256];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_frame_refused(FIN | 1, bad[i], strlen(bad[i]), 1007);
    /* Fragments: each fragment alone is partial, the message is valid: delivered. */
    {
        struct peer s;
        peer_init(&s, true, 0);
        n = frame(buf, 1, "\xe2", 1, false);
        n += frame(buf + n, 0, "\x82", 1, false);
        n += frame(buf + n, FIN, "\xac", 1, false);
        assert_int_equal(rf_ws_feed(s.ws, (const char *)buf, n), 0);
        assert_int_equal(s.nmsgs, 1);
        assert_string_equal(s.msgs[0], "\xe2\x82\xac");
        assert_int_equal(s.nout, 0);
        peer_fini(&s);
    }
    /* A bad first fragment fails before the message ends; a message ending mid-sequence
     * fails at its end. */
    n = frame(buf, 1, "ok\xff", 3, false);
    expect_refusal(buf, n, 0, 1007, 0);
    n = frame(buf, 1, "ok\xe2", 3, false);
    n += frame(buf + n, FIN, "\x82", 1, false);
    expect_refusal(buf, n, 0, 1007, 0);
}

static void test_too_big(void **state)
{
    static const char text[] = "0123456789abcdefg"; /* 17 bytes */
    uint8_t buf[256];
    size_t n;
    struct peer s;

    (void)state;
    n = frame(buf, FIN | 1, text, 17, false);
    expect_refusal(buf, n, 16, 1009, 0);
    n = frame(buf, 1, text, 10, false);
    n += frame(buf + n, FIN, text + 10, 7, false);
    expect_refusal(buf, n, 16, 1009, 0);
    /* Exactly the limit passes, whole or in fragments. */
    peer_init(&s, true, 16);
    n = frame(buf, FIN | 1, text, 16, false);
    n += frame(buf + n, 1, text, 10, false);
    n += frame(buf + n, FIN, text + 10, 6, false);
    assert_int_equal(rf_ws_feed(s.ws, (const char *)buf, n), 0);
    assert_int_equal(s.nmsgs, 2);
    assert_int_equal(s.nout, 0);
    peer_fini(&s);
    /* The default is 64 KiB; the refusal comes from the header, before the payload. */
    {
        uint8_t head[14] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4};
        expect_refusal(head, sizeof(head), 0, 1009, 0);
    }
}

static void test_protocol_errors(void **state)
{
    static uint8_t buf[FRAME_MAX];
    uint8_t payload[200], cp[130];
    size_t n;

    (void)state;
    memset(payload, 'p', sizeof(payload));
    expect_frame_refused(FIN | 2, "bin", 3, 1003);      /* binary */
    expect_frame_refused(FIN | 0x40 | 1, "x", 1, 1002); /* RSV1 */
    expect_frame_refused(FIN | 0x10 | 1, "x", 1, 1002); /* RSV3 */
    for (uint8_t op = 3; op <= 0xf; op++)
        if (op < 8 || op > 0xa)
            expect_frame_refused(FIN | op, "x", 1, 1002); /* reserved opcodes */
    expect_frame_refused(FIN | 0x9, payload, 126, 1002);  /* ping over 125 */
    expect_frame_refused(FIN | 0xa, payload, 200, 1002);  /* pong over 125 */
    expect_frame_refused(FIN | 0x8, payload, 126, 1002);  /* close over 125 */
    expect_frame_refused(0x9, "x", 1, 1002);              /* fragmented ping */
    expect_frame_refused(FIN | 0, "x", 1, 1002);          /* continuation alone */
    /* a new message inside a fragmented one */
    n = frame(buf, 1, "ab", 2, false);
    n += frame(buf + n, FIN | 1, "cd", 2, false);
    expect_refusal(buf, n, 0, 1002, 0);
    n = frame(buf, 1, "ab", 2, false);
    n += frame(buf + n, FIN | 2, "cd", 2, false);
    expect_refusal(buf, n, 0, 1002, 0);
    /* unmasked client frame */
    n = frame(buf, FIN | 1, "ok", 2, false);
    n += frame(buf + n, FIN | 1, "x", 1, true);
    expect_refusal(buf, n, 0, 1002, 1);
    /* lengths not in their shortest form, or with the top bit set */
    {
        uint8_t l16[] = {0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4};
        uint8_t l64[] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 200, 1, 2, 3, 4};
        uint8_t top[] = {0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
        uint8_t p16[] = {0x89, 0x80 | 126, 0, 5, 1, 2, 3, 4}; /* ping with a 16-bit length */
        expect_refusal(l16, sizeof(l16), 0, 1002, 0);
        expect_refusal(l64, sizeof(l64), 0, 1002, 0);
        expect_refusal(top, sizeof(top), 0, 1002, 0);
        expect_refusal(p16, sizeof(p16), 0, 1002, 0);
    }
    /* close payloads: one byte, codes never sent, a bad reason */
    expect_frame_refused(FIN | 8, "\x03", 1, 1002);
    expect_frame_refused(FIN | 8, cp, close_payload(cp, 1005, ""), 1002);
    expect_frame_refused(FIN | 8, cp, close_payload(cp, 1006, ""), 1002);
    expect_frame_refused(FIN | 8, cp, close_payload(cp, 999, ""), 1002);
    expect_frame_refused(FIN | 8, cp, close_payload(cp, 2999, ""), 1002);
    expect_frame_refused(FIN | 8, cp, close_payload(cp, 5000, ""), 1002);
    expect_frame_refused(FIN | 8, cp, close_payload(cp, 1000, "bad \xed\xa0\x80"), 1007);
}

/* A close payload split across feeds and with a multi-byte reason: checked whole. */
static void test_close_reason_split(void **state)
{
    uint8_t buf[64], cp[32];
    size_t n, plen = close_payload(cp, 1000, "\xce\xba\xe1\xbd\xb9");

    (void)state;
    n = frame(buf, FIN | 8, cp, plen, false);
    for (size_t cut = 1; cut < n; cut++) {
        struct peer s;
        peer_init(&s, true, 0);
        assert_int_equal(rf_ws_feed(s.ws, (const char *)buf, cut), 0);
        assert_false(rf_ws_done(s.ws));
        assert_int_equal(rf_ws_feed(s.ws, (const char *)buf + cut, n - cut), 0);
        assert_true(rf_ws_done(s.ws));
        assert_int_equal(rf_ws_close_code_recv(s.ws), 1000);
        assert_int_equal(s.nout, 2 + plen);
        assert_memory_equal(s.out + 2, cp, plen);
        peer_fini(&s);
    }
}

/* --- one stream, every way of cutting it ---------------------------------------------------- */

static uint8_t g_stream[STREAM_MAX];
static size_t g_stream_len;

static void build_stream(void)
{
    static char mid[300];
    uint8_t cp[16];
    uint8_t *b = g_stream;
    size_t n = 0;

    memset(mid, 'm', sizeof(mid));
    n += frame(b + n, FIN | 1, "h\xc3\xa9llo", 6, false);
    n += frame(b + n, FIN | 9, "p1", 2, false);
    n += frame(b + n, 1, "frag", 4, false);
    n += frame(b + n, 0, "men", 3, false);
    n += frame(b + n, FIN | 9, "p2", 2, false); /* a ping between fragments */
    n += frame(b + n, FIN | 0xa, "unasked", 7, false);
    n += frame(b + n, FIN, "ted", 3, false);
    n += frame(b + n, FIN | 1, mid, sizeof(mid), false);
    n += frame(b + n, FIN | 1, "", 0, false);
    n += frame(b + n, 1, "\xf0\x9f", 2, false); /* U+1F600 cut between fragments */
    n += frame(b + n, FIN, "\x98\x80", 2, false);
    n += frame(b + n, FIN | 8, cp, close_payload(cp, 1000, "bye"), false);
    n += frame(b + n, FIN | 1, "after close", 11, false);
    g_stream_len = n;
}

/* The stream fed in the pieces cuts[0..ncuts) delimit must give the reference result. */
static void check_cut(const size_t *cuts, size_t ncuts)
{
    static const uint8_t want_out[] = {0x8a, 2, 'p',  '1',  0x8a, 2,   'p', '2',
                                       0x88, 5, 0x03, 0xe8, 'b',  'y', 'e'};
    struct peer s;
    size_t at = 0;

    peer_init(&s, true, 0);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : g_stream_len;
        assert_int_equal(rf_ws_feed(s.ws, (const char *)g_stream + at, end - at), 0);
        at = end;
    }
    assert_int_equal(s.nmsgs, 5);
    assert_string_equal(s.msgs[0], "h\xc3\xa9llo");
    assert_string_equal(s.msgs[1], "fragmented");
    assert_int_equal(s.lens[2], 300);
    assert_int_equal(s.lens[3], 0);
    assert_string_equal(s.msgs[4], "\xf0\x9f\x98\x80");
    assert_int_equal(s.nout, sizeof(want_out));
    assert_memory_equal(s.out, want_out, sizeof(want_out));
    assert_true(rf_ws_done(s.ws));
    assert_int_equal(rf_ws_close_code_recv(s.ws), 1000);
    peer_fini(&s);
}

static void test_split_everywhere(void **state)
{
    size_t cuts[STREAM_MAX];
    uint64_t rng = 0x9e3779b97f4a7c15ull;

    (void)state;
    build_stream();
    check_cut(NULL, 0);
    for (size_t i = 0; i <= g_stream_len; i++) {
        cuts[0] = i;
        check_cut(cuts, 1);
    }
    for (size_t i = 0; i < g_stream_len; i++)
        cuts[i] = i;
    check_cut(cuts, g_stream_len); /* byte by byte, with an empty first feed */
    for (unsigned r = 0; r < RAND_ROUNDS; r++) {
        size_t k = 0, at = 0;
        while (k < STREAM_MAX) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            at += rng % 40;
            if (at > g_stream_len)
                break;
            cuts[k++] = at;
        }
        check_cut(cuts, k);
    }
}

/* --- write errors ---------------------------------------------------------------------------- */

static void test_write_error(void **state)
{
    struct peer s;
    uint8_t buf[32];
    size_t n = frame(buf, FIN | 9, "hi", 2, false);

    (void)state;
    peer_init(&s, true, 0);
    s.fail_after = 0;
    s.write_err = -ENOBUFS;
    assert_int_equal(rf_ws_feed(s.ws, (const char *)buf, n), -ENOBUFS); /* the pong */
    assert_true(rf_ws_done(s.ws));
    assert_int_equal(rf_ws_send_text(s.ws, "x", 1), -ENOBUFS);
    assert_int_equal(rf_ws_feed(s.ws, (const char *)buf, n), -ENOBUFS);
    assert_int_equal(rf_ws_close(s.ws, 1000, NULL), -ENOBUFS);
    peer_fini(&s);

    peer_init(&s, true, 0);
    s.fail_after = 1; /* the header fails after the first bytes went */
    s.write_err = -EPIPE;
    assert_int_equal(rf_ws_send_text(s.ws, "hello", 5), -EPIPE);
    assert_int_equal(rf_ws_ping(s.ws, NULL, 0), -EPIPE);
    peer_fini(&s);
}

static void test_new_args(void **state)
{
    static const struct rf_ws_cbs no_write = {.on_text = peer_text};
    struct rf_ws *ws = NULL;

    (void)state;
    assert_int_equal(rf_ws_new(true, &no_write, NULL, NULL, &ws), -EINVAL);
    assert_null(ws);
    assert_int_equal(rf_ws_new(true, NULL, NULL, NULL, &ws), -EINVAL);
    rf_ws_free(NULL);
}

/* --- UTF-8 -------------------------------------------------------------------------------------
 */

/* Reference: decode each sequence by its length bits, then refuse overlongs, surrogates and
 * anything above U+10FFFF. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        uint32_t cp;

        if (len == 0 || n - i < len)
            return false;
        cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static void test_utf8_validator(void **state)
{
    uint8_t s[16];
    uint64_t rng = 88172645463325252ull;

    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        assert_int_equal(rf_ws_utf8_valid(s, 1), ref_utf8(s, 1));
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            assert_int_equal(rf_ws_utf8_valid(s, 2), ref_utf8(s, 2));
            if (a < 0xe0 || a > 0xf4)
                continue;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (uint8_t)c;
                assert_int_equal(rf_ws_utf8_valid(s, 3), ref_utf8(s, 3));
            }
        }
    }
    for (unsigned r = 0; r < UTF8_RANDOMS; r++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        memcpy(s, &rng, 8);
        s[0] = (uint8_t)(0xf0 | (s[0] & 0x07));
        s[1] = (uint8_t)(0x80 | (s[1] & 0x3f)) ^ (uint8_t)((s[4] & 1) << 6);
        s[2] = (uint8_t)(0x80 | (s[2] & 0x3f));
        s[3] = (uint8_t)(0x80 | (s[3] & 0x3f));
        assert_int_equal(rf_ws_utf8_valid(s, 4), ref_utf8(s, 4));
    }
    /* The ASCII fast path must hand over at the first non-ASCII byte wherever it is. */
    for (size_t at = 0; at < 16; at++) {
        memset(s, 'a', sizeof(s));
        s[at] = 0xff;
        assert_false(rf_ws_utf8_valid(s, sizeof(s)));
        assert_true(rf_ws_utf8_valid(s, at));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_rfc_example),
        cmocka_unit_test(test_handshake_rejections),
        cmocka_unit_test(test_messages_both_ways),
        cmocka_unit_test(test_echo_inside_feed),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_close_from_server),
        cmocka_unit_test(test_close_from_client),
        cmocka_unit_test(test_close_args),
        cmocka_unit_test(test_bad_utf8),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_close_reason_split),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_new_args),
        cmocka_unit_test(test_utf8_validator),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
