/*
 * storage/jrec.h: the journal's record frame and payload fields, sans-I/O.
 *
 * A journal (storage/journal.h) is a sequence of records in segment files. Every record is
 * framed so that a torn or corrupted one is always detected, never misread:
 *
 *     offset  size  field
 *          0     8  check    XXH3-64 (seed RF_JREC_SEED) of bytes 8 .. 24 + len
 *          8     4  len      payload bytes, at most RF_JREC_PAYLOAD_MAX
 *         12     1  type     enum rf_jrec_type, never 0
 *         13     1  version  RF_JREC_VERSION
 *         14     2  flags    0 (reserved)
 *         16     8  seq      the record's number in its shard's journal: 1, 2, 3 ...
 *         24   len  payload
 *              pad  zeros up to a multiple of 8 (RF_JREC_ALIGN)
 *
 * All integers are little-endian. The check covers the header after itself and the
 * payload, so a record whose length field is damaged, or whose tail never reached the
 * disk, fails it. A header of 24 zero bytes is not a record: it is the unwritten rest of
 * a segment (segments are preallocated, so their end reads as zeros).
 *
 * rf_jrec_decode is a pure function over a byte range, like the HTTP parsers: > 0 the
 * record's whole size (padding included) with *out filled and the payload borrowed from
 * the buffer, 0 for a zero header (the end of what was written), -2 when the range ends
 * inside the record (more bytes needed), -1 when the bytes are not a valid record. Which
 * of -1 and -2 a torn record gives depends only on how many bytes are there, so the
 * reader (journal.c) can tell "the last write was cut short" from "a record in the middle
 * went bad" by looking past it.
 *
 * Payloads are a few typed fields, read and written with the cursor helpers below:
 * unsigned integers in 1, 4 or 8 bytes, and byte strings as a 4-byte length and the
 * bytes. A reader that runs out of payload, or meets a string longer than what is left,
 * stops with an error and never reads past the payload.
 */
#ifndef RF_STORAGE_JREC_H
#define RF_STORAGE_JREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RF_JREC_HEADER_BYTES 24u
#define RF_JREC_ALIGN        8u
#define RF_JREC_VERSION      1u
#define RF_JREC_SEED         0x72666a726e6c3031ull /* "rfjrnl01" */
#define RF_JREC_PAYLOAD_MAX  (64u << 20)           /* one record's payload */

enum rf_jrec_type {
    RF_JREC_GRAPH = 1,   /* a graph version: name, version, document */
    RF_JREC_ACCEPT = 2,  /* an execution accepted: answered 202 once durable */
    RF_JREC_EVENTS = 3,  /* events of a running execution, in seq order */
    RF_JREC_SUMMARY = 4, /* a finished execution: everything a query needs */
    RF_JREC_SEGMENT = 5, /* first record of every segment: shard, segment number, time */
    RF_JREC_BATCH = 6,   /* first record of every write: the batch's bytes and records */
    RF_JREC_DEF = 7,     /* a trigger definition (webhook, cron), or its deletion */
    RF_JREC_TYPE_MAX = 7,
};

struct rf_jrec {
    uint8_t type;
    uint64_t seq;
    const uint8_t *payload; /* borrowed from the decoded buffer */
    uint32_t len;
};

/* The bytes a record with a payload of `len` takes, padding included. */
static inline size_t rf_jrec_size(uint32_t len)
{
    return (RF_JREC_HEADER_BYTES + (size_t)len + RF_JREC_ALIGN - 1) & ~(size_t)(RF_JREC_ALIGN - 1);
}

/* Decode one record at buf[0..len). See above for the results. `buf` must be 8-byte
 * aligned only for speed, not for correctness. */
int rf_jrec_decode(const void *buf, size_t len, struct rf_jrec *out);

/* Write the header and padding of a record whose payload (len bytes) is already at
 * rec + RF_JREC_HEADER_BYTES, and its check. `rec` has room for rf_jrec_size(len). */
void rf_jrec_seal(void *rec, uint8_t type, uint64_t seq, uint32_t len);

/* --- payload fields ----------------------------------------------------------------------- */

/* Writing: the caller reserves rf_jpay size bytes (computed with the same fields first). */
struct rf_jw {
    uint8_t *p;
    size_t n;   /* bytes written */
    size_t cap; /* bytes available */
};
void rf_jw_u8(struct rf_jw *w, uint8_t v);
void rf_jw_u32(struct rf_jw *w, uint32_t v);
void rf_jw_u64(struct rf_jw *w, uint64_t v);
void rf_jw_bytes(struct rf_jw *w, const void *p, size_t n); /* n < 2^32 */
void rf_jw_str(struct rf_jw *w, const char *s);             /* NULL is "" */
/* Size of a byte-string field. */
static inline size_t rf_jw_bytes_size(size_t n)
{
    return 4 + n;
}

/* Reading: every call returns 0, or -1 once the payload is exhausted or a length runs past
 * its end (then every later call fails too). Strings are borrowed, not NUL-terminated. */
struct rf_jr {
    const uint8_t *p;
    size_t n, off;
    bool bad;
};
static inline void rf_jr_init(struct rf_jr *r, const struct rf_jrec *rec)
{
    r->p = rec->payload;
    r->n = rec->len;
    r->off = 0;
    r->bad = false;
}
int rf_jr_u8(struct rf_jr *r, uint8_t *v);
int rf_jr_u32(struct rf_jr *r, uint32_t *v);
int rf_jr_u64(struct rf_jr *r, uint64_t *v);
int rf_jr_bytes(struct rf_jr *r, const uint8_t **p, uint32_t *n);
/* True when every byte of the payload was read and nothing failed. */
static inline bool rf_jr_done(const struct rf_jr *r)
{
    return !r->bad && r->off == r->n;
}

#endif /* RF_STORAGE_JREC_H */
