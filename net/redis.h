/*
 * net/redis.h: one Redis connection on a shard's ring, through hiredis's async API.
 *
 * hiredis does the protocol (commands appended to its output buffer, replies parsed by its
 * reader, callbacks run in order); this file is the event-library adapter that hiredis
 * asks for, written for io_uring, plus what hiredis 0.14 leaves to the caller: timeouts,
 * reconnection and a bound on commands in flight.
 *
 *   readiness   hiredis's addRead arms a one-shot IORING_OP_POLL_ADD (POLLIN) on the
 *               socket; its completion calls redisAsyncHandleRead, which reads (a
 *               non-blocking read(2)), runs the callbacks and asks for the next poll. One-
 *               shot, so the poll is level-triggered: data left after one 16 KiB read
 *               completes the next poll at once.
 *   writes      addWrite only marks the connection; the shard's flush (once per loop
 *               iteration, rf_redis_flush) writes everything queued in that iteration in
 *               one write(2), so the commands of one iteration are one pipeline. A write
 *               the socket cannot take whole arms a POLLOUT poll for the rest; so does
 *               the connect in progress.
 *   timeouts    every command records when it was issued; a tick on the ring (a timeout
 *               SQE, armed only while something is pending or the connection is down)
 *               drops a connection whose oldest command waited past timeout_ms, or whose
 *               connect did: every pending callback then gets NULL. Nothing blocks.
 *   reconnect   a dropped connection is retried after a back-off that doubles from
 *               backoff_min_ms to backoff_max_ms (with jitter), reset by a success.
 *
 * A connection is either a command connection or a subscriber (pub/sub mode): commands go
 * through rf_redis_cmd, channels through rf_redis_subscribe; the two do not mix (Redis
 * refuses ordinary commands in subscribe mode). The subscriptions do not survive a
 * reconnect: the on_up hook is where the owner subscribes again.
 *
 * Threads: everything here runs on the owning shard's thread (the one that called
 * rf_redis_new), and so do the callbacks. Memory: the hiredis context and a small per-
 * connection record are allocated per connect; a command allocates hiredis's callback
 * entry and its reply, nothing of ours.
 */
#ifndef RF_NET_REDIS_H
#define RF_NET_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "sched/shard.h"

#define RF_REDIS_HOST_BYTES     64u   /* numeric IPv4 or IPv6, NUL included */
#define RF_REDIS_PENDING_LIMIT  (1u << 20)

struct rf_redis_config {
    char host[RF_REDIS_HOST_BYTES]; /* numeric: resolved once before the shards start */
    uint16_t port;
    uint32_t db;             /* SELECTed after connecting when not 0 */
    uint32_t timeout_ms;     /* connect and reply timeout */
    uint32_t backoff_min_ms; /* first reconnect delay; doubles up to backoff_max_ms */
    uint32_t backoff_max_ms;
    uint32_t pending_max;    /* commands in flight per connection; more is -ENOBUFS */
};

/* The owner's hooks; each may be NULL. On the owning shard's thread. */
struct rf_redis_hooks {
    void *ud;
    void (*on_up)(void *ud);   /* connected (and the db selected): commands go through */
    void (*on_down)(void *ud); /* an up connection was lost; pending callbacks got NULL */
    /* Subscriber: a message published on `channel` (both borrowed for the call). */
    void (*on_message)(void *ud, const char *channel, size_t channel_len, const char *msg,
                       size_t msg_len);
    /* Subscriber: Redis confirmed the subscription to `channel`: messages published from
     * now on reach on_message. */
    void (*on_subscribed)(void *ud, const char *channel, size_t channel_len);
};

/* A command's reply: `reply` is borrowed for the call, NULL when the command failed (the
 * connection was lost or timed out, or the engine is stopping). */
typedef void (*rf_redis_cb)(void *ud, const redisReply *reply);

struct rf_redis;

struct rf_redis_counters {
    uint64_t commands, replies, failed; /* failed: callbacks that got NULL */
    uint64_t connects, connect_failures, drops, timeouts;
};

/* A connection owned by shard `sh`, which must be the calling thread's (a service's start
 * hook). cfg is copied; hooks copied. It connects at once and keeps reconnecting until
 * rf_redis_close. 0, -EINVAL, -ENOMEM. */
int rf_redis_new(struct rf_shard *sh, const struct rf_redis_config *cfg,
                 const struct rf_redis_hooks *hooks, bool subscriber, struct rf_redis **out);
/* Close: pending callbacks get NULL now, no reconnect. Then rf_redis_busy says whether
 * completions are still due on the ring; rf_redis_free once it says false. */
void rf_redis_close(struct rf_redis *r);
bool rf_redis_busy(const struct rf_redis *r);
void rf_redis_free(struct rf_redis *r); /* NULL is a no-op */

/* Connected and ready for commands. */
bool rf_redis_up(const struct rf_redis *r);
/* Commands issued and not answered yet. */
uint32_t rf_redis_pending(const struct rf_redis *r);

/* Queue a command (argv and lens borrowed; copied into hiredis's buffer). `cb` is called
 * exactly once, later, on this shard: with the reply, or NULL. 0; -ENOTCONN when the
 * connection is not up, -ENOBUFS past pending_max, -ENOMEM: then cb is never called. */
int rf_redis_cmd(struct rf_redis *r, rf_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *lens);
/* The same with a command already in RESP form (copied). */
int rf_redis_cmd_raw(struct rf_redis *r, rf_redis_cb cb, void *ud, const char *cmd, size_t len);

/* Subscriber: (un)subscribe a channel (borrowed). 0, -ENOTCONN, -ENOMEM. */
int rf_redis_subscribe(struct rf_redis *r, const char *channel, size_t len);
int rf_redis_unsubscribe(struct rf_redis *r, const char *channel, size_t len);

/* Write what this loop iteration queued (the owner's service flush hook). */
void rf_redis_flush(struct rf_redis *r);

void rf_redis_counters(const struct rf_redis *r, struct rf_redis_counters *out);

#endif /* RF_NET_REDIS_H */
