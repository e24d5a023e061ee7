/*
 * net/rbridge.h: ringflowd and Redis. Two connections per shard (net/redis.h), on the
 * shard's ring: one for commands, one subscribed to channels. Over them:
 *
 *   the result cache's remote tier (net/rcache.c): `<prefix>:cache:<lineage hex>` holds a
 *   node's output as JSON text, SET with EX ttl after a successful run; the lookups of one
 *   loop iteration leave in one write; single flight across instances through a lease,
 *   `<prefix>:lease:<lineage hex>`, taken with SET NX PX by the first runner and given
 *   back (compare-and-delete) when its run ends; a lookup that finds the lease taken polls
 *   for the holder's result until it comes or the lease ends.
 *
 *   live events across instances (net/revents.c): every event, once it is in the home
 *   shard's journal, is added to the execution's stream `<prefix>:events:<id>` (entry id
 *   0-<seq>, so a second add of the same event is refused and never published twice) and
 *   published on the channel of the same name, by one script, atomically. A WebSocket
 *   subscriber on another instance subscribes to the channel, waits for the confirmation,
 *   reads the stream from its `after`, then takes live messages, buffering those that come
 *   during the read and reading again on any gap: the whole sequence, no gap, no
 *   duplicate. docs/redis.md says why this and not streams alone.
 *
 * Redis down or slow never blocks or fails an execution: lookups answer "unavailable" at
 * once (the node runs), stores and publishes are dropped or retried, /readyz says
 * "degraded" and a counter says how many lookups went without the cache.
 */
#ifndef RF_NET_RBRIDGE_H
#define RF_NET_RBRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "net/redis.h"
#include "ringflow.h"

#define RF_RBRIDGE_PREFIX_BYTES 64u /* key prefix, NUL included */

struct rf_sjournal;
struct rf_rbridge;

struct rf_rbridge_config {
    struct rf_redis_config conn;
    char prefix[RF_RBRIDGE_PREFIX_BYTES]; /* "" = "ringflow" */
    uint32_t events_ttl_s;   /* an event stream's life after its newest event; 0 = 1 h */
    uint32_t follow_wait_ms; /* a follower of an unknown execution waits this long; 0 = 5 s */
};

/* A bridge for `eng` (not started yet): adds its shard service and the remote cache tier,
 * and (sj may be NULL) becomes the journal's publisher. cfg copied. 0, -EINVAL, -ENOMEM,
 * -EBUSY (the engine runs). */
int rf_rbridge_new(rf_engine *eng, struct rf_sjournal *sj, const struct rf_rbridge_config *cfg,
                   struct rf_rbridge **out);
/* After rf_engine_stop. NULL is a no-op. */
void rf_rbridge_free(struct rf_rbridge *b);

/* Every shard's command connection is up (readyz: "degraded" when not). Any thread. */
bool rf_rbridge_up(const struct rf_rbridge *b);

struct rf_rbridge_stats {
    uint32_t shards, shards_up;
    uint64_t cache_hits, cache_misses, cache_bypassed, cache_lease_waits, cache_stores;
    uint64_t events_published, events_unpublished, follows;
    uint64_t drops; /* command connections lost (down, or no reply in time) */
};
void rf_rbridge_stats(const struct rf_rbridge *b, struct rf_rbridge_stats *out); /* any thread */

/* --- following an execution of another instance (net/wsapi.c) ------------------------------ */

struct rf_rfollow;

struct rf_rfollow_hooks {
    void *ud;
    /* One event's JSON text (borrowed for the call), in seq order. < 0: stop (the follower
     * is gone after the call, as after rf_rbridge_unfollow; `end` is not called). */
    int (*event)(void *ud, const char *text, size_t len);
    /* The follow ended by itself: code NULL after the execution's last event, else
     * "not_found" (no such execution in Redis within follow_wait_ms) or "unavailable"
     * (the server is stopping). The follower is gone after the call. */
    void (*end)(void *ud, const char *code);
};

/* Follow execution `id` from seq after + 1 on the calling shard (a shard thread). hooks
 * copied. 0; -ENOTCONN when Redis is not connected (nothing to follow through), -ENOMEM. */
int rf_rbridge_follow(struct rf_rbridge *b, const char *id, uint64_t after,
                      const struct rf_rfollow_hooks *hooks, struct rf_rfollow **out);
/* Stop following: no hook runs after this. The follower's shard thread. */
void rf_rbridge_unfollow(struct rf_rfollow *f);

#endif /* RF_NET_RBRIDGE_H */
