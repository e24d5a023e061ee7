/*
 * net/rbridge.c: the Redis bridge's frame (net/rbridge.h has the design): configuration,
 * the two connections of every shard and their hooks, the shard service that drives them
 * (flush once per loop iteration, close at quit, wait for their completions), the Lua
 * scripts' digests, health and statistics.
 *
 * The scripts are loaded (SCRIPT LOAD) as the first commands of every command connection
 * and called by digest (EVALSHA): they are in Redis's script cache before any call on the
 * same connection, because one connection's commands run in order.
 */
#include "net/rbridge_int.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "engine/alloc.h"
#include "net/sjournal.h"

/* Publish events: KEYS[1] the stream (also the channel's name), ARGV[1] its TTL in
 * seconds, then (seq, text) pairs. An event whose id is not past the stream's last (a
 * second publish after a restart) is refused by XADD and not published again. */
const char rb_pub_script[] =
    "local n = 0\n"
    "for i = 2, #ARGV, 2 do\n"
    "  local r = redis.pcall('XADD', KEYS[1], '0-' .. ARGV[i], 'e', ARGV[i + 1])\n"
    "  if type(r) == 'string' then\n"
    "    redis.call('PUBLISH', KEYS[1], ARGV[i + 1])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "if n > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return n\n";

/* Give a lease back: KEYS[1] the lease, ARGV[1] our token; only ours is deleted. */
const char rb_rel_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

size_t rb_key(const struct rf_rbridge *b, const char *kind, const char *rest, size_t rest_len,
              char *out)
{
    int n = snprintf(out, RB_KEY_BYTES, "%s:%s:%.*s", b->cfg.prefix, kind, (int)rest_len, rest);

    RF_ASSERT(n > 0 && (size_t)n < RB_KEY_BYTES);
    return (size_t)n;
}

static void sha_hex(const char *text, char out[RB_SHA_HEX])
{
    unsigned char d[SHA_DIGEST_LENGTH];

    SHA1((const unsigned char *)text, strlen(text), d);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* --- connection hooks ---------------------------------------------------------------------- */

static void on_loaded(void *ud, const redisReply *r)
{
    (void)ud;
    if (r && r->type == REDIS_REPLY_ERROR)
        rf_log_error("\"msg\":\"redis: SCRIPT LOAD failed\",\"err\":\"%.120s\"", r->str);
}

static void load_scripts(struct rb_shard *rs)
{
    const char *scripts[2] = {rb_pub_script, rb_rel_script};

    for (int k = 0; k < 2; k++) {
        const char *argv[3] = {"SCRIPT", "LOAD", scripts[k]};
        size_t lens[3] = {6, 4, strlen(scripts[k])};
        (void)rf_redis_cmd(rs->cmd, on_loaded, rs, 3, argv, lens); /* up: only -ENOMEM */
    }
}

static void cmd_up(void *ud)
{
    struct rb_shard *rs = ud;

    load_scripts(rs);
    if (!rs->cmd_was_up) {
        rs->cmd_was_up = true;
        /* Relaxed: a gauge for readyz; nothing is published through it. */
        atomic_fetch_add_explicit(&rs->b->shards_up, 1, memory_order_relaxed);
    }
    rf_log_info("\"msg\":\"redis: connected\",\"shard\":%u,\"host\":\"%s\",\"port\":%u",
                rs->sh->id, rs->b->cfg.conn.host, rs->b->cfg.conn.port);
    rb_events_cmd_up(rs);
}

static void cmd_down(void *ud)
{
    struct rb_shard *rs = ud;

    rb_count(&rs->b->drops, 1);
    if (rs->cmd_was_up) {
        rs->cmd_was_up = false;
        /* Relaxed: as in cmd_up. */
        atomic_fetch_sub_explicit(&rs->b->shards_up, 1, memory_order_relaxed);
    }
    if (!rs->quitting)
        rf_log_warn("\"msg\":\"redis: connection lost, the cache is bypassed until it is "
                    "back\",\"shard\":%u",
                    rs->sh->id);
}

static void sub_up(void *ud)
{
    rb_events_sub_up(ud);
}

static void sub_down(void *ud)
{
    rb_events_sub_down(ud);
}

/* --- the shard service ------------------------------------------------------------------------ */

static int svc_start(void *ud, struct rf_shard *sh)
{
    struct rf_rbridge *b = ud;
    struct rb_shard *rs = b->sh[sh->id];
    struct rf_redis_hooks ch = {.ud = rs, .on_up = cmd_up, .on_down = cmd_down};
    struct rf_redis_hooks sb = {.ud = rs,
                                .on_up = sub_up,
                                .on_down = sub_down,
                                .on_message = rb_events_message,
                                .on_subscribed = rb_events_subscribed};
    int rc;

    rs->sh = sh;
    if ((rc = rb_events_init(rs)) < 0 ||
        (rc = rf_redis_new(sh, &b->cfg.conn, &ch, false, &rs->cmd)) < 0 ||
        (rc = rf_redis_new(sh, &b->cfg.conn, &sb, true, &rs->sub)) < 0)
        return rc;
    return 0;
}

static void svc_flush(void *ud, struct rf_shard *sh)
{
    struct rb_shard *rs = ((struct rf_rbridge *)ud)->sh[sh->id];

    rf_redis_flush(rs->cmd);
    rf_redis_flush(rs->sub);
}

static void svc_quit(void *ud, struct rf_shard *sh)
{
    struct rb_shard *rs = ((struct rf_rbridge *)ud)->sh[sh->id];

    rs->quitting = true;
    rb_events_quit(rs);
}

static bool svc_busy(void *ud, struct rf_shard *sh)
{
    struct rb_shard *rs = ((struct rf_rbridge *)ud)->sh[sh->id];
    /* Relaxed: the owner's own count, read on the owner. */
    uint32_t inflight = atomic_load_explicit(&sh->inflight, memory_order_relaxed);

    /* Executions still finishing store results and publish events: the connections close
     * once nothing is in flight on this shard and the last publish was answered. */
    if (!rs->closed && inflight == 0 && rs->pub_inflight == 0 && rs->nfollow_mem == 0) {
        rs->closed = true;
        rf_redis_close(rs->cmd);
        rf_redis_close(rs->sub);
    }
    return !rs->closed || rf_redis_busy(rs->cmd) || rf_redis_busy(rs->sub);
}

static void svc_stop(void *ud, struct rf_shard *sh)
{
    struct rb_shard *rs = ((struct rf_rbridge *)ud)->sh[sh->id];

    rf_redis_free(rs->cmd);
    rf_redis_free(rs->sub);
    rs->cmd = rs->sub = NULL;
    rb_events_fini(rs);
}

/* --- the bridge ---------------------------------------------------------------------------------- */

int rf_rbridge_new(rf_engine *eng, struct rf_sjournal *sj, const struct rf_rbridge_config *cfg,
                   struct rf_rbridge **out)
{
    struct rf_rbridge *b;
    uint8_t rnd[16];
    int rc;

    if (strlen(cfg->prefix) >= RF_RBRIDGE_PREFIX_BYTES)
        return -EINVAL;
    b = rf_zalloc_aligned(sizeof(*b), RF_CACHELINE);
    if (!b)
        return -ENOMEM;
    b->eng = eng;
    b->cfg = *cfg;
    if (!b->cfg.prefix[0])
        snprintf(b->cfg.prefix, sizeof(b->cfg.prefix), "ringflow");
    if (!b->cfg.events_ttl_s)
        b->cfg.events_ttl_s = 3600;
    if (!b->cfg.follow_wait_ms)
        b->cfg.follow_wait_ms = 5000;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)rf_now_ns();
        memcpy(rnd, &t, sizeof(t));
        memcpy(rnd + 8, &b, sizeof(void *));
    }
    for (int i = 0; i < 16; i++)
        snprintf(b->token + 2 * i, 3, "%02x", rnd[i]);
    sha_hex(rb_pub_script, b->pub_sha);
    sha_hex(rb_rel_script, b->rel_sha);
    b->n = rf_engine_shards(eng);
    b->sh = rf_calloc(b->n, sizeof(*b->sh));
    if (!b->sh) {
        rf_rbridge_free(b);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        b->sh[i] = rf_zalloc_aligned(sizeof(*b->sh[i]), RF_CACHELINE);
        if (!b->sh[i]) {
            rf_rbridge_free(b);
            return -ENOMEM;
        }
        b->sh[i]->b = b;
    }
    b->svc = (struct rf_shard_service){.ud = b,
                                       .start = svc_start,
                                       .flush = svc_flush,
                                       .quit = svc_quit,
                                       .busy = svc_busy,
                                       .stop = svc_stop};
    rb_cache_ops(&b->ops);
    if ((rc = rf__engine_set_service(eng, &b->svc)) < 0 ||
        (rc = rf__engine_set_remote_cache(eng, &b->ops, b)) < 0) {
        rf_rbridge_free(b);
        return rc;
    }
    if (sj)
        (void)rf_sjournal_set_publisher(sj, rb_publish, b); /* Redis is always the first */
    *out = b;
    return 0;
}

void rf_rbridge_free(struct rf_rbridge *b)
{
    if (!b)
        return;
    for (uint32_t i = 0; b->sh && i < b->n; i++)
        rf_free(b->sh[i]);
    rf_free(b->sh);
    rf_free(b);
}

bool rf_rbridge_up(const struct rf_rbridge *b)
{
    /* Relaxed: a gauge. */
    return atomic_load_explicit(&b->shards_up, memory_order_relaxed) == b->n;
}

static uint64_t snap(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed); /* a statistic */
}

void rf_rbridge_stats(const struct rf_rbridge *b, struct rf_rbridge_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->shards = b->n;
    out->shards_up = atomic_load_explicit(&b->shards_up, memory_order_relaxed); /* a gauge */
    out->cache_hits = snap(&b->hits);
    out->cache_misses = snap(&b->misses);
    out->cache_bypassed = snap(&b->bypassed);
    out->cache_lease_waits = snap(&b->lease_waits);
    out->cache_stores = snap(&b->stores);
    out->events_published = snap(&b->published);
    out->events_unpublished = snap(&b->unpublished);
    out->follows = snap(&b->follows);
    out->drops = snap(&b->drops);
}
