/*
 * net/api.h: the REST and WebSocket API of spec/api.md on top of the engine, the
 * execution store and the server. The server calls rf_api_handle() on the shard that
 * received a request; every handler answers on that shard, at once or, for long polls,
 * after parking the request (net/server.h).
 */
#ifndef RF_NET_API_H
#define RF_NET_API_H

#include <stdint.h>

#include "net/metrics.h"
#include "net/store.h"

struct rf_hreq;

struct rf_api_config {
    uint32_t long_poll_max_ms;  /* the longest wait_ms honoured; 0: no request waits */
    uint32_t ws_subs_max;       /* subscriptions per WebSocket; 0 = 1024 */
};

struct rf_api;

/* `eng`, `st` and `m` borrowed; they outlive the API. */
int rf_api_new(rf_engine *eng, struct rf_store *st, struct rf_metrics *m,
               const struct rf_api_config *cfg, struct rf_api **out);
void rf_api_free(struct rf_api *api);
/* Make submissions and graph registrations durable through `sj` (borrowed; before the
 * engine starts). */
struct rf_sjournal;
void rf_api_set_journal(struct rf_api *api, struct rf_sjournal *sj);
/* Redis (borrowed; before the server runs): /readyz says whether it is connected, /metrics
 * counts what went through it, and WebSocket subscribers follow other instances' executions
 * through it. */
struct rf_rbridge;
void rf_api_set_redis(struct rf_api *api, struct rf_rbridge *rb);
/* Recovery: a trigger definition from the journal (rf_sjournal_def_fn's shape; ud is the
 * api). Before rf_api_set_ready. */
/* The Kafka bridge (borrowed; before the server runs): its counters in /metrics. */
struct rf_kafka;
void rf_api_set_kafka(struct rf_api *api, struct rf_kafka *k);
/* Cron triggers (borrowed; before the server runs). */
struct rf_triggers;
void rf_api_set_triggers(struct rf_api *api, struct rf_triggers *ts);
void rf_api_load_def(void *ud, uint8_t kind, const char *name, const char *doc, size_t doc_len,
                     int64_t created_us);
/* Serve requests: until then every route but /healthz, /readyz and /metrics answers 503
 * "starting" (recovery is under way). Any thread. */
void rf_api_set_ready(struct rf_api *api);

/* Answer one request (shard thread). */
void rf_api_handle(struct rf_api *api, struct rf_hreq *r);

/* From now on /readyz answers 503 and submissions 503 (graceful stop). Any thread. */
void rf_api_set_draining(struct rf_api *api);

#endif /* RF_NET_API_H */
