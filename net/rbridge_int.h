/*
 * net/rbridge_int.h: the Redis bridge's insides, shared by net/rbridge.c (connections, the
 * shard service, statistics), net/rcache.c (the cache tier) and net/revents.c (events out
 * and in). Nothing else includes this.
 */
#ifndef RF_NET_RBRIDGE_INT_H
#define RF_NET_RBRIDGE_INT_H

#include "engine/internal.h"
#include "net/rbridge.h"
#include "net/store.h"
#include "sched/shard.h"

#define RB_KEY_BYTES        (RF_RBRIDGE_PREFIX_BYTES + 48u) /* prefix + ":events:" + id */
#define RB_PUB_EVENTS_MAX   256u    /* events per publish script call */
#define RB_PUB_RETRY_MAX    10000u  /* records waiting to be published again, per shard */
#define RB_CHAN_BUCKETS     256u    /* followed channels, per shard (chained) */
#define RB_SHA_HEX          41u

struct rbchan;

/* One shard's side: touched only by that shard's thread. */
struct rb_shard {
    struct rf_rbridge *b;
    struct rf_shard *sh;
    struct rf_redis *cmd, *sub;
    bool cmd_was_up;
    /* publishing */
    struct rf_xrec *pub_retry; /* records to publish again once up (through pub_next) */
    uint32_t pub_retry_n;
    const char **argv;         /* scratch for one publish call */
    size_t *lens;
    char *seqbuf;
    /* following */
    struct rbchan *chans[RB_CHAN_BUCKETS];
    uint32_t nfollow;          /* live followers (the busy hook waits for their I/O) */
    uint32_t nfollow_mem;      /* followers not freed yet */
    uint32_t pub_inflight;     /* publish calls not answered yet */
    bool quitting, closed;
} RF_ALIGNED_CL;

struct rf_rbridge {
    rf_engine *eng;
    struct rf_rbridge_config cfg;
    uint32_t n;
    struct rb_shard **sh;
    struct rf_shard_service svc;
    struct rf_rcache_ops ops;
    char token[33];            /* this process's lease value */
    char pub_sha[RB_SHA_HEX];  /* the publish script's SHA-1 */
    char rel_sha[RB_SHA_HEX];  /* the lease release script's SHA-1 */
    /* Statistics and health: shard threads add relaxed, readers take snapshots. */
    _Atomic uint32_t shards_up;
    _Atomic uint64_t hits, misses, bypassed, lease_waits, stores, published, unpublished,
        follows, drops;
};

extern const char rb_pub_script[];
extern const char rb_rel_script[];

static inline void rb_count(_Atomic uint64_t *c, uint64_t n)
{
    /* Relaxed: a statistic, read as a snapshot. */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline struct rb_shard *rb_mine(const struct rf_rbridge *b)
{
    RF_ASSERT(rf__cur_shard != NULL);
    return b->sh[rf__cur_shard->id];
}

/* "<prefix>:<kind>:<rest>" into out (RB_KEY_BYTES); its length. */
size_t rb_key(const struct rf_rbridge *b, const char *kind, const char *rest, size_t rest_len,
              char *out);

/* net/rcache.c */
void rb_cache_ops(struct rf_rcache_ops *ops);

/* net/revents.c */
void rb_publish(void *ud, struct rf_xrec *x, uint32_t nev, bool recovered); /* journal's */
void rb_events_cmd_up(struct rb_shard *rs);   /* the command connection is up again */
void rb_events_sub_up(struct rb_shard *rs);   /* the subscriber is up: subscribe again */
void rb_events_sub_down(struct rb_shard *rs);
void rb_events_message(void *ud, const char *ch, size_t ch_len, const char *msg, size_t len);
void rb_events_subscribed(void *ud, const char *ch, size_t ch_len);
void rb_events_quit(struct rb_shard *rs);     /* end every follower, drop the retry list */
int rb_events_init(struct rb_shard *rs);
void rb_events_fini(struct rb_shard *rs);

#endif /* RF_NET_RBRIDGE_INT_H */
