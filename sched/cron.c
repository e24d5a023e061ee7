/*
 * sched/cron.c: cron expressions (sched/cron.h has the language).
 *
 * Parsing is a cursor over the text: split into five fields at runs of blanks, each field
 * into items at commas, each item into `*` or a value or a range, then an optional step;
 * every matched value sets a bit in the field's mask. Nothing is allocated.
 *
 * The next fire is found on the calendar, not by trying every minute: days are counted
 * from 1970-01-01 and turned into (year, month, day) with Howard Hinnant's civil-date
 * algorithms, so a month that does not match is skipped whole, then a day, then an hour,
 * and the minute comes from the mask's next set bit. At most a few thousand steps for the
 * sparsest schedule over RF_CRON_YEARS_MAX years; no libc time function, no time zone.
 */
#include "sched/cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DAY_S 86400

struct field {
    const char *name;
    unsigned min, max;
    const char *const *names; /* names for min.., or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
};

struct cur {
    const char *p, *end;
    char *why;
    size_t cap;
};

static int fail(struct cur *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct cur *c, const char *fmt, ...)
{
    va_list ap;

    if (c->cap) {
        va_start(ap, fmt);
        vsnprintf(c->why, c->cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A value at the cursor: digits, or a name of the field. */
static int value(struct cur *c, const struct field *f, unsigned *out)
{
    if (c->p < c->end && isdigit((unsigned char)*c->p)) {
        unsigned v = 0;
        int n = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p) && n < 3) {
            v = v * 10 + (unsigned)(*c->p++ - '0');
            n++;
        }
        if (c->p < c->end && isdigit((unsigned char)*c->p))
            return fail(c, "%s: a number is too long", f->name);
        if (v < f->min || v > f->max)
            return fail(c, "%s: %u is out of range %u-%u", f->name, v, f->min, f->max);
        *out = v;
        return 0;
    }
    if (f->names && c->end - c->p >= 3) {
        for (unsigned i = 0; f->names[i]; i++)
            if (strncasecmp(c->p, f->names[i], 3) == 0 &&
                (c->end - c->p == 3 || !isalpha((unsigned char)c->p[3]))) {
                c->p += 3;
                *out = f->min + i;
                return 0;
            }
    }
    return fail(c, "%s: expected a number%s at \"%.*s\"", f->name,
                f->names ? " or a name" : "", (int)(c->end - c->p > 12 ? 12 : c->end - c->p),
                c->p);
}

/* One item: `*`, a value or a range, and an optional step; its bits into *mask. */
static int item(struct cur *c, const struct field *f, uint64_t *mask)
{
    unsigned lo, hi, step = 1;

    if (c->p < c->end && *c->p == '*') {
        c->p++;
        lo = f->min;
        hi = f->max == 7 ? 6 : f->max; /* day-of-week: 7 is Sunday again */
    } else {
        if (value(c, f, &lo) < 0)
            return -1;
        hi = lo;
        if (c->p < c->end && *c->p == '-') {
            c->p++;
            if (value(c, f, &hi) < 0)
                return -1;
            if (hi < lo)
                return fail(c, "%s: the range %u-%u runs backwards", f->name, lo, hi);
        } else if (c->p < c->end && *c->p == '/') {
            hi = f->max; /* a/step: from a to the end */
        }
    }
    if (c->p < c->end && *c->p == '/') {
        c->p++;
        step = 0;
        int n = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p) && n < 3) {
            step = step * 10 + (unsigned)(*c->p++ - '0');
            n++;
        }
        if (n == 0 || step == 0 || step > f->max - f->min + 1)
            return fail(c, "%s: a step must be 1 to %u", f->name, f->max - f->min + 1);
    }
    for (unsigned v = lo; v <= hi; v += step)
        *mask |= 1ull << (f == &fields[4] && v == 7 ? 0 : v);
    return 0;
}

/* One field (its text is the cursor's range): items separated by commas. */
static int field(struct cur *c, const struct field *f, uint64_t *mask, bool *star)
{
    *mask = 0;
    *star = c->p < c->end && *c->p == '*';
    for (;;) {
        if (c->p == c->end || *c->p == ',')
            return fail(c, "%s: an empty item", f->name);
        if (item(c, f, mask) < 0)
            return -1;
        if (c->p == c->end)
            return 0;
        if (*c->p != ',')
            return fail(c, "%s: unexpected \"%c\"", f->name, *c->p);
        c->p++;
    }
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int shortcut(const char *s, size_t n, struct cur *c, struct rf_cron *out)
{
    static const struct {
        const char *name, *expr;
    } sc[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
              {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
              {"@hourly", "0 * * * *"}};

    for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++)
        if (strlen(sc[i].name) == n && strncasecmp(s, sc[i].name, n) == 0)
            return rf_cron_parse(sc[i].expr, strlen(sc[i].expr), out, c->why, c->cap);
    return fail(c, "\"%.*s\" is not a known shortcut (@yearly, @monthly, @weekly, @daily, "
                   "@hourly)",
                (int)(n > 16 ? 16 : n), s);
}

int rf_cron_parse(const char *text, size_t len, struct rf_cron *out, char *why, size_t why_cap)
{
    struct cur c = {.p = text, .end = text + len, .why = why, .cap = why_cap};
    uint64_t masks[5];
    bool stars[5];
    int nf = 0;

    memset(out, 0, sizeof(*out));
    if (len > RF_CRON_TEXT_MAX)
        return fail(&c, "an expression has at most %u bytes", RF_CRON_TEXT_MAX);
    while (c.p < c.end && blank(*c.p))
        c.p++;
    while (c.end > c.p && blank(c.end[-1]))
        c.end--;
    if (c.p < c.end && *c.p == '@')
        return shortcut(c.p, (size_t)(c.end - c.p), &c, out);
    const char *end = c.end;
    while (c.p < end) {
        if (nf == 5)
            return fail(&c, "more than five fields (minute hour day-of-month month "
                            "day-of-week)");
        const char *s = c.p;
        while (c.p < end && !blank(*c.p))
            c.p++;
        struct cur fc = {.p = s, .end = c.p, .why = why, .cap = why_cap};
        if (field(&fc, &fields[nf], &masks[nf], &stars[nf]) < 0)
            return -1;
        nf++;
        while (c.p < end && blank(*c.p))
            c.p++;
    }
    if (nf != 5)
        return fail(&c, "%d field(s) where five are needed (minute hour day-of-month month "
                        "day-of-week)",
                    nf);
    out->minutes = masks[0];
    out->hours = (uint32_t)masks[1];
    out->mdays = (uint32_t)masks[2];
    out->months = (uint16_t)masks[3];
    out->wdays = (uint8_t)masks[4];
    out->mday_star = stars[2];
    out->wday_star = stars[4];
    return 0;
}

/* --- the calendar ------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool day_match(const struct rf_cron *c, unsigned mday, unsigned wday)
{
    bool dm = c->mdays >> mday & 1, dw = c->wdays >> wday & 1;

    if (c->mday_star || c->wday_star)
        return dm && dw; /* a '*' field matches every day: the other decides */
    return dm || dw;
}

bool rf_cron_match(const struct rf_cron *c, int64_t t)
{
    int64_t days = (t >= 0 ? t : t - (DAY_S - 1)) / DAY_S, y;
    int64_t secs = t - days * DAY_S;
    unsigned m, d, wday = (unsigned)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */

    civil_from_days(days, &y, &m, &d);
    return (c->months >> m & 1) && day_match(c, d, wday) && (c->hours >> (secs / 3600) & 1) &&
           (c->minutes >> (secs % 3600 / 60) & 1);
}

/* The lowest set bit of mask at or above `from`, or -1. */
static int bit_from(uint64_t mask, unsigned from)
{
    if (from >= 64)
        return -1;
    mask >>= from;
    return mask ? (int)from + __builtin_ctzll(mask) : -1;
}

#define T_MAX 253402300799ll /* 9999-12-31 23:59:59 */

int64_t rf_cron_next(const struct rf_cron *c, int64_t after)
{
    if (after < 0 || after >= T_MAX)
        return -1;
    int64_t t = after / 60 * 60 + 60;
    int64_t days = t / DAY_S, limit = days + 366 * RF_CRON_YEARS_MAX, y;
    unsigned h = (unsigned)(t % DAY_S / 3600), mi = (unsigned)(t % 3600 / 60), m, d;

    while (days <= limit) {
        civil_from_days(days, &y, &m, &d);
        if (!(c->months >> m & 1)) { /* to the first of the next month */
            days = m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1);
            h = mi = 0;
            continue;
        }
        if (!day_match(c, d, (unsigned)((days + 4) % 7))) {
            days++;
            h = mi = 0;
            continue;
        }
        int hh = bit_from(c->hours, h);
        if (hh < 0) {
            days++;
            h = mi = 0;
            continue;
        }
        if ((unsigned)hh != h)
            mi = 0;
        h = (unsigned)hh;
        int mm = bit_from(c->minutes, mi);
        if (mm < 0) { /* past this hour's last: the next hour */
            mi = 0;
            if (++h == 24) {
                days++;
                h = 0;
            }
            continue;
        }
        int64_t r = days * DAY_S + (int64_t)h * 3600 + (int64_t)mm * 60;
        return r <= T_MAX ? r : -1;
    }
    return -1;
}

/* The slots in (from, now], the newest `keep` of them, oldest first, into out. */
static uint32_t collect(const struct rf_cron *c, int64_t from, int64_t now, int64_t *out,
                        uint32_t keep)
{
    uint32_t n = 0;

    for (int64_t t = rf_cron_next(c, from); t >= 0 && t <= now; t = rf_cron_next(c, t)) {
        if (n == keep) { /* drop the oldest */
            memmove(out, out + 1, (keep - 1) * sizeof(*out));
            n--;
        }
        out[n++] = t;
    }
    return n;
}

uint32_t rf_cron_due(const struct rf_cron *c, int64_t last, int64_t now, bool catch_up,
                     int64_t *out, uint32_t cap, bool *skipped)
{
    uint32_t keep = cap < RF_CRON_CATCH_UP_MAX ? cap : RF_CRON_CATCH_UP_MAX, n = 0;
    int64_t first = rf_cron_next(c, last), from;

    *skipped = false;
    if (!cap || first < 0 || first > now)
        return 0;
    if (!catch_up) {
        /* Only slots at most RF_CRON_GRACE_S old fire. */
        from = now - (int64_t)RF_CRON_GRACE_S - 1 > last ? now - (int64_t)RF_CRON_GRACE_S - 1
                                                          : last;
        n = collect(c, from, now, out, keep);
    } else {
        /* The newest `keep` slots: look back over a window that grows until it holds
         * them, or reaches `last`; never a walk over every slot of a long absence. */
        for (int64_t w = 3600;; w *= 8) {
            from = now - w > last ? now - w : last;
            n = collect(c, from, now, out, keep);
            if (n == keep || from == last)
                break;
        }
    }
    *skipped = n == 0 || out[0] > first;
    return n;
}
