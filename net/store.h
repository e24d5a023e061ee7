/*
 * net/store.h: the executions the API knows, with their event logs and their watchers.
 *
 * The engine runs executions; the API needs more than the engine keeps: an execution must be
 * found by id from any shard, listed newest first with filters, found again by its
 * idempotency key, and its events replayed from any seq to long polls and WebSocket
 * subscribers on any shard. A record (struct rf_xrec) holds that for one execution:
 *   - the serialized events (struct rf_evt, immutable once appended), in seq order;
 *   - the watchers: long polls and subscriptions, each living on one shard. A new event
 *     posts the watcher to its shard (rf__shard_post) at most once until it ran; the
 *     watcher then reads what is new itself. So the running shard never writes to a
 *     connection of another shard: frames are built by the subscriber's own shard.
 *
 * Concurrency: the records are found through a hash table with striped spin locks (id,
 * and (graph, idempotency key)); a global list in creation order serves listing and a FIFO
 * of finished records bounds memory (`executions_max`: the oldest finished record is
 * dropped first). A record's events and watchers are under its own spin lock, held for a
 * few pointer writes. Records are reference counted: the index holds one, every lookup and
 * every watcher one more. Event and done callbacks come from the engine, one at a time per
 * execution, on any shard.
 *
 * Limits: `events_max` events kept per execution (later ones are counted in `dropped`,
 * the log says so); `executions_max` finished records kept. Every record carries an
 * account id (one default account for now).
 */
#ifndef RF_NET_STORE_H
#define RF_NET_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "engine/internal.h"
#include "net/evjson.h"
#include "net/http1.h"
#include "net/idarch.h"
#include "ringflow.h"
#include "sched/shard.h"
#include "storage/journal.h"

#define RF_ACCOUNT_DEFAULT   0u
#define RF_ACCOUNT_NAME      "default" /* the account id resources show (one for now) */
#define RF_IDEM_KEY_BYTES_MAX 256u /* idempotency keys longer than this are refused */

struct rf_metrics;

/* One serialized event: a JSON object of spec/api.md, without a trailing newline. */
struct rf_evt {
    uint32_t len;
    char s[];
};

struct rf_xrec;

/* A watcher of one record, living on shard `sh`. Owned by its creator; the store only
 * links it. Between rf_store_watch and rf_store_unwatch, `notify` runs on `sh` after new
 * events or the end, at least once after each change (coalesced). */
struct rf_watch {
    struct rf_post post;
    struct rf_shard *sh;
    struct rf_xrec *x;                      /* retained while watching */
    struct rf_watch *wprev, *wnext;         /* in x's list, under x's lock */
    _Atomic uint32_t queued;                /* a post is on its way to sh */
    bool dead;                              /* unwatched while a post was queued */
    bool linked;                            /* in x's list */
    void (*notify)(struct rf_watch *w);     /* on sh */
    void (*dispose)(struct rf_watch *w);    /* on sh, once unwatched and no post queued */
};

struct rf_xfinal; /* a finished execution's status, inputs, output and error (store.c) */
struct rf_evchunk; /* event text storage (store.c) */

struct rf_xrec {
    char id[RF_EXEC_ID_LEN];
    uint32_t account;
    _Atomic uint32_t refs;  /* index + lookups + watchers */
    _Atomic bool accepted;  /* false while a placeholder for an idempotency key */
    rf_plan *plan;          /* retained */
    char *idem;             /* the idempotency key or NULL */
    json_t *tags;           /* array of strings or NULL */
    int64_t created_us;
    uint32_t graph_metric;  /* index of the graph in the metrics */
    struct rf_store *st;
    int64_t *node_start_us; /* per node, for the node latency histogram (callback only) */
    struct rf_evchunk *chunks; /* where event texts live (callback appends, free frees) */

    rf_spin lock; /* the fields below */
    rf_exec *ex;  /* retained while running; released once done (its summary is `fin`) */
    struct rf_xfinal *fin; /* set once done */
    struct rf_evt **ev;
    uint32_t nev, evcap;
    uint32_t dropped;   /* events past events_max, not kept */
    bool done;          /* the done callback ran: no event will follow */
    struct rf_watch *watchers;

    /* index: under the stripe lock (hnext, inext) or the list lock (the rest) */
    struct rf_xrec *hnext, *inext;
    struct rf_xrec *lprev, *lnext, *fnext;
    bool listed, finished, in_fifo;
    bool evictable; /* may leave memory: finished, and in the journal if there is one */

    /* the journal (net/sjournal.c), on the home shard unless said otherwise */
    uint32_t home;              /* the shard whose journal holds this execution */
    uint64_t accept_seg;        /* the segment of home's journal its ACCEPT is in (or after) */
    uint32_t journaled;         /* events already in the journal */
    bool summarized;            /* its SUMMARY is appended */
    bool jlisted;               /* on the home shard's list of records with journal work */
    struct rf_xrec *jnext;
    _Atomic uint8_t jqueued;    /* jpost is on its way to the home shard (any thread) */
    struct rf_post jpost;
    struct rf_jwait jw;         /* the ACCEPT's waiter, then the SUMMARY's */
    rf_exec *held;              /* the execution, held until its ACCEPT is durable */
    void (*on_accepted)(void *ud, struct rf_xrec *x, int res);
    void *on_accepted_ud;

    /* cross-instance events (net/revents.c), on the home shard */
    uint32_t pub_durable;       /* events in the journal, to publish */
    uint32_t published;         /* events published to Redis */
    uint32_t pub_sending;       /* the end of the range in flight, or 0 */
    bool pub_listed;            /* on the home shard's list of records to publish again */
    struct rf_xrec *pub_next;
    uint32_t kproduced;         /* events produced to Kafka (net/kafka.c) */
};

struct rf_store_config {
    uint32_t executions_max; /* finished executions kept; 0 = 100,000 */
    uint32_t events_max;     /* events kept per execution; 0 = 100,000 */
    uint32_t inflight_max;   /* executions in flight, all shards (sizes the tables) */
    /* The idempotency archive (net/idarch.h): keys of executions no longer in memory,
     * remembered for idem_keep_ms (0 = no age limit). 0 keys = no archive: a key goes
     * with its record (right for a store without a journal, which forgets the execution). */
    uint32_t idem_keys_max;
    uint64_t idem_keep_ms;
};

struct rf_store;

/* A store for `eng` (borrowed; outlives the store). `m` (borrowed, may be NULL) gets the
 * execution and node metrics. */
int rf_store_new(rf_engine *eng, const struct rf_store_config *cfg, struct rf_metrics *m,
                 struct rf_store **out);
/* Free every record. The engine must be stopped (no callback can come any more). */
void rf_store_free(struct rf_store *st);

struct rf_store_submit {
    rf_plan *plan;       /* borrowed */
    json_t *inputs;      /* owned by the callee (NULL = {}) */
    const json_t *tags;  /* borrowed, NULL or an array of strings */
    const char *idem;    /* borrowed, NULL or the idempotency key */
    uint32_t shard;      /* home shard: the calling shard when there is a journal */
    rf_diag *diag;       /* RF_EINPUTS: the problems */
    /* With a journal: told on the home shard once the submission is durable (res 0: x is
     * retained for the callee, its execution started) or could not be made so (res < 0:
     * -EIO journal failed, -ENOSPC no space, -EAGAIN journal busy, -ESHUTDOWN; x must not
     * be used after the call). */
    void (*accepted)(void *ud, struct rf_xrec *x, int res);
    void *accepted_ud;
    struct rf_idarch_hit hit; /* out: the first execution when rf_store_submit returns 2 */
};
/* Submit an execution. Returns 0 with *out a retained record (indexed; *existing says
 * whether the idempotency key found an earlier one, so nothing was submitted), 1 when
 * the store has a journal and the submission waits for it: s->accepted will be called, or
 * 2 when the key belongs to an execution that has left memory: s->hit describes it and
 * nothing was submitted.
 * Errors: those of rf_submit, -EINPROGRESS when the key's first submission is still being
 * made, and the journal's (see `accepted`) when it cannot take the record at all. */
int rf_store_submit(struct rf_store *st, struct rf_store_submit *s, struct rf_xrec **out,
                    bool *existing);

/* The record of execution `id`, retained, or NULL. Any thread. */
struct rf_xrec *rf_store_get(struct rf_store *st, const char *id);
struct rf_xrec *rf_xrec_retain(struct rf_xrec *x);
void rf_xrec_release(struct rf_xrec *x); /* NULL is a no-op */

/* Copy up to `max` event pointers with seq > `after` into out (valid while x is held) and
 * say whether the execution is done. Returns the count. Any thread. */
uint32_t rf_store_events(struct rf_xrec *x, uint64_t after, const struct rf_evt **out,
                         uint32_t max, bool *done);

/* The hydrated execution document of spec/api.md, rebuilt from the event log (records do
 * not keep one: a GET is rare next to the events it would cost to maintain). New
 * reference, NULL on allocation failure. Any thread. */
json_t *rf_store_document(struct rf_xrec *x);

/* True once the done callback ran: no event will follow and the status is final. */
bool rf_store_done(struct rf_xrec *x);

/* The execution's status now (final once done). Any thread. */
rf_status rf_store_status(struct rf_xrec *x);

/* The running execution, retained (the caller releases it), or NULL once it is done: a
 * finished record keeps only its summary, so that the execution's memory goes back while
 * it is still hot and a record held for queries costs its event texts and little more. */
rf_exec *rf_store_exec(struct rf_xrec *x);

/* A finished execution's final status and its output and error as JSON texts ("null" when
 * absent), valid while x is held. False while it runs. Any thread. */
bool rf_store_result(struct rf_xrec *x, rf_status *st, struct rf_slice *output,
                     struct rf_slice *error);

/* Start / stop watching. Both on w->sh's thread; w->notify, dispose, sh set by the caller.
 * rf_store_watch retains x. rf_store_unwatch releases it and disposes w now, or from the
 * queued post. */
void rf_store_watch(struct rf_xrec *x, struct rf_watch *w);
void rf_store_unwatch(struct rf_watch *w);

struct rf_store_filter {
    const char *graph;    /* NULL = any */
    int status;           /* -1 = any, else an rf_status */
    const char *tag;      /* NULL = any */
    const char *after;    /* cursor: only executions older than this id; NULL = newest */
    uint32_t limit;       /* 1..500 */
    uint32_t scan_max;    /* records looked at before stopping with a cursor */
};
/* Call fn for each matching record, newest first; *next is set to the cursor to continue
 * (the last id returned, or where the scan stopped), or "" at the end. Any thread; fn runs
 * under the list lock and must be short (format the record). */
int rf_store_list(struct rf_store *st, const struct rf_store_filter *f,
                  void (*fn)(void *ud, struct rf_xrec *x), void *ud,
                  char next[RF_EXEC_ID_LEN]);

struct rf_store_stats {
    uint64_t records;   /* indexed now */
    uint64_t finished;  /* of those, finished */
    uint64_t evicted;   /* dropped past executions_max, ever */
    uint64_t archived_keys; /* idempotency keys in the archive */
};
void rf_store_stats(struct rf_store *st, struct rf_store_stats *out);

/* Free the calling thread's event scratch buffer (shard threads, before they exit). */
void rf_store_thread_exit(void);


#endif /* RF_NET_STORE_H */
