/*
 * fuzz/jparse.c: libFuzzer target for engine/jparse.c, differential against jansson.
 *
 * The input, from an exactly sized heap copy (ASan sees any over-read), goes to both
 * rf_json_parse and json_loadb(JSON_DECODE_ANY): both accept or both refuse, and what
 * they accept is json_equal. Every violated property aborts.
 *
 * Except for inputs with a NUL byte: jansson's character stream takes a NUL for the end of
 * its buffer in places and skips it ("1\0" loads as 1, "[1]\0" does not); RFC 8259 has no
 * NUL outside strings, and rf_json_parse refuses every one. There only ours is checked: a
 * value it accepts has no NUL anywhere in the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c))                                                                                   \
            abort();                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);

    CHECK(copy != NULL);
    memcpy(copy, data, size);
    json_t *ours = rf_json_parse(copy, size);
    if (memchr(copy, 0, size)) {
        CHECK(ours == NULL);
        free(copy);
        return 0;
    }
    json_t *theirs = json_loadb(copy, size, JSON_DECODE_ANY, NULL);
    CHECK((ours == NULL) == (theirs == NULL));
    if (ours)
        CHECK(json_equal(ours, theirs));
    json_decref(ours);
    json_decref(theirs);
    free(copy);
    return 0;
}
