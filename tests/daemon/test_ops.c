/*
 * tests/daemon/test_ops.c: ringflowd's operations surface and the `http` node kind, end to
 * end against a real daemon.
 *
 * "ops": /healthz, /readyz and /metrics (Prometheus text 0.0.4: every line parses, every
 * family of spec/api.md is there, counters move with the traffic the test makes,
 * histograms are cumulative and end in +Inf = _count); the account id every stored
 * resource shows. "http-node": the `fetch` graph (one http node) against a small HTTP/1.1
 * server this file runs on a loopback port in a thread of its own: a JSON body parsed into
 * the output, a text body kept as a string, 404 as a final error and 503 as a retryable
 * one (both named in the execution's error), a refused connection, and connection reuse
 * (many executions, few connections). "stop": SIGTERM with work in flight: the listener
 * closes, in-flight executions get --drain-timeout, then are canceled, and the process
 * exits 0; with a generous deadline a short execution finishes instead.
 *
 * Every wait has a deadline; the test server's thread is stopped in the group teardown.
 *
 * RF_TEST_CONCURRENT: also run against the TSan build of the daemon (make test-tsan).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"

#define WAIT_MS       10000
#define PATH_BYTES    512u
#define TS_CONNS_MAX  64    /* connections the test server holds at once */
#define TS_REQ_BYTES  8192u
#define REUSE_RUNS    20    /* executions in the connection reuse test */

static struct rfd main_d;

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

static json_t *get_json(struct rfd *d, const char *path, int want)
{
    struct rfd_resp r;

    assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
    if (r.status != want)
        fail_msg("GET %s: %d, want %d: %s", path, r.status, want, r.body);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    return j;
}

/* The terminal result {status, output, error} of execution id. */
static json_t *result_of(struct rfd *d, const char *id)
{
    char path[PATH_BYTES];
    int64_t deadline = now_ms() + WAIT_MS;
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=2000", id);
    for (;;) {
        assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
        if (r.status == 200) {
            json_t *j = rfd_json(&r);
            rfd_resp_free(&r);
            return j;
        }
        assert_int_equal(r.status, 202);
        rfd_resp_free(&r);
        assert_true(now_ms() < deadline);
    }
}

/* --- a tiny HTTP/1.1 server for the http node ------------------------------------------------ */

struct tserver {
    int lfd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    atomic_uint accepted; /* connections accepted */
    atomic_uint requests; /* requests answered */
};

static struct tserver ts;

static void ts_answer(int fd, const char *path)
{
    char out[1024];
    const char *status = "200 OK", *type = "application/json", *body = "{\"hello\":\"world\",\"n\":7}";

    if (strcmp(path, "/text") == 0) {
        type = "text/plain; charset=utf-8";
        body = "plain words";
    } else if (strcmp(path, "/missing") == 0) {
        status = "404 Not Found";
        type = "text/plain";
        body = "no such thing";
    } else if (strcmp(path, "/busy") == 0) {
        status = "503 Service Unavailable";
        type = "text/plain";
        body = "try later";
    }
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n%s", status,
                     type, strlen(body), body);
    ssize_t w = send(fd, out, (size_t)n, MSG_NOSIGNAL);
    (void)w;
    atomic_fetch_add(&ts.requests, 1);
}

/* Answer every complete request head in buf; returns the bytes consumed. */
static size_t ts_serve(int fd, char *buf, size_t len)
{
    size_t used = 0;

    for (;;) {
        char *end = memmem(buf + used, len - used, "\r\n\r\n", 4);
        if (!end)
            return used;
        char path[256] = "/";
        sscanf(buf + used, "%*s %255s", path);
        ts_answer(fd, path);
        used = (size_t)(end + 4 - buf);
    }
}

static void *ts_main(void *arg)
{
    struct pollfd p[TS_CONNS_MAX + 1];
    static char bufs[TS_CONNS_MAX][TS_REQ_BYTES];
    size_t lens[TS_CONNS_MAX] = {0};
    int n = 0;

    (void)arg;
    p[0] = (struct pollfd){.fd = ts.lfd, .events = POLLIN};
    while (!atomic_load(&ts.stop)) {
        if (poll(p, (nfds_t)n + 1, 50) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < TS_CONNS_MAX) {
            int c = accept(ts.lfd, NULL, NULL);
            if (c >= 0) {
                atomic_fetch_add(&ts.accepted, 1);
                lens[n] = 0;
                p[++n] = (struct pollfd){.fd = c, .events = POLLIN};
            }
        }
        for (int i = 1; i <= n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(p[i].fd, bufs[i - 1] + lens[i - 1], TS_REQ_BYTES - lens[i - 1], 0);
            if (r <= 0) {
                close(p[i].fd);
                p[i] = p[n];
                memcpy(bufs[i - 1], bufs[n - 1], lens[n - 1]);
                lens[i - 1] = lens[n - 1];
                n--;
                i--;
                continue;
            }
            lens[i - 1] += (size_t)r;
            size_t used = ts_serve(p[i].fd, bufs[i - 1], lens[i - 1]);
            memmove(bufs[i - 1], bufs[i - 1] + used, lens[i - 1] - used);
            lens[i - 1] -= used;
        }
    }
    for (int i = 1; i <= n; i++)
        close(p[i].fd);
    return NULL;
}

static int ts_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);

    ts.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ts.lfd < 0 || bind(ts.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(ts.lfd, 128) < 0 || getsockname(ts.lfd, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    ts.port = ntohs(sa.sin_port);
    atomic_store(&ts.stop, false);
    return pthread_create(&ts.thread, NULL, ts_main, NULL) == 0 ? 0 : -1;
}

static void ts_stop(void)
{
    atomic_store(&ts.stop, true);
    pthread_join(ts.thread, NULL);
    close(ts.lfd);
}

/* Run the fetch graph on url; the terminal result. *id_out (may be NULL) gets the id. */
static json_t *fetch_id(const char *url, char **id_out)
{
    char inputs[PATH_BYTES];

    snprintf(inputs, sizeof(inputs), "{\"url\": \"%s\"}", url);
    char *id = rfd_submit(&main_d, "fetch", inputs);
    assert_non_null(id);
    json_t *j = result_of(&main_d, id);
    if (id_out)
        *id_out = id;
    else
        free(id);
    return j;
}

static json_t *fetch(const char *url)
{
    return fetch_id(url, NULL);
}

/* The fetch execution failed; its http node failed with `code` (the node's error in the
 * document), and the execution's error message says `in_message`. */
static void expect_fetch_failed(const char *url, const char *code, const char *in_message)
{
    char path[PATH_BYTES], *id;
    json_t *res = fetch_id(url, &id);
    char *s = json_dumps(res, JSON_COMPACT);

    if (strcmp(jstr(res, "status"), "failed") != 0 || !strstr(s, in_message))
        fail_msg("want failed with \"%s\", got %s", in_message, s);
    assert_string_equal(jstr(json_object_get(res, "error"), "node"), "get");
    free(s);
    json_decref(res);
    snprintf(path, sizeof(path), "/v1/executions/%s", id);
    json_t *doc = get_json(&main_d, path, 200);
    json_t *node = json_object_get(json_object_get(doc, "nodes"), "get");
    assert_string_equal(jstr(node, "status"), "failed");
    assert_string_equal(jstr(json_object_get(node, "error"), "code"), code);
    json_decref(doc);
    free(id);
}

/* --- operations ------------------------------------------------------------------------------ */

static void test_healthz_readyz(void **state)
{
    struct rfd_resp r;
    json_t *j;

    (void)state;
    j = get_json(&main_d, "/healthz", 200);
    assert_string_equal(jstr(j, "status"), "ok");
    json_decref(j);
    j = get_json(&main_d, "/readyz", 200);
    assert_string_equal(jstr(j, "status"), "ready");
    assert_int_equal(json_integer_value(json_object_get(j, "shards")), 2);
    json_decref(j);
    assert_int_equal(rfd_request(&main_d, "HEAD", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    rfd_resp_free(&r);
    assert_int_equal(rfd_request(&main_d, "POST", "/healthz", "{}", &r), 0);
    assert_int_equal(r.status, 405);
    rfd_resp_free(&r);
}

/* The value of the first sample line that starts with `prefix` (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, prefix, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

/* Every line is a comment (# HELP / # TYPE) or `name{labels} value`. */
static void check_exposition(const char *text)
{
    for (const char *l = text; *l;) {
        const char *e = strchr(l, '\n');
        assert_non_null(e); /* every line ends in \n */
        if (*l == '#') {
            assert_true(strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0);
        } else {
            const char *sp = memchr(l, ' ', (size_t)(e - l));
            assert_non_null(sp);
            assert_true(strncmp(l, "ringflow_", 9) == 0);
            char *end;
            strtod(sp + 1, &end);
            if (end != e)
                fail_msg("bad sample line: %.*s", (int)(e - l), l);
        }
        l = e + 1;
    }
}

static void test_metrics(void **state)
{
    static const char *const families[] = {
        "ringflow_executions_started_total", "ringflow_executions_finished_total",
        "ringflow_node_runs_total", "ringflow_http_requests_total",
        "ringflow_websocket_connections", "ringflow_executions_in_flight",
        "ringflow_shard_queue_depth", "ringflow_shard_steals_total",
        "ringflow_cache_hits_total", "ringflow_cache_misses_total",
        "ringflow_execution_duration_seconds", "ringflow_node_duration_seconds",
        "ringflow_http_request_duration_seconds",
    };
    struct rfd_resp r;
    char ct[128], line[256];

    (void)state;
    char *id = rfd_submit(&main_d, "chain3", "{\"n\": 2}");
    assert_non_null(id);
    json_decref(result_of(&main_d, id));
    free(id);
    assert_int_equal(rfd_request(&main_d, "GET", "/no/such/thing", NULL, &r), 0);
    rfd_resp_free(&r);

    assert_int_equal(rfd_request(&main_d, "GET", "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(rfd_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_non_null(strstr(ct, "text/plain"));
    assert_non_null(strstr(ct, "version=0.0.4"));
    check_exposition(r.body);
    for (size_t i = 0; i < sizeof(families) / sizeof(*families); i++) {
        snprintf(line, sizeof(line), "# TYPE %s ", families[i]);
        if (!strstr(r.body, line))
            fail_msg("no family %s", families[i]);
    }
    assert_true(sample(r.body, "ringflow_executions_started_total{graph=\"chain3\"}") >= 1);
    assert_true(sample(r.body, "ringflow_executions_finished_total{graph=\"chain3\","
                               "status=\"succeeded\"}") >= 1);
    assert_true(sample(r.body, "ringflow_node_runs_total{kind=\"transform\","
                               "status=\"succeeded\"}") >= 3);
    assert_true(sample(r.body, "ringflow_http_requests_total{route=\"/v1/graphs/{name}/"
                               "executions\",code=\"202\"}") >= 1);
    assert_true(sample(r.body, "ringflow_http_requests_total{route=\"other\",code=\"404\"}") >=
                1);
    /* Histograms: cumulative buckets, +Inf equal to _count. */
    double prev = 0, inf = sample(r.body, "ringflow_execution_duration_seconds_bucket{le=\"+Inf\"}");
    const char *b = r.body;
    while ((b = strstr(b, "ringflow_execution_duration_seconds_bucket{le=\""))) {
        double v = strtod(strchr(b, ' ') + 1, NULL);
        assert_true(v >= prev);
        prev = v;
        b++;
    }
    assert_true(inf >= 1);
    assert_true(inf == sample(r.body, "ringflow_execution_duration_seconds_count"));
    rfd_resp_free(&r);
}

/* Graphs and executions carry the account they belong to (one, "default", for now). */
static void test_accounts(void **state)
{
    json_t *j;

    (void)state;
    j = get_json(&main_d, "/v1/graphs/chain3", 200);
    assert_string_equal(jstr(j, "account"), "default");
    json_decref(j);
    j = get_json(&main_d, "/v1/graphs", 200);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "graphs"), 0), "account"),
                        "default");
    json_decref(j);
    char *id = rfd_submit(&main_d, "chain3", NULL);
    char path[PATH_BYTES];
    snprintf(path, sizeof(path), "/v1/executions/%s", id);
    j = get_json(&main_d, path, 200);
    assert_string_equal(jstr(j, "account"), "default");
    json_decref(j);
    j = get_json(&main_d, "/v1/executions?limit=1", 200);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "executions"), 0), "account"),
                        "default");
    json_decref(j);
    free(id);
}

/* --- the http node --------------------------------------------------------------------------- */

static void test_http_node_json_and_text(void **state)
{
    char url[128];
    json_t *res, *out;

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/json", ts.port);
    res = fetch(url);
    assert_string_equal(jstr(res, "status"), "succeeded");
    out = json_object_get(res, "output");
    assert_int_equal(json_integer_value(json_object_get(out, "status")), 200);
    assert_string_equal(jstr(json_object_get(out, "body"), "hello"), "world");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "body"), "n")), 7);
    json_decref(res);

    snprintf(url, sizeof(url), "http://localhost:%u/text", ts.port);
    res = fetch(url);
    assert_string_equal(jstr(res, "status"), "succeeded");
    assert_string_equal(jstr(json_object_get(res, "output"), "body"), "plain words");
    json_decref(res);
}

static void test_http_node_errors(void **state)
{
    char url[128];

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/missing", ts.port);
    expect_fetch_failed(url, "http_status", "404 Not Found: no such thing");
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/busy", ts.port);
    expect_fetch_failed(url, "http_status", "503");
    /* Nobody listens on port 1 of loopback. */
    expect_fetch_failed("http://127.0.0.1:1/x", "connect_failed", "127.0.0.1:1");
    /* Names are not looked up: refused before anything is sent. */
    expect_fetch_failed("http://example.invalid/x", "bad_url", "host names are not resolved");
}

/* Sequential executions reuse the shards' pooled connections. */
static void test_http_node_reuses_connections(void **state)
{
    char url[128];
    unsigned a0 = atomic_load(&ts.accepted), q0 = atomic_load(&ts.requests);

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/json", ts.port);
    for (int i = 0; i < REUSE_RUNS; i++) {
        json_t *res = fetch(url);
        assert_string_equal(jstr(res, "status"), "succeeded");
        json_decref(res);
    }
    unsigned conns = atomic_load(&ts.accepted) - a0, reqs = atomic_load(&ts.requests) - q0;
    print_message("http node: %u requests over %u connections\n", reqs, conns);
    assert_int_equal(reqs, REUSE_RUNS);
    assert_true(conns <= 2); /* at most one per shard */
}

/* --- graceful stop --------------------------------------------------------------------------- */

static bool can_connect(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* In flight past --drain-timeout: canceled, and the process still exits 0, in time. */
static void test_sigterm_cancels_after_drain(void **state)
{
    static const char *const flags[] = {"--drain-timeout", "500ms", "--log-level", "info", NULL};
    struct rfd d;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, flags), 0);
    char *id = rfd_submit(&d, "slow", "{\"ms\": 30000}");
    assert_non_null(id);
    free(id);
    int64_t t0 = now_ms();
    kill(d.pid, SIGTERM);
    /* The listeners close at once: new connections are refused well before the end. */
    bool refused = false;
    while (!refused && now_ms() - t0 < 2000)
        refused = !can_connect(d.port);
    assert_true(refused);
    int rc = rfd_wait_exit(&d, WAIT_MS);
    int64_t ms = now_ms() - t0;
    print_message("SIGTERM with a 30 s delay in flight: exit %d after %ld ms\n", rc, (long)ms);
    assert_int_equal(rc, 0);
    assert_true(ms >= 400 && ms < 5000);
    char *log = rfd_log(&d);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"msg\":\"stopping\""));
    assert_non_null(strstr(log, "\"msg\":\"stopped\""));
    free(log);
    assert_int_equal(rfd_stop(&d), 0);
}

/* In flight within --drain-timeout: it finishes, then the process exits 0. */
static void test_sigterm_lets_work_finish(void **state)
{
    struct rfd d;

    (void)state;
    assert_int_equal(rfd_start(&d, RF_BUILD_DIR, NULL), 0);
    char *id = rfd_submit(&d, "slow", "{\"ms\": 600}");
    assert_non_null(id);
    free(id);
    int64_t t0 = now_ms();
    kill(d.pid, SIGTERM);
    int rc = rfd_wait_exit(&d, WAIT_MS);
    int64_t ms = now_ms() - t0;
    assert_int_equal(rc, 0);
    assert_true(ms >= 400 && ms < 5000); /* waited for the 600 ms delay, not the 10 s drain */
    assert_int_equal(rfd_stop(&d), 0);
}

/* --- groups ---------------------------------------------------------------------------------- */

static int main_setup(void **state)
{
    static const char *const flags[] = {"--log-level", "info", NULL};

    (void)state;
    if (ts_start() < 0)
        return -1;
    return rfd_start(&main_d, RF_BUILD_DIR, flags);
}

static int main_teardown(void **state)
{
    (void)state;
    ts_stop();
    return rfd_stop(&main_d) == 0 ? 0 : -1;
}

int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest main_tests[] = {
        cmocka_unit_test(test_healthz_readyz),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_accounts),
        cmocka_unit_test(test_http_node_json_and_text),
        cmocka_unit_test(test_http_node_errors),
        cmocka_unit_test(test_http_node_reuses_connections),
    };
    const struct CMUnitTest stop_tests[] = {
        cmocka_unit_test(test_sigterm_cancels_after_drain),
        cmocka_unit_test(test_sigterm_lets_work_finish),
    };
    int failed = cmocka_run_group_tests_name("ops", main_tests, main_setup, main_teardown);

    failed += cmocka_run_group_tests_name("stop", stop_tests, NULL, NULL);
    return failed || rfd_failures() ? 1 : 0;
}
