/*
 * bench/rcache.c: the cache-hit path through Redis, measured where the engine uses it: the
 * remote cache tier's lookups (net/rcache.c over net/redis.c) on the shards' rings, every
 * one a hit, against redis-benchmark's pipelined GETs in the same run (bench/storage.sh
 * runs both and prints the ratio).
 *
 *   build/release/bench/rcache --redis redis://127.0.0.1:6379 [--shards S] [--depth D]
 *       [--keys K] [--value-bytes B] [--seconds T] [--warmup T] [--json]
 *
 * It stores K values of about B bytes of JSON under the tier's keys (one pipelined burst
 * over a plain hiredis connection from the main thread), then each shard keeps D lookups
 * in flight for T seconds (after a warmup): a lookup is the tier's fetch (GET, pipelined
 * with every other lookup of the loop iteration; the reply's JSON parsed into a value),
 * and its answer starts the next. Latency runs from fetch to answer, recorded in a log-
 * bucketed histogram per shard. Printed: lookups/s, hits, misses, errors, and latency
 * p50/p90/p99/p99.9/max.
 *
 * The peer, `redis-benchmark -t get -P D -c S`, sends D GETs per connection at a time and
 * parses the replies but no JSON: the comparison is our whole lookup against a bare GET.
 */
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/load/hist.h"
#include "engine/internal.h"
#include "net/dcfg.h"
#include "net/rbridge.h"
#include "net/rbridge_int.h"
#include "sched/shard.h"

#define DEPTH_MAX 4096u
#define PREFIX    "rcbench"

struct lookup {
    struct rf_rcache_req req;
    struct bshard *bs;
    uint64_t t0;
};

struct bshard {
    struct rf_post post;
    struct rf_rbridge *b;
    struct lookup *lk;
    uint32_t depth, keys, next, id, nshards;
    _Atomic uint32_t inflight;
    _Atomic bool measuring, stopping;
    uint64_t hits, misses, errors; /* owner only; read after it stopped */
    struct rfl_hist hist;
} __attribute__((aligned(64)));

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void key_of(uint32_t i, uint8_t k[16])
{
    memset(k, 0, 16);
    memcpy(k, &i, sizeof(i));
    k[15] = 0xbe;
}

static void start_one(struct lookup *l);

static void answered(struct rf_rcache_req *req, int res, json_t *value)
{
    struct lookup *l = rf_container_of(req, struct lookup, req);
    struct bshard *bs = l->bs;

    if (atomic_load_explicit(&bs->measuring, memory_order_relaxed)) {
        rfl_hist_record(&bs->hist, now_ns() - l->t0);
        if (res == 1)
            bs->hits++;
        else if (res == 0)
            bs->misses++;
        else
            bs->errors++;
    }
    if (res == 0) /* a miss took the lease: give it back */
        bs->b->ops.abandon(bs->b, req->key);
    json_decref(value);
    start_one(l);
}

static void start_one(struct lookup *l)
{
    struct bshard *bs = l->bs;

    for (;;) {
        if (atomic_load_explicit(&bs->stopping, memory_order_relaxed)) {
            atomic_fetch_sub(&bs->inflight, 1);
            return;
        }
        key_of(bs->next * bs->nshards + bs->id, l->req.key);
        bs->next = (bs->next + 1) % (bs->keys / bs->nshards);
        l->req.done = answered;
        l->req.lease_ms = 1000;
        l->t0 = now_ns();
        int rc = bs->b->ops.fetch(bs->b, &l->req);
        if (rc == -EINPROGRESS)
            return;
        bs->errors++; /* not connected: count it and try again */
    }
}

static void begin(struct rf_post *p, struct rf_shard *sh)
{
    struct bshard *bs = rf_container_of(p, struct bshard, post);

    (void)sh;
    for (uint32_t i = 0; i < bs->depth; i++) {
        bs->lk[i].bs = bs;
        atomic_fetch_add(&bs->inflight, 1);
        start_one(&bs->lk[i]);
    }
}

static int preload(const char *host, uint16_t port, uint32_t keys, uint32_t bytes)
{
    redisContext *c = redisConnect(host, port);
    char *val = malloc(bytes + 64), *fill = malloc(bytes + 1);
    static const char hexd[] = "0123456789abcdef";

    if (!c || c->err || !val || !fill) {
        fprintf(stderr, "rcache: cannot connect to redis at %s:%u\n", host, port);
        return -1;
    }
    int pad = (int)bytes - 20 > 0 ? (int)bytes - 20 : 1;
    memset(fill, 'x', (size_t)pad); /* the padding that brings a value to about `bytes` */
    for (uint32_t i = 0; i < keys; i++) {
        uint8_t k[16];
        char key[128], hex[33];
        key_of(i, k);
        for (int j = 0; j < 16; j++) {
            hex[2 * j] = hexd[k[j] >> 4];
            hex[2 * j + 1] = hexd[k[j] & 15];
        }
        hex[32] = 0;
        snprintf(key, sizeof(key), "%s:cache:%s", PREFIX, hex);
        int n = snprintf(val, bytes + 64, "{\"i\":%u,\"pad\":\"%.*s\"}", i, pad, fill);
        redisAppendCommand(c, "SET %s %b", key, val, (size_t)n);
        if (i % 1000 == 999 || i + 1 == keys) {
            for (uint32_t j = 0; j <= i % 1000; j++) {
                redisReply *r;
                if (redisGetReply(c, (void **)&r) != REDIS_OK)
                    return -1;
                freeReplyObject(r);
            }
        }
    }
    free(val);
    free(fill);
    redisFree(c);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: rcache --redis redis://HOST:PORT [--shards S] [--depth D] "
                    "[--keys K] [--value-bytes B] [--seconds T] [--warmup T] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"redis", 1, 0, 'r'},   {"shards", 1, 0, 's'},      {"depth", 1, 0, 'd'},
        {"keys", 1, 0, 'k'},    {"value-bytes", 1, 0, 'b'}, {"seconds", 1, 0, 'T'},
        {"warmup", 1, 0, 'w'},  {"json", 0, 0, 'j'},        {0, 0, 0, 0}};
    const char *url = NULL;
    uint32_t shards = 1, depth = 64, keys = 100000, bytes = 100;
    double secs = 5, warm = 1;
    bool json = false;
    int o;

    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'r': url = optarg; break;
        case 's': shards = (uint32_t)atoi(optarg); break;
        case 'd': depth = (uint32_t)atoi(optarg); break;
        case 'k': keys = (uint32_t)atoi(optarg); break;
        case 'b': bytes = (uint32_t)atoi(optarg); break;
        case 'T': secs = atof(optarg); break;
        case 'w': warm = atof(optarg); break;
        case 'j': json = true; break;
        default: usage();
        }
    }
    struct rf_dcfg_addr a;
    uint32_t db = 0;
    if (!url || rf_dcfg_redis_url(url, &a, &db) < 0 || !shards || shards > 64 || !depth ||
        depth > DEPTH_MAX || keys < shards || bytes > 4096 || secs <= 0)
        usage();
    if (preload(a.host, a.port, keys, bytes) < 0)
        return 1;
    rf__log_level = RF_LOG_WARN; /* no "connected" lines in the output */

    rf_config ec = {.shards = shards, .log_level = RF_LOG_WARN};
    rf_engine *eng;
    struct rf_rbridge *b;
    struct rf_rbridge_config bc = {.conn = {.port = a.port,
                                            .db = db,
                                            .timeout_ms = 2000,
                                            .backoff_min_ms = 50,
                                            .backoff_max_ms = 1000,
                                            .pending_max = 65536},
                                   .prefix = PREFIX};
    snprintf(bc.conn.host, sizeof(bc.conn.host), "%.*s", (int)sizeof(bc.conn.host) - 1, a.host);
    if (rf_engine_new(&ec, &eng) < 0 || rf_rbridge_new(eng, NULL, &bc, &b) < 0 ||
        rf_engine_start(eng) < 0) {
        fprintf(stderr, "rcache: cannot start the engine\n");
        return 1;
    }
    for (int i = 0; i < 500 && !rf_rbridge_up(b); i++)
        usleep(10000);
    if (!rf_rbridge_up(b)) {
        fprintf(stderr, "rcache: redis not connected\n");
        return 1;
    }
    struct bshard *bs = aligned_alloc(64, shards * sizeof(*bs));
    memset(bs, 0, shards * sizeof(*bs));
    for (uint32_t i = 0; i < shards; i++) {
        bs[i].b = b;
        bs[i].id = i;
        bs[i].nshards = shards;
        bs[i].depth = depth;
        bs[i].keys = keys;
        bs[i].lk = calloc(depth, sizeof(*bs[i].lk));
        rfl_hist_init(&bs[i].hist);
        bs[i].post.fn = begin;
        rf__shard_post(rf__engine_shard(eng, i), &bs[i].post);
    }
    usleep((useconds_t)(warm * 1e6));
    for (uint32_t i = 0; i < shards; i++)
        atomic_store(&bs[i].measuring, true);
    uint64_t t0 = now_ns();
    usleep((useconds_t)(secs * 1e6));
    for (uint32_t i = 0; i < shards; i++)
        atomic_store(&bs[i].measuring, false);
    double el = (double)(now_ns() - t0) / 1e9;
    for (uint32_t i = 0; i < shards; i++)
        atomic_store(&bs[i].stopping, true);
    for (int w = 0; w < 500; w++) {
        uint32_t left = 0;
        for (uint32_t i = 0; i < shards; i++)
            left += atomic_load(&bs[i].inflight);
        if (!left)
            break;
        usleep(10000);
    }
    struct rfl_hist h;
    uint64_t hits = 0, misses = 0, errors = 0;
    rfl_hist_init(&h);
    for (uint32_t i = 0; i < shards; i++) {
        rfl_hist_merge(&h, &bs[i].hist);
        hits += bs[i].hits;
        misses += bs[i].misses;
        errors += bs[i].errors;
    }
    double rate = (double)h.count / el;
    if (json)
        printf("{\"lookups_per_s\":%.0f,\"hits\":%lu,\"misses\":%lu,\"errors\":%lu,"
               "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99.9\":%.1f,"
               "\"max\":%.1f}}\n",
               rate, hits, misses, errors, rfl_hist_percentile(&h, 50) / 1e3,
               rfl_hist_percentile(&h, 90) / 1e3, rfl_hist_percentile(&h, 99) / 1e3,
               rfl_hist_percentile(&h, 99.9) / 1e3, (double)h.max_ns / 1e3);
    else
        printf("remote cache lookups: %.0f/s (%u shard(s), %u in flight each), %lu hits, %lu "
               "misses, %lu errors; latency us p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max "
               "%.1f\n",
               rate, shards, depth, hits, misses, errors, rfl_hist_percentile(&h, 50) / 1e3,
               rfl_hist_percentile(&h, 90) / 1e3, rfl_hist_percentile(&h, 99) / 1e3,
               rfl_hist_percentile(&h, 99.9) / 1e3, (double)h.max_ns / 1e3);
    rf_engine_stop(eng, 2000);
    rf_rbridge_free(b);
    rf_engine_free(eng);
    for (uint32_t i = 0; i < shards; i++)
        free(bs[i].lk);
    free(bs);
    return 0;
}
