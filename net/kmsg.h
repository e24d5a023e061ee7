/*
 * net/kmsg.h: the Kafka trigger's message, sans-I/O (spec/api.md, "Kafka topic").
 *
 * A message's value is one JSON object {graph, version?, inputs?, idempotency_key?}:
 *
 *   graph            a graph name ([a-z0-9][a-z0-9._-]{0,63})
 *   version          a positive integer; absent: the latest
 *   inputs           an object; absent: {}
 *   idempotency_key  a string of 1 to 256 bytes; absent: the message's own
 *                    "kafka:<topic>:<partition>:<offset>" (rf_kmsg_key)
 *
 * Anything else (not JSON, not an object, a field of the wrong type, an unknown field, a
 * value over RF_KMSG_BYTES_MAX) is refused with a reason naming the field: the consumer
 * sends such a message to the dead-letter topic with that reason, and moves on.
 */
#ifndef RF_NET_KMSG_H
#define RF_NET_KMSG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RF_KMSG_BYTES_MAX (1u << 20) /* a message's value, like a REST body */
#define RF_KMSG_KEY_MAX   256u      /* an idempotency key */
#define RF_KMSG_WHY_BYTES 200u

struct rf_kmsg {
    char graph[65];
    uint32_t version;      /* 0: the latest */
    json_t *inputs;        /* owned: an object */
    char idem[RF_KMSG_KEY_MAX + 1]; /* "" when the message has none */
};

/* Decode value[0, len) (borrowed). 0 with *out filled (free with rf_kmsg_clear), or -1 with
 * a reason in why (RF_KMSG_WHY_BYTES, NUL-terminated, naming the field). */
int rf_kmsg_decode(const char *value, size_t len, struct rf_kmsg *out, char *why);
void rf_kmsg_clear(struct rf_kmsg *m);

/* The idempotency key of a message without its own: "kafka:<topic>:<partition>:<offset>",
 * with the topic replaced by its XXH3-64 in hex when the key would pass RF_KMSG_KEY_MAX.
 * Its length. */
size_t rf_kmsg_key(const char *topic, int32_t partition, int64_t offset,
                   char out[RF_KMSG_KEY_MAX + 1]);

#endif /* RF_NET_KMSG_H */
