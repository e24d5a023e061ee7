/*
 * net/api.c: the router and the REST handlers of spec/api.md (WebSocket subscriptions are
 * in net/wsapi.c).
 *
 * Every handler runs on the shard that received the request and answers exactly once:
 * with rf_resp*() before returning, or after parking the request (long polls on events
 * and results). Handlers never block: the work they do is bounded by the request's size
 * (a graph document is compiled here, which for the largest allowed graph takes a few
 * milliseconds of this shard) or by a limit (listing scans at most LIST_SCAN_MAX records).
 *
 * Errors are {"error": {"code", "message", "details"}} with the status spec/api.md gives:
 * 400 malformed (the message names the field or the JSON position), 404 unknown, 405 with
 * Allow, 409 conflict, 415 media type, 422 invalid graph or inputs (details: every problem
 * with a JSON Pointer), 429 with Retry-After, 503 while stopping.
 *
 * A submission is answered 202 once the engine accepted it (the journal, and with it the
 * durable answer, comes with the storage issue). The execution runs on the shard that
 * received it, so its events are produced where its submitter's connection lives.
 */
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "net/api.h"
#include "net/api_int.h"
#include "net/kafka.h"
#include "net/rbridge.h"
#include "net/server.h"
#include "net/sjournal.h"
#include "net/url.h"
#include "net/wsapi.h"
#include "storage/xrec.h"

#define SEGS_MAX          8
#define NAME_BYTES_MAX    256
#define LIST_DEFAULT      50u
#define LIST_MAX          500u
#define LIST_SCAN_MAX     100000u
#define EVENTS_DEFAULT    100u
#define EVENTS_MAX        1000u
#define TAGS_MAX          32u
#define TAG_BYTES_MAX     128u
#define GRAPH_LIST_MAX    1000u
#define TOKEN_KEY_BYTES   RF_API_TOKEN_KEY_BYTES


/* --- small helpers ---------------------------------------------------------------------- */

static bool draining(const struct rf_api *api)
{
    return atomic_load_explicit(&api->draining, memory_order_relaxed); /* a flag, no data */
}

static bool slice_eq(struct rf_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* Percent-decode a path segment into a NUL-terminated name. */
static int seg_name(struct rf_slice s, char *out, size_t cap)
{
    int n = rf_url_decode(s.p, s.n, false, out, cap);
    return n <= 0 ? -EINVAL : n;
}

/* A query parameter as an unsigned number: 0 when absent (*set false), -EINVAL when bad. */
static int query_u64(struct rf_hreq *r, const char *key, uint64_t max, uint64_t *v, bool *set)
{
    char buf[32];
    int n = rf_query_get(r->h->query, key, buf, sizeof(buf));

    *set = false;
    if (n == -ENOENT)
        return 0;
    if (n < 0)
        return -EINVAL;
    struct rf_slice s = {buf, (uint32_t)n};
    if (rf_parse_u64(s, max, v) < 0)
        return -EINVAL;
    *set = true;
    return 0;
}

static void bad_query(struct rf_hreq *r, const char *key, const char *what)
{
    json_t *d = json_pack("[{s:s, s:s, s:s}]", "pointer", key, "code", "bad_query", "message",
                          what);
    rf_resp_error(&r->x, 400, "bad_query", NULL, d, "query parameter %s: %s", key, what);
}

static void not_found(struct rf_hreq *r, const char *what, const char *name)
{
    rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "%s %s does not exist", what, name);
}

static void method_not_allowed(struct rf_hreq *r, const char *allow)
{
    char hdr[96];

    snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
    rf_resp_error(&r->x, 405, "method_not_allowed", hdr, NULL,
                  "method %.*s is not allowed here; allowed: %s", (int)r->h->method_s.n,
                  r->h->method_s.p, allow);
}

static bool is_get(const struct rf_hreq *r)
{
    return r->h->method == RF_HTTP_GET || r->h->method == RF_HTTP_HEAD;
}

/* A JSON body: checks the media type and parses. NULL when answered with an error. */
static json_t *json_body(struct rf_hreq *r, bool empty_is_object)
{
    const struct rf_http_header *ct = rf_http_header_get(r->h, "content-type");
    json_error_t jerr;
    json_t *v;

    if (ct && !(ct->value.n >= 16 && strncasecmp(ct->value.p, "application/json", 16) == 0 &&
                (ct->value.n == 16 || ct->value.p[16] == ';' || ct->value.p[16] == ' '))) {
        rf_resp_error(&r->x, 415, "unsupported_media_type", NULL, NULL,
                      "Content-Type must be application/json, not %.*s", (int)ct->value.n,
                      ct->value.p);
        return NULL;
    }
    if (r->body_len == 0) {
        if (empty_is_object)
            return json_object();
        if (r->h->content_length < 0 && !r->h->chunked)
            rf_resp_error(&r->x, 411, "length_required", NULL, NULL,
                          "a body is required: send Content-Length or chunked");
        else
            rf_resp_error(&r->x, 400, "empty_body", NULL, NULL, "the request body is empty");
        return NULL;
    }
    v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        rf_resp_error(&r->x, 400, "malformed_json", NULL, NULL, "body: line %d, column %d: %s",
                      jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        rf_resp_error(&r->x, 400, "bad_body", NULL, NULL, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

static json_t *diag_details(const rf_diag *d)
{
    json_t *a = json_array();

    for (uint32_t i = 0; a && i < d->count; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "pointer", d->items[i].pointer,
                                           "code", d->items[i].code, "message",
                                           d->items[i].message));
    return a;
}

static json_t *ts_json(int64_t us)
{
    char buf[RF_TS_LEN];

    return us ? json_string(rf_fmt_ts(us, buf)) : json_null();
}

/* --- operations --------------------------------------------------------------------------- */

static void h_healthz(struct rf_api *api, struct rf_hreq *r)
{
    (void)api;
    r->x.route = RF_ROUTE_HEALTHZ;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    rf_resp(&r->x, 200, "application/json", NULL, "{\"status\":\"ok\"}", 15);
}

static void h_readyz(struct rf_api *api, struct rf_hreq *r)
{
    const char *storage = api->sj ? "journal" : "memory";
    const char *cache = api->rb ? "redis" : "memory";

    r->x.route = RF_ROUTE_READYZ;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    if (!atomic_load_explicit(&api->ready, memory_order_relaxed)) { /* a flag */
        rf_resp_json(&r->x, 503, NULL,
                     json_pack("{s:s, s:s}", "status", "starting", "storage", storage));
        return;
    }
    if (draining(api)) {
        rf_resp_json(&r->x, 503, NULL,
                     json_pack("{s:s, s:s, s:s}", "status", "stopping", "storage", storage,
                               "cache", cache));
        return;
    }
    if (api->sj && rf_sjournal_failed(api->sj)) {
        rf_resp_json(&r->x, 503, NULL,
                     json_pack("{s:s, s:s, s:s}", "status", "failed", "storage",
                               "journal failed: restarting into recovery", "cache", cache));
        return;
    }
    if (api->sj && rf_sjournal_no_space(api->sj)) {
        rf_resp_json(&r->x, 503, NULL,
                     json_pack("{s:s, s:s, s:s}", "status", "storage_full", "storage",
                               "journal: no space for a new segment", "cache", cache));
        return;
    }
    /* Redis down is degraded, not unready: executions go on with the cache bypassed. */
    bool up = !api->rb || rf_rbridge_up(api->rb);
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "status", up ? "ready" : "degraded", "shards",
                          (json_int_t)rf_engine_shards(api->eng), "storage", storage, "cache",
                          cache);
    if (o && api->rb)
        json_object_set_new(o, "redis",
                            json_string(up ? "connected"
                                           : "not connected: the cache is bypassed and live "
                                             "events of other instances are unavailable"));
    rf_resp_json(&r->x, 200, NULL, o);
}

static void redis_metrics(const struct rf_rbridge *rb, struct rf_buf *b)
{
    struct rf_rbridge_stats s;
    char t[2048];

    rf_rbridge_stats(rb, &s);
    int n = snprintf(
        t, sizeof(t),
        "# HELP ringflow_redis_up Shards whose Redis connection is up, over all shards.\n"
        "# TYPE ringflow_redis_up gauge\n"
        "ringflow_redis_up %.3f\n"
        "# HELP ringflow_redis_drops_total Redis connections lost (closed, or no reply in "
        "time).\n"
        "# TYPE ringflow_redis_drops_total counter\n"
        "ringflow_redis_drops_total %lu\n"
        "# HELP ringflow_cache_remote_lookups_total Lookups of the Redis cache tier by result "
        "(bypassed: Redis down or slow, the node ran without it).\n"
        "# TYPE ringflow_cache_remote_lookups_total counter\n"
        "ringflow_cache_remote_lookups_total{result=\"hit\"} %lu\n"
        "ringflow_cache_remote_lookups_total{result=\"miss\"} %lu\n"
        "ringflow_cache_remote_lookups_total{result=\"bypassed\"} %lu\n"
        "# HELP ringflow_cache_lease_waits_total Lookups that waited for another instance's "
        "run of the same lineage.\n"
        "# TYPE ringflow_cache_lease_waits_total counter\n"
        "ringflow_cache_lease_waits_total %lu\n"
        "# HELP ringflow_cache_remote_stores_total Results stored in Redis.\n"
        "# TYPE ringflow_cache_remote_stores_total counter\n"
        "ringflow_cache_remote_stores_total %lu\n"
        "# HELP ringflow_redis_events_published_total Events published to Redis.\n"
        "# TYPE ringflow_redis_events_published_total counter\n"
        "ringflow_redis_events_published_total %lu\n"
        "# HELP ringflow_redis_events_unpublished_total Events never published (Redis down "
        "past the retry bound, or stopping).\n"
        "# TYPE ringflow_redis_events_unpublished_total counter\n"
        "ringflow_redis_events_unpublished_total %lu\n",
        s.shards ? (double)s.shards_up / s.shards : 0.0, s.drops, s.cache_hits, s.cache_misses,
        s.cache_bypassed, s.cache_lease_waits, s.cache_stores, s.events_published,
        s.events_unpublished);
    rf_buf_append(b, t, (size_t)n);
}

static void kafka_metrics(const struct rf_kafka *k, struct rf_buf *b)
{
    struct rf_kafka_stats s;
    char t[2048];

    rf_kafka_stats(k, &s);
    int n = snprintf(
        t, sizeof(t),
        "# HELP ringflow_kafka_messages_total Trigger-topic messages by outcome.\n"
        "# TYPE ringflow_kafka_messages_total counter\n"
        "ringflow_kafka_messages_total{outcome=\"execution\"} %lu\n"
        "ringflow_kafka_messages_total{outcome=\"duplicate\"} %lu\n"
        "ringflow_kafka_messages_total{outcome=\"dead_letter\"} %lu\n"
        "# HELP ringflow_kafka_consumed_total Trigger-topic messages read.\n"
        "# TYPE ringflow_kafka_consumed_total counter\n"
        "ringflow_kafka_consumed_total %lu\n"
        "# HELP ringflow_kafka_commits_total Offset commits sent.\n"
        "# TYPE ringflow_kafka_commits_total counter\n"
        "ringflow_kafka_commits_total %lu\n"
        "# HELP ringflow_kafka_pauses_total Partitions paused for back-pressure.\n"
        "# TYPE ringflow_kafka_pauses_total counter\n"
        "ringflow_kafka_pauses_total %lu\n"
        "# HELP ringflow_kafka_partitions Partitions of the trigger topic assigned here.\n"
        "# TYPE ringflow_kafka_partitions gauge\n"
        "ringflow_kafka_partitions %u\n"
        "# HELP ringflow_kafka_uncommitted_offsets Messages done whose offsets the broker has "
        "not acknowledged as committed (a redelivery's worst case).\n"
        "# TYPE ringflow_kafka_uncommitted_offsets gauge\n"
        "ringflow_kafka_uncommitted_offsets %lu\n"
        "# HELP ringflow_kafka_produced_total Messages produced, by what produced them.\n"
        "# TYPE ringflow_kafka_produced_total counter\n"
        "ringflow_kafka_produced_total{by=\"events\"} %lu\n"
        "ringflow_kafka_produced_total{by=\"node\"} %lu\n",
        s.executions, s.duplicates, s.dead_letters, s.consumed, s.commits, s.pauses,
        s.partitions, s.uncommitted, s.events_produced, s.node_produced);
    rf_buf_append(b, t, (size_t)n);
}

static void h_metrics(struct rf_api *api, struct rf_hreq *r)
{
    struct rf_buf b = {0};
    struct rf_store_stats ss;
    char extra[512];

    r->x.route = RF_ROUTE_METRICS;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    if (rf_metrics_write(api->m, &b) < 0) {
        rf_buf_free(&b);
        rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
        return;
    }
    rf_store_stats(api->st, &ss);
    int n = snprintf(extra, sizeof(extra),
                     "# HELP ringflow_executions_retained Executions queryable in memory.\n"
                     "# TYPE ringflow_executions_retained gauge\n"
                     "ringflow_executions_retained %lu\n"
                     "# HELP ringflow_executions_evicted_total Finished executions dropped "
                     "past --executions-max.\n"
                     "# TYPE ringflow_executions_evicted_total counter\n"
                     "ringflow_executions_evicted_total %lu\n",
                     ss.records, ss.evicted);
    rf_buf_append(&b, extra, (size_t)n);
    if (api->rb)
        redis_metrics(api->rb, &b);
    if (api->kafka)
        kafka_metrics(api->kafka, &b);
    rf_resp(&r->x, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.p, b.len);
    rf_buf_free(&b);
}

/* --- graphs ----------------------------------------------------------------------------- */

static json_t *graph_doc(const rf_plan *p)
{
    json_t *doc = json_deep_copy(rf_plan_document(p));

    if (!doc)
        return NULL;
    json_object_set_new(doc, "version", json_integer(rf_plan_version(p)));
    json_object_set_new(doc, "graph_hash", json_string(rf_plan_hash(p)));
    json_object_set_new(doc, "created_at", ts_json(rf_plan_created_us(p)));
    json_object_set_new(doc, "account", json_string(RF_ACCOUNT_NAME));
    return doc;
}

/* The document's "name" must agree with the path; a document without one takes it. */
static char *graph_text(struct rf_hreq *r, json_t *doc, const char *name, size_t *len)
{
    json_t *jn = json_object_get(doc, "name");

    if (!jn) {
        json_object_set_new(doc, "name", json_string(name));
    } else if (!json_is_string(jn) || strcmp(json_string_value(jn), name) != 0) {
        json_t *d = json_pack("[{s:s, s:s, s:s}]", "pointer", "/name", "code", "name_mismatch",
                              "message", "the document's name differs from the URL's");
        rf_resp_error(&r->x, 422, "invalid_graph", NULL, d,
                      "the document's name must be \"%s\" (the name in the URL)", name);
        return NULL;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text)
        rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    *len = text ? strlen(text) : 0;
    return text;
}

static void graph_answer(struct rf_rctx *x, const rf_plan *p, int status)
{
    rf_resp_json(x, status, NULL,
                 json_pack("{s:s, s:i, s:s, s:s}", "name", rf_plan_name(p), "version",
                           (json_int_t)rf_plan_version(p), "graph_hash", rf_plan_hash(p),
                           "account", RF_ACCOUNT_NAME));
}

/* Errors of a journal that cannot take a record (net/sjournal.h). */
static void journal_refused(struct rf_rctx *x, int rc)
{
    if (rc == -ENOSPC)
        rf_resp_error(x, 507, "insufficient_storage", "Retry-After: 5\r\n", NULL,
                      "the journal has no space left; nothing was accepted");
    else if (rc == -EAGAIN)
        rf_resp_error(x, 503, "busy", "Retry-After: 1\r\n", NULL,
                      "the journal is busy; retry later");
    else if (rc == -ESHUTDOWN)
        rf_resp_error(x, 503, "stopping", "Retry-After: 5\r\n", NULL, "the server is stopping");
    else
        rf_resp_error(x, 503, "journal_failed", "Retry-After: 5\r\n", NULL,
                      "the journal failed (%s); the server restarts into recovery",
                      rf_strerror(rc));
}

/* A request parked until the journal says its record is durable. */
struct pgraph {
    struct rf_jwait w;
    struct rf_rctx x;
    rf_plan *p;
    bool gone; /* the connection closed meanwhile */
};

static void pgraph_closed(void *ud)
{
    ((struct pgraph *)ud)->gone = true;
}

static void pgraph_done(struct rf_jwait *w, int res)
{
    struct pgraph *g = rf_container_of(w, struct pgraph, w);

    if (!g->gone) {
        if (res == 0)
            graph_answer(&g->x, g->p, 201);
        else
            journal_refused(&g->x, res);
    }
    rf_plan_release(g->p);
    rf_free(g);
}

static void graph_journal(struct rf_api *api, struct rf_hreq *r, rf_plan *p)
{
    struct pgraph *g = rf_calloc(1, sizeof(*g));
    int rc;

    if (!g)
        return rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    g->x = r->x;
    g->p = rf_plan_retain(p);
    g->w.done = pgraph_done;
    rc = rf_sjournal_graph(api->sj, p, &g->w);
    if (rc < 0) {
        journal_refused(&r->x, rc);
        rf_plan_release(g->p);
        rf_free(g);
        return;
    }
    rf_conn_park(&g->x, pgraph_closed, g);
}

static void graph_put(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    rf_diag diag;
    rf_plan *p = NULL;
    bool created = false;
    size_t len;
    json_t *doc = json_body(r, false);
    char *text;
    int rc;

    if (!doc)
        return;
    text = graph_text(r, doc, name, &len);
    json_decref(doc);
    if (!text)
        return;
    rf_diag_init(&diag);
    rc = rf_graph_register(api->eng, text, len, &diag, &p, &created);
    free(text);
    if (rc == RF_EINVAL_GRAPH || diag.count) {
        rf_resp_error(&r->x, 422, "invalid_graph", NULL, diag_details(&diag),
                      "the graph document has %u problem(s)", diag.count);
    } else if (rc < 0) {
        rf_resp_error(&r->x, rc == -ENOMEM ? 500 : 422, rc == -ENOMEM ? "no_memory" : "invalid_graph",
                      NULL, NULL, "%s", rf_strerror(rc));
    } else if (created && api->sj) {
        graph_journal(api, r, p);
    } else {
        graph_answer(&r->x, p, created ? 201 : 200);
    }
    rf_diag_free(&diag);
    rf_plan_release(p);
}

static void graph_get(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    uint64_t version = 0;
    bool set;
    rf_plan *p;

    if (query_u64(r, "version", UINT32_MAX, &version, &set) < 0 || (set && version == 0))
        return bad_query(r, "version", "must be a positive integer");
    p = rf_graph_get(api->eng, name, (uint32_t)version);
    if (!p) {
        if (set && (p = rf_graph_get(api->eng, name, 0)) != NULL) {
            rf_plan_release(p);
            rf_resp_error(&r->x, 404, "not_found", NULL, NULL,
                          "graph %s has no version %lu", name, version);
            return;
        }
        return not_found(r, "graph", name);
    }
    json_t *doc = graph_doc(p);
    rf_plan_release(p);
    if (!doc)
        return rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    rf_resp_json(&r->x, 200, NULL, doc);
}

struct glist {
    struct rf_api *api;
    json_t *arr;
    const char *after;
    uint32_t limit;
    char next[NAME_BYTES_MAX];
};

static int glist_one(void *ud, const rf_plan *latest)
{
    struct glist *g = ud;
    const char *name = rf_plan_name(latest);

    if (g->after && strcmp(name, g->after) <= 0)
        return 0;
    if (json_array_size(g->arr) == g->limit) {
        snprintf(g->next, sizeof(g->next), "%s", json_string_value(json_object_get(
                                                     json_array_get(g->arr, g->limit - 1),
                                                     "name")));
        return 1;
    }
    rf_plan *first = rf_graph_get(g->api->eng, name, 1);
    json_array_append_new(g->arr,
                          json_pack("{s:s, s:i, s:o, s:o, s:s}", "name", name, "latest_version",
                                    (json_int_t)rf_plan_version(latest), "created_at",
                                    ts_json(first ? rf_plan_created_us(first) : 0),
                                    "updated_at", ts_json(rf_plan_created_us(latest)),
                                    "account", RF_ACCOUNT_NAME));
    rf_plan_release(first);
    return 0;
}

static void h_graphs(struct rf_api *api, struct rf_hreq *r)
{
    struct glist g = {.api = api, .arr = json_array(), .limit = LIST_DEFAULT};
    char after[NAME_BYTES_MAX];
    uint64_t limit;
    bool set;
    int n;

    r->x.route = RF_ROUTE_GRAPHS;
    if (!is_get(r)) {
        json_decref(g.arr);
        return method_not_allowed(r, "GET, HEAD");
    }
    if (query_u64(r, "limit", LIST_MAX, &limit, &set) < 0 || (set && limit == 0)) {
        json_decref(g.arr);
        return bad_query(r, "limit", "must be an integer from 1 to 500");
    }
    if (set)
        g.limit = (uint32_t)limit;
    n = rf_query_get(r->h->query, "after", after, sizeof(after));
    if (n >= 0)
        g.after = after;
    else if (n != -ENOENT) {
        json_decref(g.arr);
        return bad_query(r, "after", "is not a graph name");
    }
    rf_graph_foreach(api->eng, glist_one, &g);
    rf_resp_json(&r->x, 200, NULL,
                 json_pack("{s:o, s:o}", "graphs", g.arr, "next",
                           g.next[0] ? json_string(g.next) : json_null()));
}

/* --- submissions ------------------------------------------------------------------------ */

/* SipHash-2-4 with 128-bit output (Aumasson and Bernstein): a keyed PRF, so a token
 * cannot be forged without the process's key, at a tenth of HMAC-SHA256's cost. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v; /* x86-64 and every little-endian Linux target */
}

static void siphash128(const unsigned char key[16], const unsigned char *in, size_t n,
                       uint64_t out[2])
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1 ^ 0xee;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t b = (uint64_t)n << 56, m;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    for (int r = 0; r < 4; r++)
        SIPROUND;
    out[0] = v0 ^ v1 ^ v2 ^ v3;
    v1 ^= 0xdd;
    for (int r = 0; r < 4; r++)
        SIPROUND;
    out[1] = v0 ^ v1 ^ v2 ^ v3;
}

static void token_of(const struct rf_api *api, const char *id, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h[2];

    siphash128(api->token_key, (const unsigned char *)id, strlen(id), h);
    for (int i = 0; i < 16; i++) {
        unsigned byte = (unsigned)(h[i / 8] >> (8 * (i % 8))) & 0xff;
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 15];
    }
    out[32] = '\0';
}

/* Append the NUL-terminated s at *o and advance it. */
static inline void put_cstr(char **o, const char *s)
{
    size_t n = strlen(s);

    memcpy(*o, s, n);
    *o += n;
}

/* The submission's answer, written directly into a stack buffer: it is the API's hot path.
 * Every variable part has a bounded length and needs no escaping: the id (26 Crockford
 * base32), the graph name ([a-z0-9._-]{1,64}), the version, the status and token. */
static void submitted_as(struct rf_api *api, struct rf_rctx *rx, const char *id,
                         const char *graph, uint32_t version, rf_status st, int status)
{
    static const char *const link[] = {"\",\"links\":{\"self\":\"/v1/executions/",
                                       "\",\"events\":\"/v1/executions/",
                                       "/events\",\"result\":\"/v1/executions/",
                                       "/result\",\"ws\":\"/v1/ws?execution_id="};
    char buf[768], token[33], ver[RF_INT_TEXT_BYTES], *o = buf;

    RF_ASSERT(strlen(graph) <= 64);
    RF_ASSERT(strlen(id) < RF_ID_BYTES);
    token_of(api, id, token);
    rf_u64_text(version, ver);
    put_cstr(&o, "{\"id\":\"");
    put_cstr(&o, id);
    put_cstr(&o, "\",\"graph\":\"");
    put_cstr(&o, graph);
    put_cstr(&o, "\",\"version\":");
    put_cstr(&o, ver);
    put_cstr(&o, ",\"status\":\"");
    put_cstr(&o, rf_status_name(st));
    put_cstr(&o, "\",\"token\":\"");
    put_cstr(&o, token);
    for (size_t i = 0; i < RF_ARRAY_LEN(link); i++) {
        put_cstr(&o, link[i]);
        put_cstr(&o, id);
    }
    put_cstr(&o, "\"}}");
    RF_ASSERT(o <= buf + sizeof(buf));
    rf_resp(rx, status, "application/json", NULL, buf, (size_t)(o - buf));
}

static void submitted(struct rf_api *api, struct rf_rctx *rx, struct rf_xrec *x, int status)
{
    submitted_as(api, rx, x->id, rf_plan_name(x->plan), rf_plan_version(x->plan),
                 rf_store_status(x), status);
}

/* Check the envelope {inputs, version?, idempotency_key?, priority?, tags?}. Problems are
 * added to `d`. */
static void submit_envelope(json_t *body, rf_diag *d, uint32_t *version, const char **idem,
                            json_t **tags)
{
    const char *k;
    json_t *v;

    json_object_foreach(body, k, v) {
        char ptr[80];
        snprintf(ptr, sizeof(ptr), "/%.64s", k);
        if (strcmp(k, "inputs") == 0) {
            if (!json_is_object(v))
                rf_diag_add(d, ptr, "type", "inputs must be an object");
        } else if (strcmp(k, "version") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > UINT32_MAX)
                rf_diag_add(d, ptr, "type", "version must be a positive integer");
            else
                *version = (uint32_t)json_integer_value(v);
        } else if (strcmp(k, "idempotency_key") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > RF_IDEM_KEY_BYTES_MAX)
                rf_diag_add(d, ptr, "type", "idempotency_key must be a string of 1 to %u bytes",
                            RF_IDEM_KEY_BYTES_MAX);
            else
                *idem = json_string_value(v);
        } else if (strcmp(k, "priority") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < -100 ||
                json_integer_value(v) > 100)
                rf_diag_add(d, ptr, "type", "priority must be an integer from -100 to 100");
        } else if (strcmp(k, "tags") == 0) {
            size_t i;
            json_t *t;
            if (!json_is_array(v) || json_array_size(v) > TAGS_MAX) {
                rf_diag_add(d, ptr, "type", "tags must be an array of at most %u strings",
                            TAGS_MAX);
                continue;
            }
            json_array_foreach(v, i, t) if (!json_is_string(t) || json_string_length(t) == 0 ||
                                             json_string_length(t) > TAG_BYTES_MAX)
                rf_diag_add(d, ptr, "type", "tags[%zu] must be a string of 1 to %u bytes", i,
                            TAG_BYTES_MAX);
            *tags = v;
        } else {
            rf_diag_add(d, ptr, "unknown_field",
                        "unknown field \"%.64s\" (inputs, version, idempotency_key, priority, "
                        "tags)",
                        k);
        }
    }
}

static void submit_failed(struct rf_api *api, struct rf_rctx *rx, int rc, rf_diag *d,
                          const char *name)
{
    switch (rc) {
    case -EIO:
    case -ENOSPC:
    case -EAGAIN:
        journal_refused(rx, rc);
        return;
    case RF_EINPUTS:
        rf_resp_error(rx, 422, "invalid_inputs", NULL, diag_details(d),
                      "the inputs have %u problem(s)", d->count);
        return;
    case RF_EOVERLOAD:
        rf_metrics_rejected(api->m);
        rf_resp_error(rx, 429, "overloaded", "Retry-After: 1\r\n", NULL,
                      "this shard has its maximum of executions in flight; retry later");
        return;
    case -ESHUTDOWN:
        rf_resp_error(rx, 503, "stopping", "Retry-After: 5\r\n", NULL,
                      "the server is stopping");
        return;
    case -EINPROGRESS:
        rf_resp_error(rx, 409, "in_progress", NULL, NULL,
                      "a submission with this idempotency_key for graph %s is in progress",
                      name);
        return;
    default:
        rf_resp_error(rx, 500, "internal", NULL, NULL, "submission failed: %s",
                      rf_strerror(rc));
    }
}

/* A submission parked until its ACCEPT is durable. */
struct psub {
    struct rf_api *api;
    struct rf_rctx x;
    bool gone; /* the connection closed meanwhile: nobody to answer */
};

static void psub_closed(void *ud)
{
    ((struct psub *)ud)->gone = true;
}

static void psub_accepted(void *ud, struct rf_xrec *x, int res)
{
    struct psub *p = ud;

    if (!p->gone) {
        if (res == 0)
            submitted(p->api, &p->x, x, 202);
        else
            submit_failed(p->api, &p->x, res, NULL, "");
    }
    if (res == 0)
        rf_xrec_release(x);
    rf_free(p);
}

/* Submit an execution of `plan` (owned by the callee) with `inputs` (owned by the callee)
 * and answer: 202 once durable, 200 for an idempotent repeat, or the error. `idem` and
 * `tags` borrowed; `d` gets input problems. */
void rf__api_submit_plan(struct rf_api *api, struct rf_rctx *rx, rf_plan *plan, json_t *inputs,
                         const char *idem, const json_t *tags, rf_diag *d)
{
    struct rf_store_submit s = {.shard = rf_conn_shard(rx->c)->id,
                                .plan = plan,
                                .inputs = inputs,
                                .idem = idem,
                                .tags = tags,
                                .diag = d};
    struct psub *ps = NULL;
    struct rf_xrec *x;
    bool existing;
    int rc;

    if (api->sj) {
        ps = rf_calloc(1, sizeof(*ps));
        if (!ps) {
            rf_plan_release(plan);
            json_decref(inputs);
            rf_resp_error(rx, 500, "no_memory", NULL, NULL, "out of memory");
            return;
        }
        ps->api = api;
        ps->x = *rx;
        s.accepted = psub_accepted;
        s.accepted_ud = ps;
    }
    rc = rf_store_submit(api->st, &s, &x, &existing);
    if (rc == 2) /* the key's execution has left memory: the archive answers */
        submitted_as(api, rx, s.hit.id, rf_plan_name(plan), s.hit.version, s.hit.status, 200);
    char name[72];
    snprintf(name, sizeof(name), "%s", rf_plan_name(plan));
    rf_plan_release(plan);
    if (rc == 1) {
        rf_conn_park(&ps->x, psub_closed, ps); /* answered once the journal has it */
        return;
    }
    rf_free(ps);
    if (rc < 0) {
        submit_failed(api, rx, rc, d, name);
        return;
    }
    if (rc == 2)
        return;
    submitted(api, rx, x, existing ? 200 : 202);
    rf_xrec_release(x);
}

static void submit(struct rf_api *api, struct rf_hreq *r, const char *name)
{
    uint32_t version = 0;
    const char *idem = NULL;
    json_t *tags = NULL, *body;
    rf_plan *plan;
    rf_diag d;

    r->x.route = RF_ROUTE_SUBMIT;
    if (draining(api))
        return submit_failed(api, &r->x, -ESHUTDOWN, NULL, name);
    if (!(body = json_body(r, true)))
        return;
    rf_diag_init(&d);
    submit_envelope(body, &d, &version, &idem, &tags);
    if (d.count) {
        rf_resp_error(&r->x, 400, "bad_request", NULL, diag_details(&d),
                      "the request body has %u problem(s)", d.count);
        goto out;
    }
    plan = rf_graph_get(api->eng, name, version);
    if (!plan) {
        rf_plan *latest = version ? rf_graph_get(api->eng, name, 0) : NULL;
        if (latest)
            rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "graph %s has no version %u",
                          name, version);
        else
            not_found(r, "graph", name);
        rf_plan_release(latest);
        goto out;
    }
    rf__api_submit_plan(api, &r->x, plan, json_incref(json_object_get(body, "inputs")), idem,
                        tags, &d);
out:
    rf_diag_free(&d);
    json_decref(body);
}

/* --- executions ---------------------------------------------------------------------------- */

static json_t *exec_summary(struct rf_xrec *x)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:o, s:o, s:s}", "id", x->id, "graph",
                     rf_plan_name(x->plan), "version", (json_int_t)rf_plan_version(x->plan),
                     "status", rf_status_name(rf_store_status(x)), "tags",
                     x->tags ? json_incref(x->tags) : json_array(), "created_at",
                     ts_json(x->created_us), "account", RF_ACCOUNT_NAME);
}

static void list_one(void *ud, struct rf_xrec *x)
{
    json_array_append_new(ud, exec_summary(x));
}

static int status_of(const char *s)
{
    static const rf_status sts[] = {RF_ST_QUEUED, RF_ST_RUNNING, RF_ST_SUCCEEDED, RF_ST_FAILED,
                                    RF_ST_CANCELED};
    for (size_t i = 0; i < RF_ARRAY_LEN(sts); i++)
        if (strcmp(rf_status_name(sts[i]), s) == 0)
            return (int)sts[i];
    return -1;
}

static void h_executions(struct rf_api *api, struct rf_hreq *r)
{
    struct rf_store_filter f = {.status = -1, .limit = LIST_DEFAULT, .scan_max = LIST_SCAN_MAX};
    char graph[NAME_BYTES_MAX], tag[TAG_BYTES_MAX + 1], status[32], after[RF_EXEC_ID_LEN];
    char next[RF_EXEC_ID_LEN];
    uint64_t limit;
    bool set;
    int n;

    r->x.route = RF_ROUTE_EXECUTIONS;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    if (query_u64(r, "limit", LIST_MAX, &limit, &set) < 0 || (set && limit == 0))
        return bad_query(r, "limit", "must be an integer from 1 to 500");
    if (set)
        f.limit = (uint32_t)limit;
    if ((n = rf_query_get(r->h->query, "graph", graph, sizeof(graph))) >= 0)
        f.graph = graph;
    else if (n != -ENOENT)
        return bad_query(r, "graph", "is not a graph name");
    if ((n = rf_query_get(r->h->query, "tag", tag, sizeof(tag))) >= 0)
        f.tag = tag;
    else if (n != -ENOENT)
        return bad_query(r, "tag", "is not a tag");
    if ((n = rf_query_get(r->h->query, "status", status, sizeof(status))) >= 0) {
        if ((f.status = status_of(status)) < 0)
            return bad_query(r, "status",
                             "must be one of queued, running, succeeded, failed, canceled");
    } else if (n != -ENOENT) {
        return bad_query(r, "status", "is not a status");
    }
    if ((n = rf_query_get(r->h->query, "after", after, sizeof(after))) >= 0)
        f.after = after;
    else if (n != -ENOENT)
        return bad_query(r, "after", "is not an execution id");
    json_t *arr = json_array();
    rf_store_list(api->st, &f, list_one, arr, next);
    rf_resp_json(&r->x, 200, NULL,
                 json_pack("{s:o, s:o}", "executions", arr, "next",
                           next[0] ? json_string(next) : json_null()));
}

static void exec_get(struct rf_api *api, struct rf_hreq *r, struct rf_xrec *x)
{
    json_t *doc;

    (void)api;
    r->x.route = RF_ROUTE_EXECUTION;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    doc = rf_store_document(x);
    if (!doc)
        return rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    json_object_set_new(doc, "account", json_string(RF_ACCOUNT_NAME));
    rf_resp_json(&r->x, 200, NULL, doc);
}

static void exec_cancel(struct rf_api *api, struct rf_hreq *r, struct rf_xrec *x)
{
    (void)api;
    r->x.route = RF_ROUTE_CANCEL;
    if (r->h->method != RF_HTTP_POST)
        return method_not_allowed(r, "POST");
    rf_exec *ex = rf_store_exec(x); /* NULL once finished: nothing left to cancel */
    if (ex)
        rf_exec_cancel(ex);
    rf_exec_release(ex);
    rf_resp_json(&r->x, 202, NULL,
                 json_pack("{s:s, s:s}", "id", x->id, "status",
                           rf_status_name(rf_store_status(x))));
}

/* --- long polls: events and results ---------------------------------------------------- */

struct lpoll {
    struct rf_watch w;
    struct rf_api *api;
    struct rf_rctx x;
    rf_op timer;
    struct __kernel_timespec ts;
    uint64_t after;
    uint32_t limit;
    bool events; /* events, else result */
    bool answered;
    bool timer_armed;
    bool watch_live; /* not disposed yet */
};

static void lpoll_maybe_free(struct lpoll *lp)
{
    if (!lp->timer_armed && !lp->watch_live)
        rf_free(lp);
}

/* Write the events page of x after `after`. Returns false when there is nothing to say
 * yet (no event and not done) and `must` is false. */
static bool events_page(struct rf_rctx *rx, struct rf_xrec *x, uint64_t after, uint32_t limit,
                        bool must)
{
    const struct rf_evt *ev[EVENTS_MAX];
    struct rf_buf b = {0};
    bool done;
    uint32_t n = rf_store_events(x, after, ev, limit, &done);
    char tail[96];

    if (!n && !done && !must)
        return false;
    rf_buf_append(&b, "{\"events\":[", 11);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            rf_buf_append(&b, ",", 1);
        rf_buf_append(&b, ev[i]->s, ev[i]->len);
    }
    int t = snprintf(tail, sizeof(tail), "],\"next\":%lu,\"done\":%s}", after + n,
                     done ? "true" : "false");
    if (rf_buf_append(&b, tail, (size_t)t) < 0)
        rf_resp_error(rx, 500, "no_memory", NULL, NULL, "out of memory");
    else
        rf_resp(rx, 200, "application/json", NULL, b.p, b.len);
    rf_buf_free(&b);
    return true;
}

/* Answer a result request: true when answered (terminal, or `must`). Terminal only once
 * the done callback ran: the output is final then. */
static bool result_page(struct rf_rctx *rx, struct rf_xrec *x, bool must)
{
    struct rf_slice out, err;
    struct rf_buf b = {0};
    rf_status st;

    if (!rf_store_result(x, &st, &out, &err)) {
        if (!must)
            return false;
        rf_resp_json(rx, 202, NULL, json_pack("{s:s}", "status", rf_status_name(rf_store_status(x))));
        return true;
    }
    const char *name = rf_status_name(st);
    if (rf_buf_reserve(&b, 40 + strlen(name) + out.n + err.n) < 0) {
        rf_resp_error(rx, 500, "no_memory", NULL, NULL, "out of memory");
        return true;
    }
    rf_buf_append(&b, "{\"status\":\"", 11);
    rf_buf_append(&b, name, strlen(name));
    rf_buf_append(&b, "\",\"output\":", 11);
    rf_buf_append(&b, out.p, out.n);
    rf_buf_append(&b, ",\"error\":", 9);
    rf_buf_append(&b, err.p, err.n);
    rf_buf_append(&b, "}", 1);
    rf_resp(rx, 200, "application/json", NULL, b.p, b.len);
    rf_buf_free(&b);
    return true;
}

static bool lpoll_try(struct lpoll *lp, bool must)
{
    struct rf_xrec *x = lp->w.x;

    return lp->events ? events_page(&lp->x, x, lp->after, lp->limit, must)
                      : result_page(&lp->x, x, must);
}

static void lpoll_finish(struct lpoll *lp)
{
    lp->answered = true;
    if (lp->timer_armed)
        rf__shard_timer_cancel(lp->w.sh, &lp->timer);
    rf_store_unwatch(&lp->w);
}

static void lpoll_notify(struct rf_watch *w)
{
    struct lpoll *lp = rf_container_of(w, struct lpoll, w);

    if (!lp->answered && lpoll_try(lp, false))
        lpoll_finish(lp);
}

static void lpoll_dispose(struct rf_watch *w)
{
    struct lpoll *lp = rf_container_of(w, struct lpoll, w);

    lp->watch_live = false;
    lpoll_maybe_free(lp);
}

static void lpoll_timer(rf_op *op, int res, uint32_t flags)
{
    struct lpoll *lp = rf_container_of(op, struct lpoll, timer);

    (void)flags;
    lp->timer_armed = false;
    if (res == -ETIME && !lp->answered) {
        /* The watch is still linked: answer with what there is now. */
        lpoll_try(lp, true);
        lp->answered = true;
        rf_store_unwatch(&lp->w); /* disposes now or from its queued post: frees lp */
        return;
    }
    lpoll_maybe_free(lp);
}

static void lpoll_closed(void *ud)
{
    struct lpoll *lp = ud;

    if (lp->answered)
        return;
    lpoll_finish(lp);
}

static void lpoll_start(struct rf_api *api, struct rf_hreq *r, struct rf_xrec *x, bool events,
                        uint64_t after, uint32_t limit, uint64_t wait_ms)
{
    struct lpoll *lp = rf_calloc(1, sizeof(*lp));

    if (!lp)
        return rf_resp_error(&r->x, 500, "no_memory", NULL, NULL, "out of memory");
    lp->api = api;
    lp->x = r->x;
    lp->events = events;
    lp->after = after;
    lp->limit = limit;
    lp->w.sh = rf_conn_shard(r->x.c);
    lp->w.notify = lpoll_notify;
    lp->w.dispose = lpoll_dispose;
    lp->watch_live = true;
    rf_conn_park(&lp->x, lpoll_closed, lp);
    rf_store_watch(x, &lp->w); /* posts once: the first look happens from the post */
    lp->timer_armed = true;
    rf__shard_timer_arm(lp->w.sh, &lp->timer, &lp->ts, wait_ms, lpoll_timer);
}

static int wait_param(struct rf_api *api, struct rf_hreq *r, uint64_t *wait_ms)
{
    bool set;

    if (query_u64(r, "wait_ms", UINT32_MAX, wait_ms, &set) < 0) {
        bad_query(r, "wait_ms", "must be a non-negative integer (milliseconds)");
        return -EINVAL;
    }
    if (*wait_ms > api->cfg.long_poll_max_ms)
        *wait_ms = api->cfg.long_poll_max_ms;
    return 0;
}

static void exec_events(struct rf_api *api, struct rf_hreq *r, struct rf_xrec *x)
{
    uint64_t after = 0, limit = EVENTS_DEFAULT, wait_ms = 0;
    bool set;

    r->x.route = RF_ROUTE_EVENTS;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    if (query_u64(r, "after", UINT32_MAX, &after, &set) < 0)
        return bad_query(r, "after", "must be a non-negative integer (an event seq)");
    if (query_u64(r, "limit", EVENTS_MAX, &limit, &set) < 0 || (set && limit == 0))
        return bad_query(r, "limit", "must be an integer from 1 to 1000");
    if (wait_param(api, r, &wait_ms) < 0)
        return;
    if (events_page(&r->x, x, after, (uint32_t)limit, wait_ms == 0))
        return;
    lpoll_start(api, r, x, true, after, (uint32_t)limit, wait_ms);
}

static void exec_result(struct rf_api *api, struct rf_hreq *r, struct rf_xrec *x)
{
    uint64_t wait_ms = 0;

    r->x.route = RF_ROUTE_RESULT;
    if (!is_get(r))
        return method_not_allowed(r, "GET, HEAD");
    if (wait_param(api, r, &wait_ms) < 0)
        return;
    if (result_page(&r->x, x, wait_ms == 0))
        return;
    lpoll_start(api, r, x, false, 0, 0, wait_ms);
}

/* --- routing ------------------------------------------------------------------------------- */

static void route_graphs(struct rf_api *api, struct rf_hreq *r, struct rf_slice *seg, int n)
{
    char name[NAME_BYTES_MAX];

    if (n == 2)
        return h_graphs(api, r);
    if (seg_name(seg[2], name, sizeof(name)) < 0)
        return not_found(r, "graph", "(bad name)");
    if (n == 3) {
        r->x.route = RF_ROUTE_GRAPH;
        if (r->h->method == RF_HTTP_PUT)
            return graph_put(api, r, name);
        if (is_get(r))
            return graph_get(api, r, name);
        return method_not_allowed(r, "GET, HEAD, PUT");
    }
    if (n == 4 && slice_eq(seg[3], "executions")) {
        r->x.route = RF_ROUTE_SUBMIT;
        if (r->h->method != RF_HTTP_POST)
            return method_not_allowed(r, "POST");
        return submit(api, r, name);
    }
    rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "no such resource");
}

/* Answer a request about execution x (held) with the segments after /v1/executions/{id}. */
static void exec_route(struct rf_api *api, struct rf_hreq *r, struct rf_xrec *x,
                       const struct rf_slice *sub)
{
    if (!sub)
        exec_get(api, r, x);
    else if (slice_eq(*sub, "events"))
        exec_events(api, r, x);
    else if (slice_eq(*sub, "result"))
        exec_result(api, r, x);
    else if (slice_eq(*sub, "cancel"))
        exec_cancel(api, r, x);
    else
        rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "no such resource");
}

/* A request about an execution that left memory: parked while the journal reader looks
 * for it, then answered as if it had been there. The parts of the request the handlers
 * read (method, path, query) are copied. */
struct plookup {
    struct rf_sjlookup l;
    struct rf_api *api;
    struct rf_rctx x;
    struct rf_http_req h;
    bool gone;
    bool has_sub;
    uint32_t sub_off, sub_n; /* the segment after the id, within the path */
    char *text; /* path, then query */
};

static void plookup_closed(void *ud)
{
    ((struct plookup *)ud)->gone = true;
}

static void plookup_done(struct rf_sjlookup *l, struct rf_xrec *x)
{
    struct plookup *p = rf_container_of(l, struct plookup, l);

    if (!p->gone) {
        struct rf_hreq r = {.x = p->x, .h = &p->h};
        struct rf_slice sub = {p->text + p->sub_off, p->sub_n};
        if (x) {
            exec_route(p->api, &r, x, p->has_sub ? &sub : NULL);
        } else {
            r.x.route = p->has_sub ? RF_ROUTE_OTHER : RF_ROUTE_EXECUTION;
            not_found(&r, "execution", "with this id");
        }
    }
    rf_xrec_release(x);
    rf_free(p->text);
    rf_free(p);
}

/* 0 parked, or < 0 when a lookup cannot be made (then answer 404 at once). */
static int exec_lookup(struct rf_api *api, struct rf_hreq *r, const char *id,
                       const struct rf_slice *sub)
{
    struct plookup *p = rf_calloc(1, sizeof(*p));
    const struct rf_http_req *h = r->h;

    if (!p || !(p->text = rf_malloc((size_t)h->path.n + h->query.n + 1))) {
        rf_free(p);
        return -ENOMEM;
    }
    memcpy(p->text, h->path.p, h->path.n);
    memcpy(p->text + h->path.n, h->query.p, h->query.n);
    p->h.method = h->method;
    p->h.method_s = h->method_s;
    p->h.path = (struct rf_slice){p->text, h->path.n};
    p->h.query = (struct rf_slice){p->text + h->path.n, h->query.n};
    p->has_sub = sub != NULL;
    p->sub_off = sub ? (uint32_t)(sub->p - h->path.p) : 0;
    p->sub_n = sub ? sub->n : 0;
    p->api = api;
    p->x = r->x;
    memcpy(p->l.id, id, RF_ID_BYTES); /* checked: 26 characters and the NUL */
    p->l.done = plookup_done;
    int rc = rf_sjournal_lookup(api->sj, &p->l);
    if (rc < 0) {
        rf_free(p->text);
        rf_free(p);
        return rc;
    }
    rf_conn_park(&p->x, plookup_closed, p);
    return 0;
}

static void route_executions(struct rf_api *api, struct rf_hreq *r, struct rf_slice *seg, int n)
{
    char id[RF_EXEC_ID_LEN + 8];
    const struct rf_slice *sub = n == 4 ? &seg[3] : NULL;
    struct rf_xrec *x = NULL;

    if (n == 2)
        return h_executions(api, r);
    r->x.route = n == 3 ? RF_ROUTE_EXECUTION : RF_ROUTE_OTHER;
    if (n > 4 || seg_name(seg[2], id, sizeof(id)) < 0 || strlen(id) != RF_EXEC_ID_LEN - 1)
        return not_found(r, "execution", n >= 3 ? "with this id" : "");
    x = rf_store_get(api->st, id);
    if (!x) {
        if (api->sj && (!sub || slice_eq(*sub, "events") || slice_eq(*sub, "result") ||
                        slice_eq(*sub, "cancel")) &&
            exec_lookup(api, r, id, sub) == 0)
            return;
        return not_found(r, "execution", "with this id");
    }
    exec_route(api, r, x, sub);
    rf_xrec_release(x);
}

void rf_api_handle(struct rf_api *api, struct rf_hreq *r)
{
    struct rf_slice seg[SEGS_MAX];
    int n = rf_path_split(r->h->path, seg, SEGS_MAX);

    if (n == 1 && slice_eq(seg[0], "healthz"))
        return h_healthz(api, r);
    if (n == 1 && slice_eq(seg[0], "readyz"))
        return h_readyz(api, r);
    if (n == 1 && slice_eq(seg[0], "metrics"))
        return h_metrics(api, r);
    /* Relaxed: a flag; what recovery built is published through the store's own locks. */
    if (!atomic_load_explicit(&api->ready, memory_order_relaxed))
        return rf_resp_error(&r->x, 503, "starting", "Retry-After: 1\r\n", NULL,
                             "the server is recovering its journal; retry shortly");
    if (n >= 2 && slice_eq(seg[0], "v1")) {
        if (slice_eq(seg[1], "graphs"))
            return route_graphs(api, r, seg, n);
        if (slice_eq(seg[1], "executions"))
            return route_executions(api, r, seg, n);
        if (slice_eq(seg[1], "hooks"))
            return rf__api_hooks(api, r, seg, n);
        if (slice_eq(seg[1], "triggers"))
            return rf__api_triggers(api, r, seg, n);
        if (n == 2 && slice_eq(seg[1], "ws")) {
            r->x.route = RF_ROUTE_WS;
            return rf_wsapi_upgrade(api->eng, api->st, api->rb, r, api->cfg.ws_subs_max);
        }
    }
    rf_resp_error(&r->x, 404, "not_found", NULL, NULL, "no such resource: %.*s",
                  (int)RF_MIN(r->h->path.n, 200u), r->h->path.p);
}

/* --- lifetime ------------------------------------------------------------------------------ */

int rf_api_new(rf_engine *eng, struct rf_store *st, struct rf_metrics *m,
               const struct rf_api_config *cfg, struct rf_api **out)
{
    struct rf_api *api = rf_calloc(1, sizeof(*api));

    if (!api)
        return -ENOMEM;
    api->eng = eng;
    api->st = st;
    api->m = m;
    api->cfg = *cfg;
    if (!api->cfg.ws_subs_max)
        api->cfg.ws_subs_max = 1024;
    if (RAND_bytes(api->token_key, sizeof(api->token_key)) != 1) {
        rf_free(api);
        return -EIO;
    }
    if (rf_hooks_new(eng, &api->hooks) < 0) {
        rf_free(api);
        return -ENOMEM;
    }
    *out = api;
    return 0;
}

void rf_api_load_def(void *ud, uint8_t kind, const char *name, const char *doc, size_t doc_len,
                     int64_t created_us)
{
    struct rf_api *api = ud;

    if (kind == RF_XDEF_HOOK)
        rf_hooks_load(api->hooks, name, doc, doc_len, created_us);
    else if (kind == RF_XDEF_TRIGGER && api->triggers)
        rf_triggers_load(api->triggers, name, doc, doc_len, created_us);
}

void rf_api_set_kafka(struct rf_api *api, struct rf_kafka *k)
{
    api->kafka = k;
}

void rf_api_set_triggers(struct rf_api *api, struct rf_triggers *ts)
{
    api->triggers = ts;
}

void rf_api_set_redis(struct rf_api *api, struct rf_rbridge *rb)
{
    api->rb = rb;
}

void rf_api_set_journal(struct rf_api *api, struct rf_sjournal *sj)
{
    api->sj = sj;
}

void rf_api_set_ready(struct rf_api *api)
{
    atomic_store_explicit(&api->ready, 1, memory_order_relaxed); /* a flag */
}

void rf_api_free(struct rf_api *api)
{
    if (!api)
        return;
    rf_hooks_free(api->hooks);
    rf_free(api);
}

void rf_api_set_draining(struct rf_api *api)
{
    atomic_store_explicit(&api->draining, 1, memory_order_relaxed); /* a flag, no data */
}

/* --- for the other parts of the API (net/api_int.h) -------------------------------------- */

bool rf__api_draining(const struct rf_api *api)
{
    return draining(api);
}

json_t *rf__api_json_body(struct rf_hreq *r, bool empty_is_object)
{
    return json_body(r, empty_is_object);
}

void rf__api_not_found(struct rf_hreq *r, const char *what, const char *name)
{
    not_found(r, what, name);
}

void rf__api_method_not_allowed(struct rf_hreq *r, const char *allow)
{
    method_not_allowed(r, allow);
}

json_t *rf__api_diag_details(const rf_diag *d)
{
    return diag_details(d);
}

void rf__api_journal_refused(struct rf_rctx *x, int rc)
{
    journal_refused(x, rc);
}

int rf__api_seg_name(struct rf_slice s, char *out, size_t cap)
{
    return seg_name(s, out, cap);
}

bool rf__api_slice_eq(struct rf_slice s, const char *lit)
{
    return slice_eq(s, lit);
}
