/*
 * tests/daemon/test_redis.c: two ringflowd instances sharing a real redis-server (started
 * here on a free loopback port, tests/support/redis.h).
 *
 *   cache across instances   a cached node run on A is `cached` on B, from Redis;
 *   single flight            the same slow cached node submitted to A and B at once runs
 *                            once: the other instance waits on the lease and is `cached`;
 *   Redis killed under load  submissions keep being accepted and finishing while Redis is
 *                            down (the cache bypassed and counted), /readyz says
 *                            "degraded" and comes back to "ready" when Redis does; the
 *                            cache works across instances again afterwards;
 *   Redis not answering      SIGSTOP: replies time out (--redis-timeout), nothing blocks;
 *   WebSocket across         a subscriber on B gets the whole event sequence of an
 *                            execution running on A (replay and live, in order, no gap, no
 *                            duplicate, the same texts as A's event log), `after` works,
 *                            an unknown id is a not_found frame.
 *
 * RF_TEST_CONCURRENT: the load is threads, and the daemons' shards too.
 */
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"
#include "tests/support/redis.h"

#define WAIT_MS    20000
#define PATH_BYTES 512u

struct world {
    struct rrs redis;
    struct rfd a, b;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int world_up(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    if (!w || rrs_start(&w->redis) < 0)
        return -1;
    const char *const flags[] = {"--redis", w->redis.url, "--redis-timeout", "300ms", NULL};
    if (rfd_start(&w->a, RF_BUILD_DIR, flags) < 0 || rfd_start(&w->b, RF_BUILD_DIR, flags) < 0)
        return -1;
    *state = w;
    return 0;
}

static int world_down(void **state)
{
    struct world *w = *state;
    int rc = 0;

    if (!w)
        return 0;
    if (rfd_stop(&w->a) != 0)
        rc = -1;
    if (rfd_stop(&w->b) != 0)
        rc = -1;
    rrs_stop(&w->redis);
    free(w);
    return rc;
}

/* PUT a graph on both instances. */
static void put_graph(struct world *w, const char *name, const char *doc)
{
    char path[PATH_BYTES];
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/graphs/%s", name);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(rfd_request(k ? &w->b : &w->a, "PUT", path, doc, &r), 0);
        assert_true(r.status == 201 || r.status == 200);
        rfd_resp_free(&r);
    }
}

/* A cached delay graph whose lineage no other test (or earlier run) shares. */
static void put_cached(struct world *w, const char *name, unsigned ms)
{
    char doc[512];

    snprintf(doc, sizeof(doc),
             "{\"nodes\": [{\"id\": \"x\", \"kind\": \"delay\", \"config\": {\"ms\": %u}, "
             "\"cache\": {\"ttl_s\": 60, \"version\": \"%s-%d-%lld\"}}]}",
             ms, name, (int)getpid(), (long long)now_ms());
    put_graph(w, name, doc);
}

static json_t *get_json(const struct rfd *d, const char *path, int want)
{
    struct rfd_resp r;

    assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
    if (r.status != want)
        fail_msg("GET %s: %d %s", path, r.status, r.body);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* Wait until execution id is terminal; its document. */
static json_t *finished(const struct rfd *d, const char *id)
{
    char path[PATH_BYTES];
    int64_t deadline = now_ms() + WAIT_MS;

    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=2000", id);
    for (;;) {
        struct rfd_resp r;
        assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
        int st = r.status;
        rfd_resp_free(&r);
        if (st == 200)
            break;
        assert_int_equal(st, 202);
        if (now_ms() > deadline)
            fail_msg("execution %s not terminal after %d ms", id, WAIT_MS);
    }
    snprintf(path, sizeof(path), "/v1/executions/%s", id);
    return get_json(d, path, 200);
}

static const char *node_status(const json_t *doc, const char *node)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(doc, "nodes"), node), "status"));
}

/* A counter from /metrics (its first line starting with `name`), or -1. */
static double metric(const struct rfd *d, const char *name)
{
    struct rfd_resp r;
    double v = -1;

    assert_int_equal(rfd_request(d, "GET", "/metrics", NULL, &r), 0);
    for (const char *p = r.body; p && *p;) {
        if (strncmp(p, name, strlen(name)) == 0) {
            const char *sp = strchr(p, ' ');
            if (sp)
                v = strtod(sp + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    rfd_resp_free(&r);
    return v;
}

/* Poll /readyz until its status is `want` (bounded). */
static void wait_ready_status(const struct rfd *d, const char *want, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char last[256] = "";

    while (now_ms() < deadline) {
        struct rfd_resp r;
        assert_int_equal(rfd_request(d, "GET", "/readyz", NULL, &r), 0);
        json_t *j = rfd_json(&r);
        const char *st = json_string_value(json_object_get(j, "status"));
        bool ok = st && strcmp(st, want) == 0;
        snprintf(last, sizeof(last), "%d %s", r.status, r.body ? r.body : "");
        json_decref(j);
        rfd_resp_free(&r);
        if (ok)
            return;
        sleep_ms(50);
    }
    fail_msg("/readyz never said %s within %d ms; last: %s", want, timeout_ms, last);
}

/* --- the cache ------------------------------------------------------------------------------ */

static void test_cache_across_instances(void **state)
{
    struct world *w = *state;

    put_cached(w, "across", 200);
    char *ia = rfd_submit(&w->a, "across", NULL);
    assert_non_null(ia);
    json_t *da = finished(&w->a, ia);
    assert_string_equal(node_status(da, "x"), "succeeded");
    double hits = metric(&w->b, "ringflow_cache_remote_lookups_total{result=\"hit\"}");
    char *ib = rfd_submit(&w->b, "across", NULL);
    assert_non_null(ib);
    json_t *db = finished(&w->b, ib);
    assert_string_equal(node_status(db, "x"), "cached");
    assert_true(metric(&w->b, "ringflow_cache_remote_lookups_total{result=\"hit\"}") >= hits + 1);
    json_decref(da);
    json_decref(db);
    free(ia);
    free(ib);
}

static void test_single_flight_across_instances(void **state)
{
    struct world *w = *state;
    char *ids[6];
    int ran = 0, cached = 0;

    put_cached(w, "flight", 800);
    double waits = metric(&w->a, "ringflow_cache_lease_waits_total") +
                   metric(&w->b, "ringflow_cache_lease_waits_total");
    for (int k = 0; k < 6; k++) {
        ids[k] = rfd_submit(k % 2 ? &w->b : &w->a, "flight", NULL);
        assert_non_null(ids[k]);
    }
    for (int k = 0; k < 6; k++) {
        json_t *d = finished(k % 2 ? &w->b : &w->a, ids[k]);
        const char *st = node_status(d, "x");
        ran += strcmp(st, "succeeded") == 0;
        cached += strcmp(st, "cached") == 0;
        json_decref(d);
        free(ids[k]);
    }
    assert_int_equal(ran, 1); /* one run for six executions on two instances */
    assert_int_equal(cached, 5);
    assert_true(metric(&w->a, "ringflow_cache_lease_waits_total") +
                    metric(&w->b, "ringflow_cache_lease_waits_total") >=
                waits + 1);
}

/* Submitters over keep-alive connections, for as long as `stop` is not set. */
struct load {
    pthread_t t;
    const struct rfd *d;
    _Atomic bool *stop;
    char (*ids)[32];
    uint32_t n, max, refused;
};

static void *load_loop(void *arg)
{
    struct load *l = arg;
    int fd = rfd_connect(l->d);
    char req[512], body[128];

    for (uint32_t i = 0; fd >= 0 && !atomic_load(l->stop) && l->n < l->max; i++) {
        snprintf(body, sizeof(body), "{\"inputs\": {\"n\": %u}}", i % 7);
        snprintf(req, sizeof(req),
                 "POST /v1/graphs/loadc/executions HTTP/1.1\r\nHost: x\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        struct rfd_resp r;
        if (rfd_send_str(fd, req) < 0 || rfd_read_resp(fd, &r, 5000, false) < 0)
            break;
        if (r.status == 202) {
            json_t *j = rfd_json(&r);
            snprintf(l->ids[l->n++], 32, "%s", json_string_value(json_object_get(j, "id")));
            json_decref(j);
        } else {
            l->refused++;
        }
        rfd_resp_free(&r);
        sleep_ms(2);
    }
    rfd_close(fd);
    return NULL;
}

static void test_redis_killed_under_load(void **state)
{
    struct world *w = *state;
    _Atomic bool stop = false;
    struct load l = {.d = &w->a, .stop = &stop, .max = 20000};

    /* A cached node whose params vary: some lookups miss and store, some hit. */
    put_graph(w, "loadc",
              "{\"inputs\": {\"n\": {\"type\": \"integer\"}}, \"nodes\": [{\"id\": \"x\", "
              "\"kind\": \"transform\", \"config\": {\"output\": \"{{inputs.n}}\"}, "
              "\"cache\": {\"ttl_s\": 60, \"version\": \"load\"}}]}");
    l.ids = calloc(l.max, sizeof(*l.ids));
    assert_non_null(l.ids);
    double bypassed = metric(&w->a, "ringflow_cache_remote_lookups_total{result=\"bypassed\"}");
    assert_int_equal(pthread_create(&l.t, NULL, load_loop, &l), 0);
    sleep_ms(400);
    rrs_kill(&w->redis);
    wait_ready_status(&w->a, "degraded", 5000);
    sleep_ms(600); /* load while Redis is gone */
    assert_int_equal(rrs_restart(&w->redis), 0);
    wait_ready_status(&w->a, "ready", 10000);
    wait_ready_status(&w->b, "ready", 10000);
    sleep_ms(300);
    atomic_store(&stop, true);
    pthread_join(l.t, NULL);
    assert_true(l.n > 50);
    assert_int_equal(l.refused, 0); /* Redis going away refuses nothing */
    for (uint32_t i = 0; i < l.n; i++) {
        json_t *d = finished(&w->a, l.ids[i]);
        assert_string_equal(json_string_value(json_object_get(d, "status")), "succeeded");
        json_decref(d);
    }
    free(l.ids);
    /* While Redis was gone some lookups went without it, and said so. */
    assert_true(metric(&w->a, "ringflow_cache_remote_lookups_total{result=\"bypassed\"}") +
                    metric(&w->a, "ringflow_redis_drops_total") >
                bypassed);
    /* And the cache works across instances again. */
    test_cache_across_instances(state);
}

static void test_redis_not_answering(void **state)
{
    struct world *w = *state;

    put_cached(w, "stalled", 10);
    rrs_pause(&w->redis);
    int64_t t0 = now_ms();
    char *id = rfd_submit(&w->a, "stalled", NULL);
    assert_non_null(id);
    json_t *d = finished(&w->a, id);
    int64_t took = now_ms() - t0;
    assert_string_equal(json_string_value(json_object_get(d, "status")), "succeeded");
    assert_true(took < 5000); /* the reply timeout (300 ms) bounds it, not Redis */
    wait_ready_status(&w->a, "degraded", 5000);
    rrs_resume(&w->redis);
    wait_ready_status(&w->a, "ready", 10000);
    json_decref(d);
    free(id);
}

/* --- events across instances ------------------------------------------------------------------ */

/* Read frames from ws until the execution's last event; check seq 1.. (from `after` + 1)
 * without gap or duplicate, and each text equal to A's event log entry. */
static void follow_and_check(struct rfd_ws *ws, const json_t *log, uint64_t after)
{
    uint64_t want = after + 1;
    size_t n = json_array_size(log);

    for (;;) {
        char *m = rfd_ws_recv(ws, 10000);
        if (!m)
            fail_msg("the WebSocket ended before the last event (want seq %llu)",
                     (unsigned long long)want);
        json_t *ev = json_loads(m, 0, NULL);
        assert_non_null(ev);
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(ev, "seq"));
        if (seq != want)
            fail_msg("seq %llu where %llu was due: %s", (unsigned long long)seq,
                     (unsigned long long)want, m);
        assert_true(seq <= n);
        assert_true(json_equal(ev, json_array_get(log, seq - 1)));
        const char *type = json_string_value(json_object_get(ev, "type"));
        bool last = strcmp(type, "execution.succeeded") == 0 ||
                    strcmp(type, "execution.failed") == 0;
        json_decref(ev);
        free(m);
        want++;
        if (last)
            break;
    }
    assert_int_equal(want - 1, n);
}

static json_t *event_log(const struct rfd *d, const char *id)
{
    char path[PATH_BYTES];

    snprintf(path, sizeof(path), "/v1/executions/%s/events?limit=1000", id);
    json_t *j = get_json(d, path, 200);
    json_t *evs = json_incref(json_object_get(j, "events"));
    json_decref(j);
    return evs;
}

static void test_ws_follows_other_instance(void **state)
{
    struct world *w = *state;
    char path[PATH_BYTES];
    struct rfd_ws ws;

    /* A slow mapped graph: live events arrive over a second, while B follows. */
    put_graph(w, "wide_slow",
              "{\"inputs\": {\"items\": {\"type\": \"array\", \"default\": [1, 2, 3, 4, 5, 6]}}, "
              "\"nodes\": [{\"id\": \"a\", \"kind\": \"delay\", \"config\": {\"ms\": 300}}, "
              "{\"id\": \"m\", \"kind\": \"delay\", \"deps\": [\"a\"], "
              "\"map\": \"{{inputs.items}}\", \"max_parallel\": 2, "
              "\"config\": {\"ms\": 100}}, "
              "{\"id\": \"z\", \"kind\": \"noop\", \"deps\": [\"m\"]}]}");
    char *id = rfd_submit(&w->a, "wide_slow", NULL);
    assert_non_null(id);
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s", id);
    assert_int_equal(rfd_ws_open(&w->b, path, &ws), 0);
    json_t *done = finished(&w->a, id);
    json_decref(done);
    json_t *log = event_log(&w->a, id);
    assert_true(json_array_size(log) > 10);
    follow_and_check(&ws, log, 0);
    /* The same socket: a finished execution, replayed after seq 4. */
    char sub[256];
    snprintf(sub, sizeof(sub), "{\"op\": \"subscribe\", \"execution_id\": \"%s\", \"after\": 4}",
             id);
    assert_int_equal(rfd_ws_send(&ws, sub), 0);
    follow_and_check(&ws, log, 4);
    /* An execution nobody has: not_found, after the wait. */
    assert_int_equal(
        rfd_ws_send(&ws, "{\"op\": \"subscribe\", \"execution_id\": \"01m96vjpda000g000004j7sx0z\"}"),
        0);
    char *m = rfd_ws_recv(&ws, 15000);
    assert_non_null(m);
    assert_non_null(strstr(m, "\"not_found\""));
    free(m);
    rfd_ws_close(&ws);
    json_decref(log);
    free(id);
}

/* Events lost from Redis (here: flushed) are published again by a restart's recovery. */
static void test_events_republished_after_restart(void **state)
{
    struct world *w = *state;
    const char *const flush[] = {"FLUSHALL", NULL};
    const char *const flags[] = {"--redis", w->redis.url, "--redis-timeout", "300ms", NULL};
    char out[64], path[PATH_BYTES];
    struct rfd_ws ws;

    char *id = rfd_submit(&w->a, "chain3", "{\"n\": 3}");
    assert_non_null(id);
    json_decref(finished(&w->a, id));
    json_t *log = event_log(&w->a, id);
    sleep_ms(200); /* published by now; then lost */
    assert_int_equal(rrs_cmd(&w->redis, out, sizeof(out), flush), 0);
    kill(w->a.pid, SIGTERM);
    assert_int_equal(rfd_wait_exit(&w->a, WAIT_MS), 0);
    assert_int_equal(rfd_restart(&w->a, RF_BUILD_DIR, flags, NULL), 0);
    wait_ready_status(&w->a, "ready", 10000);
    snprintf(path, sizeof(path), "/v1/ws?execution_id=%s", id);
    assert_int_equal(rfd_ws_open(&w->b, path, &ws), 0);
    follow_and_check(&ws, log, 0);
    rfd_ws_close(&ws);
    json_decref(log);
    free(id);
}

int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_across_instances),
        cmocka_unit_test(test_single_flight_across_instances),
        cmocka_unit_test(test_ws_follows_other_instance),
        cmocka_unit_test(test_events_republished_after_restart),
        cmocka_unit_test(test_redis_not_answering),
        cmocka_unit_test(test_redis_killed_under_load),
    };
    int failed = cmocka_run_group_tests_name("redis", tests, world_up, world_down);

    return failed || rfd_failures() ? 1 : 0;
}
