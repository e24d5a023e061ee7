/*
 * net/dcfg.h: the configuration of the daemon ringflowd, from flags and the environment.
 *
 * Every setting is a command-line flag (`--body-max 2MiB` or `--body-max=2MiB`) and an
 * environment variable named after it (`RINGFLOW_BODY_MAX`: upper case, dashes as
 * underscores). A flag wins over its variable; a variable wins over the default. The daemon's
 * main() calls rf_dcfg_parse() once with argv and environ, logs rf_dcfg_json() and hands the
 * fields to the engine (rf_config), the server (struct rf_server_config) and the API.
 *
 * One static table of option descriptors in dcfg.c drives everything: parsing, the variable
 * lookup, the defaults (each default is written as text and parsed by the same code that
 * parses the flag, so --help can never disagree with the behaviour), --help and the JSON.
 * Value types: strings, plain counts, sizes (bytes, or B/KiB/MiB/GiB/TiB; K/M/G/T are binary
 * too), durations (a whole number with ms, s, m, h or d; only 0 may omit the unit), booleans
 * and enumerations. Every value is range-checked, with a one-line message naming the flag,
 * and the variable when the value came from one. Unknown flags, unknown RINGFLOW_* variables
 * and positional arguments are errors: a typo must not silently fall back to a default.
 * docs/configuration.md is the user reference.
 *
 * Everything here is single-threaded start-up code; nothing allocates except rf_dcfg_json.
 */
#ifndef RF_NET_DCFG_H
#define RF_NET_DCFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RF_DCFG_ENV_PREFIX   "RINGFLOW_"
#define RF_DCFG_HOST_BYTES   64     /* listen_host, NUL included */
#define RF_DCFG_PATH_BYTES   4096   /* data_dir, graphs_dir, NUL included */
#define RF_DCFG_URL_BYTES    512    /* redis_url, kafka_brokers, NUL included */
#define RF_DCFG_DNS_NAME_MAX 253    /* a host name in --redis or --kafka-brokers */
#define RF_DCFG_REDIS_DB_MAX 65535u /* the database number of a --redis URL */

struct rf_dcfg {
    char listen_host[RF_DCFG_HOST_BYTES]; /* numeric IPv4, IPv6 (no brackets) or "localhost" */
    uint16_t listen_port;                 /* 1..65535 */
    uint32_t shards;                      /* 0 = online CPUs (the default); else 1..1024 */
    char data_dir[RF_DCFG_PATH_BYTES];    /* never empty */
    char graphs_dir[RF_DCFG_PATH_BYTES];  /* "" = unset */
    bool durability_sync;                 /* --durability sync (true) or none */
    uint64_t retention_s;
    char redis_url[RF_DCFG_URL_BYTES];     /* "" = unset; else redis://host:port[/db] */
    char redis_prefix[64];                 /* key and channel prefix */
    uint32_t redis_timeout_ms;
    uint64_t redis_events_ttl_s;
    char kafka_brokers[RF_DCFG_URL_BYTES]; /* "" = unset; else host:port[,host:port...] */
    char kafka_topic[250], kafka_group[250], kafka_dlq_topic[250], kafka_events_topic[250];
    char kafka_debug[128]; /* librdkafka's debug contexts, "" = none */
    uint32_t kafka_partition_inflight;
    int log_level;                         /* rf_log_level: RF_LOG_DEBUG..RF_LOG_ERROR */
    bool log_text;                         /* --log-format text; false = json */
    uint32_t request_line_max, header_bytes_max, headers_max; /* bytes, bytes, fields */
    uint64_t body_max;                                        /* bytes */
    uint32_t header_timeout_ms, idle_timeout_ms, conns_per_shard_max;
    uint64_t out_queue_max, ws_queue_max; /* bytes */
    uint32_t ws_msg_max;                  /* bytes */
    uint32_t inflight_per_shard, executions_max, events_per_execution_max, long_poll_max_ms,
        drain_timeout_ms;
    uint32_t idempotency_keys_max; /* keys of executions no longer in memory */
    uint32_t http_timeout_ms, http_response_max; /* ms, bytes */
    uint64_t cache_bytes_max, cache_entries_max;
    uint32_t ring_entries;
    bool no_pin;
    uint64_t journal_segment_bytes;        /* preallocated size of a journal segment */
    bool repair_journal;                   /* cut a corrupted journal instead of refusing */
    char journal_faults[RF_DCFG_URL_BYTES]; /* tests: injected journal I/O errors; "" none */
    char cron_clock_file[256];             /* tests: the cron scheduler's clock; "" none */
};

/* Fill *c (caller-owned) with the defaults that --help shows. */
void rf_dcfg_defaults(struct rf_dcfg *c);

/* Fill *c (caller-owned) with the defaults, then the RINGFLOW_* variables of `envp`, then
 * the flags of argv (argv[0] skipped). argv and envp (NULL-terminated like environ; NULL =
 * empty) are borrowed. A repeated flag: the last one wins. Returns
 *   0          success, *c filled, err = "";
 *   1          --help/-h or --version was asked: its text went to `out` (borrowed), *c holds
 *              the defaults; the caller exits 0;
 *   -EINVAL    a malformed value, an unknown flag or RINGFLOW_* variable, a positional
 *              argument, a missing value;
 *   -ERANGE    a value out of its range, or two values that do not fit together;
 * with a one-line message (no newline) naming the flag, and the variable when the value came
 * from one, in err (errlen bytes, always NUL-terminated when errlen > 0, truncated to fit).
 * On an error *c holds the defaults. */
int rf_dcfg_parse(struct rf_dcfg *c, int argc, char **argv, char **envp, FILE *out, char *err,
                  size_t errlen);

/* Write the usage text (every flag with its variable, default, range and meaning) to `out`
 * (borrowed). */
void rf_dcfg_help(FILE *out);

/* The effective configuration as a JSON object (for the start-up log line): one key per flag
 * name ("body-max"); counts and sizes as integers (bytes), durations as text in the flag
 * syntax ("10s", "7d"), enumerations by name, booleans as booleans, unset strings as null,
 * "shards" resolved to the online CPU count when it is 0. New reference, NULL when out of
 * memory. `c` borrowed. */
json_t *rf_dcfg_json(const struct rf_dcfg *c);

/* A host and port from --redis or --kafka-brokers. */
struct rf_dcfg_addr {
    char host[RF_DCFG_DNS_NAME_MAX + 1]; /* DNS name or numeric address, IPv6 without [] */
    uint16_t port;                       /* 1..65535 */
};

/* Split a redis URL "redis://host:port[/db]" (borrowed, NUL-terminated) into *a and *db (both
 * caller-owned; db 0 when absent, at most RF_DCFG_REDIS_DB_MAX). The host is a DNS name,
 * a dotted IPv4 address or a bracketed IPv6 address. 0 or -EINVAL. */
int rf_dcfg_redis_url(const char *url, struct rf_dcfg_addr *a, uint32_t *db);

/* The i-th broker (0-based) of a --kafka-brokers list (borrowed) into *a (caller-owned):
 * 1 when it exists, 0 past the end, -EINVAL when the list is malformed. */
int rf_dcfg_broker(const char *list, uint32_t i, struct rf_dcfg_addr *a);

#endif /* RF_NET_DCFG_H */
