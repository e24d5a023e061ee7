/*
 * bench/lang.c: in-process executions per second of a 5-node transform graph, with the
 * result cache off, on all misses and on all hits, on 1 and 2 shards.
 *
 *   build/release/bench/lang [--seconds S] [--inflight N] [--shards 1,2]
 *
 * The graph (below) is a diamond with a tail: a -> {b, c} -> d -> e, every node a
 * `transform` whose config holds templates over the inputs and its deps' outputs, so each
 * node run resolves params (and, with the cache on, canonicalizes them and hashes their
 * lineage). Modes:
 *   off   no `cache` blocks;
 *   miss  every node cached, every execution's inputs unique: each node looks up, misses,
 *         runs, and stores its output (the cache churns at its entry bound);
 *   hit   every node cached, the same inputs every time: after the first execution every
 *         node is served from the cache without running.
 * A closed loop keeps `inflight` executions submitted from one thread; each execution's
 * latency runs from rf_submit() to its done callback, recorded in a log-bucketed
 * histogram. Printed per row: executions/s, nodes/s, latency p50/p90/p99/p99.9/max, and
 * the ratio of each cached mode to "off" on the same shard count (same run, same
 * machine: compare ratios, the absolute numbers move with the machine's noise).
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringflow.h"

#define HIST_BUCKETS (64 * 8)

static const char *const GRAPH_FMT =
    "{\"name\": \"bench5\", \"inputs\": {\"order\": {\"type\": \"integer\"},"
    " \"who\": {\"type\": \"string\"}},"
    "\"nodes\": ["
    "{\"id\": \"a\", \"kind\": \"transform\"%s, \"config\": {\"output\": {\"order\": "
    "\"{{inputs.order}}\", \"who\": \"{{inputs.who}}\", \"qty\": 3}}},"
    "{\"id\": \"b\", \"kind\": \"transform\"%s, \"config\": {\"output\": {\"line\": "
    "\"order {{nodes.a.output.order}} for {{nodes.a.output.who}}\"}}},"
    "{\"id\": \"c\", \"kind\": \"transform\"%s, \"config\": {\"output\": {\"qty\": "
    "\"{{nodes.a.output.qty}}\", \"price\": 250}}},"
    "{\"id\": \"d\", \"kind\": \"transform\"%s, \"config\": {\"output\": {\"line\": "
    "\"{{nodes.b.output.line}}\", \"qty\": \"{{nodes.c.output.qty}}\","
    " \"price\": \"{{nodes.c.output.price}}\"}}},"
    "{\"id\": \"e\", \"kind\": \"transform\"%s, \"config\": {\"output\": \"{{nodes.d.output}}\"}}"
    "]}";

struct hist {
    _Atomic uint64_t b[HIST_BUCKETS];
    _Atomic uint64_t max;
};

struct run {
    struct hist h;
    _Atomic uint32_t inflight; /* executions submitted and not done */
    _Atomic uint64_t done;
    _Atomic uint64_t failed;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 8 sub-buckets per power of two: about 12% resolution. */
static uint32_t bucket_of(uint64_t v)
{
    if (v < 8)
        return (uint32_t)v;
    uint32_t e = 63 - (uint32_t)__builtin_clzll(v);
    return e * 8 + (uint32_t)((v >> (e - 3)) & 7);
}

static uint64_t bucket_low(uint32_t b)
{
    if (b < 8)
        return b;
    uint32_t e = b / 8;
    return (1ull << e) | ((uint64_t)(b % 8) << (e - 3));
}

static void hist_add(struct hist *h, uint64_t v)
{
    atomic_fetch_add_explicit(&h->b[bucket_of(v)], 1, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (v > m && !atomic_compare_exchange_weak_explicit(&h->max, &m, v, memory_order_relaxed,
                                                           memory_order_relaxed))
        ;
}

static double hist_pct(struct hist *h, double q)
{
    uint64_t total = 0, seen = 0;

    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        total += atomic_load(&h->b[i]);
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += atomic_load(&h->b[i]);
        if (total && (double)seen >= q * (double)total)
            return (double)bucket_low(i);
    }
    return 0;
}

struct sub {
    struct run *run;
    uint64_t t0;
};

static void on_done(void *ud, rf_exec *ex)
{
    struct sub *s = ud;
    struct run *r = s->run;

    hist_add(&r->h, now_ns() - s->t0);
    if (rf_exec_status(ex) != RF_ST_SUCCEEDED)
        atomic_fetch_add_explicit(&r->failed, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->done, 1, memory_order_relaxed);
    free(s);
    atomic_fetch_sub_explicit(&r->inflight, 1, memory_order_release);
}

static rf_plan *plan(rf_engine *eng, bool cached)
{
    const char *c = cached ? ", \"cache\": {\"ttl_s\": 300}" : "";
    char doc[4096];
    rf_plan *p = NULL;
    rf_diag d;

    snprintf(doc, sizeof(doc), GRAPH_FMT, c, c, c, c, c);
    rf_diag_init(&d);
    if (rf_plan_from_json(eng, doc, strlen(doc), &d, &p) < 0) {
        for (uint32_t i = 0; i < d.count; i++)
            fprintf(stderr, "%s %s %s\n", d.items[i].pointer, d.items[i].code, d.items[i].message);
        exit(1);
    }
    rf_diag_free(&d);
    return p;
}

struct row {
    double eps, p50, p90, p99, p999, max;
};

static struct row measure(uint32_t shards, const char *mode, double seconds, uint32_t inflight)
{
    rf_config cfg = {.shards = shards, .inflight_per_shard_max = 8192};
    rf_engine *eng = NULL;
    struct run *r = calloc(1, sizeof(*r));
    bool unique = strcmp(mode, "miss") == 0;
    struct row row = {0};
    uint64_t seq = 0, t_end, t0;

    if (rf_engine_new(&cfg, &eng) < 0 || rf_engine_start(eng) < 0) {
        fprintf(stderr, "engine start failed\n");
        exit(1);
    }
    rf_plan *p = plan(eng, strcmp(mode, "off") != 0);
    t0 = now_ns();
    t_end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < t_end) {
        if (atomic_load_explicit(&r->inflight, memory_order_acquire) >= inflight) {
            sched_yield();
            continue;
        }
        struct sub *s = malloc(sizeof(*s));
        rf_callbacks cb = {.done = on_done, .ud = s};
        rf_submit_opts o = {.callbacks = &cb};
        json_t *in = json_pack("{s:I, s:s}", "order", (json_int_t)(unique ? seq : 7), "who", "ada");
        rf_exec *ex;
        s->run = r;
        s->t0 = now_ns();
        atomic_fetch_add_explicit(&r->inflight, 1, memory_order_relaxed);
        if (rf_submit(eng, p, in, &o, &ex) < 0) {
            atomic_fetch_sub_explicit(&r->inflight, 1, memory_order_relaxed);
            free(s);
            sched_yield();
            continue;
        }
        rf_exec_release(ex);
        seq++;
    }
    while (atomic_load_explicit(&r->inflight, memory_order_acquire) > 0)
        sched_yield();
    double secs = (double)(now_ns() - t0) * 1e-9;
    row.eps = (double)atomic_load(&r->done) / secs;
    row.p50 = hist_pct(&r->h, 0.50);
    row.p90 = hist_pct(&r->h, 0.90);
    row.p99 = hist_pct(&r->h, 0.99);
    row.p999 = hist_pct(&r->h, 0.999);
    row.max = (double)atomic_load(&r->h.max);
    if (atomic_load(&r->failed))
        fprintf(stderr, "warning: %llu executions failed\n",
                (unsigned long long)atomic_load(&r->failed));
    rf_plan_release(p);
    rf_engine_stop(eng, 5000);
    rf_engine_free(eng);
    free(r);
    return row;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    uint32_t inflight = 512, shards[2] = {1, 2}, nshards = 2;
    const char *modes[] = {"off", "miss", "hit"};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--inflight") == 0 && i + 1 < argc)
            inflight = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc) {
            nshards = (uint32_t)sscanf(argv[++i], "%u,%u", &shards[0], &shards[1]);
        } else {
            fprintf(stderr, "usage: %s [--seconds S] [--inflight N] [--shards 1,2]\n", argv[0]);
            return 2;
        }
    }
    printf("5-node transform graph, closed loop of %u executions, %.1f s per row\n", inflight,
           seconds);
    printf("%-6s %-5s %12s %12s %9s %9s %9s %9s %9s %8s\n", "shards", "cache", "exec/s",
           "nodes/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "vs off");
    for (uint32_t s = 0; s < nshards; s++) {
        double off = 0;
        for (int m = 0; m < 3; m++) {
            struct row r = measure(shards[s], modes[m], seconds, inflight);
            if (m == 0)
                off = r.eps;
            printf("%-6u %-5s %12.0f %12.0f %9.1f %9.1f %9.1f %9.1f %9.1f %7.2fx\n", shards[s],
                   modes[m], r.eps, r.eps * 5, r.p50 / 1e3, r.p90 / 1e3, r.p99 / 1e3,
                   r.p999 / 1e3, r.max / 1e3, off > 0 ? r.eps / off : 0);
            fflush(stdout);
        }
    }
    return 0;
}
