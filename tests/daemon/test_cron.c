/*
 * tests/daemon/test_cron.c: cron triggers against a real ringflowd (net/triggers.c).
 *
 * The daemon reads the scheduler's time from a file (--cron-clock-file), so the test moves
 * time instead of waiting for it. Checked: definitions and their validation (a bad
 * schedule named at /schedule, an unknown graph); a slot fires once when its time comes and
 * not again on later ticks; a graceful restart does not fire it again and remembers the
 * last slot; a SIGKILL right after a slot came due leaves exactly one execution for it;
 * `skip` fires only the slot at hand after a long gap; `catch_up` fires every missed slot
 * (oldest first) after the daemon was down.
 *
 * RF_TEST_CONCURRENT: the daemon's shards are threads.
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/support/daemon.h"

#define T0      1800000000ll /* 2027-01-15 08:00:00 UTC, a multiple of 3600 */
#define WAIT_MS 20000

static struct rfd d;
static char clock_path[64];
static const char *flags[4];

static void set_clock(int64_t t)
{
    char tmp[80];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", clock_path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, "%lld\n", (long long)t);
    fclose(f);
    assert_int_equal(rename(tmp, clock_path), 0); /* the daemon never reads half a file */
}

static int up(void **state)
{
    (void)state;
    snprintf(clock_path, sizeof(clock_path), "/tmp/rfd-clock-%d", (int)getpid());
    set_clock(T0);
    flags[0] = "--cron-clock-file";
    flags[1] = clock_path;
    flags[2] = NULL;
    return rfd_start(&d, RF_BUILD_DIR, flags);
}

static int down(void **state)
{
    (void)state;
    unlink(clock_path);
    return rfd_stop(&d) == 0 ? 0 : -1;
}

static int put(const char *name, const char *doc, json_t **out)
{
    char path[128];
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/triggers/%s", name);
    assert_int_equal(rfd_request(&d, "PUT", path, doc, &r), 0);
    int st = r.status;
    if (out)
        *out = rfd_json(&r);
    rfd_resp_free(&r);
    return st;
}

/* Executions tagged cron:<name>, newest first. */
static json_t *fired(const char *name)
{
    char path[160];
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/executions?tag=cron:%s&limit=500", name);
    assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    json_t *v = json_incref(json_object_get(j, "executions"));
    json_decref(j);
    return v;
}

static size_t count(const char *name)
{
    json_t *v = fired(name);
    size_t n = json_array_size(v);

    json_decref(v);
    return n;
}

/* Wait (bounded) until `name` fired `want` times; then stay there for a while. */
static void expect_count(const char *name, size_t want)
{
    struct timespec ts = {0, 50 * 1000000};
    size_t n = 0;

    for (int i = 0; i < WAIT_MS / 50 && (n = count(name)) < want; i++)
        nanosleep(&ts, NULL);
    if (n != want)
        fail_msg("%s fired %zu time(s), want %zu", name, n, want);
    for (int i = 0; i < 16; i++) /* four ticks: nothing more */
        nanosleep(&ts, NULL);
    assert_int_equal(count(name), want);
}

static json_t *get(const char *name)
{
    char path[128];
    struct rfd_resp r;

    snprintf(path, sizeof(path), "/v1/triggers/%s", name);
    assert_int_equal(rfd_request(&d, "GET", path, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = rfd_json(&r);
    rfd_resp_free(&r);
    return j;
}

static void restart(bool crash)
{
    if (crash) {
        rfd_kill(&d);
    } else {
        kill(d.pid, SIGTERM);
        assert_int_equal(rfd_wait_exit(&d, WAIT_MS), 0);
    }
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, flags, NULL), 0);
}

static void test_definitions(void **state)
{
    json_t *j;

    (void)state;
    assert_int_equal(put("bad", "{\"graph\": \"chain3\", \"schedule\": \"*/5 * * *\"}", &j), 422);
    char *text = json_dumps(j, 0);
    assert_non_null(strstr(text, "/schedule"));
    assert_non_null(strstr(text, "4 field(s)"));
    free(text);
    json_decref(j);
    assert_int_equal(put("bad", "{\"graph\": \"nope\", \"schedule\": \"@hourly\"}", &j), 422);
    json_decref(j);
    assert_int_equal(put("bad", "{\"graph\": \"chain3\", \"schedule\": \"@hourly\", "
                                "\"misfire\": \"later\"}",
                         NULL),
                     422);
    assert_int_equal(put("every5", "{\"graph\": \"chain3\", \"schedule\": \"*/5 * * * *\", "
                                   "\"inputs\": {\"n\": 5}}",
                         &j),
                     201);
    assert_string_equal(json_string_value(json_object_get(j, "next_fire_at")),
                        "2027-01-15T08:05:00.000000Z");
    assert_string_equal(json_string_value(json_object_get(j, "misfire")), "skip");
    json_decref(j);
}

static void test_fires_once(void **state)
{
    (void)state;
    set_clock(T0 + 299);
    expect_count("every5", 0);
    set_clock(T0 + 301);
    expect_count("every5", 1);
    set_clock(T0 + 350); /* later ticks in the same slot: nothing new */
    expect_count("every5", 1);
    json_t *j = get("every5");
    assert_string_equal(json_string_value(json_object_get(j, "last_fired_slot")),
                        "2027-01-15T08:05:00.000000Z");
    json_decref(j);
}

static void test_restart_does_not_refire(void **state)
{
    (void)state;
    restart(false);
    expect_count("every5", 1);
    json_t *j = get("every5");
    assert_string_equal(json_string_value(json_object_get(j, "last_fired_slot")),
                        "2027-01-15T08:05:00.000000Z");
    json_decref(j);
    /* the next slot, then a crash right after it came due: exactly one for it */
    set_clock(T0 + 601);
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL);
    restart(true);
    expect_count("every5", 2);
}

static void test_skip_after_a_gap(void **state)
{
    (void)state;
    set_clock(T0 + 3 * 3600 + 20); /* 34 slots missed: only 11:00 (20 s ago) fires */
    expect_count("every5", 3);
    set_clock(T0 + 4 * 3600 + 120); /* 12:00 is two minutes late: skipped */
    expect_count("every5", 3);
    set_clock(T0 + 4 * 3600 + 301); /* 12:05 fires on time */
    expect_count("every5", 4);
}

static void test_catch_up_after_downtime(void **state)
{
    int64_t t1 = T0 + 5 * 3600; /* 13:00 */

    (void)state;
    set_clock(t1);
    assert_int_equal(put("catchup", "{\"graph\": \"chain3\", \"schedule\": \"*/10 * * * *\", "
                                    "\"misfire\": \"catch_up\"}",
                         NULL),
                     201);
    kill(d.pid, SIGTERM);
    assert_int_equal(rfd_wait_exit(&d, WAIT_MS), 0);
    set_clock(t1 + 3600 + 5); /* down for an hour: 13:10 .. 14:00, six slots */
    assert_int_equal(rfd_restart(&d, RF_BUILD_DIR, flags, NULL), 0);
    expect_count("catchup", 6);
    json_t *v = fired("catchup");
    /* newest first in the listing: 14:00 last created */
    json_decref(v);
    json_t *j = get("catchup");
    assert_string_equal(json_string_value(json_object_get(j, "last_fired_slot")),
                        "2027-01-15T14:00:00.000000Z");
    json_decref(j);
}

static void test_delete(void **state)
{
    struct rfd_resp r;

    (void)state;
    assert_int_equal(rfd_request(&d, "DELETE", "/v1/triggers/catchup", NULL, &r), 0);
    assert_int_equal(r.status, 204);
    rfd_resp_free(&r);
    set_clock(T0 + 7 * 3600 + 1);
    expect_count("catchup", 6);
    assert_int_equal(rfd_request(&d, "GET", "/v1/triggers", NULL, &r), 0);
    assert_non_null(strstr(r.body, "every5"));
    assert_null(strstr(r.body, "catchup"));
    rfd_resp_free(&r);
}

int main(void)
{
    rfd_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions),
        cmocka_unit_test(test_fires_once),
        cmocka_unit_test(test_restart_does_not_refire),
        cmocka_unit_test(test_skip_after_a_gap),
        cmocka_unit_test(test_catch_up_after_downtime),
        cmocka_unit_test(test_delete),
    };
    int failed = cmocka_run_group_tests_name("cron", tests, up, down);

    return failed || rfd_failures() ? 1 : 0;
}
