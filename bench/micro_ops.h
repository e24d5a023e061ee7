/*
 * bench/micro_ops.h: the C side of bench/micro, callable from C++.
 *
 * bench/micro.cc is a Google Benchmark binary, and Google Benchmark is C++. The code it
 * measures is C17 whose headers (sched/deque.h, sched/mq.h) are `static inline` functions
 * over `_Atomic` fields and <stdatomic.h>, which a C++ compiler cannot include. So every
 * operation timed lives in bench/micro_ops.c, compiled as C with the same flags as the
 * library (so the inlined deque and queue code is what the shards run), and this header
 * is all micro.cc sees: opaque handles, fixed-width integers, no atomics, extern "C".
 *
 * What each group measures:
 *   - rf_bm_deque_*: the Chase-Lev deque alone: owner push/pop, uncontended steals,
 *     and owner push/pop while a thief thread (started here) steals;
 *   - rf_bm_mq_*: the MPSC inbox queue alone: push/pop on one thread, and a producer
 *     (the caller) against a consumer thread (started here);
 *   - rf_bm_engine_* / rf_bm_plan_* / rf_bm_run: whole executions through the public
 *     API (rf_submit, rf_exec_wait), so through the real inbox and shard loop.
 *   - rf_bm_lineage_*: the lineage hash (engine/jcs.h, canonicalization + XXH3-128) of an
 *     http node's config and of a 1 MiB value, and plain XXH3-128 over the same
 *     canonical bytes as the peer.
 *
 * The timed loops work in batches so that one call into this file costs tens of
 * nanoseconds of fixed overhead at most, spread over the batch. Every function returns
 * a count derived from what it did, so the compiler cannot drop the work.
 *
 * Threads: each handle is used by one benchmark thread at a time, plus the helper thread
 * this file starts for it (thief, consumer). Every *_start has a matching *_stop that
 * joins the helper; nothing is left running between benchmarks.
 */
#ifndef RF_BENCH_MICRO_OPS_H
#define RF_BENCH_MICRO_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- Chase-Lev deque (sched/deque.h) --- */

typedef struct rf_bm_deque rf_bm_deque;

/* A deque with a small initial array (it grows as filled). NULL on allocation failure.
 * Owned by the caller; rf_bm_deque_free(). */
rf_bm_deque *rf_bm_deque_new(void);
/* Free it; its thief must have been stopped. NULL is a no-op. */
void rf_bm_deque_free(rf_bm_deque *q);

/* Owner: push `batch` items, then pop until empty (LIFO). Returns the items popped;
 * equal to `batch` unless a thief took some. */
uint64_t rf_bm_deque_push_pop(rf_bm_deque *q, uint32_t batch);
/* Owner: push `n` items. 0 or -ENOMEM. */
int rf_bm_deque_fill(rf_bm_deque *q, uint32_t n);
/* Any thread: up to `n` steals, stopping at the first empty. Returns the items taken. */
uint64_t rf_bm_deque_steal_n(rf_bm_deque *q, uint32_t n);
/* Items queued now (racy). */
uint64_t rf_bm_deque_size(const rf_bm_deque *q);

/* Start a thread that steals from `q` until stopped. 0 or a negative errno. */
int rf_bm_deque_thief_start(rf_bm_deque *q);
/* Stop and join the thief; returns the items it stole (successful steals). */
uint64_t rf_bm_deque_thief_stop(rf_bm_deque *q);

/* --- MPSC message queue (sched/mq.h) --- */

typedef struct rf_bm_mq rf_bm_mq;

/* A queue of `capacity` slots (rounded up to a power of two). NULL on failure. */
rf_bm_mq *rf_bm_mq_new(uint32_t capacity);
/* Free it; its consumer must have been stopped. NULL is a no-op. */
void rf_bm_mq_free(rf_bm_mq *q);

/* One thread: push `batch` messages, then pop them all. Returns the messages popped. */
uint64_t rf_bm_mq_push_pop(rf_bm_mq *q, uint32_t batch);

/* Start a consumer thread that pops until stopped. 0 or a negative errno. */
int rf_bm_mq_consumer_start(rf_bm_mq *q);
/* Producer (one thread): push `batch` messages, spinning while the queue is full.
 * Returns how many pushes found it full (back-pressure seen). */
uint64_t rf_bm_mq_produce(rf_bm_mq *q, uint32_t batch);
/* Stop the consumer once it has popped every message produced, and join it. Returns
 * the messages it popped (== everything rf_bm_mq_produce pushed). */
uint64_t rf_bm_mq_consumer_stop(rf_bm_mq *q);

/* --- engine round trips (include/ringflow.h) --- */

typedef struct rf_bm_engine rf_bm_engine;
typedef struct rf_bm_plan rf_bm_plan;

enum rf_bm_shape {
    RF_BM_SHAPE_CHAIN,  /* n nodes, i -> i+1 (n == 1: one lone node) */
    RF_BM_SHAPE_FANOUT, /* 0 -> 1..n-2 -> n-1, n >= 3 */
};

/* Create and start an engine of `shards` unpinned shards with plan_nodes_max 2^20.
 * 0 or a negative errno / rf_err; *out owned by the caller, rf_bm_engine_free(). */
int rf_bm_engine_new(uint32_t shards, rf_bm_engine **out);
/* Stop (drain 1 s) and free the engine. NULL is a no-op. Plans must be freed first. */
void rf_bm_engine_free(rf_bm_engine *e);
/* Sum over the shards of successful steals and of nodes run (racy snapshots). */
uint64_t rf_bm_engine_steals(const rf_bm_engine *e);
uint64_t rf_bm_engine_nodes_run(const rf_bm_engine *e);

/* Compile a plan of `n` `noop` nodes in `shape` on `e`. 0 or a negative errno / rf_err
 * (diagnostics to stderr). *out owned by the caller, rf_bm_plan_free(). */
int rf_bm_plan_new(rf_bm_engine *e, enum rf_bm_shape shape, uint32_t n, rf_bm_plan **out);
void rf_bm_plan_free(rf_bm_plan *p);
uint32_t rf_bm_plan_nodes(const rf_bm_plan *p);

/* Submit one execution of `p`, wait for it (up to 10 s) and release it. 0 when it
 * succeeded; a negative errno / rf_err (-ETIMEDOUT, -EPROTO if it did not succeed). */
int rf_bm_run(rf_bm_engine *e, rf_bm_plan *p);

/* "chain", "fanout"; static. rf_strerror() for an rc of the functions above. */
const char *rf_bm_shape_name(enum rf_bm_shape s);
const char *rf_bm_strerror(int rc);

/* --- lineage hash (engine/jcs.h) --- */

typedef struct rf_bm_lineage rf_bm_lineage;

enum rf_bm_lineage_shape {
    RF_BM_LINEAGE_HTTP,  /* an http node's config: 6 fields, ~200 canonical bytes */
    RF_BM_LINEAGE_LARGE, /* an array of records, >= 1 MiB canonical */
};

/* Build the params of `shape` and their canonical bytes. 0 or -ENOMEM; *out owned by the
 * caller, rf_bm_lineage_free() (NULL is a no-op). */
int rf_bm_lineage_new(enum rf_bm_lineage_shape shape, rf_bm_lineage **out);
void rf_bm_lineage_free(rf_bm_lineage *l);
/* Length of JCS(params): the bytes each hash covers (plus a ~30-byte header). */
uint64_t rf_bm_lineage_jcs_bytes(const rf_bm_lineage *l);
/* `n` rf_lineage() calls (canonicalize + XXH3-128, warm scratch buffer). Returns a sum of
 * hash bytes. */
uint64_t rf_bm_lineage_hash(rf_bm_lineage *l, uint32_t n);
/* The peer: `n` plain XXH3_128bits() over the already canonical bytes. */
uint64_t rf_bm_lineage_xxh3(rf_bm_lineage *l, uint32_t n);

/* --- template resolution (engine/expr.h) --- */

typedef struct rf_bm_tmpl rf_bm_tmpl;

/* A typical http node config compiled once (rf_tmpl_compile): 7 fields, 3 templates (a URL
 * built from inputs.order_id, inputs.limit and nodes.fetch.output.body.lines, both typed),
 * the rest static; and the scope it resolves against. 0 or a negative errno / rf_err; *out
 * owned by the caller, rf_bm_tmpl_free() (NULL is a no-op). */
int rf_bm_tmpl_new(rf_bm_tmpl **out);
void rf_bm_tmpl_free(rf_bm_tmpl *t);
/* `n` resolutions (rf_tmpl_eval, each result freed). Returns the members produced, or a
 * negative rf_err if one failed. */
int64_t rf_bm_tmpl_resolve(rf_bm_tmpl *t, uint32_t n);
/* The peer: `n` json_deep_copy() of the unresolved config (the least a copy-then-substitute
 * resolver pays), each freed. Returns the members copied, or -ENOMEM. */
int64_t rf_bm_tmpl_deep_copy(rf_bm_tmpl *t, uint32_t n);

/* --- webhook signatures (net/hooksig.h) --- */

typedef struct rf_bm_hooksig rf_bm_hooksig;

/* A delivery of `body_bytes` signed with the second of two secrets (a hook mid-rotation:
 * both are tried). 0 or -ENOMEM; *out owned by the caller, rf_bm_hooksig_free(). */
int rf_bm_hooksig_new(uint32_t body_bytes, rf_bm_hooksig **out);
void rf_bm_hooksig_free(rf_bm_hooksig *h);
/* `n` verifications as a delivery costs: parse the header, check the window, HMAC with
 * each secret, compare. Returns the deliveries that verified. */
uint64_t rf_bm_hooksig_verify(rf_bm_hooksig *h, uint32_t n);
/* The peer: `n` bare HMAC-SHA256 (OpenSSL's one-shot HMAC()) of the same "<t>.<body>". */
uint64_t rf_bm_hooksig_hmac(rf_bm_hooksig *h, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* RF_BENCH_MICRO_OPS_H */
