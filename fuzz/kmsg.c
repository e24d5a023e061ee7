/*
 * fuzz/kmsg.c: libFuzzer target for the Kafka trigger's message decoder (net/kmsg.c).
 *
 * The input, from an exactly sized heap copy, is decoded as a message value. A refusal
 * leaves a non-empty, NUL-terminated reason. An accepted message has a valid graph name, an
 * object for inputs and a key of at most 256 bytes; written back as JSON
 * ({graph, version, inputs, idempotency_key}) it decodes to the same fields. The key a
 * message without one gets is at most 256 bytes for any topic taken from the input.
 * Every violated property aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/kmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c))                                                                                   \
            abort();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1), why[RF_KMSG_WHY_BYTES];
    struct rf_kmsg m, again;

    CHECK(copy != NULL);
    memcpy(copy, data, size);
    why[0] = 0;
    if (rf_kmsg_decode(copy, size, &m, why) < 0) {
        CHECK(why[0] != 0 && memchr(why, 0, sizeof(why)) != NULL);
    } else {
        CHECK(m.graph[0] && strlen(m.graph) <= 64);
        CHECK(json_is_object(m.inputs));
        CHECK(strlen(m.idem) <= RF_KMSG_KEY_MAX);
        json_t *o = json_pack("{s:s, s:O}", "graph", m.graph, "inputs", m.inputs);
        CHECK(o != NULL);
        if (m.version)
            json_object_set_new(o, "version", json_integer(m.version));
        if (m.idem[0])
            json_object_set_new(o, "idempotency_key", json_string(m.idem));
        char *text = json_dumps(o, JSON_COMPACT);
        CHECK(text != NULL);
        CHECK(rf_kmsg_decode(text, strlen(text), &again, why) == 0);
        CHECK(strcmp(again.graph, m.graph) == 0 && again.version == m.version);
        CHECK(strcmp(again.idem, m.idem) == 0 && json_equal(again.inputs, m.inputs));
        free(text);
        json_decref(o);
        rf_kmsg_clear(&again);
        rf_kmsg_clear(&m);
    }
    char topic[300], key[RF_KMSG_KEY_MAX + 1];
    size_t tn = size < sizeof(topic) - 1 ? size : sizeof(topic) - 1;
    for (size_t i = 0; i < tn; i++)
        topic[i] = (char)(data[i] ? data[i] : 'x');
    topic[tn] = 0;
    CHECK(rf_kmsg_key(topic, (int32_t)size, (int64_t)size * 7, key) <= RF_KMSG_KEY_MAX);
    free(copy);
    return 0;
}
