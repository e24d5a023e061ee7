/*
 * net/metrics.h: the daemon's metrics, written as Prometheus text format 0.0.4 by
 * GET /metrics (spec/api.md "Operations").
 *
 * Every counter lives in one of nshards + 1 slots: a shard thread counts in its own slot
 * (rf__cur_shard->id), any other thread in the last one, so the hot path touches a cache
 * line no other core writes. The counters are relaxed atomics only so a scrape may read
 * them while they move; a scrape sums the slots. Histograms have fixed log-spaced buckets
 * (Prometheus `le` bounds from 50 us to 60 s).
 *
 * Labels are bounded: graphs are interned into at most RF_METRICS_GRAPHS_MAX names (later
 * ones count under graph="_other"), kinds are the engine's registered kinds (kinds_max),
 * HTTP routes a fixed enum, HTTP codes a fixed list (others count as "other").
 */
#ifndef RF_NET_METRICS_H
#define RF_NET_METRICS_H

#include <stdint.h>

#include "engine/internal.h"
#include "engine/jcs.h"
#include "ringflow.h"

#define RF_METRICS_GRAPHS_MAX 256u
#define RF_METRICS_BUCKETS    20u

enum rf_route {
    RF_ROUTE_OTHER = 0, /* unknown paths (404) and framing errors */
    RF_ROUTE_HEALTHZ,
    RF_ROUTE_READYZ,
    RF_ROUTE_METRICS,
    RF_ROUTE_GRAPHS,         /* GET /v1/graphs */
    RF_ROUTE_GRAPH,          /* PUT, GET /v1/graphs/{name} */
    RF_ROUTE_SUBMIT,         /* POST /v1/graphs/{name}/executions */
    RF_ROUTE_EXECUTIONS,     /* GET /v1/executions */
    RF_ROUTE_EXECUTION,      /* GET /v1/executions/{id} */
    RF_ROUTE_EVENTS,         /* GET /v1/executions/{id}/events */
    RF_ROUTE_RESULT,         /* GET /v1/executions/{id}/result */
    RF_ROUTE_CANCEL,         /* POST /v1/executions/{id}/cancel */
    RF_ROUTE_WS,             /* GET /v1/ws */
    RF_ROUTE_HOOKS,          /* GET /v1/hooks */
    RF_ROUTE_HOOK,           /* PUT, GET, DELETE /v1/hooks/{hook} */
    RF_ROUTE_HOOK_DELIVERY,  /* POST /v1/hooks/{hook} */
    RF_ROUTE_TRIGGERS,       /* GET /v1/triggers */
    RF_ROUTE_TRIGGER,        /* PUT, GET, DELETE /v1/triggers/{name} */
    RF_ROUTE_COUNT
};

struct rf_metrics;

/* Metrics for `eng` (borrowed; its shard count and kinds are read now). */
int rf_metrics_new(rf_engine *eng, struct rf_metrics **out);
void rf_metrics_free(struct rf_metrics *m);

/* The metrics index of graph `name` (interned on first use). Any thread. */
uint32_t rf_metrics_graph(struct rf_metrics *m, const char *name);

void rf_metrics_exec_started(struct rf_metrics *m, uint32_t graph);
void rf_metrics_exec_finished(struct rf_metrics *m, uint32_t graph, rf_status st,
                              uint64_t latency_us);
/* A node run ended (kind index from the engine's registry). */
void rf_metrics_node(struct rf_metrics *m, uint32_t kind, rf_status st, uint64_t latency_us);
void rf_metrics_http(struct rf_metrics *m, enum rf_route route, int code, uint64_t latency_us);
void rf_metrics_ws_conns(struct rf_metrics *m, int delta);
void rf_metrics_rejected(struct rf_metrics *m); /* a 429 for back-pressure */

/* Append the whole exposition to b. `extra` (may be NULL) appends more lines. */
int rf_metrics_write(struct rf_metrics *m, struct rf_buf *b);

#endif /* RF_NET_METRICS_H */
