/*
 * tests/net/test_dcfg.c: ringflowd's configuration layer (net/dcfg.h).
 *
 * Every setting must arrive the same way from a flag (both `--name value` and
 * `--name=value`) and from its RINGFLOW_* variable, with the flag winning; every value type
 * (counts, sizes, durations, booleans, enumerations, strings, addresses, URLs) must accept
 * exactly its documented syntax and units, and every bound must hold on both sides (the
 * smallest and largest accepted value pass, one past either fails). Errors must be
 * negative errno values with a one-line message that names the flag, and the variable when
 * the value came from one, and must leave the defaults in place. Typos are errors: unknown
 * flags, unknown RINGFLOW_* variables and positional arguments. --help must list every flag
 * of the contract (spec/api.md "Running it" and issue 4's limits) with its variable, and
 * docs/configuration.md must document every flag --help lists (the test runs from the
 * repository root). rf_dcfg_json must give one key per flag in the documented forms.
 */
#include "net/dcfg.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ringflow.h"

#define ERR_BYTES  512u
#define ARGS_MAX   16u
#define LONG_BYTES 5000u
#define DOC_PATH   "docs/configuration.md"
#define DOC_MAX    (1u << 20)

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOARGS    ((const char *const[]){NULL})
#define ENV(...)  ((const char *const[]){__VA_ARGS__, NULL})
#define NOENV     ((const char *const[]){NULL})

/* Every flag of the contract (spec/api.md "Running it" plus issue 4's settings). */
static const char *const all_flags[] = {
    "journal-segment-size",
    "repair-journal",
    "journal-faults",
    "cron-clock-file",
    "listen",
    "shards",
    "data-dir",
    "durability",
    "retention",
    "redis",
    "redis-prefix",
    "redis-timeout",
    "redis-events-ttl",
    "kafka-brokers",
    "kafka-topic",
    "kafka-group",
    "kafka-dlq-topic",
    "kafka-events-topic",
    "kafka-partition-inflight",
    "kafka-debug",
    "log-level",
    "request-line-max",
    "header-bytes-max",
    "headers-max",
    "body-max",
    "header-timeout",
    "idle-timeout",
    "conns-per-shard-max",
    "out-queue-max",
    "ws-queue-max",
    "ws-msg-max",
    "inflight-per-shard",
    "executions-max",
    "events-per-execution-max",
    "idempotency-keys-max",
    "long-poll-max",
    "drain-timeout",
    "graphs-dir",
    "http-timeout",
    "http-response-max",
    "cache-bytes-max",
    "cache-entries-max",
    "ring-entries",
    "no-pin",
    "log-format",
};
#define N_FLAGS (sizeof all_flags / sizeof all_flags[0])

/* --- helpers ------------------------------------------------------------------------------ */

/* Parse "ringflowd args..." with environment env; FILE output discarded unless `out`. */
static int parse_out(struct rf_dcfg *c, char *err, const char *const *env, const char *const *args,
                     FILE *out)
{
    char *argv[ARGS_MAX + 1] = {"ringflowd"};
    char *envp[ARGS_MAX + 1] = {NULL};
    int argc = 1;
    FILE *sink = out ? out : fopen("/dev/null", "w");
    int rc;

    for (size_t i = 0; args[i]; i++) {
        assert_true(argc < (int)ARGS_MAX);
        argv[argc++] = (char *)args[i];
    }
    for (size_t i = 0; env[i]; i++) {
        assert_true(i < ARGS_MAX);
        envp[i] = (char *)env[i];
    }
    assert_non_null(sink);
    rc = rf_dcfg_parse(c, argc, argv, envp, sink, err, ERR_BYTES);
    if (!out)
        fclose(sink);
    return rc;
}

static int parse(struct rf_dcfg *c, char *err, const char *const *env, const char *const *args)
{
    return parse_out(c, err, env, args, NULL);
}

#define assert_has(hay, needle)                                                                    \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                           \
    } while (0)

/* The documented defaults, field by field. */
static void assert_defaults(const struct rf_dcfg *c)
{
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->shards, 0);
    assert_string_equal(c->data_dir, "./ringflow-data");
    assert_string_equal(c->graphs_dir, "");
    assert_true(c->durability_sync);
    assert_int_equal(c->retention_s, 7 * 86400);
    assert_string_equal(c->redis_url, "");
    assert_string_equal(c->kafka_brokers, "");
    assert_int_equal(c->log_level, RF_LOG_INFO);
    assert_false(c->log_text);
    assert_int_equal(c->request_line_max, 8192);
    assert_int_equal(c->header_bytes_max, 16384);
    assert_int_equal(c->headers_max, 100);
    assert_int_equal(c->body_max, 1 << 20);
    assert_int_equal(c->header_timeout_ms, 10000);
    assert_int_equal(c->idle_timeout_ms, 60000);
    assert_int_equal(c->conns_per_shard_max, 10000);
    assert_int_equal(c->out_queue_max, 4 << 20);
    assert_int_equal(c->ws_queue_max, 1 << 20);
    assert_int_equal(c->ws_msg_max, 64 << 10);
    assert_int_equal(c->inflight_per_shard, 4096);
    assert_int_equal(c->executions_max, 20000);
    assert_int_equal(c->events_per_execution_max, 100000);
    assert_int_equal(c->idempotency_keys_max, 1000000);
    assert_string_equal(c->redis_prefix, "ringflow");
    assert_int_equal(c->redis_timeout_ms, 500);
    assert_int_equal(c->redis_events_ttl_s, 3600);
    assert_int_equal(c->long_poll_max_ms, 60000);
    assert_int_equal(c->drain_timeout_ms, 10000);
    assert_int_equal(c->http_timeout_ms, 30000);
    assert_int_equal(c->http_response_max, 8 << 20);
    assert_int_equal(c->cache_bytes_max, 64 << 20);
    assert_int_equal(c->cache_entries_max, 65536);
    assert_int_equal(c->ring_entries, 1024);
    assert_false(c->no_pin);
}

/* One flag value that must be refused with rc and a message naming --flag and `part`. */
static void refuse(const char *flag, const char *val, int rc, const char *part)
{
    struct rf_dcfg c;
    char err[ERR_BYTES], arg[LONG_BYTES + 64], name[64];

    snprintf(arg, sizeof arg, "--%s=%s", flag, val);
    snprintf(name, sizeof name, "--%s: ", flag);
    if (parse(&c, err, NOENV, ARGS(arg)) != rc)
        fail_msg("%s: expected %d, got message \"%s\"", arg, rc, err);
    assert_has(err, name);
    if (part)
        assert_has(err, part);
    assert_null(strchr(err, '\n'));
    assert_defaults(&c); /* an error leaves the defaults */
}

/* --- defaults ------------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES] = "x";

    memset(&c, 0xa5, sizeof c);
    rf_dcfg_defaults(&c);
    assert_defaults(&c);
    memset(&c, 0xa5, sizeof c);
    assert_int_equal(parse(&c, err, NOENV, NOARGS), 0);
    assert_string_equal(err, "");
    assert_defaults(&c);
    /* A NULL environment and no error buffer work too. */
    char *argv[] = {"ringflowd", NULL};
    assert_int_equal(rf_dcfg_parse(&c, 1, argv, NULL, stdout, NULL, 0), 0);
    assert_defaults(&c);
}

/* --- each type ----------------------------------------------------------------------------- */

static void test_uint(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards", "4")), 0);
    assert_int_equal(c.shards, 4);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=007", "--headers-max", "1000")), 0);
    assert_int_equal(c.shards, 7);
    assert_int_equal(c.headers_max, 1000);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--cache-entries-max", "1000000000")), 0);
    assert_int_equal(c.cache_entries_max, 1000000000);

    static const char *const bad[] = {"4x", "-1", "+4", " 4", "4 ", "0x10", "4.0", "1e3", "4K"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse("shards", bad[i], -EINVAL, "is not a whole number");
    refuse("shards", "", -EINVAL, "empty");
    refuse("shards", "99999999999999999999999", -ERANGE, "out of range");
    refuse("shards", "0", -ERANGE, "must be between 1 and 1024");
}

static void test_size(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"1048576", 1 << 20}, {"2MiB", 2 << 20}, {"2M", 2 << 20},      {"512KiB", 512 << 10},
        {"512K", 512 << 10},  {"1024B", 1024},   {"1GiB", 1ull << 30}, {"1G", 1ull << 30},
        {"1KiB", 1024},       {"0001KiB", 1024},
    };
    struct rf_dcfg c;
    char err[ERR_BYTES], arg[64];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(arg, sizeof arg, "--body-max=%s", ok[i].text);
        assert_int_equal(parse(&c, err, NOENV, ARGS(arg)), 0);
        assert_int_equal(c.body_max, ok[i].bytes);
    }
    assert_int_equal(parse(&c, err, NOENV, ARGS("--cache-bytes-max", "1TiB")), 0);
    assert_int_equal(c.cache_bytes_max, 1ull << 40);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--cache-bytes-max", "1T")), 0);
    assert_int_equal(c.cache_bytes_max, 1ull << 40);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--ws-msg-max", "64MiB")), 0);
    assert_int_equal(c.ws_msg_max, 64u << 20);

    refuse("body-max", "2x", -EINVAL, "\"2x\" is not a size (use e.g. 1MiB");
    static const char *const bad[] = {"1.5MiB", "1 MiB", "1mib",  "1KB", "1kb",
                                      "MiB",    "-1KiB", "1KiBB", "1Ki", "0x400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse("body-max", bad[i], -EINVAL, "is not a size");
    refuse("body-max", "1023", -ERANGE, "must be between 1KiB and 1GiB");
    refuse("body-max", "1025MiB", -ERANGE, "out of range");
    refuse("body-max", "18446744073709551615GiB", -ERANGE, "out of range");
    refuse("body-max", "99999999999999999999999", -ERANGE, "out of range");
}

static void test_duration(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, NOENV,
                           ARGS("--header-timeout", "250ms", "--idle-timeout=2m", "--drain-timeout",
                                "0", "--long-poll-max", "1h", "--http-timeout=2s")),
                     0);
    assert_int_equal(c.header_timeout_ms, 250);
    assert_int_equal(c.idle_timeout_ms, 120000);
    assert_int_equal(c.drain_timeout_ms, 0);
    assert_int_equal(c.long_poll_max_ms, 3600000);
    assert_int_equal(c.http_timeout_ms, 2000);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--retention", "30d", "--drain-timeout=0s")), 0);
    assert_int_equal(c.retention_s, 30 * 86400);
    assert_int_equal(c.drain_timeout_ms, 0);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--retention", "90m")), 0);
    assert_int_equal(c.retention_s, 5400);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--retention", "2000ms")), 0);
    assert_int_equal(c.retention_s, 2);

    refuse("header-timeout", "10", -EINVAL, "is not a duration (use e.g. 10s");
    static const char *const bad[] = {"1.5s", "1S", "1 s", "s", "-1s", "1sec", "1w", "1ms1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refuse("header-timeout", bad[i], -EINVAL, "is not a duration");
    refuse("retention", "1500ms", -EINVAL, "whole number of seconds");
    refuse("retention", "0", -ERANGE, "must be between 1s and 3650d");
    refuse("header-timeout", "9ms", -ERANGE, "must be between 10ms and 1h");
    refuse("header-timeout", "61m", -ERANGE, "out of range");
    refuse("idle-timeout", "99999999999999999999d", -ERANGE, "out of range");
    refuse("idle-timeout", "999999999999999999d", -ERANGE, "out of range");
}

static void test_bool(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, NOENV, ARGS("--no-pin")), 0);
    assert_true(c.no_pin);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--no-pin=false")), 0);
    assert_false(c.no_pin);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--no-pin=1")), 0);
    assert_true(c.no_pin);
    static const struct {
        const char *env;
        bool val;
    } envs[] = {
        {"RINGFLOW_NO_PIN=1", true},      {"RINGFLOW_NO_PIN=true", true},
        {"RINGFLOW_NO_PIN=TRUE", true},   {"RINGFLOW_NO_PIN=0", false},
        {"RINGFLOW_NO_PIN=false", false}, {"RINGFLOW_NO_PIN=False", false},
    };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        assert_int_equal(parse(&c, err, ENV(envs[i].env), NOARGS), 0);
        assert_int_equal(c.no_pin, envs[i].val);
    }
    /* The flag wins over a variable that says the opposite. */
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_NO_PIN=1"), ARGS("--no-pin=0")), 0);
    assert_false(c.no_pin);
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_NO_PIN=yes"), NOARGS), -EINVAL);
    assert_has(err, "RINGFLOW_NO_PIN (--no-pin): \"yes\" is not a boolean");
    refuse("no-pin", "2", -EINVAL, "is not a boolean");
    refuse("no-pin", "", -EINVAL, "empty");
    /* A boolean never takes the next argument as its value. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--no-pin", "true")), -EINVAL);
    assert_has(err, "\"true\": unexpected argument");
}

static void test_enum(void **state)
{
    static const struct {
        const char *text;
        int level;
    } levels[] = {
        {"debug", RF_LOG_DEBUG},
        {"info", RF_LOG_INFO},
        {"warn", RF_LOG_WARN},
        {"error", RF_LOG_ERROR},
    };
    struct rf_dcfg c;
    char err[ERR_BYTES];

    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        assert_int_equal(parse(&c, err, NOENV, ARGS("--log-level", levels[i].text)), 0);
        assert_int_equal(c.log_level, levels[i].level);
    }
    assert_int_equal(parse(&c, err, NOENV, ARGS("--durability", "none", "--log-format=text")), 0);
    assert_false(c.durability_sync);
    assert_true(c.log_text);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--durability=sync", "--log-format=json")), 0);
    assert_true(c.durability_sync);
    assert_false(c.log_text);
    refuse("log-level", "verbose", -EINVAL, "\"verbose\" is not one of debug, info, warn, error");
    refuse("log-level", "INFO", -EINVAL, "is not one of");
    refuse("durability", "fsync", -EINVAL, "is not one of sync, none");
    refuse("log-format", "yaml", -EINVAL, "is not one of json, text");
}

static void test_strings(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];
    static char longpath[LONG_BYTES];

    assert_int_equal(parse(&c, err, NOENV,
                           ARGS("--data-dir", "/var/lib/ringflow", "--graphs-dir=/etc/rf graphs")),
                     0);
    assert_string_equal(c.data_dir, "/var/lib/ringflow");
    assert_string_equal(c.graphs_dir, "/etc/rf graphs");
    /* An empty optional string is unset; a required one must not be empty. */
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_GRAPHS_DIR=/x"), ARGS("--graphs-dir=")), 0);
    assert_string_equal(c.graphs_dir, "");
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_REDIS="), NOARGS), 0);
    assert_string_equal(c.redis_url, "");
    refuse("data-dir", "", -EINVAL, "empty");
    /* The longest path that fits, and one byte more. */
    memset(longpath, 'a', RF_DCFG_PATH_BYTES - 1);
    longpath[RF_DCFG_PATH_BYTES - 1] = '\0';
    assert_int_equal(parse(&c, err, NOENV, ARGS("--data-dir", longpath)), 0);
    assert_int_equal(strlen(c.data_dir), RF_DCFG_PATH_BYTES - 1);
    longpath[RF_DCFG_PATH_BYTES - 1] = 'a';
    longpath[RF_DCFG_PATH_BYTES] = '\0';
    refuse("data-dir", longpath, -ERANGE, "4096 bytes long");
    refuse("graphs-dir", longpath, -ERANGE, "longer than 4095");
}

/* --- bounds ------------------------------------------------------------------------------- */

static void test_bounds(void **state)
{
    static const struct {
        const char *flag, *lo, *below, *hi, *above;
    } b[] = {
        {"shards", "1", "0", "1024", "1025"},
        {"headers-max", "1", "0", "1000", "1001"},
        {"header-timeout", "10ms", "9ms", "1h", "3601s"},
        {"idle-timeout", "10ms", "9ms", "24h", "86401s"},
        {"body-max", "1KiB", "1023", "1GiB", "1073741825"},
        {"ring-entries", "64", "63", "32768", "32769"},
        {"retention", "1s", "999ms", "3650d", "3651d"},
        {"conns-per-shard-max", "1", "0", "1000000", "1000001"},
        {"header-bytes-max", "8KiB", "255", "1MiB", "1025KiB"},
        {"out-queue-max", "4KiB", "4095", "1GiB", "1025MiB"},
        {"ws-queue-max", "4KiB", "4095B", "1GiB", "1025MiB"},
        {"ws-msg-max", "1KiB", "1023", "64MiB", "65MiB"},
        {"inflight-per-shard", "1", "0", "16384", "16777217"},
        {"executions-max", "1", "0", "100000000", "100000001"},
        {"events-per-execution-max", "1", "0", "10000000", "10000001"},
        {"idempotency-keys-max", "1", "0", "268435456", "268435457"},
        {"redis-timeout", "10ms", "9ms", "1m", "61s"},
        {"redis-events-ttl", "1s", "999ms", "30d", "31d"},
        {"long-poll-max", "0", NULL, "1h", "61m"},
        {"drain-timeout", "0", NULL, "1h", "3601s"},
        {"http-timeout", "1ms", "0", "1h", "61m"},
        {"http-response-max", "1KiB", "1023", "1GiB", "1025MiB"},
        {"cache-bytes-max", "64KiB", "65535", "1TiB", "1025GiB"},
        {"cache-entries-max", "1", "0", "1000000000", "1000000001"},
    };
    struct rf_dcfg c;
    char err[ERR_BYTES], arg[128];

    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        snprintf(arg, sizeof arg, "--%s=%s", b[i].flag, b[i].lo);
        if (parse(&c, err, NOENV, ARGS("--shards=1", arg)) != 0)
            fail_msg("%s refused: %s", arg, err);
        snprintf(arg, sizeof arg, "--%s=%s", b[i].flag, b[i].hi);
        if (parse(&c, err, NOENV, ARGS("--shards=1", arg)) != 0)
            fail_msg("%s refused: %s", arg, err);
        if (b[i].below)
            refuse(b[i].flag, b[i].below, -ERANGE, "out of range");
        refuse(b[i].flag, b[i].above, -ERANGE, "out of range");
    }
    /* The env form names the variable and the flag. */
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_SHARDS=0"), NOARGS), -ERANGE);
    assert_string_equal(err,
                        "RINGFLOW_SHARDS (--shards): \"0\" is out of range: must be between 1 and "
                        "1024");
    assert_defaults(&c);
}

static void test_cross_checks(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, NOENV, ARGS("--request-line-max", "32KiB")), -ERANGE);
    assert_has(err, "--request-line-max (32KiB) must not exceed --header-bytes-max (16KiB)");
    assert_int_equal(
        parse(&c, err, NOENV, ARGS("--request-line-max", "32KiB", "--header-bytes-max", "32KiB")),
        0);
    assert_int_equal(c.request_line_max, 32768);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--request-line-max=64B")), 0);
    /* shards x inflight must fit the engine's 2^24 execution slots. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=1024", "--inflight-per-shard=16384")), 0);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=1024", "--inflight-per-shard=16385")),
                     -ERANGE);
    assert_has(err, "--shards (1024) x --inflight-per-shard (16385) must not exceed 16777216");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=1", "--inflight-per-shard=16777216")), 0);
}

/* --- flags, variables and typos ----------------------------------------------------------- */

static void test_flag_beats_env(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];
    const char *const *env =
        ENV("PATH=/usr/bin", "RINGFLOW=1", "RINGFLOWX_SHARDS=9", "RINGFLOW_SHARDS=2",
            "RINGFLOW_BODY_MAX=2MiB", "RINGFLOW_LISTEN=[::1]:9000", "RINGFLOW_LOG_LEVEL=debug");

    assert_int_equal(parse(&c, err, env, NOARGS), 0);
    assert_int_equal(c.shards, 2);
    assert_int_equal(c.body_max, 2 << 20);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 9000);
    assert_int_equal(c.log_level, RF_LOG_DEBUG);
    assert_int_equal(parse(&c, err, env, ARGS("--shards", "3", "--listen=localhost:1")), 0);
    assert_int_equal(c.shards, 3);
    assert_string_equal(c.listen_host, "localhost");
    assert_int_equal(c.listen_port, 1);
    assert_int_equal(c.body_max, 2 << 20);
    /* A flag wins even over a malformed variable. */
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_SHARDS=zzz"), ARGS("--shards=5")), 0);
    assert_int_equal(c.shards, 5);
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_SHARDS=zzz"), NOARGS), -EINVAL);
    assert_string_equal(err, "RINGFLOW_SHARDS (--shards): \"zzz\" is not a whole number "
                             "(digits only)");
    /* The last of a repeated flag wins. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=5", "--shards", "6")), 0);
    assert_int_equal(c.shards, 6);
}

static void test_unknown_flag(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, NOENV, ARGS("--bdy-max", "1MiB")), -EINVAL);
    assert_string_equal(err, "--bdy-max: unknown flag (did you mean --body-max?)");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shard=4")), -EINVAL);
    assert_string_equal(err, "--shard: unknown flag (did you mean --shards?)");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--frobnicate")), -EINVAL);
    assert_string_equal(err, "--frobnicate: unknown flag");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--SHARDS=4")), -EINVAL);
    assert_has(err, "unknown flag");
    /* Positional arguments, single dashes, a lone "--". */
    assert_int_equal(parse(&c, err, NOENV, ARGS("serve")), -EINVAL);
    assert_string_equal(err, "\"serve\": unexpected argument (ringflowd takes only flags)");
    assert_int_equal(parse(&c, err, NOENV, ARGS("-s", "4")), -EINVAL);
    assert_has(err, "\"-s\": unexpected argument");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--")), -EINVAL);
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards", "4", "extra")), -EINVAL);
    assert_has(err, "\"extra\": unexpected argument");
    /* Missing values. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards")), -EINVAL);
    assert_string_equal(err, "--shards: needs a value (N)");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--data-dir", "--shards", "4")), -EINVAL);
    assert_has(err, "--data-dir: needs a value, got the flag --shards");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--data-dir=--odd")), 0);
    assert_string_equal(c.data_dir, "--odd");
    assert_int_equal(parse(&c, err, NOENV, ARGS("--help=1")), -EINVAL);
    assert_string_equal(err, "--help: takes no value");
    /* A typo is reported before any value is judged, and no partial result is kept. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=0", "--bogus")), -EINVAL);
    assert_has(err, "--bogus");
    assert_defaults(&c);
}

static void test_unknown_env(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, ENV("RINGFLOW_BDY_MAX=1MiB"), NOARGS), -EINVAL);
    assert_string_equal(err,
                        "RINGFLOW_BDY_MAX: unknown variable (did you mean RINGFLOW_BODY_MAX?)");
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_shards=2"), NOARGS), -EINVAL);
    assert_has(err, "did you mean RINGFLOW_SHARDS?");
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_HELP=1"), NOARGS), -EINVAL);
    assert_has(err, "RINGFLOW_HELP: unknown variable");
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_FROBNICATE=1"), NOARGS), -EINVAL);
    assert_string_equal(err, "RINGFLOW_FROBNICATE: unknown variable (every RINGFLOW_* variable "
                             "must name a flag)");
    /* Even when a flag is given, an unknown variable is still a typo to report. */
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_SHARDZ=2"), ARGS("--shards=2")), -EINVAL);
    assert_has(err, "RINGFLOW_SHARDZ");
}

/* --- help, version ------------------------------------------------------------------------ */

static char *capture(const char *const *env, const char *const *args, int want_rc)
{
    struct rf_dcfg c;
    char err[ERR_BYTES], *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(parse_out(&c, err, env, args, f), want_rc);
    fclose(f);
    assert_defaults(&c);
    return buf;
}

static void test_help(void **state)
{
    char *h = capture(NOENV, ARGS("--help"), 1), *h2, *line;
    char want[128];
    size_t listed = 0;

    for (size_t i = 0; i < N_FLAGS; i++) {
        char var[96] = "RINGFLOW_";
        size_t k = strlen(var);
        for (const char *p = all_flags[i]; *p; p++)
            var[k++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
        var[k] = '\0';
        /* The flag and its variable on one line. */
        snprintf(want, sizeof want, "  --%s ", all_flags[i]);
        line = strstr(h, want);
        if (!line)
            fail_msg("--help does not list --%s", all_flags[i]);
        char *eol = strchr(line, '\n');
        assert_non_null(eol);
        *eol = '\0';
        assert_has(line, var);
        *eol = '\n';
        assert_has(eol, "default "); /* the next lines hold the meaning and the default */
    }
    /* No flag is listed that the contract does not know. */
    for (char *p = strstr(h, "\n  --"); p; p = strstr(p + 1, "\n  --"))
        listed++;
    assert_int_equal(listed, N_FLAGS + 1); /* + "--version" */
    assert_has(h, "-h, --help");
    assert_has(h, "default 127.0.0.1:8080");
    assert_has(h, "default online CPUs; 1 to 1024");
    assert_has(h, "default 7d; 1s to 3650d");
    assert_has(h, "default info; one of debug, info, warn, error");
    assert_has(h, "default 1MiB; 1KiB to 1GiB");
    /* -h is the same; help wins over bad values and bad variables (nothing is judged). */
    h2 = capture(ENV("RINGFLOW_SHARDS=zzz"), ARGS("--shards=0", "-h"), 1);
    assert_string_equal(h, h2);
    free(h2);
    /* rf_dcfg_help writes the same text. */
    size_t len = 0;
    FILE *f = open_memstream(&h2, &len);
    assert_non_null(f);
    rf_dcfg_help(f);
    fclose(f);
    assert_string_equal(h, h2);
    free(h2);
    free(h);

    h = capture(NOENV, ARGS("--version"), 1);
    snprintf(want, sizeof want, "ringflowd %d.%d.%d\n", RF_VERSION_MAJOR, RF_VERSION_MINOR,
             RF_VERSION_PATCH);
    assert_string_equal(h, want);
    free(h);
}

/* docs/configuration.md documents every flag --help lists, with its variable. */
static void test_docs_cover_flags(void **state)
{
    FILE *f = fopen(DOC_PATH, "r");
    char *doc = calloc(1, DOC_MAX + 1), want[128];
    size_t n;

    if (!f)
        fail_msg("%s: cannot open (run the test from the repository root)", DOC_PATH);
    assert_non_null(doc);
    n = fread(doc, 1, DOC_MAX, f);
    fclose(f);
    doc[n] = '\0';
    for (size_t i = 0; i < N_FLAGS; i++) {
        char var[96] = "RINGFLOW_";
        size_t k = strlen(var);
        for (const char *p = all_flags[i]; *p; p++)
            var[k++] = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
        var[k] = '\0';
        snprintf(want, sizeof want, "`--%s`", all_flags[i]);
        assert_has(doc, want);
        snprintf(want, sizeof want, "`%s`", var);
        assert_has(doc, want);
    }
    free(doc);
}

/* --- --listen, --redis, --kafka-brokers --------------------------------------------------- */

static void test_listen(void **state)
{
    static const struct {
        const char *text, *host;
        uint16_t port;
        const char *shown;
    } ok[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1:8080"},
        {"0.0.0.0:1", "0.0.0.0", 1, "0.0.0.0:1"},
        {"[::1]:80", "::1", 80, "[::1]:80"},
        {"[::]:65535", "::", 65535, "[::]:65535"},
        {"[2001:db8::7]:443", "2001:db8::7", 443, "[2001:db8::7]:443"},
        {"localhost:9000", "localhost", 9000, "localhost:9000"},
    };
    struct rf_dcfg c;
    char err[ERR_BYTES];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(parse(&c, err, NOENV, ARGS("--listen", ok[i].text)), 0);
        assert_string_equal(c.listen_host, ok[i].host);
        assert_int_equal(c.listen_port, ok[i].port);
        json_t *j = rf_dcfg_json(&c);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "listen")), ok[i].shown);
        json_decref(j);
    }
    refuse("listen", "127.0.0.1:0", -EINVAL, "\"0\" is not a port (1..65535)");
    refuse("listen", "127.0.0.1:65536", -EINVAL, "is not a port");
    refuse("listen", "127.0.0.1:abc", -EINVAL, "\"abc\" is not a port");
    refuse("listen", "127.0.0.1:", -EINVAL, "is not a port");
    refuse("listen", "127.0.0.1:080000", -EINVAL, "is not a port");
    refuse("listen", "127.0.0.1:-1", -EINVAL, "is not a port");
    refuse("listen", "127.0.0.1", -EINVAL, "the port is missing");
    refuse("listen", "[::1]", -EINVAL, "the port is missing");
    refuse("listen", "[::1]80", -EINVAL, "the port is missing");
    refuse("listen", "::1:80", -EINVAL, "put an IPv6 address in brackets");
    refuse("listen", "[::1:80", -EINVAL, "bracketed IPv6 address is malformed");
    refuse("listen", "[]:80", -EINVAL, "bracketed IPv6 address is malformed");
    refuse("listen", "[zz]:80", -EINVAL, "\"zz\" is not an IPv6 address");
    refuse("listen", "[127.0.0.1]:80", -EINVAL, "is not an IPv6 address");
    refuse("listen", "example.com:80", -EINVAL, "must be a numeric address or localhost");
    refuse("listen", "256.0.0.1:80", -EINVAL, "is not a host name or IPv4 address");
    refuse("listen", "1.2.3:80", -EINVAL, "is not a host name or IPv4 address");
    refuse("listen", ":8080", -EINVAL, "is not a host name or IPv4 address");
    refuse("listen", "", -EINVAL, "empty");
}

static void test_redis(void **state)
{
    static const struct {
        const char *url, *host;
        uint16_t port;
        uint32_t db;
    } ok[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, 0},
        {"redis://127.0.0.1:6379", "127.0.0.1", 6379, 0},
        {"redis://cache-1.internal:6380/15", "cache-1.internal", 6380, 15},
        {"redis://[::1]:6379/3", "::1", 6379, 3},
        {"redis://localhost:1/65535", "localhost", 1, 65535},
    };
    static const char *const bad[] = {
        "http://127.0.0.1:6379", "redis:/127.0.0.1:6379",  "redis://",
        "redis://127.0.0.1",     "redis://127.0.0.1:0",    "redis://h:6379/",
        "redis://h:6379/x",      "redis://h:6379/65536",   "redis://h:6379/0/1",
        "redis://u:pw@h:6379",   "redis://h:6379?db=1",    "redis://-h:6379",
        "redis://h-:6379",       "redis://a..b:6379",      "redis://h_1:6379",
        "redis://::1:6379",      "redis://h:6379#x",       "redis:// h:6379",
        "rediss://h:6379",       "redis://999.1.1.1:6379",
    };
    struct rf_dcfg c;
    struct rf_dcfg_addr a;
    uint32_t db;
    char err[ERR_BYTES];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(parse(&c, err, NOENV, ARGS("--redis", ok[i].url)), 0);
        assert_string_equal(c.redis_url, ok[i].url);
        assert_int_equal(rf_dcfg_redis_url(c.redis_url, &a, &db), 0);
        assert_string_equal(a.host, ok[i].host);
        assert_int_equal(a.port, ok[i].port);
        assert_int_equal(db, ok[i].db);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        refuse("redis", bad[i], -EINVAL, "(use e.g. redis://127.0.0.1:6379/0)");
        assert_int_equal(rf_dcfg_redis_url(bad[i], &a, &db), -EINVAL);
    }
    refuse("redis", "http://x:1", -EINVAL, "must start with redis://");
    refuse("redis", "redis://u@h:1", -EINVAL, "user info, queries and fragments");
    refuse("redis", "redis://h:1/x", -EINVAL, "the database after '/' must be 0..65535");
    /* The key prefix: letters, digits, '.', '_', '-'; 1 to 63 of them. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--redis-prefix", "team-a.prod_1")), 0);
    assert_string_equal(c.redis_prefix, "team-a.prod_1");
    refuse("redis-prefix", "a:b", -EINVAL, "only letters, digits");
    refuse("redis-prefix", "a b", -EINVAL, "only letters, digits");
    /* From the variable: the message names both. */
    assert_int_equal(parse(&c, err, ENV("RINGFLOW_REDIS=redis://h"), NOARGS), -EINVAL);
    assert_has(err, "RINGFLOW_REDIS (--redis): \"redis://h\": the port is missing");
}

static void test_kafka(void **state)
{
    struct rf_dcfg c;
    struct rf_dcfg_addr a;
    char err[ERR_BYTES];

    assert_int_equal(parse(&c, err, NOENV, ARGS("--kafka-brokers", "127.0.0.1:9092")), 0);
    assert_string_equal(c.kafka_brokers, "127.0.0.1:9092");
    assert_int_equal(
        parse(&c, err, NOENV, ARGS("--kafka-brokers=k1.example:9092,[::1]:9093,10.0.0.3:19092")),
        0);
    assert_int_equal(rf_dcfg_broker(c.kafka_brokers, 0, &a), 1);
    assert_string_equal(a.host, "k1.example");
    assert_int_equal(a.port, 9092);
    assert_int_equal(rf_dcfg_broker(c.kafka_brokers, 1, &a), 1);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 9093);
    assert_int_equal(rf_dcfg_broker(c.kafka_brokers, 2, &a), 1);
    assert_string_equal(a.host, "10.0.0.3");
    assert_int_equal(a.port, 19092);
    assert_int_equal(rf_dcfg_broker(c.kafka_brokers, 3, &a), 0);

    static const char *const bad[] = {
        "k1",   "k1:",      "k1:9092,",       ",k1:9092", "k1:9092, k2:9092", "k1:9092,,k2:9092",
        "k1:0", "k 1:9092", "k1:9092;k2:9092"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        refuse("kafka-brokers", bad[i], -EINVAL, "(use e.g. 127.0.0.1:9092,kafka2:9092)");
        assert_int_equal(rf_dcfg_broker(bad[i], 0, &a), -EINVAL);
    }
}

/* --- JSON, errors ------------------------------------------------------------------------- */

static void test_json(void **state)
{
    struct rf_dcfg c;
    char err[ERR_BYTES];
    json_t *j;

    assert_int_equal(parse(&c, err, ENV("RINGFLOW_REDIS=redis://r:6379/2"),
                           ARGS("--header-timeout=250ms", "--retention=36h", "--no-pin",
                                "--durability=none", "--body-max=3MiB")),
                     0);
    j = rf_dcfg_json(&c);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), N_FLAGS);
    for (size_t i = 0; i < N_FLAGS; i++)
        if (!json_object_get(j, all_flags[i]))
            fail_msg("no key \"%s\"", all_flags[i]);
    assert_string_equal(json_string_value(json_object_get(j, "listen")), "127.0.0.1:8080");
    assert_string_equal(json_string_value(json_object_get(j, "header-timeout")), "250ms");
    assert_string_equal(json_string_value(json_object_get(j, "idle-timeout")), "1m");
    assert_string_equal(json_string_value(json_object_get(j, "retention")), "36h");
    assert_string_equal(json_string_value(json_object_get(j, "drain-timeout")), "10s");
    assert_int_equal(json_integer_value(json_object_get(j, "body-max")), 3 << 20);
    assert_int_equal(json_integer_value(json_object_get(j, "headers-max")), 100);
    assert_true(json_integer_value(json_object_get(j, "shards")) >= 1); /* online CPUs */
    assert_true(json_is_true(json_object_get(j, "no-pin")));
    assert_string_equal(json_string_value(json_object_get(j, "durability")), "none");
    assert_string_equal(json_string_value(json_object_get(j, "log-level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "log-format")), "json");
    assert_string_equal(json_string_value(json_object_get(j, "redis")), "redis://r:6379/2");
    assert_true(json_is_null(json_object_get(j, "kafka-brokers")));
    assert_true(json_is_null(json_object_get(j, "graphs-dir")));
    assert_string_equal(json_string_value(json_object_get(j, "data-dir")), "./ringflow-data");
    json_decref(j);

    /* Every duration and size the JSON shows parses back to the same configuration. */
    assert_int_equal(parse(&c, err, NOENV, ARGS("--shards=3", "--retention=90061s")), 0);
    j = rf_dcfg_json(&c);
    assert_int_equal(json_integer_value(json_object_get(j, "shards")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "retention")), "90061s");
    json_decref(j);
}

static void test_err_buffer(void **state)
{
    struct rf_dcfg c;
    char small[8], big[ERR_BYTES];
    char *argv[] = {"ringflowd", "--frobnicate-everything-now", NULL};

    memset(small, 'x', sizeof small);
    assert_int_equal(rf_dcfg_parse(&c, 2, argv, NULL, stdout, small, sizeof small), -EINVAL);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "--frobn", sizeof small);
    assert_int_equal(rf_dcfg_parse(&c, 2, argv, NULL, stdout, NULL, 0), -EINVAL);
    /* A huge bad value is quoted, not copied whole. */
    static char huge[LONG_BYTES];
    memset(huge, '9', sizeof huge - 1);
    huge[0] = 'x';
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(parse(&c, big, NOENV, ARGS("--shards", huge)), -EINVAL);
    assert_true(strlen(big) < 200);
    assert_has(big, "--shards: \"x999");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_uint),
        cmocka_unit_test(test_size),         cmocka_unit_test(test_duration),
        cmocka_unit_test(test_bool),         cmocka_unit_test(test_enum),
        cmocka_unit_test(test_strings),      cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_cross_checks), cmocka_unit_test(test_flag_beats_env),
        cmocka_unit_test(test_unknown_flag), cmocka_unit_test(test_unknown_env),
        cmocka_unit_test(test_help),         cmocka_unit_test(test_docs_cover_flags),
        cmocka_unit_test(test_listen),       cmocka_unit_test(test_redis),
        cmocka_unit_test(test_kafka),        cmocka_unit_test(test_json),
        cmocka_unit_test(test_err_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
