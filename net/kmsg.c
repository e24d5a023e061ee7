/*
 * net/kmsg.c: the Kafka trigger's message (net/kmsg.h has the format).
 *
 * The value is parsed with engine/jparse.c (one pass: a consumer may see many messages
 * per loop iteration), then each member is checked in turn; the first problem found is
 * the one reported, so a reason names one field.
 */
#include "net/kmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "engine/jparse.h"

static int fail(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, RF_KMSG_WHY_BYTES, fmt, ap);
    va_end(ap);
    return -1;
}

static int graph_name(const json_t *v, char out[65], char *why)
{
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;

    if (!s || n == 0 || n > 64)
        return fail(why, "graph: a graph name is required");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '.' || c == '_' || c == '-'))))
            return fail(why, "graph: \"%.64s\" is not a graph name", s);
    }
    memcpy(out, s, n + 1);
    return 0;
}

static int member(const char *k, const json_t *v, struct rf_kmsg *m, char *why)
{
    if (strcmp(k, "graph") == 0)
        return graph_name(v, m->graph, why);
    if (strcmp(k, "version") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > UINT32_MAX)
            return fail(why, "version: a positive integer is required");
        m->version = (uint32_t)json_integer_value(v);
        return 0;
    }
    if (strcmp(k, "inputs") == 0) {
        if (!json_is_object(v))
            return fail(why, "inputs: an object is required");
        json_decref(m->inputs);
        m->inputs = json_incref((json_t *)v);
        return 0;
    }
    if (strcmp(k, "idempotency_key") == 0) {
        size_t n = json_string_length(v);
        if (!json_is_string(v) || n == 0 || n > RF_KMSG_KEY_MAX)
            return fail(why, "idempotency_key: a string of 1 to %u bytes is required",
                        RF_KMSG_KEY_MAX);
        memcpy(m->idem, json_string_value(v), n + 1);
        return 0;
    }
    return fail(why, "unknown field \"%.64s\" (graph, version, inputs, idempotency_key)", k);
}

int rf_kmsg_decode(const char *value, size_t len, struct rf_kmsg *out, char *why)
{
    json_t *o;
    const char *k;
    json_t *v;

    memset(out, 0, sizeof(*out));
    if (len > RF_KMSG_BYTES_MAX)
        return fail(why, "the message has %zu bytes, over %u", len, RF_KMSG_BYTES_MAX);
    if (!value || !len)
        return fail(why, "the message is empty: {graph, version?, inputs, idempotency_key?} "
                         "is required");
    o = rf_json_parse(value, len);
    if (!o)
        return fail(why, "the message is not JSON");
    if (!json_is_object(o)) {
        json_decref(o);
        return fail(why, "the message must be a JSON object");
    }
    json_object_foreach(o, k, v) {
        if (member(k, v, out, why) < 0) {
            json_decref(o);
            rf_kmsg_clear(out);
            return -1;
        }
    }
    json_decref(o);
    if (!out->graph[0]) {
        rf_kmsg_clear(out);
        return fail(why, "graph: a graph name is required");
    }
    if (!out->inputs && !(out->inputs = json_object()))
        return fail(why, "out of memory");
    return 0;
}

void rf_kmsg_clear(struct rf_kmsg *m)
{
    json_decref(m->inputs);
    m->inputs = NULL;
}

size_t rf_kmsg_key(const char *topic, int32_t partition, int64_t offset,
                   char out[RF_KMSG_KEY_MAX + 1])
{
    int n = snprintf(out, RF_KMSG_KEY_MAX + 1, "kafka:%s:%d:%lld", topic, (int)partition,
                     (long long)offset);

    if (n < 0 || n > (int)RF_KMSG_KEY_MAX)
        n = snprintf(out, RF_KMSG_KEY_MAX + 1, "kafka:#%016llx:%d:%lld",
                     (unsigned long long)XXH3_64bits(topic, strlen(topic)), (int)partition,
                     (long long)offset);
    return (size_t)n;
}
