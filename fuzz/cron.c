/*
 * fuzz/cron.c: libFuzzer target for cron expressions (sched/cron.c).
 *
 * The input, from an exactly sized heap copy (ASan sees any over-read), is parsed. A
 * refusal must leave a NUL-terminated reason. An accepted expression is checked from
 * three starting times taken from the input: rf_cron_next is after the start, on a minute
 * boundary, a matching minute by gmtime_r's independent calendar, and no minute between the
 * start and it matches (the last 2,880 before it are checked); -1 only when no minute
 * matches in the next 400 days by the same reference. Every violated property aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c))                                                                                   \
            abort();                                                                                \
    } while (0)

static int ref_match(const struct rf_cron *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    int dm = c->mdays >> tm.tm_mday & 1, dw = c->wdays >> tm.tm_wday & 1;
    int day = c->mday_star || c->wday_star ? dm && dw : dm || dw;
    return (c->months >> (tm.tm_mon + 1) & 1) && day && (c->hours >> tm.tm_hour & 1) &&
           (c->minutes >> tm.tm_min & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1), why[RF_CRON_WHY_BYTES];
    struct rf_cron c;

    CHECK(copy != NULL);
    memcpy(copy, data, size);
    why[0] = 'x';
    if (rf_cron_parse(copy, size, &c, why, sizeof(why)) != 0) {
        CHECK(memchr(why, 0, sizeof(why)) != NULL);
        free(copy);
        return 0;
    }
    for (int k = 0; k < 3; k++) {
        uint32_t r = 0;
        for (size_t i = k; i < size; i += 3)
            r = r * 31 + data[i];
        int64_t after = 1700000000 + (int64_t)(r % (20u * 365 * 86400));
        int64_t next = rf_cron_next(&c, after);
        if (next < 0) {
            for (int64_t t = after / 60 * 60 + 60; t < after + 400LL * 86400; t += 60)
                CHECK(!ref_match(&c, t));
            continue;
        }
        CHECK(next > after && next % 60 == 0);
        CHECK(ref_match(&c, next));
        CHECK(rf_cron_match(&c, next));
        int64_t from = next - 2880 * 60 > after ? next - 2880 * 60 : after / 60 * 60 + 60;
        for (int64_t t = from; t < next; t += 60)
            CHECK(!ref_match(&c, t));
    }
    free(copy);
    return 0;
}
