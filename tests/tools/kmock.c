/*
 * tests/tools/kmock.c: librdkafka's mock Kafka cluster as a process of its own, for the
 * Kafka tests (tests/support/kmock.c drives it).
 *
 *   kmock BROKERS [TOPIC:PARTITIONS ...]
 *
 * Starts a mock cluster of BROKERS brokers on loopback (random ports), creates the topics,
 * prints its bootstrap list on one line, then reads commands on stdin, one per line, and
 * answers "ok" or "error ..." to each:
 *
 *   down N      broker N stops answering (its connections close)
 *   up N        broker N is back
 *   quit        (or end of input) stop
 *
 * Nothing here reaches beyond 127.0.0.1: the mock listens on loopback only.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char err[256], line[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int brokers = argc > 1 ? atoi(argv[1]) : 1;

    if (brokers < 1 || brokers > 8) {
        fprintf(stderr, "usage: kmock BROKERS [TOPIC:PARTITIONS ...]\n");
        return 2;
    }
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kmock: %s\n", err);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kmock: cannot start a mock cluster\n");
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        char *colon = strrchr(argv[i], ':');
        int parts = colon ? atoi(colon + 1) : 1;
        if (colon)
            *colon = '\0';
        if (rd_kafka_mock_topic_create(mc, argv[i], parts > 0 ? parts : 1, 1) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kmock: cannot create topic %s\n", argv[i]);
            return 1;
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin)) {
        int n = 0;
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (strncmp(line, "quit", 4) == 0)
            break;
        if (sscanf(line, "down %d", &n) == 1)
            e = rd_kafka_mock_broker_set_down(mc, n);
        else if (sscanf(line, "up %d", &n) == 1)
            e = rd_kafka_mock_broker_set_up(mc, n);
        else
            e = RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (e)
            printf("error %s\n", rd_kafka_err2str(e));
        else
            printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
