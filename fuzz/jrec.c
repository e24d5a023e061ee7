/*
 * fuzz/jrec.c: libFuzzer target for the journal's record frame and payload fields
 * (storage/jrec.c), the bytes recovery trusts after a crash.
 *
 * As a record (rf_jrec_decode), from an exactly sized heap copy so ASan sees any over-read:
 * the result is -2, -1, 0 or a size in [24, size], a multiple of 8; decoding twice gives the
 * same; a record found is sealed again from its type, seq and payload into the very same
 * bytes (so the check covers everything the decoder accepts); every prefix of a record (a
 * sample of them) is -2; a zero result means the first 24 bytes are zeros.
 *
 * As a payload (the rf_jr cursor), read with a field plan taken from the input's own
 * bytes: a read that succeeds stays inside the payload, offsets only grow, a failed read
 * fails every later one, and rf_jr_done is true only when every byte was consumed.
 *
 * As data to frame: the input sealed as a payload of every type decodes back to itself.
 *
 * Every violated property aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/jrec.h"

#define PREFIX_SAMPLES 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                    \
    do {                                                                                            \
        if (!(c))                                                                                   \
            abort();                                                                                \
    } while (0)

static void as_record(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    struct rf_jrec rec, again;

    CHECK(copy != NULL);
    memcpy(copy, data, size);
    int rc = rf_jrec_decode(copy, size, &rec);
    CHECK(rc == -2 || rc == -1 || rc == 0 || (rc >= (int)RF_JREC_HEADER_BYTES && (size_t)rc <= size));
    CHECK(rf_jrec_decode(copy, size, &again) == rc);
    if (rc == 0) {
        for (size_t i = 0; i < RF_JREC_HEADER_BYTES; i++)
            CHECK(copy[i] == 0);
    }
    if (rc > 0) {
        CHECK(rc % RF_JREC_ALIGN == 0);
        CHECK((size_t)rc == rf_jrec_size(rec.len));
        CHECK(rec.payload == copy + RF_JREC_HEADER_BYTES);
        uint8_t *re = malloc((size_t)rc);
        CHECK(re != NULL);
        memcpy(re + RF_JREC_HEADER_BYTES, rec.payload, rec.len);
        rf_jrec_seal(re, rec.type, rec.seq, rec.len);
        CHECK(memcmp(re, copy, (size_t)rc) == 0);
        free(re);
        for (int k = 0; k < PREFIX_SAMPLES; k++) {
            size_t cut = (size_t)rc * (size_t)k / PREFIX_SAMPLES;
            CHECK(rf_jrec_decode(copy, cut, &again) == -2);
        }
    }
    free(copy);
}

static void as_payload(const uint8_t *data, size_t size)
{
    struct rf_jrec rec = {.payload = data, .len = (uint32_t)size};
    struct rf_jr r;
    size_t last = 0;
    bool failed = false;

    rf_jr_init(&r, &rec);
    for (size_t i = 0; i < size && i < 256; i++) {
        int rc;
        uint8_t u8;
        uint32_t u32, n;
        uint64_t u64;
        const uint8_t *p;
        switch (data[i] & 3) {
        case 0: rc = rf_jr_u8(&r, &u8); break;
        case 1: rc = rf_jr_u32(&r, &u32); break;
        case 2: rc = rf_jr_u64(&r, &u64); break;
        default:
            rc = rf_jr_bytes(&r, &p, &n);
            if (rc == 0)
                CHECK(p >= data && p + n <= data + size);
        }
        CHECK(rc == 0 || rc == -1);
        if (failed)
            CHECK(rc == -1);
        failed |= rc < 0;
        CHECK(r.off >= last && r.off <= size);
        last = r.off;
    }
    if (rf_jr_done(&r))
        CHECK(!failed && r.off == size);
}

static void as_data(const uint8_t *data, size_t size)
{
    uint32_t len = (uint32_t)(size > 4096 ? 4096 : size);
    uint8_t *rec = malloc(rf_jrec_size(len));
    struct rf_jrec out;

    CHECK(rec != NULL);
    for (uint8_t type = 1; type <= RF_JREC_TYPE_MAX; type++) {
        memcpy(rec + RF_JREC_HEADER_BYTES, data, len);
        rf_jrec_seal(rec, type, size * 31 + type, len);
        CHECK(rf_jrec_decode(rec, rf_jrec_size(len), &out) == (int)rf_jrec_size(len));
        CHECK(out.type == type && out.len == len && out.seq == size * 31 + type);
        CHECK(memcmp(out.payload, data, len) == 0);
    }
    free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_record(data, size);
    as_payload(data, size);
    as_data(data, size);
    return 0;
}
