/*
 * tests/daemon/test_ws.c: the live stream, GET /v1/ws (spec/api.md "Live stream", RFC 6455),
 * end to end against a real ringflowd.
 *
 * One daemon (two shards) serves the main group: the handshake's checks (each a 4xx with a
 * JSON body), replay after `after`, live events, multiplexing with subscribe and
 * unsubscribe and their error frames, ping/pong, the close codes (1002 protocol, 1007 bad
 * UTF-8, 1009 too big, the echo of a client's close), and subscribers spread over both
 * shards following one execution. A second daemon with a tiny --ws-queue-max checks that
 * a subscriber that does not read is closed with 1008 instead of growing memory. A third,
 * stopped with SIGTERM, closes an open WebSocket with 1001 and exits within seconds though
 * the client never answers.
 *
 * Two clients are used: the harness's (net/ws.h in client mode: text messages in, text
 * messages out) and raw frames (rfd_ws_send_frame / rfd_ws_read_frame) for what a
 * well-behaved client never sends. Every wait has a deadline.
 *
 * RF_TEST_CONCURRENT: also run against the TSan build of the daemon (make test-tsan).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"

#define WAIT_MS      10000 /* the longest any single wait may take */
#define QUIET_MS     600   /* "nothing more comes" is checked for this long */
#define PATH_BYTES   256u
#define CHAIN3_EVENTS 9    /* queued, started, 3 x (started, succeeded), succeeded */
#define SLOW_EVENTS   7    /* queued, started, wait and done started/succeeded, succeeded */
#define FANOUT_SUBS   12   /* connections following one execution over both shards */
#define FLOOD_ITEMS   20000 /* map items of the execution the slow consumer ignores */

static struct rfd main_d, small_d;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* --- helpers ------------------------------------------------------------------------------ */

static char *submit(struct rfd *d, const char *graph, const char *inputs)
{
    char *id = rfd_submit(d, graph, inputs);

    assert_non_null(id);
    return id;
}

/* Wait until the execution's result is terminal. */
static void wait_done(struct rfd *d, const char *id)
{
    char path[PATH_BYTES];
    int64_t deadline = now_ms() + WAIT_MS;
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=2000", id);
    for (;;) {
        assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
        int st = r.status;
        rfd_resp_free(&r);
        if (st == 200)
            return;
        assert_int_equal(st, 202);
        assert_true(now_ms() < deadline);
    }
}

/* The next message as JSON within the deadline (fails the test when none comes). */
static json_t *recv_json(struct rfd_ws *w, int timeout_ms)
{
    char *m = rfd_ws_recv(w, timeout_ms);

    if (!m)
        fail_msg("no message within %d ms (closed %d, code %u)", timeout_ms, w->closed,
                 w->close_code);
    json_t *j = json_loads(m, 0, NULL);
    if (!j)
        fail_msg("not JSON: %s", m);
    free(m);
    return j;
}

/* Read events of `id` from w until one of type `last` (inclusive): checks that they come
 * with seq first, first + 1, ... and returns how many came. Events of other executions
 * are counted in *others (may be NULL: then none may come). */
static uint32_t read_events(struct rfd_ws *w, const char *id, uint64_t first, const char *last,
                            uint32_t *others)
{
    uint64_t want = first;
    int64_t deadline = now_ms() + WAIT_MS;

    for (;;) {
        int left = (int)(deadline - now_ms());
        json_t *e = recv_json(w, left > 0 ? left : 1);
        if (strcmp(jstr(e, "execution_id"), id) != 0) {
            assert_non_null(others);
            (*others)++;
            json_decref(e);
            continue;
        }
        if ((uint64_t)json_integer_value(json_object_get(e, "seq")) != want)
            fail_msg("execution %s: seq %lld, want %llu", id,
                     (long long)json_integer_value(json_object_get(e, "seq")),
                     (unsigned long long)want);
        bool end = strcmp(jstr(e, "type"), last) == 0;
        json_decref(e);
        want++;
        if (end)
            return (uint32_t)(want - first);
    }
}

/* Nothing arrives on w for QUIET_MS. */
static void expect_quiet(struct rfd_ws *w)
{
    char *m = rfd_ws_recv(w, QUIET_MS);

    if (m)
        fail_msg("unexpected message: %s", m);
    assert_false(w->closed);
}

/* An error frame {"error": {"code": code, ...}} (and execution_id when id is not NULL). */
static void expect_error_frame(struct rfd_ws *w, const char *code, const char *id)
{
    json_t *j = recv_json(w, WAIT_MS);
    json_t *e = json_object_get(j, "error");

    if (!e || strcmp(jstr(e, "code"), code) != 0) {
        char *s = json_dumps(j, JSON_COMPACT);
        fail_msg("want error %s, got %s", code, s);
    }
    assert_true(strlen(jstr(e, "message")) > 0);
    if (id)
        assert_string_equal(jstr(j, "execution_id"), id);
    json_decref(j);
}

static void subscribe(struct rfd_ws *w, const char *id, int after)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "{\"op\": \"subscribe\", \"execution_id\": \"%s\", \"after\": %d}",
             id, after);
    assert_int_equal(rfd_ws_send(w, msg), 0);
}

/* A raw upgrade request with `headers` (each ending in CRLF); the response's status, and
 * its body parsed into *body (NULL to skip). */
static int raw_upgrade(const char *method, const char *version, const char *path,
                       const char *headers, json_t **body)
{
    char req[2048];
    struct rfd_resp r;
    int fd = rfd_connect(&main_d);

    assert_true(fd >= 0);
    snprintf(req, sizeof(req), "%s %s %s\r\nHost: 127.0.0.1\r\n%s\r\n", method, path, version,
             headers);
    assert_int_equal(rfd_send_str(fd, req), 0);
    assert_int_equal(rfd_read_resp(fd, &r, WAIT_MS, false), 0);
    int st = r.status;
    if (body)
        *body = rfd_json(&r);
    if (st == 426) {
        char v[16];
        assert_non_null(rfd_header(&r, "Sec-WebSocket-Version", v, sizeof(v)));
        assert_string_equal(v, "13");
    }
    rfd_resp_free(&r);
    rfd_close(fd);
    return st;
}

#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"

static void expect_upgrade_error(const char *method, const char *version, const char *path,
                                 const char *headers, int status, const char *code)
{
    json_t *b = NULL;
    int st = raw_upgrade(method, version, path, headers, &b);

    if (st != status)
        fail_msg("%s %s [%s]: status %d, want %d", method, path, headers, st, status);
    assert_non_null(b);
    assert_string_equal(jstr(json_object_get(b, "error"), "code"), code);
    json_decref(b);
}

/* --- the handshake --------------------------------------------------------------------------- */

static void test_handshake_checks(void **state)
{
    char path[PATH_BYTES];
    char *id = submit(&main_d, "chain3", NULL);

    (void)state;
    /* The RFC 6455 4.2.1 checks. */
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws", "", 400, "bad_handshake");
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws", "Connection: Upgrade\r\n" KEY V13, 400,
                         "bad_handshake");
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws", "Upgrade: websocket\r\n" KEY V13, 400,
                         "bad_handshake");
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws", UPG V13, 400, "bad_handshake");
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws",
                         UPG "Sec-WebSocket-Key: c2hvcnQ=\r\n" V13, 400, "bad_handshake");
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws", UPG KEY, 426, "upgrade_required");
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws", UPG KEY "Sec-WebSocket-Version: 8\r\n",
                         426, "upgrade_required");
    expect_upgrade_error("GET", "HTTP/1.0", "/v1/ws", UPG KEY V13, 400, "bad_handshake");
    expect_upgrade_error("POST", "HTTP/1.1", "/v1/ws", UPG KEY V13 "Content-Length: 0\r\n",
                         405, "method_not_allowed");
    /* Tokens are case-insensitive and may come in lists. */
    assert_int_equal(raw_upgrade("GET", "HTTP/1.1", "/v1/ws",
                                 "Upgrade: WebSocket\r\nConnection: keep-alive, upgrade\r\n" KEY
                                     V13,
                                 NULL),
                     101);
    /* The query. */
    expect_upgrade_error("GET", "HTTP/1.1", "/v1/ws?execution_id=00000000000000000000000000",
                         UPG KEY V13, 404, "not_found");
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s&after=-1", id);
    expect_upgrade_error("GET", "HTTP/1.1", path, UPG KEY V13, 400, "bad_query");
    free(id);
}

/* --- replay and live ------------------------------------------------------------------------- */

static void test_replay(void **state)
{
    char path[PATH_BYTES];
    char *id = submit(&main_d, "chain3", "{\"n\": 4}");
    struct rfd_ws w;

    (void)state;
    wait_done(&main_d, id);
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s", id);
    assert_int_equal(rfd_ws_open(&main_d, path, &w), 0);
    assert_int_equal(read_events(&w, id, 1, "execution.succeeded", NULL), CHAIN3_EVENTS);
    expect_quiet(&w); /* the subscription ended with the last event; the socket stays */
    rfd_ws_close(&w);

    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s&after=6", id);
    assert_int_equal(rfd_ws_open(&main_d, path, &w), 0);
    assert_int_equal(read_events(&w, id, 7, "execution.succeeded", NULL), CHAIN3_EVENTS - 6);
    rfd_ws_close(&w);

    /* after past the end: nothing, and nothing more. */
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s&after=9", id);
    assert_int_equal(rfd_ws_open(&main_d, path, &w), 0);
    expect_quiet(&w);
    rfd_ws_close(&w);
    free(id);
}

/* Subscribed while it runs: what happened is replayed, the rest arrives as it happens. */
static void test_live(void **state)
{
    char path[PATH_BYTES];
    char *id = submit(&main_d, "slow", "{\"ms\": 400}");
    struct rfd_ws w;
    int64_t t0 = now_ms();

    (void)state;
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s", id);
    assert_int_equal(rfd_ws_open(&main_d, path, &w), 0);
    assert_int_equal(read_events(&w, id, 1, "execution.succeeded", NULL), SLOW_EVENTS);
    assert_true(now_ms() - t0 >= 350); /* the end came live, after the delay */
    expect_quiet(&w);
    rfd_ws_close(&w);
    free(id);
}

/* --- multiplexing ---------------------------------------------------------------------------- */

static void test_multiplex(void **state)
{
    char *a = submit(&main_d, "slow", "{\"ms\": 300}");
    char *b = submit(&main_d, "chain3", "{\"n\": 8}");
    char *c = submit(&main_d, "slow", "{\"ms\": 5000}");
    char msg[160];
    struct rfd_ws w;
    uint32_t others = 0;

    (void)state;
    wait_done(&main_d, b);
    assert_int_equal(rfd_ws_open(&main_d, "/v1/ws", &w), 0);
    subscribe(&w, a, 0);
    subscribe(&w, b, 0);
    /* Both sequences arrive whole and in order, interleaved as they may be. */
    uint32_t got_a = read_events(&w, a, 1, "execution.succeeded", &others);
    assert_int_equal(got_a, SLOW_EVENTS);
    uint32_t got_b = others;
    others = 0;
    if (got_b < CHAIN3_EVENTS) /* b's events not yet seen continue from where they are */
        assert_int_equal(read_events(&w, b, got_b + 1, "execution.succeeded", NULL),
                         CHAIN3_EVENTS - got_b);
    expect_quiet(&w);

    /* Unsubscribe stops c's events; the connection stays usable. */
    subscribe(&w, c, 0);
    assert_int_equal(read_events(&w, c, 1, "node.started", NULL), 3);
    snprintf(msg, sizeof(msg), "{\"op\": \"subscribe\", \"execution_id\": \"%s\"}", c);
    assert_int_equal(rfd_ws_send(&w, msg), 0);
    expect_error_frame(&w, "already_subscribed", c);
    snprintf(msg, sizeof(msg), "{\"op\": \"unsubscribe\", \"execution_id\": \"%s\"}", c);
    assert_int_equal(rfd_ws_send(&w, msg), 0);
    expect_quiet(&w);
    assert_int_equal(rfd_ws_send(&w, msg), 0);
    expect_error_frame(&w, "not_subscribed", c);

    /* Bad messages get an error frame and the connection stays. */
    assert_int_equal(rfd_ws_send(&w, "{\"op\": \"subscribe\", \"execution_id\": "
                                      "\"00000000000000000000000000\"}"),
                     0);
    expect_error_frame(&w, "not_found", "00000000000000000000000000");
    assert_int_equal(rfd_ws_send(&w, "not json"), 0);
    expect_error_frame(&w, "bad_message", NULL);
    assert_int_equal(rfd_ws_send(&w, "[1, 2]"), 0);
    expect_error_frame(&w, "bad_message", NULL);
    snprintf(msg, sizeof(msg), "{\"execution_id\": \"%s\"}", a);
    assert_int_equal(rfd_ws_send(&w, msg), 0);
    expect_error_frame(&w, "bad_message", NULL);
    snprintf(msg, sizeof(msg), "{\"op\": \"watch\", \"execution_id\": \"%s\"}", a);
    assert_int_equal(rfd_ws_send(&w, msg), 0);
    expect_error_frame(&w, "bad_message", a);
    snprintf(msg, sizeof(msg), "{\"op\": \"subscribe\", \"execution_id\": \"%s\", \"after\": -3}",
             a);
    assert_int_equal(rfd_ws_send(&w, msg), 0);
    expect_error_frame(&w, "bad_message", a);

    /* A finished execution can be followed again, from any point. */
    subscribe(&w, b, 5);
    assert_int_equal(read_events(&w, b, 6, "execution.succeeded", NULL), CHAIN3_EVENTS - 5);
    rfd_ws_close(&w);

    snprintf(msg, sizeof(msg), "/v1/executions/%s/cancel", c);
    struct rfd_resp r;
    assert_int_equal(rfd_request(&main_d, "POST", msg, NULL, &r), 0);
    assert_int_equal(r.status, 202);
    rfd_resp_free(&r);
    free(a);
    free(b);
    free(c);
}

/* Subscribers on many connections (over both shards: the kernel spreads connections over
 * the SO_REUSEPORT listeners) follow one execution that runs on one shard: each gets the
 * whole sequence, written by its own shard. */
static void test_subscribers_on_every_shard(void **state)
{
    char path[PATH_BYTES];
    char *id = submit(&main_d, "slow", "{\"ms\": 300}");
    struct rfd_ws w[FANOUT_SUBS];

    (void)state;
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s", id);
    for (int i = 0; i < FANOUT_SUBS; i++)
        assert_int_equal(rfd_ws_open(&main_d, path, &w[i]), 0);
    for (int i = 0; i < FANOUT_SUBS; i++) {
        assert_int_equal(read_events(&w[i], id, 1, "execution.succeeded", NULL), SLOW_EVENTS);
        rfd_ws_close(&w[i]);
    }
    free(id);
}

/* --- frames ---------------------------------------------------------------------------------- */

static void test_ping_pong(void **state)
{
    struct rfd_frame f;
    int fd = rfd_ws_open_raw(&main_d, "/v1/ws");

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(rfd_ws_send_frame(fd, 0x89, true, "are you there", 13), 0);
    assert_int_equal(rfd_ws_read_frame(fd, &f, WAIT_MS), 0);
    assert_int_equal(f.opcode, 10);
    assert_true(f.fin);
    assert_string_equal(f.data, "are you there");
    free(f.data);
    /* A text message still works after it. */
    assert_int_equal(rfd_ws_send_frame(fd, 0x81, true, "{}", 2), 0);
    assert_int_equal(rfd_ws_read_frame(fd, &f, WAIT_MS), 0);
    assert_int_equal(f.opcode, 1);
    assert_non_null(strstr(f.data, "bad_message"));
    free(f.data);
    rfd_close(fd);
}

/* Send one raw frame; the server must answer with a close frame carrying `code`, then end
 * the connection. */
static void expect_close_after(unsigned first_byte, bool masked, const void *p, size_t n,
                               uint16_t code)
{
    struct rfd_frame f;
    int fd = rfd_ws_open_raw(&main_d, "/v1/ws");
    int64_t deadline = now_ms() + WAIT_MS;

    assert_true(fd >= 0);
    /* The server may stop reading early (a frame too big): a failed send is fine. */
    (void)rfd_ws_send_frame(fd, first_byte, masked, p, n);
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (rfd_ws_read_frame(fd, &f, left > 0 ? left : 1) < 0)
            fail_msg("no close frame (want %u)", code);
        bool close = f.opcode == 8;
        uint16_t got = f.close_code;
        free(f.data);
        if (close) {
            if (got != code)
                fail_msg("close code %u, want %u", got, code);
            break;
        }
    }
    assert_true(rfd_wait_closed(fd, WAIT_MS));
    rfd_close(fd);
}

static void test_close_codes(void **state)
{
    static const char bad_utf8[] = "{\"op\": \"\xc3\x28\"}";
    size_t big = (64u << 10) + 1; /* one byte past the default --ws-msg-max */
    char *payload = malloc(big);

    (void)state;
    assert_non_null(payload);
    memset(payload, 'a', big);
    expect_close_after(0x81, true, bad_utf8, sizeof(bad_utf8) - 1, 1007);
    expect_close_after(0x81, true, payload, big, 1009);
    expect_close_after(0x81, false, "{}", 2, 1002);  /* a client frame must be masked */
    expect_close_after(0x83, true, "x", 1, 1002);    /* a reserved opcode */
    expect_close_after(0xc1, true, "{}", 2, 1002);   /* RSV1 without an extension */
    expect_close_after(0x09, true, "p", 1, 1002);    /* a fragmented control frame */
    expect_close_after(0x88, true, "\x03\xe8", 2, 1000); /* our close is echoed */
    free(payload);
}

/* --- the slow consumer ----------------------------------------------------------------------- */

static void test_slow_consumer_closed(void **state)
{
    char path[PATH_BYTES], *inputs;
    struct rfd_frame f;
    size_t cap = (size_t)FLOOD_ITEMS * 8 + 64, len = 0;
    int rcvbuf = 4096;
    long rss0, rss1;

    (void)state;
    inputs = malloc(cap);
    assert_non_null(inputs);
    len += (size_t)snprintf(inputs + len, cap - len, "{\"items\": [");
    for (int i = 0; i < FLOOD_ITEMS; i++)
        len += (size_t)snprintf(inputs + len, cap - len, "%s%d", i ? "," : "", i);
    snprintf(inputs + len, cap - len, "]}");
    char *id = submit(&small_d, "wide", inputs);
    free(inputs);
    wait_done(&small_d, id);
    rss0 = rfd_rss_kib(&small_d);

    /* A subscriber that reads nothing: its events pile up past the kernel's buffers. */
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s", id);
    int fd = rfd_ws_open_raw(&small_d, path);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct timespec pause = {.tv_sec = 1};
    nanosleep(&pause, NULL);
    rss1 = rfd_rss_kib(&small_d);
    /* Then it reads: what was queued before the bound, and the 1008 close. */
    int64_t deadline = now_ms() + WAIT_MS;
    uint16_t code = 0;
    size_t frames = 0;
    while (!code) {
        int left = (int)(deadline - now_ms());
        if (rfd_ws_read_frame(fd, &f, left > 0 ? left : 1) < 0)
            fail_msg("no close frame after %zu frames", frames);
        if (f.opcode == 8)
            code = f.close_code;
        frames++;
        free(f.data);
    }
    assert_int_equal(code, 1008);
    assert_true(frames < 2u * FLOOD_ITEMS); /* not all of the 40,000 events */
    assert_true(rfd_wait_closed(fd, WAIT_MS));
    rfd_close(fd);
    print_message("slow consumer: closed with 1008 after %zu frames; daemon RSS %ld -> %ld KiB\n",
                  frames, rss0, rss1);
    /* TSan's shadow memory grows the daemon's resident set with everything it touches. */
    long bound_kib = strstr(RF_BUILD_DIR, "tsan") ? 512 * 1024 : 32 * 1024;
    assert_true(rss1 - rss0 < bound_kib);
    /* The daemon is fine. */
    struct rfd_resp r;
    assert_int_equal(rfd_request(&small_d, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    rfd_resp_free(&r);
    free(id);
}

/* --- shutdown ------------------------------------------------------------------------------- */

/* SIGTERM: an open WebSocket gets a close frame with 1001 (going away), and the daemon
 * exits cleanly, soon, even though the client never answers the close. */
static void test_shutdown_going_away(void **state)
{
    struct rfd d;
    struct rfd_frame f;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, NULL), 0);
    int fd = rfd_ws_open_raw(&d, "/v1/ws");
    assert_true(fd >= 0);
    int64_t t0 = now_ms();
    assert_int_equal(kill(d.pid, SIGTERM), 0);
    for (;;) {
        int left = (int)(t0 + WAIT_MS - now_ms());
        if (rfd_ws_read_frame(fd, &f, left > 0 ? left : 1) < 0)
            fail_msg("no close frame at shutdown");
        bool close = f.opcode == 8;
        uint16_t got = f.close_code;
        free(f.data);
        if (close) {
            assert_int_equal(got, 1001);
            break;
        }
    }
    assert_int_equal(rfd_wait_exit(&d, WAIT_MS), 0);
    assert_true(now_ms() - t0 < 5000); /* the unanswered close is cut after a second */
    rfd_close(fd);
    assert_int_equal(rfd_stop(&d), 0);
}

/* --- groups ---------------------------------------------------------------------------------- */

static int main_setup(void **state)
{
    (void)state;
    return rfd_start(&main_d, RF_BUILD_DIR, NULL);
}

static int main_teardown(void **state)
{
    (void)state;
    return rfd_stop(&main_d) == 0 ? 0 : -1;
}

static int small_setup(void **state)
{
    static const char *const flags[] = {"--ws-queue-max", "4KiB", NULL};

    (void)state;
    return rfd_start(&small_d, RF_BUILD_DIR, flags);
}

static int small_teardown(void **state)
{
    (void)state;
    return rfd_stop(&small_d) == 0 ? 0 : -1;
}

int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest main_tests[] = {
        cmocka_unit_test(test_handshake_checks),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_multiplex),
        cmocka_unit_test(test_subscribers_on_every_shard),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_close_codes),
    };
    const struct CMUnitTest small_tests[] = {
        cmocka_unit_test(test_slow_consumer_closed),
        cmocka_unit_test(test_shutdown_going_away),
    };
    int failed = cmocka_run_group_tests_name("ws", main_tests, main_setup, main_teardown);

    failed += cmocka_run_group_tests_name("ws-slow-consumer", small_tests, small_setup,
                                          small_teardown);
    return failed || rfd_failures() ? 1 : 0;
}
