/*
 * storage/xrec.h: what ringflowd writes in its journal about graphs and executions: the
 * payloads of GRAPH, ACCEPT, EVENTS and SUMMARY records (storage/jrec.h frames them).
 *
 *   GRAPH    a registered graph version: name, version, created_us, the document (JSON)
 *   DEF      a trigger definition: kind (RF_XDEF_*), name, created_us, the document
 *            (JSON; empty when the definition was deleted). Kept with the graphs.
 *   ACCEPT   an execution accepted: id, graph, version, created_us, idempotency key (may be
 *            empty), tags (JSON array or empty), inputs (JSON). Written on the execution's
 *            home shard; the 202 waits for it to be durable.
 *   EVENTS   events of a running execution: id, the seq of the first, then each event's
 *            JSON text (as the API serves it), in seq order. Written by the home shard for
 *            an execution still running at the end of a loop iteration.
 *   SUMMARY  a finished execution, self-contained (a query of an old execution reads this
 *            one record): id, graph, version, created_us, status, idempotency key, tags,
 *            inputs, output and error (JSON, "null" when none), and all its event texts.
 *
 * Strings are byte strings (rf_jw_bytes); JSON values are their compact texts. Decoding
 * borrows from the record: the slices are valid while the record's bytes are. A decoder
 * refuses a payload with a missing field, a length past the end, trailing bytes, or an
 * id that is not one (rf_exec_id_parse).
 */
#ifndef RF_STORAGE_XREC_H
#define RF_STORAGE_XREC_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/jrec.h"

#define RF_XREC_EVENTS_MAX (1u << 24) /* events in one EVENTS or SUMMARY record */

struct rf_xslice {
    const char *p;
    uint32_t n;
};

struct rf_xgraph {
    struct rf_xslice name, doc;
    uint32_t version;
    int64_t created_us;
};

enum { RF_XDEF_HOOK = 1, RF_XDEF_TRIGGER = 2 };

struct rf_xdef {
    uint8_t kind;
    struct rf_xslice name, doc;
    int64_t created_us;
};

struct rf_xaccept {
    struct rf_xslice id, graph, idem, tags, inputs;
    uint32_t version;
    int64_t created_us;
};

struct rf_xsummary {
    struct rf_xaccept a;
    uint8_t status;             /* rf_status */
    struct rf_xslice output, error;
    uint32_t nevents;
    const uint8_t *events;      /* nevents byte strings, read with rf_xevents_next */
    uint32_t events_bytes;
};

struct rf_xevents {
    struct rf_xslice id;
    uint64_t first_seq;
    uint32_t nevents;
    const uint8_t *events;
    uint32_t events_bytes;
};

/* Payload sizes, then writers into exactly that room (rf_journal_reserve gives it). */
size_t rf_xgraph_size(const struct rf_xgraph *g);
void rf_xgraph_write(uint8_t *p, const struct rf_xgraph *g);
size_t rf_xdef_size(const struct rf_xdef *d);
void rf_xdef_write(uint8_t *p, const struct rf_xdef *d);
int rf_xdef_read(const struct rf_jrec *rec, struct rf_xdef *out);
size_t rf_xaccept_size(const struct rf_xaccept *a);
void rf_xaccept_write(uint8_t *p, const struct rf_xaccept *a);
/* EVENTS and SUMMARY take their event texts from a callback: text k of n. */
typedef struct rf_xslice (*rf_xevent_at)(void *ud, uint32_t k);
size_t rf_xevents_size(struct rf_xslice id, uint32_t n, rf_xevent_at at, void *ud);
void rf_xevents_write(uint8_t *p, struct rf_xslice id, uint64_t first_seq, uint32_t n,
                      rf_xevent_at at, void *ud);
size_t rf_xsummary_size(const struct rf_xsummary *s, uint32_t n, rf_xevent_at at, void *ud);
void rf_xsummary_write(uint8_t *p, const struct rf_xsummary *s, uint32_t n, rf_xevent_at at,
                       void *ud);

/* Decoders: 0, or -EBADMSG. */
int rf_xgraph_read(const struct rf_jrec *rec, struct rf_xgraph *out);
int rf_xaccept_read(const struct rf_jrec *rec, struct rf_xaccept *out);
int rf_xevents_read(const struct rf_jrec *rec, struct rf_xevents *out);
int rf_xsummary_read(const struct rf_jrec *rec, struct rf_xsummary *out);

/* Iterate the event texts of a decoded EVENTS or SUMMARY: *cursor starts at 0; returns
 * false after the last. */
bool rf_xevents_next(const uint8_t *events, uint32_t bytes, uint32_t *cursor,
                     struct rf_xslice *text);

#endif /* RF_STORAGE_XREC_H */
