/*
 * net/dcfg.c: ringflowd's flags and RINGFLOW_* variables, driven by one table.
 *
 * `opts[]` below is the whole configuration surface: each row names a flag, the type of its
 * value, the struct rf_dcfg field it lands in (offset and width), its bounds, its default as
 * text and its help. Parsing, the variable lookup, rf_dcfg_defaults (which parses each
 * default text with the flag's own parser and asserts it is accepted), --help and
 * rf_dcfg_json all walk that table; adding a setting is adding a row and a field.
 *
 * Order of precedence: defaults, then variables, then flags. rf_dcfg_parse walks argv twice:
 * the first walk only splits it into (option, value) pairs, so that a misspelt flag, a stray
 * argument or --help is seen before any value is judged; the variables come next (skipping
 * those whose flag was given: a flag wins, even over a malformed variable); the second walk
 * applies the flags in argv order. Cross-field rules (the request line fits in the head;
 * shards x inflight fits the engine's token space) are checked last. Everything is parsed
 * into a copy that is committed only on success.
 *
 * Value syntax is strict and explained in every error: counts are plain decimal digits;
 * sizes are digits with an optional binary unit; durations are digits with a unit (only 0
 * may omit it, so "--retention 7" cannot silently mean seconds when days were meant). There
 * are no signs, spaces, fractions or hex. Messages quote at most RF_DCFG_QUOTE_MAX bytes of
 * the offending value.
 *
 * The URL checks are shape checks, not resolution: a host is a DNS name, a dotted IPv4
 * address or a bracketed IPv6 address, and a port is 1..65535. --listen accepts only
 * numeric addresses and "localhost", because the server binds without a resolver.
 */
#include "net/dcfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/internal.h" /* RF_SHARDS_MAX, RF_TOK_SLOT_MAX, RF_ASSERT */
#include "net/idarch.h"       /* RF_IDARCH_KEYS_MAX_LIMIT */

#define KIB  1024ull
#define MIB  (1024ull * KIB)
#define GIB  (1024ull * MIB)
#define TIB  (1024ull * GIB)
#define S_MS 1000ull
#define M_MS (60ull * S_MS)
#define H_MS (60ull * M_MS)
#define D_MS (24ull * H_MS)

#define RF_DCFG_RING_ENTRIES_MAX 32768u /* the engine's bound (RF_RING_ENTRIES_MAX, engine.c) */
#define RF_DCFG_NAME_MAX         48u    /* longest flag name looked up or suggested */
#define RF_DCFG_WHY_BYTES        320u   /* one reason, before the flag name is prefixed */
#define RF_DCFG_QUOTE_MAX        64     /* bytes of a bad value quoted in a message */
#define RF_DCFG_SUGGEST_DIST_MAX 2u     /* edit distance of a "did you mean" suggestion */
#define RF_DCFG_FLAG_COL         38     /* --help: column of the variable name */
#define RF_DCFG_NUM_BYTES        32u    /* a formatted size or duration */
#define RF_DCFG_PORT_DIGITS_MAX  5u

enum opt_type { T_STR, T_UINT, T_SIZE, T_DUR, T_BOOL, T_ENUM };

struct enum_val {
    const char *name;
    int val;
};

struct opt;
/* Parse `v` (borrowed) and store it into c; on failure a reason in why (n bytes). */
typedef int (*conv_fn)(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n);
/* Format the current value for JSON into buf (n bytes). */
typedef void (*show_fn)(const struct rf_dcfg *c, char *buf, size_t n);

struct opt {
    const char *section; /* starts a group in --help */
    const char *name;    /* the flag without its dashes */
    const char *metavar; /* --help: what the value is */
    enum opt_type type;
    uint16_t off, width;       /* the field in struct rf_dcfg */
    uint64_t min, max;         /* T_UINT/T_SIZE: the value; T_DUR: in ms; T_STR: length */
    uint32_t unit_ms;          /* T_DUR: 1 when the field holds ms, 1000 when seconds */
    bool optional;             /* T_STR: "" allowed and means unset */
    bool cpus_if_zero;         /* T_UINT: 0 (only as the default) = online CPUs */
    const struct enum_val *ev; /* T_ENUM: the names, ended by a NULL name */
    conv_fn conv;              /* T_STR: parse and store; NULL = copy */
    show_fn show;              /* T_STR: JSON text; NULL = the field */
    const char *def;           /* default text, parsed by rf_dcfg_defaults; NULL = zero */
    const char *def_show;      /* --help: shown instead of def; NULL = def */
    const char *help;
};

#define FIELD(f) .off = offsetof(struct rf_dcfg, f), .width = sizeof(((struct rf_dcfg *)0)->f)

static int conv_listen(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n);
static int conv_redis(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n);
static int conv_prefix(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n);
static int conv_brokers(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n);
static void show_listen(const struct rf_dcfg *c, char *buf, size_t n);

static const struct enum_val ev_durability[] = {{"sync", 1}, {"none", 0}, {NULL, 0}};
static const struct enum_val ev_log_level[] = {{"debug", RF_LOG_DEBUG},
                                               {"info", RF_LOG_INFO},
                                               {"warn", RF_LOG_WARN},
                                               {"error", RF_LOG_ERROR},
                                               {NULL, 0}};
static const struct enum_val ev_log_format[] = {{"json", 0}, {"text", 1}, {NULL, 0}};

/* clang-format off */
static const struct opt opts[] = {
    {.section = "Server", .name = "listen", .metavar = "ADDR", .type = T_STR,
     FIELD(listen_host), .min = 1, .max = RF_DCFG_HOST_BYTES - 1, .conv = conv_listen,
     .show = show_listen, .def = "127.0.0.1:8080",
     .help = "address and port to listen on: a.b.c.d:port, [v6]:port or localhost:port"},
    {.name = "shards", .metavar = "N", .type = T_UINT, FIELD(shards), .min = 1,
     .max = RF_SHARDS_MAX, .cpus_if_zero = true, .def_show = "online CPUs",
     .help = "shard threads, each with its own io_uring ring"},
    {.name = "no-pin", .metavar = "", .type = T_BOOL, FIELD(no_pin), .def = "false",
     .help = "do not pin shard threads to CPUs"},
    {.name = "ring-entries", .metavar = "N", .type = T_UINT, FIELD(ring_entries), .min = 64,
     .max = RF_DCFG_RING_ENTRIES_MAX, .def = "1024",
     .help = "submission queue entries of each shard's io_uring ring"},
    {.name = "drain-timeout", .metavar = "DURATION", .type = T_DUR, FIELD(drain_timeout_ms),
     .unit_ms = 1, .min = 0, .max = H_MS, .def = "10s",
     .help = "on SIGTERM, how long in-flight work may finish before it is canceled"},

    {.section = "HTTP and WebSocket limits", .name = "request-line-max", .metavar = "SIZE",
     .type = T_SIZE, FIELD(request_line_max), .min = 64, .max = MIB, .def = "8KiB",
     .help = "longest request line; longer: 414"},
    {.name = "header-bytes-max", .metavar = "SIZE", .type = T_SIZE, FIELD(header_bytes_max),
     .min = 256, .max = MIB, .def = "16KiB",
     .help = "largest request head (request line and header fields); larger: 431"},
    {.name = "headers-max", .metavar = "N", .type = T_UINT, FIELD(headers_max), .min = 1,
     .max = 1000, .def = "100", .help = "most header fields in a request; more: 431"},
    {.name = "body-max", .metavar = "SIZE", .type = T_SIZE, FIELD(body_max), .min = KIB,
     .max = GIB, .def = "1MiB", .help = "largest request body; larger: 413"},
    {.name = "header-timeout", .metavar = "DURATION", .type = T_DUR, FIELD(header_timeout_ms),
     .unit_ms = 1, .min = 10, .max = H_MS, .def = "10s",
     .help = "from a request's first byte to the end of its head; slower: 408"},
    {.name = "idle-timeout", .metavar = "DURATION", .type = T_DUR, FIELD(idle_timeout_ms),
     .unit_ms = 1, .min = 10, .max = D_MS, .def = "60s",
     .help = "a connection with nothing received and nothing pending is closed after this"},
    {.name = "conns-per-shard-max", .metavar = "N", .type = T_UINT, FIELD(conns_per_shard_max),
     .min = 1, .max = 1000000, .def = "10000",
     .help = "open connections per shard; more are closed at accept"},
    {.name = "out-queue-max", .metavar = "SIZE", .type = T_SIZE, FIELD(out_queue_max),
     .min = 4 * KIB, .max = GIB, .def = "4MiB",
     .help = "output queued on a connection before the server stops reading from it"},
    {.name = "ws-queue-max", .metavar = "SIZE", .type = T_SIZE, FIELD(ws_queue_max),
     .min = 4 * KIB, .max = GIB, .def = "1MiB",
     .help = "a WebSocket subscriber's send queue; past it: close 1008"},
    {.name = "ws-msg-max", .metavar = "SIZE", .type = T_SIZE, FIELD(ws_msg_max), .min = KIB,
     .max = 64 * MIB, .def = "64KiB",
     .help = "largest WebSocket message received; larger: close 1009"},
    {.name = "long-poll-max", .metavar = "DURATION", .type = T_DUR, FIELD(long_poll_max_ms),
     .unit_ms = 1, .min = 0, .max = H_MS, .def = "60s",
     .help = "longest wait_ms accepted by the events and result long polls"},

    {.section = "Executions", .name = "inflight-per-shard", .metavar = "N", .type = T_UINT,
     FIELD(inflight_per_shard), .min = 1, .max = RF_TOK_SLOT_MAX, .def = "4096",
     .help = "executions in flight per shard; past it submissions get 429"},
    {.name = "executions-max", .metavar = "N", .type = T_UINT, FIELD(executions_max), .min = 1,
     .max = 100000000, .def = "20000",
     .help = "finished executions kept in memory for queries (about 3 KiB each for a small "
             "graph); older ones are read from the journal"},
    {.name = "events-per-execution-max", .metavar = "N", .type = T_UINT,
     FIELD(events_per_execution_max), .min = 1, .max = 10000000, .def = "100000",
     .help = "events kept per execution"},
    {.name = "idempotency-keys-max", .metavar = "N", .type = T_UINT,
     FIELD(idempotency_keys_max), .min = 1, .max = RF_IDARCH_KEYS_MAX_LIMIT, .def = "1000000",
     .help = "idempotency keys of executions no longer in memory remembered for the "
             "retention (about 64 bytes each; the oldest are forgotten first)"},
    {.name = "retention", .metavar = "DURATION", .type = T_DUR, FIELD(retention_s),
     .unit_ms = 1000, .min = S_MS, .max = 3650 * D_MS, .def = "7d",
     .help = "how long finished executions stay queryable (whole seconds)"},
    {.name = "graphs-dir", .metavar = "PATH", .type = T_STR, FIELD(graphs_dir), .min = 0,
     .max = RF_DCFG_PATH_BYTES - 1, .optional = true, .def_show = "unset",
     .help = "register this directory's *.json graph documents at start-up"},

    {.section = "Storage and cache", .name = "data-dir", .metavar = "PATH", .type = T_STR,
     FIELD(data_dir), .min = 1, .max = RF_DCFG_PATH_BYTES - 1, .def = "./ringflow-data",
     .help = "directory of the journal and state"},
    {.name = "durability", .metavar = "MODE", .type = T_ENUM, FIELD(durability_sync),
     .ev = ev_durability, .def = "sync",
     .help = "sync: answer 202 after fdatasync; none: once the write is queued"},
    {.name = "journal-segment-size", .metavar = "SIZE", .type = T_SIZE,
     FIELD(journal_segment_bytes), .min = MIB, .max = 64 * GIB, .def = "64MiB",
     .help = "preallocated size of one journal segment file"},
    {.name = "repair-journal", .metavar = "", .type = T_BOOL, FIELD(repair_journal),
     .def = "false",
     .help = "at start-up, cut a corrupted journal at the damage (later segments are moved "
             "to damaged/) instead of refusing to start"},
    {.name = "journal-faults", .metavar = "SPEC", .type = T_STR, FIELD(journal_faults),
     .min = 0, .max = RF_DCFG_URL_BYTES - 1, .optional = true, .def_show = "unset",
     .help = "testing only: inject journal I/O errors, e.g. eio_sync=3,short_write=2 "
             "(also eio_write, enospc): the n-th such operation of each shard fails"},
    {.name = "cron-clock-file", .metavar = "PATH", .type = T_STR, FIELD(cron_clock_file),
     .min = 0, .max = 255, .optional = true, .def_show = "unset",
     .help = "testing only: cron triggers read the time (unix seconds) from this file "
             "instead of the clock"},
    {.name = "redis", .metavar = "URL", .type = T_STR, FIELD(redis_url), .min = 0,
     .max = RF_DCFG_URL_BYTES - 1, .optional = true, .conv = conv_redis, .def_show = "unset",
     .help = "shared cache, redis://host:port[/db]; unset: in-memory cache, one instance"},
    {.name = "redis-prefix", .metavar = "TEXT", .type = T_STR, FIELD(redis_prefix), .min = 1,
     .max = 63, .conv = conv_prefix, .def = "ringflow",
     .help = "first part of every Redis key and channel: <prefix>:cache:..., "
             "<prefix>:lease:..., <prefix>:events:... ([A-Za-z0-9._-])"},
    {.name = "redis-timeout", .metavar = "DURATION", .type = T_DUR, FIELD(redis_timeout_ms),
     .unit_ms = 1, .min = 10, .max = 60 * S_MS, .def = "500ms",
     .help = "a Redis connect or reply slower than this drops the connection (the cache is "
             "bypassed until it is back)"},
    {.name = "redis-events-ttl", .metavar = "DURATION", .type = T_DUR, FIELD(redis_events_ttl_s),
     .unit_ms = 1000, .min = S_MS, .max = 30 * D_MS, .def = "1h",
     .help = "how long an execution's events stay in Redis after its newest one, for "
             "subscribers on other instances (whole seconds)"},
    {.name = "cache-bytes-max", .metavar = "SIZE", .type = T_SIZE, FIELD(cache_bytes_max),
     .min = 64 * KIB, .max = TIB, .def = "64MiB", .help = "bytes of the in-memory result cache"},
    {.name = "cache-entries-max", .metavar = "N", .type = T_UINT, FIELD(cache_entries_max),
     .min = 1, .max = 1000000000, .def = "65536",
     .help = "entries of the in-memory result cache"},

    {.section = "The http node kind", .name = "http-timeout", .metavar = "DURATION",
     .type = T_DUR, FIELD(http_timeout_ms), .unit_ms = 1, .min = 1, .max = H_MS, .def = "30s",
     .help = "timeout of one attempt, unless the node sets a shorter timeout_ms"},
    {.name = "http-response-max", .metavar = "SIZE", .type = T_SIZE, FIELD(http_response_max),
     .min = KIB, .max = GIB, .def = "8MiB",
     .help = "largest response read (status line, headers and body)"},

    {.section = "Kafka", .name = "kafka-brokers", .metavar = "LIST", .type = T_STR,
     FIELD(kafka_brokers), .min = 0, .max = RF_DCFG_URL_BYTES - 1, .optional = true,
     .conv = conv_brokers, .def_show = "unset",
     .help = "bootstrap brokers, host:port[,host:port...]; unset: no Kafka trigger or events"},
    {.name = "kafka-topic", .metavar = "TOPIC", .type = T_STR, FIELD(kafka_topic), .min = 1,
     .max = 249, .def = "ringflow.executions",
     .help = "the topic whose messages start executions"},
    {.name = "kafka-group", .metavar = "GROUP", .type = T_STR, FIELD(kafka_group), .min = 1,
     .max = 249, .def = "ringflow", .help = "the consumer group of the trigger topic"},
    {.name = "kafka-dlq-topic", .metavar = "TOPIC", .type = T_STR, FIELD(kafka_dlq_topic),
     .min = 1, .max = 249, .def = "ringflow.executions.dlq",
     .help = "where messages that cannot become executions go, the reason in a header"},
    {.name = "kafka-events-topic", .metavar = "TOPIC", .type = T_STR,
     FIELD(kafka_events_topic), .min = 0, .max = 249, .optional = true, .def_show = "unset",
     .help = "produce every event here (key = execution id); unset: no events to Kafka"},
    {.name = "kafka-partition-inflight", .metavar = "N", .type = T_UINT,
     FIELD(kafka_partition_inflight), .min = 1, .max = 4096, .def = "4096",
     .help = "trigger-topic messages in flight per partition (read, not yet durable)"},
    {.name = "kafka-debug", .metavar = "CONTEXTS", .type = T_STR, FIELD(kafka_debug),
     .min = 0, .max = 127, .optional = true, .def_show = "unset",
     .help = "librdkafka's debug contexts (e.g. fetch,cgrp) logged on stderr; for diagnosis"},

    {.section = "Logging", .name = "log-level", .metavar = "LEVEL", .type = T_ENUM,
     FIELD(log_level), .ev = ev_log_level, .def = "info",
     .help = "diagnostics on stderr at this level and above"},
    {.name = "log-format", .metavar = "FORMAT", .type = T_ENUM, FIELD(log_text),
     .ev = ev_log_format, .def = "json",
     .help = "json: one JSON object per line; text: plain lines"},
};
/* clang-format on */

#define N_OPTS RF_ARRAY_LEN(opts)

/* --- small helpers ---------------------------------------------------------------------- */

static void put_uint(struct rf_dcfg *c, const struct opt *o, uint64_t v)
{
    char *p = (char *)c + o->off;

    if (o->type == T_BOOL || (o->type == T_ENUM && o->width == sizeof(bool))) {
        bool b = v != 0;
        memcpy(p, &b, sizeof b);
    } else if (o->type == T_ENUM) {
        int i = (int)v;
        RF_ASSERT(o->width == sizeof i);
        memcpy(p, &i, sizeof i);
    } else if (o->width == sizeof(uint16_t)) {
        uint16_t u = (uint16_t)v;
        memcpy(p, &u, sizeof u);
    } else if (o->width == sizeof(uint32_t)) {
        uint32_t u = (uint32_t)v;
        memcpy(p, &u, sizeof u);
    } else {
        RF_ASSERT(o->width == sizeof(uint64_t));
        memcpy(p, &v, sizeof v);
    }
}

static uint64_t get_uint(const struct rf_dcfg *c, const struct opt *o)
{
    const char *p = (const char *)c + o->off;

    if (o->type == T_BOOL || (o->type == T_ENUM && o->width == sizeof(bool))) {
        bool b;
        memcpy(&b, p, sizeof b);
        return b;
    }
    if (o->type == T_ENUM) {
        int i;
        memcpy(&i, p, sizeof i);
        return (uint64_t)i;
    }
    if (o->width == sizeof(uint32_t)) {
        uint32_t u;
        memcpy(&u, p, sizeof u);
        return u;
    }
    uint64_t u;
    RF_ASSERT(o->width == sizeof u);
    memcpy(&u, p, sizeof u);
    return u;
}

/* "RINGFLOW_BODY_MAX" from "body-max" into buf (n bytes). */
static void env_name(const struct opt *o, char *buf, size_t n)
{
    size_t pre = strlen(RF_DCFG_ENV_PREFIX), i;

    RF_ASSERT(n > pre + strlen(o->name));
    memcpy(buf, RF_DCFG_ENV_PREFIX, pre);
    for (i = 0; o->name[i]; i++)
        buf[pre + i] = o->name[i] == '-' ? '_' : (char)(o->name[i] - 'a' + 'A');
    buf[pre + i] = '\0';
}

#define ENV_NAME_BYTES (sizeof RF_DCFG_ENV_PREFIX + RF_DCFG_NAME_MAX)

/* The option called name[0..len), or NULL. */
static const struct opt *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* The option whose variable is var[0..len) (with its prefix), or NULL. */
static const struct opt *find_env(const char *var, size_t len)
{
    char buf[ENV_NAME_BYTES];

    for (size_t i = 0; i < N_OPTS; i++) {
        env_name(&opts[i], buf, sizeof buf);
        if (strlen(buf) == len && memcmp(buf, var, len) == 0)
            return &opts[i];
    }
    return NULL;
}

/* Levenshtein distance of a[0..la) and b, case-insensitive; both at most RF_DCFG_NAME_MAX. */
static unsigned edit_distance(const char *a, size_t la, const char *b)
{
    unsigned row[RF_DCFG_NAME_MAX + 1];
    size_t lb = strlen(b);

    RF_ASSERT(la <= RF_DCFG_NAME_MAX && lb <= RF_DCFG_NAME_MAX);
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned sub =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            row[j] = RF_MIN(RF_MIN(row[j] + 1, row[j - 1] + 1), sub);
            diag = up;
        }
    }
    return row[lb];
}

/* The flag nearest to name[0..len) ('_' read as '-'), or NULL when none is near. */
static const struct opt *suggest(const char *name, size_t len)
{
    char buf[RF_DCFG_NAME_MAX + 1];
    const struct opt *best = NULL;
    unsigned best_d = RF_DCFG_SUGGEST_DIST_MAX + 1;

    if (len > RF_DCFG_NAME_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = name[i] == '_' ? '-' : name[i];
    for (size_t i = 0; i < N_OPTS; i++) {
        unsigned d = edit_distance(buf, len, opts[i].name);
        if (d < best_d) {
            best_d = d;
            best = &opts[i];
        }
    }
    return best;
}

/* --- value parsers (pure) --------------------------------------------------------------- */

/* Decimal digits at *s into *out, advancing *s: 0, -EINVAL when no digit, -ERANGE on
 * overflow (the digits are still consumed). */
static int parse_digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    bool over = false;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return over ? -ERANGE : 0;
}

struct unit {
    const char *sfx;
    uint64_t mul;
};

static const struct unit size_units[] = {
    {"", 1},    {"B", 1},     {"K", KIB}, {"KiB", KIB}, {"M", MIB}, {"MiB", MIB},
    {"G", GIB}, {"GiB", GIB}, {"T", TIB}, {"TiB", TIB}, {NULL, 0},
};
static const struct unit dur_units[] = {
    {"ms", 1}, {"s", S_MS}, {"m", M_MS}, {"h", H_MS}, {"d", D_MS}, {NULL, 0},
};

/* digits + one of `units`: 0, -EINVAL (syntax), -ERANGE (overflow). */
static int parse_scaled(const char *v, const struct unit *units, uint64_t *out)
{
    const char *p = v;
    uint64_t x;
    int rc = parse_digits(&p, &x);

    if (rc == -EINVAL)
        return rc;
    for (const struct unit *u = units; u->sfx; u++) {
        if (strcmp(p, u->sfx) != 0)
            continue;
        if (rc < 0 || (x != 0 && x > UINT64_MAX / u->mul))
            return -ERANGE;
        *out = x * u->mul;
        return 0;
    }
    if (*p == '\0' && x == 0 && units == dur_units) {
        *out = 0; /* the one duration that needs no unit */
        return 0;
    }
    return -EINVAL;
}

/* Format `v` with the largest unit of `units` that divides it exactly ("8KiB", "7d");
 * units[0] must have the multiplier 1. */
static void fmt_scaled(uint64_t v, const struct unit *units, char *buf, size_t n)
{
    const struct unit *best = &units[0];

    RF_ASSERT(best->mul == 1);
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    for (const struct unit *u = units; u->sfx; u++)
        if (v % u->mul == 0 && u->mul > best->mul)
            best = u;
    snprintf(buf, n, "%" PRIu64 "%s", v / best->mul, best->sfx);
}

static void fmt_size(uint64_t v, char *buf, size_t n)
{
    /* Prefer the IEC suffixes: B, KiB, MiB, GiB, TiB. */
    static const struct unit iec[] = {
        {"B", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB}, {"TiB", TIB}, {NULL, 0},
    };
    fmt_scaled(v, iec, buf, n);
}

static void fmt_dur(uint64_t ms, char *buf, size_t n)
{
    fmt_scaled(ms, dur_units, buf, n);
}

static int parse_bool(const char *v, uint64_t *out)
{
    if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0)
        *out = 0;
    else
        return -EINVAL;
    return 0;
}

static void enum_list(const struct enum_val *ev, char *buf, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (const struct enum_val *e = ev; e->name && used < n; e++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", e == ev ? "" : ", ", e->name);
}

/* --- applying one value ----------------------------------------------------------------- */

static void fmt_bound(const struct opt *o, uint64_t v, char *buf, size_t n)
{
    if (o->type == T_SIZE)
        fmt_size(v, buf, n);
    else if (o->type == T_DUR)
        fmt_dur(v, buf, n);
    else
        snprintf(buf, n, "%" PRIu64, v);
}

static int range_error(const struct opt *o, const char *v, char *why, size_t n)
{
    char lo[RF_DCFG_NUM_BYTES], hi[RF_DCFG_NUM_BYTES];

    fmt_bound(o, o->min, lo, sizeof lo);
    fmt_bound(o, o->max, hi, sizeof hi);
    snprintf(why, n, "\"%.*s\" is out of range: must be between %s and %s", RF_DCFG_QUOTE_MAX, v,
             lo, hi);
    return -ERANGE;
}

/* A number-valued option (count, size, duration, boolean). */
static int apply_number(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    uint64_t x = 0;
    int rc;

    if (o->type == T_UINT) {
        const char *p = v;
        rc = parse_digits(&p, &x);
        if (rc != -EINVAL && *p != '\0')
            rc = -EINVAL;
    } else if (o->type == T_SIZE) {
        rc = parse_scaled(v, size_units, &x);
    } else if (o->type == T_DUR) {
        rc = parse_scaled(v, dur_units, &x);
    } else {
        rc = parse_bool(v, &x);
    }
    if (rc == -EINVAL) {
        static const char *const hint[] = {
            [T_UINT] = "is not a whole number (digits only)",
            [T_SIZE] = "is not a size (use e.g. 1MiB: bytes, or B, KiB, MiB, GiB, TiB)",
            [T_DUR] = "is not a duration (use e.g. 10s: a whole number with ms, s, m, h or d)",
            [T_BOOL] = "is not a boolean (use 1, true, 0 or false)",
        };
        snprintf(why, n, "\"%.*s\" %s", RF_DCFG_QUOTE_MAX, v, hint[o->type]);
        return rc;
    }
    if (o->type != T_BOOL && (rc == -ERANGE || x < o->min || x > o->max))
        return range_error(o, v, why, n);
    if (o->type == T_DUR && x % o->unit_ms != 0) {
        snprintf(why, n, "\"%.*s\" is not a whole number of seconds", RF_DCFG_QUOTE_MAX, v);
        return -EINVAL;
    }
    put_uint(c, o, o->type == T_DUR ? x / o->unit_ms : x);
    return 0;
}

static int apply_enum(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    char names[RF_DCFG_WHY_BYTES / 2];

    for (const struct enum_val *e = o->ev; e->name; e++) {
        if (strcmp(v, e->name) == 0) {
            put_uint(c, o, (uint64_t)e->val);
            return 0;
        }
    }
    enum_list(o->ev, names, sizeof names);
    snprintf(why, n, "\"%.*s\" is not one of %s", RF_DCFG_QUOTE_MAX, v, names);
    return -EINVAL;
}

static int apply_str(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    size_t len = strlen(v);

    if (len == 0 && o->optional) {
        ((char *)c + o->off)[0] = '\0';
        return 0;
    }
    if (len > o->max) {
        snprintf(why, n, "the value is %zu bytes long, longer than %" PRIu64, len, o->max);
        return -ERANGE;
    }
    if (o->conv)
        return o->conv(c, o, v, why, n);
    RF_ASSERT(len < o->width);
    memcpy((char *)c + o->off, v, len + 1);
    return 0;
}

/* Parse `v` into the option's field: 0, or a negative errno with a reason in why. */
static int apply(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    if (v[0] == '\0' && !(o->type == T_STR && o->optional)) {
        snprintf(why, n, "the value is empty");
        return -EINVAL;
    }
    switch (o->type) {
    case T_STR:
        return apply_str(c, o, v, why, n);
    case T_ENUM:
        return apply_enum(c, o, v, why, n);
    default:
        return apply_number(c, o, v, why, n);
    }
}

/* --- hosts, ports, --listen, --redis, --kafka-brokers ----------------------------------- */

/* Write a reason into why (n bytes) and return -EINVAL. */
static int why_inval(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int why_inval(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* s[0..len) as a port 1..65535. */
static int parse_port(const char *s, size_t len, uint16_t *port)
{
    uint64_t v = 0;

    if (len == 0 || len > RF_DCFG_PORT_DIGITS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > UINT16_MAX)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* A DNS name (letters, digits, '-' and '.' in labels of 1..63 bytes, no '-' at a label's
 * ends) or, when it is only digits and dots, a dotted IPv4 address. */
static bool host_ok(const char *h, size_t len)
{
    char ip[INET_ADDRSTRLEN];
    size_t label = 0;
    bool numeric = true;
    struct in_addr a4;

    if (len == 0 || len > RF_DCFG_DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-'))
            return false;
        if ((ch == '-' && label == 0) || ++label > 63)
            return false;
        numeric = numeric && ch >= '0' && ch <= '9';
    }
    if (label == 0 || h[len - 1] == '-')
        return false;
    if (!numeric)
        return true;
    if (len >= sizeof ip)
        return false;
    memcpy(ip, h, len);
    ip[len] = '\0';
    return inet_pton(AF_INET, ip, &a4) == 1;
}

/* "[v6]" at the start of s[0..len) into a->host; *rest just past the ']'. */
static int parse_v6(const char *s, size_t len, struct rf_dcfg_addr *a, const char **rest, char *why,
                    size_t n)
{
    const char *close = memchr(s, ']', len);
    size_t hl = close ? (size_t)(close - s - 1) : 0;
    struct in6_addr a6;

    if (!close || hl == 0 || hl >= INET6_ADDRSTRLEN)
        return why_inval(why, n, "a bracketed IPv6 address is malformed");
    memcpy(a->host, s + 1, hl);
    a->host[hl] = '\0';
    if (inet_pton(AF_INET6, a->host, &a6) != 1)
        return why_inval(why, n, "\"%s\" is not an IPv6 address", a->host);
    *rest = close + 1;
    return 0;
}

/* "host:port" or "[v6]:port" in s[0..len) into *a; why names the problem. */
static int parse_hostport(const char *s, size_t len, struct rf_dcfg_addr *a, char *why, size_t n)
{
    const char *end = s + len, *colon = NULL;
    size_t hl;

    if (len > 0 && s[0] == '[') {
        if (parse_v6(s, len, a, &colon, why, n) != 0)
            return -EINVAL;
        if (colon == end || *colon != ':')
            return why_inval(why, n, "the port is missing (host:port)");
    } else {
        colon = memrchr(s, ':', len);
        if (!colon)
            return why_inval(why, n, "the port is missing (host:port)");
        hl = (size_t)(colon - s);
        if (memchr(s, ':', hl))
            return why_inval(why, n, "put an IPv6 address in brackets: [::1]:port");
        if (!host_ok(s, hl))
            return why_inval(why, n, "\"%.*s\" is not a host name or IPv4 address",
                             (int)RF_MIN(hl, (size_t)RF_DCFG_QUOTE_MAX), s);
        memcpy(a->host, s, hl);
        a->host[hl] = '\0';
    }
    if (parse_port(colon + 1, (size_t)(end - colon - 1), &a->port) != 0)
        return why_inval(why, n, "\"%.*s\" is not a port (1..65535)",
                         (int)RF_MIN((size_t)(end - colon - 1), (size_t)RF_DCFG_QUOTE_MAX),
                         colon + 1);
    return 0;
}

static int conv_listen(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    struct rf_dcfg_addr a;
    struct in_addr a4;
    char reason[RF_DCFG_WHY_BYTES / 2];

    if (parse_hostport(v, strlen(v), &a, reason, sizeof reason) != 0) {
        snprintf(why, n, "\"%.*s\": %s (use a.b.c.d:port, [v6]:port or localhost:port)",
                 RF_DCFG_QUOTE_MAX, v, reason);
        return -EINVAL;
    }
    if (v[0] != '[' && strcmp(a.host, "localhost") != 0 && inet_pton(AF_INET, a.host, &a4) != 1) {
        snprintf(why, n, "\"%.*s\": the host must be a numeric address or localhost",
                 RF_DCFG_QUOTE_MAX, v);
        return -EINVAL;
    }
    RF_ASSERT(strlen(a.host) < sizeof c->listen_host);
    strcpy(c->listen_host, a.host);
    c->listen_port = a.port;
    return 0;
}

static void show_listen(const struct rf_dcfg *c, char *buf, size_t n)
{
    bool v6 = strchr(c->listen_host, ':') != NULL;

    snprintf(buf, n, "%s%s%s:%u", v6 ? "[" : "", c->listen_host, v6 ? "]" : "", c->listen_port);
}

static int redis_split(const char *url, struct rf_dcfg_addr *a, uint32_t *db, char *why, size_t n)
{
    static const char scheme[] = "redis://";
    const char *hp, *slash;
    uint64_t d = 0;

    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return why_inval(why, n, "the URL must start with redis://");
    hp = url + sizeof scheme - 1;
    if (strpbrk(hp, "@?#"))
        return why_inval(why, n, "user info, queries and fragments are not supported");
    slash = strchr(hp, '/');
    if (parse_hostport(hp, slash ? (size_t)(slash - hp) : strlen(hp), a, why, n) != 0)
        return -EINVAL;
    if (slash) {
        const char *p = slash + 1;
        if (parse_digits(&p, &d) != 0 || *p != '\0' || d > RF_DCFG_REDIS_DB_MAX)
            return why_inval(why, n, "the database after '/' must be 0..%u", RF_DCFG_REDIS_DB_MAX);
    }
    *db = (uint32_t)d;
    return 0;
}

int rf_dcfg_redis_url(const char *url, struct rf_dcfg_addr *a, uint32_t *db)
{
    char why[RF_DCFG_WHY_BYTES];

    return redis_split(url, a, db, why, sizeof why);
}

static int conv_redis(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    struct rf_dcfg_addr a;
    uint32_t db;
    char reason[RF_DCFG_WHY_BYTES / 2];

    if (redis_split(v, &a, &db, reason, sizeof reason) != 0) {
        snprintf(why, n, "\"%.*s\": %s (use e.g. redis://127.0.0.1:6379/0)", RF_DCFG_QUOTE_MAX, v,
                 reason);
        return -EINVAL;
    }
    memcpy(c->redis_url, v, strlen(v) + 1);
    return 0;
}

static int conv_prefix(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    (void)o;
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            snprintf(why, n, "\"%.*s\": only letters, digits, '.', '_' and '-'",
                     RF_DCFG_QUOTE_MAX, v);
            return -EINVAL;
        }
    memcpy(c->redis_prefix, v, strlen(v) + 1);
    return 0;
}

/* Walk the brokers of `list`: the i-th into *a. 1 found, 0 past the end, -EINVAL. */
static int broker_at(const char *list, uint32_t i, struct rf_dcfg_addr *a, char *why, size_t n)
{
    const char *p = list;
    uint32_t k = 0;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        struct rf_dcfg_addr tmp;
        if (parse_hostport(p, len, &tmp, why, n) != 0)
            return -EINVAL;
        if (k++ == i)
            *a = tmp;
        if (!comma)
            return k > i;
        p = comma + 1;
    }
}

int rf_dcfg_broker(const char *list, uint32_t i, struct rf_dcfg_addr *a)
{
    char why[RF_DCFG_WHY_BYTES];

    return broker_at(list, i, a, why, sizeof why);
}

static int conv_brokers(struct rf_dcfg *c, const struct opt *o, const char *v, char *why, size_t n)
{
    struct rf_dcfg_addr a;
    char reason[RF_DCFG_WHY_BYTES / 2];

    if (broker_at(v, 0, &a, reason, sizeof reason) < 0) {
        snprintf(why, n, "\"%.*s\": %s (use e.g. 127.0.0.1:9092,kafka2:9092)", RF_DCFG_QUOTE_MAX, v,
                 reason);
        return -EINVAL;
    }
    memcpy(c->kafka_brokers, v, strlen(v) + 1);
    return 0;
}

/* --- defaults and help ------------------------------------------------------------------ */

void rf_dcfg_defaults(struct rf_dcfg *c)
{
    char why[RF_DCFG_WHY_BYTES];

    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTS; i++) {
        RF_ASSERT(strlen(opts[i].name) <= RF_DCFG_NAME_MAX);
        if (opts[i].def) {
            int rc = apply(c, &opts[i], opts[i].def, why, sizeof why);
            RF_ASSERT(rc == 0); /* a default the flag's own parser refuses is a table bug */
        }
    }
}

/* "default 8KiB; 64B to 1MiB" and the like, for --help and the docs. */
static void help_detail(const struct opt *o, char *buf, size_t n)
{
    const char *def = o->def_show ? o->def_show : o->def;
    char lo[RF_DCFG_NUM_BYTES], hi[RF_DCFG_NUM_BYTES], names[RF_DCFG_WHY_BYTES / 2];

    if (o->type == T_ENUM) {
        enum_list(o->ev, names, sizeof names);
        snprintf(buf, n, "default %s; one of %s", def, names);
    } else if (o->type == T_UINT || o->type == T_SIZE || o->type == T_DUR) {
        fmt_bound(o, o->min, lo, sizeof lo);
        fmt_bound(o, o->max, hi, sizeof hi);
        snprintf(buf, n, "default %s; %s to %s", def, lo, hi);
    } else {
        snprintf(buf, n, "default %s", def);
    }
}

void rf_dcfg_help(FILE *out)
{
    char var[ENV_NAME_BYTES], flag[RF_DCFG_NAME_MAX + RF_DCFG_NUM_BYTES], detail[256];

    fprintf(out, "Usage: ringflowd [flags]\n\n"
                 "Serves the ringflow HTTP and WebSocket API. Every flag can also be set with the\n"
                 "environment variable beside it; a flag wins over its variable. Give values as\n"
                 "--name value or --name=value.\n"
                 "  N         a whole number (digits only)\n"
                 "  SIZE      bytes, or with a unit: B, KiB, MiB, GiB, TiB (K, M, G, T: the same)\n"
                 "  DURATION  a whole number with a unit: ms, s, m, h, d (only 0 may omit it)\n\n"
                 "  -h, --help    print this text and exit\n"
                 "  --version     print the version and exit\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->section)
            fprintf(out, "\n%s:\n", o->section);
        env_name(o, var, sizeof var);
        snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->metavar[0] ? " " : "", o->metavar);
        help_detail(o, detail, sizeof detail);
        fprintf(out, "  %-*s %s\n      %s\n      %s\n", RF_DCFG_FLAG_COL - 3, flag, var, o->help,
                detail);
    }
}

/* --- parsing ---------------------------------------------------------------------------- */

static void err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int unknown_flag(const char *name, size_t len, char *err, size_t errlen)
{
    const struct opt *s = suggest(name, len);
    int shown = (int)RF_MIN(len, (size_t)RF_DCFG_QUOTE_MAX);

    if (s)
        err_set(err, errlen, "--%.*s: unknown flag (did you mean --%s?)", shown, name, s->name);
    else
        err_set(err, errlen, "--%.*s: unknown flag", shown, name);
    return -EINVAL;
}

enum tok { TOK_OPT, TOK_HELP, TOK_VERSION, TOK_END };

/* The next argument at *i: an option and its value (argv or the default "true" of a
 * boolean), --help, --version, the end, or a negative errno with a message. */
static int next_arg(int argc, char **argv, int *i, const struct opt **o, const char **v, char *err,
                    size_t errlen)
{
    const char *a, *name, *eq;
    size_t len;

    if (*i >= argc)
        return TOK_END;
    a = argv[(*i)++];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
        return TOK_HELP;
    if (strcmp(a, "--version") == 0)
        return TOK_VERSION;
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        err_set(err, errlen, "\"%.*s\": unexpected argument (ringflowd takes only flags)",
                RF_DCFG_QUOTE_MAX, a);
        return -EINVAL;
    }
    name = a + 2;
    eq = strchr(name, '=');
    len = eq ? (size_t)(eq - name) : strlen(name);
    *o = find_flag(name, len);
    if (!*o && eq &&
        ((len == 4 && memcmp(name, "help", 4) == 0) ||
         (len == 7 && memcmp(name, "version", 7) == 0))) {
        err_set(err, errlen, "--%.*s: takes no value", (int)len, name);
        return -EINVAL;
    }
    if (!*o)
        return unknown_flag(name, len, err, errlen);
    if (eq) {
        *v = eq + 1;
    } else if ((*o)->type == T_BOOL) {
        *v = "true";
    } else if (*i >= argc) {
        err_set(err, errlen, "--%s: needs a value (%s)", (*o)->name, (*o)->metavar);
        return -EINVAL;
    } else if (strncmp(argv[*i], "--", 2) == 0) {
        err_set(err, errlen,
                "--%s: needs a value, got the flag %.*s (write --%s=%.*s for a "
                "value that starts with --)",
                (*o)->name, RF_DCFG_QUOTE_MAX, argv[*i], (*o)->name, RF_DCFG_QUOTE_MAX, argv[*i]);
        return -EINVAL;
    } else {
        *v = argv[(*i)++];
    }
    return TOK_OPT;
}

/* Apply the RINGFLOW_* variables of envp, except those whose flag is in `given`. */
static int apply_env(struct rf_dcfg *c, char **envp, const bool *given, char *err, size_t errlen)
{
    const size_t pre = strlen(RF_DCFG_ENV_PREFIX);
    char why[RF_DCFG_WHY_BYTES];

    for (char **e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        const struct opt *o;
        int rc;
        if (strncmp(*e, RF_DCFG_ENV_PREFIX, pre) != 0 || !eq)
            continue;
        o = find_env(*e, (size_t)(eq - *e));
        if (!o) {
            const struct opt *s = suggest(*e + pre, (size_t)(eq - *e) - pre);
            char sv[ENV_NAME_BYTES] = "";
            if (s)
                env_name(s, sv, sizeof sv);
            err_set(err, errlen, "%.*s: unknown variable (%s%s%s)",
                    (int)RF_MIN((size_t)(eq - *e), (size_t)RF_DCFG_QUOTE_MAX), *e,
                    s ? "did you mean " : "every RINGFLOW_* variable must name a flag", sv,
                    s ? "?" : "");
            return -EINVAL;
        }
        if (given[o - opts])
            continue; /* the flag wins */
        rc = apply(c, o, eq + 1, why, sizeof why);
        if (rc < 0) {
            char var[ENV_NAME_BYTES];
            env_name(o, var, sizeof var);
            err_set(err, errlen, "%s (--%s): %s", var, o->name, why);
            return rc;
        }
    }
    return 0;
}

/* Rules that involve two settings. */
static int check_cross(const struct rf_dcfg *c, char *err, size_t errlen)
{
    char a[RF_DCFG_NUM_BYTES], b[RF_DCFG_NUM_BYTES];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t shards = c->shards ? c->shards : (uint64_t)(cpus > 0 ? cpus : 1);

    if (c->request_line_max > c->header_bytes_max) {
        fmt_size(c->request_line_max, a, sizeof a);
        fmt_size(c->header_bytes_max, b, sizeof b);
        err_set(err, errlen,
                "--request-line-max (%s) must not exceed --header-bytes-max (%s): "
                "the request line is part of the head",
                a, b);
        return -ERANGE;
    }
    if (shards * c->inflight_per_shard > RF_TOK_SLOT_MAX) {
        err_set(err, errlen,
                "--shards (%" PRIu64 ") x --inflight-per-shard (%u) must not "
                "exceed %u",
                shards, c->inflight_per_shard, (unsigned)RF_TOK_SLOT_MAX);
        return -ERANGE;
    }
    return 0;
}

/* Everything but the defaults: flags split, variables, flags applied, cross checks. */
static int parse_into(struct rf_dcfg *c, int argc, char **argv, char **envp, FILE *out, char *err,
                      size_t errlen)
{
    bool given[N_OPTS] = {false};
    char why[RF_DCFG_WHY_BYTES];
    const struct opt *o = NULL;
    const char *v = NULL;
    int i = 1, t, rc;

    while ((t = next_arg(argc, argv, &i, &o, &v, err, errlen)) == TOK_OPT)
        given[o - opts] = true;
    if (t == TOK_HELP || t == TOK_VERSION) {
        if (t == TOK_HELP)
            rf_dcfg_help(out);
        else
            fprintf(out, "ringflowd %d.%d.%d\n", RF_VERSION_MAJOR, RF_VERSION_MINOR,
                    RF_VERSION_PATCH);
        return 1;
    }
    if (t < 0)
        return t;
    rc = apply_env(c, envp, given, err, errlen);
    if (rc < 0)
        return rc;
    for (i = 1; (t = next_arg(argc, argv, &i, &o, &v, err, errlen)) == TOK_OPT;) {
        rc = apply(c, o, v, why, sizeof why);
        if (rc < 0) {
            err_set(err, errlen, "--%s: %s", o->name, why);
            return rc;
        }
    }
    RF_ASSERT(t == TOK_END);
    return check_cross(c, err, errlen);
}

int rf_dcfg_parse(struct rf_dcfg *c, int argc, char **argv, char **envp, FILE *out, char *err,
                  size_t errlen)
{
    struct rf_dcfg tmp; /* committed to *c only on success */
    int rc;

    err_set(err, errlen, "%s", "");
    rf_dcfg_defaults(&tmp);
    rc = parse_into(&tmp, argc, argv, envp, out, err, errlen);
    if (rc == 0)
        *c = tmp;
    else
        rf_dcfg_defaults(c);
    return rc;
}

/* --- JSON ------------------------------------------------------------------------------- */

static json_t *opt_json(const struct rf_dcfg *c, const struct opt *o)
{
    char buf[RF_DCFG_PATH_BYTES + 8];
    uint64_t u;

    switch (o->type) {
    case T_STR:
        if (o->show) {
            o->show(c, buf, sizeof buf);
            return json_string(buf);
        }
        if (o->optional && ((const char *)c + o->off)[0] == '\0')
            return json_null();
        return json_string((const char *)c + o->off);
    case T_BOOL:
        return json_boolean(get_uint(c, o));
    case T_ENUM:
        u = get_uint(c, o);
        for (const struct enum_val *e = o->ev; e->name; e++)
            if ((uint64_t)e->val == u)
                return json_string(e->name);
        return json_null();
    case T_DUR:
        fmt_dur(get_uint(c, o) * o->unit_ms, buf, sizeof buf);
        return json_string(buf);
    default:
        u = get_uint(c, o);
        if (u == 0 && o->cpus_if_zero) {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            u = cpus > 0 ? (uint64_t)cpus : 1;
        }
        return json_integer((json_int_t)u);
    }
}

json_t *rf_dcfg_json(const struct rf_dcfg *c)
{
    json_t *obj = json_object();

    if (!obj)
        return NULL;
    for (size_t i = 0; i < N_OPTS; i++) {
        json_t *v = opt_json(c, &opts[i]);
        if (!v || json_object_set_new(obj, opts[i].name, v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}
