/*
 * sched/cron.h: cron schedules, sans-I/O: a parser for five-field expressions and a
 * next-fire function, both pure (UTC, no clock read: the caller passes the time).
 *
 * The language is Vixie cron's, field by field:
 *
 *     minute  hour  day-of-month  month  day-of-week
 *     0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)
 *
 * A field is a comma-separated list of items; an item is `*`, a value, or a range `a-b`,
 * each optionally followed by `/step` (`*`/step steps over the whole range; `a/step` means
 * `a-<max>/step`). Months and days may be written as names (JAN..DEC, SUN..SAT, any case)
 * wherever a value goes. Shortcuts: @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight), @hourly. As in Vixie cron, when both day-of-month and day-of-week are
 * restricted (neither field starts with `*`) a day matches when either does; when one of
 * them starts with `*`, only the other counts.
 *
 * Refused, with a reason naming the field: anything else (six fields, @reboot, a value out
 * of range, a range that runs backwards, a step of 0 or past the field's size, empty
 * items, trailing garbage), and expressions longer than RF_CRON_TEXT_MAX bytes.
 */
#ifndef RF_SCHED_CRON_H
#define RF_SCHED_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RF_CRON_TEXT_MAX   256u /* bytes of an expression */
#define RF_CRON_WHY_BYTES  128u /* a reason, NUL included */
#define RF_CRON_YEARS_MAX  9u   /* rf_cron_next looks this far ahead (Feb 29 can be 8 away) */

struct rf_cron {
    uint64_t minutes; /* bit m: minute m matches (0..59) */
    uint32_t hours;   /* bit h (0..23) */
    uint32_t mdays;   /* bit d (1..31) */
    uint16_t months;  /* bit m (1..12) */
    uint8_t wdays;    /* bit d (0..6, Sunday 0) */
    bool mday_star;   /* the day-of-month field starts with '*' */
    bool wday_star;   /* the day-of-week field starts with '*' */
};

/* Parse text[0, len) (borrowed) into *out. 0, or -1 with a reason in why (why_cap bytes,
 * NUL-terminated, naming the field). */
int rf_cron_parse(const char *text, size_t len, struct rf_cron *out, char *why, size_t why_cap);

/* Whether the minute that starts at unix time t (seconds, UTC; rounded down to the minute)
 * matches. */
bool rf_cron_match(const struct rf_cron *c, int64_t t);

/* The first matching minute strictly after unix time `after` (seconds, UTC): its start,
 * a multiple of 60. -1 when none comes within RF_CRON_YEARS_MAX years (February 30th), or
 * for a time outside years 1970..9999. */
int64_t rf_cron_next(const struct rf_cron *c, int64_t after);

/* --- firing ------------------------------------------------------------------------------ */

#define RF_CRON_GRACE_S     60u  /* a slot this late still fires under `skip` */
#define RF_CRON_CATCH_UP_MAX 100u /* slots one catch-up fires at most (the newest) */

/* The slots of c to fire now, among those in (last, now], oldest first, into out (cap
 * entries): their count. `last` is the last slot fired (or when the trigger was defined).
 * A slot more than RF_CRON_GRACE_S old was missed (the process was down, or stalled):
 * `catch_up` fires the newest RF_CRON_CATCH_UP_MAX (and cap) of them, else only the slots
 * within the grace fire. *skipped says whether some slot of (last, now] will never fire.
 * Pure: the caller passes the time. */
uint32_t rf_cron_due(const struct rf_cron *c, int64_t last, int64_t now, bool catch_up,
                     int64_t *out, uint32_t cap, bool *skipped);

#endif /* RF_SCHED_CRON_H */
