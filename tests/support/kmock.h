/*
 * tests/support/kmock.h: a mock Kafka cluster for a test (tests/tools/kmock.c in a child
 * process: librdkafka's mock brokers on loopback), and Debian's kcat as the real client
 * that produces to it and consumes from it. Every wait is bounded.
 */
#ifndef RF_TESTS_SUPPORT_KMOCK_H
#define RF_TESTS_SUPPORT_KMOCK_H

#include <stddef.h>
#include <sys/types.h>

struct kmock {
    pid_t pid;
    int in, out;        /* its stdin (commands) and stdout (answers) */
    char bootstrap[256];
};

/* Start a cluster of `brokers` brokers with the topics ("name:partitions", NULL-terminated;
 * borrowed). build_dir: RF_BUILD_DIR. 0 or -1. */
int kmock_start(struct kmock *k, const char *build_dir, int brokers, const char *const *topics);
/* Broker n down or up again: 0 or -1. */
int kmock_broker(struct kmock *k, int n, int up);
void kmock_stop(struct kmock *k);

/* Produce lines "key\tvalue" (key may be empty) to topic with kcat: 0 or -1. */
int kmock_produce(const struct kmock *k, const char *topic, const char *const *lines, size_t n);
/* Consume topic from the start to its end with kcat, each message as
 * "<headers>|<key>|<value>\n" into a malloc'd string (the caller frees), or NULL. */
char *kmock_consume(const struct kmock *k, const char *topic);

#endif
