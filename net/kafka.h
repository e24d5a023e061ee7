/*
 * net/kafka.h: ringflowd and Kafka (librdkafka): the trigger topic's consumer, the
 * dead-letter topic, events out, and the `kafka` node kind.
 *
 * Threads. librdkafka runs threads of its own; none of them touches shard state. The
 * consumer's queue and the producer's main queue each signal an eventfd when they turn
 * non-empty (rd_kafka_queue_io_event_enable); shard 0 keeps an io_uring read pending on
 * each, and on its completion drains the queue, so every message, delivery report and
 * rebalance is handled on shard 0, by its loop, with nothing blocking.
 *
 * Executions once. A message becomes an execution through the same durable path as
 * POST /v1/graphs/{name}/executions, with the message's idempotency_key or, without one,
 * "kafka:<topic>:<partition>:<offset>" (net/kmsg.h): a message delivered again (a crash
 * between the journal and the offset commit, a rebalance) finds its execution instead of
 * making a second one. Offsets are committed only once every message before them is
 * durable (or dead-lettered): per partition, a ring of offsets in flight, committed up to
 * its first one not done.
 *
 * Bad messages (not a message, an unknown graph, inputs the graph refuses) go to the
 * dead-letter topic with the reason in an `x-ringflow-error` header and the source in
 * `x-ringflow-source`; the partition moves on once the dead letter is acknowledged.
 *
 * Back-pressure: each partition has its own librdkafka queue, from which shard 0 takes
 * messages only while the partition has fewer than partition_inflight in flight; the rest
 * waits in librdkafka's queue (its fetcher stops at queued.min.messages). A message the
 * engine refuses for now (its shard at --inflight-per-shard, the journal busy) waits on
 * its shard and is submitted again from that shard's loop. A partition stalled at its
 * bound for 2 s is paused, and resumed once one of its messages is done.
 *
 * Events: with an events topic, every event, once durable in its journal, is produced
 * with key = execution id by the idempotent producer (acks=all).
 *
 * The `kafka` node kind produces {topic, key?, value, headers?} and outputs
 * {partition, offset} once acknowledged; a broker error librdkafka may retry past
 * (timeouts, a queue full, a broker down) fails the attempt as retryable, others (an
 * unknown topic, a message too large) as final.
 */
#ifndef RF_NET_KAFKA_H
#define RF_NET_KAFKA_H

#include <stdbool.h>
#include <stdint.h>

#include "ringflow.h"

#define RF_KAFKA_NAME_BYTES     256u  /* a topic or group, NUL included */
#define RF_KAFKA_RING_MAX       4096u /* most messages in flight per partition */
#define RF_KAFKA_PARTITIONS_MAX 1024u /* partitions one instance follows */

struct rf_store;
struct rf_sjournal;
struct rf_kafka;

struct rf_kafka_config {
    char brokers[512];                        /* host:port[,host:port...] */
    char topic[RF_KAFKA_NAME_BYTES];          /* the trigger topic */
    char group[RF_KAFKA_NAME_BYTES];          /* the consumer group */
    char dlq_topic[RF_KAFKA_NAME_BYTES];      /* dead letters */
    char events_topic[RF_KAFKA_NAME_BYTES];   /* "" = events are not produced */
    char debug[128];                          /* librdkafka's debug contexts, "" = none */
    uint32_t produce_timeout_ms;              /* the kafka kind's and dead letters' */
    uint32_t partition_inflight;              /* messages in flight per partition, 1 to
                                                 RF_KAFKA_RING_MAX (0: the most) */
};

/* Set up (the engine not started yet): the shard service on shard 0, the `kafka` kind,
 * and (events_topic set) the journal's publisher. cfg copied. 0 or a negative errno with
 * the reason logged. */
int rf_kafka_new(rf_engine *eng, struct rf_store *st, struct rf_sjournal *sj,
                 const struct rf_kafka_config *cfg, struct rf_kafka **out);
/* After recovery: subscribe to the trigger topic. */
void rf_kafka_start(struct rf_kafka *k);
void rf_kafka_free(struct rf_kafka *k); /* after rf_engine_stop; NULL is a no-op */

struct rf_kafka_stats {
    uint64_t consumed, executions, duplicates, dead_letters, commits, pauses;
    uint64_t events_produced, node_produced;
    uint32_t partitions; /* assigned now */
    uint64_t uncommitted; /* offsets done whose commit the broker has not acknowledged */
};
void rf_kafka_stats(const struct rf_kafka *k, struct rf_kafka_stats *out); /* any thread */

#endif /* RF_NET_KAFKA_H */
