/*
 * net/metrics.c: counters and histograms in per-shard slots, and their Prometheus text.
 *
 * A slot is written by one thread in the common case (its shard); the atomics are relaxed
 * because nothing is ordered by them: a scrape reads a moment's approximation, summing
 * slots. Each slot is allocated on its own cache lines. See net/metrics.h for the labels'
 * bounds. The exposition follows text format 0.0.4: # HELP and # TYPE once per family,
 * histograms as _bucket{le=...} (cumulative), _sum (seconds) and _count.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "net/metrics.h"
#include "sched/shard.h"

/* Histogram bucket bounds in microseconds (the last bucket is +Inf). */
static const uint64_t bounds_us[RF_METRICS_BUCKETS - 1] = {
    50,     100,    250,     500,     1000,    2500,     5000,     10000,    25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

enum { EX_SUCCEEDED, EX_FAILED, EX_CANCELED, EX_NST };
enum { ND_SUCCEEDED, ND_FAILED, ND_CANCELED, ND_SKIPPED, ND_CACHED, ND_NST };
static const char *const ex_names[EX_NST] = {"succeeded", "failed", "canceled"};
static const char *const nd_names[ND_NST] = {"succeeded", "failed", "canceled", "skipped",
                                             "cached"};

static const int http_codes[] = {101, 200, 201, 202, 204, 400, 401, 403, 404, 405, 408,
                                 409, 411, 413, 414, 415, 417, 422, 426, 429, 431, 500,
                                 501, 503, 505, 507};
#define NCODES (RF_ARRAY_LEN(http_codes) + 1) /* + "other" */

static const char *const route_names[RF_ROUTE_COUNT] = {
    "other",      "/healthz",        "/readyz",
    "/metrics",   "/v1/graphs",      "/v1/graphs/{name}",
    "/v1/graphs/{name}/executions",  "/v1/executions",
    "/v1/executions/{id}",           "/v1/executions/{id}/events",
    "/v1/executions/{id}/result",    "/v1/executions/{id}/cancel",
    "/v1/ws",      "/v1/hooks",       "/v1/hooks/{hook}",
    "/v1/hooks/{hook} (delivery)", "/v1/triggers", "/v1/triggers/{name}",
};

struct hist {
    _Atomic uint64_t b[RF_METRICS_BUCKETS]; /* relaxed: counts only */
    _Atomic uint64_t sum_us;
};

struct slot {
    _Atomic uint64_t ex_started[RF_METRICS_GRAPHS_MAX + 1]; /* relaxed: counts only */
    _Atomic uint64_t ex_done[RF_METRICS_GRAPHS_MAX + 1][EX_NST];
    _Atomic uint64_t http[RF_ROUTE_COUNT][NCODES];
    _Atomic int64_t ws_conns; /* relaxed: a gauge summed over slots */
    _Atomic uint64_t rejected;
    struct hist h_exec, h_node, h_http;
    _Atomic uint64_t node[]; /* [kinds][ND_NST] */
};

struct rf_metrics {
    rf_engine *eng;
    uint32_t nslots, nkinds;
    size_t slot_bytes;
    char *slots;
    rf_spin glock; /* the graph names */
    uint32_t ngraphs;
    char *graphs[RF_METRICS_GRAPHS_MAX];
};

static struct slot *my_slot(struct rf_metrics *m)
{
    uint32_t i = rf__cur_shard ? rf__cur_shard->id : m->nslots - 1;

    if (i >= m->nslots)
        i = m->nslots - 1;
    return (struct slot *)(m->slots + (size_t)i * m->slot_bytes);
}

static void inc(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed); /* a count, orders nothing */
}

static void observe(struct hist *h, uint64_t us)
{
    uint32_t i = 0;

    while (i < RF_METRICS_BUCKETS - 1 && us > bounds_us[i])
        i++;
    inc(&h->b[i], 1);
    inc(&h->sum_us, us);
}

int rf_metrics_new(rf_engine *eng, struct rf_metrics **out)
{
    struct rf_metrics *m = rf_calloc(1, sizeof(*m));

    if (!m)
        return -ENOMEM;
    m->eng = eng;
    m->nslots = rf_engine_shards(eng) + 1;
    m->nkinds = eng->cfg.kinds_max;
    m->slot_bytes = sizeof(struct slot) + (size_t)m->nkinds * ND_NST * sizeof(uint64_t);
    m->slot_bytes = (m->slot_bytes + RF_CACHELINE - 1) & ~(size_t)(RF_CACHELINE - 1);
    m->slots = rf_zalloc_aligned(m->slot_bytes * m->nslots, RF_CACHELINE);
    if (!m->slots) {
        rf_free(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

void rf_metrics_free(struct rf_metrics *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->ngraphs; i++)
        rf_free(m->graphs[i]);
    rf_free(m->slots);
    rf_free(m);
}

uint32_t rf_metrics_graph(struct rf_metrics *m, const char *name)
{
    uint32_t i;

    rf_spin_lock(&m->glock);
    for (i = 0; i < m->ngraphs; i++)
        if (strcmp(m->graphs[i], name) == 0)
            goto out;
    if (m->ngraphs < RF_METRICS_GRAPHS_MAX && (m->graphs[i] = rf_strdup(name)) != NULL)
        m->ngraphs++;
    else
        i = RF_METRICS_GRAPHS_MAX; /* "_other" */
out:
    rf_spin_unlock(&m->glock);
    return i;
}

void rf_metrics_exec_started(struct rf_metrics *m, uint32_t graph)
{
    inc(&my_slot(m)->ex_started[RF_MIN(graph, RF_METRICS_GRAPHS_MAX)], 1);
}

void rf_metrics_exec_finished(struct rf_metrics *m, uint32_t graph, rf_status st,
                              uint64_t latency_us)
{
    struct slot *s = my_slot(m);
    int k = st == RF_ST_SUCCEEDED ? EX_SUCCEEDED : st == RF_ST_FAILED ? EX_FAILED : EX_CANCELED;

    inc(&s->ex_done[RF_MIN(graph, RF_METRICS_GRAPHS_MAX)][k], 1);
    observe(&s->h_exec, latency_us);
}

void rf_metrics_node(struct rf_metrics *m, uint32_t kind, rf_status st, uint64_t latency_us)
{
    struct slot *s = my_slot(m);
    int k;

    switch (st) {
    case RF_ST_SUCCEEDED: k = ND_SUCCEEDED; break;
    case RF_ST_FAILED: k = ND_FAILED; break;
    case RF_ST_SKIPPED: k = ND_SKIPPED; break;
    case RF_ST_CACHED: k = ND_CACHED; break;
    default: k = ND_CANCELED; break;
    }
    if (kind < m->nkinds)
        inc(&s->node[kind * ND_NST + (uint32_t)k], 1);
    if (st == RF_ST_SUCCEEDED || st == RF_ST_FAILED)
        observe(&s->h_node, latency_us);
}

void rf_metrics_http(struct rf_metrics *m, enum rf_route route, int code, uint64_t latency_us)
{
    struct slot *s = my_slot(m);
    size_t c = RF_ARRAY_LEN(http_codes);

    for (size_t i = 0; i < RF_ARRAY_LEN(http_codes); i++)
        if (http_codes[i] == code) {
            c = i;
            break;
        }
    inc(&s->http[route < RF_ROUTE_COUNT ? route : RF_ROUTE_OTHER][c], 1);
    observe(&s->h_http, latency_us);
}

void rf_metrics_ws_conns(struct rf_metrics *m, int delta)
{
    atomic_fetch_add_explicit(&my_slot(m)->ws_conns, delta, memory_order_relaxed); /* gauge */
}

void rf_metrics_rejected(struct rf_metrics *m)
{
    inc(&my_slot(m)->rejected, 1);
}

/* --- exposition ---------------------------------------------------------------------- */

static uint64_t ld(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed); /* a racy snapshot is the contract */
}

__attribute__((format(printf, 2, 3))) static int put(struct rf_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (rf_buf_reserve(b, 256) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= b->cap - b->len) {
        if (rf_buf_reserve(b, (size_t)n + 1) < 0)
            return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

static void family(struct rf_buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define SLOT(m, i) ((struct slot *)((m)->slots + (size_t)(i) * (m)->slot_bytes))

static void write_hist(struct rf_metrics *m, struct rf_buf *b, const char *name,
                       size_t off, const char *help)
{
    uint64_t cum = 0, sum = 0, per[RF_METRICS_BUCKETS] = {0};

    family(b, name, "histogram", help);
    for (uint32_t s = 0; s < m->nslots; s++) {
        const struct hist *h = (const struct hist *)((const char *)SLOT(m, s) + off);
        for (uint32_t i = 0; i < RF_METRICS_BUCKETS; i++)
            per[i] += ld(&h->b[i]);
        sum += ld(&h->sum_us);
    }
    for (uint32_t i = 0; i < RF_METRICS_BUCKETS; i++) {
        cum += per[i];
        if (i < RF_METRICS_BUCKETS - 1)
            put(b, "%s_bucket{le=\"%g\"} %lu\n", name, (double)bounds_us[i] / 1e6, cum);
        else
            put(b, "%s_bucket{le=\"+Inf\"} %lu\n", name, cum);
    }
    put(b, "%s_sum %.6f\n%s_count %lu\n", name, (double)sum / 1e6, name, cum);
}

static void write_execs(struct rf_metrics *m, struct rf_buf *b)
{
    uint32_t ng;

    rf_spin_lock(&m->glock);
    ng = m->ngraphs;
    rf_spin_unlock(&m->glock);
    family(b, "ringflow_executions_started_total", "counter", "Executions started, by graph.");
    for (uint32_t g = 0; g <= RF_METRICS_GRAPHS_MAX; g++) {
        uint64_t v = 0;
        if (g >= ng && g != RF_METRICS_GRAPHS_MAX)
            continue;
        for (uint32_t s = 0; s < m->nslots; s++)
            v += ld(&SLOT(m, s)->ex_started[g]);
        if (v || g < ng)
            put(b, "ringflow_executions_started_total{graph=\"%s\"} %lu\n",
                g < ng ? m->graphs[g] : "_other", v);
    }
    family(b, "ringflow_executions_finished_total", "counter",
           "Executions finished, by graph and status.");
    for (uint32_t g = 0; g <= RF_METRICS_GRAPHS_MAX; g++) {
        if (g >= ng && g != RF_METRICS_GRAPHS_MAX)
            continue;
        for (int k = 0; k < EX_NST; k++) {
            uint64_t v = 0;
            for (uint32_t s = 0; s < m->nslots; s++)
                v += ld(&SLOT(m, s)->ex_done[g][k]);
            if (v || g < ng)
                put(b, "ringflow_executions_finished_total{graph=\"%s\",status=\"%s\"} %lu\n",
                    g < ng ? m->graphs[g] : "_other", ex_names[k], v);
        }
    }
}

static void write_nodes(struct rf_metrics *m, struct rf_buf *b)
{
    family(b, "ringflow_node_runs_total", "counter", "Node runs ended, by kind and status.");
    for (uint32_t k = 0; k < m->eng->nkinds && k < m->nkinds; k++)
        for (int st = 0; st < ND_NST; st++) {
            uint64_t v = 0;
            for (uint32_t s = 0; s < m->nslots; s++)
                v += ld(&SLOT(m, s)->node[k * ND_NST + (uint32_t)st]);
            put(b, "ringflow_node_runs_total{kind=\"%s\",status=\"%s\"} %lu\n",
                m->eng->kinds[k].name, nd_names[st], v);
        }
}

static void write_http(struct rf_metrics *m, struct rf_buf *b)
{
    int64_t ws = 0;
    uint64_t rej = 0;

    family(b, "ringflow_http_requests_total", "counter", "HTTP requests, by route and code.");
    for (uint32_t r = 0; r < RF_ROUTE_COUNT; r++)
        for (size_t c = 0; c < NCODES; c++) {
            uint64_t v = 0;
            char code[16];
            for (uint32_t s = 0; s < m->nslots; s++)
                v += ld(&SLOT(m, s)->http[r][c]);
            if (!v)
                continue;
            if (c < RF_ARRAY_LEN(http_codes))
                snprintf(code, sizeof(code), "%d", http_codes[c]);
            else
                snprintf(code, sizeof(code), "other");
            put(b, "ringflow_http_requests_total{route=\"%s\",code=\"%s\"} %lu\n",
                route_names[r], code, v);
        }
    for (uint32_t s = 0; s < m->nslots; s++) {
        ws += atomic_load_explicit(&SLOT(m, s)->ws_conns, memory_order_relaxed); /* gauge */
        rej += ld(&SLOT(m, s)->rejected);
    }
    family(b, "ringflow_websocket_connections", "gauge", "Open WebSocket connections.");
    put(b, "ringflow_websocket_connections %ld\n", (long)ws);
    family(b, "ringflow_submissions_rejected_total", "counter",
           "Submissions refused with 429 (a shard at its in-flight bound).");
    put(b, "ringflow_submissions_rejected_total %lu\n", rej);
}

static void write_engine(struct rf_metrics *m, struct rf_buf *b)
{
    uint32_t n = rf_engine_shards(m->eng);
    rf_cache_counters cc;
    rf_shard_stats *ss = rf_calloc(n, sizeof(*ss));
    uint64_t inflight = 0;

    if (!ss)
        return;
    for (uint32_t i = 0; i < n; i++) {
        rf_engine_shard_stats(m->eng, i, &ss[i]);
        inflight += ss[i].inflight;
    }
    family(b, "ringflow_executions_in_flight", "gauge", "Executions accepted and not finished.");
    put(b, "ringflow_executions_in_flight %lu\n", inflight);
    family(b, "ringflow_shard_queue_depth", "gauge", "Ready nodes queued per shard.");
    for (uint32_t i = 0; i < n; i++)
        put(b, "ringflow_shard_queue_depth{shard=\"%u\"} %lu\n", i, ss[i].deque_depth);
    family(b, "ringflow_shard_steals_total", "counter", "Nodes stolen from siblings per shard.");
    for (uint32_t i = 0; i < n; i++)
        put(b, "ringflow_shard_steals_total{shard=\"%u\"} %lu\n", i, ss[i].steals);
    family(b, "ringflow_shard_nodes_run_total", "counter", "Node attempts run per shard.");
    for (uint32_t i = 0; i < n; i++)
        put(b, "ringflow_shard_nodes_run_total{shard=\"%u\"} %lu\n", i, ss[i].nodes_run);
    rf_engine_cache_stats(m->eng, &cc);
    family(b, "ringflow_cache_hits_total", "counter", "Result cache hits.");
    put(b, "ringflow_cache_hits_total %lu\n", cc.hits);
    family(b, "ringflow_cache_misses_total", "counter", "Result cache misses.");
    put(b, "ringflow_cache_misses_total %lu\n", cc.misses);
    family(b, "ringflow_cache_entries", "gauge", "Entries in the in-memory result cache.");
    put(b, "ringflow_cache_entries %lu\n", cc.entries);
    rf_free(ss);
}

int rf_metrics_write(struct rf_metrics *m, struct rf_buf *b)
{
    size_t len0 = b->len;

    write_execs(m, b);
    write_nodes(m, b);
    write_http(m, b);
    write_engine(m, b);
    write_hist(m, b, "ringflow_execution_duration_seconds", offsetof(struct slot, h_exec),
               "Execution latency, submission to end.");
    write_hist(m, b, "ringflow_node_duration_seconds", offsetof(struct slot, h_node),
               "Node run latency, start to end (succeeded and failed runs).");
    write_hist(m, b, "ringflow_http_request_duration_seconds", offsetof(struct slot, h_http),
               "HTTP request latency, head parsed to response queued.");
    if (rf_buf_reserve(b, 1) < 0) {
        b->len = len0;
        return -ENOMEM;
    }
    return 0;
}
