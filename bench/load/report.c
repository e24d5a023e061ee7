/*
 * bench/load/report.c: merging per-thread statistics and printing the result of a run.
 *
 * Two forms of the same numbers. The text report is for people: one line per topic,
 * latencies with a unit chosen for their size. The --json form is one object on one line
 * of stdout for scripts (bench/compare.sh reads it with jq): latencies in microseconds
 * with three decimals (the histogram resolves nanoseconds), counts as integers, rates as
 * numbers. Field names and meanings are listed in bench/README-load.md; both forms come
 * from the same merged struct rfl_stats, so they cannot disagree.
 *
 * Rates divide by the measured window (--duration, shorter if interrupted): "rps" counts
 * responses (in --ws mode, awaited events) completed inside the window; "requests" also
 * counts those that completed during the drain after it. Error counters cover the whole
 * run, warmup included, because a failure during warmup is still worth seeing.
 */
#include "bench/load/load.h"

#include <errno.h>
#include <string.h>

#include <jansson.h>

void rfl_stats_merge(struct rfl_stats *dst, const struct rfl_stats *src)
{
    dst->completed += src->completed;
    dst->completed_window += src->completed_window;
    dst->sent += src->sent;
    for (uint32_t i = 0; i < RFL_STATUS_SLOTS; i++)
        dst->status[i] += src->status[i];
    dst->err_connect += src->err_connect;
    dst->err_reset += src->err_reset;
    dst->err_lost += src->err_lost;
    dst->err_timeout += src->err_timeout;
    dst->err_parse += src->err_parse;
    dst->err_write += src->err_write;
    dst->err_ws += src->err_ws;
    dst->reconnects += src->reconnects;
    dst->late += src->late;
    dst->unsent += src->unsent;
    dst->events += src->events;
    dst->ws_other_end += src->ws_other_end;
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    rfl_hist_merge(&dst->lat, &src->lat);
    rfl_hist_merge(&dst->post_lat, &src->post_lat);
}

static const double pcts[] = {50.0, 90.0, 99.0, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99.9"};

static const char *fmt_ns(char *buf, size_t cap, double ns)
{
    if (ns < 1e6)
        snprintf(buf, cap, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.2fms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2fs", ns / 1e9);
    return buf;
}

static void text_latency(FILE *f, const char *label, const struct rfl_hist *h)
{
    char b[32];
    fprintf(f, "%-11s", label);
    if (h->count == 0) {
        fprintf(f, "no samples\n");
        return;
    }
    fprintf(f, "mean %s", fmt_ns(b, sizeof(b), rfl_hist_mean(h)));
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        fprintf(f, "  %s %s", pct_names[i],
                fmt_ns(b, sizeof(b), (double)rfl_hist_percentile(h, pcts[i])));
    fprintf(f, "  max %s\n", fmt_ns(b, sizeof(b), (double)h->max_ns));
}

static void text_status(FILE *f, const struct rfl_stats *s)
{
    fprintf(f, "%-11s", "status");
    bool any = false;
    for (uint32_t i = 0; i < RFL_STATUS_SLOTS; i++) {
        if (!s->status[i])
            continue;
        if (i == RFL_STATUS_SLOTS - 1)
            fprintf(f, "%sother: %llu", any ? "  " : "", (unsigned long long)s->status[i]);
        else
            fprintf(f, "%s%u: %llu", any ? "  " : "", i, (unsigned long long)s->status[i]);
        any = true;
    }
    fprintf(f, "%s\n", any ? "" : "none");
}

void rfl_report_text(FILE *f, const char *url, const struct rfl_opts *o, const struct rfl_stats *s,
                     uint64_t window_ns)
{
    double secs = (double)window_ns / 1e9;
    double per_s = secs > 0 ? 1.0 / secs : 0;
    fprintf(f, "ringflow-load %s\n", url);
    fprintf(f, "%-11s%s, %u %s x depth %u, %u thread%s", "setup",
            o->rate > 0 ? "open loop" : "closed loop", o->conns,
            o->ws ? "subscribers" : "connections", o->depth, o->threads,
            o->threads == 1 ? "" : "s");
    if (o->rate > 0)
        fprintf(f, ", %.0f req/s intended", o->rate);
    fprintf(f, "\n%-11s%.2f s measured after %.2f s warmup\n", "duration", secs,
            (double)o->warmup_ns / 1e9);
    fprintf(f, "%-11s%llu completed, %.1f/s (%llu sent)\n", o->ws ? "executions" : "requests",
            (unsigned long long)s->completed, (double)s->completed_window * per_s,
            (unsigned long long)s->sent);
    text_latency(f, o->ws ? "to event" : "latency", &s->lat);
    if (o->ws) {
        text_latency(f, "submit", &s->post_lat);
        fprintf(f, "%-11s%llu received, %.1f/s; %llu executions ended without '%s'\n", "events",
                (unsigned long long)s->events, (double)s->events * per_s,
                (unsigned long long)s->ws_other_end, o->ws_event);
    }
    text_status(f, s);
    fprintf(f,
            "%-11sconnect %llu  reset %llu  lost %llu  timeout %llu  parse %llu  write %llu"
            "  ws %llu  (reconnects %llu)\n",
            "errors", (unsigned long long)s->err_connect, (unsigned long long)s->err_reset,
            (unsigned long long)s->err_lost, (unsigned long long)s->err_timeout,
            (unsigned long long)s->err_parse, (unsigned long long)s->err_write,
            (unsigned long long)s->err_ws, (unsigned long long)s->reconnects);
    if (o->rate > 0)
        fprintf(f, "%-11slate > 1 ms at send: %llu (%.2f%%), never sent: %llu\n", "open loop",
                (unsigned long long)s->late,
                s->sent ? 100.0 * (double)s->late / (double)s->sent : 0,
                (unsigned long long)s->unsent);
    fprintf(f, "%-11sin %.1f MB, out %.1f MB\n", "transfer", (double)s->bytes_in / 1e6,
            (double)s->bytes_out / 1e6);
}

static json_t *json_latency(const struct rfl_hist *h)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    json_object_set_new(o, "mean", json_real(rfl_hist_mean(h) / 1e3));
    json_object_set_new(o, "min", json_real(h->count ? (double)h->min_ns / 1e3 : 0));
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        json_object_set_new(o, pct_names[i],
                            json_real((double)rfl_hist_percentile(h, pcts[i]) / 1e3));
    json_object_set_new(o, "max", json_real((double)h->max_ns / 1e3));
    return o;
}

static json_t *json_errors(const struct rfl_stats *s)
{
    return json_pack("{sIsIsIsIsIsIsI}", "connect", (json_int_t)s->err_connect, "reset",
                     (json_int_t)s->err_reset, "lost", (json_int_t)s->err_lost, "timeout",
                     (json_int_t)s->err_timeout, "parse", (json_int_t)s->err_parse, "write",
                     (json_int_t)s->err_write, "ws", (json_int_t)s->err_ws);
}

static json_t *json_status(const struct rfl_stats *s)
{
    json_t *o = json_object();
    for (uint32_t i = 0; o && i < RFL_STATUS_SLOTS; i++) {
        if (!s->status[i])
            continue;
        char k[8];
        snprintf(k, sizeof(k), i == RFL_STATUS_SLOTS - 1 ? "other" : "%u", i);
        json_object_set_new(o, k, json_integer((json_int_t)s->status[i]));
    }
    return o;
}

int rfl_report_json(FILE *f, const char *url, const struct rfl_opts *o, const struct rfl_stats *s,
                    uint64_t window_ns)
{
    double secs = (double)window_ns / 1e9;
    double per_s = secs > 0 ? 1.0 / secs : 0;
    json_t *j =
        json_pack("{sssssssIsIsIsfsfsf}", "url", url, "mode", o->rate > 0 ? "open" : "closed",
                  "protocol", o->ws ? "ws" : "http", "connections", (json_int_t)o->conns, "depth",
                  (json_int_t)o->depth, "threads", (json_int_t)o->threads, "rate", o->rate,
                  "duration_s", secs, "warmup_s", (double)o->warmup_ns / 1e9);
    if (!j)
        return -ENOMEM;
    json_object_set_new(j, "requests", json_integer((json_int_t)s->completed));
    json_object_set_new(j, "sent", json_integer((json_int_t)s->sent));
    json_object_set_new(j, "rps", json_real((double)s->completed_window * per_s));
    json_object_set_new(j, "latency_us", json_latency(&s->lat));
    json_object_set_new(j, "status", json_status(s));
    json_object_set_new(j, "errors", json_errors(s));
    json_object_set_new(j, "reconnects", json_integer((json_int_t)s->reconnects));
    json_object_set_new(j, "late", json_integer((json_int_t)s->late));
    json_object_set_new(j, "unsent", json_integer((json_int_t)s->unsent));
    json_object_set_new(j, "bytes_in", json_integer((json_int_t)s->bytes_in));
    json_object_set_new(j, "bytes_out", json_integer((json_int_t)s->bytes_out));
    if (o->ws) {
        json_t *w = json_pack("{sssIsfsI}", "event", o->ws_event, "events", (json_int_t)s->events,
                              "events_per_s", (double)s->events * per_s, "other_end",
                              (json_int_t)s->ws_other_end);
        if (w)
            json_object_set_new(w, "submit_latency_us", json_latency(&s->post_lat));
        json_object_set_new(j, "ws", w);
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (!text)
        return -ENOMEM;
    fprintf(f, "%s\n", text);
    free(text);
    return 0;
}
