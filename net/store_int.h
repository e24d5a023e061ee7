/*
 * net/store_int.h: the store's insides, shared by net/store.c (records, indexes, events,
 * watchers) and net/sjournal.c (making them durable, and recovering them). Nothing else
 * includes this.
 */
#ifndef RF_NET_STORE_INT_H
#define RF_NET_STORE_INT_H

#include "net/store.h"

#define RF_STORE_STRIPES   64u
#define RF_ALIGN_UP(n, a) (((n) + (a)-1) / (a) * (a))

struct stripe {
    rf_spin lock;
} RF_ALIGNED_CL;

struct rf_store {
    rf_engine *eng;
    struct rf_metrics *m;
    struct rf_store_config cfg;
    uint64_t nbuckets; /* a power of two */
    struct rf_xrec **by_id, **by_idem;
    struct stripe stripes[RF_STORE_STRIPES];

    struct rf_sjournal *sj;  /* the journal (net/sjournal.c), or NULL: memory only */
    struct rf_idarch *arch;  /* keys of evicted executions, or NULL (net/idarch.h) */

    rf_spin list_lock RF_ALIGNED_CL; /* everything below */
    struct rf_xrec *newest, *oldest;
    struct rf_xrec *fifo_head, *fifo_tail;
    uint64_t nlisted, nfinished, nevicted;
};

/* Event texts live in chunks that never move (readers on other shards hold pointers into
 * them while they hold the record) and are freed with the record. The first chunk is part
 * of the record's own allocation, sized for the events a run of the plan usually makes,
 * so a small execution's whole record is one block: retiring it is one free. */
struct rf_evchunk {
    struct rf_evchunk *next;
    uint32_t used, cap;
    _Alignas(uint32_t) char data[];
};

/* What a finished execution keeps of itself: the texts of its inputs, output and error,
 * one after another in data[]. */
struct rf_xfinal {
    rf_status status;
    uint32_t in_len, out_len, err_len;
    char data[];
};

#define RF_EVT_GUESS_BYTES 256u  /* a typical event's text, for the first chunk */
#define RF_EVCHUNK_MIN     1024u /* later chunks: at least this, doubling */
#define RF_EVCHUNK_FIRST_MAX (16u << 10)


/* A record for an execution of `plan` (retained), with its first event chunk sized for
 * the plan; idem and tags borrowed (copied / a reference taken). One reference (the
 * caller's, which becomes the index's). NULL when out of memory. */
struct rf_xrec *rf__xrec_new(struct rf_store *st, rf_plan *plan, const char *idem,
                             const json_t *tags);
/* Free a record that was never indexed (its only reference). */
void rf__xrec_free(struct rf_xrec *x);
/* Append one event text (copied) to x's log, as the event callback would (recovery: the
 * record is not shared yet). 0 or -ENOMEM. */
int rf__xrec_event_text(struct rf_xrec *x, const char *text, uint32_t len);
/* Make x finished with this outcome (recovery): status and the JSON texts of its inputs,
 * output and error (copied). 0 or -ENOMEM. */
int rf__xrec_finish(struct rf_xrec *x, rf_status status, const char *in, uint32_t in_len,
                    const char *out, uint32_t out_len, const char *err, uint32_t err_len);
/* Publish x: the id index and the listing; a finished, evictable record also joins the
 * eviction FIFO. Takes over x's reference. */
void rf__store_index_new(struct rf_store *st, struct rf_xrec *x);
/* Find the record holding idempotency key `key` for x's graph (0, *found retained), or
 * link x as its holder (0, *found NULL); -EINPROGRESS when the holder is not accepted yet. */
int rf__store_idem_claim(struct rf_store *st, struct rf_xrec *x, const char *key,
                         struct rf_xrec **found);
/* Drop x's idempotency placeholder (a submission that did not happen). */
void rf__store_idem_unclaim(struct rf_store *st, struct rf_xrec *x);
/* x may leave memory now (its summary is in the journal): it joins the eviction FIFO once
 * finished and listed. */
void rf__store_evictable(struct rf_store *st, struct rf_xrec *x);
/* The engine callbacks of a record's execution (ud = the record). */
void rf__store_on_event(void *ud, const rf_event *ev);
void rf__store_on_done(void *ud, rf_exec *ex);
/* For each shard s < n, the lowest accept_seg of an unfinished execution homed on s
 * (UINT64_MAX when none): retention keeps those segments. Any thread. */
void rf__store_open_segments(struct rf_store *st, uint64_t *mins, uint32_t n);
/* The calling thread's scratch buffer (event texts, summaries). */
struct rf_buf *rf__store_scratch(void);

#endif /* RF_NET_STORE_INT_H */
