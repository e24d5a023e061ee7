/*
 * tests/daemon/test_kafka.c: the Kafka trigger, events and node kind (net/kafka.c) against
 * librdkafka's mock cluster (tests/tools/kmock.c, on loopback), with Debian's kcat as the
 * real client on the other side.
 *
 *   messages          valid messages become executions, once each, with their inputs;
 *   dead letters      bad JSON, an unknown graph and refused inputs go to the dead-letter
 *                     topic with the reason in x-ringflow-error, and the partition moves on;
 *   redelivery        SIGKILL right after messages became executions (their offsets may not
 *                     be committed yet), restart: every message still made exactly one;
 *   broker down       the broker goes down and comes back: messages after it are processed;
 *   rebalance         a second instance joins the group, messages spread over both, once
 *                     each; it leaves, the first takes its partitions and goes on;
 *   back-pressure     one execution in flight per shard, 2 messages per partition,
 *                     executions of 2.5 s: the messages wait (in the shard, in librdkafka's
 *                     queue), the stalled partition is paused and resumed, each runs once;
 *   events            events are produced with key = execution id;
 *   kafka node        a node produces a message and outputs its partition and offset.
 *
 * RF_TEST_CONCURRENT: the daemons' shards and librdkafka's threads (the TSan build skips it:
 * see main).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"
#include "tests/support/kmock.h"

#define WAIT_MS 30000

static struct kmock km;
static struct rfd a;
static const char *flags[10];

static const char *const KGRAPH =
    "{\"inputs\": {\"n\": {\"type\": \"integer\"}}, \"nodes\": [{\"id\": \"t\", \"kind\": "
    "\"transform\", \"config\": {\"output\": \"{{inputs.n}}\"}}], \"output\": "
    "\"{{nodes.t.output}}\"}";

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static void put_graphs(const struct rfd *d)
{
    struct rfd_resp r;

    assert_int_equal(rfd_request(d, "PUT", "/v1/graphs/kgraph", KGRAPH, &r), 0);
    assert_true(r.status == 201 || r.status == 200);
    rfd_resp_free(&r);
}

static int up(void **state)
{
    static const char *const topics[] = {"ringflow.executions:4", "ringflow.executions.dlq:1",
                                         "ringflow.events:1", "out.topic:1", "bp.topic:1",
                                         NULL};

    (void)state;
    if (kmock_start(&km, RF_BUILD_DIR, 1, topics) < 0)
        return -1;
    flags[0] = "--kafka-brokers";
    flags[1] = km.bootstrap;
    flags[2] = "--kafka-events-topic";
    flags[3] = "ringflow.events";
    flags[4] = "--log-level"; /* the partitions' moves, for a failure's report */
    flags[5] = "info";
    flags[6] = getenv("RF_KAFKA_DEBUG") ? "--kafka-debug" : NULL;
    flags[7] = "cgrp";
    flags[8] = NULL;
    if (rfd_start(&a, RF_BUILD_DIR, flags) < 0)
        return -1;
    put_graphs(&a);
    return 0;
}

static int down(void **state)
{
    (void)state;
    int rc = rfd_stop(&a) == 0 ? 0 : -1;
    kmock_stop(&km);
    return rc;
}

/* The outputs of every kgraph execution d holds, as a sorted list of n. */
static size_t outputs(const struct rfd *d, long *ns, size_t cap)
{
    struct rfd_resp r;
    size_t n = 0;

    assert_int_equal(rfd_request(d, "GET", "/v1/executions?graph=kgraph&limit=500", NULL, &r), 0);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    json_t *ex = json_object_get(j, "executions"), *e;
    size_t i;
    json_array_foreach(ex, i, e) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=5000",
                 json_string_value(json_object_get(e, "id")));
        assert_int_equal(rfd_request(d, "GET", path, NULL, &r), 0);
        json_t *res = rfd_json(&r);
        rfd_resp_free(&r);
        if (n < cap)
            ns[n++] = (long)json_integer_value(json_object_get(res, "output"));
        json_decref(res);
    }
    json_decref(j);
    return n;
}

static size_t listed(const struct rfd *d)
{
    struct rfd_resp r;

    assert_int_equal(rfd_request(d, "GET", "/v1/executions?graph=kgraph&limit=500", NULL, &r), 0);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    size_t n = json_array_size(json_object_get(j, "executions"));
    json_decref(j);
    return n;
}

/* Wait (bounded) until d lists `want` kgraph executions, then make sure no more come. */
static void expect_listed(const struct rfd *d, size_t want)
{
    size_t n = 0;

    for (int i = 0; i < WAIT_MS / 100 && (n = listed(d)) < want; i++)
        sleep_ms(100);
    if (n != want)
        fail_msg("%zu executions, want %zu", n, want);
    sleep_ms(700);
    assert_int_equal(listed(d), want);
}

static void produce_range(int from, int to, const char *key)
{
    char **lines = calloc((size_t)(to - from), sizeof(*lines));

    for (int i = from; i < to; i++)
        assert_true(asprintf(&lines[i - from], "%s\t{\"graph\": \"kgraph\", \"inputs\": {\"n\": %d}}",
                             key ? key : "", i) > 0);
    assert_int_equal(kmock_produce(&km, "ringflow.executions", (const char *const *)lines,
                                   (size_t)(to - from)),
                     0);
    for (int i = 0; i < to - from; i++)
        free(lines[i]);
    free(lines);
}

static int cmp_long(const void *x, const void *y)
{
    long a1 = *(const long *)x, b1 = *(const long *)y;
    return (a1 > b1) - (a1 < b1);
}

/* d's outputs are exactly from..to-1, each once. */
static void expect_outputs(const struct rfd *d, int from, int to)
{
    long ns[600];
    size_t n = outputs(d, ns, 600);

    qsort(ns, n, sizeof(*ns), cmp_long);
    assert_int_equal(n, (size_t)(to - from));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ns[i], from + (long)i);
}

static void test_messages(void **state)
{
    (void)state;
    produce_range(0, 20, NULL);
    expect_listed(&a, 20);
    expect_outputs(&a, 0, 20);
}

static void test_dead_letters(void **state)
{
    const char *const bad[] = {
        "p1\tnot json",
        "p1\t{\"graph\": \"nope\"}",
        "p1\t{\"graph\": \"kgraph\", \"inputs\": {\"n\": \"x\"}}",
        "p1\t{\"graph\": \"kgraph\", \"inputs\": {\"n\": 20}, \"color\": 1}",
        "p1\t{\"graph\": \"kgraph\", \"inputs\": {\"n\": 20}}", /* good, after the bad ones */
    };

    (void)state;
    assert_int_equal(kmock_produce(&km, "ringflow.executions", bad, 5), 0);
    expect_listed(&a, 21);
    char *dlq = NULL;
    for (int i = 0; i < 50; i++) {
        free(dlq);
        dlq = kmock_consume(&km, "ringflow.executions.dlq");
        if (dlq && strstr(dlq, "unknown field"))
            break;
        sleep_ms(200);
    }
    assert_non_null(dlq);
    assert_non_null(strstr(dlq, "x-ringflow-error=the message is not JSON,"));
    assert_non_null(strstr(dlq, "|p1|not json"));
    assert_non_null(strstr(dlq, "x-ringflow-error=graph nope does not exist"));
    assert_non_null(strstr(dlq, "x-ringflow-error=inputs:"));
    assert_non_null(strstr(dlq, "unknown field \"color\""));
    assert_non_null(strstr(dlq, "x-ringflow-source=ringflow.executions/"));
    free(dlq);
}

/* A value from /metrics (the first line starting with `name`), or -1. */
static double metric(const struct rfd *d, const char *name)
{
    struct rfd_resp r;
    double v = -1;

    assert_int_equal(rfd_request(d, "GET", "/metrics", NULL, &r), 0);
    const char *p = strstr(r.body, name);
    while (p && p != r.body && p[-1] != '\n')
        p = strstr(p + 1, name);
    if (p)
        v = strtod(strchr(p, ' ') + 1, NULL);
    rfd_resp_free(&r);
    return v;
}

static void test_redelivery_after_crash(void **state)
{
    (void)state;
    produce_range(100, 130, "crash");
    /* Kill as soon as they are executions: commits go every 100 ms, so some are not. */
    for (int i = 0; i < WAIT_MS / 20 && listed(&a) < 51; i++)
        sleep_ms(20);
    rfd_kill(&a);
    assert_int_equal(rfd_restart(&a, RF_BUILD_DIR, flags, NULL), 0);
    /* Once the group gave the partitions back (the dead member's session ends), what was
     * not committed is read again, and found. */
    for (int i = 0; i < WAIT_MS / 100 && metric(&a, "ringflow_kafka_partitions") < 4; i++)
        sleep_ms(100);
    assert_true(metric(&a, "ringflow_kafka_partitions") == 4);
    expect_listed(&a, 51);
    print_message("redelivered after the crash: %.0f message(s), found again\n",
                  metric(&a, "ringflow_kafka_messages_total{outcome=\"duplicate\"}"));
    long ns[600];
    size_t n = outputs(&a, ns, 600);
    qsort(ns, n, sizeof(*ns), cmp_long);
    for (size_t i = 1; i < n; i++)
        assert_true(ns[i] != ns[i - 1]); /* no message made two */
}

static void test_broker_down_and_back(void **state)
{
    (void)state;
    assert_int_equal(kmock_broker(&km, 1, 0), 0);
    sleep_ms(1500);
    assert_int_equal(kmock_broker(&km, 1, 1), 0);
    produce_range(200, 210, NULL);
    expect_listed(&a, 61);
    /* Their offsets are committed (failed commits are sent again) before the next test:
     * the mock cluster refuses commits while the group rebalances. */
    double lag = -1;
    for (int i = 0; i < WAIT_MS / 100 && (lag = metric(&a, "ringflow_kafka_uncommitted_offsets"));
         i++)
        sleep_ms(100);
    assert_true(lag == 0);
}

static void test_rebalance(void **state)
{
    struct rfd b;

    (void)state;
    assert_int_equal(rfd_start(&b, RF_BUILD_DIR, flags), 0);
    put_graphs(&b);
    sleep_ms(4000); /* the group rebalances over both */
    produce_range(300, 340, NULL); /* 40 keys-less messages: spread over 4 partitions */
    size_t na = 0, nb = 0;
    for (int i = 0; i < WAIT_MS / 100; i++) {
        na = listed(&a);
        nb = listed(&b);
        if (na + nb >= 61 + 40)
            break;
        sleep_ms(100);
    }
    sleep_ms(700);
    na = listed(&a);
    nb = listed(&b);
    print_message("rebalance: %zu new on the first instance, %zu on the second\n", na - 61, nb);
    if (na + nb != 61 + 40 || getenv("RF_KAFKA_DEBUG")) {
        long ns[600];
        size_t k = outputs(&a, ns, 600);
        qsort(ns, k, sizeof(*ns), cmp_long);
        for (size_t i = 0; i < k; i++)
            print_message("a: %ld\n", ns[i]);
        char *log = rfd_log(&a);
        FILE *f = fopen("/tmp/rf-kafka-a.log", "w");
        if (f && log)
            fputs(log, f);
        if (f)
            fclose(f);
        free(log);
    }
    if (na + nb != 61 + 40 || getenv("RF_KAFKA_DEBUG")) {
        long ns[600];
        size_t k = outputs(&b, ns, 600);
        qsort(ns, k, sizeof(*ns), cmp_long);
        for (size_t i = 0; i < k; i++)
            print_message("b: %ld\n", ns[i]);
        char *log = rfd_log(&b);
        print_message("%s\n", log);
        free(log);
    }
    assert_int_equal(na + nb, 61 + 40);
    assert_int_equal(rfd_stop(&b), 0);
    produce_range(400, 420, NULL);
    expect_listed(&a, na + 20);
}

static void test_back_pressure(void **state)
{
    static const char *const bflags[] = {
        NULL, NULL, "--kafka-topic", "bp.topic", "--kafka-group", "bp",
        "--inflight-per-shard", "1", "--kafka-partition-inflight", "2", NULL};
    const char *f[sizeof(bflags) / sizeof(bflags[0])];
    struct rfd b;
    struct rfd_resp r;
    enum { N = 3 };

    (void)state;
    memcpy(f, bflags, sizeof(f));
    f[0] = "--kafka-brokers";
    f[1] = km.bootstrap;
    assert_int_equal(rfd_start(&b, RF_BUILD_DIR, f), 0);
    /* 3 executions of 2.5 s, one at a time: the partition's 2 slots stay full past 2 s */
    assert_int_equal(
        rfd_request(&b, "PUT", "/v1/graphs/kgraph",
                    "{\"inputs\": {\"n\": {\"type\": \"integer\"}}, \"nodes\": ["
                    "{\"id\": \"d\", \"kind\": \"delay\", \"config\": {\"ms\": 2500}},"
                    "{\"id\": \"t\", \"kind\": \"transform\", \"deps\": [\"d\"], "
                    "\"config\": {\"output\": \"{{inputs.n}}\"}}], "
                    "\"output\": \"{{nodes.t.output}}\"}",
                    &r),
        0);
    assert_int_equal(r.status, 201);
    rfd_resp_free(&r);
    char **lines = calloc(N, sizeof(*lines));
    for (int i = 0; i < N; i++)
        assert_true(asprintf(&lines[i], "\t{\"graph\": \"kgraph\", \"inputs\": {\"n\": %d}}",
                             i) > 0);
    assert_int_equal(kmock_produce(&km, "bp.topic", (const char *const *)lines, N), 0);
    for (int i = 0; i < N; i++)
        free(lines[i]);
    free(lines);
    double paused = 0;
    for (int i = 0; i < WAIT_MS / 100 && (paused = metric(&b, "ringflow_kafka_pauses_total")) < 1;
         i++)
        sleep_ms(100);
    assert_true(paused >= 1); /* a full ring, nothing done for 2 s: paused */
    for (int i = 0; i < WAIT_MS / 100 && listed(&b) < N; i++)
        sleep_ms(100);
    expect_outputs(&b, 0, N); /* resumed: every message, once */
    assert_int_equal(metric(&b, "ringflow_kafka_messages_total{outcome=\"duplicate\"}"), 0);
    assert_int_equal(rfd_stop(&b), 0);
}

static void test_events_and_node(void **state)
{
    struct rfd_resp r;

    (void)state;
    assert_int_equal(
        rfd_request(&a, "PUT", "/v1/graphs/kout",
                    "{\"nodes\": [{\"id\": \"p\", \"kind\": \"kafka\", \"config\": {\"topic\": "
                    "\"out.topic\", \"key\": \"k1\", \"value\": {\"hello\": \"{{inputs.who}}\"}, "
                    "\"headers\": {\"h\": \"v\"}}}], \"inputs\": {\"who\": {\"type\": \"string\"}}}",
                    &r),
        0);
    assert_int_equal(r.status, 201);
    rfd_resp_free(&r);
    char *id = rfd_submit(&a, "kout", "{\"who\": \"kafka\"}");
    assert_non_null(id);
    char path[128];
    snprintf(path, sizeof(path), "/v1/executions/%s/result?wait_ms=10000", id);
    assert_int_equal(rfd_request(&a, "GET", path, NULL, &r), 0);
    json_t *res = rfd_json(&r);
    rfd_resp_free(&r);
    assert_string_equal(json_string_value(json_object_get(res, "status")), "succeeded");
    json_t *out = json_object_get(json_object_get(res, "output"), "p");
    assert_true(json_is_integer(json_object_get(out, "offset")));
    json_decref(res);
    char *msgs = kmock_consume(&km, "out.topic");
    assert_non_null(msgs);
    assert_non_null(strstr(msgs, "h=v|k1|{\"hello\":\"kafka\"}"));
    free(msgs);
    /* its events, keyed by its id */
    char *evs = NULL, want[96];
    snprintf(want, sizeof(want), "|%s|{\"execution_id\":\"%s\",\"seq\":1,", id, id);
    for (int i = 0; i < 50; i++) {
        free(evs);
        evs = kmock_consume(&km, "ringflow.events");
        if (evs && strstr(evs, want))
            break;
        sleep_ms(200);
    }
    assert_non_null(evs);
    assert_non_null(strstr(evs, want));
    free(evs);
    free(id);
}

int main(void)
{
#if defined(__SANITIZE_THREAD__)
    /* librdkafka's threads crash the TSan runtime as they start (a SEGV inside libtsan,
     * also in a bare librdkafka producer built with -fsanitize=thread: tests/tools/kmock),
     * so a TSan ringflowd with --kafka-brokers cannot run. Release and ASan run this. */
    fprintf(stderr, "test_kafka: skipped under TSan (librdkafka cannot start its threads)\n");
    return 77;
#endif
    rfd_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_redelivery_after_crash),
        cmocka_unit_test(test_broker_down_and_back),
        cmocka_unit_test(test_rebalance),
        cmocka_unit_test(test_back_pressure),
        cmocka_unit_test(test_events_and_node),
    };
    int failed = cmocka_run_group_tests_name("kafka", tests, up, down);

    return failed || rfd_failures() ? 1 : 0;
}
