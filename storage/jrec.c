/*
 * storage/jrec.c: the journal's record frame and payload fields (storage/jrec.h).
 *
 * Little-endian loads and stores are spelled out byte by byte so the format is the same on
 * any host and no access is unaligned; compilers turn them into single moves on x86-64.
 * The check is XXH3-64 of everything after it: one pass over the record, a few bytes per
 * cycle, far below the cost of writing the bytes to a disk.
 */
#include "storage/jrec.h"

#include <string.h>

#include <xxhash.h>

#include "engine/rf.h"

static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static inline void st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void st64(uint8_t *p, uint64_t v)
{
    st32(p, (uint32_t)v);
    st32(p + 4, (uint32_t)(v >> 32));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int rf_jrec_decode(const void *buf, size_t len, struct rf_jrec *out)
{
    const uint8_t *p = buf;

    if (len < RF_JREC_HEADER_BYTES)
        return -2;
    if (all_zero(p, RF_JREC_HEADER_BYTES))
        return 0;
    uint32_t plen = ld32(p + 8);
    uint8_t type = p[12];
    if (plen > RF_JREC_PAYLOAD_MAX || type == 0 || type > RF_JREC_TYPE_MAX ||
        p[13] != RF_JREC_VERSION || p[14] || p[15])
        return -1;
    size_t size = rf_jrec_size(plen);
    if (len < size)
        return -2;
    if (XXH3_64bits_withSeed(p + 8, RF_JREC_HEADER_BYTES - 8 + (size_t)plen, RF_JREC_SEED) !=
        ld64(p))
        return -1;
    if (!all_zero(p + RF_JREC_HEADER_BYTES + plen, size - RF_JREC_HEADER_BYTES - plen))
        return -1; /* the padding is part of the frame */
    out->type = type;
    out->seq = ld64(p + 16);
    out->payload = p + RF_JREC_HEADER_BYTES;
    out->len = plen;
    return (int)size;
}

void rf_jrec_seal(void *rec, uint8_t type, uint64_t seq, uint32_t len)
{
    uint8_t *p = rec;
    size_t size = rf_jrec_size(len);

    RF_ASSERT(len <= RF_JREC_PAYLOAD_MAX);
    RF_ASSERT(type != 0 && type <= RF_JREC_TYPE_MAX);
    st32(p + 8, len);
    p[12] = type;
    p[13] = RF_JREC_VERSION;
    p[14] = 0;
    p[15] = 0;
    st64(p + 16, seq);
    memset(p + RF_JREC_HEADER_BYTES + len, 0, size - RF_JREC_HEADER_BYTES - len);
    st64(p, XXH3_64bits_withSeed(p + 8, RF_JREC_HEADER_BYTES - 8 + (size_t)len, RF_JREC_SEED));
}

/* --- payload fields ----------------------------------------------------------------------- */

void rf_jw_u8(struct rf_jw *w, uint8_t v)
{
    RF_ASSERT(w->cap - w->n >= 1);
    w->p[w->n++] = v;
}

void rf_jw_u32(struct rf_jw *w, uint32_t v)
{
    RF_ASSERT(w->cap - w->n >= 4);
    st32(w->p + w->n, v);
    w->n += 4;
}

void rf_jw_u64(struct rf_jw *w, uint64_t v)
{
    RF_ASSERT(w->cap - w->n >= 8);
    st64(w->p + w->n, v);
    w->n += 8;
}

void rf_jw_bytes(struct rf_jw *w, const void *p, size_t n)
{
    RF_ASSERT(n <= UINT32_MAX);
    rf_jw_u32(w, (uint32_t)n);
    RF_ASSERT(w->cap - w->n >= n);
    if (n)
        memcpy(w->p + w->n, p, n);
    w->n += n;
}

void rf_jw_str(struct rf_jw *w, const char *s)
{
    rf_jw_bytes(w, s ? s : "", s ? strlen(s) : 0);
}

static int need(struct rf_jr *r, size_t n)
{
    if (r->bad || r->n - r->off < n) {
        r->bad = true;
        return -1;
    }
    return 0;
}

int rf_jr_u8(struct rf_jr *r, uint8_t *v)
{
    if (need(r, 1) < 0)
        return -1;
    *v = r->p[r->off++];
    return 0;
}

int rf_jr_u32(struct rf_jr *r, uint32_t *v)
{
    if (need(r, 4) < 0)
        return -1;
    *v = ld32(r->p + r->off);
    r->off += 4;
    return 0;
}

int rf_jr_u64(struct rf_jr *r, uint64_t *v)
{
    if (need(r, 8) < 0)
        return -1;
    *v = ld64(r->p + r->off);
    r->off += 8;
    return 0;
}

int rf_jr_bytes(struct rf_jr *r, const uint8_t **p, uint32_t *n)
{
    uint32_t len;

    if (rf_jr_u32(r, &len) < 0 || need(r, len) < 0)
        return -1;
    *p = r->p + r->off;
    *n = len;
    r->off += len;
    return 0;
}
