/*
 * tests/sched/test_cron.c: cron expressions (sched/cron.c).
 *
 * The parser on the language's edges (lists, ranges, steps, names in any case, day 7,
 * shortcuts) and on what it must refuse, each refusal naming its field. rf_cron_next is
 * checked two ways: against hand-computed fire times across month, year and leap-year
 * ends, and against a reference that walks minute by minute with the C library's gmtime_r
 * (an independent calendar), from many starting points, for many expressions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "sched/cron.h"

static struct rf_cron parse_ok(const char *s)
{
    struct rf_cron c;
    char why[RF_CRON_WHY_BYTES];

    if (rf_cron_parse(s, strlen(s), &c, why, sizeof(why)) != 0)
        fail_msg("\"%s\" refused: %s", s, why);
    return c;
}

static void refused(const char *s, const char *reason_part)
{
    struct rf_cron c;
    char why[RF_CRON_WHY_BYTES] = "";

    if (rf_cron_parse(s, strlen(s), &c, why, sizeof(why)) == 0)
        fail_msg("\"%s\" was accepted", s);
    if (!strstr(why, reason_part))
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", s, why, reason_part);
}

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi};
    return (int64_t)timegm(&tm);
}

/* The reference: gmtime_r's calendar and Vixie's day rule, minute by minute. */
static bool ref_match(const struct rf_cron *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    bool dm = c->mdays >> tm.tm_mday & 1, dw = c->wdays >> tm.tm_wday & 1;
    bool day = c->mday_star || c->wday_star ? dm && dw : dm || dw;
    return (c->months >> (tm.tm_mon + 1) & 1) && day && (c->hours >> tm.tm_hour & 1) &&
           (c->minutes >> tm.tm_min & 1);
}

static int64_t ref_next(const struct rf_cron *c, int64_t after, int64_t horizon)
{
    for (int64_t t = after / 60 * 60 + 60; t <= after + horizon; t += 60)
        if (ref_match(c, t))
            return t;
    return -1;
}

static void test_parse(void **state)
{
    (void)state;
    struct rf_cron c = parse_ok("*/15 0-6/2 1,15,31 JAN-mar,Dec sun,7");
    assert_int_equal(c.minutes, 1ull << 0 | 1ull << 15 | 1ull << 30 | 1ull << 45);
    assert_int_equal(c.hours, 1u << 0 | 1u << 2 | 1u << 4 | 1u << 6);
    assert_int_equal(c.mdays, 1u << 1 | 1u << 15 | 1u << 31);
    assert_int_equal(c.months, 1u << 1 | 1u << 2 | 1u << 3 | 1u << 12);
    assert_int_equal(c.wdays, 1u << 0);
    assert_true(c.mday_star == false && c.wday_star == false);
    c = parse_ok("  5/20\t* * * *  ");
    assert_int_equal(c.minutes, 1ull << 5 | 1ull << 25 | 1ull << 45);
    assert_true(c.mday_star && c.wday_star);
    c = parse_ok("0 0 * * 1-7");
    assert_int_equal(c.wdays, 0x7f);
    c = parse_ok("0 0 * * */2"); /* starts with '*': the star rule */
    assert_true(c.wday_star);
    assert_int_equal(c.wdays, 1u << 0 | 1u << 2 | 1u << 4 | 1u << 6);
    c = parse_ok("*/60 * * * *");
    assert_int_equal(c.minutes, 1);
    struct rf_cron d = parse_ok("0 * * * *");
    c = parse_ok("@HOURLY");
    assert_memory_equal(&c, &d, sizeof(c));
    d = parse_ok("0 0 1 1 *");
    c = parse_ok("@annually");
    assert_memory_equal(&c, &d, sizeof(c));
    c = parse_ok("@yearly");
    assert_memory_equal(&c, &d, sizeof(c));
    d = parse_ok("0 0 * * 0");
    c = parse_ok("@weekly");
    assert_memory_equal(&c, &d, sizeof(c));
    c = parse_ok("@midnight");
    d = parse_ok("@daily");
    assert_memory_equal(&c, &d, sizeof(c));
}

static void test_refusals(void **state)
{
    (void)state;
    refused("", "0 field(s)");
    refused("* * * *", "4 field(s)");
    refused("* * * * * *", "more than five");
    refused("60 * * * *", "minute: 60 is out of range 0-59");
    refused("* 24 * * *", "hour: 24");
    refused("* * 0 * *", "day-of-month: 0");
    refused("* * 32 * *", "day-of-month: 32");
    refused("* * * 13 *", "month: 13");
    refused("* * * * 8", "day-of-week: 8");
    refused("5-1 * * * *", "runs backwards");
    refused("*/0 * * * *", "a step must be");
    refused("*/61 * * * *", "a step must be");
    refused("*/ * * * *", "a step must be");
    refused("1,,2 * * * *", "an empty item");
    refused(",1 * * * *", "an empty item");
    refused("1, * * * *", "an empty item");
    refused("1x * * * *", "unexpected");
    refused("* * * foo *", "month: expected a number or a name");
    refused("* * * janu *", "month: expected a number or a name at \"janu\"");
    refused("* jan * * *", "hour: expected a number");
    refused("0001 * * * *", "too long");
    refused("-1 * * * *", "minute: expected a number");
    refused("@reboot", "not a known shortcut");
    refused("@hourly x", "not a known shortcut");
    char big[RF_CRON_TEXT_MAX + 2];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    refused(big, "at most");
}

static void test_next_by_hand(void **state)
{
    (void)state;
    struct rf_cron c = parse_ok("30 23 31 12 *");
    assert_int_equal(rf_cron_next(&c, utc(2026, 12, 31, 23, 29)), utc(2026, 12, 31, 23, 30));
    assert_int_equal(rf_cron_next(&c, utc(2026, 12, 31, 23, 30)), utc(2027, 12, 31, 23, 30));
    c = parse_ok("0 0 29 2 *"); /* February 29th: 2028 */
    assert_int_equal(rf_cron_next(&c, utc(2026, 3, 1, 0, 0)), utc(2028, 2, 29, 0, 0));
    assert_int_equal(rf_cron_next(&c, utc(2096, 2, 29, 0, 0)), utc(2104, 2, 29, 0, 0));
    c = parse_ok("0 0 30 2 *"); /* never */
    assert_int_equal(rf_cron_next(&c, utc(2026, 1, 1, 0, 0)), -1);
    c = parse_ok("0 12 31 * *"); /* skips the 30-day months */
    assert_int_equal(rf_cron_next(&c, utc(2026, 3, 31, 12, 0)), utc(2026, 5, 31, 12, 0));
    c = parse_ok("0 9 13 * fri"); /* the 13th or any Friday */
    assert_int_equal(rf_cron_next(&c, utc(2026, 11, 1, 0, 0)), utc(2026, 11, 6, 9, 0));
    assert_int_equal(rf_cron_next(&c, utc(2026, 11, 6, 9, 0)), utc(2026, 11, 13, 9, 0));
    c = parse_ok("0 9 13 * *"); /* day-of-week '*': the 13th only */
    assert_int_equal(rf_cron_next(&c, utc(2026, 11, 1, 0, 0)), utc(2026, 11, 13, 9, 0));
    c = parse_ok("*/20 * * * *"); /* strictly after, rounded to the minute */
    assert_int_equal(rf_cron_next(&c, utc(2026, 1, 1, 0, 0) + 59), utc(2026, 1, 1, 0, 20));
    assert_int_equal(rf_cron_next(&c, utc(2026, 1, 1, 23, 59)), utc(2026, 1, 2, 0, 0));
    c = parse_ok("59 23 * * sat");
    assert_int_equal(rf_cron_next(&c, utc(2026, 12, 6, 0, 0)), utc(2026, 12, 12, 23, 59));
    assert_int_equal(rf_cron_next(&c, -5), -1);
}

static void test_next_against_reference(void **state)
{
    static const char *const exprs[] = {
        "* * * * *",          "*/7 * * * *",         "0 */5 * * *",       "15 3 * * 1-5",
        "0 0 1,15 * *",       "0 0 * * 0",           "30 4 1 */3 *",      "0 0 29 2 *",
        "5-10/2 22-23 * * *", "0 0 31 * *",          "0 12 13 * 5",       "1 2 3 4 *",
        "0 0 * feb,aug mon",  "*/15 9-17 * * mon-fri", "0 0 L * *",
    };
    uint64_t seed = 42;

    (void)state;
    for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++) {
        struct rf_cron c;
        char why[RF_CRON_WHY_BYTES];
        if (rf_cron_parse(exprs[e], strlen(exprs[e]), &c, why, sizeof(why)) != 0)
            continue; /* "L" is not ours: refused, nothing to compare */
        for (int k = 0; k < 40; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int64_t after = utc(2024, 1, 1, 0, 0) + (int64_t)(seed >> 33) % (4 * 366 * 86400);
            int64_t want = ref_next(&c, after, 370 * 86400);
            int64_t got = rf_cron_next(&c, after);
            if (want >= 0 && got != want)
                fail_msg("%s after %lld: got %lld, want %lld", exprs[e], (long long)after,
                         (long long)got, (long long)want);
            if (want < 0) /* beyond a year (February 29th): check what we found */
                assert_true(got < 0 || (got > after && ref_match(&c, got)));
        }
    }
}

static void test_due(void **state)
{
    struct rf_cron c = parse_ok("*/5 * * * *");
    int64_t out[256], t0 = utc(2026, 6, 1, 12, 0);
    bool skipped;

    (void)state;
    /* on time: the one slot just passed */
    assert_int_equal(rf_cron_due(&c, t0, t0 + 5 * 60 + 1, false, out, 256, &skipped), 1);
    assert_int_equal(out[0], t0 + 5 * 60);
    assert_false(skipped);
    /* nothing due yet */
    assert_int_equal(rf_cron_due(&c, t0, t0 + 299, false, out, 256, &skipped), 0);
    assert_false(skipped);
    /* down for 3 hours, skip: only a slot within the grace fires; the rest are skipped */
    int64_t now = t0 + 3 * 3600 + 30;
    assert_int_equal(rf_cron_due(&c, t0, now, false, out, 256, &skipped), 1);
    assert_int_equal(out[0], t0 + 3 * 3600);
    assert_true(skipped);
    now = t0 + 3 * 3600 + 90; /* past the grace of that slot too */
    assert_int_equal(rf_cron_due(&c, t0, now, false, out, 256, &skipped), 0);
    assert_true(skipped);
    /* catch_up: all 36 missed slots, oldest first */
    assert_int_equal(rf_cron_due(&c, t0, now, true, out, 256, &skipped), 36);
    assert_int_equal(out[0], t0 + 300);
    assert_int_equal(out[35], t0 + 3 * 3600);
    assert_false(skipped);
    /* catch_up after a week: bounded to the newest RF_CRON_CATCH_UP_MAX */
    now = t0 + 7 * 86400;
    assert_int_equal(rf_cron_due(&c, t0, now, true, out, 256, &skipped), RF_CRON_CATCH_UP_MAX);
    assert_int_equal(out[RF_CRON_CATCH_UP_MAX - 1], now);
    assert_int_equal(out[0], now - (RF_CRON_CATCH_UP_MAX - 1) * 300);
    assert_true(skipped);
    /* and by the caller's array */
    assert_int_equal(rf_cron_due(&c, t0, now, true, out, 3, &skipped), 3);
    assert_int_equal(out[2], now);
    /* a yearly schedule, catch-up over two years: two slots, found without walking minutes */
    struct rf_cron y = parse_ok("@yearly");
    assert_int_equal(rf_cron_due(&y, utc(2024, 6, 1, 0, 0), utc(2026, 6, 1, 0, 0), true, out,
                                 256, &skipped),
                     2);
    assert_int_equal(out[0], utc(2025, 1, 1, 0, 0));
    assert_int_equal(out[1], utc(2026, 1, 1, 0, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_next_by_hand),
        cmocka_unit_test(test_next_against_reference),
        cmocka_unit_test(test_due),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
