/*
 * net/sjournal.h: making the store durable. Each shard writes a journal (storage/journal.h)
 * of what the daemon must never lose: graph versions, executions accepted, the events of
 * running executions, and a self-contained SUMMARY of every finished one
 * (storage/xrec.h). At start-up the journals are read back: graphs are registered again,
 * the newest finished executions come back into memory, unfinished ones resume.
 *
 * Where an execution lives. A submission is made on the shard that received it (its home);
 * its id carries the home shard and the segment its ACCEPT went to (in the 80 bits after
 * the time, rf_exec_id_make), so an execution that left memory is found again from its id
 * alone: its SUMMARY is in that shard's journal, in that segment or a later one.
 *
 * The write path. rf_store_submit makes the execution held (RF_SUBMIT_HELD) and appends
 * its ACCEPT; once the batch is durable the execution starts and the caller answers 202.
 * Events are appended to the record in memory as they happen (net/store.c); the home
 * shard's service, once per loop iteration before the journal's flush, writes what is new
 * for each record touched: one SUMMARY when the execution is finished by then (the common
 * case: short executions never write EVENTS), else one EVENTS record with the new events.
 * A record leaves memory (the eviction FIFO) only once its SUMMARY is written, so a query
 * never misses an execution: memory, or disk.
 *
 * Failures: a journal that fails (a write or fdatasync error) stops acknowledging;
 * rf_sjournal_failed() tells the daemon, which restarts into recovery. No space gives
 * -ENOSPC (507) until a segment can be made again.
 */
#ifndef RF_NET_SJOURNAL_H
#define RF_NET_SJOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ringflow.h"
#include "storage/journal.h"
#include "storage/jread.h"

struct rf_store;
struct rf_xrec;
struct rf_sjournal;

struct rf_sjournal_config {
    const char *dir;          /* <data-dir>/journal: one subdirectory per shard */
    bool sync;                /* durability sync (fdatasync before acknowledging) or none */
    uint64_t segment_bytes;   /* 0 = RF_JOURNAL_SEGMENT_BYTES */
    bool repair;              /* cut at corruption instead of refusing to start */
    uint64_t retention_ms;    /* segments older than this are deleted; 0 = keep all */
    const struct rf_journal_faults *faults; /* tests: injected I/O errors, or NULL */
};

struct rf_sjournal_report {
    uint64_t graphs, executions_done, executions_resumed, records, bytes, segments;
    uint64_t torn_shards, repaired_shards;
    int64_t read_us, apply_us;
};

/* Read every shard journal under cfg->dir (blocking, before the engine starts) and open a
 * writer per shard of `eng` (a new segment each). The store (borrowed, outlives this) is
 * attached and the journal's shard service added to the engine. On corruption without
 * repair: -EBADMSG with the shard, segment and offset logged. */
int rf_sjournal_open(struct rf_store *st, rf_engine *eng, const struct rf_sjournal_config *cfg,
                     struct rf_sjournal **out);
/* After rf_engine_start: register the recovered graphs (in journal order, callees before
 * callers). Once; rf_sjournal_apply does it if it was not done. */
int rf_sjournal_apply_graphs(struct rf_sjournal *sj);
/* Then bring back the newest finished executions and resume the unfinished ones. Once. */
int rf_sjournal_apply(struct rf_sjournal *sj, struct rf_sjournal_report *rep);
/* Journal a graph version from a thread that is not a shard (start-up: --graphs-dir) and
 * wait until it is durable: 0 or the journal's error. */
int rf_sjournal_graph_wait(struct rf_sjournal *sj, const rf_plan *p, uint32_t timeout_ms);
/* After rf_engine_stop. */
void rf_sjournal_free(struct rf_sjournal *sj);

/* A journal failed (the daemon must restart): its error, else 0. Any thread. */
int rf_sjournal_failed(const struct rf_sjournal *sj);
/* Some shard has no space for a segment (submissions get 507). Any thread. */
bool rf_sjournal_no_space(const struct rf_sjournal *sj);

/* Events made durable, for whoever carries them further (net/rbridge.c, to Redis): called
 * on x's home shard once events [0, nev) of x are in the journal; x borrowed for the call.
 * At start-up every finished execution recovered into memory is told again (`recovered`:
 * its events may not have gone out before the stop). Set before rf_engine_start. */
typedef void (*rf_sjournal_publish_fn)(void *ud, struct rf_xrec *x, uint32_t nev,
                                       bool recovered);
/* Up to two publishers (Redis, Kafka); -ENOSPC past that. */
int rf_sjournal_set_publisher(struct rf_sjournal *sj, rf_sjournal_publish_fn fn, void *ud);

/* Journal a trigger definition (kind RF_XDEF_*, storage/xrec.h) on the calling shard's
 * graph journal: name and doc borrowed (doc_len 0: the definition was deleted). `done`
 * is told when durable (res 0) or not, on this shard. 0 or the journal's error. */
int rf_sjournal_def(struct rf_sjournal *sj, uint8_t kind, const char *name, const char *doc,
                    size_t doc_len, int64_t created_us, struct rf_jwait *done);
/* After recovery read the journals: every definition, oldest first, to fn (name and doc
 * borrowed for the call; doc NULL for a deletion). The main thread, before the API is
 * ready. */
typedef void (*rf_sjournal_def_fn)(void *ud, uint8_t kind, const char *name, const char *doc,
                                   size_t doc_len, int64_t created_us);
void rf_sjournal_defs(struct rf_sjournal *sj, rf_sjournal_def_fn fn, void *ud);
/* Then the newest slot of every cron trigger, read from the idempotency keys of the
 * executions it started (net/triggers.h), to fn. Before rf_sjournal_apply. */
typedef void (*rf_sjournal_slot_fn)(void *ud, const char *name, int64_t slot);
void rf_sjournal_cron_slots(struct rf_sjournal *sj, rf_sjournal_slot_fn fn, void *ud);

/* Journal a registered graph version on the calling shard; `done` is told when durable
 * (res 0) or not (res < 0), on this shard. */
int rf_sjournal_graph(struct rf_sjournal *sj, const rf_plan *p, struct rf_jwait *done);

/* Find a finished execution that is not in memory any more: reads its SUMMARY from the
 * journal on a reader thread and posts the result to the calling shard: done(ud, x) with x
 * a record (retained for the callee, also put back in memory), or NULL when there is none.
 * 0, or -ENOENT at once when the id cannot be in any journal. Shard thread. */
struct rf_sjlookup {
    struct rf_post post;
    char id[RF_ID_BYTES];
    void (*done)(struct rf_sjlookup *l, struct rf_xrec *x);
    struct rf_shard *sh;     /* the caller's */
    struct rf_xrec *found;   /* set by the reader */
    struct rf_sjlookup *next;
};
int rf_sjournal_lookup(struct rf_sjournal *sj, struct rf_sjlookup *l);

/* --- for net/store.c -------------------------------------------------------------------- */

/* The id of a new execution homed on `shard`: where its ACCEPT will go. */
void rf__sjournal_make_id(struct rf_sjournal *sj, uint32_t shard, char out[RF_ID_BYTES]);
/* Append x's ACCEPT on its home shard (the calling shard); x->accepted is told later.
 * -errno when the journal cannot take it (nothing appended). */
int rf__sjournal_accept(struct rf_sjournal *sj, struct rf_xrec *x);
/* x has new events or finished: its home shard writes them at its next flush. Any thread. */
void rf__sjournal_touch(struct rf_sjournal *sj, struct rf_xrec *x);

#endif /* RF_NET_SJOURNAL_H */
